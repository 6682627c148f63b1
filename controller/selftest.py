"""`evsed selftest`: the installer's commissioning check of a freshly wired wallbox.

A wiring mistake (A/B swapped on the meter bus, a dead contactor coil, SPI not
enabled) otherwise shows only when the first driver fails to charge. This runs
the production drivers once, part by part, with the daemon stopped (both would
drive the same pins), and says for each failure what to look at. It closes a
contactor only while that connector's pilot reads state A (no EV), commands it
open again on any failure, and leaves every output off when it ends, however
it ends (a failed check, an exception, Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import sqlite3
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import websockets
from websockets.asyncio.client import connect

from controller.certificates import ROOT_USES, CertificateStore
from controller.config import Config, ConfigError, load_config
from controller.core.iec61851 import PilotOutput, PilotState
from controller.ocpp.rpc import OcppError, RpcSession, actions
from controller.ocpp.v16.charge_point import boot_payload
from controller.ocpp.v16.security import connection_options
from drivers.interfaces import FaultKind, Hardware, MeterReading
from drivers.meter.modbus import (
    MeterExceptionResponse,
    MeterNotAnswering,
    MeterPortError,
    MeterValueError,
)
from drivers.rfid.mfrc522 import KNOWN_VERSIONS

log = logging.getLogger("evsed.selftest")

Outcome = Literal["PASS", "FAIL", "SKIP"]
PASS: Outcome = "PASS"
FAIL: Outcome = "FAIL"
SKIP: Outcome = "SKIP"

RUNNING_MESSAGE = "evsed is running; stop it first: systemctl stop evsed"
OCPP_VERSION = "1.6"
SUBPROTOCOL = "ocpp1.6"

# Limits, in seconds: no check may hang the installer's terminal.
START_S = 10.0  # hardware start (opens every device, first reader cycle)
STOP_S = 10.0
PILOT_READ_S = 3.0  # first debounced CP reading
PILOT_SETTLE_S = 0.2  # then let a slower state (B, C) replace a first glimpse
METER_S = 10.0  # every block with its retries
RCM_S = 5.0  # pulse + trip + release deadlines of GpioRcm
CHECK_MARGIN_S = 0.15  # after the driver's own feedback check (settle + confirm)
CONTACTOR_S = 5.0
LOCK_S = 3.0
READER_S = 3.0

# What the meter must show with the contactor open and nothing drawing.
VOLTAGE_RANGE_V = (180.0, 260.0)
IDLE_CURRENT_MAX_A = 0.5


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One row of the report. `connector` 0 is the station as a whole."""

    name: str
    outcome: Outcome
    detail: str
    hint: str = ""
    connector: int = 0

    @property
    def passed(self) -> bool:
        """SKIP counts as passed: a part that is not fitted cannot be wrong."""
        return self.outcome != FAIL


# --- hints: what an installer checks on site -------------------------------------------


def _pilot_hint(config: Config, i: int) -> str:
    c, board = config.connectors[i], config.board
    return (
        f"check that SPI is enabled (dtparam=spi=on in config.txt), the {board.adc.upper()} "
        f"on SPI{board.adc_spi_bus} CE{board.adc_spi_device} with its supply, CP on ADC "
        f"channel {c.cp_adc_channel} (connectors[{i + 1}].cp_adc_channel), the PWM overlay "
        f"(dtoverlay=pwm-2chan) for GPIO{c.pwm_pin}, and the ±12 V supply of the pilot circuit"
    )


def _meter_hint(config: Config, i: int, error: Exception | None) -> str:
    n = i + 1
    if i >= len(config.meters):  # a simulated meter: no wiring to check
        return f"the meter does not answer (hardware.meter = {config.hardware.meter})"
    where, port = f"meters[{n}]", config.meters[i].port
    if isinstance(error, MeterPortError):
        return (
            f"the serial port cannot be used: is the USB RS-485 adapter plugged in, is "
            f"{where}.port right (ls /dev/serial/by-id), is another program using it?"
        )
    if isinstance(error, MeterExceptionResponse | MeterValueError):
        return (
            f"the meter answers but not with these registers: is {where}.model the meter "
            f"that is fitted?"
        )
    if isinstance(error, MeterNotAnswering) and error.garbled:
        return (
            f"garbled answers: do baud/parity/stopbits ({where}) match the meter's settings, "
            f"is the bus terminated, are A and B swapped?"
        )
    return (
        f"no answer: check the RS-485 wiring (A and B swapped?), the meter's supply, its "
        f"unit id ({where}.unit_id) and serial settings; `evsed meter probe {port}` finds it"
    )


