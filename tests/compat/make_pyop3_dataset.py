"""Make pyop 3.5.0 write its records, and dump them raw.

Run with an interpreter that has pyop 3.5.0, mongomock and fakeredis installed (never
this library)::

    python tests/compat/make_pyop3_dataset.py tests/compat/data

pyop 3 creates its stores the way SATOSA 8 does (``StorageBase.from_uri(uri,
db_name="satosa", collection=..., ttl=...)``), registers two clients through dynamic
registration (one public, one pairwise), authorizes three users with each (one with a
custom ``sub`` in its user record) and issues codes, access and refresh tokens. The
stores are a mongomock server and a fakeredis server; their raw contents are written to
``pyop3_mongo.json`` (documents and indexes of each collection; ObjectIds as
``{"$oid": ...}``, dates as ``{"$date": <ISO 8601 UTC>}``) and ``pyop3_redis.json``
(each key with its string value and remaining lifetime in ms). ``issued`` in each file
tells what pyop 3 answered: the clients' credentials and the ``sub`` each user got from
each client, for the tests that read the records with the current library.
"""

from __future__ import annotations

import base64
import datetime
import importlib.metadata
import json
import sys
import time
import types
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlencode, urlsplit

import fakeredis
import mongomock
import mongomock.helpers
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwkest.jwk import RSAKey, import_rsa_key

#: One mongomock server for every MongoClient pyop 3 creates.
MONGO_SERVER = mongomock.MongoClient()


def _install_pymongo_stand_in() -> None:
    """pyop 3's MongoWrapper needs ``pymongo``; without it installed, a stand-in module
    whose MongoClient is mongomock's (pyop 3 parses the URI with pymongo.uri_parser)."""
    try:
        import pymongo  # noqa: F401
    except ImportError:
        pass
    else:
        return
    shim = types.ModuleType("pymongo")
    shim.MongoClient = lambda *args, **kwargs: MONGO_SERVER  # type: ignore[attr-defined]
    shim.MongoReplicaSetClient = shim.MongoClient  # type: ignore[attr-defined]
    shim.errors = types.SimpleNamespace(  # type: ignore[attr-defined]
        ConnectionFailure=type("ConnectionFailure", (Exception,), {}))
    shim.uri_parser = types.SimpleNamespace(  # type: ignore[attr-defined]
        parse_uri=lambda uri: dict(mongomock.helpers.parse_uri(uri), options={}))
    sys.modules["pymongo"] = shim


_install_pymongo_stand_in()

import pyop.storage  # noqa: E402 - after the stand-in
from pyop.authz_state import AuthorizationState  # noqa: E402
from pyop.provider import Provider  # noqa: E402
from pyop.storage import StorageBase  # noqa: E402
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory  # noqa: E402
from pyop.userinfo import Userinfo  # noqa: E402

PYOP_VERSION = importlib.metadata.version("pyop")

ISSUER = "https://op.example.com"
SALT = "pyop3-dataset-salt"
MONGO_URI = "mongodb://localhost:27017"
REDIS_URI = "redis://localhost:6379/0"
COLLECTIONS = ("authz_codes", "access_tokens", "refresh_tokens", "subject_identifiers",
               "clients")
USERS = {
    "alice": {"name": "Alice Liddell", "email": "alice@example.com"},
    "bob": {"name": "Bob Builder", "email": "bob@example.com", "sub": "bob-custom-sub"},
    "carol": {"name": "Carol Danvers", "email": "carol@example.com"},
}
CLIENTS = {
    "public": {"redirect_uris": ["https://rp-public.example.com/cb"],
               "response_types": ["code"], "subject_type": "public"},
    "pairwise": {"redirect_uris": ["https://rp-pairwise.example.org/cb"],
                 "response_types": ["code"], "subject_type": "pairwise",
                 "token_endpoint_auth_method": "client_secret_post"},
}


def _stores(uri: str) -> dict[str, Any]:
    """The stores as SATOSA 8.6's OpenID Connect frontend creates them."""
    lifetimes = {"authz_codes": 600, "access_tokens": 3600, "refresh_tokens": 86400,
                 "subject_identifiers": None, "clients": None}
    return {name: StorageBase.from_uri(uri, db_name="satosa", collection=name, ttl=ttl)
            for name, ttl in lifetimes.items()}


def _signing_key() -> RSAKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return RSAKey(key=import_rsa_key(pem), use="sig", alg="RS256", kid="dataset")


def _id_token_sub(id_token: str) -> str:
    payload = id_token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return str(json.loads(base64.urlsafe_b64decode(payload))["sub"])


