"""The OCPP 1.6 Reservation profile end to end: ReserveNow and CancelReservation from
the test CSMS to the real daemon, and what a driver, another driver and the CSMS see
afterwards (statuses, refused cards, StartTransaction's reservationId), also across a
restart of the daemon. See harness.py for how the daemon is run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hwsim.csms import CallErrorReceived, CsmsThread
from tests.integration.harness import CARD, Daemon, cp_calls, status_record

CARD2 = "04D5E6F7"
CARD3 = "0A0B0C01"
TWO = [{"max_current": 16}, {"max_current": 16}]


# --- helpers -------------------------------------------------------------------------


def booted(csms: CsmsThread, connectors: int = 1, after: int = 0) -> None:
    csms.wait_for("BootNotification", after=after)
    for n in range(connectors + 1):
        status_record(csms, "Available", connector=n, after=after)


def expiry(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reserve(
    csms: CsmsThread,
    reservation_id: int,
    connector: int,
    id_tag: str,
    seconds: float = 600,
    parent: str | None = None,
    until: str | None = None,
) -> str:
    payload: dict[str, Any] = {
        "connectorId": connector,
        "expiryDate": until or expiry(seconds),
        "idTag": id_tag,
        "reservationId": reservation_id,
    }
    if parent is not None:
        payload["parentIdTag"] = parent
    return str(csms.call("ReserveNow", payload)["status"])


def cancel(csms: CsmsThread, reservation_id: int) -> str:
    return str(csms.call("CancelReservation", {"reservationId": reservation_id})["status"])


def wait_log(daemon: Daemon, text: str, since: int, timeout: float = 10.0) -> None:
    """Wait for `text` in what the daemon logged after offset `since`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in daemon.log()[since:]:
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout} s:\n{daemon.log()[since:]}")


def card_refused(daemon: Daemon, card: str, why: str) -> None:
    """Present `card` and wait until the daemon has refused it for `why`."""
    since = len(daemon.log())
    daemon.request("card", uid=card)
    wait_log(daemon, f"card {card} refused: {why}", since)


def starts(csms: CsmsThread, after: int) -> list[dict[str, Any]]:
    return [r.payload for r in cp_calls(csms, after, "StartTransaction")]


# --- reserving a connector ---------------------------------------------------------------


def test_a_reserved_connector_serves_only_the_reserving_card(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted"})
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()
    # idTags compare case-insensitively: the card reads 04A1B2C3.
    assert reserve(csms, 5, 1, CARD.lower()) == "Accepted"
    status_record(csms, "Reserved", after=mark)

    # Another card is refused at once: no Authorize, the connector stays reserved.
    card_refused(daemon, CARD2, "connector 1 is reserved for another idTag (reservation 5)")
    assert cp_calls(csms, mark, "Authorize") == []
    assert daemon.connector()["status"] == "Reserved"

    # A cable alone starts nothing; the reserving card does, and says which reservation.
    daemon.request("plug", connector=1)
    status_record(csms, "Preparing", after=mark)
    daemon.request("card", uid=CARD)
    start = csms.wait_for("StartTransaction", after=mark)
    assert (start["connectorId"], start["idTag"], start["reservationId"]) == (1, CARD, 5)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    assert [s["idTag"] for s in starts(csms, mark)] == [CARD]
    assert cancel(csms, 5) == "Rejected"  # used up


def test_a_card_of_the_reserved_group_may_use_the_reservation(
    make_daemon, csms: CsmsThread
) -> None:
    csms.configure(
        id_tags={CARD: "Accepted", CARD2: "Accepted"},
        parent_id_tags={CARD: "NEIGHBOURS", CARD2: "FAMILY"},
    )
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 9, 1, "MUM", parent="FAMILY") == "Accepted"
    status_record(csms, "Reserved", after=mark)
    daemon.request("plug", connector=1)

    # The card's group is only known from its authorization: asked, then refused.
    card_refused(daemon, CARD, "connector 1 is reserved for another idTag (reservation 9)")
    assert [r.payload["idTag"] for r in cp_calls(csms, mark, "Authorize")] == [CARD]

    daemon.request("card", uid=CARD2)
    start = csms.wait_for("StartTransaction", after=mark)
    assert (start["idTag"], start["reservationId"]) == (CARD2, 9)
    assert [s["idTag"] for s in starts(csms, mark)] == [CARD2]


