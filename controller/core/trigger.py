"""Which connectors a remote trigger asks about.

A CSMS may ask the station to send a message now (OCPP 1.6 TriggerMessage and
ExtendedTriggerMessage, OCPP 2.0.1 TriggerMessage). Whether the connector it
names makes sense, and which connectors a request without one covers, is the
same question in every version: decided here, without I/O.
"""

from __future__ import annotations

from enum import Enum

STATION = 0  # the connector number of the station as a whole


class Scope(Enum):
    """What a triggered message reports on."""

    STATION = "station"  # the station as a whole (boot, heartbeat, firmware): a connector is moot
    CONNECTORS = "connectors"  # each connector (meter values): there is no station-wide meter
    STATION_AND_CONNECTORS = "station and connectors"  # statuses: connector 0 is the station


def trigger_targets(scope: Scope, connector: int | None, connectors: int) -> tuple[int, ...] | None:
    """The connectors to send the message for, in order ((0,) for a message about the
    whole station); None when the request must be rejected.

    A connector that does not matter to the message is ignored, as OCPP 1.6 says ("the
    requested message is leading"); one that matters but does not exist is refused;
    none at all means every connector the message can be about.
    """
    if scope is Scope.STATION:
        return (STATION,)
    first = STATION if scope is Scope.STATION_AND_CONNECTORS else 1
    if connector is None:
        return tuple(range(first, connectors + 1))
    if first <= connector <= connectors:
        return (connector,)
    return None
