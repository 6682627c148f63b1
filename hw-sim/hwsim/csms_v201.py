"""OCPP 2.0.1 for the test CSMS (hwsim.csms): its rules, answers and transaction view.

``hwsim.csms`` owns the websocket, the framing and the knobs for every version;
this module holds what is particular to 2.0.1, as a back end that speaks it
would apply it:

- validation against the 2.0.1 JSON schemas, with 2.0.1's error spelling
  (FormatViolation, OccurrenceConstraintViolation, RpcFrameworkError ...) and
  the interop rule real back ends enforce on every ``dateTime``: RFC 3339 in
  UTC ("Z") with at most three decimals;
- which actions only a CSMS sends (a station sending one gets NotSupported);
- the default answer to every message a charging station sends, from the same
  settings the 1.6 answers use (``boot_status``, ``interval``, ``id_tags`` ...);
- ``TransactionEvents``: what the CSMS knows about one transaction, built from
  the TransactionEvent calls it took, with re-sends after a lost answer
  (same transactionId, seqNo and content) recognised and counted once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import best_match
from ocpp.messages import get_validator

if TYPE_CHECKING:
    from hwsim.csms import Record

__all__ = [
    "CSMS_ACTIONS",
    "STATION_ACTIONS",
    "AnswerSettings",
    "TransactionEvents",
    "build_transaction_events",
    "default_answers",
    "framing_error_code",
    "id_token_info",
    "schema_error",
]

VERSION = "2.0.1"
Payload = dict[str, Any]

# Requests only a CSMS sends (Part 2, the "From" column of each message).
CSMS_ACTIONS = frozenset(
    {
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ClearCache",
        "ClearChargingProfile",
        "ClearDisplayMessage",
        "ClearVariableMonitoring",
        "CostUpdated",
        "CustomerInformation",
        "DeleteCertificate",
        "GetBaseReport",
        "GetChargingProfiles",
        "GetCompositeSchedule",
        "GetDisplayMessages",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "GetMonitoringReport",
        "GetReport",
        "GetTransactionStatus",
        "GetVariables",
        "InstallCertificate",
        "PublishFirmware",
        "RequestStartTransaction",
        "RequestStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "SetDisplayMessage",
        "SetMonitoringBase",
        "SetMonitoringLevel",
        "SetNetworkProfile",
        "SetVariableMonitoring",
        "SetVariables",
        "TriggerMessage",
        "UnlockConnector",
        "UnpublishFirmware",
        "UpdateFirmware",
    }
)

# Requests a charging station (or a local controller) sends; DataTransfer goes both ways.
STATION_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    }
)

# ------------------------------------------------------------------ validation

# RFC 3339 in UTC with at most milliseconds: what real back ends parse without surprises.
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z")
_format_checker = FormatChecker(formats=())


@_format_checker.checks("date-time", raises=ValueError)
def _is_utc_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the "type" keyword reports it
    if _DATE_TIME.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not an RFC 3339 UTC time ('Z', at most milliseconds)")
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # a real date and time of day
    return True


@cache
def _validator(is_call: bool, action: str) -> Draft4Validator | None:
    try:
        schema_validator = get_validator(2 if is_call else 3, action, VERSION)
    except (OSError, ValueError):
        return None
    return schema_validator.evolve(format_checker=_format_checker)


_SCHEMA_CODES = {
    "type": "TypeConstraintViolation",
    "maxLength": "TypeConstraintViolation",
    "required": "OccurrenceConstraintViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "minLength": "PropertyConstraintViolation",
}


def schema_error(is_call: bool, action: str, payload: Any) -> tuple[str, str] | None:
    """Validate a request (``is_call``) or response payload: (2.0.1 error code, message) or None.

    Actions without a schema count as valid; the caller decides whether an
    unknown action is acceptable.
    """
    validator = _validator(is_call, action)
    if validator is None:
        return None
    error = best_match(validator.iter_errors(payload))
    if error is None:
        return None
    code = _SCHEMA_CODES.get(str(error.validator), "FormatViolation")
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    return code, f"{where}: {error.message}"


def framing_error_code(problem: str) -> str:
    """The 2.0.1 CALLERROR code for a frame that breaks OCPP-J framing (Part 4, 4.2.3).

    ``problem`` is hwsim.csms's description of what is wrong with the frame.
    """
    if problem.startswith("unknown MessageTypeId"):
        return "MessageTypeNotSupported"
    if problem.startswith("payload is not a JSON object"):
        return "FormatViolation"
    return "RpcFrameworkError"


# ------------------------------------------------------------- default answers


class AnswerSettings(Protocol):
    """The CSMS settings the default answers read (hwsim.csms.Csms has them all)."""

    boot_status: str
    interval: int
    id_tags: dict[str, str]
    unknown_id_tag_status: str
    parent_id_tags: dict[str, str]

    def now_iso(self) -> str: ...


def id_token_info(settings: AnswerSettings, id_token: Any) -> Payload:
    """The idTokenInfo for an IdTokenType, from ``id_tags`` / ``parent_id_tags``.

    Looked up by the idToken string exactly (like the 1.6 idTag): a token not in
    the table gets ``unknown_id_tag_status`` ("Invalid" by default). A
    NoAuthorization token (free charging) is Accepted unless the table says
    otherwise. The parent becomes a groupIdToken of type Central.
    """
    token = id_token.get("idToken") if isinstance(id_token, dict) else None
    kind = id_token.get("type") if isinstance(id_token, dict) else None
    tag = token if isinstance(token, str) else ""
    unknown = "Accepted" if kind == "NoAuthorization" else settings.unknown_id_tag_status
    info: Payload = {"status": settings.id_tags.get(tag, unknown)}
    if tag in settings.parent_id_tags:
        info["groupIdToken"] = {"idToken": settings.parent_id_tags[tag], "type": "Central"}
    return info


def _transaction_event(settings: AnswerSettings, payload: Payload) -> Payload:
    if "idToken" not in payload:
        return {}
    return {"idTokenInfo": id_token_info(settings, payload["idToken"])}


def default_answers(settings: AnswerSettings) -> dict[str, Callable[[Payload], Payload]]:
    """The default answer to every 2.0.1 request a charging station sends."""

    def empty(_payload: Payload) -> Payload:
        return {}

    answers: dict[str, Callable[[Payload], Payload]] = {
        "BootNotification": lambda _p: {
            "currentTime": settings.now_iso(),
            "interval": settings.interval,
            "status": settings.boot_status,
        },
        "Heartbeat": lambda _p: {"currentTime": settings.now_iso()},
        "Authorize": lambda p: {"idTokenInfo": id_token_info(settings, p.get("idToken"))},
        "TransactionEvent": lambda p: _transaction_event(settings, p),
        "SignCertificate": lambda _p: {"status": "Accepted"},
        "DataTransfer": lambda _p: {"status": "UnknownVendorId"},
        # No schedule to offer the EV; the schedule it proposes is taken as it is.
        "NotifyEVChargingNeeds": lambda _p: {"status": "Rejected"},
        "NotifyEVChargingSchedule": lambda _p: {"status": "Accepted"},
        # No ISO 15118 certificate services here.
        "Get15118EVCertificate": lambda _p: {"status": "Failed", "exiResponse": ""},
        "GetCertificateStatus": lambda _p: {"status": "Failed"},
    }
    for action in STATION_ACTIONS - answers.keys():
        answers[action] = empty  # notifications: an empty answer acknowledges them
    return answers


# ------------------------------------------------------------ transaction view


def _identity(payload: Payload) -> str:
    return json.dumps(payload, sort_keys=True)


@dataclass
class TransactionEvents:
    """What the CSMS knows about one 2.0.1 transaction (see ``Csms.transaction_events``).

    ``records`` are the TransactionEvent calls it took, in order of arrival:
    calls it refused with a CALLERROR are not among them, calls it received but
    left unanswered are (it may have processed them). A call with the same
    transactionId, seqNo and content as one taken before is a re-send after a
    lost answer: it goes to ``retransmitted``, not into the events. The same
    seqNo with different content is a second event (``duplicate_seq_nos``).
    """

    transaction_id: str
    station_id: str
    records: list[Record] = field(default_factory=list)
    retransmitted: list[Record] = field(default_factory=list)

    def distinct_events(self) -> list[Payload]:
        """Every event taken, re-sends counted once, in order of arrival."""
        return [dict(r.payload) for r in self.records]

    def _of_type(self, event_type: str) -> list[Payload]:
        return [e for e in self.distinct_events() if e.get("eventType") == event_type]

    @property
    def started(self) -> Payload | None:
        """The Started event (None: not received)."""
        return next(iter(self._of_type("Started")), None)

    @property
    def updates(self) -> list[Payload]:
        return self._of_type("Updated")

    @property
    def ended(self) -> Payload | None:
        """The Ended event (None: not received, the transaction is still open)."""
        return next(iter(self._of_type("Ended")), None)

    @property
    def seq_nos(self) -> list[Any]:
        """The seqNo of every event, in order of arrival."""
        return [e.get("seqNo") for e in self.distinct_events()]

    def missing_seq_nos(self) -> list[int]:
        """seqNos between 0 and the highest one received that never arrived."""
        received = {n for n in self.seq_nos if isinstance(n, int)}
        return [n for n in range(max(received, default=-1) + 1) if n not in received]

    def duplicate_seq_nos(self) -> list[Any]:
        """seqNos carried by more than one distinct event (exact re-sends excluded)."""
        seen: set[Any] = set()
        duplicates: list[Any] = []
        for n in self.seq_nos:
            if n in seen and n not in duplicates:
                duplicates.append(n)
            seen.add(n)
        return duplicates

    def gap_free(self) -> bool:
        """Whether the seqNos are exactly 0, 1, ..., n-1: none missing, none used twice."""
        seq_nos = self.seq_nos
        if not all(type(n) is int for n in seq_nos):
            return False
        return sorted(seq_nos) == list(range(len(seq_nos)))

    def meter_values(self) -> list[Payload]:
        """Every MeterValueType carried by the events, in order of arrival."""
        return [mv for e in self.distinct_events() for mv in e.get("meterValue", [])]

    def sampled_values(self, measurand: str = "Energy.Active.Import.Register") -> list[Any]:
        """The values of one measurand in every meter value (an omitted measurand
        is Energy.Active.Import.Register, as the specification defines)."""
        return [
            sample.get("value")
            for mv in self.meter_values()
            for sample in mv.get("sampledValue", [])
            if sample.get("measurand", "Energy.Active.Import.Register") == measurand
        ]

    @property
    def trigger_reasons(self) -> list[Any]:
        return [e.get("triggerReason") for e in self.distinct_events()]

    @property
    def stopped_reason(self) -> Any:
        """transactionInfo.stoppedReason of the Ended event (None: none; Local is meant)."""
        ended = self.ended
        return None if ended is None else ended.get("transactionInfo", {}).get("stoppedReason")

    @property
    def offline_flags(self) -> list[bool]:
        """Per event, whether it happened while the station was offline."""
        return [bool(e.get("offline", False)) for e in self.distinct_events()]


def _transaction_id(payload: Any) -> str | None:
    info = payload.get("transactionInfo") if isinstance(payload, dict) else None
    tx_id = info.get("transactionId") if isinstance(info, dict) else None
    return tx_id if isinstance(tx_id, str) else None


def build_transaction_events(calls: Iterable[Record]) -> dict[tuple[str, str], TransactionEvents]:
    """Views by (station id, transactionId) from the TransactionEvent calls taken, in order."""
    views: dict[tuple[str, str], TransactionEvents] = {}
    taken: set[tuple[str, str, str]] = set()
    for record in calls:
        tx_id = _transaction_id(record.payload)
        if tx_id is None:
            continue
        key = (record.station_id, tx_id)
        view = views.setdefault(key, TransactionEvents(tx_id, record.station_id))
        identity = (record.station_id, tx_id, _identity(record.payload))
        if identity in taken:
            view.retransmitted.append(record)
        else:
            taken.add(identity)
            view.records.append(record)
    return views
