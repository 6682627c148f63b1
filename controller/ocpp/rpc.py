"""OCPP-J remote procedure calls over one websocket, for any OCPP version.

The `ocpp` library gives us the JSON schemas; this module owns the framing
rules, because the library's own dispatcher answers some malformed frames with
nothing and swaps NotImplemented / NotSupported. Here:

- an action the version does not define → NotImplemented;
- an action it defines but evsed does not handle → NotSupported;
- a payload that breaks the schema → the matching constraint violation;
- an unreadable frame → a CALLERROR with the frame's id, or "-1" if it has none
  (a binary frame that is not UTF-8 is unreadable: no id can be trusted in it);
- a handler that crashes → InternalError, and the daemon keeps running;
- responses to calls never made are logged and dropped.

Only one outgoing CALL is outstanding at a time, as OCPP-J requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import gc
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import ocpp
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from controller.ocpp.big_json import loads_yielding

log = logging.getLogger("evsed.ocpp")
frames = logging.getLogger("evsed.ocpp.frames")

CALL, CALLRESULT, CALLERROR = 2, 3, 4
SCHEMA_DIRS = {"1.6": "v16", "2.0.1": "v201"}
SECRET_KEYS = ("AuthorizationKey", "BasicAuthPassword")
# 1.6 payloads with "multipleOf: 0.1" limits (charging profiles, composite schedules).
DECIMAL_ACTIONS = frozenset(
    {"SetChargingProfile", "RemoteStartTransaction", "GetCompositeSchedule"}
)
BIG_FRAME = 64 * 1024  # characters; larger frames are parsed and validated off the loop


class Connection(Protocol):
    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes: ...


class OcppError(Exception):
    """An error to answer a CALL with, or one received for our CALL."""

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None):
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details = details or {}


class Reply:
    """A handler's answer plus work that must start only after the answer is sent
    (a RemoteStart must not send its Authorize before its own CALLRESULT).
    `then` runs synchronously; longer work spawns its own task."""

    def __init__(self, payload: dict[str, Any], then: Callable[[], None]) -> None:
        self.payload = payload
        self.then = then


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | Reply]]


def error_codes(version: str) -> dict[str, str]:
    """The version's spelling of each error class (1.6 keeps its historic typos)."""
    if version == "1.6":
        return {
            "format": "FormationViolation",
            "occurrence": "OccurenceConstraintViolation",
            "protocol": "ProtocolError",
        }
    return {
        "format": "FormatViolation",
        "occurrence": "OccurrenceConstraintViolation",
        "protocol": "RpcFrameworkError",
    }


_format_checker = FormatChecker()


@_format_checker.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d", value):
        raise ValueError(f"not an ISO 8601 date-time: {value!r}")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@cache
def actions(version: str) -> frozenset[str]:
    """Every action the version defines, read from its schema files (importing the
    `ocpp` package's message classes would cost start-up time for nothing)."""
    names = (
        p.stem
        for p in (Path(ocpp.__file__).parent / SCHEMA_DIRS[version] / "schemas").glob("*.json")
    )
    return frozenset(name.removesuffix("Response").removesuffix("Request") for name in names)


@cache
def schema_validator(version: str, action: str, response: bool) -> Draft4Validator | None:
    """The validator for a request or response payload; None if the version lacks the action."""
    name = action + ("Response" if response else ("" if version == "1.6" else "Request"))
    path = Path(ocpp.__file__).parent / SCHEMA_DIRS[version] / "schemas" / f"{name}.json"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError:
        return None
    # Decimals keep "multipleOf: 0.1" exact (21.4 is not a multiple of 0.1 in binary floats).
    schema = json.loads(text, parse_float=decimal.Decimal)
    return Draft4Validator(schema, format_checker=_format_checker)


def validate(version: str, action: str, payload: Any, response: bool = False) -> None:
    """Raise the OcppError a peer should get for this payload, if any."""
    validator = schema_validator(version, action, response)
    if validator is None:
        raise OcppError("NotImplemented", f"unknown action {action}")
    # Only schemas with "multipleOf" need exact decimals; re-encoding a 6 MB local list
    # for nothing would hold the interpreter for a quarter of a second.
    if action in DECIMAL_ACTIONS:
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    # "multipleOf: 0.1" divides exactly: a limit of 1e27 needs more than the default 28
    # digits, and one beyond a double (1e400 reads as an infinite float) cannot be judged.
    with decimal.localcontext() as context:
        context.prec = 400
        try:
            error = best_match(validator.iter_errors(payload))
        except (ArithmeticError, ValueError, TypeError) as e:
            description = f"number out of range: {e!r}"[:250]
            raise OcppError("PropertyConstraintViolation", description) from e
    if error is not None:
        raise _classify(version, error)


