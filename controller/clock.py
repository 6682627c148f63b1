"""The station's wall clock, as the CSMS sees it.

A Raspberry Pi has no real-time clock: until NTP or the CSMS (BootNotification,
Heartbeat) says what time it is, the system clock may be anything. Events
recorded before that get a provisional stamp — the monotonic time of this run,
with the system's wall time as a fallback — which `resolve` turns into the
right wall time once the CSMS's time is known. A stamp from an earlier run
(a restart before the clock was ever known) can only fall back to its wall time.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """OCPP timestamps: UTC, millisecond precision, with a Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StationClock:
    def __init__(self) -> None:
        self.offset = 0.0  # CSMS time minus the system's wall time
        self.known = False
        self.run = uuid.uuid4().hex[:12]  # tells this run's monotonic stamps from others'

    def epoch(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.epoch(), UTC)

    def iso(self) -> str:
        return iso(self.now())

    def set(self, csms_epoch: float) -> None:
        """The CSMS said what time it is (BootNotification / Heartbeat answer)."""
        self.offset = csms_epoch - time.time()
        self.known = True

    def stamp(self) -> str:
        """A timestamp to record now: final if the time is known, else provisional."""
        if self.known:
            return self.iso()
        return f"~{time.monotonic():.3f}@{self.run}|{self.iso()}"

    def resolve(self, stamp: str) -> str:
        """The wall time of a recorded stamp, as exactly as can be known now."""
        if not stamp.startswith("~"):
            return stamp
        mono_run, _, wall = stamp[1:].partition("|")
        mono, _, run = mono_run.partition("@")
        if run != self.run or not self.known:
            return wall
        elapsed = time.monotonic() - float(mono)
        return iso(datetime.fromtimestamp(self.epoch() - elapsed, UTC))
