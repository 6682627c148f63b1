"""The OCPP 1.6 feature profiles beyond Core, each in its own module.

A profile is a class built with the ChargePoint16 it serves, `Profile(cp)`, with:

* `PROFILE`: its name in SupportedFeatureProfiles (or None for extensions that are
  not a 1.6 profile, such as the security whitepaper's messages);
* `keys(number_of_connectors) -> dict[str, KeySpec]` (a static method): its
  configuration keys;
* `handlers() -> dict[action, handler]`: the CSMS's requests it answers;
* optionally `async while_connected()`: work it does while the station is
  connected and accepted (ended by cancellation when the link drops).

The protocol-neutral part of each feature (decisions, schedules, storage) lives in
controller/core and the station; these modules only translate OCPP 1.6 to it.
"""

from __future__ import annotations

from typing import Any

from controller.ocpp.v16.firmware import FirmwareManagement
from controller.ocpp.v16.keys import KeySpec, core_keys
from controller.ocpp.v16.reservation import ReservationProfile
from controller.ocpp.v16.security import Security
from controller.ocpp.v16.smart_charging import SmartChargingProfile
from controller.ocpp.v16.trigger import RemoteTrigger

# the profile classes, in the order they are set up
PROFILES: list[Any] = [
    Security,  # first: the others may report security events while they are set up
    RemoteTrigger,
    ReservationProfile,
    FirmwareManagement,
    SmartChargingProfile,
]


def supported_profiles() -> tuple[str, ...]:
    names = ["Core", "LocalAuthListManagement"]
    names += [p.PROFILE for p in PROFILES if p.PROFILE is not None]
    return tuple(names)


def all_keys(number_of_connectors: int) -> dict[str, KeySpec]:
    specs = core_keys(number_of_connectors, supported_profiles())
    for profile in PROFILES:
        specs |= profile.keys(number_of_connectors)
    return specs


def attach(cp: Any) -> None:
    """Build every profile for this charge point."""
    cp.features = [profile(cp) for profile in PROFILES]
