"""The OpenID Provider of fastapi_app.py on pyop's async API: the code of docs/async.rst.

Same endpoints, login and consent pages and error answers as ``fastapi_app.py`` (whose
request parsing, helpers and pages it imports), but every pyop call is a coroutine of
:class:`pyop.aio.AsyncProvider`, awaited directly in the ``async def`` endpoints: storage
round trips and claims lookups wait on the event loop, no thread pool is involved.

``make_async_provider(...)`` builds the provider on async storage
(``AsyncStorageBase.from_uri``) and an async user directory (:class:`UserDirectory`,
an :class:`~pyop.aio.AsyncUserinfo`); ``create_app(provider, authenticate,
secret_key)`` returns the FastAPI (ASGI) application.

Executed by tests/test_docs_examples.py. Run a development server with
``python docs/examples/fastapi_async_app.py`` (see the ``__main__`` block at the end).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from typing import Any, Callable, Optional

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi_app import (
    NO_STORE,
    authentication_error,
    consent_page,
    csrf_ok,
    discovery,
    form_fields,
    has_consented,
    json_response,
    jwks,
    login_page,
    logout_page,
    message_page,
    protocol_parameters,
    requested_scopes,
    see_other,
    storage_error,
    token_management_error,
)
from provider_setup import COLLECTIONS, provider_configuration
from starlette.middleware.sessions import SessionMiddleware

from pyop.aio import AsyncAuthorizationState, AsyncProvider
from pyop.aio.storage import AsyncStorageBase
from pyop.exceptions import (
    BearerTokenError,
    InvalidAuthenticationRequest,
    InvalidClientRegistrationRequest,
    InvalidEndSessionRequest,
    InvalidSubjectIdentifier,
    OAuthError,
    StorageError,
)
from pyop.keys import load_signing_key
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo
from pyop.util import should_fragment_encode

#: The host's password check: ``await authenticate(username, password) -> user id or None``.
AsyncAuthenticate = Callable[[str, str], Awaitable[Optional[str]]]

router = APIRouter()


# [setup]
class UserDirectory:
    """The end-users' claims (OIDC Core 5.1), read with an async client: an
    :class:`~pyop.aio.AsyncUserinfo`.

    :param lookup: ``await lookup(user_id) -> claims or None``: your async database or
        directory query (asyncpg, an HTTP API...).
    """

    def __init__(self, lookup: Callable[[str], Awaitable[Optional[Mapping[str, Any]]]]) -> None:
        self.lookup = lookup

    async def get_claims_for(self, user_id: str, requested_claims: Mapping[str, Any],
                             userinfo: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """The requested claims the user has (``value``/``values`` honoured, OIDC Core
        5.5.1): pyop's :class:`~pyop.userinfo.Userinfo` filters the record looked up."""
        if userinfo is None:
            userinfo = await self.lookup(user_id) or {}
        return Userinfo({}).get_claims_for(user_id, requested_claims, userinfo)

    async def get_user(self, user_id: str) -> Optional[Mapping[str, Any]]:
        """The user's claims record, or None (optional: for ``claims_locales`` and
        ``id_token_hint`` checks)."""
        return await self.lookup(user_id)

    async def has_user(self, user_id: str) -> bool:
        """Whether the user exists (optional)."""
        return await self.lookup(user_id) is not None


