"""Client secrets stored hashed (``Provider(hash_client_secrets=True)``)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any, Callable
from urllib.parse import quote_plus, urlencode

import pytest

from pyop import client_authentication
from pyop.client_authentication import (
    authenticate_client,
    client_secret_matches,
    hash_client_secret,
)
from pyop.crypto import SigningKey
from pyop.exceptions import InvalidClientAuthentication
from pyop.provider import Provider
from pyop.storage import MemoryStorage

REDIRECT_URI = "https://rp.example.com/callback"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pbkdf2(secret: str, iterations: int = 1000, salt: bytes = b"0123456789abcdef") -> str:
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${b64(salt)}${b64(digest)}"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


class TestHashing:
    def test_format_and_salt(self) -> None:
        first, second = hash_client_secret("s3cret"), hash_client_secret("s3cret")
        assert first != second  # a salt per hash
        for value in (first, second):
            kind, salt, digest = value.split("$")
            assert kind == "hmac_sha256"
            assert len(base64.urlsafe_b64decode(salt + "==")) == 16
            assert len(base64.urlsafe_b64decode(digest + "=")) == 32
            assert "s3cret" not in value

    def test_matches(self) -> None:
        secret = "Zm9vYmFy-é:%+ end"
        client = {"client_secret_hash": hash_client_secret(secret)}
        assert client_secret_matches(client, secret)
        for wrong in ("", secret + "x", secret[:-1], secret.upper(), " " + secret):
            assert not client_secret_matches(client, wrong)

    def test_plain_secret_still_verified(self) -> None:
        assert client_secret_matches({"client_secret": "abc"}, "abc")
        assert not client_secret_matches({"client_secret": "abc"}, "abd")
        assert not client_secret_matches({"client_secret": ""}, "")
        assert not client_secret_matches({}, "")
        assert not client_secret_matches({"client_secret": 5}, "5")

    def test_hash_takes_precedence(self) -> None:
        client = {"client_secret": "old", "client_secret_hash": hash_client_secret("new")}
        assert client_secret_matches(client, "new")
        assert not client_secret_matches(client, "old")

    def test_pbkdf2_for_host_provisioned_secrets(self) -> None:
        client = {"client_secret_hash": pbkdf2("correct horse")}
        assert client_secret_matches(client, "correct horse")
        assert not client_secret_matches(client, "correct horse battery")

    @pytest.mark.parametrize("stored", [
        5, "", "$", "hmac_sha256", "hmac_sha256$$", "hmac_sha256$AAAA$AAAA",
        "hmac_sha256$!!$!!", "md5$AAAA$AAAA", "hmac_sha256$AAAAAAAAAAAAAAAAAAAAAA$x$y",
        pbkdf2("pw").replace("$1000$", "$0$"), pbkdf2("pw").replace("$1000$", "$-5$"),
        pbkdf2("pw").replace("$1000$", "$1e3$"),
        pbkdf2("pw").replace("$1000$", "$99999999999999999999$"),
    ])
    def test_malformed_stored_hashes_never_match(self, stored: Any) -> None:
        client = {"client_secret_hash": stored, "client_secret": "pw"}
        # a malformed hash does not fall back to the plain secret
        assert not client_secret_matches(client, "pw")

    def test_surrogates_do_not_crash(self) -> None:
        assert not client_secret_matches({"client_secret_hash": hash_client_secret("a")},
                                         "\ud800")
        assert not client_secret_matches({"client_secret": "a"}, "\ud800")

    def test_constant_time_comparison(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[tuple[bytes, bytes]] = []
        real = client_authentication.hmac.compare_digest

        def spy(a: Any, b: Any) -> bool:
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(client_authentication.hmac, "compare_digest", spy)
        assert client_secret_matches({"client_secret_hash": hash_client_secret("x")}, "x")
        assert client_secret_matches({"client_secret": "x"}, "x")
        assert len(calls) == 2

    def test_cost_is_negligible(self) -> None:
        client = {"client_secret_hash": hash_client_secret("x" * 43)}
        start = time.perf_counter()
        for _ in range(2000):
            client_secret_matches(client, "x" * 43)
        assert time.perf_counter() - start < 1.0  # a few µs each

    def test_authenticate_client_with_hash(self) -> None:
        clients = {"c": {"client_secret_hash": hash_client_secret("pw"),
                         "token_endpoint_auth_method": "client_secret_post"}}
        assert authenticate_client(clients, {"client_id": "c", "client_secret": "pw"})[0] == "c"
        with pytest.raises(InvalidClientAuthentication):
            authenticate_client(clients, {"client_id": "c", "client_secret": "pW"})


# -- the provider ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted_key(jwkest_signing_key: Any) -> SigningKey:
    return SigningKey.from_key(jwkest_signing_key)


@pytest.fixture
def make_op(make_provider: Callable[..., Provider], converted_key: SigningKey
            ) -> Callable[..., Provider]:
    def factory(**kwargs: Any) -> Provider:
        kwargs.setdefault("client_db", {})
        return make_provider(signing_key=converted_key, **kwargs)

    return factory


def register(op: Provider, **metadata: Any) -> Any:
    return op.handle_client_registration_request(json.dumps(
        {"redirect_uris": [REDIRECT_URI], **metadata}))


def redeem(op: Provider, client_id: str, secret: str, method: str) -> Any:
    req = op.parse_authentication_request(urlencode({
        "client_id": client_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "openid"}))
    code = op.authorize(req, "alice")["code"]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if method == "client_secret_post":
        body.update(client_id=client_id, client_secret=secret)
        return op.handle_token_request(urlencode(body))
    return op.handle_token_request(urlencode(body), basic(client_id, secret))


class TestProvider:
    @pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
    def test_registration_stores_only_a_hash(self, make_op: Callable[..., Provider],
                                             method: str) -> None:
        op = make_op(hash_client_secrets=True)
        response = register(op, token_endpoint_auth_method=method)
        secret = response["client_secret"]
        assert len(secret) >= 43
        assert "client_secret_hash" not in response
        assert response["client_secret_expires_at"] == 0
        stored = op.clients[response["client_id"]]
        assert "client_secret" not in stored
        assert stored["client_secret_hash"].startswith("hmac_sha256$")
        assert secret not in json.dumps(stored)
        assert stored["client_secret_expires_at"] == 0
        assert "access_token" in redeem(op, response["client_id"], secret, method)
        with pytest.raises(InvalidClientAuthentication):
            redeem(op, response["client_id"], secret[:-1] + "A"
                   if secret[-1] != "A" else secret[:-1] + "B", method)

    def test_default_stores_the_secret(self, make_op: Callable[..., Provider]) -> None:
        op = make_op()
        response = register(op)
        stored = op.clients[response["client_id"]]
        assert stored["client_secret"] == response["client_secret"]
        assert "client_secret_hash" not in stored

    def test_public_clients_get_no_secret(self, make_op: Callable[..., Provider]) -> None:
        op = make_op(hash_client_secrets=True)
        response = register(op, token_endpoint_auth_method="none")
        assert "client_secret" not in response
        stored = op.clients[response["client_id"]]
        assert "client_secret" not in stored and "client_secret_hash" not in stored

    def test_with_a_storage_backend(self, make_op: Callable[..., Provider]) -> None:
        op = make_op(hash_client_secrets=True, client_db=MemoryStorage())
        response = register(op)
        assert "access_token" in redeem(op, response["client_id"], response["client_secret"],
                                        "client_secret_basic")

    def test_hashed_and_plain_clients_side_by_side(self, make_op: Callable[..., Provider]
                                                   ) -> None:
        op = make_op(hash_client_secrets=True)
        op.clients["static"] = {"client_id": "static", "client_secret": "static-secret",
                                "redirect_uris": [REDIRECT_URI]}
        op.clients["provisioned"] = {"client_id": "provisioned",
                                     "client_secret_hash": pbkdf2("human chosen"),
                                     "redirect_uris": [REDIRECT_URI]}
        assert "access_token" in redeem(op, "static", "static-secret", "client_secret_basic")
        assert "access_token" in redeem(op, "provisioned", "human chosen",
                                        "client_secret_basic")
