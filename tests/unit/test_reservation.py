"""Reservations: the book's decisions (controller.core.reservation) and how the station
core applies them to cards, remote starts, free vend and connector statuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.connector import ConnectorSettings, StartTransaction
from controller.core.iec61851 import PilotState
from controller.core.reservation import (
    Admission,
    Condition,
    ConnectorView,
    Ending,
    Reservation,
    ReservationBook,
    ReservationEnded,
    ReserveAnswer,
)
from controller.core.station import CardRefused, RequestAuthorization, StationCore
from controller.core.status import ConnectorStatus
from drivers.interfaces import FaultKind

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
IDLE, PLUGGED, BUSY = Condition.IDLE, Condition.PLUGGED, Condition.BUSY
FAULTED, UNAVAILABLE = Condition.FAULTED, Condition.UNAVAILABLE


def res(
    rid: int = 1,
    connector: int = 1,
    id_tag: str = "ALICE",
    parent: str | None = None,
    expiry: datetime = LATER,
) -> Reservation:
    return Reservation(rid, connector, expiry, id_tag, parent)


def views(*conditions: Condition) -> list[ConnectorView]:
    return [ConnectorView(n + 1, c) for n, c in enumerate(conditions)]


def decide(
    book: ReservationBook,
    r: Reservation,
    connectors: list[ConnectorView],
    station: Condition = IDLE,
    zero: bool = True,
) -> ReserveAnswer:
    return book.decide(r, connectors, station, NOW, zero)


# --- the reservation itself ------------------------------------------------------------


def test_an_idtag_matches_case_insensitively_or_by_its_group() -> None:
    plain = res(id_tag="AbC")
    assert plain.admits("abc", None)
    assert not plain.admits("OTHER", "AbC")  # the reserved idTag is not a group
    assert not plain.admits("OTHER", None, parent_known=False)  # no group to hope for
    group = res(id_tag="ALICE", parent="Family")
    assert group.admits("BOB", "FAMILY")
    assert not group.admits("BOB", "NEIGHBOURS")
    assert not group.admits("BOB", None)
    assert group.admits("BOB", None, parent_known=False)  # provisionally, until looked up


def test_a_reservation_round_trips_through_its_record() -> None:
    r = res(7, 0, "ALICE", "FAMILY")
    assert Reservation.from_record(r.as_record()) == r
    assert r.as_record()["expiry"] == "2030-01-01T13:00:00.000Z"
    made = replace(r, reported_by="2.0.1")  # the layer that reports its ending
    assert Reservation.from_record(made.as_record()) == made
    older = {k: v for k, v in r.as_record().items() if k != "reported_by"}
    assert Reservation.from_record(older) == r  # written before reported_by


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"id": "1", "connector": 1, "expiry": "2030-01-01T00:00:00Z", "id_tag": "A"},
        {"id": 1, "connector": 1, "expiry": "soon", "id_tag": "A"},
        {"id": 1, "connector": 1, "expiry": "2030-01-01T00:00:00Z", "id_tag": 5},
        {
            "id": 1,
            "connector": 1,
            "expiry": "2030-01-01T00:00:00Z",
            "id_tag": "A",
            "parent_id_tag": 3,
        },
        {
            "id": 1,
            "connector": 1,
            "expiry": "2030-01-01T00:00:00Z",
            "id_tag": "A",
            "reported_by": 2,
        },
    ],
)
def test_a_broken_record_is_refused(record: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        Reservation.from_record(record)


def test_expiry_must_be_an_aware_moment() -> None:
    with pytest.raises(ValueError):
        Reservation(1, 1, datetime(2030, 1, 1), "A")  # naive: refused


# --- ReserveNow on a connector ---------------------------------------------------------------


def test_an_idle_connector_is_reserved() -> None:
    book = ReservationBook()
    assert decide(book, res(), views(IDLE)) is ReserveAnswer.ACCEPTED
    assert len(book) == 0  # deciding does not take it: add() does


@pytest.mark.parametrize(
    ("condition", "answer"),
    [
        (FAULTED, ReserveAnswer.FAULTED),
        (UNAVAILABLE, ReserveAnswer.UNAVAILABLE),
        (BUSY, ReserveAnswer.OCCUPIED),
        (PLUGGED, ReserveAnswer.OCCUPIED),
    ],
)
def test_a_connector_that_is_not_idle_says_why(condition: Condition, answer: ReserveAnswer) -> None:
    assert decide(ReservationBook(), res(), views(condition)) is answer


@pytest.mark.parametrize(
    ("station", "answer"),
    [(FAULTED, ReserveAnswer.FAULTED), (UNAVAILABLE, ReserveAnswer.UNAVAILABLE)],
)
def test_the_station_state_wins(station: Condition, answer: ReserveAnswer) -> None:
    assert decide(ReservationBook(), res(), views(IDLE), station) is answer
    assert decide(ReservationBook(), res(connector=0), views(IDLE), station) is answer


def test_a_connector_reserved_for_anyone_else_is_occupied() -> None:
    book = ReservationBook([res(1, 1, "ALICE")])
    assert decide(book, res(2, 1, "BOB"), views(IDLE, IDLE)) is ReserveAnswer.OCCUPIED
    assert decide(book, res(2, 1, "ALICE"), views(IDLE, IDLE)) is ReserveAnswer.OCCUPIED
    assert decide(book, res(2, 2, "BOB"), views(IDLE, IDLE)) is ReserveAnswer.ACCEPTED


def test_the_same_id_replaces_the_reservation() -> None:
    book = ReservationBook([res(1, 1, "ALICE")])
    moved = res(1, 2, "BOB")
    assert decide(book, res(1, 1, "BOB"), views(IDLE, IDLE)) is ReserveAnswer.ACCEPTED
    assert decide(book, moved, views(IDLE, IDLE)) is ReserveAnswer.ACCEPTED
    book.add(moved)
    assert list(book) == [moved]
    # A refused replacement leaves the reservation as it was.
    assert decide(book, res(1, 1, "CAROL"), views(BUSY, IDLE)) is ReserveAnswer.OCCUPIED
    assert list(book) == [moved]


def test_refusals_of_requests_that_cannot_be_honoured() -> None:
    book = ReservationBook()
    assert decide(book, res(connector=2), views(IDLE)) is ReserveAnswer.REJECTED
    assert decide(book, res(connector=-1), views(IDLE)) is ReserveAnswer.REJECTED
    assert decide(book, res(expiry=NOW), views(IDLE)) is ReserveAnswer.REJECTED
    past = NOW - timedelta(seconds=1)
    assert decide(book, res(expiry=past), views(IDLE)) is ReserveAnswer.REJECTED


def test_a_connector_held_for_connector_zero_reservations_is_occupied() -> None:
    book = ReservationBook([res(1, 0, "ALICE")])
    assert decide(book, res(2, 1, "BOB"), views(IDLE, BUSY)) is ReserveAnswer.OCCUPIED
    assert decide(book, res(2, 1, "BOB"), views(IDLE, IDLE)) is ReserveAnswer.ACCEPTED


# --- ReserveNow on connector 0 ---------------------------------------------------------------


def test_connector_zero_needs_the_key() -> None:
    assert decide(ReservationBook(), res(connector=0), views(IDLE), zero=False) is (
        ReserveAnswer.REJECTED
    )
    assert decide(ReservationBook(), res(connector=0), views(IDLE)) is ReserveAnswer.ACCEPTED


def test_connector_zero_needs_an_idle_connector_for_each_reservation() -> None:
    one = ReservationBook([res(1, 0, "ALICE")])
    assert decide(one, res(2, 0, "BOB"), views(IDLE, IDLE)) is ReserveAnswer.ACCEPTED
    assert decide(one, res(2, 0, "BOB"), views(IDLE, BUSY)) is ReserveAnswer.OCCUPIED
    assert decide(one, res(2, 0, "BOB"), views(IDLE)) is ReserveAnswer.OCCUPIED
    assert decide(one, res(1, 0, "BOB"), views(IDLE)) is ReserveAnswer.ACCEPTED  # replaces
    specific = ReservationBook([res(1, 1, "ALICE")])
    assert decide(specific, res(2, 0, "BOB"), views(IDLE)) is ReserveAnswer.OCCUPIED
    assert decide(ReservationBook(), res(connector=0), views(PLUGGED)) is ReserveAnswer.OCCUPIED


@pytest.mark.parametrize(
    ("conditions", "answer"),
    [
        ((FAULTED, FAULTED), ReserveAnswer.FAULTED),
        ((UNAVAILABLE, UNAVAILABLE), ReserveAnswer.UNAVAILABLE),
        ((FAULTED, UNAVAILABLE), ReserveAnswer.FAULTED),
        ((FAULTED, BUSY), ReserveAnswer.OCCUPIED),
    ],
)
def test_connector_zero_without_idle_connectors_says_why(
    conditions: tuple[Condition, ...], answer: ReserveAnswer
) -> None:
    assert decide(ReservationBook(), res(connector=0), views(*conditions)) is answer


# --- which connectors are kept, and for whom -----------------------------------------------


def test_a_reserved_connector_is_kept_for_its_reservation() -> None:
    alice = res(1, 2, "ALICE")
    assert ReservationBook([alice]).holds(views(IDLE, IDLE)) == {2: (alice,)}


def test_connector_zero_keeps_the_last_free_connectors() -> None:
    alice, bob = res(1, 0, "ALICE"), res(2, 0, "BOB")
    book = ReservationBook([alice])
    assert book.holds(views(IDLE, IDLE)) == {}  # one may go, one stays for Alice
    assert book.holds(views(BUSY, IDLE)) == {2: (alice,)}
    assert book.holds(views(BUSY, PLUGGED)) == {2: (alice,)}  # a cable alone does not free it
    assert book.holds(views(BUSY, FAULTED)) == {}  # nothing left to keep
    two = ReservationBook([alice, bob])
    assert two.holds(views(IDLE, IDLE)) == {1: (alice, bob), 2: (alice, bob)}
    mixed = ReservationBook([alice, res(3, 1, "CAROL")])
    assert mixed.holds(views(IDLE, IDLE)) == {1: (mixed.get(3),), 2: (alice,)}


def test_a_reservation_about_to_be_used_keeps_nothing_more() -> None:
    alice = res(1, 0, "ALICE")
    waiting = [ConnectorView(1, BUSY, pending=1), ConnectorView(2, IDLE)]
    assert ReservationBook([alice]).holds(waiting) == {}
    assert ReservationBook([alice]).decide(res(2, 0, "BOB"), waiting, IDLE, NOW, True) is (
        ReserveAnswer.ACCEPTED
    )


def test_admission_on_a_reserved_connector() -> None:
    alice = res(5, 1, "ALICE", "FAMILY")
    book = ReservationBook([alice])
    v = views(IDLE, IDLE)
    assert book.admission(1, v, "alice", None) == Admission(True, alice)
    assert book.admission(1, v, "BOB", "FAMILY") == Admission(True, alice)
    refused = book.admission(1, v, "BOB", None)
    assert not refused.allowed and "reserved" in refused.why and "5" in refused.why
    assert book.admission(1, v, "BOB", None, parent_known=False).allowed
    assert book.admission(2, v, "BOB", None) == Admission(True)  # not reserved
    assert book.admission(2, v, "ALICE", None) == Admission(True)  # its own is elsewhere


def test_admission_with_connector_zero_reservations() -> None:
    alice = res(5, 0, "ALICE")
    book = ReservationBook([alice])
    assert book.admission(1, views(IDLE, IDLE), "BOB", None) == Admission(True)
    kept = book.admission(2, views(BUSY, IDLE), "BOB", None)
    assert not kept.allowed and "connector 0" in kept.why
    assert book.admission(2, views(BUSY, IDLE), "ALICE", None) == Admission(True, alice)
    # Alice's start on any connector uses her reservation up.
    assert book.admission(1, views(IDLE, IDLE), "ALICE", None) == Admission(True, alice)


# --- how reservations end ----------------------------------------------------------------------


def test_reservations_end_at_their_expiry_date() -> None:
    soon, late = res(1, 1, expiry=NOW), res(2, 2, expiry=LATER)
    book = ReservationBook([soon, late])
    assert book.next_expiry() == NOW
    assert book.settle(views(IDLE, IDLE), IDLE, NOW) == [ReservationEnded(soon, Ending.EXPIRED)]
    assert list(book) == [late]
    assert book.settle(views(IDLE, IDLE), IDLE, NOW) == []
    assert ReservationBook().next_expiry() is None


def test_reservations_end_when_their_connector_or_the_station_fails() -> None:
    one, two, zero = res(1, 1), res(2, 2), res(3, 0)
    book = ReservationBook([one, two, zero])
    assert book.settle(views(FAULTED, BUSY), IDLE, NOW) == [ReservationEnded(one, Ending.FAULTED)]
    assert book.settle(views(IDLE, UNAVAILABLE), IDLE, NOW) == [
        ReservationEnded(two, Ending.UNAVAILABLE)
    ]
    assert book.settle(views(IDLE, IDLE), UNAVAILABLE, NOW) == [
        ReservationEnded(zero, Ending.UNAVAILABLE)
    ]
    gone = res(4, 3)  # a connector the station no longer has (configuration changed)
    book.add(gone)
    assert book.settle(views(IDLE, IDLE), IDLE, NOW) == [ReservationEnded(gone, Ending.UNAVAILABLE)]


def test_remove_says_what_ended() -> None:
    r = res(1)
    book = ReservationBook([r])
    assert book.remove(1, Ending.CANCELLED) == ReservationEnded(r, Ending.CANCELLED)
    assert book.remove(1, Ending.CANCELLED) is None


# --- the station core --------------------------------------------------------------------------


def station(connectors: int = 1, **settings: object) -> StationCore:
    core = StationCore([ConnectorSettings(**settings) for _ in range(connectors)])  # type: ignore[arg-type]
    core.settle_reservations(NOW)
    return core


def reserve(core: StationCore, r: Reservation) -> None:
    assert core.reservation_answer(r, NOW, True) is ReserveAnswer.ACCEPTED
    core.add_reservation(r)
    core.settle_reservations(NOW)


def status(core: StationCore, n: int = 1) -> ConnectorStatus:
    return core.connector(n).status().status


def test_a_reserved_connector_reports_reserved_until_the_reservation_ends() -> None:
    core = station()
    reserve(core, res(1, 1))
    assert status(core) is ConnectorStatus.RESERVED
    core.connector(1).pilot_changed(PilotState.B, 1)
    assert status(core) is ConnectorStatus.PREPARING  # someone plugged in
    core.connector(1).pilot_changed(PilotState.A, 2)
    assert status(core) is ConnectorStatus.RESERVED
    assert core.end_reservation(1, Ending.CANCELLED) is not None
    core.settle_reservations(NOW)
    assert status(core) is ConnectorStatus.AVAILABLE


def test_faulted_and_unavailable_win_and_end_the_reservation() -> None:
    core = station()
    reserve(core, res(1, 1))
    core.connector(1).fault(FaultKind.RCD, True, 1)
    assert status(core) is ConnectorStatus.FAULTED
    assert core.settle_reservations(NOW) == [ReservationEnded(res(1, 1), Ending.FAULTED)]
    core.connector(1).fault(FaultKind.RCD, False, 2)
    core.connector(1).pilot_changed(PilotState.A, 3)  # an RCD trip clears after an unplug
    core.settle_reservations(NOW)
    assert status(core) is ConnectorStatus.AVAILABLE  # the reservation did not come back

    reserve(core, res(3, 1))
    core.connector(1).set_operative(False, 4)
    assert status(core) is ConnectorStatus.UNAVAILABLE
    assert [e.why for e in core.settle_reservations(NOW)] == [Ending.UNAVAILABLE]
    core.connector(1).set_operative(True, 5)
    core.settle_reservations(NOW)
    assert status(core) is ConnectorStatus.AVAILABLE


def test_a_station_fault_ends_connector_zero_reservations() -> None:
    core = station(2)
    reserve(core, res(1, 0))
    core.station_fault(FaultKind.GENERIC, True, 1)
    assert [e.why for e in core.settle_reservations(NOW)] == [Ending.FAULTED]
    assert len(core.reservations) == 0


def test_the_reserving_card_starts_and_uses_the_reservation_up() -> None:
    core = station()
    reserve(core, res(5, 1, "ALICE"))
    assert core.card_presented("alice", 1) == [RequestAuthorization("alice")]
    assert core.card_authorized("alice", True, None, 2) == []
    core.settle_reservations(NOW)
    assert status(core) is ConnectorStatus.PREPARING
    effects = core.connector(1).pilot_changed(PilotState.B, 3)
    assert effects == [StartTransaction(1, "alice", None, reservation_id=5)]
    assert core.end_reservation(5, Ending.USED) == ReservationEnded(res(5, 1, "ALICE"), Ending.USED)


def test_a_replaced_reservation_is_not_used_up_by_the_old_ones_driver() -> None:
    """Reservation 7 for Alice, who has authorized on 1; the CSMS then gives id 7 to Bob
    on 2. Bob's connector is held for him, and Alice's start does not use it up."""
    core = station(2)
    reserve(core, res(7, 1, "ALICE"))
    core.card_presented("ALICE", 1)
    core.card_authorized("ALICE", True, None, 2)
    core.settle_reservations(NOW)
    reserve(core, res(7, 2, "BOB"))
    assert status(core, 2) is ConnectorStatus.RESERVED
    effects = core.connector(1).pilot_changed(PilotState.B, 3)
    assert effects == [StartTransaction(1, "ALICE", None, reservation_id=None)]
    core.settle_reservations(NOW)
    assert status(core, 2) is ConnectorStatus.RESERVED


def test_another_card_is_refused_without_asking_anyone() -> None:
    core = station()
    reserve(core, res(5, 1, "ALICE"))
    [refused] = core.card_presented("BOB", 1)
    assert isinstance(refused, CardRefused) and "reserved" in refused.why
    assert core.connector(1).auth is None


def test_a_group_reservation_asks_for_the_card_and_checks_its_group() -> None:
    core = station()
    reserve(core, res(5, 1, "ALICE", "FAMILY"))
    assert core.card_presented("BOB", 1) == [RequestAuthorization("BOB")]
    [refused] = core.card_authorized("BOB", True, "NEIGHBOURS", 2)
    assert isinstance(refused, CardRefused) and "reservation 5" in refused.why
    assert core.card_authorized("BOB", True, "family", 3) == []
    effects = core.connector(1).pilot_changed(PilotState.B, 4)
    assert effects == [StartTransaction(1, "BOB", "family", reservation_id=5)]


def test_a_card_that_could_stop_a_group_transaction_is_still_asked_about() -> None:
    core = station(2)
    core.connector(1).pilot_changed(PilotState.B, 0)
    core.card_authorized("CAROL", True, "FAMILY", 1)  # charging on 1, group FAMILY
    reserve(core, res(5, 2, "ALICE"))
    assert core.card_presented("DAVE", 2) == [RequestAuthorization("DAVE")]


def test_the_reserving_idtag_goes_to_its_reserved_connector() -> None:
    core = station(2)
    reserve(core, res(5, 2, "ALICE"))
    picked = core.pick_connector(None, "ALICE")
    assert picked is not None and picked.number == 2
    other = core.pick_connector(None, "BOB")
    assert other is not None and other.number == 1
    assert core.pick_connector(2, "BOB") is None
    assert core.pick_connector(2, "BOB", None, parent_known=False) is None
    assert core.pick_connector(2) is not None  # without an idTag: any free connector


def test_connector_zero_keeps_the_last_connector_for_its_idtag() -> None:
    core = station(2)
    reserve(core, res(7, 0, "ALICE"))
    assert status(core, 1) is ConnectorStatus.AVAILABLE
    assert status(core, 2) is ConnectorStatus.AVAILABLE
    assert core.card_authorized("BOB", True, None, 1) == []  # takes connector 1
    core.settle_reservations(NOW)
    assert status(core, 2) is ConnectorStatus.RESERVED
    [refused] = core.card_authorized("CAROL", True, None, 2)
    assert isinstance(refused, CardRefused) and "connector 0" in refused.why
    assert core.card_authorized("ALICE", True, None, 3) == []
    core.settle_reservations(NOW)
    assert status(core, 2) is ConnectorStatus.PREPARING
    effects = core.connector(2).pilot_changed(PilotState.B, 4)
    assert effects == [StartTransaction(2, "ALICE", None, reservation_id=7)]


def test_an_authorization_forgets_a_reservation_that_ended_meanwhile() -> None:
    core = station()
    reserve(core, res(5, 1, "ALICE", expiry=NOW + timedelta(seconds=30)))
    core.card_authorized("ALICE", True, None, 1)
    ended = core.settle_reservations(NOW + timedelta(seconds=30))
    assert [e.why for e in ended] == [Ending.EXPIRED]
    effects = core.connector(1).pilot_changed(PilotState.B, 2)
    assert effects == [StartTransaction(1, "ALICE", None, reservation_id=None)]


def test_free_vend_respects_a_reservation() -> None:
    core = station(free_vend_id_tag="HOME")
    reserve(core, res(5, 1, "ALICE"))
    assert core.connector(1).pilot_changed(PilotState.B, 1) == []
    assert core.connector(1).tx is None
    core.connector(1).pilot_changed(PilotState.A, 2)
    core.end_reservation(5, Ending.CANCELLED)
    core.settle_reservations(NOW)
    effects = core.connector(1).pilot_changed(PilotState.B, 3)
    assert effects == [StartTransaction(1, "HOME", None)]


def test_free_vend_uses_a_reservation_for_its_own_idtag() -> None:
    core = station(free_vend_id_tag="HOME")
    reserve(core, res(5, 1, "home"))
    effects = core.connector(1).pilot_changed(PilotState.B, 1)
    assert effects == [StartTransaction(1, "HOME", None, reservation_id=5)]


def test_authorize_on_a_kept_connector_is_refused() -> None:
    core = station()
    reserve(core, res(5, 1, "ALICE"))
    [refused] = core.authorize_on(1, "BOB", None, 1)
    assert isinstance(refused, CardRefused)
    assert core.connector(1).auth is None
    assert core.authorize_on(1, "ALICE", None, 1) == []
    auth = core.connector(1).auth
    assert auth is not None and auth.reservation_id == 5
