"""One line per event, with level and context (connector, transaction, OCPP action).

Code logs with `extra={"connector": n, "tx": id, "action": name}`; the formatter
prints those as ` [c1 tx7 StartTransaction]`. Under systemd, when stderr is the
journal, records go to the journal instead, with those as fields (CONNECTOR,
TRANSACTION_ID, OCPP_ACTION). OCPP frames go to the `evsed.ocpp.frames` logger at
debug level, already redacted by the RPC layer.
"""

from __future__ import annotations

import logging
import sys

from controller.systemd import JournalHandler, journal_wanted


class ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = []
        connector = getattr(record, "connector", None)
        if connector is not None:
            parts.append(f"c{connector}")
        tx = getattr(record, "tx", None)
        if tx is not None:
            parts.append(f"tx{tx}")
        action = getattr(record, "action", None)
        if action is not None:
            parts.append(str(action))
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


def setup_logging(level: str) -> None:
    handler: logging.Handler
    if journal_wanted():
        handler = JournalHandler()  # the journal keeps time, level and context as fields
    else:
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
