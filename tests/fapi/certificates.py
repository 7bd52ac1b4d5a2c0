"""Client certificates for the mutual TLS tests, made with ``cryptography``: a small CA
and the certificates it issues, and self-signed ones."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from typing import Any, Optional, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyop.crypto import b64url_encode

_START = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
_END = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)

Subject = Union[str, x509.Name]


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def name(subject: Subject) -> x509.Name:
    return subject if isinstance(subject, x509.Name) else x509.Name.from_rfc4514_string(subject)


def certificate(subject: Subject, *, key: Optional[Any] = None,
                issuer: Optional[Authority] = None, dns: tuple[str, ...] = (),
                uris: tuple[str, ...] = (), ips: tuple[str, ...] = (),
                emails: tuple[str, ...] = (), client_auth: bool = True,
                ca: bool = False) -> tuple[x509.Certificate, Any]:
    """A certificate for ``subject`` (self-signed without ``issuer``) and its private key."""
    key = key or new_key()
    builder = (x509.CertificateBuilder()
               .subject_name(name(subject))
               .issuer_name(issuer.certificate.subject if issuer else name(subject))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(_START).not_valid_after(_END)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    sans: list[x509.GeneralName] = [x509.DNSName(value) for value in dns]
    sans += [x509.UniformResourceIdentifier(value) for value in uris]
    sans += [x509.IPAddress(ipaddress.ip_address(value)) for value in ips]
    sans += [x509.RFC822Name(value) for value in emails]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    elif not client_auth:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if client_auth and not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    signer = issuer.key if issuer else key
    return builder.sign(signer, hashes.SHA256()), key


class Authority:
    """A small CA."""

    def __init__(self, subject: Subject = "CN=Test CA,O=Example") -> None:
        self.certificate, self.key = certificate(subject, ca=True)

    def issue(self, subject: Subject, **kwargs: Any) -> tuple[x509.Certificate, Any]:
        return certificate(subject, issuer=self, **kwargs)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def rdn(*pairs: tuple[Any, str]) -> x509.RelativeDistinguishedName:
    return x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)
                                           for oid, value in pairs])


def thumbprint(cert: x509.Certificate) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(der(cert)).digest()).rstrip(b"=").decode()


def x5c_jwk(cert: x509.Certificate) -> dict[str, Any]:
    """The JWK of the certificate's public key, with the certificate as ``x5c``."""
    jwk = ec_jwk(cert.public_key())
    jwk["x5c"] = [base64.b64encode(der(cert)).decode("ascii")]
    return jwk


def ec_jwk(public_key: Any) -> dict[str, Any]:
    """The public JWK of a P-256 key (RFC 7518 6.2.1)."""
    numbers = public_key.public_numbers()
    return {"kty": "EC", "crv": "P-256",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big"))}


__all__ = ["thumbprint", "x5c_jwk", "ec_jwk", "Authority", "certificate", "pem", "der",
           "key_pem", "new_key", "name", "rdn", "NameOID"]
