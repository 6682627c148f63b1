"""Station configuration: one TOML file parsed into typed, frozen dataclasses.

An installer edits this file by hand on site, so validation does not stop at
the first mistake: it collects every problem in one pass and reports each with
its key path and reason, never a traceback. Fixing the file then takes one
round trip instead of one per mistake.

The CSMS password is a secret: it never appears in a problem message or a repr.

The board wiring ([board], the wiring keys of [[connectors]], [[meters]]) is
checked the same way: a pin, PWM channel, ADC channel or SPI chip select used
twice is a problem on the key the installer wrote, naming the other user, so
a miswired HAT is caught before the first GPIO is touched.
"""

from __future__ import annotations

import importlib.util
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

from controller.ocpp.v16.features import all_keys
from controller.ocpp.v16.keys import (
    ConfigurationKeys,
    KeySpec,
    Kind,
    parse_bool,
    split_csl,
)
from controller.ocpp.v201.device_model import check_initial

FILE: Final = "(file)"  # the path of problems that concern the file as a whole
DEFAULT_STATE_DIR: Final = Path("/var/lib/evsed")
CONTROL_SOCKET_NAME: Final = "control.sock"
# sizeof(sockaddr_un.sun_path) on Linux, including the terminating NUL byte.
MAX_SOCKET_PATH_BYTES: Final = 108
MAX_CONNECTORS: Final = 2
OCPP_VERSIONS: Final = ("1.6", "2.0.1")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
HARDWARE_IMPLEMENTATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "pilot": ("sim", "gpio"),  # gpio: sysfs hardware PWM + SPI ADC
    "contactor": ("sim", "gpio"),  # gpio: also RCM, lock, emergency stop and LED
    "meter": ("sim", "modbus"),  # modbus: Modbus RTU, one [[meters]] entry per connector
    "reader": ("sim", "mfrc522", "none"),
}
CABLES: Final = ("fixed", "socket")
ADC_MODELS: Final = ("mcp3008", "mcp3208")
ADC_CHANNELS: Final = 8  # both ADC models have channels 0..7
GPIO_PINS: Final = range(28)  # BCM numbers brought out on the 40-pin header
# Hardware-PWM pins and the sysfs channel each can be: Pi 1-4 have PWM0 on 12/18 and
# PWM1 on 13/19; the Pi 5 (RP1) has four channels, 18 and 19 being channels 2 and 3.
PWM_PIN_CHANNELS: Final[Mapping[int, tuple[int, ...]]] = {
    12: (0,),
    13: (1,),
    18: (0, 2),
    19: (1, 3),
}
# Serial ports that are the UART on GPIO14 (TXD) and GPIO15 (RXD).
UART_PORTS: Final = ("/dev/serial0", "/dev/ttyAMA0", "/dev/ttyS0")
BAUD_RATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITIES: Final = ("N", "E", "O")


@dataclass(frozen=True, slots=True)
class ConnectorWiring:
    """Default wiring of one connector: BCM GPIO numbers, sysfs PWM and ADC channels."""

    pwm_pin: int
    pwm_channel: int
    cp_adc_channel: int
    pp_adc_channel: int  # used for socket outlets only
    contactor_pin: int
    contactor_feedback_pin: int
    rcm_fault_pin: int
    rcm_test_pin: int
    lock_pin: int  # used with lock = true only
    lock_feedback_pin: int


# The documented evsed reference HAT, by 1-based connector index. It keeps clear of
# SPI0 (GPIO7-11: ADC on CE1, RFID reader on CE0), the reader's reset (GPIO25) and
# the UART (GPIO14/15), so the defaults of one or two connectors never conflict.
DEFAULT_WIRING: Final[Mapping[int, ConnectorWiring]] = MappingProxyType(
    {
        1: ConnectorWiring(
            pwm_pin=12,
            pwm_channel=0,
            cp_adc_channel=0,
            pp_adc_channel=1,
            contactor_pin=17,
            contactor_feedback_pin=27,
            rcm_fault_pin=22,
            rcm_test_pin=23,
            lock_pin=5,
            lock_feedback_pin=6,
        ),
        2: ConnectorWiring(
            pwm_pin=13,
            pwm_channel=1,
            cp_adc_channel=2,
            pp_adc_channel=3,
            contactor_pin=24,
            contactor_feedback_pin=16,
            rcm_fault_pin=20,
            rcm_test_pin=21,
            lock_pin=26,
            lock_feedback_pin=4,
        ),
    }
)
_WIRING_1: Final = DEFAULT_WIRING[1]

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
    # Free vend (home wallboxes without a reader): plugging in starts a transaction
    # under this idTag, with no card and no CSMS authorization. "" = off.
    free_vend_id_tag: str = ""


