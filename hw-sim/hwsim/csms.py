"""A small scriptable OCPP 1.6J and 2.0.1 central system (CSMS) for the demo and the tests.

Real back ends are neither scriptable nor observable, so the integration tests
talk to this one instead: it answers charge-point calls with configurable
defaults, can be told to fail or stay silent for an action, records every frame
in order (with a cursor so waits are race-free) and can send calls, or raw
garbage, to the charge point. Like a real back end it recognises a
StartTransaction sent again after a lost answer, and ``transactions()`` gives its
view of every transaction (start, meter values, stops) for consistency checks.

The framing is our own on top of ``ocpp.messages`` and keeps payloads as
camelCase dicts: that keeps raw-frame tests easy and means no input from the
charge point can take the server down; bad frames are recorded and, where they
carry a unique id, answered with a CALLERROR.

``Csms`` is the asyncio server; ``CsmsThread`` runs one on its own event loop so
plain synchronous tests and the demo can use it. ``python -m hwsim.csms`` runs it
standalone and logs every message.

Versions: ``subprotocols`` says which OCPP-J subprotocols the CSMS accepts, in
its order of preference (default: only "ocpp1.6"); of those a station offers,
the CSMS picks its most preferred. Each session, and each Record, carries the
negotiated version ("1.6" or "2.0.1"; ``version_of``). A 2.0.1 session's frames
are validated against the 2.0.1 schemas and answered with 2.0.1's error codes
and default answers (``hwsim.csms_v201``); the knobs (``respond_with``,
``fail_next``, ``ignore`` ...) are per action name and apply to both versions.
``transactions()`` is the 1.6 view (StartTransaction / StopTransaction, by the
CSMS's integer transactionId); ``transaction_events()`` is the 2.0.1 view (the
TransactionEvent calls, by the station's string transactionId, re-sends after a
lost answer recognised by identical transactionId, seqNo and content). Two
methods rather than one whose result depends on the session: the views differ
in key and shape, and each keeps a precise type.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import contextvars
import decimal
import hmac
import inspect
import json
import logging
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from jsonschema.exceptions import best_match
from ocpp.messages import Call, CallError, CallResult, get_validator
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from hwsim import csms_v201
from hwsim.csms_v201 import TransactionEvents

__all__ = [
    "CallErrorReceived",
    "ConnectionEvent",
    "Csms",
    "CsmsThread",
    "DisconnectedError",
    "InvalidCall",
    "MalformedResponse",
    "NotConnectedError",
    "Record",
    "TransactionEvents",
    "TransactionView",
]

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"
# The OCPP-J subprotocols this CSMS can speak, and the OCPP version each one means.
VERSIONS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}

Direction = Literal["in", "out"]
MessageType = Literal["CALL", "CALLRESULT", "CALLERROR", "INVALID"]
Payload = dict[str, Any]
Responder = Callable[[Payload], Payload | Awaitable[Payload]]
T = TypeVar("T")

_TYPE_NAMES: dict[int, MessageType] = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}
_TRANSACTION_ACTIONS = frozenset({"StartTransaction", "MeterValues", "StopTransaction"})

# 1.6 calls only a CSMS sends: a charge point sending one gets NotSupported, not NotImplemented.
_CSMS_ACTIONS = frozenset(
    {
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "InstallCertificate",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "SignedUpdateFirmware",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)
_CSMS_ACTIONS_BY_VERSION = {"1.6": _CSMS_ACTIONS, "2.0.1": csms_v201.CSMS_ACTIONS}

# The version of the session whose call is being answered (for default_response in responders).
_answering_version: contextvars.ContextVar[str] = contextvars.ContextVar("answering_version")

# The ocpp library parses these schemas' floats as Decimal so multipleOf 0.1 works.
_DECIMAL_SCHEMAS = frozenset({("CALL", "SetChargingProfile"), ("CALL", "RemoteStartTransaction")})
_DECIMAL_SCHEMAS |= {("CALLRESULT", "GetCompositeSchedule")}

# Settings that may be changed at run time (also through CsmsThread.configure).
SETTINGS = (
    "boot_status",
    "interval",
    "id_tags",
    "unknown_id_tag_status",
    "parent_id_tags",
    "refuse_connections",
    "password",
    "strict",
    "clock",
    "next_transaction_id",
    "dedupe_starts",
    "subprotocols",
)


class CallErrorReceived(Exception):
    """The charge point answered a CSMS call with a CALLERROR."""

    def __init__(self, code: str, description: str, details: Any) -> None:
        super().__init__(f"{code}: {description} {details!r}")
        self.code = code
        self.description = description
        self.details = details


class InvalidCall(ValueError):
    """A CSMS call whose payload breaks the schema of the session's version; not sent."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class MalformedResponse(Exception):
    """The charge point answered a CSMS call with a frame that breaks OCPP-J framing."""


class NotConnectedError(ConnectionError):
    """No (matching) charge point is connected."""


class DisconnectedError(ConnectionError):
    """The charge point went away while a CSMS call was waiting for its answer."""


@dataclass(frozen=True)
class Record:
    """One websocket frame, in either direction, as the timeline sees it.

    ``direction`` is "in" for charge point -> CSMS. For CALLRESULT/CALLERROR
    ``action`` is the action of the call answered, when known. CALLERROR
    payloads are ``{"errorCode", "errorDescription", "errorDetails"}``.
    ``error`` describes a framing or schema problem (None = fine). ``version``
    is the OCPP version of the session it belongs to ("1.6" or "2.0.1").
    """

    seq: int
    time: float
    station_id: str
    direction: Direction
    message_type: MessageType
    action: str | None
    unique_id: str | None
    payload: Any
    raw: str
    error: str | None = None
    version: str = "1.6"


@dataclass(frozen=True)
class TransactionView:
    """What the CSMS knows about one transaction (see ``Csms.transactions``).

    Calls the CSMS refused with a CALLERROR are not part of it (it did not take
    them); MeterValues and StopTransaction calls it received but left unanswered
    are (it may have processed them). A StartTransaction counts once answered (the
    answer gives the id). Everything is in order of arrival.
    """

    transaction_id: int
    start: Payload  # the first StartTransaction answered with this transactionId
    start_record: Record
    retransmitted_starts: list[Record]  # identical re-sends, answered with the same id
    meter_values: list[Payload]  # MeterValues carrying this transactionId (re-sends included)
    stops: list[Payload]  # every StopTransaction for this id (re-sends included)

    @property
    def distinct_stops(self) -> list[Payload]:
        """The stops with identical re-sends counted once."""
        return _distinct(self.stops)

    @property
    def stop(self) -> Payload | None:
        return self.stops[0] if self.stops else None

    @property
    def distinct_meter_values(self) -> list[Payload]:
        return _distinct(self.meter_values)


