"""OCPP-J payload validation maps each schema breach to the error OCPP-J names."""

import pytest

from controller.ocpp.rpc import OcppError, redact, validate


@pytest.mark.parametrize(
    ("version", "payload", "code"),
    [
        ("1.6", {}, "OccurenceConstraintViolation"),
        ("2.0.1", {}, "OccurrenceConstraintViolation"),
        ("1.6", {"connectorId": "1", "type": "Operative"}, "TypeConstraintViolation"),
        ("1.6", {"connectorId": 1, "type": "Sometimes"}, "PropertyConstraintViolation"),
        ("1.6", {"connectorId": 1, "type": "Operative", "x": 1}, "FormationViolation"),
    ],
)
def test_schema_breaches(version: str, payload: dict, code: str) -> None:
    action = "ChangeAvailability"
    if version == "2.0.1":
        payload = {}
    with pytest.raises(OcppError) as caught:
        validate(version, action, payload)
    assert caught.value.code == code


def test_too_long_string_and_bad_date() -> None:
    with pytest.raises(OcppError) as caught:
        validate("1.6", "Authorize", {"idTag": "X" * 21})
    assert caught.value.code == "TypeConstraintViolation"
    with pytest.raises(OcppError) as caught:
        validate(
            "1.6",
            "ReserveNow",
            {
                "connectorId": 1,
                "expiryDate": "tomorrow",
                "idTag": "A",
                "reservationId": 1,
            },
        )
    assert caught.value.code == "PropertyConstraintViolation"


def test_decimal_limits_validate_exactly() -> None:
    """21.4 is a multiple of 0.1 for OCPP, though not in binary floating point."""
    profile = {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}],
            },
        },
    }
    validate("1.6", "SetChargingProfile", profile)


def test_unknown_action() -> None:
    with pytest.raises(OcppError) as caught:
        validate("1.6", "MakeCoffee", {})
    assert caught.value.code == "NotImplemented"


def test_secrets_are_masked_in_logged_frames() -> None:
    frame = '[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"s3cr3t-s3cr3t-123"}]'
    assert "s3cr3t" not in redact(frame)
    assert "AuthorizationKey" in redact(frame)
    plain = '[2,"1","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]'
    assert redact(plain) == plain


def test_a_lone_surrogate_is_refused_before_anything_is_done() -> None:
    import asyncio

    from controller.ocpp.rpc import RpcSession

    sent: list[str] = []
    started: list[str] = []

    class Wire:
        async def send(self, text: str) -> None:
            sent.append(text)

        async def recv(self) -> str:
            await asyncio.sleep(3600)
            return ""

    async def remote_start(payload: dict) -> dict:
        started.append(payload["idTag"])
        return {"status": "Accepted"}

    async def scenario() -> None:
        session = RpcSession(
            Wire(), "1.6", {"RemoteStartTransaction": remote_start}, {"RemoteStartTransaction"}
        )
        session._on_frame('[2,"7","RemoteStartTransaction",{"idTag":"\\ud800"}]')
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert started == []
    assert '"FormationViolation"' in sent[0] and sent[0].startswith('[4, "7"')


def test_a_logged_frame_with_a_lone_surrogate_stays_encodable() -> None:
    """Such a frame is refused, but its log line must not break the journal or a
    report on its way (neither can encode a lone surrogate)."""
    logged = redact('[2,"1","DataTransfer",{"vendorId":"\ud800"}]')
    assert logged.encode("utf-8") == b'[2,"1","DataTransfer",{"vendorId":"\\ud800"}]'


def test_collection_resumes_when_the_last_of_overlapping_big_frames_is_done() -> None:
    import gc

    from controller.ocpp.rpc import gc_paused

    assert gc.isenabled()
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first frame is done before the second
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_secret_value_is_masked_whatever_the_order_of_the_fields() -> None:
    frame = '[2,"1","ChangeConfiguration",{"value":"s3cr3t-s3cr3t-123","key":"AuthorizationKey"}]'
    assert "s3cr3t" not in redact(frame)
    listed = (
        '[3,"1",{"configurationKey":[{"value":"s3cr3t-s3cr3t-123","readonly":false,'
        '"key":"AuthorizationKey"},{"key":"HeartbeatInterval","value":"60"}]}]'
    )
    assert "s3cr3t" not in redact(listed) and '"value":"60"' in redact(listed)
