"""``pyop check`` against a provider served on a free loopback port.

A small WSGI server serves a real ``Provider``'s discovery document and JWK Set (OIDC
Discovery 4, RFC 7517 5), then deliberately broken ones.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from pyop.authz_state import AuthorizationState
from pyop.cli import EXIT_FAILURE, EXIT_FINDINGS, EXIT_OK, main
from pyop.cli.check import check_issuer
from pyop.crypto import SigningKey
from pyop.keys import generate_signing_key
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class DocumentServer:
    """Serves ``routes``: path -> (status, content type, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, str, bytes]] = {}
        self.server = make_server("127.0.0.1", 0, self.app, server_class=ThreadingWSGIServer,
                                  handler_class=QuietHandler)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        status, content_type, body = self.routes.get(
            environ["PATH_INFO"], ("404 Not Found", "text/plain", b"not found"))
        start_response(status, [("Content-Type", content_type),
                                ("Content-Length", str(len(body)))])
        return [body]

    def serve_json(self, path: str, document: Any) -> None:
        self.routes[path] = ("200 OK", "application/json", json.dumps(document).encode())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[DocumentServer]:
    server = DocumentServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {alg: SigningKey(generate_signing_key(alg), alg) for alg in ("RS256", "ES256")}


def serve_provider(server: DocumentServer, keys: dict[str, SigningKey],
                   **configuration: Any) -> Provider:
    """A provider with an RS256 and an ES256 key (so both published with a kid, OIDC Core
    10.1), or with the RS256 key only when ``signing_keys=[]``."""
    issuer = server.issuer
    signing_keys = configuration.pop("signing_keys", [keys["ES256"]])
    provider = Provider(
        keys["RS256"],
        {"issuer": issuer, "authorization_endpoint": issuer + "/authorization",
         "token_endpoint": issuer + "/token", "userinfo_endpoint": issuer + "/userinfo",
         "jwks_uri": issuer + "/jwks", **configuration},
        AuthorizationState(HashBasedSubjectIdentifierFactory("salt")), {}, Userinfo({}),
        signing_keys=signing_keys)
    server.serve_json("/.well-known/openid-configuration",
                      provider.provider_configuration.to_dict())
    server.serve_json("/jwks", provider.jwks)
    return provider