NETWORK_HINT = (
    "check csms.url (host, port, ws/wss), the network, DNS and any firewall; is the CSMS up?"
)

WELD_HINT = (
    "the mirror contact reads closed while the contactor is open: welded main contacts "
    "(do not use the station, replace the contactor) or a broken feedback wire "
    "(contactor_feedback_pin, an NC mirror contact that opens when the poles close)"
)


def _dead_hint(i: int) -> str:
    return (
        "the contactor did not pull in (or its mirror contact did not follow): check the "
        f"relay/coil supply, the coil driver on connectors[{i + 1}].contactor_pin, the "
        f"mirror-contact wiring to connectors[{i + 1}].contactor_feedback_pin, or raise "
        f"connectors[{i + 1}].contactor_settle for a slow contactor"
    )


def _rcm_hint(i: int) -> str:
    return (
        "the RCM module did not answer its test pulse: check its supply and the wiring of "
        f"connectors[{i + 1}].rcm_test_pin (TEST) and rcm_fault_pin (fault output); a trip "
        "that is present now (residual current, a tripped module) fails the test too"
    )


def _lock_hint(i: int) -> str:
    return (
        "the lock did not reach its position: check the actuator supply and wiring "
        f"(connectors[{i + 1}].lock_pin), the feedback switch (lock_feedback_pin), and that "
        "nothing blocks the pin in the socket"
    )


def _reader_hint(config: Config) -> str:
    board = config.board
    reset = f"GPIO{board.reader_reset_pin}" if board.reader_reset_pin is not None else "NRSTPD"
    return (
        "check that SPI is enabled (dtparam=spi=on in config.txt), the reader on "
        f"SPI{board.reader_spi_bus} CE{board.reader_spi_device} (board.reader_spi_*), "
        f"its reset line {reset} (board.reader_reset_pin), 3.3 V supply and the "
        "MISO/MOSI/SCK wiring"
    )


# --- watching the hardware --------------------------------------------------------------


class _Observed:
    """What the hardware reported since start: pilot states and active faults per part.

    The callbacks are registered before the hardware starts, because a pilot
    reports its first state only once.
    """

    def __init__(self, hardware: Hardware) -> None:
        n = len(hardware.pilots)
        self.pilot: list[PilotState | None] = [None] * n
        self.pilot_seen = [asyncio.Event() for _ in range(n)]
        self.pilot_faults: list[set[FaultKind]] = [set() for _ in range(n)]
        self.contactor_faults: list[set[FaultKind]] = [set() for _ in range(n)]
        self.rcm_faults: list[set[FaultKind]] = [set() for _ in range(n)]
        self.reader_faults: set[FaultKind] = set()
        for i, pilot in enumerate(hardware.pilots):
            pilot.on_state(partial(self._pilot_state, i))
            pilot.on_fault(partial(_track, self.pilot_faults[i]))
            hardware.contactors[i].on_fault(partial(_track, self.contactor_faults[i]))
            rcm = hardware.rcms[i]
            if rcm is not None:
                rcm.on_fault(partial(_track, self.rcm_faults[i]))
        if hardware.reader is not None:
            hardware.reader.on_fault(partial(_track, self.reader_faults))

    def _pilot_state(self, i: int, state: PilotState) -> None:
        self.pilot[i] = state
        self.pilot_seen[i].set()


def _track(active: set[FaultKind], kind: FaultKind, is_active: bool) -> None:
    if is_active:
        active.add(kind)
    else:
        active.discard(kind)


# --- the checks -----------------------------------------------------------------------


