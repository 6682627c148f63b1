"""OCPP 2.0.1 diagnostics (N01 Retrieve Log Information): GetLog and
LogStatusNotification.

This module only translates: the upload (the archive of the log for the window
asked, the state, the configuration with its secrets masked and the store's recent
history, sent over HTTP, HTTPS or FTP with the retries asked for) is
controller.log_upload, shared with 1.6. Here:

* GetLog answers Accepted with the archive's filename, or AcceptedCanceled when it
  cancels an upload under way, whose request then gets a LogStatusNotification
  AcceptedCanceled; a location or time that cannot be used is Rejected.
* Every LogStatusNotification carries the request's requestId: Uploading, then
  Uploaded, or the failure (PermissionDenied, NotSupportedOperation, UploadFailure).
  An upload cut short by a restart is reported UploadFailure by the next run.
"""

from __future__ import annotations

import logging
from typing import Any

from controller.log_upload import LOG_FAILURE, LogUploads, UploadStep
from controller.ocpp.rpc import Reply

log = logging.getLogger("evsed.firmware")

STEPS: dict[str, str] = {
    UploadStep.UPLOADING: "Uploading",
    UploadStep.UPLOADED: "Uploaded",
    UploadStep.CANCELLED: "AcceptedCanceled",
    UploadStep.IDLE: "Idle",
}


class Uploads201:
    """Upload steps in 2.0.1's words: LogStatusNotification with requestId."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp

    def current(self, job: dict[str, Any], step: str) -> None:
        if step == UploadStep.CANCELLED:
            return  # the new request's status follows at once
        if step == UploadStep.IDLE:
            self.cp.log_status, self.cp.log_request_id = "Idle", None
        else:
            self.cp.log_status = self._status(step)
            self.cp.log_request_id = job.get("request_id")

    def notification(self, job: dict[str, Any], step: str) -> tuple[str, dict[str, Any]] | None:
        payload: dict[str, Any] = {"status": self._status(step)}
        if job.get("request_id") is not None:  # a GetDiagnostics a 1.6 run left has none
            payload["requestId"] = job["request_id"]
        return "LogStatusNotification", payload

    @staticmethod
    def _status(step: str) -> str:
        return STEPS.get(step) or LOG_FAILURE.get(step, "UploadFailure")


class LogsFeature:
    """GetLog for a ChargePoint201 (see the module docstring)."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.uploads = LogUploads.of(cp, Uploads201(cp))

    def handlers(self) -> dict[str, Any]:
        return {"GetLog": self._get_log}

    async def while_connected(self) -> None:
        self.uploads.owed.wake()  # deliver what was owed while offline

    async def _get_log(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        outcome = self.uploads.get_log(req)
        if outcome.start is None:
            info = {"reasonCode": "InvalidValue", "additionalInfo": outcome.detail[:512]}
            return {"status": outcome.status, "statusInfo": info}
        return Reply({"status": outcome.status, "filename": outcome.filename}, outcome.start)