@dataclass(frozen=True, slots=True)
class CsmsConfig:
    """How to reach the central system. `password` is a secret and stays out of reprs."""

    url: str
    password: str = field(default="", repr=False)  # "" means: no HTTP Basic auth
    response_timeout: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    boot_retry: float = 60.0
    # OCPP security profile (1.6 security whitepaper): 0 none, 1 Basic auth, 2 TLS + Basic
    # auth, 3 TLS with a client certificate. The CSMS may raise it later, never lower it.
    security_profile: int = 0
    # PEM files an installer may provide; imported into <state.dir>/certs once at start.
    ca_certificate: Path | None = None  # the CSMS root certificate(s)
    client_certificate: Path | None = None  # the station's certificate (chain), profile 3
    client_key: Path | None = None  # its private key


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Where evsed keeps what must survive a restart (absolute, resolved)."""

    dir: Path = DEFAULT_STATE_DIR
    # Disk the queue of undelivered transaction events may use (MB). Beyond it,
    # periodic meter values are thinned; start and stop events are always kept.
    queue_budget_mb: float = 32.0


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """The local control socket; always a concrete path (default: <state.dir>/control.sock)."""

    socket: Path = DEFAULT_STATE_DIR / CONTROL_SOCKET_NAME


@dataclass(frozen=True, slots=True)
class HardwareConfig:
    """Which implementation drives each hardware part, meter timing and the watchdog."""

    pilot: str = "sim"  # or "gpio": sysfs hardware PWM + SPI ADC
    contactor: str = "sim"  # or "gpio"
    meter: str = "sim"  # or "modbus"
    reader: str = "sim"  # or "mfrc522"; "none": no RFID reader fitted
    meter_poll_interval: float = 1.0
    meter_offline_after: float = 10.0
    # True: the real drivers run against hw-sim's register-level simulators, so the
    # driver code is exercised on a PC (hardware-in-the-loop tests).
    simulate_board: bool = False
    # True: the driver-interface simulation appends every pilot and contactor change
    # to <state.dir>/sim-events.jsonl, so tests can check the safety invariants.
    sim_event_log: bool = False
    watchdog: str = ""  # hardware watchdog device, e.g. "/dev/watchdog"; "" = not used
    watchdog_timeout: int = 15  # s, 5..60 (the kernel API takes whole seconds)


@dataclass(frozen=True, slots=True)
class BoardConfig:
    """How the Pi is wired to the pilot ADC, the RFID reader and the station inputs.

    Read only by the real drivers; the defaults describe the evsed reference HAT.
    GPIO numbers are BCM numbers; None means "not fitted".
    """

    # The pwmchip index changes with kernel and overlays, so the chip is found by
    # a substring of its sysfs device path ("" = the only chip there is).
    pwm_chip: str = ""
    pwm_sysfs: str = "/sys/class/pwm"
    adc: str = "mcp3008"  # or "mcp3208"; both have channels 0..7
    adc_spi_bus: int = 0
    adc_spi_device: int = 1  # SPI0 CE1 (GPIO7)
    # CP volts = (ADC volts - cp_offset) * cp_gain: set by the board's CP divider and
    # offset, so board-specific; the defaults map -12..+12 V into 0.05..3.25 V.
    cp_gain: float = 7.5
    cp_offset: float = 1.65  # V at the ADC input for CP 0 V; within 0..adc_vref
    adc_vref: float = 3.3
    pp_pullup_ohm: float = 1000.0  # PP pull-up resistor; the plug's Rc forms the divider
    pp_vref: float = 3.3  # the voltage the PP pull-up is tied to
    reader_spi_bus: int = 0
    reader_spi_device: int = 0  # SPI0 CE0 (GPIO8)
    reader_reset_pin: int | None = 25
    reader_poll_hz: float = 5.0
    emergency_stop_pin: int | None = None
    emergency_stop_active_high: bool = (
        True  # NC contact to ground + pull-up: pressed or broken wire = high
    )
    led_pin: int | None = None


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One outlet. Its OCPP connectorId is its 1-based position in Config.connectors.

    The wiring defaults here are connector 1's with a fixed cable; the parser takes
    each connector's own from DEFAULT_WIRING. GPIO numbers are BCM; None = not fitted.
    """

    max_current: float  # A per phase: the installation limit, deliberately without a default
    phases: int = 3
    lock: bool = False  # True: the socket outlet has a lock actuator
    ventilation: bool = False  # True: pilot state D is accepted
    cable: str = "fixed"  # or "socket" (the default when lock = true)
    cable_rating: float | None = None  # A, fixed cable only; None: same as max_current
    pwm_pin: int = _WIRING_1.pwm_pin  # 12, 13, 18 or 19
    pwm_channel: int = _WIRING_1.pwm_channel  # sysfs pwmN of pwm_pin, 0..3
    cp_adc_channel: int = _WIRING_1.cp_adc_channel
    pp_adc_channel: int | None = None  # socket outlets only (required there)
    cp_disconnect_pin: int | None = None
    contactor_pin: int = _WIRING_1.contactor_pin
    contactor_feedback_pin: int | None = _WIRING_1.contactor_feedback_pin  # mirror contact
    contactor_settle: float = 0.1  # s to wait before reading the feedback
    phase_contactor_pin: int | None = None  # 1p/3p switching, phases = 3 only
    phase_feedback_pin: int | None = None
    rcm_fault_pin: int | None = _WIRING_1.rcm_fault_pin
    rcm_test_pin: int | None = _WIRING_1.rcm_test_pin
    lock_pin: int | None = None  # set (by default) when lock = true
    lock_feedback_pin: int | None = None

    @property
    def fixed_cable_rating(self) -> float | None:
        """The fixed cable's rating in A (cable_rating, else max_current); None for a
        socket outlet, whose cable is rated by the proximity pilot at plug-in."""
        if self.cable == "socket":
            return None
        return self.cable_rating if self.cable_rating is not None else self.max_current


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """Modbus RTU energy meter; meters[n] measures connectors[n].

    0 and "" stand for the default of the model's register map, so a meter left at
    its factory settings needs only model and port.
    """

    model: str  # stem of a register map in drivers/meter/maps/
    port: str  # e.g. "/dev/ttyUSB0"; meters on one port share the RS-485 bus
    baud: int = 0
    parity: str = ""  # "N", "E" or "O"
    stopbits: int = 0  # 1 or 2
    unit_id: int = 1  # 1..247
    timeout: float = 0.3  # s per request
    retries: int = 2  # 0..5


@dataclass(frozen=True, slots=True)
class OcppConfig:
    """Protocol choice and the initial OCPP configuration-key values (OCPP string form)."""

    # The versions offered to the CSMS, most wanted first; with more than one, the CSMS
    # picks by websocket subprotocol negotiation. TOML: "2.0.1" or ["2.0.1", "1.6"].
    versions: tuple[str, ...] = ("1.6",)
    heartbeat_on_idle_only: bool = True
    # A transaction interrupted by a restart or power cut goes on if the EV is still
    # plugged in; otherwise it is closed (PowerLoss, Reboot, or the reset's reason).
    resume_transactions: bool = False
    # Read-only view; excluded from hashing because a mapping is not hashable.
    keys: Mapping[str, str] = field(default_factory=_no_keys, hash=False)
    # Initial values of OCPP 2.0.1 variables that have no 1.6 key ("TxCtrlr.TxStopPoint").
    variables: Mapping[str, str] = field(default_factory=_no_keys, hash=False)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"


@dataclass(frozen=True, slots=True)
class FirmwareConfig:
    """Firmware Management: how a downloaded firmware is installed, and the file
    transfers of updates, diagnostics and logs."""

    installer: str = "update"  # the A/B updater; "command": run install_command
    install_command: tuple[str, ...] = ()  # argv; "{file}" is the downloaded file
    update_root: Path = Path("/")  # where the A/B updater's directories are ("/" on a device)
    manufacturer_roots: Path | None = None  # PEM: trusted firmware-signing root certificates
    ca_file: Path | None = None  # PEM: CA certificates for https:// beyond the system's
    log_file: Path | None = None  # the daemon's log when not under systemd, for diagnostics
    max_download_mb: float = 512.0
    transfer_timeout: float = 60.0  # s per network operation


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
    board: BoardConfig = field(default_factory=BoardConfig)
    meters: tuple[MeterConfig, ...] = ()  # one per connector when hardware.meter = "modbus"
    firmware: FirmwareConfig = field(default_factory=FirmwareConfig)

    @property
    def websocket_url(self) -> str:
        """The URL to connect to: OCPP-J puts the charge point id after the CSMS URL."""
        return f"{self.csms.url.rstrip('/')}/{self.station.id}"


