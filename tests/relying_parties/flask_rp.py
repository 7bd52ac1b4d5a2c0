"""A minimal relying party of the tests' own, in Flask: the code flow and a front-channel
logout endpoint that records the calls it receives.

``/login`` sends the browser to the OP (``response_type=code``, ``state``, ``nonce``);
``/callback`` checks ``state``, redeems the code at the token endpoint
(``client_secret_basic``) and keeps the ID token's claims; ``/frontchannel_logout`` is its
``frontchannel_logout_uri`` (OIDC Front-Channel Logout 1.0 2): each call's ``iss`` and
``sid`` are recorded in :attr:`FrontChannelRP.logout_calls`, and the session with that
``sid`` is forgotten; ``/logged-out`` is its ``post_logout_redirect_uri``. The OP is the
test's own: the ID token's signature is not checked here (the OP's own tests do that).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import urllib.request
from typing import Any, Optional
from urllib.parse import urlencode

__all__ = ["FrontChannelRP"]


class FrontChannelRP:
    """The Flask app of one client (:meth:`app`), and what it saw."""

    def __init__(self, op_url: str, client_id: str, client_secret: str, url: str) -> None:
        self.op_url = op_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.url = url
        #: ``(iss, sid)`` of every front-channel logout call, in order (None when absent).
        self.logout_calls: list[tuple[Optional[str], Optional[str]]] = []
        #: ``sid -> ID token claims`` of the sessions logged in and not logged out.
        self.sessions: dict[str, dict[str, Any]] = {}
        self.called = threading.Event()
        #: A front-channel call is answered once this is set (set: at once); a test clears it
        #: to look at the OP's logout page while its iframe is still loading.
        self.release = threading.Event()
        self.release.set()

    @property
    def redirect_uri(self) -> str:
        return self.url + "/callback"

    @property
    def logged_out_url(self) -> str:
        return self.url + "/logged-out"

    @property
    def frontchannel_logout_uri(self) -> str:
        return self.url + "/frontchannel_logout"

    def client_metadata(self) -> dict[str, Any]:
        """The client as the OP's store keeps it."""
        return {
            "client_secret": self.client_secret,
            "client_name": "Flask RP (front-channel)",
            "redirect_uris": [self.redirect_uri],
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
            "frontchannel_logout_uri": self.frontchannel_logout_uri,
            "frontchannel_logout_session_required": True,
            "post_logout_redirect_uris": [self.logged_out_url],
        }

    def app(self) -> Any:
        from flask import Flask, Response, abort, redirect, request, session

        app = Flask(__name__)
        app.config.update(SECRET_KEY=secrets.token_hex(32),
                          SESSION_COOKIE_NAME="flask_rp_session")

        @app.get("/login")
        def login() -> Any:
            session["state"] = state = secrets.token_urlsafe(16)
            session["nonce"] = nonce = secrets.token_urlsafe(16)
            query = urlencode({"client_id": self.client_id, "redirect_uri": self.redirect_uri,
                               "response_type": "code", "scope": "openid", "state": state,
                               "nonce": nonce})
            return redirect(f"{self.op_url}/authorization?{query}", 303)

        @app.get("/callback")
        def callback() -> Any:
            if not session.get("state") or request.args.get("state") != session["state"]:
                abort(400)
            claims = self.redeem(request.args["code"])
            if claims.get("nonce") != session.get("nonce") or claims.get("aud") not in (
                    self.client_id, [self.client_id]):
                abort(400)
            self.sessions[claims["sid"]] = claims
            session["sid"] = claims["sid"]
            return Response(f'<!doctype html><p id="user">{claims["sub"]}</p>',
                            mimetype="text/html")

        @app.get("/frontchannel_logout")
        def frontchannel_logout() -> Any:
            iss, sid = request.args.get("iss"), request.args.get("sid")
            self.logout_calls.append((iss, sid))
            if iss == self.op_url and sid is not None:
                self.sessions.pop(sid, None)
            self.called.set()
            self.release.wait(10)
            return Response("logged out", mimetype="text/plain",
                            headers={"Cache-Control": "no-store"})

        @app.get("/logged-out")
        def logged_out() -> Any:
            return Response('<!doctype html><p id="logged-out">logged out</p>',
                            mimetype="text/html")

        return app

    def redeem(self, code: str) -> dict[str, Any]:
        """The code at the token endpoint; the ID token's claims."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        body = urlencode({"grant_type": "authorization_code", "code": code,
                          "redirect_uri": self.redirect_uri}).encode()
        token_request = urllib.request.Request(  # noqa: S310 - the test's own OP
            self.op_url + "/token", data=body, method="POST",
            headers={"Authorization": "Basic " + basic,
                     "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(token_request, timeout=10) as response:  # noqa: S310
            tokens = json.loads(response.read())
        payload = tokens["id_token"].split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(
            payload + "=" * (-len(payload) % 4)))
        return claims
