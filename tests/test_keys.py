"""pyop.keys: the ``python -m pyop.keys`` command and the key helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey, VerificationKey, jws_sign, jws_verify
from pyop.keys import (
    generate_signing_key,
    load_signing_key,
    main,
    public_jwk,
    write_private_key,
)
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

REPO = Path(__file__).resolve().parent.parent
ISSUER = "https://op.example.com"


def make_provider(signing_key: Any) -> Provider:
    config = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
              "token_endpoint": ISSUER + "/token", "response_types_supported": ["code"]}
    authz = AuthorizationState(HashBasedSubjectIdentifierFactory("salt"))
    return Provider(signing_key, config, authz, {}, Userinfo({}))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyop.keys", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_writes_rsa_key_loadable_by_jwkest_and_usable_by_provider(tmp_path: Path) -> None:
    from jwkest.jwk import RSAKey, rsa_load

    out = tmp_path / "signing_key.pem"
    result = run_cli("--out", str(out), "--kid", "key-1")
    assert result.returncode == 0, result.stderr
    jwk = json.loads(result.stdout)
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and jwk["kid"] == "key-1"
    assert jwk["use"] == "sig" and "d" not in jwk
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")

    # exactly the README's line
    signing_key = RSAKey(key=rsa_load(str(out)), use="sig", alg="RS256")
    provider = make_provider(signing_key)
    published = provider.jwks["keys"][0]
    assert (published["n"], published["e"]) == (jwk["n"], jwk["e"])
    assert provider.provider_configuration["id_token_signing_alg_values_supported"] == ["RS256"]

    loaded = load_signing_key(out, kid="key-1")
    assert isinstance(loaded, SigningKey) and loaded.to_jwk() == jwk
    token = jws_sign({"iss": ISSUER}, loaded)
    assert jws_verify(token, [VerificationKey.from_jwk(jwk)]) == {"iss": ISSUER}
    assert make_provider(loaded).jwks == {"keys": [jwk]}


def test_cli_es256(tmp_path: Path) -> None:
    out = tmp_path / "ec.pem"
    result = run_cli("--alg", "ES256", "--out", str(out))
    assert result.returncode == 0, result.stderr
    jwk = json.loads(result.stdout)
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256"
    assert "d" not in jwk
    assert out.stat().st_mode & 0o777 == 0o600
    key = load_signing_key(out)
    assert key.alg == "ES256" and key.to_jwk() == jwk  # default kid: RFC 7638 thumbprint
    provider = make_provider(key)
    assert provider.jwks["keys"][0]["alg"] == "ES256"
    token = jws_sign({"sub": "x"}, key)
    assert jws_verify(token, [VerificationKey.from_jwk(jwk)]) == {"sub": "x"}


def test_cli_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "signing_key.pem"
    out.write_text("precious")
    assert main(["--out", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "precious"

    assert main(["--out", str(out), "--force"]) == 0
    jwk = json.loads(capsys.readouterr().out)
    assert load_signing_key(out).public_jwk["n"] == jwk["n"]
    assert out.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["signing_key.pem"]  # no temp file left


def test_cli_rejects_weak_rsa_keys(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--bits", "1024", "--out", str(tmp_path / "k.pem")])
    assert excinfo.value.code == 2
    assert not (tmp_path / "k.pem").exists()
    with pytest.raises(ValueError):
        generate_signing_key("RS256", 1024)
    with pytest.raises(ValueError):
        generate_signing_key("HS256")


def test_generate_and_public_jwk() -> None:
    rsa_key = generate_signing_key()
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 2048
    ec_key = generate_signing_key("ES256")
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    assert public_jwk(ec_key)["crv"] == "P-256"
    jwk = public_jwk(rsa_key, kid="k")
    assert jwk["kid"] == "k" and jwk["alg"] == "RS256" and "d" not in jwk
    assert public_jwk(SigningKey(rsa_key, kid="k")) == jwk


def test_load_signing_key_accepts_pkcs8_and_rejects_other_files(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = generate_signing_key()
    pkcs8 = tmp_path / "pkcs8.pem"
    pkcs8.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    assert load_signing_key(pkcs8, alg="PS256").alg == "PS256"

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ValueError):
        load_signing_key(garbage)
    with pytest.raises(ValueError):  # alg that does not fit the key
        load_signing_key(pkcs8, alg="ES256")

    ec_path = tmp_path / "ec.pem"
    write_private_key(generate_signing_key("ES256"), ec_path)
    with pytest.raises(FileExistsError):
        write_private_key(generate_signing_key("ES256"), ec_path)


@pytest.mark.parametrize("alg,kty", [("PS256", "RSA"), ("EdDSA", "OKP")])
def test_cli_ps256_and_eddsa(tmp_path: Path, capsys: pytest.CaptureFixture[str], alg: str,
                             kty: str) -> None:
    out = tmp_path / "key.pem"
    assert main(["--alg", alg, "--out", str(out), "--kid", f"{alg}-1"]) == 0
    jwk = json.loads(capsys.readouterr().out)
    assert jwk["kty"] == kty and jwk["alg"] == alg and jwk["kid"] == f"{alg}-1"
    assert jwk["use"] == "sig" and "d" not in jwk
    assert out.stat().st_mode & 0o777 == 0o600
    key = load_signing_key(out, alg=alg, kid=f"{alg}-1")  # a PEM file holds no alg
    assert key.to_jwk() == jwk
    token = jws_sign({"sub": "x"}, key)
    assert jws_verify(token, [VerificationKey.from_jwk(jwk)]) == {"sub": "x"}
    provider = make_provider(key)
    assert provider.jwks == {"keys": [jwk]}
    assert provider.provider_configuration["id_token_signing_alg_values_supported"] == [alg]


def test_generate_eddsa_and_load_default_alg(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = generate_signing_key("EdDSA")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert public_jwk(key)["crv"] == "Ed25519"
    path = tmp_path / "ed.pem"
    write_private_key(key, path)
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS #8
    assert load_signing_key(path).alg == "EdDSA"
    with pytest.raises(ValueError, match="does not fit"):
        load_signing_key(path, alg="RS256")
