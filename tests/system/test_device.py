"""evsed as installed on a device: a real systemd (in systemd-nspawn) running the unit
from deploy/, installed by deploy/install.sh, with simulated hardware and the test
CSMS on the host's loopback. Slow (a few minutes, more the first time, when the
Debian root is made): run with `./dev system-test`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hwsim.csms import CsmsThread
from tests.system.conftest import CARD, config_for
from tests.system.container import Container

pytestmark = pytest.mark.system

EVSED = "/opt/evsed/current/bin/evsed"
SOCKET = "/var/lib/evsed/control.sock"


def until(check: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def sim(box: Container, *args: str) -> str:
    return box.check(EVSED, "sim", "--socket", SOCKET, *args)


def journal(box: Container, unit: str, *args: str) -> list[dict[str, str]]:
    out = box.check("journalctl", "-u", unit, "-o", "json", "--no-pager", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_the_service_is_active_only_after_ready(device: Container, csms: CsmsThread) -> None:
    until(lambda: device.show("evsed.service", "ActiveState") == "active", "evsed active")
    assert device.show("evsed.service", "Type") == "notify"
    entries = journal(device, "evsed.service")
    ready = next(i for i, e in enumerate(entries) if "evsed ready" in e.get("MESSAGE", ""))
    started = next(
        i
        for i, e in enumerate(entries)
        if e.get("_PID") == "1" and e.get("MESSAGE", "").startswith("Started ")
    )
    assert ready < started, "systemd called the service started before it was ready"
    assert device.show("evsed.service", "User") == "evsed"
    csms.wait_for("BootNotification", timeout=30)
    status = until(
        lambda: "CSMS Accepted" in (s := device.show("evsed.service", "StatusText")) and s,
        "STATUS with the CSMS link",
    )
    assert str(status).startswith("connector 1 Available")


def test_status_follows_a_session_and_the_journal_has_structured_fields(
    device: Container, csms: CsmsThread
) -> None:
    sim(device, "plug", "1")
    sim(device, "card", CARD)
    sim(device, "ev-charge", "1", "on")
    until(lambda: "Charging (tx" in device.show("evsed.service", "StatusText"), "Charging")
    report = device.check(EVSED, "status")
    assert "Charging" in report
    sim(device, "unplug", "1")
    until(lambda: "1 Available" in device.show("evsed.service", "StatusText"), "Available")
    entries = journal(device, "evsed.service")
    assert any(e.get("CONNECTOR") == "1" and e.get("TRANSACTION_ID") for e in entries)
    assert any(e.get("OCPP_ACTION") == "BootNotification" for e in entries)
    ours = [e for e in entries if "LOGGER" in e]  # written by the journal handler
    assert ours and all(e["SYSLOG_IDENTIFIER"] == "evsed" and "PRIORITY" in e for e in ours)
    assert any(e["LOGGER"] == "evsed.station" for e in ours)


def test_a_hung_main_loop_is_killed_by_the_watchdog_and_restarted(device: Container) -> None:
    pid = device.show("evsed.service", "MainPID")
    restarts = int(device.show("evsed.service", "NRestarts"))
    device.check(
        "/opt/evsed/current/bin/python",
        "-c",
        "from controller.control import ControlClient as C; "
        f"C({SOCKET!r}).__enter__().request('hang', seconds=600)",
    )
    until(
        lambda: int(device.show("evsed.service", "NRestarts")) > restarts,
        "a restart after the watchdog fired",
        timeout=30,
    )
    until(lambda: device.show("evsed.service", "ActiveState") == "active", "active again")
    assert device.show("evsed.service", "MainPID") != pid
    messages = [e.get("MESSAGE", "") for e in journal(device, "evsed.service")]
    assert any("Watchdog timeout" in m for m in messages), messages[-20:]


def test_an_upgrade_keeps_the_configuration(
    device: Container, bundles: dict[str, Path], csms: CsmsThread
) -> None:
    config = "/etc/evsed/evsed.toml"
    edited = config_for(csms) + "# the installer's own note, kept across upgrades\n"
    (device.root / config.lstrip("/")).write_text(edited)
    out = device.check("/mnt/evsed/v1/install.sh", "--bundle", "/mnt/evsed/v2.tar")
    assert "keeping /etc/evsed/evsed.toml" in out
    assert device.check(EVSED, "--version").strip() == "evsed 0.1.0.post2"
    assert device.check("readlink", "/opt/evsed/current").strip() == "releases/b"
    assert (device.root / config.lstrip("/")).read_text() == edited
    until(lambda: device.show("evsed.service", "ActiveState") == "active", "active")
    assert device.show("evsed.service", "ExecMainPID") != "0"


def test_a_release_that_fails_its_health_check_is_rolled_back(
    device: Container, bundles: dict[str, Path]
) -> None:
    before = device.check("readlink", "/opt/evsed/current").strip()
    version = device.check(EVSED, "--version").strip()
    device.check("install", "-o", "evsed", "-m", "0644", "/mnt/evsed/bad.tar", "/tmp/bad.tar")
    device.check("runuser", "-u", "evsed", "--", EVSED, "update", "stage", "/tmp/bad.tar")
    # The path unit starts the updater; it installs, switches, restarts, waits, rolls back.
    result = Path(device.root / "var/lib/evsed-updater/result.json")
    outcome = until(
        lambda: (
            result.exists()
            and json.loads(result.read_text()).get("version") == "0.1.0.post3"
            and json.loads(result.read_text())
        ),
        "the updater's verdict on the bad release",
        timeout=180,
    )
    assert isinstance(outcome, dict) and outcome["outcome"] == "rolled_back", outcome
    assert device.check("readlink", "/opt/evsed/current").strip() == before
    assert device.check(EVSED, "--version").strip() == version
    until(lambda: device.show("evsed.service", "ActiveState") == "active", "active again")
    messages = [e.get("MESSAGE", "") for e in journal(device, "evsed.service")]
    assert any("broken on purpose" in m for m in messages)


def test_a_configuration_on_the_boot_partition(device: Container, csms: CsmsThread) -> None:
    boot = device.root / "boot/firmware"
    boot.mkdir(parents=True, exist_ok=True)
    (boot / "evsed.toml").write_text('[station]\nid = "bad id"\n[csms]\nurl = "http://x"\n')
    done = device.exec("systemctl", "start", "evsed-provision.service")
    assert done.returncode != 0  # the unit shows as failed
    assert (boot / "evsed-invalid.toml").exists()
    assert "station.id" in (boot / "evsed-problems.txt").read_text()
    messages = [e.get("MESSAGE", "") for e in journal(device, "evsed-provision.service")]
    assert any("station.id" in m for m in messages)
    device.check("systemctl", "restart", "evsed.service")
    until(
        lambda: (
            "boot-partition configuration rejected" in device.show("evsed.service", "StatusText")
        ),
        "the rejection in STATUS",
    )

    good = config_for(csms).replace("CP-SYSTEM-1", "CP-SYSTEM-2")
    (boot / "evsed.toml").write_text(good)
    device.check("systemctl", "reset-failed", "evsed-provision.service")
    device.check("systemctl", "start", "evsed-provision.service")
    assert not (boot / "evsed.toml").exists()
    assert 'id = "CP-SYSTEM-2"' in (device.root / "etc/evsed/evsed.toml").read_text()
    device.check("systemctl", "restart", "evsed.service")
    until(
        lambda: (
            "rejected" not in (s := device.show("evsed.service", "StatusText"))
            and "connector 1" in s
        ),
        "a clean STATUS",
    )


def test_the_units_pass_systemd_analyze_verify(device: Container) -> None:
    out = device.exec(
        "systemd-analyze",
        "verify",
        "evsed.service",
        "evsed-provision.service",
        "evsed-update.service",
        "evsed-update.path",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    security = device.check("systemd-analyze", "security", "--no-pager", "evsed.service")
    exposure = float(
        security.strip().splitlines()[-1].split("level for evsed.service:")[1].split()[0]
    )
    print(f"\nsystemd-analyze security evsed.service: exposure {exposure}")
    assert exposure <= 2.0
