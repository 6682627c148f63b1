"""Station-wide decisions above the connectors: which connector a card or a
remote start belongs to, station availability and station-wide faults.

Pure like the connector logic: events in, effects out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controller.core.connector import ConnectorSession, ConnectorSettings, Effect
from controller.core.faults import FaultSet
from controller.core.reservation import (
    Admission,
    Condition,
    ConnectorView,
    Ending,
    Reservation,
    ReservationBook,
    ReservationEnded,
    ReserveAnswer,
)
from controller.core.status import NO_ERROR, ConnectorStatus, Status, StopReason
from drivers.interfaces import FaultKind


@dataclass(frozen=True, slots=True)
class RequestAuthorization:
    """Ask whoever authorizes (CSMS, later the local list) about this idTag."""

    id_tag: str


@dataclass(frozen=True, slots=True)
class CardRefused:
    id_tag: str
    why: str


StationEffect = Effect | RequestAuthorization | CardRefused


def same_id(a: str | None, b: str | None) -> bool:
    """idTags are case-insensitive strings (OCPP CiString)."""
    return a is not None and b is not None and a.casefold() == b.casefold()


class StationCore:
    def __init__(self, settings: list[ConnectorSettings]) -> None:
        self.connectors = [ConnectorSession(n + 1, s) for n, s in enumerate(settings)]
        self.operative = True
        self.faults = FaultSet()
        self.reservations = ReservationBook()

    def connector(self, number: int) -> ConnectorSession:
        if not 1 <= number <= len(self.connectors):
            raise ValueError(f"no connector {number}")
        return self.connectors[number - 1]

    # --- connector 0 -----------------------------------------------------------

    def status(self) -> Status:
        """Connector 0: only Available, Unavailable or Faulted."""
        fault = self.faults.blocking
        if fault is not None:
            return Status(ConnectorStatus.FAULTED, fault.rule.error_code, fault.kind.value)
        notice = self.faults.non_blocking
        error = notice.rule.error_code if notice else NO_ERROR
        info = notice.kind.value if notice else None
        state = ConnectorStatus.AVAILABLE if self.operative else ConnectorStatus.UNAVAILABLE
        return Status(state, error, info)

    def station_fault(self, kind: FaultKind, active: bool, now: float) -> list[StationEffect]:
        self.faults.update(kind, active, unplugged=True)
        fault = self.faults.blocking
        blocked = (self.status(), fault.rule.stop_reason) if fault is not None else None
        effects: list[StationEffect] = []
        for c in self.connectors:
            c.station_blocked = blocked
            effects += c.tick(now)
        return effects

    def set_operative(self, operative: bool, now: float) -> list[StationEffect]:
        self.operative = operative
        effects: list[StationEffect] = []
        for c in self.connectors:
            c.station_operative = operative
            effects += c.set_operative(c.operative, now)
        return effects

    # --- cards ---------------------------------------------------------------------

    def card_presented(self, id_tag: str, now: float) -> list[StationEffect]:
        for c in self.connectors:
            if c.tx is not None and not c.tx.stopping and same_id(c.tx.id_tag, id_tag):
                return list(c.stop(StopReason.LOCAL, now, id_tag=id_tag))
        for c in self.connectors:
            if c.auth is not None and same_id(c.auth.id_tag, id_tag):
                c.cancel_authorization()  # the same card again withdraws a pending start
                return []
        if self._only_reserved_for_others(id_tag):
            return [CardRefused(id_tag, self.refusal(id_tag, None, parent_known=False))]
        return [RequestAuthorization(id_tag)]

    def card_authorized(
        self, id_tag: str, accepted: bool, parent_id_tag: str | None, now: float
    ) -> list[StationEffect]:
        """The answer for a card: stop a transaction of the same group, or start one."""
        if not accepted:
            return [CardRefused(id_tag, "not authorized")]
        if parent_id_tag is not None:
            for c in self.connectors:
                tx = c.tx
                if tx is not None and not tx.stopping and same_id(tx.parent_id_tag, parent_id_tag):
                    return list(c.stop(StopReason.LOCAL, now, id_tag=id_tag))
        target = self.pick_connector(None, id_tag, parent_id_tag)
        if target is None:
            if self.pick_connector(None) is not None:
                return [CardRefused(id_tag, self.refusal(id_tag, parent_id_tag))]
            return [CardRefused(id_tag, "no connector free")]
        return self.authorize_on(target.number, id_tag, parent_id_tag, now)

    def authorize_on(
        self, number: int, id_tag: str, parent_id_tag: str | None, now: float
    ) -> list[StationEffect]:
        """Assign an accepted idTag to free connector `number`, with the reservation its
        start will use up; refused when the connector is kept for someone else."""
        admission = self.admission(number, id_tag, parent_id_tag)
        if not admission.allowed:
            return [CardRefused(id_tag, admission.why)]
        reservation = admission.reservation.id if admission.reservation else None
        return list(self.connector(number).authorize(id_tag, parent_id_tag, now, reservation))

    def pick_connector(
        self,
        number: int | None,
        id_tag: str | None = None,
        parent_id_tag: str | None = None,
        parent_known: bool = True,
    ) -> ConnectorSession | None:
        """The connector a new session should use: the given one if free, else a
        free one with a cable already plugged in, else the first free one. With an
        idTag, only connectors the reservations let it use, its reserved one first."""
        if number is not None:
            if not 1 <= number <= len(self.connectors):
                return None
            c = self.connectors[number - 1]
            free = [c] if c.can_accept_new_session() else []
        else:
            free = [c for c in self.connectors if c.can_accept_new_session()]
        if id_tag is not None:
            own: set[int] = set()  # connectors reserved for this very idTag
            admitted = []
            for c in free:
                admission = self.admission(c.number, id_tag, parent_id_tag, parent_known)
                if admission.allowed:
                    admitted.append(c)
                    if admission.reservation and admission.reservation.connector == c.number:
                        own.add(c.number)
            free = sorted(admitted, key=lambda c: c.number not in own)  # stable sort
        plugged = [c for c in free if c.plugged]
        candidates = plugged or free
        return candidates[0] if candidates else None

    # --- reservations ------------------------------------------------------------------

    def views(self) -> list[ConnectorView]:
        return [_view(c) for c in self.connectors]

    def _condition(self) -> Condition:
        """The station's (connector 0's) condition for reservations."""
        if self.faults.blocking is not None:
            return Condition.FAULTED
        return Condition.IDLE if self.operative else Condition.UNAVAILABLE

    def reservation_answer(
        self, reservation: Reservation, now: datetime, zero_supported: bool
    ) -> ReserveAnswer:
        """Would the station take this reservation? (`add_reservation` takes it.)"""
        return self.reservations.decide(
            reservation, self.views(), self._condition(), now, zero_supported
        )

    def add_reservation(self, reservation: Reservation) -> None:
        """Take a reservation; one with the same id is replaced, also for an authorization
        that was to use it up (that start goes on without it)."""
        if self.reservations.get(reservation.id) is not None:
            for c in self.connectors:
                if c.auth is not None and c.auth.reservation_id == reservation.id:
                    c.auth.reservation_id = None
        self.reservations.add(reservation)

    def end_reservation(self, reservation_id: int, why: Ending) -> ReservationEnded | None:
        """Cancelled, or used up by a start (see `StartTransaction.reservation_id`)."""
        return self.reservations.remove(reservation_id, why)

    def admission(
        self, number: int, id_tag: str, parent_id_tag: str | None, parent_known: bool = True
    ) -> Admission:
        return self.reservations.admission(
            number, self.views(), id_tag, parent_id_tag, parent_known
        )

    def settle_reservations(self, now: datetime) -> list[ReservationEnded]:
        """After any change: end the reservations that are over, forget them in waiting
        authorizations, and mark each connector with the reservations it is kept for."""
        ended = self.reservations.settle(self.views(), self._condition(), now)
        for c in self.connectors:
            auth = c.auth
            held = None if auth is None else auth.reservation_id
            if auth is not None and held is not None and self.reservations.get(held) is None:
                auth.reservation_id = None  # ended meanwhile: the start goes on without
        kept = self.reservations.holds(self.views())
        for c in self.connectors:
            c.reservations = kept.get(c.number, ())
        return ended

    def _only_reserved_for_others(self, id_tag: str) -> bool:
        """Refuse a card without asking anyone: only when reservations alone stand in
        its way, none can be its own (not by idTag, nor by a parentIdTag it might
        have), and no transaction runs that a card of its group could stop."""
        if self.pick_connector(None) is None:
            return False
        if any(c.tx is not None and c.tx.parent_id_tag is not None for c in self.connectors):
            return False
        return self.pick_connector(None, id_tag, None, parent_known=False) is None

    def refusal(self, id_tag: str, parent_id_tag: str | None, parent_known: bool = True) -> str:
        """Why no free connector takes this idTag (the first free connector's reason)."""
        for c in self.connectors:
            if c.can_accept_new_session():
                admission = self.admission(c.number, id_tag, parent_id_tag, parent_known)
                if not admission.allowed:
                    return admission.why
        return "no connector free"

    # --- time ------------------------------------------------------------------------

    def tick(self, now: float) -> list[StationEffect]:
        effects: list[StationEffect] = []
        for c in self.connectors:
            effects += c.tick(now)
        return effects

    def next_deadline(self) -> float | None:
        return min(
            (d for c in self.connectors if (d := c.next_deadline()) is not None), default=None
        )


def _view(c: ConnectorSession) -> ConnectorView:
    """A connector as reservations see it, in the precedence of its status."""
    if c.blocking_fault() is not None:
        condition = Condition.FAULTED
    elif c.tx is None and not c.effective_operative:
        condition = Condition.UNAVAILABLE
    elif c.tx is not None or c.auth is not None:
        condition = Condition.BUSY
    elif c.plugged:
        condition = Condition.PLUGGED
    else:
        condition = Condition.IDLE
    pending = c.auth.reservation_id if c.auth is not None else None
    return ConnectorView(c.number, condition, pending)
