"""Constants, clients and small helpers shared by the security battery.

Copied rather than imported from ``tests/conftest.py``: ``tests`` is not a package, so
``tests.conftest`` is importable only when the repository root happens to be on ``sys.path``.
The fixtures of ``tests/conftest.py`` (``clock``, ``make_provider``...) are inherited as usual.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
from typing import Any, Optional
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

from conftest import OPT_IN_CAPABILITIES

from pyop.crypto import b64url_encode
from pyop.exceptions import InvalidAuthenticationRequest, OAuthError

ISSUER = "https://op.example.com"
CLIENT_ID = "client1"
CLIENT_SECRET = "secret-of-client1"
REDIRECT_URI = "https://rp.example.com/callback"
POST_LOGOUT_URI = "https://rp.example.com/logged-out"
PUBLIC_CLIENT_ID = "public-client"
PUBLIC_REDIRECT_URI = "http://127.0.0.1:8765/cb"
USER_ID = "alice"

#: A second confidential client, to present one client's artefacts as another's.
CLIENT_B_ID = "client2"
CLIENT_B_SECRET = "secret-of-client2"
CLIENT_B_REDIRECT_URI = "https://rp2.example.com/callback"
CLIENT_B_POST_LOGOUT_URI = "https://rp2.example.com/logged-out"

#: Registered for ``code`` and the authorization_code grant only.
CODE_ONLY_CLIENT_ID = "code-only-client"
CODE_ONLY_SECRET = "secret-of-code-only-client"
CODE_ONLY_REDIRECT_URI = "https://code-only.example.com/cb"

#: client_secret_post client.
POST_CLIENT_ID = "post-client"
POST_CLIENT_SECRET = "secret-of-post-client"
POST_CLIENT_REDIRECT_URI = "https://post.example.com/cb"

#: Client id and secret full of characters that Basic auth must form-url-encode.
ODD_CLIENT_ID = "odd client:1+é"
ODD_CLIENT_SECRET = "p@ss:word%3A+ /é:end"
ODD_CLIENT_REDIRECT_URI = "https://odd.example.com/cb"

ALL_RESPONSE_TYPES = ["code", "id_token", "id_token token", "code id_token", "code token",
                      "code id_token token"]
#: Response types that issue tokens from the authorization endpoint (fragment-encoded).
FRAGMENT_RESPONSE_TYPES = ["id_token", "id_token token", "code id_token", "code token",
                           "code id_token token"]


def security_configuration(**overrides: Any) -> dict[str, Any]:
    """Provider metadata as in ``tests.conftest.configuration``, with overrides."""
    config: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": ISSUER + "/token",
        "userinfo_endpoint": ISSUER + "/userinfo",
        "registration_endpoint": ISSUER + "/registration",
        "end_session_endpoint": ISSUER + "/logout",
        "response_types_supported": list(ALL_RESPONSE_TYPES),
        "subject_types_supported": ["public", "pairwise"],
        "scopes_supported": ["openid", "profile", "email", "address", "phone", "offline_access"],
        # the opt-in capabilities are enabled, so that the battery covers them
        **copy.deepcopy(OPT_IN_CAPABILITIES),
    }
    config.update(overrides)
    return config


def security_clients() -> dict[str, Any]:
    """The client database of the security battery (a superset of ``tests.conftest.clients``)."""
    return {
        CLIENT_ID: {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT_URI],
            "response_types": list(ALL_RESPONSE_TYPES),
            "token_endpoint_auth_method": "client_secret_basic",
            "post_logout_redirect_uris": [POST_LOGOUT_URI],
        },
        PUBLIC_CLIENT_ID: {
            "client_id": PUBLIC_CLIENT_ID,
            "redirect_uris": [PUBLIC_REDIRECT_URI],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
        CLIENT_B_ID: {
            "client_id": CLIENT_B_ID,
            "client_secret": CLIENT_B_SECRET,
            "redirect_uris": [CLIENT_B_REDIRECT_URI],
            "response_types": list(ALL_RESPONSE_TYPES),
            "token_endpoint_auth_method": "client_secret_basic",
            "post_logout_redirect_uris": [CLIENT_B_POST_LOGOUT_URI],
        },
        CODE_ONLY_CLIENT_ID: {
            "client_id": CODE_ONLY_CLIENT_ID,
            "client_secret": CODE_ONLY_SECRET,
            "redirect_uris": [CODE_ONLY_REDIRECT_URI],
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        POST_CLIENT_ID: {
            "client_id": POST_CLIENT_ID,
            "client_secret": POST_CLIENT_SECRET,
            "redirect_uris": [POST_CLIENT_REDIRECT_URI],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        },
        ODD_CLIENT_ID: {
            "client_id": ODD_CLIENT_ID,
            "client_secret": ODD_CLIENT_SECRET,
            "redirect_uris": [ODD_CLIENT_REDIRECT_URI],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
    }


SECRETS = {
    CLIENT_ID: CLIENT_SECRET,
    CLIENT_B_ID: CLIENT_B_SECRET,
    CODE_ONLY_CLIENT_ID: CODE_ONLY_SECRET,
    ODD_CLIENT_ID: ODD_CLIENT_SECRET,
}
REDIRECT_URIS = {
    CLIENT_ID: REDIRECT_URI,
    CLIENT_B_ID: CLIENT_B_REDIRECT_URI,
    CODE_ONLY_CLIENT_ID: CODE_ONLY_REDIRECT_URI,
    POST_CLIENT_ID: POST_CLIENT_REDIRECT_URI,
    PUBLIC_CLIENT_ID: PUBLIC_REDIRECT_URI,
    ODD_CLIENT_ID: ODD_CLIENT_REDIRECT_URI,
}


# -- encoding helpers ----------------------------------------------------------------------------

def basic_header(client_id: str, client_secret: str) -> dict[str, str]:
    """``Authorization: Basic`` as RFC 6749 2.3.1 says: form-url-encode, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return {"Authorization": "Basic " + base64.b64encode(raw.encode("utf-8")).decode("ascii")}


