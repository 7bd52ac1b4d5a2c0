"""The ``pyop`` command: keys, entry points, output (clients and check: tests/cli/).

Runs ``pyop.cli.main(argv)`` in-process, and the command as a subprocess once
(``python -m pyop``, the console script of setup.py, ``python -m pyop.keys``).
"""

from __future__ import annotations

import ast
import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pyop.authz_state import AuthorizationState
from pyop.cli import EXIT_FAILURE, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, main
from pyop.cli.output import Progress, print_table
from pyop.crypto import JWSError, SigningKey, VerificationKey, jws_sign, jws_verify
from pyop.keys import (
    generate_signing_key,
    load_rotation_keys,
    load_signing_key,
    rotation_files,
    write_private_key,
)
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# -- entry points ---------------------------------------------------------------------------

def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_python_m_pyop_help_as_subprocess() -> None:
    result = subprocess.run([sys.executable, "-m", "pyop", "--help"], capture_output=True,
                            text=True, cwd=ROOT, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m pyop")
    for command in ("keys", "clients", "check"):
        assert command in result.stdout
    assert "Exit status" in result.stdout


def test_python_m_pyop_usage_error_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "pyop", "frobnicate"], capture_output=True,
                            text=True, cwd=ROOT, env=subprocess_env(), timeout=60)
    assert result.returncode == EXIT_USAGE
    assert "invalid choice" in result.stderr


