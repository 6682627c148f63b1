"""Fuzzing ReserveNow and CancelReservation through the real RPC layer and handlers.

Like level 1 of test_fuzz_ocpp.py (whose handler table is Core only): frames go
straight into `RpcSession._on_frame` of a ChargePoint16 with the Reservation
profile attached, built as the daemon builds it on simulated hardware, and
`check_replies` judges every answer. After each frame the reservations the core
holds must be exactly those in the store (nothing acted on that is not on disk).
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from controller.ocpp.v16.reservation import ReservationProfile
from controller.station import RESERVATIONS, Station
from controller.store import Store
from tests.fuzz.ocpp_frames import HANDLED_16, Frame, check_replies, dumps, frames, valid_calls
from tests.fuzz.profile_harness import exchange
from tests.fuzz.profiles import fuzz_settings

ACTIONS = ("CancelReservation", "ReserveNow")
HANDLED = (*HANDLED_16, *ACTIONS)
YEAR_0 = "0001-01-01T00:00:00+00:01"  # a valid date-time that is before year 1 in UTC
SETTLE_S = 10.0


def holds_what_is_stored(station: Station, store: Store) -> None:
    stored = {int(key) for key in store.records(RESERVATIONS)}
    assert stored == {r.id for r in station.core.reservations}, "store and core differ"


def judge(frame_list: list[Frame]) -> None:
    for frame, replies in exchange(frame_list, ReservationProfile, holds_what_is_stored):
        check_replies(frame, replies, "1.6", HANDLED)


def reserve_now(expiry: str, connector: int = 1, rid: int = 1) -> str:
    payload = {"connectorId": connector, "expiryDate": expiry, "idTag": "A", "reservationId": rid}
    return dumps([2, "1", "ReserveNow", payload])


@fuzz_settings(60)
@given(st.lists(st.one_of(frames(ACTIONS), valid_calls(ACTIONS).map(dumps)), max_size=5))
@example([reserve_now(YEAR_0)])
@example([reserve_now("9999-12-31T23:59:59-01:00")])
@example([reserve_now("2999-01-01T00:00:00Z", connector=-(2**31)), reserve_now("x", rid=2)])
def test_reservation_frames_are_answered_by_the_rules(frame_list: list[Frame]) -> None:
    judge(frame_list)
