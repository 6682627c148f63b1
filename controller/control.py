"""The control interface: a local Unix socket speaking JSON lines.

Tests, the demo and integrators drive a running station through it. Each
request is one line `{"v": 1, "cmd": "...", ...}`; each answer is one line
`{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`. Version 1's
commands are listed in `COMMANDS`; new commands may be added, existing ones
keep their meaning. The simulation commands work only when the hardware is
simulated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.interfaces import FaultKind

log = logging.getLogger("evsed.control")

PROTOCOL = "evsed-control"
VERSION = 1
MAX_LINE = 64 * 1024

# command -> (arguments, what it does)
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "hello": ((), "protocol name, version and command list"),
    "state": ((), "station, connectors, OCPP link and simulated hardware"),
    "plug": (("connector",), "plug the EV's cable into a connector"),
    "unplug": (("connector",), "unplug the EV"),
    "ev_charge": (("connector", "on"), "the EV starts (true) or stops (false) asking for energy"),
    "ev_current": (("connector", "amps"), "the most current per phase the EV will draw"),
    "ev_stubborn": (("connector", "on"), "the EV ignores the pilot switching PWM off"),
    "card": (("uid",), "present an RFID card (hex UID, 4/7/10 bytes)"),
    "meter_set": (("connector", "wh"), "set the energy register of a connector's meter"),
    "fault_raise": (("kind", "connector"), "raise a hardware fault (connector 0: station)"),
    "fault_clear": (("kind", "connector"), "clear a hardware fault"),
    "link_cut": ((), "drop the CSMS link and keep it down"),
    "link_restore": ((), "allow the CSMS link again"),
    "hang": (("seconds",), "block the main loop (a test hook: only with EVSED_TEST_HOOKS=1)"),
}
FAULT_KINDS = [k.value for k in FaultKind]


class ControlError(Exception):
    pass


class ControlServer:
    def __init__(
        self,
        path: Path,
        state: Callable[[], dict[str, Any]],
        sim: Any,
        link_cut: Callable[[], None],
        link_restore: Callable[[], None],
    ) -> None:
        self.path = path
        self._state = state
        self._sim = sim  # hwsim.hardware.SimHardware, or None on real hardware
        self._link_cut = link_cut
        self._link_restore = link_restore
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        os.chmod(self.path, 0o660)
        log.info("control interface on %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write((json.dumps(self.handle_line(line)) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    def handle_line(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ControlError("a request is a JSON object")
            if request.get("v", VERSION) != VERSION:
                raise ControlError(f"protocol version {request.get('v')} not supported")
            return {"ok": True, "result": self.execute(request)}
        except (ControlError, ValueError, TypeError, KeyError) as e:
            return {"ok": False, "error": str(e) or type(e).__name__}

    def execute(self, request: dict[str, Any]) -> Any:
        cmd = request.get("cmd")
        if cmd not in COMMANDS:
            raise ControlError(f"unknown command {cmd!r}; try 'hello'")
        missing = [arg for arg in COMMANDS[cmd][0] if arg not in request]
        if missing:
            raise ControlError(f"{cmd} needs {', '.join(missing)}")
        if cmd == "hello":
            return {
                "protocol": PROTOCOL,
                "version": VERSION,
                "commands": {name: list(args) for name, (args, _) in COMMANDS.items()},
            }
        if cmd == "state":
            state = self._state()
            state["hardware"] = self._sim.snapshot() if self._sim is not None else None
            return state
        if cmd == "link_cut":
            self._link_cut()
            return None
        if cmd == "link_restore":
            self._link_restore()
            return None
        if cmd == "hang":
            return self._hang(request["seconds"])
        return self._simulate(cmd, request)

    def _hang(self, seconds: Any) -> None:
        """Freeze the event loop, as a deadlock would: the system tests check that the
        systemd watchdog then kills and restarts the daemon. Off unless the service's
        environment enables test hooks. The answer is sent before the loop freezes."""
        if os.environ.get("EVSED_TEST_HOOKS") != "1":
            raise ControlError("hang is a test hook; the daemon runs without EVSED_TEST_HOOKS=1")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ControlError(f"seconds must be a positive number, got {seconds!r}")
        log.warning("test hook: blocking the main loop for %s s", seconds)
        asyncio.get_running_loop().call_soon(time.sleep, float(seconds))

    def _simulate(self, cmd: str, r: dict[str, Any]) -> Any:
        sim = self._sim
        if sim is None:
            raise ControlError(f"{cmd} needs simulated hardware")
        if cmd == "plug":
            sim.plug(_int(r["connector"]))
        elif cmd == "unplug":
            sim.unplug(_int(r["connector"]))
        elif cmd == "ev_charge":
            sim.ev_charge(_int(r["connector"]), _bool(r["on"]))
        elif cmd == "ev_current":
            sim.ev_current(_int(r["connector"]), float(r["amps"]))
        elif cmd == "ev_stubborn":
            sim.ev_stubborn(_int(r["connector"]), _bool(r["on"]))
        elif cmd == "card":
            if not sim.present_card(str(r["uid"])):
                raise ControlError("the reader is offline")
        elif cmd == "meter_set":
            sim.set_meter(_int(r["connector"]), float(r["wh"]))
        elif cmd in ("fault_raise", "fault_clear"):
            kind = str(r["kind"])
            if kind not in FAULT_KINDS:
                raise ControlError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
            connector = _int(r["connector"])
            target = None if kind == FaultKind.READER else connector
            if cmd == "fault_raise":
                sim.raise_fault(kind, target)
            else:
                sim.clear_fault(kind, target)
        return None


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"expected a whole number, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ControlError(f"expected true or false, got {value!r}")
    return value


class ControlClient:
    """Blocking client for tests, the demo and `evsed sim`."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 10.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(os.fspath(path))
        except OSError:
            self._sock.close()
            raise
        self._file = self._sock.makefile("rwb")

    def request(self, cmd: str, **args: Any) -> Any:
        self._file.write((json.dumps({"v": VERSION, "cmd": cmd, **args}) + "\n").encode())
        self._file.flush()
        line = self._file.readline(MAX_LINE)
        if not line:
            raise ConnectionError("the daemon closed the control connection")
        answer = json.loads(line)
        if not answer["ok"]:
            raise ControlError(answer["error"])
        return answer["result"]

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
