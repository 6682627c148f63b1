"""Offline authorization over OCPP 1.6J, seen from where a driver or a CSMS operator
would notice it: whether a card starts charging while the link is down, which
messages reach the CSMS once it is back (order, fields, exactly once), and the
answers to the Local Authorization List operations.

Each test runs a real daemon against the test CSMS (see harness.py). The link is
taken down with the control socket's `link_cut` (the station notices at once)
and brought back with `link_restore`. Cards are decided locally only while the
station knows it is offline; `csms.mark()` taken before a stimulus keeps earlier
messages out of the waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import pytest

from hwsim.csms import CsmsThread, Record
from tests.integration.harness import (
    CARD,
    Daemon,
    cp_calls,
    csms_answer,
    start_session,
    status_record,
)

CARD2 = "04D5E6F7"
UNKNOWN_CARD = "DEADBEEF"  # the CSMS answers Invalid
LIST_CARD = "0A0B0C01"  # only ever in the Local Authorization List, never seen online
LIST_CARD2 = "0A0B0C02"
BLOCKED_CARD = "0A0B0C03"
T = TypeVar("T")
TX_ID = 4711  # what the CSMS hands out first: distinct from the daemon's own local ids


# --- helpers -------------------------------------------------------------------------


def booted(csms: CsmsThread, after: int = 0) -> None:
    csms.wait_for("BootNotification", after=after)
    status_record(csms, "Available", connector=0, after=after)
    status_record(csms, "Available", connector=1, after=after)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def hw(daemon: Daemon, connector: int = 1) -> dict[str, Any]:
    return daemon.state()["hardware"]["connectors"][connector - 1]


def contactor_closed(daemon: Daemon, connector: int = 1) -> bool:
    return bool(hw(daemon, connector)["contactor"]["actually_closed"])


def set_meter(daemon: Daemon, wh: float) -> None:
    daemon.request("meter_set", connector=1, wh=wh)
    daemon.wait(
        lambda s: (s["connectors"][0]["meter"] or {}).get("energy_wh", -1) >= wh,
        5,
        f"meter reading {wh} Wh",
    )


def energy(daemon: Daemon) -> float:
    return float(daemon.connector()["meter"]["energy_wh"])


def go_offline(daemon: Daemon, csms: CsmsThread) -> None:
    """Cut the link and wait until both sides have noticed."""
    mark = csms.mark()
    daemon.request("link_cut")
    csms.wait_disconnected(after=mark)
    daemon.wait(lambda s: not s["ocpp"]["connected"], 5, "the station to see the link down")


def go_online(daemon: Daemon, csms: CsmsThread) -> float:
    """Restore the link; returns the wall time just before the restore."""
    restored_at = time.time()
    mark = csms.mark()
    daemon.request("link_restore")
    csms.wait_connected(after=mark)
    daemon.wait(lambda s: s["ocpp"]["connected"], 5, "the station to see the link up")
    return restored_at


def wait_log(daemon: Daemon, text: str, since: int, timeout: float = 5.0) -> None:
    """Wait for `text` in the daemon log written after offset `since`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in daemon.log()[since:]:
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout} s")


def starts_offline(daemon: Daemon, card: str) -> dict[str, Any]:
    """Present `card` (offline, cable plugged): a transaction starts for it."""
    daemon.request("card", uid=card)
    state = daemon.wait(
        lambda s: (s["connectors"][0]["transaction"] or {}).get("id_tag") == card,
        5,
        f"an offline transaction for {card}",
    )
    tx = state["connectors"][0]["transaction"]
    assert tx["csms_id"] is None, "no CSMS to give an id while offline"
    return tx


def refused_offline(daemon: Daemon, card: str) -> None:
    """Present `card` (offline, cable plugged, EV asking): it is refused, nothing starts."""
    since = len(daemon.log())
    daemon.request("card", uid=card)
    wait_log(daemon, f"card {card} refused", since)
    time.sleep(0.3)
    connector = daemon.connector()
    assert connector["transaction"] is None, f"{card} started a transaction offline"
    assert connector["authorized_id_tag"] is None
    assert connector["status"] == "Preparing"
    assert not contactor_closed(daemon)


