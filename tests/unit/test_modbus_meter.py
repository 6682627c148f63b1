"""Modbus RTU energy meters: register maps, read planning, codec, driver against the
register-level simulator (over a pty), retries, shared bus and probe."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import tomllib
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from drivers.interfaces import Meter
from drivers.meter import (
    Block,
    Found,
    MeterExceptionResponse,
    MeterMap,
    MeterMapError,
    MeterNotAnswering,
    MeterPortError,
    MeterValueError,
    ModbusBus,
    ModbusMeter,
    bus_time_ms,
    config_snippet,
    load_all_maps,
    load_map,
    load_map_file,
    meters_from_config,
    parse_map,
    plan_reads,
    probe,
    transaction_time_ms,
)
from drivers.meter.registermap import MAPS_DIR, Register
from hwsim.modbus_meter import ModbusMeterSim, SimModbusMeter, crc16

REQUIRED_MODELS = {
    "eastron_sdm630",
    "eastron_sdm72d_m",
    "eastron_sdm120",
    "eastron_sdm230",
    "abb_b23",
    "carlo_gavazzi_em340",
    "carlo_gavazzi_em24",
    "orno_we517",
    "inepro_pro380",
    "phoenix_eem_ma370",
}
VIP = (  # voltage, current, power, energy: the SDM630 poll of §5.3
    "voltage_l1",
    "voltage_l2",
    "voltage_l3",
    "current_l1",
    "current_l2",
    "current_l3",
    "power_total",
    "energy_import",
)
FAST = 0.1  # s: reply timeout in tests (the simulator answers within ms)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@contextmanager
def simulated(*meters: SimModbusMeter, **options: Any) -> Iterator[ModbusMeterSim]:
    sim = ModbusMeterSim(meters, **options).start()
    try:
        yield sim
    finally:
        sim.stop()


def tolerance(reg: Register, value: float) -> float:
    """One unit of the register's resolution at `value`."""
    if reg.type == "float32":
        return abs(value) * 2.0**-23 + 1e-9
    return float(reg.factor) / 2 + 1e-9


def sdm630_data() -> dict[str, Any]:
    with (MAPS_DIR / "eastron_sdm630.toml").open("rb") as f:
        return tomllib.load(f)


# --- register maps -------------------------------------------------------------------


def test_every_shipped_map_loads_and_is_complete() -> None:
    maps = load_all_maps()
    assert set(maps) >= REQUIRED_MODELS
    for model, m in maps.items():
        assert m.model == model
        assert m.offers("energy_import"), model
        assert m.function_code in (3, 4)
        assert 4 <= m.max_registers <= 125
        assert m.offers("voltage_l1") and m.offers("current_l1") and m.offers("power_total")
        if m.phases == 3:
            assert m.offers("voltage_l3") and m.offers("current_l3"), model
    assert load_map("eastron_sdm630").max_registers == 80
    assert load_map("orno_we517").parity == "E"
    assert load_map("eastron_sdm120").baud == 2400
    assert load_map("abb_b23").register("energy_import").not_available == {2**64 - 1}
    assert load_map("abb_b23").register("power_total").not_available == {2**31 - 1}


