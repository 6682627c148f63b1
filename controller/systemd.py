"""The daemon's integration with systemd: readiness and status, the watchdog, the journal.

Under systemd (`Type=notify`, `WatchdogSec=`) the daemon says when it is ready and what it
is doing, and pings the watchdog from its main asyncio loop, so a hung loop gets the
service restarted. Its log records go to the journal with structured fields (connector,
transaction, OCPP action) that `journalctl CONNECTOR=1` can filter on. Both protocols are
a few datagrams on a Unix socket, so they are spoken here directly rather than through
systemd-python, which needs libsystemd's headers to build.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import re
import socket
import struct
import sys
import threading

log = logging.getLogger("evsed.systemd")

JOURNAL_SOCKET = "/run/systemd/journal/socket"

# A datagram that does not fit fails with one of these; the journal then takes the
# entry from a sealed memfd passed along instead (as sd_journal_sendv does).
_TOO_BIG = frozenset({errno.EMSGSIZE, errno.ENOBUFS, errno.ENOMEM})
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL


class _ProcessSocket:
    """One AF_UNIX datagram socket per process, made on first use.

    A forked child makes its own rather than sharing the parent's; the socket is
    close-on-exec (Python's default), so an exec'd program never sees it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pid = 0

    def get(self) -> socket.socket:
        with self._lock:
            if self._sock is None or self._pid != os.getpid():
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._pid = os.getpid()
            return self._sock

    def close(self) -> None:
        with self._lock:
            if self._sock is not None and self._pid == os.getpid():
                self._sock.close()
            self._sock = None


_notify_socket = _ProcessSocket()


def _notify_address() -> str | None:
    """$NOTIFY_SOCKET as a socket address: a path, or "@name" for the abstract namespace."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    if address.startswith("@"):
        return "\0" + address[1:]
    if address.startswith("/"):
        return address
    log.debug("NOTIFY_SOCKET %r: unsupported address", address)
    return None


def notify(*lines: str) -> bool:
    """Send "KEY=value" lines to systemd as one datagram (sd_notify(3)).

    False when not run under systemd ($NOTIFY_SOCKET unset) or when the send failed;
    never raises.
    """
    address = _notify_address()
    if address is None:
        return False
    try:
        _notify_socket.get().sendto("\n".join(lines).encode(), address)
    except OSError as exc:
        log.debug("sd_notify %s to %r failed: %s", lines, address, exc)
        return False
    return True


class Notifier:
    """What the daemon tells systemd: readiness, status text, stopping; the watchdog pings."""

    def __init__(self) -> None:
        self._last_status: str | None = None

    def ready(self, status: str) -> bool:
        """Start-up is done (ends `systemctl start` for Type=notify)."""
        return self._send_status(status, "READY=1")

    def status(self, text: str) -> bool:
        """The one-line status `systemctl status` shows; sent only when it changed."""
        if text == self._last_status:
            return False
        return self._send_status(text)

    def stopping(self, status: str) -> bool:
        """Shutdown has begun."""
        return self._send_status(status, "STOPPING=1")

    def _send_status(self, text: str, *lines: str) -> bool:
        text = " ".join(text.splitlines())  # a newline would end the assignment
        sent = notify(*lines, f"STATUS={text}")
        if sent:
            self._last_status = text
        return sent

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds, or None when this process has no watchdog.

        From $WATCHDOG_USEC, which applies only if $WATCHDOG_PID is unset or names this
        process (sd_watchdog_enabled(3)).
        """
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec:
            return None
        pid = os.environ.get("WATCHDOG_PID")
        try:
            if pid and int(pid) != os.getpid():
                return None
            interval = int(usec)
        except ValueError:
            log.debug("bad WATCHDOG_USEC %r / WATCHDOG_PID %r", usec, pid)
            return None
        return interval / 1_000_000 if interval > 0 else None

    async def keepalive(self) -> None:
        """Ping the watchdog every half interval, for as long as the loop runs this task.

        Run it as a task on the daemon's main loop: when the loop hangs, the pings stop
        and systemd kills the service. Returns at once when there is no watchdog.
        """
        interval = self.watchdog_interval()
        if interval is None:
            return
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(interval / 2)


def journal_wanted() -> bool:
    """Whether stderr is connected to the journal: $JOURNAL_STREAM is fd 2's "DEV:INODE"."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in stream.split(":"))
        stat = os.fstat(2)
    except (ValueError, OSError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def _field(name: str, value: str) -> bytes:
    """One field in the native journal protocol: `NAME=value\\n`, or with a length for a
    value that has a newline in it."""
    data = value.encode("utf-8", "backslashreplace")
    if b"\n" in data:
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def _priority(level: int) -> int:
    """The syslog priority for a logging level."""
    if level >= logging.CRITICAL:
        return 2
    if level >= logging.ERROR:
        return 3
    if level >= logging.WARNING:
        return 4
    if level >= logging.INFO:
        return 6
    return 7


class JournalHandler(logging.Handler):
    """Writes records to the journal in its native protocol, with structured fields.

    Fields: MESSAGE (the formatted record, traceback included), PRIORITY, SYSLOG_IDENTIFIER,
    LOGGER, CODE_FILE, CODE_LINE, CODE_FUNC, and the daemon's context from `extra=`
    (see CONTEXT_FIELDS). An entry too big for a datagram goes in a sealed memfd whose
    descriptor is passed instead. When the journal cannot be reached the formatted line
    goes to stderr, with one note to say so. Sends block like sd_journal_send's do.
    """

    # Record attribute (from `extra=`) → journal field.
    CONTEXT_FIELDS = {"connector": "CONNECTOR", "tx": "TRANSACTION_ID", "action": "OCPP_ACTION"}

    def __init__(
        self,
        level: int = logging.NOTSET,
        *,
        socket_path: str = JOURNAL_SOCKET,
        identifier: str = "evsed",
    ) -> None:
        super().__init__(level)
        bad = [name for name in self.CONTEXT_FIELDS.values() if not _FIELD_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"invalid journal field names: {bad}")
        self.socket_path = socket_path
        self.identifier = identifier
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self._socket = _ProcessSocket()
        self._unreachable = False  # noted on stderr; cleared when an entry gets through

    def entry(self, record: logging.LogRecord) -> bytes:
        """The record as a native-protocol journal entry."""
        fields: dict[str, object] = {
            "MESSAGE": self.format(record),
            "PRIORITY": _priority(record.levelno),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": record.lineno,
            "CODE_FUNC": record.funcName,  # None for a record made by hand
        }
        for attribute, name in self.CONTEXT_FIELDS.items():
            fields[name] = getattr(record, attribute, None)
        return b"".join(
            _field(name, str(value)) for name, value in fields.items() if value is not None
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = self.entry(record)
        except Exception:
            self.handleError(record)
            return
        try:
            self._send(entry)
        except OSError as exc:
            self._to_stderr(record, exc)
        else:
            self._unreachable = False

    def _send(self, entry: bytes) -> None:
        sock = self._socket.get()
        try:
            sock.sendto(entry, self.socket_path)
        except OSError as exc:
            if exc.errno not in _TOO_BIG:
                raise
            self._send_as_memfd(sock, entry)

    def _send_as_memfd(self, sock: socket.socket, entry: bytes) -> None:
        """Pass the entry in a sealed memfd: an empty datagram carrying its descriptor."""
        fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(entry)
            while view:
                view = view[os.write(fd, view) :]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            sock.sendmsg(
                [],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))],
                0,
                self.socket_path,
            )
        finally:
            os.close(fd)

    def _to_stderr(self, record: logging.LogRecord, exc: OSError) -> None:
        stream = sys.stderr
        if stream is None:
            return
        try:
            if not self._unreachable:
                self._unreachable = True
                stream.write(
                    f"{self.identifier}: journal at {self.socket_path} unreachable ({exc}); "
                    "logging to stderr\n"
                )
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._socket.close()
        super().close()
