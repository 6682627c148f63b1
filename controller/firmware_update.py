"""The firmware update job, for any OCPP version: fetch, verify, wait, install, report.

One job at a time, persisted (store records "firmware") at every step, so a restart
resumes a scheduled or interrupted download (the interrupted attempt is tried again),
and after the install restarted the daemon the new run reports Installed or
InstallationFailed once. A new request replaces a job that is still downloading or
waiting and is refused once the install has begun (controller.core.firmware.new_request).

Installing waits for its time (installDateTime) and then for running transactions to
end: from then on no new session starts (idle connectors show Unavailable, running
ones charge on) until the install's outcome, so a driver is never cut off by the
restart an install brings. An installer that restarts the daemon (the A/B updater)
is announced with InstallRebooting first.

One per station (`FirmwareUpdates.of`), shared by the layers of every OCPP version
it offers. The statuses are the neutral ones of controller.core.firmware; each layer's
feature hands the CSMS's request to `request` (the signing certificate's check, the job,
what it does to the one under way), words the `FirmwareAnswer`, and gives a `FirmwareVoice`
that words each status as its message, rendered when it is sent, by the layer that
serves the connection then. The current status is kept on every layer for
TriggerMessage: `cp.firmware_status`, `cp.firmware_request_id` (the final status of a
job, and then Idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from controller.core.firmware import (
    FINAL,
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
)
from controller.firmware_install import FirmwareInstaller, InstallError, make_installer
from controller.firmware_signature import (
    CertificateProblem,
    check_signing_certificate,
    file_digest,
    load_certificates,
    load_roots,
    signature_matches,
)
from controller.transfer import (
    TransferCancelled,
    TransferError,
    download,
    in_thread,
    parse_location,
)
from controller.transfer_jobs import (
    JobTasks,
    OwedNotifications,
    firmware_config,
    parse_time,
    state_dir,
    station_now,
    transfer_options,
)

if TYPE_CHECKING:
    from cryptography import x509

log = logging.getLogger("evsed.firmware")
security_log = logging.getLogger("evsed.security")  # the security log (controller.diagnostics)

RECORDS = "firmware"  # store records: "job", "report", "reported_job"
GATE_POLL_S = 1.0


class FirmwareVoice(Protocol):
    """How a version's layer words a firmware status."""

    def notification(
        self, job: dict[str, Any], status: FirmwareStatus
    ) -> tuple[str, dict[str, Any]] | None:
        """The message for `status` of `job` (its "signed" and "request_id"); None: the
        layer has none for it."""


class Answer(StrEnum):
    """What a firmware request gets, in no version's words."""

    ACCEPTED = "Accepted"
    ACCEPTED_CANCELED = "AcceptedCanceled"  # it replaces a job downloading or waiting
    INVALID_CERTIFICATE = "InvalidCertificate"  # the signing certificate is not trusted
    INVALID_VALUE = "InvalidValue"  # a location or time that cannot be used
    INSTALL_IN_PROGRESS = "InstallInProgress"  # the previous firmware is being installed


@dataclass(frozen=True)
class FirmwareAnswer:
    """The answer to a firmware request; `start` (when accepted) starts the job once the
    answer is out, so that its notifications follow it."""

    answer: Answer
    detail: str = ""
    start: Callable[[], None] | None = None


def safe_name(url: str) -> str:
    """A local file name for what `url` names."""
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64] or "firmware.bin"