class _Selftest:
    """The hardware checks of one run; `pilot_a` gates the contactor check."""

    def __init__(self, config: Config, hardware: Hardware) -> None:
        self.config = config
        self.hw = hardware
        self.observed = _Observed(hardware)
        self.pilot_a = [False] * len(hardware.pilots)
        self.started_at = 0.0

    async def start(self) -> None:
        for pilot in self.hw.pilots:
            pilot.set_output(PilotOutput.x1())  # drivers start at x1; say so anyway
        async with asyncio.timeout(START_S):
            await self.hw.start()
        self.started_at = asyncio.get_running_loop().time()

    async def stop(self) -> None:
        """Every output off: contactors first, then the whole hardware."""
        for contactor in self.hw.contactors:
            with contextlib.suppress(Exception):
                contactor.set_closed(False)
        try:
            async with asyncio.timeout(STOP_S):
                await self.hw.stop()
        except Exception:
            log.exception("stopping the hardware failed (the drivers switch off at exit)")

    async def connector_checks(self, i: int) -> list[CheckResult]:
        """pilot, meter, RCM, contactor, lock: in this order, each within its limit."""
        config, n = self.config, i + 1
        checks: list[tuple[str, float, Callable[[], Awaitable[CheckResult]], str]] = [
            (
                "pilot",
                PILOT_READ_S + PILOT_SETTLE_S + 1.0,
                partial(self.pilot, i),
                _pilot_hint(config, i),
            ),
            ("meter", METER_S, partial(self.meter, i), _meter_hint(config, i, None)),
            ("rcm", RCM_S, partial(self.rcm, i), _rcm_hint(i)),
            ("contactor", CONTACTOR_S, partial(self.contactor, i), _dead_hint(i)),
            ("lock", LOCK_S, partial(self.lock, i), _lock_hint(i)),
        ]
        return [await _guarded(name, n, limit, check, hint) for name, limit, check, hint in checks]

    async def pilot(self, i: int) -> CheckResult:
        n = i + 1
        try:
            async with asyncio.timeout(PILOT_READ_S):
                await self.observed.pilot_seen[i].wait()
        except TimeoutError:
            faulted = (
                " (the driver reports an ADC/PWM error)" if self.observed.pilot_faults[i] else ""
            )
            return CheckResult(
                "pilot",
                FAIL,
                f"no pilot reading within {PILOT_READ_S:g} s{faulted}",
                _pilot_hint(self.config, i),
                n,
            )
        await asyncio.sleep(PILOT_SETTLE_S)
        state = self.observed.pilot[i]
        assert state is not None  # set together with pilot_seen
        if state is PilotState.A:
            self.pilot_a[i] = True
            return CheckResult("pilot", PASS, "+12 V in state A", "", n)
        if state.plugged:
            return CheckResult(
                "pilot",
                FAIL,
                f"reads state {state.value}: an EV is connected",
                "unplug the EV (or the test adapter) and run the selftest again",
                n,
            )
        what = {
            PilotState.E: "state E (0 V): CP shorted to PE or no pilot supply",
            PilotState.F: "state F (-12 V) while driving +12 V: the PWM does not reach the CP",
        }.get(state, f"state {state.value}")
        return CheckResult("pilot", FAIL, f"reads {what}", _pilot_hint(self.config, i), n)

    async def meter(self, i: int) -> CheckResult:
        n = i + 1
        if i >= len(self.hw.meters):
            return CheckResult("meter", SKIP, "no meter configured for this connector", "", n)
        meter = self.hw.meters[i]
        try:
            reading = await meter.read()
        except OSError as e:
            return CheckResult("meter", FAIL, str(e), _meter_hint(self.config, i, e), n)
        phases = self.config.connectors[i].phases
        meter_map = getattr(meter, "map", None)  # ModbusMeter: which values the model offers
        measured = [
            p
            for p in range(1, phases + 1)
            if meter_map is None or meter_map.offers(f"voltage_l{p}")
        ]
        detail = _describe(reading, phases, measured)
        low, high = VOLTAGE_RANGE_V
        wrong = [p for p in measured if not low <= reading.voltage_v[p - 1] <= high]
        if wrong:
            phases_text = ", ".join(f"L{p} {reading.voltage_v[p - 1]:.0f} V" for p in wrong)
            return CheckResult(
                "meter",
                FAIL,
                f"implausible voltage ({phases_text}); read {detail}",
                f"every phase the connector uses must be connected to the meter's voltage "
                f"inputs and live (connectors[{n}].phases = {phases}); is meters[{n}].model "
                "the meter that is fitted?",
                n,
            )
        if reading.energy_wh < 0:
            return CheckResult(
                "meter",
                FAIL,
                f"negative energy register; read {detail}",
                f"is meters[{n}].model the meter that is fitted?",
                n,
            )
        flowing = [abs(a) for a in reading.current_a[:phases] if abs(a) > IDLE_CURRENT_MAX_A]
        if flowing:
            return CheckResult(
                "meter",
                FAIL,
                f"current flows with the contactor open; read {detail}",
                "the meter must measure only this connector's output, behind its contactor; "
                "is anything else connected, or is the contactor welded?",
                n,
            )
        return CheckResult("meter", PASS, detail, "", n)

    async def rcm(self, i: int) -> CheckResult:
        n = i + 1
        rcm = self.hw.rcms[i]
        if rcm is None:
            return CheckResult("rcm", SKIP, "no RCM configured", "", n)
        if FaultKind.RCD in self.observed.rcm_faults[i]:
            return CheckResult(
                "rcm", FAIL, "the RCM signals a trip before the test", _rcm_hint(i), n
            )
        if await rcm.self_test():
            return CheckResult("rcm", PASS, "tripped on the test pulse and released", "", n)
        return CheckResult(
            "rcm", FAIL, "no trip (or no release) on the test pulse", _rcm_hint(i), n
        )

    async def contactor(self, i: int) -> CheckResult:
        n = i + 1
        if not self.pilot_a[i]:
            return CheckResult(
                "contactor",
                SKIP,
                "not switched: the pilot did not read state A, an EV may be connected",
                "",
                n,
            )
        wiring = self.config.connectors[i]
        board_contactor = self.config.hardware.contactor == "gpio"
        if board_contactor and wiring.contactor_feedback_pin is None:
            return CheckResult(
                "contactor",
                SKIP,
                f"no mirror contact configured (connectors[{n}].contactor_feedback_pin): "
                "cannot be verified",
                "",
                n,
            )
        # The driver compares the feedback with the command `contactor_settle` after each
        # switch (and confirms a mismatch once): its verdict arrives as a fault report.
        follow_s = wiring.contactor_settle + 0.02 + CHECK_MARGIN_S
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.started_at + follow_s - loop.time()))
        faults = self.observed.contactor_faults[i]
        contactor = self.hw.contactors[i]
        if FaultKind.WELD in faults:
            return CheckResult(
                "contactor", FAIL, "the mirror contact shows closed before closing", WELD_HINT, n
            )
        if self.observed.pilot[i] is not PilotState.A:
            return CheckResult(
                "contactor", SKIP, "not switched: the pilot left state A (EV plugged in?)", "", n
            )
        try:
            contactor.set_closed(True)
            await asyncio.sleep(follow_s)
            if FaultKind.WELD in faults:
                return CheckResult("contactor", FAIL, "welded (seen while closing)", WELD_HINT, n)
            if FaultKind.GENERIC in faults:
                return CheckResult(
                    "contactor",
                    FAIL,
                    f"commanded closed, the mirror contact did not follow within "
                    f"{wiring.contactor_settle:g} s",
                    _dead_hint(i),
                    n,
                )
            contactor.set_closed(False)
            await asyncio.sleep(follow_s)
            if FaultKind.WELD in faults:
                return CheckResult(
                    "contactor",
                    FAIL,
                    f"commanded open, the mirror contact still shows closed after "
                    f"{wiring.contactor_settle:g} s: welded",
                    WELD_HINT,
                    n,
                )
            if FaultKind.GENERIC in faults:
                return CheckResult(
                    "contactor", FAIL, "the feedback disagrees after opening", _dead_hint(i), n
                )
        finally:
            contactor.set_closed(False)
        return CheckResult(
            "contactor",
            PASS,
            f"closed and opened; the mirror contact followed within {wiring.contactor_settle:g} s",
            "",
            n,
        )

    async def lock(self, i: int) -> CheckResult:
        n = i + 1
        lock = self.hw.locks[i]
        if lock is None:
            return CheckResult("lock", SKIP, "no lock configured", "", n)
        unlocked = False
        try:
            if not await _move(lock, "lock"):
                return CheckResult("lock", FAIL, "did not reach locked", _lock_hint(i), n)
            unlocked = await _move(lock, "unlock")
            if not unlocked:
                return CheckResult("lock", FAIL, "locked, but did not unlock", _lock_hint(i), n)
        finally:
            if not unlocked:  # never leave the actuator driven towards locked
                with contextlib.suppress(Exception):
                    await _move(lock, "unlock")
        return CheckResult("lock", PASS, "locked and unlocked, confirmed by the feedback", "", n)

    async def reader(self) -> CheckResult:
        reader = self.hw.reader
        if reader is None:
            return CheckResult("reader", SKIP, "no RFID reader configured")
        hint = _reader_hint(self.config)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READER_S - 0.5
        while True:  # the first chip check ran in start(); a slow one is waited for
            version = getattr(reader, "version", None)
            faulted = bool(getattr(reader, "fault_active", False) or self.observed.reader_faults)
            if faulted or version is not None or loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        if faulted:
            read = "cannot be opened" if version is None else f"reads {version:#04x}"
            return CheckResult("reader", FAIL, f"no MFRC522 answers: VersionReg {read}", hint)
        if version is None:
            if hasattr(reader, "version"):
                return CheckResult("reader", FAIL, "no VersionReg reading", hint)
            return CheckResult("reader", PASS, "no fault reported")
        chip = KNOWN_VERSIONS.get(version, "accepted chip")
        return CheckResult("reader", PASS, f"{chip} (VersionReg {version:#04x})")


