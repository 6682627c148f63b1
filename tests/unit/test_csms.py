"""Tests for the scriptable OCPP 1.6J CSMS used by the demo and the integration tests.

The charge point here is a bare websocket client sending hand-written frames, so
the tests pin down the wire behaviour the integration tests rely on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection as SyncClient
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from hwsim.csms import (
    CallErrorReceived,
    Csms,
    CsmsThread,
    DisconnectedError,
    NotConnectedError,
    Record,
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
