"""DataTransfer in both directions: vendor extensions to OCPP 1.6.

The CSMS's DataTransfer is routed by vendorId (an unknown one gets
UnknownVendorId) and, for vendors registered message by message, by messageId
(UnknownMessageId). An integrator adds a vendor with `register_vendor` or
`register_message`, and sends the station's own DataTransfer with `send`
(`ChargePoint16.data_transfer`). A vendor's handler that fails or answers
nonsense is answered Rejected: an extension never costs the CSMS a CALLERROR
or the station its link.

The station ships one vendor of its own, `org.evsed`:

* messageId `GetDiagnosticsSnapshot` (no data): the station's state as JSON —
  what `evsed status --json` shows on site (statuses, pilot, contactor,
  transaction, meter, faults, queue, link), plus the firmware version and the
  transaction messages given up after TransactionMessageAttempts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from controller import __version__

log = logging.getLogger("evsed.ocpp")

# (messageId, data) -> (status, data): a whole vendor.
VendorHandler = Callable[[str | None, str | None], Awaitable[tuple[str, str | None]]]
# data -> (status, data): one message of a vendor.
MessageHandler = Callable[[str | None], Awaitable[tuple[str, str | None]]]
Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

STATUSES = frozenset({"Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"})
VENDOR_ID_MAX = 255  # characters, as the schema allows
MESSAGE_ID_MAX = 50

EVSED_VENDOR_ID = "org.evsed"


class VendorMessages:
    """One vendor's messages by messageId; an unknown or missing one gets UnknownMessageId."""

    def __init__(self) -> None:
        self.messages: dict[str, MessageHandler] = {}

    def add(self, message_id: str, handler: MessageHandler) -> None:
        _check_length("messageId", message_id, MESSAGE_ID_MAX)
        self.messages[message_id] = handler

    async def __call__(self, message_id: str | None, data: str | None) -> tuple[str, str | None]:
        handler = self.messages.get(message_id) if message_id is not None else None
        if handler is None:
            return "UnknownMessageId", None
        return await handler(data)


class VendorRegistry:
    """The vendors this station answers DataTransfer for, and its own DataTransfer."""

    def __init__(self, call: Call, online: Callable[[], bool]) -> None:
        self._call = call
        self._online = online
        self._vendors: dict[str, VendorHandler] = {}

    # --- the CSMS's DataTransfer ---------------------------------------------------------

    def register_vendor(self, vendor_id: str, handler: VendorHandler) -> None:
        """Answer every DataTransfer of `vendor_id` with `handler(messageId, data)`."""
        _check_length("vendorId", vendor_id, VENDOR_ID_MAX)
        self._vendors[vendor_id] = handler

    def register_message(self, vendor_id: str, message_id: str, handler: MessageHandler) -> None:
        """Answer DataTransfer of `vendor_id` with `message_id` with `handler(data)`."""
        vendor = self._vendors.get(vendor_id)
        if vendor is None:
            vendor = VendorMessages()
            self.register_vendor(vendor_id, vendor)
        if not isinstance(vendor, VendorMessages):
            raise ValueError(f"vendor {vendor_id!r} has a handler of its own for every message")
        vendor.add(message_id, handler)

    def unregister_vendor(self, vendor_id: str) -> None:
        self._vendors.pop(vendor_id, None)

    def vendor_ids(self) -> list[str]:
        return sorted(self._vendors)

    async def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        """The DataTransfer.conf for a (schema-valid) DataTransfer.req from the CSMS."""
        vendor_id, message_id = req["vendorId"], req.get("messageId")
        handler = self._vendors.get(vendor_id)
        if handler is None:
            log.info("DataTransfer for unknown vendor %r", vendor_id[:80])
            return {"status": "UnknownVendorId"}
        try:
            status, data = await handler(message_id, req.get("data"))
        except Exception:
            log.exception("DataTransfer handler of %s (%s) failed", vendor_id, message_id)
            return {"status": "Rejected"}
        if status not in STATUSES or not (data is None or isinstance(data, str)):
            log.error(
                "DataTransfer handler of %s (%s) answered %r: not a DataTransfer answer",
                vendor_id,
                message_id,
                (status, type(data).__name__),
            )
            return {"status": "Rejected"}
        return {"status": status} | ({"data": data} if data is not None else {})

    # --- the station's DataTransfer -----------------------------------------------------------

    async def send(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> tuple[str, str | None]:
        """Send a DataTransfer to the CSMS; its status (Accepted, Rejected,
        UnknownMessageId, UnknownVendorId) and data.

        Raises ValueError for ids longer than OCPP allows, ConnectionError when the
        station is not connected and accepted, TimeoutError when the CSMS does not
        answer, and OcppError for its CALLERROR or an answer that breaks the schema.
        Nothing is queued: a DataTransfer means something now or not at all.
        """
        _check_length("vendorId", vendor_id, VENDOR_ID_MAX)
        if message_id is not None:
            _check_length("messageId", message_id, MESSAGE_ID_MAX)
        if not self._online():
            raise ConnectionError("not connected to an accepting CSMS")
        payload: dict[str, Any] = {"vendorId": vendor_id}
        if message_id is not None:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = data
        answer = await self._call("DataTransfer", payload)
        return str(answer["status"]), answer.get("data")


def _check_length(name: str, value: str, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{name} must be 1 to {limit} characters: {value!r:.80}")


def evsed_vendor(cp: Any) -> VendorMessages:
    """The station's own vendor extension for a ChargePoint16 (see the module docstring)."""
    vendor = VendorMessages()

    async def diagnostics_snapshot(data: str | None) -> tuple[str, str | None]:
        state = {
            **cp.station.snapshot(),
            "ocpp": cp.link_state(),
            "firmware_version": __version__,
            "failed_messages": [
                {"id": id_, "kind": kind, "error": error}
                for id_, kind, error in cp.store.failed_messages()
            ],
        }
        return "Accepted", json.dumps(state, separators=(",", ":"), sort_keys=True)

    vendor.add("GetDiagnosticsSnapshot", diagnostics_snapshot)
    return vendor
