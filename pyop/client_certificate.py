"""Mutual TLS: client certificates for client authentication and bound access tokens.

RFC 8705 (OAuth 2.0 Mutual-TLS Client Authentication and Certificate-Bound Access
Tokens): 2.1 (``tls_client_auth``, PKI method: the certificate's subject DN or a SAN
matches the client's registered metadata), 2.2 (``self_signed_tls_client_auth``: the
certificate is one of the client's registered keys), 3 (access tokens bound to the
certificate's SHA-256 thumbprint, ``cnf`` ``x5t#S256``, RFC 7800 3.1), 3.2 (the
confirmation in introspection responses), 4 (public clients' refresh tokens bound too).

The TLS handshake is the host's: its TLS terminator (or web server) asks for a client
certificate, checks that the client holds its private key, and, for ``tls_client_auth``,
validates the chain against the CAs the deployment trusts (RFC 8705 2.1: "PKI
validation"). For ``self_signed_tls_client_auth`` it accepts any certificate (no chain
validation: the certificate itself is registered). The host then passes the certificate it
verified, as PEM text or DER bytes, to the provider (``client_certificate=``). This module
never sees a certificate the TLS layer did not verify, and performs no chain validation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .exceptions import InvalidAccessToken, InvalidClientCertificate

__all__ = [
    "ClientCertificate",
    "parse_client_certificate",
    "check_certificate_bound",
    "certificate_confirmation",
    "tls_client_auth_matches",
    "subject_dn_matches",
    "self_signed_certificate_matches",
    "check_tls_client_auth_metadata",
    "TLS_CLIENT_AUTH_METHODS",
    "TLS_CLIENT_AUTH_SUBJECT_MEMBERS",
    "MAX_CLIENT_CERTIFICATE_SIZE",
    "X5T_S256",
]

logger = logging.getLogger(__name__)

#: The client authentication methods of RFC 8705 2.
TLS_CLIENT_AUTH_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")

#: The client metadata of the PKI method (RFC 8705 2.1.2), exactly one of which a
#: ``tls_client_auth`` client registers.
TLS_CLIENT_AUTH_SUBJECT_MEMBERS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)

#: Longest certificate accepted from the host: bytes of DER, or characters of PEM. Real
#: client certificates are 1-2 KiB; this bounds the parsing of what a host passes on.
MAX_CLIENT_CERTIFICATE_SIZE = 16 * 1024

#: The confirmation method member of a certificate-bound token (RFC 8705 3.1).
X5T_S256 = "x5t#S256"

_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class ClientCertificate:
    """A client certificate the host's TLS layer verified, parsed once.

    :ivar der: the certificate, DER-encoded.
    :ivar certificate: the :class:`cryptography.x509.Certificate`.
    """

    __slots__ = ("der", "certificate", "_thumbprint")

    def __init__(self, der: bytes, certificate: x509.Certificate) -> None:
        self.der = der
        self.certificate = certificate
        self._thumbprint: Optional[str] = None

    @property
    def thumbprint(self) -> str:
        """``x5t#S256``: the base64url SHA-256 of the DER certificate (RFC 8705 3.1)."""
        if self._thumbprint is None:
            self._thumbprint = _b64url(hashlib.sha256(self.der).digest())
        return self._thumbprint

    @property
    def subject_dn(self) -> str:
        """The subject distinguished name as an RFC 4514 string."""
        return self.certificate.subject.rfc4514_string()

    def _san(self, kind: Any) -> list[Any]:
        try:
            extension = self.certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        except ValueError:  # a malformed extension: no usable names
            return []
        return list(extension.value.get_values_for_type(kind))

    @property
    def san_dns(self) -> list[str]:
        """The ``dNSName`` subject alternative names."""
        return [str(value) for value in self._san(x509.DNSName)]

    @property
    def san_uri(self) -> list[str]:
        """The ``uniformResourceIdentifier`` subject alternative names."""
        return [str(value) for value in self._san(x509.UniformResourceIdentifier)]

    @property
    def san_ip(self) -> list[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
        """The ``iPAddress`` subject alternative names (addresses; networks are skipped)."""
        return [value for value in self._san(x509.IPAddress)
                if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address))]

    @property
    def san_email(self) -> list[str]:
        """The ``rfc822Name`` subject alternative names."""
        return [str(value) for value in self._san(x509.RFC822Name)]

    def public_key_der(self) -> bytes:
        """The certificate's public key, DER SubjectPublicKeyInfo."""
        return self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def parse_client_certificate(value: Union[str, bytes, ClientCertificate]) -> ClientCertificate:
    """The certificate the host passed: PEM text (str or bytes) or DER bytes, at most
    :data:`MAX_CLIENT_CERTIFICATE_SIZE` long; an already parsed one is returned as is.

    :raises InvalidClientCertificate: anything else (401 ``invalid_client``).
    """
    if isinstance(value, ClientCertificate):
        return value
    if isinstance(value, str):
        try:
            value = value.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidClientCertificate("malformed client certificate") from None
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidClientCertificate("malformed client certificate")
    data = bytes(value)
    if not data or len(data) > MAX_CLIENT_CERTIFICATE_SIZE:
        raise InvalidClientCertificate("missing, malformed or oversized client certificate")
    try:
        if data.lstrip().startswith(_PEM_BEGIN.encode("ascii")):
            certificate = x509.load_pem_x509_certificate(data)
        else:
            certificate = x509.load_der_x509_certificate(data)
        der = certificate.public_bytes(serialization.Encoding.DER)
    except (ValueError, TypeError, binascii.Error):
        certificate = None
    if certificate is None:  # raised outside the except clause: no parser state kept
        raise InvalidClientCertificate("malformed client certificate")
    return ClientCertificate(der, certificate)