def _drive(stores: dict[str, Any]) -> dict[str, Any]:
    """Register, authorize, exchange, refresh: what pyop 3 writes; returns what it said."""
    authz = AuthorizationState(
        HashBasedSubjectIdentifierFactory(SALT), stores["authz_codes"],
        stores["access_tokens"], stores["refresh_tokens"], stores["subject_identifiers"],
        authorization_code_lifetime=600, access_token_lifetime=3600,
        refresh_token_lifetime=86400)
    configuration = {
        "issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorization",
        "token_endpoint": ISSUER + "/token", "userinfo_endpoint": ISSUER + "/userinfo",
        "registration_endpoint": ISSUER + "/registration", "jwks_uri": ISSUER + "/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public", "pairwise"],
        "scopes_supported": ["openid", "profile", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                  "client_secret_post"],
    }
    provider = Provider(_signing_key(), configuration, authz, stores["clients"],
                        Userinfo(USERS))
    issued: dict[str, Any] = {"salt": SALT, "clients": {}, "subs": {}, "tokens": []}
    for label, metadata in CLIENTS.items():
        response = provider.handle_client_registration_request(json.dumps(metadata))
        client = response.to_dict()
        issued["clients"][label] = {k: client[k] for k in (
            "client_id", "client_secret", "redirect_uris", "subject_type")}
        issued["clients"][label]["token_endpoint_auth_method"] = metadata.get(
            "token_endpoint_auth_method", "client_secret_basic")
    for label, client in issued["clients"].items():
        issued["subs"][label] = {}
        for user_id in USERS:
            request = provider.parse_authentication_request(urlencode({
                "client_id": client["client_id"], "redirect_uri": client["redirect_uris"][0],
                "response_type": "code", "scope": "openid profile email", "nonce": "n",
                "state": "s"}))
            code = provider.authorize(request, user_id).to_dict()["code"]
            body = {"grant_type": "authorization_code", "code": code,
                    "redirect_uri": client["redirect_uris"][0]}
            headers = {}
            if client["token_endpoint_auth_method"] == "client_secret_post":
                body.update(client_id=client["client_id"],
                            client_secret=client["client_secret"])
            else:
                raw = f"{client['client_id']}:{client['client_secret']}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            tokens = provider.handle_token_request(urlencode(body), headers).to_dict()
            sub = _id_token_sub(tokens["id_token"])
            info = provider.handle_userinfo_request(
                None, {"Authorization": "Bearer " + tokens["access_token"]}).to_dict()
            assert info["sub"] == sub, (info, sub)
            issued["subs"][label][user_id] = sub
            # one more code, left unredeemed (in flight at the upgrade)
            unredeemed = provider.authorize(request, user_id).to_dict()["code"]
            issued["tokens"].append({"client": label, "user_id": user_id,
                                     "code_redeemed": code, "code_unredeemed": unredeemed,
                                     "access_token": tokens["access_token"],
                                     "refresh_token": tokens.get("refresh_token")})
    return issued


def _plain(value: Any) -> Any:
    """JSON for a raw MongoDB value (ObjectId and datetime in extended JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, mongomock.ObjectId):
        return {"$oid": str(value)}
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return {"$date": value.isoformat() + "Z"}
    return value


def make_mongo() -> dict[str, Any]:
    stores = _stores(MONGO_URI)
    issued = _drive(stores)
    collections = {}
    for name in COLLECTIONS:
        coll = stores[name]._coll
        collections[name] = {
            "indexes": _plain(coll.index_information()),
            "documents": [_plain(doc) for doc in coll.find({})],
        }
    return {"generated_by": f"pyop {PYOP_VERSION}", "database": "satosa", "issued": issued,
            "collections": collections}


def make_redis() -> dict[str, Any]:
    server = fakeredis.FakeServer()

    def from_url(url: str, **kwargs: Any) -> Any:
        parsed = urlsplit(url)
        db = int(parsed.path.strip("/") or parse_qs(parsed.query).get("db", ["0"])[0])
        return fakeredis.FakeRedis(server=server, db=db,
                                   decode_responses=kwargs.get("decode_responses", False))

    with mock.patch.object(pyop.storage.Redis, "from_url", from_url):
        issued = _drive(_stores(REDIS_URI))
    client = fakeredis.FakeRedis(server=server, db=0, decode_responses=True)
    keys = {}
    for key in sorted(client.keys("*")):
        ttl = client.pttl(key)
        keys[key] = {"value": client.get(key), "pttl": ttl if ttl >= 0 else None}
    return {"generated_by": f"pyop {PYOP_VERSION}", "db": 0, "issued": issued, "keys": keys}


def main(argv: list[str]) -> None:
    if not PYOP_VERSION.startswith("3."):
        sys.exit(f"run this with pyop 3 installed, not pyop {PYOP_VERSION}")
    out = Path(argv[1] if len(argv) > 1 else Path(__file__).parent / "data")
    out.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    for name, make in (("pyop3_mongo.json", make_mongo), ("pyop3_redis.json", make_redis)):
        data = make()
        data["generated_at"] = now
        (out / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main(sys.argv)
