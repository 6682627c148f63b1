"""USB keyboard-emulation RFID reader ("HID wedge"), read through evdev.

Such readers type the card number followed by Enter. The device is grabbed
exclusively (EVIOCGRAB) so the keystrokes never reach a console login. What
they type is vendor-specific: most often the 10-digit decimal of the first
four UID bytes, sometimes byte-reversed, sometimes hex. `input_format` and
`input_order` describe the reader; the UID is then formatted with
format_id_tag exactly like the MFRC522 path, so both readers give the same
idTag for the same card (for 4-byte UIDs: a decimal-typing reader only ever
shows the first four bytes of a longer UID).

python-evdev is imported only when a real device is opened; `device_factory`
lets tests (and other input sources) supply the device instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import string
from collections.abc import AsyncIterator, Callable
from typing import Literal, Protocol

from drivers.interfaces import CardCallback, FaultCallback, FaultKind
from drivers.rfid.mfrc522 import IdBase, IdCase, IdOrder, format_id_tag

log = logging.getLogger("evsed.rfid")

# Linux input event codes (include/uapi/linux/input-event-codes.h): a stable ABI.
EV_KEY = 0x01
KEY_DOWN = 1
ENTER_KEYS = frozenset({28, 96})  # KEY_ENTER, KEY_KPENTER
SHIFT_KEYS = frozenset({42, 54})  # KEY_LEFTSHIFT, KEY_RIGHTSHIFT: hex readers may send them
KEY_CHARS = {
    **{code: str((code - 1) % 10) for code in range(2, 12)},  # KEY_1 .. KEY_9, KEY_0
    **dict(zip((71, 72, 73, 75, 76, 77, 79, 80, 81, 82), "7894561230", strict=True)),  # keypad
    30: "A",
    48: "B",
    46: "C",
    32: "D",
    18: "E",
    33: "F",
}
MAX_LINE = 32

InputFormat = Literal["dec10", "hex"]


def parse_keyboard_uid(
    text: str, input_format: InputFormat = "dec10", input_order: IdOrder = "received"
) -> bytes:
    """The UID bytes, in received order, from one line the reader typed.

    "dec10": a decimal number of at most 32 bits (the first four UID bytes;
    some readers drop leading zeros). "hex": 4, 7 or 10 bytes of hex.
    input_order="reversed" for readers that put UID0 last (least significant).
    """
    text = text.strip()
    if input_format == "dec10":
        if not text.isdigit() or len(text) > 10 or int(text) > 0xFFFF_FFFF:
            raise ValueError(f"not a 32-bit decimal card number: {text!r}")
        raw = int(text).to_bytes(4, "big")
    elif input_format == "hex":
        if len(text) not in (8, 14, 20) or any(c not in string.hexdigits for c in text):
            raise ValueError(f"not 4, 7 or 10 bytes of hex: {text!r}")
        raw = bytes.fromhex(text)
    else:
        raise ValueError(f"input_format must be 'dec10' or 'hex', not {input_format!r}")
    if input_order not in ("received", "reversed"):
        raise ValueError(f"input_order must be 'received' or 'reversed', not {input_order!r}")
    return raw if input_order == "received" else raw[::-1]


class KeyLineDecoder:
    """Turns key events into the lines the reader types.

    A line containing any key other than hex digits and Shift is dropped, and
    so is a partial line left without Enter for `timeout_s` (a reader unplugged
    mid-card, or a glitch), so garbage never becomes an idTag.
    """

    def __init__(self, timeout_s: float = 0.5) -> None:
        self.timeout_s = timeout_s
        self._chars: list[str] = []
        self._garbled = False
        self._last = 0.0

    def feed(self, code: int, value: int, timestamp: float) -> str | None:
        if value != KEY_DOWN:
            return None  # key up, autorepeat
        if (self._chars or self._garbled) and timestamp - self._last > self.timeout_s:
            self._reset()
        self._last = timestamp
        if code in ENTER_KEYS:
            line = "".join(self._chars)
            garbled = self._garbled
            self._reset()
            return None if garbled or not line else line
        if code in SHIFT_KEYS:
            return None
        char = KEY_CHARS.get(code)
        if char is None or len(self._chars) >= MAX_LINE:
            self._garbled = True
        else:
            self._chars.append(char)
        return None

    def _reset(self) -> None:
        self._chars.clear()
        self._garbled = False


class InputEventLike(Protocol):
    type: int
    code: int
    value: int


class InputDeviceLike(Protocol):
    """The part of evdev.InputDevice the reader uses."""

    def grab(self) -> None: ...

    def ungrab(self) -> None: ...

    def close(self) -> None: ...

    def async_read_loop(self) -> AsyncIterator[InputEventLike]: ...


def _evdev_device(path: str) -> InputDeviceLike:
    try:
        import evdev  # deferred: optional dependency, only for this reader
    except ImportError as exc:
        raise OSError(f"python-evdev is not installed: {exc}") from exc
    device: InputDeviceLike = evdev.InputDevice(path)
    return device


class KeyboardReader:
    """CardReader on a keyboard-emulation RFID reader.

    A card is reported once per presentation: the same UID typed again within
    `repeat_s` (readers that repeat while the card lies there) only extends
    the window. A missing or unplugged device is FaultKind.READER, retried
    every `retry_s`.
    """

    def __init__(
        self,
        device: str,
        *,
        input_format: InputFormat = "dec10",
        input_order: IdOrder = "received",
        id_order: IdOrder = "received",
        id_case: IdCase = "upper",
        id_base: IdBase = "hex",
        repeat_s: float = 1.0,
        retry_s: float = 2.0,
        device_factory: Callable[[str], InputDeviceLike] | None = None,
    ) -> None:
        parse_keyboard_uid("0" if input_format == "dec10" else "00" * 4, input_format, input_order)
        format_id_tag(b"\x00\x00\x00\x00", id_order, id_case, id_base)  # validates the options
        self.device = device  # a stable path: /dev/input/by-id/usb-…-event-kbd
        self.repeat_s = repeat_s
        self.retry_s = retry_s
        self._input = (input_format, input_order)
        self._id_format: tuple[IdOrder, IdCase, IdBase] = (id_order, id_case, id_base)
        self._factory = device_factory if device_factory is not None else _evdev_device
        self._card_callbacks: list[CardCallback] = []
        self._fault_callbacks: list[FaultCallback] = []
        self._fault = False
        self._last_seen: dict[bytes, float] = {}
        self._decoder = KeyLineDecoder()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    def on_card(self, callback: CardCallback) -> None:
        self._card_callbacks.append(callback)

    def on_fault(self, callback: FaultCallback) -> None:
        self._fault_callbacks.append(callback)

    @property
    def fault_active(self) -> bool:
        return self._fault

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._task = self._loop.create_task(self._run(), name="keyboard-reader")

    async def stop(self) -> None:
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                dev = self._factory(self.device)
            except OSError as exc:
                if not self._fault:
                    log.warning("keyboard RFID reader %s unavailable: %s", self.device, exc)
                self._set_fault(True)
                await asyncio.sleep(self.retry_s)
                continue
            try:
                dev.grab()  # exclusive: the card numbers must not reach a console
                self._set_fault(False)
                async for event in dev.async_read_loop():
                    if event.type == EV_KEY:
                        line = self._decoder.feed(event.code, event.value, loop.time())
                        if line is not None:
                            self._line(line, loop.time())
                log.warning("keyboard RFID reader %s: end of events", self.device)
            except OSError as exc:
                log.warning("keyboard RFID reader %s lost: %s", self.device, exc)
            finally:
                with contextlib.suppress(OSError):
                    dev.ungrab()
                with contextlib.suppress(OSError):
                    dev.close()
            self._set_fault(True)
            await asyncio.sleep(self.retry_s)

    def _line(self, line: str, now: float) -> None:
        try:
            uid = parse_keyboard_uid(line, *self._input)
        except ValueError as exc:
            log.warning("keyboard RFID reader typed an unusable line: %s", exc)
            return
        last = self._last_seen.get(uid)
        self._last_seen = {u: t for u, t in self._last_seen.items() if now - t <= self.repeat_s}
        self._last_seen[uid] = now
        if last is not None and now - last <= self.repeat_s:
            return
        id_tag = format_id_tag(uid, *self._id_format)
        log.info("card %s", id_tag)
        for callback in self._card_callbacks:
            self._schedule(callback, id_tag)

    def _set_fault(self, active: bool) -> None:
        if self._fault == active:
            return
        self._fault = active
        for callback in self._fault_callbacks:
            self._schedule(callback, FaultKind.READER, active)

    def _schedule(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None

        def deliver() -> None:
            if self._running:
                callback(*args)

        self._loop.call_soon(deliver)
