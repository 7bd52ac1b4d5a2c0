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
from typing import Any, Optional, Union

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyop.keys",
        description="Generate an ID token signing key: writes the private key as PEM "
                    "(mode 0600) and prints the public JWK.")
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
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
