"""The DataTransfer vendor registry (controller.ocpp.v16.data_transfer), without a link."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from controller.ocpp.rpc import validate
from controller.ocpp.v16.data_transfer import VendorRegistry, evsed_vendor


class Link:
    """Stands in for the RPC session: records the CALLs and answers them."""

    def __init__(self, answer: dict[str, Any] | None = None, online: bool = True) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.answer = answer or {"status": "Accepted"}
        self.online = online

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.sent.append((action, payload))
        return self.answer


def registry(link: Link | None = None) -> VendorRegistry:
    link = link or Link()
    return VendorRegistry(link.call, lambda: link.online)


def answer(reg: VendorRegistry, req: dict[str, Any]) -> dict[str, Any]:
    result = asyncio.run(reg.answer(req))
    validate("1.6", "DataTransfer", result, response=True)  # always a valid conf
    return result


async def echo(data: str | None) -> tuple[str, str | None]:
    return "Accepted", (data or "").upper()


def test_unknown_vendor_and_message() -> None:
    reg = registry()
    reg.register_message("com.example", "Echo", echo)
    assert answer(reg, {"vendorId": "com.other"}) == {"status": "UnknownVendorId"}
    assert answer(reg, {"vendorId": "com.example", "messageId": "Nope"}) == {
        "status": "UnknownMessageId"
    }
    assert answer(reg, {"vendorId": "com.example"}) == {"status": "UnknownMessageId"}
    assert answer(reg, {"vendorId": "com.example", "messageId": "Echo", "data": "hi"}) == {
        "status": "Accepted",
        "data": "HI",
    }
    # vendorId and messageId are compared exactly.
    assert answer(reg, {"vendorId": "COM.EXAMPLE", "messageId": "Echo"})["status"] == (
        "UnknownVendorId"
    )
    assert answer(reg, {"vendorId": "com.example", "messageId": "echo"})["status"] == (
        "UnknownMessageId"
    )


def test_a_whole_vendor_handler_sees_every_message() -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def vendor(message_id: str | None, data: str | None) -> tuple[str, str | None]:
        seen.append((message_id, data))
        return "Rejected", None

    reg = registry()
    reg.register_vendor("com.example", vendor)
    assert answer(reg, {"vendorId": "com.example", "messageId": "A", "data": "x"}) == {
        "status": "Rejected"
    }
    assert answer(reg, {"vendorId": "com.example"}) == {"status": "Rejected"}
    assert seen == [("A", "x"), (None, None)]
    with pytest.raises(ValueError):
        reg.register_message("com.example", "B", echo)
    reg.unregister_vendor("com.example")
    assert answer(reg, {"vendorId": "com.example"}) == {"status": "UnknownVendorId"}


async def broken(data: str | None) -> tuple[str, str | None]:
    raise RuntimeError("bug in an extension")


async def nonsense(data: str | None) -> tuple[str, str | None]:
    return "Maybe", None


async def not_text(data: str | None) -> tuple[str, str | None]:
    return "Accepted", {"a": 1}  # type: ignore[return-value]


@pytest.mark.parametrize("handler", [broken, nonsense, not_text])
def test_a_failing_or_wrong_handler_is_answered_rejected(handler: Any) -> None:
    reg = registry()
    reg.register_message("com.example", "M", handler)
    assert answer(reg, {"vendorId": "com.example", "messageId": "M"}) == {"status": "Rejected"}


@pytest.mark.parametrize(
    ("vendor_id", "message_id"), [("", "M"), ("v" * 256, "M"), ("com.example", "m" * 51)]
)
def test_ids_beyond_the_schema_are_refused_when_registering(
    vendor_id: str, message_id: str
) -> None:
    with pytest.raises(ValueError):
        registry().register_message(vendor_id, message_id, echo)


def test_send_builds_the_request_and_returns_the_answer() -> None:
    link = Link({"status": "UnknownMessageId", "data": "why"})
    reg = registry(link)
    assert asyncio.run(reg.send("com.example", "Hello", "x")) == ("UnknownMessageId", "why")
    assert asyncio.run(reg.send("com.example")) == ("UnknownMessageId", "why")
    assert link.sent == [
        ("DataTransfer", {"vendorId": "com.example", "messageId": "Hello", "data": "x"}),
        ("DataTransfer", {"vendorId": "com.example"}),
    ]


def test_send_refuses_offline_and_overlong_ids_without_sending() -> None:
    link = Link(online=False)
    with pytest.raises(ConnectionError):
        asyncio.run(registry(link).send("com.example", "Hello"))
    link.online = True
    with pytest.raises(ValueError):
        asyncio.run(registry(link).send("v" * 256))
    with pytest.raises(ValueError):
        asyncio.run(registry(link).send("com.example", "m" * 51))
    assert link.sent == []


class FakeStation:
    def snapshot(self) -> dict[str, Any]:
        return {"status": "Available", "connectors": [{"connector": 1, "status": "Charging"}]}


class FakeStore:
    def failed_messages(self) -> list[tuple[int, str, str | None]]:
        return [(7, "meter", "InternalError: forced")]


class FakeChargePoint:
    station = FakeStation()
    store = FakeStore()

    def link_state(self) -> dict[str, Any]:
        return {"connected": True, "registration": "Accepted", "allowed": True}


def test_the_evsed_vendor_reports_the_state() -> None:
    reg = registry()
    reg.register_vendor("org.evsed", evsed_vendor(FakeChargePoint()))
    result = answer(reg, {"vendorId": "org.evsed", "messageId": "GetDiagnosticsSnapshot"})
    assert result["status"] == "Accepted"
    state = json.loads(result["data"])
    assert state["connectors"] == [{"connector": 1, "status": "Charging"}]
    assert state["ocpp"]["registration"] == "Accepted"
    assert state["failed_messages"] == [
        {"id": 7, "kind": "meter", "error": "InternalError: forced"}
    ]
    assert isinstance(state["firmware_version"], str)
    assert answer(reg, {"vendorId": "org.evsed", "messageId": "Reboot"}) == {
        "status": "UnknownMessageId"
    }
