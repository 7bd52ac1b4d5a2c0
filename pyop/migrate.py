"""Convert records written by pyop 3 in MongoDB or Redis in place: ``python -m pyop.migrate``.

The library reads pyop 3's records as they are (see "Records written by pyop 3" in
``docs/storage.rst``); this tool makes the conversion complete, so that no read has to
look for the old layout any more and every subject identifier pyop 3 issued resolves:

* MongoDB: each document of pyop 3's layout (``lookup_key``, ``data``,
  ``last_modified``) is replaced by one of the current layout with the same key, value
  and expiry (expired ones are deleted); once a collection holds none, pyop 3's indexes
  (the unique ``lookup_key`` index, the ``expiry`` TTL index) are dropped.
* Redis: pyop 3's records already have the current layout; values written with
  whitespace are rewritten as canonical JSON (their expiry kept).
* Subject identifiers: pyop 3 kept ``user_id -> {"public": sub, "pairwise": [subs]}``;
  for every ``sub`` listed there a reverse record ``sub -> {"user_id", "type"}`` is
  added (the user's record, which pins the public ``sub``, is kept).

The tool is idempotent (a second run converts nothing) and prints what it converts,
never a key or value (they may be tokens or secrets). ``--dry-run`` only counts.
Run it once the pyop 3 processes are stopped.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, TextIO
from urllib.parse import urlsplit, urlunsplit

from .authz_state import merge_record
from .exceptions import StorageError
from .storage import MongoWrapper, RedisWrapper, StorageBase

__all__ = ["main", "migrate_store", "migrate_subject_identifiers", "Report"]

logger = logging.getLogger(__name__)

#: The collections SATOSA's OpenID Connect frontend (pyop 3) uses.
DEFAULT_COLLECTIONS = ("authz_codes", "access_tokens", "refresh_tokens",
                       "subject_identifiers", "clients")
SUBJECT_IDENTIFIERS = "subject_identifiers"


@dataclass
class Report:
    """What a migration converted (or, with ``dry_run``, would convert)."""

    converted: int = 0
    expired: int = 0
    rewritten: int = 0
    reverse_added: int = 0
    reverse_present: int = 0
    conflicts: int = 0
    indexes_dropped: tuple[str, ...] = ()

    @property
    def changes(self) -> int:
        """How many changes were (or would be) made."""
        return (self.converted + self.expired + self.rewritten + self.reverse_added
                + len(self.indexes_dropped))


def redact(uri: str) -> str:
    """``uri`` without its password."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<uri>"
    if parts.password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def migrate_store(store: StorageBase, *, dry_run: bool = False,
                  now: Optional[float] = None) -> Report:
    """Convert the records of one store that are in pyop 3's layout (see module doc)."""
    report = Report()
    now = time.time() if now is None else now
    if isinstance(store, MongoWrapper):
        for document in store.pyop3_documents():
            expiry = store.pyop3_expiry(document)
            if expiry is not None and expiry <= now:
                report.expired += 1
                if not dry_run:
                    store._coll.delete_one({"_id": document["_id"]})
                continue
            report.converted += 1
            if not dry_run:
                store.convert_pyop3_document(document)
        # pyop 3's indexes go once no record of its layout is left (a concurrent
        # conversion that lost its race leaves one: the next run drops them)
        if dry_run or not any(True for _ in store.pyop3_documents()):
            report.indexes_dropped = tuple(store.pyop3_indexes())
            if not dry_run:
                for name in report.indexes_dropped:
                    store._coll.drop_index(name)
                store._indexed = False  # looked at again on next use
    elif isinstance(store, RedisWrapper):
        client = store._client
        for key in list(store.keys()):
            name = store._key(key)
            raw = client.get(name)
            if raw is None:
                continue
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            try:
                canonical = store._encode(store._decode(text, "migrate"))
            except StorageError:  # not a record of pyop's: left as it is
                continue
            if canonical != text:
                report.rewritten += 1
                if not dry_run:
                    store._compare_and_set_raw(name, text, canonical, None)
    return report


