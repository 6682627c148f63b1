"""The station's queued transaction events as OCPP 2.0.1 TransactionEvent messages.

The outbox holds protocol-neutral rows (start, meter, stop, and the events a
TriggerMessage asked for) and the rows this layer adds: charging-state changes, and the
starts and ends of a 2.0.1 transaction that are no station transaction's start or stop
(a transaction started at plug-in, see tx_points and tracker). This module renders them.
A 2.0.1 transaction is kept in one store record, keyed by its transactionId and written
before its messages are sent:

* transactionId: made by the station (a UUID), so a CSMS can book a transaction
  that started offline;
* the station transactions inside it ("txs"): usually one; none while it waits for an
  authorization; several when it outlives an authorization (TxStopPoint EVConnected);
  the stops of those it outlived ("outlived") are Updated events, any other stop is its
  Ended one;
* seqNo: 0, 1, 2 ... over its messages, taken when a message is first rendered and kept
  with it, so a message sent again after a lost answer or a restart carries the same
  number and numbers never skip; the first one numbered is the Started event;
* "first": the row of its own that started it, when a station transaction ran before it
  (TxStartPoint EnergyTransfer): that transaction's earlier rows are no part of it;
* the last charging state queued, and what the tracker keeps of it while it is open.

A station transaction that no record names (it started before this layer saw it, or
under the other OCPP version) gets one when its first row is rendered: its start is the
Started event. Nothing of a transaction follows its Ended event: a row queued after it
(a TriggerMessage answered just before the transaction ended) is given up. Only the
oldest queued message can have been sent without an answer, so only it can hold a seqNo;
thinning the queue (Store.thin) keeps each transaction's first meter value, so it never
makes a number go missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from controller.core.status import ConnectorStatus, StopReason
from controller.ocpp.v201.id_tokens import TokenTypes
from controller.ocpp.v201.tx_points import ENDINGS
from controller.store import OutboxMessage, Store, TransactionRecord

RECORDS = "tx201"  # store records: transactionId -> the 2.0.1 transaction (module docstring)
OWN_EVENT = "tx201"  # outbox kind: a start or end of a 2.0.1 transaction of its own
LAYER_KINDS = (OWN_EVENT, "state", "trigger", "meter")  # the kinds of rows that may name a uid

# ReadingContext -> triggerReason of an Updated event carrying the values
_METER_TRIGGERS = {
    "Sample.Periodic": "MeterValuePeriodic",
    "Sample.Clock": "MeterValueClock",
    "Trigger": "Trigger",
}
CHARGING_STATES = {
    ConnectorStatus.CHARGING: "Charging",
    ConnectorStatus.SUSPENDED_EV: "SuspendedEV",
    ConnectorStatus.SUSPENDED_EVSE: "SuspendedEVSE",
}


def new_record(connector: int, txs: list[int], **fields: Any) -> dict[str, Any]:
    record = {"connector": connector, "txs": txs, "next": 0, "seq": {}, "state": "EVConnected"}
    return record | {"outlived": [], "open": True} | fields


def sampled_value(sample: dict[str, Any]) -> dict[str, Any]:
    """A neutral sample as a 2.0.1 SampledValue (the value a number)."""
    out: dict[str, Any] = {"value": sample["value"]}
    for key in ("context", "measurand", "phase", "location"):
        if key in sample:
            out[key] = sample[key]
    if "unit" in sample:
        out["unitOfMeasure"] = {"unit": sample["unit"]}
    return out


def meter_value(data: dict[str, Any], resolve: Callable[[str], str]) -> dict[str, Any]:
    return {
        "timestamp": resolve(data["timestamp"]),
        "sampledValue": [sampled_value(s) for s in data["samples"]],
    }


def _is_first(record: dict[str, Any], message: OutboxMessage) -> bool:
    """Whether `message` is (or, not numbered yet, will be) the transaction's first event."""
    return int(record.get("next", 0)) == 0 or record.get("seq", {}).get(str(message.id)) == 0


