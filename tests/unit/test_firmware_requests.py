"""Firmware and log requests as both OCPP layers hand them to the neutral jobs: checked,
persisted before the answer, refused with a reason each version words. An untrusted
signing certificate's security event is recorded while the request is handled, before
the answer goes out (nothing lost if the power fails right after answering)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from controller.firmware_update import Answer, FirmwareUpdates
from controller.log_upload import LogUploads
from controller.ocpp.rpc import Reply
from controller.ocpp.v16.firmware import FirmwareManagement
from controller.ocpp.v201.firmware import Firmware201, FirmwareFeature
from controller.ocpp.v201.logs import Uploads201
from controller.store import Store
from tests.file_servers import issue


class Clock:
    def epoch(self) -> float:
        return time.time()


class Station:
    link: Any = None
    clock = Clock()

    def hold_new_sessions(self, hold: bool) -> None:
        pass

    def has_running_transactions(self) -> bool:
        return False


class Settings:
    station_id = "CP-TEST"


class Layer:
    """What the firmware features read of a version's layer; security events are kept."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.station = Station()
        self.settings = Settings()
        self.config = None
        self.online = False
        self.events: list[tuple[str, str]] = []

    def security_event(self, kind: str, info: str) -> None:
        self.events.append((kind, info))

    def restarted_for_firmware(self) -> None:
        raise AssertionError("no install was under way")


def untrusted_firmware() -> dict[str, Any]:
    signer = issue("Untrusted Signer", code_signing=True)
    return {
        "location": "http://127.0.0.1:1/fw.bin",
        "retrieveDateTime": "2030-01-01T00:00:00Z",
        "signingCertificate": signer.pem,
        "signature": "c2lnbmF0dXJl",
    }


def answered(answer: dict[str, Any] | Reply) -> dict[str, Any]:
    """The payload sent, without running what a Reply does after it."""
    return answer.payload if isinstance(answer, Reply) else answer


def test_2_0_1_records_the_signing_certificate_event_before_answering(tmp_path: Path) -> None:
    async def scenario() -> None:
        layer = Layer(Store(tmp_path / "s.db"))
        feature = FirmwareFeature(layer)
        req = {"requestId": 4, "firmware": untrusted_firmware()}
        answer = answered(await feature.handlers()["UpdateFirmware"](req))
        assert answer["status"] == "InvalidCertificate"
        assert [kind for kind, _ in layer.events] == ["InvalidFirmwareSigningCertificate"]

    asyncio.run(scenario())


def test_1_6_records_the_signing_certificate_event_before_answering(tmp_path: Path) -> None:
    async def scenario() -> None:
        layer = Layer(Store(tmp_path / "s.db"))
        feature = FirmwareManagement(layer)
        req = {"requestId": 4, "firmware": untrusted_firmware()}
        answer = answered(await feature.handlers()["SignedUpdateFirmware"](req))
        assert answer == {"status": "InvalidCertificate"}
        assert [kind for kind, _ in layer.events] == ["InvalidFirmwareSigningCertificate"]

    asyncio.run(scenario())


# --- the neutral requests both layers word ------------------------------------------------


def test_a_firmware_request_is_persisted_before_it_is_answered(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path / "s.db")
        updates = FirmwareUpdates.of(Layer(store), Firmware201())
        plain = {"retrieve_time": "2030-01-01T00:00:00Z", "retries": None, "interval": None}
        bad = updates.request(request_id=1, location="gopher://x/fw.bin", **plain)
        assert (bad.answer, bad.start) == (Answer.INVALID_VALUE, None)
        late = updates.request(
            request_id=1, location="http://x/fw.bin", **plain | {"retrieve_time": "yesterday"}
        )
        assert late.answer is Answer.INVALID_VALUE
        assert store.records("firmware") == {}
        first = updates.request(request_id=2, location="http://x/fw.bin", **plain)
        assert first.answer is Answer.ACCEPTED and first.start is not None
        assert store.records("firmware")["job"]["request_id"] == 2  # before the answer
        second = updates.request(request_id=3, location="http://x/fw.bin", **plain)
        assert second.answer is Answer.ACCEPTED_CANCELED
        assert store.records("firmware")["job"]["request_id"] == 3

    asyncio.run(scenario())


def test_a_request_during_an_install_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path / "s.db")
        job = {"signed": False, "request_id": 7, "phase": "installing", "file": "x"}
        store.put_record("firmware", "job", job | {"install": {}})
        updates = FirmwareUpdates.of(Layer(store), Firmware201())
        plain = {"retrieve_time": None, "retries": None, "interval": None}
        refused = updates.request(request_id=8, location="http://x/fw.bin", **plain)
        assert (refused.answer, refused.start) == (Answer.INSTALL_IN_PROGRESS, None)

    asyncio.run(scenario())


def test_get_log_answers_and_persists_the_job_with_the_layer_s_fields(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path / "s.db")
        uploads = LogUploads.of(Layer(store), Uploads201(Layer(store)))
        req: dict[str, Any] = {
            "logType": "DiagnosticsLog",
            "requestId": 5,
            "log": {"remoteLocation": "ftp://x/up"},
        }
        bad = uploads.get_log(req | {"log": {"remoteLocation": "gopher://x"}})
        assert (bad.status, bad.start) == ("Rejected", None) and bad.detail
        assert store.records("log_upload") == {}
        good = uploads.get_log(req, action="LogStatusNotification")
        assert good.status == "Accepted" and good.filename.startswith("evsed-CP-TEST-")
        persisted = store.records("log_upload")["job"]
        assert (persisted["request_id"], persisted["action"]) == (5, "LogStatusNotification")

    asyncio.run(scenario())


def test_the_2_0_1_firmware_and_log_modules_stand_on_neutral_modules_only() -> None:
    check = (
        "import sys, controller.ocpp.v201.firmware, controller.ocpp.v201.logs;"
        "sys.exit(any(m.startswith('controller.ocpp.v16') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", check]).returncode == 0
