"""Inbound OCPP-J frames for fuzzing, and the oracle that judges the replies.

Frames are what a CSMS (or an attacker posing as one) can put on the websocket:
text or binary, valid or not. The strategies build them from schema-valid
CALLs of the station's actions and then mutate them at three levels: the
payload (drop / add keys, wrong types, over-long strings, edge numbers, deep
nesting), the frame array (message type, unique id, action, arity; CALLRESULT /
CALLERROR to calls never made), and the text (truncation, splices of JSON
tokens, bit flips, non-UTF-8 bytes). Huge frames (1 to 1.5 MB) come from their
own strategy because they are slow.

`check_replies` holds the properties every (frame, replies) pair must satisfy;
it parses the frame itself, strictly (RFC 8259, UTF-8, no NaN), instead of
trusting the daemon's reading of it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.schema_strategies import (
    DICTIONARY,
    INT_EDGES,
    is_valid,
    payloads,
    schema_actions,
)

Frame = str | bytes

CALL, CALLRESULT, CALLERROR = 2, 3, 4

# The actions ChargePoint16 answers (checked against its real table by the tests).
HANDLED_16 = (
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "DataTransfer",
    "GetConfiguration",
    "GetLocalListVersion",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "Reset",
    "SendLocalList",
    "UnlockConnector",
)
KNOWN_16 = schema_actions("1.6")
KNOWN_201 = schema_actions("2.0.1")
# What the daemon answers on top of Core (controller.ocpp.v16.features): level 2 judges
# the live daemon's replies against HANDLED_16 + FEATURES_16.
FEATURES_16 = (
    "CancelReservation",
    "CertificateSigned",
    "ClearChargingProfile",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetCompositeSchedule",
    "GetDiagnostics",
    "GetInstalledCertificateIds",
    "GetLog",
    "InstallCertificate",
    "ReserveNow",
    "SetChargingProfile",
    "SignedUpdateFirmware",
    "TriggerMessage",
    "UpdateFirmware",
)
UNHANDLED_16 = tuple(sorted(KNOWN_16 - set(HANDLED_16)))

ERROR_CODES = {
    "1.6": frozenset(
        {
            "NotImplemented",
            "NotSupported",
            "InternalError",
            "ProtocolError",
            "SecurityError",
            "FormationViolation",
            "PropertyConstraintViolation",
            "OccurenceConstraintViolation",
            "TypeConstraintViolation",
            "GenericError",
        }
    ),
    "2.0.1": frozenset(
        {
            "FormatViolation",
            "GenericError",
            "InternalError",
            "MessageTypeNotSupported",
            "NotImplemented",
            "NotSupported",
            "OccurrenceConstraintViolation",
            "PropertyConstraintViolation",
            "ProtocolError",
            "RpcFrameworkError",
            "SecurityError",
            "TypeConstraintViolation",
        }
    ),
}
# What a payload that breaks its schema may be answered with (1.6).
VIOLATION_CODES_16 = frozenset(
    {
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "ProtocolError",
    }
)
VIOLATION_CODES = {
    "1.6": VIOLATION_CODES_16,
    "2.0.1": frozenset(
        {
            "FormatViolation",
            "PropertyConstraintViolation",
            "OccurrenceConstraintViolation",
            "TypeConstraintViolation",
            "RpcFrameworkError",
        }
    ),
}
DEEP = 100  # nesting beyond this is judged only loosely: parsers may refuse it
HUGE = 1 << 20  # 1 MiB

# --- JSON values --------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(INT_EDGES),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(DICTIONARY),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
unique_ids = st.one_of(
    st.uuids().map(str),
    st.text(max_size=40),
    st.sampled_from(["-1", "", "1", "0", "\ud800", "x" * 37]),
)


def nested(depth: int, leaf: Any = 1) -> Any:
    """`depth` levels of single-element arrays around `leaf` (built without recursion)."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# --- payload mutations -----------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _other_type(value: Any) -> Any:
    """The same datum in another JSON type."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return [value]
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


@st.composite
def mutated_payloads(draw: st.DrawFn, payload: dict[str, Any]) -> Any:
    """One to three mutations at random places of a (valid) payload."""
    value: Any = copy.deepcopy(payload)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(value)))
        op = draw(
            st.sampled_from(
                ["delete", "add", "replace", "retype", "long", "number", "nest", "null"]
            )
        )
        if op == "delete" and path:
            parent = _at(value, path[:-1])
            del parent[path[-1]]
            continue
        target = _at(value, path)
        if op == "add" and isinstance(target, dict):
            target[draw(st.one_of(st.text(max_size=12), st.sampled_from(DICTIONARY)))] = draw(
                json_values
            )
            continue
        if op == "add" and isinstance(target, list):
            target.append(draw(json_values))
            continue
        new: Any
        if op == "retype":
            new = _other_type(target)
        elif op == "long":
            new = draw(st.sampled_from("xA0 é")) * draw(st.integers(1, 700))
        elif op == "number":
            new = draw(st.one_of(st.sampled_from(INT_EDGES), st.floats(allow_nan=False)))
        elif op == "nest":
            new = nested(draw(st.integers(1, 400)), target)
        elif op == "null":
            new = None
        else:
            new = draw(json_values)
        if path:
            _at(value, path[:-1])[path[-1]] = new
        else:
            value = new
    return value


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


# --- frames ------------------------------------------------------------------------------------


@st.composite
def valid_calls(draw: st.DrawFn, actions: Sequence[str], version: str = "1.6") -> list[Any]:
    action = draw(st.sampled_from(sorted(actions)))
    return [CALL, draw(unique_ids), action, draw(payloads(version, action))]


@st.composite
def mutated_calls(draw: st.DrawFn, actions: Sequence[str], version: str = "1.6") -> list[Any]:
    """A valid CALL with its payload mutated (it may or may not still be valid)."""
    frame = draw(valid_calls(actions, version))
    frame[3] = draw(mutated_payloads(frame[3]))
    return frame


@st.composite
def mutated_frames(draw: st.DrawFn, actions: Sequence[str], version: str = "1.6") -> Any:
    """A CALL with its array mutated: wrong parts, wrong arity, or turned into a response."""
    frame: list[Any] = draw(
        st.one_of(valid_calls(actions, version), mutated_calls(actions, version))
    )
    op = draw(
        st.sampled_from(["type", "uid", "action", "payload", "arity", "result", "error", "shape"])
    )
    if op == "type":
        frame[0] = draw(st.sampled_from([0, 1, 3, 4, 5, -1, 2.0, "2", True, None, [], {}]))
    elif op == "uid":
        frame[1] = draw(st.one_of(json_values, st.sampled_from([123, None, ["a"], 1.5, True])))
    elif op == "action":
        frame[2] = draw(
            st.one_of(
                st.text(max_size=30),  # unknown actions
                st.sampled_from(sorted(KNOWN_16 | KNOWN_201)),  # another action: wrong payload
                json_values,
            )
        )
    elif op == "payload":
        frame[3] = draw(json_values.filter(lambda v: not isinstance(v, dict)))
    elif op == "arity":
        cut = draw(st.integers(0, 6))
        frame = frame[:cut] if cut < 4 else frame + draw(st.lists(json_values, max_size=cut - 3))
    elif op == "result":  # a CALLRESULT to a call the station never made
        frame = [CALLRESULT, frame[1], draw(st.one_of(st.just(frame[3]), json_values))]
    elif op == "error":  # a CALLERROR to a call the station never made
        parts = draw(st.lists(json_values, max_size=4))
        frame = [CALLERROR, frame[1], *parts]
    else:
        return draw(st.one_of(json_values, st.just({"0": frame[0], "1": frame[1]})))
    return frame


JSON_TOKENS = [
    '"',
    ",",
    ":",
    "[",
    "]",
    "{",
    "}",
    "\\",
    "\\u",
    "\\ud800",
    "\\udc00\\ud800",
    "NaN",
    "-Infinity",
    "1e999",
    "-0",
    "null",
    "true",
    "\x00",
    "\x7f",
    " ",
    "\n",
    "0" * 5000,  # beyond the interpreter's int() digit limit
]


@st.composite
def text_mutations(draw: st.DrawFn, text: str) -> str:
    """Truncate, delete, duplicate or splice JSON tokens into a serialized frame."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["truncate", "delete", "insert", "duplicate", "char"]))
        if op == "truncate":
            text = text[:at]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        elif op == "insert":
            text = text[:at] + draw(st.sampled_from(JSON_TOKENS)) + text[at:]
        elif op == "duplicate":
            text = text[:at] + text[max(0, at - 10) : at] + text[at:]
        else:
            text = text[:at] + draw(st.characters()) + text[at + 1 :]
    return text


