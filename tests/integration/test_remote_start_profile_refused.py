"""A remote start that brought a TxProfile and then fails (its idToken is refused) leaves
no profile behind: while it waited for its transaction, that profile counted in the
station max profile's share and halved the other EVSE's current; once it fails, the
other EVSE gets the whole share back at once, not after ConnectionTimeOut + 60 s.
Over OCPP 1.6 (RemoteStartTransaction) and 2.0.1 (RequestStartTransaction)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon
from tests.integration.test_smart_charging import DUTY_8_A, DUTY_16_A, wait_duty

TWO = [{"max_current": 16}, {"max_current": 16}]
STRANGER = "0A0B0C0D"  # the CSMS refuses it


@pytest.fixture
def csms() -> Iterator[CsmsThread]:
    tags = {CARD: "Accepted", STRANGER: "Invalid"}
    with CsmsThread(id_tags=tags, subprotocols=("ocpp2.0.1", "ocpp1.6")) as central:
        yield central


def held_authorize(csms: CsmsThread, answer: dict[str, Any]) -> threading.Event:
    """Answer Authorize with `answer` once the returned event is set."""
    release = threading.Event()

    async def authorize(_payload: dict[str, Any]) -> dict[str, Any]:
        while not release.is_set():
            await asyncio.sleep(0.05)
        return answer

    csms.respond_with("Authorize", authorize)
    return release


def charge_on_evse_2(daemon: Daemon) -> None:
    daemon.request("plug", connector=2)
    daemon.request("card", uid=CARD)
    daemon.request("ev_charge", connector=2, on=True)
    daemon.wait_status("Charging", connector=2)
    wait_duty(daemon, DUTY_16_A, connector=2)  # alone under the 16 A station max profile


def refused_remote_start_gives_the_share_back(
    daemon: Daemon, csms: CsmsThread, start: Callable[[], dict[str, Any]], refusal: dict[str, Any]
) -> None:
    charge_on_evse_2(daemon)
    release = held_authorize(csms, refusal)
    mark = csms.mark()
    assert start()["status"] == "Accepted"
    csms.wait_for("Authorize", after=mark)
    wait_duty(daemon, DUTY_8_A, connector=2)  # the remote start's EVSE 1 takes its share
    release.set()
    wait_duty(daemon, DUTY_16_A, connector=2)  # refused: nothing waits on EVSE 1 any more
    assert daemon.connector(1)["authorized_id_tag"] is None


def station_max(now: datetime) -> str:
    return (now - timedelta(seconds=10)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_over_1_6(make_daemon: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = make_daemon(connectors=TWO)
    csms.wait_for("BootNotification")
    cap = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "startSchedule": station_max(datetime.now(UTC)),
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
        },
    }
    answer = csms.call("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": cap})
    assert answer == {"status": "Accepted"}
    tx_profile = {
        "chargingProfileId": 9,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
        },
    }
    request = {"connectorId": 1, "idTag": STRANGER, "chargingProfile": tx_profile}
    refused_remote_start_gives_the_share_back(
        daemon,
        csms,
        lambda: csms.call("RemoteStartTransaction", request),
        {"idTagInfo": {"status": "Invalid"}},
    )


def test_over_2_0_1(make_daemon: Callable[..., Daemon], csms: CsmsThread) -> None:
    daemon = make_daemon(connectors=TWO, ocpp={"version": "2.0.1"})
    csms.wait_for("BootNotification")

    def profile(purpose: str, kind: str, **schedule: Any) -> dict[str, Any]:
        return {
            "id": 1 if purpose == "ChargingStationMaxProfile" else 9,
            "stackLevel": 0,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind,
            "chargingSchedule": [
                {
                    "id": 1,
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
                    **schedule,
                }
            ],
        }

    cap = profile(
        "ChargingStationMaxProfile", "Absolute", startSchedule=station_max(datetime.now(UTC))
    )
    answer = csms.call("SetChargingProfile", {"evseId": 0, "chargingProfile": cap})
    assert answer == {"status": "Accepted"}
    request = {
        "evseId": 1,
        "remoteStartId": 5,
        "idToken": {"idToken": STRANGER, "type": "ISO14443"},
        "chargingProfile": profile("TxProfile", "Relative"),
    }
    refused_remote_start_gives_the_share_back(
        daemon,
        csms,
        lambda: csms.call("RequestStartTransaction", request),
        {"idTokenInfo": {"status": "Invalid"}},
    )
