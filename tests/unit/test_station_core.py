"""Station-wide routing of cards and remote starts across connectors."""

from controller.core.connector import ConnectorSettings, StartTransaction, StopTransaction
from controller.core.iec61851 import PilotState
from controller.core.station import CardRefused, RequestAuthorization, StationCore
from controller.core.status import ConnectorStatus, StopReason
from drivers.interfaces import FaultKind


def two() -> StationCore:
    return StationCore([ConnectorSettings(), ConnectorSettings()])


def test_card_asks_for_authorization_then_goes_to_the_plugged_connector() -> None:
    core = two()
    core.connector(2).pilot_changed(PilotState.B, 0)
    assert core.card_presented("T1", 1) == [RequestAuthorization("T1")]
    effects = core.card_authorized("T1", True, None, 2)
    assert effects == [StartTransaction(2, "T1", None)]


def test_same_card_stops_its_transaction_without_asking() -> None:
    core = two()
    core.connector(1).pilot_changed(PilotState.B, 0)
    core.card_authorized("T1", True, None, 1)
    core.connector(1).pilot_changed(PilotState.C, 2)
    effects = core.card_presented("T1", 3)
    assert effects == []  # graceful: waits for the EV to leave C
    assert core.connector(1).pilot_changed(PilotState.B, 4) == [
        StopTransaction(1, StopReason.LOCAL, "T1")
    ]


def test_card_of_the_same_group_stops_the_transaction() -> None:
    core = two()
    core.connector(1).pilot_changed(PilotState.B, 0)
    core.card_authorized("T1", True, "GROUP", 1)
    effects = core.card_authorized("T2", True, "GROUP", 2)
    assert effects == [StopTransaction(1, StopReason.LOCAL, "T2")]


def test_refused_card_and_full_station() -> None:
    core = StationCore([ConnectorSettings()])
    assert core.card_authorized("BAD", False, None, 0) == [CardRefused("BAD", "not authorized")]
    core.card_authorized("T1", True, None, 0)
    assert core.card_authorized("T2", True, None, 1) == [CardRefused("T2", "no connector free")]


def test_same_card_again_withdraws_a_pending_start() -> None:
    core = two()
    core.card_authorized("T1", True, None, 0)
    assert core.connector(1).status().status is ConnectorStatus.PREPARING
    assert core.card_presented("T1", 1) == []
    assert core.connector(1).status().status is ConnectorStatus.AVAILABLE


def test_station_fault_blocks_every_connector_and_station_notice_does_not() -> None:
    core = two()
    core.station_fault(FaultKind.GENERIC, True, 0)
    assert core.status().status is ConnectorStatus.FAULTED
    assert all(c.status().status is ConnectorStatus.FAULTED for c in core.connectors)
    core.station_fault(FaultKind.GENERIC, False, 1)
    core.station_fault(FaultKind.READER, True, 2)
    assert core.status().status is ConnectorStatus.AVAILABLE
    assert core.status().error_code == "ReaderFailure"
    assert core.connector(1).status().status is ConnectorStatus.AVAILABLE


def test_pick_connector_respects_availability() -> None:
    core = two()
    core.set_operative(False, 0)
    assert core.pick_connector(None) is None
    core.set_operative(True, 1)
    core.connector(1).set_operative(False, 2)
    picked = core.pick_connector(None)
    assert picked is not None and picked.number == 2
    assert core.pick_connector(1) is None
    assert core.pick_connector(3) is None


def test_emergency_stop_ends_every_transaction_with_its_reason() -> None:
    core = two()
    for n, tag in ((1, "T1"), (2, "T2")):
        core.connector(n).pilot_changed(PilotState.B, 0)
        core.card_authorized(tag, True, None, 0)
        core.connector(n).pilot_changed(PilotState.C, 1)
    effects = core.station_fault(FaultKind.EMERGENCY_STOP, True, 2)
    assert effects == [
        StopTransaction(1, StopReason.EMERGENCY_STOP, None),
        StopTransaction(2, StopReason.EMERGENCY_STOP, None),
    ]
    assert not any(c.outputs().contactor_closed for c in core.connectors)
    core.station_fault(FaultKind.EMERGENCY_STOP, False, 3)
    assert core.status().status is ConnectorStatus.AVAILABLE


def test_id_tags_compare_without_case() -> None:
    core = two()
    core.connector(1).pilot_changed(PilotState.B, 0)
    core.card_authorized("abcdef01", True, None, 0)
    core.connector(1).pilot_changed(PilotState.C, 1)
    core.card_presented("ABCDEF01", 2)
    assert core.connector(1).tx is not None and core.connector(1).tx.stopping
