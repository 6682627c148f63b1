"""Keyed records: one lookup by key, and many written in one atomic write."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controller.store import Store


def test_record_finds_one_key_of_one_kind(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    store.put_record("colour", "A", {"v": 1})
    store.put_record("shape", "A", "round")
    assert store.record("colour", "A") == {"v": 1}
    assert store.record("shape", "A") == "round"
    assert store.record("colour", "B") is None
    assert store.record("size", "A") is None


def test_put_records_adds_and_replaces_and_survives_a_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    store.put_record("types", "KEPT", "Local")
    store.put_record("types", "A", "old")
    store.put_records("types", {"A": "new", "B": ["x", 2], "C": None})
    store.put_records("types", {})  # nothing to write: nothing changes
    store.close()
    store = Store(tmp_path / "evsed.db")
    assert store.records("types") == {"KEPT": "Local", "A": "new", "B": ["x", 2], "C": None}
    assert store.record("types", "B") == ["x", 2]


def test_put_records_writes_all_or_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    store.put_record("types", "A", "old")
    broken: dict[Any, Any] = {"A": "new", "B": "fine", ("not", "a", "key"): "x"}
    with pytest.raises(sqlite3.Error):
        store.put_records("types", broken)
    assert store.records("types") == {"A": "old"}
    store.put_records("types", {"B": "after"})  # no transaction was left open
    assert store.records("types") == {"A": "old", "B": "after"}
