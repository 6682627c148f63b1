"""Simulated station hardware: pilots, contactors, locks, meters and an RFID reader.

Each part implements the contract in drivers.interfaces, so the daemon runs the
same code against the simulator as against real drivers. Two rules keep the
simulation faithful to what the station core may assume of a driver:

* inputs (state, fault and card callbacks) are always delivered later on the
  event loop (call_soon / call_later), never inside set_output / set_closed, so
  the core can apply several outputs without being called back half-way;
* nothing is reported before start(), like a driver whose polling has not begun;
  start() then reports every pilot's state and every active fault once.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import string
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from controller.core.iec61851 import PilotOutput, PilotState
from drivers.interfaces import (
    CableCallback,
    CardCallback,
    CardReader,
    ConnectorLock,
    Contactor,
    FaultCallback,
    FaultKind,
    FaultSource,
    Hardware,
    Indicator,
    Meter,
    MeterReading,
    Pilot,
    PilotCallback,
    ResidualCurrentMonitor,
)
from hwsim.ev import SimEV
from hwsim.event_log import EventLog

_UID_HEX_LENGTHS = (8, 14, 20)  # 4, 7 or 10 bytes (ISO 14443 single, double, triple size)


def normalise_uid(uid: str) -> str:
    """Return `uid` as upper-case hex, as the CardCallback contract requires.

    Colons, dashes and spaces between bytes are accepted because that is how
    UIDs are usually printed; anything else that is not 4, 7 or 10 bytes of hex
    is refused, since a real reader could never produce it.
    """
    text = uid.strip()
    for sep in (":", "-", " "):
        text = text.replace(sep, "")
    if len(text) not in _UID_HEX_LENGTHS or any(c not in string.hexdigits for c in text):
        raise ValueError(f"invalid card UID {uid!r}: expected 4, 7 or 10 bytes of hex")
    return text.upper()


class SimScheduler:
    """The shared clock of one simulated station.

    Keeping every pending handle in one place lets stop() cancel them all, and
    the `running` flag gates reports the way a real driver's polling would.
    """

    def __init__(self) -> None:
        self.running = False
        self.frozen = False  # after stop(): no timers, transitions apply at once
        self._handles: set[asyncio.Handle] = set()

    @staticmethod
    def _loop() -> asyncio.AbstractEventLoop | None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def emit(self, callback: Callable[..., None], *args: Any) -> None:
        """Deliver a report on the next loop iteration, if the hardware is started."""
        loop = self._loop()
        if not self.running or loop is None:
            return

        def run() -> None:
            self._handles.discard(handle)
            callback(*args)

        handle = loop.call_soon(run)
        self._handles.add(handle)

    def later(self, delay_s: float, callback: Callable[[], None]) -> asyncio.TimerHandle | None:
        """Schedule an internal transition; None means "no clock here, apply it now"."""
        loop = self._loop()
        if self.frozen or loop is None:
            return None

        def run() -> None:
            self._handles.discard(handle)
            callback()

        handle = loop.call_later(delay_s, run)
        self._handles.add(handle)
        return handle

    def cancel(self, handle: asyncio.Handle | None) -> None:
        if handle is not None:
            handle.cancel()
            self._handles.discard(handle)

    def cancel_all(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()


class _FaultSource:
    """Fault bookkeeping shared by the parts: report only real changes, replay on start."""

    def __init__(self, scheduler: SimScheduler) -> None:
        self._sched = scheduler
        self._fault_callbacks: list[FaultCallback] = []
        self._active: set[FaultKind] = set()

    def on_fault(self, callback: FaultCallback) -> None:
        self._fault_callbacks.append(callback)

    @property
    def active_faults(self) -> frozenset[FaultKind]:
        return frozenset(self._active)

    def _set_fault(self, kind: FaultKind, active: bool) -> None:
        if (kind in self._active) == active:
            return
        if active:
            self._active.add(kind)
        else:
            self._active.discard(kind)
        self._report_fault(kind, active)

    def _report_fault(self, kind: FaultKind, active: bool) -> None:
        for callback in self._fault_callbacks:
            self._sched.emit(callback, kind, active)

    def replay_faults(self) -> None:
        for kind in sorted(self._active):
            self._report_fault(kind, True)


SIM_CABLE_A = 32.0  # the rating a plugged cable shows on the proximity pilot


Recorder = Callable[..., None]  # record(event, **fields): see hwsim.event_log


def _not_recorded(event: str, **fields: Any) -> None:
    pass


class SimPilot(_FaultSource):
    """Control pilot of one connector, reading the CP state the simulated EV presents."""

    def __init__(self, scheduler: SimScheduler, ev: SimEV, touch: Callable[[], None]) -> None:
        super().__init__(scheduler)
        self.record: Recorder = _not_recorded
        self._ev = ev
        self._touch = touch  # integrates the meter before the draw changes
        self._output = PilotOutput.x1()
        self._state, _ = ev.next_state(self._output, PilotState.A)
        self._state_callbacks: list[PilotCallback] = []
        self._cable_callbacks: list[CableCallback] = []
        self._cable_reported: float | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._pending_target: PilotState | None = None
        if not ev.diode_ok:
            self._active.add(FaultKind.DIODE)

    @property
    def output(self) -> PilotOutput:
        return self._output

    @property
    def state(self) -> PilotState:
        """The CP state currently presented (what the last report said, or will say)."""
        return self._state

    def set_output(self, output: PilotOutput) -> None:
        if output == self._output:
            return
        self._touch()
        self._output = output
        self.record("output", mode=output.mode.value, duty=output.duty_percent)
        self._update()

    def on_state(self, callback: PilotCallback) -> None:
        self._state_callbacks.append(callback)

    def on_cable(self, callback: CableCallback) -> None:
        """The EV's cable reads as a 32 A cable on the proximity pilot while plugged."""
        self._cable_callbacks.append(callback)

    def ev_changed(self) -> None:
        """Called after any change of the EV: re-evaluate the CP state and the diode check."""
        self._set_fault(FaultKind.DIODE, not self._ev.diode_ok)
        cable = SIM_CABLE_A if self._ev.plugged else None
        if cable != self._cable_reported:
            self._cable_reported = cable
            for callback in self._cable_callbacks:
                self._sched.emit(callback, cable)
        self._update()

    def report_state(self) -> None:
        """Report the current state once (start() uses it for the initial reading)."""
        for callback in self._state_callbacks:
            self._sched.emit(callback, self._state)

    def cancel_pending(self) -> None:
        self._sched.cancel(self._pending)
        self._pending = None
        self._pending_target = None

    def _update(self) -> None:
        # Follows immediate transitions (A -> B on plugging) until the EV either
        # rests or needs its reaction time; a timer already heading for the same
        # target is kept, so repeated outputs do not postpone the EV's reaction.
        while True:
            target, delay = self._ev.next_state(self._output, self._state)
            if target == self._state:
                self.cancel_pending()
                return
            if delay > 0:
                if self._pending is not None and self._pending_target == target:
                    return
                self.cancel_pending()
                self._pending = self._sched.later(delay, functools.partial(self._on_timer, target))
                if self._pending is not None:
                    self._pending_target = target
                    return
            self.cancel_pending()
            self._apply(target)

    def _on_timer(self, target: PilotState) -> None:
        self._pending = None
        self._pending_target = None
        self._apply(target)
        self._update()

    def _apply(self, state: PilotState) -> None:
        self._touch()
        self._state = state
        self.record("pilot", state=state.value)
        self.report_state()


