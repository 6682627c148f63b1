"""Charging-session logic of one connector: events in, decisions out.

No OCPP, no hardware, no clock: every method takes `now` (monotonic seconds)
and returns the effects the shell must carry out. The pilot output, the
contactor command, the lock and the status are *derived* from the state, so
they can never disagree with it. Safety rules (IEC 61851-1, hardware
reference §1.4 and §3.1):

- the contactor is closed only in C (or D with ventilation), with PWM on, for
  an authorized transaction, with no blocking fault;
- it opens at once on C→B, unplug, E, F or any blocking fault;
- a normal stop switches PWM off and keeps the contactor closed until the EV
  leaves C, forced open after `STOP_FORCE_S`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.faults import FaultSet
from controller.core.iec61851 import MIN_CURRENT_A, PilotOutput, PilotState
from controller.core.reservation import Reservation
from controller.core.status import NO_ERROR, ConnectorStatus, Status, StopReason
from drivers.interfaces import FaultKind

STOP_FORCE_S = 6.0  # PWM off in C: the EV should go to B in 3 s; open under load after 6 s


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    """The policy a connector follows; rebuilt when configuration keys change."""

    max_current_a: float = 32.0
    ventilation: bool = False
    has_lock: bool = False
    connection_timeout_s: float = 60.0
    stop_on_ev_disconnect: bool = True
    stop_on_invalid_id: bool = True
    unlock_on_ev_disconnect: bool = True
    socket_outlet: bool = False  # the cable rating comes from the proximity pilot
    cable_rating_a: float | None = None  # fixed cable: its rating (None: max_current)
    has_rcm: bool = False  # an RCM that is self-tested before each session
    free_vend_id_tag: str | None = None  # plugging in starts a transaction under it


# --- effects -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTransaction:
    connector: int
    id_tag: str
    parent_id_tag: str | None
    reservation_id: int | None = None  # the reservation this start uses up


@dataclass(frozen=True, slots=True)
class StopTransaction:
    connector: int
    reason: StopReason
    id_tag: str | None  # who stopped it, if a card did


@dataclass(frozen=True, slots=True)
class RunRcmSelfTest:
    """Test the residual current monitor before this session's contactor may close."""

    connector: int


@dataclass(frozen=True, slots=True)
class AuthorizationExpired:
    """An authorization waited longer than ConnectionTimeOut for the cable."""

    connector: int
    id_tag: str


Effect = StartTransaction | StopTransaction | AuthorizationExpired | RunRcmSelfTest


@dataclass(frozen=True, slots=True)
class Outputs:
    pilot: PilotOutput
    contactor_closed: bool
    locked: bool


# --- state ---------------------------------------------------------------------


@dataclass(slots=True)
class Authorization:
    id_tag: str
    parent_id_tag: str | None
    deadline: float  # plug in before this, or the authorization lapses
    reservation_id: int | None = None  # the reservation the start will use up


@dataclass(slots=True)
class Transaction:
    id_tag: str
    parent_id_tag: str | None
    suspended: bool = False  # the CSMS refused the idTag and the policy keeps the tx open
    stop_reason: StopReason | None = None
    stop_id_tag: str | None = None
    stop_deadline: float | None = None
    forced_open: bool = False

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None