def _energy(wh: float, context: str, stamp: str) -> dict[str, Any]:
    return {
        "timestamp": stamp,
        "sampledValue": [
            {
                "value": round(wh, 3),
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unitOfMeasure": {"unit": "Wh"},
            }
        ],
    }


class TransactionEvents:
    def __init__(
        self,
        store: Store,
        tokens: TokenTypes,
        resolve: Callable[[str], str],
        sent_time: Callable[[int, str, str], str],
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.resolve = resolve
        self.sent_time = sent_time

    # --- the records -------------------------------------------------------------------

    def record(self, uid: str) -> dict[str, Any] | None:
        found = self.store.record(RECORDS, uid)
        return dict(found) if found else None

    def containing(self, tx_id: int) -> tuple[str, dict[str, Any]] | None:
        """The 2.0.1 transaction station transaction `tx_id` belongs to."""
        for uid, record in self.store.records(RECORDS).items():
            if tx_id in record.get("txs", ()):
                return uid, dict(record)
        return None

    def txs_of(self, uid: str) -> list[int]:
        """The station transactions inside 2.0.1 transaction `uid` (none: unknown)."""
        record = self.record(uid)
        return [] if record is None else [int(t) for t in record.get("txs", [])]

    def open_on(self, connector: int) -> str | None:
        """The transactionId of the 2.0.1 transaction open on EVSE `connector`."""
        for uid, record in self.store.records(RECORDS).items():
            if record.get("open") and record.get("connector") == connector:
                return str(uid)
        return None

    def uid(self, tx_id: int) -> str:
        """The transactionId station transaction `tx_id` is reported under."""
        found = self.containing(tx_id)
        if found is not None:
            return found[0]
        tx = self.store.transaction(tx_id)
        uid = str(uuid.uuid4())
        connector = tx.connector if tx is not None else 0
        open_ = tx is not None and tx.stopped_at is None
        self.store.put_record(RECORDS, uid, new_record(connector, [tx_id], open=open_))
        return uid

    def knows(self, tx_id: int) -> bool:
        """Whether this version has taken care of the transaction's start: a message of its
        2.0.1 transaction has been numbered, the Started event is one of its own, or it is
        waiting for energy (nothing reported yet)."""
        found = self.containing(tx_id)
        if found is None:
            return False
        _, record = found
        own_start = record.get("first") is not None  # its Started is no station start
        return int(record.get("next", 0)) > 0 or not record.get("begun", True) or own_start

    def pending(self, uid: str) -> bool:
        record = self.record(uid)
        if record is None:
            return False
        txs = record.get("txs", [])
        return any(self.store.has_pending(t) for t in txs) or self.store.has_pending_mentioning(uid)

    def prune(self) -> None:
        """Forget the ended transactions no queued event names: those whose events all
        went to a 1.6 CSMS (1.6 keeps none of this) or were given up. The rest go when
        their Ended event is delivered."""
        named = {row.get("uid") for row in self.store.pending_unbound(LAYER_KINDS)}
        for uid, record in self.store.records(RECORDS).items():
            if record.get("open") or uid in named:
                continue
            if not any(self.store.has_pending(t) for t in record.get("txs", ())):
                self.store.delete_record(RECORDS, uid)

    def _in_it(self, message: OutboxMessage, record: dict[str, Any]) -> bool:
        """Whether a row of a station transaction inside `record` belongs to the 2.0.1
        transaction (not when it ran before the transaction began)."""
        if not record.get("begun", True):
            return False
        first = record.get("first")
        return first is None or message.id >= first or message.data.get("uid") is not None

    def _seq_no(self, uid: str, message: OutboxMessage) -> int:
        """This message's seqNo, kept before it is first sent."""
        record = self.record(uid)
        assert record is not None
        seq = record["seq"].get(str(message.id))
        if seq is None:
            seq = record["next"]
            record["next"] = seq + 1
            record["seq"][str(message.id)] = seq
            self.store.put_record(RECORDS, uid, record)
        return int(seq)

    def _is_end(self, message: OutboxMessage, record: dict[str, Any]) -> bool:
        if message.kind == OWN_EVENT:
            return message.data.get("event") == "ended"
        return message.kind == "stop" and message.tx_id not in record.get("outlived", [])

    def delivered(self, message: OutboxMessage) -> None:
        """The CSMS has the message: its seqNo is no longer needed; an ended
        transaction's record goes once its Ended event is delivered."""
        found = self._find(message)
        if found is None:
            return
        uid, record = found
        if self._is_end(message, record):
            for tx_id in record["txs"]:  # the StopTxn data of those it outlived: reported now
                self.store.drop_tx_data(tx_id)
            later = any(self.store.has_pending(t, after=message.id) for t in record["txs"])
            if later:  # kept, ended, until the rows queued after it are given up (render)
                self.store.put_record(RECORDS, uid, record | {"ended": True, "open": False})
            else:
                self.store.delete_record(RECORDS, uid)
            return
        record["seq"] = {k: v for k, v in record["seq"].items() if k != str(message.id)}
        self.store.put_record(RECORDS, uid, record)

    def outlived(self, message: OutboxMessage) -> bool:
        """Whether `message` is the stop of a station transaction its 2.0.1 transaction
        outlives: its StopTxn data waits for the Ended event."""
        found = self._find(message) if message.kind == "stop" else None
        return found is not None and message.tx_id in found[1].get("outlived", [])

    def reported(self, tx_id: int) -> bool:
        """Whether a station transaction's events are reported (it is in a 2.0.1
        transaction that has begun; not while it waits for EnergyTransfer)."""
        found = self.containing(tx_id)
        return found is None or bool(found[1].get("begun", True))

    def _find(self, message: OutboxMessage) -> tuple[str, dict[str, Any]] | None:
        uid = message.data.get("uid")
        if uid is not None:
            record = self.record(uid)
            return None if record is None else (uid, record)
        return None if message.tx_id is None else self.containing(message.tx_id)

    # --- rendering ----------------------------------------------------------------------

    def render(
        self, message: OutboxMessage, tx: TransactionRecord | None
    ) -> tuple[str, dict[str, Any]] | None:
        data = message.data
        if data.get("uid") is not None:  # the layer's own rows
            found = self._find(message)
            if found is None:
                raise ValueError(f"a {message.kind} event of a transaction no longer kept")
        elif tx is None:
            if message.kind == "meter":
                return self._meter_values(data)
            raise ValueError(f"a {message.kind} event without its transaction")
        else:
            if self.containing(tx.id) is None:
                self.uid(tx.id)  # one the tracker did not see start: its start is the Started
            found = self.containing(tx.id)
            assert found is not None
            if not self._in_it(message, found[1]):
                return self._outside(message, *found)
        uid, record = found
        if not self._is_end(message, record):
            self._not_after_ended(message, uid, record)
        connector = int(record["connector"])
        if message.kind == OWN_EVENT:
            return self._own(message, uid, record)
        if message.kind == "start" and tx is not None:
            return self._start(message, uid, tx)
        if message.kind == "stop" and tx is not None:
            if tx.id in record.get("outlived", []):
                return self._authorization_ended(message, uid, tx)
            return self._ended(message, uid, record, tx)
        if message.kind == "meter":
            return self._sampled(message, uid, connector)
        if message.kind == "trigger":
            return self._triggered(message, uid, connector)
        if message.kind == "state":
            return self._state(message, uid, connector)
        raise ValueError(f"unknown event kind {message.kind}")

    def _meter_values(self, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        meter = [meter_value(data, self.resolve)]
        return "MeterValues", {"evseId": data["connector"], "meterValue": meter}

    def _outside(
        self, message: OutboxMessage, uid: str, record: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """A row of a station transaction before its 2.0.1 transaction began (or one that
        never did): its meter values go as MeterValues, the rest is not reported."""
        if message.kind == "stop" and not record.get("begun", True):
            others = [t for t in record["txs"] if t != message.tx_id]
            if not others and not record.get("open"):
                self.store.delete_record(RECORDS, uid)  # it never began: nothing to keep
        if message.kind == "meter":
            return self._meter_values(message.data)
        return None

    def _not_after_ended(self, message: OutboxMessage, uid: str, record: dict[str, Any]) -> None:
        """ValueError (given up) for an event queued after the transaction's Ended event
        was rendered; the transaction's record goes with the last of them."""
        if not record.get("ended"):
            return
        if not any(self.store.has_pending(t, after=message.id) for t in record["txs"]):
            self.store.delete_record(RECORDS, uid)
        raise ValueError(f"a {message.kind} event of transaction {uid} after its Ended event")

    def _mark_ended(self, uid: str) -> None:
        record = self.record(uid)
        if record is not None and not record.get("ended"):  # what is queued after it is not sent
            self.store.put_record(RECORDS, uid, record | {"ended": True, "open": False})

    def _start(
        self, message: OutboxMessage, uid: str, tx: TransactionRecord
    ) -> tuple[str, dict[str, Any]]:
        """A station transaction's start: the Started event, or an Updated one when it
        started inside an open 2.0.1 transaction (its authorization)."""
        data = message.data
        stamp = self.sent_time(tx.id, "started_at", tx.started_at)
        record = self.record(uid) or {}
        trigger = record.get("triggers", {}).get(str(tx.id), "Authorized")
        if data.get("remote_start_id") is not None and trigger == "Authorized":
            trigger = "RemoteStart"
        first = _is_first(record, message)
        meter = None
        if first:
            begin = _energy(tx.meter_start_wh, "Transaction.Begin", stamp)
            # TxStartedMeasurands beyond the energy register, read as the transaction started
            begin["sampledValue"] += [sampled_value(s) for s in data.get("start_samples", [])]
            meter = [begin]
        state = "Charging" if trigger == "ChargingStateChanged" else "EVConnected"  # energy at once
        name, payload = self._event(
            message, uid, tx.connector, "Started" if first else "Updated", trigger,
            tx.started_at, state, meter=meter,
        )  # fmt: skip
        payload["timestamp"] = stamp
        told = not first and trigger == "CablePluggedIn"  # its Started had the idToken
        self._with_start(payload, None if told else tx.id_tag, data)
        return name, payload

    def _authorization_ended(
        self, message: OutboxMessage, uid: str, tx: TransactionRecord
    ) -> tuple[str, dict[str, Any]]:
        """The stop of a station transaction the 2.0.1 one outlives: its authorization
        ended (TxStopPoint EVConnected): energy stops, the transaction goes on."""
        stopped_at = tx.stopped_at or tx.started_at
        stamp = self.sent_time(tx.id, "stopped_at" if tx.stopped_at else "started_at", stopped_at)
        reason = StopReason(tx.stop_reason) if tx.stop_reason else StopReason.OTHER
        name, payload = self._event(
            message, uid, tx.connector, "Updated", ENDINGS[reason][1], stopped_at, "EVConnected"
        )
        payload["timestamp"] = stamp
        if tx.stop_id_tag:
            payload["idToken"] = self.tokens.id_token(tx.stop_id_tag)
        return name, payload

    def _ended(
        self, message: OutboxMessage, uid: str, record: dict[str, Any], tx: TransactionRecord
    ) -> tuple[str, dict[str, Any]]:
        stopped_at = tx.stopped_at or tx.started_at
        stamp = self.sent_time(tx.id, "stopped_at" if tx.stopped_at else "started_at", stopped_at)
        reason = StopReason(tx.stop_reason) if tx.stop_reason else StopReason.OTHER
        stopped_reason, trigger = ENDINGS[reason]
        final = _energy(tx.meter_stop_wh or tx.meter_start_wh, "Transaction.End", stamp)
        state = "Idle" if reason is StopReason.EV_DISCONNECTED else "EVConnected"
        name, payload = self._event(
            message, uid, tx.connector, "Ended", trigger, stopped_at, state,
            meter=[*self._kept(record), final],
        )  # fmt: skip
        self._mark_ended(uid)
        payload["timestamp"] = stamp
        payload["transactionInfo"]["stoppedReason"] = stopped_reason
        if tx.stop_id_tag:
            payload["idToken"] = self.tokens.id_token(tx.stop_id_tag)
        return name, payload

    def _kept(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The TxEnded meter values of the station transactions inside it."""
        return [meter_value(d, self.resolve) for t in record["txs"] for d in self.store.tx_data(t)]

    def _own(
        self, message: OutboxMessage, uid: str, record: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """A start or end of the 2.0.1 transaction that is no station transaction's."""
        data = message.data
        stamp = self.resolve(data["timestamp"])
        ended = data["event"] == "ended"
        first = _is_first(record, message)
        context = "Transaction.End" if ended else "Transaction.Begin"
        meter = [_energy(data["energy_wh"], context, stamp)] if "energy_wh" in data else []
        if ended:
            meter = [*self._kept(record), *meter]
        event_type = "Ended" if ended else "Started" if first else "Updated"
        name, payload = self._event(
            message, uid, record["connector"], event_type, data["trigger"], data["timestamp"],
            data["charging_state"], meter=meter or None,
        )  # fmt: skip
        if ended:
            self._mark_ended(uid)
            payload["transactionInfo"]["stoppedReason"] = data["reason"]
        self._with_start(payload, data.get("id_tag"), data)
        return name, payload

    def _with_start(
        self, payload: dict[str, Any], id_tag: str | None, data: dict[str, Any]
    ) -> None:
        """What began the transaction, in the event reporting it: the idToken, the
        remoteStartId and the reservationId (the start's details in `data`)."""
        if id_tag:
            payload["idToken"] = self.tokens.id_token(id_tag)
        if data.get("remote_start_id") is not None:
            payload["transactionInfo"]["remoteStartId"] = data["remote_start_id"]
        if data.get("reservation_id") is not None:
            payload["reservationId"] = data["reservation_id"]

    def _sampled(
        self, message: OutboxMessage, uid: str, connector: int
    ) -> tuple[str, dict[str, Any]]:
        data = message.data
        trigger = _METER_TRIGGERS.get(data["samples"][0].get("context", ""), "Trigger")
        values = [meter_value(data, self.resolve)]
        return self._event(
            message, uid, connector, "Updated", trigger, data["timestamp"], None, values
        )

    def _triggered(
        self, message: OutboxMessage, uid: str, connector: int
    ) -> tuple[str, dict[str, Any]]:
        """TriggerMessage(TransactionEvent): v201/trigger.py."""
        data = message.data
        read = [meter_value(data, self.resolve)] if data["samples"] else None
        return self._event(
            message, uid, connector, "Updated", "Trigger", data["timestamp"], None, read
        )

    def _state(
        self, message: OutboxMessage, uid: str, connector: int
    ) -> tuple[str, dict[str, Any]]:
        data = message.data
        trigger = data.get("trigger", "ChargingStateChanged")
        return self._event(
            message, uid, connector, "Updated", trigger, data["timestamp"], data["charging_state"]
        )

    def _event(
        self,
        message: OutboxMessage,
        uid: str,
        connector: int,
        event_type: str,
        trigger: str,
        stamp: str,
        state: str | None,
        meter: list[dict[str, Any]] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        seq_no = self._seq_no(uid, message)
        info: dict[str, Any] = {"transactionId": uid}
        if state is not None:
            info["chargingState"] = state
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": self.resolve(stamp),
            "triggerReason": trigger,
            "seqNo": seq_no,
            "transactionInfo": info,
            "evse": {"id": connector, "connectorId": 1},
        }
        if message.data.get("offline"):
            payload["offline"] = True
        if meter:
            payload["meterValue"] = meter
        return "TransactionEvent", payload
