"""``pyop keys``: generate signing keys, show public keys, rotate the active key.

Rotation follows :doc:`keys` ("Rotating a key") with the files of
:func:`pyop.keys.rotation_files`: ``publish`` writes the next key, ``switch`` makes it
active and keeps the old key's public part as retired, ``remove`` drops retired keys.
A host loads them with :func:`pyop.keys.load_rotation_keys`.

A PEM file holds no ``kid``: the rotation steps name each key by its RFC 7638 thumbprint,
the ``kid`` a provider publishes it with while several keys are published (OIDC Core
10.1); a lone active key is published without one, as pyop 3 published its key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

from cryptography.hazmat.primitives import serialization

from ..crypto import JWSError, SigningKey, VerificationKey
from ..exceptions import InvalidConfiguration
from ..key_set import KeySet
from ..keys import (
    SUPPORTED_KEY_ALGS,
    add_generate_arguments,
    generate_signing_key,
    load_retired_keys,
    load_rotation_keys,
    load_signing_key,
    rotation_files,
    run_generate,
    write_private_key,
)
from .output import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    format_time,
    print_json,
    print_table,
)

__all__: list[str] = []

#: Default of ``publish --min-age``/``switch --min-age``: how long the next key must have
#: been published before it signs (clients' JWK Set caches; a day is common).
DEFAULT_PUBLISH_AGE = 86400
#: Default of ``remove --min-age``: how long a retired key stays published (at least the
#: ID token lifetime, 3600 s by default).
DEFAULT_RETIRED_AGE = 3600


# -- show ------------------------------------------------------------------------------------

_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _public_keys_of_file(path: str, alg: Optional[str]) -> list[VerificationKey]:
    """The public keys in a PEM (private or public key) or JSON (JWK or JWK Set) file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as e:
        raise CommandError(f"{path}: no such file") from e
    except OSError as e:
        raise CommandError(f"{path}: {e.strerror or e}") from e
    stripped = data.lstrip()
    try:
        if stripped.startswith(b"{"):
            document = json.loads(data)
            jwks = document.get("keys") if "keys" in document else [document]
            if not isinstance(jwks, list):
                raise ValueError("not a JWK Set")
            result = []
            for jwk in jwks:
                if not isinstance(jwk, dict) or jwk.get("kty") == "oct":
                    raise ValueError("only public-key JWKs are supported")
                public = {k: v for k, v in jwk.items()
                          if k not in _PRIVATE_JWK_MEMBERS and k != "retired_at"}
                result.append(VerificationKey.from_key(public))
            return result
        if b"PUBLIC KEY-----" in data:
            public_key = serialization.load_pem_public_key(data)
            return [VerificationKey(public_key, alg)]  # type: ignore[arg-type]
        return [load_signing_key(path, alg=alg)]
    except CommandError:
        raise
    except (ValueError, TypeError, JWSError, UnicodeDecodeError) as e:
        raise CommandError(f"{path}: {e}") from e


def _show(args: argparse.Namespace) -> int:
    keys: list[VerificationKey] = []
    for path in args.files:
        keys.extend(_public_keys_of_file(path, args.alg))
    if args.thumbprint_kid or len(keys) > 1:
        # as a provider publishes them: with several keys, each needs a kid (OIDC Core
        # 10.1), and a key without one gets its RFC 7638 thumbprint
        keys = [key.with_thumbprint_kid() for key in keys]
    jwks = [key.to_jwk() for key in keys]
    if args.jwks or len(jwks) != 1:
        print_json({"keys": jwks})
    else:
        print_json(jwks[0])
    return EXIT_OK


# -- rotate ----------------------------------------------------------------------------------

def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _retired(path: Path) -> list[dict[str, Any]]:
    try:
        return load_retired_keys(path)
    except ValueError as e:
        raise CommandError(str(e)) from e


def _load(path: Path, alg: Optional[str]) -> SigningKey:
    try:
        # several keys are published during a rotation: each needs a kid (OIDC Core 10.1),
        # and the provider gives a key without one its thumbprint, as this does
        return load_signing_key(path, alg=alg, thumbprint_kid=True)
    except FileNotFoundError as e:
        raise CommandError(f"{path}: no such file") from e
    except (OSError, ValueError) as e:
        raise CommandError(str(e)) from e