def test_unverified_defaults_are_marked_in_the_map_files() -> None:
    for model in ("abb_b23", "eastron_sdm230", "inepro_pro380", "phoenix_eem_ma370"):
        assert "[VERIFY]" in (MAPS_DIR / f"{model}.toml").read_text(), model


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda d: d["registers"].pop("energy_import"), "registers.energy_import: missing"),
        (lambda d: d["registers"]["voltage_l1"].update(type="flaot32"), "voltage_l1.type"),
        (lambda d: d["registers"]["voltage_l1"].update(unit="kWh"), "voltage_l1.unit"),
        (lambda d: d["registers"]["current_l1"].update(address=0x0001), "overlaps"),
        (lambda d: d["registers"]["current_l1"].update(adress=6), "unknown key"),
        (lambda d: d["registers"].update(voltage_l4={"address": 0x200}), "unknown quantity"),
        (lambda d: d.update(phases=1), "single-phase meter has no L2/L3"),
        (lambda d: d.update(function_code=6), "function_code"),
        (lambda d: d.update(max_registers_per_read=200), "max_registers_per_read"),
        (lambda d: d["serial"].update(parity="X"), "serial.parity"),
        (lambda d: d["registers"]["power_total"].update(scale=0), "scale"),
        (lambda d: d["registers"]["frequency"].update(not_available="max"), "integer types"),
        (lambda d: d.update(model="eastron_sdm631"), "does not match the file name"),
    ],
)
def test_broken_maps_are_rejected_with_the_key_at_fault(change: Any, complaint: str) -> None:
    data = sdm630_data()
    change(data)
    with pytest.raises(MeterMapError, match=r"eastron_sdm630\.toml") as err:
        parse_map(data, str(MAPS_DIR / "eastron_sdm630.toml"), expected_model="eastron_sdm630")
    assert complaint in str(err.value)


def test_unknown_model_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(MeterMapError, match="known: abb_b23"):
        load_map("sdm999")
    bad = tmp_path / "broken.toml"
    bad.write_text("model = \n")
    with pytest.raises(MeterMapError, match="cannot read"):
        load_map_file(bad)


# --- planning and wire time ----------------------------------------------------------


def all_partitions_best(m: MeterMap, wanted: list[str], baud: int, parity: str) -> float:
    """Brute force: the least wire time over every split of the sorted registers."""
    regs = sorted((m.register(q) for q in wanted), key=lambda r: r.address)
    best = math.inf
    for cuts in itertools.product((False, True), repeat=len(regs) - 1):
        groups: list[list[Register]] = [[regs[0]]]
        for cut, reg in zip(cuts, regs[1:], strict=True):
            if cut:
                groups.append([reg])
            else:
                groups[-1].append(reg)
        counts = [g[-1].end - g[0].address for g in groups]
        if max(counts) <= m.max_registers:
            best = min(best, sum(transaction_time_ms(c, baud, parity) for c in counts))
    return best


def test_sdm630_poll_uses_the_fewest_reads_and_least_wire_time() -> None:
    m = load_map("eastron_sdm630")
    blocks = plan_reads(m, VIP)
    assert [(b.address, b.count) for b in blocks] == [(0x0000, 12), (0x0034, 2), (0x0048, 2)]
    covered = {q for b in blocks for q in b.quantities}
    assert covered == set(VIP)
    # One read per group of adjacent registers would need 3; one read per value 8.
    assert len(blocks) <= 3 and all(b.count <= m.max_registers for b in blocks)
    t = bus_time_ms(blocks, 9600, "N")
    assert t == pytest.approx(all_partitions_best(m, list(VIP), 9600, "N"))
    assert t == pytest.approx(95.83, abs=0.01)
    # With frequency (the driver's default poll) the energy block grows by 2 registers.
    with_f = plan_reads(m, [*VIP, "frequency"])
    assert [(b.address, b.count) for b in with_f] == [(0x00, 12), (0x34, 2), (0x46, 4)]
    assert bus_time_ms(with_f, 9600, "N") == pytest.approx(100.0, abs=0.01)


def test_small_gaps_are_read_across_and_large_ones_are_not() -> None:
    m = load_map("eastron_sdm630")
    # §5.3's suggestion: V, I and per-phase P as one block 0x0000-0x0011 (18 regs, ~58 ms).
    per_phase = [q for q in VIP if q != "energy_import" and q != "power_total"]
    blocks = plan_reads(m, [*per_phase, "power_l1", "power_l2", "power_l3"])
    assert [(b.address, b.count) for b in blocks] == [(0x0000, 18)]
    assert bus_time_ms(blocks, 9600, "N") == pytest.approx(58.3, abs=0.05)
    # A 10-register gap costs 20 characters, as much as a second transaction: merge (tie).
    assert len(plan_reads(m, ["voltage_l1", "power_l1"])) == 1  # gap 0x02..0x0B = 10
    assert len(plan_reads(m, ["voltage_l1", "power_l2"])) == 2  # gap 12
    # Above 19200 baud t3.5 is fixed, so a transaction costs more characters: merge more.
    assert len(plan_reads(m, ["voltage_l1", "power_l2"], baud=115200)) == 1


