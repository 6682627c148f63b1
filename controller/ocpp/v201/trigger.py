"""OCPP 2.0.1 TriggerMessage (F06) for a ChargePoint201: the CSMS asks for a message now.

The station answers first — Accepted, Rejected (with a reasonCode) or NotImplemented —
and sends what it accepted after that answer. Which EVSEs a request covers is decided in
controller.core.trigger (EVSE n is the core's connector n). Per requested message:

* BootNotification (reason Triggered): only while the CSMS has not accepted the
  station; once it has, Rejected (F06.FR.17).
* Heartbeat.
* StatusNotification: for the connector named by evse and connectorId (Rejected
  without them); its current status, sent even when it has not changed.
* MeterValues: the meter of the EVSE named, or of each EVSE, now: the measurands of
  AlignedDataCtrlr.Measurands, context Trigger. Rejected when no meter can be read.
* TransactionEvent: Updated, triggerReason Trigger, for the transaction on the EVSE
  named or each running one, with SampledDataCtrlr.TxUpdatedMeasurands. It goes
  through the outbox as a "trigger" row, numbered with the transaction's other
  events, so seqNo stays gap-free. Rejected when no transaction runs there.
* FirmwareStatusNotification / LogStatusNotification: `cp.firmware_status` /
  `cp.log_status` (Idle unless a firmware or log feature is at work), with the
  requestId while one is.
* SignChargingStationCertificate: `cp.sign_certificate_request`, set by a security
  feature; Rejected without one.
* SignV2GCertificate, SignCombinedCertificate, PublishFirmwareStatusNotification:
  NotImplemented (no ISO 15118, not a local controller).

Except TransactionEvent, triggered messages are not queued: they report the present,
and a CSMS that missed one asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from controller.core.trigger import Scope, trigger_targets
from controller.ocpp.link import Registration
from controller.ocpp.rpc import Reply
from controller.ocpp.triggering import Send, accepted, heartbeat, sender
from controller.ocpp.v16.trigger import FALLBACK_MEASURANDS
from controller.ocpp.v201.charge_point import connector_status
from controller.ocpp.v201.transactions import meter_value

log = logging.getLogger("evsed.ocpp")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | Reply]]

# FirmwareStatusEnumType and UploadLogStatusEnumType of 2.0.1
FIRMWARE_STATUSES = frozenset(
    {"Downloaded", "DownloadFailed", "Downloading", "DownloadScheduled", "DownloadPaused"}
    | {"Idle", "InstallationFailed", "Installing", "Installed", "InstallRebooting"}
    | {"InstallScheduled", "InstallVerificationFailed", "InvalidSignature", "SignatureVerified"}
)
LOG_STATUSES = frozenset(
    {"BadMessage", "Idle", "NotSupportedOperation", "PermissionDenied", "Uploaded"}
    | {"UploadFailure", "Uploading", "AcceptedCanceled"}
)


class Refused(Exception):
    """The request is answered Rejected, with this reasonCode."""

    def __init__(self, reason_code: str, why: str) -> None:
        super().__init__(why)
        self.reason_code = reason_code


class TriggerFeature:
    def __init__(self, cp: Any) -> None:
        self.cp = cp
        # requested message -> its senders for the request's evse (Refused: Rejected)
        self.triggers: dict[str, Callable[[dict[str, Any] | None], list[Send]]] = {
            "BootNotification": self._boot_notification,
            "Heartbeat": self._heartbeat,
            "StatusNotification": self._status_notification,
            "MeterValues": self._meter_values,
            "TransactionEvent": self._transaction_event,
            "FirmwareStatusNotification": self._firmware_status,
            "LogStatusNotification": self._log_status,
            "SignChargingStationCertificate": self._sign_certificate,
        }

    def handlers(self) -> dict[str, Handler]:
        return {"TriggerMessage": self._trigger_message}

    async def _trigger_message(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        requested = req["requestedMessage"]
        prepare = self.triggers.get(requested)
        if prepare is None:
            log.info("TriggerMessage for %s: not implemented", requested)
            return {"status": "NotImplemented"}
        try:
            senders = prepare(req.get("evse"))
        except Refused as e:
            log.info("TriggerMessage for %s refused: %s", requested, e)
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason_code}}
        log.info("TriggerMessage: sending %s", requested, extra={"action": "TriggerMessage"})
        return accepted(self.cp, requested, senders)

    # --- which EVSEs -------------------------------------------------------------------

    def _evses(self, evse: dict[str, Any] | None) -> tuple[int, ...]:
        """The EVSEs a request for a per-EVSE message covers (all without evse)."""
        number = None if evse is None else evse["id"]
        targets = trigger_targets(Scope.CONNECTORS, number, len(self.cp.station.core.connectors))
        if targets is None:
            raise Refused("UnknownEvse", f"no EVSE {number}")
        if evse is not None and evse.get("connectorId", 1) != 1:
            raise Refused("UnknownConnectorId", f"EVSE {number} has no connector {evse}")
        return targets

    def _sender(self, action: str, payload: dict[str, Any]) -> Send:
        return sender(self.cp, action, payload)

    def _measurands(self, key: str) -> list[str]:
        return list(self.cp.keys.get_list(key)) or FALLBACK_MEASURANDS

    # --- the messages ------------------------------------------------------------------

    def _boot_notification(self, _evse: dict[str, Any] | None) -> list[Send]:
        if self.cp.registration is Registration.ACCEPTED:
            raise Refused("AlreadyAccepted", "the CSMS has accepted the station already")
        return [self.cp.trigger_boot]

    def _heartbeat(self, _evse: dict[str, Any] | None) -> list[Send]:
        return [heartbeat(self.cp)]

    def _status_notification(self, evse: dict[str, Any] | None) -> list[Send]:
        if evse is None or "connectorId" not in evse:
            raise Refused("MissingParam", "StatusNotification needs evse with connectorId")
        (number,) = self._evses(evse)
        station = self.cp.station
        status = station.statuses().get(number) or station.core.connector(number).status()
        payload = {
            "timestamp": station.clock.iso(),
            "connectorStatus": connector_status(status),
            "evseId": number,
            "connectorId": 1,
        }
        return [self._sender("StatusNotification", payload)]

    def _meter_values(self, evse: dict[str, Any] | None) -> list[Send]:
        station = self.cp.station
        measurands = self._measurands("MeterValuesAlignedData")  # AlignedDataCtrlr.Measurands
        senders = []
        for number in self._evses(evse):
            samples = station.current_samples(number, measurands, "Trigger")
            if samples:
                data = {"timestamp": station.clock.iso(), "samples": samples}
                payload = {
                    "evseId": number,
                    "meterValue": [meter_value(data, station.clock.resolve)],
                }
                senders.append(self._sender("MeterValues", payload))
        if not senders:
            raise Refused("NoMeter", "no meter reading to report")
        return senders

    def _transaction_event(self, evse: dict[str, Any] | None) -> list[Send]:
        station, events = self.cp.station, self.cp.events
        # A station transaction, or a 2.0.1 one without (started at plug-in, say).
        found = [(n, station.transaction_id(n), events.open_on(n)) for n in self._evses(evse)]
        running = [
            (n, tx_id, uid)
            for n, tx_id, uid in found
            if (tx_id is not None and events.reported(tx_id)) or (tx_id is None and uid)
        ]  # (a station transaction waiting for EnergyTransfer is no 2.0.1 one yet)
        if not running:
            raise Refused("NoTransaction", "no transaction running there")
        # SampledDataCtrlr.TxUpdatedMeasurands
        measurands = self._measurands("MeterValuesSampledData")

        async def queue() -> None:
            """Queued with the transaction's other events: it takes the next seqNo. One
            that ended meanwhile (its Ended event queued) gets none after that."""
            for number, tx_id, uid in running:
                if tx_id is None and events.open_on(number) != uid:
                    log.info("triggered TransactionEvent: transaction %s ended meanwhile", uid)
                    continue
                if tx_id is not None and station.transaction_id(number) != tx_id:
                    log.info("triggered TransactionEvent: transaction %s ended meanwhile", tx_id)
                    continue
                samples = station.current_samples(number, measurands, "Trigger")
                data = {"connector": number, "timestamp": station.clock.stamp()}
                data |= {"samples": samples} | ({} if tx_id is not None else {"uid": uid})
                self.cp.store.enqueue("trigger", data, tx_id)
            self.cp.events_queued()

        return [queue]

    def _firmware_status(self, _evse: dict[str, Any] | None) -> list[Send]:
        payload = self._status_payload(
            "firmware", self.cp.firmware_status, self.cp.firmware_request_id, FIRMWARE_STATUSES
        )
        return [self._sender("FirmwareStatusNotification", payload)]

    def _log_status(self, _evse: dict[str, Any] | None) -> list[Send]:
        payload = self._status_payload(
            "log", self.cp.log_status, self.cp.log_request_id, LOG_STATUSES
        )
        return [self._sender("LogStatusNotification", payload)]

    @staticmethod
    def _status_payload(
        what: str, status: str, request_id: int | None, allowed: frozenset[str]
    ) -> dict[str, Any]:
        if status not in allowed:
            log.error("the %s status %r is not one OCPP 2.0.1 knows: not reported", what, status)
            raise Refused("InternalError", f"unknown {what} status {status!r}")
        payload: dict[str, Any] = {"status": status}
        if request_id is not None and status != "Idle":
            payload["requestId"] = request_id
        return payload

    def _sign_certificate(self, _evse: dict[str, Any] | None) -> list[Send]:
        hook = self.cp.sign_certificate_request
        if hook is None:
            raise Refused("UnsupportedRequest", "no certificate management")
        return [hook]
