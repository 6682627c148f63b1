"""One line per event, with level and context (connector, transaction).

Code logs with `extra={"connector": n, "tx": id}`; the formatter prints those
as ` [c1 tx7]`. OCPP frames go to the `evsed.ocpp.frames` logger at debug
level, already redacted by the RPC layer.
"""

from __future__ import annotations

import logging
import sys


class ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = []
        connector = getattr(record, "connector", None)
        if connector is not None:
            parts.append(f"c{connector}")
        tx = getattr(record, "tx", None)
        if tx is not None:
            parts.append(f"tx{tx}")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        ContextFormatter("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The websockets library logs every frame at debug; ours are enough.
    logging.getLogger("websockets").setLevel(logging.INFO)
    logging.getLogger("asyncio").setLevel(logging.INFO)
