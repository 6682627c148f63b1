"""Safety reaction time: a pilot change (A, B, E, F), an RCM trip or a blocking
fault → the contactor commanded open, while the daemon is busy.

IEC 61851-1 gives 100 ms from C→B to an open contactor, and evsed opens it in
the callback that reports the change, so what can delay it is the event loop
being busy with something else. This benchmark therefore runs the daemon's own
parts in one process and keeps them busy:

* a real Station on SimHardware (its contactor wrapped to timestamp each
  opening command), a Store and an Authorizer in a temporary directory;
* a ChargePoint16 connected over loopback to an in-process test CSMS (on the
  same loop, so its work counts as load too), MeterValueSampleInterval and
  ClockAlignedDataInterval 1 s;
* a separate process hammering the control socket's `state` snapshot, the
  CSMS asking GetConfiguration 4 times a second, an unknown card tapped twice
  a second (Authorize round trips), meter polling every 0.2 s, and logging at
  info level to a file as the daemon does.

Each change is injected from a thread the way the real pilot and GPIO drivers
report one: the thread takes t0 = perf_counter_ns() and hands the change to
the loop with call_soon_threadsafe, where it enters the simulation's own
callback path (SimPilot / SimContactor → Station). The latency is t0 → the
contactor's set_closed(False). Injection instants are jittered so events land
at random phases of the periodic work.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import probe
from bench.common import CARD, STATION_ID, Row, Target, scratch_dir, summarize
from controller.authorizer import Authorizer
from controller.control import ControlServer
from controller.core.connector import ConnectorSettings
from controller.core.iec61851 import PilotState
from controller.logs import ContextFormatter
from controller.ocpp.v16.charge_point import ChargePoint16, LinkSettings
from controller.ocpp.v16.keys import ConfigurationKeys, core_keys
from controller.station import Station
from controller.store import Store
from drivers.interfaces import Contactor, FaultCallback
from hwsim.csms import Csms
from hwsim.hardware import SimHardware

FULL = {"events": 1000}
QUICK = {"events": 50}
KINDS = ("A", "B", "E", "F", "rcd", "fault")
P99_TARGET_MS = 20.0
MAX_TARGET_MS = 100.0
UNKNOWN_CARD = "04DEADBEEF0001"
OPEN_TIMEOUT_S = 2.0
RESTORE_TIMEOUT_S = 10.0


class StampedContactor:
    """A Contactor that timestamps every command that opens it, then obeys."""

    def __init__(self, inner: Contactor) -> None:
        self._inner = inner
        self.on_open: Callable[[int], None] | None = None
        self.on_close: Callable[[], None] | None = None

    def set_closed(self, closed: bool) -> None:
        if not closed and self._inner.closed:
            stamp = time.perf_counter_ns()  # first: the command is given now
            self._inner.set_closed(False)
            if self.on_open is not None:
                self.on_open(stamp)
            return
        was = self._inner.closed
        self._inner.set_closed(closed)
        if closed and not was and self.on_close is not None:
            self.on_close()

    @property
    def closed(self) -> bool:
        return self._inner.closed

    def on_fault(self, callback: FaultCallback) -> None:
        self._inner.on_fault(callback)


class BenchHardware(SimHardware):
    """One simulated connector without a lock, its contactor stamped; a quick EV
    (20 ms reaction) so that the cycles between events stay short."""

    def __init__(self) -> None:
        super().__init__(1, has_lock=[False], ev_reaction_s=0.02)
        self.stamped = StampedContactor(self.connectors[0].contactor)
        self.contactors = [self.stamped]

    def inject(self, kind: str) -> None:
        """Make the change of `kind` happen in the simulation (on the loop)."""
        if kind == "A":
            self.unplug(1)
        elif kind == "B":
            self.ev_charge(1, False)  # the EV stops asking: C -> B at once
        elif kind in ("E", "F"):
            # The EV model never presents E or F; a short or -12 V is a reading the
            # pilot reports through the same path as any transition.
            self.connectors[0].pilot._apply(PilotState(kind))
        elif kind == "rcd":
            self.raise_fault("rcd", 1)
        elif kind == "fault":
            self.raise_fault("generic", 1)
        else:
            raise ValueError(f"unknown event kind {kind!r}")

    def restore(self, kind: str) -> None:
        """Undo `kind` so that charging can start again (a new session where the
        change ended the transaction)."""
        if kind == "B":
            self.ev_charge(1, True)
            return
        if kind == "rcd":
            self.clear_fault("rcd", 1)  # latched until the EV is unplugged
            self.unplug(1)
        elif kind == "fault":
            self.clear_fault("generic", 1)
        if kind in ("A", "rcd"):
            self.plug(1)
        self.present_card(CARD)


class Injector(threading.Thread):
    """Hands changes to the loop from its own thread, as the pilot driver does."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name="bench-injector", daemon=True)
        self._loop = loop
        self.jobs: queue.Queue[tuple[float, Callable[[int], None]] | None] = queue.Queue()

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            delay, change = job
            time.sleep(delay)
            t0 = time.perf_counter_ns()
            self._loop.call_soon_threadsafe(change, t0)


