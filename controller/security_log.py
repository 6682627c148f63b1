"""Security events: the security log the CSMS can ask for, and the notifications owed.

A security event (a start-up, a refused certificate, a failed login at the CSMS) is
written to the store before anything else happens with it: into the security log,
which GetLog uploads, and into the queue of notifications still to deliver, which
survives a power cut and empties only as the CSMS takes each one. Protocol-neutral:
the event type is the protocol's word for it, kept as given.

Stamps come from the station clock (controller.clock) and may be provisional; they
are resolved to wall time when sent or listed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from controller.clock import StationClock
from controller.store import Store

log = logging.getLogger("evsed.security")

LOG_KIND: Final = "security_log"  # store record kinds
QUEUE_KIND: Final = "security_events"
LOG_MAX: Final = 1000  # lines kept; the oldest go first
QUEUE_MAX: Final = 200  # notifications kept while the CSMS is away; non-critical go first


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    key: str  # the record key, which orders events
    kind: str  # e.g. "StartupOfTheDevice"
    stamp: str  # station clock stamp
    tech_info: str | None
    critical: bool

    def as_record(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "stamp": self.stamp,
            "techInfo": self.tech_info,
            "critical": self.critical,
        }

    @staticmethod
    def from_record(key: str, record: dict[str, Any]) -> SecurityEvent:
        tech_info = record.get("techInfo")
        return SecurityEvent(
            key,
            str(record["type"]),
            str(record["stamp"]),
            None if tech_info is None else str(tech_info),
            bool(record.get("critical")),
        )


def _key(number: int) -> str:
    return f"{number:012d}"


class SecurityLog:
    """The security log and notification queue of one station, in its store."""

    def __init__(self, store: Store, clock: StationClock) -> None:
        self._store = store
        self._clock = clock
        keys = [*store.records(LOG_KIND), *store.records(QUEUE_KIND)]
        self._next = max((int(k) for k in keys if k.isdigit()), default=0) + 1

    def record(
        self, kind: str, tech_info: str | None = None, critical: bool = False, notify: bool = True
    ) -> SecurityEvent:
        """Log an event and, with `notify`, queue its notification: one atomic write."""
        event = SecurityEvent(_key(self._next), kind, self._clock.stamp(), tech_info, critical)
        self._next += 1
        with self._store.atomic():
            self._store.put_record(LOG_KIND, event.key, event.as_record())
            if notify:
                self._store.put_record(QUEUE_KIND, event.key, event.as_record())
        self._trim()
        log.info("security event %s%s", kind, f": {tech_info}" if tech_info else "")
        return event

    def _trim(self) -> None:
        logged = sorted(self._store.records(LOG_KIND))
        for key in logged[: max(0, len(logged) - LOG_MAX)]:
            self._store.delete_record(LOG_KIND, key)
        queued = self.pending()
        excess = len(queued) - QUEUE_MAX
        if excess > 0:
            victims = [e for e in queued if not e.critical] + [e for e in queued if e.critical]
            for event in victims[:excess]:
                log.warning("security event %s dropped from the full queue", event.kind)
                self._store.delete_record(QUEUE_KIND, event.key)

    def pending(self) -> list[SecurityEvent]:
        """The notifications not yet taken by the CSMS, oldest first."""
        records = self._store.records(QUEUE_KIND)
        return [SecurityEvent.from_record(k, records[k]) for k in sorted(records)]

    def delivered(self, event: SecurityEvent) -> None:
        self._store.delete_record(QUEUE_KIND, event.key)

    def time_of(self, event: SecurityEvent) -> str:
        """The event's wall time (ISO 8601, UTC), as exactly as is known now."""
        return self._clock.resolve(event.stamp)

    def lines(self, since: datetime | None = None, until: datetime | None = None) -> list[str]:
        """The security log as text lines, oldest first, of the events from `since` to
        `until` (inclusive; None: unbounded): "<time> <type>[ <techInfo>]"."""
        records = self._store.records(LOG_KIND)
        found = []
        for key in sorted(records):
            event = SecurityEvent.from_record(key, records[key])
            when = self.time_of(event)
            try:
                moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
            except ValueError:
                continue
            if (since is not None and moment < since) or (until is not None and moment > until):
                continue
            text = f"{when} {event.kind}"
            if event.critical:
                text += " (critical)"
            if event.tech_info:
                text += f" {event.tech_info}"
            found.append(text)
        return found
