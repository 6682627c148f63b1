"""Hypothesis strategies for OCPP payloads, derived from the JSON schemas the
`ocpp` package ships, plus an independent validator to judge mutated payloads.

The generator covers the subset of JSON Schema draft 4 those schemas use: object
(properties, required, additionalProperties), enum, string (maxLength, format
date-time / uri), integer and number (minimum, maximum, multipleOf), boolean,
array (items, minItems, maxItems) and local $ref into definitions. Strings and integers are drawn
partly from a fuzzing dictionary (configuration key names, numeric strings of
any length, edge integers), because random text would almost never hit the
values a handler branches on; dates span years 1 to 9999 with any offset.

The validator is deliberately not the daemon's `controller.ocpp.rpc.validate`:
it is jsonschema with our own strict RFC 3339 date-time check, Decimal floats
and an exact (Fraction) multipleOf, so a disagreement between the two shows up
as a failed property. Numbers beyond a double's range count as invalid.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import ocpp
from hypothesis import strategies as st
from jsonschema import Draft4Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

from controller.ocpp.v16.keys import MEASURANDS, core_keys

SCHEMA_DIRS = {"1.6": "v16", "2.0.1": "v201"}

INT_EDGES = [
    0,
    1,
    -1,
    2,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    -(10**30),
    10**400,  # beyond float range
]

# Values a handler branches on, which random text would not find.
CONFIG_KEYS = [*sorted(core_keys(2)), "AuthorizationKey", "UnknownKey", ""]
DICTIONARY = sorted(
    {
        *CONFIG_KEYS,
        *MEASURANDS,
        ",".join(MEASURANDS),
        "Energy.Active.Import.Register,Bogus",
        "0.RST",
        "1.Unknown,2.TSR",
        "١.RST",  # an Arabic-Indic digit: str.isdigit() and int() accept it
        "true",
        "false",
        " TRUE ",
        "yes",
        "0",
        "-1",
        "+5",
        "1_000",
        "١٢",  # Arabic-Indic digits: int() accepts them
        "1e3",
        "0x10",
        "NaN",
        "Infinity",
        "04A1B2C3",
        "DEADBEEF",
        "Core,LocalAuthListManagement",
        "\x00",
        "\ud800",  # a lone surrogate: valid in a JSON string escape, not in UTF-8
        "😀",
        " ",
        *(str(n) for n in INT_EDGES),  # int32 / int64 / float / digit-limit boundaries as text
        "1" + "0" * 308,
    }
)
# Property name -> values worth trying often: configuration key names (ChangeConfiguration,
# GetConfiguration) and the boundaries of the whole numbers a key's value may hold.
PROPERTY_HINTS = {
    "key": CONFIG_KEYS,
    "value": ["true", "false", "0", "-1", "1" + "0" * 308, *(str(n) for n in INT_EDGES)],
}
DATE_MIN = datetime(1, 1, 1)
DATE_MAX = datetime(9999, 12, 31, 23, 59, 59, 999999)

_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:Z|([+-])(\d\d):(\d\d))$"
)


def schema_path(version: str, action: str, response: bool) -> Path:
    suffix = "Response" if response else ("" if version == "1.6" else "Request")
    return Path(ocpp.__file__).parent / SCHEMA_DIRS[version] / "schemas" / f"{action}{suffix}.json"


@cache
def load_schema(version: str, action: str, response: bool = False) -> dict[str, Any]:
    """A request or response schema, floats as Decimal (for multipleOf 0.1)."""
    text = schema_path(version, action, response).read_text(encoding="utf-8-sig")
    schema: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return schema


@cache
def schema_actions(version: str) -> frozenset[str]:
    """Every action with a request schema in the version (read independently of the daemon)."""
    folder = Path(ocpp.__file__).parent / SCHEMA_DIRS[version] / "schemas"
    names = (p.stem for p in folder.glob("*.json"))
    return frozenset(n.removesuffix("Response").removesuffix("Request") for n in names)


# --- strict RFC 3339 date-time, for the oracle ------------------------------------------

_format_checker = FormatChecker(formats=())


@_format_checker.checks("date-time")
def is_rfc3339(value: object) -> bool:
    """RFC 3339 section 5.6 with upper-case T and Z, as OCPP peers send them."""
    if not isinstance(value, str):
        return True  # format applies to strings only; "type" judges the rest
    m = _RFC3339.match(value)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return m.group(8) is None or (int(m.group(9)) <= 23 and int(m.group(10)) <= 59)


def _multiple_of(
    validator: Any, step: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """multipleOf in exact arithmetic, for numbers a double can hold (RFC 8259 section 6:
    beyond that, JSON numbers are not interoperable, so they do not count as valid)."""
    if not validator.is_type(instance, "number"):
        return
    try:
        if not math.isfinite(float(instance)):
            raise OverflowError
    except OverflowError:
        yield ValidationError(f"{instance!r} is beyond the range of a double")
        return
    if (Fraction(str(instance)) / Fraction(str(step))).denominator != 1:
        yield ValidationError(f"{instance!r} is not a multiple of {step}")


OracleValidator = validators.extend(Draft4Validator, {"multipleOf": _multiple_of})


@cache
def oracle_validator(version: str, action: str, response: bool = False) -> Any:
    return OracleValidator(load_schema(version, action, response), format_checker=_format_checker)


def is_valid(version: str, action: str, payload: Any, response: bool = False) -> bool:
    """Whether `payload` (parsed with Decimal floats) satisfies the schema."""
    return oracle_validator(version, action, response).is_valid(payload)


# --- generators -------------------------------------------------------------------------


def integers(low: int | None = None, high: int | None = None) -> st.SearchStrategy[int]:
    """Small, arbitrary and edge-case integers within [low, high]."""
    edges = [n for n in INT_EDGES if (low is None or n >= low) and (high is None or n <= high)]
    options = [st.integers(low, high)]
    if edges:
        options.append(st.sampled_from(edges))
    return st.one_of(options)


def numeric_strings(max_len: int) -> st.SearchStrategy[str]:
    """Whole numbers as text, from "0" to hundreds of digits (cheap to draw)."""
    return st.builds(
        lambda sign, head, zeros: (sign + head + "0" * zeros)[:max_len],
        st.sampled_from(["", "", "-", " ", "+"]),
        st.text("0123456789", min_size=1, max_size=6),
        st.one_of(st.integers(0, 8), st.integers(0, max_len), st.just(max_len)),
    )


def strings(max_len: int | None, hints: Sequence[str] = ()) -> st.SearchStrategy[str]:
    """Text, dictionary words, numbers as text, and strings right at the length limit;
    `hints` (values this property is known to take) are drawn most of the time."""
    limit = 600 if max_len is None else max_len
    words = [w for w in DICTIONARY if len(w) <= limit]
    options: list[st.SearchStrategy[str]] = [st.text(max_size=min(limit, 40))]
    if words:
        options.append(st.sampled_from(words))
    if limit > 0:
        options.append(numeric_strings(limit))
        options.append(st.integers(0, limit).map(lambda n: "x" * n))  # right at the limit
    generic = st.one_of(options)
    fitting = [h for h in hints if len(h) <= limit]
    if not fitting:
        return generic
    hinted = st.sampled_from(fitting)
    return st.booleans().flatmap(lambda use_hint: hinted if use_hint else generic)


any_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def date_times(draw: st.DrawFn) -> str:
    """RFC 3339 date-times from year 1 to 9999, any fraction length, Z or any offset."""
    when = draw(
        st.one_of(
            st.datetimes(min_value=DATE_MIN, max_value=DATE_MAX),
            st.sampled_from([DATE_MIN, DATE_MAX]),
        )
    )
    text = when.replace(microsecond=0).isoformat()
    digits = draw(st.integers(0, 9))
    if digits:
        text += "." + f"{when.microsecond:06d}{'0' * 3}"[:digits]
    minutes = draw(st.one_of(st.none(), st.integers(-(23 * 60 + 59), 23 * 60 + 59)))
    if minutes is None:
        return text + "Z"
    sign = "-" if minutes < 0 else "+"
    offset = timedelta(minutes=abs(minutes))
    hours, rest = divmod(int(offset.total_seconds()) // 60, 60)
    return f"{text}{sign}{hours:02d}:{rest:02d}"


def from_schema(
    schema: dict[str, Any], root: dict[str, Any] | None = None, name: str = ""
) -> st.SearchStrategy[Any]:
    """Values valid against `schema` (see the module docstring for what is covered);
    `name` is the property's name, for the dictionary hints."""
    root = schema if root is None else root
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/definitions/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        return from_schema(root["definitions"][ref.removeprefix("#/definitions/")], root, name)
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, root, k) for k, v in properties.items() if k in required},
            optional={
                k: from_schema(v, root, k) for k, v in properties.items() if k not in required
            },
        )
    if kind == "array":
        min_items = int(schema.get("minItems", 0))
        max_items = int(schema.get("maxItems", max(min_items, 4)))
        items = from_schema(schema.get("items", {}), root, name)
        return st.lists(items, min_size=min_items, max_size=max_items)
    if kind == "string":
        if schema.get("format") == "date-time":
            return date_times()
        if schema.get("format") == "uri":
            return st.sampled_from(["https://example.com/x", "ftp://h/p", "urn:x"])
        return strings(schema.get("maxLength"), PROPERTY_HINTS.get(name, ()))
    low, high = schema.get("minimum"), schema.get("maximum")
    if kind == "integer":
        return integers(
            None if low is None else math.ceil(low), None if high is None else math.floor(high)
        )
    if kind == "number":
        if low is not None or high is not None:
            return st.floats(
                None if low is None else float(low),
                None if high is None else float(high),
                allow_nan=False,
                allow_infinity=False,
            )
        if "multipleOf" in schema:
            step = Decimal(schema["multipleOf"])
            # k/10 as a float prints as the exact decimal, which the peer re-reads exactly;
            # from 2**53 on every double is a whole number, so a multiple of 0.1 as well.
            steps = st.one_of(st.integers(-(10**9), 10**9), st.integers(-(10**300), 10**300))
            return steps.map(lambda k: float(Decimal(k) * step))
        return st.one_of(integers(), st.floats(allow_nan=False, allow_infinity=False))
    if kind == "boolean":
        return st.booleans()
    if kind is None and not {"properties", "items", "format"} & schema.keys():
        return any_json  # no constraint at all (2.0.1 DataTransfer.data)
    raise ValueError(f"unsupported schema {schema!r}")


def payloads(
    version: str, action: str, response: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid request (or response) payloads for `action`."""
    schema = load_schema(version, action, response)
    strategy: st.SearchStrategy[dict[str, Any]] = from_schema(schema)
    return strategy