def client_headers(client_id: str = CLIENT_ID) -> dict[str, str]:
    return basic_header(client_id, SECRETS[client_id])


def new_verifier() -> str:
    """A fresh PKCE code_verifier (RFC 7636 4.1): 43 characters of base64url."""
    return secrets.token_urlsafe(32)


def s256(verifier: str) -> str:
    """The S256 code_challenge of a verifier (RFC 7636 4.2)."""
    return b64url_encode(hashlib.sha256(verifier.encode("utf-8")).digest())


def auth_params(client_id: str = CLIENT_ID, **overrides: Any) -> dict[str, Any]:
    """A valid code-flow authentication request; ``None`` values remove a parameter."""
    params: dict[str, Any] = {
        "client_id": client_id,
        "redirect_uri": REDIRECT_URIS.get(client_id, REDIRECT_URI),
        "response_type": "code",
        "scope": "openid",
        "state": "st4te",
        "nonce": "n0nce",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def auth_query(client_id: str = CLIENT_ID, **overrides: Any) -> str:
    return urlencode(auth_params(client_id, **overrides))


# -- flows ---------------------------------------------------------------------------------------

def authorize(provider: Any, client_id: str = CLIENT_ID, **overrides: Any) -> Any:
    """Parse a valid request and authorize it for ``USER_ID``; returns the response message."""
    request = provider.parse_authentication_request(auth_query(client_id, **overrides))
    return provider.authorize(request, USER_ID)


def issue_code(provider: Any, client_id: str = CLIENT_ID, **overrides: Any) -> str:
    return str(authorize(provider, client_id, **overrides)["code"])


def code_request(code: str, client_id: str = CLIENT_ID, /, **overrides: Any) -> str:
    """A code token request body; keyword arguments (``None``: drop) override parameters."""
    params: dict[str, Any] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URIS.get(client_id, REDIRECT_URI),
    }
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None})


