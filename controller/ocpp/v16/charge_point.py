"""OCPP 1.6J charge-point side: the link to the CSMS and the Core profile.

It translates in both directions and decides nothing about charging: the
station shell owns sessions, the store owns the transaction events, and this
layer renders them as 1.6 messages, delivers them in order, and turns CSMS
requests into station commands.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import connect

from controller import __version__
from controller.core.authorization import IdTagInfo
from controller.core.status import Status, StopReason
from controller.ocpp.rpc import OcppError, Reply, RpcSession, actions
from controller.ocpp.v16.data_transfer import EVSED_VENDOR_ID, VendorRegistry, evsed_vendor
from controller.ocpp.v16.keys import SEND_LOCAL_LIST_MAX, ChangeResult, ConfigurationKeys
from controller.station import Station
from controller.store import OutboxMessage, Store

log = logging.getLogger("evsed.ocpp")

VERSION = "1.6"
SUBPROTOCOL = "ocpp1.6"
ACTIONS = actions(VERSION)


@dataclass(frozen=True, slots=True)
class LinkSettings:
    url: str  # the CSMS endpoint; the station id is appended as the last path segment
    station_id: str
    vendor: str
    model: str
    serial_number: str = ""
    password: str = field(default="", repr=False)  # HTTP Basic auth (profile 1); never logged
    response_timeout: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    boot_retry: float = 60.0
    heartbeat_on_idle_only: bool = True  # False: every HeartbeatInterval regardless of traffic
    # Connection security (controller.ocpp.v16.security): PEM files an installer may
    # provide (CSMS roots, client certificate and its key), imported once at start.
    ca_certificate: Path | None = None
    client_certificate: Path | None = None
    client_key: Path | None = None


class Registration(StrEnum):
    NONE = "None"  # no BootNotification answered yet
    PENDING = "Pending"
    REJECTED = "Rejected"
    ACCEPTED = "Accepted"


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


class ChargePoint16:
    def __init__(
        self, settings: LinkSettings, station: Station, keys: ConfigurationKeys, store: Store
    ) -> None:
        self.settings = settings
        self.station = station
        self.keys = keys
        self.store = store
        self.registration = Registration.NONE
        self.rpc: RpcSession | None = None
        self.link_allowed = asyncio.Event()
        self.link_allowed.set()
        self.restart_requested: asyncio.Future[StopReason | None] | None = None
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
        # Set by the security feature (controller.ocpp.v16.security): the URL, TLS context and
        # credentials of each connection, the certificate store, and security events.
        self.link_security: Any = None
        self.certificates: Any = None
        self.security_event: Callable[[str, str | None], None] = lambda kind, tech_info: None
        self.security_log_lines: Callable[[datetime | None, datetime | None], list[str]] = (
            lambda since, until: []
        )
        self._boot_answer = asyncio.Event()  # a BootNotification was answered
        self._boot_retry_s = 0.0  # when the CSMS wants the next one, while not accepted
        # The daemon's Config, set before the features are attached: for the features that
        # have their own table ([firmware]); None when built without one (tests).
        self.config: Any = None
        # The feature profiles beyond Core (controller.ocpp.v16.features): each adds
        # its handlers, and is told when the CSMS has accepted the station.
        self.features: list[Any] = []
        self._statuses: dict[int, tuple[Status, str]] = {}
        self._status_event = asyncio.Event()
        self._outbox_event = asyncio.Event()
        self._connection: Any = None
        self._resetting = False
        self._last_heartbeat = 0.0
        self._background: set[asyncio.Task[Any]] = set()
        station.link = self

    # --- the station's view (CentralSystemLink) -------------------------------------

    @property
    def online(self) -> bool:
        return self.rpc is not None and self.registration is Registration.ACCEPTED

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

    def status_changed(self, connector: int, status: Status) -> None:
        self._statuses[connector] = (status, self.station.clock.stamp())
        self._status_event.set()

    def events_queued(self) -> None:
        self._outbox_event.set()

    # --- link control (control interface) --------------------------------------------

    def cut(self) -> None:
        """Drop the link and keep it down until restore() (a simulated network cut)."""
        self.link_allowed.clear()
        if self._connection is not None:
            self._later(self._connection.close())

    def restore(self) -> None:
        self.link_allowed.set()

    def reconnect(self) -> None:
        """Close the link; the connection loop opens a new one (new credentials, new TLS)."""
        if self._connection is not None:
            self._later(self._connection.close())

    def link_state(self) -> dict[str, Any]:
        return {
            "connected": self.rpc is not None,
            "registration": self.registration.value,
            "allowed": self.link_allowed.is_set(),
        }

    # --- connection loop ------------------------------------------------------------

    async def run(self) -> None:
        backoff = self.settings.reconnect_min
        url = self.settings.url.rstrip("/") + "/" + self.settings.station_id
        while True:
            await self.link_allowed.wait()
            security = self.link_security
            opened = False
            try:
                target, options = (
                    (url, {"additional_headers": self._auth_headers()})
                    if security is None
                    else security.connect_options(url)
                )
                async with connect(
                    target,
                    subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                    open_timeout=self.settings.response_timeout,
                    ping_interval=self.keys.get_int("WebSocketPingInterval") or None,
                    max_size=16 * 2**20,  # a SendLocalList of 100,000 entries is ~6 MB
                    **options,
                ) as ws:
                    opened = True
                    if ws.subprotocol != SUBPROTOCOL:
                        log.error("CSMS did not agree to %s; closing", SUBPROTOCOL)
                        await ws.close()
                        raise ConnectionError("no ocpp1.6 subprotocol")
                    log.info("connected to %s", target)
                    if security is not None:
                        security.link_opened()
                    backoff = self.settings.reconnect_min
                    await self._serve(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as e:
                log.warning("CSMS link: %s", e or type(e).__name__)
                if security is not None and not opened:
                    security.link_failed(e)
            except Exception as e:
                log.exception("CSMS link failed")
                if security is not None and not opened:
                    security.link_failed(e)
            finally:
                self.rpc = None
                self._connection = None
            if not self.link_allowed.is_set():
                continue
            delay = backoff * random.uniform(0.8, 1.2)
            log.info("reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self.settings.reconnect_max)

    def _auth_headers(self) -> dict[str, str]:
        if not self.settings.password:
            return {}
        token = f"{self.settings.station_id}:{self.settings.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(token).decode()}

    async def _serve(self, ws: Any) -> None:
        self._connection = ws
        if not self.link_allowed.is_set():  # cut while the handshake was under way
            await ws.close()
            return
        self.rpc = RpcSession(
            ws,
            VERSION,
            self._handlers(),
            ACTIONS,
            self.settings.response_timeout,
            accept_calls=lambda action: self.registration is not Registration.REJECTED,
        )
        reader = asyncio.ensure_future(self.rpc.run())
        worker = asyncio.ensure_future(self._work())
        try:
            done, _ = await asyncio.wait({reader, worker}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    if not isinstance(exc, websockets.exceptions.ConnectionClosed):
                        raise exc  # type: ignore[misc]
        finally:
            for task in (reader, worker):
                task.cancel()
            await asyncio.gather(reader, worker, return_exceptions=True)
            log.warning("disconnected from CSMS")

    async def _work(self) -> None:
        if self.registration is not Registration.ACCEPTED:
            await self._register()
        # Statuses are not queued while offline: the current one of every connector is sent.
        for connector, status in sorted(self.station.statuses().items()):
            self.status_changed(connector, status)
        # Each feature's work while connected (e.g. notifications it owes the CSMS).
        online = [f.while_connected() for f in self.features if hasattr(f, "while_connected")]
        await asyncio.gather(
            self._send_statuses(), self._deliver_outbox(), self._heartbeat(), *online
        )

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        rpc = self.rpc
        if rpc is None:
            raise ConnectionError("not connected")
        return await rpc.call(action, payload)

    # --- registration -----------------------------------------------------------------

    def _boot_payload(self) -> dict[str, Any]:
        return boot_payload(self.settings.vendor, self.settings.model, self.settings.serial_number)

    async def _register(self) -> None:
        while True:
            try:
                answer = await self._call("BootNotification", self._boot_payload())
            except (OcppError, TimeoutError) as e:
                log.warning("BootNotification failed: %s", e, extra={"action": "BootNotification"})
                await asyncio.sleep(self.settings.boot_retry)
                continue
            self._boot_answered(answer)
            # While Pending, the CSMS may trigger a BootNotification: its answer may accept
            # the station, or set a new time for the next one.
            while self.registration is not Registration.ACCEPTED:
                self._boot_answer.clear()
                try:
                    async with asyncio.timeout(self._boot_retry_s):
                        await self._boot_answer.wait()
                except TimeoutError:
                    break
            if self.registration is Registration.ACCEPTED:
                return

    def _boot_answered(self, answer: dict[str, Any]) -> None:
        self._set_clock(answer["currentTime"])
        self.registration = Registration(answer["status"])
        interval = int(answer["interval"])
        log.info(
            "BootNotification %s (interval %d s)",
            answer["status"],
            interval,
            extra={"action": "BootNotification"},
        )
        if self.registration is Registration.ACCEPTED:
            if interval > 0:
                self.keys.change("HeartbeatInterval", str(interval))
        else:
            self._boot_retry_s = interval if interval > 0 else self.settings.boot_retry
        self._boot_answer.set()

    async def boot_notification(self) -> None:
        """Send a BootNotification now (the CSMS triggered it) and take its answer. A
        station the CSMS no longer accepts registers again on a new connection, where
        only BootNotification is sent until it is accepted."""
        was = self.registration
        try:
            answer = await self._call("BootNotification", self._boot_payload())
        except (OcppError, TimeoutError, ConnectionError) as e:
            log.warning("BootNotification failed: %s", e, extra={"action": "BootNotification"})
            return
        self._boot_answered(answer)
        if was is Registration.ACCEPTED and self.registration is not Registration.ACCEPTED:
            log.warning("the CSMS no longer accepts the station: registering again")
            if self._connection is not None:
                await self._connection.close()

    def _set_clock(self, current_time: str) -> None:
        try:
            csms = datetime.fromisoformat(current_time.replace("Z", "+00:00")).timestamp()
        except ValueError:
            log.warning("CSMS sent an unreadable currentTime %r", current_time)
            return
        self.station.clock.set(csms)

    # --- periodic sending ---------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            interval = self.keys.get_int("HeartbeatInterval")
            rpc = self.rpc
            assert rpc is not None
            idle_only = self.settings.heartbeat_on_idle_only
            last = rpc.last_sent if idle_only else self._last_heartbeat
            idle = asyncio.get_running_loop().time() - last
            if idle < interval:
                await asyncio.sleep(min(interval - idle, 5.0))
                continue
            try:
                self._last_heartbeat = asyncio.get_running_loop().time()
                answer = await self._call("Heartbeat", {})
                self._set_clock(answer["currentTime"])
            except (OcppError, TimeoutError) as e:
                log.warning("Heartbeat failed: %s", e)
                await asyncio.sleep(min(interval, 30))

    async def _send_statuses(self) -> None:
        while True:
            await self._status_event.wait()
            self._status_event.clear()
            while self._statuses:
                connector = next(iter(self._statuses))
                status, timestamp = self._statuses.pop(connector)
                payload: dict[str, Any] = {
                    "connectorId": connector,
                    "status": status.status.value,
                    "errorCode": status.error_code,
                    "timestamp": self.station.clock.resolve(timestamp),
                }
                if status.info:
                    payload["info"] = status.info[:50]
                try:
                    await self._call("StatusNotification", payload)
                except (OcppError, TimeoutError) as e:
                    log.warning("StatusNotification failed: %s", e)

    async def _deliver_outbox(self) -> None:
        """Send transaction events in the order they happened, each until it is taken."""
        while True:
            message = self.store.next_message()
            if message is None:
                self._outbox_event.clear()
                await self._outbox_event.wait()
                continue
            rendered = self._render(message)
            if rendered is None:
                self.store.mark_failed(message.id, "its StartTransaction was never accepted")
                continue
            action, payload = rendered
            where = {"action": action, "tx": message.tx_id}
            try:
                answer = await self._call(action, payload)
            except (OcppError, TimeoutError) as e:
                attempts = self.store.record_attempt(message.id, str(e))
                limit = self.keys.get_int("TransactionMessageAttempts")
                if attempts >= limit:
                    log.error(
                        "giving up %s after %d attempts: %s", action, attempts, e, extra=where
                    )
                    self.store.mark_failed(message.id, str(e))
                else:
                    delay = self.keys.get_int("TransactionMessageRetryInterval") * attempts
                    log.warning("%s failed (%s); retry in %d s", action, e, delay, extra=where)
                    await asyncio.sleep(delay)
                continue
            tx = self.store.transaction(message.tx_id) if message.tx_id is not None else None
            if action == "StartTransaction" and tx is not None:
                status = answer["idTagInfo"]["status"]
                self.store.set_csms_transaction_id(tx.id, answer["transactionId"], status)
                self._learn(tx.id_tag, answer["idTagInfo"])
                self.station.transaction_confirmed(tx.id, status)
            elif action == "StopTransaction" and tx is not None and "idTagInfo" in answer:
                self._learn(tx.stop_id_tag or tx.id_tag, answer["idTagInfo"])
            self.store.mark_delivered(message.id)

    def _time(self, stamp: str) -> str:
        return self.station.clock.resolve(stamp)

    def _sent_time(self, tx_id: int, column: str, stamp: str) -> str:
        """The wall time of a transaction's stamp, kept once resolved: a message sent
        again after a lost answer (also by the next run, which can no longer resolve
        this run's provisional stamps the same way) must be identical, or the CSMS
        cannot recognise it and books a second transaction."""
        resolved = self._time(stamp)
        if resolved != stamp:
            self.store.set_transaction_time(tx_id, column, resolved)
        return resolved

    def _render(self, message: OutboxMessage) -> tuple[str, dict[str, Any]] | None:
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
        assert tx is not None and message.kind == "stop"
        if tx.csms_id is None:
            return None
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

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any] | Reply]]]:
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
        } | {action: h for f in self.features for action, h in f.handlers().items()}

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
        authorizer = self.station.authorizer
        version, full = req["listVersion"], req["updateType"] == "Full"
        raw = req.get("localAuthorizationList", [])
        if len(raw) > SEND_LOCAL_LIST_MAX:
            log.warning(
                "SendLocalList with %d entries refused (limit %d)", len(raw), SEND_LOCAL_LIST_MAX
            )
            return {"status": "Failed"}
        if not full and version <= authorizer.list_version():
            return {"status": "VersionMismatch"}
        adding = sum("idTagInfo" in e for e in raw)
        if (adding if full else authorizer.list_size() + adding) > self.keys.get_int(
            "LocalAuthListMaxLength"
        ):
            log.warning("SendLocalList refused: the list would exceed LocalAuthListMaxLength")
            return {"status": "Failed"}
        try:
            await authorizer.apply_list(version, full, raw)
        except (ValueError, KeyError, TypeError, sqlite3.Error) as e:
            log.warning("SendLocalList failed: %s", e)
            return {"status": "Failed"}
        log.info("local list %s: version %d, %d entries", req["updateType"], version, len(raw))
        self.station.local_list_updated()
        return {"status": "Accepted"}

    async def _data_transfer(self, req: dict[str, Any]) -> dict[str, Any]:
        return await self.vendors.answer(req)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> tuple[str, str | None]:
        """Send the station's own DataTransfer (see VendorRegistry.send)."""
        return await self.vendors.send(vendor_id, message_id, data)

    async def _remote_start(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        if self.registration is not Registration.ACCEPTED or self._resetting:
            return {"status": "Rejected"}
        connector = req.get("connectorId")
        if connector is not None and connector <= 0:
            return {"status": "Rejected"}
        authorize_first = self.keys.get_bool("AuthorizeRemoteTxRequests")
        # Reservations: an idTag's group (parentIdTag) is known once it is authorized.
        target = self.station.remote_start_target(connector, req["idTag"], not authorize_first)
        if target is None:
            return {"status": "Rejected"}
        # A feature may refuse the start or keep part of it (SmartCharging: chargingProfile).
        hooks = [f for f in self.features if hasattr(f, "prepare_remote_start")]
        if not all(f.prepare_remote_start(req, target.number) for f in hooks):
            return {"status": "Rejected"}

        def start() -> None:
            self._later(self.station.remote_start(target.number, req["idTag"], authorize_first))

        return Reply({"status": "Accepted"}, start)

    async def _remote_stop(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        if self.registration is not Registration.ACCEPTED:
            return {"status": "Rejected"}
        connector = self.station.connector_of_transaction(req["transactionId"])
        if connector is None:
            return {"status": "Rejected"}

        def stop() -> None:
            self.station.stop_transaction(connector, StopReason.REMOTE)

        return Reply({"status": "Accepted"}, stop)

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

    def _later(self, coro: Awaitable[Any]) -> None:
        """Run work in its own task, so neither the reader nor a handler waits for it."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    # --- reset ------------------------------------------------------------------------

    async def reset(self, reason: StopReason, flush_s: float = 5.0) -> None:
        """End every transaction with `reason`, deliver what we can, then ask for a restart."""
        self._resetting = True
        self.station.note_restart(reason)  # if the reset is cut short, the reason stays
        graceful = reason is StopReason.SOFT_RESET
        log.warning("reset (%s): stopping transactions", reason.value)
        for c in self.station.core.connectors:
            if c.tx is not None:
                self.station.stop_transaction(c.number, reason, graceful=graceful)
        deadline = time.monotonic() + 7.0
        while self.station.has_running_transactions() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + flush_s
        while self.online and self.store.pending_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self.restart_requested is not None and not self.restart_requested.done():
            self.restart_requested.set_result(reason)


def meter_value(data: dict[str, Any], resolve: Callable[[str], str]) -> dict[str, Any]:
    """A neutral {timestamp, samples} record as a 1.6 MeterValue."""
    sampled = []
    for sample in data["samples"]:
        value = f"{sample['value']:.3f}".rstrip("0").rstrip(".")
        item = {"value": value, **{k: v for k, v in sample.items() if k != "value"}}
        sampled.append(item)
    return {"timestamp": resolve(data["timestamp"]), "sampledValue": sampled}