@contextlib.contextmanager
def _daemon_logging(path: Path) -> Iterator[None]:
    """Log like the daemon (info, one line per event) into a file; restore afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    quiet = {name: logging.getLogger(name).level for name in ("websockets", "asyncio", "hwsim")}
    handler = logging.FileHandler(path)
    handler.setFormatter(
        ContextFormatter("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")
    )
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in quiet:  # as the daemon does; the test CSMS is not part of the station
        logging.getLogger(name).setLevel(logging.WARNING if name == "hwsim" else logging.INFO)
    try:
        yield
    finally:
        root.handlers[:], root.level = saved
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
        handler.close()


class _Event:
    """One injected change, as the loop sees it."""

    def __init__(self, kind: str, loop: asyncio.AbstractEventLoop) -> None:
        self.kind = kind
        self.t0: int | None = None
        self.opened: asyncio.Future[int] = loop.create_future()


async def _periodic(
    every_s: float, work: Callable[[], Any], counter: dict[str, int], key: str
) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            result = work()
            if asyncio.iscoroutine(result):
                await result
            counter[key] += 1
        except Exception:  # load must not end the benchmark; count what failed
            counter[key + "_failed"] += 1


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _run(
    events: int, workdir: Path, jitter_s: float, hammer_interval_s: float, seed: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    counts: dict[str, int] = {
        "state_snapshots": 0,
        "csms_get_configuration": 0,
        "csms_get_configuration_failed": 0,
        "unknown_card_taps": 0,
        "unknown_card_taps_failed": 0,
    }
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    missed: dict[str, int] = dict.fromkeys(KINDS, 0)
    current: _Event | None = None
    closed_waiter: asyncio.Future[None] | None = None
    spurious = 0
    started = time.monotonic()
    # Everything is undone in reverse order, whatever fails on the way.
    async with contextlib.AsyncExitStack() as stack:
        csms = Csms(id_tags={CARD: "Accepted"})
        await csms.start()
        stack.push_async_callback(csms.stop)
        store = Store(workdir / "evsed.db", budget_bytes=32_000_000)
        stack.callback(store.close)
        keys = ConfigurationKeys(
            core_keys(1),
            # Sampled values of the running transaction and clock-aligned values of the
            # connector, both every second: MeterValues traffic whatever the session does.
            initial={"MeterValueSampleInterval": "1", "ClockAlignedDataInterval": "1"},
            persisted=store.config_keys(),
            persist=store.set_config_key,
        )
        hw = BenchHardware()
        authorizer = Authorizer(workdir / "auth.db")
        stack.callback(authorizer.close)
        station = Station(hw, store, keys, [ConnectorSettings(max_current_a=32.0)], [3], authorizer)
        station.meter_poll_interval = 0.2
        link = ChargePoint16(
            LinkSettings(url=csms.url, station_id=STATION_ID, vendor="evsed", model="bench"),
            station,
            keys,
            store,
        )

        def snapshot() -> dict[str, Any]:
            counts["state_snapshots"] += 1
            return {**station.snapshot(), "ocpp": link.link_state()}

        control = ControlServer(workdir / "control.sock", snapshot, hw, link.cut, link.restore)

        def opened(stamp: int) -> None:
            nonlocal spurious
            if current is None or current.t0 is None or current.opened.done():
                spurious += 1  # opened by something other than the injected change
            else:
                current.opened.set_result(stamp)

        def closed() -> None:
            if closed_waiter is not None and not closed_waiter.done():
                closed_waiter.set_result(None)

        hw.stamped.on_open = opened
        hw.stamped.on_close = closed

        async def charging() -> None:
            nonlocal closed_waiter
            if hw.stamped.closed:
                return
            closed_waiter = loop.create_future()
            try:
                await asyncio.wait_for(closed_waiter, RESTORE_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError(
                    f"the contactor did not close within {RESTORE_TIMEOUT_S} s: "
                    f"{station.snapshot()}"
                ) from None

        await station.start()
        stack.push_async_callback(station.stop)
        await control.start()
        stack.push_async_callback(control.stop)
        tasks: list[asyncio.Task[Any]] = []
        stack.push_async_callback(_cancel, tasks)
        tasks.append(asyncio.ensure_future(link.run()))
        await csms.wait_for("BootNotification", timeout=10.0)
        hw.plug(1)
        hw.ev_charge(1, True)
        hw.present_card(CARD)
        await charging()
        stack.callback(probe.end, probe.spawn("hammer", str(control.path), str(hammer_interval_s)))
        tasks.append(
            asyncio.ensure_future(
                _periodic(
                    0.25,
                    lambda: csms.call("GetConfiguration", {}, timeout=10.0),
                    counts,
                    "csms_get_configuration",
                )
            )
        )
        tasks.append(
            asyncio.ensure_future(
                _periodic(0.5, lambda: hw.present_card(UNKNOWN_CARD), counts, "unknown_card_taps")
            )
        )
        injector = Injector(loop)
        injector.start()
        stack.callback(injector.jobs.put, None)
        gc.freeze()  # as the daemon does once it is up
        stack.callback(gc.unfreeze)
        await asyncio.sleep(1.0)  # let the load get going
        load_started = time.monotonic()
        counts_before = dict(counts)
        for i in range(events):
            kind = KINDS[i % len(KINDS)]
            await charging()
            event = current = _Event(kind, loop)

            def change(t0: int, event: _Event = event) -> None:
                event.t0 = t0
                hw.inject(event.kind)

            injector.jobs.put((rng.uniform(0.0, jitter_s), change))
            try:
                stamp = await asyncio.wait_for(
                    asyncio.shield(event.opened), OPEN_TIMEOUT_S + jitter_s
                )
            except TimeoutError:
                missed[kind] += 1
                # The change may still land: wait for it before undoing it.
                deadline = time.monotonic() + OPEN_TIMEOUT_S
                while event.t0 is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
            else:
                assert event.t0 is not None
                latencies[kind].append((stamp - event.t0) / 1e6)
            current = None
            hw.restore(kind)
        load_s = time.monotonic() - load_started
        calls = {
            action: len(csms.calls(action))
            for action in (
                "Authorize",
                "StartTransaction",
                "StopTransaction",
                "MeterValues",
                "StatusNotification",
            )
        }
    every = [x for kind in KINDS for x in latencies[kind]]
    rates = {
        key: round((counts[key] - counts_before[key]) / load_s, 1)
        for key in ("state_snapshots", "csms_get_configuration", "unknown_card_taps")
    }
    return {
        "events": events,
        "measured": len(every),
        "missed": sum(missed.values()),
        "spurious_openings": spurious,
        "latency_ms": summarize(every, 3) if every else None,
        "by_kind_ms": {
            kind: summarize(values, 3) if values else None for kind, values in latencies.items()
        },
        "missed_by_kind": missed,
        "duration_s": round(time.monotonic() - started, 1),
        "load_per_s": rates,
        "load_totals": {**counts, **{f"csms_saw_{k}": v for k, v in calls.items()}},
        "setup": {
            "injection": "thread → call_soon_threadsafe → simulation callback → Station",
            "jitter_s": jitter_s,
            "hammer_interval_s": hammer_interval_s,
            "meter_poll_interval_s": 0.2,
            "MeterValueSampleInterval_s": 1,
            "ClockAlignedDataInterval_s": 1,
        },
    }


def measure(
    events: int = 1000, jitter_s: float = 0.1, hammer_interval_s: float = 0.002, seed: int = 1
) -> dict[str, Any]:
    """Time `events` injected changes (the kinds in turn) under load."""
    if events < 1:
        raise ValueError("events must be at least 1")
    with scratch_dir("safety") as workdir, _daemon_logging(workdir / "station.log"):
        return asyncio.run(_run(events, workdir, jitter_s, hammer_interval_s, seed))


def rows(figures: dict[str, Any]) -> list[Row]:
    lat = figures["latency_ms"] or {}
    out = [
        Row(
            f"change → contactor open, p50 ({figures['measured']} events)",
            lat.get("p50"),
            "ms",
        ),
        Row("change → contactor open, p99", lat.get("p99"), "ms", Target("<=", P99_TARGET_MS)),
        Row("change → contactor open, max", lat.get("max"), "ms", Target("<=", MAX_TARGET_MS)),
        Row("events without an opening", figures["missed"], "", Target("<=", 0)),
    ]
    for kind, stats in figures["by_kind_ms"].items():
        if stats is not None:
            out.append(Row(f"  {kind}: p50 / p99 / max", _triple(stats), "ms"))
    return out


def _triple(stats: dict[str, float]) -> str:
    return f"{stats['p50']:.2f} / {stats['p99']:.2f} / {stats['max']:.2f}"
