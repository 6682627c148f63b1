"""OCPP 2.0.1 reservations (functional block H): ReserveNow, CancelReservation and
ReservationStatusUpdate, for a ChargePoint201.

Only translation, as for 1.6 (controller.ocpp.v16.reservation): which answer, which
EVSE is kept for whom and when a reservation ends are decided in
controller/core/reservation.py, and the station stores a reservation before it is
accepted. The 2.0.1 request in the core's terms:

* evseId: the core's connector; none: any EVSE (1.6's connector 0), which
  ReservationCtrlr.NonEvseSpecific (the neutral ReserveConnectorZeroSupported) allows;
* connectorType: the EVSEs with that connector (cType2 for a fixed cable, sType2 for a
  socket outlet): with an evseId that EVSE must have it; without, none is Rejected,
  all of them is any EVSE, and a single one is that EVSE. "Unknown" and "Undetermined"
  name no type;
* idToken / groupIdToken: the idTag and its parentIdTag (their types are kept, so a
  transaction started for the reservation names them right).

A reservation that ends on its own is reported with ReservationStatusUpdate: Expired
at its expiry, Removed when its EVSE (for any EVSE: the station) becomes Faulted or
Unavailable. One used by a transaction is not (TransactionEvent Started carries its
reservationId), nor one the CSMS cancelled. A reservation made here says so
(Reservation.reported_by) and its ending is reported over 2.0.1 whichever layer serves
the link when it ends (with versions ["1.6", "2.0.1"]); the station keeps an ending
until this feature has stored its report, and the reports are stored until the CSMS has
taken them, so neither a power cut (also one before this layer is built) nor an offline
spell loses one. A CALLERROR InternalError or GenericError (a CSMS hiccup) is sent
again later; any other CALLERROR refuses that report for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed

from controller.core.authorization import parse_datetime
from controller.core.reservation import (
    ANY_CONNECTOR,
    Ending,
    Reservation,
    ReservationEnded,
    ReserveAnswer,
)
from controller.ocpp.link import Registration
from controller.ocpp.rpc import OcppError
from controller.ocpp.v201.device_model import DataType, Mutability, VariableSpec

log = logging.getLogger("evsed.ocpp")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

CONTROLLER = "ReservationCtrlr"
UPDATES = "reservation_update201"  # store records: reservation id -> status not yet taken
REPORTED_BY = "2.0.1"  # Reservation.reported_by of the reservations made here
RETRIED_ERRORS = frozenset({"InternalError", "GenericError"})  # a hiccup: try again later
UNTYPED = frozenset({"Unknown", "Undetermined"})  # connectorTypes that name no type
RETRY_S = 30.0  # a ReservationStatusUpdate left unanswered is sent again after this
_UPDATE_STATUS = {
    Ending.EXPIRED: "Expired",
    Ending.FAULTED: "Removed",
    Ending.UNAVAILABLE: "Removed",
}


class Unreservable(ValueError):
    """A ReserveNow that names no EVSE of this station: Rejected with this reasonCode."""

    def __init__(self, reason_code: str, why: str) -> None:
        super().__init__(why)
        self.reason_code = reason_code


def reservation_target(
    evse_id: int | None, connector_type: str | None, types: Sequence[str]
) -> int:
    """The core's connector a ReserveNow asks for (ANY_CONNECTOR: any EVSE), given each
    EVSE's connector type (EVSE n is types[n - 1]); Unreservable when there is none."""
    typed = connector_type is not None and connector_type not in UNTYPED
    if evse_id is not None:
        if not 1 <= evse_id <= len(types):
            raise Unreservable("UnknownEvse", f"no EVSE {evse_id}")
        if typed and types[evse_id - 1] != connector_type:
            raise Unreservable("InvalidConnectorType", f"EVSE {evse_id} has no {connector_type}")
        return evse_id
    if not typed:
        return ANY_CONNECTOR
    matching = [n for n, kind in enumerate(types, start=1) if kind == connector_type]
    if not matching:
        raise Unreservable("InvalidConnectorType", f"no EVSE has a {connector_type}")
    if len(matching) == len(types):
        return ANY_CONNECTOR
    if len(matching) == 1:
        return matching[0]
    # Some EVSEs but not all: the core keeps any EVSE, not any of a kind.
    raise Unreservable("InvalidConnectorType", f"several but not all EVSEs have a {connector_type}")


