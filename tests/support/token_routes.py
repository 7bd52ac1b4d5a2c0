"""Flask routes for the token endpoints of a test host, as the docs show them.

``add_token_routes(app, provider)`` adds ``/introspect`` and ``/revoke`` (and, with
``token=True``, ``/token``), answering errors with their JSON body, HTTP status,
``WWW-Authenticate`` for client authentication failures and ``Cache-Control: no-store``.
"""

from __future__ import annotations

from flask import Flask, Response, request

from pyop.exceptions import InvalidClientAuthentication, OAuthError
from pyop.provider import Provider


def error_response(e: OAuthError) -> Response:
    """The error response of a token endpoint (RFC 6749 5.2)."""
    response = Response(e.to_json(), status=e.http_status, content_type="application/json")
    if isinstance(e, InvalidClientAuthentication):
        response.headers["WWW-Authenticate"] = "Basic"
    response.headers["Cache-Control"] = "no-store"
    return response


def add_token_routes(app: Flask, provider: Provider, *, token: bool = False) -> Flask:
    """Add the introspection, revocation and (optionally) token routes to ``app``."""
    if token:
        @app.post("/token")
        def token_endpoint() -> Response:
            try:
                result = provider.handle_token_request(request.get_data(), request.headers)
            except OAuthError as e:
                return error_response(e)
            return Response(result.to_json(), content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    @app.post("/introspect")
    def introspection_endpoint() -> Response:
        try:
            result = provider.handle_introspection_request(request.get_data(), request.headers)
        except OAuthError as e:
            return error_response(e)
        return Response(result.to_json(), content_type="application/json",
                        headers={"Cache-Control": "no-store"})

    @app.post("/revoke")
    def revocation_endpoint() -> Response:
        try:
            provider.handle_revocation_request(request.get_data(), request.headers)
        except OAuthError as e:
            return error_response(e)
        return Response("", status=200)

    return app
