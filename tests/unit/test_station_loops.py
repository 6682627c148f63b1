"""The station's loops outlive their errors (controller.station.keep_running)."""

from __future__ import annotations

import asyncio

import pytest

from controller.station import keep_running


def test_a_failing_loop_is_logged_and_started_again(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def loop() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise OSError("disk I/O error")  # what a failing SD card gives the store

    asyncio.run(keep_running("timer", loop, restart_s=0.01))
    assert runs == [0, 1, 2]
    assert caplog.text.count("the timer loop failed; restarting it") == 2


def test_cancelling_ends_it() -> None:
    async def main() -> None:
        task = asyncio.ensure_future(keep_running("meter", lambda: asyncio.sleep(10)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
