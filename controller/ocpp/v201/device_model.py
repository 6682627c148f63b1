"""The OCPP 2.0.1 device model: components, variables and their attributes.

One store of settings serves both protocol versions. The live values are the neutral
`ConfigurationKeys` (named by their OCPP 1.6 keys, which came first); a 2.0.1 variable
that means the same as a 1.6 key is a view of that key (`VariableSpec.key`), so the
station follows it and the 1.6 value rules stay in one place. A variable with no 1.6
counterpart keeps its own value in the store's config_keys table under its
`storage_name` ("TxCtrlr.TxStartPoint", "OCPPCommCtrlr.MessageAttempts[...]"): the dot
keeps it apart from every 1.6 name, and 1.6's ConfigurationKeys ignores it. Values the
station computes (availability, the clock, the local list's size) come from a `read`
callable. Precedence for own values: persisted (set by the CSMS) > the configuration
file's `[ocpp.variables]` (`check_initial`) > the built-in default.

TxCtrlr.TxStartPoint / TxStopPoint take the points controller.ocpp.v201.tx_points
supports (its valuesList); a list without any point is Rejected.

SecurityCtrlr.SecurityProfile is ReadOnly in 2.0.1 (A05: a profile is raised with
SetNetworkProfile, NetworkConfigurationPriority and a reset; network.py raises it once a
connection with the higher profile succeeded). SecurityCtrlr.BasicAuthPassword is the
1.6 AuthorizationKey, WriteOnly: GetVariables answers Rejected, reports omit its value.

Attributes: every variable has Actual. The electrical ones (ChargingStation.Power,
EVSE.Power, EVSE.ACCurrent) also carry MaxSet (the wiring's most), MinSet (an EVSE's 6 A
floor) and Target (what the charging profiles in force allow now, read live from the
station's smart charging), all ReadOnly; the appendix's standard Target / MinSet / MaxSet
otherwise belong to ISO 15118 (ConnectedEV) and devices this station lacks (Heater). A
settings variable's limits are its variableCharacteristics, not attributes.

Features add their variables with `DeviceModel.add(specs)`: a 2.0.1 feature class has a
static `variables(number_of_evses) -> list[VariableSpec]`, as 1.6 profiles have `keys()`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from controller.core.iec61851 import MIN_CURRENT_A
from controller.ocpp.v16.keys import (
    MAX_INT_VALUE,
    MEASURANDS,
    SEND_LOCAL_LIST_MAX,
    ChangeResult,
    ConfigurationKeys,
    Kind,
)
from controller.ocpp.v201.tx_points import START_POINTS, STOP_POINTS

ReportData = dict[str, Any]


class DataType(StrEnum):
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DECIMAL = "decimal"
    STRING = "string"
    DATETIME = "dateTime"
    OPTION_LIST = "OptionList"
    MEMBER_LIST = "MemberList"
    SEQUENCE_LIST = "SequenceList"


class Mutability(StrEnum):
    READ_ONLY = "ReadOnly"
    READ_WRITE = "ReadWrite"
    WRITE_ONLY = "WriteOnly"


class Attribute(StrEnum):
    ACTUAL = "Actual"
    TARGET = "Target"
    MIN_SET = "MinSet"
    MAX_SET = "MaxSet"


class ReportBase(StrEnum):
    CONFIGURATION = "ConfigurationInventory"
    FULL = "FullInventory"
    SUMMARY = "SummaryInventory"


LISTS = (DataType.OPTION_LIST, DataType.MEMBER_LIST, DataType.SEQUENCE_LIST)
# The largest values the station takes and reports (DeviceDataCtrlr, below).
CONFIGURATION_VALUE_SIZE = 1000
REPORTING_VALUE_SIZE = 2500
# Request limits the CSMS must keep to (DeviceDataCtrlr.ItemsPerMessage / BytesPerMessage).
ITEMS_PER_MESSAGE = 50
BYTES_PER_MESSAGE = 64 * 1024
LOCAL_LIST_BYTES_PER_MESSAGE = 16 * 2**20  # the websocket's frame limit
CSMS_SLOTS = 3  # network connection profile slots the CSMS may fill: 1..3 (network.py)
# What the summary report holds (B07: availability and problems).
SUMMARY_VARIABLES = frozenset({"AvailabilityState", "Available", "Problem", "Tripped"})
FILE_TRANSFER_PROTOCOLS = "FTP,HTTP,HTTPS"  # controller/transfer.py


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """One variable of one component, as the device model describes and stores it.

    Where the value lives: `key` (a neutral ConfigurationKeys key), `read` (computed
    live by the station), else its own stored value starting at `default`."""

    component: str
    variable: str
    data_type: DataType
    mutability: Mutability = Mutability.READ_WRITE
    default: str = ""
    component_instance: str | None = None
    evse: int | None = None
    connector: int | None = None
    variable_instance: str | None = None
    key: str | None = None
    read: Callable[[], str] | None = None
    constant: bool = False
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None  # for a string: its longest length
    values_list: tuple[str, ...] | None = None
    # A rule beyond the data type: the value -> why not (reasonCode, text), or None.
    check: Callable[[str], tuple[str, str] | None] | None = None
    reboot_required: bool = False
    attributes: tuple[Attribute, ...] = (Attribute.ACTUAL,)
    # Where a read-only variable's Target / MinSet / MaxSet come from: a fixed value
    # (the wiring: constant) or a live read (the smart-charging limit). Each one's
    # attribute is in `attributes` too.
    attribute_values: tuple[tuple[Attribute, str | Callable[[], str]], ...] = ()

    @property
    def component_id(self) -> tuple[str, str | None, int | None, int | None]:
        return (self.component, self.component_instance, self.evse, self.connector)

    @property
    def identity(self) -> tuple[Any, ...]:
        return (*self.component_id, self.variable, self.variable_instance)

    def storage_name(self, attribute: Attribute = Attribute.ACTUAL) -> str:
        """The config_keys name of an own value; a dot never occurs in a 1.6 key name."""
        name = self.component
        if self.component_instance is not None:
            name += f"[{self.component_instance}]"
        if self.evse is not None:
            name += f"@{self.evse}" + (f".{self.connector}" if self.connector is not None else "")
        name += f".{self.variable}"
        if self.variable_instance is not None:
            name += f"[{self.variable_instance}]"
        return name if attribute is Attribute.ACTUAL else f"{name}/{attribute.value}"

    @property
    def writable(self) -> bool:
        return self.mutability is not Mutability.READ_ONLY


class Store(Protocol):
    def config_keys(self) -> dict[str, str]: ...

    def set_config_key(self, name: str, value: str) -> None: ...


# --- value rules -------------------------------------------------------------------------


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")] if value.strip() else []


def value_problem(spec: VariableSpec, value: str) -> tuple[str, str] | None:
    """Why `value` is not acceptable for `spec` (reasonCode, text), or None if it is."""
    if len(value) > CONFIGURATION_VALUE_SIZE:
        return "TooLargeElement", f"longer than {CONFIGURATION_VALUE_SIZE} characters"
    problem = _type_problem(spec, value)
    if problem is None and spec.check is not None:
        problem = spec.check(normalise(spec, value))
    return problem


def _type_problem(spec: VariableSpec, value: str) -> tuple[str, str] | None:
    kind = spec.data_type
    if kind is DataType.BOOLEAN:
        ok = value.strip().lower() in ("true", "false")
        return None if ok else ("InvalidValue", "must be true or false")
    if kind in (DataType.INTEGER, DataType.DECIMAL):
        try:
            number = int(value.strip()) if kind is DataType.INTEGER else float(value.strip())
        except ValueError:
            return (
                "InvalidValue",
                f"must be {'a whole' if kind is DataType.INTEGER else 'a'} number",
            )
        if not math.isfinite(number) or abs(number) > MAX_INT_VALUE:
            return "ValueOutOfRange", f"must be within ±{MAX_INT_VALUE}"
        if spec.min_limit is not None and number < spec.min_limit:
            return "ValueTooLow", f"must be at least {_number(spec.min_limit)}"
        if spec.max_limit is not None and number > spec.max_limit:
            return "ValueTooHigh", f"must be at most {_number(spec.max_limit)}"
        return None
    if kind is DataType.DATETIME:
        try:
            datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return "InvalidValue", "must be an ISO 8601 date and time"
        return None
    if kind is DataType.STRING:
        if spec.max_limit is not None and len(value) > spec.max_limit:
            return "TooLargeElement", f"at most {_number(spec.max_limit)} characters"
        return None
    allowed = spec.values_list or ()
    items = [value.strip()] if kind is DataType.OPTION_LIST else split_list(value)
    unknown = [item for item in items if item not in allowed]
    if unknown:
        return "InvalidValue", f"not in the valuesList: {', '.join(unknown)}"[:512]
    if len(set(items)) != len(items):
        return "InvalidValue", "an item appears twice"
    return None


def normalise(spec: VariableSpec, value: str) -> str:
    """The canonical form of an acceptable value (' TRUE' → 'true', 'a, b' → 'a,b')."""
    if spec.data_type is DataType.BOOLEAN:
        return value.strip().lower()
    if spec.data_type is DataType.INTEGER:
        return str(int(value.strip()))
    if spec.data_type in (DataType.MEMBER_LIST, DataType.SEQUENCE_LIST):
        return ",".join(split_list(value))
    if spec.data_type in (DataType.OPTION_LIST, DataType.DECIMAL, DataType.DATETIME):
        return value.strip()
    return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --- the catalogue ------------------------------------------------------------------------


def _some_point(value: str) -> tuple[str, str] | None:
    """A transaction needs a point to start (and one to stop) at."""
    return None if split_list(value) else ("InvalidValue", "name at least one point")


def configuration_variables(csms_slots: int = CSMS_SLOTS) -> list[VariableSpec]:
    """The controller components' variables of every station: the settings and limits."""
    ro = Mutability.READ_ONLY
    boolean, integer = DataType.BOOLEAN, DataType.INTEGER
    members = DataType.MEMBER_LIST

    def measurands(
        component: str, variable: str, key: str | None, default: str = ""
    ) -> VariableSpec:
        return VariableSpec(
            component, variable, members, key=key, default=default, values_list=MEASURANDS
        )

    comm, tx, sampled, aligned = "OCPPCommCtrlr", "TxCtrlr", "SampledDataCtrlr", "AlignedDataCtrlr"
    auth, cache, local, security = (
        "AuthCtrlr",
        "AuthCacheCtrlr",
        "LocalAuthListCtrlr",
        "SecurityCtrlr",
    )
    device = "DeviceDataCtrlr"
    te = "TransactionEvent"
    return [
        # --- OCPPCommCtrlr (the connection's own variables: network.py)
        VariableSpec(
            comm,
            "FileTransferProtocols",
            members,
            ro,
            FILE_TRANSFER_PROTOCOLS,
            constant=True,
            values_list=("FTP", "FTPS", "HTTP", "HTTPS", "SFTP"),
        ),
        VariableSpec(comm, "HeartbeatInterval", integer, key="HeartbeatInterval", unit="s"),
        VariableSpec(
            comm,
            "MessageAttemptInterval",
            integer,
            variable_instance=te,
            key="TransactionMessageRetryInterval",
            unit="s",
        ),
        VariableSpec(
            comm, "MessageAttempts", integer, variable_instance=te, key="TransactionMessageAttempts"
        ),
        VariableSpec(
            comm,
            "NetworkConfigurationPriority",
            DataType.SEQUENCE_LIST,
            default="0",
            values_list=tuple(str(slot) for slot in range(csms_slots + 1)),
        ),
        VariableSpec(comm, "NetworkProfileConnectionAttempts", integer, default="3", min_limit=1),
        VariableSpec(comm, "OfflineThreshold", integer, default="60", unit="s", min_limit=0),
        VariableSpec(comm, "ResetRetries", integer, key="ResetRetries"),
        VariableSpec(comm, "RetryBackOffRandomRange", integer, default="1", unit="s", min_limit=0),
        VariableSpec(comm, "RetryBackOffRepeatTimes", integer, default="6", min_limit=0),
        VariableSpec(comm, "RetryBackOffWaitMinimum", integer, default="1", unit="s", min_limit=0),
        VariableSpec(
            comm, "UnlockOnEVSideDisconnect", boolean, key="UnlockConnectorOnEVSideDisconnect"
        ),
        VariableSpec(comm, "WebSocketPingInterval", integer, key="WebSocketPingInterval", unit="s"),
        # --- TxCtrlr
        VariableSpec(tx, "EVConnectionTimeOut", integer, key="ConnectionTimeOut", unit="s"),
        VariableSpec(tx, "MaxEnergyOnInvalidId", integer, key="MaxEnergyOnInvalidId", unit="Wh"),
        VariableSpec(
            tx, "StopTxOnEVSideDisconnect", boolean, key="StopTransactionOnEVSideDisconnect"
        ),
        VariableSpec(tx, "StopTxOnInvalidId", boolean, key="StopTransactionOnInvalidId"),
        VariableSpec(
            tx,
            "TxStartPoint",
            members,
            default="PowerPathClosed",
            values_list=START_POINTS,
            check=_some_point,
        ),
        VariableSpec(
            tx,
            "TxStopPoint",
            members,
            default="EVConnected,Authorized",
            values_list=STOP_POINTS,
            check=_some_point,
        ),
        # --- SampledDataCtrlr
        VariableSpec(sampled, "Enabled", boolean, default="true"),
        VariableSpec(sampled, "TxEndedInterval", integer, default="60", unit="s", min_limit=0),
        measurands(sampled, "TxEndedMeasurands", "StopTxnSampledData"),
        measurands(sampled, "TxStartedMeasurands", None, "Energy.Active.Import.Register"),
        VariableSpec(
            sampled, "TxUpdatedInterval", integer, key="MeterValueSampleInterval", unit="s"
        ),
        measurands(sampled, "TxUpdatedMeasurands", "MeterValuesSampledData"),
        # --- AlignedDataCtrlr
        VariableSpec(aligned, "Enabled", boolean, default="true"),
        VariableSpec(aligned, "Interval", integer, key="ClockAlignedDataInterval", unit="s"),
        measurands(aligned, "Measurands", "MeterValuesAlignedData"),
        # What the station really does (controller_variables.py shows it live): aligned
        # values are kept for the Ended event at Interval, and a paid station always
        # authorizes, so neither can be set.
        VariableSpec(aligned, "TxEndedInterval", integer, Mutability.READ_ONLY, default="0"),
        measurands(aligned, "TxEndedMeasurands", "StopTxnAlignedData"),
        # --- authorization
        VariableSpec(auth, "AuthorizeRemoteStart", boolean, key="AuthorizeRemoteTxRequests"),
        VariableSpec(auth, "Enabled", boolean, Mutability.READ_ONLY, default="true"),
        VariableSpec(auth, "LocalAuthorizeOffline", boolean, key="LocalAuthorizeOffline"),
        VariableSpec(auth, "LocalPreAuthorize", boolean, key="LocalPreAuthorize"),
        VariableSpec(
            auth, "OfflineTxForUnknownIdEnabled", boolean, key="AllowOfflineTxForUnknownId"
        ),
        VariableSpec(cache, "Available", boolean, ro, "true", constant=True),
        VariableSpec(cache, "Enabled", boolean, key="AuthorizationCacheEnabled"),
        VariableSpec(local, "Available", boolean, ro, "true", constant=True),
        VariableSpec(
            local,
            "BytesPerMessage",
            integer,
            ro,
            str(LOCAL_LIST_BYTES_PER_MESSAGE),
            constant=True,
            unit="B",
        ),
        VariableSpec(local, "Enabled", boolean, key="LocalAuthListEnabled"),
        VariableSpec(
            local,
            "ItemsPerMessage",
            integer,
            ro,
            str(SEND_LOCAL_LIST_MAX),
            constant=True,
        ),
        # --- security (certificates are the security feature's)
        VariableSpec(
            security,
            "BasicAuthPassword",
            DataType.STRING,
            Mutability.WRITE_ONLY,
            key="AuthorizationKey",
            max_limit=40,
        ),
        VariableSpec(security, "OrganizationName", DataType.STRING, key="CpoName", max_limit=64),
        VariableSpec(security, "SecurityProfile", integer, ro, key="SecurityProfile"),
        # --- the clock: DateTime is the station's (live)
        VariableSpec(
            "ClockCtrlr",
            "TimeSource",
            DataType.SEQUENCE_LIST,
            default="Heartbeat",
            values_list=("Heartbeat",),
        ),
        # --- the device model's own limits
        *(
            VariableSpec(
                device,
                "ItemsPerMessage",
                integer,
                ro,
                str(ITEMS_PER_MESSAGE),
                variable_instance=message,
                constant=True,
            )
            for message in ("GetReport", "GetVariables", "SetVariables")
        ),
        *(
            VariableSpec(
                device,
                "BytesPerMessage",
                integer,
                ro,
                str(BYTES_PER_MESSAGE),
                variable_instance=message,
                constant=True,
                unit="B",
            )
            for message in ("GetReport", "GetVariables", "SetVariables")
        ),
        VariableSpec(
            device,
            "ConfigurationValueSize",
            integer,
            ro,
            str(CONFIGURATION_VALUE_SIZE),
            constant=True,
        ),
        VariableSpec(
            device, "ReportingValueSize", integer, ro, str(REPORTING_VALUE_SIZE), constant=True
        ),
    ]


