"""Helpers for the OCPP 2.0.1 integration tests: the same daemon and test CSMS as
the 1.6 tests, with 2.0.1 negotiated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon


def make_201(make_daemon: Callable[..., Daemon]) -> Callable[..., Daemon]:
    """make_daemon with `[ocpp] version = "2.0.1"` (more [ocpp] settings via ocpp={...})."""

    def make(**kwargs: Any) -> Daemon:
        ocpp = {"version": "2.0.1", **kwargs.pop("ocpp", {})}
        return make_daemon(ocpp=ocpp, **kwargs)

    return make


@pytest.fixture(name="csms")
def csms_201() -> Iterator[CsmsThread]:
    """Fixture "csms" of a test module that imports it: the test CSMS speaking only
    2.0.1, accepting CARD."""
    with CsmsThread(id_tags={CARD: "Accepted"}, subprotocols=("ocpp2.0.1",)) as central:
        yield central


@pytest.fixture(name="station")
def station_201(make_daemon: Callable[..., Daemon]) -> Callable[..., Daemon]:
    """Fixture "station" of a test module that imports it: make_201(make_daemon)."""
    return make_201(make_daemon)


def start_session_201(daemon: Daemon, csms: CsmsThread, card: str = CARD) -> dict[str, Any]:
    """Plug in, present a card, let the EV charge; return the Started TransactionEvent."""
    mark = csms.mark()
    daemon.request("plug", connector=1)
    daemon.request("card", uid=card)
    started = csms.wait_for_record(
        "TransactionEvent", lambda p: p["eventType"] == "Started", after=mark
    ).payload
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    return started


def ended_event(csms: CsmsThread, after: int = 0, timeout: float = 10.0) -> dict[str, Any]:
    return csms.wait_for_record(
        "TransactionEvent", lambda p: p["eventType"] == "Ended", after=after, timeout=timeout
    ).payload
