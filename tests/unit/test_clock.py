"""Timestamps recorded before the CSMS told the time are corrected once it has."""

import time
from datetime import UTC, datetime, timedelta

from controller.clock import StationClock


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_provisional_stamp_resolves_to_the_csms_time_of_the_event() -> None:
    clock = StationClock()
    stamp = clock.stamp()
    assert stamp.startswith("~")
    time.sleep(0.2)
    csms_now = time.time() + 86_400  # the CSMS is a day ahead of the system clock
    clock.set(csms_now)
    expected = datetime.fromtimestamp(csms_now - 0.2, UTC)
    assert abs(parse(clock.resolve(stamp)) - expected) < timedelta(milliseconds=50)
    assert not clock.stamp().startswith("~")  # from now on stamps are final


def test_a_stamp_of_an_earlier_run_falls_back_to_its_wall_time() -> None:
    earlier = StationClock().stamp()
    clock = StationClock()
    clock.set(time.time() + 3600)
    assert clock.resolve(earlier) == earlier.partition("|")[2]
    final = clock.stamp()
    assert clock.resolve(final) == final
