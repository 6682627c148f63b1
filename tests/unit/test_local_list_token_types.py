"""2.0.1 token types: those of the local list kept with the list (replaced and dropped
with it), those a request named kept in the store, each found by one keyed lookup."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.auth_store import AuthStore
from controller.authorizer import Authorizer
from controller.core.authorization import IdTagInfo
from controller.ocpp.v201.id_tokens import TYPES_KIND, TokenTypes, local_list_entry
from controller.store import Store

OK = IdTagInfo("Accepted")


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[AuthStore]:
    db = sqlite3.connect(tmp_path / "auth.db", isolation_level=None)
    yield AuthStore(db)
    db.close()


def test_a_full_list_replaces_the_kept_types(auth: AuthStore) -> None:
    auth.apply_full(1, [("A", OK), ("B", OK)], {"A": "Local", "B": "eMAID"})
    assert (auth.list_token_type("A"), auth.list_token_type("B")) == ("Local", "eMAID")
    assert auth.list_token_type("a") == "Local"  # idTags compare without case
    auth.apply_full(2, [("A", OK), ("C", OK)], {"C": "KeyCode"})
    assert auth.list_token_type("A") is None  # listed again without a type to keep
    assert auth.list_token_type("B") is None  # gone with its entry
    assert auth.list_token_type("C") == "KeyCode"
    auth.apply_full(3, [("C", OK)])  # a 1.6 list names no types
    assert auth.list_token_type("C") is None


def test_a_differential_list_sets_clears_and_drops_types(auth: AuthStore) -> None:
    auth.apply_full(1, [("A", OK), ("B", OK), ("C", OK)], {"A": "Local", "B": "Local"})
    auth.apply_differential(
        2, [("A", OK), ("B", None), ("C", OK), ("D", OK)], {"C": "eMAID", "D": "Central"}
    )
    assert auth.list_token_type("A") is None  # replaced without a type
    assert auth.list_token_type("B") is None  # removed
    assert (auth.list_token_type("C"), auth.list_token_type("D")) == ("eMAID", "Central")
    auth.apply_differential(3, [("e", OK), ("E", OK)], {"E": "Local"})
    assert auth.list_token_type("e") == "Local"  # the later entry of the same idTag


def test_a_malformed_list_changes_no_type(auth: AuthStore) -> None:
    auth.apply_full(1, [("A", OK)], {"A": "Local"})
    with pytest.raises(ValueError):
        auth.apply_full(2, [("B", OK), ("B", OK)], {"B": "eMAID"})
    not_info: Any = "not info"
    with pytest.raises(TypeError):
        auth.apply_differential(2, [("A", OK), ("B", not_info)], {"A": "eMAID"})
    assert (auth.list_token_type("A"), auth.list_token_type("B")) == ("Local", None)


def test_the_authorizer_keeps_the_last_type_an_entry_named(tmp_path: Path) -> None:
    authorizer = Authorizer(tmp_path / "auth.db")
    accepted = {"status": "Accepted"}
    entries: list[dict[str, Any]] = [
        {"idTag": "A", "idTagInfo": accepted, "tokenType": "Local"},
        {"idTag": "B", "idTagInfo": accepted, "tokenType": "Local"},
        {"idTag": "B", "idTagInfo": accepted},  # the last word on B: no type
        {"idTag": "C", "tokenType": "Local"},  # no info: not listed, no type
    ]
    try:
        asyncio.run(authorizer.apply_list(1, False, entries))
        assert authorizer.list_size() == 2
        found = [authorizer.list_token_type(tag) for tag in ("A", "B", "C")]
        assert found == ["Local", None, None]
    finally:
        authorizer.close()


def test_only_a_type_the_station_would_not_guess_goes_with_the_entry() -> None:
    def entry(value: str, kind: str) -> dict[str, Any]:
        return local_list_entry(
            {"idToken": {"idToken": value, "type": kind}, "idTokenInfo": {"status": "Accepted"}}
        )

    assert "tokenType" not in entry("04A1B2C3D4E5F6", "ISO14443")
    assert "tokenType" not in entry("user-17", "Central")
    assert entry("04A1B2C3D4E5F6", "ISO15693")["tokenType"] == "ISO15693"
    assert entry("user-17", "eMAID")["tokenType"] == "eMAID"
    removed = local_list_entry({"idToken": {"idToken": "1234ABCD", "type": "Local"}})
    assert removed == {"idTag": "1234ABCD", "tokenType": "Local"}


def test_a_requests_type_comes_before_the_lists_and_both_before_a_guess(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "evsed.db")
    listed = {"AABBCCDD": "Local", "REMOTE": "Local"}
    tokens = TokenTypes(store, "FREE", listed.get)
    tokens.learn({"idToken": "REMOTE", "type": "eMAID"}, {"idToken": "GROUP", "type": "Local"})
    assert store.records(TYPES_KIND) == {"REMOTE": "eMAID", "GROUP": "Local"}
    assert tokens.id_token("REMOTE") == {"idToken": "REMOTE", "type": "eMAID"}
    assert tokens.id_token("AABBCCDD") == {"idToken": "AABBCCDD", "type": "Local"}
    assert tokens.id_token("11223344") == {"idToken": "11223344", "type": "ISO14443"}
    assert tokens.id_token("someone") == {"idToken": "someone", "type": "Central"}
    assert tokens.id_token("FREE") == {"idToken": "", "type": "NoAuthorization"}
    tokens.learn({"idToken": "REMOTE", "type": "Central"})
    assert tokens.id_token("REMOTE")["type"] == "Central"
