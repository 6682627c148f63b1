"""Long fuzzing run: the tests/fuzz properties with random seeds and many examples.

    .venv/bin/python -m fuzz.run --minutes 10 [--scale N] [--seed S] [-k EXPR]

The default test suite runs the same properties derandomized, with example
counts that keep tests/fuzz around a minute. This runner selects the "long"
hypothesis profile (EVSED_FUZZ_PROFILE=long: random seed, every example count
multiplied by EVSED_FUZZ_SCALE) and runs pytest on one test at a time, in a
shuffled round-robin, each run with a fresh random seed, until the time is up.
Every run's seed is printed as it starts; a failing run prints its pytest
output (the minimal example and a @reproduce_failure blob) and the command that
replays it. The exit status is 1 if any run failed.

--scale defaults to what lets one pass over every test take about half the
time given (x6 for 10 minutes); the rest goes to further passes.
A run still going at the deadline is stopped (its process group, which holds
the daemon subprocesses it started) and counted as cut short, not as failed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = "tests/fuzz"
PASS_SECONDS_AT_SCALE_1 = 50.0  # one derandomized pass over tests/fuzz on 2 cores
_PASSING = re.compile(r"(\d+) passing")  # hypothesis statistics (and evsed-fuzz: lines)


@dataclass
class Tally:
    runs: int = 0
    examples: int = 0
    seconds: float = 0.0
    cut_short: int = 0
    failures: list[int] = field(default_factory=list)  # seeds


def collect(pytest_args: list[str]) -> list[str]:
    """The test node ids under tests/fuzz (after -k filtering)."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", TESTS, "--collect-only", "-q", *pytest_args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [line.strip() for line in out.splitlines() if "::" in line]


def run_one(node: str, seed: int, scale: int, timeout: float) -> tuple[str, str, int]:
    """Run one test; ("passed" | "failed" | "cut", output, examples)."""
    env = {**os.environ, "EVSED_FUZZ_PROFILE": "long", "EVSED_FUZZ_SCALE": str(scale)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--capture=sys",  # fd 2 stays ours: tests report examples hypothesis cannot count
        node,
        f"--hypothesis-seed={seed}",
        "--hypothesis-show-statistics",
    ]
    # A session of its own: at the deadline the whole group (daemons included) is stopped.
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        return "cut", output, 0
    examples = sum(int(n) for n in _PASSING.findall(output))
    return ("passed" if proc.returncode == 0 else "failed"), output, examples


def failure_report(output: str, context: int = 4000) -> str:
    """The minimal example hypothesis reports, with the lines around it, and the summary."""
    marks = [m.start() for m in re.finditer(r"Failing test case|Falsifying example", output)]
    if not marks:
        return output[-3 * context :]
    start = max(0, marks[0] - context)
    middle = output[start : marks[-1] + context]
    tail = output[-context // 2 :]
    return middle if tail in middle else f"{middle}\n...\n{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget")
    parser.add_argument("--scale", type=int, default=0, help="example multiplier (0: fit)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the seed sequence")
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    args = parser.parse_args(argv)

    budget = args.minutes * 60.0
    # Half the budget for one pass: shrinking a failure and a busy machine take the rest.
    scale = args.scale or max(2, int(budget / (PASS_SECONDS_AT_SCALE_1 * 2)))
    master = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(master)
    nodes = collect(["-k", args.keyword] if args.keyword else [])
    if not nodes:
        print("no fuzz tests collected", file=sys.stderr)
        return 2
    print(f"fuzz.run: {len(nodes)} tests, scale x{scale}, {args.minutes:g} min, seed {master}")
    print(f"(replay this whole sequence with --seed {master} --scale {scale})", flush=True)

    deadline = time.monotonic() + budget
    tallies = {node: Tally() for node in nodes}
    passes = 0
    while time.monotonic() < deadline:
        order = nodes[:]
        rng.shuffle(order)
        for node in order:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            seed = rng.randrange(2**32)
            print(f"  {node}  seed={seed} ... ", end="", flush=True)
            started = time.monotonic()
            outcome, output, examples = run_one(node, seed, scale, left)
            tally = tallies[node]
            tally.seconds += time.monotonic() - started
            if outcome == "cut":
                tally.cut_short += 1
                print("cut short at the deadline")
                continue
            tally.runs += 1
            tally.examples += examples
            print(f"{outcome} ({examples} examples, {time.monotonic() - started:.0f} s)")
            if outcome == "failed":
                tally.failures.append(seed)
                print(failure_report(output))
                replay = (
                    f"EVSED_FUZZ_PROFILE=long EVSED_FUZZ_SCALE={scale} "
                    f"{shlex.quote(sys.executable)} -m pytest {shlex.quote(node)} "
                    f"--hypothesis-seed={seed}"
                )
                print(f"  replay: {replay}", flush=True)
        else:
            passes += 1

    print(f"\nsummary (seed {master}, scale x{scale}, {passes} complete passes):")
    width = max(len(n) for n in nodes)
    for node, t in tallies.items():
        failed = f"FAILED seeds {t.failures}" if t.failures else "ok"
        cut = f", {t.cut_short} cut short" if t.cut_short else ""
        print(
            f"  {node:<{width}}  {t.runs:>3} runs {t.examples:>7} examples "
            f"{t.seconds:>6.0f} s{cut}  {failed}"
        )
    total = sum(t.examples for t in tallies.values())
    failures = sum(len(t.failures) for t in tallies.values())
    print(f"  {total} examples in all, {failures} failing run(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
