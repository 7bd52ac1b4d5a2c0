"""Interoperability with the Node ``openid-client`` library (v6): full flows driven by
a relying party that is not ours, against a real provider over HTTP.

The test serves a provider on a loopback port (a small Flask host: discovery, JWKS, the
pushed authorization request, authorization, token and UserInfo routes; its authorization
route authenticates and approves a fixed end-user, so no browser is needed) and runs
``tests/fapi/node/driver.mjs``, which with openid-client discovers the provider, pushes the
authorization request (RFC 9126) with PKCE S256 (RFC 7636), follows the authorization URL
to read the redirect, exchanges the code (authenticating with ``private_key_jwt`` or
``client_secret_basic``; the library validates the ID token), and calls UserInfo; with
DPoP (RFC 9449) one key's proofs go to the PAR, token and UserInfo endpoints, and the
library retries on ``use_dpop_nonce`` when the provider requires server nonces.

openid-client and its dependencies are installed with ``npm ci`` from the pinned
``tests/fapi/node/package-lock.json`` into a directory outside the repository, keyed on
the lock file's hash and reused between runs (``PYOP_NODE_CACHE`` names its parent;
default: the system's temporary directory). Without node or npm, or without the
registry, the tests are skipped, unless ``PYOP_REQUIRE_SERVERS=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlencode

import pytest
from conftest import USER_ID, USERS, require_servers
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from flask import Flask, Response, redirect, request
from werkzeug.serving import WSGIRequestHandler, make_server

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, VerificationKey, b64url_decode, b64url_encode
from pyop.exceptions import (
    BearerTokenError,
    DPoPTokenError,
    InvalidDPoPProof,
    InvalidRequestURI,
    OAuthError,
)
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).parent / "node"
JWT_CLIENT_ID = "node-jwt-rp"
SECRET_CLIENT_ID = "node-secret-rp"
SECRET = "a-long-client-secret-of-the-node-rp-0123456789"
REDIRECT_URI = "https://rp.example.com/node/cb"
CLIENT_PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
CLIENT_KEY = SigningKey.from_key(CLIENT_PRIVATE_KEY)
CLIENT_KEY_ID = "node-rp-key-1"
ED25519_CLIENT_ID = "node-ed25519-rp"
ED25519_CLIENT_PRIVATE_KEY = ed25519.Ed25519PrivateKey.generate()
ED25519_CLIENT_KEY = SigningKey(ED25519_CLIENT_PRIVATE_KEY, "Ed25519", kid="node-rp-ed-1")


def client_private_jwk() -> dict[str, Any]:
    """The client's P-256 key as a private JWK (RFC 7518 6.2), for the driver."""
    numbers = CLIENT_PRIVATE_KEY.private_numbers()

    def member(value: int) -> str:
        return b64url_encode(value.to_bytes(32, "big"))

    return {"kty": "EC", "crv": "P-256", "x": member(numbers.public_numbers.x),
            "y": member(numbers.public_numbers.y), "d": member(numbers.private_value),
            "kid": CLIENT_KEY_ID, "alg": "ES256"}


def ed25519_client_private_jwk() -> dict[str, Any]:
    """The client's Ed25519 key as a private OKP JWK (RFC 8037 2) with the fully-specified
    alg (RFC 9864 2.2), for the driver."""
    d = ED25519_CLIENT_PRIVATE_KEY.private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                 NoEncryption())
    return {**ED25519_CLIENT_KEY.public_jwk, "d": b64url_encode(d),
            "kid": ED25519_CLIENT_KEY.kid, "alg": "Ed25519"}


