"""The per-connector session logic, table-driven over IEC 61851 states and events."""

from __future__ import annotations

from typing import Any

import pytest

from controller.core.connector import (
    STOP_FORCE_S,
    AuthorizationExpired,
    ConnectorSession,
    ConnectorSettings,
    StartTransaction,
    StopTransaction,
)
from controller.core.iec61851 import PilotMode, PilotState
from controller.core.status import ConnectorStatus as S
from controller.core.status import StopReason
from drivers.interfaces import FaultKind

TAG = "AABBCCDD"


def run(events: list[tuple[Any, ...]], **settings: Any) -> tuple[ConnectorSession, list[Any]]:
    """Feed events at one-second steps; return the session and every effect."""
    c = ConnectorSession(1, ConnectorSettings(**settings))
    effects: list[Any] = []
    now = 0.0
    for event in events:
        now += 1.0
        kind, *args = event
        if kind == "pilot":
            effects += c.pilot_changed(PilotState(args[0]), now)
        elif kind == "auth":
            effects += c.authorize(args[0], None, now)
        elif kind == "stop":
            effects += c.stop(StopReason(args[0]), now, graceful=args[1] if len(args) > 1 else True)
        elif kind == "fault":
            effects += c.fault(FaultKind(args[0]), args[1], now)
        elif kind == "wait":
            now += args[0]
            effects += c.tick(now)
        elif kind == "refused":
            effects += c.id_tag_refused(now)
        elif kind == "operative":
            effects += c.set_operative(args[0], now)
        else:
            raise ValueError(kind)
    return c, effects


CHARGING = [("pilot", "B"), ("auth", TAG), ("pilot", "C")]

# (name, events, status, pilot mode, contactor closed, effect types in order)
CASES = [
    ("idle", [], S.AVAILABLE, PilotMode.X1, False, []),
    ("plugged, no card", [("pilot", "B")], S.PREPARING, PilotMode.X1, False, []),
    ("card, no cable", [("auth", TAG)], S.PREPARING, PilotMode.X1, False, []),
    (
        "card then plug",
        [("auth", TAG), ("pilot", "B")],
        S.SUSPENDED_EV,
        PilotMode.PWM,
        False,
        [StartTransaction],
    ),
    (
        "plug then card",
        [("pilot", "B"), ("auth", TAG)],
        S.SUSPENDED_EV,
        PilotMode.PWM,
        False,
        [StartTransaction],
    ),
    ("EV asks: charging", CHARGING, S.CHARGING, PilotMode.PWM, True, [StartTransaction]),
    ("C without authorization stays open", [("pilot", "C")], S.PREPARING, PilotMode.X1, False, []),
    (
        "C to B opens",
        [*CHARGING, ("pilot", "B")],
        S.SUSPENDED_EV,
        PilotMode.PWM,
        False,
        [StartTransaction],
    ),
    (
        "unplug stops (EVDisconnected)",
        [*CHARGING, ("pilot", "A")],
        S.AVAILABLE,
        PilotMode.X1,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "state E opens and faults",
        [*CHARGING, ("pilot", "E")],
        S.FAULTED,
        PilotMode.X1,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "state F read opens and faults",
        [*CHARGING, ("pilot", "F")],
        S.FAULTED,
        PilotMode.X1,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "D without ventilation is a fault",
        [("pilot", "B"), ("auth", TAG), ("pilot", "D")],
        S.FAULTED,
        PilotMode.X1,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "RCD trip opens at once",
        [*CHARGING, ("fault", "rcd", True)],
        S.FAULTED,
        PilotMode.X1,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "weld drives F",
        [*CHARGING, ("fault", "weld", True)],
        S.FAULTED,
        PilotMode.F,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "meter fault keeps charging",
        [*CHARGING, ("fault", "meter", True)],
        S.CHARGING,
        PilotMode.PWM,
        True,
        [StartTransaction],
    ),
    (
        "graceful stop waits for the EV",
        [*CHARGING, ("stop", "Local")],
        S.FINISHING,
        PilotMode.X1,
        True,
        [StartTransaction],
    ),
    (
        "EV leaves C after stop",
        [*CHARGING, ("stop", "Local"), ("pilot", "B")],
        S.FINISHING,
        PilotMode.X1,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "stop forced after 6 s",
        [*CHARGING, ("stop", "Remote"), ("wait", STOP_FORCE_S)],
        S.FINISHING,
        PilotMode.X1,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "hard stop opens at once",
        [*CHARGING, ("stop", "HardReset", False)],
        S.FINISHING,
        PilotMode.X1,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "connection timeout",
        [("auth", TAG), ("wait", 60.0)],
        S.AVAILABLE,
        PilotMode.X1,
        False,
        [AuthorizationExpired],
    ),
    (
        "refused idTag stops",
        [*CHARGING, ("refused",)],
        S.FINISHING,
        PilotMode.X1,
        True,
        [StartTransaction],
    ),
    ("inoperative, idle", [("operative", False)], S.UNAVAILABLE, PilotMode.X1, False, []),
    (
        "inoperative during tx: keeps charging",
        [*CHARGING, ("operative", False)],
        S.CHARGING,
        PilotMode.PWM,
        True,
        [StartTransaction],
    ),
    (
        "inoperative applies after tx",
        [*CHARGING, ("operative", False), ("pilot", "A")],
        S.UNAVAILABLE,
        PilotMode.X1,
        False,
        [StartTransaction, StopTransaction],
    ),
    (
        "no start while inoperative",
        [("operative", False), ("pilot", "B"), ("auth", TAG)],
        S.UNAVAILABLE,
        PilotMode.X1,
        False,
        [],
    ),
    (
        "no start while faulted",
        [("fault", "generic", True), ("pilot", "B"), ("auth", TAG)],
        S.FAULTED,
        PilotMode.X1,
        False,
        [],
    ),
]


