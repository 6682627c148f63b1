"""Charging sessions over OCPP 1.6J, seen from where a driver or a CSMS operator
would notice them: the messages the CSMS receives (fields, order, statuses)
and what the simulated hardware does (pilot PWM, contactor).

Each test runs a real daemon against the test CSMS (see harness.py) with short
timeouts and intervals; `csms.mark()` taken before a stimulus keeps earlier
messages out of the waits.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime
from typing import Any

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
UNKNOWN_CARD = "DEADBEEF"
TX_ID = 4711  # what the CSMS hands out first: distinct from the daemon's own local ids


# --- helpers ---------------------------------------------------------------------------


def statuses(csms: CsmsThread, connector: int = 1, after: int = 0) -> list[str]:
    return [
        r.payload["status"]
        for r in cp_calls(csms, after, "StatusNotification")
        if r.payload["connectorId"] == connector
    ]


def hw(daemon: Daemon, connector: int = 1) -> dict[str, Any]:
    """The simulated hardware of one connector (pilot, contactor, EV, meter)."""
    return daemon.state()["hardware"]["connectors"][connector - 1]  # type: ignore[no-any-return]


def contactor_closed(daemon: Daemon, connector: int = 1) -> bool:
    return bool(hw(daemon, connector)["contactor"]["actually_closed"])


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_recent(timestamp: str, slack: float = 10.0) -> None:
    age = (datetime.now(UTC) - parse_time(timestamp)).total_seconds()
    assert -slack < age < slack, f"timestamp {timestamp} is {age:.1f} s off the clock"


def set_meter(daemon: Daemon, wh: float, connector: int = 1) -> None:
    """Set the meter register and wait until the daemon has read it."""
    daemon.request("meter_set", connector=connector, wh=wh)
    daemon.wait(
        lambda s: (s["connectors"][connector - 1]["meter"] or {}).get("energy_wh", -1) >= wh,
        timeout=5,
        what=f"meter reading {wh} Wh",
    )


def booted(daemon: Daemon, csms: CsmsThread, connectors: int = 1) -> None:
    """Wait until the station is accepted and has reported its connectors Available."""
    csms.wait_for("BootNotification")
    for n in range(connectors + 1):
        status_record(csms, "Available", connector=n)


def stays(daemon: Daemon, check: Any, seconds: float, what: str) -> None:
    """Assert that `check(state)` holds throughout `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = daemon.state()
        assert check(state), f"{what} no longer holds: {state}"
        time.sleep(0.05)


def start_answer(csms: CsmsThread, start: Record) -> int:
    """The transactionId the CSMS gave in its answer to a StartTransaction."""
    return int(csms_answer(csms, start).payload["transactionId"])


def running(daemon: Daemon, csms: CsmsThread, card: str = CARD) -> tuple[dict[str, Any], int]:
    """A charging session (plug, card, EV asks); the StartTransaction and its CSMS id."""
    mark = csms.mark()
    start = start_session(daemon, csms, card)
    record = cp_calls(csms, mark, "StartTransaction")[0]
    return start, start_answer(csms, record)


# --- 1-3: boot ----------------------------------------------------------------------------


def test_cold_boot_registers_then_reports_then_heartbeats(make_daemon, csms: CsmsThread) -> None:
    csms.configure(interval=1)
    make_daemon()
    boot = csms.wait_for_record("BootNotification")
    assert boot.payload["chargePointVendor"]
    assert boot.payload["chargePointModel"]
    assert boot.payload["firmwareVersion"]
    s0 = status_record(csms, "Available", connector=0)
    s1 = status_record(csms, "Available", connector=1)
    assert s0.payload["errorCode"] == s1.payload["errorCode"] == "NoError"

    answer = csms_answer(csms, boot)
    incoming = [r for r in csms.records if r.direction == "in"]
    assert incoming[0].seq == boot.seq, "the BootNotification must be the first message"
    early = [r for r in incoming if r.seq < answer.seq]
    assert [(r.message_type, r.action) for r in early] == [("CALL", "BootNotification")]
    assert s0.seq > answer.seq and s1.seq > answer.seq

    # The CSMS asked for a 1 s interval (the station's own default is 300 s).
    beats = [csms.wait_for_record("Heartbeat", timeout=5) for _ in range(3)]
    assert beats[0].seq > s1.seq
    gaps = [b.time - a.time for a, b in itertools.pairwise(beats)]
    assert all(0.7 <= gap <= 2.5 for gap in gaps), f"heartbeat gaps {gaps}"


def test_boot_pending_then_accepted(make_daemon, csms: CsmsThread) -> None:
    csms.configure(boot_status="Pending", interval=1)
    daemon = make_daemon()
    csms.wait_for("BootNotification")
    daemon.wait(lambda s: s["ocpp"]["registration"] == "Pending", 5, "registration Pending")

    # While pending the CSMS may read the configuration, but not start a transaction.
    config = csms.call("GetConfiguration", {"key": ["ConnectionTimeOut"]}, timeout=3)
    assert config["configurationKey"] == [
        {"key": "ConnectionTimeOut", "readonly": False, "value": "5"}
    ]
    remote = csms.call("RemoteStartTransaction", {"idTag": CARD, "connectorId": 1}, timeout=3)
    assert remote["status"] == "Rejected"
    csms.wait_for("BootNotification", timeout=5)  # retried after the interval
    assert {r.action for r in cp_calls(csms)} == {"BootNotification"}
    assert daemon.connector()["authorized_id_tag"] is None

    mark = csms.mark()
    csms.configure(boot_status="Accepted")
    boot = csms.wait_for_record("BootNotification", after=mark, timeout=5)
    answer = csms_answer(csms, boot)
    assert answer.payload["status"] == "Accepted"
    s0 = status_record(csms, "Available", connector=0, after=mark)
    s1 = status_record(csms, "Available", connector=1, after=mark)
    assert s0.seq > answer.seq and s1.seq > answer.seq
    assert [r.action for r in cp_calls(csms, mark) if r.seq < answer.seq] == ["BootNotification"]


def test_boot_rejected_stays_silent_and_retries_after_interval(
    make_daemon, csms: CsmsThread
) -> None:
    csms.configure(boot_status="Rejected", interval=2)
    make_daemon()
    first = csms.wait_for_record("BootNotification")
    time.sleep(0.3)  # let the charge point take in the Rejected answer
    with pytest.raises(TimeoutError):
        csms.call("GetConfiguration", {}, timeout=1)
    second = csms.wait_for_record("BootNotification", timeout=6)
    gap = second.time - first.time
    assert 1.7 <= gap <= 4.5, f"BootNotification retried after {gap:.2f} s, interval is 2 s"
    incoming = [r for r in csms.records if r.direction == "in"]
    assert {(r.message_type, r.action) for r in incoming} == {("CALL", "BootNotification")}


# --- 4-5: starting by card -----------------------------------------------------------------


def test_plug_then_card_starts_and_charges_when_ev_asks(make_daemon, csms: CsmsThread) -> None:
    csms.configure(next_transaction_id=TX_ID)
    daemon = make_daemon()
    booted(daemon, csms)
    set_meter(daemon, 12345)

    mark = csms.mark()
    daemon.request("plug", connector=1)
    preparing = status_record(csms, "Preparing", after=mark)
    assert not contactor_closed(daemon)
    daemon.request("card", uid=CARD)
    authorize = csms.wait_for_record("Authorize", after=mark)
    assert authorize.payload == {"idTag": CARD}
    start = csms.wait_for_record("StartTransaction", after=mark)
    assert preparing.seq < authorize.seq < start.seq
    assert start.payload["idTag"] == CARD
    assert start.payload["connectorId"] == 1
    assert start.payload["meterStart"] == 12345
    assert_recent(start.payload["timestamp"])

    # Authorized and offering, but the EV has not asked: PWM on, contactor open.
    daemon.wait(lambda s: s["connectors"][0]["pilot_mode"] == "pwm", 5, "PWM on")
    stays(
        daemon,
        lambda s: not s["hardware"]["connectors"][0]["contactor"]["actually_closed"],
        0.5,
        "contactor open while the EV does not ask",
    )
    assert "Charging" not in statuses(csms, after=mark)

    asked = csms.mark()
    daemon.request("ev_charge", connector=1, on=True)
    status_record(csms, "Charging", after=asked)
    daemon.wait(
        lambda s: s["hardware"]["connectors"][0]["contactor"]["actually_closed"],
        5,
        "contactor closed",
    )
    assert daemon.connector()["transaction"]["csms_id"] == TX_ID


def test_card_then_plug_starts_on_plug(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    set_meter(daemon, 500)

    mark = csms.mark()
    daemon.request("card", uid=CARD)
    csms.wait_for("Authorize", after=mark)
    status_record(csms, "Preparing", after=mark)
    time.sleep(0.5)
    assert cp_calls(csms, mark, "StartTransaction") == [], "no transaction before the plug"

    plugged = csms.mark()
    daemon.request("plug", connector=1)
    start = csms.wait_for("StartTransaction", after=plugged)
    assert start["idTag"] == CARD and start["connectorId"] == 1
    assert start["meterStart"] == 500
    assert_recent(start["timestamp"])
    time.sleep(0.3)
    assert not contactor_closed(daemon)
    assert "Charging" not in statuses(csms, after=mark)

    asked = csms.mark()
    daemon.request("ev_charge", connector=1, on=True)
    status_record(csms, "Charging", after=asked)
    daemon.wait(
        lambda s: s["hardware"]["connectors"][0]["contactor"]["actually_closed"],
        5,
        "contactor closed",
    )


def test_card_without_plug_expires_after_connection_timeout(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(keys={"ConnectionTimeOut": 2})
    booted(daemon, csms)

    mark = csms.mark()
    daemon.request("card", uid=CARD)
    preparing = status_record(csms, "Preparing", after=mark)
    available = status_record(csms, "Available", after=preparing, timeout=6)
    waited = available.time - preparing.time
    assert 1.5 <= waited <= 4.0, f"authorization lapsed after {waited:.2f} s, timeout is 2 s"
    assert cp_calls(csms, mark, "StartTransaction") == []

    # The lapsed authorization does not start a transaction on a later plug.
    plugged = csms.mark()
    daemon.request("plug", connector=1)
    status_record(csms, "Preparing", after=plugged)
    time.sleep(0.5)
    assert cp_calls(csms, mark, "StartTransaction") == []
    assert daemon.connector()["transaction"] is None


# --- 6-7: stopping -----------------------------------------------------------------------


def test_same_card_stops_and_unplug_frees_connector(make_daemon, csms: CsmsThread) -> None:
    csms.configure(next_transaction_id=TX_ID)
    daemon = make_daemon()
    booted(daemon, csms)
    set_meter(daemon, 1000)
    start, tx_id = running(daemon, csms)
    assert tx_id == TX_ID
    time.sleep(1.0)  # 16 A on three phases: about 3 Wh per second

    mark = csms.mark()
    daemon.request("card", uid=CARD)
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["reason"] == "Local"
    assert stop["idTag"] == CARD
    assert stop["transactionId"] == TX_ID
    assert stop["meterStop"] > start["meterStart"]
    assert_recent(stop["timestamp"])
    assert not contactor_closed(daemon)
    status_record(csms, "Finishing", after=mark)
    time.sleep(0.3)
    assert "Available" not in statuses(csms, after=mark), "still plugged: Finishing"

    unplugged = csms.mark()
    daemon.request("unplug", connector=1)
    status_record(csms, "Available", after=unplugged)
    assert len(cp_calls(csms, 0, "StopTransaction")) == 1


def test_unplug_stops_transaction_when_configured(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(keys={"StopTransactionOnEVSideDisconnect": True})
    booted(daemon, csms)
    _, tx_id = running(daemon, csms)
    assert contactor_closed(daemon)

    mark = csms.mark()
    daemon.request("unplug", connector=1)
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["reason"] == "EVDisconnected"
    assert stop["transactionId"] == tx_id
    assert not contactor_closed(daemon)
    status_record(csms, "Available", after=mark)


def test_unplug_suspends_when_not_configured_to_stop(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(keys={"StopTransactionOnEVSideDisconnect": False})
    booted(daemon, csms)
    start_mark = csms.mark()
    _, tx_id = running(daemon, csms)

    mark = csms.mark()
    daemon.request("unplug", connector=1)
    status_record(csms, "SuspendedEV", after=mark)
    assert not contactor_closed(daemon), "no voltage on an unplugged cable"
    time.sleep(0.5)
    assert cp_calls(csms, mark, "StopTransaction") == []
    assert daemon.connector()["transaction"]["csms_id"] == tx_id

    replug = csms.mark()
    daemon.request("plug", connector=1)  # the EV still asks for energy
    status_record(csms, "Charging", after=replug)
    daemon.wait(
        lambda s: s["hardware"]["connectors"][0]["contactor"]["actually_closed"],
        5,
        "contactor closed again",
    )
    assert len(cp_calls(csms, start_mark, "StartTransaction")) == 1, "the same transaction"
    assert daemon.connector()["transaction"]["csms_id"] == tx_id

    daemon.request("card", uid=CARD)
    stop = csms.wait_for("StopTransaction", after=replug)
    assert stop["reason"] == "Local" and stop["transactionId"] == tx_id


# --- 8-9: refused idTags -------------------------------------------------------------------


def test_refused_card_starts_nothing(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    daemon.request("plug", connector=1)
    daemon.request("ev_charge", connector=1, on=True)

    mark = csms.mark()
    daemon.request("card", uid=UNKNOWN_CARD)
    authorize = csms.wait_for_record("Authorize", after=mark)
    assert authorize.payload["idTag"] == UNKNOWN_CARD
    assert csms_answer(csms, authorize).payload["idTagInfo"]["status"] == "Invalid"
    time.sleep(0.7)
    assert cp_calls(csms, mark, "StartTransaction") == []
    connector = daemon.connector()
    assert connector["status"] == "Preparing"
    assert connector["pilot_mode"] == "x1" and not contactor_closed(daemon)
    assert "Charging" not in statuses(csms, after=mark)

    # The refusal leaves the connector free for an accepted card.
    daemon.request("card", uid=CARD)
    start = csms.wait_for("StartTransaction", after=mark)
    assert start["idTag"] == CARD


def _start_transaction_invalid(csms: CsmsThread, delay: float = 0.0) -> None:
    """Authorize says Accepted, but the StartTransaction answer (after `delay`) says Invalid."""

    async def respond(payload: dict[str, Any]) -> dict[str, Any]:
        answer = csms.csms.default_response("StartTransaction", payload)  # on the CSMS loop
        await asyncio.sleep(delay)
        return {**answer, "idTagInfo": {"status": "Invalid"}}

    csms.respond_with("StartTransaction", respond)


@pytest.mark.parametrize("answer_delay", [0.0, 1.5], ids=["at-once", "while-charging"])
def test_start_answered_invalid_deauthorizes(
    make_daemon, csms: CsmsThread, answer_delay: float
) -> None:
    daemon = make_daemon(keys={"StopTransactionOnInvalidId": True})
    booted(daemon, csms)
    _start_transaction_invalid(csms, answer_delay)

    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.request("card", uid=CARD)
    authorize = csms.wait_for_record("Authorize", after=mark)
    assert csms_answer(csms, authorize).payload["idTagInfo"]["status"] == "Accepted"
    start = csms.wait_for_record("StartTransaction", after=mark)
    if answer_delay:
        # The station charges while the CSMS is still deciding.
        daemon.wait(
            lambda s: s["hardware"]["connectors"][0]["contactor"]["actually_closed"],
            1.2,
            "charging before the answer",
        )
    stop = csms.wait_for("StopTransaction", after=mark)
    tx_id = start_answer(csms, start)
    assert stop["reason"] == "DeAuthorized"
    assert stop["transactionId"] == tx_id
    assert len(cp_calls(csms, mark, "StartTransaction")) == 1, "the start is sent once"
    time.sleep(0.3)
    assert not contactor_closed(daemon)
    assert daemon.connector()["transaction"] is None
    assert daemon.connector()["status"] == "Finishing"
    assert len(csms.events) == 1, "the link stays up"


def test_start_answered_invalid_suspends_when_not_configured_to_stop(
    make_daemon, csms: CsmsThread
) -> None:
    daemon = make_daemon(keys={"StopTransactionOnInvalidId": False})
    booted(daemon, csms)
    _start_transaction_invalid(csms)

    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.request("card", uid=CARD)
    csms.wait_for("StartTransaction", after=mark)
    status_record(csms, "SuspendedEVSE", after=mark)
    time.sleep(0.5)
    assert cp_calls(csms, mark, "StopTransaction") == []
    connector = daemon.connector()
    assert connector["pilot_mode"] == "x1" and not contactor_closed(daemon)
    assert connector["status"] == "SuspendedEVSE"


# --- 10-11: remote start and stop ------------------------------------------------------------


def test_remote_start_cable_first_authorizes_after_answer(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(keys={"AuthorizeRemoteTxRequests": True})
    booted(daemon, csms)
    daemon.request("plug", connector=1)
    status_record(csms, "Preparing")

    mark = csms.mark()
    answer = csms.call("RemoteStartTransaction", {"idTag": CARD, "connectorId": 1}, timeout=5)
    assert answer == {"status": "Accepted"}
    reply = next(
        r
        for r in csms.records
        if r.seq >= mark and r.direction == "in" and r.action == "RemoteStartTransaction"
    )
    authorize = csms.wait_for_record("Authorize", after=mark)
    assert authorize.payload["idTag"] == CARD
    start = csms.wait_for_record("StartTransaction", after=mark)
    assert reply.seq < authorize.seq < start.seq
    assert start.payload["idTag"] == CARD and start.payload["connectorId"] == 1

    daemon.request("ev_charge", connector=1, on=True)
    status_record(csms, "Charging", after=mark)


def test_remote_start_then_plug_within_connection_timeout(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(keys={"ConnectionTimeOut": 5})
    booted(daemon, csms)

    mark = csms.mark()
    answer = csms.call("RemoteStartTransaction", {"idTag": CARD}, timeout=5)
    assert answer == {"status": "Accepted"}
    csms.wait_for("Authorize", after=mark)
    status_record(csms, "Preparing", after=mark)
    time.sleep(0.5)
    assert cp_calls(csms, mark, "StartTransaction") == []

    daemon.request("plug", connector=1)
    start = csms.wait_for("StartTransaction", after=mark)
    assert start["idTag"] == CARD and start["connectorId"] == 1


def test_remote_start_without_authorize_when_not_required(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(keys={"AuthorizeRemoteTxRequests": False})
    booted(daemon, csms)
    daemon.request("plug", connector=1)

    mark = csms.mark()
    answer = csms.call("RemoteStartTransaction", {"idTag": CARD, "connectorId": 1}, timeout=5)
    assert answer == {"status": "Accepted"}
    start = csms.wait_for("StartTransaction", after=mark)
    assert start["idTag"] == CARD
    assert cp_calls(csms, mark, "Authorize") == []


def test_remote_start_refused_for_busy_or_missing_connector(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(daemon, csms)

    answer = csms.call("RemoteStartTransaction", {"idTag": CARD, "connectorId": 2}, timeout=5)
    assert answer == {"status": "Rejected"}

    running(daemon, csms)
    mark = csms.mark()
    answer = csms.call("RemoteStartTransaction", {"idTag": CARD2, "connectorId": 1}, timeout=5)
    assert answer == {"status": "Rejected"}
    time.sleep(0.5)
    assert cp_calls(csms, mark, "Authorize") == []
    assert cp_calls(csms, mark, "StartTransaction") == []
    assert daemon.connector()["status"] == "Charging"


def test_remote_stop(make_daemon, csms: CsmsThread) -> None:
    csms.configure(next_transaction_id=TX_ID)
    daemon = make_daemon()
    booted(daemon, csms)
    _, tx_id = running(daemon, csms)

    mark = csms.mark()
    answer = csms.call("RemoteStopTransaction", {"transactionId": tx_id + 100}, timeout=5)
    assert answer == {"status": "Rejected"}
    time.sleep(0.3)
    assert cp_calls(csms, mark, "StopTransaction") == []
    assert daemon.connector()["status"] == "Charging"

    answer = csms.call("RemoteStopTransaction", {"transactionId": tx_id}, timeout=5)
    assert answer == {"status": "Accepted"}
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["reason"] == "Remote"
    assert stop["transactionId"] == tx_id == TX_ID
    assert not contactor_closed(daemon)
    status_record(csms, "Finishing", after=mark)


# --- 12: a stubborn EV -----------------------------------------------------------------------


def test_stubborn_ev_is_cut_off_after_six_seconds(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(daemon, csms)
    daemon.request("ev_stubborn", connector=1, on=True)
    _, tx_id = running(daemon, csms)

    mark = csms.mark()
    asked_at = time.monotonic()
    daemon.request("card", uid=CARD)
    daemon.wait(lambda s: s["hardware"]["connectors"][0]["pilot"]["mode"] == "x1", 1.0, "PWM off")
    time.sleep(1.0)
    part = hw(daemon)
    assert part["pilot"]["state"] == "C", "the stubborn EV keeps asking"
    assert part["contactor"]["actually_closed"], "no opening under load before the timeout"
    assert cp_calls(csms, mark, "StopTransaction") == []

    daemon.wait(
        lambda s: not s["hardware"]["connectors"][0]["contactor"]["actually_closed"],
        12,
        "contactor forced open",
    )
    opened_wall, opened_after = time.time(), time.monotonic() - asked_at
    assert 5.0 <= opened_after <= 10.0, f"contactor opened after {opened_after:.2f} s"
    stop = csms.wait_for_record("StopTransaction", after=mark, timeout=5)
    assert stop.time >= opened_wall - 0.5, "StopTransaction only once the contactor is open"
    assert stop.payload["reason"] == "Local" and stop.payload["transactionId"] == tx_id


# --- 13: meter values ---------------------------------------------------------------------------


def _phase_currents(meter_values: dict[str, Any]) -> dict[str, float]:
    return {
        s["phase"]: float(s["value"])
        for mv in meter_values["meterValue"]
        for s in mv["sampledValue"]
        if s.get("measurand") == "Current.Import"
    }


def test_periodic_meter_values_and_stop_transaction_data(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(
        keys={
            "MeterValueSampleInterval": 1,
            "MeterValuesSampledData": "Energy.Active.Import.Register,Current.Import",
            "StopTxnSampledData": "Energy.Active.Import.Register",
        }
    )
    booted(daemon, csms)
    mark = csms.mark()
    _, tx_id = running(daemon, csms)

    values = csms.wait_for_record(
        "MeterValues",
        lambda p: (
            all(abs(a - 16.0) < 0.5 for a in _phase_currents(p).values())
            and len(_phase_currents(p)) == 3
        ),
        after=mark,
        timeout=5,
    )
    payload = values.payload
    assert payload["connectorId"] == 1 and payload["transactionId"] == tx_id
    samples = [s for mv in payload["meterValue"] for s in mv["sampledValue"]]
    assert {s["context"] for s in samples} == {"Sample.Periodic"}
    assert set(_phase_currents(payload)) == {"L1", "L2", "L3"}
    energy = [
        s
        for s in samples
        if s.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"
    ]
    assert len(energy) == 1 and energy[0]["unit"] == "Wh"
    follow = csms.wait_for_record("MeterValues", after=values, timeout=4)
    assert 0.5 <= follow.time - values.time <= 2.5

    daemon.request("card", uid=CARD)
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["transactionId"] == tx_id
    data = stop["transactionData"]
    assert len(data) >= 2
    for mv in data:
        assert_recent(mv["timestamp"])
        assert [s["measurand"] for s in mv["sampledValue"]] == ["Energy.Active.Import.Register"]
    registers = [float(mv["sampledValue"][0]["value"]) for mv in data]
    assert registers == sorted(registers) and registers[-1] > registers[0]


def test_clock_aligned_meter_values_for_idle_connector(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(keys={"ClockAlignedDataInterval": 2})
    booted(daemon, csms)
    mark = csms.mark()
    first = csms.wait_for("MeterValues", after=mark, timeout=5)
    second = csms.wait_for("MeterValues", after=mark, timeout=5)
    for payload in (first, second):
        assert payload["connectorId"] == 1
        assert "transactionId" not in payload
        (mv,) = payload["meterValue"]
        assert {s["context"] for s in mv["sampledValue"]} == {"Sample.Clock"}
        seconds = parse_time(mv["timestamp"]).timestamp()
        assert seconds % 2 < 0.5, f"{mv['timestamp']} is not on a 2 s boundary"
    gap = parse_time(second["meterValue"][0]["timestamp"]) - parse_time(
        first["meterValue"][0]["timestamp"]
    )
    assert 1.5 <= gap.total_seconds() <= 2.5
    assert daemon.connector()["status"] == "Available"


# --- 14: two connectors -----------------------------------------------------------------------


def test_two_connectors_charge_at_once(make_daemon, csms: CsmsThread) -> None:
    csms.configure(id_tags={CARD: "Accepted", CARD2: "Accepted"}, next_transaction_id=TX_ID)
    daemon = make_daemon(connectors=[{"max_current": 16}, {"max_current": 32}])
    booted(daemon, csms, connectors=2)

    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    start1 = csms.wait_for_record("StartTransaction", after=mark)
    daemon.request("plug", connector=2)
    daemon.request("card", uid=CARD2)
    start2 = csms.wait_for_record("StartTransaction", after=start1)
    assert (start1.payload["connectorId"], start1.payload["idTag"]) == (1, CARD)
    assert (start2.payload["connectorId"], start2.payload["idTag"]) == (2, CARD2)
    tx1, tx2 = start_answer(csms, start1), start_answer(csms, start2)
    assert tx1 != tx2

    daemon.request("ev_charge", connector=1, on=True)
    daemon.request("ev_charge", connector=2, on=True)
    status_record(csms, "Charging", connector=1, after=mark)
    status_record(csms, "Charging", connector=2, after=mark)
    state = daemon.wait(
        lambda s: all(c["contactor"]["actually_closed"] for c in s["hardware"]["connectors"]),
        5,
        "both contactors closed",
    )
    c1, c2 = state["connectors"]
    assert c1["duty_percent"] == pytest.approx(26.67, abs=0.01)
    assert c2["duty_percent"] == pytest.approx(53.33, abs=0.01)
    assert c1["transaction"]["csms_id"] == tx1 and c2["transaction"]["csms_id"] == tx2
    h1, h2 = state["hardware"]["connectors"]
    assert h1["ev"]["current_a"] == pytest.approx([16.0, 16.0, 16.0], abs=0.1)
    assert h2["ev"]["current_a"] == pytest.approx([32.0, 32.0, 32.0], abs=0.1)

    # Each card stops its own transaction only.
    stopped = csms.mark()
    daemon.request("card", uid=CARD2)
    stop = csms.wait_for("StopTransaction", after=stopped)
    assert stop["transactionId"] == tx2
    time.sleep(0.3)
    assert daemon.connector(1)["status"] == "Charging"


@pytest.mark.parametrize("idle_only", [True, False])
def test_heartbeat_only_when_idle_unless_configured(make_daemon, csms: CsmsThread, idle_only):
    """By default traffic replaces heartbeats; heartbeat_on_idle_only = false keeps them."""
    csms.interval = 2
    daemon = make_daemon(
        keys={"MeterValueSampleInterval": 1},
        extra=f"[ocpp]\nheartbeat_on_idle_only = {str(idle_only).lower()}\n",
    )
    csms.wait_for("BootNotification")
    start_session(daemon, csms)
    mark = csms.mark()
    time.sleep(5.0)  # meter values flow every second meanwhile
    beats = [
        r
        for r in csms.records
        if r.seq > mark and r.action == "Heartbeat" and r.message_type == "CALL"
    ]
    assert csms.calls("MeterValues")
    if idle_only:
        assert beats == []
    else:
        assert len(beats) >= 2


def test_free_vend_charges_on_plug_in_without_a_card(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(station={"free_vend_id_tag": "HOME"})
    csms.wait_for("BootNotification")
    mark = csms.mark()
    daemon.request("plug", connector=1)
    start = csms.wait_for("StartTransaction", after=mark)
    assert start["idTag"] == "HOME"
    assert csms.calls("Authorize") == []  # no card, no authorization round trip
    daemon.request("ev_charge", connector=1, on=True)
    # The CSMS does not know "HOME" (it answers Invalid): free vend charges all the same.
    daemon.wait_status("Charging")
    daemon.request("unplug", connector=1)
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop["reason"] == "EVDisconnected"