def _distinct(payloads: list[Payload]) -> list[Payload]:
    seen: set[str] = set()
    kept = []
    for p in payloads:
        key = json.dumps(p, sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(p)
    return kept


def _start_key(payload: Payload) -> tuple[Any, ...] | None:
    """What identifies a StartTransaction re-sent after a lost answer."""
    try:
        key = tuple(payload[k] for k in ("connectorId", "idTag", "meterStart", "timestamp"))
        hash(key)
    except (KeyError, TypeError):
        return None
    return key


@dataclass(frozen=True)
class ConnectionEvent:
    """A charge point connected, disconnected or was rejected at the handshake."""

    seq: int
    time: float
    kind: Literal["connected", "disconnected", "rejected"]
    station_id: str
    subprotocol: str | None
    detail: str = ""
    # On "connected": the client certificate the charge point presented over TLS (DER),
    # and whether it sent an Authorization header (HTTP Basic auth).
    client_certificate: bytes | None = None
    basic_auth: bool = False


@dataclass
class _Frame:
    message_type: MessageType
    unique_id: str | None
    action: str | None
    payload: Any
    error: str | None


@dataclass
class _Pending:
    action: str
    future: asyncio.Future[Payload] | None  # None: a send_raw call, only used to label the reply


@dataclass(eq=False)
class _Session:
    station_id: str
    ws: ServerConnection
    version: str = "1.6"
    pending: dict[str, _Pending] = field(default_factory=dict)
    incoming: dict[str, Record] = field(default_factory=dict)  # calls not yet answered
    call_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _parse_frame(raw: str | bytes) -> _Frame:
    """Classify a frame without trusting anything about it."""
    if isinstance(raw, bytes):
        return _Frame("INVALID", None, None, None, "binary frame (OCPP-J uses text frames)")
    try:
        msg = json.loads(raw)
    except ValueError:
        return _Frame("INVALID", None, None, None, "not valid JSON")
    if not isinstance(msg, list) or not msg:
        return _Frame("INVALID", None, None, msg, "not a non-empty JSON array")
    uid = msg[1] if len(msg) >= 2 and isinstance(msg[1], str) else None
    type_id = msg[0]
    if type(type_id) is not int or type_id not in _TYPE_NAMES:
        return _Frame("INVALID", uid, None, msg, f"unknown MessageTypeId {type_id!r}")
    mtype = _TYPE_NAMES[type_id]
    if uid is None:
        return _Frame(mtype, None, None, msg, "missing or non-string UniqueId")
    if mtype == "CALL":
        action = msg[2] if len(msg) >= 3 and isinstance(msg[2], str) else None
        payload = msg[3] if len(msg) >= 4 else None
        if len(msg) != 4:
            return _Frame(mtype, uid, action, payload, f"CALL has {len(msg)} elements, not 4")
        if action is None:
            return _Frame(mtype, uid, None, payload, "Action is not a string")
        if not isinstance(payload, dict):
            return _Frame(mtype, uid, action, payload, "payload is not a JSON object")
        return _Frame(mtype, uid, action, payload, None)
    if mtype == "CALLRESULT":
        payload = msg[2] if len(msg) >= 3 else None
        if len(msg) != 3:
            return _Frame(mtype, uid, None, payload, f"CALLRESULT has {len(msg)} elements, not 3")
        if not isinstance(payload, dict):
            return _Frame(mtype, uid, None, payload, "payload is not a JSON object")
        return _Frame(mtype, uid, None, payload, None)
    rest = [*msg[2:], None, None, None][:3]
    err = {"errorCode": rest[0], "errorDescription": rest[1], "errorDetails": rest[2]}
    if len(msg) != 5:
        return _Frame(mtype, uid, None, err, f"CALLERROR has {len(msg)} elements, not 5")
    if not (isinstance(rest[0], str) and isinstance(rest[1], str) and isinstance(rest[2], dict)):
        return _Frame(mtype, uid, None, err, "CALLERROR fields have wrong types")
    return _Frame(mtype, uid, None, err, None)


def _schema_error(
    mtype: MessageType, action: str, payload: Any, version: str = "1.6"
) -> tuple[str, str] | None:
    """Validate against the version's JSON schema: (that version's error code, message) or None.

    Actions without a schema (custom ones) count as valid; the caller decides
    whether an unknown action is acceptable.
    """
    if version == "2.0.1":
        return csms_v201.schema_error(mtype == "CALL", action, payload)
    type_id = 2 if mtype == "CALL" else 3
    use_decimal = (mtype, action) in _DECIMAL_SCHEMAS
    try:
        validator = get_validator(
            type_id, action, "1.6", parse_float=decimal.Decimal if use_decimal else float
        )
    except (OSError, ValueError):
        return None
    if use_decimal:
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    error = best_match(validator.iter_errors(payload))
    if error is None:
        return None
    code = {
        "type": "TypeConstraintViolation",
        "maxLength": "TypeConstraintViolation",
        "required": "ProtocolError",
        "enum": "PropertyConstraintViolation",
    }.get(str(error.validator), "FormationViolation")
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    return code, f"{where}: {error.message}"


def _station_from_path(path: str) -> str:
    """The charge point identity is the last path segment (``/ocpp/CP1`` -> ``CP1``)."""
    return unquote(urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1])


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Csms:
    """The asyncio OCPP 1.6J / 2.0.1 central system; see the module docstring.

    Settings (plain attributes, change them at any time): ``boot_status``,
    ``interval``, ``id_tags``, ``unknown_id_tag_status``, ``parent_id_tags``,
    ``refuse_connections``, ``password``, ``strict`` (reject schema-invalid calls
    with a CALLERROR, as a real CSMS would), ``clock``, ``next_transaction_id`` and
    ``dedupe_starts``: OCPP-J delivery is at least once, so a station that lost the
    answer to a StartTransaction (a crash, a cut link) sends it again; like a real
    CSMS, this one recognises the re-send by its identical connectorId, idTag,
    meterStart and timestamp and answers with the same transactionId (see
    ``retransmissions`` and ``transactions``). ``subprotocols``: the OCPP-J
    subprotocols accepted, most preferred first (new connections use a change).
    The 2.0.1 answers read the same settings (``hwsim.csms_v201``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        password: str | None = None,
        boot_status: str = "Accepted",
        interval: int = 300,
        id_tags: dict[str, str] | None = None,
        unknown_id_tag_status: str = "Invalid",
        parent_id_tags: dict[str, str] | None = None,
        strict: bool = True,
        ping_interval: float | None = None,
        dedupe_starts: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        subprotocols: Sequence[str] = (SUBPROTOCOL,),
    ) -> None:
        self.host = host
        self.subprotocols = tuple(subprotocols)
        # TLS (wss://): a server context; with verify_mode CERT_OPTIONAL/REQUIRED it asks
        # for client certificates (see ConnectionEvent.client_certificate).
        self.ssl_context = ssl_context
        self.port = port
        self.password = password
        self.boot_status = boot_status
        self.interval = interval
        self.id_tags: dict[str, str] = dict(id_tags or {})
        self.unknown_id_tag_status = unknown_id_tag_status
        self.parent_id_tags: dict[str, str] = dict(parent_id_tags or {})
        self.strict = strict
        self.refuse_connections = False
        self.clock: Callable[[], datetime] = _utc_now
        self.next_transaction_id = 1
        self.last_transaction_id: int | None = None
        self.ping_interval = ping_interval
        self.dedupe_starts = dedupe_starts
        self._start_ids: dict[tuple[Any, ...], int] = {}  # start fields -> transactionId

        self._server: Server | None = None
        self._sessions: dict[str, _Session] = {}  # insertion order: most recent last
        self._records: list[Record] = []
        self._events: list[ConnectionEvent] = []
        self._seq = 0
        self._consumed: set[int] = set()
        self._call_replies: set[int] = set()  # seqs of frames that answered a csms.call()
        self._answers: dict[int, Record] = {}  # seq of a charge-point call -> our answer
        self._changed: asyncio.Event | None = None
        self._message_observers: list[Callable[[Record], None]] = []
        self._connection_observers: list[Callable[[ConnectionEvent], None]] = []
        self._ignore: dict[str, int | None] = {}
        self._fail_next: dict[str, deque[tuple[str, str]]] = {}
        self._fail_always: dict[str, tuple[str, str]] = {}
        self._responders: dict[str, Responder] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._defaults: dict[str, Callable[[Payload], Payload]] = {
            "BootNotification": self._boot_notification,
            "Heartbeat": lambda _p: {"currentTime": self.now_iso()},
            "Authorize": lambda p: {"idTagInfo": self.id_tag_info(p.get("idTag"))},
            "StartTransaction": self._start_transaction,
            "StopTransaction": self._stop_transaction,
            "StatusNotification": lambda _p: {},
            "MeterValues": lambda _p: {},
            "DataTransfer": lambda _p: {"status": "Accepted"},
            "DiagnosticsStatusNotification": lambda _p: {},
            "FirmwareStatusNotification": lambda _p: {},
            "SecurityEventNotification": lambda _p: {},
            "LogStatusNotification": lambda _p: {},
            "SignedFirmwareStatusNotification": lambda _p: {},
            "SignCertificate": lambda _p: {"status": "Accepted"},
        }
        self._defaults_by_version = {
            "1.6": self._defaults,
            "2.0.1": csms_v201.default_answers(self),
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start listening; with port 0 the actual port is in ``port``/``url`` afterwards."""
        self._changed = asyncio.Event()
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            ping_interval=self.ping_interval,
            ssl=self.ssl_context,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        log.info("CSMS listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> Csms:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL; a charge point connects to ``url + "/" + station_id``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{host}:{self.port}"

    def station_url(self, station_id: str) -> str:
        return f"{self.url}/{station_id}"

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """The subprotocols accepted, most preferred first (a setting: new connections use it)."""
        return self._subprotocols

    @subprotocols.setter
    def subprotocols(self, value: Sequence[str]) -> None:
        chosen = tuple(value)
        unknown = [p for p in chosen if p not in VERSIONS]
        if isinstance(value, str) or not chosen or unknown or len(set(chosen)) != len(chosen):
            raise ValueError(
                f"subprotocols must be distinct names out of {list(VERSIONS)}, got {value!r}"
            )
        self._subprotocols = chosen

    def configure(self, **settings: Any) -> None:
        """Set several settings at once; unknown names are an error, not a silent no-op."""
        for name, value in settings.items():
            if name not in SETTINGS:
                raise AttributeError(f"unknown CSMS setting {name!r}; known: {SETTINGS}")
            setattr(self, name, value)

    # ---------------------------------------------------------- behaviour knobs

    def fail_next(
        self, action: str, error_code: str = "InternalError", count: int = 1, description: str = ""
    ) -> None:
        """Answer the next ``count`` calls of ``action`` with a CALLERROR."""
        queue = self._fail_next.setdefault(action, deque())
        queue.extend([(error_code, description or f"forced {error_code}")] * count)

    def fail_always(
        self, action: str, error_code: str | None = "InternalError", description: str = ""
    ) -> None:
        """Answer every call of ``action`` with a CALLERROR until called with error_code=None."""
        if error_code is None:
            self._fail_always.pop(action, None)
        else:
            self._fail_always[action] = (error_code, description or f"forced {error_code}")

    def ignore(self, action: str, count: int | None = 1) -> None:
        """Do not answer the next ``count`` calls of ``action`` (None: all, until cleared)."""
        if count is not None and count <= 0:
            self._ignore.pop(action, None)
        else:
            self._ignore[action] = count

    def pending_faults(self) -> dict[str, int | None]:
        """Per action, how many calls fail_next/ignore will still fail or leave
        unanswered (None: all of them, for fail_always or ignore(count=None))."""
        pending: dict[str, int | None] = {}
        for action, queue in self._fail_next.items():
            if queue:
                pending[action] = len(queue)
        for action, left in self._ignore.items():
            known = pending.get(action, 0)
            pending[action] = None if left is None or known is None else known + left
        for action in self._fail_always:
            pending[action] = None
        return pending

    def respond_with(self, action: str, fn: Responder | None) -> None:
        """Answer ``action`` with ``fn(payload)`` (may be async); None restores the default.

        Also makes an action without a default (a custom one) answerable.
        ``default_response`` is available to build on the default answer.
        """
        if fn is None:
            self._responders.pop(action, None)
        else:
            self._responders[action] = fn

    def clear_overrides(self, action: str | None = None) -> None:
        """Drop fail/ignore/respond_with overrides for one action or for all."""
        for table in (self._ignore, self._fail_next, self._fail_always, self._responders):
            if action is None:
                table.clear()
            else:
                table.pop(action, None)

    def on_message(self, callback: Callable[[Record], None]) -> None:
        """Call ``callback(record)`` for every frame in and out (on the CSMS loop)."""
        self._message_observers.append(callback)

    def on_connection(self, callback: Callable[[ConnectionEvent], None]) -> None:
        """Call ``callback(event)`` on every connect, disconnect and rejected handshake."""
        self._connection_observers.append(callback)

    # --------------------------------------------------------- default answers

    def now_iso(self) -> str:
        return (
            self.clock().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )

    def id_tag_info(self, id_tag: Any) -> Payload:
        """The idTagInfo this CSMS gives for ``id_tag`` (from ``id_tags`` / ``parent_id_tags``)."""
        tag = id_tag if isinstance(id_tag, str) else ""
        info: Payload = {"status": self.id_tags.get(tag, self.unknown_id_tag_status)}
        if tag in self.parent_id_tags:
            info["parentIdTag"] = self.parent_id_tags[tag]
        return info

    def default_response(
        self, action: str, payload: Payload, version: str | None = None
    ) -> Payload:
        """The answer this CSMS gives by default (StartTransaction allocates an id).

        ``version`` "1.6" or "2.0.1"; None means the version of the session whose
        call is being answered (inside a responder), else "1.6".
        """
        version = version or _answering_version.get("1.6")
        try:
            handler = self._defaults_by_version[version][action]
        except KeyError:
            raise KeyError(f"no OCPP {version} default response for {action!r}") from None
        return handler(payload)

    def _boot_notification(self, _payload: Payload) -> Payload:
        return {
            "status": self.boot_status,
            "currentTime": self.now_iso(),
            "interval": self.interval,
        }

    def _start_transaction(self, payload: Payload) -> Payload:
        key = _start_key(payload)
        tx_id = self._start_ids.get(key) if self.dedupe_starts and key is not None else None
        if tx_id is None:
            tx_id = self.next_transaction_id
            self.next_transaction_id += 1
            self.last_transaction_id = tx_id
            if self.dedupe_starts and key is not None:
                self._start_ids[key] = tx_id
        else:
            log.info("CSMS: StartTransaction re-sent; same transactionId %d", tx_id)
        return {"transactionId": tx_id, "idTagInfo": self.id_tag_info(payload.get("idTag"))}

    def _stop_transaction(self, payload: Payload) -> Payload:
        if "idTag" not in payload:
            return {}
        return {"idTagInfo": self.id_tag_info(payload["idTag"])}

    # ------------------------------------------------------------- inspection

    def mark(self) -> int:
        """A cursor: pass it as ``after=`` to only see what arrives from now on."""
        return self._seq

    @property
    def records(self) -> list[Record]:
        """Every frame in and out so far, in order (a copy)."""
        return list(self._records)

    @property
    def events(self) -> list[ConnectionEvent]:
        return list(self._events)

    @property
    def violations(self) -> list[Record]:
        """Frames from charge points that broke framing or their version's schema."""
        return [r for r in self._records if r.direction == "in" and r.error is not None]

    @property
    def connected_stations(self) -> list[str]:
        return list(self._sessions)

    def calls(self, action: str, station_id: str | None = None) -> list[Payload]:
        """Payloads of every well-formed ``action`` call received so far."""
        return [r.payload for r in self._records if self._is_call(r, action, station_id)]

    def answer_to(self, call: Record) -> Record | None:
        """Our CALLRESULT/CALLERROR record for a charge-point call (None: unanswered)."""
        return self._answers.get(call.seq)

    @property
    def retransmissions(self) -> list[Record]:
        """Transaction calls recognised as re-sends after a lost answer, in order: 1.6
        StartTransactions (answered with the transactionId the first one got) and 2.0.1
        TransactionEvents (identical to one taken before)."""
        starts = (v.retransmitted_starts for v in self._transaction_views().values())
        events = (v.retransmitted for v in self._transaction_event_views().values())
        return sorted((r for group in (*starts, *events) for r in group), key=lambda r: r.seq)

    def version_of(self, station_id: str | None = None) -> str:
        """The OCPP version ("1.6" / "2.0.1") a station negotiated: that of its current
        connection, else of its last one; without station_id, the most recent station."""
        if station_id in self._sessions or (station_id is None and self._sessions):
            return self._session(station_id).version
        for event in reversed(self._events):
            if event.kind == "connected" and station_id in (None, event.station_id):
                return VERSIONS.get(event.subprotocol or "", "1.6")
        raise NotConnectedError(f"{station_id or 'no charge point'} has never connected")

    def transactions(self, station_id: str | None = None) -> dict[int, TransactionView]:
        """The CSMS's view of the transactions, by transactionId in order of their start:
        the start, the MeterValues and the StopTransactions that carry the id. Calls
        answered with a CALLERROR are left out; unanswered ones count."""
        return self._transaction_views(station_id)

    def transaction_events(self, station_id: str | None = None) -> dict[str, TransactionEvents]:
        """The CSMS's view of the 2.0.1 transactions, by the station's transactionId in
        order of their first event: the TransactionEvent calls that carry the id (see
        TransactionEvents). Calls answered with a CALLERROR are left out; unanswered ones
        count. transactionIds are only unique per station: if two stations use the same
        one, pass ``station_id`` (ValueError otherwise)."""
        views: dict[str, TransactionEvents] = {}
        for (station, tx_id), view in self._transaction_event_views(station_id).items():
            if tx_id in views:
                other = views[tx_id].station_id
                raise ValueError(
                    f"transactionId {tx_id!r} is used by {other} and {station}; pass station_id"
                )
            views[tx_id] = view
        return views

    def _transaction_event_views(
        self, station_id: str | None = None
    ) -> dict[tuple[str, str], TransactionEvents]:
        taken = []
        for r in self._records:
            if r.version != "2.0.1" or not self._is_call(r, "TransactionEvent", station_id):
                continue
            answer = self._answers.get(r.seq)
            if answer is None or answer.message_type != "CALLERROR":
                taken.append(r)
        return csms_v201.build_transaction_events(taken)

    def _transaction_views(self, station_id: str | None = None) -> dict[int, TransactionView]:
        views: dict[int, TransactionView] = {}
        for r in self._records:
            action = r.action or ""
            if action not in _TRANSACTION_ACTIONS or not self._is_call(r, action, station_id):
                continue
            if r.version != "1.6":
                continue
            answer = self._answers.get(r.seq)
            if answer is not None and answer.message_type == "CALLERROR":
                continue
            if action == "StartTransaction":
                if answer is None or not isinstance(answer.payload, dict):
                    continue  # no transactionId given
                tx_id = answer.payload.get("transactionId")
                if not isinstance(tx_id, int):
                    continue
                if tx_id in views:
                    views[tx_id].retransmitted_starts.append(r)
                else:
                    views[tx_id] = TransactionView(tx_id, dict(r.payload), r, [], [], [])
                continue
            tx_id = r.payload.get("transactionId")
            view = views.get(tx_id) if isinstance(tx_id, int) else None
            if view is None:
                continue
            target = view.meter_values if action == "MeterValues" else view.stops
            target.append(dict(r.payload))
        return views

    @staticmethod
    def _is_call(r: Record, action: str, station_id: str | None) -> bool:
        return (
            r.direction == "in"
            and r.message_type == "CALL"
            and r.action == action
            and isinstance(r.payload, dict)
            and (r.error is None or r.error.startswith("schema"))  # well framed
            and (station_id is None or r.station_id == station_id)
        )

    # ---------------------------------------------------------------- waiting

    async def _wait(
        self, find: Callable[[], T | None], timeout: float, describe: Callable[[], str]
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = find()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(describe())
            assert self._changed is not None, "CSMS not started"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_record(
        self,
        match: Callable[[Record], bool],
        timeout: float = 10.0,
        after: int | Record | None = None,
        consume: bool = False,
    ) -> Record:
        """The first record (any direction/type) at or after ``after`` for which match() holds."""
        start = self._start_seq(after)

        def find() -> Record | None:
            for r in self._records:
                if r.seq >= start and not (consume and r.seq in self._consumed) and match(r):
                    if consume:
                        self._consumed.add(r.seq)
                    return r
            return None

        return await self._wait(find, timeout, lambda: self._describe("record", start, timeout))

    async def wait_for(
        self,
        action: str,
        predicate: Callable[[Payload], bool] | None = None,
        timeout: float = 10.0,
        after: int | Record | None = None,
        station_id: str | None = None,
    ) -> Payload:
        """Payload of the first not-yet-consumed ``action`` call received at/after ``after``.

        Each record is returned by wait_for only once, so consecutive waits walk
        through successive calls; calls that arrived before the wait are found
        too (use ``after=csms.mark()`` taken before the stimulus to exclude
        older ones). A predicate that raises counts as no match.
        """
        record = await self.wait_for_record(action, predicate, timeout, after, station_id)
        return dict(record.payload)

    async def wait_for_record(
        self,
        action: str,
        predicate: Callable[[Payload], bool] | None = None,
        timeout: float = 10.0,
        after: int | Record | None = None,
        station_id: str | None = None,
    ) -> Record:
        """Like wait_for, but returns the whole Record (seq, time, unique id...)."""

        def match(r: Record) -> bool:
            if not self._is_call(r, action, station_id):
                return False
            if predicate is None:
                return True
            try:
                return bool(predicate(r.payload))
            except Exception:
                return False

        start = self._start_seq(after)
        try:
            return await self.wait_record(match, timeout, after, consume=True)
        except TimeoutError:
            what = f"{action} call" + (" matching the predicate" if predicate else "")
            if station_id is not None:
                what += f" from {station_id}"
            raise TimeoutError(self._describe(what, start, timeout)) from None

    def _start_seq(self, after: int | Record | None) -> int:
        if isinstance(after, Record):
            return after.seq + 1
        return after or 0

    def _describe(self, what: str, start: int, timeout: float) -> str:
        received = [r for r in self._records if r.direction == "in" and r.seq >= start]
        lines = [
            f"  #{r.seq} {r.station_id} {r.message_type} {r.action or '-'} {_short(r.payload)}"
            + (" (consumed)" if r.seq in self._consumed else "")
            + (f" [error: {r.error}]" if r.error else "")
            for r in received[-25:]
        ]
        if len(received) > 25:
            lines.insert(0, f"  ... {len(received) - 25} earlier")
        connected = ", ".join(self._sessions) or "none"
        return (
            f"no {what} received within {timeout}s (after mark {start}); "
            f"connected: {connected}; received from charge points:\n"
            + ("\n".join(lines) if lines else "  (nothing)")
        )

    async def wait_connected(
        self, timeout: float = 10.0, station_id: str | None = None, after: int | None = None
    ) -> str:
        """Station id of a connected charge point; with ``after``, one that connected since."""

        def find() -> str | None:
            if after is None:
                ids = [s for s in self._sessions if station_id in (None, s)]
                return ids[-1] if ids else None
            for e in self._events:
                if e.seq >= after and e.kind == "connected" and station_id in (None, e.station_id):
                    return e.station_id
            return None

        who = station_id or "any charge point"
        return await self._wait(
            find, timeout, lambda: f"{who} did not connect within {timeout}s: {self._events[-5:]}"
        )

    async def wait_disconnected(
        self, timeout: float = 10.0, station_id: str | None = None, after: int | None = None
    ) -> None:
        """Until no (matching) charge point is connected; with ``after``, one that left since."""

        def find() -> bool | None:
            if after is None:
                return True if not any(station_id in (None, s) for s in self._sessions) else None
            for e in self._events:
                if (
                    e.seq >= after
                    and e.kind == "disconnected"
                    and station_id in (None, e.station_id)
                ):
                    return True
            return None

        who = station_id or "charge point"
        await self._wait(
            find, timeout, lambda: f"{who} still connected after {timeout}s: {self._events[-5:]}"
        )

    # ------------------------------------------------------- CSMS-initiated calls

    def _session(self, station_id: str | None) -> _Session:
        if station_id is not None:
            if station_id in self._sessions:
                return self._sessions[station_id]
            raise NotConnectedError(f"{station_id} is not connected ({list(self._sessions)})")
        if not self._sessions:
            raise NotConnectedError("no charge point is connected")
        return next(reversed(self._sessions.values()))

    async def call(
        self,
        action: str,
        payload: Payload | None = None,
        timeout: float = 10.0,
        station_id: str | None = None,
        validate: bool | None = None,
    ) -> Payload:
        """Send a call to the charge point and return its CALLRESULT payload.

        Raises CallErrorReceived on a CALLERROR, TimeoutError when unanswered,
        DisconnectedError if the connection drops first. Calls to one station are
        serialized, as OCPP-J allows one outstanding call per direction.

        ``validate``: check the payload against the request schema of the session's
        version first and raise InvalidCall instead of sending a call that breaks it
        (or an action the version does not define). None (the default) validates in
        2.0.1 sessions and not in 1.6 ones; False sends invalid calls on purpose.
        The answer is validated either way; a bad one is a violation, not an error.
        """
        session = self._session(station_id)
        if validate or (validate is None and session.version == "2.0.1"):
            self._check_call(session.version, action, payload or {})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline), session.call_lock:
                uid = str(uuid.uuid4())
                future: asyncio.Future[Payload] = loop.create_future()
                session.pending[uid] = _Pending(action, future)
                try:
                    text = Call(uid, action, payload or {}).to_json()
                    await self._send(
                        session, text, _Frame("CALL", uid, action, payload or {}, None)
                    )
                    return await future
                finally:
                    session.pending.pop(uid, None)
        except TimeoutError:
            raise TimeoutError(
                f"{session.station_id} did not answer {action} within {timeout}s"
            ) from None

    @staticmethod
    def _check_call(version: str, action: str, payload: Payload) -> None:
        try:
            get_validator(2, action, version)
        except (OSError, ValueError):
            raise InvalidCall(
                "NotImplemented", f"{action} is not an OCPP {version} action"
            ) from None
        problem = _schema_error("CALL", action, payload, version)
        if problem is not None:
            raise InvalidCall(*problem)

    async def send_raw(
        self, text: str, timeout: float = 5.0, station_id: str | None = None
    ) -> str | None:
        """Send any text frame; return the next CALLRESULT/CALLERROR frame back (or None).

        Frames answering a pending ``call()`` are skipped. If ``text`` is a
        well-formed call, the reply is recorded with its action.
        """
        session = self._session(station_id)
        start = self._seq
        frame = _parse_frame(text)
        if frame.message_type == "CALL" and frame.unique_id and frame.action:
            session.pending.setdefault(frame.unique_id, _Pending(frame.action, None))
        await self._send(session, text, frame)

        def match(r: Record) -> bool:
            return (
                r.direction == "in"
                and r.station_id == session.station_id
                and r.message_type in ("CALLRESULT", "CALLERROR")
                and r.seq not in self._call_replies
            )

        try:
            record = await self.wait_record(match, timeout, after=start)
        except TimeoutError:
            return None
        return record.raw

    async def disconnect(
        self,
        station_id: str | None = None,
        code: int = 1000,
        reason: str = "",
        abrupt: bool = False,
        timeout: float = 5.0,
    ) -> None:
        """Close a charge point's connection (``abrupt``: drop TCP, no close frame).

        Returns once the server has noticed the disconnect, so a following
        wait_connected(after=...) cannot see the old connection.
        """
        session = self._session(station_id)
        start = self._seq
        if abrupt:
            session.ws.transport.abort()
        else:
            await session.ws.close(code, reason)
        with contextlib.suppress(TimeoutError):
            await self.wait_disconnected(timeout, session.station_id, after=start)

    # ------------------------------------------------------------- the server

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Handshake checks: refusal (503), station id (404), subprotocol (400), auth (401)."""
        station_id = _station_from_path(request.path)
        offered = {
            p.strip()
            for value in request.headers.get_all("Sec-WebSocket-Protocol")
            for p in value.split(",")
        }
        reason: tuple[HTTPStatus, str] | None = None
        if self.refuse_connections:
            reason = (HTTPStatus.SERVICE_UNAVAILABLE, "CSMS refusing connections")
        elif not station_id:
            reason = (HTTPStatus.NOT_FOUND, "no charge point identity in the path")
        elif not offered.intersection(self.subprotocols):
            wanted = " or ".join(self.subprotocols)
            reason = (HTTPStatus.BAD_REQUEST, f"subprotocol {wanted} required")
        elif self.password is not None and not self._auth_ok(station_id, request):
            reason = (HTTPStatus.UNAUTHORIZED, "bad or missing basic auth")
        if reason is None:
            return None
        status, text = reason
        self._add_event("rejected", station_id, None, f"{status.value} {text}")
        response = ws.respond(status, text + "\n")
        if status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Basic realm="OCPP"'
        return response

    def _select_subprotocol(
        self, _ws: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """The CSMS's most preferred subprotocol that the station offered (its order wins)."""
        for subprotocol in self.subprotocols:
            if subprotocol in offered:
                return Subprotocol(subprotocol)
        return None  # not reached: _process_request refused the handshake

    def _auth_ok(self, station_id: str, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = (self.password or "").encode()
        return bool(sep) and user == station_id and hmac.compare_digest(password.encode(), expected)

    async def _handler(self, ws: ServerConnection) -> None:
        """One charge point connection; nothing it sends may end the server."""
        assert ws.request is not None
        station_id = _station_from_path(ws.request.path)
        session = _Session(station_id, ws, VERSIONS.get(ws.subprotocol or "", "1.6"))
        old = self._sessions.pop(station_id, None)
        self._sessions[station_id] = session
        if old is not None:
            log.info("%s reconnected; closing its previous connection", station_id)
            self._spawn(old.ws.close(1000, "replaced by a new connection"))
        tls = ws.transport.get_extra_info("ssl_object")
        self._add_event(
            "connected",
            station_id,
            ws.subprotocol,
            client_certificate=tls.getpeercert(binary_form=True) if tls is not None else None,
            basic_auth="Authorization" in ws.request.headers,
        )
        try:
            async for message in ws:
                try:
                    await self._on_frame(session, message)
                except Exception:
                    log.exception("CSMS failed to handle a frame from %s", station_id)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("CSMS connection handler for %s failed", station_id)
        finally:
            if self._sessions.get(station_id) is session:
                del self._sessions[station_id]
            for pending in session.pending.values():
                if pending.future is not None and not pending.future.done():
                    pending.future.set_exception(
                        DisconnectedError(f"{station_id} disconnected before answering")
                    )
            session.pending.clear()
            detail = f"code={ws.close_code} reason={ws.close_reason!r}"
            self._add_event("disconnected", station_id, ws.subprotocol, detail)

    async def _on_frame(self, session: _Session, raw: str | bytes) -> None:
        frame = _parse_frame(raw)
        text = raw if isinstance(raw, str) else raw.decode(errors="replace")
        pending = None
        if frame.message_type in ("CALLRESULT", "CALLERROR") and frame.unique_id is not None:
            pending = session.pending.pop(frame.unique_id, None)
            if pending is not None:
                frame.action = pending.action
        error = frame.error
        schema: tuple[str, str] | None = None
        if error is None and frame.action is not None and frame.message_type != "CALLERROR":
            schema = _schema_error(frame.message_type, frame.action, frame.payload, session.version)
            if schema is not None:
                error = f"schema {schema[0]}: {schema[1]}"
        record = self._add_record(session, "in", frame, text, error)
        if frame.message_type == "CALL" and frame.unique_id is not None:
            session.incoming[frame.unique_id] = record
        if pending is not None and pending.future is not None:
            self._call_replies.add(record.seq)
            if not pending.future.done():
                if frame.error is not None:
                    pending.future.set_exception(MalformedResponse(f"{frame.error}: {text}"))
                elif frame.message_type == "CALLERROR":
                    p = frame.payload
                    exc = CallErrorReceived(
                        p["errorCode"], p["errorDescription"], p["errorDetails"]
                    )
                    pending.future.set_exception(exc)
                else:
                    pending.future.set_result(frame.payload)
            return
        if frame.unique_id is None:
            log.warning("%s sent a frame without a usable unique id: %s", session.station_id, error)
            return
        if frame.message_type == "INVALID" or (frame.message_type == "CALL" and frame.error):
            code = "FormationViolation"
            if session.version == "2.0.1":
                code = csms_v201.framing_error_code(error or "")
            await self._send_error(session, frame.unique_id, code, error or "")
        elif frame.message_type == "CALL":
            await self._answer(session, frame, schema)
        elif frame.error:
            log.warning("%s sent a malformed %s: %s", session.station_id, frame.message_type, error)

    async def _answer(
        self, session: _Session, frame: _Frame, schema: tuple[str, str] | None
    ) -> None:
        assert frame.action is not None and frame.unique_id is not None
        action, uid, payload = frame.action, frame.unique_id, frame.payload
        if action in self._ignore:
            left = self._ignore[action]
            if left is not None:
                if left <= 1:
                    del self._ignore[action]
                else:
                    self._ignore[action] = left - 1
            log.info("CSMS ignoring %s %s from %s", action, uid, session.station_id)
            return
        forced = None
        if self._fail_next.get(action):
            forced = self._fail_next[action].popleft()
        elif action in self._fail_always:
            forced = self._fail_always[action]
        if forced is not None:
            await self._send_error(session, uid, *forced)
            return
        responder = self._responders.get(action)
        if responder is None and action not in self._defaults_by_version[session.version]:
            csms_only = action in _CSMS_ACTIONS_BY_VERSION[session.version]
            code = "NotSupported" if csms_only else "NotImplemented"
            await self._send_error(session, uid, code, f"{action} is not handled by this CSMS")
            return
        if schema is not None and self.strict:
            await self._send_error(session, uid, schema[0], schema[1])
            return
        token = _answering_version.set(session.version)  # async responders inherit it
        try:
            result: Any = (
                responder(payload) if responder else self.default_response(action, payload)
            )
            if inspect.isawaitable(result):
                self._spawn(self._answer_later(session, action, uid, result))
                return
        except Exception as exc:
            log.exception("CSMS responder for %s failed", action)
            await self._send_error(session, uid, "InternalError", f"responder failed: {exc!r}")
            return
        finally:
            _answering_version.reset(token)
        await self._send_result(session, action, uid, result)

    async def _answer_later(
        self, session: _Session, action: str, uid: str, result: Awaitable[Any]
    ) -> None:
        try:
            payload = await result
        except Exception as exc:
            log.exception("CSMS responder for %s failed", action)
            await self._send_error(session, uid, "InternalError", f"responder failed: {exc!r}")
            return
        await self._send_result(session, action, uid, payload)

    async def _send_result(self, session: _Session, action: str, uid: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            desc = f"responder returned {type(payload).__name__}, not a dict"
            await self._send_error(session, uid, "InternalError", desc)
            return
        text = CallResult(uid, payload).to_json()
        await self._send(session, text, _Frame("CALLRESULT", uid, action, payload, None))

    async def _send_error(self, session: _Session, uid: str, code: str, description: str) -> None:
        text = CallError(uid, code, description, {}).to_json()
        body = {"errorCode": code, "errorDescription": description, "errorDetails": {}}
        await self._send(session, text, _Frame("CALLERROR", uid, None, body, None))

    async def _send(self, session: _Session, text: str, frame: _Frame) -> None:
        record = self._add_record(session, "out", frame, text, frame.error)
        if frame.message_type in ("CALLRESULT", "CALLERROR") and frame.unique_id is not None:
            call = session.incoming.pop(frame.unique_id, None)
            if call is not None:
                self._answers[call.seq] = record
        try:
            await session.ws.send(text)
        except ConnectionClosed:
            log.info("CSMS could not send to %s: connection closed", session.station_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------- bookkeeping

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def _add_record(
        self, session: _Session, direction: Direction, frame: _Frame, raw: str, error: str | None
    ) -> Record:
        station_id = session.station_id
        record = Record(
            seq=self._next_seq(),
            time=time.time(),
            station_id=station_id,
            direction=direction,
            message_type=frame.message_type,
            action=frame.action,
            unique_id=frame.unique_id,
            payload=frame.payload,
            raw=raw,
            error=error,
            version=session.version,
        )
        self._records.append(record)
        log.debug("%s %s %s", station_id, "->" if direction == "in" else "<-", raw)
        for callback in list(self._message_observers):
            try:
                callback(record)
            except Exception:
                log.exception("CSMS on_message observer failed")
        self._notify()
        return record

    def _add_event(
        self,
        kind: Literal["connected", "disconnected", "rejected"],
        station_id: str,
        subprotocol: str | None,
        detail: str = "",
        client_certificate: bytes | None = None,
        basic_auth: bool = False,
    ) -> None:
        event = ConnectionEvent(
            self._next_seq(),
            time.time(),
            kind,
            station_id,
            subprotocol,
            detail,
            client_certificate,
            basic_auth,
        )
        self._events.append(event)
        log.info("CSMS: %s %s %s", station_id, kind, detail)
        for callback in list(self._connection_observers):
            try:
                callback(event)
            except Exception:
                log.exception("CSMS on_connection observer failed")
        self._notify()


class _Forward:
    """A CsmsThread attribute that reads/writes the same-named Csms setting on its loop."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: CsmsThread | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.csms, self.name)

    def __set__(self, obj: CsmsThread, value: Any) -> None:
        obj.configure(**{self.name: value})


class CsmsThread:
    """A Csms on its own event loop in a daemon thread, with a blocking API.

    For plain pytest tests and the demo. Methods mirror Csms; callbacks given to
    on_message/on_connection/respond_with run in the CSMS thread. ``csms`` is the
    underlying async object; only touch it from that thread.
    """

    boot_status = _Forward()
    interval = _Forward()
    id_tags = _Forward()
    unknown_id_tag_status = _Forward()
    parent_id_tags = _Forward()
    refuse_connections = _Forward()
    password = _Forward()
    strict = _Forward()
    clock = _Forward()
    next_transaction_id = _Forward()
    dedupe_starts = _Forward()
    subprotocols = _Forward()

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="csms", daemon=True)
        self._thread.start()
        self._stopped = False

        async def create() -> Csms:
            csms = Csms(host, port, **options)
            await csms.start()
            return csms

        try:
            self.csms: Csms = self._run(create(), 10.0)
        except BaseException:
            self._shutdown_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(None if timeout is None else timeout + 5.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _in_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def apply() -> T:
            return fn(*args, **kwargs)

        return self._run(apply(), 10.0)

    # lifecycle
    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self._run(self.csms.stop(), 10.0)
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> CsmsThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.csms.url

    @property
    def port(self) -> int:
        return self.csms.port

    def station_url(self, station_id: str) -> str:
        return self.csms.station_url(station_id)

    # settings and knobs
    def configure(self, **settings: Any) -> None:
        self._in_loop(self.csms.configure, **settings)

    def fail_next(
        self, action: str, error_code: str = "InternalError", count: int = 1, description: str = ""
    ) -> None:
        self._in_loop(self.csms.fail_next, action, error_code, count, description)

    def fail_always(
        self, action: str, error_code: str | None = "InternalError", description: str = ""
    ) -> None:
        self._in_loop(self.csms.fail_always, action, error_code, description)

    def ignore(self, action: str, count: int | None = 1) -> None:
        self._in_loop(self.csms.ignore, action, count)

    def pending_faults(self) -> dict[str, int | None]:
        return self._in_loop(self.csms.pending_faults)

    def respond_with(self, action: str, fn: Responder | None) -> None:
        self._in_loop(self.csms.respond_with, action, fn)

    def clear_overrides(self, action: str | None = None) -> None:
        self._in_loop(self.csms.clear_overrides, action)

    def on_message(self, callback: Callable[[Record], None]) -> None:
        self._in_loop(self.csms.on_message, callback)

    def on_connection(self, callback: Callable[[ConnectionEvent], None]) -> None:
        self._in_loop(self.csms.on_connection, callback)

    def default_response(
        self, action: str, payload: Payload, version: str | None = None
    ) -> Payload:
        return self._in_loop(self.csms.default_response, action, payload, version)

    # inspection
    def mark(self) -> int:
        return self._in_loop(self.csms.mark)

    @property
    def records(self) -> list[Record]:
        return self._in_loop(lambda: self.csms.records)

    @property
    def events(self) -> list[ConnectionEvent]:
        return self._in_loop(lambda: self.csms.events)

    @property
    def violations(self) -> list[Record]:
        return self._in_loop(lambda: self.csms.violations)

    @property
    def connected_stations(self) -> list[str]:
        return self._in_loop(lambda: self.csms.connected_stations)

    @property
    def last_transaction_id(self) -> int | None:
        return self._in_loop(lambda: self.csms.last_transaction_id)

    def calls(self, action: str, station_id: str | None = None) -> list[Payload]:
        return self._in_loop(self.csms.calls, action, station_id)

    def answer_to(self, call: Record) -> Record | None:
        return self._in_loop(self.csms.answer_to, call)

    @property
    def retransmissions(self) -> list[Record]:
        return self._in_loop(lambda: self.csms.retransmissions)

    def transactions(self, station_id: str | None = None) -> dict[int, TransactionView]:
        return self._in_loop(self.csms.transactions, station_id)

    def transaction_events(self, station_id: str | None = None) -> dict[str, TransactionEvents]:
        return self._in_loop(self.csms.transaction_events, station_id)

    def version_of(self, station_id: str | None = None) -> str:
        return self._in_loop(self.csms.version_of, station_id)

    # waiting and calls
    def wait_for(
        self,
        action: str,
        predicate: Callable[[Payload], bool] | None = None,
        timeout: float = 10.0,
        after: int | Record | None = None,
        station_id: str | None = None,
    ) -> Payload:
        coro = self.csms.wait_for(action, predicate, timeout, after, station_id)
        return self._run(coro, timeout)

    def wait_for_record(
        self,
        action: str,
        predicate: Callable[[Payload], bool] | None = None,
        timeout: float = 10.0,
        after: int | Record | None = None,
        station_id: str | None = None,
    ) -> Record:
        coro = self.csms.wait_for_record(action, predicate, timeout, after, station_id)
        return self._run(coro, timeout)

    def wait_record(
        self,
        match: Callable[[Record], bool],
        timeout: float = 10.0,
        after: int | Record | None = None,
        consume: bool = False,
    ) -> Record:
        return self._run(self.csms.wait_record(match, timeout, after, consume), timeout)

    def wait_connected(
        self, timeout: float = 10.0, station_id: str | None = None, after: int | None = None
    ) -> str:
        return self._run(self.csms.wait_connected(timeout, station_id, after), timeout)

    def wait_disconnected(
        self, timeout: float = 10.0, station_id: str | None = None, after: int | None = None
    ) -> None:
        self._run(self.csms.wait_disconnected(timeout, station_id, after), timeout)

    def call(
        self,
        action: str,
        payload: Payload | None = None,
        timeout: float = 10.0,
        station_id: str | None = None,
        validate: bool | None = None,
    ) -> Payload:
        coro = self.csms.call(action, payload, timeout, station_id, validate)
        return self._run(coro, timeout)

    def send_raw(
        self, text: str, timeout: float = 5.0, station_id: str | None = None
    ) -> str | None:
        return self._run(self.csms.send_raw(text, timeout, station_id), timeout)

    def disconnect(
        self,
        station_id: str | None = None,
        code: int = 1000,
        reason: str = "",
        abrupt: bool = False,
        timeout: float = 5.0,
    ) -> None:
        coro = self.csms.disconnect(station_id, code, reason, abrupt, timeout)
        self._run(coro, timeout)


def _format_record(record: Record) -> str:
    arrow = "CP -> CSMS" if record.direction == "in" else "CSMS -> CP"
    note = f"  !! {record.error}" if record.error else ""
    return f"{record.station_id} {arrow} {record.raw}{note}"


def main(argv: list[str] | None = None) -> None:
    """Run standalone, logging every message, until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m hwsim.csms", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--password", help="require HTTP Basic auth station_id:PASSWORD")
    parser.add_argument(
        "--boot-status", default="Accepted", choices=["Accepted", "Pending", "Rejected"]
    )
    parser.add_argument("--interval", type=int, default=300, help="heartbeat/retry interval (s)")
    parser.add_argument(
        "--id-tag", action="append", default=[], metavar="TAG=STATUS", help="e.g. 04A1B2=Accepted"
    )
    parser.add_argument("--unknown-id-tag-status", default="Invalid")
    parser.add_argument("--lax", action="store_true", help="answer schema-invalid calls anyway")
    parser.add_argument(
        "--subprotocols",
        default=SUBPROTOCOL,
        metavar="LIST",
        help="accepted OCPP-J subprotocols, most preferred first, e.g. ocpp2.0.1,ocpp1.6"
        f" (default {SUBPROTOCOL}; known: {','.join(VERSIONS)})",
    )
    args = parser.parse_args(argv)
    subprotocols = tuple(p.strip() for p in args.subprotocols.split(",") if p.strip())
    if not subprotocols or any(p not in VERSIONS for p in subprotocols):
        parser.error(f"--subprotocols wants names out of {','.join(VERSIONS)}")
    id_tags = {}
    for item in args.id_tag:
        tag, sep, status = item.partition("=")
        if not sep:
            parser.error(f"--id-tag wants TAG=STATUS, got {item!r}")
        id_tags[tag] = status
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    async def run() -> None:
        csms = Csms(
            args.host,
            args.port,
            password=args.password,
            boot_status=args.boot_status,
            interval=args.interval,
            id_tags=id_tags,
            unknown_id_tag_status=args.unknown_id_tag_status,
            strict=not args.lax,
            subprotocols=subprotocols,
        )
        csms.on_message(lambda r: log.info("%s", _format_record(r)))
        async with csms:
            log.info("charge points connect to %s/<station id>", csms.url)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
