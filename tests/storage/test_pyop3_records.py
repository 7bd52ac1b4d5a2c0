"""Records written by pyop 3.5.0 itself keep working after the upgrade.

``tests/compat/data/pyop3_{mongo,redis}.json`` are the raw records pyop 3.5.0 wrote
(``tests/compat/make_pyop3_dataset.py`` regenerates them, run with pyop 3): two clients
registered dynamically (one public, one pairwise), three users authorized with each (one
with a custom ``sub``), codes and tokens. They are loaded into mongomock and into a real
Redis server, and this library, created with ``StorageBase.from_uri`` as SATOSA does,
must: authenticate and authorize those clients, issue every user the ``sub`` pyop 3
issued, refuse pyop 3's in-flight codes and tokens cleanly, and convert everything with
``python -m pyop.migrate`` (dry run, real run, idempotent).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import pytest

from pyop import migrate
from pyop.authz_state import AuthorizationState
from pyop.crypto import SigningKey
from pyop.exceptions import InvalidSubjectIdentifier
from pyop.provider import Provider
from pyop.storage import MongoWrapper, RedisWrapper, StorageBase
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory, SubjectIdentifierFactory
from pyop.userinfo import Userinfo

from .provider_support import outcome

DATA = Path(__file__).parent.parent / "compat" / "data"
MONGO = json.loads((DATA / "pyop3_mongo.json").read_text())
REDIS = json.loads((DATA / "pyop3_redis.json").read_text())
ISSUER = "https://op.example.com"
#: The users of the dataset (make_pyop3_dataset.USERS).
USERS = {
    "alice": {"name": "Alice Liddell", "email": "alice@example.com"},
    "bob": {"name": "Bob Builder", "email": "bob@example.com", "sub": "bob-custom-sub"},
    "carol": {"name": "Carol Danvers", "email": "carol@example.com"},
}
COLLECTIONS = ("authz_codes", "access_tokens", "refresh_tokens", "subject_identifiers")
#: Redis database index of these tests (pyop 3: db_name is the index), emptied by them.
REDIS_DB = 9


class Pyop3Formula(SubjectIdentifierFactory):
    """pyop 3.5.0's formula (OIDC Core 8.1 suggests it): SHA-256 hex of
    ``[sector ||] user_id || salt``. The pairwise ``sub`` is computed, never read from
    storage, so it is the factory's formula that keeps it; public ones are pinned."""

    def __init__(self, salt: str) -> None:
        self.salt = salt

    def create_public_identifier(self, user_id: str) -> str:
        return hashlib.sha256((user_id + self.salt).encode()).hexdigest()

    def create_pairwise_identifier(self, user_id: str, sector_identifier: str) -> str:
        return hashlib.sha256((sector_identifier + user_id + self.salt).encode()).hexdigest()


# -- loading the raw records -------------------------------------------------------------------


def _mongo_value(value: Any) -> Any:
    """Extended JSON of the dump -> BSON values (a fresh ObjectId for each ``$oid``)."""
    import bson

    if isinstance(value, dict):
        if set(value) == {"$oid"}:
            return bson.ObjectId()
        if set(value) == {"$date"}:
            return datetime.datetime.fromisoformat(value["$date"].rstrip("Z"))
        return {k: _mongo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mongo_value(v) for v in value]
    return value


def load_mongo(database: Any, shift: float) -> None:
    """pyop 3's collections, indexes and documents; dates moved ``shift`` seconds later
    (so that the records are as old as when they were dumped)."""
    for name, collection in MONGO["collections"].items():
        coll = database[name]
        for index_name, spec in collection["indexes"].items():
            if index_name == "_id_":
                continue
            options = {k: v for k, v in spec.items() if k not in ("key", "v")}
            coll.create_index([tuple(k) for k in spec["key"]], name=index_name, **options)
        for document in collection["documents"]:
            doc = _mongo_value(document)
            doc["last_modified"] += datetime.timedelta(seconds=shift)
            coll.insert_one(doc)


