"""controller.diagnostics: the log for a time window (journal or file), redaction of
secrets, and the archive."""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.config import parse_config
from controller.diagnostics import (
    MASK,
    archive_name,
    build_archive,
    collect_log,
    plain,
    redact,
)


def local(text: str) -> datetime:
    """A time written in the daemon's log format (local time) as an aware datetime."""
    return datetime.fromtimestamp(time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S")), UTC)


LOG = b"""2026-03-01 10:00:00,000 INFO evsed.daemon: starting
2026-03-01 10:05:00,000 WARNING evsed.security: InvalidFirmwareSignature
2026-03-01 10:06:00,000 ERROR evsed.station [c1]: something failed
Traceback (most recent call last):
  File "x.py", line 1
2026-03-01 10:10:00,000 INFO evsed.daemon: stopped
"""


def test_the_log_file_for_a_window(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    log.write_bytes(b"leftover line without a time\n" + LOG)
    extract = collect_log(
        local("2026-03-01 10:05:00"), local("2026-03-01 10:06:00"), log, under_systemd=False
    )
    assert extract.source == f"file {log}"
    assert extract.text.decode().splitlines() == [
        "2026-03-01 10:05:00,000 WARNING evsed.security: InvalidFirmwareSignature",
        "2026-03-01 10:06:00,000 ERROR evsed.station [c1]: something failed",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
    ]
    everything = collect_log(None, None, log, under_systemd=False)
    assert everything.text.startswith(b"leftover line")
    assert everything.text.endswith(b"stopped\n")


def test_the_security_log_is_the_security_logger_only(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    log.write_bytes(LOG)
    extract = collect_log(None, None, log, security_only=True, under_systemd=False)
    assert (
        extract.text
        == b"2026-03-01 10:05:00,000 WARNING evsed.security: InvalidFirmwareSignature\n"
    )


def test_no_log_says_so(tmp_path: Path) -> None:
    extract = collect_log(None, None, None, under_systemd=False)
    assert extract.source == "none" and extract.text == b""
    assert "firmware.log_file" in extract.note
    missing = collect_log(None, None, tmp_path / "missing.log", under_systemd=False)
    assert missing.text == b"" and "cannot read" in missing.note


def test_the_journal_under_systemd() -> None:
    seen: list[list[str]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        seen.append(command)
        return subprocess.CompletedProcess(command, 0, b"2026-03-01T10:05:00+0000 evsed: hi\n", b"")

    since = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    until = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    extract = collect_log(since, until, None, security_only=True, run=run, under_systemd=True)
    assert extract.source == "journal" and extract.text.endswith(b"hi\n")
    assert seen == [
        [
            "journalctl",
            "-u",
            "evsed",
            "-o",
            "short-iso",
            "--no-pager",
            "-q",
            f"--since=@{int(since.timestamp())}",
            f"--until=@{int(until.timestamp()) + 1}",
            "LOGGER=evsed.security",
        ]
    ]


def test_a_failing_journal_is_noted() -> None:
    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(command, 1, b"", b"No journal files were found.")

    extract = collect_log(None, None, None, run=run, under_systemd=True)
    assert "exited with 1" in extract.note and "No journal files" in extract.note

    def broken(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        raise FileNotFoundError("journalctl")

    assert "journalctl failed" in collect_log(None, None, None, run=broken, under_systemd=True).note


def test_secrets_are_redacted_from_the_configuration() -> None:
    config = parse_config(
        {
            "station": {"id": "CP-1"},
            "csms": {"url": "ws://x", "password": "0123456789abcdef"},
            "connectors": [{"max_current": 16}],
            "ocpp": {"keys": {"HeartbeatInterval": 60}},
        }
    )
    data = redact({"file": plain(config), "ocpp_keys": {"AuthorizationKey": "00ff", "X": "1"}})
    assert data["file"]["csms"]["password"] == MASK
    assert data["file"]["csms"]["url"] == "ws://x"
    assert data["ocpp_keys"] == {"AuthorizationKey": MASK, "X": "1"}
    assert data["file"]["ocpp"]["keys"] == {"HeartbeatInterval": "60"}
    assert "0123456789abcdef" not in repr(data)
    assert redact({"password": ""}) == {"password": ""}  # "no password" stays visible


def test_the_archive(tmp_path: Path) -> None:
    now = datetime(2026, 3, 1, 10, 5, 7, tzinfo=UTC)
    name = archive_name("CP-1", now)
    assert name == "evsed-CP-1-20260301T100507Z.tar.gz"
    assert archive_name("CP-1", now, "security") == "evsed-CP-1-security-20260301T100507Z.tar.gz"
    path = build_archive(tmp_path / name, {"a.json": b"{}", "log.txt": b"line\n"}, now)
    with tarfile.open(path) as tar:
        assert tar.getnames() == ["a.json", "log.txt"]
        member = tar.extractfile("log.txt")
        assert member is not None and member.read() == b"line\n"
    assert isinstance(io.BytesIO(path.read_bytes()).read(2), bytes)