class SimContactor(_FaultSource):
    """Main contactor with feedback; can be welded (stuck closed) by fault injection."""

    def __init__(self, scheduler: SimScheduler, touch: Callable[[], None]) -> None:
        super().__init__(scheduler)
        self._touch = touch
        self._closed = False
        self.record: Recorder = _not_recorded

    def set_closed(self, closed: bool) -> None:
        if closed != self._closed:
            self._touch()
            self._closed = closed
            self.record("contactor", closed=closed)

    @property
    def closed(self) -> bool:
        """The commanded state."""
        return self._closed

    @property
    def welded(self) -> bool:
        return FaultKind.WELD in self._active

    @property
    def actually_closed(self) -> bool:
        """What the power path does: a welded contactor conducts whatever it is told."""
        return self._closed or self.welded

    def set_welded(self, welded: bool) -> None:
        self._touch()
        self._set_fault(FaultKind.WELD, welded)

    def set_fault(self, kind: FaultKind, active: bool) -> None:
        """Report a power-path fault (RCD, GENERIC) without changing the contacts."""
        if kind is FaultKind.WELD:
            self.set_welded(active)
        else:
            self._set_fault(kind, active)


class SimLock:
    """Socket-outlet lock actuator whose feedback always agrees unless jammed."""

    def __init__(self) -> None:
        self.locked = False
        self.jammed = False  # a jammed lock stays where it is and its feedback says so

    def on_fault(self, callback: FaultCallback) -> None:
        """A jammed lock shows in lock()/unlock()'s result; no fault reports here."""

    def lock(self) -> bool:
        if not self.jammed:
            self.locked = True
        return self.locked

    def unlock(self) -> bool:
        if not self.jammed:
            self.locked = False
        return not self.locked