async def _move(lock: Any, action: Literal["lock", "unlock"]) -> bool:
    """Move a lock without blocking the loop (GpioLock has async variants)."""
    move_async = getattr(lock, f"{action}_async", None)
    if move_async is not None:
        return bool(await move_async())
    return bool(await asyncio.to_thread(getattr(lock, action)))


def _describe(reading: MeterReading, phases: int, measured: list[int]) -> str:
    volts = "/".join(f"{reading.voltage_v[p - 1]:.0f}" for p in measured) or "-"
    amps = "/".join(f"{a:.1f}" for a in reading.current_a[:phases])
    return f"{volts} V, {amps} A, {reading.power_w:.0f} W, {reading.energy_wh / 1000:.3f} kWh"


async def _guarded(
    name: str,
    connector: int,
    limit_s: float,
    check: Callable[[], Awaitable[CheckResult]],
    hint: str,
) -> CheckResult:
    """Run one check within its time limit; a timeout or an exception is its FAIL."""
    try:
        async with asyncio.timeout(limit_s):
            return await check()
    except TimeoutError:
        return CheckResult(name, FAIL, f"no result within {limit_s:g} s", hint, connector)
    except Exception as e:
        log.debug("%s check failed", name, exc_info=True)
        return CheckResult(name, FAIL, f"{type(e).__name__}: {e}", hint, connector)


