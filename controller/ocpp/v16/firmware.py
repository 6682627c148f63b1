"""OCPP 1.6 Firmware Management profile (UpdateFirmware, GetDiagnostics) and the
security whitepaper's SignedUpdateFirmware and GetLog.

One firmware job at a time, persisted (store records "firmware") at every step, so a
restart resumes a scheduled or interrupted download (the interrupted attempt is tried
again), and after the install restarted the daemon the new run reports Installed or
InstallationFailed once. A new request replaces a job that is still downloading or
waiting (SignedUpdateFirmware answers AcceptedCanceled) and is refused once the
install has begun.

Installing waits for its time (installDateTime) and then for running transactions to
end: from then on no new session starts (idle connectors show Unavailable, running
ones charge on) until the install's outcome, so a driver is never cut off by the
restart an install brings. The decisions are in controller.core.firmware, the
transfers in controller.transfer, the install step in controller.firmware_install.

Status notifications are sent in order while the station is accepted and kept (in
memory, the final one also in the store) while it is not. The current statuses are
kept on the ChargePoint16 for TriggerMessage (`firmware_status` in the whitepaper's
words, `diagnostics_status`, `log_status`, with the requestIds): the final status of a
job, and then Idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller import diagnostics
from controller.core.firmware import (
    FINAL,
    FirmwareStatus,
    InstallGate,
    InstallOutcome,
    Phase,
    UploadStatus,
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
from controller.ocpp.rpc import OcppError, Reply
from controller.ocpp.v16.keys import KeySpec, Kind
from controller.transfer import (
    MiB,
    TransferCancelled,
    TransferError,
    TransferOptions,
    download,
    in_thread,
    parse_location,
    upload,
)

if TYPE_CHECKING:  # controller.config imports the profiles: no import cycle at run time
    from cryptography import x509

    from controller.config import FirmwareConfig

log = logging.getLogger("evsed.firmware")

RECORDS = "firmware"  # store records: "job", "report", "reported_job"
UPLOAD_RECORDS = "log_upload"  # store records: "job" (an upload under way)
OWED_MAX = 50  # notifications kept while offline; the oldest go first
RECENT_TRANSACTIONS = 50
GATE_POLL_S = 1.0

# FirmwareStatusNotification (plain 1.6) knows fewer statuses than the whitepaper.
PLAIN_FIRMWARE = {
    FirmwareStatus.DOWNLOADING: "Downloading",
    FirmwareStatus.DOWNLOADED: "Downloaded",
    FirmwareStatus.DOWNLOAD_FAILED: "DownloadFailed",
    FirmwareStatus.INSTALLING: "Installing",
    FirmwareStatus.INSTALLED: "Installed",
    FirmwareStatus.INSTALLATION_FAILED: "InstallationFailed",
    FirmwareStatus.INSTALL_VERIFICATION_FAILED: "InstallationFailed",
    FirmwareStatus.INVALID_SIGNATURE: "InstallationFailed",
}
# A failed upload in LogStatusNotification's words, by TransferError.kind.
LOG_FAILURE = {"permission": "PermissionDenied", "unsupported": "NotSupportedOperation"}


def _parse_time(value: str | None) -> float | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _safe_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64] or "firmware.bin"


class FirmwareManagement:
    PROFILE = "FirmwareManagement"

    @staticmethod
    def keys(number_of_connectors: int) -> dict[str, KeySpec]:
        return {
            "SupportedFileTransferProtocols": KeySpec(
                "SupportedFileTransferProtocols", Kind.CSL, "FTP,HTTP,HTTPS", readonly=True
            )
        }

    def __init__(self, cp: Any) -> None:
        from controller.config import FirmwareConfig

        self.cp = cp
        self.store = cp.store
        config = getattr(cp.config, "firmware", None)
        self.config: FirmwareConfig = config if config is not None else FirmwareConfig()
        self.installer: FirmwareInstaller = make_installer(
            self.config.installer, self.config.install_command, self.config.update_root
        )
        self.options = TransferOptions(
            timeout=self.config.transfer_timeout,
            max_bytes=int(self.config.max_download_mb * MiB),
            ca_file=self.config.ca_file,
        )
        state_dir = Path(self.store.path).parent
        self.firmware_dir = state_dir / "firmware"
        self.upload_dir = state_dir / "diagnostics"
        self._job: dict[str, Any] | None = None
        self._job_task: asyncio.Task[None] | None = None
        self._job_cancel = threading.Event()
        self._upload_task: asyncio.Task[None] | None = None
        self._upload_cancel = threading.Event()
        self._holding = False
        self._owed: deque[tuple[str, dict[str, Any], str | None]] = deque()
        self._owed_event = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._spawn(self._deliver())
        self._restore()

    def handlers(self) -> dict[str, Any]:
        return {
            "UpdateFirmware": self._update_firmware,
            "SignedUpdateFirmware": self._signed_update_firmware,
            "GetDiagnostics": self._get_diagnostics,
            "GetLog": self._get_log,
        }

    async def while_connected(self) -> None:
        self._owed_event.set()  # deliver what was owed while offline

    # --- restart ----------------------------------------------------------------------------

    def _restore(self) -> None:
        try:
            self._resume()
        except (KeyError, TypeError, ValueError) as e:  # a record this version cannot read
            log.error("dropping an unreadable firmware or upload record: %r", e)
            for kind in (RECORDS, UPLOAD_RECORDS):
                self.store.replace_records(kind, {})

    def _resume(self) -> None:
        records = self.store.records(RECORDS)
        report = records.get("report")
        if isinstance(report, dict):
            self._owe(report["action"], report["payload"], "report")
        job = records.get("job")
        if isinstance(job, dict):
            if job.get("phase") == Phase.DOWNLOADING:
                # The interrupted attempt was not the server's fault: it gets another.
                job["tried"] = min(int(job.get("tried", 0)), int(job["attempts"]) - 1)
            self._set_status(job, self._status_after_restart(job))
            self._start(job)
        upload_job = self.store.records(UPLOAD_RECORDS).get("job")
        if isinstance(upload_job, dict):
            log.warning("an upload was interrupted by a restart; reporting it failed")
            self._upload_done(upload_job, "failed")

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

    async def _update_firmware(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        try:
            parse_location(req["location"])
            retrieve_at = _parse_time(req["retrieveDate"])
        except ValueError as e:
            # UpdateFirmware.conf has no status: the refusal can only be logged.
            log.warning("UpdateFirmware refused: %s", e)
            return {}
        verdict = new_request(self._phase())
        if verdict is Verdict.REJECT:
            log.warning("UpdateFirmware ignored: the previous firmware is being installed")
            return {}
        job = self._new_job(
            signed=False,
            request_id=None,
            location=req["location"],
            retrieve_at=retrieve_at,
            install_at=None,
            retries=req.get("retries"),
            interval=req.get("retryInterval"),
        )
        return Reply({}, self._replace_job(job))

    async def _signed_update_firmware(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        firmware = req["firmware"]
        try:
            check_signing_certificate(
                firmware["signingCertificate"], self._manufacturer_roots(), self._now_dt()
            )
        except CertificateProblem as e:
            log.warning("SignedUpdateFirmware refused: %s", e)
            why = str(e)
            return Reply(
                {"status": "InvalidCertificate"},
                lambda: self._security_event("InvalidFirmwareSigningCertificate", why),
            )
        try:
            parse_location(firmware["location"])
            retrieve_at = _parse_time(firmware["retrieveDateTime"])
            install_at = _parse_time(firmware.get("installDateTime"))
        except ValueError as e:
            log.warning("SignedUpdateFirmware refused: %s", e)
            return {"status": "Rejected"}
        verdict = new_request(self._phase())
        if verdict is Verdict.REJECT:
            log.warning("SignedUpdateFirmware refused: the previous firmware is being installed")
            return {"status": "Rejected"}
        job = self._new_job(
            signed=True,
            request_id=req["requestId"],
            location=firmware["location"],
            retrieve_at=retrieve_at,
            install_at=install_at,
            retries=req.get("retries"),
            interval=req.get("retryInterval"),
        )
        job["certificate"] = firmware["signingCertificate"]
        job["signature"] = firmware["signature"]
        status = "AcceptedCanceled" if verdict is Verdict.REPLACE else "Accepted"
        return Reply({"status": status}, self._replace_job(job))

    def _new_job(
        self,
        *,
        signed: bool,
        request_id: int | None,
        location: str,
        retrieve_at: float | None,
        install_at: float | None,
        retries: int | None,
        interval: int | None,
    ) -> dict[str, Any]:
        now = self._now()
        key = uuid.uuid4().hex[:8]
        return {
            "signed": signed,
            "request_id": request_id,
            "location": location,
            "retrieve_at": retrieve_at if retrieve_at is not None else now,
            "install_at": install_at,
            "attempts": download_attempts(retries),
            "tried": 0,
            "retry_interval": retry_interval(interval),
            "phase": Phase.SCHEDULED.value,
            "file": str(self.firmware_dir / f"{key}-{_safe_name(location)}"),
        }

    # --- the firmware job -------------------------------------------------------------------

    def _phase(self) -> Phase | None:
        return None if self._job is None else Phase(self._job["phase"])

    def _replace_job(self, job: dict[str, Any]) -> Callable[[], None]:
        """Stop the job under way and persist `job` (before the answer); what starts it
        (after the answer, so that its notifications follow it)."""
        if self._job is not None:
            log.info("firmware request replaces the one under way")
            self._stop_job()
        self._save(job)
        self._job = job
        return lambda: self._start(job)

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
        self._job_task = self._spawn(self._run(job, self._job_cancel))

    async def _run(self, job: dict[str, Any], cancel: threading.Event) -> None:
        try:
            downloading = job["phase"] in (Phase.SCHEDULED, Phase.DOWNLOADING)
            if downloading and not await self._download(job, cancel):
                return
            if job["phase"] == Phase.DOWNLOADED:
                outcome = await self._install(job)
            else:  # installing when the previous run ended
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
        wait = seconds_until(job["retrieve_at"], self._now())
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
        self._security_event("InvalidFirmwareSignature", "the signature does not match")
        self._finish(job, FirmwareStatus.INVALID_SIGNATURE, "signature mismatch")
        return False

    async def _install(self, job: dict[str, Any]) -> InstallOutcome | None:
        """Wait for the install time and for idle connectors, then install; None when
        the installer refused the file (the job is finished already)."""
        scheduled = False
        while True:
            gate = install_gate(
                job.get("install_at"), self._now(), self.cp.station.has_running_transactions()
            )
            if gate is InstallGate.GO:
                break
            if gate is InstallGate.WAIT_FOR_TIME:
                if not scheduled:
                    self._report(job, FirmwareStatus.INSTALL_SCHEDULED)
                    scheduled = True
                await asyncio.sleep(min(seconds_until(job["install_at"], self._now()), 60.0))
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
        log.info("installing firmware %s", file.name)
        return await self.installer.run(file, job["install"])

    def _installed(self, job: dict[str, Any], outcome: InstallOutcome) -> None:
        if outcome.job:
            self.store.put_record(RECORDS, "reported_job", outcome.job)
        if outcome.installed:
            self._finish(job, FirmwareStatus.INSTALLED, outcome.detail)
        else:
            self._finish(job, FirmwareStatus.INSTALLATION_FAILED, outcome.detail)

    def _finish(self, job: dict[str, Any], status: FirmwareStatus, detail: str) -> None:
        """The job is over: its final status is owed (persisted), the job and file go."""
        assert status in FINAL
        (log.info if status is FirmwareStatus.INSTALLED else log.error)(
            "firmware update: %s (%s)", status.value, detail
        )
        action, payload = self._notification(job, status)
        if action is not None:
            with self.store.atomic():
                self.store.put_record(RECORDS, "report", {"action": action, "payload": payload})
                self.store.delete_record(RECORDS, "job")
            self._owe(action, payload, "report")
        else:
            self.store.delete_record(RECORDS, "job")
        self._remove_file(job)
        self._release_hold()
        if self._job is job:
            self._job = None
        self.cp.firmware_status = FirmwareStatus.IDLE.value
        self.cp.firmware_request_id = None

    def _report(self, job: dict[str, Any], status: FirmwareStatus) -> None:
        self._set_status(job, status)
        action, payload = self._notification(job, status)
        if action is not None:
            self._owe(action, payload, None)

    def _set_status(self, job: dict[str, Any], status: FirmwareStatus) -> None:
        self.cp.firmware_status = status.value
        self.cp.firmware_request_id = job["request_id"] if job["signed"] else None

    @staticmethod
    def _notification(
        job: dict[str, Any], status: FirmwareStatus
    ) -> tuple[str | None, dict[str, Any]]:
        if job["signed"]:
            payload = {"status": status.value, "requestId": job["request_id"]}
            return "SignedFirmwareStatusNotification", payload
        plain = PLAIN_FIRMWARE.get(status)
        return ("FirmwareStatusNotification" if plain else None), {"status": plain}

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

    def _manufacturer_roots(self) -> list[x509.Certificate]:
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

    def _security_event(self, kind: str, info: str) -> None:
        hook = getattr(self.cp, "security_event", None)
        if hook is None:
            log.warning("security event %s (no security feature to report it): %s", kind, info)
            return
        result = hook(kind, info[:255])
        if inspect.isawaitable(result):
            self.cp._later(result)

    # --- GetDiagnostics and GetLog ----------------------------------------------------------

    async def _get_diagnostics(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        try:
            parse_location(req["location"])
            since, until = _parse_time(req.get("startTime")), _parse_time(req.get("stopTime"))
        except ValueError as e:
            log.warning("GetDiagnostics refused: %s", e)
            return {}  # no fileName: nothing will be uploaded
        name = diagnostics.archive_name(self.cp.settings.station_id, self._now_dt())
        job = {
            "action": "DiagnosticsStatusNotification",
            "request_id": None,
            "location": req["location"],
            "name": name,
            "since": since,
            "until": until,
            "security": False,
            "attempts": download_attempts(req.get("retries")),
            "retry_interval": retry_interval(req.get("retryInterval")),
        }
        return Reply({"fileName": name}, self._replace_upload(job))

    async def _get_log(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        params = req["log"]
        try:
            parse_location(params["remoteLocation"])
            since = _parse_time(params.get("oldestTimestamp"))
            until = _parse_time(params.get("latestTimestamp"))
        except ValueError as e:
            log.warning("GetLog refused: %s", e)
            return {"status": "Rejected"}
        security = req["logType"] == "SecurityLog"
        name = diagnostics.archive_name(
            self.cp.settings.station_id, self._now_dt(), "security" if security else ""
        )
        job = {
            "action": "LogStatusNotification",
            "request_id": req["requestId"],
            "location": params["remoteLocation"],
            "name": name,
            "since": since,
            "until": until,
            "security": security,
            "attempts": download_attempts(req.get("retries")),
            "retry_interval": retry_interval(req.get("retryInterval")),
        }
        busy = self._upload_task is not None and not self._upload_task.done()
        status = "AcceptedCanceled" if busy else "Accepted"
        return Reply({"status": status, "filename": name}, self._replace_upload(job))

    def _replace_upload(self, job: dict[str, Any]) -> Callable[[], None]:
        """Cancel the upload under way and persist `job`; what starts it (after the answer)."""
        if self._upload_task is not None and not self._upload_task.done():
            log.info("a new upload request cancels the one under way")
            self._upload_cancel.set()
            self._upload_task.cancel()
        self.store.put_record(UPLOAD_RECORDS, "job", job)

        def start() -> None:
            self._upload_cancel = threading.Event()
            self._upload_task = self._spawn(self._upload(job, self._upload_cancel))

        return start

    async def _upload(self, job: dict[str, Any], cancel: threading.Event) -> None:
        self._upload_status(job, UploadStatus.UPLOADING.value)
        self._upload_note(job, "Uploading")
        # Its own directory: two requests in one second get the same file name.
        archive = self.upload_dir / uuid.uuid4().hex[:8] / job["name"]
        try:
            await self._build_archive(job, archive)
            tried = 0
            while True:
                tried += 1
                try:
                    where = await in_thread(upload, job["location"], archive, self.options, cancel)
                    log.info("%s uploaded to %s", archive.name, where)
                    self._upload_done(job, "uploaded")
                    return
                except TransferCancelled:
                    return
                except TransferError as e:
                    log.warning("upload %d of %d failed: %s", tried, job["attempts"], e)
                    if tried >= job["attempts"]:
                        self._upload_done(job, e.kind)
                        return
                    await asyncio.sleep(job["retry_interval"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("building or uploading the diagnostics failed")
            self._upload_done(job, "failed")
        finally:
            with contextlib.suppress(OSError):
                archive.unlink()
                archive.parent.rmdir()

    def _upload_status(self, job: dict[str, Any], status: str) -> None:
        if job["action"] == "LogStatusNotification":
            self.cp.log_status = status
            self.cp.log_request_id = job["request_id"] if status != "Idle" else None
        else:
            self.cp.diagnostics_status = status

    def _upload_note(self, job: dict[str, Any], status: str) -> None:
        payload: dict[str, Any] = {"status": status}
        if job["action"] == "LogStatusNotification":
            payload["requestId"] = job["request_id"]
        self._owe(job["action"], payload, None)

    def _upload_done(self, job: dict[str, Any], result: str) -> None:
        """`result`: "uploaded", or a TransferError kind."""
        if result == "uploaded":
            status = "Uploaded"
        elif job["action"] == "LogStatusNotification":
            status = LOG_FAILURE.get(result, "UploadFailure")
        else:
            status = "UploadFailed"
        self._upload_status(job, status)
        self._upload_note(job, status)
        self.store.delete_record(UPLOAD_RECORDS, "job")
        self._upload_status(job, "Idle")

    async def _build_archive(self, job: dict[str, Any], archive: Path) -> None:
        """Gather on the loop (the station's state is not thread-safe), write in a thread."""
        cp = self.cp
        now = self._now_dt()
        since = datetime.fromtimestamp(job["since"], UTC) if job["since"] is not None else None
        until = datetime.fromtimestamp(job["until"], UTC) if job["until"] is not None else None
        config = cp.config
        keys = {
            spec.name: diagnostics.MASK if spec.write_only and value else value
            for spec, value in cp.keys.items()
        }
        files = {
            "state.json": diagnostics.to_json(
                {**cp.station.snapshot(), "ocpp": cp.link_state(), "time": now.isoformat()}
            ),
            "config.json": diagnostics.to_json(
                diagnostics.redact(
                    {
                        "file": diagnostics.plain(config) if config is not None else None,
                        "ocpp_keys": keys,
                    }
                )
            ),
            "store.json": diagnostics.to_json(
                {
                    "recent_transactions": [
                        diagnostics.plain(t)
                        for t in self.store.recent_transactions(RECENT_TRANSACTIONS)
                    ],
                    "queued_messages": self.store.pending_count(),
                    "failed_messages": self.store.failed_messages()[-RECENT_TRANSACTIONS:],
                }
            ),
        }
        extract = await in_thread(
            diagnostics.collect_log, since, until, self.config.log_file, job["security"]
        )
        text = extract.text if extract.text else (extract.note or "(empty)").encode() + b"\n"
        files["security-log.txt" if job["security"] else "log.txt"] = text
        files["manifest.json"] = diagnostics.to_json(
            {
                "station": cp.settings.station_id,
                "created": now.isoformat(),
                "kind": "SecurityLog" if job["security"] else "Diagnostics",
                "window": {
                    "since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None,
                },
                "log_source": extract.source,
                "log_note": extract.note,
                "files": sorted(files),
            }
        )
        await in_thread(diagnostics.build_archive, archive, files, now)

    # --- notifications ----------------------------------------------------------------------

    def _owe(self, action: str, payload: dict[str, Any], record: str | None) -> None:
        """Send `action` when the station is accepted; `record`: the store record to drop
        once the CSMS has it."""
        while len(self._owed) >= OWED_MAX:
            self._owed.popleft()
        self._owed.append((action, payload, record))
        self._owed_event.set()

    async def _deliver(self) -> None:
        while True:
            await self._owed_event.wait()
            self._owed_event.clear()
            while self._owed and self.cp.online:
                action, payload, record = self._owed[0]
                try:
                    await self.cp._call(action, payload)
                except (ConnectionError, TimeoutError) as e:
                    log.info("%s not delivered (%s); again when connected", action, e)
                    break
                except OcppError as e:
                    log.warning("the CSMS refused %s: %s", action, e)
                self._owed.popleft()
                if record is not None and not any(r == record for _, _, r in self._owed):
                    self.store.delete_record(RECORDS, record)

    # --- helpers ----------------------------------------------------------------------------

    def _now(self) -> float:
        return float(self.cp.station.clock.epoch())

    def _now_dt(self) -> datetime:
        return datetime.fromtimestamp(self._now(), UTC)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("firmware task failed", exc_info=task.exception())
