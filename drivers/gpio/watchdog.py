"""The Linux hardware watchdog (/dev/watchdog): resets the board when the daemon stops feeding it.

Why: a Linux process is not fail-safe (hardware reference §4.4). If the daemon
hangs or is killed, GPIO outputs keep their last level and the contactor may
stay energised. The watchdog, fed from the asyncio loop, resets the board
when the loop stops running; after the reset the pull-downs hold every coil
driver off.

Disarming trade-off: by default close() does NOT write the magic 'V', so even
a clean stop of the daemon (systemctl stop, an upgrade) ends in a board reset
after the timeout. That is deliberate: the watchdog cannot tell a clean stop
from a crash that still ran its finally blocks, and a station without its
daemon should not sit there with unknown outputs. Set disarm_on_close=True
for development or where another supervisor takes over. Kernels built with
CONFIG_WATCHDOG_NOWAYOUT ignore 'V' anyway. Opening the device arms it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct

log = logging.getLogger(__name__)

# <linux/watchdog.h>: _IOWR('W', 6, int) and _IOR('W', 7, int)
WDIOC_SETTIMEOUT = 0xC0045706
WDIOC_GETTIMEOUT = 0x80045707
MAGIC_CLOSE = b"V"


class HardwareWatchdog:
    """Feeds the watchdog device at `path`; see the module docstring for disarming."""

    def __init__(
        self,
        path: str = "/dev/watchdog",
        *,
        timeout_s: int | None = None,
        disarm_on_close: bool = False,
        feed_interval_s: float | None = None,
    ) -> None:
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if feed_interval_s is not None and feed_interval_s <= 0:
            raise ValueError("feed_interval_s must be > 0")
        self.path = path
        self._requested_timeout = timeout_s
        self.disarm_on_close = disarm_on_close
        self._feed_interval_s = feed_interval_s
        self._fd: int | None = None
        self._timeout_s: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    @property
    def timeout_s(self) -> int | None:
        """The timeout the driver reports (None if unknown, e.g. a plain file)."""
        return self._timeout_s

    def open(self) -> None:
        """Open (and so arm) the device; set the timeout where the driver supports it."""
        if self._fd is not None:
            return
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        if self._requested_timeout is not None:
            self._timeout_s = self._ioctl_int(WDIOC_SETTIMEOUT, self._requested_timeout)
        else:
            self._timeout_s = self._ioctl_int(WDIOC_GETTIMEOUT, 0)

    def _ioctl_int(self, request: int, value: int) -> int | None:
        assert self._fd is not None
        try:
            out = fcntl.ioctl(self._fd, request, struct.pack("i", value))
        except OSError as exc:  # ENOTTY on a plain file or FIFO, EINVAL if out of range
            log.debug("watchdog ioctl %#x on %s not supported: %s", request, self.path, exc)
            return None
        result: int = struct.unpack("i", out)[0]
        return result

    def feed(self) -> None:
        """Restart the countdown (any byte but 'V' does)."""
        if self._fd is None:
            raise RuntimeError("watchdog is not open")
        os.write(self._fd, b"\0")

    def close(self) -> None:
        """Close the device, disarming it only if disarm_on_close. Idempotent."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self.disarm_on_close:
                os.write(fd, MAGIC_CLOSE)
        finally:
            os.close(fd)

    def interval_s(self) -> float:
        """Feed period: as configured, else a quarter of the timeout, else 1 s."""
        if self._feed_interval_s is not None:
            return self._feed_interval_s
        if self._timeout_s:
            return max(self._timeout_s / 4, 0.1)
        return 1.0

    async def start(self) -> None:
        """Open and feed from the running loop: a stalled loop lets the board reset."""
        self.open()
        self.feed()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._fd is not None:
            await asyncio.sleep(self.interval_s())
            try:
                self.feed()
            except OSError:
                log.exception("watchdog: feeding failed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.close()

    def __enter__(self) -> HardwareWatchdog:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
