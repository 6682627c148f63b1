"""When an OCPP 2.0.1 transaction starts and ends (TxCtrlr.TxStartPoint / TxStopPoint).

The station core's transaction is the authorized charging session: it starts once a
driver is authorized and the EV is connected, and ends when either ends. A 2.0.1
transaction may be wider. It may start at plug-in (EVConnected), at an authorization
given before the EV is there (Authorized), or only when energy first flows
(EnergyTransfer); with a TxStopPoint without Authorized it outlives the authorization
until the EV leaves, and may hold several of the core's transactions. This module
decides, from what held at an EVSE before a change and what holds after it, what the
2.0.1 transaction does; controller.ocpp.v201.envelopes keeps it and transactions.py
renders it. Pure: no I/O.

Supported points: EVConnected, Authorized, PowerPathClosed (= EVConnected and
Authorized) and EnergyTransfer to start; EVConnected, Authorized and PowerPathClosed
to stop. ParkingBayOccupancy needs a bay sensor and DataSigned a signing meter, which
this station has not; EnergyTransfer as a stop point would end the transaction each
time the EV pauses, which no operator wants from a wallbox.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from controller.core.status import StopReason


class Point(StrEnum):
    EV_CONNECTED = "EVConnected"
    AUTHORIZED = "Authorized"
    POWER_PATH_CLOSED = "PowerPathClosed"
    ENERGY_TRANSFER = "EnergyTransfer"


START_POINTS = tuple(p.value for p in Point)
STOP_POINTS = (Point.EV_CONNECTED.value, Point.AUTHORIZED.value, Point.POWER_PATH_CLOSED.value)

# A station transaction ending for one of these ends only its authorization: with a
# TxStopPoint that does not end at the authorization, the 2.0.1 transaction goes on while
# the EV stays. Any other reason (the EV left, a fault, a reset, a power cut) ends both.
AUTHORIZATION_ENDINGS = frozenset({StopReason.LOCAL, StopReason.REMOTE, StopReason.DEAUTHORIZED})

# StopReason -> (stoppedReason, triggerReason) of the event reporting it
ENDINGS = {
    StopReason.LOCAL: ("Local", "StopAuthorized"),
    StopReason.REMOTE: ("Remote", "RemoteStop"),
    StopReason.EV_DISCONNECTED: ("EVDisconnected", "EVCommunicationLost"),
    StopReason.POWER_LOSS: ("PowerLoss", "AbnormalCondition"),
    StopReason.REBOOT: ("Reboot", "AbnormalCondition"),
    StopReason.HARD_RESET: ("ImmediateReset", "ResetCommand"),
    StopReason.SOFT_RESET: ("ImmediateReset", "ResetCommand"),
    StopReason.DEAUTHORIZED: ("DeAuthorized", "Deauthorized"),
    StopReason.EMERGENCY_STOP: ("EmergencyStop", "AbnormalCondition"),
    StopReason.UNLOCK_COMMAND: ("Other", "UnlockCommand"),
    StopReason.OTHER: ("Other", "AbnormalCondition"),
}


@dataclass(frozen=True, slots=True)
class TxPoints:
    start: frozenset[str]
    stop: frozenset[str]

    @classmethod
    def parse(cls, start: str, stop: str) -> TxPoints:
        def members(text: str) -> frozenset[str]:
            return frozenset(m.strip() for m in text.split(",") if m.strip())

        return cls(members(start), members(stop))

    @property
    def ends_with_authorization(self) -> bool:
        return bool(self.stop & {Point.AUTHORIZED, Point.POWER_PATH_CLOSED})

    @property
    def ends_with_ev(self) -> bool:
        return bool(self.stop & {Point.EV_CONNECTED, Point.POWER_PATH_CLOSED})

    @property
    def waits_for_energy(self) -> bool:
        """Only EnergyTransfer starts: an authorized session is no transaction yet."""
        return self.start == {Point.ENERGY_TRANSFER}


@dataclass(frozen=True, slots=True)
class EvseFacts:
    """What holds at one EVSE."""

    plugged: bool = False
    authorized: str | None = None  # an idTag authorized here, waiting for the EV
    tx: int | None = None  # the station's transaction running here
    tag: str | None = None  # its idTag
    charging: bool = False  # energy flows
    operative: bool = True


@dataclass(frozen=True, slots=True)
class OpenTx:
    """The EVSE's 2.0.1 transaction while it is open."""

    begun: bool = True  # False: a station transaction waits for EnergyTransfer to start it
    authorized: str | None = None  # the idTag reported in it so far
    stopped: str | None = None  # the stoppedReason of an authorization it outlived


