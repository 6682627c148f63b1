"""OCPP 2.0.1 provisioning messages of the device model: GetVariables, SetVariables,
GetBaseReport, GetReport (answered, then reported with NotifyReport) and
SetNetworkProfile, for a ChargePoint201.

Limits the CSMS must keep to (DeviceDataCtrlr) and what happens beyond them:

* GetVariables / SetVariables with more items than ItemsPerMessage: every item is
  answered Rejected (reasonCode TooManyElements) and nothing is set. B06.FR.16 and
  B05 allow a CALLERROR(OccurrenceConstraintViolation) instead, but the test case
  TC_B_08_CS expects a GetVariablesResponse ("all Rejected" is one of the two answers
  it accepts), and "nothing set" is the safe side for a SetVariables.
* GetReport with more componentVariable entries than ItemsPerMessage[GetReport]:
  CALLERROR(OccurrenceConstraintViolation) (B08.FR.17): it has no per-item answer.
* A request larger than its BytesPerMessage: CALLERROR(FormatViolation)
  (B05/B06/B08). The size is that of the payload's compact JSON.

A report is answered first (Accepted, or EmptyResultSet when nothing matches), and its
data — taken when the request came — is sent afterwards in NotifyReport messages of
`NOTIFY_REPORT_ITEMS` entries each (seqNo from 0, tbc on all but the last). A CSMS
that refuses one, or a connection lost on the way, ends that report (logged).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.clock import iso
from controller.ocpp.rpc import OcppError, Reply
from controller.ocpp.v201.device_model import DeviceModel, ReportData, VariableSpec
from controller.ocpp.v201.network import NetworkProfiles

log = logging.getLogger("evsed.ocpp.provisioning")

# Report entries per NotifyReport: each is at most ~3.7 KB (a 2500-character value and a
# 1000-character valuesList), so a message stays well below the frame sizes CSMSs take.
NOTIFY_REPORT_ITEMS = 20


class ChargePoint(Protocol):
    device_model: DeviceModel
    network_profiles: NetworkProfiles

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]: ...

    def _later(self, coro: Any) -> None: ...


def payload_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def too_many(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every item Rejected: the request held more than ItemsPerMessage of them."""
    info = {"reasonCode": "TooManyElements", "additionalInfo": "more than ItemsPerMessage"}
    results = []
    for item in items:
        result = {
            "component": item["component"],
            "variable": item["variable"],
            "attributeStatus": "Rejected",
            "attributeStatusInfo": info,
        }
        if "attributeType" in item:
            result["attributeType"] = item["attributeType"]
        results.append(result)
    return results


def notify_report_payloads(
    request_id: int, generated_at: str, report_data: list[ReportData], per_message: int
) -> list[dict[str, Any]]:
    """The NotifyReport requests that carry `report_data`, in order."""
    chunks = [
        report_data[i : i + per_message] for i in range(0, len(report_data), max(per_message, 1))
    ]
    return [
        {
            "requestId": request_id,
            "generatedAt": generated_at,
            "seqNo": seq_no,
            "tbc": seq_no < len(chunks) - 1,
            "reportData": chunk,
        }
        for seq_no, chunk in enumerate(chunks)
    ]


class DeviceModelFeature:
    """The device model's requests; uses cp.device_model, cp.network_profiles, cp._call
    and cp._later only."""

    def __init__(self, cp: ChargePoint) -> None:
        self.cp = cp

    @staticmethod
    def variables(number_of_evses: int) -> list[VariableSpec]:
        return []  # the device model's own variables are the station's (standard_variables)

    def handlers(self) -> dict[str, Any]:
        return {
            "GetVariables": self.get_variables,
            "SetVariables": self.set_variables,
            "GetBaseReport": self.get_base_report,
            "GetReport": self.get_report,
            "SetNetworkProfile": self.set_network_profile,
        }

    async def get_variables(self, payload: dict[str, Any]) -> dict[str, Any]:
        limits = self.cp.device_model.limits()
        _check_bytes(payload, limits.bytes_get_variables)
        items = payload["getVariableData"]
        if len(items) > limits.items_get_variables:
            return {"getVariableResult": too_many(items)}
        return {"getVariableResult": self.cp.device_model.get_variables(items)}

    async def set_variables(self, payload: dict[str, Any]) -> dict[str, Any]:
        limits = self.cp.device_model.limits()
        _check_bytes(payload, limits.bytes_set_variables)
        items = payload["setVariableData"]
        if len(items) > limits.items_set_variables:
            return {"setVariableResult": too_many(items)}
        return {"setVariableResult": self.cp.device_model.set_variables(items)}

    async def get_base_report(self, payload: dict[str, Any]) -> dict[str, Any] | Reply:
        data = self.cp.device_model.base_report(payload["reportBase"])
        if data is None:
            return {"status": "NotSupported"}
        return self._report(payload["requestId"], data)

    async def get_report(self, payload: dict[str, Any]) -> dict[str, Any] | Reply:
        limits = self.cp.device_model.limits()
        _check_bytes(payload, limits.bytes_get_report)
        selectors = payload.get("componentVariable")
        if selectors is not None and len(selectors) > limits.items_get_report:
            raise OcppError(
                "OccurrenceConstraintViolation",
                f"more than {limits.items_get_report} componentVariable entries",
            )
        data = self.cp.device_model.report(payload.get("componentCriteria"), selectors)
        return self._report(payload["requestId"], data)

    def _report(self, request_id: int, data: list[ReportData]) -> dict[str, Any] | Reply:
        if not data:
            return {"status": "EmptyResultSet"}
        messages = notify_report_payloads(
            request_id, self._generated_at(), data, NOTIFY_REPORT_ITEMS
        )
        return Reply({"status": "Accepted"}, lambda: self.cp._later(self.send_report(messages)))

    def _generated_at(self) -> str:
        try:
            return self.cp.device_model.value("ClockCtrlr", "DateTime")
        except KeyError:  # a model without the station's clock (tests of parts)
            return iso(datetime.now(UTC))

    async def send_report(self, messages: list[dict[str, Any]]) -> None:
        """Send a report's NotifyReports in order; a refusal or a lost link ends it."""
        for payload in messages:
            try:
                await self.cp._call("NotifyReport", payload)
            except (OcppError, TimeoutError, ConnectionError, OSError) as e:
                log.warning(
                    "report %s stopped at seqNo %s of %s: %s",
                    payload["requestId"],
                    payload["seqNo"],
                    len(messages),
                    e or type(e).__name__,
                )
                return

    async def set_network_profile(self, payload: dict[str, Any]) -> dict[str, Any]:
        status, info = self.cp.network_profiles.set_profile(
            payload["configurationSlot"], payload["connectionData"]
        )
        return {"status": status, **({"statusInfo": info} if info else {})}


def _check_bytes(payload: dict[str, Any], limit: int) -> None:
    size = payload_size(payload)
    if size > limit:
        raise OcppError("FormatViolation", f"the request has {size} bytes, more than {limit}")