# --- the CSMS -------------------------------------------------------------------------


def _link_security(config: Config) -> tuple[int, str, CertificateStore | None]:
    """The security profile, password and certificates the daemon would connect with:
    what the CSMS set (read from the stopped daemon's store, never written: the
    selftest may run as root) over the configuration's first values."""
    keys: dict[str, str] = {}
    database = config.state.dir / "evsed.db"
    with contextlib.suppress(sqlite3.Error):
        db = sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True)
        try:
            keys = dict(db.execute("SELECT name, value FROM config_keys").fetchall())
        finally:
            db.close()
    try:
        profile = int(keys.get("SecurityProfile", config.csms.security_profile))
    except ValueError:
        profile = config.csms.security_profile
    password = keys.get("AuthorizationKey") or config.csms.password
    certs = config.state.dir / "certs"
    # The store makes its directories when missing: only open one the daemon made.
    complete = all((certs / d).is_dir() for d in ("client", *(f"roots/{u}" for u in ROOT_USES)))
    return profile, password, CertificateStore(certs) if complete else None


async def check_csms(config: Config) -> CheckResult:
    """Connect as the daemon would and send one BootNotification; PASS only on Accepted."""
    timeout = config.csms.response_timeout
    try:
        url, options = connection_options(
            config.websocket_url, config.station.id, *_link_security(config)
        )
    except ConnectionError as e:
        return CheckResult(
            "csms",
            FAIL,
            str(e),
            "install the CSMS root certificate (csms.ca_certificate) or the station's "
            "certificate (csms.client_certificate / client_key) the profile needs",
        )
    station = config.station
    payload = boot_payload(station.vendor, station.model, station.serial_number)

    def fail(detail: str, hint: str) -> CheckResult:
        return CheckResult("csms", FAIL, detail, hint)

    try:
        # Connecting and the answer each get response_timeout, as in the daemon; the
        # outer limit only guarantees the check ends.
        async with (
            asyncio.timeout(2 * timeout + 1.0),
            connect(
                url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                open_timeout=timeout,
                ping_interval=None,
                **options,
            ) as ws,
        ):
            if ws.subprotocol != SUBPROTOCOL:
                return fail(
                    f"the CSMS did not agree to the {SUBPROTOCOL} subprotocol",
                    "is csms.url the CSMS's OCPP 1.6J endpoint?",
                )
            rpc = RpcSession(ws, OCPP_VERSION, {}, actions(OCPP_VERSION), timeout)
            reader = asyncio.ensure_future(rpc.run())
            try:
                answer = await rpc.call("BootNotification", payload)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    except websockets.exceptions.InvalidStatus as e:
        status = e.response.status_code
        hints = {
            401: "the CSMS refused the credentials: check csms.password and that station.id "
            f"({config.station.id}) is the name the CSMS knows this station by",
            403: "the CSMS refused this station: is it registered there?",
            404: f"the CSMS does not know station.id {config.station.id} (or csms.url's path "
            "is wrong): register the station or fix the id",
        }
        return fail(f"HTTP {status} from the CSMS", hints.get(status, NETWORK_HINT))
    except ssl.SSLCertVerificationError as e:
        return fail(
            f"TLS: certificate not accepted ({e.verify_message})",
            "is the system clock right (a Pi without RTC needs NTP first), are the CA "
            "certificates installed, and does the certificate name csms.url's host?",
        )
    except ssl.SSLError as e:
        return fail(f"TLS handshake failed: {e.reason or e}", "does csms.url need ws:// or wss://?")
    except socket.gaierror as e:
        return fail(f"cannot resolve the host: {e.strerror or e}", NETWORK_HINT)
    except ConnectionRefusedError:
        return fail("connection refused", NETWORK_HINT)
    except TimeoutError:
        return fail(f"no answer within {timeout:g} s (csms.response_timeout)", NETWORK_HINT)
    except OSError as e:
        return fail(f"network error: {e.strerror or e}", NETWORK_HINT)
    except OcppError as e:
        return fail(
            f"the CSMS answered BootNotification with an error: {e}",
            "the CSMS's logs say why; check station.vendor/model/serial_number",
        )
    except (ConnectionError, websockets.exceptions.WebSocketException) as e:
        return fail(f"the connection failed: {e or type(e).__name__}", NETWORK_HINT)
    status = answer["status"]
    interval = answer.get("interval")
    if status == "Accepted":
        return CheckResult("csms", PASS, f"BootNotification Accepted (interval {interval} s)")
    return fail(
        f"BootNotification {status} (interval {interval} s)",
        f"the CSMS does not accept station {config.station.id} yet: register it there "
        "(id, and serial number if the CSMS checks it) or ask the operator to accept it",
    )


