"""Uploading the diagnostics archive (controller.diagnostics) a CSMS asks for, for any
OCPP version: 1.6 GetDiagnostics, the security whitepaper's and 2.0.1's GetLog.

One upload at a time: a new request cancels the one under way (which is reported
`CANCELLED`). The archive is built from the station's state, its configuration with
the secrets masked, the store's recent history and the log for the window asked; it
is sent with the retries asked for. An upload interrupted by a restart is reported
failed by the next run (store records "log_upload").

One per station (`LogUploads.of`), shared by the layers of every OCPP version it
offers. Each layer's feature turns the request into a job (`new_job`, plus whatever it
needs to word it; a GetLog, which 1.6 and 2.0.1 share, goes to `get_log`) and gives an
`UploadVoice` that keeps the layer's current status and words each step as its message,
rendered when it is sent, by the layer that serves the connection then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from controller import diagnostics
from controller.core.firmware import download_attempts, retry_interval
from controller.transfer import TransferCancelled, TransferError, in_thread, parse_location, upload
from controller.transfer_jobs import (
    JobTasks,
    OwedNotifications,
    firmware_config,
    parse_time,
    state_dir,
    station_now,
    transfer_options,
)

log = logging.getLogger("evsed.firmware")

RECORDS = "log_upload"  # store records: "job" (an upload under way)
RECENT_TRANSACTIONS = 50


class UploadStep(StrEnum):
    """Where an upload stands; a failure is given by its TransferError kind instead
    ("failed", "permission", "unsupported")."""

    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    CANCELLED = "cancelled"  # a newer request replaced it
    IDLE = "idle"  # nothing under way any more (after the final step)


# A failed upload in LogStatusNotification's words (1.6 whitepaper and 2.0.1), by
# TransferError.kind; any other failure is UploadFailure.
LOG_FAILURE = {"permission": "PermissionDenied", "unsupported": "NotSupportedOperation"}


@dataclass(frozen=True)
class GetLogAnswer:
    """The answer to a GetLog, in the words both versions share: status Accepted,
    AcceptedCanceled (it cancels the upload under way) or Rejected (`detail` says why);
    `start` (when accepted) starts the upload once the answer is out."""

    status: str
    filename: str = ""
    detail: str = ""
    start: Callable[[], None] | None = None


class UploadVoice(Protocol):
    """How a version's layer words an upload's steps."""

    def current(self, job: dict[str, Any], step: str) -> None:
        """Keep the layer's current status (for TriggerMessage): `step` of `job`."""

    def notification(self, job: dict[str, Any], step: str) -> tuple[str, dict[str, Any]] | None:
        """The message for `step` of `job`; None: the layer has none for it."""


