"""OCPP 1.6 configuration keys: the catalogue, value rules and the live values.

Values are kept as the strings OCPP exchanges. Precedence: a value the CSMS
set (persisted) wins over the configuration file's `[ocpp.keys]`, which wins
over the built-in default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Current.Offered",
    "Power.Offered",
    "Voltage",
    "Frequency",
)
PHASE_ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
MAX_VALUE_LENGTH = 500
# Integer keys are seconds, Wh or counts: beyond int32 they only overflow float conversions
# and timers (a persisted 10**400 would stop the daemon from starting at all).
MAX_INT_VALUE = 2**31 - 1
LOCAL_LIST_MAX = 250_000  # entries the Local Authorization List may hold
SEND_LOCAL_LIST_MAX = 100_000  # entries one SendLocalList may carry


class Kind(StrEnum):
    BOOL = "boolean"
    INT = "integer"
    CSL = "comma-separated list"
    STRING = "string"  # free text, kept as given; item_check (if any) judges the whole value


class ChangeResult(StrEnum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"


@dataclass(frozen=True, slots=True)
class KeySpec:
    name: str
    kind: Kind
    default: str
    readonly: bool = False
    reboot_required: bool = False
    minimum: int = 0
    allowed_items: tuple[str, ...] | None = None  # CSL vocabulary
    max_items_key: str | None = None  # CSL length limit, named by another key
    item_check: Callable[[str], bool] | None = None
    # Secrets (AuthorizationKey): GetConfiguration lists the key without its value.
    write_only: bool = False
    # A rule that needs the current value: (current, new) -> why not, or None.
    change_check: Callable[[str, str], str | None] | None = None


def _phase_rotation_item(item: str) -> bool:
    connector, _, rotation = item.partition(".")
    return connector.isdigit() and rotation in PHASE_ROTATIONS


def _measurand_list(name: str, default: str) -> tuple[KeySpec, KeySpec]:
    """A measurand list key and its read-only length limit."""
    limit = f"{name}MaxLength"
    return (
        KeySpec(name, Kind.CSL, default, max_items_key=limit, allowed_items=MEASURANDS),
        KeySpec(limit, Kind.INT, "8", readonly=True),
    )


def core_keys(
    number_of_connectors: int, profiles: tuple[str, ...] = ("Core", "LocalAuthListManagement")
) -> dict[str, KeySpec]:
    """Every Core-profile key evsed implements, with its default and access;
    `profiles` is what SupportedFeatureProfiles reports."""
    specs = [
        KeySpec("AllowOfflineTxForUnknownId", Kind.BOOL, "false"),
        KeySpec("AuthorizationCacheEnabled", Kind.BOOL, "true"),
        KeySpec("AuthorizeRemoteTxRequests", Kind.BOOL, "true"),
        KeySpec("ClockAlignedDataInterval", Kind.INT, "0"),
        KeySpec("ConnectionTimeOut", Kind.INT, "60", minimum=1),
        KeySpec(
            "ConnectorPhaseRotation",
            Kind.CSL,
            ",".join(f"{n}.Unknown" for n in range(number_of_connectors + 1)),
            max_items_key="ConnectorPhaseRotationMaxLength",
            item_check=_phase_rotation_item,
        ),
        KeySpec(
            "ConnectorPhaseRotationMaxLength",
            Kind.INT,
            str(number_of_connectors + 1),
            readonly=True,
        ),
        KeySpec("GetConfigurationMaxKeys", Kind.INT, "100", readonly=True),
        KeySpec("HeartbeatInterval", Kind.INT, "300", minimum=1),
        KeySpec("LocalAuthListEnabled", Kind.BOOL, "true"),
        KeySpec("LocalAuthListMaxLength", Kind.INT, str(LOCAL_LIST_MAX), readonly=True),
        KeySpec("LocalAuthorizeOffline", Kind.BOOL, "true"),
        KeySpec("LocalPreAuthorize", Kind.BOOL, "false"),
        *_measurand_list("MeterValuesAlignedData", "Energy.Active.Import.Register"),
        *_measurand_list(
            "MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import"
        ),
        KeySpec("MaxEnergyOnInvalidId", Kind.INT, "0"),
        KeySpec("MeterValueSampleInterval", Kind.INT, "60"),
        KeySpec("NumberOfConnectors", Kind.INT, str(number_of_connectors), readonly=True),
        KeySpec("ResetRetries", Kind.INT, "1"),
        KeySpec("SendLocalListMaxLength", Kind.INT, str(SEND_LOCAL_LIST_MAX), readonly=True),
        KeySpec("StopTransactionOnEVSideDisconnect", Kind.BOOL, "true"),
        KeySpec("StopTransactionOnInvalidId", Kind.BOOL, "true"),
        *_measurand_list("StopTxnAlignedData", ""),
        *_measurand_list("StopTxnSampledData", ""),
        KeySpec(
            "SupportedFeatureProfiles",
            Kind.CSL,
            ",".join(profiles),
            readonly=True,
        ),
        KeySpec("TransactionMessageAttempts", Kind.INT, "3", minimum=1),
        KeySpec("TransactionMessageRetryInterval", Kind.INT, "60"),
        KeySpec("UnlockConnectorOnEVSideDisconnect", Kind.BOOL, "true"),
        # The websocket library sets its ping interval when it connects, so a
        # new value takes effect with the next connection: report that honestly.
        KeySpec("WebSocketPingInterval", Kind.INT, "60", reboot_required=True),
    ]
    return {spec.name: spec for spec in specs}


def parse_bool(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return None


def split_csl(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class ConfigurationKeys:
    """The live key values of one station, with OCPP's change rules.

    `persist` is called with (name, value) for every accepted change, before
    the change is acknowledged, so a value the CSMS set survives a restart.
    """

    def __init__(
        self,
        specs: Mapping[str, KeySpec],
        initial: Mapping[str, str] | None = None,
        persisted: Mapping[str, str] | None = None,
        persist: Callable[[str, str], None] | None = None,
    ) -> None:
        self.specs = dict(specs)
        self._values = {name: spec.default for name, spec in self.specs.items()}
        for source in (initial or {}, persisted or {}):
            for name, value in source.items():
                if name in self._values and self.check(name, value) is None:
                    self._values[name] = value
        self._persist = persist

    def check(self, name: str, value: str) -> str | None:
        """Return why `value` is not acceptable for key `name`, or None if it is."""
        spec = self.specs.get(name)
        if spec is None:
            return "unknown configuration key"
        if len(value) > MAX_VALUE_LENGTH:
            return f"longer than {MAX_VALUE_LENGTH} characters"
        if spec.kind is Kind.BOOL:
            return None if parse_bool(value) is not None else "must be true or false"
        if spec.kind is Kind.INT:
            try:
                number = int(value.strip())
            except ValueError:
                return "must be a whole number"
            if number > MAX_INT_VALUE:
                return f"must be at most {MAX_INT_VALUE}"
            return None if number >= spec.minimum else f"must be at least {spec.minimum}"
        if spec.kind is Kind.STRING:  # the value is never quoted back: it may be a secret
            ok = spec.item_check is None or spec.item_check(value)
            return None if ok else "not an acceptable value"
        items = split_csl(value)
        if spec.allowed_items is not None:
            unknown = [item for item in items if item not in spec.allowed_items]
            if unknown:
                return f"unsupported item(s) {', '.join(unknown)}"
        if spec.item_check is not None:
            bad = [item for item in items if not spec.item_check(item)]
            if bad:
                return f"malformed item(s) {', '.join(bad)}"
        if spec.max_items_key is not None:
            limit = int(self.specs[spec.max_items_key].default)
            if len(items) > limit:
                return f"at most {limit} items"
        return None

    def change(self, name: str, value: str) -> ChangeResult:
        spec = self.specs.get(name)
        if spec is None:
            return ChangeResult.NOT_SUPPORTED
        if spec.readonly or self.check(name, value) is not None:
            return ChangeResult.REJECTED
        if spec.change_check is not None and spec.change_check(self._values[name], value):
            return ChangeResult.REJECTED
        if spec.kind is Kind.CSL:
            value = ",".join(split_csl(value))
        if self._persist is not None:
            self._persist(name, value)
        self._values[name] = value
        return ChangeResult.REBOOT_REQUIRED if spec.reboot_required else ChangeResult.ACCEPTED

    def items(self) -> list[tuple[KeySpec, str]]:
        return [(self.specs[name], value) for name, value in self._values.items()]

    def get(self, name: str) -> str:
        return self._values[name]

    def get_int(self, name: str) -> int:
        return int(self._values[name])

    def get_bool(self, name: str) -> bool:
        return parse_bool(self._values[name]) is True

    def get_list(self, name: str) -> list[str]:
        return split_csl(self._values[name])