# --- running it -----------------------------------------------------------------------


async def run_selftest(
    config: Config, hardware: Hardware, *, csms: bool = True
) -> list[CheckResult]:
    """Start `hardware`, check every part (connector by connector, then the station),
    and stop it again with every output off, also when cancelled. The CSMS check runs
    after the hardware is off; `csms=False` (or no csms.url) skips it."""
    selftest = _Selftest(config, hardware)
    results: list[CheckResult] = []
    try:
        try:
            await selftest.start()
        except Exception as e:
            log.debug("hardware start failed", exc_info=True)
            results.append(
                CheckResult(
                    "hardware",
                    FAIL,
                    f"cannot start: {type(e).__name__}: {e}",
                    "check the [board] and [[connectors]] wiring keys and that SPI is enabled",
                )
            )
        else:
            for i in range(len(hardware.pilots)):
                results += await selftest.connector_checks(i)
            results.append(
                await _guarded("reader", 0, READER_S, selftest.reader, _reader_hint(config))
            )
    finally:
        await selftest.stop()
    if not csms:
        results.append(CheckResult("csms", SKIP, "skipped (--skip-csms)"))
    elif not config.csms.url:
        results.append(CheckResult("csms", SKIP, "no csms.url configured"))
    else:
        limit_s = 2 * config.csms.response_timeout + 2.0
        check = partial(check_csms, config)
        results.append(await _guarded("csms", 0, limit_s, check, NETWORK_HINT))
    return results