def _published(args: argparse.Namespace) -> dict[str, Any]:
    """The JWK Set a provider publishes with the current files: that of
    ``Provider(*load_rotation_keys(KEY))`` (several keys: each with a kid, the thumbprint
    for those without one; a lone active key without kid, as pyop 3 published it)."""
    try:
        signing_key, published_keys = load_rotation_keys(args.key, alg=args.alg)
        return KeySet(signing_key, published_keys=published_keys).jwks()
    except FileNotFoundError as e:
        raise CommandError(f"{e.filename}: no such file") from e
    except (OSError, ValueError, InvalidConfiguration) as e:
        raise CommandError(str(e)) from e


def _age(path: Path) -> float:
    return time.time() - path.stat().st_mtime


def _rotate_status(args: argparse.Namespace) -> int:
    files = rotation_files(args.key)
    rows: list[list[Any]] = []
    if not files.active.exists():
        raise CommandError(f"{files.active}: no such file (create it with pyop keys generate)")
    active = _load(files.active, args.alg)
    rows.append(["active", active.kid, active.alg, format_time(files.active.stat().st_mtime),
                 str(files.active)])
    if files.next.exists():
        nxt = _load(files.next, args.alg)
        rows.append(["next", nxt.kid, nxt.alg, format_time(files.next.stat().st_mtime),
                     str(files.next)])
    for jwk in _retired(files.retired):
        rows.append(["retired", jwk.get("kid"), jwk.get("alg"),
                     format_time(jwk.get("retired_at")), str(files.retired)])
    if args.json:
        print_json([dict(zip(("state", "kid", "alg", "since", "file"), row)) for row in rows])
    else:
        print_table(rows, ["STATE", "KID", "ALG", "SINCE", "FILE"])
    return EXIT_OK


def _rotate_publish(args: argparse.Namespace) -> int:
    files = rotation_files(args.key)
    active = _load(files.active, args.alg)
    if files.next.exists() and not args.force:
        raise CommandError(f"{files.next}: a next key is already published "
                           "(switch to it, or --force to replace it)")
    alg = args.alg or active.alg
    if alg not in SUPPORTED_KEY_ALGS:
        raise CommandError(f"cannot generate a {alg} key: use --alg")
    try:
        key = generate_signing_key(alg, args.bits)
    except ValueError as e:
        raise CommandError(str(e), EXIT_USAGE) from e
    write_private_key(key, files.next, force=args.force)
    print(f"next key written to {files.next}; publish it and wait for clients' JWK Set "
          "caches to expire before pyop keys rotate switch", file=sys.stderr)
    print_json(_published(args))
    return EXIT_OK


def _rotate_switch(args: argparse.Namespace) -> int:
    files = rotation_files(args.key)
    if not files.next.exists():
        raise CommandError(f"{files.next}: no next key (pyop keys rotate publish first)")
    age = _age(files.next)
    if age < args.min_age and not args.force:
        raise CommandError(
            f"the next key was published {int(age)} s ago, less than --min-age "
            f"{args.min_age} s: clients may not have it yet (--force to switch anyway)")
    old = _load(files.active, args.alg)
    _load(files.next, args.alg)  # a broken next key must not replace a working one
    retired = [jwk for jwk in _retired(files.retired) if jwk.get("kid") != old.kid]
    retired.append(dict(old.to_jwk(), retired_at=int(time.time())))
    _write_text_atomically(files.retired, json.dumps({"keys": retired}, indent=2) + "\n")
    os.replace(files.next, files.active)
    print(f"{files.next} is now the active key; the public part of {old.kid} is kept in "
          f"{files.retired}; its private key is gone", file=sys.stderr)
    print_json(_published(args))
    return EXIT_OK


