"""OCPP 2.0.1 network connection profiles (controller.ocpp.v201.network): SetNetworkProfile's
rules and storage, NetworkConfigurationPriority, and the connection fallback order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.ocpp.v16.features import all_keys
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.ocpp.v201.device_model import DeviceModel, configuration_variables
from controller.ocpp.v201.network import (
    RECORDS,
    ConnectionProfile,
    NetworkProfiles,
    after_failure,
    profile_problem,
)
from controller.store import Store

BUILTIN = ConnectionProfile(
    slot=0, url="ws://installer.example/ocpp", security_profile=1, message_timeout=30
)


def profile(
    url: str = "wss://csms.example/ocpp", security: int = 2, **extra: Any
) -> dict[str, Any]:
    return {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": url,
        "messageTimeout": 20,
        "securityProfile": security,
        "ocppInterface": "Wired0",
        **extra,
    }


@dataclass
class World:
    store: Store
    keys: ConfigurationKeys
    model: DeviceModel
    profiles: NetworkProfiles


def build(path: Path, security: str = "1") -> World:
    store = Store(path / "evsed.db")
    keys = ConfigurationKeys(
        all_keys(1),
        initial={"SecurityProfile": security},
        persisted=store.config_keys(),
        persist=store.set_config_key,
    )
    model = DeviceModel(keys, store, configuration_variables())
    return World(store, keys, model, NetworkProfiles(store, keys, model, BUILTIN))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build(tmp_path)


def set_priority(world: World, value: str) -> dict[str, Any]:
    (result,) = world.model.set_variables(
        [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "NetworkConfigurationPriority"},
                "attributeValue": value,
            }
        ]
    )
    return result


def slots(candidates: list[ConnectionProfile]) -> list[int]:
    return [c.slot for c in candidates]


# --- SetNetworkProfile's rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("slot", "data", "reason"),
    [
        (0, profile(), "InvalidConfSlot"),
        (4, profile(), "InvalidConfSlot"),
        (-1, profile(), "InvalidConfSlot"),
        (1, profile(ocppVersion="OCPP16"), "InvalidNetworkConf"),
        (1, profile(ocppTransport="SOAP"), "InvalidNetworkConf"),
        (1, profile(ocppInterface="Wired1"), "InvalidNetworkConf"),
        (1, profile(apn={"apn": "internet", "apnAuthentication": "NONE"}), "InvalidNetworkConf"),
        (
            1,
            profile(vpn={"server": "v", "user": "u", "password": "p", "key": "k", "type": "IPSec"}),
            "InvalidNetworkConf",
        ),
        (1, profile(security=0), "InvalidNetworkConf"),
        (1, profile(security=4), "InvalidNetworkConf"),
        (1, profile(security=1), "NoSecurityDowngrade"),
        (1, profile(url="ws://csms.example/ocpp"), "InvalidNetworkConf"),  # profile 2: TLS
        (1, profile(url="https://csms.example/ocpp"), "InvalidNetworkConf"),
        (1, profile(url="wss:///ocpp"), "InvalidNetworkConf"),
        (1, profile(url="wss://csms.example:99999/ocpp"), "InvalidNetworkConf"),
        (1, profile(url="wss://[::1/ocpp"), "InvalidNetworkConf"),
        (1, profile(messageTimeout=0), "InvalidNetworkConf"),
    ],
)
def test_profile_problems(slot: int, data: dict[str, Any], reason: str) -> None:
    problem = profile_problem(slot, data, (1, 2, 3), active_security=2)
    assert problem is not None
    assert problem[0] == reason
    assert len(problem[1]) <= 512


def test_acceptable_profiles() -> None:
    assert profile_problem(1, profile(), (1, 2, 3), 2) is None
    assert profile_problem(3, profile(security=3), (1, 2, 3), 2) is None
    assert profile_problem(2, profile("ws://csms.example:8080/ocpp", 1), (1, 2, 3), 1) is None
    assert profile_problem(2, profile(ocppInterface="Wireless0"), (1, 2, 3), 0) is None


def test_set_profile_stores_before_answering(world: World) -> None:
    assert world.profiles.set_profile(2, profile()) == ("Accepted", None)
    assert world.store.records(RECORDS) == {"2": profile()}
    assert world.profiles.profiles()[2] == ConnectionProfile(
        2, "wss://csms.example/ocpp", 2, 20, "Wired0"
    )
    status, info = world.profiles.set_profile(0, profile())
    assert status == "Rejected" and info is not None and info["reasonCode"] == "InvalidConfSlot"
    assert world.profiles.profiles()[0] == BUILTIN
    assert set(world.store.records(RECORDS)) == {"2"}


def test_set_profile_that_cannot_be_stored_fails(world: World) -> None:
    def broken(kind: str, key: str, value: Any) -> None:
        raise OSError("disk full")

    world.store.put_record = broken  # type: ignore[method-assign]
    status, info = world.profiles.set_profile(1, profile())
    assert status == "Failed" and info is not None and "disk full" in info["additionalInfo"]
    assert 1 not in world.profiles.profiles()


def test_a_lower_security_profile_than_the_active_one_is_rejected(tmp_path: Path) -> None:
    world = build(tmp_path, security="3")
    status, info = world.profiles.set_profile(1, profile(security=2))
    assert (status, info and info["reasonCode"]) == ("Rejected", "NoSecurityDowngrade")
    assert world.store.records(RECORDS) == {}


# --- NetworkConfigurationPriority -------------------------------------------------------------


def test_priority_names_stored_profiles_only(world: World) -> None:
    result = set_priority(world, "1,0")
    assert result["attributeStatus"] == "Rejected"
    assert result["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
    assert "1" in result["attributeStatusInfo"]["additionalInfo"]
    assert set_priority(world, "4,0")["attributeStatus"] == "Rejected"  # not offered
    assert set_priority(world, "0,0")["attributeStatus"] == "Rejected"
    assert set_priority(world, "")["attributeStatus"] == "Rejected"
    world.profiles.set_profile(1, profile())
    assert set_priority(world, "1,0")["attributeStatus"] == "Accepted"
    assert world.store.config_keys()["OCPPCommCtrlr.NetworkConfigurationPriority"] == "1,0"


def test_priority_refuses_a_downgrade(tmp_path: Path) -> None:
    world = build(tmp_path, security="1")
    world.profiles.set_profile(1, profile(security=1, url="ws://a.example/ocpp"))
    world.profiles.set_profile(2, profile(security=2))
    world.keys.change("SecurityProfile", "2")
    result = set_priority(world, "2,1")
    assert result["attributeStatus"] == "Rejected"
    assert result["attributeStatusInfo"]["reasonCode"] == "NoSecurityDowngrade"
    # slot 0, the installer's profile 1, is below 2 as well
    assert set_priority(world, "2,0")["attributeStatus"] == "Rejected"
    assert set_priority(world, "2")["attributeStatus"] == "Accepted"


def test_the_priority_takes_effect_at_the_next_start(tmp_path: Path) -> None:
    world = build(tmp_path)
    world.profiles.set_profile(1, profile(security=1, url="ws://new.example/ocpp"))
    assert set_priority(world, "1,0")["attributeStatus"] == "Accepted"
    assert slots(world.profiles.candidates()) == [0]
    assert world.profiles.current().slot == 0
    world.store.close()
    again = build(tmp_path)
    assert slots(again.profiles.candidates()) == [1, 0]
    assert again.profiles.current().url == "ws://new.example/ocpp"
    priority = again.model.spec("OCPPCommCtrlr", "NetworkConfigurationPriority")
    assert priority.values_list == ("0", "1", "2", "3")


def test_a_priority_naming_a_lost_profile_falls_back_to_the_installer(tmp_path: Path) -> None:
    world = build(tmp_path)
    world.store.set_config_key("OCPPCommCtrlr.NetworkConfigurationPriority", "3,2")
    world.store.put_record(RECORDS, "1", {"broken": True})
    world.store.close()
    again = build(tmp_path)
    assert slots(again.profiles.candidates()) == [0]
    assert set(again.profiles.profiles()) == {0}


# --- connecting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slot", "failures", "attempts", "expected"),
    [
        (1, 0, 3, (1, 1)),
        (1, 1, 3, (1, 2)),
        (1, 2, 3, (2, 0)),
        (2, 2, 3, (0, 0)),
        (0, 2, 3, (1, 0)),  # after the last, the first again
        (1, 0, 1, (2, 0)),
        (1, 0, 0, (2, 0)),  # a zero is one attempt
        (5, 0, 3, (1, 0)),  # a slot not in the order: back to the first
    ],
)
def test_after_failure(slot: int, failures: int, attempts: int, expected: tuple[int, int]) -> None:
    assert after_failure([1, 2, 0], slot, failures, attempts) == expected


def test_after_failure_with_one_profile_keeps_trying_it() -> None:
    assert after_failure([0], 0, 2, 3) == (0, 0)


def test_fallback_order_and_bookkeeping(tmp_path: Path) -> None:
    world = build(tmp_path)
    world.profiles.set_profile(1, profile(security=1, url="ws://one.example/ocpp"))
    world.profiles.set_profile(2, profile(security=1, url="ws://two.example/ocpp"))
    set_priority(world, "2,1,0")
    (result,) = world.model.set_variables(
        [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "NetworkProfileConnectionAttempts"},
                "attributeValue": "2",
            }
        ]
    )
    assert result["attributeStatus"] == "Accepted"
    world.store.close()
    world = build(tmp_path)
    p = world.profiles
    tried = [p.current().slot]
    for _ in range(6):
        tried.append(p.failed(tried[-1]).slot)
    assert tried == [2, 2, 1, 1, 0, 0, 2]
    assert p.connected(2) is False  # the first connection of this run
    assert p.active == 2
    p.disconnected()
    assert p.failed(2).slot == 2  # starts over at the profile that was connected
    assert p.failed(2).slot == 1
    assert p.connected(1) is True  # another profile: BootNotification again (B10.FR.10)
    assert p.connected(1) is False


def test_a_connection_with_a_higher_profile_raises_the_security_profile(tmp_path: Path) -> None:
    world = build(tmp_path, security="1")
    world.profiles.set_profile(1, profile(security=2))
    world.profiles.connected(0)
    assert world.keys.get_int("SecurityProfile") == 1
    world.profiles.connected(1)
    assert world.keys.get_int("SecurityProfile") == 2
    assert world.store.config_keys()["SecurityProfile"] == "2"
    world.profiles.connected(0)  # the installer's profile 1 never lowers it
    assert world.keys.get_int("SecurityProfile") == 2


def test_connection_variables(world: World) -> None:
    def get(name: str, instance: str | None = None) -> dict[str, Any]:
        variable = {"name": name, **({"instance": instance} if instance else {})}
        (result,) = world.model.get_variables(
            [{"component": {"name": "OCPPCommCtrlr"}, "variable": variable}]
        )
        return result

    world.profiles.set_profile(1, profile(security=1, url="ws://one.example/ocpp"))
    world.profiles.connected(1)
    assert get("ActiveNetworkProfile")["attributeValue"] == "1"
    assert get("MessageTimeout", "Default")["attributeValue"] == "20"
    world.profiles.disconnected()
    world.profiles.failed(1)  # slot 1 is not in this run's order ("0"): back to its first
    assert get("ActiveNetworkProfile")["attributeValue"] == "0"
    world.profiles.connected(0)
    assert get("ActiveNetworkProfile")["attributeValue"] == "0"
    assert get("MessageTimeout", "Default")["attributeValue"] == "30"
    assert get("NetworkConfigurationPriority")["attributeValue"] == "0"
    (read_only,) = world.model.set_variables(
        [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "ActiveNetworkProfile"},
                "attributeValue": "1",
            }
        ]
    )
    assert read_only["attributeStatus"] == "Rejected"
