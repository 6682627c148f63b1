"""Station configuration: one TOML file parsed into typed, frozen dataclasses.

An installer edits this file by hand on site, so validation does not stop at
the first mistake: it collects every problem in one pass and reports each with
its key path and reason, never a traceback. Fixing the file then takes one
round trip instead of one per mistake.

The CSMS password is a secret: it never appears in a problem message or a repr.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

from controller.ocpp.v16.keys import (
    ConfigurationKeys,
    KeySpec,
    Kind,
    core_keys,
    parse_bool,
    split_csl,
)

FILE: Final = "(file)"  # the path of problems that concern the file as a whole
DEFAULT_STATE_DIR: Final = Path("/var/lib/evsed")
CONTROL_SOCKET_NAME: Final = "control.sock"
# sizeof(sockaddr_un.sun_path) on Linux, including the terminating NUL byte.
MAX_SOCKET_PATH_BYTES: Final = 108
MAX_CONNECTORS: Final = 2
OCPP_VERSIONS: Final = ("1.6",)
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
HARDWARE_IMPLEMENTATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "pilot": ("sim",),
    "contactor": ("sim",),
    "meter": ("sim",),
    "reader": ("sim", "none"),
}

# The station id is the last path segment of the websocket URL, so it is kept
# to characters that need no escaping there.
_STATION_ID = re.compile(r"[A-Za-z0-9._-]+")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# --- the result -------------------------------------------------------------


def _no_keys() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class StationConfig:
    """Identity of the charge point, as sent to the CSMS."""

    id: str
    vendor: str = "evsed"
    model: str = "evsed"
    serial_number: str = ""  # "" means: do not send chargePointSerialNumber


@dataclass(frozen=True, slots=True)
class CsmsConfig:
    """How to reach the central system. `password` is a secret and stays out of reprs."""

    url: str
    password: str = field(default="", repr=False)  # "" means: no HTTP Basic auth
    response_timeout: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    boot_retry: float = 60.0


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Where evsed keeps what must survive a restart (absolute, resolved)."""

    dir: Path = DEFAULT_STATE_DIR


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """The local control socket; always a concrete path (default: <state.dir>/control.sock)."""

    socket: Path = DEFAULT_STATE_DIR / CONTROL_SOCKET_NAME


@dataclass(frozen=True, slots=True)
class HardwareConfig:
    """Which implementation drives each hardware part, and meter timing."""

    pilot: str = "sim"
    contactor: str = "sim"
    meter: str = "sim"
    reader: str = "sim"  # or "none": no RFID reader fitted
    meter_poll_interval: float = 1.0
    meter_offline_after: float = 10.0


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One outlet. Its OCPP connectorId is its 1-based position in Config.connectors."""

    max_current: float  # A per phase: the installation limit, deliberately without a default
    phases: int = 3
    lock: bool = False  # True: socket outlet with a lock actuator; False: fixed cable
    ventilation: bool = False  # True: pilot state D is accepted


@dataclass(frozen=True, slots=True)
class OcppConfig:
    """Protocol choice and the initial OCPP configuration-key values (OCPP string form)."""

    version: str = "1.6"
    heartbeat_on_idle_only: bool = True
    # Read-only view; excluded from hashing because a mapping is not hashable.
    keys: Mapping[str, str] = field(default_factory=_no_keys, hash=False)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Config:
    station: StationConfig
    csms: CsmsConfig
    state: StateConfig
    control: ControlConfig
    hardware: HardwareConfig
    connectors: tuple[ConnectorConfig, ...]
    ocpp: OcppConfig
    logging: LoggingConfig

    @property
    def websocket_url(self) -> str:
        """The URL to connect to: OCPP-J puts the charge point id after the CSMS URL."""
        return f"{self.csms.url.rstrip('/')}/{self.station.id}"


# Instances holding the defaults, so the parser and the dataclasses cannot disagree.
_STATION = StationConfig(id="")
_CSMS = CsmsConfig(url="")
_HARDWARE = HardwareConfig()
_CONNECTOR = ConnectorConfig(max_current=0.0)
_OCPP = OcppConfig()
_LOGGING = LoggingConfig()


# --- problems ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration, located by its key path."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


# --- reading tables while collecting problems --------------------------------


class _Missing:
    pass


_MISSING: Final = _Missing()

Check = Callable[[Any], str | None]


def _join(prefix: str, key: object) -> str:
    """Key path as an installer would write it, quoting keys that TOML would quote."""
    text = str(key)
    segment = text if _BARE_KEY.fullmatch(text) else json.dumps(text, ensure_ascii=False)
    return f"{prefix}.{segment}" if prefix else segment


def _type_name(value: object) -> str:
    """The TOML name of a value's type, for 'expected X, got Y' messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, datetime | date | time):
        return "date/time"
    return type(value).__name__


