"""OCPP 1.6J charge-point side: the link to the CSMS and the Core profile.

It translates in both directions and decides nothing about charging: the
station shell owns sessions, the store owns the transaction events, and this
layer renders them as 1.6 messages, delivers them in order, and turns CSMS
requests into station commands.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from controller import __version__
from controller.core.authorization import IdTagInfo
from controller.core.status import Status, StopReason
from controller.ocpp.link import Handler, LinkSettings, OcppLink, Registration
from controller.ocpp.local_list import apply_local_list
from controller.ocpp.rpc import OcppError, Reply, actions
from controller.ocpp.v16.data_transfer import EVSED_VENDOR_ID, VendorRegistry, evsed_vendor
from controller.ocpp.v16.keys import ChangeResult, ConfigurationKeys
from controller.station import Station
from controller.store import OutboxMessage, Store, TransactionRecord

log = logging.getLogger("evsed.ocpp")

VERSION = "1.6"
SUBPROTOCOL = "ocpp1.6"
ACTIONS = actions(VERSION)
__all__ = ["ChargePoint16", "LinkSettings", "Registration", "boot_payload", "meter_value"]


def boot_payload(vendor: str, model: str, serial_number: str) -> dict[str, Any]:
    """BootNotification.req of this station (the link and `evsed selftest` send it)."""
    payload = {
        "chargePointVendor": vendor,
        "chargePointModel": model,
        "firmwareVersion": __version__,
    }
    if serial_number:
        payload["chargePointSerialNumber"] = serial_number
    return payload


class ChargePoint16(OcppLink):
    VERSION = VERSION
    SUBPROTOCOL = SUBPROTOCOL

    def __init__(
        self, settings: LinkSettings, station: Station, keys: ConfigurationKeys, store: Store
    ) -> None:
        super().__init__(settings, station, keys, store)
        # DataTransfer both ways (controller.ocpp.v16.data_transfer); the station's own vendor.
        self.vendors = VendorRegistry(self._call, lambda: self.online)
        self.vendors.register_vendor(EVSED_VENDOR_ID, evsed_vendor(self))
        # What a triggered status notification reports (controller.ocpp.v16.trigger); the
        # firmware, diagnostics and log uploads keep them current, with the requestId of
        # the SignedUpdateFirmware / GetLog under way (None: none is).
        self.firmware_status = "Idle"
        self.firmware_request_id: int | None = None
        self.diagnostics_status = "Idle"
        self.log_status = "Idle"
        self.log_request_id: int | None = None
        # Sends a SignCertificate.req (ExtendedTriggerMessage SignChargePointCertificate);
        # set by the security feature, None: the trigger is rejected.
        self.sign_certificate_request: Callable[[], Awaitable[Any]] | None = None
        # Set by the security feature (controller.ocpp.v16.security): the certificate
        # store, and security events.
        self.certificates: Any = None
        self.security_event: Callable[[str, str | None], None] = lambda kind, tech_info: None
        self.security_log_lines: Callable[[datetime | None, datetime | None], list[str]] = (
            lambda since, until: []
        )

    # --- the station's view (CentralSystemLink) -------------------------------------

    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        if not self.online:
            log.warning("cannot authorize %s: CSMS not reachable", id_tag)
            return None
        try:
            answer = await self._call("Authorize", {"idTag": id_tag})
        except (OcppError, ConnectionError, TimeoutError) as e:
            log.warning("Authorize for %s failed: %s", id_tag, e)
            return None
        return self._learn(id_tag, answer["idTagInfo"])

    def _learn(self, id_tag: str, raw: dict[str, Any]) -> IdTagInfo | None:
        """Every idTagInfo from the CSMS goes to the cache (and the conflict check)."""
        try:
            info = IdTagInfo.from_ocpp(raw)
        except (ValueError, KeyError) as e:
            log.warning("unusable idTagInfo for %s: %s", id_tag, e)
            return None
        self._later(self.station.id_tag_info(id_tag, info))
        return info

    # --- registration -----------------------------------------------------------------

    def boot_payload(self) -> dict[str, Any]:
        return boot_payload(self.settings.vendor, self.settings.model, self.settings.serial_number)

    # --- what the CSMS is sent --------------------------------------------------------

    async def send_status(self, connector: int, status: Status, timestamp: str) -> None:
        payload: dict[str, Any] = {
            "connectorId": connector,
            "status": status.status.value,
            "errorCode": status.error_code,
            "timestamp": timestamp,
        }
        if status.info:
            payload["info"] = status.info[:50]
        await self._call("StatusNotification", payload)

    def taken(self, message: OutboxMessage, action: str, answer: dict[str, Any]) -> None:
        tx = self.store.transaction(message.tx_id) if message.tx_id is not None else None
        if action == "StartTransaction" and tx is not None:
            status = answer["idTagInfo"]["status"]
            self.store.set_csms_transaction_id(tx.id, answer["transactionId"], status)
            self._learn(tx.id_tag, answer["idTagInfo"])
            self.station.transaction_confirmed(tx.id, status)
        elif action == "StopTransaction" and tx is not None and "idTagInfo" in answer:
            self._learn(tx.stop_id_tag or tx.id_tag, answer["idTagInfo"])

    def knows(self, tx: TransactionRecord) -> bool:
        return tx.csms_id is not None

    def render(self, message: OutboxMessage) -> tuple[str, dict[str, Any]] | None:
        tx = self.store.transaction(message.tx_id) if message.tx_id is not None else None
        if message.kind == "start":
            assert tx is not None
            start: dict[str, Any] = {
                "connectorId": tx.connector,
                "idTag": tx.id_tag,
                "meterStart": round(tx.meter_start_wh),
                "timestamp": self._sent_time(tx.id, "started_at", tx.started_at),
            }
            if message.data.get("reservation_id") is not None:
                start["reservationId"] = message.data["reservation_id"]
            return "StartTransaction", start
        if message.kind == "meter":
            data = message.data
            payload: dict[str, Any] = {
                "connectorId": data["connector"],
                "meterValue": [meter_value(data, self._time)],
            }
            if tx is not None and tx.csms_id is not None:
                payload["transactionId"] = tx.csms_id
            return "MeterValues", payload
        if message.kind != "stop":
            return None  # a 2.0.1 charging-state change: 1.6 reports it by StatusNotification
        assert tx is not None
        if tx.csms_id is None:
            raise ValueError("its StartTransaction was never accepted")
        payload = {
            "transactionId": tx.csms_id,
            "meterStop": round(tx.meter_stop_wh or tx.meter_start_wh),
            "timestamp": self._sent_time(tx.id, "stopped_at", tx.stopped_at)
            if tx.stopped_at
            else self._sent_time(tx.id, "started_at", tx.started_at),
            "reason": tx.stop_reason,
        }
        if tx.stop_id_tag:
            payload["idTag"] = tx.stop_id_tag
        kept = self.store.tx_data(tx.id)
        if kept:
            payload["transactionData"] = [meter_value(d, self._time) for d in kept]
        return "StopTransaction", payload

    # --- requests from the CSMS ------------------------------------------------------------

    def _handlers(self) -> dict[str, Handler]:
        return {
            "ChangeAvailability": self._change_availability,
            "ChangeConfiguration": self._change_configuration,
            "ClearCache": self._clear_cache,
            "DataTransfer": self._data_transfer,
            "GetConfiguration": self._get_configuration,
            "GetLocalListVersion": self._get_local_list_version,
            "SendLocalList": self._send_local_list,
            "RemoteStartTransaction": self._remote_start,
            "RemoteStopTransaction": self._remote_stop,
            "Reset": self._reset,
            "UnlockConnector": self._unlock_connector,
        }

    async def _change_availability(self, req: dict[str, Any]) -> dict[str, Any]:
        operative = req["type"] == "Operative"
        answer = self.station.change_availability(req["connectorId"], operative)
        return {"status": answer.value}

    async def _change_configuration(self, req: dict[str, Any]) -> dict[str, Any]:
        result = self.keys.change(req["key"], req["value"])
        if result in (ChangeResult.ACCEPTED, ChangeResult.REBOOT_REQUIRED):
            log.info("configuration %s changed", req["key"])
            self.station.settings_changed()
        return {"status": result.value}

    async def _get_configuration(self, req: dict[str, Any]) -> dict[str, Any]:
        wanted = req.get("key")
        known = self.keys.items()
        if wanted:
            by_name = {spec.name: (spec, value) for spec, value in known}
            known = [by_name[name] for name in wanted if name in by_name]
            unknown = [name for name in wanted if name not in by_name]
        else:
            unknown = []
        answer: dict[str, Any] = {
            "configurationKey": [
                {"key": spec.name, "readonly": spec.readonly}
                | ({} if spec.write_only else {"value": value})
                for spec, value in known
            ]
        }
        if unknown:
            answer["unknownKey"] = unknown
        return answer

    async def _clear_cache(self, req: dict[str, Any]) -> dict[str, Any]:
        await self.station.authorizer.clear_cache()
        return {"status": "Accepted"}

    async def _get_local_list_version(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"listVersion": self.station.authorizer.list_version()}

    async def _send_local_list(self, req: dict[str, Any]) -> dict[str, Any]:
        full = req["updateType"] == "Full"
        entries = req.get("localAuthorizationList", [])
        return {"status": await apply_local_list(self.station, req["listVersion"], full, entries)}

    async def _data_transfer(self, req: dict[str, Any]) -> dict[str, Any]:
        return await self.vendors.answer(req)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> tuple[str, str | None]:
        """Send the station's own DataTransfer (see VendorRegistry.send)."""
        return await self.vendors.send(vendor_id, message_id, data)

    async def _remote_start(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        connector = req.get("connectorId")
        if connector is not None and connector <= 0:
            return {"status": "Rejected"}
        target = self.remote_start_target(connector, req["idTag"], req)
        if target is None:
            return {"status": "Rejected"}
        return Reply({"status": "Accepted"}, self.start_remotely(target.number, req["idTag"]))

    async def _remote_stop(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        return self.stop_remotely(self.station.connector_of_transaction(req["transactionId"]))

    async def _reset(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        reason = StopReason.HARD_RESET if req["type"] == "Hard" else StopReason.SOFT_RESET

        return Reply({"status": "Accepted"}, lambda: self._later(self.reset(reason)))

    async def _unlock_connector(self, req: dict[str, Any]) -> dict[str, Any]:
        connector = req["connectorId"]
        if not 1 <= connector <= len(self.station.core.connectors):
            return {"status": "NotSupported"}
        result = await self.station.unlock(connector)
        if result is None:
            return {"status": "NotSupported"}
        return {"status": "Unlocked" if result else "UnlockFailed"}


def meter_value(data: dict[str, Any], resolve: Callable[[str], str]) -> dict[str, Any]:
    """A neutral {timestamp, samples} record as a 1.6 MeterValue."""
    sampled = []
    for sample in data["samples"]:
        value = f"{sample['value']:.3f}".rstrip("0").rstrip(".")
        item = {"value": value, **{k: v for k, v in sample.items() if k != "value"}}
        sampled.append(item)
    return {"timestamp": resolve(data["timestamp"]), "sampledValue": sampled}
