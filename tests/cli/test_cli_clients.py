"""``pyop clients`` against SQLite (a temporary file) and a real Redis server.

``add`` must accept and refuse exactly what dynamic registration
(``Provider.handle_client_registration_request``, OIDC Dynamic Registration 2, 3) does;
secrets are issued as registration issues them and never printed unless asked.
"""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from storage.conftest import redis_server  # noqa: F401 - the session's Redis fixture

from pyop.authz_state import AuthorizationState
from pyop.cli import EXIT_FAILURE, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, main
from pyop.client_authentication import client_secret_matches
from pyop.crypto import SigningKey
from pyop.exceptions import InvalidClientRegistrationRequest
from pyop.keys import generate_signing_key
from pyop.provider import Provider
from pyop.storage import StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

REDIRECT_URI = "https://rp.example.com/cb"


@pytest.fixture(params=["sqlite", "redis"])
def storage_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/op.db"
        return
    server = request.getfixturevalue("redis_server")
    uri = server.url
    yield uri
    with StorageBase.from_uri(uri, collection="clients") as store:
        for key in list(store.keys()):
            store.delete(key)


def run(capsys: pytest.CaptureFixture[str], storage_uri: str, *argv: str
        ) -> tuple[int, str, str]:
    status = main(["clients", argv[0], "--storage", storage_uri, *argv[1:]])
    out, err = capsys.readouterr()
    return status, out, err


def stored(storage_uri: str, client_id: str, collection: str = "clients") -> Any:
    with StorageBase.from_uri(storage_uri, collection=collection) as store:
        return store.get(client_id)


def test_add_show_list_rotate_delete(storage_uri: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, storage_uri, "add", "--json", "--redirect-uri", REDIRECT_URI,
                           "--name", "My RP", "--client-id", "rp1")
    assert status == EXIT_OK, err
    added = json.loads(out)
    secret = added["client_secret"]  # shown once, on creation
    record = stored(storage_uri, "rp1")
    assert record["client_id"] == "rp1" and record["client_name"] == "My RP"
    # the defaults registration gives (OIDC Dynamic Registration 2)
    assert record["response_types"] == ["code"] and record["grant_types"] == [
        "authorization_code"]
    assert record["token_endpoint_auth_method"] == "client_secret_basic"
    assert record["client_secret_expires_at"] == 0 and record["client_id_issued_at"] > 0
    assert client_secret_matches(record, secret) and len(secret) >= 43
    assert "registration_access_token_hash" not in record

    status, out, _ = run(capsys, storage_uri, "show", "rp1")
    assert status == EXIT_OK
    assert secret not in out and "********" in out and "My RP" in out
    status, out, _ = run(capsys, storage_uri, "show", "rp1", "--json")
    assert json.loads(out)["client_secret"] == "********"
    status, out, _ = run(capsys, storage_uri, "show", "rp1", "--json", "--show-secret")
    assert json.loads(out)["client_secret"] == secret

    status, out, err = run(capsys, storage_uri, "add", "--redirect-uri", REDIRECT_URI)
    assert status == EXIT_OK
    assert "shown once" in err
    status, out, err = run(capsys, storage_uri, "list", "--json")
    assert status == EXIT_OK and err == ""  # no progress bar when stderr is not a terminal
    rows = json.loads(out)
    assert len(rows) == 2 and "rp1" in [row["client_id"] for row in rows]
    row = next(row for row in rows if row["client_id"] == "rp1")
    assert row == {"client_id": "rp1", "client_name": "My RP", "redirect_uris": [REDIRECT_URI],
                   "token_endpoint_auth_method": "client_secret_basic",
                   "client_id_issued_at": record["client_id_issued_at"],
                   "client_secret_expires_at": 0}
    assert secret not in out
    status, out, _ = run(capsys, storage_uri, "list")
    lines = out.splitlines()
    assert lines[0].split() == ["CLIENT_ID", "NAME", "REDIRECT_URIS", "AUTH_METHOD", "CREATED",
                                "SECRET_EXPIRES"]
    assert any(line.startswith("rp1 ") and "My RP" in line and "never" in line
               for line in lines)

    status, out, _ = run(capsys, storage_uri, "rotate-secret", "rp1")
    assert status == EXIT_OK
    new_secret = out.strip()
    assert new_secret != secret
    record = stored(storage_uri, "rp1")
    assert client_secret_matches(record, new_secret) and not client_secret_matches(record,
                                                                                   secret)

    status, _, _ = run(capsys, storage_uri, "delete", "rp1")
    assert status == EXIT_OK and stored(storage_uri, "rp1") is None
    for command in ("delete", "show", "rotate-secret"):
        status, _, err = run(capsys, storage_uri, command, "rp1")
        assert status == EXIT_FINDINGS and "rp1" in err, command


