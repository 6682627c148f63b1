"""`evsed selftest` against the simulated board: the real drivers over the register-level
simulators (as in the HIL tests) and a loopback CSMS. Each failure an installer can meet
on site is staged on the simulated part, and the report must name it and keep the
contactor open."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.config import Config, load_config
from controller.daemon import build_hardware
from controller.selftest import (
    FAIL,
    PASS,
    RUNNING_MESSAGE,
    SKIP,
    WELD_HINT,
    CheckResult,
    check_csms,
    main,
    run_selftest,
)
from hwsim.board import SimulatedBoard
from hwsim.csms import CsmsThread
from tests.integration.harness import Daemon

PASSWORD = "commissioning-pw-1234"


def write_config(directory: Path, csms_url: str, *, password: str = "", security: str = "") -> Path:
    """A one-connector socket outlet with lock, RCM, mirror contact, Modbus meter and
    MFRC522, all on the simulated board."""
    path = directory / "evsed.toml"
    csms_password = f'password = "{password}"\n' if password else ""
    csms_password += security
    path.write_text(
        f"""
[station]
id = "CP-SELFTEST"
vendor = "evsed"
model = "wallbox"
serial_number = "SN-0001"
[csms]
url = "{csms_url}"
response_timeout = 2
{csms_password}[state]
dir = "state"
[hardware]
pilot = "gpio"
contactor = "gpio"
meter = "modbus"
reader = "mfrc522"
simulate_board = true
[[connectors]]
max_current = 16
lock = true
[[meters]]
model = "eastron_sdm630"
port = "/dev/ttyUSB0"
unit_id = 1
"""
    )
    return path


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ocpp"


@pytest.fixture
def csms() -> Iterator[CsmsThread]:
    with CsmsThread() as central:
        yield central


@pytest.fixture
def config(tmp_path: Path, csms: CsmsThread) -> Config:
    return load_config(write_config(tmp_path, csms.url))


@pytest.fixture
def board(config: Config) -> Iterator[tuple[Any, SimulatedBoard]]:
    hardware, simulation = build_hardware(config)
    try:
        yield hardware, simulation
    finally:
        simulation.close()


def run(config: Config, hardware: Any, csms: bool = True) -> dict[str, CheckResult]:
    results = asyncio.run(run_selftest(config, hardware, csms=csms))
    return {r.name: r for r in results}


def record_contactor(
    monkeypatch: pytest.MonkeyPatch, hardware: Any, weld_on_close: SimulatedBoard | None = None
) -> list[bool]:
    """Every command the selftest gives the contactor; optionally weld it as it closes."""
    contactor = hardware.contactors[0]
    original = contactor.set_closed
    commands: list[bool] = []

    def set_closed(closed: bool) -> None:
        commands.append(closed)
        original(closed)
        if closed and weld_on_close is not None:
            weld_on_close.contactor.welded = True

    monkeypatch.setattr(contactor, "set_closed", set_closed)
    return commands


def test_a_healthy_board_passes_every_check(
    config: Config, board: tuple[Any, SimulatedBoard], csms: CsmsThread
) -> None:
    hardware, simulation = board
    results = run(config, hardware)
    assert list(results) == ["pilot", "meter", "rcm", "contactor", "lock", "reader", "csms"]
    assert {r.name: r.outcome for r in results.values() if r.outcome != PASS} == {}
    assert results["pilot"].detail == "+12 V in state A"
    assert "230/230/230 V" in results["meter"].detail
    assert "0x92" in results["reader"].detail
    assert [r.connector for r in results.values()] == [1, 1, 1, 1, 1, 0, 0]
    # It really switched, and left everything off.
    assert simulation.contactor.switch_count == 2
    assert simulation.rcm is not None and simulation.rcm.test_pulses == 1
    assert not simulation.contactor.energised and not simulation.contactor.closed
    assert simulation.lock is not None and not simulation.lock.locked
    boot = csms.calls("BootNotification", "CP-SELFTEST")
    assert boot == [
        {
            "chargePointVendor": "evsed",
            "chargePointModel": "wallbox",
            "chargePointSerialNumber": "SN-0001",
            "firmwareVersion": boot[0]["firmwareVersion"],
        }
    ]


@pytest.mark.parametrize("when", ["before the test", "while closed"])
def test_a_welded_contactor_fails_with_the_weld_hint_and_is_left_open(
    config: Config, board: tuple[Any, SimulatedBoard], monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    hardware, simulation = board
    if when == "before the test":
        simulation.contactor.welded = True
        commands = record_contactor(monkeypatch, hardware)
    else:
        commands = record_contactor(monkeypatch, hardware, weld_on_close=simulation)
    results = run(config, hardware, csms=False)
    contactor = results["contactor"]
    assert contactor.outcome == FAIL
    assert "closed" in contactor.detail
    assert contactor.hint == WELD_HINT
    if when == "before the test":
        assert True not in commands  # never closed on a contact that reads closed
    else:
        assert commands[0] is True and commands[-1] is False
        assert "welded" in contactor.detail
    assert not simulation.contactor.energised
    others = {n: r.outcome for n, r in results.items() if n not in ("contactor", "csms")}
    assert set(others.values()) == {PASS}


def test_a_contactor_that_never_pulls_in_fails_with_the_wiring_hint(
    config: Config, board: tuple[Any, SimulatedBoard], monkeypatch: pytest.MonkeyPatch
) -> None:
    hardware, simulation = board
    simulation.contactor.stuck_open = True
    commands = record_contactor(monkeypatch, hardware)
    contactor = run(config, hardware, csms=False)["contactor"]
    assert contactor.outcome == FAIL
    assert "did not follow" in contactor.detail
    assert "coil" in contactor.hint and "contactor_feedback_pin" in contactor.hint
    assert commands[-1] is False and not simulation.contactor.energised


def test_a_silent_meter_fails_and_the_other_checks_still_run(
    config: Config, board: tuple[Any, SimulatedBoard]
) -> None:
    hardware, simulation = board
    simulation.meters[0].go_silent(None)
    results = run(config, hardware, csms=False)
    meter = results["meter"]
    assert meter.outcome == FAIL
    assert "no answer" in meter.detail
    assert "A and B swapped" in meter.hint and "meters[1].unit_id" in meter.hint
    assert results["contactor"].outcome == PASS
    assert results["reader"].outcome == PASS


def test_a_jammed_lock_fails_and_is_commanded_to_unlock(
    config: Config, board: tuple[Any, SimulatedBoard], monkeypatch: pytest.MonkeyPatch
) -> None:
    hardware, simulation = board
    assert simulation.lock is not None
    simulation.lock.jammed = True
    lock = hardware.locks[0]
    moves: list[str] = []
    for action in ("lock_async", "unlock_async"):
        original = getattr(lock, action)

        async def move(original: Any = original, action: str = action) -> bool:
            moves.append(action)
            return bool(await original())

        monkeypatch.setattr(lock, action, move)
    result = run(config, hardware, csms=False)["lock"]
    assert (result.outcome, result.detail) == (FAIL, "did not reach locked")
    assert "lock_pin" in result.hint
    assert moves == ["lock_async", "unlock_async"]


def test_a_plugged_in_ev_fails_the_pilot_and_the_contactor_is_not_switched(
    config: Config, board: tuple[Any, SimulatedBoard]
) -> None:
    hardware, simulation = board
    simulation.plug(1)
    results = run(config, hardware, csms=False)
    assert results["pilot"].outcome == FAIL
    assert "state B" in results["pilot"].detail
    assert "unplug the EV" in results["pilot"].hint
    assert results["contactor"].outcome == SKIP
    assert simulation.contactor.switch_count == 0


def test_a_csms_that_rejects_the_station_fails(
    config: Config, board: tuple[Any, SimulatedBoard], csms: CsmsThread
) -> None:
    hardware, _ = board
    csms.configure(boot_status="Rejected", interval=120)
    result = run(config, hardware)["csms"]
    assert result.outcome == FAIL
    assert result.detail == "BootNotification Rejected (interval 120 s)"
    assert "CP-SELFTEST" in result.hint


def test_wrong_credentials_fail_with_http_401(tmp_path: Path) -> None:
    with CsmsThread(password=PASSWORD) as central:
        right = load_config(write_config(tmp_path, central.url, password=PASSWORD))
        assert asyncio.run(check_csms(right)).outcome == PASS
        wrong = load_config(write_config(tmp_path, central.url, password="x" * 20))
        result = asyncio.run(check_csms(wrong))
    assert (result.outcome, result.detail) == (FAIL, "HTTP 401 from the CSMS")
    assert "csms.password" in result.hint


def test_the_csms_check_uses_the_stations_security_profile(tmp_path: Path) -> None:
    """Profile 2: TLS verified against the CSMS root the daemon installed in its
    certificate store; without that root the check fails saying what is missing."""
    from controller.certificates import CertificateStore
    from tests.pki import issue, make_ca, server_context

    ca = make_ca()
    server = issue(ca, "127.0.0.1", server=True)
    with CsmsThread(password=PASSWORD, ssl_context=server_context(server)) as central:
        security = "security_profile = 2\n"
        config = load_config(
            write_config(tmp_path, central.url, password=PASSWORD, security=security)
        )
        missing = asyncio.run(check_csms(config))
        assert missing.outcome == FAIL and "CentralSystemRootCertificate" in missing.detail
        CertificateStore(config.state.dir / "certs").add_root("csms", ca.certificate)
        assert asyncio.run(check_csms(config)).outcome == PASS


def test_main_prints_the_table_and_fails_when_the_csms_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(str(write_config(tmp_path, closed_port_url()))) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.split()[:3] == ["csms", "-", "FAIL"] for line in lines)
    assert "connection refused" in out
    assert any(line.split()[:3] == ["contactor", "1", "PASS"] for line in lines)
    assert "What to check:" in out and "csms.url" in out


def test_main_passes_with_the_csms_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(str(write_config(tmp_path, closed_port_url())), skip_csms=True) == 0
    out = capsys.readouterr().out
    assert "skipped (--skip-csms)" in out and "all checks passed" in out


def test_main_reports_every_configuration_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[station]\nid = ""\n[csms]\nurl = "http://x"\n')
    assert main(str(path)) == 2
    err = capsys.readouterr().err
    assert "station.id" in err and "csms.url" in err and "connectors" in err


def test_main_refuses_while_the_daemon_runs(
    csms: CsmsThread, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = Daemon(csms, {}, [{"max_current": 16}])
    try:
        daemon.start()
        assert main(str(daemon.config)) == 2
        assert capsys.readouterr().err.strip() == RUNNING_MESSAGE
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        daemon.cleanup()
