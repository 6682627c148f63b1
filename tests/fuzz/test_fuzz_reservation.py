"""Fuzzing ReserveNow and CancelReservation through the real RPC layer and handlers.

Like level 1 of test_fuzz_ocpp.py (whose handler table is Core only): frames go
straight into `RpcSession._on_frame` of a ChargePoint16 with the Reservation
profile attached, built as the daemon builds it on simulated hardware, and
`check_replies` judges every answer. After each frame the reservations the core
holds must be exactly those in the store (nothing acted on that is not on disk).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from controller.authorizer import Authorizer
from controller.core.connector import ConnectorSettings
from controller.ocpp.rpc import RpcSession, actions
from controller.ocpp.v16.charge_point import ChargePoint16, LinkSettings, Registration
from controller.ocpp.v16.keys import ConfigurationKeys, core_keys
from controller.ocpp.v16.reservation import ReservationProfile
from controller.station import RESERVATIONS, Station
from controller.store import Store
from hwsim.hardware import SimHardware
from tests.fuzz.ocpp_frames import HANDLED_16, Frame, check_replies, dumps, frames, valid_calls
from tests.fuzz.profiles import fuzz_settings

ACTIONS = ("CancelReservation", "ReserveNow")
HANDLED = (*HANDLED_16, *ACTIONS)
YEAR_0 = "0001-01-01T00:00:00+00:01"  # a valid date-time that is before year 1 in UTC
SETTLE_S = 10.0


class Recording:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def recv(self) -> str | bytes:
        raise ConnectionError("frames are fed to _on_frame directly")


def exchange(frame_list: list[Frame]) -> list[tuple[Frame, list[str]]]:
    async def run(state_dir: Path) -> list[tuple[Frame, list[str]]]:
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        store = Store(state_dir / "evsed.db")
        keys = ConfigurationKeys(core_keys(2) | ReservationProfile.keys(2))
        authorizer = Authorizer(state_dir / "auth.db")
        hardware = SimHardware(2, ev_reaction_s=0.0)
        limits = [ConnectorSettings(max_current_a=16)] * 2
        station = Station(hardware, store, keys, limits, [3, 3], authorizer)
        settings = LinkSettings(
            url="ws://127.0.0.1:9/ocpp", station_id="CP-FUZZ", vendor="evsed", model="fuzz"
        )
        cp = ChargePoint16(settings, station, keys, store)
        cp.registration = Registration.ACCEPTED
        cp.features = [ReservationProfile(cp)]
        connection = Recording()
        rpc = RpcSession(connection, "1.6", cp._handlers(), actions("1.6"), response_timeout=1.0)
        assert set(ACTIONS) <= set(cp._handlers())
        results = []
        try:
            for frame in frame_list:
                before = len(connection.sent)
                rpc._on_frame(frame)
                await settle()
                results.append((frame, connection.sent[before:]))
                stored = {int(key) for key in store.records(RESERVATIONS)}
                assert stored == {r.id for r in station.core.reservations}, "store and core differ"
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


def judge(frame_list: list[Frame]) -> None:
    for frame, replies in exchange(frame_list):
        check_replies(frame, replies, "1.6", HANDLED)


def reserve_now(expiry: str, connector: int = 1, rid: int = 1) -> str:
    payload = {"connectorId": connector, "expiryDate": expiry, "idTag": "A", "reservationId": rid}
    return dumps([2, "1", "ReserveNow", payload])


@fuzz_settings(60)
@given(st.lists(st.one_of(frames(ACTIONS), valid_calls(ACTIONS).map(dumps)), max_size=5))
@example([reserve_now(YEAR_0)])
@example([reserve_now("9999-12-31T23:59:59-01:00")])
@example([reserve_now("2999-01-01T00:00:00Z", connector=-(2**31)), reserve_now("x", rid=2)])
def test_reservation_frames_are_answered_by_the_rules(frame_list: list[Frame]) -> None:
    judge(frame_list)
