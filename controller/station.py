"""The station shell: feeds hardware and CSMS events into the pure core and
carries out its decisions on the hardware, the store and the OCPP layer.

Order matters for safety: outputs are applied first, synchronously, in the
callback that reported the change (the contactor opens before anything is
written or sent); effects that need I/O follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from controller.authorizer import Answer, Authorizer
from controller.clock import StationClock
from controller.core.authorization import AuthPolicy, IdTagInfo
from controller.core.connector import (
    AuthorizationExpired,
    ConnectorSession,
    ConnectorSettings,
    Outputs,
    RunRcmSelfTest,
    StartTransaction,
    StopTransaction,
)
from controller.core.faults import FAULT_RULES
from controller.core.iec61851 import PilotState
from controller.core.reservation import Ending, Reservation, ReservationEnded, ReserveAnswer
from controller.core.station import CardRefused, RequestAuthorization, StationCore, StationEffect
from controller.core.status import Status, StopReason
from controller.metering import next_aligned, samples
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.smart_charging import SmartCharging
from controller.store import Store, TransactionRecord
from drivers.interfaces import FaultKind, Hardware, MeterReading

log = logging.getLogger("evsed.station")

RESTART_REASON = "restart_reason"  # store meta key
RESERVATIONS = "reservation"  # store record kind, keyed by reservation id
# Endings of reservations a protocol layer reports (Reservation.reported_by) that no
# watcher has taken yet, keyed by reservation id: {"reservation": record, "why": Ending}
ENDINGS = "reservation_ending"
RESERVATION_RECHECK_S = 10.0  # wall-clock expiry is re-checked this often (the clock may be set)
CHECKPOINT_S = 5.0  # most energy-reading time a power cut may take from a transaction
RECENT_FAULTS = 10  # fault changes kept for `evsed status` (memory only)
LOOP_RESTART_S = 1.0  # a failed station loop starts again after this


class CentralSystemLink(Protocol):
    """What the station needs from an OCPP layer."""

    @property
    def online(self) -> bool: ...

    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        """Ask the CSMS; None when it cannot be asked (offline, no answer)."""

    def status_changed(self, connector: int, status: Status) -> None: ...

    def events_queued(self) -> None:
        """The outbox holds new transaction events."""


class AvailabilityAnswer(StrEnum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    SCHEDULED = "Scheduled"


async def keep_running(
    name: str, loop: Callable[[], Awaitable[Any]], restart_s: float = LOOP_RESTART_S
) -> None:
    """Run a loop the station depends on for as long as the station runs: an error
    (a disk error in the store, say) is logged and the loop starts again."""
    while True:
        try:
            await loop()
            return
        except Exception:
            log.exception("the %s loop failed; restarting it in %.0f s", name, restart_s)
            await asyncio.sleep(restart_s)


class Station:
    def __init__(
        self,
        hardware: Hardware,
        store: Store,
        keys: ConfigurationKeys,
        connector_limits: list[ConnectorSettings],
        phases: list[int],
        authorizer: Authorizer,
        resume_transactions: bool = False,
    ) -> None:
        self.hw = hardware
        self.authorizer = authorizer
        self._energy_caps: dict[int, float] = {}  # tx id -> Wh at which to suspend
        self._resume = resume_transactions
        self._interrupted: dict[int, TransactionRecord] = {}  # connector -> left open
        self._interruption = StopReason.POWER_LOSS
        self.store = store
        self.keys = keys
        self._limits = connector_limits
        self.phases = phases
        self.core = StationCore([self._settings(n) for n in range(len(connector_limits))])
        self.link: CentralSystemLink | None = None
        self.clock = StationClock()
        self.readings: list[MeterReading | None] = [None] * len(connector_limits)
        self._meter_ok_at = [time.monotonic()] * len(connector_limits)
        self._applied: list[Outputs | None] = [None] * len(connector_limits)
        self._reported: dict[int, Status] = {}
        self._active_tx: dict[int, int] = {}  # connector -> store transaction id
        self._checkpointed: dict[int, float] = {}  # transaction id -> monotonic time
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.meter_poll_interval = 1.0
        self.meter_offline_after = 10.0
        # The last fault changes (raised / cleared) for the control interface's state;
        # in memory only: the journal keeps the full history.
        self.recent_faults: deque[dict[str, Any]] = deque(maxlen=RECENT_FAULTS)
        self._notice: asyncio.TimerHandle | None = None  # see show_notice()
        self._held = False  # a firmware install holds new sessions (hold_new_sessions)
        self._fault_reported: dict[tuple[int, FaultKind], bool] = {}
        # A remote start's facts for the transaction it will begin (e.g. 2.0.1's
        # remoteStartId), by connector, until that transaction starts.
        self._remote_details: dict[int, dict[str, Any]] = {}
        # Who hears of each reservation that ends (watch_reservations), and those that
        # ended before anyone listened (expired while the station was off) whose layer is
        # not recorded (those whose layer is wait in the store: ENDINGS).
        self._reservation_watchers: list[Callable[[ReservationEnded], bool]] = []
        self._ended_unwatched: list[ReservationEnded] = []
        # What the CSMS's protocol version asks of the metering (2.0.1's SampledDataCtrlr and
        # AlignedDataCtrlr): the measurands of a sample by its 1.6 key (none: nothing is sent
        # or kept), those recorded with a transaction's start (None: none), and how often a
        # transaction's samples are kept for its stop message (None: with each periodic one).
        self.measurands: Callable[[str], list[str]] = keys.get_list
        self.start_measurands: Callable[[], list[str] | None] = lambda: None
        self.stop_data_interval: Callable[[], int | None] = lambda: None
        # A protocol layer's own transaction on a connector with no station transaction
        # (2.0.1's, started at plug-in, say), by the id its meter values carry: such a
        # connector is sampled like one in a transaction. None: none.
        self.layer_transaction: Callable[[int], str | None] = lambda connector: None
        # Who follows every change of the connectors' sessions (2.0.1's transactions, which
        # may start at plug-in): called with each change's effects once they are carried out.
        self.session_watchers: list[Callable[[list[Any]], None]] = []
        self._pilot_known: set[int] = set()  # connectors whose pilot has reported a state
        self._restore()
        # After _restore: Tx profiles of transactions it closed go with them.
        self.smart_charging = SmartCharging(self)

    # --- set-up -------------------------------------------------------------------

    def _settings(self, index: int) -> ConnectorSettings:
        """The connector's wiring-given settings with the policy from the OCPP keys."""
        return replace(
            self._limits[index],
            connection_timeout_s=float(self.keys.get_int("ConnectionTimeOut")),
            stop_on_ev_disconnect=self.keys.get_bool("StopTransactionOnEVSideDisconnect"),
            stop_on_invalid_id=self.keys.get_bool("StopTransactionOnInvalidId"),
            unlock_on_ev_disconnect=self.keys.get_bool("UnlockConnectorOnEVSideDisconnect"),
        )

    def settings_changed(self) -> None:
        """Configuration keys changed: the connectors follow the new policy at once."""
        for i, c in enumerate(self.core.connectors):
            c.settings = self._settings(i)
        self._after(self.core.tick(time.monotonic()))

    def limits_changed(self) -> None:
        """An external limit (smart charging) moved: the outputs follow at once."""
        self._after(self.core.tick(time.monotonic()))

    def _restore(self) -> None:
        availability = self.store.availability()
        self.core.operative = availability.get(0, True)
        for c in self.core.connectors:
            c.station_operative = self.core.operative
            c.operative = availability.get(c.number, True)
        # Why the previous run ended: a commanded reset or a shutdown says so before it
        # goes; a crash or a power cut does not.
        noted = self.store.get_meta(RESTART_REASON)
        self._interruption = StopReason(noted) if noted else StopReason.POWER_LOSS
        self.store.set_meta(RESTART_REASON, None)
        for tx in self.store.open_transactions():
            if self._resume:
                self._interrupted[tx.connector] = tx  # decided by the first pilot reading
            else:
                self._close_interrupted(tx)
        self._restore_reservations()

    def _restore_reservations(self) -> None:
        for key, record in self.store.records(RESERVATIONS).items():
            try:
                self.core.add_reservation(Reservation.from_record(record))
            except (ValueError, KeyError, TypeError) as e:
                log.error("dropping unreadable reservation record %s: %s", key, e)
                self.store.delete_record(RESERVATIONS, key)
        # Expired while the station was off: ended now, told to the watchers to come.
        ended_now = self.core.settle_reservations(self.now())
        self._ended_unwatched = [e for e in ended_now if e.reservation.reported_by is None]
        for ended in ended_now:
            self._reservation_ended(ended)

    def _close_interrupted(self, tx: TransactionRecord) -> None:
        """Close a transaction the previous run left open, with the last reading
        persisted before the end, at that reading's time."""
        log.warning(
            "closing transaction %d left open by the previous run (%s)",
            tx.id,
            self._interruption.value,
            extra={"connector": tx.connector, "tx": tx.id},
        )
        self.store.end_transaction(
            tx.id,
            max(tx.meter_start_wh, tx.checkpoint_wh or 0.0),
            tx.checkpoint_at or tx.started_at,
            self._interruption.value,
            None,
        )

    def _resume_or_close(self, connector: int, state: PilotState) -> None:
        tx = self._interrupted.pop(connector)
        session = self.core.connector(connector)
        if not state.plugged or not session.effective_operative or session.blocking_fault():
            self._close_interrupted(tx)
            self._notify_link()
            return
        log.warning(
            "resuming transaction %d: the EV is still plugged in",
            tx.id,
            extra={"connector": connector, "tx": tx.id},
        )
        self._active_tx[connector] = tx.id
        self._after(session.resume(tx.id_tag, tx.parent_id_tag, state, time.monotonic()))
        if tx.id_tag_status is not None:  # the CSMS already answered: a refusal still holds
            self.transaction_confirmed(tx.id, tx.id_tag_status)

    @property
    def previous_run_ended(self) -> StopReason:
        """Why the previous run ended: a commanded reset, a shutdown, or PowerLoss."""
        return self._interruption

    def note_restart(self, reason: StopReason) -> None:
        """Say why this run is ending, for the transactions it may leave open."""
        self.store.set_meta(RESTART_REASON, reason.value)

    async def start(self) -> None:
        # A meter's own fault reports are not used: the poller decides by silence.
        for i, pilot in enumerate(self.hw.pilots):
            pilot.on_state(partial(self._on_pilot, i + 1))
            pilot.on_fault(partial(self._on_fault, i + 1))
            pilot.on_cable(partial(self._on_cable, i + 1))
            self.hw.contactors[i].on_fault(partial(self._on_fault, i + 1))
            for part in (self.hw.rcms[i], self.hw.locks[i]):
                if part is not None:
                    part.on_fault(partial(self._on_fault, i + 1))
        for source in self.hw.station_inputs:
            source.on_fault(partial(self._on_fault, 0))
        if self.hw.reader is not None:
            self.hw.reader.on_card(self.card_presented)
            self.hw.reader.on_fault(partial(self._on_fault, 0))
        self._apply_all()
        await self.hw.start()
        for name, loop in (
            ("timer", self._timer_loop),  # also forces the opening STOP_FORCE_S after a stop
            ("meter", self._meter_loop),
            ("sampling", self._sample_loop),
            ("clock-aligned sampling", self._aligned_loop),
            ("smart charging", self.smart_charging.run),
        ):
            self._spawn(keep_running(name, loop))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.hw.stop()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("station task failed", exc_info=task.exception())

    # --- time ---------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            expiry = self.core.reservations.next_expiry()
            if expiry is not None:  # a wall-clock moment: looked at again now and then
                until = max(0.0, (expiry - self.now()).total_seconds())
                timeout = min(t for t in (timeout, until, RESERVATION_RECHECK_S) if t is not None)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._after(self.core.tick(time.monotonic()))

    # --- inputs -------------------------------------------------------------------

    def _on_pilot(self, connector: int, state: PilotState) -> None:
        log.info("pilot %s", state.value, extra={"connector": connector})
        self._pilot_known.add(connector)
        if connector in self._interrupted:
            self._resume_or_close(connector, state)
        session = self.core.connector(connector)
        plugged_in = state.plugged and not session.plugged
        self._after(session.pilot_changed(state, time.monotonic()))
        free_vend = session.settings.free_vend_id_tag
        if plugged_in and free_vend and session.reservations and session.tx is None:
            log.warning(
                "free vend not started: the connector is reserved (reservation %s)",
                ", ".join(str(r.id) for r in session.reservations),
                extra={"connector": connector},
            )

    def _on_fault(self, connector: int, kind: FaultKind, active: bool) -> None:
        log.log(
            logging.ERROR if active else logging.INFO,
            "fault %s %s",
            kind.value,
            "raised" if active else "cleared",
            extra={"connector": connector},
        )
        self._note_fault(connector, kind, active)
        now = time.monotonic()
        if connector == 0:
            self._after(self.core.station_fault(kind, active, now))
        else:
            self._after(self.core.connector(connector).fault(kind, active, now))

    def _note_fault(self, connector: int, kind: FaultKind, active: bool) -> None:
        """Keep a change (not a repeated report) in `recent_faults`, with its wall time."""
        if self._fault_reported.get((connector, kind), False) == active:
            return
        self._fault_reported[(connector, kind)] = active
        self.recent_faults.append(
            {
                "time": self.clock.iso(),
                "connector": connector,
                "kind": kind.value,
                "error_code": FAULT_RULES[kind].error_code,
                "active": active,
            }
        )

    def _on_cable(self, connector: int, rating_a: float | None) -> None:
        log.info("cable rating %s A", rating_a, extra={"connector": connector})
        self._after(self.core.connector(connector).cable_changed(rating_a, time.monotonic()))

    async def _move_lock(self, connector: int, locked: bool) -> None:
        """Lock or unlock in a worker thread; the contactor waits for a confirmed lock."""
        lock = self.hw.locks[connector - 1]
        assert lock is not None
        reached = await asyncio.to_thread(lock.lock if locked else lock.unlock)
        if not reached:
            log.error(
                "lock did not reach %s",
                "locked" if locked else "unlocked",
                extra={"connector": connector},
            )
        session = self.core.connector(connector)
        if not reached or FaultKind.LOCK in session.faults:
            self._on_fault(connector, FaultKind.LOCK, not reached)
        self._after(session.lock_reported(locked and reached, time.monotonic()))

    async def _rcm_self_test(self, connector: int) -> None:
        rcm = self.hw.rcms[connector - 1]
        passed = rcm is not None and await rcm.self_test()
        log.log(
            logging.INFO if passed else logging.ERROR,
            "RCM self-test %s",
            "passed" if passed else "FAILED",
            extra={"connector": connector},
        )
        session = self.core.connector(connector)
        self._after(session.rcm_self_test_done(passed, time.monotonic()))

    def card_presented(self, id_tag: str) -> None:
        log.info("card %s presented", id_tag)
        self._after(self.core.card_presented(id_tag, time.monotonic()))

    # --- decisions ----------------------------------------------------------------

    def _after(self, effects: list[StationEffect] | list[Any]) -> None:
        """Apply the outputs the state now calls for, then carry out the effects."""
        self._apply_all()
        try:
            for effect in effects:
                self._carry_out(effect)
        finally:  # whatever failed above, the outputs follow the state
            self._apply_all()
            self._wake.set()
        self._settle_reservations()
        self._report_statuses()
        for watcher in self.session_watchers:
            try:
                watcher(effects)
            except Exception:  # a layer's bookkeeping must not stop the station's
                log.exception("a session watcher failed")

    def _apply_all(self) -> None:
        for i, c in enumerate(self.core.connectors):
            wanted = c.outputs()
            applied = self._applied[i]
            if wanted == applied:
                continue
            n = i + 1
            contactor, pilot = self.hw.contactors[i], self.hw.pilots[i]
            # Open before changing the pilot; offer (PWM) before closing.
            if not wanted.contactor_closed:
                contactor.set_closed(False)
            if applied is None or wanted.pilot != applied.pilot:
                pilot.set_output(wanted.pilot)
                log.info(
                    "pilot output %s %.1f%%",
                    wanted.pilot.mode.value,
                    wanted.pilot.duty_percent,
                    extra={"connector": n},
                )
            if wanted.contactor_closed:
                contactor.set_closed(True)
            if applied is None or wanted.contactor_closed != applied.contactor_closed:
                log.info(
                    "contactor %s",
                    "closed" if wanted.contactor_closed else "open",
                    extra={"connector": n},
                )
            lock = self.hw.locks[i]
            if lock is not None and (applied is None or wanted.locked != applied.locked):
                self._spawn(self._move_lock(n, wanted.locked))
            self._applied[i] = wanted

    def _carry_out(self, effect: StationEffect) -> None:
        if isinstance(effect, StartTransaction):
            self._begin_transaction(effect)
        elif isinstance(effect, StopTransaction):
            self._end_transaction(effect)
        elif isinstance(effect, RunRcmSelfTest):
            self._spawn(self._rcm_self_test(effect.connector))
        elif isinstance(effect, RequestAuthorization):
            self._spawn(self._authorize_card(effect.id_tag))
        elif isinstance(effect, CardRefused):
            log.warning("card %s refused: %s", effect.id_tag, effect.why)
        elif isinstance(effect, AuthorizationExpired):
            log.info(
                "authorization of %s expired: no cable within ConnectionTimeOut",
                effect.id_tag,
                extra={"connector": effect.connector},
            )
            self.smart_charging.forget_expected(effect.connector, effect.id_tag)

    def _energy(self, connector: int) -> float:
        reading = self.readings[connector - 1]
        return reading.energy_wh if reading is not None else 0.0

    def _offline(self) -> dict[str, Any]:
        """Whether the CSMS was out of reach when an event happened (2.0.1's offline flag)."""
        return {} if self.link is not None and self.link.online else {"offline": True}

    def _begin_transaction(self, effect: StartTransaction) -> None:
        reservation = effect.reservation_id
        details = self._offline()
        if reservation is not None:
            details["reservation_id"] = reservation
        remote = self._remote_details.pop(effect.connector, None)
        if remote is not None and remote.get("id_tag") == effect.id_tag:
            details |= remote["details"]
        at_start = self.start_measurands()
        if at_start is not None:
            begin = self._sample(effect.connector, at_start, "Transaction.Begin")
            details["start_samples"] = begin
        tx_id = self.store.begin_transaction(
            effect.connector,
            effect.id_tag,
            effect.parent_id_tag,
            self._energy(effect.connector),
            self.clock.stamp(),
            details=details,
        )
        self._active_tx[effect.connector] = tx_id
        self.smart_charging.transaction_started(effect.connector, tx_id, effect.id_tag)
        log.info(
            "transaction started for %s%s",
            effect.id_tag,
            "" if reservation is None else f" (reservation {reservation})",
            extra={"connector": effect.connector, "tx": tx_id},
        )
        if reservation is not None:
            self._reservation_ended(self.core.end_reservation(reservation, Ending.USED))
        self._notify_link()

    def _end_transaction(self, effect: StopTransaction) -> None:
        tx_id = self._active_tx.pop(effect.connector, None)
        if tx_id is None:
            return
        self._checkpointed.pop(tx_id, None)
        self._energy_caps.pop(tx_id, None)
        self.store.end_transaction(
            tx_id,
            self._energy(effect.connector),
            self.clock.stamp(),
            effect.reason.value,
            effect.id_tag,
            details=self._offline(),
        )
        self.smart_charging.transaction_ended(effect.connector, tx_id)
        log.info(
            "transaction stopped: %s",
            effect.reason.value,
            extra={"connector": effect.connector, "tx": tx_id},
        )
        self._notify_link()

    def _notify_link(self) -> None:
        if self.link is not None:
            self.link.events_queued()

    def _report_statuses(self) -> None:
        current = {0: self.core.status()}
        current.update({c.number: c.status() for c in self.core.connectors})
        for n, status in current.items():
            if self._reported.get(n) != status:
                self._reported[n] = status
                log.info(
                    "status %s (%s)", status.status.value, status.error_code, extra={"connector": n}
                )
                if self.link is not None:
                    self.link.status_changed(n, status)
                if n == 1 and self.hw.indicator is not None and self._notice is None:
                    self.hw.indicator.show(status.status.value)

    def show_notice(self, pattern: str, seconds: float) -> None:
        """Show a station notice (e.g. "ProvisioningFailed") on the status LED for a
        while instead of connector 1's status, for the installer standing at the box."""
        if self.hw.indicator is None:
            return
        loop = asyncio.get_running_loop()
        if self._notice is not None:
            self._notice.cancel()
        self._notice = loop.call_later(seconds, self._end_notice)
        self.hw.indicator.show(pattern)

    def _end_notice(self) -> None:
        self._notice = None
        status = self._reported.get(1)
        if status is not None and self.hw.indicator is not None:
            self.hw.indicator.show(status.status.value)

    def statuses(self) -> dict[int, Status]:
        return dict(self._reported)

    # --- authorization --------------------------------------------------------------

    def auth_policy(self) -> AuthPolicy:
        return AuthPolicy(
            local_auth_list_enabled=self.keys.get_bool("LocalAuthListEnabled"),
            cache_enabled=self.keys.get_bool("AuthorizationCacheEnabled"),
            local_pre_authorize=self.keys.get_bool("LocalPreAuthorize"),
            local_authorize_offline=self.keys.get_bool("LocalAuthorizeOffline"),
            allow_offline_tx_for_unknown_id=self.keys.get_bool("AllowOfflineTxForUnknownId"),
        )

    async def _authorize(self, id_tag: str) -> Answer:
        link = self.link

        async def ask_csms(tag: str) -> IdTagInfo | None:
            return None if link is None else await link.authorize(tag)

        online = link is not None and link.online
        answer = await self.authorizer.authorize(
            id_tag, self.auth_policy(), self.now(), online, ask_csms
        )
        log.info("%s %s (%s)", id_tag, "accepted" if answer.accepted else "refused", answer.why)
        return answer

    async def _authorize_card(self, id_tag: str) -> None:
        answer = await self._authorize(id_tag)
        now = time.monotonic()
        self._after(self.core.card_authorized(id_tag, answer.accepted, answer.parent_id_tag, now))

    async def id_tag_info(self, id_tag: str, info: IdTagInfo) -> None:
        """Every idTagInfo the CSMS sends updates the cache; one that contradicts the
        local list is reported as LocalListConflict on connector 0."""
        if await self.authorizer.remember(id_tag, info, self.auth_policy(), self.now()):
            log.warning("the CSMS contradicts the local list about %s", id_tag)
            self._on_fault(0, FaultKind.LOCAL_LIST_CONFLICT, True)

    def local_list_updated(self) -> None:
        if FaultKind.LOCAL_LIST_CONFLICT in self.core.faults:
            self._on_fault(0, FaultKind.LOCAL_LIST_CONFLICT, False)

    # --- commands from the CSMS ---------------------------------------------------------

    def remote_start_target(
        self, connector: int | None, id_tag: str | None = None, parent_known: bool = True
    ) -> ConnectorSession | None:
        """Where a remote start for `id_tag` would go; None: nowhere (occupied, or kept
        by reservations). Before authorizing, its group (parentIdTag) is not known."""
        target = self.core.pick_connector(connector, id_tag, None, parent_known)
        if target is None and id_tag is not None and self.core.pick_connector(connector):
            why = self.core.refusal(id_tag, None, parent_known)
            log.warning("remote start for %s rejected: %s", id_tag, why)
        return target

    async def remote_start(
        self,
        connector: int,
        id_tag: str,
        authorize_first: bool,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Carry out an accepted remote start (after the answer was sent); `details` go
        with the transaction's start event if this start begins it."""
        if details:
            self._remote_details[connector] = {"id_tag": id_tag, "details": details}
        parent = None
        if authorize_first:  # like a local start: list, cache, then the CSMS
            answer = await self._authorize(id_tag)
            if not answer.accepted:
                log.warning("remote start for %s not authorized", id_tag)
                self._remote_start_failed(connector, id_tag)
                return
            parent = answer.parent_id_tag
        session = self.core.connector(connector)
        if not session.can_accept_new_session():
            log.warning("remote start: connector %d is no longer free", connector)
            self._remote_start_failed(connector, id_tag)
            return
        admission = self.core.admission(connector, id_tag, parent)
        if not admission.allowed:
            log.warning("remote start for %s refused: %s", id_tag, admission.why)
            self._remote_start_failed(connector, id_tag)
            return
        self._after(self.core.authorize_on(connector, id_tag, parent, time.monotonic()))

    def remote_start_details(self, connector: int, id_tag: str) -> dict[str, Any]:
        """The details of a remote start for `id_tag` waiting on `connector` for its
        transaction (none: no such start)."""
        waiting = self._remote_details.get(connector)
        if waiting is None or waiting["id_tag"] != id_tag:
            return {}
        return dict(waiting["details"])

    def _remote_start_failed(self, connector: int, id_tag: str) -> None:
        """What a remote start brought for its transaction goes: there will be none."""
        self._remote_details.pop(connector, None)
        self.smart_charging.forget_expected(connector, id_tag)

    # --- reservations ------------------------------------------------------------------

    def reserve(self, reservation: Reservation, zero_supported: bool) -> ReserveAnswer:
        """A reservation from the CSMS, decided by the core; on the card before it is
        accepted, so it survives a power cut."""
        answer = self.core.reservation_answer(reservation, self.now(), zero_supported)
        where = {"connector": reservation.connector}
        if answer is not ReserveAnswer.ACCEPTED:
            log.info("reservation %d refused: %s", reservation.id, answer.value, extra=where)
            return answer
        with self.store.atomic():  # an ending of an earlier one of this id would mislead
            self.store.put_record(RESERVATIONS, str(reservation.id), reservation.as_record())
            self.store.delete_record(ENDINGS, str(reservation.id))
        self.core.add_reservation(reservation)
        log.info(
            "reservation %d for %s until %s",
            reservation.id,
            reservation.id_tag,
            reservation.as_record()["expiry"],
            extra=where,
        )
        self._after([])
        return answer

    def cancel_reservation(self, reservation_id: int) -> bool:
        """False: there is no such reservation."""
        if self.core.reservations.get(reservation_id) is None:
            return False
        self._reservation_ended(self.core.end_reservation(reservation_id, Ending.CANCELLED))
        self._after([])
        return True

    def _settle_reservations(self) -> None:
        for ended in self.core.settle_reservations(self.now()):
            self._reservation_ended(ended)

    def watch_reservations(self, watcher: Callable[[ReservationEnded], bool]) -> None:
        """Tell `watcher` of every reservation that ends (an OCPP layer that reports it),
        starting with those that ended before it watched (also in an earlier run). It
        answers True when it has taken the ending: stored its report, or has none."""
        self._reservation_watchers.append(watcher)
        for key, record in sorted(self.store.records(ENDINGS).items(), key=lambda kv: int(kv[0])):
            try:
                ended = ReservationEnded(
                    Reservation.from_record(record["reservation"]), Ending(record["why"])
                )
            except (ValueError, KeyError, TypeError) as e:
                log.error("dropping unreadable reservation ending %s: %s", key, e)
                self.store.delete_record(ENDINGS, key)
                continue
            if watcher(ended):
                self.store.delete_record(ENDINGS, key)
        for ended in self._ended_unwatched:
            watcher(ended)

    def _reservation_ended(self, ended: ReservationEnded | None) -> None:
        """Forget an ended reservation on the card too. One a layer reports is kept as an
        ending (in the same write) until a watcher has taken it, so neither a power cut
        nor the layer's absence loses the report."""
        if ended is None:
            return
        key, reservation = str(ended.reservation.id), ended.reservation
        with self.store.atomic():
            if reservation.reported_by is not None:
                ending = {"reservation": reservation.as_record(), "why": ended.why.value}
                self.store.put_record(ENDINGS, key, ending)
            self.store.delete_record(RESERVATIONS, key)
        taken = False
        for watcher in self._reservation_watchers:
            taken = watcher(ended) or taken
        if taken and reservation.reported_by is not None:
            self.store.delete_record(ENDINGS, key)
        log.info(
            "reservation %d ended: %s",
            ended.reservation.id,
            ended.why.value,
            extra={"connector": ended.reservation.connector},
        )

    def connector_of_transaction(self, csms_tx_id: int) -> int | None:
        for connector, tx_id in self._active_tx.items():
            record = self.store.transaction(tx_id)
            if record is not None and record.csms_id == csms_tx_id:
                return connector
        return None

    def connector_running(self, tx_id: int) -> int | None:
        """The connector transaction `tx_id` (the store's id) runs on; None: it does not run."""
        return next((c for c, active in self._active_tx.items() if active == tx_id), None)

    def transaction_id(self, connector: int) -> int | None:
        """The store's id of the transaction running on `connector`."""
        return self._active_tx.get(connector)

    def pilot_known(self, connector: int) -> bool:
        """Whether the connector's pilot has reported since the start: before, whether an
        EV is plugged in is not known."""
        return connector in self._pilot_known

    def cancel_authorization(self, connector: int) -> None:
        """Withdraw an authorization waiting on `connector` for the EV."""
        self.core.connector(connector).cancel_authorization()
        self._after([])

    def stop_transaction(self, connector: int, reason: StopReason, graceful: bool = True) -> None:
        session = self.core.connector(connector)
        self._after(session.stop(reason, time.monotonic(), graceful=graceful))

    def transaction_confirmed(self, tx_id: int, id_tag_status: str) -> None:
        """The CSMS answered a StartTransaction; a refused idTag ends the transaction
        (StopTransactionOnInvalidId) or suspends it, after MaxEnergyOnInvalidId Wh."""
        if id_tag_status == "Accepted":
            return
        # A copy: stopping the transaction removes it from _active_tx.
        for connector, active in list(self._active_tx.items()):
            if active != tx_id:
                continue
            session = self.core.connector(connector)
            if session.tx is not None and session.tx.id_tag == session.settings.free_vend_id_tag:
                # Free vend charges without authorization by the owner's choice.
                log.info(
                    "CSMS answered %s for the free-vend idTag; charging goes on",
                    id_tag_status,
                    extra={"connector": connector, "tx": tx_id},
                )
                continue
            log.warning(
                "CSMS refused idTag of running transaction (%s)",
                id_tag_status,
                extra={"connector": connector, "tx": tx_id},
            )
            allowance = self.keys.get_int("MaxEnergyOnInvalidId")
            record = self.store.transaction(tx_id)
            if allowance > 0 and not self.keys.get_bool("StopTransactionOnInvalidId") and record:
                self._energy_caps[tx_id] = record.meter_start_wh + allowance
                self._enforce_energy_cap(connector)
            else:
                self._after(self.core.connector(connector).id_tag_refused(time.monotonic()))

    def _enforce_energy_cap(self, connector: int) -> None:
        tx_id = self._active_tx.get(connector)
        if tx_id is None or tx_id not in self._energy_caps:
            return
        if self._energy(connector) >= self._energy_caps[tx_id]:
            log.warning("MaxEnergyOnInvalidId reached", extra={"connector": connector})
            del self._energy_caps[tx_id]
            self._after(self.core.connector(connector).id_tag_refused(time.monotonic()))

    def change_availability(self, connector: int, operative: bool) -> AvailabilityAnswer:
        if connector < 0 or connector > len(self.core.connectors):
            return AvailabilityAnswer.REJECTED
        affected = self.core.connectors if connector == 0 else [self.core.connector(connector)]
        self.store.set_availability(connector, operative)
        now = time.monotonic()
        if connector == 0:
            # A firmware install's hold outlasts the CSMS making the station operative.
            self._after(self.core.set_operative(operative and not self._held, now))
        else:
            self._after(self.core.connector(connector).set_operative(operative, now))
        busy = any(c.tx is not None for c in affected)
        return (
            AvailabilityAnswer.SCHEDULED if busy and not operative else AvailabilityAnswer.ACCEPTED
        )

    async def unlock(self, connector: int) -> bool | None:
        """Unlock a socket outlet, ending its transaction first. None: there is no lock."""
        lock = self.hw.locks[connector - 1]
        if lock is None:
            return None
        if self.core.connector(connector).tx is not None:
            self.stop_transaction(connector, StopReason.UNLOCK_COMMAND, graceful=False)
        return await asyncio.to_thread(lock.unlock)

    def has_running_transactions(self) -> bool:
        return bool(self._active_tx)

    def hold_new_sessions(self, hold: bool) -> None:
        """While a firmware install waits for the running transactions to end, no new
        session starts: idle connectors become Unavailable, running ones charge on.
        Not persisted: releasing (or the restart the install brings) restores the
        station's stored availability."""
        self._held = hold
        operative = not hold and self.store.availability().get(0, True)
        self._after(self.core.set_operative(operative, time.monotonic()))

    # --- metering -----------------------------------------------------------------

    async def _meter_loop(self) -> None:
        while True:
            for i, meter in enumerate(self.hw.meters):
                n = i + 1
                try:
                    self.readings[i] = await meter.read()
                    self._meter_ok_at[i] = time.monotonic()
                    self._checkpoint(n)
                    self._enforce_energy_cap(n)
                    if FaultKind.METER in self.core.connector(n).faults:
                        self._on_fault(n, FaultKind.METER, False)
                except OSError as e:
                    silent = time.monotonic() - self._meter_ok_at[i]
                    in_fault = FaultKind.METER in self.core.connector(n).faults
                    if silent >= self.meter_offline_after and not in_fault:
                        log.error("meter silent for %.0f s: %s", silent, e, extra={"connector": n})
                        self._on_fault(n, FaultKind.METER, True)
            await asyncio.sleep(self.meter_poll_interval)

    def checkpoint_before(self, connector: int, timestamp: str) -> None:
        """Checkpoint the running transaction now, before an event stamped `timestamp` is
        queued for it: a transaction closed after a power cut must not end before (or
        below) an event already queued for it."""
        tx_id = self._active_tx.get(connector)
        reading = self.readings[connector - 1]
        if tx_id is not None and reading is not None:
            self._checkpointed[tx_id] = time.monotonic()
            self.store.checkpoint(tx_id, reading.energy_wh, timestamp)

    def _checkpoint(self, connector: int) -> None:
        """Persist the running transaction's energy at least every sample interval (and
        every CHECKPOINT_S), so a power cut loses at most that much of the bill."""
        tx_id = self._active_tx.get(connector)
        reading = self.readings[connector - 1]
        if tx_id is None or reading is None:
            return
        interval = min(CHECKPOINT_S, self.keys.get_int("MeterValueSampleInterval") or CHECKPOINT_S)
        now = time.monotonic()
        if now - self._checkpointed.get(tx_id, -math.inf) >= interval:
            self._checkpointed[tx_id] = now
            self.store.checkpoint(tx_id, reading.energy_wh, self.clock.stamp())

    def _sample(self, connector: int, measurands: list[str], context: str) -> list[dict[str, Any]]:
        reading = self.readings[connector - 1]
        if reading is None or not measurands:
            return []
        session = self.core.connector(connector)
        offered = session.outputs().pilot.offered_current_a
        return samples(reading, measurands, context, self.phases[connector - 1], offered)

    def current_samples(
        self, connector: int, measurands: list[str], context: str
    ) -> list[dict[str, Any]]:
        """The connector meter's readings now (for a MeterValues the CSMS asked for); none
        before the first reading or while the meter is silent: a stale value is no answer."""
        if FaultKind.METER in self.core.connector(connector).faults:
            return []
        return self._sample(connector, measurands, context)

    def record_meter_values(
        self, connector: int, context: str, aligned: bool, report: bool = True, keep: bool = True
    ) -> None:
        """Queue a MeterValues for `connector` (`report`) and keep the StopTxn* data of its
        transaction (`keep`)."""
        reported_key = "MeterValuesAlignedData" if aligned else "MeterValuesSampledData"
        stop_key = "StopTxnAlignedData" if aligned else "StopTxnSampledData"
        tx_id = self._active_tx.get(connector)
        timestamp = self.clock.stamp()
        self.checkpoint_before(connector, timestamp)
        reported = self._sample(connector, self.measurands(reported_key), context) if report else []
        if reported:
            data = {"connector": connector, "timestamp": timestamp, "samples": reported}
            data |= self._offline()
            layer_tx = self.layer_transaction(connector) if tx_id is None else None
            if layer_tx is not None:
                data["uid"] = layer_tx
            if self._make_room(data):
                self.store.enqueue("meter", data, tx_id)
                self._notify_link()
        if tx_id is not None and keep:
            kept = self._sample(connector, self.measurands(stop_key), context)
            record = {"timestamp": timestamp, "samples": kept}
            if kept and self._make_room(record):
                self.store.add_tx_data(tx_id, record)

    def _make_room(self, record: dict[str, Any]) -> bool:
        """Stay within the queue's disk budget by thinning periodic meter values; when
        nothing is left to thin, this value is dropped (start and stop never are)."""
        size = len(json.dumps(record))
        while self.store.over_budget(size):
            if not self.store.thin():
                log.warning("queue budget full: a meter value is dropped")
                return False
        return True

    async def _sample_loop(self) -> None:
        """Sample.Periodic values of running transactions (and of a layer's own, see
        layer_transaction), every MeterValueSampleInterval."""
        started: dict[int, float] = {}
        kept: dict[int, float] = {}  # the same for the stop data, when on its own interval
        while True:
            interval = self.keys.get_int("MeterValueSampleInterval")
            keep_interval = self.stop_data_interval()  # None: kept with the periodic ones
            now = time.monotonic()
            sampled = [
                c.number
                for c in self.core.connectors
                if c.number in self._active_tx or self.layer_transaction(c.number) is not None
            ]
            for schedule in (started, kept):
                for connector in list(schedule):
                    if connector not in sampled:
                        del schedule[connector]
            for connector in sampled:
                if _due(started, connector, interval, now):
                    self.record_meter_values(
                        connector, "Sample.Periodic", aligned=False, keep=keep_interval is None
                    )
                if keep_interval is not None and _due(kept, connector, keep_interval, now):
                    self.record_meter_values(connector, "Sample.Periodic", False, report=False)
            await asyncio.sleep(0.25 if interval > 0 or (keep_interval or 0) > 0 else 1.0)

    async def _aligned_loop(self) -> None:
        """Sample.Clock values of every connector at multiples of ClockAlignedDataInterval."""
        while True:
            interval = self.keys.get_int("ClockAlignedDataInterval")
            if interval <= 0:
                await asyncio.sleep(1.0)
                continue
            now = self.clock.epoch()
            due = next_aligned(now, interval)
            await asyncio.sleep(min(due - now, 1.0))
            if self.clock.epoch() >= due:
                for c in self.core.connectors:
                    self.record_meter_values(c.number, "Sample.Clock", aligned=True)

    # --- what the control interface shows ----------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        connectors = []
        for i, c in enumerate(self.core.connectors):
            out = c.outputs()
            status = c.status()
            tx_id = self._active_tx.get(c.number)
            record = self.store.transaction(tx_id) if tx_id is not None else None
            reading = self.readings[i]
            connectors.append(
                {
                    "connector": c.number,
                    "status": status.status.value,
                    "error_code": status.error_code,
                    "pilot_state": c.pilot.value,
                    "pilot_mode": out.pilot.mode.value,
                    "duty_percent": out.pilot.duty_percent,
                    "offered_current_a": out.pilot.offered_current_a,
                    "contactor_closed": out.contactor_closed,
                    "locked": out.locked,
                    "operative": c.operative,
                    "faults": [k.value for k in c.faults.kinds()],
                    "authorized_id_tag": c.auth.id_tag if c.auth else None,
                    "transaction": None
                    if record is None
                    else {
                        "id": record.id,
                        "csms_id": record.csms_id,
                        "id_tag": record.id_tag,
                        "meter_start_wh": record.meter_start_wh,
                        "started_at": record.started_at,
                    },
                    "meter": None
                    if reading is None
                    else {
                        "energy_wh": reading.energy_wh,
                        "power_w": reading.power_w,
                        "current_a": list(reading.current_a),
                    },
                }
            )
        station = self.core.status()
        return {
            "status": station.status.value,
            "error_code": station.error_code,
            "operative": self.core.operative,
            "faults": [k.value for k in self.core.faults.kinds()],
            "queued_messages": self.store.pending_count(),
            "queued_bytes": self.store.queued_bytes,
            "connectors": connectors,
            "recent_faults": list(self.recent_faults),
        }


def _due(schedule: dict[int, float], connector: int, interval: int, now: float) -> bool:
    """Whether `connector`'s next sample on `schedule` (every `interval` s from its first
    sight, 0: never) is due; moves the schedule on when it is."""
    first = schedule.setdefault(connector, now)
    if interval <= 0 or now - first < interval:
        return False
    schedule[connector] = first + interval * ((now - first) // interval)
    return True