class SimMeter(_FaultSource):
    """Energy meter integrating the EV's draw over real (monotonic) time.

    Integration happens lazily: every change that could alter the draw calls
    advance() first, so the register is exact without a polling task.
    """

    def __init__(
        self,
        scheduler: SimScheduler,
        currents: Callable[[], tuple[float, float, float]],
        voltage_v: float = 230.0,
    ) -> None:
        super().__init__(scheduler)
        self._currents = currents
        self.voltage_v = voltage_v
        self._energy_wh = 0.0
        self._t = time.monotonic()
        self.after_read: Callable[[], None] | None = None

    @property
    def online(self) -> bool:
        return FaultKind.METER not in self._active

    def set_online(self, online: bool) -> None:
        self._set_fault(FaultKind.METER, not online)

    def power_w(self) -> float:
        return sum(self.voltage_v * amps for amps in self._currents())

    def advance(self) -> None:
        """Add the energy drawn since the last call at the present (not yet changed) power."""
        now = time.monotonic()
        self._energy_wh += self.power_w() * (now - self._t) / 3600.0
        self._t = now

    @property
    def energy_wh(self) -> float:
        """The register, up to now; it keeps counting while the meter is offline."""
        self.advance()
        return self._energy_wh

    @property
    def register_wh(self) -> float:
        """The register as of the last advance (what a save writes: never less than any
        reading the daemon has had)."""
        return self._energy_wh

    def set_energy(self, wh: float) -> None:
        if not math.isfinite(wh) or wh < 0:
            raise ValueError(f"meter register {wh!r} Wh must be a finite number >= 0")
        self._energy_wh = float(wh)
        self._t = time.monotonic()

    async def read(self) -> MeterReading:
        if not self.online:
            raise OSError("meter not answering")
        self.advance()
        if self.after_read is not None:
            self.after_read()  # the register is saved before anyone sees this reading
        v = self.voltage_v
        return MeterReading(
            energy_wh=self.register_wh,  # the value saved, not a later one
            power_w=self.power_w(),
            current_a=self._currents(),
            voltage_v=(v, v, v),
            frequency_hz=50.0,
        )


class SimReader(_FaultSource):
    """RFID reader: each presentation reaches the card callback once, unless offline."""

    def __init__(self, scheduler: SimScheduler) -> None:
        super().__init__(scheduler)
        self._card_callbacks: list[CardCallback] = []

    def on_card(self, callback: CardCallback) -> None:
        self._card_callbacks.append(callback)

    @property
    def online(self) -> bool:
        return FaultKind.READER not in self._active

    def set_online(self, online: bool) -> None:
        self._set_fault(FaultKind.READER, not online)

    def present(self, uid: str) -> bool:
        """Present a card; True if it was delivered. Invalid UIDs raise ValueError even offline."""
        normalised = normalise_uid(uid)
        if not self.online or not self._sched.running:
            return False
        for callback in self._card_callbacks:
            self._sched.emit(callback, normalised)
        return True


class SimIndicator:
    """The status LED: remembers what it was last asked to show."""

    def __init__(self) -> None:
        self.showing: str | None = None

    def show(self, status: str) -> None:
        self.showing = status