def test_hashed_secrets(storage_uri: str, capsys: pytest.CaptureFixture[str],
                        tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    status, out, _ = run(capsys, storage_uri, "add", "--redirect-uri", REDIRECT_URI,
                         "--client-id", "hashed", "--hash-secrets", "--secret-file",
                         str(secret_file))
    assert status == EXIT_OK
    secret = secret_file.read_text().strip()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret not in out  # written to the file, not printed
    record = stored(storage_uri, "hashed")
    assert "client_secret" not in record and record["client_secret_hash"].startswith(
        "hmac_sha256$")
    assert client_secret_matches(record, secret)
    # a hashed client stays hashed when its secret is rotated
    status, out, _ = run(capsys, storage_uri, "rotate-secret", "hashed", "--json",
                         "--expires-at", "1900000000")
    rotated = json.loads(out)
    record = stored(storage_uri, "hashed")
    assert "client_secret" not in record and client_secret_matches(record,
                                                                   rotated["client_secret"])
    assert record["client_secret_expires_at"] == 1900000000


def test_add_from_json_on_stdin(storage_uri: str, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = {"redirect_uris": [REDIRECT_URI], "client_name": "from json",
                "response_types": ["code", "code id_token"],
                "token_endpoint_auth_method": "client_secret_post",
                "unknown_member": "ignored as registration ignores it"}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(metadata)))
    # flags override members of the JSON
    status, out, err = run(capsys, storage_uri, "add", "--metadata", "-", "--json",
                           "--name", "flag wins")
    assert status == EXIT_OK, err
    client_id = json.loads(out)["client_id"]
    record = stored(storage_uri, client_id)
    assert record["client_name"] == "flag wins"
    assert record["grant_types"] == ["authorization_code", "implicit"]
    assert record["token_endpoint_auth_method"] == "client_secret_post"
    assert "unknown_member" not in record


def test_public_client_gets_no_secret(storage_uri: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, storage_uri, "add", "--json", "--redirect-uri",
                         "http://127.0.0.1/cb", "--auth-method", "none", "--client-id", "spa")
    assert status == EXIT_OK
    assert "client_secret" not in json.loads(out) and "client_secret" not in stored(
        storage_uri, "spa")
    status, _, err = run(capsys, storage_uri, "rotate-secret", "spa")
    assert status == EXIT_FINDINGS and "secret" in err


def registration_error(metadata: dict[str, Any], pyop3_defaults: bool = False) -> str:
    """What dynamic registration answers to ``metadata`` (the error description), by a
    provider with every response and subject type, or with pyop 3's default capabilities."""
    configuration: dict[str, Any] = {
        "issuer": "https://op.example.com",
        "authorization_endpoint": "https://op.example.com/auth",
        "token_endpoint": "https://op.example.com/token"}
    if not pyop3_defaults:
        configuration.update({
            "response_types_supported": ["code", "id_token", "id_token token",
                                         "code id_token", "code token", "code id_token token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"]})
    provider = Provider(
        generate_signing_key("ES256"), configuration,
        AuthorizationState(HashBasedSubjectIdentifierFactory("salt")), {}, Userinfo({}))
    with pytest.raises(InvalidClientRegistrationRequest) as excinfo:
        provider.handle_client_registration_request(metadata)
    return str(excinfo.value)


@pytest.mark.parametrize("metadata", [
    {"redirect_uris": ["http://rp.example.com/cb"]},  # http, not loopback
    {"redirect_uris": [REDIRECT_URI + "#fragment"]},
    {"redirect_uris": [REDIRECT_URI], "response_types": ["code"], "grant_types": ["implicit"]},
    {"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "magic"},
    {"redirect_uris": [REDIRECT_URI, "https://other.example.org/cb"],
     "subject_type": "pairwise"},
    {"client_name": "no redirect uris"},
])
def test_add_refuses_what_registration_refuses(
        storage_uri: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        metadata: dict[str, Any]) -> None:
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(metadata))
    status, out, err = run(capsys, storage_uri, "add", "--metadata", str(path))
    assert status == EXIT_FINDINGS
    assert registration_error(metadata) in err  # the same check, the same words
    assert out == ""
    with StorageBase.from_uri(storage_uri, collection="clients") as store:
        assert list(store.keys()) == []


