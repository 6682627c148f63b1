"""Integration harness: the real daemon as a subprocess, simulated hardware
inside it, the test CSMS on a loopback websocket, driven through the control
socket. Nothing of ours is mocked."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.control import ControlClient
from hwsim.csms import CsmsThread, Record

REPO = Path(__file__).resolve().parents[2]
CARD = "04A1B2C3"  # accepted by the test CSMS unless a test says otherwise


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


class Daemon:
    """One evsed process and its state directory; restartable."""

    def __init__(
        self,
        csms: CsmsThread,
        keys: dict[str, Any],
        connectors: list[dict[str, Any]],
        extra: str = "",
        /,
        **tables: dict[str, Any],
    ) -> None:
        """`tables` override keys of the base tables by name, e.g. station={...} or
        csms={...} (the parameters are positional-only so any table name is free)."""
        self.dir = Path(tempfile.mkdtemp(prefix="evsed-"))
        self.config = self.dir / "evsed.toml"
        self.socket = self.dir / "state" / "control.sock"
        self.log_path = self.dir / "daemon.log"
        base: dict[str, dict[str, Any]] = {
            "station": {"id": "CP-TEST"},
            "csms": {
                "url": csms.url,
                "reconnect_min": 0.2,
                "reconnect_max": 1.0,
                "response_timeout": 5,
                "boot_retry": 1,
            },
            "state": {"dir": "state"},
            "hardware": {"meter_poll_interval": 0.2, "meter_offline_after": 1.0},
            "logging": {"level": "debug"},
        }
        for name, values in tables.items():
            base.setdefault(name, {}).update(values)
        lines = []
        for name, values in base.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
        for connector in connectors:
            lines.append("[[connectors]]")
            lines += [f"{k} = {_toml(v)}" for k, v in connector.items()]
        lines.append("[ocpp.keys]")
        lines += [f"{k} = {_toml(v)}" for k, v in keys.items()]
        self.config.write_text("\n".join(lines) + "\n" + extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}  # extra environment of the daemon process

    def start(self, wait: bool = True) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        env = {
            **os.environ,
            "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'hw-sim'}",
            **self.env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            env=env,
        )
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.request("hello")
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"daemon did not open its control socket:\n{self.log()}")

    def request(self, cmd: str, **args: Any) -> Any:
        with ControlClient(self.socket) as client:
            return client.request(cmd, **args)

    def state(self) -> dict[str, Any]:
        return self.request("state")  # type: ignore[no-any-return]

    def connector(self, n: int = 1) -> dict[str, Any]:
        return self.state()["connectors"][n - 1]  # type: ignore[no-any-return]

    def wait(
        self,
        check: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,
        what: str = "condition",
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.state()
            if check(state):
                return state
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last state: {state}")

    def wait_status(self, status: str, connector: int = 1, timeout: float = 10.0) -> None:
        self.wait(
            lambda s: s["connectors"][connector - 1]["status"] == status,
            timeout,
            f"connector {connector} {status}",
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        return self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_session(daemon: Daemon, csms: CsmsThread, card: str = CARD) -> dict[str, Any]:
    """Plug in, present a card, let the EV charge; return the StartTransaction payload."""
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=card)
    start = csms.wait_for("StartTransaction", after=mark)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    return start


# --- what the CSMS saw ------------------------------------------------------------


def cp_calls(csms: CsmsThread, after: int = 0, action: str | None = None) -> list[Record]:
    """The calls the charge point sent since `after`, in order."""
    return [
        r
        for r in csms.records
        if r.seq >= after
        and r.direction == "in"
        and r.message_type == "CALL"
        and (action is None or r.action == action)
    ]


def csms_answer(csms: CsmsThread, call: Record) -> Record:
    """The CSMS's CALLRESULT to a call of the charge point (unique ids are only unique
    per connection, so it is the first one after the call)."""
    for r in csms.records:
        if (
            r.seq > call.seq
            and r.direction == "out"
            and r.message_type == "CALLRESULT"
            and r.unique_id == call.unique_id
        ):
            return r
    raise AssertionError(f"the CSMS never answered {call.action} {call.unique_id}")


def status_record(
    csms: CsmsThread,
    status: str,
    connector: int = 1,
    after: int = 0,
    error: str | None = None,
    timeout: float = 10.0,
) -> Record:
    return csms.wait_for_record(
        "StatusNotification",
        lambda p: (
            p["connectorId"] == connector
            and p["status"] == status
            and (error is None or p["errorCode"] == error)
        ),
        timeout=timeout,
        after=after,
    )
