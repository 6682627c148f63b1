"""The benchmarks still run: each at a tiny size, checked for well-formed and
plausible figures. No timing thresholds here; the targets are judged from the
full runs (`./dev bench`), not from a shared and noisy test machine."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from bench import backlog, cpu, local_list, memory, modbus, run, safety, startup
from bench.common import Row, Target, summarize


def ordered(stats: dict[str, float]) -> bool:
    return stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]


def test_summary_percentiles_are_ordered_for_any_sample_size() -> None:
    for values in ([3.0], [2.0, 1.0], [5.0, 1.0, 4.0, 2.0, 3.0] * 7):
        stats = summarize(values)
        assert stats["n"] == len(values) and ordered(stats)
    with pytest.raises(ValueError):
        summarize([])


def test_rows_judge_targets_and_treat_a_missing_figure_as_missed() -> None:
    assert Row("x", 5.0, "ms", Target("<=", 20)).passed is True
    assert Row("x", 500, "msg/s", Target(">=", 1000)).passed is False
    assert Row("x", True, "", Target("==", 1)).passed is True
    assert Row("x", None, "ms", Target("<=", 20)).passed is False
    assert Row("x", "3 (1, 9)").passed is None


def test_safety_every_injected_change_opens_the_contactor() -> None:
    kinds = len(safety.KINDS)
    figures = safety.measure(events=2 * kinds, jitter_s=0.01)
    assert figures["measured"] + figures["missed"] == 2 * kinds
    assert figures["missed"] == 0 and figures["spurious_openings"] == 0
    assert ordered(figures["latency_ms"]) and figures["latency_ms"]["min"] > 0
    assert all(figures["by_kind_ms"][kind]["n"] == 2 for kind in safety.KINDS)
    totals = figures["load_totals"]
    assert totals["csms_saw_StartTransaction"] >= kinds  # each session-ending kind restarts
    assert totals["csms_saw_StatusNotification"] > 0
    assert len(safety.rows(figures)) >= 4


def test_backlog_is_delivered_whole_and_in_order() -> None:
    figures = backlog.measure(sizes=(45,))["45"]
    assert figures["delivered"] == figures["messages"] == 45
    assert figures["in_order"] and figures["duplicates"] == figures["missing"] == 0
    assert figures["left_in_queue"] == 0
    assert figures["transactions"] == 3  # 20 + 20 + 5 messages
    assert figures["throughput_msgs_per_s"] > 0
    assert figures["db_bytes_per_message"] > 0 and figures["json_bytes_per_message"] > 0


def test_backlog_transactions_always_have_a_start_and_a_stop() -> None:
    for messages in (2, 3, 21, 22, 40, 41):
        sizes = backlog._sizes(messages, backlog.PER_TRANSACTION)
        assert sum(sizes) == messages and all(2 <= s <= backlog.PER_TRANSACTION for s in sizes)


def test_local_list_is_applied_and_looked_up() -> None:
    figures = local_list.measure(entries=300, lookups=40)
    assert figures["accepted"] and figures["list_version_after"] == 1
    assert figures["lookups"] == 40
    assert figures["lookups_accepted"] == figures["lookups_expected_accepted"] > 0
    assert ordered(figures["lookup_ms"]) and figures["apply_s"] > 0
    assert figures["auth_db_bytes_per_entry"] > 0


def test_modbus_plans_are_consistent_for_every_model() -> None:
    figures = modbus.measure(measured_polls=2)
    for model, f in figures["models"].items():
        fewest, default = f["fewest"]["transactions"], f["default"]["transactions"]
        assert 1 <= fewest <= default <= f["one_per_quantity"]["transactions"], model
        assert 0 < f["energy_only"]["bus_ms"] <= f["default"]["bus_ms"], model
    measured = figures["measured"]
    assert measured["poll_ms"]["n"] == 2 and measured["poll_ms"]["p50"] > 0
    assert 0 < measured["computed_without_requests_ms"] < measured["computed_bus_ms"]


def test_memory_cpu_and_startup_read_the_daemon_process() -> None:
    mem = memory.measure(sessions=2, settle_s=0.1)
    assert mem["transactions_at_csms"] == {"starts": 2, "stops": 2}
    assert 0 < mem["rss_start_mb"] <= mem["rss_peak_mb"]
    assert [n for n, _ in mem["samples_kb"]] == [0, 1, 2]
    use = cpu.measure(window_s=0.5, settle_s=0.1)
    assert use["charging_status_after"] == "Charging"
    assert use["idle"]["pct"] >= 0 and use["charging"]["pct"] >= 0
    boot = startup.measure(runs=1)
    assert boot["runs"] == 1 and boot["boot_s"]["p50"] > 0
    assert 0 <= boot["sigterm_not_obeyed"] <= 1


def test_run_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results" / "out.json"
    assert run.main(["--quick", "--only", "modbus", "--json", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "eastron_sdm630" in printed and "Python" in printed
    report: dict[str, Any] = json.loads(path.read_text())
    assert report["mode"] == "quick" and list(report["benchmarks"]) == ["modbus"]
    result = report["benchmarks"]["modbus"]
    assert result["error"] is None and result["rows"]
    assert {"cpu", "cores", "python", "date"} <= set(report["machine"])


def test_a_failing_benchmark_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**sizes: Any) -> dict[str, Any]:
        raise RuntimeError("no hardware")

    monkeypatch.setitem(
        run.BENCHMARKS, "modbus", dataclasses.replace(run.BENCHMARKS["modbus"], measure=broken)
    )
    outcome = run.run_one("modbus", quick=True)
    assert outcome.error is not None and "no hardware" in outcome.error
    assert "ERROR" in run.table([outcome])
