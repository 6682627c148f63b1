"""Local Authorization List and Authorization Cache on the station's SQLite database."""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from controller.auth_store import AuthStore
from controller.core.authorization import IdTagInfo
from controller.store import Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OK = IdTagInfo("Accepted", T0 + timedelta(days=30), "FLEET")
BLOCKED = IdTagInfo("Blocked")


def connect(path: Path) -> sqlite3.Connection:
    """A connection configured like the Store's."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "evsed.db"


@pytest.fixture
def auth(db_path: Path) -> Iterator[AuthStore]:
    db = connect(db_path)
    yield AuthStore(db)
    db.close()


# --- Local Authorization List ---------------------------------------------------------


def test_empty_list_is_version_zero(auth: AuthStore) -> None:
    assert auth.list_version() == 0
    assert auth.list_size() == 0
    assert auth.list_lookup("A") is None


def test_full_update_replaces_the_whole_list(auth: AuthStore) -> None:
    auth.apply_full(3, [("A", OK), ("B", BLOCKED), ("GONE", None)])
    assert auth.list_version() == 3
    assert auth.list_size() == 2
    assert auth.list_lookup("A") == OK
    assert auth.list_lookup("B") == BLOCKED
    assert auth.list_lookup("GONE") is None  # no info: not stored

    auth.apply_full(4, [("C", OK)])
    assert auth.list_version() == 4
    assert auth.list_size() == 1
    assert auth.list_lookup("A") is None
    assert auth.list_lookup("C") == OK


def test_an_empty_full_list_clears_it_and_reports_version_zero(auth: AuthStore) -> None:
    auth.apply_full(3, [("A", OK)])
    auth.apply_full(7, [])
    assert auth.list_size() == 0
    assert auth.list_version() == 0  # GetLocalListVersion: 0 means empty


def test_differential_update_upserts_and_deletes(auth: AuthStore) -> None:
    auth.apply_full(1, [("A", OK), ("B", OK), ("C", OK)])
    auth.apply_differential(2, [("A", BLOCKED), ("B", None), ("D", OK), ("NOT-THERE", None)])
    assert auth.list_version() == 2
    assert auth.list_size() == 3
    assert auth.list_lookup("A") == BLOCKED
    assert auth.list_lookup("B") is None
    assert auth.list_lookup("C") == OK
    assert auth.list_lookup("D") == OK


def test_differential_entries_apply_in_order(auth: AuthStore) -> None:
    auth.apply_differential(1, [("A", OK), ("A", None), ("B", OK), ("B", BLOCKED)])
    assert auth.list_lookup("A") is None
    assert auth.list_lookup("B") == BLOCKED


def test_differential_removing_everything_reports_version_zero(auth: AuthStore) -> None:
    auth.apply_full(5, [("A", OK)])
    auth.apply_differential(6, [("A", None)])
    assert auth.list_version() == 0
    auth.apply_differential(7, [("B", OK)])
    assert auth.list_version() == 7


def test_id_tags_are_case_insensitive(auth: AuthStore) -> None:
    """OCPP idTags are CiString20."""
    auth.apply_full(1, [("04a2b3c4", OK)])
    assert auth.list_lookup("04A2B3C4") == OK
    auth.apply_differential(2, [("04A2B3C4", None)])
    assert auth.list_size() == 0
    with pytest.raises(ValueError):
        auth.apply_full(3, [("abc", OK), ("ABC", BLOCKED)])


def broken_after(n: int) -> Iterator[tuple[str, IdTagInfo | None]]:
    """A list that fails to parse halfway, like a SendLocalList with a bad entry."""
    for i in range(n):
        yield f"NEW{i}", OK
    raise ValueError("bad entry")


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        (broken_after(500), ValueError),
        ([("NEW0", OK), ("NEW1", OK), ("NEW0", BLOCKED)], ValueError),  # idTag twice
        ([("NEW0", OK), ("NEW1", {"status": "Accepted"})], TypeError),  # not an IdTagInfo
        ([("NEW0", OK), ("", OK)], ValueError),  # no idTag
    ],
    ids=["raises-midway", "duplicate", "wrong-type", "empty-tag"],
)
def test_a_failed_full_update_leaves_the_previous_list(
    auth: AuthStore, entries: list[tuple[str, IdTagInfo | None]], error: type[Exception]
) -> None:
    auth.apply_full(3, [("A", OK), ("B", BLOCKED)])
    with pytest.raises(error):
        auth.apply_full(4, entries)
    assert auth.list_version() == 3
    assert auth.list_size() == 2
    assert auth.list_lookup("A") == OK
    assert auth.list_lookup("NEW0") is None
    auth.apply_full(5, [("C", OK)])  # and the store still works
    assert auth.list_version() == 5


def test_a_failed_differential_update_changes_nothing(auth: AuthStore) -> None:
    auth.apply_full(3, [("A", OK), ("B", BLOCKED)])
    entries: list[tuple[str, IdTagInfo | None]] = [("A", None), ("C", OK), ("", OK)]
    with pytest.raises(ValueError):
        auth.apply_differential(4, entries)
    assert auth.list_version() == 3
    assert auth.list_lookup("A") == OK
    assert auth.list_lookup("C") is None


@pytest.mark.parametrize("version", [-1, True])
def test_bad_versions_are_refused(auth: AuthStore, version: int) -> None:
    with pytest.raises(ValueError):
        auth.apply_full(version, [("A", OK)])
    with pytest.raises(ValueError):
        auth.apply_differential(version, [("A", OK)])
    assert auth.list_size() == 0


def test_list_survives_reopening_the_database(db_path: Path) -> None:
    db = connect(db_path)
    AuthStore(db).apply_full(9, [("A", OK), ("B", BLOCKED)])
    db.close()

    db = connect(db_path)
    auth = AuthStore(db)
    assert auth.list_version() == 9
    assert auth.list_lookup("A") == OK
    assert auth.list_lookup("B") == BLOCKED
    db.close()


@pytest.mark.parametrize(
    "info",
    [
        IdTagInfo("Accepted"),
        IdTagInfo("Accepted", datetime(2026, 3, 1, 12, 0, 0, 123_456, tzinfo=UTC)),
        IdTagInfo("Accepted", datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))),
        IdTagInfo("Expired", T0, "PARENT"),
        IdTagInfo("ConcurrentTx", None, "PARENT"),
    ],
)
def test_info_round_trips_through_list_and_cache(db_path: Path, info: IdTagInfo) -> None:
    db = connect(db_path)
    auth = AuthStore(db)
    auth.apply_full(1, [("A", info)])
    auth.cache_update("A", info)
    db.close()

    db = connect(db_path)
    auth = AuthStore(db)
    for found in (auth.list_lookup("A"), auth.cache_lookup("A")):
        assert found == info  # the same instant (stored as UTC), status and parent
    db.close()


# --- Authorization Cache --------------------------------------------------------------


def test_cache_update_and_lookup(auth: AuthStore) -> None:
    assert auth.cache_lookup("A") is None
    auth.cache_update("A", OK)
    auth.cache_update("A", BLOCKED)  # the latest answer wins
    assert auth.cache_lookup("a") == BLOCKED
    assert auth.cache_size() == 1


def test_cache_evicts_the_least_recently_used(db_path: Path) -> None:
    db = connect(db_path)
    auth = AuthStore(db, cache_capacity=3)
    for tag in "ABC":
        auth.cache_update(tag, OK)
    auth.cache_lookup("A")  # A is now more recent than B and C
    auth.cache_update("D", OK)
    assert auth.cache_size() == 3
    assert auth.cache_lookup("B") is None
    assert [t for t in "ACD" if auth.cache_lookup(t) is None] == []
    auth.cache_update("C", BLOCKED)  # an update counts as a use, and does not grow the cache
    auth.cache_update("E", OK)
    assert auth.cache_size() == 3
    assert auth.cache_lookup("A") is None  # used before D and C
    db.close()


def test_cache_usage_order_survives_reopen_after_flush(db_path: Path) -> None:
    db = connect(db_path)
    auth = AuthStore(db, cache_capacity=2)
    auth.cache_update("A", OK)
    auth.cache_update("B", OK)
    auth.cache_lookup("A")
    auth.flush()
    db.close()

    db = connect(db_path)
    auth = AuthStore(db, cache_capacity=2)
    auth.cache_update("C", OK)
    assert auth.cache_lookup("B") is None
    assert auth.cache_lookup("A") == OK
    db.close()


def test_lowering_the_capacity_trims_the_cache_on_open(db_path: Path) -> None:
    db = connect(db_path)
    auth = AuthStore(db)
    for i in range(10):
        auth.cache_update(f"T{i}", OK)
    db.close()

    db = connect(db_path)
    auth = AuthStore(db, cache_capacity=4)
    assert auth.cache_size() == 4
    assert [i for i in range(10) if auth.cache_lookup(f"T{i}") is not None] == [6, 7, 8, 9]
    db.close()


def test_cache_clear(auth: AuthStore) -> None:
    auth.apply_full(1, [("A", OK)])
    auth.cache_update("A", OK)
    auth.cache_update("B", OK)
    auth.cache_lookup("B")
    auth.cache_clear()
    assert auth.cache_size() == 0
    assert auth.cache_lookup("B") is None
    assert auth.list_lookup("A") == OK  # ClearCache leaves the list alone
    auth.flush()  # nothing pending for the cleared entries
    auth.cache_update("C", OK)
    assert auth.cache_size() == 1


def test_capacity_must_be_positive(db_path: Path) -> None:
    db = connect(db_path)
    with pytest.raises(ValueError):
        AuthStore(db, cache_capacity=0)
    db.close()


def test_lookups_write_nothing(auth: AuthStore) -> None:
    """A card tap must not cost an SD-card write."""
    auth.apply_full(1, [("A", OK)])
    auth.cache_update("B", OK)
    db = auth._db
    before = db.total_changes
    for _ in range(100):
        auth.list_lookup("A")
        auth.list_lookup("nope")
        auth.cache_lookup("B")
        auth.cache_lookup("nope")
        auth.list_version()
    assert db.total_changes == before
    assert not db.in_transaction


# --- the station's own database -------------------------------------------------------


def test_shares_the_stores_connection(db_path: Path) -> None:
    store = Store(db_path)
    auth = AuthStore(store._db)
    auth.apply_full(2, [("A", OK)])
    auth.cache_update("B", BLOCKED)
    store.set_config_key("LocalAuthListEnabled", "true")
    tx = store.begin_transaction(1, "A", "FLEET", 0.0, "2026-03-01T12:00:00.000Z")
    assert auth.list_lookup("A") == OK  # works with the Store's sqlite3.Row factory
    assert auth.cache_lookup("B") == BLOCKED
    store.close()

    store = Store(db_path)
    auth = AuthStore(store._db)
    assert auth.list_version() == 2
    assert store.transaction(tx) is not None
    assert store.config_keys() == {"LocalAuthListEnabled": "true"}
    store.close()


# --- size -----------------------------------------------------------------------------


def test_a_100k_entry_list(auth: AuthStore) -> None:
    """Correctness at a realistic maximum; the times are printed, not asserted."""
    n = 100_000
    entries = [
        (f"{i * 2654435761 % 2**32:08X}{i:06d}", OK if i % 10 else BLOCKED) for i in range(n)
    ]
    start = time.perf_counter()
    auth.apply_full(42, entries)
    applied_s = time.perf_counter() - start

    assert auth.list_size() == n
    assert auth.list_version() == 42
    lookup_ns = []
    for tag, info in entries[::1000]:
        start_ns = time.perf_counter_ns()
        found = auth.list_lookup(tag)
        lookup_ns.append(time.perf_counter_ns() - start_ns)
        assert found == info
    assert auth.list_lookup("NOT-IN-THE-LIST") is None
    print(
        f"\napply_full of {n} entries: {applied_s:.3f} s;"
        f" median list_lookup: {statistics.median(lookup_ns) / 1000:.1f} µs"
    )