# --- decisions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    """The transaction starts. `with_start_of`: that station transaction's queued start
    is its Started event; None: an event of its own (triggerReason `trigger`)."""

    trigger: str
    with_start_of: int | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """Station transaction `tx` runs outside any 2.0.1 transaction until energy flows."""

    tx: int


@dataclass(frozen=True, slots=True)
class Join:
    """Station transaction `tx` starts inside the open transaction: its start is an
    Updated event (triggerReason `trigger`)."""

    tx: int
    trigger: str


@dataclass(frozen=True, slots=True)
class End:
    """The transaction ends. `with_stop_of`: that station transaction's queued stop is
    its Ended event; None: an event of its own."""

    trigger: str
    reason: str  # stoppedReason
    with_stop_of: int | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """The held station transaction ended before energy flowed: no 2.0.1 transaction."""


@dataclass(frozen=True, slots=True)
class EndStationTx:
    """The EV left and the TxStopPoint ends the transaction then, but the station keeps
    its transaction (StopTxOnEVSideDisconnect false): end it (EVDisconnected)."""

    tx: int


Decision = Begin | Hold | Join | End | Drop | EndStationTx


def decide(
    points: TxPoints,
    open_tx: OpenTx | None,
    before: EvseFacts,
    now: EvseFacts,
    ended: StopReason | None = None,
    expired: bool = False,
    restarted: StopReason | None = None,
) -> tuple[OpenTx | None, list[Decision]]:
    """The EVSE's transaction after a change from `before` to `now`, and what it does.

    `ended`: why `before.tx` ended, if it did; `expired`: an authorization waiting here
    ran out of EVConnectionTimeOut; `restarted`: the station restarted (why the previous
    run ended) since `before`, which ends a transaction it did not resume."""
    out: list[Decision] = []
    started = now.tx is not None and now.tx != before.tx
    if before.tx is not None and now.tx != before.tx:
        reason = ended or StopReason.OTHER
        if open_tx is not None and not open_tx.begun:
            open_tx = None
            out.append(Drop())
        elif open_tx is not None:
            stopped, trigger = ENDINGS[reason]
            outlives = reason in AUTHORIZATION_ENDINGS and now.plugged
            if points.ends_with_authorization or not outlives or restarted is not None:
                open_tx = None
                out.append(End(trigger, stopped, with_stop_of=before.tx))
            else:
                open_tx = replace(open_tx, authorized=None, stopped=stopped)
    if open_tx is not None and open_tx.begun and now.tx is None:
        ending = _own_ending(open_tx, before, now, expired, restarted)
        if ending is not None:
            open_tx = None
            out.append(ending)
    left = before.plugged and not now.plugged and points.ends_with_ev
    if open_tx is not None and open_tx.begun and now.tx is not None and left:
        out.append(EndStationTx(now.tx))
    if open_tx is None:
        return _start(points, before, now, started, out)
    if started:  # (a held transaction cannot be open: its station transaction still runs)
        assert now.tx is not None
        again = open_tx.authorized is not None and open_tx.authorized == now.tag
        out.append(Join(now.tx, "CablePluggedIn" if again else "Authorized"))
        return replace(open_tx, authorized=now.tag), out
    if not open_tx.begun and now.charging:
        out.append(Begin("ChargingStateChanged"))
        return replace(open_tx, begun=True, authorized=now.tag), out
    return open_tx, out


def _own_ending(
    open_tx: OpenTx,
    before: EvseFacts,
    now: EvseFacts,
    expired: bool,
    restarted: StopReason | None,
) -> End | None:
    """How a transaction with no station transaction in it ends, if it does now: nothing
    is left to keep it (no EV, no authorization waiting), or the station restarted."""
    if restarted is not None:
        return End(ENDINGS[restarted][1], ENDINGS[restarted][0])
    if now.plugged or now.authorized is not None:
        return None
    if before.plugged:
        return End("EVCommunicationLost", open_tx.stopped or "EVDisconnected")
    if expired:
        return End("EVConnectTimeout", "Timeout")
    if not now.operative:
        return End("AbnormalCondition", "Other")
    return End("StopAuthorized", "Local")


def _start(
    points: TxPoints, before: EvseFacts, now: EvseFacts, started: bool, out: list[Decision]
) -> tuple[OpenTx | None, list[Decision]]:
    """A new transaction, if a start point is reached (none is open)."""
    if started:
        assert now.tx is not None
        # A station transaction always runs inside a 2.0.1 one, unless only energy
        # transfer starts it: then it waits for that.
        if points.waits_for_energy and not now.charging:
            out.append(Hold(now.tx))
            return OpenTx(begun=False), out
        trigger = "Authorized"  # the card (or remote start) came last
        if points.waits_for_energy:
            trigger = "ChargingStateChanged"
        elif now.plugged and not before.plugged:
            trigger = "CablePluggedIn"  # the EV came last: the idToken is in the event too
        out.append(Begin(trigger, with_start_of=now.tx))
        return OpenTx(authorized=now.tag), out
    if Point.EV_CONNECTED in points.start and now.plugged and not before.plugged:
        out.append(Begin("CablePluggedIn"))
        return OpenTx(), out
    fresh = now.authorized is not None and now.authorized != before.authorized
    if Point.AUTHORIZED in points.start and fresh and not now.plugged:
        out.append(Begin("Authorized"))
        return OpenTx(authorized=now.authorized), out
    return None, out
