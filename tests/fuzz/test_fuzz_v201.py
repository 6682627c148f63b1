"""Fuzzing the OCPP 2.0.1 layer's real handlers in-process, as test_fuzz_ocpp.py does
for 1.6: a ChargePoint201 composed by the daemon's own `build_201` (device model,
network profiles, every feature) on simulated hardware in a temporary state
directory, fed random, mutated and schema-valid frames; `ocpp_frames.check_replies`
judges every reply by the 2.0.1 rules against the layer's real handler table.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.authorizer import Authorizer
from controller.config import parse_config
from controller.core.connector import ConnectorSettings
from controller.daemon import build_201
from controller.ocpp.link import LinkSettings, Registration
from controller.ocpp.rpc import RpcSession, actions
from controller.ocpp.v16 import features
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.station import Station
from controller.store import Store
from hwsim.hardware import SimHardware
from tests.fuzz.ocpp_frames import (
    KNOWN_201,
    Frame,
    check_replies,
    dumps,
    frames,
    mutated_calls,
    valid_calls,
)
from tests.fuzz.profiles import fuzz_settings

SETTLE_S = 30.0
VERSION = "2.0.1"
# Tasks that live as long as the station (they wait for the CSMS to accept it).
LONG_LIVED = frozenset({"OwedNotifications._deliver"})


class Recording:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def recv(self) -> str | bytes:
        raise ConnectionError("frames are fed to _on_frame directly")


def _config(state_dir: Path) -> Any:
    return parse_config(
        {
            "station": {"id": "CP-FUZZ"},
            "csms": {"url": "ws://127.0.0.1:9/ocpp"},
            "state": {"dir": str(state_dir)},
            "connectors": [{"max_current": 16, "cable": "socket", "lock": True}],
            "ocpp": {"version": VERSION},
        }
    )


def _handled() -> tuple[str, ...]:
    with tempfile.TemporaryDirectory(prefix="evsed-fuzz-") as tmp:

        async def table() -> tuple[str, ...]:
            node = Node(Path(tmp))
            try:
                return tuple(sorted(node.handlers))
            finally:
                await node.close()

        return asyncio.run(table())


class Node:
    """The station and its 2.0.1 layer, built but not started (see test_fuzz_ocpp.py)."""

    def __init__(self, state_dir: Path) -> None:
        config = _config(state_dir)
        self.store = Store(state_dir / "evsed.db")
        keys = ConfigurationKeys(
            features.all_keys(1),
            persisted=self.store.config_keys(),
            persist=self.store.set_config_key,
        )
        self.authorizer = Authorizer(state_dir / "auth.db")
        hardware = SimHardware(1, has_lock=[True], ev_reaction_s=0.0)
        limits = [ConnectorSettings(max_current_a=16, has_lock=True, socket_outlet=True)]
        self.station = Station(hardware, self.store, keys, limits, [3], self.authorizer)
        settings = LinkSettings(
            url="ws://127.0.0.1:9/ocpp", station_id="CP-FUZZ", vendor="evsed", model="fuzz"
        )
        self.cp = build_201(config, settings, self.station, keys, self.store)
        self.cp.registration = Registration.ACCEPTED
        self.connection = Recording()
        self.handlers = self.cp._all_handlers()
        self.rpc = RpcSession(
            self.connection, VERSION, self.handlers, actions(VERSION), response_timeout=1.0
        )

    async def close(self) -> None:
        for task in list(self.cp._background):
            task.cancel()
        await self.station.stop()
        self.authorizer.close()
        self.store.close()


HANDLED = _handled()


def _working() -> set[asyncio.Task[Any]]:
    return {
        task
        for task in asyncio.all_tasks() - {asyncio.current_task()}
        if task.get_coro().__qualname__ not in LONG_LIVED  # type: ignore[union-attr]
    }


async def _settle() -> None:
    deadline = time.monotonic() + SETTLE_S
    while others := _working():
        left = deadline - time.monotonic()
        assert left > 0, f"frame handling did not settle: {others}"
        await asyncio.wait(others, timeout=left)


def judge(frame_list: Sequence[Frame]) -> None:
    async def run(state_dir: Path) -> list[tuple[Frame, list[str]]]:
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        node = Node(state_dir)
        results = []
        try:
            for frame in frame_list:
                before = len(node.connection.sent)
                node.rpc._on_frame(frame)  # must never raise
                await _settle()
                results.append((frame, node.connection.sent[before:]))
        finally:
            await node.close()
        assert not loop_errors, f"unhandled errors in the event loop: {loop_errors}"
        return results

    with tempfile.TemporaryDirectory(prefix="evsed-fuzz-") as tmp:
        for frame, replies in asyncio.run(run(Path(tmp))):
            check_replies(frame, replies, VERSION, HANDLED)


def test_the_layer_answers_the_core_messages() -> None:
    """The table the fuzzer judges by holds the 2.0.1 layer's own messages."""
    core = {"RequestStartTransaction", "TransactionEvent", "GetVariables", "SendLocalList"}
    assert core - {"TransactionEvent"} <= set(HANDLED)
    assert "TransactionEvent" not in HANDLED  # the station sends it, never answers it


any_frame = st.one_of(
    frames(HANDLED, VERSION),
    frames(sorted(KNOWN_201), VERSION),
    mutated_calls(HANDLED, VERSION).map(dumps),
)


@fuzz_settings(60)
@given(st.lists(any_frame, min_size=1, max_size=4))
def test_v201_handlers_answer_every_frame_by_the_rules(frame_list: list[Frame]) -> None:
    judge(frame_list)


@fuzz_settings(60)
@given(st.lists(valid_calls(HANDLED, VERSION).map(dumps), min_size=1, max_size=3))
def test_v201_schema_valid_calls_get_schema_valid_results(frame_list: list[str]) -> None:
    judge(frame_list)
