"""The store keeps transactions and their events in order, across a reopen."""

from pathlib import Path

import pytest

from controller.store import Store


def test_transaction_events_are_queued_in_order_and_survive_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    tx = store.begin_transaction(1, "TAG", None, 100.0, "2026-01-01T00:00:00.000Z")
    store.enqueue("meter", {"connector": 1, "timestamp": "t", "samples": []}, tx)
    store.end_transaction(tx, 250.0, "2026-01-01T01:00:00.000Z", "Local", "TAG")
    store.close()

    store = Store(tmp_path / "evsed.db")
    kinds = []
    while (message := store.next_message()) is not None:
        kinds.append(message.kind)
        store.mark_delivered(message.id)
    assert kinds == ["start", "meter", "stop"]
    record = store.transaction(tx)
    assert record is not None
    assert (record.meter_start_wh, record.meter_stop_wh, record.stop_reason) == (
        100.0,
        250.0,
        "Local",
    )
    assert store.open_transactions() == []


def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_failed_message_no_longer_blocks_the_queue(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    first = store.enqueue("meter", {"n": 1})
    store.enqueue("meter", {"n": 2})
    assert store.record_attempt(first, "InternalError") == 1
    store.mark_failed(first, "InternalError")
    message = store.next_message()
    assert message is not None and message.data == {"n": 2}
    assert store.pending_count() == 1


def test_keys_and_availability_persist(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    store.set_config_key("HeartbeatInterval", "42")
    store.set_availability(1, False)
    store.close()
    store = Store(tmp_path / "evsed.db")
    assert store.config_keys() == {"HeartbeatInterval": "42"}
    assert store.availability() == {1: False}


def test_a_transaction_and_its_event_are_written_together_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "evsed.db")

    def power_cut(*args: object) -> int:
        raise OSError("power cut between the two writes")

    monkeypatch.setattr(store, "_enqueue", power_cut)
    with pytest.raises(OSError):
        store.begin_transaction(1, "TAG", None, 0.0, "2026-01-01T00:00:00.000Z")
    monkeypatch.undo()
    assert store.open_transactions() == []
    assert store.next_message() is None


def test_delivered_events_are_forgotten_with_their_stop_data(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    tx = store.begin_transaction(1, "TAG", None, 0.0, "t0")
    store.add_tx_data(tx, {"timestamp": "t1", "samples": []})
    store.end_transaction(tx, 5.0, "t2", "Local", None)
    while (message := store.next_message()) is not None:
        store.mark_delivered(message.id)
    assert store.queued_bytes == 0
    assert store.tx_data(tx) == []
    assert store.connection.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_thinning_keeps_start_stop_and_the_span_of_meter_values(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db", budget_bytes=5_000)
    tx = store.begin_transaction(1, "TAG", None, 0.0, "t0")
    for n in range(100):
        store.enqueue("meter", {"n": n, "pad": "x" * 80}, tx)
    store.end_transaction(tx, 5.0, "t9", "Local", None)
    assert store.over_budget(0)
    while store.over_budget(0):
        assert store.thin() > 0
    assert store.queued_bytes == Store(tmp_path / "evsed.db").queued_bytes  # counted right
    kinds, meters = [], []
    while (message := store.next_message()) is not None:
        kinds.append(message.kind)
        if message.kind == "meter":
            meters.append(message.data["n"])
        store.mark_delivered(message.id)
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert meters[0] == 0 and meters[-1] == 99  # first and last kept
    assert meters == sorted(meters) and len(meters) < 100


def test_nothing_left_to_thin(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db", budget_bytes=10)
    store.begin_transaction(1, "TAG", None, 0.0, "t0")
    assert store.thin() == 0  # a start is never thinned


def test_failed_messages_are_kept_for_diagnostics_out_of_the_queue(tmp_path: Path) -> None:
    store = Store(tmp_path / "evsed.db")
    first = store.enqueue("meter", {"n": 1})
    store.mark_failed(first, "InternalError")
    assert store.queued_bytes == 0 and store.pending_count() == 0
    assert store.failed_messages() == [(first, "meter", "InternalError")]


def test_records_survive_a_reopen_and_replace_atomically(tmp_path: Path) -> None:
    path = tmp_path / "evsed.db"
    store = Store(path)
    store.put_record("reservation", "7", {"connector": 1, "idTag": "A"})
    store.put_record("profile", "1", {"stackLevel": 0})
    store.replace_records("profile", {"2": {"stackLevel": 1}, "3": {"stackLevel": 2}})
    store.close()
    store = Store(path)
    assert store.records("reservation") == {"7": {"connector": 1, "idTag": "A"}}
    assert sorted(store.records("profile")) == ["2", "3"]
    with pytest.raises(TypeError):  # not JSON: nothing of the replacement is kept
        store.replace_records("profile", {"4": {"x": object()}})
    assert sorted(store.records("profile")) == ["2", "3"]
    store.delete_record("reservation", "7")
    assert store.records("reservation") == {}
    store.close()


def test_a_delivery_and_the_layers_own_writes_are_kept_together(tmp_path: Path) -> None:
    # A 2.0.1 seqNo is dropped with its delivered message: never one without the other.
    store = Store(tmp_path / "evsed.db")
    store.put_record("tx201", "t", {"seq": {"1": 0}})
    message_id = store.enqueue("state", {"uid": "t"}, None)

    def fail() -> None:
        store.put_record("tx201", "t", {"seq": {}})
        raise OSError("power cut")

    with pytest.raises(OSError):
        store.mark_delivered(message_id, also=fail)
    assert store.records("tx201") == {"t": {"seq": {"1": 0}}}
    assert store.has_pending_mentioning('"t"')
    store.mark_delivered(message_id, also=lambda: store.put_record("tx201", "t", {"seq": {}}))
    assert store.records("tx201") == {"t": {"seq": {}}}
    assert not store.has_pending_mentioning('"t"')
