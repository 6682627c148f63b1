"""The 2.0.1 local-list benchmark still runs (tiny size; no timing thresholds, as in
test_bench_smoke.py)."""

from __future__ import annotations

from bench import local_list_201, run


def test_a_201_local_list_is_applied_and_looked_up() -> None:
    figures = local_list_201.measure(entries=300, lookups=40)
    assert figures["version"] == "2.0.1"
    assert figures["accepted"] and figures["list_version_after"] == 1
    assert figures["lookups_accepted"] == figures["lookups_expected_accepted"] > 0
    assert figures["apply_s"] > 0 and figures["auth_db_bytes_per_entry"] > 0
    assert local_list_201.rows(figures)[0].figure.startswith("SendLocalList")
    assert run.BENCHMARKS["local_list_201"].quick["version"] == "2.0.1"