# One per store: every version's layer of a station shares it.
class FirmwareUpdates:
    """The firmware job of one station (see the module docstring)."""

    @staticmethod
    def of(cp: Any, voice: FirmwareVoice) -> FirmwareUpdates:
        """The station's firmware job (made by the first layer that asks), which `cp`
        will report in `voice`'s words."""
        found = cp.store.shared("firmware", lambda: FirmwareUpdates(cp))
        found.speak(cp, voice)
        return found

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.store = cp.store
        self.config = firmware_config(cp)
        self.installer: FirmwareInstaller = make_installer(
            self.config.installer, self.config.install_command, self.config.update_root
        )
        self.options = transfer_options(self.config)
        self.firmware_dir = state_dir(cp) / "firmware"
        # Whether this run began with an install under way: the previous run ended for it.
        self.restarted_for_install = False
        self.status = FirmwareStatus.IDLE
        self.request_id: int | None = None
        self._voices: dict[Any, FirmwareVoice] = {}
        self._job: dict[str, Any] | None = None
        self._job_task: asyncio.Task[None] | None = None
        self._job_cancel = threading.Event()
        self._holding = False
        self._tasks = JobTasks("firmware")
        self.owed = OwedNotifications(cp.station, self.store, RECORDS, self._tasks, self._render)
        self._restore()

    # --- the layers -------------------------------------------------------------------------

    def speak(self, layer: Any, voice: FirmwareVoice) -> None:
        """`layer` reports the job in `voice`'s words (and keeps its current status)."""
        self._voices[layer] = voice
        layer.firmware_status = self.status.value
        layer.firmware_request_id = self.request_id

    def _render(self, item: dict[str, Any], layer: Any) -> tuple[str, dict[str, Any]] | None:
        if "action" in item:  # worded already (a report an earlier release stored)
            return str(item["action"]), dict(item["payload"])
        voice = self._voices.get(layer)
        if voice is None:
            return None
        return voice.notification(item["job"], FirmwareStatus(item["status"]))

    @staticmethod
    def _item(job: dict[str, Any], status: FirmwareStatus) -> dict[str, Any]:
        """A notification owed, in no version's words yet."""
        about = {"signed": job["signed"], "request_id": job["request_id"]}
        return {"job": about, "status": status.value}

    # --- restart ----------------------------------------------------------------------------

    def _restore(self) -> None:
        try:
            self._resume()
        except (KeyError, TypeError, ValueError) as e:  # a record this version cannot read
            log.error("dropping an unreadable firmware record: %r", e)
            self.store.replace_records(RECORDS, {})

    def _resume(self) -> None:
        records = self.store.records(RECORDS)
        report = records.get("report")
        if isinstance(report, dict):
            self.owed.owe(report, "report")
        job = records.get("job")
        if isinstance(job, dict):
            if job.get("phase") == Phase.DOWNLOADING:
                # The interrupted attempt was not the server's fault: it gets another.
                job["tried"] = min(int(job.get("tried", 0)), int(job["attempts"]) - 1)
            self.restarted_for_install = job.get("phase") == Phase.INSTALLING
            self._set_status(job, self._status_after_restart(job))
            self._start(job)

    @staticmethod
    def _status_after_restart(job: dict[str, Any]) -> FirmwareStatus:
        phase = job.get("phase")
        if phase == Phase.SCHEDULED:
            return FirmwareStatus.DOWNLOAD_SCHEDULED
        if phase == Phase.DOWNLOADING:
            return FirmwareStatus.DOWNLOADING
        if phase == Phase.DOWNLOADED:
            return FirmwareStatus.DOWNLOADED
        return FirmwareStatus.INSTALLING

    # --- requests ---------------------------------------------------------------------------

    def request(
        self,
        *,
        request_id: int | None,
        location: str,
        retrieve_time: str | None,
        install_time: str | None = None,
        retries: int | None,
        interval: int | None,
        certificate: str | None = None,
        signature: str | None = None,
    ) -> FirmwareAnswer:
        """A firmware request (times as OCPP dateTimes): checked, and when accepted,
        persisted as the job (replacing the one under way) before it is answered. An
        untrusted signing certificate is a security event, recorded before the answer."""
        if certificate is not None:
            problem = self.certificate_problem(certificate)
            if problem is not None:
                log.warning("firmware request refused: %s", problem)
                self.security_event("InvalidFirmwareSigningCertificate", problem)
                return FirmwareAnswer(Answer.INVALID_CERTIFICATE, problem)
        try:
            job = self.new_job(
                request_id=request_id,
                location=location,
                retrieve_at=parse_time(retrieve_time),
                install_at=parse_time(install_time),
                retries=retries,
                interval=interval,
                certificate=certificate,
                signature=signature,
            )
        except ValueError as e:
            log.warning("firmware request refused: %s", e)
            return FirmwareAnswer(Answer.INVALID_VALUE, str(e))
        verdict = self.verdict()
        if verdict is Verdict.REJECT:
            detail = "the previous firmware is being installed"
            log.warning("firmware request refused: %s", detail)
            return FirmwareAnswer(Answer.INSTALL_IN_PROGRESS, detail)
        answer = Answer.ACCEPTED_CANCELED if verdict is Verdict.REPLACE else Answer.ACCEPTED
        return FirmwareAnswer(answer, start=self.replace(job))

    def verdict(self) -> Verdict:
        """What a new request would do to the job under way."""
        return new_request(None if self._job is None else Phase(self._job["phase"]))

    def certificate_problem(self, pem: str) -> str | None:
        """Why a signing certificate is not trusted (None: it is), against the
        manufacturer roots."""
        try:
            check_signing_certificate(pem, self.manufacturer_roots(), self.now_dt())
        except CertificateProblem as e:
            return str(e)
        return None

    def new_job(
        self,
        *,
        request_id: int | None,
        location: str,
        retrieve_at: float | None,
        install_at: float | None,
        retries: int | None,
        interval: int | None,
        certificate: str | None = None,
        signature: str | None = None,
    ) -> dict[str, Any]:
        """A job for a request (ValueError: a location that cannot be used); signed when
        it comes with a signing certificate and a signature."""
        parse_location(location)
        now = self.now()
        key = uuid.uuid4().hex[:8]
        job: dict[str, Any] = {
            "signed": certificate is not None and signature is not None,
            "request_id": request_id,
            "location": location,
            "retrieve_at": retrieve_at if retrieve_at is not None else now,
            "install_at": install_at,
            "attempts": download_attempts(retries),
            "tried": 0,
            "retry_interval": retry_interval(interval),
            "phase": Phase.SCHEDULED.value,
            "file": str(self.firmware_dir / f"{key}-{safe_name(location)}"),
        }
        if job["signed"]:
            job["certificate"] = certificate
            job["signature"] = signature
        return job

    def replace(self, job: dict[str, Any]) -> Callable[[], None]:
        """Stop the job under way and persist `job` (before the answer); what starts it
        (after the answer, so that its notifications follow it)."""
        if self._job is not None:
            log.info("firmware request replaces the one under way")
            self._stop_job()
        self._save(job)
        self._job = job
        return lambda: self._start(job)

    # --- the job ----------------------------------------------------------------------------

    def _stop_job(self) -> None:
        self._job_cancel.set()
        if self._job_task is not None:
            self._job_task.cancel()
        if self._job is not None:
            self._remove_file(self._job)
        self._release_hold()
        self._job = None

    def _start(self, job: dict[str, Any]) -> None:
        self._job = job
        self._job_cancel = threading.Event()
        self._job_task = self._tasks.spawn(self._run(job, self._job_cancel))

    async def _run(self, job: dict[str, Any], cancel: threading.Event) -> None:
        try:
            downloading = job["phase"] in (Phase.SCHEDULED, Phase.DOWNLOADING)
            if downloading and not await self._download(job, cancel):
                return
            if job["phase"] == Phase.DOWNLOADED:
                outcome = await self._install(job)
            else:  # installing when the previous run ended
                # The updater may still roll back (restarting again): no new session
                # until its outcome (released by _finish).
                self._hold()
                reported = self.store.records(RECORDS).get("reported_job")
                outcome = await self.installer.outcome(job["install"], reported)
            if outcome is not None:
                self._installed(job, outcome)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("firmware update failed")
            self._finish(job, FirmwareStatus.INSTALLATION_FAILED, f"internal error: {e}")

    async def _download(self, job: dict[str, Any], cancel: threading.Event) -> bool:
        wait = seconds_until(job["retrieve_at"], self.now())
        if wait > 0:
            self._report(job, FirmwareStatus.DOWNLOAD_SCHEDULED)
            log.info("firmware download scheduled in %.0f s", wait)
            await asyncio.sleep(wait)
        job["phase"] = Phase.DOWNLOADING.value
        self._save(job)
        self._report(job, FirmwareStatus.DOWNLOADING)
        file = Path(job["file"])
        location = parse_location(job["location"]).display
        while True:
            job["tried"] += 1
            self._save(job)
            try:
                size = await in_thread(download, job["location"], file, self.options, cancel)
                break
            except TransferCancelled:
                return False
            except TransferError as e:
                log.warning(
                    "firmware download %d of %d failed: %s", job["tried"], job["attempts"], e
                )
                if job["tried"] >= job["attempts"]:
                    self._finish(job, FirmwareStatus.DOWNLOAD_FAILED, str(e))
                    return False
                await asyncio.sleep(job["retry_interval"])
        log.info("firmware downloaded from %s: %d bytes", location, size)
        if job["signed"] and not await self._signature_ok(job, file):
            return False
        job["phase"] = Phase.DOWNLOADED.value
        self._save(job)
        self._report(job, FirmwareStatus.DOWNLOADED)
        if job["signed"]:
            self._report(job, FirmwareStatus.SIGNATURE_VERIFIED)
        return True

    async def _signature_ok(self, job: dict[str, Any], file: Path) -> bool:
        digest = await in_thread(file_digest, file)
        leaf = load_certificates(job["certificate"])[0]
        if signature_matches(digest, job["signature"], leaf):
            return True
        log.error("firmware signature does not match the file")
        self._report(job, FirmwareStatus.DOWNLOADED)
        self.security_event("InvalidFirmwareSignature", "the signature does not match")
        self._finish(job, FirmwareStatus.INVALID_SIGNATURE, "signature mismatch")
        return False

    async def _install(self, job: dict[str, Any]) -> InstallOutcome | None:
        """Wait for the install time and for idle connectors, then install; None when
        the installer refused the file (the job is finished already)."""
        scheduled = False
        while True:
            gate = install_gate(
                job.get("install_at"), self.now(), self.cp.station.has_running_transactions()
            )
            if gate is InstallGate.GO:
                break
            if gate is InstallGate.WAIT_FOR_TIME:
                if not scheduled:
                    self._report(job, FirmwareStatus.INSTALL_SCHEDULED)
                    scheduled = True
                await asyncio.sleep(min(seconds_until(job["install_at"], self.now()), 60.0))
                continue
            if not self._holding:
                log.info("firmware install waits for the running transactions to end")
            self._hold()
            await asyncio.sleep(GATE_POLL_S)
        self._hold()  # from here until the outcome, no new session
        file = Path(job["file"])
        try:
            memo = await self.installer.begin(file)
        except InstallError as e:
            failed = (
                FirmwareStatus.INSTALL_VERIFICATION_FAILED
                if job["signed"]
                else FirmwareStatus.INSTALLATION_FAILED
            )
            self._finish(job, failed, str(e))
            return None
        job["install"] = memo
        job["phase"] = Phase.INSTALLING.value
        self._save(job)
        self._report(job, FirmwareStatus.INSTALLING)
        if getattr(self.installer, "restarts", False):
            self._report(job, FirmwareStatus.INSTALL_REBOOTING)
        log.info("installing firmware %s", file.name)
        return await self.installer.run(file, job["install"])

    def _installed(self, job: dict[str, Any], outcome: InstallOutcome) -> None:
        if outcome.job:
            self.store.put_record(RECORDS, "reported_job", outcome.job)
        if outcome.installed:
            self._finish(job, FirmwareStatus.INSTALLED, outcome.detail)
            self.security_event("FirmwareUpdated", outcome.detail or "installed")
        else:
            self._finish(job, FirmwareStatus.INSTALLATION_FAILED, outcome.detail)

    def _finish(self, job: dict[str, Any], status: FirmwareStatus, detail: str) -> None:
        """The job is over: its final status is owed (persisted), the job and file go."""
        assert status in FINAL
        (log.info if status is FirmwareStatus.INSTALLED else log.error)(
            "firmware update: %s (%s)", status.value, detail
        )
        report = self._item(job, status)
        with self.store.atomic():
            self.store.put_record(RECORDS, "report", report)
            self.store.delete_record(RECORDS, "job")
        self.owed.owe(report, "report")
        self._remove_file(job)
        self._release_hold()
        if self._job is job:
            self._job = None
        self._set_current(FirmwareStatus.IDLE, None)

    def _report(self, job: dict[str, Any], status: FirmwareStatus) -> None:
        self._set_status(job, status)
        self.owed.owe(self._item(job, status))

    def _set_status(self, job: dict[str, Any], status: FirmwareStatus) -> None:
        self._set_current(status, job["request_id"])

    def _set_current(self, status: FirmwareStatus, request_id: int | None) -> None:
        self.status, self.request_id = status, request_id
        for layer in self._voices:
            layer.firmware_status = status.value
            layer.firmware_request_id = request_id

    def _save(self, job: dict[str, Any]) -> None:
        self.store.put_record(RECORDS, "job", job)

    def _remove_file(self, job: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            Path(job["file"]).unlink()

    def _hold(self) -> None:
        if not self._holding:
            self._holding = True
            self.cp.station.hold_new_sessions(True)

    def _release_hold(self) -> None:
        if self._holding:
            self._holding = False
            self.cp.station.hold_new_sessions(False)

    # --- certificates and security events ---------------------------------------------------

    def manufacturer_roots(self) -> list[x509.Certificate]:
        """The roots installed with InstallCertificate (the security feature's store, if
        present) and the factory's (firmware.manufacturer_roots)."""
        roots: list[x509.Certificate] = []
        store = getattr(self.cp, "certificates", None)
        if store is not None and hasattr(store, "roots"):
            try:
                roots += store.roots("ManufacturerRootCertificate")
            except Exception:
                log.exception("cannot read the installed manufacturer roots")
        if self.config.manufacturer_roots is not None:
            try:
                roots += load_roots(self.config.manufacturer_roots)
            except (OSError, ValueError) as e:
                log.error("firmware.manufacturer_roots unusable: %s", e)
        return roots

    def security_event(self, kind: str, info: str) -> None:
        """Report a security event through the layer's security feature
        (`cp.security_event`); without one, it is only written to the security log."""
        hook = getattr(self.cp, "security_event", None)
        if hook is None:
            security_log.warning("security event %s: %s", kind, info)
            return
        result = hook(kind, info[:255])
        if inspect.isawaitable(result):
            self.cp._later(result)

    # --- helpers ----------------------------------------------------------------------------

    def now(self) -> float:
        return station_now(self.cp)

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)
