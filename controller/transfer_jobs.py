"""What the firmware job (controller.firmware_update) and the log uploads
(controller.log_upload) share, for any OCPP version: the transfer settings of the
[firmware] table, the notifications a job owes the CSMS, and their background tasks.

Both are one per station (per store), shared by the layers of every OCPP version the
station offers; each layer registers how it words their statuses, and the notifications
go out through the layer that serves the connection (`station.link`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.ocpp.rpc import OcppError
from controller.transfer import MiB, TransferOptions

if TYPE_CHECKING:  # controller.config imports the OCPP features: no import cycle at run time
    from controller.config import FirmwareConfig

log = logging.getLogger("evsed.firmware")

OWED_MAX = 50  # notifications kept while offline; the oldest go first


def firmware_config(cp: Any) -> FirmwareConfig:
    """The daemon's [firmware] table (its defaults when the layer was built without one)."""
    from controller.config import FirmwareConfig

    config = getattr(cp.config, "firmware", None)
    return config if config is not None else FirmwareConfig()


def transfer_options(config: FirmwareConfig) -> TransferOptions:
    return TransferOptions(
        timeout=config.transfer_timeout,
        max_bytes=int(config.max_download_mb * MiB),
        ca_file=config.ca_file,
    )


def state_dir(cp: Any) -> Path:
    """Where the station keeps its state (downloads and archives go below it)."""
    return Path(cp.store.path).parent


def parse_time(value: str | None) -> float | None:
    """An OCPP dateTime as POSIX seconds; ValueError if unreadable."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # OCPP times without an offset are UTC
    return moment.timestamp()


def station_now(cp: Any) -> float:
    return float(cp.station.clock.epoch())


class JobTasks:
    """A job's background tasks: kept referenced, failures logged."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s task failed", self.what, exc_info=task.exception())


class OwedNotifications:
    """Notifications sent in order while the station is accepted and kept (in memory)
    while it is not, by whichever version's layer serves the connection: each is kept
    as an `item` the engine renders for that layer (`render(item, layer)`, None: the
    layer has no message for it). One may stand for a store record of kind `records`
    (a final status that must survive a restart): it goes once the CSMS has it."""

    def __init__(
        self,
        station: Any,
        store: Any,
        records: str,
        tasks: JobTasks,
        render: Callable[[Any, Any], tuple[str, dict[str, Any]] | None],
    ) -> None:
        self.station = station
        self.store = store
        self.records = records
        self.render = render
        self._owed: deque[tuple[Any, str | None]] = deque()
        self._event = asyncio.Event()
        tasks.spawn(self._deliver())

    def owe(self, item: Any, record: str | None = None) -> None:
        """Send `item` when the station is accepted; `record`: the store record to drop
        once the CSMS has it."""
        while len(self._owed) >= OWED_MAX:
            self._owed.popleft()
        self._owed.append((item, record))
        self._event.set()

    def wake(self) -> None:
        """The station is connected and accepted: deliver what was owed meanwhile."""
        self._event.set()

    async def _deliver(self) -> None:
        while True:
            await self._event.wait()
            self._event.clear()
            while self._owed and self.station.link.online:
                layer = self.station.link
                item, record = self._owed[0]
                message = self.render(item, layer)
                if message is not None:
                    action, payload = message
                    try:
                        await layer._call(action, payload)
                    except (ConnectionError, TimeoutError) as e:
                        log.info("%s not delivered (%s); again when connected", action, e)
                        break
                    except OcppError as e:
                        log.warning("the CSMS refused %s: %s", action, e)
                self._owed.popleft()
                if record is not None and not any(r == record for _, r in self._owed):
                    self.store.delete_record(self.records, record)
