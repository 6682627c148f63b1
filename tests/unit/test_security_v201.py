"""The pure parts of the 2.0.1 security feature (controller.ocpp.v201.security): event
names, which security profile a connection uses, SecurityCtrlr's variables, and the
network profiles' security prerequisites (A05)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.link_security import SECURITY_EVENTS
from controller.ocpp.v16.features import all_keys
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.ocpp.v201.device_model import DeviceModel, configuration_variables
from controller.ocpp.v201.network import ConnectionProfile, NetworkProfiles
from controller.ocpp.v201.security import Security201, connection_profile, event_name
from controller.store import Store

# OCPP 2.0.1 Part 2, appendix "Security events".
EVENTS_201 = frozenset(
    {
        "FirmwareUpdated",
        "FailedToAuthenticateAtCsms",
        "CsmsFailedToAuthenticate",
        "SettingSystemTime",
        "StartupOfTheDevice",
        "ResetOrReboot",
        "SecurityLogWasCleared",
        "ReconfigurationOfSecurityParameters",
        "MemoryExhaustion",
        "InvalidMessages",
        "AttemptedReplayAttacks",
        "TamperDetectionActivated",
        "InvalidFirmwareSignature",
        "InvalidFirmwareSigningCertificate",
        "InvalidCsmsCertificate",
        "InvalidChargingStationCertificate",
        "InvalidTLSVersion",
        "InvalidTLSCipherSuite",
        "MaintenanceLoginAccepted",
        "MaintenanceLoginFailed",
    }
)


def test_every_neutral_event_has_its_2_0_1_name() -> None:
    assert {event_name(kind) for kind in SECURITY_EVENTS} <= EVENTS_201
    assert event_name("InvalidCentralSystemCertificate") == "InvalidCsmsCertificate"
    assert event_name("StartupOfTheDevice") == "StartupOfTheDevice"


@pytest.mark.parametrize(
    ("network_profile", "active", "expected"),
    [
        (0, 0, 0),  # slot 0 without a profile: as the URL and password say
        (0, 1, 1),
        (1, 1, 1),
        (3, 2, 3),  # a new slot's higher profile is tried
        (1, 2, 2),  # never below the active profile, also on a fallback slot
        (2, 3, 3),
    ],
)
def test_the_profile_of_a_connection(network_profile: int, active: int, expected: int) -> None:
    assert connection_profile(network_profile, active) == expected


def model(path: Path) -> tuple[ConfigurationKeys, DeviceModel, Store]:
    store = Store(path / "evsed.db")
    keys = ConfigurationKeys(
        all_keys(1), persisted=store.config_keys(), persist=store.set_config_key
    )
    device_model = DeviceModel(keys, store, configuration_variables())
    device_model.add(Security201.variables(1))
    return keys, device_model, store


def set_one(device_model: DeviceModel, variable: str, value: str) -> dict[str, Any]:
    item = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": variable}}
    (result,) = device_model.set_variables([{**item, "attributeValue": value}])
    return result


def test_security_ctrlr_variables(tmp_path: Path) -> None:
    keys, device_model, store = model(tmp_path)
    value = device_model.value
    assert value("SecurityCtrlr", "MaxCertificateChainSize") == "10000"
    assert value("SecurityCtrlr", "AdditionalRootCertificateCheck") == "false"
    assert value("SecurityCtrlr", "CertSigningWaitMinimum") == "60"
    assert value("SecurityCtrlr", "CertSigningRepeatTimes") == "3"
    for variable in ("MaxCertificateChainSize", "AdditionalRootCertificateCheck"):
        assert set_one(device_model, variable, "1")["attributeStatus"] == "Rejected"
    assert set_one(device_model, "CertSigningWaitMinimum", "0")["attributeStatus"] == "Rejected"
    assert set_one(device_model, "CertSigningRepeatTimes", "-1")["attributeStatus"] == "Rejected"
    assert set_one(device_model, "CertSigningWaitMinimum", "5")["attributeStatus"] == "Accepted"
    assert store.config_keys()["SecurityCtrlr.CertSigningWaitMinimum"] == "5"  # persisted
    # The same settings as 1.6: one value behind both names.
    assert keys.get("CertificateSignedMaxChainSize") == "10000"


def test_network_profiles_need_their_security_prerequisites(tmp_path: Path) -> None:
    keys, device_model, store = model(tmp_path)
    builtin = ConnectionProfile(0, "ws://installer.example/ocpp", 1, 30)
    profiles = NetworkProfiles(store, keys, device_model, builtin)
    data = {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": "wss://csms.example/ocpp",
        "messageTimeout": 20,
        "securityProfile": 3,
        "ocppInterface": "Wired0",
    }
    assert profiles.set_profile(1, data)[0] == "Accepted"  # no rule without the feature
    missing: dict[int, str] = {3: "no client certificate"}
    profiles.prerequisite_problem = missing.get
    status, info = profiles.set_profile(2, data)
    assert status == "Rejected" and info is not None
    assert info == {"reasonCode": "InvalidNetworkConf", "additionalInfo": "no client certificate"}
    assert profiles.set_profile(2, {**data, "securityProfile": 2})[0] == "Accepted"
    item = {
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "NetworkConfigurationPriority"},
    }
    (result,) = device_model.set_variables([{**item, "attributeValue": "1,0"}])
    assert result["attributeStatus"] == "Rejected"  # slot 1 is profile 3
    (result,) = device_model.set_variables([{**item, "attributeValue": "2,0"}])
    assert result["attributeStatus"] == "Accepted"
