"""The example OP with DPoP on (``dpop``, ``dpop_nonces``): its PAR, token and UserInfo
routes describe the request to the provider (``http_method``, ``http_url``) and answer
DPoP errors with the headers RFC 9449 asks for (``DPoP-Nonce``, ``WWW-Authenticate:
DPoP``)."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

pytest.importorskip("flask", reason="the example needs Flask: pip install -e .[example]")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # example/ is run from the checkout, not installed
    sys.path.insert(0, str(REPO))

from fapi.dpop_keys import DPoPKey  # noqa: E402
from flask import Flask  # noqa: E402
from test_example import (  # noqa: E402
    ISSUER,
    REDIRECT_URI,
    authn_query,
    consent,
    login,
    redirect_params,
    register,
)

from example.app import config_from_env, create_app  # noqa: E402
from pyop.keys import generate_signing_key, write_private_key  # noqa: E402

FlaskClient = Any


def make_app(tmp_path: Path, **config: Any) -> Flask:
    key = tmp_path / "signing_key.pem"
    write_private_key(generate_signing_key("ES256"), key)
    application = create_app({"issuer": ISSUER, "data_dir": str(tmp_path / "data"),
                              "signing_key": str(key), "storage_uri": "memory:", **config})
    application.testing = True
    return application


def _now() -> int:
    return int(time.time())


def basic(registered: dict[str, Any]) -> dict[str, str]:
    raw = f"{registered['client_id']}:{registered['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def code_through_par(client: FlaskClient, registered: dict[str, Any],
                     headers: dict[str, str]) -> str:
    params = {"redirect_uri": REDIRECT_URI, "response_type": "code",
              "scope": "openid profile email", "state": "st4te", "nonce": "n0nce"}
    pushed = client.post("/par", data=params, headers={**basic(registered), **headers})
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    query = "/authorization?" + urlencode({"client_id": registered["client_id"],
                                           "request_uri": pushed.get_json()["request_uri"]})
    assert client.get(query).status_code == 303
    login(client)
    return redirect_params(consent(client))["code"]


def test_dpop_off_by_default(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    discovery = client.get("/.well-known/openid-configuration").get_json()
    assert "dpop_signing_alg_values_supported" not in discovery
    registered = register(client)
    client.get(authn_query(registered["client_id"]))
    login(client)
    code = redirect_params(consent(client))["code"]
    # a DPoP header is not read: a bearer token, as before
    token = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                        "redirect_uri": REDIRECT_URI},
                        headers={**basic(registered), "DPoP": "not-a-proof"})
    assert token.status_code == 200 and token.get_json()["token_type"] == "Bearer"


def test_config_from_env_dpop() -> None:
    config = config_from_env({"PYOP_EXAMPLE_DPOP": "1", "PYOP_EXAMPLE_DPOP_NONCES": "1"})
    assert config["dpop"] is True and config["dpop_nonces"] is True
    assert "dpop" not in config_from_env({})


def test_rfc9449_dpop_flow_through_the_example(tmp_path: Path) -> None:
    client = make_app(tmp_path, dpop=True).test_client()
    discovery = client.get("/.well-known/openid-configuration").get_json()
    assert discovery["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA"]
    registered = register(client)
    key = DPoPKey()
    # RFC 9449 10.1: the proof at the PAR endpoint names its URL (the issuer's)
    code = code_through_par(client, registered,
                            {"DPoP": key.proof("POST", ISSUER + "/par", _now())})
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    # another key than the pushed request's: refused (the code is bound, RFC 9449 10)
    refused = client.post("/token", data=body, headers={
        **basic(registered), "DPoP": DPoPKey().proof("POST", ISSUER + "/token", _now())})
    assert refused.status_code == 400
    token = client.post("/token", data=body, headers={
        **basic(registered), "DPoP": key.proof("POST", ISSUER + "/token", _now())})
    assert token.status_code == 200, token.get_data(as_text=True)
    assert token.get_json()["token_type"] == "DPoP"
    access_token = token.get_json()["access_token"]
    answer = client.get("/userinfo", headers={
        "Authorization": "DPoP " + access_token,
        "DPoP": key.proof("GET", ISSUER + "/userinfo", _now(), access_token=access_token)})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["sub"]
    # RFC 9449 7.1, 7.2: the bound token as a bearer token gets a DPoP challenge
    stolen = client.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
    assert stolen.status_code == 401
    assert stolen.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
    assert 'algs="ES256 PS256 EdDSA"' in stolen.headers["WWW-Authenticate"]
    # a proof for another URL: invalid_dpop_proof in the challenge
    wrong = client.get("/userinfo", headers={
        "Authorization": "DPoP " + access_token,
        "DPoP": key.proof("GET", ISSUER + "/other", _now(), access_token=access_token)})
    assert wrong.status_code == 401
    assert 'error="invalid_dpop_proof"' in wrong.headers["WWW-Authenticate"]


def test_rfc9449_8_nonces_through_the_example(tmp_path: Path) -> None:
    client = make_app(tmp_path, dpop=True, dpop_nonces=True).test_client()
    registered = register(client)
    key = DPoPKey()
    # the PAR endpoint asks for a nonce: 400 use_dpop_nonce with DPoP-Nonce
    first = client.post("/par", data={"redirect_uri": REDIRECT_URI, "response_type": "code",
                                      "scope": "openid"},
                        headers={**basic(registered),
                                 "DPoP": key.proof("POST", ISSUER + "/par", _now())})
    assert first.status_code == 400
    assert first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    code = code_through_par(client, registered, {
        "DPoP": key.proof("POST", ISSUER + "/par", _now(), nonce=nonce)})
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    missing = client.post("/token", data=body, headers={
        **basic(registered), "DPoP": key.proof("POST", ISSUER + "/token", _now())})
    assert missing.status_code == 400 and missing.get_json()["error"] == "use_dpop_nonce"
    assert missing.headers["DPoP-Nonce"]
    token = client.post("/token", data=body, headers={
        **basic(registered), "DPoP": key.proof("POST", ISSUER + "/token", _now(),
                                               nonce=missing.headers["DPoP-Nonce"])})
    assert token.status_code == 200, token.get_data(as_text=True)
    access_token = token.get_json()["access_token"]
    # UserInfo: 401 with a DPoP challenge naming use_dpop_nonce, and DPoP-Nonce
    answer = client.get("/userinfo", headers={
        "Authorization": "DPoP " + access_token,
        "DPoP": key.proof("GET", ISSUER + "/userinfo", _now(), access_token=access_token)})
    assert answer.status_code == 401
    assert 'error="use_dpop_nonce"' in answer.headers["WWW-Authenticate"]
    assert answer.headers["DPoP-Nonce"]

