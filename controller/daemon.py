"""The composition root: builds one of each part from the configuration and runs them.

A commanded reset ends in a real restart of the process (exec of the same
command line), so everything is built anew exactly as after a power cycle.
Under systemd the daemon reports READY=1 once the store is open and the
hardware has started, pings the watchdog from its main loop and keeps a STATUS
line saying what the station is doing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from typing import Any

from controller.authorizer import Authorizer
from controller.config import Config
from controller.control import ControlServer
from controller.core.connector import ConnectorSettings
from controller.core.status import ConnectorStatus, Status, StopReason
from controller.logs import setup_logging
from controller.ocpp.link import LinkSettings, OcppLink
from controller.ocpp.v16 import features
from controller.ocpp.v16.charge_point import ChargePoint16
from controller.ocpp.v16.keys import ConfigurationKeys
from controller.ocpp.v201 import features as features_201
from controller.ocpp.v201.charge_point import ChargePoint201, connector_status
from controller.ocpp.v201.device_model import (
    DeviceModel,
    EvseDescription,
    StationDescription,
    StationLive,
    standard_variables,
)
from controller.ocpp.v201.network import ConnectionProfile, NetworkProfiles
from controller.provision import failed_provisioning
from controller.station import Station
from controller.store import Store
from controller.systemd import Notifier, notify

log = logging.getLogger("evsed.daemon")

SHUTDOWN_S = 3.0  # the most a stop or a reset waits for the CSMS link to wind down
STATUS_EVERY_S = 2.0  # how often the systemd STATUS line is brought up to date
# How long the LED shows a rejected boot-partition configuration: while the installer
# who dropped it is likely still at the box.
PROVISIONING_NOTICE_S = 15 * 60


def status_text(state: dict[str, Any]) -> str:
    """One line for `systemctl status`: each connector, the CSMS link, the backlog."""
    parts = []
    for c in state["connectors"]:
        text = f"{c['connector']} {c['status']}"
        if c["status"] == "Faulted" and c["error_code"] != "NoError":
            text += f" ({c['error_code']})"
        tx = c["transaction"]
        if tx is not None:
            text += f" (tx {tx['csms_id'] if tx['csms_id'] is not None else '~' + str(tx['id'])})"
        parts.append(text)
    link = state["ocpp"]
    csms = f"CSMS {link['registration']}" if link["connected"] else "CSMS offline"
    return f"connector {', '.join(parts)}; {csms}; {state['queued_messages']} queued"


def build_hardware(config: Config) -> tuple[Any, Any]:
    """The hardware the configuration names, and the simulation behind it (None on a
    real board): the real drivers, the real drivers over the register-level simulated
    board, or a simulation at the driver interface. Imports are local: the driver
    libraries (gpiozero, pymodbus) cost start-up time only where they are used."""
    if config.hardware.simulate_board:
        from controller.hardware import BoardHardware
        from hwsim.board import SimulatedBoard

        board = SimulatedBoard(config, config.state.dir / "sim")
        try:
            return BoardHardware(config, **board.driver_overrides()), board
        except BaseException:
            board.close()
            raise
    if config.hardware.pilot == "sim":
        from hwsim.hardware import SimHardware

        sim = SimHardware(
            len(config.connectors),
            has_lock=[c.lock for c in config.connectors],
            world_file=config.state.dir / "sim-world.json",
            event_log=(
                config.state.dir / "sim-events.jsonl" if config.hardware.sim_event_log else None
            ),
        )
        return sim, sim
    from controller.hardware import BoardHardware

    return BoardHardware(config), None


def build_link(config: Config, station: Station, keys: ConfigurationKeys, store: Store) -> OcppLink:
    """The OCPP layer of each configured version, all on the same station; the first
    one runs the connection and hands it to the version the CSMS picks."""
    settings = LinkSettings(
        url=config.csms.url,
        station_id=config.station.id,
        vendor=config.station.vendor,
        model=config.station.model,
        serial_number=config.station.serial_number,
        password=config.csms.password,
        response_timeout=config.csms.response_timeout,
        reconnect_min=config.csms.reconnect_min,
        reconnect_max=config.csms.reconnect_max,
        boot_retry=config.csms.boot_retry,
        heartbeat_on_idle_only=config.ocpp.heartbeat_on_idle_only,
        ca_certificate=config.csms.ca_certificate,
        client_certificate=config.csms.client_certificate,
        client_key=config.csms.client_key,
    )
    layers: list[OcppLink] = []
    for version in config.ocpp.versions:
        layer: OcppLink
        if version == "1.6":
            layer = ChargePoint16(settings, station, keys, store)
            layer.config = config
            features.attach(layer)
        else:
            layer = build_201(config, settings, station, keys, store)
        layers.append(layer)
    # The 2.0.1 layer runs the connection when it is configured: its network profiles
    # say where to connect, whichever version the CSMS then picks.
    primary = next((layer for layer in layers if layer.VERSION == "2.0.1"), layers[0])
    primary.siblings = [layer for layer in layers if layer is not primary]
    primary.offer = tuple(layer.SUBPROTOCOL for layer in layers)
    station.link = primary
    return primary


def build_201(
    config: Config, settings: LinkSettings, station: Station, keys: ConfigurationKeys, store: Store
) -> ChargePoint201:
    """The 2.0.1 layer with its device model (over the same keys as 1.6) and its
    network profiles (slot 0: the configuration file's [csms])."""
    cp = ChargePoint201(settings, station, keys, store)
    cp.config = config
    evses = tuple(
        EvseDescription(
            phases=c.phases,
            max_power_w=c.max_current * 230.0 * c.phases,
            connector_type="sType2" if c.cable == "socket" else "cType2",
            max_current_a=c.max_current,
        )
        for c in config.connectors
    )

    def status(n: int) -> Status:
        """The station's (0) or a connector's status now, reported or not."""
        core = station.core
        return core.status() if n == 0 else core.connector(n).status()

    def power_w(n: int) -> float:
        """What the meters measure now: EVSE n's, or (0) all of them; 0 before a reading."""
        readings = station.readings if n == 0 else station.readings[n - 1 : n]
        return sum(r.power_w for r in readings if r is not None)

    def current_a(n: int) -> float:
        """EVSE n's highest current now on a wired phase."""
        reading = station.readings[n - 1]
        wired = () if reading is None else reading.current_a[: station.phases[n - 1]]
        return max(wired, default=0.0)

    live = StationLive(
        availability_state=lambda n: connector_status(status(n)),
        available=lambda n: status(n).status is not ConnectorStatus.UNAVAILABLE,
        problem=lambda n: status(n).error_code != "NoError",
        power_w=power_w,
        date_time=station.clock.iso,
        local_list_entries=station.authorizer.list_size,
        current_a=current_a,
        target_current_a=station.smart_charging.target_current,
        target_power_w=station.smart_charging.target_power,
    )
    description = StationDescription(config.station.vendor, config.station.model, evses)
    model = DeviceModel(
        keys, store, standard_variables(description, live), initial=config.ocpp.variables
    )
    model.subscribe(lambda spec, value: station.settings_changed())
    cp.device_model = model
    cp.network_profiles = NetworkProfiles(
        store,
        keys,
        model,
        ConnectionProfile(
            0, config.csms.url, config.csms.security_profile, int(config.csms.response_timeout)
        ),
    )
    features_201.attach(cp)
    for feature in cp.features:
        if hasattr(feature, "variables"):
            model.add(feature.variables(len(evses)))
    return cp


async def serve(config: Config) -> StopReason | None:
    """Run until a signal (None) or a reset (the reset's reason)."""
    notifier = Notifier()
    # From the start: a slow start-up must not look like a hung loop.
    keepalive = asyncio.ensure_future(notifier.keepalive())
    notifier.status("starting: opening the store")
    store = Store(
        config.state.dir / "evsed.db", budget_bytes=int(config.state.queue_budget_mb * 1e6)
    )
    keys = ConfigurationKeys(
        features.all_keys(len(config.connectors)),
        # The security profile and password of [csms] are the security keys' first values.
        initial={
            "SecurityProfile": str(config.csms.security_profile),
            "AuthorizationKey": config.csms.password,
            **config.ocpp.keys,
        },
        persisted=store.config_keys(),
        persist=store.set_config_key,
    )
    hardware, simulation = build_hardware(config)
    authorizer = Authorizer(config.state.dir / "auth.db")
    limits = [
        ConnectorSettings(
            max_current_a=c.max_current,
            ventilation=c.ventilation,
            has_lock=hardware.locks[i] is not None,
            socket_outlet=c.cable == "socket",
            cable_rating_a=c.fixed_cable_rating,
            has_rcm=hardware.rcms[i] is not None,
            free_vend_id_tag=config.station.free_vend_id_tag or None,
        )
        for i, c in enumerate(config.connectors)
    ]
    station = Station(
        hardware,
        store,
        keys,
        limits,
        [c.phases for c in config.connectors],
        authorizer,
        resume_transactions=config.ocpp.resume_transactions,
    )
    station.meter_poll_interval = config.hardware.meter_poll_interval
    station.meter_offline_after = config.hardware.meter_offline_after
    link = build_link(config, station, keys, store)

    def snapshot() -> dict[str, Any]:
        return {**station.snapshot(), "ocpp": link.link_state()}

    control = ControlServer(
        config.control.socket,
        snapshot,
        simulation,
        link.cut,
        link.restore,
    )
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[StopReason | None] = loop.create_future()
    link.restart_requested = finished

    def on_signal() -> None:
        if not finished.done():
            notifier.stopping("stopping: outputs off, closing the CSMS link")
            station.note_restart(StopReason.REBOOT)
            finished.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    log.info(
        "evsed starting: station %s, %d connector(s), state in %s",
        config.station.id,
        len(config.connectors),
        config.state.dir,
    )
    watchdog = None
    if config.hardware.watchdog:
        from drivers.gpio import HardwareWatchdog

        # Disarmed only on a clean stop, after every output is off: a crash or a hung
        # loop still resets the board, `systemctl stop` does not.
        watchdog = HardwareWatchdog(
            config.hardware.watchdog,
            timeout_s=config.hardware.watchdog_timeout,
            disarm_on_close=True,
        )
    link_task: asyncio.Task[None] | None = None
    status_task: asyncio.Task[None] | None = None
    rejected = failed_provisioning(config.state.dir)
    for problem in rejected or ():
        log.error("the configuration on the boot partition was not used: %s", problem)
    prefix = "boot-partition configuration rejected (evsed-problems.txt); " if rejected else ""

    async def keep_status() -> None:
        while True:
            notifier.status(prefix + status_text(snapshot()))
            await asyncio.sleep(STATUS_EVERY_S)

    try:
        notifier.status("starting: hardware")
        await station.start()
        if rejected:
            station.show_notice("ProvisioningFailed", PROVISIONING_NOTICE_S)
        await control.start()
        if watchdog is not None:
            await watchdog.start()  # fed from this loop: a hung loop resets the board
        link_task = asyncio.ensure_future(link.run())
        # What is allocated by now lives for the whole run: keep full collections
        # (tens of ms on a Pi) from walking it while the pilot is polled.
        gc.freeze()
        log.info("evsed ready: store open, hardware started, control on %s", control.path)
        notifier.ready(prefix + status_text(snapshot()))
        status_task = asyncio.ensure_future(keep_status())
        return await finished
    finally:
        if status_task is not None:
            status_task.cancel()
        # Outputs off first, whatever else may hang below.
        await station.stop()
        if link_task is not None:
            link_task.cancel()
            done, _ = await asyncio.wait({link_task}, timeout=SHUTDOWN_S)
            if not done:
                log.error("the CSMS link did not stop within %.0f s; going on", SHUTDOWN_S)
        await control.stop()
        if watchdog is not None:
            await watchdog.stop()
        if simulation is not None and hasattr(simulation, "close"):
            simulation.close()
        authorizer.close()
        store.close()
        keepalive.cancel()
        log.info("evsed stopped")


def run(config: Config) -> int:
    setup_logging(config.logging.level)
    reason = asyncio.run(serve(config))
    if reason is None:
        return 0
    log.warning("restarting the process after %s", reason.value)
    notify("WATCHDOG=1")  # the new process has a whole WatchdogSec to start pinging
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
