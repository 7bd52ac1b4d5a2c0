"""Every Python code block of the documentation runs.

The ``.. code-block:: python`` blocks of ``docs/*.rst`` and the ```` ```python ````
blocks of ``README.md`` are extracted and executed, page by page, in order, in one
namespace per page (a page's later blocks use what its earlier blocks defined). The
names a page uses without defining them -- ``db_uri``, ``session``, ``user_id``... --
come from the fixtures in ``PREPARERS``. A block holding the line
``# not executed: fragment`` is skipped; there must be only a few.

After a page has run, ``PAGE_CHECKS`` checks what it built: the README's Flask
integration example, for one, is driven through a whole code flow and its error
cases. The longer examples of the integration guides are whole files under
``docs/examples/``, included with ``literalinclude`` and run by
``tests/test_docs_examples.py``; the last tests here check that those includes
point at existing files and markers.
"""

from __future__ import annotations

import base64
import importlib.util
import re
import secrets
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from unittest import mock
from urllib.parse import parse_qs, urlencode, urlsplit

import mongomock
import pytest

import pyop.storage.mongo
from pyop.authz_state import AuthorizationState
from pyop.keys import load_signing_key
from pyop.provider import Provider
from pyop.storage.base import SharedClients
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
FRAGMENT_MARKER = "# not executed: fragment"
#: At most this many blocks may be left unexecuted.
MAX_FRAGMENTS = 3

#: The README's db_uri: served by mongomock.
DB_URI = "mongodb://localhost:27017/"
ISSUER = "https://example.com"
CLIENT_ID = "snippet-client"
CLIENT_SECRET = "snippet-client-secret"
REDIRECT_URI = "https://client.example.org/callback"
USER_ID = "alice"
USERS = {USER_ID: {"name": "Alice Example", "given_name": "Alice", "family_name": "Example"}}

_RST_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. (?:code-block|code|sourcecode)::[ \t]*"
                            r"(?P<language>\S+)[ \t]*$")
_MARKDOWN_FENCE = re.compile(r"^```(?P<language>[\w+-]*)[ \t]*$")
PYTHON = frozenset(["python", "python3", "py"])


@dataclass
class Snippet:
    path: Path
    line: int  # 1-based line of the first code line
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_fragment(self) -> bool:
        return FRAGMENT_MARKER in self.code


def rst_python_blocks(path: Path) -> list[Snippet]:
    """The Python ``code-block`` directives of a reStructuredText file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets = []
    index = 0
    while index < len(lines):
        match = _RST_DIRECTIVE.match(lines[index])
        index += 1
        if not match or match["language"].lower() not in PYTHON:
            continue
        indent = len(match["indent"])
        # options (":caption: ...") directly after the directive, then the content
        while index < len(lines) and re.match(r"^\s+:[\w-]+:", lines[index]):
            index += 1
        start = index
        body: list[str] = []
        while index < len(lines) and (not lines[index].strip()
                                      or len(lines[index]) - len(lines[index].lstrip())
                                      > indent):
            body.append(lines[index])
            index += 1
        while body and not body[0].strip():
            body.pop(0)
            start += 1
        snippets.append(Snippet(path, start + 1, textwrap.dedent("\n".join(body)).strip()
                                + "\n"))
    return snippets


def markdown_python_blocks(path: Path) -> list[Snippet]:
    """The ```` ```python ```` fenced blocks of a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets = []
    index = 0
    while index < len(lines):
        match = _MARKDOWN_FENCE.match(lines[index])
        index += 1
        if not match or match["language"].lower() not in PYTHON:
            continue
        start = index
        while index < len(lines) and not lines[index].startswith("```"):
            index += 1
        snippets.append(Snippet(path, start + 1, "\n".join(lines[start:index]) + "\n"))
        index += 1
    return snippets


def documentation_files() -> list[Path]:
    return sorted(DOCS.glob("*.rst")) + [README]


def python_blocks(path: Path) -> list[Snippet]:
    return markdown_python_blocks(path) if path.suffix == ".md" else rst_python_blocks(path)


PAGES = [path for path in documentation_files() if python_blocks(path)]


