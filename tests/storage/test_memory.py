"""In-process stores: MemoryStorage (bounded memory), DictStorage and as_storage."""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

import pytest

from pyop.storage import DictStorage, MemoryStorage, SQLWrapper, StorageBase, as_storage

from .conftest import FakeClock


def test_memory_footprint_of_100k_records() -> None:
    """100 000 live small dict records (a typical access-token record) stay modest."""
    clock = FakeClock(1_800_000_000)
    store = MemoryStorage(clock=clock)
    for i in range(100_000):
        store.set(f"tok_{i:040d}", {"sub": f"user{i}", "client_id": "client1",
                                    "scope": "openid", "exp": 1_800_003_600},
                  expires_at=1_800_003_600)
    assert len(store) == 100_000
    total = sys.getsizeof(store._data)
    for key, record in store._data.items():
        assert isinstance(record, tuple)  # (canonical JSON str, float)
        total += (sys.getsizeof(key) + sys.getsizeof(record) + sys.getsizeof(record[0])
                  + sys.getsizeof(record[1]))
    per_record = total / 100_000
    # key str (~93 B) + JSON str (~130 B) + tuple (56 B) + float (24 B) + dict slot (~40 B)
    assert per_record < 400, per_record


def test_memory_periodic_purge_bounds_growth() -> None:
    clock = FakeClock(1_000)
    store = MemoryStorage(clock=clock, purge_interval=60)
    for i in range(1000):
        store.set(f"k{i}", i, expires_at=clock() + 10)
    assert len(store._data) == 1000
    clock.advance(30)
    store.set("trigger", 0)  # before the interval: nothing swept
    assert len(store._data) == 1001
    clock.advance(31)
    store.set("trigger", 0)  # interval passed: expired records swept on this write
    assert len(store._data) == 1
    assert store.purge_expired() == 0


def test_memory_lazy_purge_on_access() -> None:
    clock = FakeClock(1_000)
    store = MemoryStorage(clock=clock)
    store.set("k", 1, expires_at=1_001)
    clock.advance(2)
    assert store.get("k") is None
    assert "k" not in store._data


def test_memory_records_without_expiry_cost_no_tuple() -> None:
    store = MemoryStorage()
    store.set("forever", {"a": 1})
    store.set("expiring", {"a": 1}, expires_at=10**10)
    assert isinstance(store._data["forever"], str)
    assert isinstance(store._data["expiring"], tuple)


def test_sql_periodic_purge_on_writes(tmp_path: Any) -> None:
    clock = FakeClock(1_000)
    store = SQLWrapper(f"sqlite:///{tmp_path}/p.db", None, "c", clock=clock, purge_interval=60)
    try:
        for i in range(20):
            store.set(f"k{i}", i, expires_at=clock() + 10)
        clock.advance(61)
        store.set("trigger", 0)
        import sqlalchemy as sa

        with store._engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(store._table)).scalar()
        assert count == 1
    finally:
        store.close()


def test_ttl_validation() -> None:
    assert MemoryStorage(ttl=0).ttl is None  # pyop 3: 0 means no expiry
    with pytest.raises(ValueError):
        MemoryStorage(ttl=-1)
    with pytest.raises(TypeError):
        MemoryStorage(ttl="600")  # type: ignore[arg-type]


# -- DictStorage / as_storage --------------------------------------------------------------


def test_dict_adapter_keeps_host_dict_readable() -> None:
    host: dict[str, Any] = {"client1": {"client_secret": "s"}}
    store = as_storage(host)
    assert isinstance(store, DictStorage) and store.mapping is host
    assert store.get("client1") == {"client_secret": "s"}
    record = {"redirect_uris": ["https://rp/cb"]}
    store.set("client2", record, expires_at=10**10)
    assert host["client2"] is record  # stored as is, no envelope
    store["client3"] = {"x": 1}
    assert host["client3"] == {"x": 1}
    assert store.consume("client3") == {"x": 1} and "client3" not in host


def test_dict_adapter_expiry_lives_on_the_adapter() -> None:
    clock = FakeClock(1_000)
    host: dict[str, Any] = {}
    store = DictStorage(host, clock=clock)
    store.set("short", 1, expires_at=1_010)
    host["by-host"] = 2  # written by the host directly: never expires
    clock.advance(20)
    assert store.get("short") is None and "short" not in host
    assert store.get("by-host") == 2
    assert store.purge_expired() == 0


def test_dict_adapter_forgets_expiry_of_keys_the_host_removed() -> None:
    clock = FakeClock(1_000)
    host: dict[str, Any] = {}
    store = DictStorage(host, clock=clock)
    store.set("k", 1, expires_at=1_010)
    del host["k"]
    assert store.purge_expired() == 0
    host["k"] = "host value"  # must not inherit the old expiry
    clock.advance(20)
    assert store.get("k") == "host value"


def test_as_storage() -> None:
    memory = MemoryStorage()
    assert as_storage(memory) is memory
    assert isinstance(as_storage(None), MemoryStorage)
    ordered: OrderedDict[str, Any] = OrderedDict()
    assert isinstance(as_storage(ordered), DictStorage)
    with pytest.raises(TypeError):
        as_storage([("a", 1)])  # type: ignore[arg-type]
    assert isinstance(as_storage({}), StorageBase)
