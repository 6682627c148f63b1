"""DataTransfer in both directions.

The CSMS's DataTransfer goes to the real daemon. The station's own DataTransfer
is an API for integrators (`ChargePoint16.data_transfer`) with no command of
its own, so it is driven in process: a ChargePoint16 composed as the daemon
composes it, on simulated hardware, over a real websocket to the test CSMS.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from controller.authorizer import Authorizer
from controller.core.connector import ConnectorSettings
from controller.ocpp.rpc import OcppError
from controller.ocpp.v16 import features
from controller.ocpp.v16.charge_point import ChargePoint16, LinkSettings
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.station import Station
from controller.store import Store
from hwsim.csms import CallErrorReceived, CsmsThread
from hwsim.hardware import SimHardware
from tests.integration.harness import status_record

# --- the CSMS's DataTransfer, answered by the daemon ---------------------------------------


def booted(csms: CsmsThread) -> None:
    csms.wait_for("BootNotification")
    status_record(csms, "Available", connector=1)


def test_diagnostics_snapshot_of_the_evsed_vendor(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    booted(csms)
    mark = csms.mark()
    daemon.request("plug", connector=1)
    status_record(csms, "Preparing", connector=1, after=mark)

    answer = csms.call(
        "DataTransfer", {"vendorId": "org.evsed", "messageId": "GetDiagnosticsSnapshot"}
    )
    assert answer["status"] == "Accepted"
    state = json.loads(answer["data"])
    [connector] = state["connectors"]
    assert connector["status"] == "Preparing"
    assert connector["pilot_state"] == "B"
    assert state["ocpp"] == {
        "connected": True,
        "registration": "Accepted",
        "allowed": True,
        "version": "1.6",
    }
    boot = csms.calls("BootNotification")[0]
    assert state["firmware_version"] == boot["firmwareVersion"]
    assert state["failed_messages"] == []
    # The data sent along is not needed and changes nothing.
    again = csms.call(
        "DataTransfer",
        {"vendorId": "org.evsed", "messageId": "GetDiagnosticsSnapshot", "data": "x"},
    )
    assert again["status"] == "Accepted"


def test_diagnostics_snapshot_lists_messages_given_up(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon(keys={"TransactionMessageAttempts": 1})
    booted(csms)
    csms.fail_always("StartTransaction", "InternalError")
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid="04A1B2C3")
    csms.wait_for("StartTransaction", after=mark)
    daemon.wait(lambda s: s["queued_messages"] == 0, 5, "the start given up")

    answer = csms.call(
        "DataTransfer", {"vendorId": "org.evsed", "messageId": "GetDiagnosticsSnapshot"}
    )
    failed = json.loads(answer["data"])["failed_messages"]
    assert [(m["kind"], m["error"].split(":")[0]) for m in failed] == [("start", "InternalError")]


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        ({"vendorId": "org.evsed", "messageId": "Reboot"}, "UnknownMessageId"),
        ({"vendorId": "org.evsed"}, "UnknownMessageId"),
        ({"vendorId": "org.evsed", "messageId": "getdiagnosticssnapshot"}, "UnknownMessageId"),
        (
            {"vendorId": "com.example.nobody", "messageId": "GetDiagnosticsSnapshot"},
            "UnknownVendorId",
        ),
        ({"vendorId": "ORG.EVSED", "messageId": "GetDiagnosticsSnapshot"}, "UnknownVendorId"),
    ],
)
def test_unknown_vendors_and_messages(
    make_daemon, csms: CsmsThread, request_: dict[str, Any], status: str
) -> None:
    make_daemon()
    booted(csms)
    assert csms.call("DataTransfer", request_) == {"status": status}


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"vendorId": "v" * 256}, "TypeConstraintViolation"),
        ({"vendorId": "org.evsed", "messageId": "m" * 51}, "TypeConstraintViolation"),
        ({"messageId": "GetDiagnosticsSnapshot"}, "OccurenceConstraintViolation"),
        ({"vendorId": "org.evsed", "data": {"a": 1}}, "TypeConstraintViolation"),
        ({"vendorId": "org.evsed", "extra": 1}, "FormationViolation"),
    ],
)
def test_a_request_the_schema_refuses_gets_a_callerror(
    make_daemon, csms: CsmsThread, request_: dict[str, Any], code: str
) -> None:
    daemon = make_daemon()
    booted(csms)
    with pytest.raises(CallErrorReceived) as error:
        csms.call("DataTransfer", request_)
    assert error.value.code == code
    assert daemon.proc is not None and daemon.proc.poll() is None


# --- the station's DataTransfer, in process --------------------------------------------------


@asynccontextmanager
async def station_online(csms: CsmsThread, state_dir: Path) -> AsyncIterator[ChargePoint16]:
    """A ChargePoint16 composed as the daemon composes it, connected and accepted."""
    store = Store(state_dir / "evsed.db")
    keys = ConfigurationKeys(
        features.all_keys(1), persisted=store.config_keys(), persist=store.set_config_key
    )
    authorizer = Authorizer(state_dir / "auth.db")
    hardware = SimHardware(1, has_lock=[False], ev_reaction_s=0.0)
    station = Station(hardware, store, keys, [ConnectorSettings(max_current_a=16)], [3], authorizer)
    settings = LinkSettings(
        url=csms.url, station_id="CP-DT", vendor="evsed", model="test", reconnect_min=0.2
    )
    cp = ChargePoint16(settings, station, keys, store)
    features.attach(cp)
    await station.start()
    link = asyncio.ensure_future(cp.run())
    try:
        await until(lambda: cp.online)
        yield cp
    finally:
        link.cancel()
        await asyncio.gather(link, return_exceptions=True)
        await station.stop()
        authorizer.close()
        store.close()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def in_process(
    csms: CsmsThread, tmp_path: Path, body: Callable[[ChargePoint16], Awaitable[None]]
) -> None:
    async def run() -> None:
        async with station_online(csms, tmp_path) as cp:
            await body(cp)

    asyncio.run(run())


def sent_data_transfers(csms: CsmsThread) -> list[dict[str, Any]]:
    return csms.calls("DataTransfer", station_id="CP-DT")


def test_station_data_transfer_returns_the_csms_answer(csms: CsmsThread, tmp_path: Path) -> None:
    csms.respond_with(
        "DataTransfer",
        lambda p: (
            {"status": "Accepted", "data": p.get("data", "").upper()}
            if p.get("messageId") == "Echo"
            else {"status": "UnknownMessageId"}
        ),
    )

    async def body(cp: ChargePoint16) -> None:
        assert await cp.data_transfer("com.example", "Echo", "hello") == ("Accepted", "HELLO")
        assert await cp.data_transfer("com.example", "Other") == ("UnknownMessageId", None)
        assert await cp.data_transfer("com.example") == ("UnknownMessageId", None)

    in_process(csms, tmp_path, body)
    assert sent_data_transfers(csms) == [
        {"vendorId": "com.example", "messageId": "Echo", "data": "hello"},
        {"vendorId": "com.example", "messageId": "Other"},
        {"vendorId": "com.example"},
    ]


@pytest.mark.parametrize("status", ["Rejected", "UnknownVendorId", "UnknownMessageId"])
def test_station_data_transfer_refused_by_the_csms(
    csms: CsmsThread, tmp_path: Path, status: str
) -> None:
    csms.respond_with("DataTransfer", lambda p: {"status": status})

    async def body(cp: ChargePoint16) -> None:
        assert await cp.data_transfer("com.example", "Hello", "x") == (status, None)

    in_process(csms, tmp_path, body)


def test_station_data_transfer_errors_reach_the_caller(csms: CsmsThread, tmp_path: Path) -> None:
    async def body(cp: ChargePoint16) -> None:
        csms.fail_next("DataTransfer", "NotSupported")
        with pytest.raises(OcppError) as error:
            await cp.data_transfer("com.example", "Hello")
        assert error.value.code == "NotSupported"

        csms.respond_with("DataTransfer", lambda p: {"status": "Maybe"})
        with pytest.raises(OcppError) as error:
            await cp.data_transfer("com.example", "Hello")
        assert error.value.code == "InvalidResponse"

        # Ids beyond the schema never leave the station.
        with pytest.raises(ValueError):
            await cp.data_transfer("v" * 256)
        with pytest.raises(ValueError):
            await cp.data_transfer("com.example", "m" * 51)

        # Nothing is sent, nor queued, without an accepting CSMS.
        cp.cut()
        await until(lambda: not cp.online)
        with pytest.raises(ConnectionError):
            await cp.data_transfer("com.example", "Hello")

    in_process(csms, tmp_path, body)
    assert len(sent_data_transfers(csms)) == 2  # the two the CSMS refused


def test_registered_vendor_answers_the_csms(csms: CsmsThread, tmp_path: Path) -> None:
    """An integrator's vendor, message by message, answering the CSMS over the link."""
    received: list[str | None] = []

    async def set_price(data: str | None) -> tuple[str, str | None]:
        received.append(data)
        return ("Accepted", None) if data else ("Rejected", "no price")

    async def body(cp: ChargePoint16) -> None:
        cp.vendors.register_message("com.example.tariffs", "SetPrice", set_price)

        def ask(payload: dict[str, Any]) -> dict[str, Any]:
            return csms.call("DataTransfer", payload, station_id="CP-DT")

        vendor = {"vendorId": "com.example.tariffs"}
        ok = await asyncio.to_thread(ask, vendor | {"messageId": "SetPrice", "data": "0.30"})
        assert ok == {"status": "Accepted"}
        bad = await asyncio.to_thread(ask, vendor | {"messageId": "SetPrice"})
        assert bad == {"status": "Rejected", "data": "no price"}
        other = await asyncio.to_thread(ask, vendor | {"messageId": "GetPrice"})
        assert other == {"status": "UnknownMessageId"}

    in_process(csms, tmp_path, body)
    assert received == ["0.30", None]
