"""When a 2.0.1 transaction starts and ends under each TxStartPoint / TxStopPoint
(controller.ocpp.v201.tx_points): a session is played as a sequence of EVSE facts, and
each step's decisions are what the layer would report."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.core.status import StopReason
from controller.ocpp.v201.tx_points import (
    Begin,
    Decision,
    Drop,
    End,
    EndStationTx,
    EvseFacts,
    Hold,
    Join,
    OpenTx,
    TxPoints,
    decide,
)

CARD = "04A1B2C3"
IDLE = EvseFacts()
PLUGGED = EvseFacts(plugged=True)
WAITING = EvseFacts(authorized=CARD)  # authorized, no EV yet
RUNNING = EvseFacts(plugged=True, tx=7, tag=CARD)
CHARGING = replace(RUNNING, charging=True)


class Evse:
    """One EVSE under `points`: feed it facts, read what each step decided."""

    def __init__(self, start: str = "PowerPathClosed", stop: str = "EVConnected,Authorized"):
        self.points = TxPoints.parse(start, stop)
        self.open: OpenTx | None = None
        self.facts = IDLE

    def to(
        self,
        facts: EvseFacts,
        ended: StopReason | None = None,
        expired: bool = False,
        restarted: StopReason | None = None,
    ) -> list[Decision]:
        self.open, decisions = decide(
            self.points, self.open, self.facts, facts, ended, expired, restarted
        )
        self.facts = facts
        return decisions


def test_default_points_start_with_the_station_transaction_and_end_with_it() -> None:
    evse = Evse()
    assert evse.to(WAITING) == []  # no transaction before the EV is there
    assert evse.to(RUNNING) == [Begin("CablePluggedIn", with_start_of=7)]  # the EV came last
    assert evse.to(CHARGING) == []
    assert evse.to(PLUGGED, ended=StopReason.LOCAL) == [
        End("StopAuthorized", "Local", with_stop_of=7)
    ]
    assert evse.open is None
    assert evse.to(IDLE) == []  # unplugging after the end is no transaction


def test_default_points_ignore_a_plug_in_without_authorization() -> None:
    evse = Evse()
    assert evse.to(PLUGGED) == [] and evse.to(IDLE) == []
    assert evse.open is None


def test_default_points_with_the_ev_first_start_at_the_authorization() -> None:
    evse = Evse()
    evse.to(PLUGGED)
    assert evse.to(RUNNING) == [Begin("Authorized", with_start_of=7)]


def test_ev_connected_starts_at_plug_in_and_the_authorization_joins_it() -> None:
    evse = Evse(start="EVConnected")
    assert evse.to(PLUGGED) == [Begin("CablePluggedIn")]
    assert evse.to(RUNNING) == [Join(7, "Authorized")]
    assert evse.open == OpenTx(authorized=CARD)
    assert evse.to(PLUGGED, ended=StopReason.REMOTE) == [
        End("RemoteStop", "Remote", with_stop_of=7)
    ]
    assert evse.to(IDLE) == []


def test_ev_connected_start_ends_when_the_ev_leaves_unauthorized() -> None:
    evse = Evse(start="EVConnected")
    evse.to(PLUGGED)
    assert evse.to(IDLE) == [End("EVCommunicationLost", "EVDisconnected")]
    assert evse.open is None


def test_ev_connected_start_with_the_card_first_starts_at_plug_in_with_the_card() -> None:
    evse = Evse(start="EVConnected")
    assert evse.to(WAITING) == []
    assert evse.to(RUNNING) == [Begin("CablePluggedIn", with_start_of=7)]


def test_a_new_authorization_on_a_plugged_ev_is_never_outside_a_transaction() -> None:
    evse = Evse(start="EVConnected")
    evse.to(PLUGGED)
    evse.to(RUNNING)
    evse.to(PLUGGED, ended=StopReason.LOCAL)  # ended at the authorization: EV still there
    assert evse.to(replace(RUNNING, tx=8)) == [Begin("Authorized", with_start_of=8)]


def test_authorized_starts_at_the_card_and_the_plug_in_joins_it() -> None:
    evse = Evse(start="Authorized")
    assert evse.to(WAITING) == [Begin("Authorized")]
    assert evse.open == OpenTx(authorized=CARD)
    # The same idToken: already reported; the plug-in is the news.
    assert evse.to(RUNNING) == [Join(7, "CablePluggedIn")]


@pytest.mark.parametrize(
    ("expired", "operative", "ending"),
    [
        (True, True, End("EVConnectTimeout", "Timeout")),
        (False, True, End("StopAuthorized", "Local")),  # the same card again
        (False, False, End("AbnormalCondition", "Other")),  # made Unavailable
    ],
)
def test_an_authorization_that_ends_before_the_ev_ends_the_transaction(
    expired: bool, operative: bool, ending: End
) -> None:
    evse = Evse(start="Authorized")
    evse.to(WAITING)
    assert evse.to(replace(IDLE, operative=operative), expired=expired) == [ending]
    assert evse.open is None


def test_authorized_start_with_the_ev_there_starts_with_the_station_transaction() -> None:
    evse = Evse(start="Authorized")
    evse.to(PLUGGED)
    assert evse.to(RUNNING) == [Begin("Authorized", with_start_of=7)]


def test_stop_at_ev_connected_outlives_the_authorization_until_the_ev_leaves() -> None:
    evse = Evse(stop="EVConnected")
    evse.to(RUNNING)
    assert evse.to(PLUGGED, ended=StopReason.LOCAL) == []  # its stop is an Updated event
    assert evse.open == OpenTx(stopped="Local")
    assert evse.to(IDLE) == [End("EVCommunicationLost", "Local")]


def test_stop_at_ev_connected_takes_a_second_authorization_in() -> None:
    evse = Evse(stop="EVConnected")
    evse.to(RUNNING)
    evse.to(PLUGGED, ended=StopReason.DEAUTHORIZED)
    assert evse.to(replace(RUNNING, tx=8)) == [Join(8, "Authorized")]
    assert evse.to(EvseFacts(), ended=StopReason.EV_DISCONNECTED) == [
        End("EVCommunicationLost", "EVDisconnected", with_stop_of=8)
    ]


@pytest.mark.parametrize(
    "reason", [StopReason.EMERGENCY_STOP, StopReason.HARD_RESET, StopReason.OTHER]
)
def test_stop_at_ev_connected_still_ends_with_a_fault_or_reset(reason: StopReason) -> None:
    evse = Evse(stop="EVConnected")
    evse.to(RUNNING)
    decisions = evse.to(PLUGGED, ended=reason)
    assert len(decisions) == 1 and isinstance(decisions[0], End)
    assert decisions[0].with_stop_of == 7
    assert evse.open is None


def test_the_ev_leaving_ends_a_station_transaction_that_would_go_on() -> None:
    # StopTxOnEVSideDisconnect false keeps the station's transaction; EVConnected ends it.
    evse = Evse()
    evse.to(RUNNING)
    assert evse.to(replace(RUNNING, plugged=False)) == [EndStationTx(7)]
    assert evse.to(IDLE, ended=StopReason.EV_DISCONNECTED) == [
        End("EVCommunicationLost", "EVDisconnected", with_stop_of=7)
    ]


def test_stop_at_authorized_only_lets_the_transaction_wait_without_the_ev() -> None:
    evse = Evse(stop="Authorized")
    evse.to(RUNNING)
    assert evse.to(replace(RUNNING, plugged=False)) == []
    assert evse.open is not None


def test_energy_transfer_holds_the_station_transaction_until_energy_flows() -> None:
    evse = Evse(start="EnergyTransfer")
    assert evse.to(RUNNING) == [Hold(7)]
    assert evse.open == OpenTx(begun=False)
    assert evse.to(CHARGING) == [Begin("ChargingStateChanged")]
    assert evse.open == OpenTx(authorized=CARD)
    assert evse.to(PLUGGED, ended=StopReason.LOCAL) == [
        End("StopAuthorized", "Local", with_stop_of=7)
    ]


def test_energy_transfer_that_never_comes_is_no_transaction() -> None:
    evse = Evse(start="EnergyTransfer")
    evse.to(RUNNING)
    assert evse.to(PLUGGED, ended=StopReason.LOCAL) == [Drop()]
    assert evse.open is None


def test_energy_at_once_starts_with_the_station_transaction() -> None:
    evse = Evse(start="EnergyTransfer")
    assert evse.to(CHARGING) == [Begin("ChargingStateChanged", with_start_of=7)]


def test_the_first_point_reached_starts_it() -> None:
    evse = Evse(start="EVConnected,Authorized")
    assert evse.to(WAITING) == [Begin("Authorized")]
    other = Evse(start="EVConnected,Authorized")
    assert other.to(PLUGGED) == [Begin("CablePluggedIn")]


def test_a_restart_ends_a_transaction_without_a_station_transaction() -> None:
    evse = Evse(start="EVConnected")
    evse.to(PLUGGED)
    assert evse.to(PLUGGED, restarted=StopReason.POWER_LOSS) == [
        End("AbnormalCondition", "PowerLoss")
    ]
    assert evse.to(PLUGGED) == []  # the EV that stayed is no new plug-in


def test_a_restart_ends_with_the_closed_station_transaction_or_goes_on_with_a_resumed_one() -> None:
    closed = Evse(stop="EVConnected")
    closed.to(RUNNING)
    assert closed.to(PLUGGED, ended=StopReason.POWER_LOSS, restarted=StopReason.POWER_LOSS) == [
        End("AbnormalCondition", "PowerLoss", with_stop_of=7)
    ]
    resumed = Evse()
    resumed.to(RUNNING)
    assert resumed.to(RUNNING, restarted=StopReason.POWER_LOSS) == []
    assert resumed.open is not None


def test_points_are_parsed_as_sets() -> None:
    points = TxPoints.parse(" EVConnected ,Authorized", "PowerPathClosed")
    assert points.start == {"EVConnected", "Authorized"}
    assert points.ends_with_authorization and points.ends_with_ev
    assert not TxPoints.parse("EVConnected", "EVConnected").ends_with_authorization
    assert TxPoints.parse("EnergyTransfer", "Authorized").waits_for_energy
    assert not TxPoints.parse("EnergyTransfer,EVConnected", "Authorized").waits_for_energy
