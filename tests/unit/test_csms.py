"""Tests for the scriptable OCPP 1.6J / 2.0.1 CSMS used by the demo and the integration tests.

The charge point here is a bare websocket client sending hand-written frames, so
the tests pin down the wire behaviour the integration tests rely on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import ocpp
import pytest
from ocpp.messages import get_validator
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection as SyncClient
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from hwsim import csms_v201
from hwsim.csms import (
    CallErrorReceived,
    Csms,
    CsmsThread,
    DisconnectedError,
    InvalidCall,
    NotConnectedError,
    Record,
    main,
)

OCPP16 = [Subprotocol("ocpp1.6")]
BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Box"}


@pytest.fixture
def csms() -> Iterator[CsmsThread]:
    with CsmsThread() as server:
        yield server


@pytest.fixture
def cp(csms: CsmsThread) -> Iterator[SyncClient]:
    with connect(csms.station_url("CP1"), subprotocols=OCPP16) as ws:
        csms.wait_connected(2)
        yield ws


def rpc(ws: SyncClient, action: str, payload: dict[str, Any], uid: str = "u1") -> list[Any]:
    """Send one CALL and return the decoded answer."""
    ws.send(json.dumps([2, uid, action, payload]))
    answer: list[Any] = json.loads(ws.recv(timeout=2))
    return answer


def run_async(fn: Callable[[Csms], Awaitable[None]], **options: Any) -> None:
    """Run an async test body against a fresh Csms, bounded so a hang fails fast."""

    async def main() -> None:
        async with Csms(**options) as server:
            await asyncio.wait_for(fn(server), 5)

    asyncio.run(main())


async def answering_cp(ws: ClientConnection, answers: dict[str, Any]) -> None:
    """A fake charge point answering CSMS calls from a table (a list = CALLERROR parts)."""
    async for raw in ws:
        msg = json.loads(raw)
        if msg[0] != 2 or msg[2] not in answers:
            continue
        answer = answers[msg[2]]
        if isinstance(answer, list):
            await ws.send(json.dumps([4, msg[1], *answer]))
        else:
            await ws.send(json.dumps([3, msg[1], answer]))


# ------------------------------------------------------------ CP-initiated calls


def test_boot_accepted_and_heartbeat(csms: CsmsThread, cp: SyncClient) -> None:
    answer = rpc(cp, "BootNotification", BOOT)
    assert answer[:2] == [3, "u1"]
    assert answer[2]["status"] == "Accepted"
    assert answer[2]["interval"] == 300
    assert answer[2]["currentTime"].endswith("Z")
    heartbeat = rpc(cp, "Heartbeat", {}, uid="u2")
    assert heartbeat[0] == 3 and heartbeat[2]["currentTime"].endswith("Z")

    kinds = [(r.direction, r.message_type, r.action, r.unique_id) for r in csms.records]
    assert kinds == [
        ("in", "CALL", "BootNotification", "u1"),
        ("out", "CALLRESULT", "BootNotification", "u1"),
        ("in", "CALL", "Heartbeat", "u2"),
        ("out", "CALLRESULT", "Heartbeat", "u2"),
    ]
    event = csms.events[0]
    assert (event.kind, event.station_id, event.subprotocol) == ("connected", "CP1", "ocpp1.6")
    assert csms.violations == []


@pytest.mark.parametrize("status", ["Pending", "Rejected"])
def test_boot_pending_or_rejected_uses_interval_as_retry(
    csms: CsmsThread, cp: SyncClient, status: str
) -> None:
    csms.boot_status = status
    csms.interval = 2
    answer = rpc(cp, "BootNotification", BOOT)
    assert answer[2]["status"] == status
    assert answer[2]["interval"] == 2


def test_id_tags_and_transaction_ids(csms: CsmsThread, cp: SyncClient) -> None:
    csms.configure(id_tags={"GOOD": "Accepted", "BAD": "Blocked"}, parent_id_tags={"GOOD": "FLEET"})
    assert rpc(cp, "Authorize", {"idTag": "GOOD"})[2] == {
        "idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}
    }
    assert rpc(cp, "Authorize", {"idTag": "BAD"})[2] == {"idTagInfo": {"status": "Blocked"}}
    assert rpc(cp, "Authorize", {"idTag": "WHO"})[2] == {"idTagInfo": {"status": "Invalid"}}
    csms.unknown_id_tag_status = "Accepted"
    assert rpc(cp, "Authorize", {"idTag": "WHO"})[2] == {"idTagInfo": {"status": "Accepted"}}

    start = {
        "connectorId": 1,
        "idTag": "GOOD",
        "meterStart": 0,
        "timestamp": "2024-01-01T00:00:00Z",
    }
    first = rpc(cp, "StartTransaction", start)[2]
    second = rpc(cp, "StartTransaction", {**start, "idTag": "BAD"})[2]
    assert first["transactionId"] == 1 and first["idTagInfo"]["status"] == "Accepted"
    assert second["transactionId"] == 2 and second["idTagInfo"]["status"] == "Blocked"
    assert csms.last_transaction_id == 2

    stop = {"transactionId": 1, "meterStop": 10, "timestamp": "2024-01-01T01:00:00Z"}
    assert rpc(cp, "StopTransaction", stop)[2] == {}
    assert rpc(cp, "StopTransaction", {**stop, "idTag": "BAD"})[2] == {
        "idTagInfo": {"status": "Blocked"}
    }


START = {"connectorId": 1, "idTag": "GOOD", "meterStart": 100, "timestamp": "2024-01-01T00:00:00Z"}


def test_a_resent_start_transaction_gets_the_same_transaction_id(
    csms: CsmsThread, cp: SyncClient
) -> None:
    csms.id_tags = {"GOOD": "Accepted"}
    first = rpc(cp, "StartTransaction", START, uid="s1")[2]
    again = rpc(cp, "StartTransaction", START, uid="s2")[2]  # the answer to s1 was lost
    assert first == again == {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
    # Any field different: a new transaction.
    changes: list[dict[str, Any]] = [
        {"meterStart": 101},
        {"timestamp": "2024-01-01T00:00:01Z"},
        {"connectorId": 2},
    ]
    for n, change in enumerate(changes):
        answer = rpc(cp, "StartTransaction", {**START, **change}, uid=f"n{n}")[2]
        assert answer["transactionId"] == 2 + n
    assert csms.last_transaction_id == 4
    assert [(r.unique_id, r.payload) for r in csms.retransmissions] == [("s2", START)]
    view = csms.transactions()[1]
    assert view.start == START and view.start_record.unique_id == "s1"
    assert [r.unique_id for r in view.retransmitted_starts] == ["s2"]
    assert list(csms.transactions()) == [1, 2, 3, 4]


def test_dedupe_can_be_turned_off() -> None:
    with CsmsThread(dedupe_starts=False) as csms:
        assert csms.dedupe_starts is False
        with connect(csms.station_url("CP1"), subprotocols=OCPP16) as ws:
            ids = [rpc(ws, "StartTransaction", START, uid=u)[2]["transactionId"] for u in "ab"]
        assert ids == [1, 2]
        assert csms.retransmissions == []
        csms.dedupe_starts = True  # a setting like the others
        with connect(csms.station_url("CP1"), subprotocols=OCPP16) as ws:
            assert rpc(ws, "StartTransaction", START, uid="c")[2]["transactionId"] == 3
            assert rpc(ws, "StartTransaction", START, uid="d")[2]["transactionId"] == 3


def _meter(tx_id: int | None, wh: int) -> dict[str, Any]:
    sample = {"timestamp": "2024-01-01T00:00:05Z", "sampledValue": [{"value": str(wh)}]}
    payload: dict[str, Any] = {"connectorId": 1, "meterValue": [sample]}
    if tx_id is not None:
        payload["transactionId"] = tx_id
    return payload


def test_transactions_view(csms: CsmsThread) -> None:
    stop = {"transactionId": 1, "meterStop": 150, "timestamp": "2024-01-01T01:00:00Z"}
    with connect(csms.station_url("CP1"), subprotocols=OCPP16) as ws:
        csms.ignore("StartTransaction")  # the station times out and reconnects
        ws.send(json.dumps([2, "1", "StartTransaction", START]))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)
    with connect(csms.station_url("CP1"), subprotocols=OCPP16) as ws:
        # Unique ids are per connection: "1" again is a new call, and it is answered.
        assert rpc(ws, "StartTransaction", START, uid="1")[2]["transactionId"] == 1
        rpc(ws, "MeterValues", _meter(1, 120), uid="2")
        rpc(ws, "MeterValues", _meter(None, 125), uid="3")  # no transaction: not in a view
        csms.fail_next("MeterValues")
        assert rpc(ws, "MeterValues", _meter(1, 130), uid="4")[0] == 4  # refused: not taken
        rpc(ws, "MeterValues", _meter(1, 130), uid="5")
        csms.ignore("StopTransaction")
        ws.send(json.dumps([2, "6", "StopTransaction", stop]))  # received, answer "lost"
        csms.wait_for("StopTransaction")
        rpc(ws, "StopTransaction", stop, uid="7")
        rpc(ws, "StopTransaction", {**stop, "transactionId": 99}, uid="8")  # unknown id
        rpc(ws, "StartTransaction", {**START, "meterStart": 150}, uid="9")
    views = csms.transactions()
    assert list(views) == [1, 2]
    first = views[1]
    assert first.start == START and first.retransmitted_starts == []
    assert [m["meterValue"][0]["sampledValue"][0]["value"] for m in first.meter_values] == [
        "120",
        "130",
    ]
    assert first.stops == [stop, stop] and first.distinct_stops == [stop]
    assert first.stop == stop
    assert views[2].stops == [] and views[2].stop is None
    assert csms.transactions(station_id="OTHER") == {}
    call = csms.records[-2]
    assert call.unique_id == "9" and call.direction == "in"
    answer = csms.answer_to(call)
    assert answer is not None and answer.payload["transactionId"] == 2


def test_accepting_answers_for_notifications(cp: SyncClient) -> None:
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    assert rpc(cp, "StatusNotification", status)[2] == {}
    sample = {"timestamp": "2024-01-01T00:00:00Z", "sampledValue": [{"value": "12.5"}]}
    meter = {"connectorId": 1, "meterValue": [sample]}
    assert rpc(cp, "MeterValues", meter)[2] == {}
    assert rpc(cp, "DataTransfer", {"vendorId": "x"})[2] == {"status": "Accepted"}
    assert rpc(cp, "DiagnosticsStatusNotification", {"status": "Idle"})[2] == {}
    assert rpc(cp, "FirmwareStatusNotification", {"status": "Idle"})[2] == {}


def test_forced_callerror_then_normal(csms: CsmsThread, cp: SyncClient) -> None:
    csms.fail_next("Heartbeat", "GenericError", count=2)
    assert rpc(cp, "Heartbeat", {})[:3] == [4, "u1", "GenericError"]
    assert rpc(cp, "Heartbeat", {})[2] == "GenericError"
    assert rpc(cp, "Heartbeat", {})[0] == 3

    csms.fail_always("Heartbeat")
    assert rpc(cp, "Heartbeat", {})[2] == "InternalError"
    assert rpc(cp, "Heartbeat", {})[2] == "InternalError"
    csms.fail_always("Heartbeat", None)
    assert rpc(cp, "Heartbeat", {})[0] == 3


def test_pending_faults_count_down(csms: CsmsThread, cp: SyncClient) -> None:
    assert csms.pending_faults() == {}
    csms.fail_next("Heartbeat", count=2)
    csms.ignore("Heartbeat", 1)
    csms.fail_always("DataTransfer")
    csms.ignore("MeterValues", None)
    assert csms.pending_faults() == {"Heartbeat": 3, "DataTransfer": None, "MeterValues": None}
    cp.send(json.dumps([2, "h1", "Heartbeat", {}]))  # ignored first, then failed
    csms.wait_for("Heartbeat")
    assert csms.pending_faults()["Heartbeat"] == 2
    assert rpc(cp, "Heartbeat", {}, uid="h2")[:2] == [4, "h2"]
    assert csms.pending_faults()["Heartbeat"] == 1
    csms.clear_overrides()
    assert csms.pending_faults() == {}


def test_ignored_action_gets_no_answer(csms: CsmsThread, cp: SyncClient) -> None:
    csms.ignore("Heartbeat")
    cp.send(json.dumps([2, "lost", "Heartbeat", {}]))
    with pytest.raises(TimeoutError):
        cp.recv(timeout=0.3)
    assert csms.wait_for("Heartbeat") == {}  # still recorded
    assert rpc(cp, "Heartbeat", {}, uid="next")[:2] == [3, "next"]


def test_respond_with_custom_async_and_failing_responders(csms: CsmsThread, cp: SyncClient) -> None:
    def start_blocked(payload: dict[str, Any]) -> dict[str, Any]:
        answer = csms.csms.default_response("StartTransaction", payload)  # runs in CSMS thread
        return {**answer, "idTagInfo": {"status": "Expired"}}

    async def slow_heartbeat(payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"currentTime": "2020-01-01T00:00:00.000Z"}

    csms.respond_with("StartTransaction", start_blocked)
    csms.respond_with("Heartbeat", slow_heartbeat)
    csms.respond_with("DataTransfer", lambda p: 1 / 0)  # type: ignore[arg-type,return-value]
    csms.respond_with("VendorThing", lambda p: {"ok": True})

    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2024-01-01T00:00:00Z"}
    assert rpc(cp, "StartTransaction", start)[2] == {
        "transactionId": 1,
        "idTagInfo": {"status": "Expired"},
    }
    assert rpc(cp, "Heartbeat", {})[2] == {"currentTime": "2020-01-01T00:00:00.000Z"}
    assert rpc(cp, "DataTransfer", {"vendorId": "x"})[2] == "InternalError"
    assert rpc(cp, "VendorThing", {})[2] == {"ok": True}

    csms.clear_overrides()
    assert rpc(cp, "DataTransfer", {"vendorId": "x"})[2] == {"status": "Accepted"}
    assert rpc(cp, "VendorThing", {})[2] == "NotImplemented"


# ------------------------------------------------------------ CSMS-initiated calls


def test_csms_call_round_trip_error_and_timeout() -> None:
    async def body(server: Csms) -> None:
        answers = {
            "ChangeConfiguration": {"status": "Accepted"},
            "Reset": ["NotSupported", "no reset here", {}],
        }
        async with aconnect(server.station_url("CP7"), subprotocols=OCPP16) as ws:
            task = asyncio.create_task(answering_cp(ws, answers))
            await server.wait_connected(2)
            payload = {"key": "HeartbeatInterval", "value": "60"}
            assert await server.call("ChangeConfiguration", payload) == {"status": "Accepted"}

            with pytest.raises(CallErrorReceived) as err:
                await server.call("Reset", {"type": "Soft"})
            assert (err.value.code, err.value.description) == ("NotSupported", "no reset here")

            with pytest.raises(TimeoutError, match="did not answer UnlockConnector"):
                await server.call("UnlockConnector", {"connectorId": 1}, timeout=0.2)

            replies = [r for r in server.records if r.direction == "in"]
            assert [(r.message_type, r.action) for r in replies] == [
                ("CALLRESULT", "ChangeConfiguration"),
                ("CALLERROR", "Reset"),
            ]
            task.cancel()

    run_async(body)


def test_call_fails_fast_when_cp_drops_or_is_absent() -> None:
    async def body(server: Csms) -> None:
        with pytest.raises(NotConnectedError):
            await server.call("Reset", {"type": "Soft"})
        async with aconnect(server.station_url("CP1"), subprotocols=OCPP16) as ws:
            await server.wait_connected(2)
            call = asyncio.create_task(server.call("Reset", {"type": "Soft"}, timeout=3))
            await ws.recv()
            await ws.close()
            with pytest.raises(DisconnectedError):
                await call

    run_async(body)


def test_send_raw_returns_the_cp_reply_or_none() -> None:
    async def body(server: Csms) -> None:
        async with aconnect(server.station_url("CP1"), subprotocols=OCPP16) as ws:

            async def cp() -> None:
                async for raw in ws:
                    if raw == "garbage":
                        await ws.send('[4,"-1","FormationViolation","bad frame",{}]')
                    elif isinstance(raw, str) and raw.startswith("[2"):
                        reply = [3, json.loads(raw)[1], {"status": "Accepted"}]
                        await ws.send(json.dumps(reply, separators=(",", ":")))

            task = asyncio.create_task(cp())
            await server.wait_connected(2)
            assert await server.send_raw("garbage", timeout=1) == (
                '[4,"-1","FormationViolation","bad frame",{}]'
            )
            reply = await server.send_raw('[2,"r1","ClearCache",{}]', timeout=1)
            assert reply == '[3,"r1",{"status":"Accepted"}]'
            assert server.records[-1].action == "ClearCache"  # labelled with the raw call
            assert await server.send_raw('"ignored"', timeout=0.2) is None
            task.cancel()

    run_async(body)


# --------------------------------------------------------------------- waiting


def test_wait_for_consumes_in_order_and_finds_earlier_messages(
    csms: CsmsThread, cp: SyncClient
) -> None:
    for n, status in enumerate(["Available", "Preparing", "Charging"]):
        payload = {"connectorId": 1, "errorCode": "NoError", "status": status}
        rpc(cp, "StatusNotification", payload, uid=f"s{n}")
    # arrived before the waits: still found, each only once, in order
    assert csms.wait_for("StatusNotification")["status"] == "Available"
    assert csms.wait_for("StatusNotification")["status"] == "Preparing"
    assert csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging")
    assert len(csms.calls("StatusNotification")) == 3

    mark = csms.mark()
    with pytest.raises(TimeoutError) as err:
        csms.wait_for("StatusNotification", timeout=0.1, after=mark)
    assert "no StatusNotification call received" in str(err.value)

    def later() -> None:
        time.sleep(0.05)
        payload = {"connectorId": 1, "errorCode": "NoError", "status": "Finishing"}
        rpc(cp, "StatusNotification", payload, uid="late")

    threading.Thread(target=later).start()
    assert csms.wait_for("StatusNotification", after=mark, timeout=2)["status"] == "Finishing"
    # wait_record does not consume: it can look back at anything
    record = csms.wait_record(lambda r: r.action == "StatusNotification", timeout=0.1)
    assert isinstance(record, Record) and record.payload["status"] == "Available"


def test_wait_for_timeout_lists_what_was_received(csms: CsmsThread, cp: SyncClient) -> None:
    rpc(cp, "Heartbeat", {})
    with pytest.raises(TimeoutError) as err:
        csms.wait_for("Authorize", lambda p: p["idTag"] == "X", timeout=0.1)
    text = str(err.value)
    assert "Authorize call matching the predicate" in text
    assert "Heartbeat" in text and "connected: CP1" in text


def test_on_message_sees_every_frame(csms: CsmsThread) -> None:
    seen: list[tuple[str, str]] = []
    csms.on_message(lambda r: seen.append((r.direction, r.message_type)))
    with connect(csms.station_url("CP1"), subprotocols=OCPP16) as ws:
        rpc(ws, "Heartbeat", {})
    assert seen == [("in", "CALL"), ("out", "CALLRESULT")]


# ---------------------------------------------------------------- connections


def test_basic_auth() -> None:
    with CsmsThread(password="s3cret") as csms:
        for header in [None, "Basic " + base64.b64encode(b"CP1:wrong").decode(), "Bearer x"]:
            headers = {"Authorization": header} if header else None
            with pytest.raises(InvalidStatus) as err:
                connect(csms.station_url("CP1"), subprotocols=OCPP16, additional_headers=headers)
            assert err.value.response.status_code == 401
        good = {"Authorization": "Basic " + base64.b64encode(b"CP1:s3cret").decode()}
        with connect(csms.station_url("CP1"), subprotocols=OCPP16, additional_headers=good):
            assert csms.wait_connected(2) == "CP1"
        csms.wait_disconnected(2)  # the server notices the close on its own loop
        assert [e.kind for e in csms.events] == ["rejected"] * 3 + ["connected", "disconnected"]


def test_refuse_connections_and_subprotocol_required(csms: CsmsThread) -> None:
    csms.refuse_connections = True
    with pytest.raises(InvalidStatus) as err:
        connect(csms.station_url("CP1"), subprotocols=OCPP16)
    assert err.value.response.status_code == 503
    csms.refuse_connections = False
    with pytest.raises(InvalidStatus) as err:
        connect(csms.station_url("CP1"))
    assert err.value.response.status_code == 400
    with connect(csms.station_url("CP1"), subprotocols=OCPP16) as ws:
        assert ws.subprotocol == "ocpp1.6"


def test_disconnect_and_reconnect(csms: CsmsThread, cp: SyncClient) -> None:
    mark = csms.mark()
    csms.disconnect()
    with pytest.raises(ConnectionClosed):
        cp.recv(timeout=2)
    csms.wait_disconnected(0.1)
    with connect(csms.station_url("CP1"), subprotocols=OCPP16):
        assert csms.wait_connected(2, after=mark) == "CP1"
        csms.disconnect(abrupt=True)
        csms.wait_disconnected(2)


def test_several_stations_by_id(csms: CsmsThread) -> None:
    with (
        connect(csms.station_url("A"), subprotocols=OCPP16) as a,
        connect(csms.station_url("B"), subprotocols=OCPP16) as b,
    ):
        csms.wait_connected(2, station_id="A")
        csms.wait_connected(2, station_id="B")
        assert sorted(csms.connected_stations) == ["A", "B"]
        rpc(a, "Heartbeat", {})
        rpc(b, "DataTransfer", {"vendorId": "b"})
        assert csms.calls("Heartbeat", station_id="B") == []
        assert csms.wait_for("DataTransfer", station_id="B") == {"vendorId": "b"}
        csms.disconnect(station_id="A")
        assert csms.connected_stations == ["B"]


# ------------------------------------------------------------------ robustness


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"g1","Heartbeat"]', "FormationViolation"),
        ('[2,"g2",5,{}]', "FormationViolation"),
        ('[2,"g3","Heartbeat",[]]', "FormationViolation"),
        ('[2,"g4","Heartbeat",{},1]', "FormationViolation"),
        ('[9,"g5","Heartbeat",{}]', "FormationViolation"),
        ('[2,"g6","FlyToMoon",{}]', "NotImplemented"),
        ('[2,"g7","Reset",{"type":"Soft"}]', "NotSupported"),
        ('[2,"g8","BootNotification",{"chargePointVendor":"V"}]', "ProtocolError"),
        ('[2,"g9","Heartbeat",{"extra":1}]', "FormationViolation"),
    ],
)
def test_bad_frames_with_unique_id_get_callerror(
    csms: CsmsThread, cp: SyncClient, frame: str, code: str
) -> None:
    cp.send(frame)
    answer = json.loads(cp.recv(timeout=2))
    assert answer[0] == 4 and answer[1] == json.loads(frame)[1] and answer[2] == code
    assert csms.violations or code in ("NotImplemented", "NotSupported")


def test_survives_garbage_and_keeps_serving(csms: CsmsThread, cp: SyncClient) -> None:
    for frame in ["not json", "{}", "[]", "[2]", '[2,7,"Heartbeat",{}]', "null", '["2","x"]']:
        cp.send(frame)
    cp.send(b"\x00binary")
    cp.send('[3,"nobody-asked",{}]')
    cp.send('[4,"nobody-asked","InternalError","x",{}]')
    answer = rpc(cp, "Heartbeat", {}, uid="alive")
    while answer[1] != "alive":  # skip CALLERRORs for frames that carried an id
        answer = json.loads(cp.recv(timeout=2))
    assert answer[0] == 3
    assert len(csms.violations) >= 7
    assert csms.wait_for("Heartbeat") == {}


def test_lax_mode_answers_schema_invalid_calls(csms: CsmsThread, cp: SyncClient) -> None:
    csms.strict = False
    assert rpc(cp, "BootNotification", {})[2]["status"] == "Accepted"
    assert "chargePointVendor" in (csms.violations[0].error or "")


def test_unknown_setting_is_an_error(csms: CsmsThread) -> None:
    with pytest.raises(AttributeError):
        csms.configure(bot_status="Pending")


# ------------------------------------------------------------------ OCPP 2.0.1

OCPP201 = [Subprotocol("ocpp2.0.1")]
BOTH = ("ocpp2.0.1", "ocpp1.6")
BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "Box", "vendorName": "Acme"}}
CARD = {"idToken": "AABBCCDD", "type": "ISO14443"}


@pytest.fixture
def csms201() -> Iterator[CsmsThread]:
    with CsmsThread(subprotocols=BOTH) as server:
        yield server


@pytest.fixture
def cp201(csms201: CsmsThread) -> Iterator[SyncClient]:
    with connect(csms201.station_url("CP2"), subprotocols=OCPP201) as ws:
        csms201.wait_connected(2)
        yield ws


def tx_event(event_type: str, seq_no: int, tx_id: str = "tx-1", **extra: Any) -> dict[str, Any]:
    """A minimal TransactionEvent request."""
    trigger = {"Started": "Authorized", "Updated": "MeterValuePeriodic", "Ended": "EVDeparted"}
    return {
        "eventType": event_type,
        "timestamp": f"2024-01-01T00:00:{seq_no:02d}.000Z",
        "triggerReason": trigger[event_type],
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx_id},
        **extra,
    }


def energy(wh: float) -> list[dict[str, Any]]:
    return [{"timestamp": "2024-01-01T00:00:05Z", "sampledValue": [{"value": wh}]}]


@pytest.mark.parametrize(
    ("accepted", "offered", "chosen"),
    [
        (BOTH, ["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),  # the CSMS's preference wins...
        (("ocpp1.6", "ocpp2.0.1"), ["ocpp2.0.1", "ocpp1.6"], "ocpp1.6"),  # ...either way
        (BOTH, ["ocpp1.6"], "ocpp1.6"),  # a 1.6-only station still gets in
        (BOTH, ["ocpp2.0", "ocpp2.0.1"], "ocpp2.0.1"),
        (("ocpp2.0.1",), ["ocpp2.0.1"], "ocpp2.0.1"),
    ],
)
def test_negotiation_picks_the_csms_preference(
    accepted: tuple[str, ...], offered: list[str], chosen: str
) -> None:
    with CsmsThread(subprotocols=accepted) as csms:
        protocols = [Subprotocol(p) for p in offered]
        with connect(csms.station_url("CP1"), subprotocols=protocols) as ws:
            assert ws.subprotocol == chosen
            csms.wait_connected(2)
            version = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}[chosen]
            assert csms.version_of("CP1") == csms.version_of() == version
            boot = BOOT if version == "1.6" else BOOT201
            answer = rpc(ws, "BootNotification", boot)
            assert answer[0] == 3 and answer[2]["status"] == "Accepted"
        assert csms.events[0].subprotocol == chosen
        assert {r.version for r in csms.records} == {version}
        assert csms.violations == []
        csms.wait_disconnected(2)
        assert csms.version_of("CP1") == version  # still known after the station left


@pytest.mark.parametrize(
    ("accepted", "offered"),
    [
        (BOTH, ["ocpp2.0"]),
        (BOTH, []),
        (("ocpp1.6",), ["ocpp2.0.1"]),  # the default CSMS speaks only 1.6
        (("ocpp2.0.1",), ["ocpp1.6"]),
    ],
)
def test_a_station_offering_nothing_acceptable_is_refused(
    accepted: tuple[str, ...], offered: list[str]
) -> None:
    with CsmsThread(subprotocols=accepted) as csms:
        protocols = [Subprotocol(p) for p in offered]
        with pytest.raises(InvalidStatus) as err:
            connect(csms.station_url("CP1"), subprotocols=protocols or None)
        assert err.value.response.status_code == 400
        assert [e.kind for e in csms.events] == ["rejected"]
        with pytest.raises(NotConnectedError):
            csms.version_of("CP1")


def test_subprotocols_setting_is_checked_and_changeable(csms201: CsmsThread) -> None:
    for bad in [(), ("ocpp2.1",), ("ocpp1.6", "ocpp1.6"), "ocpp1.6"]:
        with pytest.raises(ValueError):
            Csms(subprotocols=bad)
        with pytest.raises(ValueError):
            csms201.configure(subprotocols=bad)
    assert csms201.subprotocols == BOTH
    csms201.subprotocols = ("ocpp1.6",)  # new connections only
    with pytest.raises(InvalidStatus):
        connect(csms201.station_url("CP1"), subprotocols=OCPP201)
    both = [Subprotocol("ocpp2.0.1"), Subprotocol("ocpp1.6")]
    with connect(csms201.station_url("CP1"), subprotocols=both) as ws:
        assert ws.subprotocol == "ocpp1.6"
    with pytest.raises(SystemExit):
        main(["--subprotocols", "ocpp2.0.1,ocpp9"])


def test_version_of_names_the_station(csms201: CsmsThread) -> None:
    with (
        connect(csms201.station_url("OLD"), subprotocols=OCPP16),
        connect(csms201.station_url("NEW"), subprotocols=OCPP201),
    ):
        csms201.wait_connected(2, station_id="OLD")
        csms201.wait_connected(2, station_id="NEW")
        assert csms201.version_of("OLD") == "1.6"
        assert csms201.version_of("NEW") == "2.0.1"
        with pytest.raises(NotConnectedError):
            csms201.version_of("NOBODY")


def test_201_boot_heartbeat_and_authorize(csms201: CsmsThread, cp201: SyncClient) -> None:
    csms201.configure(
        id_tags={"AABBCCDD": "Accepted", "11223344": "Blocked"},
        parent_id_tags={"AABBCCDD": "FLEET"},
        interval=60,
    )
    boot = rpc(cp201, "BootNotification", BOOT201)[2]
    assert (boot["status"], boot["interval"]) == ("Accepted", 60)
    assert boot["currentTime"].endswith("Z")
    csms201.boot_status = "Pending"
    assert rpc(cp201, "BootNotification", BOOT201)[2]["status"] == "Pending"
    assert rpc(cp201, "Heartbeat", {})[2]["currentTime"].endswith("Z")
    assert rpc(cp201, "Authorize", {"idToken": CARD})[2] == {
        "idTokenInfo": {
            "status": "Accepted",
            "groupIdToken": {"idToken": "FLEET", "type": "Central"},
        }
    }
    blocked = {"idToken": "11223344", "type": "ISO14443"}
    assert rpc(cp201, "Authorize", {"idToken": blocked})[2] == {
        "idTokenInfo": {"status": "Blocked"}
    }
    unknown = {"idToken": "DEADBEEF", "type": "ISO14443"}  # as in 1.6: Invalid
    assert rpc(cp201, "Authorize", {"idToken": unknown})[2] == {
        "idTokenInfo": {"status": "Invalid"}
    }
    lower = {"idToken": "aabbccdd", "type": "ISO14443"}  # looked up exactly, like the idTag
    assert rpc(cp201, "Authorize", {"idToken": lower})[2]["idTokenInfo"]["status"] == "Invalid"
    free = {"idToken": "", "type": "NoAuthorization"}
    assert rpc(cp201, "Authorize", {"idToken": free})[2]["idTokenInfo"]["status"] == "Accepted"
    assert rpc(cp201, "DataTransfer", {"vendorId": "x"})[2] == {"status": "UnknownVendorId"}
    assert csms201.violations == []
    assert {r.version for r in csms201.records} == {"2.0.1"}


def test_201_transaction_round_trip_and_view(csms201: CsmsThread, cp201: SyncClient) -> None:
    csms201.id_tags = {"AABBCCDD": "Accepted"}
    started = tx_event("Started", 0, idToken=CARD, evse={"id": 1, "connectorId": 1})
    assert rpc(cp201, "TransactionEvent", started, uid="t0")[2] == {
        "idTokenInfo": {"status": "Accepted"}
    }
    updated = tx_event("Updated", 1, meterValue=energy(120.5))
    assert rpc(cp201, "TransactionEvent", updated, uid="t1")[2] == {}  # no idToken: empty
    csms201.ignore("TransactionEvent")  # the answer to seqNo 2 is "lost"...
    offline = tx_event("Updated", 2, meterValue=energy(130), offline=True)
    cp201.send(json.dumps([2, "t2", "TransactionEvent", offline]))
    csms201.wait_for("TransactionEvent", lambda p: p["seqNo"] == 2)
    assert rpc(cp201, "TransactionEvent", offline, uid="t2-again")[0] == 3  # ...so it is re-sent
    csms201.fail_next("TransactionEvent")  # refused: the CSMS did not take it
    ended = tx_event(
        "Ended",
        3,
        transactionInfo={"transactionId": "tx-1", "stoppedReason": "EVDisconnected"},
        meterValue=energy(150),
        idToken={"idToken": "DEADBEEF", "type": "ISO14443"},
    )
    assert rpc(cp201, "TransactionEvent", ended, uid="t3")[2] == "InternalError"
    answer = rpc(cp201, "TransactionEvent", ended, uid="t3-again")[2]
    assert answer == {"idTokenInfo": {"status": "Invalid"}}

    views = csms201.transaction_events()
    assert list(views) == ["tx-1"]
    view = views["tx-1"]
    assert (view.transaction_id, view.station_id) == ("tx-1", "CP2")
    assert view.started == started and view.updates == [updated, offline]
    assert view.ended == ended and view.stopped_reason == "EVDisconnected"
    assert view.seq_nos == [0, 1, 2, 3] and view.gap_free()
    assert view.missing_seq_nos() == [] and view.duplicate_seq_nos() == []
    assert view.distinct_events() == [started, updated, offline, ended]
    assert [r.unique_id for r in view.records] == ["t0", "t1", "t2", "t3-again"]
    assert [r.unique_id for r in view.retransmitted] == ["t2-again"]
    assert [r.unique_id for r in csms201.retransmissions] == ["t2-again"]
    assert view.sampled_values() == [120.5, 130, 150]
    assert len(view.meter_values()) == 3
    reasons = ["Authorized", "MeterValuePeriodic", "MeterValuePeriodic", "EVDeparted"]
    assert view.trigger_reasons == reasons
    assert view.offline_flags == [False, False, True, False]
    assert csms201.transactions() == {}  # the 1.6 view has nothing from a 2.0.1 session
    assert csms201.transaction_events(station_id="OTHER") == {}
    assert csms201.violations == []


def test_201_view_detects_gaps_and_duplicate_seq_nos(
    csms201: CsmsThread, cp201: SyncClient
) -> None:
    for n, event in enumerate(
        [
            tx_event("Started", 0, "gap"),
            tx_event("Updated", 2, "gap"),  # seqNo 1 never came
            tx_event("Started", 0, "dup"),
            tx_event("Updated", 1, "dup", meterValue=energy(1)),
            tx_event("Updated", 1, "dup", meterValue=energy(2)),  # same seqNo, other content
            tx_event("Updated", 1, "late"),  # no Started yet
        ]
    ):
        assert rpc(cp201, "TransactionEvent", event, uid=f"e{n}")[0] == 3
    views = csms201.transaction_events()
    assert list(views) == ["gap", "dup", "late"]
    gap, dup, late = views["gap"], views["dup"], views["late"]
    assert not gap.gap_free() and gap.missing_seq_nos() == [1] and gap.ended is None
    assert not dup.gap_free() and dup.duplicate_seq_nos() == [1] and dup.seq_nos == [0, 1, 1]
    assert dup.retransmitted == [] and len(dup.updates) == 2
    assert not late.gap_free() and late.started is None and late.missing_seq_nos() == [0]


def test_201_transaction_ids_are_per_station(csms201: CsmsThread) -> None:
    with (
        connect(csms201.station_url("A"), subprotocols=OCPP201) as a,
        connect(csms201.station_url("B"), subprotocols=OCPP201) as b,
    ):
        event = tx_event("Started", 0, "1")
        rpc(a, "TransactionEvent", event)
        rpc(b, "TransactionEvent", event)  # the same content from another station: not a re-send
    assert csms201.retransmissions == []
    with pytest.raises(ValueError, match="pass station_id"):
        csms201.transaction_events()
    assert csms201.transaction_events("A")["1"].station_id == "A"
    assert csms201.transaction_events("B")["1"].seq_nos == [0]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"g1","Heartbeat"]', "RpcFrameworkError"),
        ('[2,"g2",5,{}]', "RpcFrameworkError"),
        ('[2,"g3","Heartbeat",[]]', "FormatViolation"),
        ('[2,"g4","Heartbeat",{},1]', "RpcFrameworkError"),
        ('[9,"g5","Heartbeat",{}]', "MessageTypeNotSupported"),
        ('[2,"g6","FlyToMoon",{}]', "NotImplemented"),
        ('[2,"g7","StartTransaction",{}]', "NotImplemented"),  # 1.6 only
        (
            '[2,"g8","RequestStartTransaction",{"idToken":{"idToken":"A","type":"Local"},'
            '"remoteStartId":1}]',
            "NotSupported",
        ),
        ('[2,"g9","Reset",{"type":"Immediate"}]', "NotSupported"),
        ('[2,"h1","BootNotification",{"reason":"PowerUp"}]', "OccurrenceConstraintViolation"),
        ('[2,"h2","Heartbeat",{"extra":1}]', "FormatViolation"),
        (
            '[2,"h3","BootNotification",{"reason":"Bored","chargingStation":'
            '{"model":"M","vendorName":"V"}}]',
            "PropertyConstraintViolation",
        ),
        (
            '[2,"h4","TransactionEvent",'
            + json.dumps({**tx_event("Started", 0), "seqNo": "0"})
            + "]",
            "TypeConstraintViolation",
        ),
        (
            '[2,"h5","TransactionEvent",'
            + json.dumps({**tx_event("Started", 0), "timestamp": "2024-01-01T00:00:00.123456Z"})
            + "]",
            "FormatViolation",
        ),  # more than milliseconds
        (
            '[2,"h6","TransactionEvent",'
            + json.dumps({**tx_event("Started", 0), "timestamp": "2024-01-01T02:00:00+02:00"})
            + "]",
            "FormatViolation",
        ),  # not UTC
        (
            '[2,"h7","TransactionEvent",'
            + json.dumps({**tx_event("Started", 0), "timestamp": "2024-01-01T00:00:00"})
            + "]",
            "FormatViolation",
        ),  # no offset
    ],
)
def test_201_bad_frames_get_201_error_codes(
    csms201: CsmsThread, cp201: SyncClient, frame: str, code: str
) -> None:
    cp201.send(frame)
    answer = json.loads(cp201.recv(timeout=2))
    assert answer[0] == 4 and answer[1] == json.loads(frame)[1] and answer[2] == code
    assert csms201.violations or code in ("NotImplemented", "NotSupported")
    assert csms201.transaction_events() == {}  # refused events are not taken


def test_201_only_actions_are_unknown_to_a_16_session(csms201: CsmsThread) -> None:
    with connect(csms201.station_url("CP1"), subprotocols=OCPP16) as ws:
        assert rpc(ws, "TransactionEvent", tx_event("Started", 0))[2] == "NotImplemented"
        assert rpc(ws, "RemoteStartTransaction", {"idTag": "X"})[2] == "NotSupported"
        assert rpc(ws, "Heartbeat", {"extra": 1})[2] == "FormationViolation"  # 1.6 spelling
        assert rpc(ws, "DataTransfer", {"vendorId": "x"})[2] == {"status": "Accepted"}


def test_201_lax_mode_answers_schema_invalid_calls(csms201: CsmsThread, cp201: SyncClient) -> None:
    csms201.strict = False
    answer = rpc(cp201, "BootNotification", {"reason": "PowerUp"})
    assert answer[0] == 3 and answer[2]["status"] == "Accepted"
    assert "OccurrenceConstraintViolation" in (csms201.violations[0].error or "")


def test_201_knobs_and_responders(csms201: CsmsThread, cp201: SyncClient) -> None:
    def short_interval(payload: dict[str, Any]) -> dict[str, Any]:
        # the default of the session's version (2.0.1 here), without naming it
        return {**csms201.csms.default_response("BootNotification", payload), "interval": 5}

    async def slow_authorize(payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {
            **csms201.csms.default_response("Authorize", payload),
            "certificateStatus": "NoCertificateAvailable",
        }

    def with_priority(payload: dict[str, Any]) -> dict[str, Any]:
        return {**csms201.csms.default_response("TransactionEvent", payload), "chargingPriority": 1}

    csms201.respond_with("BootNotification", short_interval)
    csms201.respond_with("Authorize", slow_authorize)
    csms201.respond_with("TransactionEvent", with_priority)
    started = tx_event("Started", 0, idToken=CARD)
    assert rpc(cp201, "TransactionEvent", started, uid="t")[2] == {
        "idTokenInfo": {"status": "Invalid"},
        "chargingPriority": 1,
    }
    boot = rpc(cp201, "BootNotification", BOOT201)[2]
    assert boot["interval"] == 5 and boot["status"] == "Accepted"
    assert rpc(cp201, "Authorize", {"idToken": CARD})[2] == {
        "idTokenInfo": {"status": "Invalid"},
        "certificateStatus": "NoCertificateAvailable",
    }
    csms201.clear_overrides()
    csms201.fail_next("Heartbeat", "SecurityError")
    assert rpc(cp201, "Heartbeat", {})[2] == "SecurityError"
    csms201.ignore("Heartbeat")
    cp201.send(json.dumps([2, "lost", "Heartbeat", {}]))
    with pytest.raises(TimeoutError):
        cp201.recv(timeout=0.2)
    record = csms201.wait_for_record("Heartbeat", lambda p: p == {}, station_id="CP2")
    assert record.version == "2.0.1" and record.unique_id == "u1"
    assert csms201.wait_for("Heartbeat", station_id="CP2") == {}
    assert len(csms201.calls("Heartbeat", station_id="CP2")) == 2
    assert csms201.violations == []
    # outside a responder the version is given, else it is 1.6
    assert "chargingStation" not in csms201.default_response("BootNotification", BOOT201)
    with pytest.raises(KeyError, match=r"2\.0\.1"):
        csms201.default_response("StartTransaction", {}, "2.0.1")
    assert csms201.default_response("TransactionEvent", tx_event("Started", 0), "2.0.1") == {}


GET_VARIABLES = {
    "getVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    ]
}
GET_VARIABLES_RESULT = {
    "getVariableResult": [
        {
            "attributeStatus": "Accepted",
            "attributeValue": "60",
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
        }
    ]
}


def test_201_call_validates_against_the_sessions_version() -> None:
    async def body(server: Csms) -> None:
        answers = {
            "GetVariables": GET_VARIABLES_RESULT,
            "Reset": {"status": "Scheduled"},
            "ChangeConfiguration": {"status": "Accepted"},
            "ClearCache": {"status": "Maybe"},  # breaks the response schema
        }
        async with aconnect(server.station_url("CP9"), subprotocols=OCPP201) as ws:
            task = asyncio.create_task(answering_cp(ws, answers))
            await server.wait_connected(2)
            assert await server.call("GetVariables", GET_VARIABLES) == GET_VARIABLES_RESULT
            assert await server.call("Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}

            sent = len(server.records)
            with pytest.raises(InvalidCall) as err:
                await server.call("Reset", {"type": "Soft"})  # the 1.6 value
            assert err.value.code == "PropertyConstraintViolation"
            with pytest.raises(InvalidCall) as err:
                await server.call("GetVariables", {})
            assert err.value.code == "OccurrenceConstraintViolation"
            with pytest.raises(InvalidCall) as err:
                await server.call("ChangeConfiguration", {"key": "K", "value": "V"})
            assert err.value.code == "NotImplemented"
            assert len(server.records) == sent  # nothing went out

            # on purpose: sent as it is
            payload = {"key": "K", "value": "V"}
            assert await server.call("ChangeConfiguration", payload, validate=False) == {
                "status": "Accepted"
            }
            # the station's answer is checked against the 2.0.1 response schema
            assert await server.call("ClearCache", {}) == {"status": "Maybe"}
            assert server.violations[-1].action == "ClearCache"
            assert "PropertyConstraintViolation" in (server.violations[-1].error or "")
            assert {r.version for r in server.records} == {"2.0.1"}
            task.cancel()

    run_async(body, subprotocols=BOTH)


def test_16_calls_are_still_sent_unvalidated_unless_asked() -> None:
    async def body(server: Csms) -> None:
        async with aconnect(server.station_url("CP1"), subprotocols=OCPP16) as ws:
            task = asyncio.create_task(answering_cp(ws, {"Reset": {"status": "Accepted"}}))
            await server.wait_connected(2)
            assert await server.call("Reset", {"type": "Immediate"}) == {"status": "Accepted"}
            with pytest.raises(InvalidCall) as err:
                await server.call("Reset", {"type": "Immediate"}, validate=True)
            assert err.value.code == "PropertyConstraintViolation"
            task.cancel()

    run_async(body, subprotocols=BOTH)


def _201_schema_dir() -> Path:
    return Path(ocpp.__file__).parent / "v201" / "schemas"


def test_201_action_tables_cover_every_201_action() -> None:
    names = {
        p.stem.removesuffix("Request").removesuffix("Response")
        for p in _201_schema_dir().glob("*.json")
    }
    assert names == csms_v201.STATION_ACTIONS | csms_v201.CSMS_ACTIONS
    assert not csms_v201.STATION_ACTIONS & csms_v201.CSMS_ACTIONS


@pytest.mark.parametrize("action", sorted(csms_v201.STATION_ACTIONS))
def test_every_201_default_answer_is_schema_valid(action: str) -> None:
    csms = Csms(id_tags={"AABBCCDD": "NoCredit"}, parent_id_tags={"AABBCCDD": "FLEET"})
    validator = get_validator(3, action, "2.0.1")
    for boot_status in ("Accepted", "Pending", "Rejected"):
        csms.boot_status = boot_status
        for token in (CARD, {"idToken": "X", "type": "Central"}, None):
            payload = {} if token is None else {"idToken": token}
            answer = csms.default_response(action, payload, version="2.0.1")
            errors = [e.message for e in validator.iter_errors(answer)]
            assert errors == [], (action, answer)
            if "currentTime" in answer:  # what real back ends send: UTC, milliseconds
                assert re.fullmatch(
                    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", answer["currentTime"]
                )