@st.composite
def byte_frames(draw: st.DrawFn, text: str) -> bytes:
    """A frame as a binary message: flipped bits, invalid UTF-8, other encodings, noise."""
    data = bytearray(text.encode("utf-8", "surrogatepass"))
    op = draw(st.sampled_from(["flip", "invalid", "encoding", "raw", "plain"]))
    if op == "flip" and data:
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif op == "invalid":
        at = draw(st.integers(0, len(data)))
        bad = draw(
            st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])
        )
        data[at:at] = bad
    elif op == "encoding":
        codec = draw(st.sampled_from(["utf-16", "utf-32-le", "latin-1", "cp1252"]))
        return text.encode(codec, "replace")
    elif op == "raw":
        return draw(st.binary(max_size=200))
    return bytes(data)


def dumps(frame: Any, ascii_only: bool = True) -> str:
    return json.dumps(frame, ensure_ascii=ascii_only)


@st.composite
def frames(draw: st.DrawFn, actions: Sequence[str] = HANDLED_16, version: str = "1.6") -> Frame:
    """Any inbound frame: valid CALLs, mutated ones, responses to nothing, broken text, bytes."""
    kind = draw(
        st.sampled_from(
            ["valid", "valid", "payload", "payload", "frame", "frame", "text", "bytes", "junk"]
        )
    )
    if kind == "junk":
        return draw(st.one_of(st.text(max_size=60), json_values.map(dumps)))
    if kind == "valid":
        return dumps(draw(valid_calls(actions, version)), draw(st.booleans()))
    if kind == "payload":
        return dumps(draw(mutated_calls(actions, version)), draw(st.booleans()))
    structure = draw(mutated_frames(actions, version))
    if kind == "frame":
        return dumps(structure)
    text = dumps(draw(st.one_of(valid_calls(actions, version), st.just(structure))))
    if kind == "text":
        return draw(text_mutations(text))
    return draw(byte_frames(text))


