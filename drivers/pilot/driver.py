"""IecPilot: the control-pilot driver (drivers.interfaces.Pilot) for a Pi wallbox.

A worker thread polls every `poll_s`: one ADC burst -> classification with
hysteresis -> asymmetric debounce -> callbacks on the asyncio loop
(call_soon_threadsafe). The PWM is written directly from set_output (a sysfs
write of a few bytes, well under a millisecond), so the core's output takes
effect at once.

Timing budget, defaults (hardware reference §1.4):

* opening (C/D -> B/A/E/F) must be seen within 100 ms. Worst case = one poll
  wait (20 ms) + one burst (≥ 1.2 ms: 40 conversions, a few ms with spidev
  [VERIFY on the target], 5–8 ms on gpiozero's mock SPI) + open_confirm_s (0) +
  the hop to the loop (< 1 ms typ.) ≈ 30 ms; if the EV opens right after a duty
  change, + open_blank_s (40 ms) ≈ 70 ms. The constructor refuses settings where
  open_blank_s + 2·poll_s + open_confirm_s exceeds 100 ms (the second poll_s is
  the allowance for the burst and scheduling).
* closing (-> C/D) is reported only after close_confirm_s (0.5 s) of agreeing
  bursts, and never on bursts inside the blanking time; IEC allows 3 s.
* blanking: Tinkerforge ignores the ADC ~550 ms after a duty change (a BMW
  glitches CP then). We ignore bursts for blank_s (0.1 s) after any output change
  for closing and non-urgent changes (and the diode check), but only for
  open_blank_s (40 ms) for an opening change: a glitch that survives two polls is
  treated as real and opens the contactor, which is safe, while blanking an
  opening for 550 ms would break the 100 ms rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from controller.core.iec61851 import PilotMode, PilotOutput, PilotState
from drivers.interfaces import CableCallback, FaultCallback, FaultKind, PilotCallback
from drivers.pilot.adc import (
    DEFAULT_ADC_VREF_V,
    DEFAULT_CP_FRONT_END,
    DEFAULT_PP_FRONT_END,
    DEFAULT_PP_PULLUP_OHM,
    DEFAULT_PP_VREF_V,
    AdcChip,
    CpReader,
    FrontEnd,
    PpReader,
    open_channel,
)
from drivers.pilot.classify import Classifier, CpSample, Debouncer
from drivers.pilot.pwm import DEFAULT_SYSFS_ROOT, SysfsPwm

log = logging.getLogger("evsed.pilot")

OPEN_BUDGET_S = 0.1  # IEC 61851-1 Table A.6 seq. 8.1/8.2: open within 100 ms of C -> B


class PilotPwm(Protocol):
    """The generator side IecPilot needs (SysfsPwm, or a stand-in in tests)."""

    def set_output(self, output: PilotOutput) -> None: ...

    def set_disconnected(self, disconnected: bool) -> None: ...

    def close(self) -> None: ...


class CpSource(Protocol):
    """Burst reader of the CP (CpReader, or a scripted stand-in in tests)."""

    def burst(self) -> CpSample: ...

    def close(self) -> None: ...


class PpSource(Protocol):
    """Proximity-pilot reader (PpReader, or a stand-in)."""

    def rating_a(self) -> float | None: ...

    def close(self) -> None: ...


T = TypeVar("T")
_UNSET: Any = object()


class _Stable(Generic[T]):
    """A value reported only once it has held for `hold_s` (the first one too)."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.value: T = _UNSET
        self._candidate: T = _UNSET
        self._since = 0.0

    @property
    def known(self) -> bool:
        return self.value is not _UNSET

    def update(self, value: T, now: float) -> bool:
        """Feed a reading; True when the reported value changes (or is first known)."""
        if self.known and value == self.value:
            self._candidate = _UNSET
            return False
        if self._candidate is _UNSET or value != self._candidate:
            self._candidate = value
            self._since = now
        if now - self._since >= self.hold_s:
            self.value = value
            self._candidate = _UNSET
            return True
        return False