# Instances holding the defaults, so the parser and the dataclasses cannot disagree.
_STATION = StationConfig(id="")
_CSMS = CsmsConfig(url="")
_STATE = StateConfig()
_HARDWARE = HardwareConfig()
_BOARD = BoardConfig()
_CONNECTOR = ConnectorConfig(max_current=0.0)
_METER = MeterConfig(model="", port="")
_OCPP = OcppConfig()
_LOGGING = LoggingConfig()
_FIRMWARE = FirmwareConfig()


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

    def whole(self, key: str, default: int, check: Check | None = None) -> int:
        """An integer; floats are refused too, as a pin or channel is never 12.5."""
        value = self.take(key)
        if isinstance(value, _Missing):
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, _expected("an integer", value))
            return default
        self._checked(key, value, check)
        return value

    def optional_whole(
        self, key: str, default: int | None, check: Check | None = None
    ) -> int | None:
        """An integer, or `false` for "not used": TOML has no null, and leaving the key
        out would mean the default pin."""
        value = self.take(key)
        if isinstance(value, _Missing):
            return default
        if value is False:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, _expected("an integer or false (not used)", value))
            return default
        self._checked(key, value, check)
        return value

    def optional_number(self, key: str, check: Check | None = None) -> float | None:
        """A number, or None when the key is absent."""
        if key not in self._raw:
            self.take(key)
            return None
        return self.number(key, None, check)

    def gpio(self, key: str, default: int) -> int:
        return self.whole(key, default, _check_gpio)

    def optional_gpio(self, key: str, default: int | None) -> int | None:
        return self.optional_whole(key, default, _check_gpio)


def _check_gpio(value: int) -> str | None:
    if value in GPIO_PINS:
        return None
    return f"must be a BCM GPIO number from 0 to 27, got {value}"


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
        free_vend_id_tag=t.string("free_vend_id_tag", _STATION.free_vend_id_tag, _length(0, 20)),
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


def _pem_file(t: _Table, key: str, what: str, base_dir: Path | None) -> Path | None:
    """An optional PEM file: resolved like state.dir, and it must hold a PEM `what`
    (its content is never quoted: it may be a private key)."""
    value = t.string(key, "", lambda v: _check_path(v) if v else None)
    if not value or not t.ok(key):
        return None
    path = _resolve(t, key, value, base_dir)
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        t.problem(key, f"cannot read {path}: {exc.strerror or exc.__class__.__name__}")
        return None
    if not re.search(rb"-----BEGIN [A-Z ]*" + what.encode() + rb"-----", data):
        t.problem(key, f"{path} holds no PEM {what.lower()}")
        return None
    return path


