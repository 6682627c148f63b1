"""Firmware updates and file uploads, the decisions: when to fetch, how often to try,
whether a new request replaces the running one, when installing may begin, and what
the A/B updater's result says about the install this station started.

Protocol-neutral: the statuses are the OCPP security whitepaper's (a superset of plain
OCPP 1.6's and the same as OCPP 2.0.1's); each OCPP layer maps them to its messages.
Times are wall-clock seconds (POSIX), passed in: no clock is read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

DEFAULT_RETRIES = 3  # when the CSMS leaves `retries` out
DEFAULT_RETRY_INTERVAL_S = 60
MAX_RETRIES = 100  # a CSMS asking for a million retries gets a hundred
MAX_RETRY_INTERVAL_S = 24 * 3600


class FirmwareStatus(StrEnum):
    IDLE = "Idle"
    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    DOWNLOAD_PAUSED = "DownloadPaused"
    SIGNATURE_VERIFIED = "SignatureVerified"
    INVALID_SIGNATURE = "InvalidSignature"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALLING = "Installing"
    INSTALL_REBOOTING = "InstallRebooting"
    INSTALLED = "Installed"
    INSTALLATION_FAILED = "InstallationFailed"
    INSTALL_VERIFICATION_FAILED = "InstallVerificationFailed"


# A job that reached one of these is over.
FINAL = frozenset(
    {
        FirmwareStatus.DOWNLOAD_FAILED,
        FirmwareStatus.INVALID_SIGNATURE,
        FirmwareStatus.INSTALLED,
        FirmwareStatus.INSTALLATION_FAILED,
        FirmwareStatus.INSTALL_VERIFICATION_FAILED,
    }
)


class UploadStatus(StrEnum):
    IDLE = "Idle"
    UPLOADING = "Uploading"
    UPLOADED = "Uploaded"
    UPLOAD_FAILED = "UploadFailed"


class Phase(StrEnum):
    """Where a firmware job stands; persisted, so a restart carries on from here."""

    SCHEDULED = "scheduled"  # waiting for the retrieve time
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"  # (signature checked) waiting for the install time / idle
    INSTALLING = "installing"  # handed to the installer: only its outcome is left


class Verdict(StrEnum):
    ACCEPT = "accept"  # nothing else going on
    REPLACE = "replace"  # cancel the running job, then take this one
    REJECT = "reject"  # the running job cannot be stopped any more


def new_request(running: Phase | None) -> Verdict:
    """A new firmware request while `running` (None: no job)."""
    if running is None:
        return Verdict.ACCEPT
    if running is Phase.INSTALLING:
        return Verdict.REJECT
    return Verdict.REPLACE


def download_attempts(retries: int | None) -> int:
    """How many times to try: the first attempt plus `retries` (OCPP's "how many times
    to retry"); the default when absent, never fewer than one, at most MAX_RETRIES + 1."""
    extra = DEFAULT_RETRIES if retries is None else retries
    return 1 + min(max(extra, 0), MAX_RETRIES)


def retry_interval(seconds: int | None) -> float:
    if seconds is None:
        return float(DEFAULT_RETRY_INTERVAL_S)
    return float(min(max(seconds, 0), MAX_RETRY_INTERVAL_S))


def seconds_until(at: float | None, now: float) -> float:
    """How long to wait for `at`; 0 for a time in the past or none."""
    return 0.0 if at is None else max(0.0, at - now)


class InstallGate(StrEnum):
    WAIT_FOR_TIME = "wait_for_time"  # an install time in the future
    WAIT_FOR_TRANSACTIONS = "wait_for_transactions"  # sessions still running
    GO = "go"


def install_gate(install_at: float | None, now: float, transactions_running: bool) -> InstallGate:
    """Installing restarts the controller, so it waits for its time and then for every
    running transaction to end (OCPP: do not interrupt charging for an update)."""
    if seconds_until(install_at, now) > 0:
        return InstallGate.WAIT_FOR_TIME
    if transactions_running:
        return InstallGate.WAIT_FOR_TRANSACTIONS
    return InstallGate.GO


@dataclass(frozen=True, slots=True)
class InstallOutcome:
    installed: bool
    detail: str
    job: str = ""  # the updater's job id, so that each job is reported once


def updater_outcome(
    result: Any, version: str, staged_at: str, reported_job: str | None
) -> InstallOutcome | None:
    """The outcome of the bundle this station staged (`version`, at ISO time
    `staged_at`) in the updater's result.json, or None if the result is not (yet) about
    it: another version, an older job, or one already reported."""
    if not isinstance(result, dict):
        return None
    job, outcome = result.get("job"), result.get("outcome")
    finished = result.get("finished_at")
    if not isinstance(job, str) or not job or job == reported_job:
        return None
    if result.get("version") != version or not isinstance(finished, str):
        return None
    try:
        if datetime.fromisoformat(finished) < datetime.fromisoformat(staged_at):
            return None
    except (ValueError, TypeError):  # unreadable, or one without a time zone
        return None
    detail = str(result.get("detail", ""))[:200]
    if outcome == "installed":
        return InstallOutcome(True, detail, job)
    if outcome in ("rolled_back", "install_failed"):
        return InstallOutcome(False, f"{outcome}: {detail}", job)
    return None