# --- the physical components and live values ------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvseDescription:
    """An EVSE of this station: one connector each (EVSE n = the core's connector n)."""

    phases: int
    max_power_w: float
    connector_type: str  # ConnectorEnumType: "sType2" for a socket, "cType2" for a cable
    max_current_a: float | None = None  # A per phase: the installation limit (max_power_w's)


@dataclass(frozen=True, slots=True)
class StationDescription:
    vendor: str
    model: str
    evses: tuple[EvseDescription, ...]


@dataclass(frozen=True, slots=True)
class StationLive:
    """What the station computes, read when asked. EVSE 0 means the station as a whole."""

    availability_state: Callable[[int], str]  # Available/Occupied/Reserved/Unavailable/Faulted
    available: Callable[[int], bool]
    problem: Callable[[int], bool]
    power_w: Callable[[int], float]
    date_time: Callable[[], str]  # the station's clock: ms precision and "Z"
    local_list_entries: Callable[[], int]
    # Without these, the attributes they feed are not offered (electrical_values below).
    current_a: Callable[[int], float] | None = None  # EVSE n: its highest phase current now
    target_current_a: Callable[[int], float] | None = None  # A smart charging steers EVSE n to
    target_power_w: Callable[[int], float] | None = None  # the same in W; 0: the whole station