@pytest.mark.parametrize(
    ("events", "status", "mode", "closed", "effects"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_session_rules(events, status, mode, closed, effects) -> None:
    c, produced = run(events)
    out = c.outputs()
    assert c.status().status is status
    assert out.pilot.mode is mode
    assert out.contactor_closed is closed
    assert [type(e) for e in produced] == effects


@pytest.mark.parametrize("state", list(PilotState))
def test_contactor_never_closed_outside_c_or_d(state: PilotState) -> None:
    """Whatever happened before, the contactor is open unless the EV asks for energy."""
    c, _ = run([*CHARGING, ("pilot", state.value)], ventilation=True)
    if state not in (PilotState.C, PilotState.D):
        assert c.outputs().contactor_closed is False


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ([*CHARGING, ("pilot", "A")], StopReason.EV_DISCONNECTED),
        ([*CHARGING, ("fault", "rcd", True)], StopReason.OTHER),
        ([*CHARGING, ("stop", "Remote"), ("pilot", "B")], StopReason.REMOTE),
        ([*CHARGING, ("refused",), ("pilot", "B")], StopReason.DEAUTHORIZED),
        ([*CHARGING, ("stop", "SoftReset"), ("pilot", "B")], StopReason.SOFT_RESET),
    ],
)
def test_stop_reasons(events, reason) -> None:
    _, effects = run(events)
    stops = [e for e in effects if isinstance(e, StopTransaction)]
    assert [s.reason for s in stops] == [reason]


def test_unplug_keeps_transaction_when_configured() -> None:
    c, effects = run([*CHARGING, ("pilot", "A")], stop_on_ev_disconnect=False)
    assert c.status().status is S.SUSPENDED_EV
    assert not any(isinstance(e, StopTransaction) for e in effects)
    c.pilot_changed(PilotState.C, 100.0)
    assert c.status().status is S.CHARGING and c.outputs().contactor_closed


def test_refused_idtag_suspends_when_policy_keeps_transaction() -> None:
    c, _ = run([*CHARGING, ("refused",)], stop_on_invalid_id=False)
    assert c.status().status is S.SUSPENDED_EVSE
    assert c.outputs().pilot.mode is PilotMode.X1
    assert not c.outputs().contactor_closed


@pytest.mark.parametrize(
    ("kind", "clears_without_unplug", "clears_with_unplug"),
    [("rcd", False, True), ("diode", False, True), ("generic", True, True), ("weld", False, False)],
)
def test_fault_latching(kind: str, clears_without_unplug: bool, clears_with_unplug: bool) -> None:
    c, _ = run([*CHARGING, ("fault", kind, True), ("fault", kind, False)])
    assert (c.status().status is not S.FAULTED) == clears_without_unplug
    c.pilot_changed(PilotState.A, 50.0)
    assert (c.status().status is not S.FAULTED) == clears_with_unplug


def test_offered_current_follows_the_connector_limit() -> None:
    c, _ = run(CHARGING, max_current_a=32.0)
    assert c.outputs().pilot.duty_percent == pytest.approx(53.33)
    assert c.outputs().pilot.offered_current_a == pytest.approx(32.0, abs=0.01)


def test_limit_below_six_amps_pauses() -> None:
    c, _ = run(CHARGING)
    c.offered_limit_a = 5.0
    assert c.outputs().pilot.mode is PilotMode.X1
    assert not c.outputs().contactor_closed
    assert c.status().status is S.SUSPENDED_EVSE


def test_socket_outlet_offers_no_more_than_the_cable() -> None:
    c = ConnectorSession(1, ConnectorSettings(max_current_a=32.0, socket_outlet=True))
    c.pilot_changed(PilotState.B, 0)
    c.authorize(TAG, None, 1)
    assert c.outputs().pilot.mode is PilotMode.X1  # no cable rating read yet: no offer
    c.cable_changed(20.0, 2)
    assert c.outputs().pilot.offered_current_a == pytest.approx(20.0, abs=0.05)
    c.cable_changed(63.0, 3)
    assert c.outputs().pilot.offered_current_a == pytest.approx(32.0, abs=0.05)