def _rotate_remove(args: argparse.Namespace) -> int:
    files = rotation_files(args.key)
    retired = _retired(files.retired)
    now = time.time()
    keep: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    for jwk in retired:
        wanted = not args.kid or jwk.get("kid") in args.kid
        old_enough = args.force or now - float(jwk.get("retired_at") or 0) >= args.min_age
        (removed if wanted and old_enough else keep).append(jwk)
    if args.kid and not any(jwk.get("kid") in args.kid for jwk in retired):
        raise CommandError("no retired key with kid " + ", ".join(args.kid))
    if removed:
        _write_text_atomically(files.retired, json.dumps({"keys": keep}, indent=2) + "\n")
    print(f"removed {len(removed)} retired key(s), {len(keep)} kept", file=sys.stderr)
    if files.active.exists():
        print_json(_published(args))
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Add ``keys`` to the sub-commands of the ``pyop`` parser."""
    keys = commands.add_parser("keys", help="generate, show and rotate signing keys",
                               description="Signing keys (see the keys documentation).")
    sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND")
    sub.required = True

    generate = sub.add_parser(
        "generate", help="generate a private key (PEM, mode 0600) and print its public JWK",
        description="Generate an ID token signing key: writes the private key as PEM "
                    "(mode 0600) and prints the public JWK.")
    add_generate_arguments(generate)
    generate.set_defaults(func=lambda args: run_generate(args, generate))

    show = sub.add_parser(
        "show", help="print the public JWK (or JWK Set) of key files",
        description="Print the public JWK of PEM keys (private or public) or JSON JWK / "
                    "JWK Set files; private members are never printed.")
    show.add_argument("files", nargs="+", metavar="FILE")
    show.add_argument("--alg", default=None,
                      help="alg of the keys (default by key type: RS256 for RSA)")
    show.add_argument("--jwks", action="store_true",
                      help="print a JWK Set even for a single key")
    show.add_argument("--thumbprint-kid", action="store_true",
                      help="give a key without kid its RFC 7638 thumbprint as kid, as "
                           "load_signing_key(path, thumbprint_kid=True) does (always done "
                           "for several keys, as a provider publishes them)")
    show.set_defaults(func=_show)

    rotate = sub.add_parser(
        "rotate", help="rotate the active key: status, publish, switch, remove",
        description="Rotate the active signing key in four steps: publish the next key, "
                    "switch to it (the old key's public part stays published as retired), "
                    "remove retired keys. Files: KEY, KEY.next.pem, KEY.retired.jwks; "
                    "a host loads them with pyop.keys.load_rotation_keys(KEY).")
    rsub = rotate.add_subparsers(dest="rotate_command", metavar="STEP")
    rsub.required = True
    steps = {
        "status": ("show the keys of the rotation", _rotate_status),
        "publish": ("generate the next key (published, not signing)", _rotate_publish),
        "switch": ("make the next key active; keep the old one's public part", _rotate_switch),
        "remove": ("stop publishing retired keys", _rotate_remove),
    }
    for name, (text, func) in steps.items():
        step = rsub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        step.add_argument("--key", default="signing_key.pem",
                          help="the active key's PEM file (default signing_key.pem)")
        step.add_argument("--alg", choices=SUPPORTED_KEY_ALGS, default=None,
                          help="alg of the active and next keys (default by key type; "
                               "PS256 for RSASSA-PSS keys)")
        if name == "status":
            step.add_argument("--json", action="store_true", help="print JSON")
        if name == "publish":
            step.add_argument("--bits", type=int, default=2048,
                              help="RSA key size (default 2048)")
            step.add_argument("--force", action="store_true",
                              help="replace an already published next key")
        if name in ("switch", "remove"):
            default = DEFAULT_PUBLISH_AGE if name == "switch" else DEFAULT_RETIRED_AGE
            step.add_argument(
                "--min-age", type=int, default=default, metavar="SECONDS",
                help=(f"refuse unless the next key was published at least this long ago "
                      f"(default {default})") if name == "switch" else
                     (f"only remove keys retired at least this long ago "
                      f"(default {default}, the default ID token lifetime)"))
            step.add_argument("--force", action="store_true", help="ignore --min-age")
        if name == "remove":
            step.add_argument("--kid", action="append", default=[],
                              help="remove only this key (repeatable)")
        step.set_defaults(func=func)
