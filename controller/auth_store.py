"""The Local Authorization List and the Authorization Cache, on their own database.

Both live in `auth.db` in the state directory (see controller.authorizer, which
opens it: WAL, synchronous=FULL, autocommit), so a list update is as durable as
a transaction record and a power cut mid-update leaves the old list or the new
one, never a mix. A list entry's OCPP 2.0.1 token type, if the list named one,
is kept beside it and changes with it.

Card taps must not wear the SD card: a lookup never writes. The cache's
least-recently-used order is kept in memory between writes and folded into the
next write the cache makes anyway (`cache_update`, after an Authorize.conf).
Losing that order in a power cut only makes eviction slightly less accurate.

Not thread-safe: a transaction here spans several statements; use one
connection from one thread (the Authorizer has a writer and a reader).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC
from typing import Any

from controller.core.authorization import IdTagInfo, parse_datetime

DEFAULT_CACHE_CAPACITY = 10_000

# idTags are OCPP CiString20: case-insensitive ASCII, hence COLLATE NOCASE on the
# key. WITHOUT ROWID: the rows are small and always found by key, so they live in
# the key's B-tree itself; one seek per lookup, no separate index.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS local_list (
        id_tag TEXT PRIMARY KEY COLLATE NOCASE,
        status TEXT NOT NULL,
        expiry TEXT,
        parent_id_tag TEXT) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS local_list_meta (
        key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS auth_cache (
        id_tag TEXT PRIMARY KEY COLLATE NOCASE,
        status TEXT NOT NULL,
        expiry TEXT,
        parent_id_tag TEXT,
        last_used INTEGER NOT NULL) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS auth_cache_lru ON auth_cache (last_used)",
    # The token type an entry's CSMS named, where the station must remember it (OCPP
    # 2.0.1 reports it with the token); written and dropped with its entry.
    """CREATE TABLE IF NOT EXISTS local_list_type (
        id_tag TEXT PRIMARY KEY COLLATE NOCASE, type TEXT NOT NULL) WITHOUT ROWID""",
)


class AuthStore:
    """Local Authorization List (versioned, replaced or patched atomically) and
    Authorization Cache (bounded, least recently used evicted)."""

    def __init__(
        self, db: sqlite3.Connection, cache_capacity: int = DEFAULT_CACHE_CAPACITY
    ) -> None:
        if cache_capacity < 1:
            raise ValueError("cache_capacity must be at least 1")
        self._db = db
        self.cache_capacity = cache_capacity
        with self._transaction():
            for statement in _SCHEMA:
                db.execute(statement)
            self._evict()  # the capacity may have been lowered since the last run
        # A logical clock, not wall time: the station's clock may jump when the
        # CSMS sets it, and only the order matters.
        row = db.execute("SELECT max(last_used) FROM auth_cache").fetchone()
        self._clock = int(row[0] or 0)
        self._touched: dict[str, int] = {}  # id_tag as stored → last_used not yet on disk

    # --- Local Authorization List -----------------------------------------------------

    def list_version(self) -> int:
        """The GetLocalListVersion answer: 0 when the list is empty, else the version
        the last SendLocalList set."""
        if self._db.execute("SELECT 1 FROM local_list LIMIT 1").fetchone() is None:
            return 0
        row = self._db.execute("SELECT value FROM local_list_meta WHERE key = 'version'")
        found = row.fetchone()
        return 0 if found is None else int(found[0])

    def list_size(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM local_list").fetchone()[0])

    def list_lookup(self, id_tag: str) -> IdTagInfo | None:
        row = self._db.execute(
            "SELECT status, expiry, parent_id_tag FROM local_list WHERE id_tag = ?", (id_tag,)
        ).fetchone()
        return None if row is None else _info(row[0], row[1], row[2])

    def list_token_type(self, id_tag: str) -> str | None:
        """The token type the list named for `id_tag` (None: none kept)."""
        row = self._db.execute(
            "SELECT type FROM local_list_type WHERE id_tag = ?", (id_tag,)
        ).fetchone()
        return None if row is None else str(row[0])

    def apply_full(
        self,
        version: int,
        entries: Iterable[tuple[str, IdTagInfo | None]],
        types: Mapping[str, str] | None = None,
    ) -> None:
        """Replace the whole list (SendLocalList Full) in one transaction; `types`
        (idTag -> token type, for entries with info) replace the kept token types.

        Entries without info are not stored. Raises ValueError (or TypeError) on a
        malformed list, e.g. an idTag given twice or a non-IdTagInfo; the previous
        list and version are then untouched.
        """
        _check_version(version)
        with self._transaction():
            self._db.execute("DELETE FROM local_list")
            self._db.execute("DELETE FROM local_list_type")
            try:
                self._db.executemany(
                    "INSERT INTO local_list VALUES (?, ?, ?, ?)",
                    (row for row in _rows(entries) if row[1] is not None),
                )
            except sqlite3.IntegrityError as e:
                raise ValueError(f"malformed local list: {e}") from e
            self._db.executemany(
                "INSERT OR REPLACE INTO local_list_type VALUES (?, ?)", (types or {}).items()
            )
            self._set_version(version)

    def apply_differential(
        self,
        version: int,
        entries: Iterable[tuple[str, IdTagInfo | None]],
        types: Mapping[str, str] | None = None,
    ) -> None:
        """Patch the list (SendLocalList Differential) in one transaction: an entry
        with info is added or replaced, with its token type from `types` or none, one
        without info is removed. Checking the version against the current one
        (VersionMismatch) is the caller's call."""
        _check_version(version)
        types = types or {}
        with self._transaction():
            for id_tag, status, expiry, parent in _rows(entries):
                self._db.execute("DELETE FROM local_list_type WHERE id_tag = ?", (id_tag,))
                if status is None:
                    self._db.execute("DELETE FROM local_list WHERE id_tag = ?", (id_tag,))
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO local_list VALUES (?, ?, ?, ?)",
                    (id_tag, status, expiry, parent),
                )
                if id_tag in types:
                    self._db.execute(
                        "INSERT INTO local_list_type VALUES (?, ?)", (id_tag, types[id_tag])
                    )
            self._set_version(version)

    def _set_version(self, version: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO local_list_meta VALUES ('version', ?)", (version,))

    # --- Authorization Cache ----------------------------------------------------------

    def cache_lookup(self, id_tag: str) -> IdTagInfo | None:
        """The cached info, or None; marks the entry as used, in memory only."""
        row = self._db.execute(
            "SELECT id_tag, status, expiry, parent_id_tag FROM auth_cache WHERE id_tag = ?",
            (id_tag,),
        ).fetchone()
        if row is None:
            return None
        self._clock += 1
        self._touched[row[0]] = self._clock
        return _info(row[1], row[2], row[3])

    def cache_update(self, id_tag: str, info: IdTagInfo) -> None:
        """Store the CSMS's latest answer for an idTag, as the most recently used
        entry, evicting the least recently used beyond `cache_capacity`."""
        ((tag, status, expiry, parent),) = _rows([(id_tag, info)])
        with self._transaction():
            self._flush_touched()
            self._clock += 1
            self._db.execute(
                "INSERT OR REPLACE INTO auth_cache VALUES (?, ?, ?, ?, ?)",
                (tag, status, expiry, parent, self._clock),
            )
            self._evict()

    def cache_clear(self) -> None:
        """ClearCache."""
        with self._transaction():
            self._db.execute("DELETE FROM auth_cache")
        self._touched.clear()

    def cache_size(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM auth_cache").fetchone()[0])

    def flush(self) -> None:
        """Write the cache's in-memory usage order to disk (e.g. at shutdown).
        Optional: without it only the order since the last cache_update is lost."""
        if self._touched:
            with self._transaction():
                self._flush_touched()

    def _flush_touched(self) -> None:
        self._db.executemany(
            "UPDATE auth_cache SET last_used = ? WHERE id_tag = ?",
            [(used, tag) for tag, used in self._touched.items()],
        )
        self._touched.clear()

    def _evict(self) -> None:
        excess = self.cache_size() - self.cache_capacity
        if excess > 0:
            self._db.execute(
                "DELETE FROM auth_cache WHERE id_tag IN"
                " (SELECT id_tag FROM auth_cache ORDER BY last_used LIMIT ?)",
                (excess,),
            )

    # --- plumbing ---------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception.

    Explicit, because the connection is in autocommit mode (isolation_level=None),
    where `with connection:` does not open a transaction at all.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except BaseException:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        # Some errors (SQLITE_FULL, SQLITE_IOERR) have rolled back already.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")


def _check_version(version: int) -> None:
    # SQLite INTEGER is 64-bit: a larger version would fail half-way with OverflowError.
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**63:
        raise ValueError(f"list version must be an integer in 0..2**63-1, got {version!r}")


def _rows(
    entries: Iterable[tuple[str, IdTagInfo | None]],
) -> Iterator[tuple[str, str | None, str | None, str | None]]:
    """Validated rows (id_tag, status, expiry, parent); status None means "no info"."""
    for id_tag, info in entries:
        if not isinstance(id_tag, str) or not id_tag:
            raise ValueError(f"idTag must be a non-empty string, got {id_tag!r}")
        if info is None:
            yield id_tag, None, None, None
        elif isinstance(info, IdTagInfo):
            # Microseconds, not the milliseconds OCPP messages carry: exact round trip.
            expiry = None if info.expiry is None else info.expiry.astimezone(UTC).isoformat()
            yield id_tag, info.status, expiry, info.parent_id_tag
        else:
            raise TypeError(f"info for {id_tag!r} must be IdTagInfo or None, got {info!r}")


def _info(status: str, expiry: str | None, parent: str | None) -> IdTagInfo:
    return IdTagInfo(status, None if expiry is None else parse_datetime(expiry), parent)