# -- RFC 8705 2.1: the PKI method -------------------------------------------------------------

def _normalise_value(value: Any) -> Any:
    """An attribute value prepared for comparison: case and insignificant spaces ignored
    (RFC 4518 2: NFKC, case folding, space handling), as caseIgnoreMatch does."""
    if isinstance(value, bytes):
        return value
    text = unicodedata.normalize("NFKC", str(value)).casefold()
    return " ".join(text.split())


def _normalised_dn(name: x509.Name) -> list[frozenset[tuple[str, Any]]]:
    return [frozenset((attribute.oid.dotted_string, _normalise_value(attribute.value))
                      for attribute in rdn)
            for rdn in name.rdns]


def _tidy_separators(text: str) -> str:
    """The DN string without unescaped spaces around the RDN and AVA separators (``,``,
    ``+``), which RFC 4514 3 does not allow but RFC 1779-style strings (``CN=a, O=b``, the
    form of many tools) have."""
    out: list[tuple[str, bool]] = []  # (character, escaped)
    escaped = False
    skipping = True  # leading spaces
    for char in text:
        if escaped:
            out.append((char, True))
            escaped = False
            continue
        if char == "\\":
            out.append((char, False))
            escaped = True
            skipping = False
            continue
        if char in ",+":
            while out and out[-1] == (" ", False):
                out.pop()
            out.append((char, False))
            skipping = True
            continue
        if skipping and char == " ":
            continue
        skipping = False
        out.append((char, False))
    while out and out[-1] == (" ", False):  # trailing spaces
        out.pop()
    return "".join(char for char, _ in out)


def _parse_dn(text: str) -> Optional[x509.Name]:
    if len(text) > 4096:
        return None
    for candidate in (text, _tidy_separators(text)):
        try:
            return x509.Name.from_rfc4514_string(candidate)
        except (ValueError, TypeError):
            continue
    return None


def subject_dn_matches(registered: str, certificate: ClientCertificate) -> bool:
    """Whether the certificate's subject is the DN ``registered`` (an RFC 4514 string;
    RFC 8705 2.1.2), compared as RFC 4517 4.2.15 ``distinguishedNameMatch`` does: the same
    RDNs in the same order, each with the same attribute types and values, the AVAs of a
    multi-valued RDN in any order, values compared ignoring case and insignificant spaces
    (RFC 4518) whatever their escaping in the string.

    Limits: every attribute value is compared with caseIgnoreMatch, also for the few
    attribute types whose matching rule is case-exact; values written as ``#hex`` (BER)
    compare as bytes, so they match only the same encoding."""
    name = _parse_dn(registered)
    if name is None or not name.rdns:
        return False
    return _normalised_dn(name) == _normalised_dn(certificate.certificate.subject)