HUGE_KINDS = (
    "uid",
    "action",
    "idTag",
    "data",
    "keys",
    "nest_payload",
    "nest_text",
    "garbage",
    "bytes",
    "result",
    "local_list",
)
# Kinds whose correct answer is itself over 1 MiB (the id, or every key asked for, is echoed).
ECHOED_KINDS = ("uid", "keys")


@st.composite
def huge_frames(draw: st.DrawFn, kinds: Sequence[str] = HUGE_KINDS) -> Frame:
    """Frames of at least 1 MiB: huge strings, deep nesting, long lists, garbage."""
    size = draw(st.integers(HUGE, HUGE + HUGE // 2))
    fill = draw(st.sampled_from("xZ09é😀"))
    big = fill * (size // len(fill.encode()))
    uid = draw(unique_ids)
    what = draw(st.sampled_from(kinds))
    if what == "uid":
        return dumps([CALL, big, "GetLocalListVersion", {}])
    if what == "action":
        return dumps([CALL, uid, big, {}])
    if what == "idTag":
        return dumps([CALL, uid, "RemoteStartTransaction", {"idTag": big}])
    if what == "data":  # valid: DataTransfer.data has no length limit
        return dumps([CALL, uid, "DataTransfer", {"vendorId": "evsed.fuzz", "data": big}], False)
    if what == "keys":  # valid: 40k unknown keys, each answered in unknownKey
        count = size // 26
        return dumps([CALL, uid, "GetConfiguration", {"key": [f"K{i:021d}" for i in range(count)]}])
    if what == "nest_payload":
        depth = size // 2
        return f'[2,{dumps(uid)},"GetConfiguration",{{"key":{"[" * depth}{"]" * depth}}}]'
    if what == "nest_text":
        return "[" * size
    if what == "garbage":
        return big
    if what == "bytes":
        return b"\xff\xfe" + big.encode("utf-8") + b"\xc3"
    if what == "result":
        return dumps([CALLRESULT, uid, {"data": big}])
    entries = [
        {"idTag": f"T{i:019d}", "idTagInfo": {"status": "Accepted"}} for i in range(size // 60)
    ]
    full = {"listVersion": 7, "updateType": "Full", "localAuthorizationList": entries}
    return dumps([CALL, uid, "SendLocalList", full])


# --- the oracle -------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def max_depth(text: str) -> int:
    """Bracket nesting depth outside strings, without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


@dataclass(frozen=True)
class Reading:
    """How a frame reads, strictly (RFC 8259) and as a lenient parser would."""

    strict: Any  # the strictly parsed message, or None
    strict_ok: bool
    lenient_uid: str | None  # the unique id a lenient reader finds in a CALL-typed frame
    deep: bool

    @property
    def call_uid(self) -> str | None:
        """The unique id of a frame that strictly is a CALL with a string id."""
        m = self.strict
        if self.strict_ok and _is_type(m, CALL) and isinstance(m[1], str):
            return str(m[1])
        return None


def _is_type(message: Any, kind: int) -> bool:
    return (
        isinstance(message, list)
        and len(message) >= 2
        and not isinstance(message[0], bool)
        and isinstance(message[0], int | float | Decimal)
        and message[0] == kind
    )


def read_frame(frame: Frame) -> Reading:
    lenient_text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    deep = max_depth(lenient_text) > DEEP
    strict: Any = None
    strict_ok = False
    if not deep:
        try:
            text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
            strict = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
            strict_ok = True
        except (
            ValueError,
            ArithmeticError,
        ):  # Decimal refuses exponents like 1e99999999999999999999
            pass
    lenient_uid = None
    try:
        lenient = json.loads(lenient_text)
    except (ValueError, RecursionError):
        lenient = None
    if _is_type(lenient, CALL) and isinstance(lenient[1], str):
        lenient_uid = lenient[1]
    return Reading(strict, strict_ok, lenient_uid, deep)


def _parse_reply(text: str) -> list[Any]:
    assert isinstance(text, str), f"reply is not a text frame: {text!r:.200}"
    reply = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    assert isinstance(reply, list) and len(reply) >= 3, f"not an OCPP-J reply: {text:.300}"
    kind = reply[0]
    assert kind in (CALLRESULT, CALLERROR) and not isinstance(kind, bool), text[:300]
    assert isinstance(reply[1], str), f"reply without a string unique id: {text:.300}"
    if kind == CALLRESULT:
        assert len(reply) == 3 and isinstance(reply[2], dict), f"bad CALLRESULT: {text:.300}"
    else:
        assert len(reply) == 5, f"CALLERROR of {len(reply)} elements: {text:.300}"
        assert isinstance(reply[2], str) and isinstance(reply[3], str), text[:300]
        assert isinstance(reply[4], dict), f"CALLERROR details not an object: {text:.300}"
    return reply


def _is_unicode(payload: Any) -> bool:
    """No lone surrogate (which JSON may escape but no UTF-8 store can hold) in any string."""
    try:
        json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_replies(
    frame: Frame,
    replies: Sequence[str],
    version: str,
    handled: Sequence[str],
) -> None:
    """Assert the OCPP-J rules for the replies one inbound frame produced.

    - every reply is a well-formed CALLRESULT / CALLERROR in strict JSON, and a
      CALLERROR carries one of the version's error codes and at most 255
      characters of description;
    - a frame that is strictly a CALL with a string id gets exactly one reply,
      with that id; one that only a lenient parser reads as a CALL, at most one;
    - a CALL of a handled action with a schema-valid payload gets a CALLRESULT
      whose payload validates against the response schema (no InternalError, no
      blame on the peer); an invalid payload gets a constraint-violation code;
      unknown actions get NotImplemented, known unhandled ones NotSupported;
    - nothing but a CALL ever gets a CALLRESULT, and a well-formed response to a
      call never made gets no reply at all.
    """
    parsed = [_parse_reply(text) for text in replies]
    for reply in parsed:
        if reply[0] == CALLERROR:
            assert reply[2] in ERROR_CODES[version], f"not an OCPP {version} error code: {reply}"
            # 2.0.1's limit, for 1.6 too: descriptions quote the peer, and a megabyte
            # answer may be more than the CSMS takes (it drops the link).
            assert len(reply[3]) <= 255, f"a {len(reply[3])}-character error description"
    reading = read_frame(frame)
    uid = reading.call_uid
    if uid is None:
        assert all(r[0] == CALLERROR for r in parsed), f"CALLRESULT to a non-CALL: {parsed}"
        if reading.lenient_uid is not None:
            mine = [r for r in parsed if r[1] == reading.lenient_uid]
            assert len(mine) <= 1, f"{len(mine)} replies to one frame: {parsed}"
        m = reading.strict
        is_response = _is_type(m, CALLRESULT) or _is_type(m, CALLERROR)
        if reading.strict_ok and is_response and isinstance(m[1], str):
            well_formed = (m[0] == CALLRESULT and len(m) == 3 and isinstance(m[2], dict)) or (
                m[0] == CALLERROR and len(m) >= 4
            )
            if well_formed:
                assert not parsed, f"a response to a call never made was answered: {parsed}"
        return
    mine = [r for r in parsed if r[1] == uid]
    assert len(mine) == 1, f"{len(mine)} replies with the CALL's id {uid!r:.80}: {parsed}"
    assert len(parsed) == 1, f"extra replies to one CALL: {parsed}"
    reply = mine[0]
    m = reading.strict
    if len(m) != 4 or not isinstance(m[2], str) or not isinstance(m[3], dict):
        assert reply[0] == CALLERROR, f"malformed CALL answered with a CALLRESULT: {reply}"
        return
    action, payload = m[2], m[3]
    known = KNOWN_16 if version == "1.6" else KNOWN_201
    if action not in known:
        assert reply[0] == CALLERROR and reply[2] == "NotImplemented", reply
        return
    if action not in handled:
        assert reply[0] == CALLERROR and reply[2] == "NotSupported", reply
        return
    if is_valid(version, action, payload) and _is_unicode(payload):
        assert reply[0] == CALLRESULT, f"a schema-valid {action} was refused: {reply}"
        assert is_valid(version, action, reply[2], response=True), (
            f"{action} answer breaks the response schema: {reply}"
        )
    else:
        assert reply[0] == CALLERROR, f"a schema-invalid {action} was accepted: {reply}"
        assert reply[2] in VIOLATION_CODES[version], f"invalid {action} answered with {reply[2]}"
