"""Target / MinSet / MaxSet over the live daemon: a CSMS reads the wiring as MaxSet /
MinSet of the electrical variables, and the limit a charging profile sets as their Target
(controller.ocpp.v201.device_model, controller.smart_charging)."""

from __future__ import annotations

from collections.abc import Callable

from hwsim.csms import CsmsThread
from tests.integration.harness import Daemon
from tests.integration.test_v201_provisioning import get_values, item

# Fixtures "csms", "station" come with the import of csms_201, station_201.
from tests.integration.v201 import (  # noqa: F401
    csms_201,
    station_201,
)

# EVSE 1: 16 A on three phases (11 040 W at 230 V); EVSE 2: 32 A on one (7 360 W).
WIRING = [{"max_current": 16, "phases": 3}, {"max_current": 32, "phases": 1}]


def read(csms: CsmsThread, *wanted: tuple[str, str, int | None, str]) -> list[str]:
    """(component, variable, evse, attribute) -> the value, or the status if not Accepted."""
    items = [
        item(component, variable, attribute=attribute, **({} if evse is None else {"evse": evse}))
        for component, variable, evse, attribute in wanted
    ]
    return [
        r["attributeValue"] if r["attributeStatus"] == "Accepted" else r["attributeStatus"]
        for r in get_values(csms, *items)
    ]


def test_the_csms_reads_the_wiring_and_the_profile_in_force(
    station: Callable[..., Daemon], csms: CsmsThread
) -> None:
    station(connectors=WIRING)
    csms.wait_for("BootNotification")
    assert read(
        csms,
        ("ChargingStation", "Power", None, "MaxSet"),
        ("ChargingStation", "Power", None, "Actual"),
        ("EVSE", "Power", 1, "MaxSet"),
        ("EVSE", "Power", 1, "MinSet"),
        ("EVSE", "Power", 1, "Target"),
        ("EVSE", "ACCurrent", 1, "MaxSet"),
        ("EVSE", "ACCurrent", 2, "Target"),
        ("EVSE", "SupplyPhases", 2, "MaxSet"),
    ) == ["18400", "0", "11040", "4140", "11040", "16", "32", "NotSupportedAttributeType"]

    profile = {
        "id": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {
                "id": 11,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
            }
        ],
    }
    answer = csms.call("SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
    assert answer["status"] == "Accepted"
    assert read(
        csms,
        ("EVSE", "ACCurrent", 1, "Target"),
        ("EVSE", "Power", 1, "Target"),
        ("EVSE", "Power", 1, "MaxSet"),
        ("EVSE", "ACCurrent", 2, "Target"),
        ("ChargingStation", "Power", None, "Target"),
    ) == ["10", "6900", "11040", "32", "14260"]  # 6 900 W + EVSE 2's 7 360 W

    written = csms.call(
        "SetVariables",
        {"setVariableData": [item("EVSE", "Power", evse=1, attribute="Target", value=22000)]},
    )["setVariableResult"]
    assert [(r["attributeStatus"], r["attributeStatusInfo"]["reasonCode"]) for r in written] == [
        ("Rejected", "ReadOnly")
    ]
    assert read(csms, ("EVSE", "Power", 1, "Target")) == ["6900"]