def _classify(version: str, error: ValidationError) -> OcppError:
    codes = error_codes(version)
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    description = f"{where}: {error.message}"[:250]
    if error.validator == "type":
        return OcppError("TypeConstraintViolation", description)
    if error.validator == "maxLength":
        return OcppError("TypeConstraintViolation", description)
    if error.validator in ("required", "minItems", "maxItems"):
        return OcppError(codes["occurrence"], description)
    if error.validator in ("additionalProperties",):
        return OcppError(codes["format"], description)
    return OcppError("PropertyConstraintViolation", description)


def redact(frame: str) -> str:
    """Hide secret configuration values before a frame reaches a log; lone surrogates
    (which no log sink can encode) are shown escaped."""
    for key in SECRET_KEYS:
        if key in frame:
            # {"key": <secret>, "value": ...} in either order (the CSMS picks the order)
            frame = re.sub(rf'\{{[^{{}}]*"key"\s*:\s*"{key}"[^{{}}]*\}}', _mask_value, frame)
            frame = re.sub(rf'("{key}"\s*:\s*)"(?:[^"\\]|\\.)*"', r'\1"***"', frame)
            # 2.0.1 SetVariables: {"variable": {"name": <secret>}, "attributeValue": ...}
            # (nested, in any order): such a frame's values are all hidden.
            if re.search(rf'"name"\s*:\s*"{key}"', frame):
                frame = re.sub(r'("attributeValue"\s*:\s*)"(?:[^"\\]|\\.)*"', r'\1"***"', frame)
    return frame.encode("utf-8", "backslashreplace").decode("utf-8")


def _mask_value(match: re.Match[str]) -> str:
    return re.sub(r'("value"\s*:\s*)"(?:[^"\\]|\\.)*"', r'\1"***"', match.group(0))


