"""A long offline session on a small disk budget: periodic meter values are thinned,
start and stop are kept, and the CSMS still gets the whole span in order."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from hwsim.csms import CsmsThread

BUDGET_MB = 0.01
MEASURANDS = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage"


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_offline_backlog_stays_within_the_budget(make_daemon: Any, csms: CsmsThread) -> None:
    daemon = make_daemon(
        station={"free_vend_id_tag": "HOME"},
        keys={
            "MeterValueSampleInterval": 1,
            "MeterValuesSampledData": MEASURANDS,
            "StopTxnSampledData": "Energy.Active.Import.Register",
        },
        state={"queue_budget_mb": BUDGET_MB},
    )
    csms.wait_for("BootNotification")
    daemon.request("link_cut")
    csms.wait_disconnected()
    daemon.request("plug", connector=1)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging")
    peak = 0
    for _ in range(24):  # 12 s of samples, about 1.5 KB each with the StopTxn data
        time.sleep(0.5)
        peak = max(peak, daemon.state()["queued_bytes"])
    daemon.request("unplug", connector=1)
    daemon.wait_status("Available")
    assert peak <= BUDGET_MB * 1e6

    mark = csms.mark()
    daemon.request("link_restore")
    stop = csms.wait_for("StopTransaction", after=mark, timeout=20)
    start = csms.calls("StartTransaction")[-1]
    values = [
        p for p in csms.calls("MeterValues") if p.get("transactionId") == stop["transactionId"]
    ]
    stamps = [_time(p["meterValue"][0]["timestamp"]) for p in values]
    assert 3 <= len(values) < 12  # thinned, not emptied
    assert stamps == sorted(stamps)
    assert (stamps[-1] - stamps[0]).total_seconds() >= 9  # the span survives thinning
    assert _time(start["timestamp"]) <= stamps[0] and stamps[-1] <= _time(stop["timestamp"])
    assert stop["reason"] == "EVDisconnected" and stop["meterStop"] > start["meterStart"]