# -- what the snippets use without defining it ---------------------------------------------------

class SnippetEnvironment:
    """Makes the free names of the snippets, on demand, from the page's namespace."""

    def __init__(self, workdir: Path, signing_key_pem: str) -> None:
        self.workdir = workdir
        self.signing_key_pem = signing_key_pem

    def default_provider(self) -> Provider:
        """An in-memory provider with a client and a user, as the quickstart builds it."""
        signing_key = load_signing_key(self.signing_key_pem)
        configuration = {
            "issuer": ISSUER,
            "authorization_endpoint": ISSUER + "/authorization",
            "token_endpoint": ISSUER + "/token",
            "userinfo_endpoint": ISSUER + "/userinfo",
            "registration_endpoint": ISSUER + "/registration",
            "end_session_endpoint": ISSUER + "/logout",
            "scopes_supported": ["openid", "profile"],
        }
        authz_state = AuthorizationState(HashBasedSubjectIdentifierFactory("snippet salt"))
        provider = Provider(signing_key, configuration, authz_state, {}, Userinfo(dict(USERS)))
        register_client(provider)
        return provider

    def wsgi_app(self, namespace: dict[str, Any]) -> Any:
        """The application of docs/examples/wsgi_app.py, as docs/integration-wsgi.rst calls it."""
        spec = importlib.util.spec_from_file_location("pyop_docs_snippet_wsgi_app",
                                                      DOCS / "examples" / "wsgi_app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        provider = namespace.get("provider") or self.default_provider()
        return module.OpenIDProviderApp(provider, lambda username, password: None)

    def session(self, namespace: dict[str, Any]) -> dict[str, Any]:
        """A session holding a validated authentication request, as the host keeps it."""
        provider = namespace.get("provider") or self.default_provider()
        register_client(provider)
        authn_req = provider.parse_authentication_request(urlencode({
            "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
            "scope": "openid profile", "state": "snippet-state", "nonce": "snippet-nonce"}))
        return {"authn_req": authn_req.to_dict(), "user_id": USER_ID}


def register_client(provider: Provider) -> None:
    provider.clients[CLIENT_ID] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT_URI],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }


Preparer = Callable[[SnippetEnvironment, dict[str, Any]], Any]

#: name -> how to make it, for the names snippets use without defining them.
PREPARERS: dict[str, Preparer] = {
    "db_uri": lambda env, ns: DB_URI,
    "sub_hash_salt": lambda env, ns: "a secret salt for the snippets",
    "secret": lambda env, ns: secrets.token_urlsafe(32),
    "now": lambda env, ns: int(time.time()),
    "user_id": lambda env, ns: USER_ID,
    "subject_id_factory": lambda env, ns: HashBasedSubjectIdentifierFactory("snippet salt"),
    # docs/storage.rst's last block uses AuthorizationState without importing it
    "AuthorizationState": lambda env, ns: AuthorizationState,
    "provider": lambda env, ns: env.default_provider(),
    "session": lambda env, ns: env.session(ns),
    "wsgi_app": lambda env, ns: env.wsgi_app(ns),
    # README.md's integration example
    "make_provider": lambda env, ns: env.default_provider,
    "load_session_secret": lambda env, ns: lambda: secrets.token_hex(32),
}


def run_page(path: Path, env: SnippetEnvironment) -> dict[str, Any]:
    """Execute the page's Python blocks in order in one namespace; return it."""
    namespace: dict[str, Any] = {"__name__": f"docs_snippet_{path.stem}"}
    for snippet in python_blocks(path):
        if snippet.is_fragment:
            continue
        for name, prepare in PREPARERS.items():
            if name not in namespace and re.search(rf"\b{name}\b", snippet.code):
                namespace[name] = prepare(env, namespace)
        try:
            exec(compile(snippet.code, snippet.where, "exec"), namespace)  # noqa: S102
        except Exception as e:
            pytest.fail(f"{snippet.where}: the code block raised {type(e).__name__}: {e}")
    return namespace


# -- checks of what a page built -----------------------------------------------------------------

