"""`evsed demo`: the bundled CSMS and a real daemon on simulated hardware play
two whole charging sessions, printed as one timeline of OCPP messages and
hardware actions, over OCPP 1.6J or (`--ocpp 2.0.1`) 2.0.1. Loopback only;
exits 0 when every step happened as expected.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from controller.control import ControlClient

CARD = "04A1B2C3"
PACE_S = 0.5
QUIET_FIELDS = ("timestamp", "currentTime", "chargePointVendor", "chargePointModel")
SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
START = time.monotonic()
_print_lock = threading.Lock()


def say(who: str, text: str) -> None:
    with _print_lock:
        print(f"{time.monotonic() - START:7.2f}s  {who:<9} {text}", flush=True)


def _brief(payload: dict[str, Any]) -> str:
    """The fields a person reads first, on one line."""
    parts = []
    for key, value in payload.items():
        if key in ("meterValue", "transactionData"):
            for mv in value:
                for sv in mv["sampledValue"]:
                    name = sv.get("measurand", "Energy.Active.Import.Register").split(".")[0]
                    phase = f"[{sv['phase']}]" if "phase" in sv else ""
                    unit = sv.get("unit") or sv.get("unitOfMeasure", {}).get("unit", "")
                    parts.append(f"{name}{phase}={sv['value']}{unit}")
        elif key == "idTagInfo":
            parts.append(f"idTag {value['status']}")
        elif key == "idToken":
            parts.append(f"idToken={value['idToken']} ({value['type']})")
        elif key == "idTokenInfo":
            parts.append(f"idToken {value['status']}")
        elif key == "transactionInfo":
            parts += [f"{k}={v}" for k, v in value.items() if k != "transactionId"]
        elif key not in QUIET_FIELDS and not isinstance(value, dict | list):
            parts.append(f"{key}={value}")
    return " ".join(parts)


def _on_record(record: Any) -> None:
    arrow = "CP → CSMS" if record.direction == "in" else "CSMS → CP"
    if record.message_type == "CALL":
        say(arrow, f"{record.action}  {_brief(record.payload or {})}")
    elif record.message_type == "CALLRESULT":
        brief = _brief(record.payload or {})
        if brief:
            say(arrow, f"  ↳ {record.action}: {brief}")
    elif record.message_type == "CALLERROR":
        say(arrow, f"  ↳ {record.action}: CALLERROR {record.payload}")


class HardwareWatch(threading.Thread):
    """Polls the daemon's state and prints every hardware change it sees."""

    def __init__(self, socket: Path) -> None:
        super().__init__(daemon=True)
        self.socket = socket
        self.running = True
        self.last: dict[str, Any] = {}
        self.state: dict[str, Any] = {}

    def run(self) -> None:
        with ControlClient(self.socket) as client:
            while self.running:
                self.state = client.request("state")
                self._diff(self.state["connectors"][0], self.state["hardware"]["connectors"][0])
                time.sleep(0.05)

    def _diff(self, c: dict[str, Any], hw: dict[str, Any]) -> None:
        seen = {
            "pilot": (
                f"PWM {c['duty_percent']:.1f} % (offers {c['offered_current_a']:.0f} A)"
                if c["pilot_mode"] == "pwm"
                else "+12 V constant (no offer)"
            ),
            "cp": f"EV state {c['pilot_state']}",
            "contactor": "closed" if c["contactor_closed"] else "open",
            "draw": f"EV draws {max(hw['ev']['current_a']):.0f} A per phase",
        }
        for key, text in seen.items():
            if self.last.get(key) != text:
                self.last[key] = text
                say("hardware", f"{key}: {text}")


def _config(directory: Path, url: str, version: str) -> Path:
    path = directory / "evsed.toml"
    path.write_text(
        f"""[station]
id = "DEMO-1"
[csms]
url = "{url}"
reconnect_min = 0.2
[ocpp]
version = "{version}"
[state]
dir = "state"
[hardware]
meter_poll_interval = 0.5
[[connectors]]
max_current = 16
phases = 3
[ocpp.keys]
MeterValueSampleInterval = 2
MeterValuesSampledData = "Energy.Active.Import.Register,Power.Active.Import,Current.Import"
ConnectionTimeOut = 30
[logging]
level = "info"
"""
    )
    return path


def main(verbose: bool = False, version: str = "1.6") -> int:
    from hwsim.csms import CsmsThread

    workdir = Path(tempfile.mkdtemp(prefix="evsed-demo-"))
    print(f"evsed demo: a station with one 16 A connector, simulated hardware, OCPP {version}")
    print(f"and the bundled CSMS on loopback. Working directory: {workdir}\n")
    with CsmsThread(id_tags={CARD: "Accepted"}, subprotocols=(SUBPROTOCOLS[version],)) as csms:
        csms.on_message(_on_record)
        config = _config(workdir, csms.url, version)
        log = None if verbose else open(workdir / "daemon.log", "wb")  # noqa: SIM115
        daemon = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--config", str(config)],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        try:
            session = Session16(csms) if version == "1.6" else Session201(csms)
            return _play(csms, session, daemon, workdir / "state" / "control.sock")
        finally:
            daemon.terminate()
            daemon.wait(10)
            if log is not None:
                log.close()
                print(f"\nThe daemon's log: {workdir / 'daemon.log'}")