def test_cancelled_reservation_frees_the_connector(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted"})
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 3, 1, CARD) == "Accepted"
    reserved = status_record(csms, "Reserved", after=mark)
    assert cancel(csms, 3) == "Accepted"
    status_record(csms, "Available", after=reserved)
    assert cancel(csms, 3) == "Rejected"
    assert cancel(csms, 999) == "Rejected"

    started = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD2)
    start = csms.wait_for("StartTransaction", after=started)
    assert start["idTag"] == CARD2 and "reservationId" not in start


def test_a_reservation_expires_by_itself(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted"})
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 4, 1, CARD, seconds=3) == "Accepted"
    reserved = status_record(csms, "Reserved", after=mark)
    status_record(csms, "Available", after=reserved)
    assert cancel(csms, 4) == "Rejected"  # it is gone

    started = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD2)
    start = csms.wait_for("StartTransaction", after=started)
    assert start["idTag"] == CARD2 and "reservationId" not in start


def test_the_same_reservation_id_replaces_the_reservation(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted"})
    daemon = make_daemon(connectors=TWO)
    booted(csms, connectors=2)
    mark = csms.mark()
    assert reserve(csms, 5, 1, CARD) == "Accepted"
    status_record(csms, "Reserved", connector=1, after=mark)
    assert reserve(csms, 6, 1, CARD2) == "Occupied"  # another id: reserved already
    assert reserve(csms, 5, 1, CARD2) == "Accepted"  # the same id: replaced in place
    moved = csms.mark()
    assert reserve(csms, 5, 2, CARD2) == "Accepted"  # and moved to connector 2
    status_record(csms, "Available", connector=1, after=moved)
    status_record(csms, "Reserved", connector=2, after=moved)

    # Connector 2 has a cable, but is not CARD's to take: it is given connector 1.
    daemon.request("plug", connector=2)
    daemon.request("card", uid=CARD)
    daemon.wait(lambda s: s["connectors"][0]["authorized_id_tag"] == CARD, what="CARD on 1")
    assert daemon.connector(2)["transaction"] is None
    daemon.request("card", uid=CARD2)
    start = csms.wait_for("StartTransaction", after=mark)
    assert (start["connectorId"], start["idTag"], start["reservationId"]) == (2, CARD2, 5)


# --- the answers that refuse -----------------------------------------------------------------


def test_reserve_now_says_why_it_cannot(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted"})
    daemon = make_daemon()
    booted(csms)

    daemon.request("plug", connector=1)
    daemon.wait_status("Preparing")
    assert reserve(csms, 1, 1, CARD) == "Occupied"
    assert reserve(csms, 1, 0, CARD) == "Occupied"
    daemon.request("unplug", connector=1)
    daemon.wait_status("Available")

    daemon.request("fault_raise", kind="generic", connector=1)
    daemon.wait_status("Faulted")
    assert reserve(csms, 1, 1, CARD) == "Faulted"
    assert reserve(csms, 1, 0, CARD) == "Faulted"
    daemon.request("fault_clear", kind="generic", connector=1)
    daemon.wait_status("Available")

    assert csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    daemon.wait_status("Unavailable")
    assert reserve(csms, 1, 1, CARD) == "Unavailable"
    csms.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    daemon.wait(lambda s: s["status"] == "Unavailable", what="station Unavailable")
    assert reserve(csms, 1, 0, CARD) == "Unavailable"
    csms.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    csms.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    daemon.wait_status("Available")

    assert reserve(csms, 1, 2, CARD) == "Rejected"  # no connector 2
    assert reserve(csms, 1, 1, CARD, seconds=-60) == "Rejected"  # expired already
    assert reserve(csms, 1, 1, CARD, until="0001-01-01T00:00:00+00:01") == "Rejected"
    with pytest.raises(CallErrorReceived) as missing:
        csms.call("ReserveNow", {"connectorId": 1, "expiryDate": expiry(60), "reservationId": 1})
    assert missing.value.code == "OccurenceConstraintViolation"
    with pytest.raises(CallErrorReceived) as wrong:
        csms.call("CancelReservation", {"reservationId": "one"})
    assert wrong.value.code == "TypeConstraintViolation"

    # After all that, nothing was reserved and the station still serves anyone.
    assert daemon.connector()["status"] == "Available"
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD2)
    assert "reservationId" not in csms.wait_for("StartTransaction", after=mark)


def test_a_fault_or_unavailability_ends_the_reservation(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 1, 1, CARD) == "Accepted"
    status_record(csms, "Reserved", after=mark)
    daemon.request("fault_raise", kind="generic", connector=1)
    faulted = status_record(csms, "Faulted", after=mark)
    daemon.request("fault_clear", kind="generic", connector=1)
    status_record(csms, "Available", after=faulted)
    assert cancel(csms, 1) == "Rejected"

    assert reserve(csms, 2, 1, CARD) == "Accepted"
    reserved = status_record(csms, "Reserved", after=faulted)
    csms.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    status_record(csms, "Unavailable", after=reserved)
    csms.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    status_record(csms, "Available", after=reserved)
    assert cancel(csms, 2) == "Rejected"


# --- connector 0 ---------------------------------------------------------------------------------


def test_connector_zero_keeps_the_last_free_connector(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted", CARD3: "Accepted"})
    daemon = make_daemon(connectors=TWO)
    booted(csms, connectors=2)
    mark = csms.mark()
    assert reserve(csms, 7, 0, CARD) == "Accepted"
    # Either connector may still go to someone else: both stay Available.
    assert [c["status"] for c in daemon.state()["connectors"]] == ["Available", "Available"]

    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD2)
    first = csms.wait_for("StartTransaction", after=mark)
    assert (first["connectorId"], first["idTag"]) == (1, CARD2) and "reservationId" not in first
    status_record(csms, "Reserved", connector=2, after=mark)  # the last one is kept

    card_refused(daemon, CARD3, "connector 2 is kept for reservation(s) 7 on connector 0")
    assert CARD3 not in [r.payload["idTag"] for r in cp_calls(csms, mark, "Authorize")]
    assert reserve(csms, 8, 0, CARD3) == "Occupied"

    daemon.request("plug", connector=2)
    daemon.request("card", uid=CARD)
    second = csms.wait_for("StartTransaction", after=mark)
    assert (second["connectorId"], second["idTag"], second["reservationId"]) == (2, CARD, 7)
    assert [s["idTag"] for s in starts(csms, mark)] == [CARD2, CARD]


def test_connector_zero_on_a_single_connector_station(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted"})
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 3, 0, CARD) == "Accepted"
    status_record(csms, "Reserved", connector=1, after=mark)  # the one connector is kept
    assert reserve(csms, 4, 0, CARD2) == "Occupied"
    assert reserve(csms, 4, 1, CARD2) == "Occupied"
    card_refused(daemon, CARD2, "connector 1 is kept for reservation(s) 3 on connector 0")
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    start = csms.wait_for("StartTransaction", after=mark)
    assert (start["connectorId"], start["idTag"], start["reservationId"]) == (1, CARD, 3)


def test_the_profile_and_its_key_are_reported(make_daemon, csms: CsmsThread) -> None:
    make_daemon()
    booted(csms)
    answer = csms.call("GetConfiguration", {"key": ["ReserveConnectorZeroSupported"]})
    assert answer["configurationKey"] == [
        {"key": "ReserveConnectorZeroSupported", "readonly": True, "value": "true"}
    ]
    change = {"key": "ReserveConnectorZeroSupported", "value": "false"}
    assert csms.call("ChangeConfiguration", change)["status"] == "Rejected"
    profiles = csms.call("GetConfiguration", {"key": ["SupportedFeatureProfiles"]})
    assert "Reservation" in profiles["configurationKey"][0]["value"].split(",")


# --- remote start and free vend ------------------------------------------------------------------


def test_remote_start_only_for_the_reserved_idtag(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted"})
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 5, 1, CARD) == "Accepted"
    status_record(csms, "Reserved", after=mark)
    remote = "RemoteStartTransaction"
    assert csms.call(remote, {"idTag": CARD2, "connectorId": 1})["status"] == "Rejected"
    assert csms.call(remote, {"idTag": CARD2})["status"] == "Rejected"
    assert cp_calls(csms, mark, "Authorize") == []
    assert daemon.connector()["status"] == "Reserved"

    assert csms.call(remote, {"idTag": CARD, "connectorId": 1})["status"] == "Accepted"
    csms.wait_for("Authorize", lambda p: p["idTag"] == CARD, after=mark)
    daemon.wait(lambda s: s["connectors"][0]["authorized_id_tag"] == CARD, what="authorized")
    daemon.request("plug", connector=1)
    start = csms.wait_for("StartTransaction", after=mark)
    assert (start["idTag"], start["reservationId"]) == (CARD, 5)


def test_free_vend_waits_for_the_reserving_card(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(station={"free_vend_id_tag": "HOME"})
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 5, 1, CARD) == "Accepted"
    status_record(csms, "Reserved", after=mark)
    since = len(daemon.log())
    daemon.request("plug", connector=1)
    wait_log(daemon, "free vend not started: the connector is reserved (reservation 5)", since)
    status_record(csms, "Preparing", after=mark)
    assert daemon.connector()["transaction"] is None

    daemon.request("card", uid=CARD)
    start = csms.wait_for("StartTransaction", after=mark)
    assert (start["idTag"], start["reservationId"]) == (CARD, 5)
    assert [s["idTag"] for s in starts(csms, mark)] == [CARD]


# --- restarts ------------------------------------------------------------------------------------


def test_reservations_survive_a_restart_and_still_expire(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted"})
    daemon = make_daemon(connectors=TWO)
    booted(csms, connectors=2)
    mark = csms.mark()
    assert reserve(csms, 5, 1, CARD) == "Accepted"
    assert reserve(csms, 6, 2, CARD2, seconds=10) == "Accepted"
    status_record(csms, "Reserved", connector=2, after=mark)

    daemon.stop()
    restarted = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=restarted)
    status_record(csms, "Reserved", connector=1, after=restarted)
    reserved = status_record(csms, "Reserved", connector=2, after=restarted)
    # Connector 2's reservation ends on time in the new run; connector 1's stays.
    status_record(csms, "Available", connector=2, after=reserved, timeout=20)
    assert daemon.connector(1)["status"] == "Reserved"

    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    start = csms.wait_for("StartTransaction", after=restarted)
    assert (start["connectorId"], start["idTag"], start["reservationId"]) == (1, CARD, 5)


def test_an_offline_start_keeps_its_reservation_id_across_a_restart(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon(keys={"AllowOfflineTxForUnknownId": True})
    booted(csms)
    mark = csms.mark()
    assert reserve(csms, 5, 1, CARD) == "Accepted"
    status_record(csms, "Reserved", after=mark)

    cut = csms.mark()
    daemon.request("link_cut")
    csms.wait_disconnected(after=cut)
    daemon.wait(lambda s: not s["ocpp"]["connected"], 5, "the station to see the link down")
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    daemon.wait(lambda s: s["connectors"][0]["transaction"] is not None, what="offline start")

    daemon.stop()
    restarted = csms.mark()
    daemon.start()
    start = csms.wait_for("StartTransaction", after=restarted)
    assert (start["idTag"], start["reservationId"]) == (CARD, 5)
    assert cancel(csms, 5) == "Rejected"  # used up, also for the new run
    assert starts(csms, mark) == [start]
