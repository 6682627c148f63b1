"""The station's durable memory: one SQLite database in the state directory.

Everything that must survive a power cut is committed here *before* it is
acted on or sent: configuration keys the CSMS set, availability, each
transaction, and each transaction event in send order (the outbox).

WAL with synchronous=FULL: a commit is on the card when `commit()` returns, and
a cut at any instant leaves the database consistent.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
SCHEMA_VERSION = 1
FAILED_KEPT = 1000  # messages given up, kept for diagnostics

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS config_keys (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS availability (
    connector INTEGER PRIMARY KEY, operative INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    connector INTEGER NOT NULL,
    id_tag TEXT NOT NULL,
    parent_id_tag TEXT,
    meter_start_wh REAL NOT NULL,
    started_at TEXT NOT NULL,
    csms_id INTEGER,
    id_tag_status TEXT,
    meter_stop_wh REAL,
    stopped_at TEXT,
    stop_reason TEXT,
    stop_id_tag TEXT,
    checkpoint_wh REAL,
    checkpoint_at TEXT);
CREATE INDEX IF NOT EXISTS tx_open ON transactions (connector) WHERE stopped_at IS NULL;
CREATE TABLE IF NOT EXISTS tx_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_id INTEGER NOT NULL REFERENCES transactions(id),
    meter_value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    tx_id INTEGER REFERENCES transactions(id),
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE state = 'pending';
"""


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    id: int
    connector: int
    id_tag: str
    parent_id_tag: str | None
    meter_start_wh: float
    started_at: str
    csms_id: int | None
    id_tag_status: str | None
    meter_stop_wh: float | None
    stopped_at: str | None
    stop_reason: str | None
    stop_id_tag: str | None
    checkpoint_wh: float | None
    checkpoint_at: str | None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A transaction event in protocol-neutral form; each OCPP layer renders it."""

    id: int
    kind: str  # "start", "meter", "stop"; 2.0.1: "state" (charging state), "trigger" (F06)
    data: dict[str, Any]
    tx_id: int | None
    attempts: int


class Store:
    """`budget_bytes`: what the queue of undelivered events (and the StopTxn data of open
    transactions) may take; None = no limit. Start and stop events are always kept;
    periodic meter values are thinned to stay within it (see `thin`)."""

    def __init__(self, path: Path, budget_bytes: int | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.budget_bytes = budget_bytes
        # Owner-only, whatever the umask: it holds the CSMS password (AuthorizationKey).
        # SQLite gives the -wal and -shm files the database file's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{path}{suffix}", 0o600)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # A big local-list update grows the WAL; give the space back after checkpoints.
        self._db.execute("PRAGMA journal_size_limit=4194304")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self.set_meta("schema_version", str(SCHEMA_VERSION))
        self.queued_bytes = self._measure_queue()
        self._shared: dict[str, Any] = {}

    def shared(self, name: str, make: Callable[[], T]) -> T:
        """The station's one `name` object (its security state, firmware job, log
        uploads), made by the first OCPP layer that asks; it lives as long as the store."""
        if name not in self._shared:
            self._shared[name] = make()
        found: T = self._shared[name]
        return found

    def _measure_queue(self) -> int:
        pending = self._db.execute(
            "SELECT coalesce(sum(length(data)), 0) FROM outbox WHERE state = 'pending'"
        ).fetchone()[0]
        kept = self._db.execute("SELECT coalesce(sum(length(meter_value)), 0) FROM tx_data")
        return int(pending) + int(kept.fetchone()[0])

    def close(self) -> None:
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """For stores of other parts (authorization) that keep their tables here."""
        return self._db

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """One atomic write: everything inside is on the card together, or not at all.
        (With isolation_level=None, sqlite3's own `with connection:` opens no transaction.)"""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, args)  # one statement commits on its own

    # --- meta, keys, availability -------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._write("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def config_keys(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._db.execute("SELECT name, value FROM config_keys")}

    def set_config_key(self, name: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO config_keys VALUES (?, ?)", (name, value))

    # --- records: small JSON documents of the features (reservations, profiles, ...) -------

    def records(self, kind: str) -> dict[str, Any]:
        rows = self._db.execute("SELECT key, value FROM records WHERE kind = ?", (kind,))
        return {r[0]: json.loads(r[1]) for r in rows}

    def record(self, kind: str, key: str) -> Any | None:
        """One record (None if absent): a lookup on the key, whatever the kind holds."""
        row = self._db.execute(
            "SELECT value FROM records WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def put_record(self, kind: str, key: str, value: Any) -> None:
        self._write(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?)", (kind, key, json.dumps(value))
        )

    def put_records(self, kind: str, items: Mapping[str, Any]) -> None:
        """Add or replace several records of `kind` in one atomic write."""
        with self.atomic():
            self._db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                [(kind, key, json.dumps(value)) for key, value in items.items()],
            )

    def delete_record(self, kind: str, key: str) -> None:
        self._write("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))

    def replace_records(self, kind: str, records: dict[str, Any]) -> None:
        """All records of `kind` become `records`, atomically."""
        with self.atomic():
            self._db.execute("DELETE FROM records WHERE kind = ?", (kind,))
            self._db.executemany(
                "INSERT INTO records VALUES (?, ?, ?)",
                [(kind, key, json.dumps(value)) for key, value in records.items()],
            )

    def availability(self) -> dict[int, bool]:
        rows = self._db.execute("SELECT connector, operative FROM availability")
        return {r[0]: bool(r[1]) for r in rows}

    def set_availability(self, connector: int, operative: bool) -> None:
        self._write("INSERT OR REPLACE INTO availability VALUES (?, ?)", (connector, operative))

    # --- transactions -------------------------------------------------------------

    def begin_transaction(
        self,
        connector: int,
        id_tag: str,
        parent_id_tag: str | None,
        meter_start_wh: float,
        started_at: str,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Record a new transaction and queue its StartTransaction, atomically.
        `details`: protocol-neutral facts of the start kept with its event for the OCPP
        layer to render, even after a restart (e.g. {"reservation_id": 5})."""
        with self.atomic():
            cur = self._db.execute(
                "INSERT INTO transactions (connector, id_tag, parent_id_tag, meter_start_wh,"
                " started_at) VALUES (?, ?, ?, ?, ?)",
                (connector, id_tag, parent_id_tag, meter_start_wh, started_at),
            )
            tx_id = int(cur.lastrowid or 0)
            self._enqueue("start", details or {}, tx_id)
        return tx_id

    def end_transaction(
        self,
        tx_id: int,
        meter_stop_wh: float,
        stopped_at: str,
        reason: str,
        stop_id_tag: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Close a transaction and queue its StopTransaction, atomically (`details`: as
        for begin_transaction)."""
        with self.atomic():
            self._db.execute(
                "UPDATE transactions SET meter_stop_wh = ?, stopped_at = ?, stop_reason = ?,"
                " stop_id_tag = ? WHERE id = ?",
                (meter_stop_wh, stopped_at, reason, stop_id_tag, tx_id),
            )
            self._enqueue("stop", details or {}, tx_id)

    def open_transactions(self) -> list[TransactionRecord]:
        rows = self._db.execute("SELECT * FROM transactions WHERE stopped_at IS NULL ORDER BY id")
        return [_tx(r) for r in rows]

    def transaction(self, tx_id: int) -> TransactionRecord | None:
        row = self._db.execute("SELECT * FROM transactions WHERE id = ?", (tx_id,)).fetchone()
        return None if row is None else _tx(row)

    def recent_transactions(self, limit: int) -> list[TransactionRecord]:
        """The newest `limit` transactions, newest first (for diagnostics)."""
        rows = self._db.execute("SELECT * FROM transactions ORDER BY id DESC LIMIT ?", (limit,))
        return [_tx(r) for r in rows]

    def transaction_by_csms_id(self, csms_id: int) -> TransactionRecord | None:
        row = self._db.execute(
            "SELECT * FROM transactions WHERE csms_id = ? ORDER BY id DESC", (csms_id,)
        ).fetchone()
        return None if row is None else _tx(row)

    def set_csms_transaction_id(self, tx_id: int, csms_id: int, id_tag_status: str) -> None:
        self._write(
            "UPDATE transactions SET csms_id = ?, id_tag_status = ? WHERE id = ?",
            (csms_id, id_tag_status, tx_id),
        )

    def set_transaction_time(self, tx_id: int, column: str, stamp: str) -> None:
        """Replace a provisional stamp (see StationClock) with the wall time it was
        first sent with, so that a re-send of the message carries the same time."""
        if column not in ("started_at", "stopped_at"):
            raise ValueError(f"not a transaction time: {column!r}")
        self._write(f"UPDATE transactions SET {column} = ? WHERE id = ?", (stamp, tx_id))

    def checkpoint(self, tx_id: int, energy_wh: float, at: str) -> None:
        """The latest energy reading of a running transaction, for closing it after a crash."""
        self._write(
            "UPDATE transactions SET checkpoint_wh = ?, checkpoint_at = ? WHERE id = ?",
            (energy_wh, at, tx_id),
        )

    def add_tx_data(self, tx_id: int, meter_value: dict[str, Any]) -> None:
        text = json.dumps(meter_value)
        self._write("INSERT INTO tx_data (tx_id, meter_value) VALUES (?, ?)", (tx_id, text))
        self.queued_bytes += len(text)

    def drop_tx_data(self, tx_id: int) -> None:
        """A transaction's StopTxn data, reported at last (plain write: see mark_delivered)."""
        freed = self._db.execute(
            "DELETE FROM tx_data WHERE tx_id = ? RETURNING length(meter_value)", (tx_id,)
        ).fetchall()
        self.queued_bytes -= sum(r[0] for r in freed)

    def tx_data(self, tx_id: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT meter_value FROM tx_data WHERE tx_id = ? ORDER BY id", (tx_id,)
        )
        return [json.loads(r[0]) for r in rows]

    # --- outbox -------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        data: dict[str, Any],
        tx_id: int | None = None,
        also: Callable[[], None] | None = None,
    ) -> int:
        """Queue an event; `also`: a protocol layer's record writes (plain put_record /
        delete_record) made in the same atomic write."""
        with self.atomic():
            if also is not None:
                also()
            return self._enqueue(kind, data, tx_id)

    def start_details(self, tx_id: int) -> dict[str, Any]:
        """The details queued with a transaction's start (begin_transaction), while it waits."""
        row = self._db.execute(
            "SELECT data FROM outbox WHERE kind = 'start' AND tx_id = ? LIMIT 1", (tx_id,)
        ).fetchone()
        return {} if row is None else dict(json.loads(row[0]))

    def _enqueue(self, kind: str, data: dict[str, Any], tx_id: int | None) -> int:
        text = json.dumps(data)
        cur = self._db.execute(
            "INSERT INTO outbox (kind, data, tx_id) VALUES (?, ?, ?)", (kind, text, tx_id)
        )
        self.queued_bytes += len(text)
        return int(cur.lastrowid or 0)

    def next_message(self) -> OutboxMessage | None:
        row = self._db.execute(
            "SELECT id, kind, data, tx_id, attempts FROM outbox"
            " WHERE state = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return OutboxMessage(row[0], row[1], json.loads(row[2]), row[3], row[4])

    def record_attempt(self, message_id: int, error: str) -> int:
        with self.atomic():
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, message_id),
            )
            row = self._db.execute("SELECT attempts FROM outbox WHERE id = ?", (message_id,))
            return int(row.fetchone()[0])

    def mark_delivered(
        self,
        message_id: int,
        also: Callable[[], None] | None = None,
        keep_tx_data: bool = False,
    ) -> None:
        """The CSMS has it: forget it (and, with the stop, the transaction's StopTxn data,
        unless `keep_tx_data`: a later event still reports it). `also`: a protocol layer's
        own record writes (plain put_record / delete_record / drop_tx_data), made in the
        same atomic write, so a power cut keeps both or neither."""
        freed = 0
        with self.atomic():
            if also is not None:
                also()
            row = self._db.execute(
                "DELETE FROM outbox WHERE id = ? RETURNING kind, tx_id, length(data)",
                (message_id,),
            ).fetchone()
            if row is not None:
                freed += row[2]
                if row[0] == "stop" and row[1] is not None and not keep_tx_data:
                    freed += sum(
                        r[0]
                        for r in self._db.execute(
                            "DELETE FROM tx_data WHERE tx_id = ? RETURNING length(meter_value)",
                            (row[1],),
                        ).fetchall()
                    )
        self.queued_bytes -= freed

    def mark_failed(self, message_id: int, error: str) -> None:
        """Given up: kept (the newest FAILED_KEPT) for diagnostics, out of the queue."""
        with self.atomic():
            row = self._db.execute(
                "UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ?"
                " RETURNING length(data)",
                (error, message_id),
            ).fetchone()
            self._db.execute(
                "DELETE FROM outbox WHERE state = 'failed' AND id NOT IN"
                " (SELECT id FROM outbox WHERE state = 'failed' ORDER BY id DESC LIMIT ?)",
                (FAILED_KEPT,),
            )
        if row is not None:
            self.queued_bytes -= row[0]

    def failed_messages(self) -> list[tuple[int, str, str | None]]:
        return [
            (r[0], r[1], r[2])
            for r in self._db.execute(
                "SELECT id, kind, last_error FROM outbox WHERE state = 'failed' ORDER BY id"
            )
        ]

    def over_budget(self, adding: int) -> bool:
        return self.budget_bytes is not None and self.queued_bytes + adding > self.budget_bytes

    def thin(self) -> int:
        """Make room: halve the periodic meter values of the longest backlog, keeping
        its first and last (the curve keeps its span at half the resolution). Start
        and stop events are never touched. Returns the bytes freed; 0 = nothing left
        to thin."""
        for table, column, where in (
            ("outbox", "data", "state = 'pending' AND kind = 'meter'"),
            ("tx_data", "meter_value", "1"),
        ):
            group = self._db.execute(
                f"SELECT tx_id, count(*) AS n FROM {table} WHERE {where}"
                " GROUP BY tx_id ORDER BY n DESC LIMIT 1"
            ).fetchone()
            if group is None or group[1] < 3:
                continue
            ids = [
                r[0]
                for r in self._db.execute(
                    f"SELECT id FROM {table} WHERE {where} AND tx_id IS ? ORDER BY id",
                    (group[0],),
                )
            ]
            with self.atomic():
                freed = self._delete(table, column, ids[1:-1:2])
            self.queued_bytes -= freed
            return freed
        return 0

    def _delete(self, table: str, column: str, ids: list[int]) -> int:
        """Delete rows by id (in chunks: SQLite limits the parameters of one statement)."""
        freed = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            freed += sum(
                r[0]
                for r in self._db.execute(
                    f"DELETE FROM {table} WHERE id IN ({marks}) RETURNING length({column})",
                    chunk,
                ).fetchall()
            )
        return freed

    def pending_count(self) -> int:
        return int(
            self._db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        )

    def start_queued(self, tx_id: int) -> bool:
        """Whether the transaction's start event is still in the outbox (pending or
        given up), i.e. it was not delivered."""
        row = self._db.execute(
            "SELECT 1 FROM outbox WHERE kind = 'start' AND tx_id = ? LIMIT 1", (tx_id,)
        ).fetchone()
        return row is not None

    def has_pending(self, tx_id: int | None = None, after: int | None = None) -> bool:
        """Whether events of transaction `tx_id` (None: of any transaction) wait to be sent;
        `after`: only those queued after message `after`."""
        sql = "SELECT 1 FROM outbox WHERE state = 'pending' AND tx_id IS NOT NULL"
        args: tuple[Any, ...] = ()
        if tx_id is not None:
            sql, args = sql + " AND tx_id = ?", (tx_id,)
        if after is not None:
            sql, args = sql + " AND id > ?", (*args, after)
        return self._db.execute(sql + " LIMIT 1", args).fetchone() is not None

    def pending_unbound(self, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        """The data of the waiting events of these kinds that belong to no station
        transaction (a protocol layer's own)."""
        marks = ",".join("?" * len(kinds))
        rows = self._db.execute(
            f"SELECT data FROM outbox WHERE state = 'pending' AND tx_id IS NULL"
            f" AND kind IN ({marks})",
            kinds,
        )
        return [json.loads(r[0]) for r in rows]

    def has_pending_mentioning(self, text: str) -> bool:
        """Whether a waiting event's data holds `text` (an id a protocol layer put there
        for events that belong to no station transaction)."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        row = self._db.execute(
            "SELECT 1 FROM outbox WHERE state = 'pending' AND data LIKE ? ESCAPE '\\' LIMIT 1",
            (pattern,),
        ).fetchone()
        return row is not None


def _tx(row: sqlite3.Row) -> TransactionRecord:
    return TransactionRecord(
        id=row["id"],
        connector=row["connector"],
        id_tag=row["id_tag"],
        parent_id_tag=row["parent_id_tag"],
        meter_start_wh=row["meter_start_wh"],
        started_at=row["started_at"],
        csms_id=row["csms_id"],
        id_tag_status=row["id_tag_status"],
        meter_stop_wh=row["meter_stop_wh"],
        stopped_at=row["stopped_at"],
        stop_reason=row["stop_reason"],
        stop_id_tag=row["stop_id_tag"],
        checkpoint_wh=row["checkpoint_wh"],
        checkpoint_at=row["checkpoint_at"],
    )