def check_quickstart(namespace: dict[str, Any]) -> None:
    assert namespace["signing_key"].alg == "RS256"
    assert isinstance(namespace["provider"], Provider)
    return_url = urlsplit(namespace["return_url"])
    assert return_url.geturl().startswith(REDIRECT_URI + "?")
    params = parse_qs(return_url.query)
    assert params["state"] == ["snippet-state"] and params["code"]
    assert namespace["provider"].provider_configuration["jwks_uri"] == "https://example.com/jwks"


def check_storage(namespace: dict[str, Any]) -> None:
    codes = namespace["codes"]
    assert codes.unseal(namespace["token"]) == {"sub": "alice", "client_id": "rp"}
    assert isinstance(namespace["authz_state"], AuthorizationState)


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode())
            .decode()}


def check_readme(namespace: dict[str, Any]) -> None:
    """The README's Flask example: a code flow, then the error answers it documents."""
    app = namespace["app"]
    client = app.test_client()
    query = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
             "scope": "openid profile", "state": "readme-state", "nonce": "readme-nonce"}
    response = client.get("/authorization?" + urlencode(query))
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith("/login")
    with client.session_transaction() as session:  # the host's login page did this
        session["user_id"] = USER_ID
    response = client.get("/login/done")
    assert response.status_code == 303
    redirect = urlsplit(response.headers["Location"])
    assert redirect.geturl().startswith(REDIRECT_URI)
    params = {k: v[0] for k, v in parse_qs(redirect.query).items()}
    assert params["state"] == "readme-state"

    body = urlencode({"grant_type": "authorization_code", "code": params["code"],
                      "redirect_uri": REDIRECT_URI})
    form = "application/x-www-form-urlencoded"
    response = client.post("/token", data=body, content_type=form,
                           headers=basic_auth(CLIENT_ID, CLIENT_SECRET))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    access_token = response.json["access_token"]
    assert response.json["id_token"]

    response = client.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
    assert response.status_code == 200
    assert response.json["name"] == "Alice Example" and response.json["sub"]

    # errors: the code again, a wrong secret, a bad token, an unknown client, a bad scope
    replay = client.post("/token", data=body, content_type=form,
                         headers=basic_auth(CLIENT_ID, CLIENT_SECRET))
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    assert replay.headers["Cache-Control"] == "no-store"
    wrong = client.post("/token", data=body, content_type=form,
                        headers=basic_auth(CLIENT_ID, "wrong"))
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Basic"
    bad_token = client.get("/userinfo", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    assert bad_token.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    unknown = client.get("/authorization?" + urlencode({**query, "client_id": "nobody"}))
    assert unknown.status_code == 400 and "Location" not in unknown.headers
    bad_scope = client.get("/authorization?" + urlencode({**query, "scope": "profile"}))
    assert bad_scope.status_code == 303
    assert "error=invalid_scope" in bad_scope.headers["Location"]


def check_wsgi_calls(namespace: dict[str, Any]) -> None:
    status, headers, body = namespace["call"](namespace["wsgi_app"], "GET", "/jwks")
    assert status == "200 OK" and b'"keys"' in body


def check_fapi(namespace: dict[str, Any]) -> None:
    """docs/fapi.rst's /par route answers 201, 400 and 401 as RFC 9126 2.2-2.3 ask, and the
    request_uri it returns is taken once at the authorization endpoint."""
    client = namespace["app"].test_client()
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    params = {"response_type": "code", "scope": "openid", "redirect_uri": REDIRECT_URI,
              "state": "s"}
    response = client.post("/par", data=params, headers={"Authorization": "Basic " + basic})
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    request_uri = response.get_json()["request_uri"]
    provider = namespace["provider"]
    query = urlencode({"client_id": CLIENT_ID, "request_uri": request_uri})
    assert provider.parse_authentication_request(query)["state"] == "s"
    refused = client.post("/par", data={**params, "redirect_uri": "https://evil.example/cb"},
                          headers={"Authorization": "Basic " + basic})
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"
    assert client.post("/par", data=params).status_code == 401


PAGE_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "fapi.rst": check_fapi,
    "quickstart.rst": check_quickstart,
    "storage.rst": check_storage,
    "README.md": check_readme,
    "integration-wsgi.rst": check_wsgi_calls,
}


