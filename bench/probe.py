"""Control-socket clients that run in their own process.

A client thread inside the benchmark process would compete with the daemon
under test (or with the benchmark's own CSMS) for the GIL, and a stall it
measured might be its own. In a separate process, like a real integrator's
tool, it loads or observes the daemon's event loop and nothing else.

    python -m bench.probe hammer SOCKET INTERVAL_S        # `state` as fast as asked
    python -m bench.probe time SOCKET INTERVAL_S OUTFILE  # one "t0 ms" line per request

Times are CLOCK_MONOTONIC (time.monotonic), which is the same in every process.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO
from controller.control import ControlClient


def hammer(socket: str, interval_s: float) -> None:
    """Ask for the state snapshot over and over: load on the daemon's loop."""
    with ControlClient(socket, timeout=60.0) as client:
        while True:
            client.request("state")
            if interval_s > 0:
                time.sleep(interval_s)


def time_requests(socket: str, interval_s: float, out: str) -> None:
    """Time each `state` request: how long the loop took to get to it."""
    with ControlClient(socket, timeout=600.0) as client, open(out, "w", buffering=1) as f:
        while True:
            t0 = time.monotonic()
            client.request("state")
            f.write(f"{t0:.6f} {(time.monotonic() - t0) * 1000.0:.3f}\n")
            time.sleep(interval_s)


def spawn(*args: str) -> subprocess.Popen[bytes]:
    """Start `python -m bench.probe ARGS` with the repository on the path."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'hw-sim'}"}
    return subprocess.Popen(
        [sys.executable, "-m", "bench.probe", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def end(process: subprocess.Popen[bytes]) -> None:
    """Stop a probe process (it has nothing to clean up)."""
    process.terminate()
    try:
        process.wait(10.0)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10.0)


def read_times(path: Path) -> list[tuple[float, float]]:
    """(start, duration ms) of every request a `time` probe completed."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out.append((float(parts[0]), float(parts[1])))
    return out


def main(argv: list[str]) -> None:
    with contextlib.suppress(KeyboardInterrupt, ConnectionError, OSError):
        if argv[0] == "hammer":
            hammer(argv[1], float(argv[2]))
        elif argv[0] == "time":
            time_requests(argv[1], float(argv[2]), argv[3])
        else:
            raise SystemExit(f"unknown probe {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
