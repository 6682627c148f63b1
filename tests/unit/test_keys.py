"""Rules of OCPP 1.6 configuration keys that features declare (controller.ocpp.v16.keys)."""

from __future__ import annotations

from controller.ocpp.v16.features import all_keys, supported_profiles
from controller.ocpp.v16.keys import ChangeResult, ConfigurationKeys, KeySpec, Kind


def test_a_change_check_sees_the_current_value() -> None:
    only_up = KeySpec(
        "Level",
        Kind.INT,
        "1",
        change_check=lambda old, new: None if int(new) > int(old) else "may only be raised",
    )
    keys = ConfigurationKeys({"Level": only_up})
    assert keys.change("Level", "2") is ChangeResult.ACCEPTED
    assert keys.change("Level", "1") is ChangeResult.REJECTED
    assert keys.get("Level") == "2"


def test_supported_feature_profiles_follow_the_registered_profiles() -> None:
    keys = ConfigurationKeys(all_keys(1))
    assert keys.get_list("SupportedFeatureProfiles") == list(supported_profiles())
    assert supported_profiles()[:2] == ("Core", "LocalAuthListManagement")