def test_add_checks_against_a_provider_configuration(
        storage_uri: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "openid-configuration.json"
    config.write_text(json.dumps({
        "issuer": "https://op.example.com", "authorization_endpoint": "https://op.example.com/a",
        "token_endpoint": "https://op.example.com/t", "jwks_uri": "https://op.example.com/j",
        "registration_endpoint": "https://op.example.com/register",
        "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "HS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"]}))
    status, _, err = run(capsys, storage_uri, "add", "--provider-config", str(config),
                         "--redirect-uri", REDIRECT_URI, "--auth-method", "client_secret_post")
    assert status == EXIT_FINDINGS and "token_endpoint_auth_method" in err
    status, _, err = run(capsys, storage_uri, "add", "--provider-config", str(config),
                         "--redirect-uri", REDIRECT_URI, "--subject-type", "pairwise")
    assert status == EXIT_FINDINGS and "subject_type" in err
    status, out, err = run(capsys, storage_uri, "add", "--provider-config", str(config),
                           "--redirect-uri", REDIRECT_URI, "--json", "--client-id", "ok")
    assert status == EXIT_OK, err
    assert "registration_access_token" not in json.loads(out)


def ec_jwks() -> dict[str, Any]:
    return {"keys": [SigningKey(generate_signing_key("ES256"), kid="rp-key").to_jwk()]}


@pytest.mark.parametrize("metadata", [
    {"token_endpoint_auth_method": "client_secret_post"},
    {"token_endpoint_auth_method": "client_secret_jwt",
     "token_endpoint_auth_signing_alg": "HS256"},
    {"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256"},
    {"token_endpoint_auth_method": "none"},
    {"grant_types": ["authorization_code", "refresh_token", "client_credentials"]},
    {"response_types": ["code id_token token"]},
    {"subject_type": "public"},
    {"id_token_signed_response_alg": "EdDSA", "userinfo_signed_response_alg": "PS256"},
    {"request_object_signing_alg": "ES384"},
], ids=lambda metadata: "-".join(str(v) for v in metadata.values()))
def test_add_without_provider_config_accepts_everything_pyop_supports(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], metadata: dict[str, Any]) -> None:
    """A provider offers capabilities beyond pyop 3's defaults only when configured: without
    --provider-config, ``clients add`` configures every one, so that only the metadata's
    own consistency is checked."""
    storage = f"sqlite:///{tmp_path}/op.db"
    metadata = dict(metadata, redirect_uris=[REDIRECT_URI])
    if metadata.get("token_endpoint_auth_method") == "private_key_jwt":
        metadata["jwks"] = ec_jwks()
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(metadata))
    status, out, err = run(capsys, storage, "add", "--metadata", str(path), "--json",
                           "--client-id", "rp")
    assert status == EXIT_OK, err
    record = stored(storage, "rp")
    for name, value in metadata.items():
        if name != "jwks":
            assert record[name] == value, name
    # a provider with pyop 3's default capabilities refuses what is beyond them
    if metadata.get("token_endpoint_auth_method") not in (None, "client_secret_basic"):
        assert "token_endpoint_auth_method" in registration_error(
            {name: value for name, value in metadata.items()
             if not name.startswith("token_endpoint_auth_signing")}, pyop3_defaults=True)


def test_add_refuses_an_existing_client_id(storage_uri: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, storage_uri, "add", "--redirect-uri", REDIRECT_URI,
               "--client-id", "dup")[0] == EXIT_OK
    first = stored(storage_uri, "dup")
    status, out, err = run(capsys, storage_uri, "add", "--redirect-uri",
                           "https://other.example.com/cb", "--client-id", "dup")
    assert status == EXIT_FINDINGS and "exists" in err and out == ""
    assert stored(storage_uri, "dup") == first


def test_collection_and_db_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/op.db"
    status = main(["clients", "add", "--storage", uri, "--db-name", "satosa", "--collection",
                   "rps", "--redirect-uri", REDIRECT_URI, "--client-id", "c"])
    capsys.readouterr()
    assert status == EXIT_OK
    with StorageBase.from_uri(uri, db_name="satosa", collection="rps") as store:
        assert store.get("c")["redirect_uris"] == [REDIRECT_URI]
    assert stored(uri, "c") is None  # not in the default collection
    assert main(["clients", "show", "c", "--storage", uri, "--db-name", "satosa",
                 "--collection", "rps"]) == EXIT_OK


def test_storage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYOP_STORAGE_URI", raising=False)
    assert main(["clients", "list"]) == EXIT_USAGE
    assert "--storage" in capsys.readouterr().err
    assert main(["clients", "list", "--storage", "bogus://x"]) == EXIT_USAGE
    # nothing listens on port 1: a storage failure, and the URI's password is not printed
    status = main(["clients", "list", "--storage", "redis://:hunter2@127.0.0.1:1/0"])
    err = capsys.readouterr().err
    assert status == EXIT_FAILURE
    assert "hunter2" not in err


def test_storage_uri_from_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("PYOP_STORAGE_URI", uri)
    assert main(["clients", "add", "--redirect-uri", REDIRECT_URI, "--client-id", "e"]) == 0
    capsys.readouterr()
    assert stored(uri, "e") is not None


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_list_draws_a_progress_bar_on_a_terminal(storage_uri: str,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with StorageBase.from_uri(storage_uri, collection="clients") as store:
        for n in range(25):
            store.set(f"c{n:02}", {"client_id": f"c{n:02}", "redirect_uris": [REDIRECT_URI]})
    terminal = TTY()
    monkeypatch.setattr("sys.stderr", terminal)
    status = main(["clients", "list", "--storage", storage_uri, "--json"])
    assert status == EXIT_OK
    rows = json.loads(capsys.readouterr().out)  # stdout stays clean JSON
    assert [row["client_id"] for row in rows] == [f"c{n:02}" for n in range(25)]
    assert "25/25 clients" in terminal.getvalue()