def _ip_matches(registered: str, addresses: Iterable[Any]) -> bool:
    try:
        expected = ipaddress.ip_address(registered.strip())
    except ValueError:
        return False
    return any(address == expected for address in addresses)


def _email_matches(registered: str, emails: Iterable[str]) -> bool:
    """The local part compared exactly, the domain ignoring case (RFC 5321 2.4)."""
    local, at, domain = registered.rpartition("@")
    if not at:
        return False
    for email in emails:
        other_local, other_at, other_domain = email.rpartition("@")
        if other_at and other_local == local and other_domain.lower() == domain.lower():
            return True
    return False


def _registered_matchers(client: Mapping[str, Any]) -> list[str]:
    return [name for name in TLS_CLIENT_AUTH_SUBJECT_MEMBERS if client.get(name) is not None]


def tls_client_auth_matches(client: Mapping[str, Any], certificate: ClientCertificate) -> bool:
    """Whether the certificate is the one a ``tls_client_auth`` client registered (RFC 8705
    2.1.2): the one metadata member among :data:`TLS_CLIENT_AUTH_SUBJECT_MEMBERS` the
    client has matches the subject DN, or one of the SANs of its type.

    ``dNSName`` values compare ignoring ASCII case (a wildcard SAN matches only the same
    wildcard string), URIs exactly, IP addresses as addresses (``::1`` is ``0::1``),
    ``rfc822Name`` with the domain ignoring case. False for a client with none or more than
    one of the members (metadata a host set without registration's checks)."""
    matchers = _registered_matchers(client)
    if len(matchers) != 1:
        logger.warning("tls_client_auth client with %d subject matchers: refused",
                       len(matchers))
        return False
    name = matchers[0]
    registered = client[name]
    if not isinstance(registered, str) or not registered:
        return False
    if name == "tls_client_auth_subject_dn":
        return subject_dn_matches(registered, certificate)
    if name == "tls_client_auth_san_dns":
        expected = registered.lower()
        return any(hmac.compare_digest(dns.lower().encode("utf-8"), expected.encode("utf-8"))
                   for dns in certificate.san_dns)
    if name == "tls_client_auth_san_uri":
        return registered in certificate.san_uri
    if name == "tls_client_auth_san_ip":
        return _ip_matches(registered, certificate.san_ip)
    return _email_matches(registered, certificate.san_email)


# -- RFC 8705 2.2: the self-signed method -----------------------------------------------------

def _x5c_der(jwk: Mapping[str, Any]) -> Optional[bytes]:
    chain = jwk.get("x5c")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        return None
    try:  # x5c holds standard (not URL-safe) base64 DER (RFC 7517 4.7)
        return base64.b64decode(chain[0], validate=True)
    except (binascii.Error, ValueError):
        return None


def self_signed_certificate_matches(jwks: Optional[Iterable[Mapping[str, Any]]],
                                    certificate: ClientCertificate) -> bool:
    """Whether the certificate is one of the client's registered keys (RFC 8705 2.2.2):
    a JWK whose ``x5c`` first certificate is the certificate, or whose ``x5t#S256`` is its
    thumbprint; a JWK with neither matches a certificate holding the same public key.
    A JWK that names a certificate (``x5c``/``x5t#S256``) matches only that certificate."""
    if not jwks:
        return False
    public_key: Optional[bytes] = None
    for jwk in jwks:
        x5c = _x5c_der(jwk)
        x5t = jwk.get(X5T_S256)
        if x5c is not None or isinstance(x5t, str):
            if x5c is not None and hmac.compare_digest(x5c, certificate.der):
                return True
            if isinstance(x5t, str) and hmac.compare_digest(
                    x5t.encode("ascii", "replace"), certificate.thumbprint.encode("ascii")):
                return True
            continue
        key = getattr(jwk, "key", None)
        jwk_public = getattr(key, "public_key", None)
        if jwk_public is None:
            continue
        if public_key is None:
            public_key = certificate.public_key_der()
        try:
            jwk_der = jwk_public.public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        except (AttributeError, TypeError, ValueError):
            continue
        if hmac.compare_digest(jwk_der, public_key):
            return True
    return False


# -- registration (RFC 8705 2.1.2, 2.2.2, 3.4) ------------------------------------------------