# -- the tests -----------------------------------------------------------------------------------

@pytest.fixture
def snippet_env(tmp_path: Path, signing_key_pem: str, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[SnippetEnvironment]:
    """A working directory holding signing_key.pem, SUB_HASH_SALT set, MongoDB mocked."""
    (tmp_path / "signing_key.pem").write_bytes(Path(signing_key_pem).read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUB_HASH_SALT", "a secret salt from the environment")
    with mongomock.patch(servers=(("localhost", 27017),)), \
            mock.patch.object(pyop.storage.mongo, "_clients", SharedClients()):
        # the user the quickstart authorizes, in the users collection its MongoDB
        # provider reads (Provider.authorize refuses a user the claims source lacks)
        users = pyop.storage.MongoWrapper(DB_URI, "provider", "users")
        users["alice"] = {"name": "Alice Example", "given_name": "Alice"}
        yield SnippetEnvironment(tmp_path, signing_key_pem)


@pytest.mark.parametrize("path", PAGES, ids=[page.name for page in PAGES])
def test_code_blocks_run(path: Path, snippet_env: SnippetEnvironment) -> None:
    namespace = run_page(path, snippet_env)
    check = PAGE_CHECKS.get(path.name)
    if check is not None:
        check(namespace)


def test_the_extraction_finds_the_known_blocks() -> None:
    names = {path.name for path in PAGES}
    assert {"quickstart.rst", "storage.rst", "README.md"} <= names
    assert len(python_blocks(DOCS / "quickstart.rst")) >= 5
    for path in PAGES:
        for snippet in python_blocks(path):
            assert snippet.code.strip(), snippet.where
            compile(snippet.code, snippet.where, "exec")  # each block is valid Python


def test_few_fragments() -> None:
    fragments = [snippet.where for path in documentation_files()
                 for snippet in python_blocks(path) if snippet.is_fragment]
    assert len(fragments) <= MAX_FRAGMENTS, fragments


def test_no_untested_python_blocks_in_other_forms() -> None:
    """Python code only in forms the extraction sees (or literalinclude of tested files)."""
    for path in documentation_files():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".rst":
            for match in re.finditer(r"^\s*\.\. (?:doctest|testcode|ipython|code-block:: pycon)",
                                     text, re.M):
                pytest.fail(f"{path.name}: untested directive {match.group(0).strip()}")
        else:
            assert not re.search(r"^```(?:pycon|ipython)\s*$", text, re.M), path.name


# -- literalinclude: the integration guides' files ------------------------------------------------

_LITERALINCLUDE = re.compile(r"^(?P<indent>[ \t]*)\.\. literalinclude::[ \t]*(?P<target>\S+)")


def literalincludes() -> list[tuple[Path, str, dict[str, str]]]:
    found = []
    for path in sorted(DOCS.glob("*.rst")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            match = _LITERALINCLUDE.match(line)
            if not match:
                continue
            options = {}
            for option in lines[index + 1:]:
                option_match = re.match(r"^\s+:([\w-]+):\s*(.*)$", option)
                if not option_match:
                    break
                options[option_match.group(1)] = option_match.group(2)
            found.append((path, match["target"], options))
    return found


def test_literalincludes_point_at_tested_files() -> None:
    includes = literalincludes()
    targets = {target for _, target, _ in includes}
    assert {"examples/flask_app.py", "examples/wsgi_app.py"} <= targets
    tested = (ROOT / "tests" / "test_docs_examples.py").read_text(encoding="utf-8")
    for path, target, options in includes:
        included = (path.parent / target).resolve()
        assert included.is_file(), f"{path.name}: {target} does not exist"
        assert included.parent == DOCS / "examples", f"{path.name}: {target}"
        assert f'"{included.stem}"' in tested, f"{target} is not loaded by the tests"
        content = included.read_text(encoding="utf-8")
        for marker_option in ("start-after", "end-before"):
            if marker_option in options:
                assert options[marker_option] in content, (path.name, target, options)