def format_report(results: list[CheckResult]) -> str:
    """The table (check | connector | result | detail), then the hints of the failures."""
    rows = [("check", "connector", "result", "detail")]
    rows += [(r.name, str(r.connector or "-"), r.outcome, r.detail) for r in results]
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    lines = []
    for k, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in [*widths, len("detail")]))
    failed = [r for r in results if not r.passed]
    if failed:
        lines += ["", "What to check:"]
        for r in failed:
            where = f" (connector {r.connector})" if r.connector else ""
            lines.append(f"  {r.name}{where}: {r.hint or r.detail}")
        lines += ["", f"{len(failed)} check(s) failed"]
    else:
        lines += ["", "all checks passed"]
    return "\n".join(lines)


def daemon_answers(socket_path: str | os.PathLike[str]) -> bool:
    """True if something accepts connections on the daemon's control socket: that
    process holds the pins. A missing or stale socket file (refused) is no daemon."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(os.fspath(socket_path))
        except OSError:
            return False
    return True


def main(config_path: str, skip_csms: bool = False) -> int:
    """`evsed selftest`: 0 all passed, 1 a check failed, 2 bad configuration or the
    daemon is running, 130 interrupted."""
    try:
        config = load_config(config_path)
    except ConfigError as e:
        print(f"{config_path}: configuration is not valid:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if daemon_answers(config.control.socket):
        print(RUNNING_MESSAGE, file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from controller.daemon import build_hardware

    with contextlib.suppress(OSError):  # as in the daemon: the simulations keep files there
        config.state.dir.mkdir(parents=True, exist_ok=True)
    try:
        hardware, simulation = build_hardware(config)
    except Exception as e:
        print(f"cannot open the hardware: {type(e).__name__}: {e}", file=sys.stderr)
        print(
            "check the [board], [[connectors]] and [[meters]] keys, that SPI and the PWM "
            "overlay are enabled in config.txt, and that no other program uses the pins",
            file=sys.stderr,
        )
        return 1
    print(f"evsed selftest: station {config.station.id}, {len(config.connectors)} connector(s)")
    try:
        results = asyncio.run(run_selftest(config, hardware, csms=not skip_csms))
    except KeyboardInterrupt:
        print("selftest interrupted; every output is off", file=sys.stderr)
        return 130
    finally:
        close = getattr(simulation, "close", None)
        if close is not None and not inspect.iscoroutinefunction(close):
            close()
    print()
    print(format_report(results))
    return 0 if all(r.passed for r in results) else 1
