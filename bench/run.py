"""Run the benchmarks: one command, one table, one JSON file.

    .venv/bin/python -m bench.run [--quick] [--only NAME ...] [--json PATH]

Each benchmark is independent (its own temporary directory, daemon and CSMS)
and reports figures with targets; a missed target is reported, not fatal. The
exit status is non-zero only when a benchmark could not run at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import (
    backlog,
    cpu,
    local_list,
    local_list_201,
    memory,
    memory_201,
    modbus,
    safety,
    startup,
)
from bench.common import Row, machine

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    about: str
    measure: Callable[..., dict[str, Any]]
    rows: Callable[[dict[str, Any]], list[Row]]
    full: Mapping[str, Any]
    quick: Mapping[str, Any]

    @classmethod
    def of(cls, name: str, module: ModuleType) -> Benchmark:
        """A benchmark module: measure(**sizes), rows(figures), FULL and QUICK sizes."""
        about = (module.__doc__ or name).strip().splitlines()[0]
        return cls(name, about, module.measure, module.rows, module.FULL, module.QUICK)


BENCHMARKS: dict[str, Benchmark] = {
    name: Benchmark.of(name, module)
    for name, module in (
        ("safety", safety),
        ("memory", memory),
        ("memory_201", memory_201),
        ("cpu", cpu),
        ("startup", startup),
        ("backlog", backlog),
        ("local_list", local_list),
        ("local_list_201", local_list_201),
        ("modbus", modbus),
    )
}


@dataclass(slots=True)
class Outcome:
    name: str
    sizes: dict[str, Any]
    seconds: float
    figures: dict[str, Any]
    rows: list[Row]
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "sizes": self.sizes,
            "seconds": round(self.seconds, 1),
            "figures": self.figures,
            "rows": [row.as_json() for row in self.rows],
            "error": self.error,
        }


def run_one(name: str, quick: bool) -> Outcome:
    """Run one benchmark at its quick or full sizes; an exception becomes the error."""
    bench = BENCHMARKS[name]
    sizes = dict(bench.quick if quick else bench.full)
    t0 = time.monotonic()
    try:
        figures = bench.measure(**sizes)
        rows = bench.rows(figures)
        error = None
    except Exception as e:
        figures, rows = {}, []
        error = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
    return Outcome(name, sizes, time.monotonic() - t0, figures, rows, error)


def table(outcomes: Sequence[Outcome]) -> str:
    """The results as an aligned text table: benchmark, figure, value, target, result."""
    lines: list[tuple[str, str, str, str, str]] = [
        ("benchmark", "figure", "value", "target", "result")
    ]
    for outcome in outcomes:
        if outcome.error is not None:
            first = outcome.error.splitlines()[0]
            lines.append((outcome.name, first[:70], "", "", "ERROR"))
            continue
        for i, row in enumerate(outcome.rows):
            passed = row.passed
            result = "" if passed is None else "pass" if passed else "FAIL"
            target = "" if row.target is None else f"{row.target} {row.unit}".rstrip()
            if row.target is not None and row.target.op == "==":
                target = str(row.target)
            lines.append((outcome.name if i == 0 else "", row.figure, row.shown(), target, result))
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    out = []
    for n, line in enumerate(lines):
        out.append(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def header(info: Mapping[str, Any], quick: bool) -> str:
    return (
        f"evsed benchmarks ({'quick' if quick else 'full'}) on {info['cpu']}, "
        f"{info['cores']} cores, {info['memory_mb']} MB, Python {info['python']}, "
        f"{info['system']}, load {info['loadavg_at_start']}, {info['date']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument(
        "--only",
        nargs="+",
        action="extend",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only these ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help="where to write the results (default: bench/results/latest.json)",
    )
    args = parser.parse_args(argv)
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    info = machine()
    print(header(info, args.quick), flush=True)
    started = time.monotonic()
    outcomes = []
    for name in names:
        print(f"  {name}: {BENCHMARKS[name].about} ...", end="", flush=True)
        outcome = run_one(name, args.quick)
        print(f" {outcome.seconds:.1f} s" + (" (error)" if outcome.error else ""), flush=True)
        outcomes.append(outcome)
    total = time.monotonic() - started
    print()
    print(table(outcomes))
    checked = [row.passed for o in outcomes for row in o.rows if row.passed is not None]
    print(f"\n{sum(checked)} of {len(checked)} targets met; {total:.0f} s in all.")
    for outcome in outcomes:
        if outcome.error:
            print(f"\n{outcome.name} failed:\n{outcome.error}", file=sys.stderr)
    report = {
        "schema": 1,
        "mode": "quick" if args.quick else "full",
        "machine": info,
        "seconds": round(total, 1),
        "benchmarks": {o.name: o.as_json() for o in outcomes},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"JSON: {args.json}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
