"""OCPP 2.0.1 network connection profiles (B09 SetNetworkProfile, B10 migration).

The slots:

* Slot 0 is the installer's profile: the configuration file's [csms] (URL, security
  profile; the password is SecurityCtrlr.BasicAuthPassword, station-wide). It is always
  there and OCPP cannot change it, so a CSMS can never take away the way back to the CSMS
  the station was commissioned for. It is numbered 0, outside the CSMS's slots, so a
  CSMS that writes "slot 1" (the usual first choice) never collides with it.
* Slots 1..N (N = 3) are the CSMS's: SetNetworkProfile stores a profile in the store
  (records of kind "network_profiles") before it answers Accepted.

NetworkConfigurationPriority (a SequenceList over "0,1,..,N", its valuesList: B09.FR.05
answers Rejected for a slot not in it) orders them. It may name only slots that hold a
profile and none whose securityProfile is below the active SecurityProfile (A05.FR.10).
A new order is accepted at once and used from the next start of the daemon (B10.FR.04:
"after a reboot, begin with the first entry"; the CSMS follows it with a Reset, A05/B10).

Connecting (B10.FR.03/07-09): the first entry first; after
NetworkProfileConnectionAttempts failed attempts on one profile, the next in priority
order, and after the last one the first again: the station never stops trying
(B10.FR.08). A lost connection starts over at the profile that was connected. Once a
connection with a higher securityProfile succeeds, SecurityCtrlr.SecurityProfile is
raised to it (it never goes down through OCPP), and a connection on a different profile
than the last one asks for a new BootNotification (B10.FR.10).

Profiles the station cannot use are Rejected (reasonCode InvalidNetworkConf): an OCPP
version other than OCPP20 (2.0.1's value in the schema's enum), SOAP, an APN or a VPN (no
modem, no VPN client), an interface other than Wired0 or Wireless0 (it has one network
interface, whichever the system's default route uses: both names mean it), a URL that
is not ws:// or wss:// (wss:// for security profiles 2 and 3), a securityProfile outside
1..3 or a messageTimeout below 1 s. A store that cannot be written answers Failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from controller.ocpp.v16.keys import ChangeResult, ConfigurationKeys
from controller.ocpp.v201.device_model import (
    CSMS_SLOTS,
    DataType,
    DeviceModel,
    Mutability,
    VariableSpec,
    split_list,
)

log = logging.getLogger("evsed.ocpp.network")

RECORDS = "network_profiles"
BUILTIN_SLOT = 0
INTERFACES = ("Wired0", "Wireless0")
SECURITY_PROFILES = (1, 2, 3)


@dataclass(frozen=True, slots=True)
class ConnectionProfile:
    """How to reach a CSMS. `security_profile` 0 (only slot 0, from the configuration
    file) means "as the URL and password say", as in 1.6."""

    slot: int
    url: str
    security_profile: int
    message_timeout: int  # s: how long a CALL waits for its answer
    interface: str = "Wired0"


class Store(Protocol):
    def records(self, kind: str) -> dict[str, Any]: ...

    def put_record(self, kind: str, key: str, value: Any) -> None: ...


def profile_problem(
    slot: int, data: Mapping[str, Any], slots: Sequence[int], active_security: int
) -> tuple[str, str] | None:
    """Why SetNetworkProfile(slot, data) is Rejected: (reasonCode, text), or None (B09)."""
    if slot not in slots:
        offered = ",".join(str(s) for s in slots)
        if slot == BUILTIN_SLOT:
            return "InvalidConfSlot", "slot 0 is the installer's profile; the CSMS has " + offered
        return "InvalidConfSlot", f"configurationSlot must be one of {offered}"
    bad = "InvalidNetworkConf"
    if data.get("ocppVersion") != "OCPP20":
        return bad, "this station speaks OCPP 2.0.1 (OCPP20) here"
    if data.get("ocppTransport") != "JSON":
        return bad, "only OCPP-J (JSON) is supported"
    if data.get("ocppInterface") not in INTERFACES:
        return bad, "the station has one network interface: Wired0 or Wireless0"
    if "apn" in data:
        return bad, "the station has no mobile modem"
    if "vpn" in data:
        return bad, "the station has no VPN client"
    security = data.get("securityProfile")
    if security not in SECURITY_PROFILES:
        return bad, "securityProfile must be 1, 2 or 3"
    if security < active_security:
        return "NoSecurityDowngrade", f"the active security profile is {active_security}"
    url = str(data.get("ocppCsmsUrl", ""))
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return bad, "ocppCsmsUrl is not a URL"
    allowed = ("ws", "wss") if security == 1 else ("wss",)
    if parts.scheme not in allowed or not parts.hostname or not port_ok:
        return bad, f"ocppCsmsUrl must be a {' or '.join(s + '://' for s in allowed)} URL"
    timeout = data.get("messageTimeout")
    if not isinstance(timeout, int) or timeout < 1:
        return bad, "messageTimeout must be at least 1 s"
    return None


def profile_from_ocpp(slot: int, data: Mapping[str, Any]) -> ConnectionProfile:
    return ConnectionProfile(
        slot=slot,
        url=str(data["ocppCsmsUrl"]),
        security_profile=int(data["securityProfile"]),
        message_timeout=int(data["messageTimeout"]),
        interface=str(data["ocppInterface"]),
    )


def after_failure(order: Sequence[int], slot: int, failures: int, attempts: int) -> tuple[int, int]:
    """The fallback rule: (the slot to try next, the failures counted on it) after an
    attempt on `slot` failed, `failures` earlier ones included. After `attempts` failures
    the next slot in `order` (the first after the last), starting with none counted."""
    failures += 1
    if failures < max(attempts, 1) and slot in order:
        return slot, failures
    if slot not in order:
        return order[0], 0
    return order[(order.index(slot) + 1) % len(order)], 0


class NetworkProfiles:
    """The connection profiles, their order and the connection bookkeeping.

    Built once per run; registers OCPPCommCtrlr's connection variables in `device_model`
    (ActiveNetworkProfile, MessageTimeout[Default], the rule of
    NetworkConfigurationPriority) and fixes the order for this run."""

    def __init__(
        self,
        store: Store,
        keys: ConfigurationKeys,
        device_model: DeviceModel,
        builtin: ConnectionProfile,
        csms_slots: int = CSMS_SLOTS,
    ) -> None:
        self._store = store
        self._keys = keys
        self._model = device_model
        self._builtin = replace(builtin, slot=BUILTIN_SLOT)
        self.slots = tuple(range(1, csms_slots + 1))
        self._stored: dict[int, ConnectionProfile] = {}
        for key, data in store.records(RECORDS).items():
            slot = int(key)
            if slot in self.slots and isinstance(data, dict):
                try:
                    self._stored[slot] = profile_from_ocpp(slot, data)
                except (KeyError, TypeError, ValueError):
                    log.error("network profile %s in the store is unreadable: ignored", key)
        priority = device_model.spec("OCPPCommCtrlr", "NetworkConfigurationPriority")
        device_model.replace(
            replace(
                priority,
                values_list=tuple(str(s) for s in (BUILTIN_SLOT, *self.slots)),
                check=self._priority_problem,
            )
        )
        device_model.add(
            [
                VariableSpec(
                    "OCPPCommCtrlr",
                    "ActiveNetworkProfile",
                    DataType.INTEGER,
                    Mutability.READ_ONLY,
                    read=lambda: str(self._slot if self.active is None else self.active),
                ),
                VariableSpec(
                    "OCPPCommCtrlr",
                    "MessageTimeout",
                    DataType.INTEGER,
                    Mutability.READ_ONLY,
                    variable_instance="Default",
                    read=lambda: str(self.current().message_timeout),
                    unit="s",
                ),
            ]
        )
        self._order = self._usable(split_list(device_model.value(*_PRIORITY)))
        self._slot = self._order[0]
        self._failures = 0
        self.active: int | None = None  # the slot of the open connection
        self._last_connected: int | None = None
        # Set by the security feature (controller.ocpp.v201.security): what a security
        # profile needs and the station lacks (a CSMS root, a client certificate), or None.
        self.prerequisite_problem: Callable[[int], str | None] | None = None

    # --- the profiles

    def profiles(self) -> dict[int, ConnectionProfile]:
        """Every profile there is, by slot, slot 0 included."""
        return {BUILTIN_SLOT: self._builtin, **dict(sorted(self._stored.items()))}

    def _usable(self, items: Sequence[str]) -> list[int]:
        profiles = self.profiles()
        order = [int(item) for item in items if item.isdigit() and int(item) in profiles]
        return order or [BUILTIN_SLOT]

    def candidates(self) -> list[ConnectionProfile]:
        """This run's profiles in priority order (fixed when the daemon started)."""
        profiles = self.profiles()
        return [profiles[slot] for slot in self._order if slot in profiles]

    def current(self) -> ConnectionProfile:
        """The profile to connect with now."""
        return self.profiles().get(self._slot, self._builtin)

    # --- connection bookkeeping

    def failed(self, slot: int) -> ConnectionProfile:
        """An attempt on `slot` failed: returns the profile of the next attempt."""
        if slot == self.active:
            self.active = None
        self._slot, self._failures = after_failure(
            self._order, slot, self._failures, self._attempts()
        )
        if self._failures == 0 and self._slot != slot:
            log.warning("network profile %d failed; trying profile %d", slot, self._slot)
        return self.current()

    def connected(self, slot: int) -> bool:
        """A connection on `slot` is open. True when it is another profile than the last
        connection's: the station then sends a BootNotification again (B10.FR.10)."""
        switched = self._last_connected is not None and self._last_connected != slot
        self.active = self._last_connected = self._slot = slot
        self._failures = 0
        security = self.profiles()[slot].security_profile if slot in self.profiles() else 0
        if security > self._keys.get_int("SecurityProfile"):
            if self._keys.change("SecurityProfile", str(security)) is ChangeResult.REJECTED:
                log.error("could not record security profile %d", security)
            else:
                log.info("security profile raised to %d (network profile %d)", security, slot)
        return switched

    def disconnected(self) -> None:
        """The open connection was lost: reconnecting starts at its profile (B10.FR.03)."""
        self.active = None

    def _attempts(self) -> int:
        return self._model.int_value("OCPPCommCtrlr", "NetworkProfileConnectionAttempts")

    # --- SetNetworkProfile

    def set_profile(self, slot: int, data: Mapping[str, Any]) -> tuple[str, dict[str, str] | None]:
        """SetNetworkProfile: (status, statusInfo). Stored before Accepted."""
        problem = profile_problem(slot, data, self.slots, self._keys.get_int("SecurityProfile"))
        if problem is None and self.prerequisite_problem is not None:
            missing = self.prerequisite_problem(int(data["securityProfile"]))
            problem = None if missing is None else ("InvalidNetworkConf", missing)
        if problem is not None:
            log.warning("SetNetworkProfile slot %d rejected: %s", slot, problem[1])
            return "Rejected", {"reasonCode": problem[0], "additionalInfo": problem[1]}
        try:
            self._store.put_record(RECORDS, str(slot), dict(data))
        except Exception as e:  # a full or broken disk: the CSMS must know it did not stick
            log.error("could not store network profile %d: %s", slot, e)
            return "Failed", {"reasonCode": "InternalError", "additionalInfo": str(e)[:512]}
        self._stored[slot] = profile_from_ocpp(slot, data)
        log.info("network profile %d stored: %s", slot, self._stored[slot].url)
        return "Accepted", None

    def _priority_problem(self, value: str) -> tuple[str, str] | None:
        """NetworkConfigurationPriority: profiles that exist, none below the active
        SecurityProfile (A05.FR.10)."""
        items = [int(item) for item in split_list(value)]
        if not items:
            return "InvalidValue", "name at least one configuration slot"
        profiles = self.profiles()
        empty = [str(slot) for slot in items if slot not in profiles]
        if empty:
            return "InvalidValue", f"no network profile in slot(s) {', '.join(empty)}"
        active = self._keys.get_int("SecurityProfile")
        lower = [str(slot) for slot in items if profiles[slot].security_profile < active]
        if lower:
            return "NoSecurityDowngrade", f"slot(s) {', '.join(lower)} below profile {active}"
        check = self.prerequisite_problem
        for slot in items:
            missing = None if check is None else check(profiles[slot].security_profile)
            if missing is not None:
                return "InvalidValue", f"slot {slot}: {missing}"
        return None


_PRIORITY = ("OCPPCommCtrlr", "NetworkConfigurationPriority")