def _unavailable(reason: str) -> None:
    if require_servers():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_modules_dir() -> Path:
    """A directory holding openid-client installed with ``npm ci`` from the pinned lock
    file (and the driver), keyed on the lock file's hash and reused between runs."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed for the openid-client interop tests")
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (NODE_DIR / "package.json").read_bytes()).hexdigest()[:16]
    parent = Path(os.environ.get("PYOP_NODE_CACHE") or tempfile.gettempdir())
    target = parent / f"pyop-openid-client-{digest}"
    if not (target / "node_modules" / "openid-client" / "package.json").is_file():
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"pyop-openid-client-{digest}-", dir=parent))
        for name in ("package.json", "package-lock.json"):
            shutil.copy(NODE_DIR / name, work / name)
        try:
            done = subprocess.run(
                [str(npm), "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                 "--loglevel=error"], cwd=work, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            shutil.rmtree(work, ignore_errors=True)
            _unavailable("npm ci timed out")
        if done.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            _unavailable(f"npm ci failed: {done.stderr.strip()[-500:]}")
        try:
            work.rename(target)  # atomic: another run may have finished first
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
    shutil.copy(NODE_DIR / "driver.mjs", target / "driver.mjs")
    return target


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class Host:
    """A provider served over HTTP, and what its routes saw."""

    def __init__(self, provider: Provider, base: str) -> None:
        self.provider = provider
        self.base = base
        self.pushed: list[dict[str, Any]] = []
        self.authorized: list[dict[str, Any]] = []
        self.token_responses: list[dict[str, Any]] = []
        self.statuses: list[tuple[str, int]] = []
        #: The ``alg`` of each DPoP proof received, in order.
        self.proof_algs: list[Any] = []


def _error_response(error: OAuthError, headers: Optional[dict[str, str]] = None) -> Response:
    response = Response(error.to_json(), status=error.http_status,
                        content_type="application/json")
    response.headers.update(headers or {})
    response.headers["Cache-Control"] = "no-store"
    return response


def host_app(host: Host) -> Flask:
    """The routes a host gives a provider: each describes the HTTP request it got
    (``http_method``, ``http_url`` and the headers, for DPoP) and answers errors with their
    status and headers (``DPoP-Nonce``, ``WWW-Authenticate``)."""
    app = Flask(__name__)
    provider = host.provider

    @app.after_request
    def record(response: Response) -> Response:
        host.statuses.append((request.path, response.status_code))
        proof = request.headers.get("DPoP")
        if proof:
            host.proof_algs.append(json.loads(b64url_decode(proof.split(".")[0])).get("alg"))
        return response

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return Response(provider.provider_configuration.to_json(),
                        content_type="application/json")

    @app.get("/jwks")
    def jwks() -> Response:
        return Response(json.dumps(provider.jwks), content_type="application/json")

    @app.post("/par")
    def par() -> Response:
        try:
            result = provider.handle_pushed_authorization_request(
                request.get_data(as_text=True), request.headers, http_method=request.method,
                http_url=request.url)
        except InvalidDPoPProof as e:
            return _error_response(e, e.headers)
        except OAuthError as e:
            return _error_response(e)
        host.pushed.append(result.to_dict())
        return Response(result.to_json(), status=result.http_status,
                        content_type="application/json", headers={"Cache-Control": "no-store"})

    @app.get("/authorization")
    def authorization() -> Any:
        # the end-user is authenticated and approves: no login page in this test
        parsed = provider.parse_authentication_request(request.query_string.decode())
        host.authorized.append({"query": request.args.to_dict(), "request": parsed.to_dict()})
        response = provider.authorize(parsed, USER_ID)
        return redirect(response.request(parsed["redirect_uri"], False), 303)

    @app.post("/token")
    def token() -> Response:
        try:
            result = provider.handle_token_request(
                request.get_data(as_text=True), request.headers, http_method=request.method,
                http_url=request.url)
        except InvalidDPoPProof as e:
            return _error_response(e, e.headers)
        except OAuthError as e:
            return _error_response(e)
        host.token_responses.append(result.to_dict())
        return Response(result.to_json(), content_type="application/json",
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @app.route("/userinfo", methods=["GET", "POST"])
    def userinfo() -> Response:
        try:
            result = provider.handle_userinfo_request(
                request.get_data(as_text=True) or request.query_string.decode(),
                request.headers, http_method=request.method, http_url=request.url)
        except BearerTokenError as e:
            headers = (e.headers if isinstance(e, DPoPTokenError)
                       else {"WWW-Authenticate": e.www_authenticate})
            return _error_response(e, headers)
        return Response(result.to_json(), content_type="application/json")

    return app


def clients() -> dict[str, Any]:
    common = {"redirect_uris": [REDIRECT_URI], "response_types": ["code"],
              "grant_types": ["authorization_code"]}
    return {
        JWT_CLIENT_ID: {"client_id": JWT_CLIENT_ID,
                        "token_endpoint_auth_method": "private_key_jwt",
                        "jwks": {"keys": [{**VerificationKey.from_key(CLIENT_KEY).to_jwk(),
                                           "kid": CLIENT_KEY_ID}]}, **common},
        SECRET_CLIENT_ID: {"client_id": SECRET_CLIENT_ID, "client_secret": SECRET,
                           "token_endpoint_auth_method": "client_secret_basic", **common},
        ED25519_CLIENT_ID: {"client_id": ED25519_CLIENT_ID,
                            "token_endpoint_auth_method": "private_key_jwt",
                            "jwks": {"keys": [ED25519_CLIENT_KEY.to_jwk()]}, **common},
    }


@pytest.fixture
def serve(rsa_private_key: Any) -> Iterator[Any]:
    servers: list[tuple[Any, threading.Thread]] = []

    def start(*, dpop: bool = False, profile: Optional[str] = None,
              dpop_algs: Optional[list[str]] = None,
              assertion_algs: Optional[list[str]] = None, **provider_kwargs: Any) -> Host:
        server = make_server("127.0.0.1", 0, Flask(__name__), threaded=True,
                             request_handler=_QuietHandler)
        base = f"http://127.0.0.1:{server.server_port}"
        config: dict[str, Any] = {
            "issuer": base, "authorization_endpoint": base + "/authorization",
            "token_endpoint": base + "/token", "userinfo_endpoint": base + "/userinfo",
            "jwks_uri": base + "/jwks",
            "pushed_authorization_request_endpoint": base + "/par",
            "response_types_supported": ["code"],
            "scopes_supported": ["openid", "profile", "email"],
            "subject_types_supported": ["public"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        }
        if dpop:  # Ed25519: the fully-specified alg (RFC 9864), accepted when listed
            config["dpop_signing_alg_values_supported"] = dpop_algs or [
                "ES256", "PS256", "EdDSA", "Ed25519"]
        if assertion_algs:
            config["token_endpoint_auth_signing_alg_values_supported"] = assertion_algs
        authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"),
                                   authorization_code_lifetime=60)
        provider = Provider(SigningKey(rsa_private_key, "PS256" if profile else None),
                            config, authz, clients(), Userinfo(dict(USERS)),
                            profile=profile, **provider_kwargs)
        host = Host(provider, base)
        server.app = host_app(host)  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return host

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(5)
        server.server_close()


def call_driver(node_dir: Path, host: Host, *, client_id: str = JWT_CLIENT_ID,
                dpop_alg: Optional[str] = None) -> tuple[dict[str, Any], int, str]:
    """The driver's output, exit status and standard error."""
    if client_id == JWT_CLIENT_ID:
        auth: dict[str, Any] = {"method": "private_key_jwt", "jwk": client_private_jwk()}
    elif client_id == ED25519_CLIENT_ID:
        auth = {"method": "private_key_jwt", "jwk": ed25519_client_private_jwk()}
    else:
        auth = {"method": "client_secret_basic", "secret": SECRET}
    driver_input = {"issuer": host.base, "client_id": client_id,
                    "redirect_uri": REDIRECT_URI, "scope": "openid profile email",
                    "auth": auth, "dpop": {"alg": dpop_alg} if dpop_alg else None}
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run([node, str(node_dir / "driver.mjs")], cwd=node_dir,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYOP_DRIVER_INPUT": json.dumps(driver_input)})
    lines = done.stdout.strip().splitlines()
    assert lines, f"the driver printed nothing (status {done.returncode}): {done.stderr}"
    return json.loads(lines[-1]), done.returncode, done.stderr


def run_driver(node_dir: Path, host: Host, *, client_id: str = JWT_CLIENT_ID,
               dpop_alg: Optional[str] = None) -> dict[str, Any]:
    output, status, stderr = call_driver(node_dir, host, client_id=client_id,
                                         dpop_alg=dpop_alg)
    assert status == 0 and "error" not in output, (output, host.statuses, stderr[-2000:])
    return output


def assert_pushed_request_used(host: Host, output: dict[str, Any]) -> dict[str, Any]:
    """The provider's side: the authorization endpoint got only ``client_id`` and the
    ``request_uri`` the PAR endpoint issued, took the pushed parameters (PKCE S256), and
    that ``request_uri`` is spent (RFC 9126 4)."""
    assert len(host.pushed) == 1 and len(host.authorized) == 1
    request_uri = host.pushed[0]["request_uri"]
    assert output["par_request_uri"] == request_uri
    assert request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert output["authorization_parameters"] == ["client_id", "request_uri"]
    authorized = host.authorized[0]
    assert authorized["query"]["request_uri"] == request_uri
    pushed_request = authorized["request"]
    assert pushed_request["code_challenge_method"] == "S256"
    assert pushed_request["redirect_uri"] == REDIRECT_URI
    with pytest.raises(InvalidRequestURI):
        host.provider.parse_authentication_request(urlencode(
            {"client_id": authorized["query"]["client_id"], "request_uri": request_uri}))
    return dict(pushed_request)


def assert_signed_in(host: Host, output: dict[str, Any], client_id: str) -> dict[str, Any]:
    claims = output["id_token_claims"]
    assert claims["iss"] == host.base and claims["aud"] in (client_id, [client_id])
    assert output["userinfo"]["sub"] == claims["sub"]
    assert output["userinfo"]["email"] == USERS[USER_ID]["email"]
    assert output["token"]["has_id_token"] is True
    record: dict[str, Any] = host.provider.authz_state.introspect_access_token(
        output["token"]["access_token"])
    assert record["active"] is True and record["client_id"] == client_id
    return record


@pytest.mark.parametrize("client_id", [JWT_CLIENT_ID, SECRET_CLIENT_ID])
def test_rfc9126_par_code_pkce_flow_with_openid_client(node_modules_dir: Path, serve: Any,
                                                       client_id: str) -> None:
    host = serve()
    output = run_driver(node_modules_dir, host, client_id=client_id)
    pushed_request = assert_pushed_request_used(host, output)
    assert "dpop_jkt" not in pushed_request
    assert output["token"]["token_type"] == "bearer"  # as the library normalises it
    assert host.token_responses[0]["token_type"] == "Bearer"
    record = assert_signed_in(host, output, client_id)
    assert "cnf" not in record


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA", "Ed25519"])
def test_rfc9449_dpop_bound_flow_with_openid_client(node_modules_dir: Path, serve: Any,
                                                    alg: str) -> None:
    host = serve(dpop=True)
    output = run_driver(node_modules_dir, host, dpop_alg=alg)
    # openid-client signs proofs of Ed25519 keys (asked for as EdDSA or Ed25519) with the
    # fully-specified alg Ed25519 (RFC 9864 2.2), which the provider lists and accepts
    expected = "Ed25519" if alg in ("EdDSA", "Ed25519") else alg
    assert host.proof_algs and set(host.proof_algs) == {expected}
    pushed_request = assert_pushed_request_used(host, output)
    # RFC 9449 10.1: the library's proof at the PAR endpoint bound the pushed request
    assert pushed_request["dpop_jkt"] == output["dpop_jkt"]
    # RFC 9449 5: token_type DPoP (which the library normalises to lower case)
    assert output["token"]["token_type"] == "dpop"
    assert host.token_responses[0]["token_type"] == "DPoP"
    record = assert_signed_in(host, output, JWT_CLIENT_ID)
    assert record["cnf"] == {"jkt": output["dpop_jkt"]}  # RFC 9449 6
    # the bound token without a proof is refused at UserInfo (RFC 9449 7.2)
    with pytest.raises(DPoPTokenError):
        host.provider.handle_userinfo_request(
            "", {"Authorization": "DPoP " + output["token"]["access_token"]},
            http_method="GET", http_url=host.base + "/userinfo")


def test_rfc9449_8_9_server_nonces_with_openid_client(node_modules_dir: Path,
                                                      serve: Any) -> None:
    host = serve(dpop=True, dpop_nonces=True)
    output = run_driver(node_modules_dir, host, client_id=SECRET_CLIENT_ID, dpop_alg="ES256")
    assert output["token"]["token_type"] == "dpop"
    record = assert_signed_in(host, output, SECRET_CLIENT_ID)
    assert record["cnf"] == {"jkt": output["dpop_jkt"]}
    # the library's first proof (at the PAR endpoint) had no nonce: use_dpop_nonce, then
    # a retry with the DPoP-Nonce given; the library keeps that nonce for its next proofs
    # (RFC 9449 8.2), which the provider accepts while it is valid
    assert [status for called, status in host.statuses if called == "/par"] == [400, 201]
    for path in ("/token", "/userinfo"):
        assert [status for called, status in host.statuses if called == path][-1] == 200


def test_fapi2_profile_flow_with_openid_client(node_modules_dir: Path, serve: Any) -> None:
    # FAPI 2.0 Security Profile 5: PAR, PKCE S256, private_key_jwt, DPoP, PS256 ID tokens
    host = serve(dpop=True, profile="fapi2")
    output = run_driver(node_modules_dir, host, dpop_alg="ES256")
    pushed_request = assert_pushed_request_used(host, output)
    assert pushed_request["dpop_jkt"] == output["dpop_jkt"]
    assert output["token"]["token_type"] == "dpop"
    assert assert_signed_in(host, output, JWT_CLIENT_ID)["cnf"] == {"jkt": output["dpop_jkt"]}


def test_rfc9864_ed25519_proofs_refused_unless_listed(node_modules_dir: Path,
                                                      serve: Any) -> None:
    # the provider lists EdDSA but not the fully-specified Ed25519: the library's Ed25519
    # proof at the PAR endpoint is refused (RFC 9449 4.3 point 5), nothing is pushed
    host = serve(dpop=True, dpop_algs=["ES256", "PS256", "EdDSA"])
    output, exit_status, _stderr = call_driver(node_modules_dir, host, dpop_alg="EdDSA")
    assert exit_status != 0 and "error" in output
    assert host.proof_algs and set(host.proof_algs) == {"Ed25519"}
    assert [status for called, status in host.statuses if called == "/par"] == [400]
    assert host.pushed == [] and host.token_responses == []


def test_rfc9864_ed25519_private_key_jwt_with_openid_client(node_modules_dir: Path,
                                                            serve: Any) -> None:
    # RFC 7523 / OIDC Core 9 private_key_jwt: the library signs its client assertion with
    # the Ed25519 key as alg Ed25519 (RFC 9864 2.2), accepted once the provider lists it
    host = serve(assertion_algs=["ES256", "PS256", "EdDSA", "Ed25519"])
    discovery = host.provider.provider_configuration
    assert "Ed25519" in discovery["token_endpoint_auth_signing_alg_values_supported"]
    output = run_driver(node_modules_dir, host, client_id=ED25519_CLIENT_ID)
    assert_pushed_request_used(host, output)
    assert_signed_in(host, output, ED25519_CLIENT_ID)


def test_rfc9864_ed25519_private_key_jwt_refused_unless_listed(node_modules_dir: Path,
                                                               serve: Any) -> None:
    # without configuration the derived list is unchanged (no Ed25519): refused
    host = serve()
    discovery = host.provider.provider_configuration
    assert "Ed25519" not in discovery["token_endpoint_auth_signing_alg_values_supported"]
    output, exit_status, _stderr = call_driver(node_modules_dir, host,
                                               client_id=ED25519_CLIENT_ID)
    assert exit_status != 0 and "error" in output
    assert [status for called, status in host.statuses if called == "/par"] == [401]
