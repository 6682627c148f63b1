"""Reservations: which connector is kept for whom, until when.

Pure like the rest of the core: the station core describes each connector as a
`ConnectorView`, the book decides, and the shell persists what changed. The
rules are those of OCPP 1.6 §5.13 (and 2.0.1's H block, which says the same in
other words), written without any message format:

- A reservation names one connector, or connector 0 for "any connector of the
  station": then the station keeps enough free connectors for every connector-0
  reservation, so when only that many are left, they are kept (held) and other
  idTags may not take them.
- A new reservation is accepted only for an idle connector (Available, nothing
  plugged in, not reserved or held for anyone else); otherwise the answer says
  why: Faulted, Unavailable or Occupied. A reservation with an id the book
  already holds replaces it (or, when refused, leaves it as it was).
- On a reserved or held connector only a matching idTag may start: the same
  idTag (case-insensitive), or one of the reservation's parentIdTag group. A
  start that matches uses the reservation up.
- A reservation ends when it is used, cancelled, past its expiry date, or when
  its connector (connector 0: the station) is Faulted or Unavailable.

Times here are aware wall-clock datetimes: an expiry date is a moment the CSMS
named, not a span of this process's monotonic clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from controller.core.authorization import format_datetime, parse_datetime

ANY_CONNECTOR = 0


def _same(a: str | None, b: str | None) -> bool:
    """idTags are case-insensitive (as core.station.same_id compares them)."""
    return a is not None and b is not None and a.casefold() == b.casefold()


@dataclass(frozen=True, slots=True)
class Reservation:
    id: int
    connector: int  # ANY_CONNECTOR (0): any connector of the station
    expiry: datetime  # aware; the reservation ends when this moment is reached
    id_tag: str
    parent_id_tag: str | None = None
    # The protocol layer that made it and reports its ending (e.g. "2.0.1"), whichever
    # serves the link when it ends; None: the layer serving the link then, if any.
    reported_by: str | None = None

    def __post_init__(self) -> None:
        if self.expiry.utcoffset() is None:
            raise ValueError(f"expiry must be timezone-aware, got {self.expiry!r}")

    def admits(self, id_tag: str, parent_id_tag: str | None, parent_known: bool = True) -> bool:
        """Whether `id_tag` (of group `parent_id_tag`) may use this reservation. With
        `parent_known` False (its group is not looked up yet) a reservation of a group
        admits it provisionally: the final word comes once the group is known."""
        if _same(id_tag, self.id_tag):
            return True
        if self.parent_id_tag is None:
            return False
        if not parent_known:
            return True
        return _same(parent_id_tag, self.parent_id_tag)

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connector": self.connector,
            "expiry": format_datetime(self.expiry),
            "id_tag": self.id_tag,
            "parent_id_tag": self.parent_id_tag,
            "reported_by": self.reported_by,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Reservation:
        """Raises ValueError, KeyError or TypeError for a record that is not one."""
        parent, reported_by = data.get("parent_id_tag"), data.get("reported_by")
        if not isinstance(data["id"], int) or not isinstance(data["connector"], int):
            raise TypeError("reservation id and connector must be integers")
        if not isinstance(data["id_tag"], str) or not isinstance(parent, str | None):
            raise TypeError("idTags must be strings")
        if not isinstance(reported_by, str | None):
            raise TypeError("reported_by must be a string")
        return cls(
            id=data["id"],
            connector=data["connector"],
            expiry=parse_datetime(str(data["expiry"])),
            id_tag=data["id_tag"],
            parent_id_tag=parent,
            reported_by=reported_by,
        )


class ReserveAnswer(StrEnum):
    ACCEPTED = "Accepted"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"


class Ending(StrEnum):
    USED = "used"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAULTED = "faulted"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class ReservationEnded:
    reservation: Reservation
    why: Ending


class Condition(StrEnum):
    """What a connector (or the station, for connector 0) is doing, as far as
    reservations care. In order of precedence, like the connector status."""

    FAULTED = "faulted"
    UNAVAILABLE = "unavailable"
    BUSY = "busy"  # a transaction, or an idTag authorized and waiting for the cable
    PLUGGED = "plugged"  # free for a session, but a cable is in (Preparing, Finishing)
    IDLE = "idle"  # Available: nothing at all going on


FREE = (Condition.PLUGGED, Condition.IDLE)  # a new session may start there


@dataclass(frozen=True, slots=True)
class ConnectorView:
    number: int
    condition: Condition
    pending: int | None = None  # the reservation an authorization waiting there will use


@dataclass(frozen=True, slots=True)
class Admission:
    """May an idTag start on a free connector, and which reservation does it use?"""

    allowed: bool
    reservation: Reservation | None = None
    why: str = ""  # when refused, for the log


class ReservationBook:
    def __init__(self, reservations: Iterable[Reservation] = ()) -> None:
        self._by_id = {r.id: r for r in reservations}

    def __iter__(self) -> Iterator[Reservation]:
        return iter(sorted(self._by_id.values(), key=lambda r: r.id))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, reservation_id: int) -> Reservation | None:
        return self._by_id.get(reservation_id)

    def add(self, reservation: Reservation) -> None:
        """Keep an accepted reservation (replacing one with the same id)."""
        self._by_id[reservation.id] = reservation

    def remove(self, reservation_id: int, why: Ending) -> ReservationEnded | None:
        gone = self._by_id.pop(reservation_id, None)
        return None if gone is None else ReservationEnded(gone, why)

    def next_expiry(self) -> datetime | None:
        return min((r.expiry for r in self._by_id.values()), default=None)

    # --- the decisions -----------------------------------------------------------------

    def decide(
        self,
        reservation: Reservation,
        views: list[ConnectorView],
        station: Condition,
        now: datetime,
        zero_supported: bool,
    ) -> ReserveAnswer:
        """The answer to a new reservation; the book is not changed (see `add`)."""
        by_number = {v.number: v for v in views}
        target = reservation.connector
        if reservation.expiry <= now:
            return ReserveAnswer.REJECTED
        if target == ANY_CONNECTOR and not zero_supported:
            return ReserveAnswer.REJECTED
        if target != ANY_CONNECTOR and target not in by_number:
            return ReserveAnswer.REJECTED
        if station is Condition.FAULTED:
            return ReserveAnswer.FAULTED
        if station is Condition.UNAVAILABLE:
            return ReserveAnswer.UNAVAILABLE
        others = ReservationBook(r for r in self if r.id != reservation.id)
        if target == ANY_CONNECTOR:
            return others._decide_any(views)
        condition = by_number[target].condition
        if condition is Condition.FAULTED:
            return ReserveAnswer.FAULTED
        if condition is Condition.UNAVAILABLE:
            return ReserveAnswer.UNAVAILABLE
        if condition is not Condition.IDLE or others.holds(views).get(target):
            return ReserveAnswer.OCCUPIED
        return ReserveAnswer.ACCEPTED

    def _decide_any(self, views: list[ConnectorView]) -> ReserveAnswer:
        """Connector 0: accepted while more idle connectors are left than the other
        connector-0 reservations need; otherwise what stands in the way."""
        specific, zero = self._active(views)
        idle = [v for v in views if v.condition is Condition.IDLE and v.number not in specific]
        if len(idle) > len(zero):
            return ReserveAnswer.ACCEPTED
        conditions = {v.condition for v in views}
        if idle or specific or zero or conditions & {Condition.BUSY, Condition.PLUGGED}:
            return ReserveAnswer.OCCUPIED
        if Condition.FAULTED in conditions:
            return ReserveAnswer.FAULTED
        return ReserveAnswer.UNAVAILABLE

    def _active(
        self, views: list[ConnectorView]
    ) -> tuple[dict[int, Reservation], list[Reservation]]:
        """The reservations still waiting for their driver (not about to be used by an
        authorization): the specific ones by connector, and the connector-0 ones."""
        pending = {v.pending for v in views if v.pending is not None}
        waiting = [r for r in self if r.id not in pending]
        specific = {r.connector: r for r in waiting if r.connector != ANY_CONNECTOR}
        return specific, [r for r in waiting if r.connector == ANY_CONNECTOR]

    def holds(self, views: list[ConnectorView]) -> dict[int, tuple[Reservation, ...]]:
        """For each connector kept for someone, the reservations it is kept for: its own,
        or, when no more free connectors are left than connector-0 reservations wait,
        every connector-0 reservation (each free connector is then one they need)."""
        specific, zero = self._active(views)
        kept: dict[int, tuple[Reservation, ...]] = {n: (r,) for n, r in specific.items()}
        free = [v.number for v in views if v.condition in FREE and v.number not in specific]
        if zero and len(free) <= len(zero):
            kept |= {n: tuple(zero) for n in free}
        return kept

    def admission(
        self,
        number: int,
        views: list[ConnectorView],
        id_tag: str,
        parent_id_tag: str | None,
        parent_known: bool = True,
    ) -> Admission:
        """Whether `id_tag` may start on free connector `number`. Its own reservation on
        this connector is used first, then one of its connector-0 reservations (a start
        on any connector uses that); otherwise the connector must not be kept."""
        specific, zero = self._active(views)
        own = specific.get(number)
        if own is not None:
            if own.admits(id_tag, parent_id_tag, parent_known):
                return Admission(True, own)
            why = f"connector {number} is reserved for another idTag (reservation {own.id})"
            return Admission(False, why=why)
        for r in zero:
            if r.admits(id_tag, parent_id_tag, parent_known):
                return Admission(True, r)
        kept = self.holds(views).get(number)
        if kept:
            ids = ", ".join(str(r.id) for r in kept)
            return Admission(
                False,
                why=f"connector {number} is kept for reservation(s) {ids} on connector 0",
            )
        return Admission(True)

    def settle(
        self, views: list[ConnectorView], station: Condition, now: datetime
    ) -> list[ReservationEnded]:
        """End the reservations that are over: past their expiry date, or whose
        connector (the station, for connector 0) is Faulted or Unavailable."""
        by_number = {v.number: v for v in views}
        ended = []
        for r in self:
            if r.expiry <= now:
                why: Ending | None = Ending.EXPIRED
            elif r.connector == ANY_CONNECTOR:
                why = _ending(station)
            elif r.connector not in by_number:  # a connector the station no longer has
                why = Ending.UNAVAILABLE
            else:
                why = _ending(by_number[r.connector].condition)
            if why is not None:
                del self._by_id[r.id]
                ended.append(ReservationEnded(r, why))
        return ended


def _ending(condition: Condition) -> Ending | None:
    if condition is Condition.FAULTED:
        return Ending.FAULTED
    if condition is Condition.UNAVAILABLE:
        return Ending.UNAVAILABLE
    return None