AVAILABILITY_STATES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")


def station_variables(station: StationDescription, live: StationLive) -> list[VariableSpec]:
    """ChargingStation, each EVSE and its connector, the clock and the local list's size."""
    ro = Mutability.READ_ONLY

    def flag(read: Callable[[int], bool], n: int) -> Callable[[], str]:
        return lambda: "true" if read(n) else "false"

    def availability(component: str, n: int, connector: int | None = None) -> list[VariableSpec]:
        evse = n or None
        return [
            VariableSpec(
                component,
                "AvailabilityState",
                DataType.OPTION_LIST,
                ro,
                evse=evse,
                connector=connector,
                read=lambda: live.availability_state(n),
                values_list=AVAILABILITY_STATES,
            ),
            VariableSpec(
                component,
                "Available",
                DataType.BOOLEAN,
                ro,
                evse=evse,
                connector=connector,
                read=flag(live.available, n),
            ),
        ]

    phases = max((e.phases for e in station.evses), default=0)
    specs = [
        *availability("ChargingStation", 0),
        VariableSpec("ChargingStation", "Model", DataType.STRING, ro, station.model, constant=True),
        electrical_power(0, sum(e.max_power_w for e in station.evses), None, live),
        VariableSpec(
            "ChargingStation", "Problem", DataType.BOOLEAN, ro, read=flag(live.problem, 0)
        ),
        VariableSpec(  # maxLimit: the appendix asks for it (as for Connector)
            "ChargingStation",
            "SupplyPhases",
            DataType.INTEGER,
            ro,
            str(phases),
            constant=True,
            max_limit=phases,
        ),
        VariableSpec(
            "ChargingStation", "VendorName", DataType.STRING, ro, station.vendor, constant=True
        ),
        VariableSpec("ClockCtrlr", "DateTime", DataType.DATETIME, ro, read=live.date_time),
        VariableSpec(
            "LocalAuthListCtrlr",
            "Entries",
            DataType.INTEGER,
            ro,
            read=lambda: str(live.local_list_entries()),
        ),
    ]
    for n, evse in enumerate(station.evses, start=1):
        specs += [
            *availability("EVSE", n),
            *evse_electrical(n, evse, live),
            VariableSpec(
                "EVSE", "Problem", DataType.BOOLEAN, ro, evse=n, read=flag(live.problem, n)
            ),
            VariableSpec(
                "EVSE",
                "SupplyPhases",
                DataType.INTEGER,
                ro,
                str(evse.phases),
                evse=n,
                constant=True,
            ),
            *availability("Connector", n, 1),
            VariableSpec(
                "Connector",
                "ConnectorType",
                DataType.STRING,
                ro,
                evse.connector_type,
                evse=n,
                connector=1,
                constant=True,
            ),
            VariableSpec(
                "Connector",
                "SupplyPhases",
                DataType.INTEGER,
                ro,
                str(evse.phases),
                evse=n,
                connector=1,
                constant=True,
                max_limit=evse.phases,
            ),
        ]
    return specs


