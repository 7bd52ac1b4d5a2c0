"""Client certificates for the mutual TLS tests, made with ``cryptography``: a small CA
and the certificates it issues, and self-signed ones."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any, Optional, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


__all__ = ["Authority", "certificate", "pem", "der", "key_pem", "new_key", "name", "rdn",
           "NameOID"]
