"""The security log and the queue of security notifications (controller.security_log)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller import security_log
from controller.clock import StationClock
from controller.security_log import SecurityLog
from controller.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "evsed.db")


def known_clock() -> StationClock:
    clock = StationClock()
    clock.set(datetime.now(UTC).timestamp())
    return clock


def test_an_event_is_logged_and_queued_until_delivered(store: Store) -> None:
    events = SecurityLog(store, known_clock())
    event = events.record("StartupOfTheDevice", "after PowerLoss", critical=True)
    assert events.pending() == [event]
    assert event.critical and event.tech_info == "after PowerLoss"
    events.delivered(event)
    assert events.pending() == []
    (line,) = events.lines()
    assert line.endswith(" StartupOfTheDevice (critical) after PowerLoss")


def test_queue_and_log_survive_a_restart_in_order(store: Store, tmp_path: Path) -> None:
    events = SecurityLog(store, known_clock())
    first = events.record("FailedToAuthenticateAtCentralSystem", "HTTP 401")
    events.record("InvalidCentralSystemCertificate")
    events.delivered(first)
    store.close()
    again = SecurityLog(Store(tmp_path / "evsed.db"), known_clock())
    assert [e.kind for e in again.pending()] == ["InvalidCentralSystemCertificate"]
    later = again.record("SettingSystemTime", critical=True)
    assert [e.kind for e in again.pending()] == [
        "InvalidCentralSystemCertificate",
        "SettingSystemTime",
    ]
    assert later.key > first.key  # numbering goes on; nothing is overwritten
    assert len(again.lines()) == 3


def test_an_event_without_notification_is_only_logged(store: Store) -> None:
    events = SecurityLog(store, known_clock())
    events.record("InvalidMessages", notify=False)
    assert events.pending() == []
    assert len(events.lines()) == 1


def test_lines_within_a_time_range(store: Store) -> None:
    clock = known_clock()
    events = SecurityLog(store, clock)
    events.record("A")
    clock.set(clock.epoch() + 3600)  # an hour later
    events.record("B")
    now = clock.now()
    assert [line.split()[1] for line in events.lines()] == ["A", "B"]
    assert [line.split()[1] for line in events.lines(since=now - timedelta(minutes=5))] == ["B"]
    assert [line.split()[1] for line in events.lines(until=now - timedelta(minutes=5))] == ["A"]
    assert events.lines(since=now + timedelta(minutes=5)) == []


def test_a_provisional_stamp_is_sent_with_the_time_learnt_later(store: Store) -> None:
    clock = StationClock()  # the time is not known yet
    events = SecurityLog(store, clock)
    event = events.record("StartupOfTheDevice", critical=True)
    assert event.stamp.startswith("~")
    learnt = datetime(2030, 1, 1, tzinfo=UTC)
    clock.set(learnt.timestamp())  # the event happened just before the time was learnt
    sent = datetime.fromisoformat(events.time_of(event).replace("Z", "+00:00"))
    assert learnt - timedelta(seconds=5) <= sent <= learnt


def test_the_log_keeps_its_newest_lines(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security_log, "LOG_MAX", 3)
    events = SecurityLog(store, known_clock())
    for n in range(5):
        events.record(f"E{n}", notify=False)
    assert [line.split()[1] for line in events.lines()] == ["E2", "E3", "E4"]


def test_a_full_queue_drops_non_critical_events_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security_log, "QUEUE_MAX", 3)
    events = SecurityLog(store, known_clock())
    events.record("StartupOfTheDevice", critical=True)
    events.record("InvalidTLSVersion")
    events.record("ResetOrReboot", critical=True)
    events.record("InvalidTLSCipherSuite")
    assert [e.kind for e in events.pending()] == [
        "StartupOfTheDevice",
        "ResetOrReboot",
        "InvalidTLSCipherSuite",
    ]
