"""Fixtures for the integration tests (see harness.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon


@pytest.fixture
def csms() -> Iterator[CsmsThread]:
    with CsmsThread(id_tags={CARD: "Accepted"}) as central:
        yield central


@pytest.fixture
def make_daemon(
    csms: CsmsThread, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Daemon]]:
    """Start a daemon: make_daemon(keys={...}, connectors=[{...}], station={...}, ...):
    keyword tables override keys of the base configuration (see harness.Daemon)."""
    made: list[Daemon] = []

    def make(
        keys: dict[str, Any] | None = None,
        connectors: list[dict[str, Any]] | None = None,
        start: bool = True,
        extra: str = "",
        **tables: dict[str, Any],
    ) -> Daemon:
        defaults = {"ConnectionTimeOut": 5, "MeterValueSampleInterval": 0}
        daemon = Daemon(
            csms,
            {**defaults, **(keys or {})},
            connectors or [{"max_current": 16}],
            extra,
            **tables,
        )
        made.append(daemon)
        if start:
            daemon.start()
        return daemon

    yield make
    failed = getattr(request.node, "rep_call", None)
    for daemon in made:
        if failed is not None and failed.failed:
            print(f"\n--- daemon log ({daemon.dir}) ---\n{daemon.log()[-20000:]}")
        daemon.cleanup()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
