"""OCPP 2.0.1 reservations' own logic (controller.ocpp.v201.reservation): which EVSE a
ReserveNow names, which endings are reported and how the reports are delivered, and the
station's reservation watchers (controller.station.Station.watch_reservations). The
daemon-level behaviour is in tests/integration/test_v201_reservation_trigger.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from controller.authorizer import Authorizer
from controller.core.connector import ConnectorSettings
from controller.core.reservation import ANY_CONNECTOR, Ending, Reservation, ReservationEnded
from controller.ocpp.rpc import OcppError, validate
from controller.ocpp.v16 import features
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.ocpp.v201.reservation import (
    REPORTED_BY,
    UPDATES,
    ReservationFeature,
    Unreservable,
    reservation_target,
)
from controller.station import ENDINGS, RESERVATIONS, Station
from controller.store import Store
from hwsim.hardware import SimHardware

CABLE, SOCKET = "cType2", "sType2"

# --- which EVSE a ReserveNow names -----------------------------------------------------------


@pytest.mark.parametrize(
    ("evse", "connector_type", "types", "target"),
    [
        (None, None, [CABLE], ANY_CONNECTOR),
        (None, None, [CABLE, SOCKET], ANY_CONNECTOR),
        (1, None, [CABLE, SOCKET], 1),
        (2, SOCKET, [CABLE, SOCKET], 2),
        (None, CABLE, [CABLE, CABLE], ANY_CONNECTOR),  # every EVSE has it: any EVSE
        (None, SOCKET, [CABLE, SOCKET], 2),  # only one has it: that one
        (None, "Unknown", [CABLE, SOCKET], ANY_CONNECTOR),  # names no type
        (1, "Undetermined", [CABLE], 1),
    ],
)
def test_the_evse_a_reservation_keeps(
    evse: int | None, connector_type: str | None, types: list[str], target: int
) -> None:
    assert reservation_target(evse, connector_type, types) == target


@pytest.mark.parametrize(
    ("evse", "connector_type", "types", "reason"),
    [
        (2, None, [CABLE], "UnknownEvse"),
        (0, None, [CABLE], "UnknownEvse"),  # EVSE 0 is no EVSE: "any" is no evseId
        (-1, None, [CABLE], "UnknownEvse"),
        (1, SOCKET, [CABLE, SOCKET], "InvalidConnectorType"),
        (None, "cCCS2", [CABLE, SOCKET], "InvalidConnectorType"),
        (None, SOCKET, [SOCKET, SOCKET, CABLE], "InvalidConnectorType"),  # some, not all
    ],
)
def test_a_reservation_of_no_evse_here_is_refused(
    evse: int | None, connector_type: str | None, types: list[str], reason: str
) -> None:
    with pytest.raises(Unreservable) as refused:
        reservation_target(evse, connector_type, types)
    assert refused.value.reason_code == reason


# --- the station's watchers ----------------------------------------------------------------


def reservation(
    number: int, seconds: float, connector: int = 1, reported_by: str | None = REPORTED_BY
) -> Reservation:
    """A reservation the 2.0.1 layer made (reported_by None: another layer made it)."""
    expiry = datetime.now(UTC) + timedelta(seconds=seconds)
    return Reservation(
        id=number, connector=connector, expiry=expiry, id_tag="04A1B2C3", reported_by=reported_by
    )


def station(state: Path) -> Station:
    store = Store(state / "evsed.db")
    keys = ConfigurationKeys(
        features.all_keys(1), persisted=store.config_keys(), persist=store.set_config_key
    )
    return Station(
        SimHardware(1, has_lock=[False], ev_reaction_s=0.0),
        store,
        keys,
        [ConnectorSettings(max_current_a=16)],
        [3],
        Authorizer(state / "auth.db"),
    )


def test_watchers_hear_of_reservations_that_expired_while_the_station_was_off(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "evsed.db")
    store.put_record(RESERVATIONS, "7", reservation(7, -60).as_record())
    store.put_record(RESERVATIONS, "8", reservation(8, 600).as_record())
    store.close()

    heard: list[ReservationEnded] = []
    restarted = station(tmp_path)
    restarted.watch_reservations(heard.append)
    assert [(e.reservation.id, e.why) for e in heard] == [(7, Ending.EXPIRED)]
    assert list(restarted.store.records(RESERVATIONS)) == ["8"]

    # And from then on, every ending as it happens.
    assert restarted.cancel_reservation(8)
    assert [(e.reservation.id, e.why) for e in heard] == [
        (7, Ending.EXPIRED),
        (8, Ending.CANCELLED),
    ]
    assert restarted.store.records(RESERVATIONS) == {}


# --- the reports: ReservationStatusUpdate ------------------------------------------------------


class ChargePoint:
    """What the feature uses of a ChargePoint201, with a recording link."""

    def __init__(self, state: Path, answers: list[Exception | None] | None = None) -> None:
        self.station = station(state)
        self.store = self.station.store
        self.station.link = self  # type: ignore[assignment]
        self.device_model = None
        self.sent: list[dict[str, Any]] = []
        self.answers = list(answers or [])

    def status_changed(self, connector: int, status: Any) -> None:
        pass

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        validate("2.0.1", action, payload)  # what the RPC layer would refuse to send
        self.sent.append(payload)
        problem = self.answers.pop(0) if self.answers else None
        if problem is not None:
            raise problem
        return {}


def ended(number: int, why: Ending) -> ReservationEnded:
    return ReservationEnded(reservation(number, 60), why)


def test_only_endings_the_csms_did_not_cause_are_reported(tmp_path: Path) -> None:
    cp = ChargePoint(tmp_path)
    feature = ReservationFeature(cp)
    endings = {1: Ending.USED, 2: Ending.CANCELLED, 3: Ending.EXPIRED}
    endings |= {4: Ending.FAULTED, 5: Ending.UNAVAILABLE}
    for number, why in endings.items():
        feature._ended(ended(number, why))
    reported = {int(k): v for k, v in cp.store.records(UPDATES).items()}
    assert reported == {3: "Expired", 4: "Removed", 5: "Removed"}


def test_its_own_reservations_are_reported_whichever_layer_serves_the_link(
    tmp_path: Path,
) -> None:
    cp = ChargePoint(tmp_path)
    feature = ReservationFeature(cp)
    cp.station.link = None  # e.g. the 1.6 layer serves the connection now
    assert feature._ended(ended(1, Ending.EXPIRED)) is True
    # One another layer made is that layer's (1.6 has no report for it).
    other = ReservationEnded(reservation(2, 60, reported_by=None), Ending.EXPIRED)
    assert feature._ended(other) is False
    assert cp.store.records(UPDATES) == {"1": "Expired"}
    cp.station.link = cp  # made before reservations said who made them: the link's layer
    assert feature._ended(other) is True
    assert cp.store.records(UPDATES) == {"1": "Expired", "2": "Expired"}


def test_an_ending_is_kept_until_a_watcher_has_taken_it(tmp_path: Path) -> None:
    """Expired while the station was off, ended as it starts, and the power cut again
    before the 2.0.1 layer was there to store its report: the next start reports it."""
    store = Store(tmp_path / "evsed.db")
    store.put_record(RESERVATIONS, "7", reservation(7, -60).as_record())
    store.put_record(RESERVATIONS, "8", reservation(8, -60, reported_by=None).as_record())
    store.close()
    station(tmp_path).store.close()  # power cut: no watcher yet

    cp = ChargePoint(tmp_path)
    assert cp.store.records(RESERVATIONS) == {}
    ReservationFeature(cp)
    assert cp.store.records(UPDATES) == {"7": "Expired"}
    assert cp.store.records(ENDINGS) == {}  # taken


def test_a_new_reservation_forgets_an_untaken_ending_of_its_id(tmp_path: Path) -> None:
    cp = ChargePoint(tmp_path)
    cp.station.reserve(reservation(4, 1), zero_supported=True)
    cp.station._reservation_ended(cp.station.core.end_reservation(4, Ending.EXPIRED))
    assert list(cp.store.records(ENDINGS)) == ["4"]  # no watcher took it
    assert cp.station.reserve(reservation(4, 600), zero_supported=True).value == "Accepted"
    assert cp.store.records(ENDINGS) == {}


def test_reports_are_kept_until_the_csms_has_them(tmp_path: Path) -> None:
    cp = ChargePoint(tmp_path, answers=[None, TimeoutError()])
    feature = ReservationFeature(cp)
    for number in (12, 3, 5):
        feature._ended(ended(number, Ending.EXPIRED))

    assert asyncio.run(feature._send_updates()) is False  # the second went unanswered
    assert [p["reservationId"] for p in cp.sent] == [3, 5]
    assert sorted(cp.store.records(UPDATES), key=int) == ["5", "12"]

    cp.answers = [OcppError("NotImplemented")]  # refused: sending it again would not help
    assert asyncio.run(feature._send_updates()) is True
    assert [p["reservationId"] for p in cp.sent] == [3, 5, 5, 12]
    assert cp.sent[-1] == {"reservationId": 12, "reservationUpdateStatus": "Expired"}
    assert cp.store.records(UPDATES) == {}


@pytest.mark.parametrize("code", ["InternalError", "GenericError"])
def test_a_csms_hiccup_keeps_the_report_for_later(tmp_path: Path, code: str) -> None:
    cp = ChargePoint(tmp_path, answers=[OcppError(code)])
    feature = ReservationFeature(cp)
    feature._ended(ended(6, Ending.EXPIRED))
    assert asyncio.run(feature._send_updates()) is False
    assert cp.store.records(UPDATES) == {"6": "Expired"}
    assert asyncio.run(feature._send_updates()) is True  # taken the next time
    assert [p["reservationId"] for p in cp.sent] == [6, 6]
    assert cp.store.records(UPDATES) == {}


@pytest.mark.parametrize(
    "problem",
    [
        OSError("network unreachable"),
        ConnectionClosed(None, None),  # the websocket closed under the call
    ],
)
def test_a_lost_link_keeps_the_report_for_later(tmp_path: Path, problem: Exception) -> None:
    cp = ChargePoint(tmp_path, answers=[problem])
    feature = ReservationFeature(cp)
    feature._ended(ended(6, Ending.FAULTED))
    assert asyncio.run(feature._send_updates()) is False
    assert cp.store.records(UPDATES) == {"6": "Removed"}
