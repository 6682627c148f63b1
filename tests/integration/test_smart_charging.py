"""OCPP 1.6 Smart Charging against the real daemon: what the CSMS sets is what the
simulated EV is offered on its pilot, and what GetCompositeSchedule reports.

The daemon changes a running session's PWM duty at most every 5 s (pausing is
immediate); the tests are shaped around that rather than shortening it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hwsim.csms import CallErrorReceived, CsmsThread
from hwsim.event_log import read_events
from tests.integration.harness import CARD, Daemon, start_session, status_record

SECOND_CARD = "04A1B2C4"
DUTY_16_A = 26.67  # the installation limit of the test connectors
DUTY_14_A = 23.33
DUTY_12_A = 20.0
DUTY_10_A = 16.67
DUTY_8_A = 13.33


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def charging_profile(
    *periods: tuple[int, float],
    id: int = 1,
    stack: int = 0,
    purpose: str = "TxProfile",
    kind: str = "Relative",
    unit: str = "A",
    **extra: Any,
) -> dict[str, Any]:
    schedule = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods],
    }
    schedule |= extra.pop("schedule", {})
    return {
        "chargingProfileId": id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
        **extra,
    }


def set_profile(csms: CsmsThread, connector: int, profile: dict[str, Any]) -> str:
    answer = csms.call(
        "SetChargingProfile", {"connectorId": connector, "csChargingProfiles": profile}
    )
    return str(answer["status"])


def clear(csms: CsmsThread, **criteria: Any) -> str:
    return str(csms.call("ClearChargingProfile", criteria)["status"])


def composite(
    csms: CsmsThread, connector: int = 1, duration: int = 60, unit: str | None = None
) -> dict[str, Any]:
    request: dict[str, Any] = {"connectorId": connector, "duration": duration}
    if unit is not None:
        request["chargingRateUnit"] = unit
    return csms.call("GetCompositeSchedule", request)


def limits(answer: dict[str, Any]) -> list[tuple[int, float]]:
    assert answer["status"] == "Accepted", answer
    periods = answer["chargingSchedule"]["chargingSchedulePeriod"]
    return [(p["startPeriod"], p["limit"]) for p in periods]


def pilot(daemon: Daemon, connector: int = 1) -> dict[str, Any]:
    return daemon.state()["hardware"]["connectors"][connector - 1]["pilot"]  # type: ignore[no-any-return]


def wait_duty(daemon: Daemon, duty: float, connector: int = 1, timeout: float = 20.0) -> None:
    daemon.wait(
        lambda s: (
            (p := s["hardware"]["connectors"][connector - 1]["pilot"])["mode"] == "pwm"
            and p["duty_percent"] == duty
        ),
        timeout,
        f"connector {connector} PWM at {duty} %",
    )


# --- limits reach the pilot ------------------------------------------------------------------


def test_a_tx_default_profile_lowers_the_duty_and_is_reported(
    make_daemon: Any, csms: CsmsThread
) -> None:
    daemon = make_daemon(
        keys={
            "MeterValueSampleInterval": 1,
            "MeterValuesSampledData": "Current.Offered,Power.Offered",
        }
    )
    keys = csms.call("GetConfiguration", {})["configurationKey"]
    by_name = {k["key"]: k for k in keys}
    assert "SmartCharging" in by_name["SupportedFeatureProfiles"]["value"].split(",")
    for name, value in (
        ("ChargeProfileMaxStackLevel", "10"),
        ("ChargingScheduleAllowedChargingRateUnit", "Current,Power"),
        ("ChargingScheduleMaxPeriods", "48"),
        ("MaxChargingProfilesInstalled", "32"),
    ):
        assert by_name[name] == {"key": name, "readonly": True, "value": value}
    assert csms.call(
        "ChangeConfiguration", {"key": "ChargingScheduleMaxPeriods", "value": "99"}
    ) == {"status": "Rejected"}

    start_session(daemon, csms)
    wait_duty(daemon, DUTY_16_A)
    default = charging_profile((0, 10.0), purpose="TxDefaultProfile")
    assert set_profile(csms, 0, default) == "Accepted"  # connector 0: every connector
    wait_duty(daemon, DUTY_10_A)
    assert daemon.connector(1)["status"] == "Charging"
    assert daemon.state()["hardware"]["connectors"][0]["ev"]["current_a"][0] == 10.0

    assert limits(composite(csms)) == [(0, 10.0)]
    watts = composite(csms, unit="W")
    assert watts["chargingSchedule"]["chargingRateUnit"] == "W"
    assert limits(watts) == [(0, 6900.0)]  # 10 A x 230 V x 3 phases
    assert watts["connectorId"] == 1 and watts["chargingSchedule"]["duration"] == 60
    assert composite(csms, connector=2) == {"status": "Rejected"}
    assert composite(csms, duration=0) == {"status": "Rejected"}

    def offered(payload: dict[str, Any]) -> dict[str, str]:
        sampled = payload["meterValue"][0]["sampledValue"]
        return {v["measurand"]: v["value"] for v in sampled}

    meter = csms.wait_for("MeterValues", lambda p: offered(p).get("Current.Offered") == "10")
    assert offered(meter)["Power.Offered"] == "6900"


def pilot_outputs(daemon: Daemon, connector: int = 1) -> list[dict[str, Any]]:
    """What the simulated pilot was driven to, in order (hardware.sim_event_log)."""
    events = read_events(daemon.dir / "state" / "sim-events.jsonl")
    return [e for e in events if e["ev"] == "output" and e["c"] == connector]


def test_a_limit_below_6_a_pauses_at_once_and_raising_it_resumes(
    make_daemon: Any, csms: CsmsThread
) -> None:
    daemon = make_daemon(hardware={"sim_event_log": True})
    start_session(daemon, csms)
    mark = csms.mark()
    assert set_profile(csms, 1, charging_profile((0, 3.0))) == "Accepted"
    status_record(csms, "SuspendedEVSE", after=mark)
    state = daemon.connector(1)
    assert (state["pilot_mode"], state["contactor_closed"]) == ("x1", False)
    assert pilot(daemon)["mode"] == "x1"

    mark = csms.mark()
    assert set_profile(csms, 1, charging_profile((0, 12.0))) == "Accepted"  # same id: replaces
    status_record(csms, "Charging", after=mark)
    assert pilot(daemon) | {"state": "C"} == {
        "mode": "pwm",
        "duty_percent": DUTY_12_A,
        "offered_current_a": 12.0,
        "state": "C",
    }
    assert daemon.connector(1)["contactor_closed"] is True
    *_, paused, resumed = pilot_outputs(daemon)
    assert (paused["mode"], resumed["mode"], resumed["duty"]) == ("x1", "pwm", DUTY_12_A)
    assert resumed["t"] - paused["t"] >= 4.9  # the duty moves at most every 5 s


def test_an_absolute_schedule_in_watts_steps_the_duty_over_time(
    make_daemon: Any, csms: CsmsThread
) -> None:
    daemon = make_daemon(hardware={"sim_event_log": True})
    begin = datetime.now(UTC).replace(microsecond=0)
    schedule = charging_profile(
        (0, 6900.0),  # 10 A on three phases at 230 V
        (6, 9660.0),  # 14 A
        purpose="TxDefaultProfile",
        kind="Absolute",
        unit="W",
        schedule={"startSchedule": iso(begin), "duration": 600},
    )
    assert set_profile(csms, 1, schedule) == "Accepted"
    start_session(daemon, csms)
    wait_duty(daemon, DUTY_14_A, timeout=15.0)
    offers = [e["duty"] for e in pilot_outputs(daemon) if e["mode"] == "pwm"]
    assert offers == [DUTY_10_A, DUTY_14_A]

    # The schedule ends 600 s after it began: then the installation limit holds again.
    answer = composite(csms, duration=900)
    start = datetime.fromisoformat(answer["scheduleStart"].replace("Z", "+00:00"))
    end = int((begin + timedelta(seconds=600) - start).total_seconds())
    assert limits(answer) == [(0, 14.0), (end, 16.0)]


def test_the_charge_point_max_profile_caps_and_is_shared_by_the_connectors(
    make_daemon: Any, csms: CsmsThread
) -> None:
    csms.configure(id_tags={CARD: "Accepted", SECOND_CARD: "Accepted"})
    daemon = make_daemon(connectors=[{"max_current": 16}, {"max_current": 16}])
    start = iso(datetime.now(UTC) - timedelta(seconds=5))
    cap = charging_profile(
        (0, 20.0),
        purpose="ChargePointMaxProfile",
        kind="Absolute",
        schedule={"startSchedule": start},
    )
    assert set_profile(csms, 1, cap) == "Rejected"  # only on connector 0
    assert set_profile(csms, 0, cap) == "Accepted"
    assert limits(composite(csms, connector=0)) == [(0, 20.0)]

    start_session(daemon, csms)
    wait_duty(daemon, DUTY_16_A)  # alone: its installation limit is below the cap

    daemon.request("plug", connector=2)
    daemon.request("card", uid=SECOND_CARD)
    daemon.request("ev_charge", connector=2, on=True)
    daemon.wait_status("Charging", connector=2)
    wait_duty(daemon, DUTY_10_A, connector=2)
    wait_duty(daemon, DUTY_10_A, connector=1)  # the first gives up half, within 5 s
    assert limits(composite(csms, connector=1)) == [(0, 10.0)]


# --- managing profiles -------------------------------------------------------------------------


def test_clear_charging_profile_by_id_connector_purpose_and_stack_level(
    make_daemon: Any, csms: CsmsThread
) -> None:
    make_daemon(connectors=[{"max_current": 16}, {"max_current": 16}])
    start = iso(datetime.now(UTC) - timedelta(seconds=5))
    absolute = {"startSchedule": start}
    assert (
        set_profile(
            csms,
            0,
            charging_profile(
                (0, 14.0), id=1, purpose="TxDefaultProfile", kind="Absolute", schedule=absolute
            ),
        )
        == "Accepted"
    )
    assert (
        set_profile(
            csms,
            1,
            charging_profile(
                (0, 10.0),
                id=2,
                stack=1,
                purpose="TxDefaultProfile",
                kind="Absolute",
                schedule=absolute,
            ),
        )
        == "Accepted"
    )
    assert (
        set_profile(
            csms,
            0,
            charging_profile(
                (0, 8.0), id=3, purpose="ChargePointMaxProfile", kind="Absolute", schedule=absolute
            ),
        )
        == "Accepted"
    )
    assert limits(composite(csms, 1)) == [(0, 8.0)]

    assert clear(csms, id=99) == "Unknown"
    assert clear(csms, chargingProfilePurpose="ChargePointMaxProfile") == "Accepted"
    assert limits(composite(csms, 1)) == [(0, 10.0)]
    assert limits(composite(csms, 2)) == [(0, 14.0)]
    assert clear(csms, connectorId=1, stackLevel=0) == "Unknown"
    assert clear(csms, connectorId=1, stackLevel=1) == "Accepted"
    assert limits(composite(csms, 1)) == [(0, 14.0)]
    assert clear(csms, id=1, connectorId=2) == "Accepted"  # the id alone decides
    assert limits(composite(csms, 1)) == [(0, 16.0)]
    assert clear(csms) == "Unknown"


def test_invalid_profiles_are_rejected_and_leave_nothing_behind(
    make_daemon: Any, csms: CsmsThread
) -> None:
    make_daemon()
    start = iso(datetime.now(UTC) - timedelta(seconds=5))
    default = {
        "purpose": "TxDefaultProfile",
        "kind": "Absolute",
        "schedule": {"startSchedule": start},
    }
    assert set_profile(csms, 1, charging_profile((0, 12.0), id=1, **default)) == "Accepted"
    too_many_periods = [(i, 6.0) for i in range(49)]  # ChargingScheduleMaxPeriods is 48
    rejected = [
        (1, charging_profile((0, 6.0))),  # TxProfile without a transaction
        (1, charging_profile((0, 6.0), purpose="ChargePointMaxProfile", kind="Absolute")),
        (2, charging_profile((0, 6.0), id=2, **default)),  # no connector 2
        (1, charging_profile((0, 6.0), (60, 8.0), (30, 7.0), id=2, **default)),
        (1, charging_profile((10, 6.0), id=2, **default)),
        (1, charging_profile((0, -6.0), id=2, **default)),
        (1, charging_profile((0, 6.0), id=2, stack=11, purpose="TxDefaultProfile")),
        (1, charging_profile(*too_many_periods, id=2, **default)),
        (1, charging_profile((0, 6.0), id=2, purpose="TxDefaultProfile", kind="Recurring")),
        (1, charging_profile((0, 6.0), id=2, purpose="TxDefaultProfile", transactionId=5)),
        (
            1,
            charging_profile(
                (0, 6.0), id=2, purpose="TxDefaultProfile", schedule={"startSchedule": start}
            ),
        ),
        (
            1,
            charging_profile(
                (0, 6.0), id=2, purpose="TxDefaultProfile", validTo="2001-01-01T00:00:00Z"
            ),
        ),
        (
            1,
            charging_profile(
                (0, 6.0),
                id=2,
                purpose="TxDefaultProfile",
                validFrom="2100-01-02T00:00:00Z",
                validTo="2100-01-01T00:00:00Z",
            ),
        ),
    ]
    for connector, profile in rejected:
        assert set_profile(csms, connector, profile) == "Rejected", profile
    assert limits(composite(csms)) == [(0, 12.0)]

    # What the schema forbids never reaches the station.
    bad_limit = charging_profile((0, 6.05), id=2, purpose="TxDefaultProfile")
    with pytest.raises(CallErrorReceived) as error:
        set_profile(csms, 1, bad_limit)
    assert error.value.code == "PropertyConstraintViolation"

    # MaxChargingProfilesInstalled (32): one for each connector and level of TxDefault
    # (22 with id 1 replaced), 10 station max profiles; the 33rd finds no room.
    for connector in (0, 1):
        for stack in range(11):
            profile = charging_profile(
                (0, 8.0 + stack / 10), id=100 + 20 * connector + stack, stack=stack, **default
            )
            assert set_profile(csms, connector, profile) == "Accepted"
    station_max = default | {"purpose": "ChargePointMaxProfile"}
    for stack in range(10):
        profile = charging_profile((0, 16.0), id=200 + stack, stack=stack, **station_max)
        assert set_profile(csms, 0, profile) == "Accepted"
    profile = charging_profile((0, 6.0), id=210, stack=10, **station_max)
    assert set_profile(csms, 0, profile) == "Rejected"
    assert limits(composite(csms)) == [(0, 9.0)]  # connector 1's own, level 10
    replacing = charging_profile((0, 7.0), id=130, stack=10, **default)
    assert set_profile(csms, 1, replacing) == "Accepted"
    assert limits(composite(csms)) == [(0, 7.0)]
    assert clear(csms, id=210) == "Unknown"


def test_profiles_survive_a_power_cut_and_a_tx_profile_ends_with_its_transaction(
    make_daemon: Any, csms: CsmsThread
) -> None:
    daemon = make_daemon()
    start = iso(datetime.now(UTC) - timedelta(seconds=5))
    default = charging_profile(
        (0, 10.0), purpose="TxDefaultProfile", kind="Absolute", schedule={"startSchedule": start}
    )
    assert set_profile(csms, 0, default) == "Accepted"
    daemon.kill()  # SIGKILL: nothing gets written on the way down
    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    assert limits(composite(csms)) == [(0, 10.0)]

    start_session(daemon, csms)
    wait_duty(daemon, DUTY_10_A)
    tx_id = csms.last_transaction_id
    assert set_profile(csms, 1, charging_profile((0, 8.0), id=2, transactionId=tx_id)) == "Accepted"
    assert limits(composite(csms)) == [(0, 8.0)]

    mark = csms.mark()
    daemon.request("card", uid=CARD)  # the driver ends the session
    csms.wait_for("StopTransaction", after=mark)
    assert limits(composite(csms)) == [(0, 10.0)]
    assert clear(csms, chargingProfilePurpose="TxProfile") == "Unknown"


def test_remote_start_with_a_tx_profile(make_daemon: Any, csms: CsmsThread) -> None:
    daemon = make_daemon(hardware={"sim_event_log": True})
    refused = [
        charging_profile((0, 8.0), purpose="TxDefaultProfile"),
        charging_profile((0, 8.0), transactionId=1),
        charging_profile((0, 8.0), (0, 9.0)),
        charging_profile((0, 8.0), stack=11),
    ]
    for profile in refused:
        answer = csms.call("RemoteStartTransaction", {"idTag": CARD, "chargingProfile": profile})
        assert answer == {"status": "Rejected"}, profile
    assert daemon.connector(1)["authorized_id_tag"] is None

    mark = csms.mark()
    profile = charging_profile((0, 8.0), id=7)
    answer = csms.call(
        "RemoteStartTransaction", {"connectorId": 1, "idTag": CARD, "chargingProfile": profile}
    )
    assert answer == {"status": "Accepted"}
    daemon.request("plug", connector=1)
    csms.wait_for("StartTransaction", after=mark)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    wait_duty(daemon, DUTY_8_A)
    offers = [e["duty"] for e in pilot_outputs(daemon) if e["mode"] == "pwm"]
    assert offers == [DUTY_8_A]  # from the first moment, never above the profile
    assert limits(composite(csms)) == [(0, 8.0)]
    assert clear(csms, id=7) == "Accepted"
    wait_duty(daemon, DUTY_16_A)
