"""What TriggerMessage does the same way in every OCPP version (controller.ocpp.v16.trigger,
controller.ocpp.v201.trigger): the messages accepted are sent after the answer, each on
its own, and one that fails (refused, unanswered, the link gone) is logged and not sent
again: triggered messages report the present, and a CSMS that missed one asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from controller.ocpp.rpc import OcppError, Reply

log = logging.getLogger("evsed.ocpp")

Send = Callable[[], Awaitable[Any]]

# A triggered message that fails with one of these is given up (logged).
SEND_ERRORS = (OcppError, TimeoutError, ConnectionError, OSError, ConnectionClosed)


def accepted(cp: Any, requested: str, senders: list[Send]) -> Reply:
    """The Accepted answer; `senders` run one after the other once it is sent."""

    async def send_all() -> None:
        for send in senders:
            try:
                await send()
            except SEND_ERRORS as e:
                log.warning("triggered %s failed: %s", requested, e or type(e).__name__)

    return Reply({"status": "Accepted"}, lambda: cp._later(send_all()))


def sender(cp: Any, action: str, payload: dict[str, Any]) -> Send:
    """Sends `action` with `payload` (its answer is not needed)."""

    async def send() -> None:
        await cp._call(action, payload)

    return send


def heartbeat(cp: Any) -> Send:
    """Sends a Heartbeat and sets the clock by its answer."""

    async def send() -> None:
        answer = await cp._call("Heartbeat", {})
        cp._set_clock(answer["currentTime"])

    return send
