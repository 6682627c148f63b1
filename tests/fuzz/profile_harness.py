"""A ChargePoint16 with one feature profile, fed frames in-process: what the profile
fuzzers (test_fuzz_reservation.py, test_fuzz_smart_charging.py) share.

The station is built as the daemon builds it, on simulated hardware with two
connectors; frames go straight into `RpcSession._on_frame`, every reply is kept,
and after each frame the caller's `check(station, store)` compares what is
stored with what is applied.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.authorizer import Authorizer
from controller.core.connector import ConnectorSettings
from controller.ocpp.rpc import RpcSession, actions
from controller.ocpp.v16.charge_point import ChargePoint16, LinkSettings, Registration
from controller.ocpp.v16.keys import ConfigurationKeys, core_keys
from controller.station import Station
from controller.store import Store
from hwsim.hardware import SimHardware
from tests.fuzz.ocpp_frames import Frame

SETTLE_S = 10.0


class Recording:
    """The websocket, as far as RpcSession uses it: keeps what the station sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def recv(self) -> str | bytes:
        raise ConnectionError("frames are fed to _on_frame directly")


def exchange(
    frame_list: list[Frame],
    profile: Any,
    check: Callable[[Station, Store], None],
    phases: tuple[int, int] = (3, 3),
) -> list[tuple[Frame, list[str]]]:
    """Each frame with the replies it got, on a station with `profile` attached."""

    async def run(state_dir: Path) -> list[tuple[Frame, list[str]]]:
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        store = Store(state_dir / "evsed.db")
        keys = ConfigurationKeys(core_keys(2) | profile.keys(2))
        authorizer = Authorizer(state_dir / "auth.db")
        hardware = SimHardware(2, ev_reaction_s=0.0)
        limits = [ConnectorSettings(max_current_a=16)] * 2
        station = Station(hardware, store, keys, limits, list(phases), authorizer)
        settings = LinkSettings(
            url="ws://127.0.0.1:9/ocpp", station_id="CP-FUZZ", vendor="evsed", model="fuzz"
        )
        cp = ChargePoint16(settings, station, keys, store)
        cp.registration = Registration.ACCEPTED
        cp.features = [profile(cp)]
        connection = Recording()
        handlers = cp._all_handlers()
        rpc = RpcSession(connection, "1.6", handlers, actions("1.6"), response_timeout=1.0)
        results = []
        try:
            for frame in frame_list:
                before = len(connection.sent)
                rpc._on_frame(frame)
                await settle()
                results.append((frame, connection.sent[before:]))
                check(station, store)
        finally:
            await station.stop()
            authorizer.close()
            store.close()
        assert not loop_errors, f"unhandled errors in the event loop: {loop_errors}"
        return results

    with tempfile.TemporaryDirectory(prefix="evsed-fuzz-") as tmp:
        return asyncio.run(run(Path(tmp)))


async def settle() -> None:
    deadline = time.monotonic() + SETTLE_S
    while others := asyncio.all_tasks() - {asyncio.current_task()}:
        left = deadline - time.monotonic()
        assert left > 0, f"frame handling did not settle: {others}"
        await asyncio.wait(others, timeout=left)
