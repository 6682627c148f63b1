"""Resident memory of the daemon after start and across many whole sessions.

A station runs for months between restarts, so what matters besides the size
is the trend: RSS is sampled along the way and the slope over the second half
(after caches and lazily built validators have filled) tells a leak from
warm-up.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import CARD, Daemon, Row, Target, run_session, slope
from hwsim.csms import CsmsThread

FULL = {"sessions": 1000}
QUICK = {"sessions": 20}
RSS_TARGET_MB = 40.0
TREND_TARGET_KB = 1024.0  # per 1000 sessions, after warm-up: "no growth trend"


def _peak_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}


def measure(
    sessions: int = 1000, samples: int = 20, settle_s: float = 1.0, version: str = "1.6"
) -> dict[str, Any]:
    """RSS after start, every sessions/`samples` sessions, and at the end, with the
    station speaking OCPP `version`."""
    if sessions < 1:
        raise ValueError("sessions must be at least 1")
    every = max(1, sessions // samples)
    with (
        CsmsThread(id_tags={CARD: "Accepted"}, subprotocols=(SUBPROTOCOLS[version],)) as csms,
        Daemon(csms.url, ocpp={"version": version}) as daemon,
    ):
        daemon.start()
        daemon.wait_ready()
        daemon.wait_registered()
        time.sleep(settle_s)
        start_kb = daemon.rss_kb()
        points: list[tuple[int, int]] = [(0, start_kb)]
        t0 = time.monotonic()
        for n in range(1, sessions + 1):
            run_session(daemon)
            if n % every == 0 or n == sessions:
                points.append((n, daemon.rss_kb()))
        elapsed = time.monotonic() - t0
        time.sleep(settle_s)
        end_kb = daemon.rss_kb()
        peak_kb = _peak_kb(daemon.pid)
        if version == "1.6":
            starts = len(csms.calls("StartTransaction"))
            stops = len(csms.calls("StopTransaction"))
        else:
            kinds = [e["eventType"] for e in csms.calls("TransactionEvent")]
            starts, stops = kinds.count("Started"), kinds.count("Ended")
    second_half = [(n, kb) for n, kb in points if n >= sessions / 2]
    trend = slope(second_half) * 1000.0  # KiB per 1000 sessions
    return {
        "version": version,
        "sessions": sessions,
        "transactions_at_csms": {"starts": starts, "stops": stops},
        "seconds_per_session": round(elapsed / sessions, 3),
        "rss_start_mb": round(start_kb / 1024, 2),
        "rss_end_mb": round(end_kb / 1024, 2),
        "rss_peak_mb": round(peak_kb / 1024, 2),
        "growth_mb": round((end_kb - start_kb) / 1024, 2),
        "trend_kb_per_1000_sessions": round(trend, 1),
        "samples_kb": points,
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    return [
        Row("RSS after start", figures["rss_start_mb"], "MB", Target("<=", RSS_TARGET_MB)),
        Row(
            f"RSS after {figures['sessions']} sessions",
            figures["rss_end_mb"],
            "MB",
            Target("<=", RSS_TARGET_MB),
        ),
        Row("growth over the run", figures["growth_mb"], "MB"),
        Row(
            "trend, 2nd half",
            figures["trend_kb_per_1000_sessions"],
            "KB/1000 sessions",
            Target("<=", TREND_TARGET_KB),
        ),
    ]
