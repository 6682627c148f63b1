"""The OCPP 2.0.1 functional blocks beyond the layer's own messages, each in its own
module, as for 1.6 (controller.ocpp.v16.features).

A feature is a class built with the ChargePoint201 it serves, `Feature(cp)`, with:

* `variables(number_of_evses) -> list[VariableSpec]` (optional; a static method, or
  an instance method when a value is read live): its device-model variables;
* `handlers() -> dict[action, handler]`: the CSMS's requests it answers;
* optionally `async while_connected()`: work it does while the station is
  connected and accepted (ended by cancellation when the link drops);
* optionally `prepare_remote_start(request, connector) -> bool`: may refuse a
  RequestStartTransaction or keep part of it.

The protocol-neutral part of each feature lives in controller/core and the station.
"""

from __future__ import annotations

from typing import Any

from controller.ocpp.v201.controller_variables import ControllerVariables
from controller.ocpp.v201.firmware import FirmwareFeature
from controller.ocpp.v201.logs import LogsFeature
from controller.ocpp.v201.provisioning import DeviceModelFeature
from controller.ocpp.v201.reservation import ReservationFeature
from controller.ocpp.v201.security import Security201
from controller.ocpp.v201.smart_charging import SmartCharging201
from controller.ocpp.v201.trigger import TriggerFeature

# the feature classes, in the order they are set up
FEATURES: list[Any] = [
    DeviceModelFeature,
    ControllerVariables,
    ReservationFeature,
    TriggerFeature,
    SmartCharging201,
    Security201,
    FirmwareFeature,
    LogsFeature,
]


def attach(cp: Any) -> None:
    """Build every feature for this charging station."""
    cp.features = [feature(cp) for feature in FEATURES]