@pytest.fixture
def mongo(monkeypatch: pytest.MonkeyPatch, mongomock_client: Any) -> Any:
    """pyop 3's records in mongomock, which ``MongoClient`` (so from_uri) connects to."""
    pymongo = pytest.importorskip("pymongo")
    client = type(mongomock_client)()  # a server of its own
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    load_mongo(client[MONGO["database"]], now - MONGO["generated_at"])
    monkeypatch.setattr(pymongo, "MongoClient", lambda *a, **k: client)
    return client


@pytest.fixture
def redis_uri(redis_server: Any) -> Iterator[str]:
    """pyop 3's records in database REDIS_DB of the test server (keys, values, TTLs)."""
    redis = pytest.importorskip("redis")
    client = redis.Redis(port=redis_server.port, db=REDIS_DB)
    client.flushdb()
    for key, entry in REDIS["keys"].items():
        client.set(key, entry["value"], px=entry["pttl"])
    try:
        yield f"redis://127.0.0.1:{redis_server.port}"
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(params=["mongomock", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str, dict[str, Any]]:
    """(URI, db_name, what pyop 3 issued) with pyop 3's records loaded, as SATOSA
    configures them: ``db_name="satosa"`` for MongoDB, the index for Redis."""
    if request.param == "mongomock":
        request.getfixturevalue("mongo")
        return "mongodb://localhost:27017", "satosa", MONGO["issued"]
    uri = request.getfixturevalue("redis_uri")
    return uri, str(REDIS_DB), REDIS["issued"]


@pytest.fixture(scope="module")
def signing_key(rsa_private_key: Any) -> SigningKey:
    return SigningKey.from_key(rsa_private_key)


class Deployment:
    """This library over pyop 3's stores, created as SATOSA 8 creates them."""

    def __init__(self, uri: str, db_name: str, issued: dict[str, Any], signing_key: Any,
                 factory: Optional[SubjectIdentifierFactory] = None) -> None:
        self.issued = issued
        self.stores = {name: StorageBase.from_uri(uri, db_name=db_name, collection=name,
                                                  ttl=ttl)
                       for name, ttl in (("authz_codes", 600), ("access_tokens", 3600),
                                         ("refresh_tokens", 86400),
                                         ("subject_identifiers", None), ("clients", None))}
        self.authz = AuthorizationState(
            factory or HashBasedSubjectIdentifierFactory(issued["salt"]),
            *(self.stores[c] for c in COLLECTIONS), refresh_token_lifetime=86400)
        self.provider = Provider(signing_key, {
            "issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
            "token_endpoint": ISSUER + "/token", "userinfo_endpoint": ISSUER + "/userinfo",
            "subject_types_supported": ["public", "pairwise"],
            "scopes_supported": ["openid", "profile", "email"]},
            self.authz, self.stores["clients"], Userinfo(USERS))

    def close(self) -> None:
        for store in self.stores.values():
            store.close()

    def _auth(self, client: dict[str, Any], body: dict[str, str]) -> dict[str, str]:
        if client["token_endpoint_auth_method"] == "client_secret_post":
            body.update(client_id=client["client_id"], client_secret=client["client_secret"])
            return {}
        raw = f"{client['client_id']}:{client['client_secret']}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def login(self, label: str, user_id: str) -> tuple[str, str]:
        """Authorize, redeem the code at the token endpoint, call UserInfo: the ``sub``
        of the ID token (checked equal to UserInfo's) and the access token."""
        client = self.issued["clients"][label]
        request = self.provider.parse_authentication_request(urlencode({
            "client_id": client["client_id"], "redirect_uri": client["redirect_uris"][0],
            "response_type": "code", "scope": "openid profile email", "nonce": "n"}))
        code = self.provider.authorize(request, user_id)["code"]
        body = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": client["redirect_uris"][0]}
        headers = self._auth(client, body)
        tokens = self.provider.handle_token_request(urlencode(body), headers)
        payload = tokens["id_token"].split(".")[1]
        sub = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
        info = self.provider.handle_userinfo_request(
            None, {"Authorization": "Bearer " + tokens["access_token"]})
        assert info["sub"] == sub
        return sub, tokens["access_token"]

    def redeem(self, label: str, code: str) -> Callable[[], Any]:
        client = self.issued["clients"][label]
        body = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": client["redirect_uris"][0]}
        headers = self._auth(client, body)
        return lambda: self.provider.handle_token_request(urlencode(body), headers)


@pytest.fixture
def deployment(backend: tuple[str, str, dict[str, Any]],
               signing_key: SigningKey) -> Iterator[Deployment]:
    made = Deployment(*backend, signing_key)
    yield made
    made.close()


# -- tests ---------------------------------------------------------------------------------------


def test_the_dataset_is_pyop3s() -> None:
    """The data files were written by pyop 3.5.0 (make_pyop3_dataset.py)."""
    assert MONGO["generated_by"] == REDIS["generated_by"] == "pyop 3.5.0"
    docs = MONGO["collections"]["subject_identifiers"]["documents"]
    assert {d["lookup_key"] for d in docs} == set(USERS)
    assert all(set(d) == {"_id", "lookup_key", "data", "last_modified"} for d in docs)
    assert REDIS["keys"]["subject_identifiers:bob"]["value"] == \
        '{"value": {"public": "bob-custom-sub"}}'


def test_clients_read_as_pyop3_stored_them(deployment: Deployment) -> None:
    for client in deployment.issued["clients"].values():
        stored = deployment.provider.get_client(client["client_id"])
        assert stored is not None
        assert stored["client_secret"] == client["client_secret"]
        assert stored["redirect_uris"] == client["redirect_uris"]
        assert client["client_id"] in deployment.stores["clients"]
    assert deployment.provider.get_client("unknown") is None


@pytest.mark.parametrize("label", ["public", "pairwise"])
def test_public_subs_and_clients_keep_working(deployment: Deployment, label: str) -> None:
    """With the default factory: every client registered by pyop 3 authenticates
    (client_secret_basic, client_secret_post) and authorizes, and each user gets the
    public ``sub`` pyop 3 recorded (a custom one included): it is read from the record."""
    expected = deployment.issued["subs"]["public"]
    for user_id in USERS:
        sub, _ = deployment.login(label, user_id)
        if label == "public":
            assert sub == expected[user_id]
        # the sub resolves to its user (keyed lookup)
        assert deployment.authz.get_user_id_for_subject_identifier(sub) == user_id


def test_pairwise_subs_with_pyop3s_formula(backend: tuple[str, str, dict[str, Any]],
                                           signing_key: SigningKey) -> None:
    """Pairwise ``sub`` are computed, not read: with pyop 3's formula and salt the
    pairwise client sees the ``sub`` pyop 3 issued, and public clients the recorded ones."""
    uri, db_name, issued = backend
    deployment = Deployment(uri, db_name, issued, signing_key, Pyop3Formula(issued["salt"]))
    try:
        for label in ("public", "pairwise"):
            for user_id in ("alice", "carol"):
                assert deployment.login(label, user_id)[0] == issued["subs"][label][user_id]
        assert deployment.login("public", "bob")[0] == "bob-custom-sub"
    finally:
        deployment.close()


def test_salt_change_keeps_public_subs(backend: tuple[str, str, dict[str, Any]],
                                       signing_key: SigningKey) -> None:
    """SATOSA's default salt is random per start: pyop 3's recorded public ``sub`` win."""
    uri, db_name, issued = backend
    deployment = Deployment(uri, db_name, issued, signing_key,
                            HashBasedSubjectIdentifierFactory("another salt"))
    try:
        for user_id in USERS:
            assert deployment.login("public", user_id)[0] == issued["subs"]["public"][user_id]
    finally:
        deployment.close()


def test_pyop3_codes_and_tokens_are_refused_cleanly(deployment: Deployment) -> None:
    """In-flight codes and tokens of pyop 3 are not honoured (they expire): refused with
    the protocol's errors, never a crash; a registered client is needed to even try."""
    for entry in deployment.issued["tokens"]:
        assert outcome(deployment.redeem(entry["client"], entry["code_unredeemed"])) == \
            "invalid_grant"
        headers = {"Authorization": "Bearer " + entry["access_token"]}
        assert outcome(lambda h=headers: deployment.provider.handle_userinfo_request(
            None, h)) == "invalid_token"


def _run_migrate(args: list[str]) -> str:
    out = io.StringIO()
    assert migrate.main(args, out=out) == 0
    return out.getvalue()


def test_migrate_dry_run_real_idempotent(backend: tuple[str, str, dict[str, Any]],
                                         signing_key: SigningKey) -> None:
    uri, db_name, issued = backend
    pairwise = {user_id: sub for user_id, sub in issued["subs"]["pairwise"].items()
                if user_id != "bob"}

    def snapshot() -> dict[str, Any]:
        result = {}
        for name in COLLECTIONS + ("clients",):
            store = StorageBase.from_uri(uri, name, db_name=db_name)
            try:
                if isinstance(store, MongoWrapper):
                    result[name] = sorted(json.dumps(d, default=str, sort_keys=True)
                                          for d in store._coll.find({}))
                else:
                    assert isinstance(store, RedisWrapper)
                    result[name] = sorted(
                        (k, store._client.get(store._key(k))) for k in store.keys())
            finally:
                store.close()
        return result

    before = snapshot()
    dry = _run_migrate([uri, "--db-name", db_name, "--dry-run"])
    assert snapshot() == before  # nothing changed
    assert "dry run" in dry
    # alice and carol: public and pairwise; bob: his custom sub (pyop 3 gave it to all)
    assert "subject_identifiers: 5 subject identifier(s) would be given" in dry, dry
    if uri.startswith("mongodb"):
        assert "clients: 2 record(s) in pyop 3's layout would be converted" in dry
        assert "lookup_key_1" in dry
    else:
        assert "clients: 2 record(s) would be rewritten as canonical JSON" in dry
    for line in dry.splitlines():  # never a token, code or secret
        for entry in issued["tokens"]:
            assert entry["access_token"] not in line and entry["code_unredeemed"] not in line
        for client in issued["clients"].values():
            assert client["client_secret"] not in line

    real = _run_migrate([uri, "--db-name", db_name])
    assert real.replace("would be ", "").replace("dry run: ", "").replace(
        "would be made", "made") == dry.replace("would be ", "").replace(
        "dry run: ", "").replace("would be made", "made"), (dry, real)
    converted = snapshot()
    if uri.startswith("mongodb"):
        for name in COLLECTIONS + ("clients",):
            assert not any('"data"' in doc for doc in converted[name]), name
    again = _run_migrate([uri, "--db-name", db_name])
    assert again.count("nothing to convert") == 5 and "0 change(s) made" in again
    assert snapshot() == converted

    # after the migration, everything pyop 3 issued resolves, pairwise included
    deployment = Deployment(uri, db_name, issued, signing_key)
    try:
        for user_id, sub in pairwise.items():
            assert deployment.authz.get_user_id_for_subject_identifier(sub) == user_id
        for user_id, sub in issued["subs"]["public"].items():
            assert deployment.authz.get_user_id_for_subject_identifier(sub) == user_id
            assert deployment.login("public", user_id)[0] == sub
        for label in ("public", "pairwise"):
            assert deployment.login(label, "alice")[1]
        with pytest.raises(InvalidSubjectIdentifier):
            deployment.authz.get_user_id_for_subject_identifier("alice")  # a user id
    finally:
        deployment.close()


def test_subject_ids_unresolved_before_migration_resolve_after_login(
        deployment: Deployment) -> None:
    """Without the migration, a pyop 3 ``sub`` resolves once its user logged in again
    (the reverse record is written then), never through a scan."""
    sub = deployment.issued["subs"]["public"]["carol"]
    with pytest.raises(InvalidSubjectIdentifier):
        deployment.authz.get_user_id_for_subject_identifier(sub)
    assert deployment.login("public", "carol")[0] == sub
    assert deployment.authz.get_user_id_for_subject_identifier(sub) == "carol"
