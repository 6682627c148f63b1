"""IecPilot end to end: SysfsPwm + MCP3x08 on mock SPI + SimEV (hwsim.pilot_sim), and stubs.

The full-loop tests run in real time (the driver's worker thread polls every
20 ms); the blanking and error tests step the driver with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.core.iec61851 import PilotOutput, PilotState
from drivers.interfaces import FaultKind
from drivers.pilot.adc import AdcChip, CpReader, open_channel
from drivers.pilot.classify import Classifier, CpSample
from drivers.pilot.driver import IecPilot
from drivers.pilot.pwm import PERIOD_NS
from hwsim.ev import SimEV
from hwsim.pilot_sim import PilotSim, ev_high_v

S = PilotState
PI5 = "1f00098000.pwm"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[PilotSim]:
    rig = PilotSim(tmp_path, SimEV(reaction_s=0.05))
    yield rig
    rig.close()


def open_pilot(sim: PilotSim, **options: Any) -> IecPilot:
    options.setdefault("pp_channel", 1)
    return IecPilot.open(
        pwm_root=str(sim.pwm_root), pwm_device=PI5, pin_factory=sim.factory, **options
    )


class Recorder:
    """Every report with its arrival time on the loop (create it inside the loop)."""

    def __init__(self, pilot: IecPilot) -> None:
        self.events: list[tuple[float, str, Any]] = []
        self._arrived = asyncio.Event()
        pilot.on_state(lambda s: self._add("state", s))
        pilot.on_fault(lambda k, a: self._add("fault", (k, a)))
        pilot.on_cable(lambda a: self._add("cable", a))

    def _add(self, kind: str, value: Any) -> None:
        self.events.append((time.monotonic(), kind, value))
        self._arrived.set()

    def of(self, kind: str) -> list[Any]:
        return [value for _, k, value in self.events if k == kind]

    def states(self) -> list[PilotState]:
        return self.of("state")

    async def wait(self, kind: str, value: Any, timeout: float = 2.0, after: float = 0.0) -> float:
        """Arrival time of the first `kind` report equal to `value` later than `after`."""
        deadline = time.monotonic() + timeout
        while True:
            for t, k, v in self.events:
                if k == kind and v == value and t > after:
                    return t
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind} {value!r} within {timeout} s: {self.events}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)


def run(body: Callable[[], Any]) -> None:
    asyncio.run(body())


def test_full_loop_a_b_c_and_fast_opening(
    sim: PilotSim, capsys: pytest.CaptureFixture[str]
) -> None:
    async def body() -> None:
        pilot = open_pilot(sim)
        rec = Recorder(pilot)
        await pilot.start()
        await rec.wait("state", S.A)
        sim.ev.plugged = True
        sim.ev.asking = True  # waits for PWM before closing S2
        await rec.wait("state", S.B)
        await asyncio.sleep(0.1)
        assert rec.states() == [S.A, S.B]  # no C without PWM
        t_pwm = time.monotonic()
        pilot.set_output(PilotOutput.offering(16))
        assert sim.output() == PilotOutput.offering(16)
        t_c = await rec.wait("state", S.C)
        assert t_c - t_pwm >= pilot.debouncer.close_confirm_s + sim.ev.reaction_s
        latencies = []
        for cycle in range(3):
            if cycle:
                sim.ev.asking = True
                t_c = await rec.wait("state", S.C, after=t_c)
            t_open = time.monotonic()
            sim.ev.asking = False  # S2 opens
            latencies.append(await rec.wait("state", S.B, after=t_open) - t_open)
        sim.ev.asking = True
        t_c = await rec.wait("state", S.C, after=t_c)
        t_open = time.monotonic()
        sim.ev.plugged = False  # unplugged under load
        unplug = await rec.wait("state", S.A, after=t_open) - t_open
        await pilot.stop()
        assert rec.states() == [S.A, S.B, S.C, S.B, S.C, S.B, S.C, S.B, S.C, S.A]
        assert rec.of("fault") == []
        st = pilot.stats
        with capsys.disabled():
            print(
                f"\n  C->B latency ms: {', '.join(f'{x * 1000:.1f}' for x in latencies)};"
                f" C->A (unplug) {unplug * 1000:.1f} ms;"
                f" burst {st.burst_s_mean * 1000:.2f} ms mean / {st.burst_s_max * 1000:.2f} max"
                f" ({st.samples_per_burst:.0f} samples); CPU/poll"
                f" {st.cpu_s_mean * 1000:.2f} ms mean / {st.cpu_s_max * 1000:.2f} max"
                f" ({st.polls} polls, {st.late_polls} late) [mock SPI]"
            )
        # The latencies are printed, not asserted: speed is measured by bench/ (safety).

    run(body)


def test_diode_fault_with_pwm_on_only(sim: PilotSim) -> None:
    async def body() -> None:
        pilot = open_pilot(sim)
        rec = Recorder(pilot)
        sim.ev.diode_ok = False
        sim.ev.plugged = True
        await pilot.start()
        await rec.wait("state", S.B)
        await asyncio.sleep(0.3)
        assert rec.of("fault") == []  # x1: nothing to check, nothing reported
        sim.ev.asking = True
        pilot.set_output(PilotOutput.offering(16))
        t_fault = await rec.wait("fault", (FaultKind.DIODE, True))
        t_c = await rec.wait("state", S.C)  # reported faithfully; the core blocks on the fault
        assert t_fault < t_c  # diode_confirm_s < close_confirm_s: the fault always comes first
        assert pilot.diode_fault
        pilot.set_output(PilotOutput.x1())
        await asyncio.sleep(0.3)
        assert pilot.diode_fault  # PWM off: no new evidence, the fault stays
        sim.ev.plugged = False
        await rec.wait("fault", (FaultKind.DIODE, False), after=t_c)
        await pilot.stop()
        assert rec.of("fault") == [(FaultKind.DIODE, True), (FaultKind.DIODE, False)]

    run(body)


def test_good_diode_and_state_f(sim: PilotSim) -> None:
    async def body() -> None:
        pilot = open_pilot(sim)
        rec = Recorder(pilot)
        sim.ev.plugged = True
        await pilot.start()
        await rec.wait("state", S.B)
        pilot.set_output(PilotOutput.offering(6))  # 10 %: the shortest high phase we offer
        await asyncio.sleep(0.3)
        pilot.set_output(PilotOutput.state_f())
        await rec.wait("state", S.F)
        pilot.set_output(PilotOutput.x1())
        await rec.wait("state", S.B, after=time.monotonic())
        await pilot.stop()
        assert rec.states() == [S.B, S.F, S.B]
        assert rec.of("fault") == []

    run(body)


def test_socket_outlet_reports_the_cable(sim: PilotSim) -> None:
    async def body() -> None:
        pilot = open_pilot(sim)
        rec = Recorder(pilot)
        await pilot.start()
        await rec.wait("cable", None)  # first reading: no cable
        sim.ev.plugged = True
        await rec.wait("cable", 32.0)
        for ohm, amps in ((100.0, 63.0), (680.0, 20.0), (1500.0, 13.0)):
            sim.pp_ohm = ohm
            await rec.wait("cable", amps)
        sim.pp_ohm = None
        sim.ev.plugged = False
        await rec.wait("cable", None, after=time.monotonic())
        assert pilot.cable_rating_a is None
        await pilot.stop()
        assert rec.of("cable") == [None, 32.0, 63.0, 20.0, 13.0, None]

    run(body)


def test_fixed_cable_never_calls_on_cable(sim: PilotSim) -> None:
    async def body() -> None:
        pilot = open_pilot(sim, pp_channel=None, cable_rating_a=20.0)
        rec = Recorder(pilot)
        await pilot.start()
        sim.ev.plugged = True
        await rec.wait("state", S.B)
        await asyncio.sleep(0.3)
        await pilot.stop()
        assert rec.of("cable") == []
        assert pilot.cable_rating_a == 20.0

    run(body)


def test_stop_leaves_the_safe_state(sim: PilotSim) -> None:
    async def body() -> None:
        pilot = open_pilot(sim)
        await pilot.start()
        pilot.set_output(PilotOutput.offering(32))
        await pilot.stop()
        assert sim.pwm.read(2, 0, "duty_cycle") == str(PERIOD_NS)  # x1 …
        assert sim.pwm.read(2, 0, "enable") == "0"  # … then disabled
        pilot.set_output(PilotOutput.offering(16))  # ignored once closed
        assert sim.pwm.read(2, 0, "duty_cycle") == str(PERIOD_NS)

    run(body)


@pytest.mark.parametrize("chip", ["MCP3008", "MCP3208"])
def test_adc_bursts_with_noise_give_no_false_states(tmp_path: Path, chip: AdcChip) -> None:
    """Each EV state, with and without PWM, σ 0.2 V noise: 25 bursts each, all correct."""
    with PilotSim(tmp_path, SimEV(reaction_s=0.0), adc_chip=chip, noise_v=0.2, seed=7) as rig:
        rig.pwm.pre_export(2, 0)
        reader = CpReader(open_channel(chip, 0, pin_factory=rig.factory))
        classifier = Classifier()
        directory = rig.pwm.channel_dir(2, 0)

        def drive(duty_ns: int) -> None:
            (directory / "period").write_text(f"{PERIOD_NS}\n")
            (directory / "duty_cycle").write_text(f"{duty_ns}\n")
            (directory / "enable").write_text("1\n")
            time.sleep(0.001)  # past the simulator's output cache

        cases: list[tuple[str, int, PilotState]] = [
            ("unplugged", PERIOD_NS, S.A),
            ("unplugged", 100_000, S.A),
            ("plugged", PERIOD_NS, S.B),
            ("plugged", 100_000, S.B),
            ("asking", 266_700, S.C),
            ("ventilation", 892_000, S.D),
            ("short", 533_300, S.E),
            ("plugged", 0, S.F),
        ]
        try:
            for setup, duty, expected in cases:
                rig.ev.plugged = setup != "unplugged"
                rig.ev.asking = setup in ("asking", "ventilation")
                rig.line.ventilation = setup == "ventilation"
                rig.line.short_to_pe = setup == "short"
                drive(duty)
                state: PilotState | None = None
                for _ in range(25):
                    burst = reader.burst()
                    state = classifier.classify(burst.high_v, state)
                    assert state is expected, (setup, duty, burst)
                    if 0 < duty < PERIOD_NS and state.plugged:
                        assert classifier.diode_fault(burst, True, state) is False
        finally:
            reader.close()


@pytest.mark.parametrize(("chip", "tolerance"), [("MCP3008", 0.05), ("MCP3208", 0.012)])
def test_adc_levels_match_the_resistor_network(
    tmp_path: Path, chip: AdcChip, tolerance: float
) -> None:
    with PilotSim(tmp_path, SimEV(reaction_s=0.0, plugged=True), adc_chip=chip) as rig:
        rig.pwm.pre_export(2, 0)
        directory = rig.pwm.channel_dir(2, 0)
        for name, value in (("period", PERIOD_NS), ("duty_cycle", 533_300), ("enable", 1)):
            (directory / name).write_text(f"{value}\n")
        reader = CpReader(open_channel(chip, 0, pin_factory=rig.factory))
        try:
            burst = reader.burst()
        finally:
            reader.close()
        assert burst.high_v == pytest.approx(ev_high_v(S.B), abs=tolerance)  # 8.98 V
        assert burst.low_v == pytest.approx(-12.0, abs=tolerance)
        assert burst.count == 40


# --- stubs and a fake clock: blanking, errors, settings --------------------------------


class StubPwm:
    def __init__(self) -> None:
        self.outputs: list[PilotOutput] = []
        self.fail = False
        self.closed = False

    def set_output(self, output: PilotOutput) -> None:
        if self.fail:
            raise OSError("EIO")
        self.outputs.append(output)

    def set_disconnected(self, disconnected: bool) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class StubCp:
    def __init__(self) -> None:
        self.high, self.low = 12.0, 12.0
        self.fail = False

    def set(self, high: float, low: float | None = None) -> None:
        self.high, self.low = high, high if low is None else low

    def burst(self) -> CpSample:
        if self.fail:
            raise OSError("SPI transfer failed")
        return CpSample(self.high, self.low, 40, 0.002)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def stepper(pilot: IecPilot, clock: Clock) -> Callable[[float], list[float]]:
    """Poll every 20 ms for `seconds`; return the times at which the state changed."""

    def step(seconds: float) -> list[float]:
        changes = []
        end = clock.t + seconds
        while clock.t < end - 1e-9:
            clock.t += 0.02
            before = pilot.state
            pilot.poll_once()
            if pilot.state is not before:
                changes.append(round(clock.t, 3))
        return changes

    return step


def test_blanking_delays_closing_but_opening_by_at_most_open_blank() -> None:
    clock, cp = Clock(), StubCp()
    pilot = IecPilot(StubPwm(), cp, clock=clock)
    step = stepper(pilot, clock)
    step(0.1)
    assert pilot.state is S.A
    cp.set(9.0)
    step(0.1)
    assert pilot.state is S.B
    t_pwm = clock.t
    pilot.set_output(PilotOutput.offering(16))
    cp.set(6.0, -12.0)  # the EV closes S2 at once
    [t_c] = step(1.0)
    assert t_c >= t_pwm + pilot.blank_s + pilot.debouncer.close_confirm_s - 1e-9
    t_change = clock.t
    pilot.set_output(PilotOutput.offering(10))
    cp.set(9.0, -12.0)  # … and opens it right after a duty change
    [t_b] = step(0.2)
    assert pilot.state is S.B
    assert pilot.open_blank_s - 1e-9 <= t_b - t_change <= pilot.open_blank_s + 0.02 + 1e-9


def test_a_burst_straddling_an_output_change_is_dropped() -> None:
    clock, cp = Clock(), StubCp()
    pilot = IecPilot(StubPwm(), cp, clock=clock, blank_s=0.0, open_blank_s=0.0)
    step = stepper(pilot, clock)
    step(0.1)
    original = cp.burst

    def burst() -> CpSample:
        pilot.set_output(PilotOutput.state_f())  # the core writes while we sample
        cp.set(-12.0)
        return original()

    cp.burst = burst  # type: ignore[method-assign]
    clock.t += 0.02
    pilot.poll_once()
    cp.burst = original  # type: ignore[method-assign]
    assert pilot.debouncer.candidate is None  # not judged on a mixed burst
    step(0.04)
    assert pilot.state is S.F


def test_adc_and_pwm_errors_raise_a_generic_fault() -> None:
    async def body() -> None:
        pwm, cp = StubPwm(), StubCp()
        pilot = IecPilot(pwm, cp)
        faults: list[tuple[FaultKind, bool]] = []
        pilot.on_fault(lambda k, a: faults.append((k, a)))
        await pilot.start()
        await asyncio.sleep(0.05)
        cp.fail = True
        await asyncio.sleep(0.06)
        cp.fail = False
        await asyncio.sleep(0.06)
        pwm.fail = True
        pilot.set_output(PilotOutput.offering(16))
        pwm.fail = False
        pilot.set_output(PilotOutput.offering(16))
        await asyncio.sleep(0.01)
        await pilot.stop()
        assert faults == [(FaultKind.GENERIC, True), (FaultKind.GENERIC, False)] * 2
        assert pwm.closed

    run(body)


def test_settings_that_break_the_budget_are_refused() -> None:
    with pytest.raises(ValueError, match="opening budget"):
        IecPilot(StubPwm(), StubCp(), poll_s=0.05)
    with pytest.raises(ValueError, match="opening budget"):
        IecPilot(StubPwm(), StubCp(), open_blank_s=0.07)
    with pytest.raises(ValueError, match="diode_confirm_s"):
        IecPilot(StubPwm(), StubCp(), diode_confirm_s=0.5)
    IecPilot(StubPwm(), StubCp(), blank_s=0.55)  # Tinkerforge's 550 ms: fine, opening capped
