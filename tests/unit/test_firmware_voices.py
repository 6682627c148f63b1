"""How each OCPP version words the firmware job's and the uploads' steps, and that a
station offering both versions runs one firmware job and one upload, shared by both
layers, each notification worded by the layer that sends it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from controller.core.firmware import FirmwareStatus
from controller.firmware_update import FirmwareUpdates
from controller.log_upload import LogUploads, UploadStep
from controller.ocpp.rpc import validate
from controller.ocpp.v16.firmware import Firmware16, Uploads16
from controller.ocpp.v201.firmware import Firmware201
from controller.ocpp.v201.logs import Uploads201
from controller.store import Store

SIGNED = {"signed": True, "request_id": 7}
PLAIN = {"signed": False, "request_id": None}


class Layer:
    """What the shared jobs read of a version's layer."""

    def __init__(self, store: Store, station: Any) -> None:
        self.store = store
        self.station = station
        self.config = None
        self.online = False
        self.log_status = "Idle"
        self.log_request_id: int | None = None
        self.diagnostics_status = "Idle"


class Station:
    link: Any = None


def valid(version: str, message: tuple[str, dict[str, Any]] | None) -> Any:
    """`message` (action, payload), once the version's request schema takes it."""
    assert message is not None
    validate(version, *message)
    return message


@pytest.mark.parametrize("status", list(FirmwareStatus))
def test_2_0_1_words_every_firmware_status_with_the_request_id(status: FirmwareStatus) -> None:
    assert valid("2.0.1", Firmware201().notification(SIGNED, status)) == (
        "FirmwareStatusNotification",
        {"status": status.value, "requestId": 7},
    )
    # a job a 1.6 run left (a plain UpdateFirmware) has no requestId
    assert valid("2.0.1", Firmware201().notification(PLAIN, status)) == (
        "FirmwareStatusNotification",
        {"status": status.value},
    )


@pytest.mark.parametrize("status", list(FirmwareStatus))
def test_1_6_words_every_firmware_status_as_its_schemas_allow(status: FirmwareStatus) -> None:
    valid("1.6", Firmware16().notification(SIGNED, status))
    plain = Firmware16().notification(PLAIN, status)
    if plain is not None:
        valid("1.6", plain)


def test_1_6_words_plain_and_signed_jobs_differently() -> None:
    voice = Firmware16()
    assert voice.notification(PLAIN, FirmwareStatus.INVALID_SIGNATURE) == (
        "FirmwareStatusNotification",
        {"status": "InstallationFailed"},
    )
    assert voice.notification(PLAIN, FirmwareStatus.INSTALL_REBOOTING) is None
    assert voice.notification(SIGNED, FirmwareStatus.INSTALL_REBOOTING) == (
        "SignedFirmwareStatusNotification",
        {"status": "InstallRebooting", "requestId": 7},
    )


@pytest.mark.parametrize(
    ("step", "word"),
    [
        (UploadStep.UPLOADING, "Uploading"),
        (UploadStep.UPLOADED, "Uploaded"),
        (UploadStep.CANCELLED, "AcceptedCanceled"),
        ("permission", "PermissionDenied"),
        ("unsupported", "NotSupportedOperation"),
        ("failed", "UploadFailure"),
    ],
)
def test_2_0_1_words_every_upload_step(step: str, word: str, tmp_path: Path) -> None:
    layer = Layer(Store(tmp_path / "s.db"), Station())
    voice = Uploads201(layer)
    job = {"request_id": 3}
    assert valid("2.0.1", voice.notification(job, step)) == (
        "LogStatusNotification",
        {"status": word, "requestId": 3},
    )
    voice.current(job, step)
    if step == UploadStep.CANCELLED:  # the new request's status follows
        assert (layer.log_status, layer.log_request_id) == ("Idle", None)
    else:
        assert (layer.log_status, layer.log_request_id) == (word, 3)
    voice.current(job, UploadStep.IDLE)
    assert (layer.log_status, layer.log_request_id) == ("Idle", None)


def test_1_6_says_nothing_of_a_cancelled_upload(tmp_path: Path) -> None:
    layer = Layer(Store(tmp_path / "s.db"), Station())
    voice = Uploads16(layer)
    job = {"request_id": 3, "action": "LogStatusNotification"}
    assert voice.notification(job, UploadStep.CANCELLED) is None
    diagnostics = {"request_id": None, "action": "DiagnosticsStatusNotification"}
    assert valid("1.6", voice.notification(diagnostics, "permission")) == (
        "DiagnosticsStatusNotification",
        {"status": "UploadFailed"},
    )


def test_both_layers_share_one_job_and_each_words_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.put_record(
        "firmware",
        "job",
        {"signed": True, "request_id": 7, "phase": "installing", "install": {}, "file": "x"},
    )

    async def scenario() -> None:
        station = Station()
        v16, v201 = Layer(store, station), Layer(store, station)
        first = FirmwareUpdates.of(v16, Firmware16())
        second = FirmwareUpdates.of(v201, Firmware201())
        assert first is second
        assert first.restarted_for_install
        # both layers know the job's status (for TriggerMessage)
        assert (v16.firmware_status, v201.firmware_request_id) == ("Installing", 7)
        item = {"job": SIGNED, "status": "Installed"}
        assert first._render(item, v16) == (
            "SignedFirmwareStatusNotification",
            {"status": "Installed", "requestId": 7},
        )
        assert first._render(item, v201) == (
            "FirmwareStatusNotification",
            {"status": "Installed", "requestId": 7},
        )
        assert LogUploads.of(v16, Uploads16(v16)) is LogUploads.of(v201, Uploads201(v201))

    asyncio.run(scenario())
