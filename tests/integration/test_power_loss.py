"""A power cut (kill -9) during a transaction: after the restart the CSMS gets the
transaction closed exactly once, with reason PowerLoss and the last persisted reading."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hwsim.csms import CsmsThread
from tests.integration.harness import start_session


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_transaction_cut_by_power_loss_is_closed_once_with_its_last_reading(
    make_daemon: Any, csms: CsmsThread
) -> None:
    daemon = make_daemon(keys={"MeterValueSampleInterval": 1})
    csms.wait_for("BootNotification")
    daemon.request("meter_set", connector=1, wh=1000.0)
    time.sleep(0.5)
    start = start_session(daemon, csms)
    time.sleep(3.0)  # about 3 s at 11 kW: some 9 Wh, checkpointed every second
    charged = daemon.connector()["meter"]["energy_wh"]
    daemon.kill()  # SIGKILL: nothing is flushed, nothing is said to the CSMS
    killed_at = time.time()

    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    stop = csms.wait_for("StopTransaction", after=mark, timeout=10)
    assert stop["reason"] == "PowerLoss"
    assert stop["transactionId"] == csms.last_transaction_id
    assert start["meterStart"] < stop["meterStop"] <= round(charged) + 1
    assert stop["meterStop"] >= round(charged) - 12  # at most a checkpoint interval lost
    assert (
        _time(start["timestamp"])
        < _time(stop["timestamp"])
        <= datetime.fromtimestamp(killed_at, _time(stop["timestamp"]).tzinfo)
    )

    # A second restart does not report it again.
    daemon.stop()
    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    time.sleep(1.0)
    assert csms.calls("StopTransaction") == [stop]


def test_resumed_after_a_crash_when_the_ev_is_still_plugged(
    make_daemon: Any, csms: CsmsThread
) -> None:
    daemon = make_daemon(
        keys={"MeterValueSampleInterval": 1}, extra="[ocpp]\nresume_transactions = true\n"
    )
    csms.wait_for("BootNotification")
    start = start_session(daemon, csms)
    time.sleep(1.5)
    daemon.kill()

    mark = csms.mark()
    daemon.start()
    csms.wait_for("BootNotification", after=mark)
    daemon.wait_status("Charging")  # the car never left: the same transaction goes on
    assert daemon.connector()["transaction"]["csms_id"] == csms.last_transaction_id
    time.sleep(1.0)
    daemon.request("card", uid=start["idTag"])
    stop = csms.wait_for("StopTransaction", after=mark)
    assert (stop["reason"], stop["transactionId"]) == ("Local", csms.last_transaction_id)
    assert stop["meterStop"] > start["meterStart"]
    assert len(csms.calls("StartTransaction")) == 1 and len(csms.calls("StopTransaction")) == 1


def test_a_resumed_transaction_keeps_the_csmss_refusal_of_its_id_tag(
    make_daemon: Any, csms: CsmsThread
) -> None:
    """Started offline for an unknown card; the CSMS then refuses it and the key keeps
    the transaction open, suspended. After a crash the resumed transaction is still
    suspended: the contactor stays open."""
    daemon = make_daemon(
        keys={
            "StopTransactionOnInvalidId": False,
            "AllowOfflineTxForUnknownId": True,
            "LocalAuthorizeOffline": True,
        },
        extra="[ocpp]\nresume_transactions = true\n",
    )
    csms.wait_for("BootNotification")
    daemon.request("link_cut")
    daemon.wait(lambda s: not s["ocpp"]["connected"], 10, "the link down")
    daemon.request("plug", connector=1)
    daemon.request("card", uid="DEADBEEF")  # unknown to the CSMS
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    mark = csms.mark()
    daemon.request("link_restore")
    csms.wait_for("StartTransaction", after=mark)
    daemon.wait_status("SuspendedEVSE")
    daemon.kill()
    daemon.start()
    daemon.wait(lambda s: s["connectors"][0]["transaction"] is not None, 10, "the resumed tx")
    daemon.wait_status("SuspendedEVSE")
    assert not daemon.connector()["contactor_closed"]


def test_not_resumed_when_the_ev_left_while_the_station_was_down(
    make_daemon: Any, csms: CsmsThread
) -> None:
    daemon = make_daemon(extra="[ocpp]\nresume_transactions = true\n")
    csms.wait_for("BootNotification")
    start_session(daemon, csms)
    daemon.kill()
    world = daemon.dir / "state" / "sim-world.json"
    saved = json.loads(world.read_text())
    saved["connectors"][0].update(plugged=False, asking=False)
    world.write_text(json.dumps(saved))

    mark = csms.mark()
    daemon.start()
    stop = csms.wait_for("StopTransaction", after=mark)
    assert (stop["reason"], stop["transactionId"]) == ("PowerLoss", csms.last_transaction_id)
    daemon.wait_status("Available")


def test_a_shutdown_during_a_transaction_closes_it_as_reboot(
    make_daemon: Any, csms: CsmsThread
) -> None:
    daemon = make_daemon()
    csms.wait_for("BootNotification")
    start_session(daemon, csms)
    assert daemon.stop() == 0  # SIGTERM: outputs off, the transaction left for the next run
    mark = csms.mark()
    daemon.start()
    stop = csms.wait_for("StopTransaction", after=mark)
    assert (stop["reason"], stop["transactionId"]) == ("Reboot", csms.last_transaction_id)


def test_events_before_the_clock_is_known_get_the_csms_time(
    make_daemon: Any, csms: CsmsThread
) -> None:
    """No RTC on a Pi: a session started before the first BootNotification answer is
    reported with timestamps on the CSMS's clock, not the system's."""
    ahead = timedelta(days=1)
    csms.clock = lambda: datetime.now(UTC) + ahead
    csms.refuse_connections = True
    daemon = make_daemon(station={"free_vend_id_tag": "HOME"})
    daemon.request("plug", connector=1)  # free vend: starts at once, offline
    plugged_at = datetime.now(UTC) + ahead
    daemon.wait(lambda s: s["connectors"][0]["transaction"] is not None, 5, "a transaction")
    time.sleep(1.0)
    csms.refuse_connections = False
    start = csms.wait_for("StartTransaction", timeout=15)
    assert abs(_time(start["timestamp"]) - plugged_at) < timedelta(seconds=2)