def test_plans_never_exceed_the_models_read_limit() -> None:
    m = load_map("eastron_sdm630")
    everything = list(m.registers)
    blocks = plan_reads(m, everything, turnaround_ms=1000.0)  # merging is very attractive
    assert all(b.count <= 80 for b in blocks)
    assert {q for b in blocks for q in b.quantities} == set(everything)
    assert [(b.address, b.count) for b in blocks] == [(0x0000, 76), (0x0156, 2)]
    # A slow meter's turnaround makes merging across the 40-register gap (83 ms) pay.
    assert len(plan_reads(m, [*VIP, "frequency"], turnaround_ms=50.0)) == 2
    assert [(b.address, b.count) for b in plan_reads(m, VIP, turnaround_ms=100.0)] == [(0, 74)]


def test_maps_that_forbid_reading_across_gaps_only_merge_adjacent_registers() -> None:
    data = sdm630_data()
    data["read_across_gaps"] = False
    m = parse_map(data, "test")
    blocks = plan_reads(m, VIP)
    assert [(b.address, b.count) for b in blocks] == [(0x0000, 12), (0x0034, 2), (0x0048, 2)]
    assert len(plan_reads(m, ["voltage_l1", "power_l1"])) == 2


def test_planning_rejects_quantities_the_model_does_not_offer() -> None:
    with pytest.raises(ValueError, match="does not offer voltage_l2"):
        plan_reads(load_map("eastron_sdm120"), ["voltage_l2"])
    with pytest.raises(ValueError, match="unknown quantity"):
        plan_reads(load_map("eastron_sdm630"), ["voltage"])


# §5.3 table: N registers -> (wire, wire + 2 x t3.5) in ms, per column.
SECTION_5_3 = {
    2: ((17.7, 25.0), (19.5, 27.5), (8.9, 12.5), (1.5, 5.0)),
    6: ((26.0, 33.3), (28.6, 36.7), (13.0, 16.7), (2.2, 5.7)),
    20: ((55.2, 62.5), (60.7, 68.8), (27.6, 31.2), (4.6, 8.1)),
    80: ((180, 188), (198, 206), (90, 94), (15, 19)),
    125: ((274, 281), (301, 309), (137, 141), (23, 26)),
}
COLUMNS = ((9600, "N"), (9600, "E"), (19200, "N"), (115200, "N"))


@pytest.mark.parametrize("count", sorted(SECTION_5_3))
def test_wire_times_match_the_hardware_reference_table(count: int) -> None:
    for (baud, parity), (wire, total) in zip(COLUMNS, SECTION_5_3[count], strict=True):
        digits = 0 if count >= 80 else 1  # the table rounds long reads to whole ms
        half = 0.5 * 10**-digits + 1e-9
        got_wire = transaction_time_ms(count, baud, parity, gaps=False)
        got_total = bus_time_ms([Block(4, 0, count, ())], baud, parity)
        assert abs(got_wire - wire) <= half, (count, baud, parity, got_wire)
        assert abs(got_total - total) <= half, (count, baud, parity, got_total)


# --- codec ----------------------------------------------------------------------------


def reg(
    type_: str, order: str = "high_first", scale: str = "1", unit: str = "V", **kw: Any
) -> Register:
    return Register("voltage_l1", 0, type_, order, Decimal(scale), unit, **kw)


def test_float32_in_both_word_orders() -> None:
    be = reg("float32")
    le = reg("float32", "low_first")
    assert be.decode([0x4366, 0x199A]) == 230.1  # the meter's digits, not 230.100006...
    assert le.decode([0x199A, 0x4366]) == 230.1
    assert be.encode(230.1) == [0x4366, 0x199A]
    assert le.encode(230.1) == [0x199A, 0x4366]
    assert be.decode([0x7FC0, 0x0000]) is None  # NaN
    assert be.decode([0x7F80, 0x0000]) is None  # +inf
    assert le.decode(le.encode(None)) is None