def authenticate_as(client_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """``(headers, body parameters)`` authenticating as ``client_id`` by its registered method."""
    if client_id in SECRETS:
        return client_headers(client_id), {}
    if client_id == POST_CLIENT_ID:
        return {}, {"client_id": client_id, "client_secret": POST_CLIENT_SECRET}
    return {}, {"client_id": client_id}


def redeem(provider: Any, code: str, client_id: str = CLIENT_ID, /, **overrides: Any) -> Any:
    """Exchange a code at the token endpoint, authenticating as ``client_id``.

    Keyword arguments override body parameters (``client_id=`` included).
    """
    headers, body = authenticate_as(client_id)
    body.update(overrides)
    return provider.handle_token_request(code_request(code, client_id, **body), headers)


def refresh_request(refresh_token: str, **overrides: Any) -> str:
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    params.update(overrides)
    return urlencode({k: v for k, v in params.items() if v is not None})


def refresh(provider: Any, refresh_token: str, client_id: str = CLIENT_ID, /,
            **overrides: Any) -> Any:
    """A refresh_token grant authenticated as ``client_id``; keywords override parameters."""
    headers, body = authenticate_as(client_id)
    body.update(overrides)
    return provider.handle_token_request(refresh_request(refresh_token, **body), headers)


def scope_of(token_response: Any) -> list[str]:
    """The scope of a token response as a list (oic parses it into one)."""
    scope = token_response["scope"]
    return scope.split() if isinstance(scope, str) else list(scope)


def full_code_flow(provider: Any, client_id: str = CLIENT_ID, **overrides: Any) -> Any:
    """Authorize and redeem: the token response of a fresh grant."""
    return redeem(provider, issue_code(provider, client_id, **overrides), client_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


# -- assertions ----------------------------------------------------------------------------------

def assert_not_redirected(error: InvalidAuthenticationRequest) -> None:
    """The error must be shown by the host: never sent to a URI (open redirect)."""
    assert isinstance(error, InvalidAuthenticationRequest)
    assert error.oauth_error in ("invalid_request", "invalid_client", "unauthorized_client")
    assert error.to_error_url() is None
    assert error.redirectable is False
    assert error.http_status == 400


def assert_redirected(error: InvalidAuthenticationRequest, oauth_error: str, *,
                      fragment: Optional[bool], redirect_uri: str = REDIRECT_URI,
                      state: Optional[str] = "st4te") -> dict[str, list[str]]:
    """The error goes to the registered redirect_uri, in the fragment or the query only.

    ``fragment=None``: either place is acceptable, but only one.
    """
    assert isinstance(error, InvalidAuthenticationRequest)
    assert error.oauth_error == oauth_error, str(error)
    assert error.http_status == 400
    assert error.redirectable is True
    url = error.to_error_url()
    assert url is not None
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == \
        urlsplit(redirect_uri)._replace(query="", fragment="").geturl()
    if fragment is None:
        fragment = "error" in parse_qs(parts.fragment)
    if fragment:
        carried = parse_qs(parts.fragment)
        assert "error" not in parse_qs(parts.query), "implicit/hybrid error leaked in the query"
        assert parts.query == urlsplit(redirect_uri).query
    else:
        carried = parse_qs(parts.query)
        assert parts.fragment == ""
    assert carried["error"] == [oauth_error]
    if state is not None:
        assert carried["state"] == [state]
    assert carried["iss"] == [ISSUER]  # RFC 9207
    return carried


def assert_oauth_error(error: BaseException, oauth_error: str, http_status: int) -> None:
    assert isinstance(error, OAuthError), type(error)
    assert error.oauth_error == oauth_error, str(error)
    assert error.http_status == http_status
    assert json.loads(error.to_json())["error"] == oauth_error


# -- JWS forging ---------------------------------------------------------------------------------

def b64_json(value: Any) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def unverified_claims(jws: str) -> dict[str, Any]:
    payload = jws.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload)
                                                                               % 4)))
    return decoded
