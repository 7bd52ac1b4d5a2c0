"""Which grants get a refresh token (RFC 6749 1.5, 6; RFC 7591 2 ``grant_types``; OIDC Core 11).

pyop 3 issued one with every code exchange once ``refresh_token_lifetime`` was set, and
accepted it from any client (``data/pyop3_refresh_token_issuance.json``, made by the script
next to it). This library:

- never issues one to a client whose registered ``grant_types`` omit ``refresh_token``: it
  may not use the grant (RFC 7591 2), and the token endpoint refuses it that grant
  (``unauthorized_client``, RFC 6749 5.2):
  ``test_rfc7591_2_no_refresh_token_for_a_client_without_the_grant``;
- issues one, as pyop 3 did, to a client without ``grant_types`` (static clients of pyop 3
  configurations): ``test_pyop3_refresh_token_for_a_client_without_grant_types``;
- with ``refresh_token_requires_registered_grant``, only to clients listing the grant
  (omitted ``grant_types`` are OIDC Dynamic Registration 2's ``["authorization_code"]``):
  ``test_oidc_registration_2_refresh_token_requires_registered_grant``;
- with ``refresh_token_requires_offline_access``, only for grants of ``offline_access``
  (OIDC Core 11): ``test_oidc_core_11_refresh_token_requires_offline_access``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from pyop.exceptions import OAuthError, UnauthorizedClient

from .conftest import REFRESH_LIFETIME
from .helpers import (
    CLIENT_ID,
    CODE_ONLY_CLIENT_ID,
    assert_oauth_error,
    full_code_flow,
    refresh,
    scope_of,
    security_clients,
)

DATA = Path(__file__).parent / "data"
PYOP3_RESULT = DATA / "pyop3_refresh_token_issuance.json"

OFFLINE = {"scope": "openid offline_access", "prompt": "consent"}


def token_error(call: Callable[[], Any]) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        call()
    return info.value


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def provider_with(make_op: Any, executor: Any = None, clients: Any = None,
                  **options: Any) -> Any:
    return make_op(client_db=clients if clients is not None else security_clients(),
                   authz_kwargs={"refresh_token_lifetime": REFRESH_LIFETIME},
                   executor=executor, **options)


@pytest.mark.parametrize("with_executor", [False, True], ids=["inline", "executor"])
@pytest.mark.parametrize("params", [{}, OFFLINE], ids=["openid", "offline_access"])
def test_rfc7591_2_no_refresh_token_for_a_client_without_the_grant(
        make_op: Any, executor: Any, with_executor: bool, params: dict[str, str]) -> None:
    provider = provider_with(make_op, executor if with_executor else None)
    response = full_code_flow(provider, CODE_ONLY_CLIENT_ID, **params)
    assert "refresh_token" not in response
    # no claim of offline access without the refresh token (OIDC Core 11)
    assert "offline_access" not in scope_of(response)
    assert response["access_token"]


def test_rfc6749_5_2_refresh_grant_unauthorized_for_a_client_without_the_grant(
        make_op: Any) -> None:
    """Explicit ``grant_types`` without ``refresh_token``: the grant is refused even with
    a refresh token issued while the client still listed it."""
    clients = security_clients()
    clients[CODE_ONLY_CLIENT_ID]["grant_types"] = ["authorization_code", "refresh_token"]
    provider = provider_with(make_op, clients=clients)
    refresh_token = full_code_flow(provider, CODE_ONLY_CLIENT_ID)["refresh_token"]
    clients[CODE_ONLY_CLIENT_ID]["grant_types"] = ["authorization_code"]
    error = token_error(lambda: refresh(provider, refresh_token, CODE_ONLY_CLIENT_ID))
    assert isinstance(error, UnauthorizedClient)
    assert_oauth_error(error, "unauthorized_client", 400)


@pytest.mark.parametrize("params", [{}, OFFLINE], ids=["openid", "offline_access"])
def test_pyop3_refresh_token_for_a_client_without_grant_types(make_op: Any,
                                                              params: dict[str, str]) -> None:
    expected = json.loads(PYOP3_RESULT.read_text(encoding="utf-8"))
    scope = params.get("scope", "openid")
    assert expected[f"no-grant-types|{scope}"] == {"refresh_token": True,
                                                   "refresh_grant_works": True}
    provider = provider_with(make_op)
    assert "grant_types" not in provider.get_client(CLIENT_ID)
    response = full_code_flow(provider, CLIENT_ID, **params)
    assert refresh(provider, response["refresh_token"])["access_token"]


@pytest.mark.parametrize("grant_types,issued", [
    (None, False),
    (["authorization_code"], False),
    (["authorization_code", "refresh_token"], True),
], ids=["omitted", "code-only", "listed"])
def test_oidc_registration_2_refresh_token_requires_registered_grant(
        make_op: Any, grant_types: Any, issued: bool) -> None:
    clients = security_clients()
    if grant_types is not None:
        clients[CLIENT_ID]["grant_types"] = grant_types
    provider = provider_with(make_op, clients=clients,
                             refresh_token_requires_registered_grant=True)
    assert provider.refresh_token_requires_registered_grant is True
    assert ("refresh_token" in full_code_flow(provider, CLIENT_ID)) is issued


@pytest.mark.parametrize("params,issued", [
    ({}, False),
    ({"scope": "openid offline_access"}, False),  # ignored without prompt=consent
    (OFFLINE, True),
], ids=["openid", "offline-access-without-consent-prompt", "offline-access"])
def test_oidc_core_11_refresh_token_requires_offline_access(
        make_op: Any, params: dict[str, str], issued: bool) -> None:
    provider = provider_with(make_op, refresh_token_requires_offline_access=True)
    response = full_code_flow(provider, CLIENT_ID, **params)
    assert ("refresh_token" in response) is issued
    assert ("offline_access" in scope_of(response)) is issued
    if issued:  # and the refreshed grant keeps working
        assert refresh(provider, response["refresh_token"])["access_token"]


@pytest.mark.compat
def test_pyop3_refresh_token_issuance_data_is_current(tmp_path: Path,
                                                      pyop3_python: str) -> None:
    """The checked-in pyop 3 result, made again live with pyop 3.5.0."""
    python = pyop3_python
    script = DATA / "pyop3_refresh_token_issuance.py"
    # run outside the checkout, so that its pyop is not the one imported
    output = subprocess.run([python, str(script)], capture_output=True, text=True,
                            check=True, cwd=str(tmp_path),
                            timeout=120).stdout
    assert json.loads(output) == json.loads(PYOP3_RESULT.read_text(encoding="utf-8"))