def test_scaled_integers_signed_unsigned_and_word_orders() -> None:
    em340_power = load_map("carlo_gavazzi_em340").register("power_total")  # s32 LSW-first x0.1
    assert em340_power.encode(-1234.5) == [0xCFC7, 0xFFFF]
    assert em340_power.decode([0xCFC7, 0xFFFF]) == -1234.5
    assert reg("int32", scale="0.1").decode([0xFFFF, 0xCFC7]) == -1234.5
    assert reg("uint32", scale="0.1").decode([0xFFFF, 0xCFC7]) == 429495495.1
    assert reg("int16", scale="0.01").decode([0xFF38]) == -2.0
    assert reg("uint16", scale="0.01").decode([0xFF38]) == 653.36
    abb_energy = load_map("abb_b23").register("energy_import")  # u64 x0.01 kWh
    assert abb_energy.decode([0, 0, 0x0012, 0xD687]) == 12345670.0
    assert abb_energy.decode(abb_energy.encode(12345670.0)) == 12345670.0
    assert reg("int64", "low_first").decode([0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF]) == -2.0


def test_not_available_sentinels_decode_to_none() -> None:
    abb = load_map("abb_b23")
    assert abb.register("energy_import").decode([0xFFFF] * 4) is None
    assert abb.register("voltage_l1").decode([0xFFFF, 0xFFFF]) is None
    assert abb.register("power_total").decode([0x7FFF, 0xFFFF]) is None
    assert abb.register("power_total").decode([0xFFFF, 0xFFFF]) == -0.01  # -1 is a value
    assert abb.register("frequency").decode([0xFFFF]) is None
    assert abb.register("frequency").encode(None) == [0xFFFF]


def test_units_are_converted_to_w_wh_and_a() -> None:
    orno_power = load_map("orno_we517").register("power_total")
    assert orno_power.decode(orno_power.encode(7400.0)) == 7400.0
    assert orno_power.encode(7400.0) == reg("float32").encode(7.4)  # kW on the wire
    sdm = load_map("eastron_sdm630").register("energy_import")
    assert sdm.decode(reg("float32").encode(12.345)) == 12345.0  # kWh -> Wh
    milli = Register("current_l1", 0, "int32", "high_first", Decimal(1), "mA")
    assert milli.decode([0, 16000]) == 16.0


@pytest.mark.parametrize("model", sorted(REQUIRED_MODELS))
def test_every_register_round_trips_through_its_encoding(model: str) -> None:
    samples = {"voltage": 231.7, "current": 15.93, "power": -3456.7, "energy": 9876543.0}
    for name, r in load_map(model).registers.items():
        kind = name.split("_")[0]
        value = samples.get(kind, 49.97)
        if kind == "energy" or (kind == "power" and not r.signed):
            value = abs(value)
        assert r.decode(r.encode(value)) == pytest.approx(value, abs=tolerance(r, value))


# --- driver against the simulator ----------------------------------------------------

LIVE: dict[str, Any] = {
    "energy_wh": 12_345_678.0,
    "export_wh": 4321.0,
    "voltage_v": (230.1, 231.2, 229.3),
    "current_a": (16.01, 15.5, 0.25),
    "frequency_hz": 49.98,
}


