"""controller.core.firmware: the decisions of firmware updates, every case."""

from __future__ import annotations

import pytest

from controller.core.firmware import (
    DEFAULT_RETRIES,
    DEFAULT_RETRY_INTERVAL_S,
    FINAL,
    MAX_RETRIES,
    MAX_RETRY_INTERVAL_S,
    FirmwareStatus,
    InstallGate,
    InstallOutcome,
    Phase,
    Verdict,
    download_attempts,
    install_gate,
    new_request,
    retry_interval,
    seconds_until,
    updater_outcome,
)


@pytest.mark.parametrize(
    ("running", "verdict"),
    [
        (None, Verdict.ACCEPT),
        (Phase.SCHEDULED, Verdict.REPLACE),
        (Phase.DOWNLOADING, Verdict.REPLACE),
        (Phase.DOWNLOADED, Verdict.REPLACE),
        (Phase.INSTALLING, Verdict.REJECT),
    ],
)
def test_a_new_request_replaces_a_job_until_it_installs(
    running: Phase | None, verdict: Verdict
) -> None:
    assert new_request(running) is verdict


def test_every_phase_has_a_verdict() -> None:
    assert {new_request(p) for p in Phase} == {Verdict.REPLACE, Verdict.REJECT}


@pytest.mark.parametrize(
    ("retries", "attempts"),
    [
        (None, 1 + DEFAULT_RETRIES),
        (0, 1),
        (1, 2),
        (5, 6),
        (-3, 1),
        (10**9, 1 + MAX_RETRIES),
    ],
)
def test_download_attempts(retries: int | None, attempts: int) -> None:
    assert download_attempts(retries) == attempts


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (None, DEFAULT_RETRY_INTERVAL_S),
        (0, 0),
        (7, 7),
        (-1, 0),
        (10**9, MAX_RETRY_INTERVAL_S),
    ],
)
def test_retry_interval(given: int | None, seconds: float) -> None:
    assert retry_interval(given) == seconds


@pytest.mark.parametrize(
    ("at", "now", "wait"),
    [(None, 100.0, 0.0), (90.0, 100.0, 0.0), (100.0, 100.0, 0.0), (130.5, 100.0, 30.5)],
)
def test_seconds_until(at: float | None, now: float, wait: float) -> None:
    assert seconds_until(at, now) == wait


@pytest.mark.parametrize(
    ("install_at", "running", "gate"),
    [
        (None, False, InstallGate.GO),
        (None, True, InstallGate.WAIT_FOR_TRANSACTIONS),
        (50.0, False, InstallGate.GO),
        (50.0, True, InstallGate.WAIT_FOR_TRANSACTIONS),
        (200.0, False, InstallGate.WAIT_FOR_TIME),
        (200.0, True, InstallGate.WAIT_FOR_TIME),
    ],
)
def test_install_waits_for_its_time_then_for_transactions(
    install_at: float | None, running: bool, gate: InstallGate
) -> None:
    assert install_gate(install_at, 100.0, running) is gate


def test_final_statuses() -> None:
    assert {
        FirmwareStatus.DOWNLOAD_FAILED,
        FirmwareStatus.INVALID_SIGNATURE,
        FirmwareStatus.INSTALLED,
        FirmwareStatus.INSTALLATION_FAILED,
        FirmwareStatus.INSTALL_VERIFICATION_FAILED,
    } == FINAL


STAGED = "2026-01-01T10:00:00+00:00"


def result(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "job": "abc",
        "version": "1.2.3",
        "outcome": "installed",
        "detail": "slot b: healthy",
        "finished_at": "2026-01-01T10:03:00+00:00",
    }
    return base | changes


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (result(), InstallOutcome(True, "slot b: healthy", "abc")),
        (
            result(outcome="rolled_back", detail="unhealthy"),
            InstallOutcome(False, "rolled_back: unhealthy", "abc"),
        ),
        (
            result(outcome="install_failed", detail="pip"),
            InstallOutcome(False, "install_failed: pip", "abc"),
        ),
        (result(finished_at=STAGED), InstallOutcome(True, "slot b: healthy", "abc")),
        (result(finished_at="2026-01-01T09:59:59+00:00"), None),  # an older job
        (result(version="1.2.2"), None),  # another bundle
        (result(job="reported"), None),  # already reported
        (result(job=""), None),
        (result(job=None), None),
        (result(outcome="exploded"), None),
        (result(finished_at="yesterday"), None),
        (result(finished_at="2026-01-01T10:03:00"), None),  # no time zone
        (result(finished_at=None), None),
        (None, None),  # no result.json
        ("garbage", None),
    ],
)
def test_the_updater_result_of_the_staged_bundle(
    found: object, expected: InstallOutcome | None
) -> None:
    assert updater_outcome(found, "1.2.3", STAGED, "reported") == expected
