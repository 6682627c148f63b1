"""An append-only record of what the simulated power path did, for safety checks.

One JSON object per line: `t` (time.monotonic(), which is system-wide, so a test
process can compare it with its own clock), `pid`, `c` (connector, 0 for the
station) and `ev`:

* `start`: a daemon run began; every contactor is open (a new process starts
  with its outputs off);
* `pilot`: the CP state the EV presents changed (`state`);
* `output`: the EVSE's pilot output changed (`mode`, `duty`);
* `contactor`: the contactor was commanded open or closed (`closed`).

Each line is one write() on an O_APPEND descriptor, so a kill -9 never leaves a
torn line behind, and lines from consecutive runs stay in order.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class EventLog:
    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._pid = os.getpid()

    def record(self, connector: int, event: str, **fields: Any) -> None:
        line = {"t": time.monotonic(), "pid": self._pid, "c": connector, "ev": event, **fields}
        os.write(self._fd, (json.dumps(line) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event recorded in `path`, in order (none if there is no file)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