def test_fixed_cable_rating_caps_the_offer() -> None:
    c, _ = run(CHARGING, max_current_a=32.0, cable_rating_a=16.0)
    assert c.outputs().pilot.offered_current_a == pytest.approx(16.0, abs=0.05)


def test_contactor_waits_for_the_rcm_self_test() -> None:
    c, effects = run(CHARGING, has_rcm=True)
    assert [type(e).__name__ for e in effects] == ["StartTransaction", "RunRcmSelfTest"]
    assert c.outputs().pilot.mode is PilotMode.PWM
    assert not c.outputs().contactor_closed
    c.rcm_self_test_done(True, 10)
    assert c.outputs().contactor_closed


def test_failed_rcm_self_test_faults_until_unplug() -> None:
    c, _ = run(CHARGING, has_rcm=True)
    effects = c.rcm_self_test_done(False, 10)
    assert [type(e) for e in effects] == [StopTransaction]
    assert c.status().status is S.FAULTED and c.status().error_code == "GroundFailure"
    c.pilot_changed(PilotState.A, 11)
    assert c.status().status is S.AVAILABLE


def test_contactor_waits_for_a_confirmed_lock() -> None:
    c, _ = run(CHARGING, has_lock=True)
    assert c.outputs().locked and not c.outputs().contactor_closed
    c.lock_reported(True, 10)
    assert c.outputs().contactor_closed
    c.lock_reported(False, 11)  # forced open: no energy on an unlocked socket
    assert not c.outputs().contactor_closed


def test_resumed_transaction_charges_again_without_a_new_start() -> None:
    c = ConnectorSession(1, ConnectorSettings(has_rcm=True))
    effects = c.resume(TAG, None, PilotState.C, 0)
    assert [type(e).__name__ for e in effects] == ["RunRcmSelfTest"]
    assert c.tx is not None and c.outputs().pilot.mode is PilotMode.PWM
    c.rcm_self_test_done(True, 1)
    assert c.outputs().contactor_closed and c.status().status is S.CHARGING


def test_free_vend_starts_on_plug_in_and_only_once_per_plug_in() -> None:
    c = ConnectorSession(1, ConnectorSettings(free_vend_id_tag="HOME"))
    effects = c.pilot_changed(PilotState.B, 0)
    assert effects == [StartTransaction(1, "HOME", None)]
    c.pilot_changed(PilotState.C, 1)
    assert c.outputs().contactor_closed
    c.stop(StopReason.REMOTE, 2)
    assert [type(e) for e in c.pilot_changed(PilotState.B, 3)] == [StopTransaction]
    assert c.status().status is S.FINISHING and c.tx is None  # no restart while still plugged
    c.pilot_changed(PilotState.A, 4)
    assert c.pilot_changed(PilotState.B, 5) == [StartTransaction(1, "HOME", None)]


# --- a stop never closes an open contactor, and never unlocks under load -------------------


def test_a_stop_while_paused_by_a_low_limit_does_not_close_the_contactor() -> None:
    c, _ = run(CHARGING)
    c.offered_limit_a = 3.0  # a profile below 6 A: paused, contactor open
    c.tick(10.0)
    assert not c.outputs().contactor_closed
    effects = c.stop(StopReason.REMOTE, 11.0)  # the EV still asks (stubborn, in C)
    assert not c.outputs().contactor_closed
    assert [type(e) for e in effects] == [StopTransaction]  # nothing to wait for


def test_a_stop_before_the_rcm_test_passed_does_not_close_the_contactor() -> None:
    c, _ = run(CHARGING, has_rcm=True)
    assert not c.outputs().contactor_closed  # the self-test has not answered yet
    c.stop(StopReason.LOCAL, 10.0)
    assert not c.outputs().contactor_closed


def test_a_stop_while_suspended_by_a_refused_id_tag_does_not_close_the_contactor() -> None:
    c, _ = run([*CHARGING, ("refused",)], stop_on_invalid_id=False)
    assert not c.outputs().contactor_closed
    c.stop(StopReason.LOCAL, 10.0)
    assert not c.outputs().contactor_closed


def test_the_socket_stays_locked_while_a_stop_waits_under_load() -> None:
    c, _ = run(CHARGING, has_lock=True)
    c.lock_reported(True, 5.0)
    assert c.outputs().contactor_closed and c.outputs().locked
    c.stop(StopReason.REMOTE, 6.0)  # PWM off; the EV has not left C yet
    assert c.outputs().contactor_closed and c.outputs().locked
    c.lock_reported(False, 7.0)  # the lock gave way under load: open at once
    assert not c.outputs().contactor_closed
    c.pilot_changed(PilotState.B, 8.0)
    assert c.tx is None and not c.outputs().locked