class Session16:
    """What the CSMS sees of a session in OCPP 1.6."""

    def __init__(self, csms: Any) -> None:
        self.csms = csms

    def started(self) -> float:
        return float(self.csms.wait_for("StartTransaction", timeout=10)["meterStart"])

    def metered(self) -> None:
        self.csms.wait_for("MeterValues", timeout=10)

    def stop_remotely(self) -> str:
        tx = self.csms.last_transaction_id
        answer = self.csms.call("RemoteStopTransaction", {"transactionId": tx})
        assert answer["status"] == "Accepted"
        return str(tx)

    def stopped(self) -> tuple[str, float]:
        stop = self.csms.wait_for("StopTransaction", timeout=15)
        return stop["reason"], float(stop["meterStop"])


class Session201:
    """What the CSMS sees of a session in OCPP 2.0.1: TransactionEvents."""

    def __init__(self, csms: Any) -> None:
        self.csms = csms
        self.mark = 0
        self.transaction_id = ""

    def _event(self, kind: str, timeout: float) -> dict[str, Any]:
        record = self.csms.wait_for_record(
            "TransactionEvent", lambda p: p["eventType"] == kind, after=self.mark, timeout=timeout
        )
        self.mark = record.seq + 1
        payload: dict[str, Any] = record.payload
        return payload

    @staticmethod
    def _energy(event: dict[str, Any]) -> float:
        values = [
            sv["value"]
            for mv in event["meterValue"]
            for sv in mv["sampledValue"]
            if sv.get("measurand", "Energy.Active.Import.Register")
            == "Energy.Active.Import.Register"
        ]
        return float(values[-1])

    def started(self) -> float:
        started = self._event("Started", 10)
        self.transaction_id = started["transactionInfo"]["transactionId"]
        return self._energy(started)

    def metered(self) -> None:
        record = self.csms.wait_for_record(
            "TransactionEvent",
            lambda p: p.get("triggerReason") == "MeterValuePeriodic",
            after=self.mark,
            timeout=10,
        )
        self.mark = record.seq + 1

    def stop_remotely(self) -> str:
        request = {"transactionId": self.transaction_id}
        answer = self.csms.call("RequestStopTransaction", request)
        assert answer["status"] == "Accepted"
        return self.transaction_id

    def stopped(self) -> tuple[str, float]:
        ended = self._event("Ended", 15)
        return ended["transactionInfo"].get("stoppedReason", "Local"), self._energy(ended)


def _play(csms: Any, session: Any, daemon: subprocess.Popen[bytes], socket: Path) -> int:
    deadline = time.monotonic() + 15
    while not socket.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            print("the daemon did not start; see its log", file=sys.stderr)
            return 1
        time.sleep(0.05)
    csms.wait_for("BootNotification", timeout=10)
    watch = HardwareWatch(socket)
    watch.start()
    ctl = ControlClient(socket)

    def step(text: str, cmd: str, **args: Any) -> None:
        say("driver", text)
        ctl.request(cmd, **args)
        time.sleep(PACE_S)  # let the hardware watch print what followed before the next step

    def wait_status(status: str, timeout: float = 15) -> None:
        end = time.monotonic() + timeout
        while ctl.request("state")["connectors"][0]["status"] != status:
            if time.monotonic() > end:
                raise TimeoutError(f"connector never became {status}")
            time.sleep(0.05)

    try:
        time.sleep(0.5)
        print("\n— Session 1: plug in, card, charge, stopped remotely by the operator —")
        step("plugs the cable in", "plug", connector=1)
        wait_status("Preparing")
        step(f"holds card {CARD} to the reader", "card", uid=CARD)
        meter_start = session.started()
        step("EV asks for energy", "ev_charge", connector=1, on=True)
        wait_status("Charging")
        session.metered()
        session.metered()
        say("operator", "stops the transaction from the CSMS")
        session.stop_remotely()
        reason, meter_stop = session.stopped()
        assert reason == "Remote" and meter_stop > meter_start, (reason, meter_start, meter_stop)
        time.sleep(PACE_S)
        step("unplugs the cable", "unplug", connector=1)
        wait_status("Available")
        say("result", f"{meter_stop - meter_start:.0f} Wh delivered in session 1")

        print("\n— Session 2: card first, then the cable; the driver stops with the card —")
        step(f"holds card {CARD} to the reader", "card", uid=CARD)
        wait_status("Preparing")
        step("plugs the cable in", "plug", connector=1)
        meter_start = session.started()
        step("EV asks for energy", "ev_charge", connector=1, on=True)
        wait_status("Charging")
        session.metered()
        step(f"holds card {CARD} to the reader again", "card", uid=CARD)
        reason, meter_stop = session.stopped()
        assert reason == "Local", reason
        time.sleep(PACE_S)
        step("unplugs the cable", "unplug", connector=1)
        wait_status("Available")
        say("result", f"{meter_stop - meter_start:.0f} Wh delivered in session 2")
        time.sleep(0.3)
    except (AssertionError, TimeoutError) as e:
        print(f"\ndemo FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        watch.running = False
        watch.join(2)
        ctl.close()
    print("\nDemo finished: both sessions reached the CSMS, start to stop.")
    return 0
