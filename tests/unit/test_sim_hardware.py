"""Tests of the simulated hardware (hwsim): the daemon's tests trust it to behave like a station."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from controller.core.iec61851 import PilotMode, PilotOutput, PilotState
from drivers.interfaces import FaultKind
from hwsim.ev import SimEV
from hwsim.hardware import SimHardware, normalise_uid

REACT = 0.02  # EV reaction time in these tests: short, but long enough to observe


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def settle(seconds: float = 0.0) -> None:
    """Let call_soon callbacks (and timers due within `seconds`) run."""
    await asyncio.sleep(seconds)
    await asyncio.sleep(0)


def recorder(events: list[tuple[FaultKind, bool]]) -> Callable[[FaultKind, bool], None]:
    return lambda kind, active: events.append((kind, active))


async def charging(hw: SimHardware, n: int = 1, amps: float = 16.0) -> list[PilotState]:
    """Started station with an EV in C on connector n; returns the recorded states."""
    states: list[PilotState] = []
    hw.pilots[n - 1].on_state(states.append)
    await hw.start()
    hw.plug(n)
    hw.ev_charge(n, True)
    hw.pilots[n - 1].set_output(PilotOutput.offering(amps))
    await settle(REACT * 2.5)
    assert hw.connector(n).pilot.state is PilotState.C
    return states


def test_plug_ask_pwm_gives_a_b_c_with_reaction_delay() -> None:
    async def body() -> None:
        react = 0.1  # long enough that a loaded machine still sees B first
        hw = SimHardware(1, ev_reaction_s=react)
        states: list[PilotState] = []
        hw.pilots[0].on_state(states.append)
        hw.plug(1)
        hw.unplug(1)
        await settle()
        assert states == []  # nothing is reported before start()
        await hw.start()
        await settle()
        assert states == [PilotState.A]
        hw.plug(1)
        assert states == [PilotState.A]  # never reported inside the call
        await settle()
        assert states == [PilotState.A, PilotState.B]
        hw.ev_charge(1, True)
        await settle(react * 2)
        assert states[-1] is PilotState.B  # asking, but no PWM yet
        hw.pilots[0].set_output(PilotOutput.offering(16))
        await settle(react / 4)
        assert states[-1] is PilotState.B  # the EV has not reacted yet
        await settle(react * 2)
        assert states == [PilotState.A, PilotState.B, PilotState.C]
        await hw.stop()

    run(body)


def test_repeated_output_does_not_postpone_reaction() -> None:
    async def body() -> None:
        hw = SimHardware(1, ev_reaction_s=REACT)
        await hw.start()
        hw.plug(1)
        hw.ev_charge(1, True)
        hw.pilots[0].set_output(PilotOutput.offering(16))
        for amps in (16, 20, 16, 10):
            await asyncio.sleep(REACT / 4)
            hw.pilots[0].set_output(PilotOutput.offering(amps))
        await settle(REACT / 2)
        assert hw.connector(1).pilot.state is PilotState.C
        await hw.stop()

    run(body)


def test_pwm_off_returns_to_b_after_reaction_unless_stubborn() -> None:
    async def body() -> None:
        hw = SimHardware(2, ev_reaction_s=REACT)
        states = await charging(hw, 1)
        hw.pilots[0].set_output(PilotOutput.x1())
        await settle()
        assert states[-1] is PilotState.C
        await settle(REACT * 2)
        assert states[-2:] == [PilotState.C, PilotState.B]

        # A stubborn EV keeps S2 closed, so the EVSE must open under load.
        hw.ev_stubborn(2, True)
        states2 = await charging(hw, 2)
        hw.pilots[1].set_output(PilotOutput.x1())
        await settle(REACT * 3)
        assert states2[-1] is PilotState.C
        assert hw.connector(2).pilot.state is PilotState.C
        hw.ev_charge(2, False)  # its own decision takes effect at once
        await settle()
        assert states2[-1] is PilotState.B
        await hw.stop()

    run(body)


def test_state_f_and_unplug() -> None:
    async def body() -> None:
        hw = SimHardware(1, ev_reaction_s=REACT)
        states = await charging(hw)
        hw.pilots[0].set_output(PilotOutput.state_f())
        await settle()
        assert states[-1] is PilotState.F
        hw.pilots[0].set_output(PilotOutput.x1())
        await settle()
        assert states[-1] is PilotState.B
        hw.unplug(1)
        await settle()
        assert states[-1] is PilotState.A
        assert states.count(PilotState.A) == 1 + 1  # initial reading and the unplug
        await hw.stop()

    run(body)


def test_energy_advances_only_with_contactor_closed_at_expected_rate() -> None:
    async def body() -> None:
        hw = SimHardware(1, ev_reaction_s=REACT)
        await charging(hw, amps=16)
        meter = hw.meters[0]
        start = (await meter.read()).energy_wh
        await asyncio.sleep(0.1)
        assert (await meter.read()).energy_wh == pytest.approx(start, abs=1e-9)

        t0 = time.monotonic()
        hw.contactors[0].set_closed(True)
        await asyncio.sleep(0.3)
        reading = await meter.read()
        elapsed = time.monotonic() - t0
        expected = 3 * 16 * 230.0 * elapsed / 3600.0
        assert reading.power_w == pytest.approx(3 * 16 * 230.0)
        assert reading.current_a == (16.0, 16.0, 16.0)
        assert reading.voltage_v == (230.0, 230.0, 230.0)
        assert reading.frequency_hz == 50.0
        assert reading.energy_wh - start == pytest.approx(expected, rel=0.05)

        hw.contactors[0].set_closed(False)
        stopped = (await meter.read()).energy_wh
        await asyncio.sleep(0.05)
        after = await meter.read()
        assert after.energy_wh == pytest.approx(stopped, abs=1e-9)
        assert after.power_w == 0.0

        hw.set_meter(1, 1000.0)
        assert (await meter.read()).energy_wh == pytest.approx(1000.0)
        await hw.stop()

    run(body)


def test_current_follows_duty_and_ev_limit() -> None:
    async def body() -> None:
        hw = SimHardware(1, ev_reaction_s=REACT)
        await charging(hw, amps=10)
        hw.contactors[0].set_closed(True)
        assert (await hw.meters[0].read()).current_a == (10.0, 10.0, 10.0)

        hw.pilots[0].set_output(PilotOutput.offering(16))
        hw.ev_current(1, 8)
        assert (await hw.meters[0].read()).current_a == (8.0, 8.0, 8.0)

        hw.ev_phases(1, 1)
        reading = await hw.meters[0].read()
        assert reading.current_a == (8.0, 0.0, 0.0)
        assert reading.power_w == pytest.approx(8 * 230.0)
        await hw.stop()

    run(body)


def test_ev_model_alone() -> None:
    ev = SimEV(plugged=True, asking=True, reaction_s=0.5)
    assert ev.next_state(PilotOutput.x1(), PilotState.A) == (PilotState.B, 0.0)
    assert ev.next_state(PilotOutput.offering(16), PilotState.B) == (PilotState.C, 0.5)
    assert ev.next_state(PilotOutput.x1(), PilotState.C) == (PilotState.B, 0.5)
    assert ev.next_state(PilotOutput.state_f(), PilotState.C) == (PilotState.F, 0.0)
    assert ev.draw_a(PilotOutput.offering(16), PilotState.C, powered=False) == 0.0
    assert ev.draw_a(PilotOutput.offering(16), PilotState.B, powered=True) == 0.0
    assert ev.draw_a(PilotOutput.offering(40), PilotState.C, powered=True) == 32.0
    with pytest.raises(ValueError):
        ev.phases = 2
    with pytest.raises(ValueError):
        ev.max_current_a = -1


@pytest.mark.parametrize(
    ("kind", "part"),
    [
        (FaultKind.RCD, "contactor"),
        (FaultKind.WELD, "contactor"),
        (FaultKind.GENERIC, "contactor"),
        (FaultKind.DIODE, "pilot"),
        (FaultKind.METER, "meter"),
        (FaultKind.READER, "reader"),
    ],
)
def test_fault_injection_reaches_the_right_callback(kind: FaultKind, part: str) -> None:
    async def body() -> None:
        hw = SimHardware(2, ev_reaction_s=REACT)
        seen: dict[str, list[tuple[FaultKind, bool]]] = {}
        for name, source in (
            ("pilot", hw.pilots[1]),
            ("contactor", hw.contactors[1]),
            ("meter", hw.meters[1]),
            ("reader", hw.reader),
            ("other pilot", hw.pilots[0]),
            ("other contactor", hw.contactors[0]),
            ("other meter", hw.meters[0]),
        ):
            seen[name] = []
            assert source is not None
            source.on_fault(recorder(seen[name]))
        await hw.start()
        hw.raise_fault(kind, 2)
        hw.raise_fault(kind, 2)  # already active: reported once
        await settle()
        assert seen[part] == [(kind, True)]
        assert {"kind": kind.value, "connector": None if part == "reader" else 2} in hw.snapshot()[
            "faults"
        ]
        hw.clear_fault(kind.value, 2)  # the control socket passes strings
        await settle()
        assert seen[part] == [(kind, True), (kind, False)]
        assert all(events == [] for name, events in seen.items() if name != part)
        assert hw.snapshot()["faults"] == []
        await hw.stop()

    run(body)


def test_faults_raised_before_start_are_reported_at_start() -> None:
    async def body() -> None:
        hw = SimHardware(1)
        events: list[tuple[FaultKind, bool]] = []
        hw.contactors[0].on_fault(lambda k, a: events.append((k, a)))
        hw.raise_fault(FaultKind.RCD, 1)
        await settle()
        assert events == []
        await hw.start()
        await settle()
        assert events == [(FaultKind.RCD, True)]
        await hw.stop()

    run(body)


def test_welded_contactor_keeps_drawing() -> None:
    async def body() -> None:
        hw = SimHardware(1, ev_reaction_s=REACT)
        await charging(hw, amps=16)
        hw.contactors[0].set_closed(True)
        hw.raise_fault(FaultKind.WELD, 1)
        hw.contactors[0].set_closed(False)
        assert hw.contactors[0].closed is False
        reading = await hw.meters[0].read()
        assert reading.current_a == (16.0, 16.0, 16.0)
        snap = hw.snapshot()["connectors"][0]["contactor"]
        assert snap == {"commanded_closed": False, "actually_closed": True}
        hw.clear_fault(FaultKind.WELD, 1)
        assert (await hw.meters[0].read()).current_a == (0.0, 0.0, 0.0)
        await hw.stop()

    run(body)


def test_meter_offline_raises_oserror() -> None:
    async def body() -> None:
        hw = SimHardware(1)
        hw.raise_fault(FaultKind.METER, 1)
        with pytest.raises(OSError, match="meter not answering"):
            await hw.meters[0].read()
        hw.clear_fault(FaultKind.METER, 1)
        assert (await hw.meters[0].read()).energy_wh == 0.0

    run(body)


def test_card_uid_normalisation_and_validation() -> None:
    assert normalise_uid("04a23bc4") == "04A23BC4"
    assert normalise_uid("04:a2:3b:c4:d5:e6:f7") == "04A23BC4D5E6F7"
    assert normalise_uid(" 0102030405060708090a ") == "0102030405060708090A"
    for bad in ("", "xyz", "0102", "04a23bc4d5", "0g0h0i0j", "04a23bc4d5e6f7a8"):
        with pytest.raises(ValueError, match="invalid card UID"):
            normalise_uid(bad)

    async def body() -> None:
        hw = SimHardware(1)
        cards: list[str] = []
        assert hw.reader is not None
        hw.reader.on_card(cards.append)
        await hw.start()
        assert hw.present_card("de:ad:be:ef") is True
        assert cards == []  # delivered on the loop, not inside the call
        await settle()
        assert cards == ["DEADBEEF"]
        with pytest.raises(ValueError):
            hw.present_card("not-a-card")
        hw.raise_fault(FaultKind.READER)
        assert hw.present_card("01020304") is False
        await settle()
        assert cards == ["DEADBEEF"]
        hw.clear_fault(FaultKind.READER)
        hw.present_card("01020304")
        await settle()
        assert cards == ["DEADBEEF", "01020304"]
        await hw.stop()

    run(body)


def test_bad_connector_numbers_and_locks() -> None:
    hw = SimHardware(2, has_lock=[True, False])
    assert hw.locks[1] is None
    lock = hw.locks[0]
    assert lock is not None
    assert lock.lock() is True
    assert hw.snapshot()["connectors"][0]["lock"] == "locked"
    assert lock.unlock() is True
    for bad in (0, 3, -1):
        with pytest.raises(ValueError, match=f"no connector {bad}"):
            hw.plug(bad)
    with pytest.raises(ValueError, match="needs a connector"):
        hw.raise_fault(FaultKind.RCD)
    with pytest.raises(ValueError):
        hw.raise_fault("melted", 1)
    with pytest.raises(ValueError):
        SimHardware(3)
    with pytest.raises(ValueError):
        hw.set_meter(1, -5)


def test_snapshot_content() -> None:
    async def body() -> None:
        hw = SimHardware(2, voltage_v=231.0, ev_reaction_s=REACT)
        await charging(hw, 1, amps=16)
        hw.contactors[0].set_closed(True)
        hw.set_meter(1, 500.0)
        snap = hw.snapshot()
        json.dumps(snap)  # the control socket sends it as JSON
        c1, c2 = snap["connectors"]
        assert c1["connector"] == 1
        assert c1["pilot"] == {
            "mode": "pwm",
            "duty_percent": pytest.approx(26.67),
            "offered_current_a": pytest.approx(16.0),
            "state": "C",
        }
        assert c1["contactor"] == {"commanded_closed": True, "actually_closed": True}
        assert c1["lock"] == "unlocked"
        assert c1["ev"]["plugged"] is True
        assert c1["ev"]["asking"] is True
        assert c1["ev"]["current_a"] == pytest.approx([16.0, 16.0, 16.0], abs=0.01)
        assert c1["meter"]["energy_wh"] == pytest.approx(500.0, abs=0.1)
        assert c1["meter"]["power_w"] == pytest.approx(3 * 16 * 231.0, abs=1)
        assert c1["meter"]["online"] is True
        assert c2["pilot"]["mode"] == "x1"
        assert c2["pilot"]["state"] == "A"
        assert c2["ev"]["plugged"] is False
        assert snap["reader"] == {"online": True}
        assert snap["faults"] == []
        await hw.stop()

    run(body)


def test_stop_leaves_outputs_off_and_cancels_timers() -> None:
    async def body() -> None:
        hw = SimHardware(2, ev_reaction_s=REACT)
        states = await charging(hw, 1)
        hw.contactors[0].set_closed(True)
        hw.plug(2)
        hw.ev_charge(2, True)
        hw.pilots[1].set_output(PilotOutput.offering(10))  # reaction still pending
        await hw.stop()
        reported = list(states)
        await settle(REACT * 3)
        assert states == reported  # nothing reported after stop
        for c in hw.connectors:
            assert c.contactor.closed is False
            assert c.pilot.output.mode is PilotMode.X1
            assert c.pilot.state is PilotState.B
        assert (await hw.meters[0].read()).power_w == 0.0

    run(body)


def test_the_simulated_world_outlives_the_daemon(tmp_path: Path) -> None:
    """A real meter keeps its register and a plugged car stays plugged across a restart."""
    world = tmp_path / "world.json"
    hw = SimHardware(1, world_file=world)
    hw.set_meter(1, 1234.5)
    hw.plug(1)
    hw.ev_charge(1, True)
    asyncio.run(hw.meters[0].read())
    again = SimHardware(1, world_file=world)
    assert again.connector(1).meter.energy_wh == pytest.approx(1234.5)
    assert again.ev(1).plugged and again.ev(1).asking


def test_event_log_records_the_power_path_in_order_across_runs(tmp_path: Path) -> None:
    """Each run begins with a `start` line; pilot states, outputs and contactor
    commands follow in the order they happened."""
    from hwsim.event_log import read_events

    log = tmp_path / "events.jsonl"

    async def one_run() -> None:
        hw = SimHardware(1, ev_reaction_s=REACT, event_log=log)
        await charging(hw)
        hw.contactors[0].set_closed(True)
        hw.unplug(1)
        hw.contactors[0].set_closed(False)
        await hw.stop()
        hw.close()

    run(one_run)
    run(one_run)
    events = read_events(log)
    runs = [i for i, e in enumerate(events) if e["ev"] == "start"]
    assert len(runs) == 2
    first = [(e["ev"], e.get("state", e.get("mode", e.get("closed")))) for e in events[: runs[1]]]
    assert first == [
        ("start", None),
        ("pilot", "A"),
        ("pilot", "B"),
        ("output", "pwm"),
        ("pilot", "C"),
        ("contactor", True),
        ("pilot", "A"),
        ("contactor", False),
        ("output", "x1"),
    ]
    times = [e["t"] for e in events]
    assert times == sorted(times)