# One per store: every version's layer of a station shares it.
class LogUploads:
    """The uploads of one station (see the module docstring)."""

    @staticmethod
    def of(cp: Any, voice: UploadVoice) -> LogUploads:
        """The station's uploads (made by the first layer that asks), which `cp` will
        report in `voice`'s words."""
        found = cp.store.shared("log_uploads", lambda: LogUploads(cp))
        found.speak(cp, voice)
        return found

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.store = cp.store
        self.config = firmware_config(cp)
        self.options = transfer_options(self.config)
        self.upload_dir = state_dir(cp) / "diagnostics"
        self._job: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancel = threading.Event()
        self._tasks = JobTasks("upload")
        self._voices: dict[Any, UploadVoice] = {}
        self.owed = OwedNotifications(cp.station, self.store, RECORDS, self._tasks, self._render)
        self._restore()

    # --- the layers -------------------------------------------------------------------------

    def speak(self, layer: Any, voice: UploadVoice) -> None:
        """`layer` reports the uploads in `voice`'s words."""
        self._voices[layer] = voice

    def report(self, job: dict[str, Any], step: str) -> None:
        """`step` (an UploadStep or a TransferError kind) of `job`: every layer's current
        status, and the notification owed (none for IDLE)."""
        for voice in self._voices.values():
            voice.current(job, step)
        if step != UploadStep.IDLE:
            self.owed.owe({"job": job, "step": str(step)})

    def _render(self, item: dict[str, Any], layer: Any) -> tuple[str, dict[str, Any]] | None:
        voice = self._voices.get(layer)
        return None if voice is None else voice.notification(item["job"], item["step"])

    # --- requests ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def new_job(
        self,
        *,
        request_id: int | None,
        location: str,
        name: str,
        since: float | None,
        until: float | None,
        security: bool,
        retries: int | None,
        interval: int | None,
    ) -> dict[str, Any]:
        """A job for a request (ValueError: a location that cannot be used)."""
        parse_location(location)
        return {
            "request_id": request_id,
            "location": location,
            "name": name,
            "since": since,
            "until": until,
            "security": security,
            "attempts": download_attempts(retries),
            "retry_interval": retry_interval(interval),
        }

    def get_log(self, req: dict[str, Any], **job_fields: Any) -> GetLogAnswer:
        """A GetLog request: when usable, its job (with `job_fields`, what the layer needs
        to word it) persisted before the answer, cancelling the upload under way."""
        try:
            job = self.get_log_job(req)
        except ValueError as e:
            log.warning("GetLog refused: %s", e)
            return GetLogAnswer("Rejected", detail=str(e))
        job |= job_fields
        status = "AcceptedCanceled" if self.busy else "Accepted"
        return GetLogAnswer(status, job["name"], start=self.replace(job))

    def get_log_job(self, req: dict[str, Any]) -> dict[str, Any]:
        """A job for a GetLog request (the same message in the security whitepaper and
        2.0.1); ValueError: a location or time that cannot be used."""
        params = req["log"]
        security = req["logType"] == "SecurityLog"
        return self.new_job(
            request_id=req["requestId"],
            location=params["remoteLocation"],
            name=self.archive_name(security),
            since=parse_time(params.get("oldestTimestamp")),
            until=parse_time(params.get("latestTimestamp")),
            security=security,
            retries=req.get("retries"),
            interval=req.get("retryInterval"),
        )

    def archive_name(self, security: bool) -> str:
        return diagnostics.archive_name(
            self.cp.settings.station_id, self.now_dt(), "security" if security else ""
        )

    def replace(self, job: dict[str, Any]) -> Callable[[], None]:
        """Cancel the upload under way and persist `job` (before the answer); what starts
        it (after the answer, so that its notifications follow it)."""
        replaced = self._job if self.busy else None
        if self._task is not None and not self._task.done():
            log.info("a new upload request cancels the one under way")
            self._cancel.set()
            self._task.cancel()
        self.store.put_record(RECORDS, "job", job)
        self._job = job

        def start() -> None:
            if replaced is not None:
                self.report(replaced, UploadStep.CANCELLED)
            self._cancel = threading.Event()
            self._task = self._tasks.spawn(self._upload(job, self._cancel))

        return start

    # --- restart ----------------------------------------------------------------------------

    def _restore(self) -> None:
        try:
            job = self.store.records(RECORDS).get("job")
            if isinstance(job, dict):
                log.warning("an upload was interrupted by a restart; reporting it failed")
                self._done(job, "failed")
        except (KeyError, TypeError, ValueError) as e:  # a record this version cannot read
            log.error("dropping an unreadable upload record: %r", e)
            self.store.replace_records(RECORDS, {})

    # --- the upload -------------------------------------------------------------------------

    async def _upload(self, job: dict[str, Any], cancel: threading.Event) -> None:
        self.report(job, UploadStep.UPLOADING)
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
                    self._done(job, UploadStep.UPLOADED)
                    return
                except TransferCancelled:
                    return
                except TransferError as e:
                    log.warning("upload %d of %d failed: %s", tried, job["attempts"], e)
                    if tried >= job["attempts"]:
                        self._done(job, e.kind)
                        return
                    await asyncio.sleep(job["retry_interval"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("building or uploading the diagnostics failed")
            self._done(job, "failed")
        finally:
            with contextlib.suppress(OSError):
                archive.unlink()
                archive.parent.rmdir()

    def _done(self, job: dict[str, Any], step: str) -> None:
        """`step`: UPLOADED, or a TransferError kind."""
        self.report(job, step)
        self.store.delete_record(RECORDS, "job")
        if self._job is job:
            self._job = None
        self.report(job, UploadStep.IDLE)

    async def _build_archive(self, job: dict[str, Any], archive: Path) -> None:
        """Gather on the loop (the station's state is not thread-safe), write in a thread."""
        cp = self.cp
        now = self.now_dt()
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

    # --- helpers ----------------------------------------------------------------------------

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(station_now(self.cp), UTC)