async def make_async_provider(issuer: str, signing_key_file: str, directory: UserDirectory,
                              *, sub_hash_salt: str, storage_uri: str = "memory://",
                              clients: Optional[Mapping[str, Any]] = None,
                              token_management: bool = False) -> AsyncProvider:
    """The provider of ``provider_setup.make_provider`` on pyop's async API. Call it on
    the event loop that serves the application: the async drivers' clients belong to
    the loop they were created on.

    :param storage_uri: ``memory://`` (this process only), or e.g. ``redis://...``
        (``redis.asyncio``), ``postgresql://...``, ``mongodb://...``.
    :param clients: clients to register (``client_id -> metadata``).
    """
    stores = {name: AsyncStorageBase.from_uri(storage_uri, db_name="provider",
                                              collection=name)
              for name in COLLECTIONS}
    for client_id, metadata in (clients or {}).items():
        await stores["clients"].set(client_id, dict(metadata))

    authz_state = AsyncAuthorizationState(
        HashBasedSubjectIdentifierFactory(sub_hash_salt),
        stores["authz_codes"],
        stores["access_tokens"],
        stores["refresh_tokens"],
        stores["subject_identifiers"],
        refresh_token_lifetime=14 * 24 * 60 * 60,  # issue refresh tokens (two weeks)
    )
    signing_key = load_signing_key(signing_key_file)
    configuration_information = provider_configuration(issuer, signing_key.alg,
                                                       token_management=token_management)
    return AsyncProvider(signing_key, configuration_information, authz_state,
                         stores["clients"], directory)
# [/setup]


# [create_app]
def create_app(provider: AsyncProvider, authenticate: AsyncAuthenticate,
               secret_key: str) -> FastAPI:
    """The FastAPI application of the async provider.

    :param provider: the :class:`~pyop.aio.AsyncProvider` (see ``make_async_provider``),
        created on the event loop that serves the application.
    :param authenticate: ``await authenticate(username, password)``: the user id or None.
    :param secret_key: signs the session cookie; long, random and kept secret.
    """
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.provider = provider
    app.state.authenticate = authenticate
    app.add_middleware(SessionMiddleware, secret_key=secret_key, session_cookie="op_session",
                       same_site="lax", https_only=provider.issuer.startswith("https://"))
    app.add_exception_handler(StorageError, storage_error)
    app.include_router(router)
    return app


def get_provider(request: Request) -> AsyncProvider:
    """The provider of the running application."""
    provider: AsyncProvider = request.app.state.provider
    return provider
# [/create_app]


# [helpers]
async def authentication_response(request: Request, authn_req: Mapping[str, Any]) -> Response:
    """Issue the response for the logged-in user and send the browser back to the client."""
    provider = get_provider(request)
    session = request.session
    try:
        response = await provider.authorize(authn_req, session["user_id"],
                                            auth_time=session["auth_time"])
        # the sub the client knows the user by (for logout)
        sub = await provider.subject_identifier_for(authn_req["client_id"],
                                                    session["user_id"],
                                                    authn_req["redirect_uri"])
    except InvalidAuthenticationRequest as e:
        return authentication_error(e)
    except OAuthError as e:  # e.g. the client was deleted meanwhile
        return message_page("Request refused", str(e), 400)
    session["sub"] = sub
    return see_other(response.request(authn_req["redirect_uri"],
                                      should_fragment_encode(authn_req)))
# [/helpers]


# [discovery]
# The metadata endpoints read only memory (properties, as on the synchronous provider):
# the thread-pool application's, as they are.
router.add_api_route("/.well-known/openid-configuration", discovery, methods=["GET"])
router.add_api_route("/jwks", jwks, methods=["GET"])
# [/discovery]


# [authorization]
@router.api_route("/authorization", methods=["GET", "POST"])
async def authorization(request: Request) -> Response:
    """Authorization endpoint (OIDC Core 3.1.2): validate, then log in and ask consent."""
    provider = get_provider(request)
    params = await protocol_parameters(request)
    try:
        authn_req = await provider.parse_authentication_request(params, request.headers)
    except InvalidAuthenticationRequest as e:
        return authentication_error(e)

    session = request.session
    auth_time = session.get("auth_time") if "user_id" in session else None
    must_log_in = await provider.requires_authentication(authn_req, auth_time)

    if "none" in (authn_req.get("prompt") or []):
        # prompt=none: no page may be shown, answer at once (OIDC Core 3.1.2.1)
        if must_log_in:
            return authentication_error(
                await provider.create_authentication_error(authn_req, "login_required"))
        if not has_consented(session, authn_req):
            return authentication_error(
                await provider.create_authentication_error(authn_req, "consent_required"))
        return await authentication_response(request, authn_req.to_dict())

    session["authn_req"] = authn_req.to_dict()
    return see_other("/login" if must_log_in else "/consent")
