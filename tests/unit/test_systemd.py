"""systemd integration over real sockets: sd_notify datagrams, the watchdog, the journal."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import struct
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import systemd
from controller.systemd import JournalHandler, Notifier, journal_wanted, notify


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in tmp_path, and its path."""
    path = str(tmp_path / "sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


@pytest.fixture
def notify_socket(
    bound: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> socket.socket:
    sock, path = bound
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    return sock


def pending(sock: socket.socket) -> list[bytes]:
    """The datagrams waiting on sock, without waiting for more."""
    received = []
    sock.setblocking(False)
    try:
        while True:
            received.append(sock.recv(65536))
    except BlockingIOError:
        return received
    finally:
        sock.settimeout(2)


def test_ready_status_stopping(notify_socket: socket.socket) -> None:
    notifier = Notifier()
    assert notifier.ready("connected to CSMS")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=connected to CSMS"
    assert notifier.status("charging on c1")
    assert notify_socket.recv(4096) == b"STATUS=charging on c1"
    assert notifier.stopping("shutting down")
    assert notify_socket.recv(4096) == b"STOPPING=1\nSTATUS=shutting down"
    assert pending(notify_socket) == []


def test_status_is_sent_only_when_it_changes(notify_socket: socket.socket) -> None:
    notifier = Notifier()
    assert notifier.ready("idle")
    assert not notifier.status("idle")
    assert notifier.status("charging")
    assert not notifier.status("charging")
    assert notifier.status("idle")
    assert pending(notify_socket) == [b"READY=1\nSTATUS=idle", b"STATUS=charging", b"STATUS=idle"]


def test_status_newlines_become_spaces(notify_socket: socket.socket) -> None:
    assert Notifier().status("two\nlines")
    assert notify_socket.recv(4096) == b"STATUS=two lines"


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"evsed-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1", "STATUS=up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not notify("READY=1")
    notifier = Notifier()
    assert not notifier.ready("up")
    assert not notifier.status("up")
    assert not notifier.stopping("down")


def test_send_failure_returns_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert not notify("READY=1")


def test_one_socket_per_process(notify_socket: socket.socket) -> None:
    assert notify("STATUS=a")
    first = systemd._notify_socket.get()
    assert notify("STATUS=b")
    assert systemd._notify_socket.get() is first
    assert not os.get_inheritable(first.fileno())
    assert pending(notify_socket) == [b"STATUS=a", b"STATUS=b"]


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("200000", None, 0.2),
        ("30000000", "self", 30.0),
        ("30000000", "other", None),
        ("0", None, None),
        ("soon", None, None),
        ("30000000", "nonsense", None),
    ],
)
def test_watchdog_interval(
    usec: str | None, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in [("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)]:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            value = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(value, value)
            monkeypatch.setenv(name, value)
    assert Notifier().watchdog_interval() == expected


def test_keepalive_without_watchdog_returns_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    asyncio.run(asyncio.wait_for(Notifier().keepalive(), 1))


def test_keepalive_pings_at_half_the_interval(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    async def run() -> None:
        task = asyncio.create_task(Notifier().keepalive())
        await asyncio.sleep(0.5)
        task.cancel()

    asyncio.run(run())
    pings = pending(notify_socket)
    assert set(pings) == {b"WATCHDOG=1"}
    assert 2 <= len(pings) <= 8  # about 0.5 s / 0.1 s


def test_keepalive_stops_while_the_loop_is_blocked(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    async def run() -> list[bytes]:
        task = asyncio.create_task(Notifier().keepalive())
        await asyncio.sleep(0.25)
        assert pending(notify_socket)  # it was pinging
        time.sleep(0.4)  # a hung loop: four periods without a ping
        during_block = pending(notify_socket)
        await asyncio.sleep(0.15)
        assert pending(notify_socket)  # and it resumes with the loop
        task.cancel()
        return during_block

    assert asyncio.run(run()) == []


# The journal's native protocol, as journald reads it.


def parse_entry(data: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    while data:
        line_end = data.index(b"\n")
        equals = data.find(b"=", 0, line_end)
        if equals >= 0:
            name, value = data[:equals], data[equals + 1 : line_end]
            data = data[line_end + 1 :]
        else:
            name = data[:line_end]
            (size,) = struct.unpack("<Q", data[line_end + 1 : line_end + 9])
            value = data[line_end + 9 : line_end + 9 + size]
            assert data[line_end + 9 + size : line_end + 10 + size] == b"\n"
            data = data[line_end + 10 + size :]
        key = name.decode()
        assert key.isupper() and not key.startswith("_"), key
        assert key not in fields, key
        fields[key] = value.decode()
    return fields


@pytest.fixture
def journal(bound: tuple[socket.socket, str]) -> Iterator[tuple[logging.Logger, socket.socket]]:
    """A logger whose records go to a journal handler writing to a test socket."""
    sock, path = bound
    handler = JournalHandler(socket_path=path)
    logger = logging.getLogger(f"evsed.test.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, sock
    logger.removeHandler(handler)
    handler.close()


def test_journal_fields(journal: tuple[logging.Logger, socket.socket]) -> None:
    logger, sock = journal
    logger.warning("meter %s not answering", "m1")
    line = sys._getframe().f_lineno - 1
    fields = parse_entry(sock.recv(65536))
    assert fields == {
        "MESSAGE": f"{logger.name}: meter m1 not answering",
        "PRIORITY": "4",
        "SYSLOG_IDENTIFIER": "evsed",
        "LOGGER": logger.name,
        "CODE_FILE": __file__,
        "CODE_LINE": str(line),
        "CODE_FUNC": "test_journal_fields",
    }


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, "2"),
        (logging.ERROR, "3"),
        (logging.WARNING, "4"),
        (logging.INFO, "6"),
        (logging.DEBUG, "7"),
    ],
)
def test_journal_priority(
    level: int, priority: str, journal: tuple[logging.Logger, socket.socket]
) -> None:
    logger, sock = journal
    logger.log(level, "x")
    assert parse_entry(sock.recv(65536))["PRIORITY"] == priority


def test_journal_multiline_message_has_a_length(
    journal: tuple[logging.Logger, socket.socket],
) -> None:
    logger, sock = journal
    logger.info("first\nsecond=2")
    data = sock.recv(65536)
    message = f"{logger.name}: first\nsecond=2".encode()
    assert b"MESSAGE\n" + struct.pack("<Q", len(message)) + message + b"\n" in data
    assert parse_entry(data)["MESSAGE"] == message.decode()


def test_journal_context_fields(journal: tuple[logging.Logger, socket.socket]) -> None:
    logger, sock = journal
    logger.info("started", extra={"connector": 1, "tx": 42, "action": "StartTransaction"})
    fields = parse_entry(sock.recv(65536))
    assert fields["CONNECTOR"] == "1"
    assert fields["TRANSACTION_ID"] == "42"
    assert fields["OCPP_ACTION"] == "StartTransaction"
    logger.info("plain", extra={"connector": 2, "tx": None})
    fields = parse_entry(sock.recv(65536))
    assert fields["CONNECTOR"] == "2"
    assert "TRANSACTION_ID" not in fields
    assert "OCPP_ACTION" not in fields


def test_journal_traceback_in_message(journal: tuple[logging.Logger, socket.socket]) -> None:
    logger, sock = journal
    try:
        raise RuntimeError("contactor welded")
    except RuntimeError:
        logger.exception("stop failed")
    message = parse_entry(sock.recv(65536))["MESSAGE"]
    assert message.startswith(f"{logger.name}: stop failed\nTraceback (most recent call last):")
    assert "RuntimeError: contactor welded" in message


def test_journal_huge_entry_arrives_as_a_sealed_memfd(
    journal: tuple[logging.Logger, socket.socket],
) -> None:
    logger, sock = journal
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        datagram_limit = probe.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    text = "".join(f"line {n:07d}\n" for n in range(max(300_000, 2 * datagram_limit) // 13))
    logger.info("%s", text)
    data, fds, _flags, _address = socket.recv_fds(sock, 65536, 1)
    assert data == b""
    assert len(fds) == 1
    with open(fds[0], "rb") as entry:
        seals = fcntl.fcntl(entry.fileno(), fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
        fields = parse_entry(os.pread(entry.fileno(), os.fstat(entry.fileno()).st_size, 0))
    assert fields["MESSAGE"] == f"{logger.name}: {text}"
    assert fields["PRIORITY"] == "6"


def test_journal_unreachable_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = JournalHandler(socket_path=str(tmp_path / "no-journal"))
    record = logging.LogRecord("evsed.x", logging.INFO, __file__, 1, "hello %s", ("c1",), None)
    handler.handle(record)
    handler.handle(record)
    handler.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # one note, then the lines
    assert "unreachable" in lines[0]
    assert lines[1:] == ["evsed.x: hello c1"] * 2


def test_journal_bad_record_does_not_raise(
    journal: tuple[logging.Logger, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger, sock = journal
    monkeypatch.setattr(logging, "raiseExceptions", False)
    logger.info("%d", "not a number")
    assert pending(sock) == []
    logger.info("still logging")
    assert parse_entry(sock.recv(65536))["MESSAGE"].endswith("still logging")


def test_journal_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{stderr.st_dev}:{stderr.st_ino}")
    assert journal_wanted()
    monkeypatch.setenv("JOURNAL_STREAM", f"{stderr.st_dev}:{stderr.st_ino + 1}")
    assert not journal_wanted()
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    assert not journal_wanted()
    monkeypatch.delenv("JOURNAL_STREAM")
    assert not journal_wanted()
