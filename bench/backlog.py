"""Delivering a backlog of queued transaction messages after the CSMS comes back.

After days offline a station holds thousands of StartTransaction, MeterValues
and StopTransaction messages; how fast they drain decides how long the
operator's billing lags, and their size on the card decides how long the
station can stay offline. The queue is built with the daemon's own Store in
the state directory of a stopped daemon, exactly as the station writes it;
the daemon is then started against the CSMS and timed until the queue is
empty, and the CSMS's view is checked to be the queue, in order.
"""

from __future__ import annotations

import resource
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import CARD, YES, Daemon, Row, Target, file_bytes, scratch_dir
from controller.clock import StationClock
from controller.metering import samples
from controller.ocpp.v16.keys import core_keys
from controller.store import Store
from drivers.interfaces import MeterReading
from hwsim.csms import CsmsThread, Record

FULL = {"sizes": (10_000, 100_000)}
QUICK = {"sizes": (500,)}
PER_TRANSACTION = 20  # start, 18 periodic meter values, stop: a 19-minute session at 60 s
THROUGHPUT_TARGET = 1000.0  # messages/s
BYTES_TARGET = 1024.0  # per message
TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")

Key = tuple[str, int]  # (action, energy in Wh): unique per message by construction


def _sizes(messages: int, per_tx: int) -> list[int]:
    """Messages per transaction (each ≥ 2: a start and a stop), summing to `messages`."""
    if messages < 2 or per_tx < 3:
        raise ValueError("need at least 2 messages and 3 per transaction")
    out = []
    left = messages
    while left:
        size = min(per_tx, left)
        if left - size == 1:
            size -= 1
        out.append(size)
        left -= size
    return out


def build_queue(db: Path, messages: int, per_tx: int = PER_TRANSACTION) -> dict[str, Any]:
    """Fill the outbox of the station database at `db` through Store, as charging
    sessions would; returns the expected delivery order and the storage figures."""
    store = Store(db)
    # Only to build the fixture quickly: the daemon opens its own connection with FULL.
    store.connection.execute("PRAGMA synchronous=OFF")
    clock = StationClock()
    clock.set(time.time())  # stamps as after a BootNotification: final wall times
    measurands = core_keys(1)["MeterValuesSampledData"].default.split(",")
    expected: list[Key] = []
    wh = 1000
    meter_values = 0
    try:
        for size in _sizes(messages, per_tx):
            tx = store.begin_transaction(1, CARD, None, wh, clock.stamp())
            expected.append(("StartTransaction", wh))
            for _ in range(size - 2):
                wh += 1
                reading = MeterReading(wh, 11040.0, (16.0, 16.0, 16.0), (230.0, 230.0, 230.0), 50.0)
                data = {
                    "connector": 1,
                    "timestamp": clock.stamp(),
                    "samples": samples(reading, measurands, "Sample.Periodic", 3, 16.0),
                }
                store.enqueue("meter", data, tx)
                expected.append(("MeterValues", wh))
                meter_values += 1
            wh += 1
            store.end_transaction(tx, wh, clock.stamp(), "Local", None)
            expected.append(("StopTransaction", wh))
            wh += 1
        json_bytes = store.queued_bytes
        pending = store.pending_count()
    finally:
        store.close()
    wal = db.with_name(db.name + "-wal")
    return {
        "expected": expected,
        "pending": pending,
        "meter_values": meter_values,
        "db_bytes": file_bytes(db, wal),
        "json_bytes": json_bytes,
    }


