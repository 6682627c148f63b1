"""Each EVSE's OCPP 2.0.1 transaction, followed as the station's sessions change.

After every change the station carries out, the tracker looks at each EVSE (EV plugged,
an authorization waiting, the station transaction running, energy flowing), lets
tx_points decide what the 2.0.1 transaction does under TxStartPoint / TxStopPoint, and
writes that down before anything is sent: the transaction's record (transactions.py)
and the events that are its own — a start at plug-in or at an authorization, an end
when the EV leaves or an authorization runs out, a charging-state change — queued in
the outbox in order with the station's start, meter and stop rows.

What the tracker last saw of each EVSE is stored too, so after a restart the first look
compares with the state before it: a transaction the station did not resume ends
(PowerLoss, or why the previous run ended) and a plug-in is not mistaken for a new one.
Nothing is looked at before the EVSE's pilot has reported after the start.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from controller.core.connector import AuthorizationExpired
from controller.core.status import ConnectorStatus, StopReason
from controller.ocpp.v201.transactions import CHARGING_STATES, OWN_EVENT, RECORDS, new_record
from controller.ocpp.v201.tx_points import (
    ENDINGS,
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

if TYPE_CHECKING:
    from controller.ocpp.v201.charge_point import ChargePoint201

log = logging.getLogger("evsed.ocpp")

SEEN = "tx201evse"  # store records: EVSE number -> the facts the tracker last saw there
DEFAULT_START, DEFAULT_STOP = "PowerPathClosed", "EVConnected,Authorized"
STARTED_DETAILS = ("remote_start_id", "reservation_id")  # of a start, for its Started event


class TransactionTracker:
    def __init__(self, cp: ChargePoint201) -> None:
        self.cp = cp
        self.store = cp.store
        self.station = cp.station
        self.events = cp.events
        known = {f.name for f in fields(EvseFacts)}
        self._seen = {
            int(n): EvseFacts(**{k: v for k, v in facts.items() if k in known})
            for n, facts in self.store.records(SEEN).items()
        }
        # The first look at an EVSE whose transaction was open when the station stopped.
        self._restarted = {
            int(record["connector"]): self.station.previous_run_ended
            for record in self.store.records(RECORDS).values()
            if record.get("open")
        }

    def without_station_tx(self, number: int) -> str | None:
        """The transactionId of EVSE `number`'s 2.0.1 transaction while no station
        transaction runs in it (waiting for its card, or outliving one): its meter values
        are its own (Station.layer_transaction)."""
        if self.station.transaction_id(number) is not None:
            return None
        uid = self.events.open_on(number)
        record = self.events.record(uid) if uid is not None else None
        return uid if record is not None and record.get("begun", True) else None

    def points(self) -> TxPoints:
        model = self.cp.device_model
        if model is None:
            return TxPoints.parse(DEFAULT_START, DEFAULT_STOP)
        start = model.value("TxCtrlr", "TxStartPoint") or DEFAULT_START
        return TxPoints.parse(start, model.value("TxCtrlr", "TxStopPoint") or DEFAULT_STOP)

    def facts(self, number: int) -> EvseFacts:
        session = self.station.core.connector(number)
        tx = self.station.transaction_id(number)
        return EvseFacts(
            plugged=session.plugged,
            authorized=session.auth.id_tag if session.auth is not None else None,
            tx=tx,
            tag=session.tx.id_tag if session.tx is not None and tx is not None else None,
            charging=session.status().status is ConnectorStatus.CHARGING,
            operative=session.effective_operative,
        )

    # --- following the station ------------------------------------------------------------

    def changed(self, effects: list[Any]) -> None:
        """The station carried out a change (a session watcher)."""
        queued = False
        for session in self.station.core.connectors:
            number = session.number
            if not self.station.pilot_known(number):
                continue
            now = self.facts(number)
            before = self._seen.get(number, EvseFacts())
            restarted = self._restarted.pop(number, None)
            if now != before or restarted is not None:
                expired = any(
                    isinstance(e, AuthorizationExpired) and e.connector == number for e in effects
                )
                # Seen first: a power cut before the events are queued loses a plug-in's
                # start (a card still starts one) rather than counting the plug-in twice.
                self._seen[number] = now
                self.store.put_record(SEEN, str(number), asdict(now))
                queued = self._step(number, before, now, expired, restarted) or queued
        if queued:
            self.cp.events_queued()

    def _step(
        self,
        number: int,
        before: EvseFacts,
        now: EvseFacts,
        expired: bool,
        restarted: StopReason | None,
    ) -> bool:
        """Decide and record; whether events were queued."""
        uid = self.events.open_on(number)
        record = self.events.record(uid) if uid is not None else None
        open_tx = None
        if record is not None:
            kept = ("begun", "authorized", "stopped")
            open_tx = OpenTx(**{k: record[k] for k in kept if k in record})
        ended = None
        if before.tx is not None and now.tx != before.tx:
            tx = self.store.transaction(before.tx)
            ended = StopReason(tx.stop_reason) if tx is not None and tx.stop_reason else None
        new_open, decisions = decide(self.points(), open_tx, before, now, ended, expired, restarted)
        queued = False
        for decision in decisions:
            uid, record, made = self._carry_out(decision, number, uid, record, before, now)
            queued = queued or made
        if record is None or uid is None:
            return queued
        if new_open is not None:
            record |= {"begun": new_open.begun, "authorized": new_open.authorized}
            record["stopped"] = new_open.stopped
            if before.tx is not None and now.tx != before.tx and before.tx in record["txs"]:
                record["outlived"] = [*record["outlived"], before.tx]  # its stop: an Updated
                record["state"] = "EVConnected"  # which says so
            if new_open.begun:
                told = any(isinstance(d, (Begin, Join)) for d in decisions)
                queued = self._charging_state(uid, record, number, before, now, told) or queued
        self.store.put_record(RECORDS, uid, record)
        return queued

    def _carry_out(
        self,
        decision: Decision,
        number: int,
        uid: str | None,
        record: dict[str, Any] | None,
        before: EvseFacts,
        now: EvseFacts,
    ) -> tuple[str | None, dict[str, Any] | None, bool]:
        """One decision; the open transaction's id and record after it, and whether an
        event was queued."""
        if isinstance(decision, (Hold, Begin)):
            self.events.prune()  # a new transaction: the long-finished ones go
        if isinstance(decision, Hold):
            uid = str(uuid.uuid4())
            # What its start row says (remoteStartId, reservationId), for the Started to come.
            details = self.store.start_details(decision.tx)
            kept = {k: v for k, v in details.items() if k in STARTED_DETAILS}
            return uid, new_record(number, [decision.tx], begun=False, details=kept), False
        if isinstance(decision, Begin):
            if decision.with_start_of is not None:
                uid = str(uuid.uuid4())
                tx = decision.with_start_of
                triggers = {str(tx): decision.trigger}
                state = "Charging" if decision.trigger == "ChargingStateChanged" else "EVConnected"
                return uid, new_record(number, [tx], triggers=triggers, state=state), False
            if record is None or uid is None:  # else: a held transaction begins now
                uid, record = str(uuid.uuid4()), new_record(number, [])
            state = self.charging_state(now, number)
            record |= {"begun": True, "state": state}
            id_tag = now.authorized or now.tag
            row = self._own_row(uid, number, "started", decision.trigger, state, id_tag=id_tag)
            row |= record.pop("details", {}) | self._waiting_details(number, now)
            if row.get("remote_start_id") is not None and decision.trigger == "Authorized":
                row["trigger"] = "RemoteStart"
            record["first"] = self._queue(OWN_EVENT, row, None, uid, record)
            return uid, record, True
        if isinstance(decision, Join) and record is not None:
            record["txs"] = [*record["txs"], decision.tx]
            record["triggers"] = record.get("triggers", {}) | {str(decision.tx): decision.trigger}
            record["state"] = "EVConnected"
            return uid, record, False
        if isinstance(decision, End) and record is not None and uid is not None:
            record["open"] = False
            made = False
            if decision.with_stop_of is None:
                state = "EVConnected" if now.plugged else "Idle"
                row = self._own_row(uid, number, "ended", decision.trigger, state)
                row["reason"] = decision.reason
                self._queue(OWN_EVENT, row, None, uid, record)
                made = True
            self.store.put_record(RECORDS, uid, record)
            return None, None, made
        if isinstance(decision, Drop) and record is not None and uid is not None:
            self.store.put_record(RECORDS, uid, record | {"open": False})
            return None, None, False
        if isinstance(decision, EndStationTx) and self.cp.in_charge():  # else 1.6's keys rule
            log.info("the EV left: TxStopPoint ends the transaction", extra={"connector": number})
            asyncio.get_running_loop().call_soon(
                self.station.stop_transaction, number, StopReason.EV_DISCONNECTED
            )
        return uid, record, False

    def _own_row(
        self, uid: str, number: int, event: str, trigger: str, state: str, id_tag: str | None = None
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"uid": uid, "connector": number, "event": event}
        row |= {"trigger": trigger, "charging_state": state}
        row["timestamp"] = self.station.clock.stamp()
        self.station.checkpoint_before(number, row["timestamp"])
        reading = self.station.readings[number - 1]
        if reading is not None:
            row["energy_wh"] = reading.energy_wh
        if id_tag is not None:
            row["id_tag"] = id_tag
        return row | ({} if self.cp.online else {"offline": True})

    def charging_state(self, now: EvseFacts, number: int | None = None) -> str:
        if not now.plugged:
            return "Idle"
        if now.tx is None or number is None:
            return "EVConnected"
        status = self.station.core.connector(number).status().status
        return CHARGING_STATES.get(status, "EVConnected")

    def _charging_state(
        self,
        uid: str,
        record: dict[str, Any],
        number: int,
        before: EvseFacts,
        now: EvseFacts,
        plug_told: bool,
    ) -> bool:
        """A change of the open transaction's charging state is one of its events; not
        while the station transaction stops (its stop event says where it is), and a
        plug-in the step's start or join reported is no trigger again."""
        session = self.station.core.connector(number)
        if session.tx is not None and session.tx.stopping:
            return False
        state = self.charging_state(now, number)
        if record.get("state", "EVConnected") == state:
            return False
        record["state"] = state
        trigger = "ChargingStateChanged"
        if now.plugged != before.plugged and not plug_told:
            trigger = "CablePluggedIn" if now.plugged else "EVCommunicationLost"
        stamp = self.station.clock.stamp()
        self.station.checkpoint_before(number, stamp)
        row: dict[str, Any] = {"uid": uid, "connector": number, "timestamp": stamp}
        row |= {"charging_state": state, "trigger": trigger}
        row |= {} if self.cp.online else {"offline": True}
        self._queue("state", row, now.tx, uid, record)
        return True

    def _queue(
        self, kind: str, row: dict[str, Any], tx_id: int | None, uid: str, record: dict[str, Any]
    ) -> int:
        """Queue an event with its transaction's record, in one atomic write."""
        return self.store.enqueue(
            kind, row, tx_id, also=lambda: self.store.put_record(RECORDS, uid, record)
        )

    # --- what the CSMS asks ---------------------------------------------------------------

    def end(self, uid: str, trigger: str, reason: str) -> None:
        """End an open transaction with no station transaction in it (RequestStop): its
        Ended event, and the authorization it waited with goes."""
        record = self.events.record(uid)
        if record is None or not record.get("open"):
            return  # it ended meanwhile
        number = int(record["connector"])
        now = self.facts(number)
        state = "EVConnected" if now.plugged else "Idle"
        row = self._own_row(uid, number, "ended", trigger, state) | {"reason": reason}
        self._queue(OWN_EVENT, row, None, uid, record | {"open": False})
        self.cp.events_queued()
        if now.authorized is not None:
            self.station.cancel_authorization(number)

    def _waiting_details(self, number: int, now: EvseFacts) -> dict[str, Any]:
        """The remote start or reservation an authorization waiting for the EV belongs to."""
        if now.authorized is None:
            return {}
        details = self.station.remote_start_details(number, now.authorized)
        out = {k: v for k, v in details.items() if k in STARTED_DETAILS}
        auth = self.station.core.connector(number).auth
        if auth is not None and auth.reservation_id is not None:
            out["reservation_id"] = auth.reservation_id
        return out

    def answered(self, row: dict[str, Any], status: str) -> None:
        """The CSMS's verdict on the idToken of a Started event of the layer's own: a
        refusal ends the authorization (E05): the station transaction's rules apply if
        it runs; an authorization still waiting for the EV goes with the transaction
        (Deauthorized)."""
        if status == "Accepted":
            return
        number = int(row["connector"])
        tx_id = self.station.transaction_id(number)
        if tx_id is not None:
            self.station.transaction_confirmed(tx_id, status)
        elif self.facts(number).authorized is not None:
            self.end(row["uid"], "Deauthorized", "DeAuthorized")

    def end_waiting(self, reason: StopReason) -> None:
        """End every open transaction with no station transaction in it (a reset: the
        link stops the station's transactions with `reason`)."""
        stopped, trigger = ENDINGS[reason]
        for session in self.station.core.connectors:
            uid = self.events.open_on(session.number)
            if uid is not None and self.station.transaction_id(session.number) is None:
                self.end(uid, trigger, stopped)