class ReservationFeature:
    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self._updates_waiting = asyncio.Event()
        cp.station.watch_reservations(self._ended)

    @staticmethod
    def variables(number_of_evses: int) -> list[VariableSpec]:
        boolean, ro = DataType.BOOLEAN, Mutability.READ_ONLY
        return [
            VariableSpec(CONTROLLER, "Available", boolean, ro, "true", constant=True),
            VariableSpec(CONTROLLER, "Enabled", boolean, default="true"),
            # Read-only: the station keeps a free EVSE for these reservations itself.
            VariableSpec(
                CONTROLLER, "NonEvseSpecific", boolean, ro, key="ReserveConnectorZeroSupported"
            ),
        ]

    def handlers(self) -> dict[str, Handler]:
        return {"ReserveNow": self._reserve_now, "CancelReservation": self._cancel_reservation}

    # --- the CSMS's requests ---------------------------------------------------------------

    def _enabled(self) -> bool:
        model = self.cp.device_model
        return model is None or bool(model.bool_value(CONTROLLER, "Enabled"))

    def connector_types(self) -> list[str]:
        """Each EVSE's ConnectorType, as the device model reports it."""
        model = self.cp.device_model
        types = []
        for c in self.cp.station.core.connectors:
            try:
                types.append(model.value("Connector", "ConnectorType", evse=c.number, connector=1))
            except (AttributeError, KeyError):  # no device model (bare tests)
                types.append("sType2" if c.settings.socket_outlet else "cType2")
        return types

    async def _reserve_now(self, req: dict[str, Any]) -> dict[str, Any]:
        reservation_id = req["id"]
        if self.cp.registration is not Registration.ACCEPTED:
            return {"status": "Rejected"}
        if not self._enabled():
            log.info("ReserveNow %s refused: ReservationCtrlr.Enabled is false", reservation_id)
            return {"status": "Rejected", "statusInfo": {"reasonCode": "NotEnabled"}}
        try:
            expiry = parse_datetime(req["expiryDateTime"])
            target = reservation_target(
                req.get("evseId"), req.get("connectorType"), self.connector_types()
            )
        except Unreservable as e:
            log.info("ReserveNow %s refused: %s", reservation_id, e)
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason_code}}
        except ValueError as e:  # valid by the schema, but no moment in UTC (year 0)
            log.warning("ReserveNow %s refused: %s", reservation_id, e)
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue"}}
        token, group = req["idToken"], req.get("groupIdToken")
        reservation = Reservation(
            id=reservation_id,
            connector=target,
            expiry=expiry,
            id_tag=str(token["idToken"]),
            parent_id_tag=None if group is None else str(group["idToken"]),
            reported_by=REPORTED_BY,
        )
        zero_supported = self.cp.keys.get_bool("ReserveConnectorZeroSupported")
        answer = self.cp.station.reserve(reservation, zero_supported)
        if answer is ReserveAnswer.ACCEPTED:
            for named in (token, group):
                if named is not None:
                    self.cp.tokens.learn(named)
            # A report about an earlier reservation of this id would now mislead.
            self.cp.store.delete_record(UPDATES, str(reservation_id))
        return {"status": answer.value}

    async def _cancel_reservation(self, req: dict[str, Any]) -> dict[str, Any]:
        cancelled = self.cp.station.cancel_reservation(req["reservationId"])
        return {"status": "Accepted" if cancelled else "Rejected"}

    # --- reservations that end on their own ------------------------------------------------

    def _ended(self, ended: ReservationEnded) -> bool:
        """The station ended a reservation: one made here (or, not saying who made it,
        while this layer serves the link) that the CSMS did not end itself is reported
        (stored first; sent by while_connected). True: taken (stored, or nothing to
        report); False: another layer's."""
        made_by = ended.reservation.reported_by
        mine = made_by == REPORTED_BY or (made_by is None and self.cp.station.link is self.cp)
        if not mine:
            return False
        status = _UPDATE_STATUS.get(ended.why)
        if status is not None:
            self.cp.store.put_record(UPDATES, str(ended.reservation.id), status)
            self._updates_waiting.set()
        return True

    async def while_connected(self) -> None:
        while True:
            self._updates_waiting.clear()
            if not await self._send_updates():
                await asyncio.sleep(RETRY_S)
                continue
            await self._updates_waiting.wait()

    async def _send_updates(self) -> bool:
        """Send every stored report; False: the CSMS did not answer, try again later."""
        store = self.cp.store
        for key, status in sorted(store.records(UPDATES).items(), key=lambda kv: int(kv[0])):
            payload = {"reservationId": int(key), "reservationUpdateStatus": status}
            try:
                await self.cp._call("ReservationStatusUpdate", payload)
            except OcppError as e:
                if e.code in RETRIED_ERRORS:
                    log.warning("ReservationStatusUpdate %s %s failed: %s", key, status, e)
                    return False
                # The CSMS refuses it: sending it again would not help.
                log.warning("ReservationStatusUpdate %s %s refused: %s", key, status, e)
            except (TimeoutError, ConnectionError, OSError, ConnectionClosed) as e:
                log.warning("ReservationStatusUpdate %s %s failed: %s", key, status, e)
                return False
            store.delete_record(UPDATES, key)
        return True