def _key(record: Record) -> Key | None:
    payload = record.payload
    if record.action == "StartTransaction":
        return ("StartTransaction", int(payload["meterStart"]))
    if record.action == "StopTransaction":
        return ("StopTransaction", int(payload["meterStop"]))
    for sample in payload["meterValue"][0]["sampledValue"]:
        if sample.get("measurand", "Energy.Active.Import.Register").startswith("Energy"):
            return ("MeterValues", round(float(sample["value"])))
    return None


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def deliver(messages: int, timeout_s: float) -> dict[str, Any]:
    """One backlog of `messages`: build, start the daemon, time the drain, check order."""
    with scratch_dir("backlog") as directory:
        built = build_queue(directory / "state" / "evsed.db", messages)
        expected: list[Key] = built["expected"]
        if built["pending"] != messages:
            raise RuntimeError(f"built {built['pending']} messages, not {messages}")
        seen: list[tuple[float, Key | None]] = []
        boots: list[float] = []
        lock = threading.Lock()

        def observe(record: Record) -> None:  # on the CSMS thread
            if record.direction != "in" or record.message_type != "CALL":
                return
            if record.action == "BootNotification":
                boots.append(time.perf_counter())
            elif record.action in TX_ACTIONS:
                with lock:
                    seen.append((time.perf_counter(), _key(record)))

        with (
            CsmsThread(id_tags={CARD: "Accepted"}) as csms,
            Daemon(csms.url, directory=directory) as daemon,
        ):
            csms.on_message(observe)
            spawned = daemon.start()
            daemon.wait_ready()
            cpu_daemon0, cpu_self0, t0 = daemon.cpu_seconds(), _cpu_self(), time.perf_counter()
            state = daemon.wait(
                lambda s: s["queued_messages"] == 0, timeout_s, "an empty queue", 0.1
            )
            emptied = time.perf_counter()
            cpu_daemon = daemon.cpu_seconds() - cpu_daemon0
            cpu_self = _cpu_self() - cpu_self0
            peak_kb = _vm_hwm_kb(daemon.pid)
            daemon.stop()
            db = directory / "state" / "evsed.db"
            after_bytes = file_bytes(db, db.with_name(db.name + "-wal"))
    with lock:
        observed = list(seen)
    keys = [k for _, k in observed]
    span = observed[-1][0] - observed[0][0] if len(observed) > 1 else 0.0
    half = observed[len(observed) // 2 :]  # past the warm-up (validators built on first use)
    half_span = half[-1][0] - half[0][0] if len(half) > 1 else 0.0
    drain = emptied - (boots[0] if boots else spawned)
    wall = emptied - t0
    return {
        "messages": messages,
        "transactions": sum(1 for k in expected if k[0] == "StartTransaction"),
        "meter_values": built["meter_values"],
        "delivered": len(observed),
        "in_order": keys == expected,
        "duplicates": len(keys) - len(set(keys)),
        "missing": len(set(expected) - set(keys)),
        "left_in_queue": state["queued_messages"],
        "throughput_msgs_per_s": round((len(observed) - 1) / span, 1) if span > 0 else None,
        "throughput_second_half_msgs_per_s": (
            round((len(half) - 1) / half_span, 1) if half_span > 0 else None
        ),
        "first_to_last_s": round(span, 3),
        "boot_to_empty_s": round(drain, 3),
        "daemon_cpu_pct_during_drain": round(100.0 * cpu_daemon / wall, 1),
        "bench_process_cpu_pct_during_drain": round(100.0 * cpu_self / wall, 1),
        "daemon_peak_rss_mb": round(peak_kb / 1024, 1),
        "db_bytes": built["db_bytes"],
        "db_bytes_per_message": round(built["db_bytes"] / messages, 1),
        "json_bytes_per_message": round(built["json_bytes"] / messages, 1),
        "json_bytes_per_meter_value": round(built["json_bytes"] / max(1, built["meter_values"]), 1),
        "db_bytes_after_drain": after_bytes,
    }


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(sizes: tuple[int, ...] = (10_000, 100_000), timeout_s: float = 600.0) -> dict[str, Any]:
    """Each backlog size in its own state directory, daemon and CSMS."""
    return {str(n): deliver(n, timeout_s) for n in sizes}


def rows(figures: dict[str, Any]) -> list[Row]:
    out = []
    for size, f in figures.items():
        n = f"{int(size):,}"
        out += [
            Row(
                f"{n} msgs: throughput",
                f["throughput_msgs_per_s"],
                "msg/s",
                Target(">=", THROUGHPUT_TARGET),
            ),
            Row(f"{n} msgs: BootNotification → queue empty", f["boot_to_empty_s"], "s"),
            Row(f"{n} msgs: all delivered, in queue order", f["in_order"], "", YES),
            Row(
                f"{n} msgs: database bytes/message",
                f["db_bytes_per_message"],
                "B",
                Target("<=", BYTES_TARGET),
            ),
            Row(
                f"{n} msgs: queue JSON bytes/message",
                f["json_bytes_per_message"],
                "B",
                Target("<=", BYTES_TARGET),
            ),
        ]
    return out
