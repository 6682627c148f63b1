"""The current arbiter: the one place that sets how much current a connector offers.

A connector's offer is the least of its installation limit, its cable's rating
and the external limit (`ConnectorSession.offered_current`); faults and stops
switch the offer off in the connector's own rules. The arbiter owns the external
limit: it moves it to what the composite schedule asks, but changes a running
session's PWM duty no more often than every `MIN_CHANGE_INTERVAL_S` (an EV
needs time to follow, and a duty that jumps at each small change confuses some),
except that pausing (a limit below the 6 A an EV can be offered) is immediate.

Pure: every call takes `now` (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.connector import ConnectorSession
from controller.core.iec61851 import MIN_CURRENT_A, PilotMode

MIN_CHANGE_INTERVAL_S = 5.0


@dataclass
class CurrentArbiter:
    interval_s: float = MIN_CHANGE_INTERVAL_S
    _changed_at: dict[int, float] = field(default_factory=dict)  # connector -> last duty change
    _held: dict[int, float] = field(default_factory=dict)  # connector -> when a change is due
    _offering: dict[int, bool] = field(default_factory=dict)  # connector -> PWM on, last seen

    def due(self, connector: int) -> float | None:
        """When a change held back on `connector` may be made, if one is."""
        return self._held.get(connector)

    def apply(self, session: ConnectorSession, wanted: float | None, now: float) -> float | None:
        """Set the session's external limit to `wanted` (None: no limit) when the rules
        allow; return when to try again if the change has to wait, else None."""
        self.observe(session, now)
        due = self._decide(session, wanted, now)
        if due is None:
            self._held.pop(session.number, None)
        else:
            self._held[session.number] = due
        return due

    def observe(self, session: ConnectorSession, now: float) -> None:
        """Note a PWM that came on (a session starting to be offered current) as a
        duty change: the next one waits its turn too."""
        offering = session.outputs().pilot.mode is PilotMode.PWM
        if offering and not self._offering.get(session.number, False):
            self._changed_at[session.number] = now
        self._offering[session.number] = offering

    def _decide(self, session: ConnectorSession, wanted: float | None, now: float) -> float | None:
        if wanted == session.offered_limit_a:
            return None
        held = session.offered_limit_a
        before = session.offered_current()
        session.offered_limit_a = wanted
        after = session.offered_current()
        paused_before, paused_after = before < MIN_CURRENT_A, after < MIN_CURRENT_A
        if session.tx is None or after == before or (paused_before and paused_after):
            return None  # no running session's duty moves
        if paused_after:
            self._changed_at[session.number] = now  # pausing never waits
            return None
        due = self._changed_at.get(session.number, -self.interval_s) + self.interval_s
        if now >= due:
            self._changed_at[session.number] = now
            return None
        session.offered_limit_a = held
        return due
