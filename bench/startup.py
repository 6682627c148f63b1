"""Start-up: from spawning the daemon process to its BootNotification reaching the CSMS.

This is how long a station is dark after a power cut or a commanded reset
before the operator sees it again, so it is measured on the real process
(interpreter start, imports, databases, the websocket handshake), each run in
a fresh state directory.

Each run is ended with SIGTERM as soon as the BootNotification arrives, i.e.
while its answer is on the way. A daemon that does not exit within
`stop_timeout_s` is killed and counted: the shutdown must work at any instant.
"""

from __future__ import annotations

import queue
import time
from typing import Any

from bench.common import CARD, Daemon, Row, Target, summarize
from hwsim.csms import CsmsThread, Record

FULL = {"runs": 10}
QUICK = {"runs": 2}
TARGET_S = 1.0


def measure(runs: int = 10, stop_timeout_s: float = 3.0) -> dict[str, Any]:
    """Median (and spread) of `runs` cold starts, spawn → BootNotification at the CSMS."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    boots: queue.Queue[float] = queue.Queue()

    def seen(record: Record) -> None:  # runs on the CSMS thread
        stamp = time.perf_counter()
        if (record.direction, record.message_type, record.action) == (
            "in",
            "CALL",
            "BootNotification",
        ):
            boots.put(stamp)

    times: list[float] = []
    killed = 0
    with CsmsThread(id_tags={CARD: "Accepted"}) as csms:
        csms.on_message(seen)
        for _ in range(runs):
            with Daemon(csms.url) as daemon:
                spawned = daemon.start()
                try:
                    booted = boots.get(timeout=30.0)
                except queue.Empty:
                    raise TimeoutError(f"no BootNotification:\n{daemon.log_tail()}") from None
                times.append(booted - spawned)
                if daemon.stop(stop_timeout_s) != 0:
                    killed += 1
    return {
        "runs": runs,
        "boot_s": summarize(times),
        "first_run_s": round(times[0], 3),
        "each_s": [round(t, 3) for t in times],
        "stop_timeout_s": stop_timeout_s,
        "sigterm_not_obeyed": killed,
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    boot = figures["boot_s"]
    return [
        Row("spawn → BootNotification, median", boot["p50"], "s", Target("<=", TARGET_S)),
        Row("spawn → BootNotification, max", boot["max"], "s"),
        Row(
            f"SIGTERM at boot: still running after {figures['stop_timeout_s']:g} s (killed)",
            figures["sigterm_not_obeyed"],
            f"of {figures['runs']}",
            Target("<=", 0),
        ),
    ]
