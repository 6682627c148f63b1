"""Modbus polling cost per meter model: transactions and wire time per poll.

On RS-485 at 9600 baud each transaction costs a fixed framing price, so the
number of reads per poll, not the registers read, sets how often a meter can
be polled. The figures are computed from frame sizes (drivers.meter.planning)
for every shipped map; one poll of an SDM630 is also measured against the
register-level simulator in realtime mode, as a check on the arithmetic.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench.common import Row, summarize
from drivers.meter import ModbusMeter
from drivers.meter.planning import (
    REQUEST_BYTES,
    Block,
    bus_time_ms,
    char_time_ms,
    plan_reads,
    transaction_time_ms,
)
from drivers.meter.registermap import available_models, load_map
from hwsim.modbus_meter import ModbusMeterSim, SimModbusMeter

FULL = {"measured_polls": 20}
QUICK = {"measured_polls": 5}
BAUD = 9600
MEASURED_MODEL = "eastron_sdm630"
NO_PORT = "/nonexistent/evsed-bench"  # ModbusMeter opens its port lazily: never here


def _plan_figures(blocks: list[Block], parity: str, stopbits: int) -> dict[str, Any]:
    return {
        "transactions": len(blocks),
        "registers": sum(b.count for b in blocks),
        "bus_ms": round(bus_time_ms(blocks, BAUD, parity, stopbits), 2),
    }


def model_figures(model: str) -> dict[str, Any]:
    """The driver's default poll against the fewest possible reads, one read per
    quantity, and the energy register alone (the floor of any poll)."""
    meter_map = load_map(model)
    meter = ModbusMeter(meter_map, NO_PORT, baud=BAUD)  # the driver's own choice of quantities
    parity, stopbits = meter.bus.parity, meter.bus.stopbits
    wanted = list(meter.quantities)
    # A prohibitive per-transaction cost makes the planner merge all it may.
    fewest = plan_reads(meter_map, wanted, baud=BAUD, turnaround_ms=1e6)
    per_quantity = sum(
        transaction_time_ms(meter_map.register(q).width, BAUD, parity, stopbits) for q in wanted
    )
    energy = plan_reads(meter_map, ["energy_import"], baud=BAUD)
    return {
        "quantities": wanted,
        "serial": f"{BAUD} 8{parity}{stopbits}",
        "default": _plan_figures(meter.blocks, parity, stopbits),
        "fewest": _plan_figures(fewest, parity, stopbits),
        "one_per_quantity": {"transactions": len(wanted), "bus_ms": round(per_quantity, 2)},
        "energy_only": _plan_figures(energy, parity, stopbits),
    }


async def _measured_polls(polls: int) -> tuple[list[float], float, float]:
    """Timed reads of the driver against the realtime simulator; also the computed
    bus time and the part of it the simulator reproduces (a pty carries the
    request at once, so only the answer's wire time and the t3.5 gaps are real)."""
    sim = ModbusMeterSim(
        [SimModbusMeter(MEASURED_MODEL, current_a=(16.0, 16.0, 16.0))], baud=BAUD, realtime=True
    ).start()
    meter = ModbusMeter(MEASURED_MODEL, sim.port, baud=BAUD)
    try:
        await meter.read()  # opens the port; not timed
        times = []
        for _ in range(polls):
            t0 = time.perf_counter()
            reading = await meter.read()
            times.append((time.perf_counter() - t0) * 1000.0)
            if reading.voltage_v[0] != 230.0:
                raise RuntimeError(f"implausible reading from the simulator: {reading}")
        bus = meter.bus
        requests = len(meter.blocks) * REQUEST_BYTES * char_time_ms(bus.baud, bus.parity)
        return times, meter.poll_time_ms(), meter.poll_time_ms() - requests
    finally:
        await meter.close()
        sim.stop()


def measure(measured_polls: int = 20) -> dict[str, Any]:
    """Computed figures for every model, and `measured_polls` timed SDM630 polls."""
    models = {model: model_figures(model) for model in available_models()}
    times, computed, simulated = asyncio.run(_measured_polls(measured_polls))
    poll = summarize(times, 2)
    return {
        "baud": BAUD,
        "models": models,
        "measured": {
            "model": MEASURED_MODEL,
            "polls": measured_polls,
            "poll_ms": poll,
            "computed_bus_ms": round(computed, 2),
            "computed_without_requests_ms": round(simulated, 2),
            "ratio_measured_to_computed_without_requests": round(
                statistics.median(times) / simulated, 2
            ),
        },
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    out = []
    for model, f in figures["models"].items():
        d, m, one = f["default"], f["fewest"], f["one_per_quantity"]
        out.append(
            Row(
                f"{model}: tx/poll (fewest, one per quantity)",
                f"{d['transactions']} ({m['transactions']}, {one['transactions']})",
            )
        )
        out.append(
            Row(
                f"{model}: bus time/poll @{figures['baud']} (fewest-tx plan)",
                f"{d['bus_ms']:.1f} ({m['bus_ms']:.1f})",
                "ms",
            )
        )
    measured = figures["measured"]
    out.append(
        Row(
            f"{measured['model']}: measured poll on the sim (computed, w/o requests)",
            f"{measured['poll_ms']['p50']:.1f} ({measured['computed_without_requests_ms']:.1f})",
            "ms",
        )
    )
    return out
