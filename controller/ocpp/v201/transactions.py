"""The station's queued transaction events as OCPP 2.0.1 TransactionEvent messages.

The outbox holds protocol-neutral rows (start, meter, stop, and charging-state
changes, and the events a TriggerMessage asked for); this module renders them. What
2.0.1 adds is kept in one store record per transaction, written before the message is
sent:

* transactionId: made by the station (a UUID), so a CSMS can book a transaction
  that started offline;
* seqNo: 0, 1, 2 ... over the transaction's messages, taken when a message is
  first rendered and kept with it, so a message sent again after a lost answer or
  a restart carries the same number and numbers never skip;
* the last charging state queued.

Nothing of a transaction follows its Ended event: a row queued after the stop one
(a TriggerMessage answered just before the transaction ended) is given up. Only the
oldest queued message can have been sent without an answer, so only it
can hold a seqNo; thinning the queue (Store.thin) keeps each transaction's first
meter value, so it never makes a number go missing.

The station core starts a transaction when the driver is authorized and the EV
is connected (TxStartPoint PowerPathClosed) and ends it when either ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from controller.core.status import ConnectorStatus, StopReason
from controller.ocpp.v201.id_tokens import TokenTypes
from controller.store import OutboxMessage, Store, TransactionRecord

RECORDS = "tx201"  # store records: store transaction id -> {"uid", "next", "seq", "state"}

# StopReason -> (stoppedReason, triggerReason of the Ended event)
_ENDINGS = {
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
    ConnectorStatus.PREPARING: "EVConnected",
    ConnectorStatus.FINISHING: "EVConnected",
}


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

    # --- the per-transaction record ----------------------------------------------------

    def record(self, tx_id: int) -> dict[str, Any]:
        found = self.store.records(RECORDS).get(str(tx_id))
        return dict(found) if found else {"uid": str(uuid.uuid4()), "next": 0, "seq": {}}

    def uid(self, tx_id: int) -> str:
        record = self.record(tx_id)
        if str(tx_id) not in self.store.records(RECORDS):
            self.store.put_record(RECORDS, str(tx_id), record)
        return str(record["uid"])

    def tx_of(self, uid: str) -> int | None:
        for key, record in self.store.records(RECORDS).items():
            if record.get("uid") == uid:
                return int(key)
        return None

    def numbered(self, tx_id: int) -> bool:
        """Whether a message of the transaction has been numbered (its Started first)."""
        found = self.store.records(RECORDS).get(str(tx_id))
        return found is not None and int(found.get("next", 0)) > 0

    def charging_state_changes(self, tx_id: int, state: str) -> bool:
        """Whether `state` differs from the charging state last queued for the
        transaction (its Started event says EVConnected); if so, it is kept as that."""
        record = self.record(tx_id)
        if record.get("state", "EVConnected") == state:
            return False
        record["state"] = state
        self.store.put_record(RECORDS, str(tx_id), record)
        return True

    def _seq_no(self, tx_id: int, message: OutboxMessage) -> tuple[str, int]:
        """The transactionId and this message's seqNo, kept before it is first sent."""
        record = self.record(tx_id)
        seq = record["seq"].get(str(message.id))
        if seq is None:
            seq = record["next"]
            record["next"] = seq + 1
            record["seq"][str(message.id)] = seq
            self.store.put_record(RECORDS, str(tx_id), record)
        return str(record["uid"]), int(seq)

    def delivered(self, message: OutboxMessage) -> None:
        """The CSMS has the message: its seqNo is no longer needed; an ended
        transaction's record goes once its Ended event is delivered."""
        if message.tx_id is None:
            return
        record = self.store.records(RECORDS).get(str(message.tx_id))
        if record is None:
            return
        if message.kind == "stop":
            if self.store.has_pending(message.tx_id, after=message.id):
                # Kept, ended, until the rows queued after it are given up (render).
                self.store.put_record(RECORDS, str(message.tx_id), record | {"ended": True})
            else:
                self.store.delete_record(RECORDS, str(message.tx_id))
            return
        record = dict(record)
        record["seq"] = {k: v for k, v in record["seq"].items() if k != str(message.id)}
        self.store.put_record(RECORDS, str(message.tx_id), record)

    # --- rendering ----------------------------------------------------------------------

    def render(
        self, message: OutboxMessage, tx: TransactionRecord | None
    ) -> tuple[str, dict[str, Any]] | None:
        data = message.data
        if message.kind == "meter" and tx is None:
            return "MeterValues", {
                "evseId": data["connector"],
                "meterValue": [meter_value(data, self.resolve)],
            }
        if tx is None:
            raise ValueError(f"a {message.kind} event without its transaction")
        if message.kind != "stop":
            self._not_after_ended(message, tx.id)
        if message.kind == "start":
            return self._started(message, tx)
        if message.kind == "stop":
            return self._ended(message, tx)
        if message.kind == "meter":
            trigger = _METER_TRIGGERS.get(data["samples"][0].get("context", ""), "Trigger")
            return self._event(
                message, tx, "Updated", trigger, data["timestamp"], None,
                meter=[meter_value(data, self.resolve)],
            )  # fmt: skip
        if message.kind == "trigger":  # TriggerMessage(TransactionEvent): v201/trigger.py
            meter = [meter_value(data, self.resolve)] if data["samples"] else None
            return self._event(
                message, tx, "Updated", "Trigger", data["timestamp"], None, meter=meter
            )
        if message.kind == "state":
            state = data["charging_state"]
            return self._event(
                message, tx, "Updated", "ChargingStateChanged", data["timestamp"], state
            )
        raise ValueError(f"unknown event kind {message.kind}")

    def _not_after_ended(self, message: OutboxMessage, tx_id: int) -> None:
        """ValueError (given up) for an event queued after the transaction's Ended one
        was rendered; the transaction's record goes with the last of them."""
        found = self.store.records(RECORDS).get(str(tx_id))
        if found is None or not found.get("ended"):
            return
        if not self.store.has_pending(tx_id, after=message.id):
            self.store.delete_record(RECORDS, str(tx_id))
        raise ValueError(f"a {message.kind} event of transaction {tx_id} after its Ended event")

    def _started(self, message: OutboxMessage, tx: TransactionRecord) -> tuple[str, dict[str, Any]]:
        data = message.data
        stamp = self.sent_time(tx.id, "started_at", tx.started_at)
        remote = data.get("remote_start_id")
        trigger = "RemoteStart" if remote is not None else "Authorized"
        begin = _energy(tx.meter_start_wh, "Transaction.Begin", stamp)
        # TxStartedMeasurands beyond the energy register, read as the transaction started
        begin["sampledValue"] += [sampled_value(s) for s in data.get("start_samples", [])]
        name, payload = self._event(
            message, tx, "Started", trigger, tx.started_at, "EVConnected", meter=[begin]
        )
        payload["timestamp"] = stamp
        payload["idToken"] = self.tokens.id_token(tx.id_tag)
        if remote is not None:
            payload["transactionInfo"]["remoteStartId"] = remote
        if data.get("reservation_id") is not None:
            payload["reservationId"] = data["reservation_id"]
        return name, payload

    def _ended(self, message: OutboxMessage, tx: TransactionRecord) -> tuple[str, dict[str, Any]]:
        stopped_at = tx.stopped_at or tx.started_at
        stamp = self.sent_time(tx.id, "stopped_at" if tx.stopped_at else "started_at", stopped_at)
        reason = StopReason(tx.stop_reason) if tx.stop_reason else StopReason.OTHER
        stopped_reason, trigger = _ENDINGS[reason]
        kept = [meter_value(d, self.resolve) for d in self.store.tx_data(tx.id)]
        final = _energy(tx.meter_stop_wh or tx.meter_start_wh, "Transaction.End", stamp)
        state = "Idle" if reason is StopReason.EV_DISCONNECTED else "EVConnected"
        name, payload = self._event(
            message, tx, "Ended", trigger, stopped_at, state, meter=[*kept, final]
        )
        record = self.record(tx.id)
        if not record.get("ended"):  # what is queued after it is not sent
            self.store.put_record(RECORDS, str(tx.id), record | {"ended": True})
        payload["timestamp"] = stamp
        payload["transactionInfo"]["stoppedReason"] = stopped_reason
        if tx.stop_id_tag:
            payload["idToken"] = self.tokens.id_token(tx.stop_id_tag)
        return name, payload

    def _event(
        self,
        message: OutboxMessage,
        tx: TransactionRecord,
        event_type: str,
        trigger: str,
        stamp: str,
        state: str | None,
        meter: list[dict[str, Any]] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        uid, seq_no = self._seq_no(tx.id, message)
        info: dict[str, Any] = {"transactionId": uid}
        if state is not None:
            info["chargingState"] = state
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": self.resolve(stamp),
            "triggerReason": trigger,
            "seqNo": seq_no,
            "transactionInfo": info,
            "evse": {"id": tx.connector, "connectorId": 1},
        }
        if message.data.get("offline"):
            payload["offline"] = True
        if meter:
            payload["meterValue"] = meter
        return "TransactionEvent", payload
