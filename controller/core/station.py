"""Station-wide decisions above the connectors: which connector a card or a
remote start belongs to, station availability and station-wide faults.

Pure like the connector logic: events in, effects out.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.connector import ConnectorSession, ConnectorSettings, Effect
from controller.core.faults import FaultSet
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
        target = self.pick_connector(None)
        if target is None:
            return [CardRefused(id_tag, "no connector free")]
        return list(target.authorize(id_tag, parent_id_tag, now))

    def pick_connector(self, number: int | None) -> ConnectorSession | None:
        """The connector a new session should use: the given one if free, else a
        free one with a cable already plugged in, else the first free one."""
        if number is not None:
            if not 1 <= number <= len(self.connectors):
                return None
            c = self.connectors[number - 1]
            return c if c.can_accept_new_session() else None
        free = [c for c in self.connectors if c.can_accept_new_session()]
        plugged = [c for c in free if c.plugged]
        candidates = plugged or free
        return candidates[0] if candidates else None

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
