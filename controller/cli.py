"""`evsed`: run the daemon, commission and update a station, drive a simulated one, run the demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from controller import __version__
from controller.config import ConfigError, load_config

DEFAULT_CONFIG = "/etc/evsed/evsed.toml"  # where deploy/install.sh puts it


def _load(path: str) -> Any:
    try:
        return load_config(path)
    except ConfigError as e:
        print(f"{path}: configuration is not valid:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from controller.daemon import run

    return run(config)


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if config is None:
        return 2
    print(f"{args.file}: OK ({len(config.connectors)} connector(s), station {config.station.id})")
    return 0


def _socket_path(args: argparse.Namespace) -> Path | None:
    if args.socket:
        return Path(args.socket)
    config = _load(args.config)
    return None if config is None else config.control.socket


def cmd_sim(args: argparse.Namespace) -> int:
    from controller.control import ControlClient, ControlError

    path = _socket_path(args)
    if path is None:
        return 2
    request: dict[str, Any] = {}
    action = args.action
    if action in ("plug", "unplug", "ev-charge", "ev-current", "ev-stubborn", "meter"):
        request["connector"] = args.connector
    if action in ("ev-charge", "ev-stubborn"):
        request["on"] = args.value == "on"
    if action == "ev-current":
        request["amps"] = args.amps
    if action == "meter":
        request["wh"] = args.wh
    if action == "card":
        request["uid"] = args.uid
    if action == "fault":
        request.update(kind=args.kind, connector=args.connector)
    cmd = {
        "ev-charge": "ev_charge",
        "ev-current": "ev_current",
        "ev-stubborn": "ev_stubborn",
        "meter": "meter_set",
        "fault": "fault_clear" if getattr(args, "clear", False) else "fault_raise",
        "link": f"link_{getattr(args, 'op', '')}",
    }.get(action, action)
    try:
        with ControlClient(path) as client:
            result = client.request(cmd, **request)
    except (OSError, ControlError) as e:
        print(f"evsed sim {action}: {e}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


def cmd_meter_probe(args: argparse.Namespace) -> int:
    from drivers.meter import config_snippet, probe_sync

    print(f"probing {args.port} (baud, parity and unit id across all meter models)...")
    found = probe_sync(args.port, unit_ids=range(1, args.max_unit_id + 1))
    if not found:
        print("no meter answered; check wiring (A/B), power and the meter's bus settings")
        return 1
    print(config_snippet(found))
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    from controller.selftest import main as selftest_main

    return selftest_main(args.config, skip_csms=args.skip_csms)


def cmd_status(args: argparse.Namespace) -> int:
    from controller.status_report import main as status_main

    path = _socket_path(args)
    return 2 if path is None else status_main(path, as_json=args.json)


def cmd_provision(args: argparse.Namespace) -> int:
    from controller.provision import BOOT_CANDIDATES, provision

    sources = (Path(args.source),) if args.source else BOOT_CANDIDATES
    return provision(sources, Path(args.target), Path(args.state_dir))


def cmd_demo(args: argparse.Namespace) -> int:
    from controller.demo import main as demo_main

    return demo_main(verbose=args.verbose, version=args.ocpp)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evsed", description=__doc__)
    parser.add_argument("--version", action="version", version=f"evsed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the station daemon")
    run.add_argument("--config", "-c", required=True, help="configuration file (TOML)")
    run.set_defaults(func=cmd_run)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="report every problem in a configuration file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)

    sim = sub.add_parser("sim", help="drive the simulated hardware of a running daemon")
    where = sim.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", "-c", help="the daemon's configuration file")
    where.add_argument("--socket", help="the daemon's control socket")
    actions = sim.add_subparsers(dest="action", required=True)
    actions.add_parser("state", help="print the station's state as JSON")
    for name, text in (("plug", "plug the EV in"), ("unplug", "unplug the EV")):
        p = actions.add_parser(name, help=text)
        p.add_argument("connector", type=int)
    for name, text in (
        ("ev-charge", "the EV starts/stops asking for energy"),
        ("ev-stubborn", "the EV ignores PWM switching off"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("connector", type=int)
        p.add_argument("value", choices=["on", "off"])
    p = actions.add_parser("ev-current", help="most current per phase the EV draws")
    p.add_argument("connector", type=int)
    p.add_argument("amps", type=float)
    p = actions.add_parser("card", help="present an RFID card")
    p.add_argument("uid")
    p = actions.add_parser("meter", help="set a meter's energy register (Wh)")
    p.add_argument("connector", type=int)
    p.add_argument("wh", type=float)
    p = actions.add_parser("fault", help="raise (or --clear) a hardware fault")
    p.add_argument("kind", choices=["rcd", "weld", "diode", "meter", "reader", "generic"])
    p.add_argument("--connector", type=int, default=1, help="0 for the station")
    p.add_argument("--clear", action="store_true")
    p = actions.add_parser("link", help="cut or restore the CSMS link")
    p.add_argument("op", choices=["cut", "restore"])
    sim.set_defaults(func=cmd_sim)

    meter = sub.add_parser("meter", help="energy meter tools")
    meter_sub = meter.add_subparsers(dest="meter_command", required=True)
    probe = meter_sub.add_parser("probe", help="find a Modbus meter and print its config")
    probe.add_argument("port", help="serial port, e.g. /dev/ttyUSB0")
    probe.add_argument("--max-unit-id", type=int, default=3, help="scan unit ids 1..N")
    probe.set_defaults(func=cmd_meter_probe)

    selftest = sub.add_parser(
        "selftest", help="commissioning: check each configured part (the daemon stopped)"
    )
    selftest.add_argument(
        "--config", "-c", default=DEFAULT_CONFIG, help=f"default {DEFAULT_CONFIG}"
    )
    selftest.add_argument("--skip-csms", action="store_true", help="do not contact the CSMS")
    selftest.set_defaults(func=cmd_selftest)

    status = sub.add_parser("status", help="what the running daemon is doing")
    where = status.add_mutually_exclusive_group()
    where.add_argument("--config", "-c", default=DEFAULT_CONFIG, help=f"default {DEFAULT_CONFIG}")
    where.add_argument("--socket", help="the daemon's control socket")
    status.add_argument("--json", action="store_true", help="the raw state as JSON")
    status.set_defaults(func=cmd_status)

    provision = sub.add_parser(
        "provision", help="take a configuration from the boot partition (run at boot, as root)"
    )
    provision.add_argument("--source", help="default: /boot/firmware/evsed.toml, /boot/evsed.toml")
    provision.add_argument("--target", default="/etc/evsed/evsed.toml")
    provision.add_argument("--state-dir", default="/var/lib/evsed")
    provision.set_defaults(func=cmd_provision)

    from controller.update import add_parser as add_update_parser

    add_update_parser(sub)

    demo = sub.add_parser("demo", help="a whole charging session on simulated hardware")
    demo.add_argument("--verbose", action="store_true", help="also show the daemon's log")
    demo.add_argument(
        "--ocpp", choices=("1.6", "2.0.1"), default="1.6", help="the OCPP version to speak"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
