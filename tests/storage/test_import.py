"""``import pyop.storage`` needs no database driver; using a backend without one names the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pyop.storage

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys

    BLOCKED = {"pymongo", "bson", "gridfs", "redis", "sqlalchemy", "psycopg", "psycopg2"}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked for the test: " + name)
            return None

    sys.meta_path.insert(0, Blocker())

    import pyop.storage as storage
    from pyop.storage import *  # noqa: F403 - every public name imports

    assert storage.StorageBase.type("postgresql+psycopg://h/db") == "sql"
    assert storage.StorageBase.type("mongodb+srv://h/db") == "mongodb"
    memory = storage.StorageBase.from_uri("memory://")
    memory.set("k", 1)
    assert memory.get("k") == 1

    cases = [
        (lambda: storage.MongoWrapper("mongodb://h", "d", "c"), "pip install pyop[mongo]"),
        (lambda: storage.RedisWrapper("redis://h", "d", "c"), "pip install pyop[redis]"),
        (lambda: storage.SQLWrapper("sqlite://", None, "c"), "pip install pyop[sql]"),
        (lambda: storage.StorageBase.from_uri("sqlite://", collection="c"),
         "pip install pyop[sql]"),
    ]
    for create, hint in cases:
        try:
            create()
        except ImportError as error:
            assert hint in str(error), str(error)
        else:
            raise SystemExit("no ImportError for " + hint)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    print("OK")
""")


def test_import_without_drivers() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")


def test_public_names() -> None:
    assert pyop.storage.__all__ == ["StorageBase", "MemoryStorage", "DictStorage", "as_storage",
                                    "MongoWrapper", "RedisWrapper", "SQLWrapper",
                                    "StatelessWrapper"]
    for name in pyop.storage.__all__:
        assert getattr(pyop.storage, name).__module__.startswith("pyop.storage.")