def stops_offline(daemon: Daemon, card: str) -> None:
    daemon.request("card", uid=card)
    daemon.wait(lambda s: s["connectors"][0]["transaction"] is None, 5, "the offline stop")


def delivered(daemon: Daemon) -> None:
    daemon.wait(lambda s: s["queued_messages"] == 0, 10, "an empty outbox")


def send_list(
    csms: CsmsThread, version: int, update: str, entries: list[dict[str, Any]], timeout: float = 5
) -> str:
    payload = {"listVersion": version, "updateType": update, "localAuthorizationList": entries}
    return str(csms.call("SendLocalList", payload, timeout=timeout)["status"])


def list_version(csms: CsmsThread) -> int:
    return int(csms.call("GetLocalListVersion", {}, timeout=5)["listVersion"])


def entry(id_tag: str, status: str | None = "Accepted", **info: Any) -> dict[str, Any]:
    if status is None:
        return {"idTag": id_tag}
    return {"idTag": id_tag, "idTagInfo": {"status": status, **info}}


def get_key(csms: CsmsThread, key: str) -> str:
    answer = csms.call("GetConfiguration", {"key": [key]}, timeout=5)
    (found,) = answer["configurationKey"]
    return str(found["value"])


def change(csms: CsmsThread, key: str, value: str) -> None:
    answer = csms.call("ChangeConfiguration", {"key": key, "value": value}, timeout=5)
    assert answer == {"status": "Accepted"}, f"{key}={value}: {answer}"


# --- 1: the Authorization Cache --------------------------------------------------------


def test_cached_card_charges_offline_and_the_csms_gets_the_events_in_order(
    make_daemon, csms: CsmsThread
) -> None:
    csms.configure(next_transaction_id=TX_ID)
    daemon = make_daemon(keys={"LocalAuthorizeOffline": True})
    booted(csms)
    set_meter(daemon, 2000)

    # Online once: the CSMS accepts the card; the driver then withdraws it.
    mark = csms.mark()
    daemon.request("card", uid=CARD)
    authorize = csms.wait_for_record("Authorize", after=mark)
    assert csms_answer(csms, authorize).payload["idTagInfo"]["status"] == "Accepted"
    status_record(csms, "Preparing", after=mark)
    daemon.request("card", uid=CARD)
    status_record(csms, "Available", after=mark)

    go_offline(daemon, csms)
    offline_at = time.time()
    daemon.request("plug", connector=1)
    starts_offline(daemon, CARD)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    assert contactor_closed(daemon)
    time.sleep(1.0)  # about 3 Wh
    stops_offline(daemon, CARD)
    assert not contactor_closed(daemon)
    assert daemon.state()["queued_messages"] >= 2
    time.sleep(0.3)

    mark = csms.mark()
    restored_at = go_online(daemon, csms)
    start = csms.wait_for_record("StartTransaction", after=mark)
    stop = csms.wait_for_record("StopTransaction", after=mark)
    delivered(daemon)
    time.sleep(0.5)
    assert start.seq < stop.seq
    assert len(cp_calls(csms, mark, "StartTransaction")) == 1
    assert len(cp_calls(csms, mark, "StopTransaction")) == 1
    assert start.payload["idTag"] == CARD and start.payload["connectorId"] == 1
    assert start.payload["meterStart"] == 2000
    started = parse_time(start.payload["timestamp"])
    assert offline_at - 1.0 <= started < restored_at, "the start keeps its own time"
    tx_id = int(csms_answer(csms, start).payload["transactionId"])
    assert tx_id == TX_ID
    assert stop.payload["transactionId"] == tx_id
    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == CARD
    assert stop.payload["meterStop"] > start.payload["meterStart"]
    assert started <= parse_time(stop.payload["timestamp"]) < restored_at

    # ClearCache: the same card is unknown offline now.
    daemon.request("unplug", connector=1)
    daemon.wait_status("Available")
    assert csms.call("ClearCache", {}, timeout=5) == {"status": "Accepted"}
    go_offline(daemon, csms)
    daemon.request("plug", connector=1)
    refused_offline(daemon, CARD)
    mark = csms.mark()
    go_online(daemon, csms)
    time.sleep(0.5)
    assert cp_calls(csms, mark, "StartTransaction") == []