def console_scripts() -> list[str]:
    """The console_scripts entry points declared in setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            return list(ast.literal_eval(node.value)["console_scripts"])
    raise AssertionError("setup.py declares no entry_points")


def test_console_script_runs(tmp_path: Path) -> None:
    scripts = console_scripts()
    assert scripts == ["pyop = pyop.cli:main"]
    name, _, value = (part.strip() for part in scripts[0].partition("="))
    # what the launcher pip writes does: load the entry point, sys.exit(its result)
    launcher = ("import sys; from importlib.metadata import EntryPoint; "
                f"sys.argv[0] = {name!r}; "
                f"sys.exit(EntryPoint({name!r}, {value!r}, 'console_scripts').load()())")
    out = tmp_path / "k.pem"
    result = subprocess.run([sys.executable, "-c", launcher, "keys", "generate", "--alg",
                             "ES256", "--out", str(out)], capture_output=True, text=True,
                            cwd=ROOT, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["crv"] == "P-256"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    help_result = subprocess.run([sys.executable, "-c", launcher, "--help"],
                                 capture_output=True, text=True, cwd=ROOT,
                                 env=subprocess_env(), timeout=60)
    assert help_result.returncode == 0
    assert help_result.stdout.startswith("usage: pyop ")


def test_python_m_pyop_keys_still_works(tmp_path: Path) -> None:
    out = tmp_path / "signing_key.pem"
    result = subprocess.run([sys.executable, "-m", "pyop.keys", "--out", str(out), "--kid",
                             "k1"], capture_output=True, text=True, cwd=ROOT,
                            env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    jwk = json.loads(result.stdout)
    assert jwk["kid"] == "k1" and jwk["alg"] == "RS256" and not PRIVATE_MEMBERS & set(jwk)
    assert load_signing_key(out).public_jwk["n"] == jwk["n"]
    again = subprocess.run([sys.executable, "-m", "pyop.keys", "--out", str(out)],
                           capture_output=True, text=True, cwd=ROOT, env=subprocess_env(),
                           timeout=60)
    assert again.returncode == 1 and "--force" in again.stderr
    usage = subprocess.run([sys.executable, "-m", "pyop.keys", "--help"], capture_output=True,
                           text=True, cwd=ROOT, env=subprocess_env(), timeout=60)
    assert usage.stdout.startswith("usage: python -m pyop.keys")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == EXIT_USAGE
    assert "required" in capsys.readouterr().err


def test_exit_codes_are_distinct() -> None:
    assert (EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILURE) == (0, 1, 2, 3)


# -- keys generate / show -------------------------------------------------------------------

@pytest.mark.parametrize("alg,kty", [("RS256", "RSA"), ("PS256", "RSA"), ("ES256", "EC"),
                                     ("EdDSA", "OKP")])
def test_keys_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str], alg: str,
                       kty: str) -> None:
    out = tmp_path / "key.pem"
    status, stdout, stderr = run(capsys, "keys", "generate", "--alg", alg, "--out", str(out))
    assert status == EXIT_OK, stderr
    jwk = json.loads(stdout)
    assert jwk["kty"] == kty and jwk["alg"] == alg and jwk["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(jwk)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # published as load_signing_key(path) loads it: without kid (as pyop 3 published a key)
    assert "kid" not in jwk and load_signing_key(out, alg=alg).kid is None
    assert load_signing_key(out, alg=alg).to_jwk() == jwk


def test_keys_generate_kid_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "thumb.pem"
    status, stdout, _ = run(capsys, "keys", "generate", "--alg", "ES256", "--out", str(out),
                            "--thumbprint-kid")
    assert status == EXIT_OK
    key = load_signing_key(out, thumbprint_kid=True)
    assert json.loads(stdout)["kid"] == key.kid == key.thumbprint
    status, stdout, _ = run(capsys, "keys", "generate", "--alg", "ES256", "--out",
                            str(tmp_path / "named.pem"), "--kid", "k1")
    assert status == EXIT_OK and json.loads(stdout)["kid"] == "k1"
    with pytest.raises(SystemExit) as excinfo:  # one or the other
        main(["keys", "generate", "--kid", "k1", "--thumbprint-kid", "--out",
              str(tmp_path / "both.pem")])
    assert excinfo.value.code == EXIT_USAGE


def test_keys_generate_refuses_to_overwrite_and_small_rsa(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "key.pem"
    out.write_text("keep me")
    status, _, stderr = run(capsys, "keys", "generate", "--out", str(out))
    assert status == EXIT_FINDINGS and "--force" in stderr
    assert out.read_text() == "keep me"
    with pytest.raises(SystemExit) as excinfo:
        main(["keys", "generate", "--bits", "1024", "--out", str(tmp_path / "small.pem")])
    assert excinfo.value.code == EXIT_USAGE
    assert not (tmp_path / "small.pem").exists()


def test_keys_show_never_prints_private_parts(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pem = tmp_path / "key.pem"
    key = SigningKey(generate_signing_key("ES256"))
    write_private_key(key.private_key, pem)  # type: ignore[arg-type]
    status, stdout, _ = run(capsys, "keys", "show", str(pem))
    assert status == EXIT_OK
    assert json.loads(stdout) == key.to_jwk() and "kid" not in key.to_jwk()
    status, stdout, _ = run(capsys, "keys", "show", "--thumbprint-kid", str(pem))
    assert json.loads(stdout) == dict(key.to_jwk(), kid=key.thumbprint)

    # a JWK Set with private members (as some tools export it): only public parts shown;
    # with several keys, one without kid gets its thumbprint (OIDC Core 10.1)
    private_jwk = dict(key.to_jwk(), d="c2VjcmV0", kid="k-priv")
    jwks_file = tmp_path / "keys.json"
    jwks_file.write_text(json.dumps({"keys": [private_jwk, key.to_jwk()]}))
    status, stdout, _ = run(capsys, "keys", "show", str(jwks_file))
    assert status == EXIT_OK
    shown = json.loads(stdout)["keys"]
    assert [k["kid"] for k in shown] == ["k-priv", key.thumbprint]
    assert "c2VjcmV0" not in stdout and not any(PRIVATE_MEMBERS & set(k) for k in shown)

    status, stdout, _ = run(capsys, "keys", "show", "--jwks", str(pem))
    assert json.loads(stdout) == {"keys": [key.to_jwk()]}


def test_keys_show_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, stderr = run(capsys, "keys", "show", str(tmp_path / "missing.pem"))
    assert status == EXIT_FINDINGS and "no such file" in stderr
    symmetric = tmp_path / "oct.json"
    symmetric.write_text(json.dumps({"kty": "oct", "k": "c2VjcmV0c2VjcmV0"}))
    status, stdout, stderr = run(capsys, "keys", "show", str(symmetric))
    assert status == EXIT_FINDINGS and stdout == ""
    assert "c2VjcmV0c2VjcmV0" not in stderr


# -- keys rotate ----------------------------------------------------------------------------

def test_rotation_files_names(tmp_path: Path) -> None:
    files = rotation_files(tmp_path / "signing_key.pem")
    assert files.next == tmp_path / "signing_key.next.pem"
    assert files.retired == tmp_path / "signing_key.retired.jwks"


def test_keys_rotate_whole_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/keys.rst "Rotating a key": publish, switch, retire, remove."""
    active_path = tmp_path / "signing_key.pem"
    key = "--key=" + str(active_path)
    assert run(capsys, "keys", "generate", "--out", str(active_path))[0] == EXIT_OK
    # alone, the key is published without kid (as pyop 3 published its key)
    status, stdout, _ = run(capsys, "keys", "rotate", "status", key, "--json")
    alone = load_signing_key(active_path)
    assert provider_jwks(active_path) == {"keys": [alone.to_jwk()]}
    # during a rotation, a provider publishes each key under its RFC 7638 thumbprint
    # (OIDC Core 10.1): the kid the rotation steps show and retire it under
    old = load_signing_key(active_path, thumbprint_kid=True)
    assert json.loads(stdout)[0]["kid"] == old.kid == alone.thumbprint
    token = jws_sign({"iss": "https://op.example.com", "aud": "rp"}, old)

    # 1. publish the next key: published, not signing
    status, stdout, _ = run(capsys, "keys", "rotate", "publish", key)
    assert status == EXIT_OK
    files = rotation_files(active_path)
    assert stat.S_IMODE(files.next.stat().st_mode) == 0o600
    nxt = load_signing_key(files.next, thumbprint_kid=True)
    assert [k["kid"] for k in json.loads(stdout)["keys"]] == [old.kid, nxt.kid]
    assert json.loads(stdout) == provider_jwks(active_path)
    signing, published = load_rotation_keys(active_path)
    assert signing.kid == old.kid and [k.kid for k in published] == [nxt.kid]
    status, status_out, _ = run(capsys, "keys", "rotate", "status", key, "--json")
    assert [(row["state"], row["kid"]) for row in json.loads(status_out)] == [
        ("active", old.kid), ("next", nxt.kid)]
    # a second publish does not replace the published next key
    status, _, stderr = run(capsys, "keys", "rotate", "publish", key)
    assert status == EXIT_FINDINGS and "already" in stderr

    # 2. switch: refused until clients had time to fetch the next key
    status, _, stderr = run(capsys, "keys", "rotate", "switch", key)
    assert status == EXIT_FINDINGS and "--min-age" in stderr
    assert load_signing_key(active_path).thumbprint == old.kid
    past = time.time() - 2 * 86400
    os.utime(files.next, (past, past))
    status, stdout, _ = run(capsys, "keys", "rotate", "switch", key)
    assert status == EXIT_OK
    assert not files.next.exists()
    signing, published = load_rotation_keys(active_path)
    assert signing.kid == nxt.kid
    # 3. retired: only the public part of the old key is kept, and it still verifies
    retired_text = files.retired.read_text()
    retired = json.loads(retired_text)["keys"]
    assert [k["kid"] for k in retired] == [old.kid] and not PRIVATE_MEMBERS & set(retired[0])
    verification = [VerificationKey.from_key(k) for k in published]
    assert jws_verify(token, verification)["aud"] == "rp"
    assert [k["kid"] for k in json.loads(stdout)["keys"]] == [nxt.kid, old.kid]
    assert json.loads(stdout) == provider_jwks(active_path)

    status, stdout, _ = run(capsys, "keys", "rotate", "status", key, "--json")
    assert [(row["state"], row["kid"]) for row in json.loads(stdout)] == [
        ("active", nxt.kid), ("retired", old.kid)]

    # 4. remove: not before the ID token lifetime has passed, unless forced
    status, _, _ = run(capsys, "keys", "rotate", "remove", key)
    assert status == EXIT_OK and json.loads(files.retired.read_text())["keys"]
    status, _, stderr = run(capsys, "keys", "rotate", "remove", key, "--kid", "unknown")
    assert status == EXIT_FINDINGS
    status, stdout, _ = run(capsys, "keys", "rotate", "remove", key, "--min-age", "0")
    assert status == EXIT_OK
    # alone again: published without kid, as the provider does
    assert json.loads(stdout)["keys"] == [load_signing_key(active_path).to_jwk()]
    assert json.loads(stdout) == provider_jwks(active_path)
    signing, published = load_rotation_keys(active_path)
    assert published == [] and signing.kid is None
    with pytest.raises(JWSError, match="verification failed"):  # the old key is gone
        jws_verify(token, [VerificationKey.from_key(signing)])