@pytest.mark.parametrize("model", sorted(REQUIRED_MODELS))
def test_driver_reads_what_the_simulator_holds(model: str) -> None:
    sim_meter = SimModbusMeter(model, unit_id=7, **LIVE)

    async def go(port: str) -> None:
        meter = ModbusMeter(model, port, unit_id=7, timeout=FAST)
        as_protocol: Meter = meter  # mypy checks that ModbusMeter is a Meter
        assert as_protocol is meter
        reading = await meter.read()
        expected = sim_meter.values()
        m = meter.map
        fields: list[tuple[str, float | None]] = [
            ("energy_import", reading.energy_wh),
            ("power_total", reading.power_w),
        ]
        fields += [(f"voltage_l{n}", reading.voltage_v[n - 1]) for n in range(1, m.phases + 1)]
        fields += [(f"current_l{n}", reading.current_a[n - 1]) for n in range(1, m.phases + 1)]
        fields += [("frequency", reading.frequency_hz)]
        for name, got in fields:
            want = expected[name]
            assert want is not None and got is not None
            assert got == pytest.approx(want, abs=tolerance(m.register(name), want)), name
        if m.phases == 1:
            assert reading.voltage_v[1:] == (0.0, 0.0) and reading.current_a[1:] == (0.0, 0.0)
        values = await meter.read_values(["energy_export"])
        assert values["energy_export"] == pytest.approx(4321.0, abs=100)
        # The EV model advances the energy register; the next reading follows.
        sim_meter.set(power_w=11_000.0)
        sim_meter.advance(3600.0)
        again = await meter.read()
        assert again.energy_wh == pytest.approx(
            LIVE["energy_wh"] + 11_000.0, abs=tolerance(m.register("energy_import"), 2.4e7)
        )
        assert again.power_w == pytest.approx(11_000.0, abs=0.01)
        await meter.close()

    with simulated(sim_meter) as sim:
        run(go(sim.port))


def test_two_meters_share_one_bus_without_interleaving() -> None:
    sdm = SimModbusMeter("eastron_sdm630", unit_id=1, energy_wh=1000.0)
    abb = SimModbusMeter("abb_b23", unit_id=2, energy_wh=2000.0, current_a=(6.0, 6.0, 6.0))

    async def go(port: str) -> None:
        bus = ModbusBus(port, 9600, "N", 1, timeout=FAST)
        a = ModbusMeter("eastron_sdm630", bus=bus, unit_id=1)
        b = ModbusMeter("abb_b23", bus=bus, unit_id=2)
        # Concurrent polls: the bus lock keeps every request/answer pair together.
        readings = await asyncio.gather(*(m.read() for _ in range(3) for m in (a, b)))
        for ra, rb in zip(readings[::2], readings[1::2], strict=True):
            assert ra.energy_wh == 1000.0 and ra.current_a == (0.0, 0.0, 0.0)
            assert rb.energy_wh == 2000.0 and rb.current_a == (6.0, 6.0, 6.0)
        assert sdm.requests == 3 * len(a.blocks) and abb.requests == 3 * len(b.blocks)
        with pytest.raises(ValueError, match="disagrees"):
            ModbusMeter("eastron_sdm630", bus=bus, baud=19200)
        await bus.close()

    with simulated(sdm, abb) as sim:
        run(go(sim.port))


def test_meters_from_config_share_a_bus_per_port() -> None:
    entries: list[dict[str, Any]] = [
        {"model": "eastron_sdm630", "port": "/dev/ttyUSB0", "unit_id": 1},
        {"model": "abb_b23", "port": "/dev/ttyUSB0", "baud": 9600, "parity": "N", "unit_id": 2},
        {"model": "orno_we517", "port": "/dev/ttyUSB1", "baud": 0, "parity": ""},  # defaults
    ]
    a, b, c = meters_from_config(entries)
    assert a.bus is b.bus and c.bus is not a.bus and c.bus.parity == "E"
    with pytest.raises(ValueError, match="one bus has one serial setting"):
        meters_from_config([entries[0], {**entries[1], "parity": "E"}])
    with pytest.raises(ValueError, match="unit_id 1 is used twice"):
        meters_from_config([entries[0], {**entries[1], "unit_id": 1}])