def _parse_csms(t: _Table, base_dir: Path | None = None) -> CsmsConfig:
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
    profile = t.integer("security_profile", _CSMS.security_profile, (0, 1, 2, 3))
    ca_certificate = _pem_file(t, "ca_certificate", "CERTIFICATE", base_dir)
    client_certificate = _pem_file(t, "client_certificate", "CERTIFICATE", base_dir)
    client_key = _pem_file(t, "client_key", "PRIVATE KEY", base_dir)
    if t.ok("client_certificate", "client_key") and (client_certificate is None) != (
        client_key is None
    ):
        t.problem(
            "client_key" if client_key is None else "client_certificate",
            "csms.client_certificate and csms.client_key go together",
        )
    if t.ok("security_profile", "url") and profile >= 2 and urlsplit(url).scheme == "ws":
        t.problem("url", f"must be wss:// for csms.security_profile {profile} (TLS)")
    if t.ok("security_profile", "password") and profile in (1, 2) and not password:
        t.problem("password", f"required for csms.security_profile {profile} (HTTP Basic auth)")
    t.finish()
    return CsmsConfig(
        url=url,
        password=password,
        response_timeout=response_timeout,
        reconnect_min=reconnect_min,
        reconnect_max=reconnect_max,
        boot_retry=boot_retry,
        security_profile=profile,
        ca_certificate=ca_certificate,
        client_certificate=client_certificate,
        client_key=client_key,
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


def _parse_state(t: _Table, base_dir: Path | None) -> tuple[Path | None, float]:
    value = t.string("dir", str(DEFAULT_STATE_DIR), _check_path)
    budget = t.number(
        "queue_budget_mb", _STATE.queue_budget_mb, _bounds(minimum=0.01, maximum=4096, unit="MB")
    )
    t.finish()
    return (_resolve(t, "dir", value, base_dir) if t.ok("dir") else None), budget


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


def _check_device(value: str) -> str | None:
    if value == "" or (value.startswith("/") and "\0" not in value):
        return None
    return 'must be an absolute device path such as "/dev/watchdog", or "" for none'


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
    simulate_board = t.boolean("simulate_board", _HARDWARE.simulate_board)
    if simulate_board:
        # The register-level simulators stand in for the board, not for the drivers.
        for part, allowed in HARDWARE_IMPLEMENTATIONS.items():
            if parts[part] == "sim" and t.ok(part):
                real = " or ".join(f'"{name}"' for name in allowed if name != "sim")
                t.problem(part, f"simulate_board runs the real drivers; choose {real}")
    else:
        # Either every part is simulated at the driver interface, or none is.
        simulated = [part for part in ("pilot", "contactor", "meter") if parts[part] == "sim"]
        if simulated and len(simulated) < 3 and t.ok("pilot", "contactor", "meter"):
            for part in ("pilot", "contactor", "meter"):
                if parts[part] != "sim":
                    t.problem(
                        part,
                        f"cannot mix with the simulated {', '.join(simulated)}: "
                        "simulate all parts or none",
                    )
        if len(simulated) == 3 and parts["reader"] == "mfrc522":
            t.problem("reader", 'the simulated station has a simulated reader: "sim" or "none"')
        if not simulated and parts["reader"] == "sim" and t.ok("pilot", "contactor", "meter"):
            t.problem("reader", 'the real drivers need a real reader: "mfrc522" or "none"')
    sim_event_log = t.boolean("sim_event_log", _HARDWARE.sim_event_log)
    if sim_event_log and parts["pilot"] != "sim" and t.ok("pilot"):
        t.problem("sim_event_log", 'only the simulation (pilot = "sim") keeps an event log')
    watchdog = t.string("watchdog", _HARDWARE.watchdog, _check_device)
    watchdog_timeout = t.whole(
        "watchdog_timeout", _HARDWARE.watchdog_timeout, _bounds(minimum=5, maximum=60, unit="s")
    )
    t.finish()
    return HardwareConfig(
        pilot=parts["pilot"],
        contactor=parts["contactor"],
        meter=parts["meter"],
        reader=parts["reader"],
        meter_poll_interval=poll,
        meter_offline_after=offline_after,
        simulate_board=simulate_board,
        sim_event_log=sim_event_log,
        watchdog=watchdog,
        watchdog_timeout=watchdog_timeout,
    )


@dataclass(frozen=True, slots=True)
class _SpiBus:
    """The GPIOs of one SPI controller on the 40-pin header."""

    signals: tuple[tuple[str, int], ...]
    chip_selects: tuple[int, ...]  # GPIO of CE0, CE1, ...
    # SPI0 (dtparam=spi=on) claims both chip selects as soon as it is enabled;
    # the spi1-Ncs overlays claim only the ones asked for.
    reserve_all: bool


# Buses 2..6 exist only on some models, with pins that depend on the overlay: not checked.
_SPI_BUSES: Final[Mapping[int, _SpiBus]] = {
    0: _SpiBus((("MISO", 9), ("MOSI", 10), ("SCLK", 11)), (8, 7), reserve_all=True),
    1: _SpiBus((("MISO", 19), ("MOSI", 20), ("SCLK", 21)), (18, 17, 16), reserve_all=False),
}


def _parse_spi(t: _Table, part: str, bus_default: int, device_default: int) -> tuple[int, int]:
    """`<part>_spi_bus` and `<part>_spi_device`, i.e. /dev/spidev<bus>.<device>."""
    bus_key, device_key = f"{part}_spi_bus", f"{part}_spi_device"
    bus = t.whole(bus_key, bus_default, _bounds(minimum=0, maximum=6))
    device = t.whole(device_key, device_default, _bounds(minimum=0, maximum=2))
    chip_selects = _SPI_BUSES[0].chip_selects
    if t.ok(bus_key, device_key) and bus == 0 and device >= len(chip_selects):
        devices = " and ".join(f"{n} (CE{n}, GPIO{pin})" for n, pin in enumerate(chip_selects))
        t.problem(device_key, f"SPI bus 0 has devices {devices} only, got {device}")
    return bus, device


def _check_nonzero(value: float) -> str | None:
    return "must not be 0" if value == 0 else None


def _parse_board(t: _Table) -> BoardConfig:
    pwm_chip = t.string("pwm_chip", _BOARD.pwm_chip, lambda v: _check_path(v) if v else None)
    pwm_sysfs = t.string("pwm_sysfs", _BOARD.pwm_sysfs, _check_absolute)
    adc = t.choice("adc", _BOARD.adc, ADC_MODELS)
    adc_spi_bus, adc_spi_device = _parse_spi(t, "adc", _BOARD.adc_spi_bus, _BOARD.adc_spi_device)
    cp_gain = t.number("cp_gain", _BOARD.cp_gain, _check_nonzero)
    cp_offset = t.number("cp_offset", _BOARD.cp_offset)
    adc_vref = t.number("adc_vref", _BOARD.adc_vref, _bounds(above=0, maximum=5.5, unit="V"))
    if t.ok("cp_offset", "adc_vref") and not 0 <= cp_offset <= adc_vref:
        t.problem(
            "cp_offset",
            f"must be between 0 and board.adc_vref ({_fmt(adc_vref)} V), got {_fmt(cp_offset)}",
        )
    pp_pullup_ohm = t.number("pp_pullup_ohm", _BOARD.pp_pullup_ohm, _bounds(above=0, unit="ohm"))
    pp_vref = t.number("pp_vref", _BOARD.pp_vref, _bounds(above=0, maximum=5.5, unit="V"))
    reader_spi_bus, reader_spi_device = _parse_spi(
        t, "reader", _BOARD.reader_spi_bus, _BOARD.reader_spi_device
    )
    board = BoardConfig(
        pwm_chip=pwm_chip,
        pwm_sysfs=pwm_sysfs,
        adc=adc,
        adc_spi_bus=adc_spi_bus,
        adc_spi_device=adc_spi_device,
        cp_gain=cp_gain,
        cp_offset=cp_offset,
        adc_vref=adc_vref,
        pp_pullup_ohm=pp_pullup_ohm,
        pp_vref=pp_vref,
        reader_spi_bus=reader_spi_bus,
        reader_spi_device=reader_spi_device,
        reader_reset_pin=t.optional_gpio("reader_reset_pin", _BOARD.reader_reset_pin),
        reader_poll_hz=t.number(
            "reader_poll_hz", _BOARD.reader_poll_hz, _bounds(minimum=1, maximum=20, unit="Hz")
        ),
        emergency_stop_pin=t.optional_gpio("emergency_stop_pin", _BOARD.emergency_stop_pin),
        emergency_stop_active_high=t.boolean(
            "emergency_stop_active_high", _BOARD.emergency_stop_active_high
        ),
        led_pin=t.optional_gpio("led_pin", _BOARD.led_pin),
    )
    t.finish()
    return board


def _check_absolute(value: str) -> str | None:
    return _check_path(value) or (None if value.startswith("/") else "must be an absolute path")


def _check_pwm_pin(value: int) -> str | None:
    if value in PWM_PIN_CHANNELS:
        return None
    pins = ", ".join(map(str, PWM_PIN_CHANNELS))
    return f"must be a hardware-PWM pin ({pins}), got {value}"


def _check_pwm_channel(pin: int, channel: int) -> str | None:
    """Why `channel` cannot be the sysfs channel of hardware-PWM pin `pin`."""
    channels = PWM_PIN_CHANNELS[pin]
    if channel in channels:
        return None
    if len(channels) == 1:
        return f"GPIO{pin} is PWM channel {channels[0]} on every Pi, got {channel}"
    return (
        f"GPIO{pin} is PWM channel {channels[0]} on Pi 1-4 or {channels[1]} on Pi 5, got {channel}"
    )


_ADC_CHANNEL: Final = _bounds(minimum=0, maximum=ADC_CHANNELS - 1)


def _parse_connector(t: _Table, number: int) -> ConnectorConfig:
    """Connector `number` (1-based), whose wiring defaults come from DEFAULT_WIRING."""
    wiring = DEFAULT_WIRING.get(number, DEFAULT_WIRING[MAX_CONNECTORS])
    at = t.key_path  # the full path of a key, for messages that name a sibling
    max_current = t.number("max_current", None, _bounds(minimum=6, maximum=80, unit="A"))
    phases = t.integer("phases", _CONNECTOR.phases, (1, 3))
    lock = t.boolean("lock", _CONNECTOR.lock)
    ventilation = t.boolean("ventilation", _CONNECTOR.ventilation)
    # A lock only makes sense on a socket, which is what lock = true meant before
    # `cable` existed; so it is also the default.
    cable = t.choice("cable", "socket" if lock else "fixed", CABLES)
    socket = cable == "socket"
    cable_rating = t.optional_number("cable_rating", _bounds(minimum=6, maximum=80, unit="A"))
    pwm_pin = t.whole("pwm_pin", wiring.pwm_pin, _check_pwm_pin)
    pwm_channel = t.whole("pwm_channel", wiring.pwm_channel, _bounds(minimum=0, maximum=3))
    if t.ok("pwm_pin", "pwm_channel") and (reason := _check_pwm_channel(pwm_pin, pwm_channel)):
        t.problem("pwm_channel", reason)
    cp_adc_channel = t.whole("cp_adc_channel", wiring.cp_adc_channel, _ADC_CHANNEL)
    pp_adc_channel = t.optional_whole(
        "pp_adc_channel", wiring.pp_adc_channel if socket else None, _ADC_CHANNEL
    )
    cp_disconnect_pin = t.optional_gpio("cp_disconnect_pin", _CONNECTOR.cp_disconnect_pin)
    contactor_pin = t.gpio("contactor_pin", wiring.contactor_pin)
    contactor_feedback_pin = t.optional_gpio(
        "contactor_feedback_pin", wiring.contactor_feedback_pin
    )
    contactor_settle = t.number(
        "contactor_settle", _CONNECTOR.contactor_settle, _bounds(minimum=0.02, maximum=1, unit="s")
    )
    phase_contactor_pin = t.optional_gpio("phase_contactor_pin", _CONNECTOR.phase_contactor_pin)
    phase_feedback_pin = t.optional_gpio("phase_feedback_pin", _CONNECTOR.phase_feedback_pin)
    rcm_fault_pin = t.optional_gpio("rcm_fault_pin", wiring.rcm_fault_pin)
    rcm_test_pin = t.optional_gpio("rcm_test_pin", wiring.rcm_test_pin)
    lock_pin = t.optional_gpio("lock_pin", wiring.lock_pin if lock else None)
    lock_feedback_pin = t.optional_gpio(
        "lock_feedback_pin", wiring.lock_feedback_pin if lock else None
    )
    t.finish()

    # Combinations that cannot be wired, each reported on the key that is wrong.
    if t.ok("cable"):
        if socket and cable_rating is not None and t.ok("cable_rating"):
            t.problem(
                "cable_rating",
                "only for a fixed cable: a socket outlet reads the rating of the plugged-in "
                "cable from the proximity pilot (PP)",
            )
        if socket and pp_adc_channel is None and t.ok("pp_adc_channel"):
            t.problem("pp_adc_channel", f'required for a socket outlet ({at("cable")} = "socket")')
        if not socket and pp_adc_channel is not None and t.ok("pp_adc_channel"):
            t.problem(
                "pp_adc_channel",
                f'only for a socket outlet ({at("cable")} = "socket"); '
                f"a fixed cable's rating is {at('cable_rating')}",
            )
        if lock and not socket and t.ok("lock"):
            t.problem(
                "lock",
                f'needs {at("cable")} = "socket": a fixed cable has no socket to lock',
            )
    if t.ok("lock"):
        if lock and lock_pin is None and t.ok("lock_pin"):
            t.problem("lock_pin", f"required when {at('lock')} = true")
        for key, pin in (("lock_pin", lock_pin), ("lock_feedback_pin", lock_feedback_pin)):
            if not lock and pin is not None and t.ok(key):
                t.problem(key, f"only used with {at('lock')} = true")
    if phase_contactor_pin is not None and t.ok("phases", "phase_contactor_pin") and phases != 3:
        t.problem(
            "phase_contactor_pin",
            f"needs {at('phases')} = 3: it switches between one and three phases",
        )
    if (
        phase_feedback_pin is not None
        and phase_contactor_pin is None
        and t.ok("phase_contactor_pin", "phase_feedback_pin")
    ):
        t.problem("phase_feedback_pin", f"needs {at('phase_contactor_pin')}")
    if t.ok("rcm_fault_pin", "rcm_test_pin") and (rcm_fault_pin is None) != (rcm_test_pin is None):
        missing, other = (
            ("rcm_fault_pin", "rcm_test_pin")
            if rcm_fault_pin is None
            else ("rcm_test_pin", "rcm_fault_pin")
        )
        t.problem(
            missing,
            f"required when {at(other)} is set: the RCM self-test pulses the test input "
            "and watches the fault input (set both or neither)",
        )
    return ConnectorConfig(
        max_current=max_current,
        phases=phases,
        lock=lock,
        ventilation=ventilation,
        cable=cable,
        cable_rating=cable_rating,
        pwm_pin=pwm_pin,
        pwm_channel=pwm_channel,
        cp_adc_channel=cp_adc_channel,
        pp_adc_channel=pp_adc_channel,
        cp_disconnect_pin=cp_disconnect_pin,
        contactor_pin=contactor_pin,
        contactor_feedback_pin=contactor_feedback_pin,
        contactor_settle=contactor_settle,
        phase_contactor_pin=phase_contactor_pin,
        phase_feedback_pin=phase_feedback_pin,
        rcm_fault_pin=rcm_fault_pin,
        rcm_test_pin=rcm_test_pin,
        lock_pin=lock_pin,
        lock_feedback_pin=lock_feedback_pin,
    )


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
        _parse_connector(_Table(problems, f"connectors[{number}]", entry), number)
        for number, entry in enumerate(raw, start=1)  # 1-based, as an installer counts
    )
    return connectors, count if 1 <= count <= MAX_CONNECTORS else 1