def migrate_subject_identifiers(store: StorageBase, *, dry_run: bool = False,
                                report: Optional[Report] = None) -> Report:
    """Add the reverse record ``sub -> user`` of every ``sub`` pyop 3 recorded."""
    report = report or Report()
    for user_id in list(store.keys()):
        record = store.get(user_id)
        if not isinstance(record, dict):
            continue
        subs: list[tuple[str, str]] = []
        if isinstance(record.get("public"), str):
            subs.append((record["public"], "public"))
        for sub in record.get("pairwise") or []:
            if isinstance(sub, str):
                subs.append((sub, "pairwise"))
        for sub, subject_type in subs:
            current = store.get(sub)
            if isinstance(current, dict) and "user_id" in current:
                if current["user_id"] == user_id:
                    report.reverse_present += 1
                else:
                    report.conflicts += 1
                    logger.warning("a %s subject identifier pyop 3 recorded is recorded "
                                   "for another user: kept as it is", subject_type)
                continue
            report.reverse_added += 1
            if not dry_run:
                merge_record(store, sub, {"user_id": user_id, "type": subject_type})
    return report


def _describe(report: Report, dry_run: bool) -> list[str]:
    verb = "would be " if dry_run else ""
    lines = []
    if report.converted:
        lines.append(f"{report.converted} record(s) in pyop 3's layout {verb}converted")
    if report.expired:
        lines.append(f"{report.expired} expired record(s) in pyop 3's layout {verb}deleted")
    if report.rewritten:
        lines.append(f"{report.rewritten} record(s) {verb}rewritten as canonical JSON")
    if report.reverse_added:
        lines.append(f"{report.reverse_added} subject identifier(s) {verb}given their "
                     f"reverse record (sub -> user)")
    if report.conflicts:
        lines.append(f"{report.conflicts} subject identifier(s) recorded for another user "
                     f"(kept)")
    if report.indexes_dropped:
        lines.append(f"pyop 3 index(es) {verb}dropped: {', '.join(report.indexes_dropped)}")
    return lines or ["nothing to convert"]


def main(argv: Optional[Sequence[str]] = None, out: TextIO = sys.stdout) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m pyop.migrate",
        description="Convert records written by pyop 3 in MongoDB or Redis in place.")
    parser.add_argument("uris", nargs="+", metavar="URI",
                        help="storage URI (mongodb://..., redis://..., unix://...)")
    parser.add_argument("--db-name", default=None,
                        help="MongoDB database (when the URI names none) or Redis "
                             "database index, as given to StorageBase.from_uri "
                             "(SATOSA: satosa)")
    parser.add_argument("--collection", action="append", dest="collections",
                        help="collection to convert (repeatable; default: "
                             + ", ".join(DEFAULT_COLLECTIONS) + ")")
    parser.add_argument("--subject-identifiers", default=SUBJECT_IDENTIFIERS,
                        metavar="COLLECTION",
                        help="the collection of subject identifiers (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="count what would be converted; change nothing")
    args = parser.parse_args(argv)
    collections = args.collections or list(DEFAULT_COLLECTIONS)
    total = 0
    for uri in args.uris:
        kind = StorageBase.type(uri)
        if kind not in ("mongodb", "redis"):
            parser.error(f"{redact(uri)}: pyop 3 stored records in MongoDB and Redis only")
        for collection in collections:
            store = StorageBase.from_uri(uri, collection, db_name=args.db_name)
            try:
                report = migrate_store(store, dry_run=args.dry_run)
                if collection == args.subject_identifiers:
                    migrate_subject_identifiers(store, dry_run=args.dry_run, report=report)
            finally:
                store.close()
            total += report.changes
            for line in _describe(report, args.dry_run):
                print(f"{redact(uri)} {collection}: {line}", file=out)
    if args.dry_run:
        print(f"dry run: {total} change(s) would be made", file=out)
    else:
        print(f"{total} change(s) made", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
