"""The README's first command: `evsed demo` plays two whole sessions and says so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.harness import REPO


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_the_demo_plays_both_sessions(version: str) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'hw-sim'}"}
    done = subprocess.run(
        [sys.executable, "-m", "controller", "demo", "--ocpp", version],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Wh delivered in session 2" in done.stdout
    assert "Demo finished: both sessions reached the CSMS" in done.stdout
    started = "TransactionEvent  eventType=Started" if version == "2.0.1" else "StartTransaction "
    started = "CP → CSMS " + started
    assert done.stdout.count(started) == 2
