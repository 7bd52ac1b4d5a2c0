"""The URI scheme registry: ``StorageBase.from_uri``/``type`` find backends through it."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from pyop.storage import MemoryStorage, StorageBase, schemes


@pytest.fixture
def registry() -> Any:
    saved = dict(schemes._BACKENDS)
    yield schemes
    schemes._BACKENDS.clear()
    schemes._BACKENDS.update(saved)


def test_every_backend_registered_itself() -> None:
    assert list(schemes._BACKENDS) == ["memory", "mongodb", "redis", "sql", "stateless"]


@pytest.mark.parametrize("uri,kind", [
    ("memory://", "memory"), ("MEMORY:", "memory"), ("mongodb://h/d", "mongodb"),
    ("mongodb+srv://h/d", "mongodb"), ("redis://h", "redis"), ("rediss://h", "redis"),
    ("unix:///tmp/r.sock", "redis"), ("sqlite://", "sql"), ("postgresql+psycopg://h/d", "sql"),
    ("stateless://u:s@h", "stateless"),
])
def test_known_schemes(uri: str, kind: str) -> None:
    assert StorageBase.type(uri) == kind
    assert schemes.backend_for(uri).kind == kind


@pytest.mark.parametrize("uri", ["ftp://u:secret@h", "mongodb+foo://h", ":x", "no-colon"])
def test_unknown_scheme_is_refused_without_the_uri(uri: str) -> None:
    with pytest.raises(ValueError) as info:
        StorageBase.type(uri)
    assert "secret" not in str(info.value)


def test_a_host_registers_a_backend(registry: Any) -> None:
    created: list[tuple[Any, ...]] = []

    def create(db_uri: str, collection: Optional[str], db_name: Optional[str],
               ttl: Optional[int], **kwargs: Any) -> StorageBase:
        created.append((db_uri, collection, db_name, ttl, kwargs))
        return MemoryStorage(ttl=ttl)

    registry.register_backend("custom", create, frozenset({"Custom"}))
    store = StorageBase.from_uri("custom://h", "codes", "db", 60, flavour="x")
    assert isinstance(store, MemoryStorage) and store.ttl == 60
    assert created == [("custom://h", "codes", "db", 60, {"flavour": "x"})]
    assert StorageBase.type("CUSTOM://h") == "custom"
    with pytest.raises(ValueError, match="collection name is required for custom"):
        StorageBase.from_uri("custom://h")


def test_driver_options_go_to_their_backend_only(registry: Any) -> None:
    seen: dict[str, Any] = {}

    def create(db_uri: str, collection: Optional[str], db_name: Optional[str],
               ttl: Optional[int], **kwargs: Any) -> StorageBase:
        seen.update(kwargs)
        return MemoryStorage()

    registry.register_backend("redis", create, frozenset({"redis"}))
    StorageBase.from_uri("redis://h", "c", mongo_kwargs={"m": 1}, redis_kwargs={"r": 2})
    assert seen == {"r": 2}
