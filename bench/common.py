"""What the benchmarks share: statistics, table rows with targets, a description
of the machine, and the real daemon as a subprocess with its /proc figures.

The subprocess helper mirrors tests/integration/harness.py on purpose rather
than importing it: benchmarks must not depend on test code, and they need a
few things tests do not (a persistent control connection, RSS and CPU time).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from controller.control import ControlClient

REPO = Path(__file__).resolve().parents[1]
CARD = "04A1B2C3"  # the card the benchmarks' CSMS accepts
STATION_ID = "EVSED-BENCH"


# --- statistics ---------------------------------------------------------------------


def summarize(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """n, min, p50, p90, p99, max and mean. Percentiles interpolate inclusively
    between samples, so min ≤ p50 ≤ p90 ≤ p99 ≤ max holds for any sample size."""
    if not values:
        raise ValueError("no samples to summarize")
    data = sorted(values)
    if len(data) == 1:
        p50 = p90 = p99 = data[0]
    else:
        cuts = statistics.quantiles(data, n=100, method="inclusive")
        p50, p90, p99 = cuts[49], cuts[89], cuts[98]
    return {
        "n": len(data),
        "min": round(data[0], digits),
        "p50": round(p50, digits),
        "p90": round(p90, digits),
        "p99": round(p99, digits),
        "max": round(data[-1], digits),
        "mean": round(statistics.fmean(data), digits),
    }


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return 0.0
    return statistics.linear_regression([x for x, _ in points], [y for _, y in points]).slope


# --- table rows -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A limit a figure should meet; reported in the table, never enforced.
    "==" with limit 1 (or 0) is a yes/no check of a boolean figure."""

    op: Literal["<=", ">=", "=="]
    limit: float

    def met(self, value: float) -> bool:
        if self.op == "==":
            return value == self.limit
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def __str__(self) -> str:
        if self.op == "==":
            return "yes" if self.limit else "no"
        return f"{'≤' if self.op == '<=' else '≥'} {self.limit:g}"


YES = Target("==", 1)  # a boolean figure that must hold


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the printed table: a figure, its unit and its target, if any."""

    figure: str
    value: float | int | bool | str | None
    unit: str = ""
    target: Target | None = None

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        if not isinstance(self.value, int | float):  # bool is an int
            return False  # a figure that could not be measured misses its target
        return self.target.met(float(self.value))

    def shown(self) -> str:
        """The value as the table prints it."""
        value = self.value
        if isinstance(value, bool):
            return "yes" if value else "no"
        if value is None:
            return "n/a"
        if isinstance(value, float):
            text = f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = value
        return f"{text} {self.unit}".rstrip()

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "target": None if self.target is None else str(self.target),
            "pass": self.passed,
        }


# --- the machine ------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _meminfo_mb(key: str) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def machine() -> dict[str, Any]:
    """Enough about the host to compare runs: results only mean something per machine."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_mb": _meminfo_mb("MemTotal"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "loadavg_at_start": [round(x, 2) for x in load],
        "tempdir": tempfile.gettempdir(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# --- /proc ------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    """Resident set size of a process (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise OSError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process used so far (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def file_bytes(*paths: Path) -> int:
    """Total size of the files that exist among `paths` (a database and its WAL)."""
    return sum(p.stat().st_size for p in paths if p.exists())


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll until check() returns something truthy; TimeoutError names `what`."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory on the same disk a station would use, always removed."""
    path = Path(tempfile.mkdtemp(prefix=f"evsed-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- the daemon as a subprocess ---------------------------------------------------------------


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


class Daemon:
    """One evsed process (simulated hardware) in its own directory, driven through
    one persistent control connection. Use as a context manager: the process is
    killed and the directory removed whatever happens."""

    def __init__(
        self,
        csms_url: str,
        *,
        keys: dict[str, Any] | None = None,
        connectors: list[dict[str, Any]] | None = None,
        directory: Path | None = None,
        **tables: dict[str, Any],
    ) -> None:
        """`tables` override keys of the base tables, e.g. hardware={...}; `directory`
        reuses a prepared directory (its `state/` is the state dir) and is kept."""
        self._owns_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix="evsed-bench-daemon-"))
        self.state_dir = self.dir / "state"
        self.socket = self.state_dir / "control.sock"
        self.config = self.dir / "evsed.toml"
        self.log_path = self.dir / "daemon.log"
        base: dict[str, dict[str, Any]] = {
            "station": {"id": STATION_ID},
            "csms": {"url": csms_url, "reconnect_min": 0.2, "reconnect_max": 1.0},
            "state": {"dir": "state"},
            "logging": {"level": "info"},
        }
        for name, values in tables.items():
            base.setdefault(name, {}).update(values)
        lines: list[str] = []
        for name, values in base.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
        for connector in connectors or [{"max_current": 32}]:
            lines.append("[[connectors]]")
            lines += [f"{k} = {_toml(v)}" for k, v in connector.items()]
        lines.append("[ocpp.keys]")
        lines += [f"{k} = {_toml(v)}" for k, v in (keys or {}).items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: ControlClient | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "daemon not started"
        return self.proc.pid

    def start(self) -> float:
        """Spawn the process; returns the perf_counter() instant just before the spawn."""
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'hw-sim'}"}
        with open(self.log_path, "ab") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controller", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=env,
            )
        return started

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Until the control socket answers (and keep that connection)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self._client = ControlClient(self.socket, timeout=30.0)
                self._client.request("hello")
                return
            except OSError:
                if self._client is not None:
                    self._client.close()
                    self._client = None
                time.sleep(0.02)
        raise TimeoutError(f"daemon did not open its control socket:\n{self.log_tail()}")

    def request(self, cmd: str, **args: Any) -> Any:
        if self._client is None:
            self.wait_ready()
        assert self._client is not None
        return self._client.request(cmd, **args)

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("state")
        return result

    def wait(
        self,
        check: Callable[[dict[str, Any]], bool],
        timeout: float = 15.0,
        what: str = "a condition",
        interval: float = 0.02,
    ) -> dict[str, Any]:
        """Poll the control state until check(state) holds; returns that state."""
        last: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            nonlocal last
            last = self.state()
            return last if check(last) else None

        try:
            result: dict[str, Any] = wait_until(probe, timeout, what, interval)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; last state: {last}\n{self.log_tail()}") from None
        return result

    def wait_registered(self, timeout: float = 15.0) -> None:
        self.wait(lambda s: s["ocpp"]["registration"] == "Accepted", timeout, "registration")

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: the daemon's orderly shutdown (outputs off, databases closed).
        After `timeout` the process is killed; the exit status then says -9."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode

    def log_tail(self, chars: int = 4000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_session(daemon: Daemon, card: str = CARD, charge_s: float = 0.05) -> None:
    """One whole session through the control socket: plug, card, charge briefly,
    card, unplug; returns once the connector is Available and the queue is empty."""
    daemon.request("plug", connector=1)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.request("card", uid=card)
    daemon.wait(lambda s: s["connectors"][0]["contactor_closed"], 15.0, "charging", 0.01)
    time.sleep(charge_s)
    daemon.request("ev_charge", connector=1, on=False)  # the car is full: C -> B at once
    daemon.request("card", uid=card)
    daemon.wait(lambda s: s["connectors"][0]["transaction"] is None, 15.0, "the stop", 0.01)
    daemon.request("unplug", connector=1)
    daemon.wait(
        lambda s: s["connectors"][0]["status"] == "Available" and s["queued_messages"] == 0,
        15.0,
        "Available with an empty queue",
        0.01,
    )