def provider_jwks(active_path: Path) -> dict[str, Any]:
    """The JWK Set of a provider built on the rotation files, as docs/cli.rst builds it."""
    signing_key, published_keys = load_rotation_keys(active_path)
    provider = Provider(
        signing_key,
        {"issuer": "https://op.example.com",
         "authorization_endpoint": "https://op.example.com/authorization",
         "token_endpoint": "https://op.example.com/token"},
        AuthorizationState(HashBasedSubjectIdentifierFactory("salt")), {}, Userinfo({}),
        published_keys=published_keys)
    return provider.jwks


def test_keys_rotate_ps256_keeps_its_alg(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    active_path = tmp_path / "ps.pem"
    run(capsys, "keys", "generate", "--alg", "PS256", "--out", str(active_path))
    status, stdout, _ = run(capsys, "keys", "rotate", "publish", "--key", str(active_path),
                            "--alg", "PS256")
    assert status == EXIT_OK
    assert [k["alg"] for k in json.loads(stdout)["keys"]] == ["PS256", "PS256"]
    signing, published = load_rotation_keys(active_path, alg="PS256")
    assert signing.alg == "PS256" and published[0].alg == "PS256"


def test_keys_rotate_without_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = "--key=" + str(tmp_path / "none.pem")
    for step in ("status", "publish", "switch"):
        status, stdout, stderr = run(capsys, "keys", "rotate", step, key)
        assert status == EXIT_FINDINGS, step
        assert "none" in stderr


# -- output ---------------------------------------------------------------------------------

class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    tty = TTY()
    with Progress(4, "clients", stream=tty) as progress:
        for _ in range(4):
            progress.update()
    text = tty.getvalue()
    assert "[" + "#" * 30 + "] 4/4 clients" in text
    assert text.endswith("\r\033[K")  # erased at the end
    plain = io.StringIO()
    with Progress(4, "clients", stream=plain) as progress:
        progress.update(4)
    assert plain.getvalue() == ""


def test_table_pads_columns() -> None:
    out = io.StringIO()
    rows: list[list[Any]] = [["a", ["x", "y"], None], ["long value", "b", 3]]
    print_table(rows, ["ONE", "TWO", "N"], file=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "ONE         TWO  N"
    assert lines[2] == "a           x y"
    assert lines[3] == "long value  b    3"


def test_keys_rotate_publish_refuses_small_rsa(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    active_path = tmp_path / "k.pem"
    run(capsys, "keys", "generate", "--out", str(active_path))
    status, stdout, stderr = run(capsys, "keys", "rotate", "publish", "--key", str(active_path),
                                 "--bits", "1024")
    assert status == EXIT_USAGE and "2048" in stderr and stdout == ""
    assert not rotation_files(active_path).next.exists()
