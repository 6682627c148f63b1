"""OCPP 2.0.1 firmware management (block L: L01 secure and L02 non-secure firmware
update): UpdateFirmware and FirmwareStatusNotification.

This module only translates: the job (download with retries, signature check,
waiting for the install time and for running transactions, with no new session
meanwhile, the install through the A/B updater or the configured command, the report
after a restart) is controller.firmware_update, shared with 1.6. Here:

* A request with a signingCertificate and a signature is a secure update (L01): the
  certificate must chain to a manufacturer root (InstallCertificate's
  ManufacturerRootCertificate or [firmware] manufacturer_roots), else the answer is
  InvalidCertificate and a SecurityEventNotification InvalidFirmwareSigningCertificate
  follows; the downloaded file must match the signature (SignatureVerified), else
  InvalidSignature and a SecurityEventNotification InvalidFirmwareSignature. A request
  with neither is a non-secure update (L02); one with only one of them is Rejected.
* A new request while an update is downloading or waiting cancels it
  (AcceptedCanceled); once installing, it is Rejected.
* Every status carries the request's requestId. The A/B updater restarts the daemon:
  InstallRebooting is sent before, and the next run's BootNotification has reason
  FirmwareUpdate, then Installed (or InstallationFailed after a rollback) follows.
* RevokedCertificate is never answered: no revocation lists are consulted.
"""

from __future__ import annotations

import logging
from typing import Any

from controller.core.firmware import FirmwareStatus
from controller.firmware_update import Answer, FirmwareUpdates
from controller.ocpp.rpc import Reply

log = logging.getLogger("evsed.firmware")

# The reasonCode of a Rejected answer, by what refused the request.
REASONS = {Answer.INVALID_VALUE: "InvalidValue", Answer.INSTALL_IN_PROGRESS: "InstallInProgress"}


def rejected(reason: str, info: str) -> dict[str, Any]:
    return {
        "status": "Rejected",
        "statusInfo": {"reasonCode": reason, "additionalInfo": info[:512]},
    }


class Firmware201:
    """Firmware statuses in 2.0.1's words: FirmwareStatusNotification with requestId."""

    def notification(
        self, job: dict[str, Any], status: FirmwareStatus
    ) -> tuple[str, dict[str, Any]] | None:
        payload: dict[str, Any] = {"status": status.value}
        if job.get("request_id") is not None:  # a job a 1.6 run left has none
            payload["requestId"] = job["request_id"]
        return "FirmwareStatusNotification", payload


class FirmwareFeature:
    """UpdateFirmware for a ChargePoint201 (see the module docstring)."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.updates = FirmwareUpdates.of(cp, Firmware201())
        if self.updates.restarted_for_install:
            cp.restarted_for_firmware()

    def handlers(self) -> dict[str, Any]:
        return {"UpdateFirmware": self._update_firmware}

    async def while_connected(self) -> None:
        self.updates.owed.wake()  # deliver what was owed while offline

    async def _update_firmware(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        firmware = req["firmware"]
        certificate, signature = firmware.get("signingCertificate"), firmware.get("signature")
        if (certificate is None) != (signature is None):
            log.warning("UpdateFirmware refused: a signature needs its signing certificate")
            return rejected("MissingParam", "signingCertificate and signature go together")
        outcome = self.updates.request(
            request_id=req["requestId"],
            location=firmware["location"],
            retrieve_time=firmware["retrieveDateTime"],
            install_time=firmware.get("installDateTime"),
            retries=req.get("retries"),
            interval=req.get("retryInterval"),
            certificate=certificate,
            signature=signature,
        )
        if outcome.start is not None:
            return Reply({"status": outcome.answer.value}, outcome.start)
        if outcome.answer is Answer.INVALID_CERTIFICATE:
            return {"status": "InvalidCertificate", "statusInfo": {"reasonCode": "InvalidCert"}}
        return rejected(REASONS[outcome.answer], outcome.detail)
