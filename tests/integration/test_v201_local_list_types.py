"""OCPP 2.0.1 token types of the local list: a list of thousands of entries is answered,
its tokens start with the type it gave them, a refused list changes no type, and a new
Full list drops the old list's types but not those a request named."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon
from tests.integration.v201 import ended_event, make_201, start_session_201

LISTED = "10000BB8"  # in the first list, as a KeyCode (the station would guess ISO14443)
REMOTE = "AABBCCDD"  # named by a RequestStartTransaction as a Local token


@pytest.fixture
def csms() -> Iterator[CsmsThread]:
    accepted = {CARD: "Accepted", LISTED: "Accepted", REMOTE: "Accepted"}
    with CsmsThread(id_tags=accepted, subprotocols=("ocpp2.0.1",)) as central:
        yield central


@pytest.fixture
def station(make_daemon: Callable[..., Daemon]) -> Callable[..., Daemon]:
    return make_201(make_daemon)


def entry(value: str, kind: str) -> dict[str, Any]:
    return {"idToken": {"idToken": value, "type": kind}, "idTokenInfo": {"status": "Accepted"}}


def big_list(entries: int) -> list[dict[str, Any]]:
    """Cards 0x10000000 on, every other one a KeyCode (a type the station must keep)."""
    return [
        entry(f"{0x10000000 + n:08X}", "KeyCode" if n % 2 == 0 else "ISO14443")
        for n in range(entries)
    ]


def send_list(csms: CsmsThread, version: int, full: bool, entries: list[dict[str, Any]]) -> str:
    request = {
        "versionNumber": version,
        "updateType": "Full" if full else "Differential",
        "localAuthorizationList": entries,
    }
    return str(csms.call("SendLocalList", request, timeout=60.0)["status"])


def test_a_big_list_is_answered_and_its_token_starts_with_its_type(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(keys={"LocalAuthListEnabled": True})
    csms.wait_for("BootNotification")
    entries = big_list(4000)
    assert entry(LISTED, "KeyCode") in entries
    assert send_list(csms, 5, True, entries) == "Accepted"
    assert csms.call("GetLocalListVersion", {}) == {"versionNumber": 5}
    # Refused lists (a stale version; a token listed twice) name the token otherwise:
    # neither may change its type.
    assert send_list(csms, 5, False, [entry(LISTED, "eMAID")]) == "VersionMismatch"
    twice = [entry(LISTED, "MacAddress"), *entries[1:], entry(LISTED, "MacAddress")]
    assert send_list(csms, 6, True, twice) == "Failed"
    assert csms.call("GetLocalListVersion", {}) == {"versionNumber": 5}

    started = start_session_201(daemon, csms, card=LISTED)
    assert started["idToken"] == {"idToken": LISTED, "type": "KeyCode"}


def test_a_full_list_drops_the_old_lists_types_but_not_a_requests(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = station(keys={"LocalAuthListEnabled": True})
    csms.wait_for("BootNotification")
    assert send_list(csms, 1, True, [entry(LISTED, "KeyCode")]) == "Accepted"
    mark = csms.mark()
    # Named by the request, started only once the EV is plugged in: after the new list.
    token = {"idToken": REMOTE, "type": "Local"}
    request = {"remoteStartId": 9, "idToken": token, "evseId": 1}
    assert csms.call("RequestStartTransaction", request)["status"] == "Accepted"
    assert send_list(csms, 2, True, [entry(CARD, "ISO14443")]) == "Accepted"
    daemon.request("plug", connector=1)
    started = csms.wait_for_record(
        "TransactionEvent", lambda p: p["eventType"] == "Started", after=mark
    ).payload
    assert started["idToken"] == token
    daemon.request("unplug", connector=1)
    ended_event(csms, after=mark)

    # LISTED left the list, and its KeyCode with it: the CSMS is asked about a card.
    mark = csms.mark()
    daemon.request("card", uid=LISTED)
    assert csms.wait_for("Authorize", after=mark)["idToken"] == {
        "idToken": LISTED,
        "type": "ISO14443",
    }
