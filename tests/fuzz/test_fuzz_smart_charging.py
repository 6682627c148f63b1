"""Fuzzing the Smart Charging profile through the real RPC layer and handlers.

Like test_fuzz_reservation.py: frames go straight into `RpcSession._on_frame` of a
ChargePoint16 with the SmartCharging profile attached, built as the daemon builds
it on simulated hardware, and `check_replies` judges every answer (one well-formed
answer per CALL, schema-valid CALLRESULTs, no InternalError). After each frame the
profiles the station applies must be exactly those in the store, and every
connector's limit must be one the pilot can carry.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from controller.authorizer import Authorizer
from controller.core.connector import ConnectorSettings
from controller.core.smart_charging import installed_from_json
from controller.ocpp.rpc import RpcSession, actions
from controller.ocpp.v16.charge_point import ChargePoint16, LinkSettings, Registration
from controller.ocpp.v16.keys import ConfigurationKeys, core_keys
from controller.ocpp.v16.smart_charging import SmartChargingProfile
from controller.smart_charging import RECORDS
from controller.station import Station
from controller.store import Store
from hwsim.hardware import SimHardware
from tests.fuzz.ocpp_frames import HANDLED_16, Frame, check_replies, dumps, frames, valid_calls
from tests.fuzz.profiles import fuzz_settings

ACTIONS = ("ClearChargingProfile", "GetCompositeSchedule", "SetChargingProfile")
HANDLED = (*HANDLED_16, *ACTIONS)
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
        keys = ConfigurationKeys(core_keys(2) | SmartChargingProfile.keys(2))
        authorizer = Authorizer(state_dir / "auth.db")
        hardware = SimHardware(2, ev_reaction_s=0.0)
        limits = [ConnectorSettings(max_current_a=16)] * 2
        station = Station(hardware, store, keys, limits, [3, 1], authorizer)
        settings = LinkSettings(
            url="ws://127.0.0.1:9/ocpp", station_id="CP-FUZZ", vendor="evsed", model="fuzz"
        )
        cp = ChargePoint16(settings, station, keys, store)
        cp.registration = Registration.ACCEPTED
        cp.features = [SmartChargingProfile(cp)]
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
                stored = [installed_from_json(v) for v in store.records(RECORDS).values()]
                applied = station.smart_charging.profiles
                assert sorted(stored, key=repr) == sorted(applied, key=repr), "store and use differ"
                for session in station.core.connectors:
                    limit = session.offered_limit_a
                    assert limit is None or 0 <= limit < 16, limit
                    session.outputs()  # a limit the pilot cannot carry would raise here
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


def set_profile(connector: int = 0, **changes: Any) -> str:
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8}]}
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": schedule | changes.pop("schedule", {}),
        **changes,
    }
    payload = {"connectorId": connector, "csChargingProfiles": profile}
    return dumps([2, "1", "SetChargingProfile", payload])


def huge_limit() -> str:
    """A limit of 10**400 written as an integer: a multiple of 0.1, beyond any float."""
    frame = json.loads(set_profile())
    frame[3]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 0
    return json.dumps(frame).replace('"limit": 0', '"limit": 1' + "0" * 400)


def composite(connector: int = 1, duration: int = 60, unit: str = "W") -> str:
    payload = {"connectorId": connector, "duration": duration, "chargingRateUnit": unit}
    return dumps([2, "2", "GetCompositeSchedule", payload])


@fuzz_settings(80)
@given(st.lists(st.one_of(frames(ACTIONS), valid_calls(ACTIONS).map(dumps)), max_size=5))
@example([set_profile(schedule={"startSchedule": "0001-01-01T00:00:00+00:01"}), composite()])
@example([set_profile(validFrom="9999-12-31T23:59:59-23:00"), composite(0, 2**31 - 1)])
@example([set_profile(schedule={"duration": 2**62}), composite(duration=-(2**63))])
@example([huge_limit(), composite(unit="A")])
@example(
    [
        set_profile(
            chargingProfilePurpose="ChargePointMaxProfile", schedule={"chargingRateUnit": "W"}
        )
    ]
)
@example([set_profile(1, chargingProfileKind="Recurring", recurrencyKind="Weekly")])
@example([set_profile(connector=-(2**31)), composite(connector=2**31)])
def test_smart_charging_frames_are_answered_by_the_rules(frame_list: list[Frame]) -> None:
    judge(frame_list)
