"""HardwareWatchdog against a regular file and a FIFO (ioctls fail there and are ignored)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from drivers.gpio import HardwareWatchdog


def test_feed_writes_and_close_keeps_it_armed_by_default(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    wd = HardwareWatchdog(str(path), timeout_s=10)
    with pytest.raises(RuntimeError):
        wd.feed()
    wd.open()
    assert wd.is_open and wd.timeout_s is None  # SETTIMEOUT not supported on a file
    wd.feed()
    wd.feed()
    wd.close()
    wd.close()
    assert path.read_bytes() == b"\0\0"  # no magic 'V': the board still resets


def test_disarm_on_close_writes_magic_v(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    with HardwareWatchdog(str(path), disarm_on_close=True) as wd:
        wd.feed()
    assert path.read_bytes() == b"\0V"


def test_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "wd.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        wd = HardwareWatchdog(str(fifo), timeout_s=5, disarm_on_close=True)
        wd.open()
        wd.feed()
        assert os.read(reader, 16) == b"\0"
        wd.close()
        assert os.read(reader, 16) == b"V"
    finally:
        os.close(reader)


def test_feeds_from_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")

    async def scenario() -> None:
        wd = HardwareWatchdog(str(path), feed_interval_s=0.01)
        await wd.start()
        await asyncio.sleep(0.1)
        await wd.stop()
        assert not wd.is_open

    asyncio.run(scenario())
    data = path.read_bytes()
    assert len(data) >= 4 and set(data) == {0}


def test_missing_device_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        HardwareWatchdog(str(tmp_path / "absent")).open()