@dataclass(slots=True)
class PollStats:
    """Figures of the worker loop, for logs, tests and tuning on the target."""

    polls: int = 0
    bursts: int = 0
    samples: int = 0
    burst_s_total: float = 0.0
    burst_s_max: float = 0.0
    cpu_s_total: float = 0.0
    cpu_s_max: float = 0.0
    late_polls: int = 0  # polls that started more than one period late

    @property
    def burst_s_mean(self) -> float:
        return self.burst_s_total / self.bursts if self.bursts else 0.0

    @property
    def cpu_s_mean(self) -> float:
        return self.cpu_s_total / self.polls if self.polls else 0.0

    @property
    def samples_per_burst(self) -> float:
        return self.samples / self.bursts if self.bursts else 0.0


class IecPilot:
    """Pilot of one connector: drives the PWM, reports debounced CP states, diode faults, PP.

    `pp`: proximity-pilot reader of a socket outlet (reports through on_cable);
    None for a fixed cable, whose configured `cable_rating_a` is only exposed as
    a property, and on_cable is never called. See the module doc for the timing.
    """

    def __init__(
        self,
        pwm: PilotPwm,
        cp: CpSource,
        *,
        pp: PpSource | None = None,
        cable_rating_a: float | None = None,
        classifier: Classifier | None = None,
        debouncer: Debouncer | None = None,
        poll_s: float = 0.02,
        blank_s: float = 0.1,
        open_blank_s: float = 0.04,
        diode_confirm_s: float = 0.1,
        diode_check_max_duty: float = 92.0,
        pp_confirm_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pwm = pwm
        self._cp = cp
        self._pp = pp
        self._fixed_cable_a = cable_rating_a
        self.classifier = classifier or Classifier()
        self.debouncer = debouncer or Debouncer()
        if poll_s <= 0 or blank_s < 0 or open_blank_s < 0:
            raise ValueError("poll_s must be > 0 and the blanking times >= 0")
        open_blank_s = min(open_blank_s, blank_s)
        if open_blank_s + 2 * poll_s + self.debouncer.open_confirm_s > OPEN_BUDGET_S:
            raise ValueError(
                f"open_blank_s {open_blank_s} + 2 × poll_s {poll_s} + open_confirm_s "
                f"{self.debouncer.open_confirm_s} exceeds the {OPEN_BUDGET_S} s opening budget"
            )
        if diode_confirm_s >= self.debouncer.close_confirm_s:
            raise ValueError(
                "diode_confirm_s must be shorter than close_confirm_s, so a diode "
                "fault is always reported before the C that would close"
            )
        self.poll_s = poll_s
        self.blank_s = blank_s
        self.open_blank_s = open_blank_s
        self.diode_check_max_duty = diode_check_max_duty
        self._clock = clock

        self._state_callbacks: list[PilotCallback] = []
        self._fault_callbacks: list[FaultCallback] = []
        self._cable_callbacks: list[CableCallback] = []

        self._lock = threading.Lock()  # guards output/generation/disconnect shared with set_output
        self._output = PilotOutput.x1()
        self._generation = 0
        self._changed_at = -math.inf
        self._disconnected = False

        # worker-thread state
        self._seen_generation = 0
        self._raw: PilotState | None = None
        self._diode = _Stable[bool](diode_confirm_s)
        self._diode_active = False
        self._cable = _Stable[float | None](pp_confirm_s)
        self._errors: set[str] = set()
        self._errors_lock = threading.Lock()
        self.stats = PollStats()

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._running = False
        self._closed = False

    @classmethod
    def open(
        cls,
        *,
        pwm_root: str = DEFAULT_SYSFS_ROOT,
        pwm_device: str | None = None,
        pwm_channel: int = 0,
        pwm_inverted: bool = False,
        cp_disconnect_pin: int | str | None = None,
        adc_chip: AdcChip = "MCP3008",
        spi_port: int = 0,
        spi_device: int = 0,
        adc_vref_v: float = DEFAULT_ADC_VREF_V,
        cp_channel: int = 0,
        cp_front_end: FrontEnd = DEFAULT_CP_FRONT_END,
        burst_samples: int = 40,
        burst_min_span_s: float = 0.0012,
        pp_channel: int | None = None,
        pp_front_end: FrontEnd = DEFAULT_PP_FRONT_END,
        pp_pullup_ohm: float = DEFAULT_PP_PULLUP_OHM,
        pp_pullup_vref_v: float = DEFAULT_PP_VREF_V,
        pin_factory: Any = None,
        **options: Any,
    ) -> IecPilot:
        """Build the driver from board settings; `options` go to the constructor.

        `pp_channel` None = fixed cable (pass `cable_rating_a` in options).
        """
        opened: list[Any] = []
        try:
            cp = CpReader(
                open_channel(
                    adc_chip,
                    cp_channel,
                    vref_v=adc_vref_v,
                    spi_port=spi_port,
                    spi_device=spi_device,
                    pin_factory=pin_factory,
                ),
                vref_v=adc_vref_v,
                front_end=cp_front_end,
                samples=burst_samples,
                min_span_s=burst_min_span_s,
            )
            opened.append(cp)
            pp: PpReader | None = None
            if pp_channel is not None:
                pp = PpReader(
                    open_channel(
                        adc_chip,
                        pp_channel,
                        vref_v=adc_vref_v,
                        spi_port=spi_port,
                        spi_device=spi_device,
                        pin_factory=pin_factory,
                    ),
                    vref_v=adc_vref_v,
                    front_end=pp_front_end,
                    pullup_ohm=pp_pullup_ohm,
                    pullup_vref_v=pp_pullup_vref_v,
                )
                opened.append(pp)
            pwm = SysfsPwm(
                root=pwm_root,
                device_match=pwm_device,
                channel=pwm_channel,
                inverted=pwm_inverted,
                cp_disconnect_pin=cp_disconnect_pin,
                pin_factory=pin_factory,
            )
            opened.append(pwm)
            return cls(pwm, cp, pp=pp, **options)
        except BaseException:
            for part in reversed(opened):
                part.close()
            raise

    # --- Pilot protocol ---------------------------------------------------------

    def set_output(self, output: PilotOutput) -> None:
        """Drive the output now; later bursts are blanked (see the module doc)."""
        with self._lock:
            if self._closed or output == self._output:
                return
            try:
                self._pwm.set_output(output)
            except OSError as exc:
                log.error("pilot PWM write failed: %s", exc)
                self._error("pwm", True)
                return
            self._error("pwm", False)
            self._output = output
            self._generation += 1
            self._changed_at = self._clock()

    def on_state(self, callback: PilotCallback) -> None:
        self._state_callbacks.append(callback)

    def on_fault(self, callback: FaultCallback) -> None:
        self._fault_callbacks.append(callback)

    def on_cable(self, callback: CableCallback) -> None:
        """Socket outlets only: a fixed cable (no PP reader) never calls it."""
        self._cable_callbacks.append(callback)

    # --- extras -----------------------------------------------------------------

    @property
    def output(self) -> PilotOutput:
        return self._output

    @property
    def state(self) -> PilotState | None:
        """The last reported (debounced) state; None before the first report."""
        return self.debouncer.reported

    @property
    def diode_fault(self) -> bool:
        return self._diode_active

    @property
    def cable_rating_a(self) -> float | None:
        """The fixed cable's rating, or the last PP reading of a socket outlet."""
        if self._pp is None:
            return self._fixed_cable_a
        return self._cable.value if self._cable.known else None

    def set_disconnected(self, disconnected: bool) -> None:
        """Open/close the CP-disconnect switch (wake-up, replug); only with the contactor open.

        While disconnected the CP is not reported (the EVSE side would read an
        unloaded +12 V, i.e. a false A); after reconnecting, bursts are blanked
        as after a duty change.
        """
        with self._lock:
            if self._closed or disconnected == self._disconnected:
                return
            self._pwm.set_disconnected(disconnected)
            self._disconnected = disconnected
            self._generation += 1
            self._changed_at = self._clock()

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Start polling; the first debounced state (and PP rating) is reported once known."""
        if self._thread is not None or self._closed:
            raise RuntimeError("IecPilot already started or closed")
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="evsed-pilot", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop polling, put the pilot in its safe state (x1, then off) and release the ADC."""
        self._running = False
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 2.0)
        self.close()

    def close(self) -> None:
        """Release the hardware (safe state first); stop() calls it."""
        self._running = False
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._pwm.close()
        finally:
            self._cp.close()
            if self._pp is not None:
                self._pp.close()

    # --- worker -----------------------------------------------------------------

    def _emit(self, callbacks: list[Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or not self._running or not callbacks:
            return

        def deliver() -> None:
            if not self._running:
                return
            for callback in list(callbacks):
                callback(*args)

        with contextlib.suppress(RuntimeError):  # the loop closed under us while shutting down
            loop.call_soon_threadsafe(deliver)

    def _error(self, source: str, active: bool) -> None:
        """GENERIC fault while the PWM cannot be written or the ADC cannot be read."""
        with self._errors_lock:
            before = bool(self._errors)
            if active:
                self._errors.add(source)
            else:
                self._errors.discard(source)
            after = bool(self._errors)
        if after != before:
            self._emit(self._fault_callbacks, FaultKind.GENERIC, after)

    def _run(self) -> None:
        clock = self._clock
        next_poll = clock()
        while not self._stop.is_set():
            cpu0 = time.thread_time()
            try:
                self.poll_once()
                self._error("adc", False)
            except Exception as exc:  # keep polling: a transient SPI error must not end the driver
                if "adc" not in self._errors:
                    log.error("pilot ADC read failed: %s", exc)
                self._error("adc", True)
            cpu = time.thread_time() - cpu0
            stats = self.stats
            stats.polls += 1
            stats.cpu_s_total += cpu
            stats.cpu_s_max = max(stats.cpu_s_max, cpu)
            next_poll += self.poll_s
            now = clock()
            if next_poll < now:
                if now - next_poll > self.poll_s:
                    stats.late_polls += 1
                next_poll = now  # late (GC, scheduler): poll at once, do not try to catch up
            self._stop.wait(next_poll - now)

    def _burst(self) -> CpSample:
        sample = self._cp.burst()
        self.stats.bursts += 1
        self.stats.samples += sample.count
        self.stats.burst_s_total += sample.span_s
        self.stats.burst_s_max = max(self.stats.burst_s_max, sample.span_s)
        return sample

    def poll_once(self) -> None:
        """One poll: PP, a CP burst, classification, debounce, reports.

        The worker runs it every poll_s; it is public so that tests and bench
        tools can step the driver with their own clock.
        """
        with self._lock:
            output, generation = self._output, self._generation
            changed_at, disconnected = self._changed_at, self._disconnected
        if generation != self._seen_generation:
            self._seen_generation = generation
            self.debouncer.reset_pending()  # what was pending was seen under the old output
        if self._pp is not None and not disconnected:
            self._poll_pp()
        started = self._clock()
        sample = self._burst()
        pwm_on = output.mode is PilotMode.PWM
        if pwm_on and sample.high_v - sample.low_v < 1.0 and abs(sample.high_v) > 1.5:
            # A PWM'd CP must show two levels (unless shorted, E): this burst missed
            # a phase (short duty, a scheduling gap). Read once more and merge.
            sample = sample.merged(self._burst())
        now = self._clock()
        with self._lock:
            if self._generation != generation:
                return  # the output changed during the burst: judge it on the next poll
        if disconnected:
            return
        state = self.classifier.classify(sample.high_v, self._raw)
        since_change = started - changed_at
        if since_change < self.blank_s and not (
            self.debouncer.is_opening(state) and since_change >= self.open_blank_s
        ):
            return
        self._raw = state
        self._check_diode(sample, output, state, now)
        reported = self.debouncer.update(state, now)
        if reported is not None:
            log.debug("CP %s (hi %.2f V, lo %.2f V)", reported, sample.high_v, sample.low_v)
            self._emit(self._state_callbacks, reported)

    def _check_diode(
        self, sample: CpSample, output: PilotOutput, state: PilotState, now: float
    ) -> None:
        verdict: bool | None
        if output.mode is PilotMode.PWM and output.duty_percent <= self.diode_check_max_duty:
            verdict = self.classifier.diode_fault(sample, True, state)
        elif state is PilotState.A:
            verdict = False  # no EV: whatever was wrong with its diode is gone
        else:
            verdict = None  # x1/F or a duty too long to see the low phase: no new evidence
        if verdict is None:
            return
        self._diode.update(verdict, now)
        active = bool(self._diode.value) if self._diode.known else False
        if active != self._diode_active:  # the first "fine" is not news: nothing was reported
            self._diode_active = active
            self._emit(self._fault_callbacks, FaultKind.DIODE, active)

    def _poll_pp(self) -> None:
        assert self._pp is not None
        rating = self._pp.rating_a()
        if self._cable.update(rating, self._clock()):
            self._emit(self._cable_callbacks, rating)
