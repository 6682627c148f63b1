"""`evsed status`: what a running station is doing, in a form a person reads.

The control socket's `state` answer holds everything (connector statuses, the
session, the CSMS link, the queue, recent faults), but as raw JSON meant for
programs. An installer on site or support on the phone wants one screen: is
it charging, under which transaction, is the CSMS link up, is anything stuck
in the queue, and which faults came and went. `--json` still prints the raw
state, for scripts.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from controller.control import ControlClient, ControlError

ANSWER_TIMEOUT_S = 5.0  # a daemon that accepts but does not answer counts as not running


def main(socket_path: str | os.PathLike[str], as_json: bool = False) -> int:
    """Print the running daemon's state (`as_json`: raw); 1 if it does not answer."""
    try:
        with ControlClient(socket_path, timeout=ANSWER_TIMEOUT_S) as client:
            state = client.request("state")
    except (OSError, ValueError):  # no socket, refused, no answer in time, garbled
        print(f"evsed is not running (no answer on {os.fspath(socket_path)})", file=sys.stderr)
        return 1
    except ControlError as e:
        print(f"evsed status: the daemon refused the request: {e}", file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2) if as_json else format_status(state))
    return 0


def format_status(state: dict[str, Any]) -> str:
    """The report: station, OCPP link and queue, each connector, then the recent faults."""
    lines = [f"station      {_status(state)}{_faults(state.get('faults'))}"]
    lines.append(f"OCPP link    {_link(state.get('ocpp'))}")
    queued = state.get("queued_messages", 0)
    size = state.get("queued_bytes")
    lines.append(
        f"queue        {queued} message(s) waiting"
        + (f" ({size / 1000:.1f} kB)" if queued and size is not None else "")
    )
    if state.get("hardware") is not None:
        lines.append("hardware     simulated")
    for connector in state.get("connectors", []):
        lines += ["", *_connector(connector)]
    lines += ["", *_recent_faults(state.get("recent_faults", []))]
    return "\n".join(lines)


def _status(part: dict[str, Any]) -> str:
    error = part.get("error_code") or "NoError"
    text = part.get("status", "?")
    if error != "NoError":
        text += f", error {error}"
    if part.get("operative") is False:
        text += " (set inoperative)"
    return str(text)


def _faults(kinds: list[str] | None) -> str:
    return f"; active faults: {', '.join(kinds)}" if kinds else ""


def _link(link: dict[str, Any] | None) -> str:
    if not link:
        return "unknown"
    text = "connected" if link.get("connected") else "not connected"
    text += f", registration {link.get('registration', '?')}"
    if link.get("allowed") is False:
        text += " (link cut through the control interface)"
    return text


def _connector(c: dict[str, Any]) -> list[str]:
    n = c.get("connector", "?")
    lines = [f"connector {n}  {_status(c)}{_faults(c.get('faults'))}"]
    pilot = f"state {c.get('pilot_state', '?')}, output {c.get('pilot_mode', '?')}"
    if c.get("pilot_mode") == "pwm":
        pilot += f" {c.get('duty_percent', 0):.1f} %, offering {c.get('offered_current_a', 0):g} A"
    lines.append(f"  pilot        {pilot}")
    contactor = "closed" if c.get("contactor_closed") else "open"
    if c.get("locked"):
        contactor += ", socket locked"
    lines.append(f"  contactor    {contactor}")
    meter = c.get("meter")
    tx = c.get("transaction")
    if tx is None:
        waiting = c.get("authorized_id_tag")
        lines.append(
            "  transaction  none" + (f" (idTag {waiting} authorized, waiting)" if waiting else "")
        )
    else:
        csms_id = tx.get("csms_id")
        ids = f"CSMS id {csms_id}" if csms_id is not None else "not yet confirmed by the CSMS"
        text = f"{ids} (local {tx.get('id')}), idTag {tx.get('id_tag')}"
        if meter is not None:
            so_far = meter.get("energy_wh", 0.0) - tx.get("meter_start_wh", 0.0)
            text += f", {so_far / 1000:.3f} kWh so far"
        started = _stamp(tx.get("started_at"))
        if started:
            text += f", started {started}"
        lines.append(f"  transaction  {text}")
    if meter is None:
        lines.append("  meter        no reading")
    else:
        amps = "/".join(f"{a:.1f}" for a in meter.get("current_a", []))
        lines.append(
            f"  meter        {meter.get('power_w', 0.0):.0f} W ({amps} A), "
            f"register {meter.get('energy_wh', 0.0) / 1000:.3f} kWh"
        )
    return lines


def _stamp(stamp: str | None) -> str:
    """A recorded time as wall time: a provisional stamp (clock not yet known) carries it
    after its '|'."""
    if not stamp:
        return ""
    if stamp.startswith("~"):
        return stamp.rpartition("|")[2] + " (provisional)"
    return stamp


def _recent_faults(faults: list[dict[str, Any]]) -> list[str]:
    if not faults:
        return ["recent faults: none since the daemon started"]
    lines = ["recent faults (oldest first):"]
    for f in faults:
        where = "station" if f.get("connector") == 0 else f"connector {f.get('connector')}"
        change = "raised" if f.get("active") else "cleared"
        lines.append(
            f"  {f.get('time', '?')}  {where:<11}  {f.get('kind')} "
            f"({f.get('error_code')})  {change}"
        )
    return lines
