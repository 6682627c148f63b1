"""The 1 kHz control-pilot generator on a hardware PWM channel, through sysfs.

Hardware PWM keeps its ±5 µs pulse-width accuracy whatever Python does
(software PWM jitters by 5–50 µs, hardware reference §4.1). The pwmchip index
changes with the kernel and the overlays (the RP1 on a Pi 5 is often pwmchip2,
a Pi 4 usually pwmchip0), so the chip is found by its device path, not by number.

Safe state. Whenever this module lets go of the pilot (close(), the context
manager's exit, a failed start) it first drives duty 100 % = x1: constant
+12 V, "EVSE not ready", so an EV must stop drawing and open S2. It then
disables the channel. A disabled channel idles at the pin's inactive level
(usually low), which a non-inverting ±12 V stage turns into −12 V = state F,
"EVSE not available": also a no-energy state, and the one the pilot stays in
if the daemon dies after this point [VERIFY the idle level of your board's
stage with a scope]. If the process dies without closing, the PWM keeps
running at its last duty: the contactor interlock must not rely on this.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.core.iec61851 import PilotMode, PilotOutput

log = logging.getLogger("evsed.pilot")

PERIOD_NS = 1_000_000  # 1 kHz
DEFAULT_SYSFS_ROOT = "/sys/class/pwm"


class PwmChipNotFound(OSError):
    """No (or no unique) pwmchip matches the configured device path."""


def chip_device_path(chip: Path) -> str:
    """The resolved device path of a pwmchip (its `device` link, else the chip itself)."""
    device = chip / "device"
    target = device if device.exists() else chip
    return os.path.realpath(target)


def find_pwmchip(root: str | os.PathLike[str], device_match: str | None = None) -> Path:
    """The pwmchip under `root` whose device path contains `device_match`.

    Without `device_match` the only chip present is used; several chips are an
    error, since guessing could drive the wrong pin (the audio PWM, say).
    """
    base = Path(root)
    try:
        chips = sorted(
            (p for p in base.iterdir() if p.name.startswith("pwmchip")),
            key=lambda p: int(p.name[7:]) if p.name[7:].isdigit() else 1 << 30,
        )
    except FileNotFoundError as exc:
        raise PwmChipNotFound(f"no PWM sysfs at {base} (is the pwm overlay enabled?)") from exc
    described = ", ".join(f"{c.name} -> {chip_device_path(c)}" for c in chips) or "none"
    if device_match is None:
        if len(chips) != 1:
            raise PwmChipNotFound(
                f"{len(chips)} pwmchips under {base} ({described}); configure the device path"
            )
        return chips[0]
    matches = [c for c in chips if device_match in chip_device_path(c)]
    if len(matches) != 1:
        raise PwmChipNotFound(
            f"{len(matches)} pwmchips under {base} match {device_match!r} ({described})"
        )
    return matches[0]


def duty_ns(output: PilotOutput, period_ns: int = PERIOD_NS) -> int:
    """High time in ns for `output`: x1 = whole period, F = 0, PWM = its duty."""
    if output.mode is PilotMode.X1:
        return period_ns
    if output.mode is PilotMode.F:
        return 0
    percent = min(max(output.duty_percent, 0.0), 100.0)
    return round(period_ns * percent / 100.0)


class SysfsPwm:
    """One hardware PWM channel driving the CP generator, plus an optional CP-disconnect pin.

    `device_match`: substring of the chip's device path (e.g. "1f00098000.pwm" on a
    Pi 5, "7e20c000.pwm" on a Pi 4); None: the only chip present. `inverted`: the
    output stage inverts (high GPIO = −12 V), so the duty written is complemented.
    `cp_disconnect_pin`: GPIO of a relay/switch that disconnects CP (wake-up,
    "replug"); active (high unless `cp_disconnect_active_high` is False) =
    disconnected. Construction exports the channel if needed and drives `initial`.
    """

    def __init__(
        self,
        *,
        root: str | os.PathLike[str] = DEFAULT_SYSFS_ROOT,
        device_match: str | None = None,
        channel: int = 0,
        export_timeout_s: float = 2.0,
        inverted: bool = False,
        cp_disconnect_pin: int | str | None = None,
        cp_disconnect_active_high: bool = True,
        pin_factory: Any = None,
        initial: PilotOutput | None = None,
    ) -> None:
        self.chip = find_pwmchip(root, device_match)
        self.channel = channel
        self.inverted = inverted
        self._dir = self.chip / f"pwm{channel}"
        self._written_duty: int | None = None
        self._output: PilotOutput | None = None
        self._disconnect: Any = None
        self._closed = False
        self._export(export_timeout_s)
        try:
            self._configure_period()
            self.set_output(initial if initial is not None else PilotOutput.x1())
            self._write("enable", 1)
            if cp_disconnect_pin is not None:
                from gpiozero import DigitalOutputDevice  # late: sysfs-only use needs no GPIO

                self._disconnect = DigitalOutputDevice(
                    cp_disconnect_pin,
                    active_high=cp_disconnect_active_high,
                    initial_value=False,
                    pin_factory=pin_factory,
                )
        except BaseException:
            self.close()
            raise
        log.info(
            "pilot PWM on %s channel %d (%s)", self.chip.name, channel, chip_device_path(self.chip)
        )

    # --- sysfs -----------------------------------------------------------------

    def _export(self, timeout_s: float) -> None:
        """Export the channel unless it already is, then wait until its files are writable.

        The kernel creates pwmN/ during the write, but udev may still be changing
        its group/permissions for a few ms, and a simulator may react later still.
        """
        npwm_file = self.chip / "npwm"
        if npwm_file.exists():
            npwm = int(npwm_file.read_text().strip() or 0)
            if not 0 <= self.channel < npwm:
                raise ValueError(f"{self.chip.name} has {npwm} channels; channel {self.channel}")
        if not self._dir.is_dir():
            try:
                (self.chip / "export").write_text(f"{self.channel}\n")
            except OSError as exc:
                if exc.errno != errno.EBUSY:  # EBUSY: exported meanwhile by someone else
                    raise
        deadline = time.monotonic() + timeout_s
        files = [self._dir / name for name in ("period", "duty_cycle", "enable")]
        while not all(f.exists() and os.access(f, os.W_OK) for f in files):
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    errno.ETIMEDOUT, f"{self._dir} not ready {timeout_s} s after export"
                )
            time.sleep(0.002)

    def _write(self, name: str, value: int | str) -> None:
        with open(self._dir / name, "w") as f:
            f.write(f"{value}\n")

    def _read_int(self, name: str) -> int:
        text = (self._dir / name).read_text().strip()
        return int(text) if text else 0

    def _configure_period(self) -> None:
        """Set normal polarity and 1 kHz.

        Polarity can only change while disabled; the kernel refuses a period below
        the present duty, so that is lowered first.
        """
        polarity = self._dir / "polarity"
        if polarity.exists() and polarity.read_text().strip() != "normal":
            self._write("enable", 0)
            self._write("polarity", "normal")
        if self._read_int("period") == PERIOD_NS:
            return
        if self._read_int("duty_cycle") > PERIOD_NS:
            self._write("duty_cycle", 0)
        self._write("period", PERIOD_NS)

    # --- pilot -----------------------------------------------------------------

    @property
    def output(self) -> PilotOutput | None:
        """The last output driven (None once closed)."""
        return self._output

    def set_output(self, output: PilotOutput) -> None:
        """Drive x1 (100 %), F (0 %, channel enabled) or PWM at the output's duty.

        Only a changed duty is written, so repeating an output costs nothing.
        """
        if self._closed:
            raise RuntimeError("pilot PWM is closed")
        high_ns = duty_ns(output)
        written = PERIOD_NS - high_ns if self.inverted else high_ns
        if written != self._written_duty:
            self._write("duty_cycle", written)
            self._written_duty = written
        self._output = output

    def set_disconnected(self, disconnected: bool) -> None:
        """Open (True) or close the CP-disconnect switch; no-op without one."""
        if self._disconnect is not None:
            self._disconnect.value = disconnected

    @property
    def disconnected(self) -> bool:
        return bool(self._disconnect is not None and self._disconnect.value)

    def close(self) -> None:
        """Leave the pilot in the safe state (x1, then disabled; see the module doc)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._disconnect is not None:
                self._disconnect.value = False  # CP connected: the EV must see x1/F
                self._disconnect.close()
        finally:
            self._disconnect = None
            try:
                if self._dir.is_dir():
                    self._write("duty_cycle", 0 if self.inverted else PERIOD_NS)
                    self._write("enable", 0)
            except OSError as exc:  # nothing more we can do; the caller is shutting down
                log.error("could not put the pilot PWM in its safe state: %s", exc)
            self._output = None

    def __enter__(self) -> SysfsPwm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
