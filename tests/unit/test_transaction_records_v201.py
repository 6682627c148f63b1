"""The 2.0.1 transaction records (controller.ocpp.v201.transactions) do not pile up:
an ended one goes once no queued event names it, whichever CSMS took its events."""

from __future__ import annotations

from pathlib import Path

from controller.ocpp.v201.id_tokens import TokenTypes
from controller.ocpp.v201.transactions import RECORDS, TransactionEvents, new_record
from controller.store import Store

STAMP = "2025-01-01T00:00:00.000Z"


def test_an_ended_transaction_is_forgotten_once_nothing_queued_names_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    events = TransactionEvents(store, TokenTypes(store), str, lambda _t, _c, s: s)
    tx_id = store.begin_transaction(1, "04A1B2C3", None, 100.0, STAMP)
    store.end_transaction(tx_id, 200.0, STAMP, "Local", None)
    store.put_record(RECORDS, "ended", new_record(1, [tx_id], open=False))
    store.put_record(RECORDS, "open", new_record(2, []))
    store.enqueue("state", {"uid": "waiting", "connector": 3}, None)
    store.put_record(RECORDS, "waiting", new_record(3, [], open=False))

    events.prune()  # the start and stop of "ended" still wait, and a row of "waiting"
    assert set(store.records(RECORDS)) == {"ended", "open", "waiting"}

    # A 1.6 CSMS took them (the 1.6 layer keeps no 2.0.1 record).
    while (message := store.next_message()) is not None:
        store.mark_delivered(message.id)
    events.prune()
    assert set(store.records(RECORDS)) == {"open"}  # an open one stays


def test_a_transaction_started_by_energy_at_once_says_charging(tmp_path: Path) -> None:
    # TxStartPoint EnergyTransfer, energy flowing as the station transaction starts: its
    # start is the Started event, and it says Charging (no ChargingStateChanged after it).
    store = Store(tmp_path / "evsed.db")
    events = TransactionEvents(store, TokenTypes(store), str, lambda _t, _c, s: s)
    tx_id = store.begin_transaction(1, "04A1B2C3", None, 100.0, STAMP)
    triggers = {str(tx_id): "ChargingStateChanged"}
    store.put_record(RECORDS, "t", new_record(1, [tx_id], triggers=triggers, state="Charging"))
    start = store.next_message()
    assert start is not None
    rendered = events.render(start, store.transaction(tx_id))
    assert rendered is not None
    _, payload = rendered
    assert (payload["eventType"], payload["triggerReason"]) == ("Started", "ChargingStateChanged")
    assert payload["transactionInfo"]["chargingState"] == "Charging"
