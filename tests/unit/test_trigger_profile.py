"""The RemoteTrigger profile's answers that the daemon cannot be brought to give
(controller.ocpp.v16.trigger): no certificate hook, statuses set by the firmware and
log features, actions outside the tables. The link is a stand-in; the daemon-level
behaviour is in tests/integration/test_trigger_message.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from controller.ocpp.rpc import Reply, validate
from controller.ocpp.v16.trigger import RemoteTrigger


class Core:
    connectors = [object(), object()]


class Station:
    core = Core()


class ChargePoint:
    """The attributes of a ChargePoint16 the trigger reads, and a recording link."""

    def __init__(self) -> None:
        self.station = Station()
        self.firmware_status = "Idle"
        self.firmware_request_id: int | None = None
        self.diagnostics_status = "Idle"
        self.log_status = "Idle"
        self.log_request_id: int | None = None
        self.sign_certificate_request: Any = None
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.later: list[Awaitable[Any]] = []

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        validate("1.6", action, payload)  # what the RPC layer would refuse to send
        self.sent.append((action, payload))
        return {}

    def _later(self, coro: Awaitable[Any]) -> None:
        self.later.append(coro)


def ask(
    cp: ChargePoint, requested: str, extended: bool = False
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The trigger's status and what it sent after answering."""
    action = "ExtendedTriggerMessage" if extended else "TriggerMessage"
    handler = RemoteTrigger(cp).handlers()[action]

    async def run() -> str:
        answer = await handler({"requestedMessage": requested})
        payload = answer.payload if isinstance(answer, Reply) else answer
        validate("1.6", action, payload, response=True)
        if isinstance(answer, Reply):
            answer.then()
        for work in cp.later:
            await work
        return str(payload["status"])

    status = asyncio.run(run())
    return status, cp.sent


def test_sign_certificate_without_certificate_management_is_rejected() -> None:
    assert ask(ChargePoint(), "SignChargePointCertificate", extended=True) == ("Rejected", [])


def test_sign_certificate_calls_the_security_hook_after_answering() -> None:
    cp = ChargePoint()
    calls: list[str] = []

    async def hook() -> bool:
        calls.append("sign")
        return True

    cp.sign_certificate_request = hook
    assert ask(cp, "SignChargePointCertificate", extended=True) == ("Accepted", [])
    assert calls == ["sign"]


@pytest.mark.parametrize(
    ("current", "plain"),
    [
        ("Downloading", "Downloading"),
        ("Installed", "Installed"),
        ("DownloadScheduled", "Idle"),
        ("DownloadPaused", "Downloading"),
        ("SignatureVerified", "Downloaded"),
        ("InvalidSignature", "InstallationFailed"),
        ("InstallScheduled", "Downloaded"),
        ("InstallRebooting", "Installing"),
        ("InstallVerificationFailed", "InstallationFailed"),
    ],
)
def test_firmware_status_in_both_vocabularies(current: str, plain: str) -> None:
    cp = ChargePoint()
    cp.firmware_status = current
    cp.firmware_request_id = 17
    assert ask(cp, "FirmwareStatusNotification") == (
        "Accepted",
        [("FirmwareStatusNotification", {"status": plain})],
    )
    cp = ChargePoint()
    cp.firmware_status = current
    cp.firmware_request_id = 17
    assert ask(cp, "FirmwareStatusNotification", extended=True) == (
        "Accepted",
        [("SignedFirmwareStatusNotification", {"status": current, "requestId": 17})],
    )


def test_log_and_diagnostics_uploads_under_way() -> None:
    cp = ChargePoint()
    cp.log_status, cp.log_request_id = "Uploading", 5
    cp.diagnostics_status = "Uploading"
    assert ask(cp, "LogStatusNotification", extended=True) == (
        "Accepted",
        [("LogStatusNotification", {"status": "Uploading", "requestId": 5})],
    )
    cp.sent.clear()
    cp.later.clear()
    assert ask(cp, "DiagnosticsStatusNotification") == (
        "Accepted",
        [("DiagnosticsStatusNotification", {"status": "Uploading"})],
    )


@pytest.mark.parametrize(
    ("attribute", "requested", "extended"),
    [
        ("firmware_status", "FirmwareStatusNotification", False),
        ("firmware_status", "FirmwareStatusNotification", True),
        ("diagnostics_status", "DiagnosticsStatusNotification", False),
        ("log_status", "LogStatusNotification", True),
    ],
)
def test_a_status_ocpp_does_not_know_is_rejected_not_sent_broken(
    attribute: str, requested: str, extended: bool
) -> None:
    cp = ChargePoint()
    setattr(cp, attribute, "Exploded")
    assert ask(cp, requested, extended) == ("Rejected", [])


@pytest.mark.parametrize("extended", [False, True])
def test_a_message_outside_the_table_is_not_implemented(extended: bool) -> None:
    # The schemas' enums keep these from the daemon; the profile still answers rightly.
    assert ask(ChargePoint(), "SecurityEventNotification", extended) == ("NotImplemented", [])
    other = "DiagnosticsStatusNotification" if extended else "LogStatusNotification"
    assert ask(ChargePoint(), other, extended) == ("NotImplemented", [])


def test_the_profile_declares_no_keys() -> None:
    assert RemoteTrigger.PROFILE == "RemoteTrigger"
    assert RemoteTrigger.keys(2) == {}
