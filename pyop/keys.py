"""Signing keys for a provider: generate, save as PEM, load, publish as JWK.

Command line (``python -m pyop.keys``)::

    python -m pyop.keys [--alg RS256|PS256|ES256|EdDSA] [--bits 2048]
                        [--out signing_key.pem] [--kid KID | --thumbprint-kid] [--force]

writes a new private key as PEM (file mode 0600; an existing file is kept
unless ``--force``) and prints its public JWK (RFC 7517 4) on stdout: without a
``kid`` unless one is given (``--kid``) or the RFC 7638 thumbprint is asked for
(``--thumbprint-kid``), as the key will be published when loaded the same way.

RSA keys are written in the traditional OpenSSL format (``BEGIN RSA PRIVATE
KEY``), which ``jwkest.jwk.rsa_load`` reads, so the README's
``RSAKey(key=rsa_load('signing_key.pem'), use='sig', alg='RS256')`` works on
them; EC and Ed25519 keys are written as PKCS #8. A PEM file holds no alg:
load a PS256 key with ``load_signing_key(path, alg="PS256")``. Keys are made with ``cryptography``
(OpenSSL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .crypto import SigningKey

__all__ = [
    "SUPPORTED_KEY_ALGS",
    "generate_signing_key",
    "private_key_to_pem",
    "write_private_key",
    "load_signing_key",
    "public_jwk",
    "main",
    "RotationFiles",
    "rotation_files",
    "load_retired_keys",
    "load_rotation_keys",
]

#: The algorithms ``generate_signing_key`` and the command line can create keys for.
SUPPORTED_KEY_ALGS = ("RS256", "PS256", "ES256", "EdDSA")

#: Smallest RSA modulus accepted (RFC 7518 3.3: 2048 bits or larger).
MIN_RSA_BITS = 2048

GeneratedKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey]


def generate_signing_key(alg: str = "RS256", bits: int = 2048) -> GeneratedKey:
    """Generate a private key for ``alg``.

    :param alg: ``RS256`` or ``PS256`` (RSA, ``bits`` long, public exponent 65537;
        RFC 7518 3.3, 3.5), ``ES256`` (ECDSA on P-256, RFC 7518 3.4) or ``EdDSA``
        (Ed25519, RFC 8037 3.1); ``bits`` is ignored for the last two.
    :param bits: RSA modulus size; at least 2048 (RFC 7518 3.3, 3.5).
    :returns: a ``cryptography`` private key.
    :raises ValueError: unsupported ``alg`` or too small ``bits``.
    """
    if alg in ("RS256", "PS256"):
        if bits < MIN_RSA_BITS:
            raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError("unsupported alg {!r}: choose one of {}".format(
        alg, ", ".join(SUPPORTED_KEY_ALGS)))


def private_key_to_pem(key: GeneratedKey) -> bytes:
    """Serialise a private key as unencrypted PEM.

    RSA: traditional OpenSSL (PKCS #1) format, readable by ``jwkest.jwk.rsa_load``;
    EC and Ed25519: PKCS #8.
    """
    fmt = (serialization.PrivateFormat.TraditionalOpenSSL if isinstance(key, rsa.RSAPrivateKey)
           else serialization.PrivateFormat.PKCS8)
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def write_private_key(key: GeneratedKey, path: Union[str, os.PathLike[str]], *,
                      force: bool = False) -> None:
    """Write ``key`` as PEM to ``path``, readable by the owner only (mode 0600).

    The file is created exclusively, so an existing key is never replaced by
    accident; with ``force`` it is replaced atomically (write then rename).

    :raises FileExistsError: ``path`` exists and ``force`` is false.
    """
    target = Path(path)
    pem = private_key_to_pem(key)
    if not force:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_signing_key(path: Union[str, os.PathLike[str]], alg: Optional[str] = None,
                     kid: Optional[str] = None, *, thumbprint_kid: bool = False) -> SigningKey:
    """Load a PEM private key (RSA, EC or Ed25519; PKCS #1, SEC 1 or PKCS #8, unencrypted).

    :param alg: the JWS alg; defaults to RS256 for RSA (pass ``PS256`` for RSASSA-PSS),
        ES256/384/512 by curve and EdDSA for Ed25519.
    :param kid: key id; none by default (ID tokens then carry no ``kid`` header and
        the JWKS publishes the key without one, as pyop 3 did for a key without kid).
    :param thumbprint_kid: without ``kid``, use the key's RFC 7638 thumbprint as kid.
    :returns: a :class:`pyop.crypto.SigningKey`, accepted by ``Provider``.
    :raises ValueError: not a PEM private key of a supported type, or ``alg``
        does not fit the key.
    :raises OSError: the file cannot be read.
    """
    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not an unencrypted PEM private key") from e
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                            ed25519.Ed25519PrivateKey)):
        raise ValueError(f"{path}: only RSA, EC and Ed25519 keys are supported")
    try:
        signing_key = SigningKey(key, alg, kid)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return signing_key.with_thumbprint_kid() if thumbprint_kid else signing_key


def public_jwk(key: Union[SigningKey, GeneratedKey], alg: Optional[str] = None,
               kid: Optional[str] = None, *, thumbprint_kid: bool = False) -> dict[str, Any]:
    """The public JWK of a key, with ``use``, ``alg`` and its ``kid`` if any (RFC 7517 4).

    :param key: a :class:`~pyop.crypto.SigningKey` or a ``cryptography`` private key.
    :param alg: for a ``cryptography`` key: the alg (default by key type).
    :param kid: for a ``cryptography`` key: the key id (default: none).
    :param thumbprint_kid: for a key without kid, publish its RFC 7638 thumbprint as
        ``kid`` (a :class:`~pyop.crypto.SigningKey` passed in is not changed).
    """
    if not isinstance(key, SigningKey):
        key = SigningKey(key, alg, kid)
    jwk = key.to_jwk()
    if thumbprint_kid and key.kid is None:
        jwk["kid"] = key.thumbprint
    return jwk


class RotationFiles(NamedTuple):
    """The files of a key rotation (see :doc:`keys`), beside the active key's PEM file."""

    #: The active signing key (PEM).
    active: Path
    #: The next key, published before it signs (PEM): ``NAME.next.pem``.
    next: Path
    #: Public keys of retired keys, still published (JWK Set, RFC 7517 5):
    #: ``NAME.retired.jwks``.
    retired: Path


def rotation_files(path: Union[str, os.PathLike[str]]) -> RotationFiles:
    """The rotation files that go with the active key file ``path``.

    ``signing_key.pem`` goes with ``signing_key.next.pem`` and
    ``signing_key.retired.jwks`` in the same directory (``pyop keys rotate``
    writes them).
    """
    active = Path(path)
    stem = active.name[:-4] if active.name.endswith(".pem") else active.name
    return RotationFiles(active, active.with_name(stem + ".next.pem"),
                         active.with_name(stem + ".retired.jwks"))


def load_retired_keys(path: Union[str, os.PathLike[str]]) -> list[dict[str, Any]]:
    """The public JWKs of a retired keys file (a JWK Set); ``[]`` when it does not exist.

    :raises ValueError: not a JWK Set.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a JWK Set (JSON)") from e
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise ValueError(f"{path}: not a JWK Set")
    return keys


def load_rotation_keys(path: Union[str, os.PathLike[str]], alg: Optional[str] = None
                       ) -> tuple[SigningKey, list[Any]]:
    """The keys of a rotation kept in files by ``pyop keys rotate``.

    :param path: the active key's PEM file (see :func:`rotation_files`).
    :param alg: the alg of the active and next keys (default by key type; pass
        ``PS256`` for RSASSA-PSS keys).
    :returns: ``(signing_key, published_keys)`` for ``Provider(signing_key, ...,
        published_keys=published_keys)``: the next key (while one is published) and
        the retired public keys are published and accepted for ``id_token_hint``
        verification, never used to sign (:doc:`keys`, "Rotating a key").
        While a rotation is under way (more than one key), the active and next keys
        carry their RFC 7638 thumbprint as ``kid``, the kid the provider publishes them
        with (OIDC Core 10.1) and the one ``pyop keys rotate`` shows and retires them
        under; a lone active key has no ``kid``, as ``load_signing_key(path)`` loads it.
    :raises ValueError: a file holds no valid key.
    :raises OSError: the active key cannot be read.
    """
    files = rotation_files(path)
    active = load_signing_key(files.active, alg=alg)
    published: list[Any] = []
    if files.next.exists():
        published.append(load_signing_key(files.next, alg=alg))
    published.extend({name: value for name, value in jwk.items() if name != "retired_at"}
                     for jwk in load_retired_keys(files.retired))
    if published:
        active = active.with_thumbprint_kid()
        published = [key.with_thumbprint_kid() if isinstance(key, SigningKey) else key
                     for key in published]
    return active, published


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of the key generation command (``python -m pyop.keys``, also
    ``pyop keys generate``) to ``parser``."""
    parser.add_argument("--alg", choices=SUPPORTED_KEY_ALGS, default="RS256",
                        help="RS256 or PS256 (RSA), ES256 (ECDSA P-256) or EdDSA (Ed25519); "
                             "default RS256")
    parser.add_argument("--bits", type=int, default=2048,
                        help="RSA key size in bits (default 2048, at least 2048)")
    parser.add_argument("--out", default="signing_key.pem",
                        help="where to write the private key (default signing_key.pem)")
    kid = parser.add_mutually_exclusive_group()
    kid.add_argument("--kid", default=None,
                     help="key id to publish (default: none, as load_signing_key(path) "
                          "publishes the key)")
    kid.add_argument("--thumbprint-kid", action="store_true",
                     help="publish the RFC 7638 thumbprint as kid, as "
                          "load_signing_key(path, thumbprint_kid=True) does")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def run_generate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Carry out the key generation command parsed by ``parser`` (see
    :func:`add_generate_arguments`): write the private key, print the public JWK.

    :returns: the exit status: 0, or 1 when the file exists (without ``--force``) or
        cannot be written. A too small ``--bits`` is a usage error (``parser.error``).
    """
    if args.alg in ("RS256", "PS256") and args.bits < MIN_RSA_BITS:
        parser.error(f"--bits must be at least {MIN_RSA_BITS}")
    key = generate_signing_key(args.alg, args.bits)
    try:
        write_private_key(key, args.out, force=args.force)
    except FileExistsError:
        print(f"{args.out}: exists; not overwriting it (use --force)", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(json.dumps(public_jwk(key, args.alg, args.kid, thumbprint_kid=args.thumbprint_kid),
                     indent=2))
    print(f"private key written to {args.out}", file=sys.stderr)
    return 0


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m pyop.keys") -> int:
    """Command line entry point (``python -m pyop.keys``, the same as ``pyop keys
    generate``); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Generate an ID token signing key: writes the private key "
                               "as PEM (mode 0600) and prints the public JWK.")
    add_generate_arguments(parser)
    return run_generate(parser.parse_args(argv), parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