# [/authorization]


# [login]
@router.api_route("/login", methods=["GET", "POST"])
async def login(request: Request) -> Response:
    """The host's own login page: pyop is not involved until the user is known."""
    session = request.session
    if request.method == "GET":
        return login_page(session)
    form = await form_fields(request)
    if not csrf_ok(session, form):
        return message_page("Form expired", "Reload the page and try again.", 400)
    authenticate: AsyncAuthenticate = request.app.state.authenticate
    user_id = await authenticate(form.get("username", ""), form.get("password", ""))
    if user_id is None:
        return login_page(session, "Wrong username or password.")
    authn_req = session.get("authn_req")
    session.clear()  # a new session at login (no session fixation)
    session["user_id"] = user_id
    session["auth_time"] = time.time()
    if authn_req is None:
        return message_page("Logged in", "You are logged in.")
    session["authn_req"] = authn_req
    return see_other("/consent")


@router.api_route("/consent", methods=["GET", "POST"])
async def consent(request: Request) -> Response:
    """Ask the end-user; then authorize() and redirect back to the client."""
    session = request.session
    authn_req = session.get("authn_req")
    if authn_req is None:
        return message_page("Nothing to approve", "No sign-in request is in progress.", 400)
    if "user_id" not in session:
        return see_other("/login")
    provider = get_provider(request)
    if request.method == "GET":
        client = await provider.get_client(authn_req["client_id"]) or {}
        return consent_page(session, client.get("client_name") or authn_req["client_id"],
                            requested_scopes(authn_req))
    form = await form_fields(request)
    if not csrf_ok(session, form):
        return message_page("Form expired", "Reload the page and try again.", 400)
    del session["authn_req"]
    if form.get("decision") != "allow":
        return authentication_error(await provider.create_authentication_error(
            authn_req, "access_denied", "the end-user denied the request"))
    consents = dict(session.get("consents") or {})
    granted = set(consents.get(authn_req["client_id"], []))
    consents[authn_req["client_id"]] = sorted(granted | set(requested_scopes(authn_req)))
    session["consents"] = consents
    return await authentication_response(request, authn_req)
# [/login]


# [token]
@router.post("/token")
async def token(request: Request) -> Response:
    """Token endpoint (RFC 6749 3.2, 5.1, 5.2; OIDC Core 3.1.3)."""
    body = await request.body()
    try:
        response = await get_provider(request).handle_token_request(body, request.headers)
    except OAuthError as e:  # 400, or 401 with WWW-Authenticate: Basic
        return token_management_error(e)
    return json_response(response.to_json(), 200, NO_STORE)
# [/token]


# [userinfo]
@router.api_route("/userinfo", methods=["GET", "POST"])
async def userinfo(request: Request) -> Response:
    """UserInfo endpoint (OIDC Core 5.3); errors as in RFC 6750 3."""
    params = await protocol_parameters(request)
    try:
        # awaits the access token's record, then the claims from the user directory
        response = await get_provider(request).handle_userinfo_request(params,
                                                                       request.headers)
    except BearerTokenError as e:
        return json_response(e.to_json(), e.http_status,
                             {**NO_STORE, "WWW-Authenticate": e.www_authenticate})
    return Response(response.to_body(), media_type=response.content_type, headers=NO_STORE)
# [/userinfo]


# [registration]
@router.post("/registration")
async def registration(request: Request) -> Response:
    """Dynamic client registration (OIDC Dynamic Registration 3): 201 or 400."""
    body = await request.body()
    try:
        response = await get_provider(request).handle_client_registration_request(body)
    except InvalidClientRegistrationRequest as e:
        return json_response(e.to_json(), 400, NO_STORE)
    return json_response(response.to_json(), 201, NO_STORE)