@dataclass
class ConnectorSession:
    number: int
    settings: ConnectorSettings = field(default_factory=ConnectorSettings)
    pilot: PilotState = PilotState.A
    operative: bool = True
    station_operative: bool = True
    station_blocked: tuple[Status, StopReason] | None = None  # a station-wide blocking fault
    offered_limit_a: float | None = None  # external limit (smart charging); None = none
    pp_rating_a: float | None = None  # socket outlets: the plugged cable's rating (PP)
    rcm_tested: bool = False  # this session's RCM self-test passed
    lock_engaged: bool = False  # the socket lock's feedback confirms it is locked
    faults: FaultSet = field(default_factory=FaultSet)
    auth: Authorization | None = None
    tx: Transaction | None = None
    finishing: bool = False  # a transaction ended and the EV has not been unplugged yet
    # The reservations this connector is kept for (set by the station core): while there
    # are any, only an idTag one of them admits may start here.
    reservations: tuple[Reservation, ...] = ()

    # --- derived ---------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        return self.pilot.plugged

    def _pilot_fault(self) -> Status | None:
        if self.pilot is PilotState.E:
            return Status(ConnectorStatus.FAULTED, "EVCommunicationError", "CP shorted (state E)")
        if self.pilot is PilotState.F and not self._drives_f():
            return Status(ConnectorStatus.FAULTED, "EVCommunicationError", "CP at -12 V (state F)")
        if self.pilot is PilotState.D and not self.settings.ventilation:
            return Status(ConnectorStatus.FAULTED, "OtherError", "ventilation not available")
        return None

    def blocking_fault(self) -> Status | None:
        fault = self.faults.blocking
        if fault is not None:
            return Status(ConnectorStatus.FAULTED, fault.rule.error_code, fault.kind.value)
        if self.station_blocked is not None:
            return self.station_blocked[0]
        return self._pilot_fault()

    def _blocking_stop_reason(self) -> StopReason:
        fault = self.faults.blocking
        if fault is not None:
            return fault.rule.stop_reason
        if self.station_blocked is not None:
            return self.station_blocked[1]
        return StopReason.OTHER

    def _drives_f(self) -> bool:
        return FaultKind.WELD in self.faults

    @property
    def effective_operative(self) -> bool:
        return self.operative and self.station_operative

    def can_accept_new_session(self) -> bool:
        return (
            self.tx is None
            and self.auth is None
            and self.effective_operative
            and self.blocking_fault() is None
        )

    def offered_current(self) -> float:
        """Never above the installation limit, the cable, or an external limit."""
        limits = [self.settings.max_current_a]
        if self.settings.socket_outlet:
            limits.append(self.pp_rating_a or 0.0)  # no valid cable: nothing offered
        elif self.settings.cable_rating_a is not None:
            limits.append(self.settings.cable_rating_a)
        if self.offered_limit_a is not None:
            limits.append(self.offered_limit_a)
        return min(limits)

    def _offering(self) -> bool:
        tx = self.tx
        return (
            tx is not None
            and not tx.stopping
            and not tx.suspended
            and self.plugged
            and self.blocking_fault() is None
            and self.offered_current() >= MIN_CURRENT_A
        )

    def _energy_may_flow(self) -> bool:
        tx = self.tx
        if tx is None or self.blocking_fault() is not None or not self.pilot.wants_energy:
            return False
        if tx.stopping:
            # Only a contactor already closed stays closed (until the EV leaves C), and
            # only while the socket is still locked.
            return not tx.forced_open and (self.lock_engaged or not self.settings.has_lock)
        return (
            self._offering()
            and (self.rcm_tested or not self.settings.has_rcm)
            and (self.lock_engaged or not self.settings.has_lock)
        )

    def outputs(self) -> Outputs:
        if self._drives_f():
            pilot = PilotOutput.state_f()
        elif self._offering():
            pilot = PilotOutput.offering(self.offered_current())
        else:
            pilot = PilotOutput.x1()
        return Outputs(pilot, self._energy_may_flow(), self._locked())

    def _locked(self) -> bool:
        if not self.settings.has_lock or self.tx is None:
            return False
        if self.tx.stopping:
            return self._energy_may_flow()  # never unlock under load
        return not (self.pilot is PilotState.A and self.settings.unlock_on_ev_disconnect)

    def status(self) -> Status:
        blocked = self.blocking_fault()
        if blocked is not None:
            return blocked
        notice = self.faults.non_blocking
        error = notice.rule.error_code if notice else NO_ERROR
        info = notice.kind.value if notice else None

        def report(status: ConnectorStatus) -> Status:
            return Status(status, error, info)

        tx = self.tx
        if tx is None and not self.effective_operative:
            return report(ConnectorStatus.UNAVAILABLE)
        if tx is not None:
            if tx.stopping:
                return report(ConnectorStatus.FINISHING)
            if self.pilot is PilotState.A:
                return report(ConnectorStatus.SUSPENDED_EV)
            if not self._offering():
                return report(ConnectorStatus.SUSPENDED_EVSE)
            if self._energy_may_flow():
                return report(ConnectorStatus.CHARGING)
            return report(ConnectorStatus.SUSPENDED_EV)
        if self.plugged and self.finishing:
            return report(ConnectorStatus.FINISHING)
        if self.auth is not None or self.plugged:
            return report(ConnectorStatus.PREPARING)
        if self.reservations:
            return report(ConnectorStatus.RESERVED)
        return report(ConnectorStatus.AVAILABLE)

    def next_deadline(self) -> float | None:
        deadlines = []
        if self.auth is not None:
            deadlines.append(self.auth.deadline)
        if self.tx is not None and self.tx.stop_deadline is not None and not self.tx.forced_open:
            deadlines.append(self.tx.stop_deadline)
        return min(deadlines, default=None)

    # --- events ----------------------------------------------------------------

    def pilot_changed(self, state: PilotState, now: float) -> list[Effect]:
        self.pilot = state
        if state is PilotState.A:
            self.finishing = False
            self.faults.saw_unplug()
        return self._settle(now)

    def fault(self, kind: FaultKind, active: bool, now: float) -> list[Effect]:
        self.faults.update(kind, active, unplugged=self.pilot is PilotState.A)
        return self._settle(now)

    def authorize(
        self,
        id_tag: str,
        parent_id_tag: str | None,
        now: float,
        reservation_id: int | None = None,
    ) -> list[Effect]:
        """An accepted idTag (card or remote start) was assigned to this connector, using
        up `reservation_id` when its transaction starts."""
        deadline = now + self.settings.connection_timeout_s
        self.auth = Authorization(id_tag, parent_id_tag, deadline, reservation_id)
        return self._settle(now)

    def resume(
        self, id_tag: str, parent_id_tag: str | None, pilot: PilotState, now: float
    ) -> list[Effect]:
        """Carry on a transaction the previous run of the station left open, with the
        EV found in `pilot` state."""
        self.pilot = pilot
        self.tx = Transaction(id_tag, parent_id_tag)
        self.auth, self.finishing, self.rcm_tested = None, False, False
        effects: list[Effect] = [RunRcmSelfTest(self.number)] if self.settings.has_rcm else []
        return effects + self._settle(now)

    def cancel_authorization(self) -> None:
        self.auth = None

    def stop(
        self, reason: StopReason, now: float, id_tag: str | None = None, graceful: bool = True
    ) -> list[Effect]:
        """End the running transaction. Graceful stops wait for the EV to leave C."""
        tx = self.tx
        if tx is None:
            return []
        if not tx.stopping:
            energized = self._energy_may_flow()
            tx.stop_reason, tx.stop_id_tag = reason, id_tag
            tx.stop_deadline = now + STOP_FORCE_S
            if not energized:
                tx.forced_open = True  # it was open: a stop never closes it
        if not graceful:
            tx.forced_open = True
        return self._settle(now)

    def cable_changed(self, rating_a: float | None, now: float) -> list[Effect]:
        self.pp_rating_a = rating_a
        return self._settle(now)

    def lock_reported(self, engaged: bool, now: float) -> list[Effect]:
        self.lock_engaged = engaged
        return self._settle(now)

    def rcm_self_test_done(self, passed: bool, now: float) -> list[Effect]:
        if self.tx is None:
            return []
        self.rcm_tested = passed
        if not passed:
            self.faults.update(FaultKind.RCM_TEST, True, unplugged=False)
            self.faults.update(FaultKind.RCM_TEST, False, unplugged=False)  # latched until unplug
        return self._settle(now)

    def id_tag_refused(self, now: float) -> list[Effect]:
        """The CSMS answered the StartTransaction with a status other than Accepted."""
        if self.tx is None:
            return []
        if self.settings.stop_on_invalid_id:
            return self.stop(StopReason.DEAUTHORIZED, now)
        self.tx.suspended = True
        return self._settle(now)

    def set_operative(self, operative: bool, now: float) -> list[Effect]:
        self.operative = operative
        if not self.effective_operative:
            self.auth = None
        return self._settle(now)

    def tick(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if self.auth is not None and now >= self.auth.deadline and not self.plugged:
            effects.append(AuthorizationExpired(self.number, self.auth.id_tag))
            self.auth = None
        tx = self.tx
        if tx is not None and tx.stop_deadline is not None and now >= tx.stop_deadline:
            tx.forced_open = True
        return effects + self._settle(now)

    # --- the rules that follow from any change -----------------------------------

    def _settle(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        tx = self.tx
        if tx is not None and not tx.stopping:
            blocked = self.blocking_fault()
            if blocked is not None:
                tx.stop_reason = self._blocking_stop_reason()
                tx.forced_open = True
            elif self.pilot is PilotState.A and self.settings.stop_on_ev_disconnect:
                tx.stop_reason = StopReason.EV_DISCONNECTED
        if tx is not None and tx.stopping and not self._energy_may_flow():
            assert tx.stop_reason is not None
            effects.append(StopTransaction(self.number, tx.stop_reason, tx.stop_id_tag))
            self.tx = None
            self.finishing = self.plugged
        free_vend = self.settings.free_vend_id_tag
        # After a stop, only a new plug-in starts again (not while still Finishing).
        if (
            free_vend
            and self.tx is None
            and self.auth is None
            and self.plugged
            and not self.finishing
        ):
            # A reserved connector starts only for an idTag its reservation admits.
            kept_for = [r for r in self.reservations if r.admits(free_vend, None)]
            if kept_for or not self.reservations:
                reservation = kept_for[0].id if kept_for else None
                self.auth = Authorization(free_vend, None, now, reservation)
        if self.tx is None and self.auth is not None and self.plugged:
            if self.effective_operative and self.blocking_fault() is None:
                auth, self.auth = self.auth, None
                self.tx = Transaction(auth.id_tag, auth.parent_id_tag)
                self.finishing = False
                self.rcm_tested = False
                effects.append(
                    StartTransaction(
                        self.number, auth.id_tag, auth.parent_id_tag, auth.reservation_id
                    )
                )
                if self.settings.has_rcm:
                    effects.append(RunRcmSelfTest(self.number))
            else:
                self.auth = None
        return effects