_gc_pause = {"depth": 0, "resume": False}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while any caller is inside (callers may overlap);
    collection resumes when the last one leaves, if it was on before the first came."""
    if _gc_pause["depth"] == 0:
        _gc_pause["resume"] = gc.isenabled()
        gc.disable()
    _gc_pause["depth"] += 1
    try:
        yield
    finally:
        _gc_pause["depth"] -= 1
        if _gc_pause["depth"] == 0 and _gc_pause["resume"]:
            gc.enable()


class RpcSession:
    """One OCPP-J conversation: dispatches incoming CALLs, correlates our CALLs."""

    def __init__(
        self,
        connection: Connection,
        version: str,
        handlers: dict[str, Handler],
        known_actions: Iterable[str],
        response_timeout: float = 30.0,
        accept_calls: Callable[[str], bool] = lambda action: True,
    ) -> None:
        self._connection = connection
        self.version = version
        self._handlers = handlers
        self._known = frozenset(known_actions)
        self._codes = error_codes(version)
        self._response_timeout = response_timeout
        self._accept_calls = accept_calls
        self._call_lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_sent = 0.0

    async def run(self) -> None:
        """Read frames until the connection closes (the caller sees the closing exception)."""
        try:
            while True:
                raw = await self._connection.recv()
                self._on_frame(raw)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            for task in list(self._tasks):
                task.cancel()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload; raise OcppError for a CALLERROR."""
        validate(self.version, action, payload)
        async with self._call_lock:
            unique_id = f"{next(self._ids)}"
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            self._pending[unique_id] = future
            try:
                await self._send(json.dumps([CALL, unique_id, action, payload]))
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancellation that arrives with the answer, and shutdown then hangs.
                async with asyncio.timeout(self._response_timeout):
                    kind, body = await future
            finally:
                self._pending.pop(unique_id, None)
        if kind == CALLERROR:
            code, description, details = body
            raise OcppError(
                str(code), str(description), details if isinstance(details, dict) else {}
            )
        try:
            validate(self.version, action, body, response=True)
        except OcppError as e:
            raise OcppError("InvalidResponse", f"{action} response: {e.description}") from e
        return dict(body)

    async def _send(self, text: str) -> None:
        if frames.isEnabledFor(logging.DEBUG):
            frames.debug("→ %s", redact(text))
        await self._connection.send(text)
        self.last_sent = asyncio.get_running_loop().time()

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_frame(self, raw: str | bytes) -> None:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            # JSON is UTF-8. Replacing the bad bytes would garble the unique id or a value,
            # and the station would carry out a command the CSMS never sent.
            frames.debug("← %d bytes, not UTF-8", len(raw))
            self._spawn(self._send_error("-1", self._codes["format"], "frame is not UTF-8"))
            return
        if frames.isEnabledFor(logging.DEBUG):
            frames.debug("← %s", redact(text[:4000]))
        if len(text) > BIG_FRAME:
            # Parsing and validating megabytes takes seconds on a Pi: not on the loop,
            # which must stay free to open the contactor.
            self._spawn(self._on_big_frame(text))
            return
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            self._spawn(self._send_error("-1", self._codes["format"], "frame is not valid JSON"))
            return
        self._route(message, big=False)

    async def _on_big_frame(self, text: str) -> None:
        # Hundreds of thousands of new objects: a full garbage collection over them would
        # hold the interpreter for 100 ms and more; they are freed by reference counting.
        with gc_paused():
            try:
                message = await asyncio.to_thread(loads_yielding, text)
            except (ValueError, RecursionError):
                await self._send_error("-1", self._codes["format"], "frame is not valid JSON")
                return
            handling = self._route(message, big=True)
            del message
            if handling is not None:
                await asyncio.wait({handling})

    def _route(self, message: Any, big: bool) -> asyncio.Future[None] | None:
        """Act on a parsed frame; returns the task that handles a CALL, if any."""
        unique_id = (
            message[1]
            if isinstance(message, list) and len(message) > 1 and isinstance(message[1], str)
            else None
        )
        if not isinstance(message, list) or not message or unique_id is None:
            self._spawn(
                self._send_error(
                    unique_id or "-1", self._codes["protocol"], "not an OCPP-J message array"
                )
            )
            return None
        kind = message[0]
        if kind == CALL:
            if len(message) != 4 or not isinstance(message[2], str):
                self._spawn(self._send_error(unique_id, self._codes["protocol"], "malformed CALL"))
            elif not isinstance(message[3], dict):
                self._spawn(
                    self._send_error(unique_id, self._codes["format"], "payload is not an object")
                )
            else:
                return self._spawn(self._dispatch(unique_id, message[2], message[3], big))
        elif kind in (CALLRESULT, CALLERROR):
            self._on_response(kind, unique_id, message)
        else:
            self._spawn(
                self._send_error(
                    unique_id, self._codes["protocol"], f"unknown message type {kind!r}"
                )
            )
        return None

    def _on_response(self, kind: int, unique_id: str, message: list[Any]) -> None:
        future = self._pending.get(unique_id)
        if future is None or future.done():
            log.warning("dropped a response to no outstanding call (id %r)", unique_id[:40])
            return
        if kind == CALLRESULT and len(message) == 3 and isinstance(message[2], dict):
            future.set_result((CALLRESULT, message[2]))
        elif kind == CALLERROR and len(message) >= 4:
            details = message[4] if len(message) > 4 else {}
            future.set_result((CALLERROR, (message[2], message[3], details)))
        else:
            future.set_exception(OcppError("InvalidResponse", "malformed response frame"))

    async def _dispatch(
        self, unique_id: str, action: str, payload: dict[str, Any], big: bool = False
    ) -> None:
        if not self._accept_calls(action):
            log.info(
                "ignored %r: not answering calls in this registration state",
                action,
                extra={"action": action},
            )
            return
        try:
            if action not in self._known:
                raise OcppError("NotImplemented", f"{action} is not an OCPP {self.version} action")
            handler = self._handlers.get(action)
            if handler is None:
                raise OcppError("NotSupported", f"{action} is not supported by this station")
            if big:
                await asyncio.to_thread(validate, self.version, action, payload)
            else:
                validate(self.version, action, payload)
                self._check_unicode(payload)
            answer = await handler(payload)
            response = answer.payload if isinstance(answer, Reply) else answer
            validate(self.version, action, response, response=True)
        except OcppError as e:
            await self._send_error(unique_id, e.code, e.description, e.details)
            return
        except Exception:
            log.exception("handler for %s failed", action, extra={"action": action})
            await self._send_error(
                unique_id, "InternalError", f"{action} failed inside the station"
            )
            return
        await self._send(json.dumps([CALLRESULT, unique_id, response]))
        if isinstance(answer, Reply):
            answer.then()

    def _check_unicode(self, payload: dict[str, Any]) -> None:
        """JSON may escape a lone surrogate ("\\ud800"), which no UTF-8 store or frame can
        hold: refuse it here rather than fail later, half-done, in the background."""
        try:
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            raise OcppError(self._codes["format"], "a string is not valid Unicode") from e

    async def _send_error(
        self, unique_id: str, code: str, description: str, details: dict[str, Any] | None = None
    ) -> None:
        # Descriptions quote the peer (an action name of a megabyte): keep them to the 255
        # characters OCPP 2.0.1 allows, or the answer may exceed what the CSMS accepts.
        description = description[:255]
        log.info("answering CALLERROR %s: %s", code, description)
        try:
            await self._send(json.dumps([CALLERROR, unique_id, code, description, details or {}]))
        except Exception as e:  # the link may be gone already; the caller reconnects
            log.debug("could not send CALLERROR: %s", e)