# The attributes of the electrical variables, in the order reports list them.
_SET_ATTRIBUTES = (Attribute.TARGET, Attribute.MIN_SET, Attribute.MAX_SET)


def _rounded(value: float) -> str:
    return _number(round(value, 1))


def _electrical(
    component: str,
    variable: str,
    unit: str,
    n: int,
    actual: Callable[[], str],
    values: dict[Attribute, str | Callable[[], str]],
    max_limit: float | None = None,
) -> VariableSpec:
    return VariableSpec(
        component,
        variable,
        DataType.DECIMAL,
        Mutability.READ_ONLY,
        evse=n or None,
        read=actual,
        unit=unit,
        max_limit=max_limit,
        attributes=(Attribute.ACTUAL, *(a for a in _SET_ATTRIBUTES if a in values)),
        attribute_values=tuple(values.items()),
    )


def electrical_power(
    n: int, most_w: float, least_w: float | None, live: StationLive
) -> VariableSpec:
    """Power (W) of EVSE n (0: ChargingStation). Actual: what the meter measures now.
    MaxSet (and maxLimit): the most the wiring delivers. MinSet (an EVSE): the least it
    offers while charging, 6 A on each wired phase; a lower limit pauses it. Target: what
    the charging profiles in force allow now (GetCompositeSchedule's value), which the
    arbiter steers the offer to; never above MaxSet."""
    values: dict[Attribute, str | Callable[[], str]] = {Attribute.MAX_SET: _rounded(most_w)}
    if least_w is not None:
        values[Attribute.MIN_SET] = _rounded(least_w)
    if (target := live.target_power_w) is not None:
        values[Attribute.TARGET] = lambda: _rounded(min(max(target(n), 0.0), most_w))
    component = "EVSE" if n else "ChargingStation"
    return _electrical(
        component, "Power", "W", n, lambda: _rounded(live.power_w(n)), values, max_limit=most_w
    )


