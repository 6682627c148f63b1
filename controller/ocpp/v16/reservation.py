"""OCPP 1.6 Reservation profile: ReserveNow and CancelReservation.

Only translation: the decisions (which answer, which connector is kept for whom,
when a reservation ends) are in controller/core/reservation.py, the station
persists them, and a start that uses a reservation up carries its id in the
outbox event, which charge_point.py renders as StartTransaction's reservationId.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from controller.core.authorization import parse_datetime
from controller.core.reservation import Reservation
from controller.ocpp.v16.charge_point import ChargePoint16, Registration
from controller.ocpp.v16.keys import KeySpec, Kind

log = logging.getLogger("evsed.ocpp")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ReservationProfile:
    PROFILE = "Reservation"

    def __init__(self, cp: ChargePoint16) -> None:
        self.cp = cp

    @staticmethod
    def keys(number_of_connectors: int) -> dict[str, KeySpec]:
        # Read-only: evsed keeps a free connector for connector-0 reservations itself.
        spec = KeySpec("ReserveConnectorZeroSupported", Kind.BOOL, "true", readonly=True)
        return {spec.name: spec}

    def handlers(self) -> dict[str, Handler]:
        return {"ReserveNow": self._reserve_now, "CancelReservation": self._cancel_reservation}

    async def _reserve_now(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.cp.registration is not Registration.ACCEPTED:
            return {"status": "Rejected"}
        try:
            expiry = parse_datetime(req["expiryDate"])
        except ValueError as e:  # valid by the schema, but no moment in UTC (year 0)
            log.warning("ReserveNow %s refused: %s", req["reservationId"], e)
            return {"status": "Rejected"}
        reservation = Reservation(
            id=req["reservationId"],
            connector=req["connectorId"],
            expiry=expiry,
            id_tag=req["idTag"],
            parent_id_tag=req.get("parentIdTag"),
        )
        zero_supported = self.cp.keys.get_bool("ReserveConnectorZeroSupported")
        answer = self.cp.station.reserve(reservation, zero_supported)
        return {"status": answer.value}

    async def _cancel_reservation(self, req: dict[str, Any]) -> dict[str, Any]:
        cancelled = self.cp.station.cancel_reservation(req["reservationId"])
        return {"status": "Accepted" if cancelled else "Rejected"}
