"""CPU share of the daemon, idle and while charging, at the default poll rates.

A wallbox idles almost all of its life on a small board, so idle CPU is what
costs power and heat; it is read from /proc/<pid>/stat (utime + stime, all
threads) over a quiet window in which nothing talks to the daemon.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import CARD, Daemon, Row, Target
from hwsim.csms import CsmsThread

FULL = {"window_s": 30.0}
QUICK = {"window_s": 3.0}
IDLE_TARGET_PCT = 0.5


def _share(daemon: Daemon, window_s: float) -> dict[str, float]:
    """Percent of one core used over `window_s`, with the clock-tick resolution."""
    cpu0, t0 = daemon.cpu_seconds(), time.monotonic()
    time.sleep(window_s)
    cpu1, t1 = daemon.cpu_seconds(), time.monotonic()
    wall = t1 - t0
    return {
        "pct": round(100.0 * (cpu1 - cpu0) / wall, 3),
        "cpu_s": round(cpu1 - cpu0, 3),
        "wall_s": round(wall, 3),
        "resolution_pct": round(100.0 / os.sysconf("SC_CLK_TCK") / wall, 3),
    }


def measure(window_s: float = 30.0, settle_s: float = 1.0) -> dict[str, Any]:
    """Idle, then charging, each over `window_s` after `settle_s` of quiet."""
    with CsmsThread(id_tags={CARD: "Accepted"}) as csms, Daemon(csms.url) as daemon:
        daemon.start()
        daemon.wait_ready()
        daemon.wait_registered()
        time.sleep(settle_s)
        idle = _share(daemon, window_s)
        daemon.request("plug", connector=1)
        daemon.request("ev_charge", connector=1, on=True)
        daemon.request("card", uid=CARD)
        daemon.wait(lambda s: s["connectors"][0]["status"] == "Charging", 15.0, "Charging")
        time.sleep(settle_s)
        meter_values_before = len(csms.calls("MeterValues"))
        charging = _share(daemon, window_s)
        still = daemon.state()["connectors"][0]["status"]
        meter_values = len(csms.calls("MeterValues")) - meter_values_before
    return {
        "window_s": window_s,
        "poll_rates": {"meter_poll_interval_s": 1.0, "MeterValueSampleInterval_s": 60},
        "idle": idle,
        "charging": charging,
        "charging_status_after": still,
        "meter_values_in_window": meter_values,
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    return [
        Row("idle", figures["idle"]["pct"], "% core", Target("<=", IDLE_TARGET_PCT)),
        Row("charging", figures["charging"]["pct"], "% core"),
    ]
