"""`evsed status` against the real daemon (simulated hardware) and the loopback CSMS:
the report shows a running session, the link, the queue and the faults that came and
went; a daemon that does not answer is one clear line."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.status_report import main
from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon, start_session


def test_the_report_shows_the_session_the_link_the_queue_and_the_faults(
    make_daemon: Callable[..., Daemon], csms: CsmsThread, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = make_daemon()
    csms.wait_for("BootNotification")
    start_session(daemon, csms)
    daemon.request("fault_raise", kind="meter", connector=1)
    daemon.wait(lambda s: "meter" in s["connectors"][0]["faults"], 5, "the meter fault")
    daemon.request("fault_clear", kind="meter", connector=1)
    daemon.wait(lambda s: not s["connectors"][0]["faults"], 5, "the meter fault to clear")
    state = daemon.state()
    tx = state["connectors"][0]["transaction"]

    assert main(daemon.socket) == 0
    lines = capsys.readouterr().out.splitlines()

    assert "connector 1  Charging" in lines
    [transaction] = [line.split(None, 1)[1] for line in lines if "transaction" in line]
    assert transaction.startswith(f"CSMS id {tx['csms_id']} (local {tx['id']}), idTag {CARD}, ")
    assert "kWh so far" in transaction
    assert "OCPP link    connected, registration Accepted" in lines
    assert f"queue        {state['queued_messages']} message(s) waiting" in lines
    assert "  contactor    open" not in lines and "  contactor    closed" in lines
    faults = [line for line in lines if "meter (PowerMeterFailure)" in line]
    assert [line.split()[-1] for line in faults] == ["raised", "cleared"]
    assert all("connector 1" in line and line.strip()[:4].isdigit() for line in faults)


def test_json_prints_the_raw_state_with_the_recent_faults(
    make_daemon: Callable[..., Daemon], csms: CsmsThread, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = make_daemon()
    csms.wait_for("BootNotification")
    for _ in range(6):  # twelve changes: only the last ten are kept
        daemon.request("fault_raise", kind="reader", connector=0)
        daemon.wait(lambda s: "reader" in s["faults"], 5, "the reader fault")
        daemon.request("fault_clear", kind="reader", connector=0)
        daemon.wait(lambda s: "reader" not in s["faults"], 5, "the reader fault to clear")

    assert main(daemon.socket, as_json=True) == 0
    state = json.loads(capsys.readouterr().out)
    recent = state["recent_faults"]
    assert len(recent) == 10
    assert [f["active"] for f in recent] == [True, False] * 5
    assert {(f["connector"], f["kind"], f["error_code"]) for f in recent} == {
        (0, "reader", "ReaderFailure")
    }
    assert state["ocpp"]["registration"] == "Accepted"


def test_a_daemon_that_is_not_running_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "control.sock"
    assert main(missing) == 1
    assert capsys.readouterr().err == f"evsed is not running (no answer on {missing})\n"

    stale = tmp_path / "stale.sock"  # left behind by a killed daemon: connection refused
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(stale))
    assert main(str(stale)) == 1
    captured = capsys.readouterr()
    assert captured.err == f"evsed is not running (no answer on {stale})\n"
    assert captured.out == ""