def test_crc_errors_are_retried_then_reported() -> None:
    sim_meter = SimModbusMeter("eastron_sdm630", energy_wh=500.0)

    async def go(port: str) -> None:
        meter = ModbusMeter("eastron_sdm630", port, timeout=FAST, retries=2)
        sim_meter.corrupt_crc(2)
        before = sim_meter.requests
        assert (await meter.read()).energy_wh == 500.0  # third attempt of the first block
        assert sim_meter.requests - before == len(meter.blocks) + 2
        sim_meter.corrupt_crc(3)
        with pytest.raises(MeterNotAnswering, match=r"failed 3 times.*garbled") as err:
            await meter.read()
        assert isinstance(err.value, OSError) and err.value.garbled
        assert "eastron_sdm630 unit 1" in str(err.value)
        assert (await meter.read()).energy_wh == 500.0  # the bus recovers
        await meter.close()

    with simulated(sim_meter) as sim:
        run(go(sim.port))


def test_silence_is_retried_then_reported() -> None:
    sim_meter = SimModbusMeter("eastron_sdm630", energy_wh=500.0)

    async def go(port: str) -> None:
        meter = ModbusMeter("eastron_sdm630", port, timeout=FAST, retries=2)
        sim_meter.go_silent(2)
        assert (await meter.read()).energy_wh == 500.0
        sim_meter.go_silent()
        start = time.monotonic()
        with pytest.raises(MeterNotAnswering, match=r"no answer within 0.1 s") as err:
            await meter.read()
        assert 3 * FAST <= time.monotonic() - start < 3 * FAST + 0.5
        assert not err.value.garbled
        sim_meter.clear_faults()
        assert (await meter.read()).energy_wh == 500.0
        await meter.close()

    with simulated(sim_meter) as sim:
        run(go(sim.port))


def test_exception_responses_are_retried_then_reported() -> None:
    sim_meter = SimModbusMeter("orno_we517", energy_wh=500.0)
    sdm630 = SimModbusMeter("eastron_sdm630", unit_id=2)  # reads at most 80 registers

    async def go(port: str) -> None:
        meter = ModbusMeter("orno_we517", port, timeout=FAST, retries=1)
        sim_meter.fail_with(6, n=1)  # server busy once
        assert (await meter.read()).energy_wh == 500.0
        sim_meter.fail_with(4, n=None)
        with pytest.raises(MeterExceptionResponse, match=r"0x04 \(server device failure\)") as e:
            await meter.read()
        assert e.value.code == 4 and isinstance(e.value, OSError)
        sim_meter.clear_faults()
        bus = meter.bus
        with pytest.raises(MeterExceptionResponse, match="illegal data address"):
            await bus.read_registers(1, 3, 0x0500, 2)  # nothing mapped there
        with pytest.raises(MeterExceptionResponse, match="illegal data address"):
            await bus.read_registers(1, 4, 0x000E, 2)  # the ORNO has holding registers only
        with pytest.raises(MeterExceptionResponse, match="illegal data value"):
            await bus.read_registers(2, 4, 0x0000, 81)
        with pytest.raises(ValueError, match=r"1\.\.125"):
            await bus.read_registers(1, 3, 0x000E, 126)  # refused before it reaches the wire
        assert await bus.read_registers(1, 3, 0x000E, 2) == [0x4366, 0x0000]  # 230.0 V
        await meter.close()

    with simulated(sim_meter, sdm630) as sim:
        run(go(sim.port))


def test_unavailable_energy_and_values() -> None:
    sim_meter = SimModbusMeter("abb_b23", energy_wh=500.0, frequency_hz=None)

    async def go(port: str) -> None:
        meter = ModbusMeter("abb_b23", port, timeout=FAST)
        reading = await meter.read()
        assert reading.frequency_hz is None and reading.energy_wh == 500.0
        sim_meter.set(energy_wh=None)  # the sentinel on the wire
        with pytest.raises(MeterValueError, match="not available"):
            await meter.read()
        await meter.close()

    with simulated(sim_meter) as sim:
        run(go(sim.port))