def check_tls_client_auth_metadata(metadata: Mapping[str, Any]) -> Optional[str]:
    """What is wrong with a client's mutual-TLS metadata, or None.

    A ``tls_client_auth`` client registers exactly one of
    :data:`TLS_CLIENT_AUTH_SUBJECT_MEMBERS` (RFC 8705 2.1.2), a non-empty string: an RFC 4514
    DN, a DNS name, an absolute URI, an IP address or an email address. A
    ``self_signed_tls_client_auth`` client registers ``jwks`` or ``jwks_uri`` (2.2.2).
    ``tls_client_certificate_bound_access_tokens`` is a boolean (3.4)."""
    bound = metadata.get("tls_client_certificate_bound_access_tokens")
    if bound is not None and not isinstance(bound, bool):
        return "tls_client_certificate_bound_access_tokens must be a boolean"
    for name in TLS_CLIENT_AUTH_SUBJECT_MEMBERS:
        value = metadata.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            return f"{name} must be a non-empty string"
        problem = _matcher_problem(name, value)
        if problem:
            return f"{name}: {problem}"
    method = metadata.get("token_endpoint_auth_method")
    if method == "tls_client_auth":
        matchers = _registered_matchers(metadata)
        if len(matchers) != 1:
            return ("tls_client_auth needs exactly one of "
                    + ", ".join(TLS_CLIENT_AUTH_SUBJECT_MEMBERS))
    elif method == "self_signed_tls_client_auth":
        if metadata.get("jwks") is None and metadata.get("jwks_uri") is None:
            return "self_signed_tls_client_auth needs jwks or jwks_uri"
    return None


def _matcher_problem(name: str, value: str) -> Optional[str]:
    if name == "tls_client_auth_subject_dn":
        parsed = _parse_dn(value)
        return None if parsed is not None and parsed.rdns else "not an RFC 4514 DN"
    if name == "tls_client_auth_san_ip":
        try:
            ipaddress.ip_address(value.strip())
        except ValueError:
            return "not an IP address"
        return None
    if name == "tls_client_auth_san_uri":
        scheme, colon, _ = value.partition(":")
        return None if colon and scheme.isascii() and scheme[:1].isalpha() else (
            "not an absolute URI")
    if name == "tls_client_auth_san_email":
        return None if "@" in value.strip("@") else "not an email address"
    return None


# -- RFC 8705 3: certificate-bound access tokens ----------------------------------------------

def certificate_confirmation(client: Mapping[str, Any],
                             certificate: Optional[ClientCertificate], *,
                             bind_by_default: bool = False) -> Optional[dict[str, str]]:
    """The ``cnf`` of the tokens issued for a token request (RFC 8705 3.1), or None.

    Tokens are bound when the client presented a certificate and either registered
    ``tls_client_certificate_bound_access_tokens: true`` (3.4) or the provider binds every
    token issued over mutual TLS (``bind_by_default``). A client that registered ``false``
    is never bound."""
    if certificate is None:
        return None
    registered = client.get("tls_client_certificate_bound_access_tokens")
    if registered is True or (registered is None and bind_by_default):
        return {X5T_S256: certificate.thumbprint}
    return None


def check_certificate_bound(record: Mapping[str, Any],
                            client_certificate: Union[None, str, bytes, ClientCertificate]
                            ) -> None:
    """Refuse a certificate-bound access token presented without its certificate (RFC 8705
    3): the token's ``cnf`` ``x5t#S256`` must be the thumbprint of the certificate of the
    request. Tokens without that member pass.

    :raises InvalidAccessToken: no certificate, a malformed one, or another one (401
        ``invalid_token``, as RFC 8705 3 asks).
    """
    cnf = record.get("cnf")
    if cnf is None or not isinstance(cnf, Mapping) or X5T_S256 not in cnf:
        return
    expected = cnf[X5T_S256]
    if client_certificate is None:
        raise InvalidAccessToken(
            "the access token is bound to a client certificate: use mutual TLS")
    try:
        presented = parse_client_certificate(client_certificate).thumbprint
    except InvalidClientCertificate:
        presented = None
    if (presented is None or not isinstance(expected, str)
            or not hmac.compare_digest(presented.encode("ascii"),
                                       expected.encode("ascii", "replace"))):
        raise InvalidAccessToken(
            "the access token is bound to another client certificate")