def _expected(what: str, value: object) -> str:
    return f"expected {what}, got {_type_name(value)}"


def _fmt(number: float) -> str:
    return f"{number:g}"


class _Table:
    """One TOML table being read: records problems instead of raising, and
    remembers which keys it consumed so the leftovers can be reported as unknown."""

    def __init__(self, problems: list[Problem], path: str, raw: object) -> None:
        self._problems = problems
        self.path = path
        self._bad: set[str] = set()
        self._seen: set[str] = set()
        # A table of the wrong type is one problem; its keys are not also "required".
        self._broken = False
        if isinstance(raw, _Missing):
            raw = {}
        elif not isinstance(raw, Mapping):
            problems.append(Problem(path or FILE, _expected("a table", raw)))
            self._broken = True
            raw = {}
        self._raw: Mapping[str, object] = raw

    def key_path(self, key: str) -> str:
        return _join(self.path, key)

    def problem(self, key: str, reason: str) -> None:
        self._problems.append(Problem(self.key_path(key), reason))
        self._bad.add(key)

    def required(self, key: str) -> None:
        if not self._broken:
            self.problem(key, "required")
        self._bad.add(key)

    def ok(self, *keys: str) -> bool:
        """True when none of `keys` had a problem, so cross-checks on them are meaningful."""
        return not self._bad.intersection(keys)

    def take(self, key: str) -> object:
        self._seen.add(key)
        return self._raw.get(key, _MISSING)

    def table(self, key: str) -> _Table:
        return _Table(self._problems, self.key_path(key), self.take(key))

    def entries(self) -> Iterator[tuple[str, object]]:
        """Every entry, for tables whose keys are data rather than schema."""
        for key, value in self._raw.items():
            self._seen.add(key)
            yield key, value

    def finish(self) -> None:
        for key in self._raw:
            if key not in self._seen:
                self._problems.append(Problem(self.key_path(key), "unknown key"))

    def _checked(self, key: str, value: Any, check: Check | None) -> None:
        if check is not None and (reason := check(value)) is not None:
            self.problem(key, reason)

    def string(self, key: str, default: str | None, check: Check | None = None) -> str:
        """A string; `default=None` makes the key required."""
        value = self.take(key)
        if isinstance(value, _Missing):
            if default is None:
                self.required(key)
                return ""
            return default
        if not isinstance(value, str):
            self.problem(key, _expected("a string", value))
            return default or ""
        self._checked(key, value, check)
        return value

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        def check(value: str) -> str | None:
            if value in allowed:
                return None
            return f"must be one of: {', '.join(allowed)} (got {value!r})"

        return self.string(key, default, check)

    def number(self, key: str, default: float | None, check: Check | None = None) -> float:
        """A float; TOML integers are accepted, booleans never are."""
        value = self.take(key)
        if isinstance(value, _Missing):
            if default is None:
                self.required(key)
                return 0.0
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, _expected("a number", value))
            return 0.0
        try:
            number = float(value)
        except OverflowError:
            self.problem(key, "number out of range")
            return 0.0
        if not math.isfinite(number):
            self.problem(key, "must be a finite number")
            return 0.0
        self._checked(key, number, check)
        return number

    def integer(self, key: str, default: int, allowed: tuple[int, ...]) -> int:
        value = self.take(key)
        if isinstance(value, _Missing):
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, _expected("an integer", value))
            return default
        if value not in allowed:
            self.problem(key, f"must be {' or '.join(map(str, allowed))}, got {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.take(key)
        if isinstance(value, _Missing):
            return default
        if not isinstance(value, bool):
            self.problem(key, _expected("true or false", value))
            return default
        return value


def _bounds(
    *,
    above: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    unit: str = "",
) -> Check:
    """A range check whose message states the allowed range and the value found."""
    suffix = f" {unit}" if unit else ""

    def check(value: float) -> str | None:
        got = f", got {_fmt(value)}"
        if above is not None and not value > above:
            return f"must be greater than {_fmt(above)}{suffix}{got}"
        if minimum is not None and maximum is not None and not minimum <= value <= maximum:
            return f"must be between {_fmt(minimum)} and {_fmt(maximum)}{suffix}{got}"
        if minimum is not None and not value >= minimum:
            return f"must be at least {_fmt(minimum)}{suffix}{got}"
        if maximum is not None and not value <= maximum:
            return f"must be at most {_fmt(maximum)}{suffix}{got}"
        return None

    return check


def _length(low: int, high: int) -> Check:
    def check(value: str) -> str | None:
        if low <= len(value) <= high:
            return None
        if low == 0:
            return f"must be at most {high} characters, got {len(value)}"
        return f"must be {low} to {high} characters, got {len(value)}"

    return check


# --- sections ---------------------------------------------------------------


def _check_station_id(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > 48:
        return f"must be at most 48 characters, got {len(value)}"
    if not _STATION_ID.fullmatch(value):
        return (
            f"{value!r} may only contain A-Z a-z 0-9 . _ - "
            "(it becomes the last path segment of the websocket URL)"
        )
    if value in (".", ".."):
        return f"{value!r} is not usable as a URL path segment"
    return None


def _parse_station(t: _Table) -> StationConfig:
    station = StationConfig(
        id=t.string("id", None, _check_station_id),
        vendor=t.string("vendor", _STATION.vendor, _length(1, 20)),
        model=t.string("model", _STATION.model, _length(1, 20)),
        serial_number=t.string("serial_number", _STATION.serial_number, _length(0, 25)),
    )
    t.finish()
    return station


def _check_csms_url(url: str) -> str | None:
    """Why `url` is not a usable CSMS endpoint (every reason at once).

    Never echoes the URL: it may hold credentials.
    """
    if not url:
        return "must not be empty"
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # reading the port is what rejects a malformed one
    except ValueError:
        return "not a valid URL"
    reasons = []
    if parts.scheme not in ("ws", "wss"):
        scheme = f"'{parts.scheme}'" if parts.scheme else "none"
        reasons.append(f"scheme must be ws or wss, got {scheme}")
    if "@" in parts.netloc:
        reasons.append("put credentials in csms.password")
    if not parts.hostname:
        reasons.append("must include a host")
    if port == 0:
        reasons.append("port must be between 1 and 65535")
    if "?" in url or "#" in url:
        reasons.append(
            "must not have a query or fragment (the station id is appended as a path segment)"
        )
    return "; ".join(reasons) or None


def _check_password(value: str) -> str | None:
    """Why the password is unusable. Never echoes it, not even its length."""
    if value == "":
        return None
    if not all(" " <= ch <= "~" for ch in value):
        return "must contain only printable ASCII characters"
    if len(value) < 16:
        return "too short: must be 16 to 40 characters"
    if len(value) > 40:
        return "too long: must be 16 to 40 characters"
    return None


def _parse_csms(t: _Table) -> CsmsConfig:
    url = t.string("url", None, _check_csms_url)
    password = t.string("password", _CSMS.password, _check_password)
    response_timeout = t.number(
        "response_timeout", _CSMS.response_timeout, _bounds(above=0, maximum=300, unit="s")
    )
    reconnect_min = t.number("reconnect_min", _CSMS.reconnect_min, _bounds(above=0, unit="s"))
    reconnect_max = t.number("reconnect_max", _CSMS.reconnect_max)
    if t.ok("reconnect_min", "reconnect_max") and reconnect_max < reconnect_min:
        t.problem(
            "reconnect_max",
            f"must be at least csms.reconnect_min ({_fmt(reconnect_min)} s), "
            f"got {_fmt(reconnect_max)}",
        )
    boot_retry = t.number("boot_retry", _CSMS.boot_retry, _bounds(above=0, unit="s"))
    t.finish()
    return CsmsConfig(
        url=url,
        password=password,
        response_timeout=response_timeout,
        reconnect_min=reconnect_min,
        reconnect_max=reconnect_max,
        boot_retry=boot_retry,
    )


def _check_path(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if "\0" in value:
        return "must not contain a NUL character"
    try:
        os.fsencode(value)
    except UnicodeError:
        return "cannot be encoded for the file system"
    return None


def _resolve(t: _Table, key: str, value: str, base_dir: Path | None) -> Path | None:
    """Absolute, resolved path; relative ones count from the config file's directory."""
    path = Path(value)
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # e.g. a symlink loop
        t.problem(key, f"cannot resolve path: {exc}")
        return None


def _parse_state(t: _Table, base_dir: Path | None) -> Path | None:
    value = t.string("dir", str(DEFAULT_STATE_DIR), _check_path)
    t.finish()
    return _resolve(t, "dir", value, base_dir) if t.ok("dir") else None


def _parse_control(t: _Table, state_dir: Path | None, base_dir: Path | None) -> Path | None:
    value = t.string("socket", "", lambda v: _check_path(v) if v else None)
    t.finish()
    if not t.ok("socket"):
        return None
    if value:
        socket = _resolve(t, "socket", value, base_dir)
        hint = ""
    else:
        if state_dir is None:
            return None  # state.dir is already reported
        socket = state_dir / CONTROL_SOCKET_NAME
        hint = " (derived from state.dir; set control.socket to a shorter path)"
    if socket is None:
        return None
    try:
        size = len(os.fsencode(socket))
    except UnicodeError:
        t.problem("socket", "path cannot be encoded for the file system")
        return None
    if size >= MAX_SOCKET_PATH_BYTES:
        t.problem(
            "socket",
            f"{str(socket)!r} is {size} bytes; a Unix socket path must be shorter than "
            f"{MAX_SOCKET_PATH_BYTES} bytes{hint}",
        )
        return None
    return socket


def _parse_hardware(t: _Table) -> HardwareConfig:
    parts = {
        part: t.choice(part, getattr(_HARDWARE, part), allowed)
        for part, allowed in HARDWARE_IMPLEMENTATIONS.items()
    }
    poll = t.number(
        "meter_poll_interval",
        _HARDWARE.meter_poll_interval,
        _bounds(minimum=0.1, maximum=60, unit="s"),
    )
    offline_after = t.number("meter_offline_after", _HARDWARE.meter_offline_after)
    if t.ok("meter_poll_interval", "meter_offline_after") and not offline_after > poll:
        t.problem(
            "meter_offline_after",
            f"must be greater than hardware.meter_poll_interval ({_fmt(poll)} s), "
            f"got {_fmt(offline_after)}",
        )
    t.finish()
    return HardwareConfig(
        pilot=parts["pilot"],
        contactor=parts["contactor"],
        meter=parts["meter"],
        reader=parts["reader"],
        meter_poll_interval=poll,
        meter_offline_after=offline_after,
    )


def _parse_connector(t: _Table) -> ConnectorConfig:
    connector = ConnectorConfig(
        max_current=t.number("max_current", None, _bounds(minimum=6, maximum=80, unit="A")),
        phases=t.integer("phases", _CONNECTOR.phases, (1, 3)),
        lock=t.boolean("lock", _CONNECTOR.lock),
        ventilation=t.boolean("ventilation", _CONNECTOR.ventilation),
    )
    t.finish()
    return connector


def _parse_connectors(
    problems: list[Problem], raw: object
) -> tuple[tuple[ConnectorConfig, ...], int]:
    """The connectors, and the count to size the OCPP key registry with (1 if unusable)."""
    if isinstance(raw, _Missing):
        problems.append(Problem("connectors", "required"))
        return (), 1
    if not isinstance(raw, list):
        problems.append(
            Problem("connectors", _expected("an array of tables ([[connectors]])", raw))
        )
        return (), 1
    count = len(raw)
    if not 1 <= count <= MAX_CONNECTORS:
        problems.append(
            Problem("connectors", f"must have 1 to {MAX_CONNECTORS} entries, got {count}")
        )
    connectors = tuple(
        _parse_connector(_Table(problems, f"connectors[{number}]", entry))
        for number, entry in enumerate(raw, start=1)  # 1-based, as an installer counts
    )
    return connectors, count if 1 <= count <= MAX_CONNECTORS else 1


def _ocpp_string(value: object) -> str | None:
    """TOML value in the string form OCPP exchanges; None for types OCPP keys cannot hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def _normalise(spec: KeySpec, value: str) -> str:
    """Canonical form of an accepted value, so ' 300' and 'TRUE' reach the CSMS as '300', 'true'."""
    if spec.kind is Kind.BOOL:
        return "true" if parse_bool(value) else "false"
    if spec.kind is Kind.INT:
        return str(int(value.strip()))
    return ",".join(split_csl(value))


def _parse_ocpp(t: _Table, number_of_connectors: int) -> OcppConfig:
    version = t.choice("version", _OCPP.version, OCPP_VERSIONS)
    on_idle_only = t.boolean("heartbeat_on_idle_only", _OCPP.heartbeat_on_idle_only)
    keys_table = t.table("keys")
    specs = core_keys(number_of_connectors)
    registry = ConfigurationKeys(specs)
    accepted: dict[str, str] = {}
    for name, raw in keys_table.entries():
        spec = specs.get(name)
        if spec is None:
            keys_table.problem(name, "unknown OCPP configuration key")
            continue
        if spec.readonly:
            keys_table.problem(name, "read-only key, evsed sets it itself")
            continue
        value = _ocpp_string(raw)
        if value is None:
            keys_table.problem(name, _expected("a string, integer or boolean", raw))
            continue
        reason = registry.check(name, value)
        if reason is not None:
            keys_table.problem(name, reason)
            continue
        accepted[name] = _normalise(spec, value)
    t.finish()
    return OcppConfig(
        version=version,
        heartbeat_on_idle_only=on_idle_only,
        keys=MappingProxyType(accepted),
    )


def _parse_logging(t: _Table) -> LoggingConfig:
    logging = LoggingConfig(level=t.choice("level", _LOGGING.level, LOG_LEVELS))
    t.finish()
    return logging


# --- entry points -----------------------------------------------------------


def parse_config(data: Mapping[str, Any], base_dir: Path | None = None) -> Config:
    """Validate an already-parsed TOML document.

    Relative paths resolve against `base_dir` (the config file's directory),
    or the working directory when None. Nothing is created on disk. Raises
    ConfigError listing every problem found.
    """
    if not isinstance(data, Mapping):
        raise ConfigError([Problem(FILE, _expected("a table", data))])
    problems: list[Problem] = []
    root = _Table(problems, "", data)
    station = _parse_station(root.table("station"))
    csms = _parse_csms(root.table("csms"))
    state_dir = _parse_state(root.table("state"), base_dir)
    socket = _parse_control(root.table("control"), state_dir, base_dir)
    hardware = _parse_hardware(root.table("hardware"))
    connectors, number_of_connectors = _parse_connectors(problems, root.take("connectors"))
    ocpp = _parse_ocpp(root.table("ocpp"), number_of_connectors)
    logging = _parse_logging(root.table("logging"))
    root.finish()
    if problems or state_dir is None or socket is None:
        raise ConfigError(problems)
    return Config(
        station=station,
        csms=csms,
        state=StateConfig(dir=state_dir),
        control=ControlConfig(socket=socket),
        hardware=hardware,
        connectors=connectors,
        ocpp=ocpp,
        logging=logging,
    )


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the TOML file at `path`; raises ConfigError, never anything else
    for a bad or unreadable file."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError([Problem(FILE, f"cannot read {file}: {reason}")]) from None
    try:
        # utf-8-sig: tolerate the byte-order mark some Windows editors add.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([Problem(FILE, f"{file} is not valid UTF-8 (at line {line})")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        if "(at end of document)" in message:
            # tomllib gives no line here; the last line is where the reader should look.
            last_line = text.count("\n") + (0 if text.endswith("\n") else 1)
            message = message.replace(
                "(at end of document)", f"(at end of document, line {last_line})"
            )
        raise ConfigError([Problem(FILE, f"TOML syntax error in {file}: {message}")]) from None
    return parse_config(data, base_dir=file.absolute().parent)