def test_card_not_remembered_when_cache_disabled(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(keys={"AuthorizationCacheEnabled": False})
    booted(csms)

    mark = csms.mark()
    daemon.request("card", uid=CARD)
    authorize = csms.wait_for_record("Authorize", after=mark)
    assert csms_answer(csms, authorize).payload["idTagInfo"]["status"] == "Accepted"
    status_record(csms, "Preparing", after=mark)
    daemon.request("card", uid=CARD)
    status_record(csms, "Available", after=mark)

    go_offline(daemon, csms)
    daemon.request("plug", connector=1)
    daemon.request("ev_charge", connector=1, on=True)
    refused_offline(daemon, CARD)


# --- 2: unknown cards offline --------------------------------------------------------------


def test_unknown_card_offline_refused_or_allowed_then_deauthorized(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon(
        keys={"AllowOfflineTxForUnknownId": False, "StopTransactionOnInvalidId": True}
    )
    booted(csms)

    go_offline(daemon, csms)
    daemon.request("plug", connector=1)
    daemon.request("ev_charge", connector=1, on=True)
    refused_offline(daemon, UNKNOWN_CARD)
    go_online(daemon, csms)
    change(csms, "AllowOfflineTxForUnknownId", "true")

    go_offline(daemon, csms)
    starts_offline(daemon, UNKNOWN_CARD)
    daemon.wait_status("Charging")
    assert contactor_closed(daemon)

    mark = csms.mark()
    go_online(daemon, csms)
    start = csms.wait_for_record("StartTransaction", after=mark)
    assert start.payload["idTag"] == UNKNOWN_CARD
    answer = csms_answer(csms, start).payload
    assert answer["idTagInfo"]["status"] == "Invalid"
    stop = csms.wait_for_record("StopTransaction", after=mark)
    assert stop.payload["reason"] == "DeAuthorized"
    assert stop.payload["transactionId"] == answer["transactionId"]
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    status_record(csms, "Finishing", after=mark)
    assert not contactor_closed(daemon)
    delivered(daemon)
    time.sleep(0.3)
    assert len(cp_calls(csms, mark, "StartTransaction")) == 1
    assert len(cp_calls(csms, mark, "StopTransaction")) == 1


@pytest.mark.parametrize("allowance", [5, 0])
def test_invalid_start_answer_suspends_after_max_energy(
    make_daemon, csms: CsmsThread, allowance: int
) -> None:
    daemon = make_daemon(
        keys={
            "AllowOfflineTxForUnknownId": True,
            "StopTransactionOnInvalidId": False,
            "MaxEnergyOnInvalidId": allowance,
        }
    )
    booted(csms)
    set_meter(daemon, 1000)

    go_offline(daemon, csms)
    daemon.request("plug", connector=1)
    tx = starts_offline(daemon, UNKNOWN_CARD)
    assert tx["meter_start_wh"] == 1000
    if allowance == 0:
        daemon.request("ev_charge", connector=1, on=True)
        daemon.wait_status("Charging")
        assert contactor_closed(daemon)

    mark = csms.mark()
    go_online(daemon, csms)
    start = csms.wait_for_record("StartTransaction", after=mark)
    answered = csms_answer(csms, start)
    assert answered.payload["idTagInfo"]["status"] == "Invalid"
    assert start.payload["meterStart"] == 1000

    if allowance == 0:
        # At once: the contactor opens as soon as the answer is in.
        daemon.wait(
            lambda s: not s["hardware"]["connectors"][0]["contactor"]["actually_closed"],
            1.5,
            "the contactor to open",
        )
    else:
        # The EV only asks now: it may still take `allowance` Wh.
        daemon.request("ev_charge", connector=1, on=True)
        daemon.wait_status("Charging", timeout=3)
        assert contactor_closed(daemon)
        assert energy(daemon) < 1000 + allowance
        daemon.wait(
            lambda s: not s["hardware"]["connectors"][0]["contactor"]["actually_closed"],
            10,
            "the contactor to open at the energy limit",
        )
        reached = energy(daemon)
        assert 1000 + allowance <= reached <= 1000 + allowance + 3, f"opened at {reached} Wh"
    status_record(csms, "SuspendedEVSE", after=mark)
    time.sleep(0.7)
    assert not contactor_closed(daemon)
    connector = daemon.connector()
    assert connector["status"] == "SuspendedEVSE"
    assert connector["transaction"]["csms_id"] == answered.payload["transactionId"]
    assert cp_calls(csms, mark, "StopTransaction") == [], "suspended, not stopped"


# --- 3, 6: the Local Authorization List -------------------------------------------------------


def test_local_list_versions_and_offline_decisions(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", LIST_CARD: "Accepted"})
    daemon = make_daemon(keys={"AllowOfflineTxForUnknownId": False})
    booted(csms)

    assert list_version(csms) == 0
    full = [entry(LIST_CARD), entry(BLOCKED_CARD, "Blocked")]
    assert send_list(csms, 3, "Full", full) == "Accepted"
    assert list_version(csms) == 3
    assert send_list(csms, 3, "Differential", [entry(CARD2)]) == "VersionMismatch"
    assert send_list(csms, 2, "Differential", [entry(CARD2)]) == "VersionMismatch"
    assert list_version(csms) == 3

    # Offline, a card only the list knows starts (unknown ids may not).
    go_offline(daemon, csms)
    daemon.request("plug", connector=1)
    starts_offline(daemon, LIST_CARD)
    stops_offline(daemon, LIST_CARD)
    daemon.request("unplug", connector=1)
    mark = csms.mark()
    go_online(daemon, csms)
    start = csms.wait_for_record("StartTransaction", after=mark)
    stop = csms.wait_for_record("StopTransaction", after=mark)
    assert start.payload["idTag"] == LIST_CARD and stop.payload["idTag"] == LIST_CARD
    assert stop.payload["transactionId"] == csms_answer(csms, start).payload["transactionId"]
    delivered(daemon)

    # A Blocked entry is refused offline, even where unknown ids would be allowed.
    change(csms, "AllowOfflineTxForUnknownId", "true")
    go_offline(daemon, csms)
    daemon.request("plug", connector=1)
    daemon.request("ev_charge", connector=1, on=True)
    refused_offline(daemon, BLOCKED_CARD)
    go_online(daemon, csms)
    change(csms, "AllowOfflineTxForUnknownId", "false")

    # The StartTransaction answer put LIST_CARD in the cache: clear it, so only the
    # list speaks for the card. ClearCache leaves the list alone.
    assert csms.call("ClearCache", {}, timeout=5) == {"status": "Accepted"}
    assert list_version(csms) == 3
    assert send_list(csms, 4, "Differential", [entry(LIST_CARD, None)]) == "Accepted"
    assert list_version(csms) == 4

    mark = csms.mark()
    go_offline(daemon, csms)
    refused_offline(daemon, LIST_CARD)
    go_online(daemon, csms)
    time.sleep(0.3)
    assert cp_calls(csms, mark, "StartTransaction") == []


def test_local_list_survives_restart_and_can_be_disabled(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", LIST_CARD: "Accepted", LIST_CARD2: "Accepted"})
    daemon = make_daemon(keys={"AllowOfflineTxForUnknownId": False})
    booted(csms)
    assert send_list(csms, 3, "Full", [entry(LIST_CARD), entry(LIST_CARD2)]) == "Accepted"

    # Restart with the CSMS unreachable: the list still decides.
    assert daemon.stop() == 0
    csms.configure(refuse_connections=True)
    daemon.start()
    daemon.request("plug", connector=1)
    starts_offline(daemon, LIST_CARD)
    stops_offline(daemon, LIST_CARD)
    daemon.request("unplug", connector=1)

    mark = csms.mark()
    csms.configure(refuse_connections=False)
    booted(csms, after=mark)
    assert list_version(csms) == 3
    start = csms.wait_for_record("StartTransaction", after=mark)
    assert start.payload["idTag"] == LIST_CARD
    csms.wait_for("StopTransaction", after=mark)
    delivered(daemon)

    # LocalAuthListEnabled false: the list is not consulted.
    change(csms, "LocalAuthListEnabled", "false")
    go_offline(daemon, csms)
    daemon.request("plug", connector=1)
    refused_offline(daemon, LIST_CARD2)


@pytest.mark.parametrize("pre_authorize", [False, True], ids=["ask-csms", "local-pre-authorize"])
def test_local_pre_authorize_for_card_and_remote_start(
    make_daemon, csms: CsmsThread, pre_authorize: bool
) -> None:
    csms.configure(id_tags={CARD: "Accepted", LIST_CARD: "Accepted", LIST_CARD2: "Accepted"})
    daemon = make_daemon(
        keys={"LocalPreAuthorize": pre_authorize, "AuthorizeRemoteTxRequests": True}
    )
    booted(csms)
    assert send_list(csms, 1, "Full", [entry(LIST_CARD), entry(LIST_CARD2)]) == "Accepted"

    def started_by(stimulus: Any, card: str) -> list[Record]:
        """Run `stimulus`; the Authorize calls sent before its StartTransaction."""
        plugged = csms.mark()
        daemon.request("plug", connector=1)
        status_record(csms, "Preparing", after=plugged)
        mark = csms.mark()
        stimulus()
        start = csms.wait_for_record("StartTransaction", after=mark)
        assert start.payload["idTag"] == card
        authorizes = [r for r in cp_calls(csms, mark, "Authorize") if r.seq < start.seq]
        stopped = csms.mark()
        daemon.request("card", uid=card)
        assert csms.wait_for("StopTransaction", after=stopped)["idTag"] == card
        daemon.request("unplug", connector=1)
        daemon.wait_status("Available")
        return authorizes

    def remote(card: str) -> Any:
        def go() -> None:
            answer = csms.call("RemoteStartTransaction", {"idTag": card, "connectorId": 1})
            assert answer == {"status": "Accepted"}

        return go

    by_card = started_by(lambda: daemon.request("card", uid=LIST_CARD), LIST_CARD)
    by_remote = started_by(remote(LIST_CARD2), LIST_CARD2)
    not_listed = started_by(remote(CARD), CARD)
    if pre_authorize:
        assert by_card == [] and by_remote == []
    else:
        assert [r.payload for r in by_card] == [{"idTag": LIST_CARD}]
        assert [r.payload for r in by_remote] == [{"idTag": LIST_CARD2}]
    assert [r.payload for r in not_listed] == [{"idTag": CARD}], "not in the list: ask"


# --- 4: LocalListConflict ------------------------------------------------------------------


def test_local_list_conflict_reported_and_cleared_by_new_list(
    make_daemon, csms: CsmsThread
) -> None:
    csms.configure(id_tags={CARD: "Accepted", LIST_CARD: "Blocked"})
    daemon = make_daemon(keys={"LocalPreAuthorize": False})
    booted(csms)
    assert send_list(csms, 1, "Full", [entry(LIST_CARD)]) == "Accepted"

    daemon.request("plug", connector=1)
    mark = csms.mark()
    daemon.request("card", uid=LIST_CARD)
    authorize = csms.wait_for_record("Authorize", after=mark)
    assert csms_answer(csms, authorize).payload["idTagInfo"]["status"] == "Blocked"
    conflict = status_record(csms, "Available", connector=0, after=mark, error="LocalListConflict")
    assert conflict.seq > authorize.seq
    time.sleep(0.3)
    assert cp_calls(csms, mark, "StartTransaction") == [], "the CSMS's Blocked wins"
    assert daemon.connector()["transaction"] is None

    mark = csms.mark()
    assert send_list(csms, 2, "Full", [entry(LIST_CARD, "Blocked")]) == "Accepted"
    status_record(csms, "Available", connector=0, after=mark, error="NoError")
    assert daemon.state()["error_code"] == "NoError"


# --- 5: parentIdTag --------------------------------------------------------------------------


def test_card_of_the_same_group_stops_the_transaction(make_daemon, csms: CsmsThread) -> None:
    other = "04C0FFEE"
    csms.configure(
        id_tags={tag: "Accepted" for tag in (CARD, CARD2, other, LIST_CARD, LIST_CARD2)},
        parent_id_tags={
            CARD: "FLEET-1",
            CARD2: "FLEET-1",
            other: "FLEET-2",
            LIST_CARD: "FLEET-3",
            LIST_CARD2: "FLEET-3",
        },
        next_transaction_id=TX_ID,
    )
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()
    start_session(daemon, csms, CARD)
    assert csms.last_transaction_id == TX_ID

    # A card of another group is accepted but neither stops nor starts anything.
    daemon.request("card", uid=other)
    csms.wait_for("Authorize", lambda p: p["idTag"] == other, after=mark)
    time.sleep(0.5)
    assert cp_calls(csms, mark, "StopTransaction") == []
    assert daemon.connector()["status"] == "Charging"

    daemon.request("card", uid=CARD2)
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["reason"] == "Local"
    assert stop["idTag"] == CARD2
    assert stop["transactionId"] == TX_ID
    assert not contactor_closed(daemon)
    assert len(cp_calls(csms, mark, "StartTransaction")) == 1

    # Offline the Local Authorization List's parentIdTag makes the group.
    daemon.request("unplug", connector=1)
    daemon.wait_status("Available")
    group = [entry(LIST_CARD, parentIdTag="FLEET-3"), entry(LIST_CARD2, parentIdTag="FLEET-3")]
    assert send_list(csms, 1, "Full", group) == "Accepted"
    go_offline(daemon, csms)
    daemon.request("plug", connector=1)
    starts_offline(daemon, LIST_CARD)
    daemon.wait_status("Charging")
    stops_offline(daemon, LIST_CARD2)
    assert not contactor_closed(daemon)
    mark = csms.mark()
    go_online(daemon, csms)
    start = csms.wait_for_record("StartTransaction", after=mark)
    stop = csms.wait_for("StopTransaction", after=mark)
    assert start.payload["idTag"] == LIST_CARD
    assert stop["reason"] == "Local" and stop["idTag"] == LIST_CARD2
    assert stop["transactionId"] == csms_answer(csms, start).payload["transactionId"]


# --- 7: a large list -------------------------------------------------------------------------


def while_polling(daemon: Daemon, work: Callable[[], T]) -> tuple[T, float, list[float]]:
    """Run `work` while another thread keeps asking the daemon for its `state`; the
    result, the seconds it took and how long each `state` asked meanwhile took."""
    latencies: list[tuple[float, float]] = []  # (asked at, seconds to answer)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            asked = time.monotonic()
            daemon.state()
            latencies.append((asked, time.monotonic() - asked))
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    began = time.monotonic()
    poller.start()
    try:
        result = work()
        took = time.monotonic() - began
    finally:
        done.set()
        poller.join(5)
    return result, took, [lat for asked, lat in latencies if asked - began < took]


def test_large_local_list_applies_while_the_station_keeps_answering(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon(keys={"AllowOfflineTxForUnknownId": False})
    booted(csms)
    tags = [f"{0xA0000000 + i:08X}" for i in range(20_000)]
    entries = [entry(tag, "Accepted", parentIdTag="FLEET") for tag in tags]

    mark = csms.mark()
    status, took, during = while_polling(
        daemon, lambda: send_list(csms, 7, "Full", entries, timeout=15)
    )
    print(f"\nSendLocalList Full of {len(entries)} entries answered in {took:.2f} s;")
    print(f"  'state' answered {len(during)} times, slowest in {max(during, default=0):.3f} s")
    assert status == "Accepted"
    # The daemon kept answering meanwhile; how fast is bench/ (local_list) business.
    assert len(during) >= 2
    assert list_version(csms) == 7
    assert cp_calls(csms, mark, "BootNotification") == []
    assert daemon.proc is not None and daemon.proc.poll() is None

    # One entry more than SendLocalListMaxLength: refused as a whole, the list stays.
    # (At most 100,000 entries, ~6 MB, keep this part to a few seconds.)
    limit = int(get_key(csms, "SendLocalListMaxLength"))
    if limit <= 100_000:
        too_many = [entry(f"{0xB0000000 + i:08X}") for i in range(limit + 1)]
        status, took, during = while_polling(
            daemon, lambda: send_list(csms, 8, "Full", too_many, timeout=30)
        )
        print(f"SendLocalList Full of {len(too_many)} entries answered {status} in {took:.2f} s;")
        print(f"  'state' answered {len(during)} times, slowest in {max(during, default=0):.3f} s")
        assert status == "Failed"
        assert list_version(csms) == 7

    go_offline(daemon, csms)
    daemon.request("plug", connector=1)
    starts_offline(daemon, tags[len(tags) // 2])
