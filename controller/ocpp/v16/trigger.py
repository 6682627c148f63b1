"""OCPP 1.6 Remote Trigger profile (TriggerMessage) and the security whitepaper's
ExtendedTriggerMessage: the CSMS asks for a message now.

The station answers first — Accepted, Rejected (a connector that does not exist,
nothing to report) or NotImplemented — and sends each accepted message after
that answer, as OCPP 1.6 requires. Which connectors a request covers is decided
in controller.core.trigger. Triggered messages are not queued: they report the
present, and a CSMS that missed one asks again. They are sent while the station
is Pending too: that is what the CSMS uses to have a BootNotification sent again.

The firmware, diagnostics and log-upload features keep `firmware_status`,
`diagnostics_status`, `log_status` (and their requestIds) current on the
ChargePoint16; the security feature sets `sign_certificate_request`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from controller.core.trigger import STATION, Scope, trigger_targets
from controller.ocpp.rpc import Reply
from controller.ocpp.triggering import Send, accepted, heartbeat, sender
from controller.ocpp.v16.charge_point import meter_value
from controller.ocpp.v16.keys import KeySpec

log = logging.getLogger("evsed.ocpp")

# For one target connector: the message's sender, or None when there is nothing to report.
Prepare = Callable[[int], Send | None]

FIRMWARE_STATUSES = frozenset(
    {"Downloaded", "DownloadFailed", "Downloading", "Idle", "InstallationFailed", "Installing"}
    | {"Installed"}
)
# The security whitepaper's firmware statuses that FirmwareStatusNotification lacks, told
# in its words (a plain TriggerMessage during a SignedUpdateFirmware).
SIGNED_TO_PLAIN_FIRMWARE = {
    "DownloadScheduled": "Idle",
    "DownloadPaused": "Downloading",
    "SignatureVerified": "Downloaded",
    "InvalidSignature": "InstallationFailed",
    "InstallScheduled": "Downloaded",
    "InstallRebooting": "Installing",
    "InstallVerificationFailed": "InstallationFailed",
}
SIGNED_FIRMWARE_STATUSES = FIRMWARE_STATUSES | set(SIGNED_TO_PLAIN_FIRMWARE)
DIAGNOSTICS_STATUSES = frozenset({"Idle", "Uploaded", "UploadFailed", "Uploading"})
LOG_STATUSES = frozenset(
    {"BadMessage", "Idle", "NotSupportedOperation", "PermissionDenied", "Uploaded"}
    | {"UploadFailure", "Uploading"}
)
# MeterValuesSampledData may be empty; a CSMS that asks for meter values wants the register.
FALLBACK_MEASURANDS = ["Energy.Active.Import.Register"]


class RemoteTrigger:
    """TriggerMessage and ExtendedTriggerMessage for a ChargePoint16."""

    PROFILE = "RemoteTrigger"

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        common: dict[str, tuple[Scope, Prepare]] = {
            "BootNotification": (Scope.STATION, self._boot_notification),
            "Heartbeat": (Scope.STATION, self._heartbeat),
            "MeterValues": (Scope.CONNECTORS, self._meter_values),
            "StatusNotification": (Scope.STATION_AND_CONNECTORS, self._status_notification),
        }
        self.triggers = common | {
            "DiagnosticsStatusNotification": (Scope.STATION, self._diagnostics_status),
            "FirmwareStatusNotification": (Scope.STATION, self._firmware_status),
        }
        self.extended_triggers = common | {
            "FirmwareStatusNotification": (Scope.STATION, self._signed_firmware_status),
            "LogStatusNotification": (Scope.STATION, self._log_status),
            "SignChargePointCertificate": (Scope.STATION, self._sign_certificate),
        }

    @staticmethod
    def keys(number_of_connectors: int) -> dict[str, KeySpec]:
        return {}

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any] | Reply]]]:
        return {
            "TriggerMessage": self._trigger_message,
            "ExtendedTriggerMessage": self._extended_trigger_message,
        }

    async def _trigger_message(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        return self._answer("TriggerMessage", req, self.triggers)

    async def _extended_trigger_message(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        return self._answer("ExtendedTriggerMessage", req, self.extended_triggers)

    def _answer(
        self, action: str, req: dict[str, Any], table: dict[str, tuple[Scope, Prepare]]
    ) -> dict[str, Any] | Reply:
        requested, connector = req["requestedMessage"], req.get("connectorId")
        if requested not in table:
            log.info("%s for %s: not implemented", action, requested, extra={"action": action})
            return {"status": "NotImplemented"}
        scope, prepare = table[requested]
        targets = trigger_targets(scope, connector, len(self.cp.station.core.connectors))
        if targets is None:
            log.info("%s for %s refused: no connector %s", action, requested, connector)
            return {"status": "Rejected"}
        senders = [send for target in targets if (send := prepare(target)) is not None]
        if not senders:
            log.info("%s for %s refused: nothing to report", action, requested)
            return {"status": "Rejected"}
        log.info("%s: sending %s", action, requested, extra={"action": action})
        return accepted(self.cp, requested, senders)

    def _sender(self, action: str, payload: dict[str, Any]) -> Send:
        return sender(self.cp, action, payload)

    # --- the messages -------------------------------------------------------------------

    def _boot_notification(self, _target: int) -> Send:
        return self.cp.boot_notification

    def _heartbeat(self, _target: int) -> Send:
        return heartbeat(self.cp)

    def _meter_values(self, connector: int) -> Send | None:
        """The meter's readings now, of the measurands in MeterValuesSampledData."""
        station = self.cp.station
        measurands = self.cp.keys.get_list("MeterValuesSampledData") or FALLBACK_MEASURANDS
        samples = station.current_samples(connector, measurands, "Trigger")
        if not samples:
            return None
        data = {"timestamp": station.clock.iso(), "samples": samples}
        payload: dict[str, Any] = {
            "connectorId": connector,
            "meterValue": [meter_value(data, station.clock.resolve)],
        }
        tx_id = station.transaction_id(connector)
        tx = self.cp.store.transaction(tx_id) if tx_id is not None else None
        if tx is not None and tx.csms_id is not None:
            payload["transactionId"] = tx.csms_id
        return self._sender("MeterValues", payload)

    def _status_notification(self, connector: int) -> Send:
        station = self.cp.station
        status = station.statuses().get(connector)
        if status is None:  # not reported yet: what the core says now
            core = station.core
            status = core.status() if connector == STATION else core.connector(connector).status()
        payload: dict[str, Any] = {
            "connectorId": connector,
            "status": status.status.value,
            "errorCode": status.error_code,
            "timestamp": station.clock.iso(),
        }
        if status.info:
            payload["info"] = status.info[:50]
        return self._sender("StatusNotification", payload)

    def _diagnostics_status(self, _target: int) -> Send | None:
        status = self._known("diagnostics", self.cp.diagnostics_status, DIAGNOSTICS_STATUSES)
        if status is None:
            return None
        return self._sender("DiagnosticsStatusNotification", {"status": status})

    def _firmware_status(self, _target: int) -> Send | None:
        current = self.cp.firmware_status
        status = self._known(
            "firmware", SIGNED_TO_PLAIN_FIRMWARE.get(current, current), FIRMWARE_STATUSES
        )
        if status is None:
            return None
        return self._sender("FirmwareStatusNotification", {"status": status})

    def _signed_firmware_status(self, _target: int) -> Send | None:
        status = self._known("firmware", self.cp.firmware_status, SIGNED_FIRMWARE_STATUSES)
        if status is None:
            return None
        payload: dict[str, Any] = {"status": status}
        if self.cp.firmware_request_id is not None:
            payload["requestId"] = self.cp.firmware_request_id
        return self._sender("SignedFirmwareStatusNotification", payload)

    def _log_status(self, _target: int) -> Send | None:
        status = self._known("log", self.cp.log_status, LOG_STATUSES)
        if status is None:
            return None
        payload: dict[str, Any] = {"status": status}
        if self.cp.log_request_id is not None:
            payload["requestId"] = self.cp.log_request_id
        return self._sender("LogStatusNotification", payload)

    def _sign_certificate(self, _target: int) -> Send | None:
        hook = self.cp.sign_certificate_request
        if hook is None:
            log.info("SignChargePointCertificate refused: no certificate management")
        return hook

    @staticmethod
    def _known(what: str, status: str, allowed: frozenset[str]) -> str | None:
        if status in allowed:
            return status
        log.error("the %s status %r is not one OCPP 1.6 knows: not reported", what, status)
        return None