def findings_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict]]:
    status = main(["check", *argv, "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out)["findings"]


def test_a_pyop_provider_has_no_errors(server: DocumentServer, keys: dict[str, SigningKey],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    serve_provider(server, keys)
    status, findings = findings_json(capsys, server.issuer)
    assert status == EXIT_OK
    assert [f for f in findings if f["severity"] != "info"] == []
    status = main(["check", server.issuer])
    out = capsys.readouterr().out
    assert status == EXIT_OK
    assert out.startswith("SEVERITY") or out.endswith("no findings\n")


def test_a_single_key_without_kid_is_fine(server: DocumentServer,
                                          keys: dict[str, SigningKey],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """One published key needs no kid (OIDC Core 10.1): pyop 3 published its key so."""
    provider = serve_provider(server, keys, signing_keys=[])
    assert "kid" not in provider.jwks["keys"][0]
    status, findings = findings_json(capsys, server.issuer)
    assert status == EXIT_OK
    assert [f for f in findings if f["severity"] != "info"] == []


def codes(findings: list[dict], severity: str) -> set[str]:
    return {f["code"] for f in findings if f["severity"] == severity}


def test_broken_configuration(server: DocumentServer, keys: dict[str, SigningKey],
                              capsys: pytest.CaptureFixture[str]) -> None:
    provider = serve_provider(server, keys)
    doc = provider.provider_configuration.to_dict()
    doc["issuer"] = server.issuer + "/"  # not the URL relying parties were given
    del doc["subject_types_supported"]
    doc["response_types_supported"] = ["code", "id_token"]
    doc["grant_types_supported"] = ["authorization_code"]  # id_token needs implicit
    doc["userinfo_endpoint"] = "http://userinfo.example.com/userinfo"  # http, other host
    doc["id_token_signing_alg_values_supported"] = ["RS256", "ES256", "PS384", "EdDSA"]
    server.serve_json("/.well-known/openid-configuration", doc)
    rsa, ec = provider.jwks["keys"]  # several keys: published with their thumbprint kid
    no_kid = {k: v for k, v in ec.items() if k not in ("kid", "use", "alg")}
    leaked = dict(rsa, kid="leaked", d="cHJpdmF0ZQ")
    server.serve_json("/jwks", {"keys": [rsa, dict(ec, kid=rsa["kid"]), no_kid, leaked]})

    status, findings = findings_json(capsys, server.issuer)
    assert status == EXIT_FINDINGS
    assert codes(findings, "error") == {
        "issuer-mismatch", "missing-metadata", "grant-types", "http-endpoint",
        "duplicate-kid", "jwk-kid", "private-key-published", "alg-without-key"}
    assert codes(findings, "warning") >= {"other-host", "jwk-use", "jwk-alg"}
    messages = " ".join(f["message"] for f in findings)
    assert "trailing slash" in messages
    assert "subject_types_supported is missing" in messages
    # ES256 has a key (the kid-less one); PS384 and EdDSA have none
    missing_algs = {f["message"].split(" has ")[1].split()[0] for f in findings
                    if f["code"] == "alg-without-key"}
    assert missing_algs == {"PS384", "EdDSA"}
    assert "cHJpdmF0ZQ" not in messages
    # errors come first
    severities = [f["severity"] for f in findings]
    assert severities == sorted(severities, key=("error", "warning", "info").index)

    status = main(["check", server.issuer, "--min-severity", "error"])
    out = capsys.readouterr().out
    assert status == EXIT_FINDINGS
    assert "issuer-mismatch" in out and "jwk-use" not in out


def test_required_rs256_and_http_issuer(server: DocumentServer,
                                        keys: dict[str, SigningKey]) -> None:
    provider = serve_provider(server, keys)
    doc = provider.provider_configuration.to_dict()
    doc["id_token_signing_alg_values_supported"] = ["ES256"]
    server.serve_json("/.well-known/openid-configuration", doc)
    findings, reachable = check_issuer(server.issuer)
    assert reachable
    assert "rs256-missing" in {f.code for f in findings}
    # an http issuer off loopback is an error before anything is fetched
    findings, _ = check_issuer("http://op.invalid", timeout=2)
    assert {"http-issuer", "discovery-unavailable"} <= {f.code for f in findings}


def test_jwks_not_json_or_unreachable(server: DocumentServer, keys: dict[str, SigningKey],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    serve_provider(server, keys)
    server.routes["/jwks"] = ("200 OK", "text/html", b"<html>keys</html>")
    status, findings = findings_json(capsys, server.issuer)
    assert status == EXIT_FINDINGS
    assert any(f["code"] == "jwks-unavailable" and "not JSON" in f["message"]
               for f in findings)
    del server.routes["/jwks"]
    status, findings = findings_json(capsys, server.issuer)
    assert any(f["code"] == "jwks-unavailable" and "404" in f["message"] for f in findings)
    server.serve_json("/jwks", {"no": "keys"})
    status, findings = findings_json(capsys, server.issuer)
    assert "jwks-invalid" in codes(findings, "error")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_provider_is_a_network_failure(capsys: pytest.CaptureFixture[str]) -> None:
    status, findings = findings_json(capsys, f"http://127.0.0.1:{free_port()}", "--timeout",
                                     "5")
    assert status == EXIT_FAILURE
    assert findings[0]["code"] == "discovery-unavailable"


def test_discovery_not_found_is_an_error(server: DocumentServer,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    status, findings = findings_json(capsys, server.issuer)
    assert status == EXIT_FINDINGS
    assert findings[0]["code"] == "discovery-unavailable" and "404" in findings[0]["message"]


def test_clients_add_checks_against_a_served_discovery_document(
        server: DocumentServer, keys: dict[str, SigningKey], tmp_path: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``clients add --provider-config ISSUER_URL`` fetches the provider's capabilities."""
    serve_provider(server, keys, response_types_supported=["code"])
    storage = f"sqlite:///{tmp_path}/op.db"
    status = main(["clients", "add", "--storage", storage, "--provider-config", server.issuer,
                   "--redirect-uri", "https://rp.example.com/cb", "--response-type",
                   "id_token"])
    assert status == EXIT_FINDINGS
    err = capsys.readouterr().err
    assert "response_types: none of the values is supported (supported: code)" in err
    status = main(["clients", "add", "--storage", storage, "--provider-config", server.issuer,
                   "--redirect-uri", "https://rp.example.com/cb", "--json"])
    assert status == EXIT_OK
    assert json.loads(capsys.readouterr().out)["response_types"] == ["code"]
    status = main(["clients", "add", "--storage", storage, "--provider-config",
                   f"http://127.0.0.1:{free_port()}", "--redirect-uri",
                   "https://rp.example.com/cb"])
    assert status == EXIT_FAILURE