def evse_electrical(n: int, evse: EvseDescription, live: StationLive) -> list[VariableSpec]:
    """EVSE n's Power and, when the station reads its meter's currents, ACCurrent (A per
    phase): Actual the highest phase current now, Target the current the arbiter steers
    the pilot to, MinSet the 6 A below which the EVSE pauses, MaxSet the installation
    limit. Without the installation limit only Power, as far as it is known."""
    most = evse.max_current_a
    if most is None:
        return [electrical_power(n, evse.max_power_w, None, live)]
    least_w = evse.max_power_w * MIN_CURRENT_A / most  # at the voltage max_power_w assumes
    specs = [electrical_power(n, evse.max_power_w, least_w, live)]
    if (current := live.current_a) is not None:
        values: dict[Attribute, str | Callable[[], str]] = {
            Attribute.MIN_SET: _rounded(MIN_CURRENT_A),
            Attribute.MAX_SET: _rounded(most),
        }
        if (target := live.target_current_a) is not None:
            values[Attribute.TARGET] = lambda: _rounded(min(max(target(n), 0.0), most))
        amps = _electrical("EVSE", "ACCurrent", "A", n, lambda: _rounded(current(n)), values)
        specs.insert(0, amps)
    return specs


def standard_variables(station: StationDescription, live: StationLive) -> list[VariableSpec]:
    """Every variable the station itself defines (features add theirs)."""
    return configuration_variables() + station_variables(station, live)


