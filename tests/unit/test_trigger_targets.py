"""Which connectors a remote trigger covers (controller.core.trigger)."""

from __future__ import annotations

import pytest

from controller.core.trigger import Scope, trigger_targets


@pytest.mark.parametrize("connector", [None, 0, 1, 2, 7, -1])
def test_a_station_message_is_sent_once_whatever_the_connector(connector: int | None) -> None:
    # "The requested message is leading": a connector it does not concern is ignored.
    assert trigger_targets(Scope.STATION, connector, 2) == (0,)


def test_without_a_connector_every_connector_is_covered() -> None:
    assert trigger_targets(Scope.CONNECTORS, None, 2) == (1, 2)
    assert trigger_targets(Scope.STATION_AND_CONNECTORS, None, 2) == (0, 1, 2)
    assert trigger_targets(Scope.CONNECTORS, None, 1) == (1,)
    assert trigger_targets(Scope.STATION_AND_CONNECTORS, None, 1) == (0, 1)


@pytest.mark.parametrize("connector", [1, 2])
def test_a_named_connector_is_the_only_one(connector: int) -> None:
    assert trigger_targets(Scope.CONNECTORS, connector, 2) == (connector,)
    assert trigger_targets(Scope.STATION_AND_CONNECTORS, connector, 2) == (connector,)


def test_connector_zero_is_the_station_only_where_the_station_has_the_message() -> None:
    assert trigger_targets(Scope.STATION_AND_CONNECTORS, 0, 2) == (0,)
    assert trigger_targets(Scope.CONNECTORS, 0, 2) is None  # no station-wide meter


@pytest.mark.parametrize("connector", [3, 99, -1, -(2**31)])
@pytest.mark.parametrize("scope", [Scope.CONNECTORS, Scope.STATION_AND_CONNECTORS])
def test_a_connector_that_does_not_exist_is_refused(scope: Scope, connector: int) -> None:
    assert trigger_targets(scope, connector, 2) is None
