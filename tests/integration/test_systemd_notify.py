"""The daemon under systemd's notify protocol: READY only when it can serve, STATUS
that follows the station, WATCHDOG pings from the main loop (which stop when the loop
hangs), STOPPING on a stop. A datagram socket stands in for systemd's."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD

WAIT = 20.0


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, dict[str, str]]] = []

    def receive(self, timeout: float) -> None:
        """Collect what arrives within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, check: Any, what: str) -> dict[str, str]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for _, fields in self.messages:
                if check(fields):
                    return fields
            self.receive(0.1)
        raise AssertionError(f"no {what} in {[m for _, m in self.messages]}")

    def statuses(self) -> list[str]:
        return [m["STATUS"] for _, m in self.messages if "STATUS" in m]


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.sock.close()


def test_ready_status_and_stopping(
    make_daemon: Any, csms: CsmsThread, notify: NotifySocket
) -> None:
    daemon = make_daemon(start=False)
    daemon.env = {"NOTIFY_SOCKET": str(notify.path)}
    daemon.start(wait=False)
    ready = notify.wait_for(lambda m: m.get("READY") == "1", "READY=1")
    # READY=1 means the station can be driven: the control socket answers at once.
    assert daemon.request("hello")["protocol"] == "evsed-control"
    assert ready["STATUS"].startswith("connector 1 ")
    starting = notify.statuses()[: notify.statuses().index(ready["STATUS"])]
    assert any(s.startswith("starting") for s in starting)
    csms.wait_for("BootNotification")
    notify.wait_for(lambda m: "CSMS Accepted" in m.get("STATUS", ""), "the link in STATUS")
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging", timeout=WAIT)
    status = notify.wait_for(lambda m: "Charging (tx" in m.get("STATUS", ""), "Charging")
    assert status["STATUS"].startswith("connector 1 Charging (tx ")
    assert daemon.stop() == 0
    notify.receive(0.2)
    assert any(m.get("STOPPING") == "1" for _, m in notify.messages)


def test_watchdog_pings_come_from_the_main_loop(
    make_daemon: Any, csms: CsmsThread, notify: NotifySocket
) -> None:
    daemon = make_daemon(start=False)
    daemon.env = {
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "400000",  # pings every 0.2 s
        "EVSED_TEST_HOOKS": "1",
    }
    daemon.start(wait=False)
    notify.wait_for(lambda m: m.get("READY") == "1", "READY=1")
    notify.receive(1.0)

    def pings(start: float, end: float) -> int:
        return sum(1 for t, m in notify.messages if m.get("WATCHDOG") == "1" and start < t < end)

    now = time.monotonic()
    assert pings(now - 1.0, now) >= 2
    daemon.request("hang", seconds=2.0)
    hung = time.monotonic()
    notify.receive(3.0)
    # While the loop is blocked nothing pings (allow the one already on its way).
    assert pings(hung + 0.3, hung + 1.8) == 0
    assert pings(hung + 2.0, time.monotonic()) >= 2  # and it pings again afterwards


def test_the_hang_hook_is_off_without_the_test_environment(make_daemon: Any) -> None:
    from controller.control import ControlError

    daemon = make_daemon()
    with pytest.raises(ControlError, match="test hook"):
        daemon.request("hang", seconds=1)
    assert daemon.request("hello")


def test_a_rejected_boot_partition_configuration_is_shown(
    make_daemon: Any, notify: NotifySocket
) -> None:
    """`evsed provision` left a marker: STATUS says so, and so does the status LED."""
    daemon = make_daemon(start=False)
    state = daemon.dir / "state"
    state.mkdir()
    (state / "provisioning-failed.json").write_text(
        '{"source": "/boot/firmware/evsed.toml", "problems": ["station.id: too long"]}'
    )
    daemon.env = {"NOTIFY_SOCKET": str(notify.path)}
    daemon.start(wait=False)
    ready = notify.wait_for(lambda m: m.get("READY") == "1", "READY=1")
    assert ready["STATUS"].startswith("boot-partition configuration rejected")
    daemon.wait_ready()
    assert daemon.state()["hardware"]["indicator"] == "ProvisioningFailed"
    assert "station.id: too long" in daemon.log()