def check_initial(name: str, value: str) -> str | None:
    """Why the configuration file may not set 2.0.1 variable `name` (a storage name such as
    "TxCtrlr.TxStartPoint") to `value`, or None if it may."""
    for spec in configuration_variables():
        if spec.storage_name() != name:
            continue
        if spec.key is not None:
            return f"the same setting as the OCPP 1.6 key {spec.key}: set it in [ocpp.keys]"
        if not spec.writable or spec.read is not None:
            return "read-only: evsed sets it itself"
        problem = value_problem(spec, value)
        return None if problem is None else problem[1]
    return "unknown OCPP 2.0.1 variable (or one that only the CSMS sets)"


# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """What the CSMS may send at once (DeviceDataCtrlr): beyond, the request is refused."""

    items_get_variables: int
    items_set_variables: int
    items_get_report: int
    bytes_get_variables: int
    bytes_set_variables: int
    bytes_get_report: int


@dataclass(slots=True)
class _Lookup:
    spec: VariableSpec | None = None
    status: str = "Accepted"  # else UnknownComponent / UnknownVariable


class DeviceModel:
    """Every variable of the station, their values and GetVariables / SetVariables /
    report semantics. Requests and results are the OCPP 2.0.1 JSON objects."""

    def __init__(
        self,
        keys: ConfigurationKeys,
        store: Store,
        specs: Iterable[VariableSpec] = (),
        initial: Mapping[str, str] | None = None,
    ) -> None:
        self._keys = keys
        self._store = store
        self._persisted = store.config_keys()
        self._initial = dict(initial or {})
        self._specs: dict[tuple[Any, ...], VariableSpec] = {}
        self._components: set[tuple[Any, ...]] = set()
        self._own: dict[str, str] = {}
        self._listeners: list[Callable[[VariableSpec, str], None]] = []
        self.add(specs)

    # --- the catalogue

    def add(self, specs: Iterable[VariableSpec]) -> None:
        """Register variables (a feature's); each identity once."""
        for spec in specs:
            if spec.identity in self._specs:
                raise ValueError(f"variable {spec.storage_name()} defined twice")
            self._put(spec)

    def replace(self, spec: VariableSpec) -> None:
        """Swap a registered variable's description (e.g. to attach a rule); keeps its value."""
        if spec.identity not in self._specs:
            raise KeyError(spec.storage_name())
        self._put(spec)

    def _put(self, spec: VariableSpec) -> None:
        if spec.key is not None and spec.key not in self._keys.specs:
            raise ValueError(f"{spec.storage_name()}: no configuration key {spec.key}")
        for attribute, _ in spec.attribute_values:
            if attribute is Attribute.ACTUAL or attribute not in spec.attributes:
                raise ValueError(f"{spec.storage_name()}: a value for {attribute} it lacks")
        self._specs[spec.identity] = spec
        self._components.add(spec.component_id)
        if spec.key is None and spec.read is None:
            for attribute in spec.attributes:
                name = spec.storage_name(attribute)
                if name in self._own:
                    continue
                default = spec.default if attribute is Attribute.ACTUAL else ""
                self._own[name] = default
                for source in (self._initial, self._persisted):
                    if name in source and value_problem(spec, source[name]) is None:
                        self._own[name] = normalise(spec, source[name])

    def specs(self) -> list[VariableSpec]:
        return list(self._specs.values())

    def spec(
        self,
        component: str,
        variable: str,
        instance: str | None = None,
        evse: int | None = None,
        connector: int | None = None,
        component_instance: str | None = None,
    ) -> VariableSpec:
        return self._specs[(component, component_instance, evse, connector, variable, instance)]

    def subscribe(self, listener: Callable[[VariableSpec, str], None]) -> None:
        """Call `listener(spec, value)` after each accepted SetVariables change."""
        self._listeners.append(listener)

    # --- values for the layer's own use

    def value(
        self,
        component: str,
        variable: str,
        instance: str | None = None,
        evse: int | None = None,
        connector: int | None = None,
    ) -> str:
        return self._read(self.spec(component, variable, instance, evse, connector))

    def int_value(self, component: str, variable: str, instance: str | None = None) -> int:
        return int(self.value(component, variable, instance))

    def bool_value(self, component: str, variable: str, instance: str | None = None) -> bool:
        return self.value(component, variable, instance) == "true"

    def limits(self) -> MessageLimits:
        def n(variable: str, message: str) -> int:
            return self.int_value("DeviceDataCtrlr", variable, message)

        return MessageLimits(
            items_get_variables=n("ItemsPerMessage", "GetVariables"),
            items_set_variables=n("ItemsPerMessage", "SetVariables"),
            items_get_report=n("ItemsPerMessage", "GetReport"),
            bytes_get_variables=n("BytesPerMessage", "GetVariables"),
            bytes_set_variables=n("BytesPerMessage", "SetVariables"),
            bytes_get_report=n("BytesPerMessage", "GetReport"),
        )

    def _read(self, spec: VariableSpec, attribute: Attribute = Attribute.ACTUAL) -> str:
        if attribute is Attribute.ACTUAL:
            if spec.read is not None:
                return spec.read()
            if spec.key is not None:
                return self._keys.get(spec.key)
        elif (given := dict(spec.attribute_values).get(attribute)) is not None:
            return given if isinstance(given, str) else given()
        elif spec.read is not None:  # a live value's MinSet / MaxSet: the limits it has
            limit = spec.max_limit if attribute is Attribute.MAX_SET else spec.min_limit
            return "" if limit is None else _number(limit)
        return self._own[spec.storage_name(attribute)]

    def _reporting_size(self) -> int:
        spec = self._specs.get(("DeviceDataCtrlr", None, None, None, "ReportingValueSize", None))
        return int(self._read(spec)) if spec is not None else REPORTING_VALUE_SIZE

    # --- GetVariables / SetVariables

    def _lookup(self, component: Mapping[str, Any], variable: Mapping[str, Any]) -> _Lookup:
        evse = component.get("evse") or {}
        component_id = (
            component.get("name"),
            component.get("instance"),
            evse.get("id"),
            evse.get("connectorId"),
        )
        if component_id not in self._components:
            return _Lookup(status="UnknownComponent")
        spec = self._specs.get((*component_id, variable.get("name"), variable.get("instance")))
        if spec is None:
            return _Lookup(status="UnknownVariable")
        return _Lookup(spec)

    def get_variables(self, data: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One GetVariableResult per GetVariableData, in order (B06)."""
        return [self._get_one(item) for item in data]

    def _get_one(self, item: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
        if "attributeType" in item:
            result["attributeType"] = item["attributeType"]
        found = self._lookup(item["component"], item["variable"])
        spec = found.spec
        if spec is None:
            return {**result, "attributeStatus": found.status}
        attribute = Attribute(item.get("attributeType", "Actual"))
        if attribute not in spec.attributes:
            return {**result, "attributeStatus": "NotSupportedAttributeType"}
        if spec.mutability is Mutability.WRITE_ONLY:
            return {
                **result,
                "attributeStatus": "Rejected",
                "attributeStatusInfo": {"reasonCode": "WriteOnly"},
            }
        value = self._read(spec, attribute)[: self._reporting_size()]
        return {**result, "attributeStatus": "Accepted", "attributeValue": value}

    def set_variables(self, data: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One SetVariableResult per SetVariableData, in order; each accepted value is in
        the store before this returns (B05)."""
        return [self._set_one(item) for item in data]

    def _set_one(self, item: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
        if "attributeType" in item:
            result["attributeType"] = item["attributeType"]

        def rejected(reason: str, text: str = "") -> dict[str, Any]:
            info = {"reasonCode": reason, **({"additionalInfo": text[:512]} if text else {})}
            return {**result, "attributeStatus": "Rejected", "attributeStatusInfo": info}

        found = self._lookup(item["component"], item["variable"])
        spec = found.spec
        if spec is None:
            return {**result, "attributeStatus": found.status}
        attribute = Attribute(item.get("attributeType", "Actual"))
        if attribute not in spec.attributes:
            return {**result, "attributeStatus": "NotSupportedAttributeType"}
        if not spec.writable or spec.read is not None:
            return rejected("ReadOnly")
        value = str(item["attributeValue"])
        problem = value_problem(spec, value)
        if problem is not None:
            return rejected(*problem)
        value = normalise(spec, value)
        reboot = spec.reboot_required
        if spec.key is not None and attribute is Attribute.ACTUAL:
            change = self._keys.change(spec.key, value)
            if change not in (ChangeResult.ACCEPTED, ChangeResult.REBOOT_REQUIRED):
                why = self._keys.check(spec.key, value) or "refused by the station's rule for it"
                return rejected("InvalidValue", why)
            reboot = reboot or change is ChangeResult.REBOOT_REQUIRED
        else:
            name = spec.storage_name(attribute)
            self._store.set_config_key(name, value)
            self._own[name] = value
        for listener in self._listeners:
            listener(spec, value)
        return {**result, "attributeStatus": "RebootRequired" if reboot else "Accepted"}

    # --- reports (B07 / B08)

    def report_data(self, spec: VariableSpec) -> ReportData:
        """One variable as NotifyReport describes it: every attribute and the characteristics."""
        component: dict[str, Any] = {"name": spec.component}
        if spec.component_instance is not None:
            component["instance"] = spec.component_instance
        if spec.evse is not None:
            component["evse"] = {"id": spec.evse}
            if spec.connector is not None:
                component["evse"]["connectorId"] = spec.connector
        variable: dict[str, Any] = {"name": spec.variable}
        if spec.variable_instance is not None:
            variable["instance"] = spec.variable_instance
        size = self._reporting_size()
        attributes = []
        given = dict(spec.attribute_values)
        for attribute in spec.attributes:
            fixed = isinstance(given.get(attribute), str)  # the wiring, not a live read
            live = attribute in given and not fixed
            entry: dict[str, Any] = {
                "type": attribute.value,
                "mutability": spec.mutability.value,
                "persistent": fixed or (spec.read is None and not live),
                "constant": fixed or (spec.constant and not live),
            }
            if spec.mutability is not Mutability.WRITE_ONLY:  # B07.FR.03 / B08.FR.03
                entry["value"] = self._read(spec, attribute)[:size]
            attributes.append(entry)
        characteristics: dict[str, Any] = {
            "dataType": spec.data_type.value,
            "supportsMonitoring": False,
        }
        if spec.unit is not None:
            characteristics["unit"] = spec.unit
        minimum = spec.min_limit
        if minimum is None and spec.key is not None:
            key = self._keys.specs[spec.key]
            if key.kind is Kind.INT:
                minimum = key.minimum
        if minimum is not None:
            characteristics["minLimit"] = minimum
        if spec.max_limit is not None:
            characteristics["maxLimit"] = spec.max_limit
        if spec.values_list is not None:
            characteristics["valuesList"] = ",".join(spec.values_list)[:CONFIGURATION_VALUE_SIZE]
        return {
            "component": component,
            "variable": variable,
            "variableAttribute": attributes,
            "variableCharacteristics": characteristics,
        }

    def base_report(self, report_base: str) -> list[ReportData] | None:
        """GetBaseReport's content; None for a report base the station does not offer."""
        if report_base == ReportBase.FULL:
            chosen = self.specs()
        elif report_base == ReportBase.CONFIGURATION:
            chosen = [s for s in self.specs() if s.writable and s.read is None]
        elif report_base == ReportBase.SUMMARY:
            chosen = [s for s in self.specs() if s.variable in SUMMARY_VARIABLES]
        else:
            return None
        return [self.report_data(spec) for spec in chosen]

    def report(
        self,
        component_criteria: Sequence[str] | None = None,
        component_variables: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[ReportData]:
        """GetReport's content (B08): the variables named (a component without a variable:
        all of its variables; no instance or EVSE: all of them), of the components that
        meet any of the criteria."""
        chosen = self.specs()
        if component_variables:
            chosen = [s for s in chosen if any(_selects(cv, s) for cv in component_variables)]
        if component_criteria:
            meets = {
                component_id
                for component_id in {s.component_id for s in chosen}
                if any(self._meets(component_id, c) for c in component_criteria)
            }
            chosen = [s for s in chosen if s.component_id in meets]
        return [self.report_data(spec) for spec in chosen]

    def _meets(self, component_id: tuple[Any, ...], criterion: str) -> bool:
        """Active / Available / Enabled: that variable true, or the component has none;
        Problem: its Problem variable true (B08.FR.07-10)."""
        spec = self._specs.get((*component_id, criterion, None))
        if spec is None:
            return criterion != "Problem"
        return self._read(spec) == "true"


def _selects(selector: Mapping[str, Any], spec: VariableSpec) -> bool:
    component = selector["component"]
    if component["name"] != spec.component:
        return False
    if "instance" in component and component["instance"] != spec.component_instance:
        return False
    evse = component.get("evse")
    if evse is not None:
        if evse["id"] != spec.evse:
            return False
        if "connectorId" in evse and evse["connectorId"] != spec.connector:
            return False
    variable = selector.get("variable")
    if variable is None:
        return True
    if variable["name"] != spec.variable:
        return False
    return "instance" not in variable or variable["instance"] == spec.variable_instance
