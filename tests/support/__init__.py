"""Host glue for running the original README's code verbatim (tests/support/readme_app.py).

The README's routes are written against a pseudo web framework::

    @app.route('/token', methods=['POST', 'GET'])
    def token_endpoint(request):
        ... request.get_data() ... request.headers ...
        http_response = HTTPResponse(body, status=401, content_type='application/json')
        http_response.headers['WWW-Authenticate'] = 'Basic'
        ... session['authn_req'] ...

This module maps that framework onto a real Flask app so the snippet bodies run
unchanged, and loads ``readme_app.py`` afresh (one provider per test) with
MongoDB replaced by ``mongomock``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import itertools
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Callable
from unittest import mock

import flask
import mongomock

import pyop.storage.mongo
from pyop.storage.base import SharedClients

__all__ = ["HTTPResponse", "ReadmeApp", "ReadmeRequest", "session", "readme_app_context",
           "DB_URI"]

#: The README's ``db_uri``: served by mongomock (``mongomock.patch``).
DB_URI = "mongodb://localhost:27017/"

#: The README's ``session``: Flask's (signed cookie) session.
session = flask.session


class ReadmeRequest(str):
    """The ``request`` object handed to the README's routes.

    The README passes it straight to ``provider.parse_authentication_request(request)``,
    which takes the request's parameters as a query string (GET) or form body
    (POST), so it *is* that string (a ``str`` subclass). It also has what the
    other routes use: ``get_data()`` (the same parameters as bytes: the query
    string for GET, the body otherwise -- the README's logout route reads its
    GET parameters with ``request.get_data()``) and ``headers`` (Flask's
    request headers).
    """

    headers: Any
    method: str
    _data: bytes

    def __new__(cls, flask_request: flask.Request) -> ReadmeRequest:
        if flask_request.method == "GET":
            data = flask_request.query_string
        else:
            data = flask_request.get_data()
        self = super().__new__(cls, data.decode("utf-8", "replace"))
        self._data = data
        self.headers = flask_request.headers
        self.method = flask_request.method
        return self

    def get_data(self) -> bytes:
        return self._data


class HTTPResponse(flask.Response):
    """The README's ``HTTPResponse(body, status=..., content_type=...)``.

    A redirect status (3xx) takes the target URL as its body and sends it in
    the ``Location`` header, with an empty body.
    """

    def __init__(self, body: str, status: int = 200,
                 content_type: str = "text/html; charset=utf-8") -> None:
        if 300 <= status < 400:
            super().__init__("", status=status)
            self.headers["Location"] = body
        else:
            super().__init__(body, status=status, content_type=content_type)


class ReadmeApp:
    """The README's ``app``: ``@app.route(rule, methods=...)`` over a Flask app.

    A route function taking a parameter is called with a :class:`ReadmeRequest`.
    """

    def __init__(self) -> None:
        self.flask = flask.Flask("pyop_readme_app", root_path=str(Path(__file__).parent))
        self.flask.secret_key = secrets.token_bytes(32)

    def route(self, rule: str, methods: Iterable[str] = ("GET",)
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            takes_request = bool(inspect.signature(view).parameters)

            def flask_view() -> Any:
                if takes_request:
                    return view(ReadmeRequest(flask.request))
                return view()

            self.flask.add_url_rule(rule, view.__name__, flask_view, methods=list(methods))
            return view

        return decorator

    def test_client(self) -> Any:
        return self.flask.test_client()


_counter = itertools.count()


@contextlib.contextmanager
def readme_app_context(workdir: str) -> Iterator[ModuleType]:
    """Run ``readme_app.py`` as a new module in ``workdir`` (holding ``signing_key.pem``).

    MongoDB (``db_uri``) is mongomock while the context lasts; pyop's shared
    MongoClient cache is private to the context, so nothing leaks into other tests.
    """
    path = Path(__file__).with_name("readme_app.py")
    spec = importlib.util.spec_from_file_location(
        f"pyop_readme_app_{next(_counter)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with mongomock.patch(servers=(("localhost", 27017),)), \
            mock.patch.object(pyop.storage.mongo, "_clients", SharedClients()):
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            spec.loader.exec_module(module)
        finally:
            os.chdir(cwd)
        yield module
