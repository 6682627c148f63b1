"""The station's link to its CSMS, for any OCPP version.

What every version does the same way lives here: the websocket connection loop
(reconnect with back-off, simulated cuts, security options, subprotocol
negotiation), registration with BootNotification, Heartbeat, the order in which
status changes and queued transaction events are sent, and resets. Each version's
layer (controller.ocpp.v16, controller.ocpp.v201) subclasses `OcppLink` and only
renders and reads its own messages.

Versions: a layer may be given sibling layers for other versions (`siblings`).
The station then offers every version's subprotocol, in the configured order,
and the CSMS's choice decides which layer serves the connection; that layer
becomes the station's link until the next connection. The layer that runs the
connection loop decides where to connect (2.0.1's network profiles) whichever
version the CSMS then picks.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import connect

from controller.core.authorization import IdTagInfo
from controller.core.status import Status, StopReason
from controller.ocpp.rpc import OcppError, Reply, RpcSession, actions
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.station import Station
from controller.store import OutboxMessage, Store, TransactionRecord

log = logging.getLogger("evsed.ocpp")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | Reply]]


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


class OcppLink:
    """One version's layer; subclasses set VERSION and SUBPROTOCOL and implement the
    hooks at the end of this class."""

    VERSION = ""
    SUBPROTOCOL = ""

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
        # Layers of other versions this one may hand a connection to (see the docstring).
        self.siblings: list[OcppLink] = []
        self.offer: tuple[str, ...] = ()
        self._active: OcppLink = self
        # Set by the security feature (controller.ocpp.v16.security): the URL, TLS context and
        # credentials of each connection.
        self.link_security: Any = None
        # The daemon's Config, set before the features are attached: for the features that
        # have their own table ([firmware]); None when built without one (tests).
        self.config: Any = None
        # The features beyond the core messages: each adds its handlers, and is told
        # when the CSMS has accepted the station.
        self.features: list[Any] = []
        self._boot_answer = asyncio.Event()  # a BootNotification was answered
        self._boot_retry_s = 0.0  # when the CSMS wants the next one, while not accepted
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
        """Ask the CSMS about an idTag; None: it could not be asked."""
        raise NotImplementedError

    def status_changed(self, connector: int, status: Status) -> None:
        self._statuses[connector] = (status, self.station.clock.stamp())
        self._status_event.set()

    def events_queued(self) -> None:
        self._outbox_event.set()

    # --- link control (control interface) --------------------------------------------

    def cut(self) -> None:
        """Drop the link and keep it down until restore() (a simulated network cut)."""
        self.link_allowed.clear()
        self.reconnect()

    def restore(self) -> None:
        self.link_allowed.set()

    def reconnect(self) -> None:
        """Close the link; the connection loop opens a new one (new credentials, new TLS)."""
        connection = self._active._connection
        if connection is not None:
            self._later(connection.close())

    def link_state(self) -> dict[str, Any]:
        active = self._active
        return {
            "connected": active.rpc is not None,
            "registration": active.registration.value,
            "allowed": self.link_allowed.is_set(),
            "version": active.VERSION,
        }

    # --- connection loop ------------------------------------------------------------

    def offered(self) -> list[str]:
        """The subprotocols offered, most wanted first (`offer`: the configured order)."""
        return list(self.offer) or [self.SUBPROTOCOL] + [s.SUBPROTOCOL for s in self.siblings]

    def connection_target(self) -> tuple[str, dict[str, Any]]:
        """The URL and websocket options of the next connection attempt."""
        url = self.settings.url.rstrip("/") + "/" + self.settings.station_id
        if self.link_security is None:
            return url, {"additional_headers": self._auth_headers()}
        target, options = self.link_security.connect_options(url)
        return target, options

    async def run(self) -> None:
        failures = 0  # failed attempts (or lost connections) since the last one that opened
        offered = self.offered()
        while True:
            await self.link_allowed.wait()
            security = self.link_security
            opened = False
            try:
                target, options = self.connection_target()
                async with connect(
                    target,
                    subprotocols=offered,  # type: ignore[arg-type]
                    open_timeout=self.settings.response_timeout,
                    ping_interval=self.keys.get_int("WebSocketPingInterval") or None,
                    max_size=16 * 2**20,  # a SendLocalList of 100,000 entries is ~6 MB
                    **options,
                ) as ws:
                    opened = True
                    layer = self._layer_for(ws.subprotocol)
                    if layer is None:
                        log.error("CSMS agreed to none of %s; closing", ", ".join(offered))
                        await ws.close()
                        raise ConnectionError("no agreed OCPP subprotocol")
                    log.info("connected to %s (OCPP %s)", target, layer.VERSION)
                    if security is not None:
                        security.link_opened()
                    failures = 0
                    self.connection_opened(layer)
                    await layer._serve(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as e:
                log.warning("CSMS link: %s", e or type(e).__name__)
                if not opened:
                    self.connection_failed(e)
            except Exception as e:
                log.exception("CSMS link failed")
                if not opened:
                    self.connection_failed(e)
            finally:
                self._active.rpc = None
                self._active._connection = None
                if opened:
                    self.connection_closed()
            if not self.link_allowed.is_set():
                continue
            delay = self._active.reconnect_delay(failures)
            failures += 1
            log.info("reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)

    def reconnect_delay(self, failures: int) -> float:
        """How long to wait before the next connection attempt, after `failures` earlier
        ones since the last that opened: doubling from reconnect_min up to reconnect_max,
        with jitter."""
        doubled = self.settings.reconnect_min * 2 ** min(failures, 30)
        backoff = min(doubled, self.settings.reconnect_max)
        return backoff * random.uniform(0.8, 1.2)

    def response_timeout(self) -> float:
        """How long a CALL of this connection waits for its answer."""
        return self.settings.response_timeout

    def _layer_for(self, subprotocol: str | None) -> OcppLink | None:
        for layer in (self, *self.siblings):
            if subprotocol == layer.SUBPROTOCOL:
                return layer
        return None

    def connection_opened(self, layer: OcppLink) -> None:
        """`layer` serves the new connection: it is the station's link from now on."""
        if layer is not self._active:
            log.info("OCPP %s replaces %s", layer.VERSION, self._active.VERSION)
            layer.link_allowed = self.link_allowed
            layer.restart_requested = self.restart_requested
        self._active = layer
        self.station.link = layer

    def connection_failed(self, error: BaseException) -> None:
        """An attempt to connect failed."""
        if self.link_security is not None:
            self.link_security.link_failed(error)

    def connection_closed(self) -> None:
        """An open connection has ended."""

    def _auth_headers(self) -> dict[str, str]:
        """HTTP Basic auth with the station's password (AuthorizationKey, which 2.0.1
        calls BasicAuthPassword), if it has one."""
        password = self.settings.password
        if "AuthorizationKey" in self.keys.specs:
            password = self.keys.get("AuthorizationKey") or password
        if not password:
            return {}
        token = f"{self.settings.station_id}:{password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(token).decode()}

    async def _serve(self, ws: Any) -> None:
        self._connection = ws
        if not self.link_allowed.is_set():  # cut while the handshake was under way
            await ws.close()
            return
        self.rpc = RpcSession(
            ws,
            self.VERSION,
            self._all_handlers(),
            actions(self.VERSION),
            self.response_timeout(),
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
            self.rpc = None
            self._connection = None
            log.warning("disconnected from CSMS")

    def _all_handlers(self) -> dict[str, Handler]:
        return self._handlers() | {
            action: h for f in self.features for action, h in f.handlers().items()
        }

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

    async def _register(self) -> None:
        while True:
            try:
                answer = await self._call("BootNotification", self.boot_payload())
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
            self.accepted()
        else:
            self._boot_retry_s = interval if interval > 0 else self.settings.boot_retry
        self._boot_answer.set()

    async def boot_notification(self) -> None:
        """Send a BootNotification now (the CSMS triggered it) and take its answer. A
        station the CSMS no longer accepts registers again on a new connection, where
        only BootNotification is sent until it is accepted."""
        was = self.registration
        try:
            answer = await self._call("BootNotification", self.boot_payload())
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
                try:
                    await self.send_status(connector, status, self._time(timestamp))
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
            prelude = self._prelude(message)
            try:
                rendered = self.render(prelude or message)
            except ValueError as e:
                log.error("a queued %s event is given up: %s", message.kind, e)
                self.store.mark_failed(message.id, str(e))
                continue
            if rendered is None:  # nothing this version sends for it
                self.store.mark_delivered(message.id)
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
            if prelude is not None:
                self.taken(prelude, action, answer)  # then the message itself
                self.forget(prelude)
                continue
            self.taken(message, action, answer)
            keep = self.keeps_tx_data(message)
            self.store.mark_delivered(message.id, partial(self.forget, message), keep)

    def _prelude(self, message: OutboxMessage) -> OutboxMessage | None:
        """The start a CSMS must get before `message`: its transaction started while the
        CSMS of another OCPP version was connected, which took its start event."""
        if message.kind == "start" or message.tx_id is None:
            return None
        tx = self.store.transaction(message.tx_id)
        if tx is None or self.knows(tx) or self.store.start_queued(tx.id):
            return None
        log.warning("transaction %d started under another OCPP version: its start first", tx.id)
        return OutboxMessage(-tx.id, "start", {}, tx.id, 0)

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

    def _later(self, coro: Awaitable[Any]) -> None:
        """Run work in its own task, so neither the reader nor a handler waits for it."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    # --- remote start (both versions) ---------------------------------------------------

    def remote_start_target(self, connector: int | None, id_tag: str, req: dict[str, Any]) -> Any:
        """The connector session a remote start goes to, or None: refused (not accepted,
        a reset under way or scheduled, no free connector for the idTag, or a feature
        refused it — smart charging keeps a TxProfile it carries)."""
        if self.registration is not Registration.ACCEPTED or self._resetting:
            return None
        authorize_first = self.keys.get_bool("AuthorizeRemoteTxRequests")
        # Reservations: an idTag's group (parentIdTag) is known once it is authorized.
        target = self.station.remote_start_target(connector, id_tag, not authorize_first)
        if target is None:
            return None
        hooks = [f for f in self.features if hasattr(f, "prepare_remote_start")]
        if not all(f.prepare_remote_start(req, target.number) for f in hooks):
            # What an earlier hook kept for the transaction goes with the refusal.
            self.station.smart_charging.forget_expected(target.number, id_tag)
            return None
        return target

    def start_remotely(
        self, connector: int, id_tag: str, details: dict[str, Any] | None = None
    ) -> Callable[[], None]:
        """What an accepted remote start does once its answer is sent."""
        authorize_first = self.keys.get_bool("AuthorizeRemoteTxRequests")
        return lambda: self._later(
            self.station.remote_start(connector, id_tag, authorize_first, details)
        )

    def stop_remotely(self, connector: int | None) -> dict[str, Any] | Reply:
        """The answer to a remote stop of the transaction on `connector` (None: no such
        transaction runs), stopping it once the answer is sent."""
        if self.registration is not Registration.ACCEPTED or connector is None:
            return {"status": "Rejected"}
        return Reply(
            {"status": "Accepted"},
            lambda: self.station.stop_transaction(connector, StopReason.REMOTE),
        )

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

    # --- what each version implements ----------------------------------------------------

    def boot_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def accepted(self) -> None:
        """The CSMS has just accepted the station (BootNotification)."""

    async def send_status(self, connector: int, status: Status, timestamp: str) -> None:
        raise NotImplementedError

    def render(self, message: OutboxMessage) -> tuple[str, dict[str, Any]] | None:
        """The CALL of a queued event; None: this version sends nothing for it;
        ValueError: it can never be sent (it is given up)."""
        raise NotImplementedError

    def taken(self, message: OutboxMessage, action: str, answer: dict[str, Any]) -> None:
        """The CSMS answered a queued event's CALL."""

    def forget(self, message: OutboxMessage) -> None:
        """What the layer keeps of a queued event until it is delivered goes; written in
        the same atomic write as the event leaves the queue (plain record writes only)."""

    def keeps_tx_data(self, message: OutboxMessage) -> bool:
        """Whether a delivered stop's StopTxn data is still to be reported later."""
        return False

    def knows(self, tx: TransactionRecord) -> bool:
        """Whether this version's CSMS has had the transaction's start."""
        return True

    def _handlers(self) -> dict[str, Handler]:
        raise NotImplementedError
