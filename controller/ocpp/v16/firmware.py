"""OCPP 1.6 Firmware Management profile (UpdateFirmware, GetDiagnostics) and the
security whitepaper's SignedUpdateFirmware and GetLog.

This module only translates: the firmware job (download, signature, waiting for
idle connectors, install, the report after a restart) is controller.firmware_update,
the uploads controller.log_upload, shared with the 2.0.1 layer. A new request
replaces a job that is still downloading or waiting (SignedUpdateFirmware answers
AcceptedCanceled) and is refused once the install has begun.

Status notifications are sent in order while the station is accepted and kept (in
memory, the final one also in the store) while it is not. The current statuses are
kept on the ChargePoint16 for TriggerMessage (`firmware_status` in the whitepaper's
words, `diagnostics_status`, `log_status`, with the requestIds): the final status of a
job, and then Idle.
"""

from __future__ import annotations

import logging
from typing import Any

from controller.core.firmware import FirmwareStatus
from controller.firmware_update import Answer, FirmwareUpdates
from controller.log_upload import LOG_FAILURE, LogUploads, UploadStep
from controller.ocpp.rpc import Reply
from controller.ocpp.v16.keys import KeySpec, Kind
from controller.transfer_jobs import parse_time

log = logging.getLogger("evsed.firmware")

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


class Firmware16:
    """Firmware statuses in 1.6's words: SignedFirmwareStatusNotification for a signed
    request, FirmwareStatusNotification (fewer statuses) for a plain one."""

    def notification(
        self, job: dict[str, Any], status: FirmwareStatus
    ) -> tuple[str, dict[str, Any]] | None:
        if job["signed"]:
            payload = {"status": status.value, "requestId": job["request_id"]}
            return "SignedFirmwareStatusNotification", payload
        plain = PLAIN_FIRMWARE.get(status)
        return None if plain is None else ("FirmwareStatusNotification", {"status": plain})


class Uploads16:
    """Upload steps in 1.6's words: DiagnosticsStatusNotification for GetDiagnostics,
    LogStatusNotification for GetLog (job["action"]; a job a 2.0.1 run left has none)."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp

    @staticmethod
    def _status(job: dict[str, Any], step: str) -> str:
        if step == UploadStep.UPLOADING:
            return "Uploading"
        if step == UploadStep.UPLOADED:
            return "Uploaded"
        if step == UploadStep.IDLE:
            return "Idle"
        if job.get("action") == "DiagnosticsStatusNotification":
            return "UploadFailed"
        return LOG_FAILURE.get(step, "UploadFailure")

    def current(self, job: dict[str, Any], step: str) -> None:
        if step == UploadStep.CANCELLED:
            return
        status = self._status(job, step)
        if job.get("action") == "DiagnosticsStatusNotification":
            self.cp.diagnostics_status = status
        else:
            self.cp.log_status = status
            self.cp.log_request_id = job["request_id"] if status != "Idle" else None

    def notification(self, job: dict[str, Any], step: str) -> tuple[str, dict[str, Any]] | None:
        if step == UploadStep.CANCELLED:
            return None  # 1.6 says nothing of a cancelled upload
        status = self._status(job, step)
        if job.get("action") == "DiagnosticsStatusNotification":
            return "DiagnosticsStatusNotification", {"status": status}
        payload: dict[str, Any] = {"status": status}
        if job["request_id"] is not None:
            payload["requestId"] = job["request_id"]
        return "LogStatusNotification", payload


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
        self.cp = cp
        self.firmware = FirmwareUpdates.of(cp, Firmware16())
        self.uploads = LogUploads.of(cp, Uploads16(cp))

    def handlers(self) -> dict[str, Any]:
        return {
            "UpdateFirmware": self._update_firmware,
            "SignedUpdateFirmware": self._signed_update_firmware,
            "GetDiagnostics": self._get_diagnostics,
            "GetLog": self._get_log,
        }

    async def while_connected(self) -> None:
        self.firmware.owed.wake()  # deliver what was owed while offline
        self.uploads.owed.wake()

    # --- firmware ---------------------------------------------------------------------------

    async def _update_firmware(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        outcome = self.firmware.request(
            request_id=None,
            location=req["location"],
            retrieve_time=req["retrieveDate"],
            retries=req.get("retries"),
            interval=req.get("retryInterval"),
        )
        # UpdateFirmware.conf has no status: a refusal can only be logged (it is).
        return {} if outcome.start is None else Reply({}, outcome.start)

    async def _signed_update_firmware(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        firmware = req["firmware"]
        outcome = self.firmware.request(
            request_id=req["requestId"],
            location=firmware["location"],
            retrieve_time=firmware["retrieveDateTime"],
            install_time=firmware.get("installDateTime"),
            retries=req.get("retries"),
            interval=req.get("retryInterval"),
            certificate=firmware["signingCertificate"],
            signature=firmware["signature"],
        )
        if outcome.start is not None:
            return Reply({"status": outcome.answer.value}, outcome.start)
        if outcome.answer is Answer.INVALID_CERTIFICATE:
            return {"status": "InvalidCertificate"}
        return {"status": "Rejected"}

    # --- GetDiagnostics and GetLog ----------------------------------------------------------

    async def _get_diagnostics(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        name = self.uploads.archive_name(security=False)
        try:
            job = self.uploads.new_job(
                request_id=None,
                location=req["location"],
                name=name,
                since=parse_time(req.get("startTime")),
                until=parse_time(req.get("stopTime")),
                security=False,
                retries=req.get("retries"),
                interval=req.get("retryInterval"),
            )
        except ValueError as e:
            log.warning("GetDiagnostics refused: %s", e)
            return {}  # no fileName: nothing will be uploaded
        job["action"] = "DiagnosticsStatusNotification"
        return Reply({"fileName": name}, self.uploads.replace(job))

    async def _get_log(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        outcome = self.uploads.get_log(req, action="LogStatusNotification")
        if outcome.start is None:
            return {"status": outcome.status}
        return Reply({"status": outcome.status, "filename": outcome.filename}, outcome.start)
