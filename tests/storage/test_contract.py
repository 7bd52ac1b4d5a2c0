"""The storage contract (pyop.storage.base.StorageBase), run against every backend.

Backends whose expiry is decided by the injected clock (memory, dict, SQL,
MongoDB) get a fake clock; Redis decides expiry itself with ``PXAT``, so its
expiry tests let a fraction of a second really pass.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyop.storage import DictStorage, MongoWrapper, RedisWrapper, SQLWrapper, StorageBase

from .conftest import Backend

SHORT = 0.3  # lifetime of short-lived records, seconds
LATER = 0.45  # time to let pass so that SHORT-lived records expire

VALUES: list[Any] = [
    {"a": 1},
    {"nested": {"list": [1, 2.5, "three", None, True, {"deep": ["x"]}], "empty": {}}},
    {"unicode": "Ünïcødé ✓ 日本語 \U0001f511", "ключ": "значение"},
    {"big": 2**53, "neg": -1, "float": 0.1, "zero": 0},
    ["a", "list", 1],
    "a string",
    12345,
    True,
    {"claims": {"https://example.com/claim": "dotted key"}},
]


def _expect_no_value(store: StorageBase, key: str) -> None:
    assert store.get(key) is None
    assert store.get(key, "dflt") == "dflt"
    assert key not in store
    with pytest.raises(KeyError):
        store[key]


# -- get / set -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_set_get_round_trip(backend: Backend, value: Any) -> None:
    store = backend.make()
    store.set("key", value)
    assert store.get("key") == value
    assert store["key"] == value


def test_get_absent_returns_default(backend: Backend) -> None:
    store = backend.make()
    _expect_no_value(store, "absent")


def test_set_overwrites_and_json_semantics(backend: Backend) -> None:
    store = backend.make()
    store.set("k", {"v": 1})
    store.set("k", {"v": 2, "t": [1, 2]})
    assert store.get("k") == {"v": 2, "t": [1, 2]}
    if not isinstance(store, DictStorage):  # the dict adapter stores objects as they are
        store.set("k", {"tuple": (1, 2)})
        assert store.get("k") == {"tuple": [1, 2]}


def test_stored_value_is_a_copy(backend: Backend) -> None:
    if backend.name == "dict":
        pytest.skip("the dict adapter stores the host's objects as they are")
    store = backend.make()
    value = {"list": [1]}
    store.set("k", value)
    value["list"].append(2)
    got = store.get("k")
    got["list"].append(3)
    assert store.get("k") == {"list": [1]}


def test_unicode_and_special_keys(backend: Backend) -> None:
    store = backend.make()
    keys = ["ключ-日本", "with:colons:and*glob?[chars]\\", "a" * 300, "sp ace", "-_.~"]
    for i, key in enumerate(keys):
        store.set(key, {"i": i})
    for i, key in enumerate(keys):
        assert store.get(key) == {"i": i}
    assert sorted(store.keys()) == sorted(keys)


def test_non_str_key_is_a_type_error(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(TypeError):
        store.set(b"bytes", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.get(1)  # type: ignore[arg-type]


def test_non_json_value_is_a_type_error(backend: Backend) -> None:
    if backend.name == "dict":
        pytest.skip("the dict adapter stores any object")
    store = backend.make()
    with pytest.raises(TypeError):
        store.set("k", {"obj": object()})
    with pytest.raises(ValueError):
        store.set("k", {"nan": float("nan")})
    assert store.get("k") is None


def test_collections_are_isolated(backend: Backend) -> None:
    first, second = backend.make(), backend.make()
    first.set("same", {"from": 1})
    second.set("same", {"from": 2})
    assert first.get("same") == {"from": 1}
    assert second.consume("same") == {"from": 2}
    assert first.get("same") == {"from": 1}
    assert list(first.keys()) == ["same"]


# -- delete / consume ------------------------------------------------------------------------


def test_delete(backend: Backend) -> None:
    store = backend.make()
    store.set("k", {"v": 1})
    assert store.delete("k") is True
    _expect_no_value(store, "k")
    assert store.delete("k") is False
    assert store.delete("never") is False


def test_consume_returns_value_once(backend: Backend) -> None:
    store = backend.make()
    store.set("code", {"sub": "alice"})
    assert store.consume("code") == {"sub": "alice"}
    assert store.consume("code") is None
    _expect_no_value(store, "code")
    assert store.consume("never") is None


# -- compare_and_set -------------------------------------------------------------------------


def test_compare_and_set(backend: Backend) -> None:
    store = backend.make()
    store.set("rt", {"rotated": False, "n": 1})
    assert store.compare_and_set("rt", {"rotated": True, "n": 1}, {"x": 1}) is False
    assert store.get("rt") == {"rotated": False, "n": 1}
    # JSON equality: key order does not matter
    assert store.compare_and_set("rt", {"n": 1, "rotated": False}, {"rotated": True}) is True
    assert store.get("rt") == {"rotated": True}
    assert store.compare_and_set("rt", {"n": 1, "rotated": False}, {"again": 1}) is False
    assert store.compare_and_set("absent", {"a": 1}, {"b": 2}) is False
    _expect_no_value(store, "absent")


def test_compare_and_set_is_type_sensitive(backend: Backend) -> None:
    store = backend.make()
    store.set("k", {"n": 1})
    assert store.compare_and_set("k", {"n": "1"}, {"n": 2}) is False
    assert store.compare_and_set("k", {"n": True}, {"n": 2}) is False
    assert store.compare_and_set("k", {"n": 1}, {"n": 1}) is True  # same value: still a match
    assert store.get("k") == {"n": 1}


def test_compare_and_set_expiry(backend: Backend) -> None:
    store = backend.make()
    now = backend.now()
    store.set("keep", {"v": 0}, expires_at=now + SHORT)
    store.set("extend", {"v": 0}, expires_at=now + SHORT)
    # expires_at=None keeps the record's own expiry
    assert store.compare_and_set("keep", {"v": 0}, {"v": 1}) is True
    assert store.compare_and_set("extend", {"v": 0}, {"v": 1}, expires_at=now + 3600) is True
    backend.advance(LATER)
    _expect_no_value(store, "keep")
    assert store.get("extend") == {"v": 1}
    # an expired record never matches
    store.set("gone", {"v": 0}, expires_at=backend.now() + SHORT)
    backend.advance(LATER)
    assert store.compare_and_set("gone", {"v": 0}, {"v": 1}) is False
    _expect_no_value(store, "gone")


# -- add -------------------------------------------------------------------------------------


def test_add(backend: Backend) -> None:
    store = backend.make()
    assert store.add("jti", {"first": True}) is True
    assert store.add("jti", {"second": True}) is False
    assert store.get("jti") == {"first": True}


def test_add_takes_over_expired_record(backend: Backend) -> None:
    store = backend.make()
    assert store.add("jti", {"n": 1}, expires_at=backend.now() + SHORT) is True
    assert store.add("jti", {"n": 2}, expires_at=backend.now() + 3600) is False
    backend.advance(LATER)
    assert store.add("jti", {"n": 3}, expires_at=backend.now() + 3600) is True
    assert store.get("jti") == {"n": 3}


# -- expiry ----------------------------------------------------------------------------------


def test_record_expires_at_its_own_expires_at(backend: Backend) -> None:
    store = backend.make()
    now = backend.now()
    store.set("short", {"v": "s"}, expires_at=now + SHORT)
    store.set("long", {"v": "l"}, expires_at=now + 3600)
    store.set("forever", {"v": "f"})
    for key in ("short", "long", "forever"):
        assert key in store
    assert sorted(store.keys()) == ["forever", "long", "short"]
    backend.advance(LATER)
    _expect_no_value(store, "short")
    assert store.consume("short") is None
    assert store.delete("short") is False
    assert sorted(store.keys()) == ["forever", "long"]
    assert store.get("long") == {"v": "l"}
    assert store.get("forever") == {"v": "f"}


def test_expiry_boundary_is_exclusive(backend: Backend) -> None:
    if not backend.fake_clock:
        pytest.skip("needs a clock the test controls")
    store = backend.make()
    store.set("k", 1, expires_at=backend.now() + 10)
    backend.advance(9.99)
    assert store.get("k") == 1
    backend.advance(0.01)  # now == expires_at: expired
    assert store.get("k") is None


def test_expires_at_in_the_past(backend: Backend) -> None:
    store = backend.make()
    store.set("k", {"v": 1}, expires_at=backend.now() - 5)
    _expect_no_value(store, "k")
    assert store.consume("k") is None


def test_default_ttl(backend: Backend) -> None:
    store = backend.make(ttl=SHORT)
    assert store.ttl == SHORT
    store.set("by-ttl", {"v": 1})
    store["by-setitem"] = {"v": 2}
    store.set("explicit", {"v": 3}, expires_at=backend.now() + 3600)
    assert store.add("by-add", {"v": 4}) is True
    backend.advance(LATER)
    for key in ("by-ttl", "by-setitem", "by-add"):
        _expect_no_value(store, key)
    assert store.get("explicit") == {"v": 3}


def test_without_ttl_records_never_expire(backend: Backend) -> None:
    store = backend.make()
    assert store.ttl is None
    store.set("k", {"v": 1})
    backend.advance(10 * 365 * 86400 if backend.fake_clock else 0.01)
    assert store.get("k") == {"v": 1}


def test_invalid_expires_at(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(ValueError):
        store.set("k", 1, expires_at=float("inf"))
    with pytest.raises(TypeError):
        store.set("k", 1, expires_at="tomorrow")  # type: ignore[arg-type]


def test_purge_expired_removes_records(backend: Backend) -> None:
    store = backend.make()
    now = backend.now()
    for i in range(3):
        store.set(f"exp{i}", {"i": i}, expires_at=now + SHORT)
    store.set("live", {"v": 1})
    assert backend.physical_count is not None
    assert backend.physical_count(store) == 4
    backend.advance(LATER)
    removed = store.purge_expired()
    if backend.purges:
        assert removed == 3 if not backend.name.endswith("mongodb") else removed <= 3
    else:
        assert removed == 0
    assert backend.physical_count(store) == 1
    assert store.get("live") == {"v": 1}
    assert store.purge_expired() == 0


# -- mapping sugar ---------------------------------------------------------------------------


def test_mapping_sugar(backend: Backend) -> None:
    store = backend.make()
    assert bool(store) is True and len(store) == 0
    store["a"] = {"v": "a"}
    store.update({"b": {"v": "b"}}, c={"v": "c"})
    store.update([("d", {"v": "d"})])
    assert len(store) == 4
    assert sorted(store) == ["a", "b", "c", "d"]
    assert sorted(store.keys()) == ["a", "b", "c", "d"]
    assert sorted(store.items()) == [(k, {"v": k}) for k in "abcd"]
    assert sorted(v["v"] for v in store.values()) == list("abcd")
    assert "a" in store and "z" not in store and 42 not in store
    assert store["a"] == {"v": "a"}
    assert store.pop("a") == {"v": "a"}
    assert store.pop("a", "default") == "default"
    del store["b"]
    if store.pyop3_mapping:
        # pyop 3's MongoWrapper and RedisWrapper: absent keys are no error for pop and del
        assert isinstance(store, (MongoWrapper, RedisWrapper))
        assert store.pop("a") is None
        del store["b"]
    else:
        with pytest.raises(KeyError):
            store.pop("a")
        with pytest.raises(KeyError):
            del store["b"]
    with pytest.raises(KeyError):
        store["b"]
    assert sorted(store) == ["c", "d"]
    with pytest.raises(TypeError):
        store.pop("c", 1, 2)


def test_keys_scan_many(backend: Backend) -> None:
    store = backend.make()
    count = 1001 if backend.name.endswith("redis") else 50  # Redis: more than one SCAN batch
    if isinstance(store, SQLWrapper):
        store.keys_page_size = 7  # several pages
    expected = [f"k{i:05d}" for i in range(count)]
    store.update((key, i) for i, key in enumerate(expected))
    store.set("expired", 1, expires_at=backend.now() - 1)
    assert sorted(store.keys()) == expected
    assert len(store) == count


def test_context_manager_closes(backend: Backend) -> None:
    with backend.make() as store:
        store.set("k", 1)
        assert store.get("k") == 1
