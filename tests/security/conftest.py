"""Fixtures of the security battery; ``clock`` and ``make_provider`` come from tests/conftest.py."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pyop.crypto import SigningKey
from pyop.provider import Provider

from .fetch_servers import Listener, Server
from .helpers import security_clients, security_configuration

REFRESH_LIFETIME = 3600


@pytest.fixture(scope="session")
def signing_key(jwkest_signing_key: Any) -> SigningKey:
    """The key of tests/conftest.py, converted once (the conversion validates the RSA key,
    which costs about 0.2 s: too much to pay for each of hundreds of providers)."""
    return SigningKey.from_key(jwkest_signing_key)


@pytest.fixture
def make_op(make_provider: Callable[..., Provider], signing_key: SigningKey
            ) -> Callable[..., Provider]:
    """``make_provider`` with the battery's clients, configuration and converted key."""

    def factory(**kwargs: Any) -> Provider:
        kwargs.setdefault("signing_key", signing_key)
        kwargs.setdefault("client_db", security_clients())
        kwargs.setdefault("config", security_configuration())
        return make_provider(**kwargs)

    return factory


@pytest.fixture
def op(make_op: Callable[..., Provider]) -> Provider:
    """A provider issuing refresh tokens (no rotation), with the battery's clients."""
    return make_op(authz_kwargs={"refresh_token_lifetime": REFRESH_LIFETIME})


@pytest.fixture
def rotating_op(make_op: Callable[..., Provider]) -> Provider:
    """Refresh tokens always rotate: the threshold exceeds their lifetime."""
    return make_op(authz_kwargs={"refresh_token_lifetime": REFRESH_LIFETIME,
                                 "refresh_token_threshold": REFRESH_LIFETIME * 10})


@pytest.fixture
def plain_pkce_op(make_op: Callable[..., Provider]) -> Provider:
    return make_op(allow_plain_pkce=True)


@pytest.fixture
def no_refresh_op(make_op: Callable[..., Provider]) -> Provider:
    return make_op()


@pytest.fixture(scope="session")
def foreign_rsa_key() -> Any:
    """An RSA key that is not the provider's."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# -- local servers of the outbound request tests (fetch_servers.py) ---------------------------

@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    s = Listener()
    yield s
    s.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls_server(tls_files: tuple[Path, Path]) -> Iterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    s = Server(tls=context)
    yield s
    s.close()


@pytest.fixture
def trusting(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """A client TLS context trusting the test certificate (and nothing else)."""
    return ssl.create_default_context(cafile=str(tls_files[0]))
