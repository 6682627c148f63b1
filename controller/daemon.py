"""The composition root: builds one of each part from the configuration and runs them.

A commanded reset ends in a real restart of the process (exec of the same
command line), so everything is built anew exactly as after a power cycle.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

from controller.config import Config
from controller.control import ControlServer
from controller.core.connector import ConnectorSettings
from controller.core.status import StopReason
from controller.logs import setup_logging
from controller.ocpp.v16.charge_point import ChargePoint16, LinkSettings
from controller.ocpp.v16.keys import ConfigurationKeys, core_keys
from controller.station import Station
from controller.store import Store

log = logging.getLogger("evsed.daemon")

RESTART_REASON_KEY = "restart_reason"


def build_hardware(config: Config) -> Any:
    """The hardware named in the configuration (only the simulation exists so far)."""
    from hwsim.hardware import SimHardware

    return SimHardware(len(config.connectors), has_lock=[c.lock for c in config.connectors])


async def serve(config: Config) -> StopReason | None:
    """Run until a signal (None) or a reset (the reset's reason)."""
    store = Store(config.state.dir / "evsed.db")
    keys = ConfigurationKeys(
        core_keys(len(config.connectors)),
        initial=config.ocpp.keys,
        persisted=store.config_keys(),
        persist=store.set_config_key,
    )
    hardware = build_hardware(config)
    limits = [
        ConnectorSettings(max_current_a=c.max_current, ventilation=c.ventilation, has_lock=c.lock)
        for c in config.connectors
    ]
    station = Station(hardware, store, keys, limits, [c.phases for c in config.connectors])
    station.meter_poll_interval = config.hardware.meter_poll_interval
    station.meter_offline_after = config.hardware.meter_offline_after
    link = ChargePoint16(
        LinkSettings(
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
        ),
        station,
        keys,
        store,
    )
    control = ControlServer(
        config.control.socket,
        lambda: {**station.snapshot(), "ocpp": link.link_state()},
        hardware,
        link.cut,
        link.restore,
    )
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[StopReason | None] = loop.create_future()
    link.restart_requested = finished

    def on_signal() -> None:
        if not finished.done():
            finished.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    log.info(
        "evsed starting: station %s, %d connector(s), state in %s",
        config.station.id,
        len(config.connectors),
        config.state.dir,
    )
    await station.start()
    await control.start()
    link_task = asyncio.ensure_future(link.run())
    try:
        return await finished
    finally:
        link_task.cancel()
        await asyncio.gather(link_task, return_exceptions=True)
        await control.stop()
        await station.stop()  # every output off
        store.close()
        log.info("evsed stopped")


def run(config: Config) -> int:
    setup_logging(config.logging.level)
    reason = asyncio.run(serve(config))
    if reason is None:
        return 0
    log.warning("restarting the process after %s", reason.value)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