def meter_maps_dir() -> Path | None:
    """drivers/meter/maps, found without importing the drivers (None: not installed)."""
    spec = importlib.util.find_spec("drivers")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "meter" / "maps"


def meter_models() -> frozenset[str] | None:
    """The meter models evsed has register maps for: the stems of drivers/meter/maps/*.toml.

    None when the maps are not installed: then any model name is accepted, so a
    configuration can still be checked on a machine without the drivers.
    """
    directory = meter_maps_dir()
    try:
        if directory is None or not directory.is_dir():
            return None
        return frozenset(path.stem for path in directory.glob("*.toml"))
    except OSError:
        return None


def _factory_serial(model: str) -> Mapping[str, object]:
    """The [serial] factory settings in `model`'s register map; {} when unreadable.

    The meter driver falls back to these for baud/parity/stopbits left at 0 / "",
    so they are what two meters on one bus are compared by.
    """
    directory = meter_maps_dir()
    if directory is None or not _BARE_KEY.fullmatch(model):
        return {}
    try:
        data = tomllib.loads((directory / f"{model}.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeError, tomllib.TOMLDecodeError):
        return {}
    serial = data.get("serial")
    return serial if isinstance(serial, Mapping) else {}


def _parse_meter(t: _Table, models: frozenset[str] | None) -> MeterConfig:
    def check_model(value: str) -> str | None:
        if not value:
            return "must not be empty"
        if models is None or value in models:
            return None
        known = ", ".join(sorted(models)) or "none installed"
        return f"unknown meter model {value!r} (known: {known})"

    def check_baud(value: int) -> str | None:
        if value == 0 or value in BAUD_RATES:
            return None
        return f"must be one of {', '.join(map(str, BAUD_RATES))} (or 0: the model's), got {value}"

    def check_parity(value: str) -> str | None:
        if value == "" or value in PARITIES:
            return None
        return f'must be "N", "E" or "O" (or "": the model\'s), got {value!r}'

    def check_stopbits(value: int) -> str | None:
        return None if value in (0, 1, 2) else f"must be 1 or 2 (or 0: the model's), got {value}"

    meter = MeterConfig(
        model=t.string("model", None, check_model),
        port=t.string("port", None, lambda v: _check_path(v) if v else "must not be empty"),
        baud=t.whole("baud", _METER.baud, check_baud),
        parity=t.string("parity", _METER.parity, check_parity),
        stopbits=t.whole("stopbits", _METER.stopbits, check_stopbits),
        unit_id=t.whole("unit_id", _METER.unit_id, _bounds(minimum=1, maximum=247)),
        timeout=t.number("timeout", _METER.timeout, _bounds(minimum=0.05, maximum=5, unit="s")),
        retries=t.whole("retries", _METER.retries, _bounds(minimum=0, maximum=5)),
    )
    t.finish()
    return meter


def _parse_meters(
    problems: list[Problem], raw: object, hardware: HardwareConfig, connectors: int | None
) -> tuple[MeterConfig, ...]:
    """The [[meters]]; required, one per connector (`connectors`, None if unknown),
    when hardware.meter = "modbus", and validated, though unused, otherwise."""
    modbus = hardware.meter == "modbus"
    needed = 'hardware.meter = "modbus" needs one [[meters]] table per connector, in order'
    if isinstance(raw, _Missing):
        if modbus:
            problems.append(Problem("meters", f"required: {needed}"))
        return ()
    if not isinstance(raw, list):
        problems.append(Problem("meters", _expected("an array of tables ([[meters]])", raw)))
        return ()
    if modbus and connectors is not None and len(raw) != connectors:
        problems.append(Problem("meters", f"{needed}: expected {connectors}, got {len(raw)}"))
    models = meter_models()
    tables = [_Table(problems, f"meters[{number}]", entry) for number, entry in enumerate(raw, 1)]
    meters = tuple(_parse_meter(t, models) for t in tables)
    _check_meter_buses(tables, meters)
    return meters


def _check_meter_buses(tables: list[_Table], meters: tuple[MeterConfig, ...]) -> None:
    """Meters on one port share an RS-485 bus: one serial format, distinct unit ids."""
    first: dict[str, int] = {}  # port -> index of the first meter on it
    unit_ids: dict[tuple[str, int], str] = {}  # (port, unit id) -> key path
    for index, (t, meter) in enumerate(zip(tables, meters, strict=True)):
        if not t.ok("port"):
            continue
        earlier = first.setdefault(meter.port, index)
        if t.ok("unit_id"):
            owner = unit_ids.setdefault((meter.port, meter.unit_id), t.key_path("unit_id"))
            if owner != t.key_path("unit_id"):
                t.problem(
                    "unit_id", f"unit id {meter.unit_id} on {meter.port} is already used by {owner}"
                )
        if earlier == index:
            continue
        e_table, e_meter = tables[earlier], meters[earlier]
        for key in ("baud", "parity", "stopbits"):
            if not (t.ok(key, "model") and e_table.ok(key, "model")):
                continue
            mine, theirs = _serial_value(meter, key), _serial_value(e_meter, key)
            if mine == theirs and mine is not None:
                continue
            if mine is None or theirs is None:
                detail = f"the default of {e_meter.model} or {meter.model} is unknown; set {key}"
            else:
                detail = f"{e_table.path} uses {theirs!r}, got {mine!r}"
            t.problem(
                key, f"meters on {meter.port} share one bus and need the same {key}: {detail}"
            )


def _serial_value(meter: MeterConfig, key: str) -> object:
    """The baud, parity or stopbits `meter` will use: as set, else its model's (None: unknown)."""
    value = getattr(meter, key)
    return value if value else _factory_serial(meter.model).get(key)


# --- wiring cross-checks -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    """One use of a numbered resource (a GPIO, PWM or ADC channel) by a key."""

    number: int
    path: str
    note: str = ""  # what the resource is used as, where the key alone does not say
    sources: tuple[str, ...] = ()  # further keys that decided this use


@dataclass(frozen=True, slots=True)
class _SpiUser:
    bus: int
    device: int
    bus_path: str
    device_path: str
    what: str


Ok = Callable[[str], bool]

_CONTACTOR_GPIO_KEYS: Final = (
    "contactor_pin",
    "contactor_feedback_pin",
    "phase_contactor_pin",
    "phase_feedback_pin",
    "rcm_fault_pin",
    "rcm_test_pin",
)
_UART_PINS: Final = (("TXD", 14), ("RXD", 15))
_PATH_SEGMENT = re.compile(r"([A-Za-z0-9_-]+)(?:\[(\d+)\])?")


def _spi_users(hardware: HardwareConfig, board: BoardConfig, ok: Ok) -> list[_SpiUser]:
    """The SPI devices the configured drivers open: the ADC and the RFID reader."""
    users = []
    for part, used, what in (
        ("adc", hardware.pilot == "gpio", "the pilot ADC"),
        ("reader", hardware.reader == "mfrc522", "the RFID reader"),
    ):
        bus_path, device_path = f"board.{part}_spi_bus", f"board.{part}_spi_device"
        if used and ok(bus_path) and ok(device_path):
            bus, device = getattr(board, f"{part}_spi_bus"), getattr(board, f"{part}_spi_device")
            users.append(_SpiUser(bus, device, bus_path, device_path, what))
    return users


def _gpio_claims(owner: object, prefix: str, keys: Iterable[str], ok: Ok) -> list[_Claim]:
    claims = []
    for key in keys:
        pin, path = getattr(owner, key), f"{prefix}.{key}"
        if pin is not None and ok(path):
            claims.append(_Claim(pin, path))
    return claims


def _pin_claims(
    hardware: HardwareConfig,
    board: BoardConfig,
    connectors: tuple[ConnectorConfig, ...],
    meters: tuple[MeterConfig, ...],
    ok: Ok,
) -> list[_Claim]:
    """Every GPIO the configured drivers use (pins of parts left to "sim" do not count),
    in a fixed order: SPI and UART buses, the board's own pins, then each connector's."""
    claims: list[_Claim] = []
    users = _spi_users(hardware, board, ok)
    for number, bus in _SPI_BUSES.items():
        on_bus = [user for user in users if user.bus == number]
        if not on_bus:
            continue
        first = on_bus[0]
        sources = (first.bus_path, first.device_path)
        claims += [
            _Claim(pin, first.bus_path, f"SPI{number} {signal}", sources)
            for signal, pin in bus.signals
        ]
        selecting: dict[int, _SpiUser] = {}
        for user in on_bus:
            selecting.setdefault(user.device, user)
        for device, pin in enumerate(bus.chip_selects):
            if (owner := selecting.get(device)) is not None:
                note = f"SPI{number} CE{device}"
                claims.append(_Claim(pin, owner.device_path, note, (owner.bus_path,)))
            elif bus.reserve_all:
                note = f"SPI{number} CE{device}, reserved while SPI{number} is enabled"
                claims.append(_Claim(pin, first.bus_path, note, sources))
    if hardware.meter == "modbus":
        # Different names of the header UART (serial0, ttyAMA0, ttyS0) collide on purpose:
        # meters on one bus must name one port.
        uarts: set[str] = set()
        for index, meter in enumerate(meters, start=1):
            path = f"meters[{index}].port"
            if meter.port in UART_PORTS and meter.port not in uarts and ok(path):
                uarts.add(meter.port)
                claims += [
                    _Claim(pin, path, f"{meter.port} {signal}") for signal, pin in _UART_PINS
                ]
    board_keys = []
    if hardware.reader == "mfrc522":
        board_keys.append("reader_reset_pin")
    if hardware.contactor == "gpio":
        board_keys += ["emergency_stop_pin", "led_pin"]
    claims += _gpio_claims(board, "board", board_keys, ok)
    for index, connector in enumerate(connectors[:MAX_CONNECTORS], start=1):
        keys: list[str] = []
        if hardware.pilot == "gpio":
            keys += ["pwm_pin", "cp_disconnect_pin"]
        if hardware.contactor == "gpio":
            keys += _CONTACTOR_GPIO_KEYS
            if connector.lock:
                keys += ["lock_pin", "lock_feedback_pin"]
        claims += _gpio_claims(connector, f"connectors[{index}]", keys, ok)
    return claims


def _conflicts(claims: Iterable[_Claim], given: Ok, name: str) -> list[Problem]:
    """A problem for each claim on a number that is already claimed.

    Claims from keys the file leaves at their default go first, so the problem
    lands on the key the installer wrote, naming the default it collides with.
    """
    owners: dict[int, _Claim] = {}
    found = []
    reported: set[tuple[str, str]] = set()  # a whole bus (SPI, UART) clashes once
    for claim in sorted(claims, key=lambda c: any(map(given, (c.path, *c.sources)))):
        owner = owners.setdefault(claim.number, claim)
        if owner is claim or (claim.path, owner.path) in reported:
            continue
        reported.add((claim.path, owner.path))
        mine = f" ({claim.note})" if claim.note else ""
        theirs = f" ({owner.note})" if owner.note else ""
        reason = f"{name}{claim.number}{mine} is already used by {owner.path}{theirs}"
        found.append(Problem(claim.path, reason))
    return found


def _pilot_problems(connectors: tuple[ConnectorConfig, ...], ok: Ok, given: Ok) -> list[Problem]:
    """PWM and ADC channels: each pilot needs its own."""
    pwm, adc, pins = [], [], []
    for index, connector in enumerate(connectors[:MAX_CONNECTORS], start=1):
        at = f"connectors[{index}]."
        if ok(at + "pwm_pin"):
            pins.append(_Claim(connector.pwm_pin, at + "pwm_pin"))
        if ok(at + "pwm_channel"):
            pwm.append(_Claim(connector.pwm_channel, at + "pwm_channel"))
        if ok(at + "cp_adc_channel"):
            adc.append(_Claim(connector.cp_adc_channel, at + "cp_adc_channel"))
        pp = connector.pp_adc_channel
        if connector.cable == "socket" and pp is not None and ok(at + "pp_adc_channel"):
            adc.append(_Claim(pp, at + "pp_adc_channel"))
    found = _conflicts(pwm, given, "PWM channel ") + _conflicts(adc, given, "ADC channel ")
    # The same pin twice is a GPIO conflict; 12+18 or 13+19 is this one.
    groups: dict[int, _Claim] = {}
    for claim in sorted(pins, key=lambda c: given(c.path)):
        group = PWM_PIN_CHANNELS[claim.number][0]
        owner = groups.setdefault(group, claim)
        if owner.number != claim.number:
            found.append(
                Problem(
                    claim.path,
                    f"GPIO{claim.number} and GPIO{owner.number} ({owner.path}) are both PWM"
                    f"{group} on Raspberry Pi 1-4, so they cannot drive two pilots; "
                    "use GPIO12 and GPIO13 (or 18 and 19)",
                )
            )
    return found


def _spi_device_problems(
    hardware: HardwareConfig, board: BoardConfig, ok: Ok, given: Ok
) -> list[Problem]:
    """The ADC and the reader cannot share one chip select."""
    users = _spi_users(hardware, board, ok)
    if len(users) < 2 or (users[0].bus, users[0].device) != (users[1].bus, users[1].device):
        return []
    first, later = sorted(users, key=lambda u: given(u.bus_path) or given(u.device_path))
    return [
        Problem(
            later.device_path,
            f"SPI{later.bus} device {later.device} is already used by {first.device_path} "
            f"({first.what}); {later.what} needs its own chip select",
        )
    ]


def _is_given(data: Mapping[str, Any], path: str) -> bool:
    """Whether the file itself sets the key at `path`, rather than leaving the default."""
    node: object = data
    for segment in path.split("."):
        match = _PATH_SEGMENT.fullmatch(segment)
        if match is None or not isinstance(node, Mapping) or match[1] not in node:
            return False
        node = node[match[1]]
        if match[2] is not None:
            index = int(match[2]) - 1
            if not isinstance(node, list) or not 0 <= index < len(node):
                return False
            node = node[index]
    return True


def _check_wiring(
    problems: list[Problem],
    data: Mapping[str, Any],
    hardware: HardwareConfig,
    board: BoardConfig,
    connectors: tuple[ConnectorConfig, ...],
    meters: tuple[MeterConfig, ...],
) -> None:
    """Pins and channels used twice. Keys (or tables) that already have a problem are
    left out: their value is not what the installer meant, so a clash would mislead."""
    bad = {problem.path for problem in problems}

    def ok(path: str) -> bool:
        return path not in bad and path.rpartition(".")[0] not in bad

    def given(path: str) -> bool:
        return _is_given(data, path)

    problems += _conflicts(_pin_claims(hardware, board, connectors, meters, ok), given, "GPIO")
    if hardware.pilot == "gpio":
        problems += _pilot_problems(connectors, ok, given)
    problems += _spi_device_problems(hardware, board, ok, given)


def used_pins(config: Config) -> dict[int, str]:
    """GPIO number -> key path of every pin the configured drivers use, by pin number.

    For `evsed config check` and for drivers that claim their pins up front. SPI and
    UART pins name the key that brought the bus in (e.g. board.adc_spi_bus for SPI0
    MOSI, meters[1].port for GPIO14); parts left to "sim" use no pins.
    """
    pins: dict[int, str] = {}
    claims = _pin_claims(
        config.hardware, config.board, config.connectors, config.meters, lambda _: True
    )
    for claim in claims:
        pins.setdefault(claim.number, claim.path)
    return dict(sorted(pins.items()))


# --- ocpp and logging ---------------------------------------------------------


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
    if spec.kind is Kind.STRING:
        return value
    return ",".join(split_csl(value))


def _versions(t: _Table) -> tuple[str, ...]:
    """ocpp.version: one version, or a list of distinct versions in order of preference."""
    raw = t.take("version")
    if isinstance(raw, _Missing):
        return _OCPP.versions
    items = raw if isinstance(raw, list) else [raw]
    allowed = ", ".join(OCPP_VERSIONS)
    if not items or not all(isinstance(v, str) for v in items):
        t.problem("version", f"expected a version or a list of versions ({allowed})")
        return _OCPP.versions
    unknown = [v for v in items if v not in OCPP_VERSIONS]
    if unknown:
        t.problem("version", f"must be one of: {allowed} (got {', '.join(map(repr, unknown))})")
        return _OCPP.versions
    if len(set(items)) != len(items):
        t.problem("version", "a version is listed twice")
        return _OCPP.versions
    return tuple(items)


def _parse_ocpp(t: _Table, number_of_connectors: int) -> OcppConfig:
    versions = _versions(t)
    on_idle_only = t.boolean("heartbeat_on_idle_only", _OCPP.heartbeat_on_idle_only)
    resume = t.boolean("resume_transactions", _OCPP.resume_transactions)
    keys_table = t.table("keys")
    specs = all_keys(number_of_connectors)
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
    variables = _parse_variables(t.table("variables"))
    t.finish()
    return OcppConfig(
        versions=versions,
        heartbeat_on_idle_only=on_idle_only,
        resume_transactions=resume,
        keys=MappingProxyType(accepted),
        variables=variables,
    )


def _parse_variables(t: _Table) -> Mapping[str, str]:
    accepted: dict[str, str] = {}
    for name, raw in t.entries():
        value = _ocpp_string(raw)
        if value is None:
            t.problem(name, _expected("a string, integer or boolean", raw))
            continue
        reason = check_initial(name, value)
        if reason is not None:
            t.problem(name, reason)
            continue
        accepted[name] = value
    t.finish()
    return MappingProxyType(accepted)


def _parse_firmware(t: _Table, base_dir: Path | None) -> FirmwareConfig:
    installer = t.choice("installer", _FIRMWARE.installer, ("update", "command"))
    raw = t.take("install_command")
    command: tuple[str, ...] = ()
    if isinstance(raw, list) and all(isinstance(a, str) and a for a in raw):
        command = tuple(raw)
        if command and not any("{file}" in a for a in command):
            t.problem("install_command", 'no argument holds "{file}" (the downloaded file)')
    elif not isinstance(raw, _Missing):
        t.problem("install_command", "expected an array of non-empty strings")
    if installer == "command" and not command and t.ok("install_command"):
        t.problem("install_command", 'required with installer = "command"')

    def path(key: str, default: Path | None) -> Path | None:
        value = t.string(key, "", lambda v: _check_path(v) if v else None)
        if not value or not t.ok(key):
            return default
        return _resolve(t, key, value, base_dir)

    firmware = FirmwareConfig(
        installer=installer,
        install_command=command,
        update_root=path("update_root", _FIRMWARE.update_root) or _FIRMWARE.update_root,
        manufacturer_roots=path("manufacturer_roots", None),
        ca_file=path("ca_file", None),
        log_file=path("log_file", None),
        max_download_mb=t.number(
            "max_download_mb",
            _FIRMWARE.max_download_mb,
            _bounds(minimum=1, maximum=4096, unit="MB"),
        ),
        transfer_timeout=t.number(
            "transfer_timeout", _FIRMWARE.transfer_timeout, _bounds(minimum=1, maximum=600)
        ),
    )
    t.finish()
    return firmware


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
    csms = _parse_csms(root.table("csms"), base_dir)
    state_dir, queue_budget_mb = _parse_state(root.table("state"), base_dir)
    socket = _parse_control(root.table("control"), state_dir, base_dir)
    hardware = _parse_hardware(root.table("hardware"))
    board = _parse_board(root.table("board"))
    connectors, number_of_connectors = _parse_connectors(problems, root.take("connectors"))
    known_count = len(connectors) if 1 <= len(connectors) <= MAX_CONNECTORS else None
    meters = _parse_meters(problems, root.take("meters"), hardware, known_count)
    ocpp = _parse_ocpp(root.table("ocpp"), number_of_connectors)
    logging = _parse_logging(root.table("logging"))
    firmware = _parse_firmware(root.table("firmware"), base_dir)
    root.finish()
    _check_wiring(problems, data, hardware, board, connectors, meters)
    if hardware.simulate_board and len(connectors) > 1:
        problems.append(
            Problem("connectors", "the simulated board (hardware.simulate_board) has one connector")
        )
    if problems or state_dir is None or socket is None:
        raise ConfigError(problems)
    return Config(
        station=station,
        csms=csms,
        state=StateConfig(dir=state_dir, queue_budget_mb=queue_budget_mb),
        control=ControlConfig(socket=socket),
        hardware=hardware,
        connectors=connectors,
        ocpp=ocpp,
        logging=logging,
        board=board,
        meters=meters,
        firmware=firmware,
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