class SimConnector:
    """The parts of one connector and the EV plugged into it, wired together."""

    def __init__(
        self,
        number: int,
        scheduler: SimScheduler,
        *,
        voltage_v: float = 230.0,
        has_lock: bool = True,
        ev: SimEV | None = None,
    ) -> None:
        self.number = number
        self.ev = ev if ev is not None else SimEV()
        self.meter = SimMeter(scheduler, self._phase_currents, voltage_v)
        self.pilot = SimPilot(scheduler, self.ev, self.meter.advance)
        self.contactor = SimContactor(scheduler, self.meter.advance)
        self.lock: SimLock | None = SimLock() if has_lock else None
        self.ev.watch(before=self.meter.advance, after=self.pilot.ev_changed)

    def _phase_currents(self) -> tuple[float, float, float]:
        return self.ev.phase_currents(
            self.pilot.output, self.pilot.state, self.contactor.actually_closed
        )

    def active_faults(self) -> frozenset[FaultKind]:
        return self.pilot.active_faults | self.contactor.active_faults | self.meter.active_faults

    def snapshot(self) -> dict[str, Any]:
        output = self.pilot.output
        faults = self.active_faults()
        return {
            "connector": self.number,
            "pilot": {
                "mode": output.mode.value,
                "duty_percent": output.duty_percent,
                "offered_current_a": output.offered_current_a,
                "state": self.pilot.state.value,
            },
            "contactor": {
                "commanded_closed": self.contactor.closed,
                "actually_closed": self.contactor.actually_closed,
            },
            "lock": None if self.lock is None else ("locked" if self.lock.locked else "unlocked"),
            "ev": {
                "plugged": self.ev.plugged,
                "asking": self.ev.asking,
                "max_current_a": self.ev.max_current_a,
                "phases": self.ev.phases,
                "stubborn": self.ev.stubborn,
                "diode_ok": self.ev.diode_ok,
                "current_a": list(self._phase_currents()),
            },
            "meter": {
                "energy_wh": self.meter.energy_wh,
                "power_w": self.meter.power_w(),
                "online": self.meter.online,
            },
            "faults": sorted(kind.value for kind in faults),
        }


