"""OCPP 2.0.1 charging-station side: provisioning, transactions, authorization,
availability and status, from the same station core as 1.6.

Like the 1.6 layer it decides nothing about charging; it renders the station's
neutral events as 2.0.1 messages and turns the CSMS's requests into station
commands. The station has one connector per EVSE: EVSE n is the core's connector
n, with connectorId 1. The device model, smart charging, reservations and the
rest plug in as features (controller.ocpp.v201.features).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from controller import __version__
from controller.core.authorization import IdTagInfo
from controller.core.status import ConnectorStatus, Status, StopReason
from controller.ocpp.link import Handler, LinkSettings, OcppLink, Registration
from controller.ocpp.local_list import apply_local_list
from controller.ocpp.rpc import OcppError, Reply
from controller.ocpp.v16.data_transfer import EVSED_VENDOR_ID, VendorRegistry, evsed_vendor
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.ocpp.v201.controller_variables import (
    configured_backoff,
    report_every_status,
    retry_backoff,
)
from controller.ocpp.v201.id_tokens import TokenTypes, id_tag_info, local_list_entry
from controller.ocpp.v201.network import BUILTIN_SLOT
from controller.ocpp.v201.tracker import TransactionTracker
from controller.ocpp.v201.transactions import TransactionEvents
from controller.station import Station
from controller.store import OutboxMessage, Store, TransactionRecord

log = logging.getLogger("evsed.ocpp")

# How the previous run ended -> BootNotification reason
_BOOT_REASONS = {
    StopReason.POWER_LOSS: "PowerUp",
    StopReason.REBOOT: "LocalReset",
    StopReason.HARD_RESET: "RemoteReset",
    StopReason.SOFT_RESET: "RemoteReset",
}
_CONNECTOR_STATUS = {
    ConnectorStatus.AVAILABLE: "Available",
    ConnectorStatus.RESERVED: "Reserved",
    ConnectorStatus.UNAVAILABLE: "Unavailable",
    ConnectorStatus.FAULTED: "Faulted",
}


def connector_status(status: Status) -> str:
    """The 2.0.1 ConnectorStatus of a core status (Preparing ... Finishing are Occupied)."""
    return _CONNECTOR_STATUS.get(status.status, "Occupied")


EVENT_IDS = "event_id"  # meta key: the last NotifyEvent eventId
RESET_ON_IDLE = "reset_on_idle"  # meta key: a Reset OnIdle waits for the transactions


class ChargePoint201(OcppLink):
    VERSION = "2.0.1"
    SUBPROTOCOL = "ocpp2.0.1"

    def __init__(
        self, settings: LinkSettings, station: Station, keys: ConfigurationKeys, store: Store
    ) -> None:
        super().__init__(settings, station, keys, store)
        free_vend = station.core.connectors[0].settings.free_vend_id_tag
        self.tokens = TokenTypes(store, free_vend, station.authorizer.list_token_type)
        self.events = TransactionEvents(store, self.tokens, self._time, self._sent_time)
        self.tracker = TransactionTracker(self)
        station.session_watchers.append(self.tracker.changed)
        station.layer_transaction = self.tracker.without_station_tx
        self.vendors = VendorRegistry(self._call, lambda: self.online)
        self.vendors.register_vendor(EVSED_VENDOR_ID, evsed_vendor(self))
        # Set by the daemon when it builds the device model feature (None in bare tests).
        self.device_model: Any = None
        self.network_profiles: Any = None
        self._problems: dict[int, str] = {}  # connector -> the error code last notified
        self._sent_status: dict[int, str] = {}  # connector -> status sent on this connection
        self._boot_reason = _BOOT_REASONS.get(station.previous_run_ended, "Unknown")
        self._reset_scheduled = False
        self._attempt_slot = 0  # the network profile of the connection being tried
        self._offline_since: float | None = None  # loop time the last connection ended
        # Kept current by the firmware, log and security features for TriggerMessage
        # (controller.ocpp.v201.trigger): the status now and the request it belongs to.
        self.firmware_status = "Idle"
        self.firmware_request_id: int | None = None
        self.log_status = "Idle"
        self.log_request_id: int | None = None
        self.sign_certificate_request: Callable[[], Awaitable[Any]] | None = None

    def restarted_for_firmware(self) -> None:
        """The previous run ended to install firmware (the firmware feature knows, from
        its job): the first BootNotification says so."""
        self._boot_reason = "FirmwareUpdate"

    # --- connecting through the network profiles (controller.ocpp.v201.network) ----------

    def connection_target(self) -> tuple[str, dict[str, Any]]:
        if self.network_profiles is None:
            return super().connection_target()
        profile = self.network_profiles.current()
        self._attempt_slot = profile.slot
        url = profile.url.rstrip("/") + "/" + self.settings.station_id
        if self.link_security is not None:
            return self.link_security.connect_options(url)
        return url, {"additional_headers": self._auth_headers()}

    def connection_opened(self, layer: OcppLink) -> None:
        super().connection_opened(layer)
        profiles = self.network_profiles
        if profiles is not None and profiles.connected(self._attempt_slot):
            layer.registration = Registration.NONE  # another CSMS: register again

    def connection_failed(self, error: BaseException) -> None:
        super().connection_failed(error)
        if self.network_profiles is not None:
            self.network_profiles.failed(self._attempt_slot)

    def connection_closed(self) -> None:
        if self.network_profiles is not None:
            self.network_profiles.disconnected()

    # --- the station's view ---------------------------------------------------------

    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        if not self.online:
            log.warning("cannot authorize %s: CSMS not reachable", id_tag)
            return None
        try:
            answer = await self._call("Authorize", {"idToken": self.tokens.id_token(id_tag)})
        except (OcppError, ConnectionError, TimeoutError) as e:
            log.warning("Authorize for %s failed: %s", id_tag, e)
            return None
        return self._learn(id_tag, answer["idTokenInfo"])

    def _learn(self, id_tag: str, raw: dict[str, Any]) -> IdTagInfo | None:
        """Every IdTokenInfo from the CSMS goes to the cache (and the conflict check)."""
        try:
            info = id_tag_info(raw)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("unusable idTokenInfo for %s: %s", id_tag, e)
            return None
        self._later(self.station.id_tag_info(id_tag, info))
        return info

    # --- what the CSMS is sent --------------------------------------------------------

    def boot_payload(self) -> dict[str, Any]:
        station: dict[str, Any] = {
            "model": self.settings.model,
            "vendorName": self.settings.vendor,
            "firmwareVersion": __version__,
        }
        if self.settings.serial_number:
            station["serialNumber"] = self.settings.serial_number
        return {"reason": self._boot_reason, "chargingStation": station}

    async def trigger_boot(self) -> None:
        """A BootNotification the CSMS asked for (TriggerMessage)."""
        reason, self._boot_reason = self._boot_reason, "Triggered"
        try:
            await self.boot_notification()
        finally:
            self._boot_reason = reason

    async def send_status(self, connector: int, status: Status, timestamp: str) -> None:
        """The status first (a CSMS that refuses NotifyEvent must still see Faulted),
        then the problem's event."""
        reported = connector_status(status)
        # Connector 0 is not reported in 2.0.1: the station's problems go by NotifyEvent,
        # and a change within Occupied (Preparing -> Charging) is not a 2.0.1 change.
        if connector and self._sent_status.get(connector) != reported:
            payload: dict[str, Any] = {"timestamp": timestamp, "connectorStatus": reported}
            payload |= {"evseId": connector, "connectorId": 1}
            await self._call("StatusNotification", payload)
            self._sent_status[connector] = reported
        try:
            await self._notify_problem(connector, status, timestamp)
        except (OcppError, TimeoutError) as e:
            log.warning("NotifyEvent failed: %s", e)

    async def _serve(self, ws: Any) -> None:
        # B04: after an outage within OfflineThreshold only the statuses that changed are
        # sent; after a longer one (or to a CSMS that has not accepted us yet) every one.
        loop = asyncio.get_running_loop()
        offline_s = None if self._offline_since is None else loop.time() - self._offline_since
        threshold = 0
        if self.device_model is not None:
            threshold = self.device_model.int_value("OCPPCommCtrlr", "OfflineThreshold")
        every = report_every_status(offline_s, threshold)
        if every or self.registration is not Registration.ACCEPTED:
            self._sent_status.clear()
        try:
            await super()._serve(ws)
        finally:
            self._offline_since = loop.time()

    def reconnect_delay(self, failures: int) -> float:
        """OCPPCommCtrlr.RetryBackOff* once set (controller_variables), else [csms]'s."""
        if self.device_model is not None:
            initial = self.config.ocpp.variables if self.config is not None else {}
            chosen = configured_backoff(self.device_model, self.store.config_keys(), initial)
            if chosen is not None:
                return retry_backoff(failures, *chosen)
        return super().reconnect_delay(failures)

    def response_timeout(self) -> float:
        """The messageTimeout of the network profile connected (slot 0: [csms]'s)."""
        profiles = self.network_profiles
        if profiles is None or profiles.current().slot == BUILTIN_SLOT:
            return super().response_timeout()
        return float(profiles.current().message_timeout)

    async def _notify_problem(self, connector: int, status: Status, timestamp: str) -> None:
        """A fault raised or cleared: NotifyEvent on the component's Problem variable."""
        was = self._problems.get(connector, "NoError")
        if status.error_code == was:
            return
        cleared = status.error_code == "NoError"
        # The device model's Problem variables: ChargingStation's and each EVSE's.
        component: dict[str, Any] = {"name": "ChargingStation"}
        if connector:
            component = {"name": "EVSE", "evse": {"id": connector}}
        event_id = int(self.store.get_meta(EVENT_IDS) or 0) + 1
        self.store.set_meta(EVENT_IDS, str(event_id))
        tech = was if cleared else status.error_code
        if status.info:
            tech += f": {status.info}"
        event = {
            "eventId": event_id,
            "timestamp": timestamp,
            "trigger": "Delta",
            "actualValue": "false" if cleared else "true",
            "techInfo": tech[:500],
            "cleared": cleared,
            "eventNotificationType": "HardWiredNotification",
            "component": component,
            "variable": {"name": "Problem"},
        }
        await self._call(
            "NotifyEvent",
            {"generatedAt": self.station.clock.iso(), "seqNo": 0, "eventData": [event]},
        )
        self._problems[connector] = status.error_code  # told: not again

    def forget(self, message: OutboxMessage) -> None:
        self.events.delivered(message)

    def keeps_tx_data(self, message: OutboxMessage) -> bool:
        return self.events.outlived(message)

    def in_charge(self) -> bool:
        """Whether 2.0.1 is the version of the connection (or of the last one)."""
        return self._active is self

    def knows(self, tx: TransactionRecord) -> bool:
        return self.events.knows(tx.id)

    def render(self, message: OutboxMessage) -> tuple[str, dict[str, Any]] | None:
        tx = self.store.transaction(message.tx_id) if message.tx_id is not None else None
        return self.events.render(message, tx)

    def taken(self, message: OutboxMessage, action: str, answer: dict[str, Any]) -> None:
        tx = self.store.transaction(message.tx_id) if message.tx_id is not None else None
        if "idTokenInfo" not in answer:
            return
        if message.data.get("id_tag"):  # a transaction that started at its authorization
            info = self._learn(message.data["id_tag"], answer["idTokenInfo"])
            if info is not None:
                self.tracker.answered(message.data, info.status)
            return
        if tx is None:
            return
        tag = tx.stop_id_tag if message.kind == "stop" and tx.stop_id_tag else tx.id_tag
        info = self._learn(tag, answer["idTokenInfo"])
        if message.kind == "start" and info is not None:
            self.station.transaction_confirmed(tx.id, info.status)

    # --- requests from the CSMS ------------------------------------------------------------

    def _handlers(self) -> dict[str, Handler]:
        return {
            "ChangeAvailability": self._change_availability,
            "ClearCache": self._clear_cache,
            "DataTransfer": self._data_transfer,
            "GetLocalListVersion": self._get_local_list_version,
            "GetTransactionStatus": self._get_transaction_status,
            "RequestStartTransaction": self._request_start,
            "RequestStopTransaction": self._request_stop,
            "Reset": self._reset,
            "SendLocalList": self._send_local_list,
            "UnlockConnector": self._unlock_connector,
        }

    def _connector_of_evse(self, evse: dict[str, Any] | None) -> int | None:
        """The core's connector of an EVSE (0: the whole station), None: no such one."""
        if evse is None:
            return 0
        number, connector = evse["id"], evse.get("connectorId", 1)
        if not 1 <= number <= len(self.station.core.connectors) or connector != 1:
            return None
        return int(number)

    async def _change_availability(self, req: dict[str, Any]) -> dict[str, Any]:
        connector = self._connector_of_evse(req.get("evse"))
        if connector is None:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        operative = req["operationalStatus"] == "Operative"
        answer = self.station.change_availability(connector, operative).value
        numbers = [c.number for c in self.station.core.connectors if connector in (0, c.number)]
        if not operative and any(self.events.open_on(n) for n in numbers):
            answer = "Scheduled"  # a transaction without a station one (started at plug-in)
        return {"status": answer}

    async def _clear_cache(self, req: dict[str, Any]) -> dict[str, Any]:
        await self.station.authorizer.clear_cache()
        return {"status": "Accepted"}

    async def _get_local_list_version(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"versionNumber": self.station.authorizer.list_version()}

    async def _send_local_list(self, req: dict[str, Any]) -> dict[str, Any]:
        # Translated off the loop (100,000 entries take tens of ms); the entries' token
        # types are kept with the list, written with it off the loop too.
        entries = req.get("localAuthorizationList", [])
        neutral = await asyncio.to_thread(lambda: [local_list_entry(e) for e in entries])
        full = req["updateType"] == "Full"
        return {"status": await apply_local_list(self.station, req["versionNumber"], full, neutral)}

    async def _data_transfer(self, req: dict[str, Any]) -> dict[str, Any]:
        # 2.0.1's data is any JSON value; the vendors' handlers take text (as in 1.6), so
        # a value that is not a string reaches them as its JSON.
        data = req.get("data")
        if data is not None and not isinstance(data, str):
            req = req | {"data": json.dumps(data, separators=(",", ":"), ensure_ascii=False)}
        return await self.vendors.answer(req)

    async def _get_transaction_status(self, req: dict[str, Any]) -> dict[str, Any]:
        uid = req.get("transactionId")
        if uid is None:
            queued = self.store.has_pending() or self.store.has_pending_mentioning('"uid"')
            return {"messagesInQueue": queued}
        record = self.events.record(uid)
        if record is None:  # unknown, or ended and delivered
            return {"ongoingIndicator": False, "messagesInQueue": False}
        return {
            "ongoingIndicator": bool(record.get("open")),
            "messagesInQueue": self.events.pending(uid),
        }

    async def _request_start(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        evse = req.get("evseId")
        if evse is not None and not 1 <= evse <= len(self.station.core.connectors):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        id_token = req["idToken"]
        tag = str(id_token["idToken"])
        target = None if self._reset_scheduled else self.remote_start_target(evse, tag, req)
        if target is None:
            return {"status": "Rejected"}
        self.tokens.learn(id_token)
        details = {"remote_start_id": req["remoteStartId"]}
        answer: dict[str, Any] = {"status": "Accepted"}
        ongoing = self.events.open_on(target.number)  # started at plug-in, say
        if ongoing is not None:
            answer["transactionId"] = ongoing
        return Reply(answer, self.start_remotely(target.number, tag, details))

    async def _request_stop(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        uid = req["transactionId"]
        record = self.events.record(uid)
        if record is None or not record.get("open"):
            return {"status": "Rejected"}
        connector = int(record["connector"])
        tx_id = self.station.transaction_id(connector)
        if tx_id is not None and tx_id in record["txs"]:
            return self.stop_remotely(connector)
        if self.registration is not Registration.ACCEPTED:
            return {"status": "Rejected"}
        # No authorization charges in it (it waits for one, or outlived it): it ends now.
        return Reply({"status": "Accepted"}, lambda: self.tracker.end(uid, "RemoteStop", "Remote"))

    async def _reset(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        if "evseId" in req:  # an EVSE cannot be reset on its own here
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}}
        if req["type"] == "Immediate":
            return Reply(
                {"status": "Accepted"}, lambda: self._later(self.reset(StopReason.HARD_RESET))
            )
        if not self._transactions_open():
            return Reply(
                {"status": "Accepted"}, lambda: self._later(self.reset(StopReason.SOFT_RESET))
            )
        if not self._reset_scheduled:
            self.store.set_meta(RESET_ON_IDLE, "1")  # a power cut does not cancel it
            self._schedule_reset()
        return {"status": "Scheduled"}

    def _transactions_open(self) -> bool:
        """Station transactions, or 2.0.1 ones without one (started at plug-in, say)."""
        ongoing = any(self.events.open_on(c.number) for c in self.station.core.connectors)
        return self.station.has_running_transactions() or ongoing

    def _schedule_reset(self) -> None:
        """Reset OnIdle while a transaction runs: no new session starts meanwhile (idle
        connectors are Unavailable, RequestStartTransaction is Rejected), and the reset
        comes once the last transaction has ended."""
        self._reset_scheduled = True
        self.station.hold_new_sessions(True)
        self._later(self._reset_when_idle())

    async def _reset_when_idle(self) -> None:
        log.info("reset scheduled: waiting for the transactions to end")
        while self._transactions_open():
            await asyncio.sleep(0.5)
        self.store.set_meta(RESET_ON_IDLE, None)
        await self.reset(StopReason.SOFT_RESET)

    async def reset(self, reason: StopReason, flush_s: float = 5.0) -> None:
        # The link stops the station's transactions; those with none in them end too,
        # so their Ended events go before the restart (B12.FR.04).
        self.tracker.end_waiting(reason)
        await super().reset(reason, flush_s)

    async def run(self) -> None:
        if self.store.get_meta(RESET_ON_IDLE):  # scheduled before a restart or power cut
            self._schedule_reset()
        await super().run()

    async def _unlock_connector(self, req: dict[str, Any]) -> dict[str, Any]:
        connector = self._connector_of_evse(
            {"id": req["evseId"], "connectorId": req["connectorId"]}
        )
        if not connector:
            return {"status": "UnknownConnector"}
        if self.station.transaction_id(connector) is not None:
            return {"status": "OngoingAuthorizedTransaction"}
        result = await self.station.unlock(connector)
        if result is None:
            return {"status": "UnlockFailed", "statusInfo": {"reasonCode": "NoLock"}}
        return {"status": "Unlocked" if result else "UnlockFailed"}
