"""The daemon feeds the hardware watchdog from its main loop when configured."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from hwsim.csms import CsmsThread


def test_daemon_feeds_the_watchdog_and_disarms_it_only_on_a_clean_stop(
    make_daemon: Any, csms: CsmsThread, tmp_path: Path
) -> None:
    device = tmp_path / "watchdog"  # a plain file stands in for /dev/watchdog
    device.touch()
    daemon = make_daemon(hardware={"watchdog": str(device), "watchdog_timeout": 5})
    csms.wait_for("BootNotification")
    time.sleep(4.0)
    fed = device.read_bytes()
    assert len(fed) >= 2, f"expected periodic feeds, got {fed!r}"
    daemon.kill()  # a crash: no magic close, the watchdog will reset the board
    assert not device.read_bytes().endswith(b"V")
    device.write_bytes(b"")  # each open writes from the start, as a device node would take it
    daemon.start()
    csms.wait_for("BootNotification")
    assert daemon.stop() == 0  # a clean stop disarms it with the magic 'V'
    assert device.read_bytes().endswith(b"V")


def test_sigterm_while_booting_always_stops_the_daemon(make_daemon: Any, csms: CsmsThread) -> None:
    """A stop that lands while the link is mid-call must not hang (outputs must go off)."""
    daemon = make_daemon(start=False)
    for _ in range(5):
        daemon.start(wait=False)
        time.sleep(0.25)  # about when BootNotification is on the wire
        assert daemon.proc is not None
        daemon.proc.terminate()
        # 0: a clean stop; -SIGTERM: it arrived before the handler was installed, when
        # nothing had been switched on yet. Either way: no hang.
        code = daemon.proc.wait(timeout=8)
        assert code in (0, -signal.SIGTERM), daemon.log()[-3000:]