# [/registration]


# [token_management]
@router.post("/introspection")
async def introspection(request: Request) -> Response:
    """Token introspection (RFC 7662): ``{"active": ...}`` for the calling client's tokens."""
    body = await request.body()
    try:
        response = await get_provider(request).handle_introspection_request(body,
                                                                            request.headers)
    except OAuthError as e:
        return token_management_error(e)
    return json_response(response.to_json(), 200, NO_STORE)


@router.post("/revocation")
async def revocation(request: Request) -> Response:
    """Token revocation (RFC 7009): 200 with an empty body, whether the token was known."""
    body = await request.body()
    try:
        await get_provider(request).handle_revocation_request(body, request.headers)
    except OAuthError as e:
        return token_management_error(e)
    return Response(b"", headers=NO_STORE)
# [/token_management]


# [logout]
async def end_session(provider: AsyncProvider, sub: Optional[str], params: Any) -> Optional[str]:
    """A confirmed logout: revoke what was issued to ``sub``; the URL to send the browser
    to, if the client registered one.

    :raises InvalidEndSessionRequest: e.g. an ``id_token_hint`` we did not issue.
    """
    end_session_req = await provider.parse_end_session_request(params)
    try:
        await provider.logout_user(sub, end_session_req)
    except InvalidEndSessionRequest:  # (also an InvalidSubjectIdentifier)
        raise
    except InvalidSubjectIdentifier:
        pass  # nothing was issued in this session, or it was logged out already
    url: Optional[str] = await provider.do_post_logout_redirect(end_session_req)
    return url


@router.api_route("/logout", methods=["GET", "POST"])
async def logout(request: Request) -> Response:
    """RP-initiated logout: confirm (GET), then log out and redirect (POST)."""
    provider = get_provider(request)
    session = request.session
    if request.method == "GET":
        params: Any = request.scope["query_string"]
        if "user_id" in session:
            # ask first: a mere link must not log the end-user out
            try:
                end_session_req = await provider.parse_end_session_request(params)
            except InvalidEndSessionRequest as e:
                return message_page("Invalid logout request", str(e), 400)
            return logout_page(session, end_session_req.to_dict())
    else:
        form = await form_fields(request)
        if not csrf_ok(session, form):
            return message_page("Form expired", "Reload the page and try again.", 400)
        params = {name: value for name, value in form.items() if name != "csrf_token"}
    try:
        url = await end_session(provider, session.get("sub"), params)
    except InvalidEndSessionRequest as e:
        return message_page("Invalid logout request", str(e), 400)
    session.clear()
    if url:
        return see_other(url)
    return message_page("Logged out", "You are logged out.")
# [/logout]


# [main]
if __name__ == "__main__":  # development server: python docs/examples/fastapi_async_app.py
    import asyncio
    import os

    import uvicorn

    USERS = {"alice": {"name": "Alice Liddell", "email": "alice@example.com"}}

    async def find_user(user_id: str) -> Optional[Mapping[str, Any]]:
        """Demo only: a real directory awaits its database or API here."""
        return USERS.get(user_id)

    async def demo_authenticate(username: str, password: str) -> Optional[str]:
        """Demo only: alice / alice. Check real password hashes instead (in a thread:
        ``await asyncio.to_thread(...)``, hashing is CPU work)."""
        return "alice" if (username, password) == ("alice", "alice") else None

    async def serve() -> None:
        # the provider is created on the loop that serves the application
        provider = await make_async_provider(
            "http://127.0.0.1:8000", os.environ.get("SIGNING_KEY", "signing_key.pem"),
            UserDirectory(find_user), sub_hash_salt=os.environ["SUB_HASH_SALT"],
            token_management=True)
        app = create_app(provider, demo_authenticate, os.environ["SESSION_SECRET"])
        await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=8000)).serve()

    asyncio.run(serve())
# [/main]
