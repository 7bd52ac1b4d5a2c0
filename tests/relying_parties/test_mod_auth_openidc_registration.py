"""The registration requests mod_auth_openidc sends, against the example OP (no Apache needed).

The bodies are what mod_auth_openidc 2.4.12.3 (Debian 12) posts to the
registration endpoint from ``OIDCMetadataDir``: its redirect URI, again as
``initiate_login_uri``, and every response type the OP advertises. OIDC Dynamic
Registration 2 says ``initiate_login_uri`` is a "URI using the https scheme", and
that web clients using the implicit grant "MUST only register URLs using the
https scheme as redirect_uris; they MUST NOT use localhost as the hostname". So
the example accepts it from an https RP with a real host name, refuses it from
an http RP, and an https RP on a loopback address registers the code flow only
(mod_auth_openidc's ``registration_endpoint_json``, see docs/example.rst).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask", reason="the example needs Flask: pip install -e .[example]")

ISSUER = "http://127.0.0.1:5000"
RESPONSE_TYPES = ["code", "id_token", "id_token token", "code id_token", "code token",
                  "code id_token token"]


def mod_auth_openidc_registration(rp: str) -> dict[str, Any]:
    """What mod_auth_openidc 2.4.12.3 posts for ``OIDCRedirectURI <rp>/protected/redirect_uri``."""
    redirect_uri = rp + "/protected/redirect_uri"
    return {
        "client_name": "OpenID Connect Apache Module (mod_auth_openidc)",
        "redirect_uris": [redirect_uri],
        "response_types": RESPONSE_TYPES,
        "grant_types": ["authorization_code", "implicit", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "initiate_login_uri": redirect_uri,
        "frontchannel_logout_uri": redirect_uri + "?logout=get",
        "backchannel_logout_uri": redirect_uri + "?logout=backchannel",
        "id_token_token_binding_cnf": "tbh",
    }


@pytest.fixture
def client(tmp_path: Path) -> Any:
    from example.app import create_app

    app = create_app({"issuer": ISSUER, "data_dir": str(tmp_path), "storage_uri": "memory:"})
    app.testing = True
    return app.test_client()


def register(client: Any, body: dict[str, Any]) -> Any:
    return client.post("/registration", data=json.dumps(body), content_type="application/json")


def test_https_rp_with_a_host_name_registers_everything_advertised(client: Any) -> None:
    advertised = client.get("/.well-known/openid-configuration").get_json()
    assert advertised["response_types_supported"] == RESPONSE_TYPES
    body = mod_auth_openidc_registration("https://rp.example.org")
    response = register(client, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    registered = response.get_json()
    assert registered["initiate_login_uri"] == body["initiate_login_uri"]
    assert registered["response_types"] == RESPONSE_TYPES
    assert registered["client_secret"] and registered["client_id"]


def test_http_rp_is_refused_its_http_initiate_login_uri(client: Any) -> None:
    body = mod_auth_openidc_registration("http://127.0.0.1:8080")
    body["response_types"] = ["code"]  # even without the implicit ones
    body["grant_types"] = ["authorization_code", "refresh_token"]
    response = register(client, body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client_metadata"
    del body["initiate_login_uri"]  # the only member in the way
    assert register(client, body).status_code == 201


def test_https_loopback_rp_registers_the_code_flow_only(client: Any) -> None:
    body = mod_auth_openidc_registration("https://127.0.0.1:8443")
    response = register(client, body)
    assert response.status_code == 400  # implicit and hybrid on localhost
    assert response.get_json()["error"] == "invalid_redirect_uri"
    # what registration_endpoint_json {"response_types": ["code"], ...} makes of it
    body.update(response_types=["code"], grant_types=["authorization_code", "refresh_token"])
    response = register(client, body)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["response_types"] == ["code"]