def test_wrong_baud_rate_is_not_answered_and_a_missing_port_is_an_oserror() -> None:
    sim_meter = SimModbusMeter("eastron_sdm630")

    async def go(port: str) -> None:
        meter = ModbusMeter("eastron_sdm630", port, baud=19200, timeout=FAST, retries=0)
        with pytest.raises(MeterNotAnswering):
            await meter.read()
        missing = ModbusMeter("eastron_sdm630", "/dev/does-not-exist", timeout=FAST)
        with pytest.raises(MeterPortError, match="cannot open serial port") as err:
            await missing.read()
        assert isinstance(err.value, OSError)

    with simulated(sim_meter) as sim:
        run(go(sim.port))
        assert sim.stats["wrong_settings"] >= 1 and sim_meter.requests == 0


def test_simulator_frames_use_the_modbus_crc() -> None:
    # The reference frame of the Modbus spec: read 2 input registers of unit 1 at 0.
    assert crc16(bytes.fromhex("010400000002")).to_bytes(2, "little") == bytes.fromhex("71cb")


# --- probe ----------------------------------------------------------------------------


def tell_parity(sim: ModbusMeterSim) -> Any:
    """A probe bus factory that tells the simulator the parity (a pty cannot carry it)."""

    def factory(port: str, baud: int, parity: str, stopbits: int, timeout: float) -> ModbusBus:
        sim.set_master_parity(parity)
        return ModbusBus(port, baud, parity, stopbits, timeout=timeout)

    return factory


def test_probe_finds_an_sdm630_at_unit_2_9600_8n1() -> None:
    meter = SimModbusMeter("eastron_sdm630", unit_id=2, voltage_v=(231.0, 230.0, 229.0))
    with simulated(meter) as sim:
        found = run(
            probe(
                sim.port,
                bauds=(19200, 9600),
                parities=("N", "E"),
                timeout=FAST,
                bus_factory=tell_parity(sim),
            )
        )
    assert found == [
        Found("eastron_sdm630", sim.port, 9600, "N", 1, 2, 231.0, 50.0, ("eastron_sdm72d_m",))
    ]
    assert sim.stats["wrong_settings"] > 0  # 19200 and 9600 8E1 were tried first


def test_probe_finds_an_orno_at_9600_8e1_and_prints_valid_toml() -> None:
    meter = SimModbusMeter("orno_we517")
    with simulated(meter) as sim:
        found = run(probe(sim.port, bauds=(9600,), timeout=FAST, bus_factory=tell_parity(sim)))
    assert [(f.model, f.baud, f.parity, f.unit_id) for f in found] == [("orno_we517", 9600, "E", 1)]
    snippet = config_snippet(found)
    assert tomllib.loads(snippet) == {
        "meters": [
            {
                "model": "orno_we517",
                "port": sim.port,
                "baud": 9600,
                "parity": "E",
                "stopbits": 1,
                "unit_id": 1,
            }
        ]
    }
    # The snippet's settings are what a ModbusMeter needs.
    assert meters_from_config(tomllib.loads(snippet)["meters"])[0].bus.parity == "E"


def test_probe_tells_single_phase_from_three_phase_and_several_meters() -> None:
    sdm120 = SimModbusMeter("eastron_sdm120", unit_id=1)
    em340 = SimModbusMeter("carlo_gavazzi_em340", unit_id=3)
    with simulated(sdm120, em340, baud=2400, parity="N") as sim:
        found = run(probe(sim.port, bauds=(2400,), parities=("N",), timeout=FAST))
    assert [(f.model, f.unit_id, f.alternatives) for f in found] == [
        ("eastron_sdm120", 1, ("eastron_sdm230",)),
        ("carlo_gavazzi_em340", 3, ()),
    ]
    snippet = config_snippet(found)
    assert "# same registers as: eastron_sdm230" in snippet
    assert len(tomllib.loads(snippet)["meters"]) == 2


def test_probe_of_an_empty_bus_finds_nothing() -> None:
    with simulated(SimModbusMeter("eastron_sdm630", unit_id=9)) as sim:
        assert run(probe(sim.port, bauds=(9600,), parities=("N",), timeout=0.05)) == []