class SimHardware:
    """A simulated station with 1 or 2 connectors and one RFID reader (the Hardware contract).

    The plain methods (plug, ev_charge, present_card, raise_fault, ...) are the
    simulation's control surface; they use 1-based connector numbers like the
    station's operators and OCPP do.
    """

    def __init__(
        self,
        connectors: int,
        voltage_v: float = 230.0,
        *,
        has_lock: Sequence[bool] | None = None,
        ev_reaction_s: float = 0.2,
        world_file: Path | None = None,
        event_log: Path | None = None,
    ) -> None:
        """`world_file`: where the simulated world (meter registers, the EVs' plugs)
        is kept, so it outlives a restart or a crash of the daemon as a real car and
        a real meter do. `event_log`: where to append every pilot and contactor
        change (hwsim.event_log)."""
        if connectors not in (1, 2):
            raise ValueError(f"a simulated station has 1 or 2 connectors, not {connectors!r}")
        if has_lock is None:
            has_lock = [True] * connectors
        if len(has_lock) != connectors:
            raise ValueError(f"has_lock needs one entry per connector ({connectors})")
        self._sched = SimScheduler()
        self.connectors: list[SimConnector] = [
            SimConnector(
                n,
                self._sched,
                voltage_v=voltage_v,
                has_lock=has_lock[n - 1],
                ev=SimEV(reaction_s=ev_reaction_s),
            )
            for n in range(1, connectors + 1)
        ]
        # Typed as the protocols so SimHardware satisfies Hardware (lists are invariant).
        self.pilots: list[Pilot] = [c.pilot for c in self.connectors]
        self.contactors: list[Contactor] = [c.contactor for c in self.connectors]
        self.locks: list[ConnectorLock | None] = [c.lock for c in self.connectors]
        self.meters: list[Meter] = [c.meter for c in self.connectors]
        self.sim_reader = SimReader(self._sched)
        self.reader: CardReader | None = self.sim_reader
        # This simulation sits at the driver interface: its connectors have fixed cables,
        # no separate RCM (trips come through the contactor) and no e-stop.
        self.rcms: list[ResidualCurrentMonitor | None] = [None] * connectors
        self.station_inputs: list[FaultSource] = []
        self.sim_indicator = SimIndicator()
        self.indicator: Indicator | None = self.sim_indicator
        self._events = EventLog(event_log) if event_log is not None else None
        if self._events is not None:
            for c in self.connectors:
                c.pilot.record = c.contactor.record = functools.partial(
                    self._events.record, c.number
                )
        self._world_file = world_file
        if world_file is not None:
            self._load_world(world_file)
            for c in self.connectors:
                c.meter.after_read = self._save_world

    def _load_world(self, path: Path) -> None:
        try:
            world = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # a new world
        for c, saved in zip(self.connectors, world.get("connectors", []), strict=False):
            c.meter.set_energy(float(saved.get("energy_wh", 0.0)))
            c.ev.plugged = bool(saved.get("plugged", False))
            c.ev.asking = bool(saved.get("asking", False))

    def _save_world(self) -> None:
        if self._world_file is None:
            return
        world = {
            "connectors": [
                {"energy_wh": c.meter.register_wh, "plugged": c.ev.plugged, "asking": c.ev.asking}
                for c in self.connectors
            ]
        }
        tmp = self._world_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(world))
        os.replace(tmp, self._world_file)

    # -- Hardware contract -------------------------------------------------

    async def start(self) -> None:
        self._sched.running = True
        self._sched.frozen = False
        if self._events is not None:
            self._events.record(0, "start")
            for c in self.connectors:
                c.pilot.record("pilot", state=c.pilot.state.value)
        for c in self.connectors:
            c.pilot.report_state()
            c.pilot.replay_faults()
            c.contactor.replay_faults()
            c.meter.replay_faults()
        self.sim_reader.replay_faults()

    async def stop(self) -> None:
        self._sched.running = False
        self._sched.frozen = True  # later transitions (C -> B after PWM off) apply at once
        for c in self.connectors:
            c.contactor.set_closed(False)
            c.pilot.set_output(PilotOutput.x1())
            c.pilot.cancel_pending()
        self._sched.cancel_all()

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    # -- simulation control surface ----------------------------------------

    def connector(self, n: int) -> SimConnector:
        """The connector numbered `n` (1-based); ValueError if the station has no such one."""
        count = len(self.connectors)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= count:
            valid = "1" if count == 1 else f"1..{count}"
            raise ValueError(f"no connector {n!r}: this station has connector {valid}")
        return self.connectors[n - 1]

    def ev(self, n: int) -> SimEV:
        return self.connector(n).ev

    def plug(self, n: int) -> None:
        self.connector(n).ev.plugged = True
        self._save_world()

    def unplug(self, n: int) -> None:
        self.connector(n).ev.plugged = False
        self._save_world()

    def ev_charge(self, n: int, on: bool) -> None:
        """The EV starts (True) or stops (False) asking for energy."""
        self.connector(n).ev.asking = on
        self._save_world()

    def ev_current(self, n: int, amps: float) -> None:
        """Limit what the EV draws per phase, whatever the EVSE offers."""
        self.connector(n).ev.max_current_a = amps

    def ev_phases(self, n: int, phases: int) -> None:
        self.connector(n).ev.phases = phases

    def ev_stubborn(self, n: int, on: bool) -> None:
        self.connector(n).ev.stubborn = on

    def present_card(self, uid: str) -> bool:
        """Present a card to the reader; True if delivered (started and online)."""
        return self.sim_reader.present(uid)

    def set_meter(self, n: int, wh: float) -> None:
        self.connector(n).meter.set_energy(wh)
        self._save_world()

    def raise_fault(self, kind: FaultKind | str, connector: int | None = None) -> None:
        """Inject a fault; `connector` is required except for READER (station-wide)."""
        self._fault(kind, connector, True)

    def clear_fault(self, kind: FaultKind | str, connector: int | None = None) -> None:
        """Undo an injected fault and report it inactive (no-op if it was not active)."""
        self._fault(kind, connector, False)

    def _fault(self, kind: FaultKind | str, connector: int | None, active: bool) -> None:
        kind = FaultKind(kind)
        if kind is FaultKind.READER:
            self.sim_reader.set_online(not active)
            return
        if connector is None:
            raise ValueError(f"fault {kind.value!r} needs a connector number")
        c = self.connector(connector)
        if kind is FaultKind.DIODE:
            c.ev.diode_ok = not active
        elif kind is FaultKind.METER:
            c.meter.set_online(not active)
        else:  # RCD, WELD, GENERIC: the power path
            c.contactor.set_fault(kind, active)

    def snapshot(self) -> dict[str, Any]:
        """Everything observable, JSON-serialisable, for the control socket and tests."""
        faults: list[dict[str, Any]] = []
        for c in self.connectors:
            for kind in c.active_faults():
                faults.append({"kind": kind.value, "connector": c.number})
        faults.sort(key=lambda f: (f["connector"], f["kind"]))
        if not self.sim_reader.online:
            faults.append({"kind": FaultKind.READER.value, "connector": None})
        return {
            "connectors": [c.snapshot() for c in self.connectors],
            "reader": {"online": self.sim_reader.online},
            "indicator": self.sim_indicator.showing,
            "faults": faults,
        }


def _conforms(hw: SimHardware) -> Hardware:
    """Let mypy prove that SimHardware satisfies the Hardware contract."""
    return hw
