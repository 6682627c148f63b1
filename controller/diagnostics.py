"""The diagnostics archive a CSMS asks for (GetDiagnostics, GetLog): what happened and
what the station is, in one .tar.gz, with no secrets in it.

Contents: `log.txt` (the daemon's log for the time window asked), `state.json` (what
the station is doing now), `config.json` (the configuration file's settings and the
live OCPP configuration keys, secrets replaced by "***"), `store.json` (recent
transactions, undelivered and given-up messages) and `manifest.json` (what is in it,
where the log came from, the window).

Where the log comes from, in order: under systemd, the journal (`journalctl -u evsed`,
which needs the service user in the `systemd-journal` group to see system entries);
else a log file the configuration names (`firmware.log_file`: the file the daemon's
output is redirected to); else nothing, and `log.txt` and the manifest say so. A
security log is the same, restricted to the `evsed.security` logger.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

UNIT = "evsed"
SECURITY_LOGGER = "evsed.security"
MAX_LOG_BYTES = 16 * 2**20  # the newest part is kept
JOURNAL_TIMEOUT_S = 60.0
MASK = "***"
# Names whose values are secrets wherever they appear (configuration file, OCPP keys).
SECRET_NAMES = re.compile(r"password|secret|authorizationkey|private", re.IGNORECASE)
# The start of a line of the daemon's own log format: "2026-11-21 05:24:29,123 INFO ..."
_LINE_TIME = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")

Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


@dataclasses.dataclass(frozen=True, slots=True)
class LogExtract:
    source: str  # "journal", "file <path>" or "none"
    text: bytes
    note: str = ""


def archive_name(station_id: str, now: datetime, kind: str = "") -> str:
    """e.g. evsed-CP-1-20261121T052429Z.tar.gz, or evsed-CP-1-security-….tar.gz for a
    `kind` (station ids are URL-safe, so the name needs no escaping in a location)."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"evsed-{station_id}-{kind + '-' if kind else ''}{stamp}.tar.gz"


def collect_log(
    since: datetime | None,
    until: datetime | None,
    log_file: Path | None,
    security_only: bool = False,
    run: Runner = subprocess.run,
    under_systemd: bool | None = None,
) -> LogExtract:
    """The daemon's log between `since` and `until` (either may be None: open)."""
    if under_systemd is None:
        under_systemd = bool(os.environ.get("INVOCATION_ID")) and bool(shutil.which("journalctl"))
    if under_systemd:
        return _from_journal(since, until, security_only, run)
    if log_file is not None:
        return _from_file(log_file, since, until, security_only)
    return LogExtract(
        "none",
        b"",
        "no log available: not running under systemd and firmware.log_file is not set",
    )


def _from_journal(
    since: datetime | None, until: datetime | None, security_only: bool, run: Runner
) -> LogExtract:
    command = ["journalctl", "-u", UNIT, "-o", "short-iso", "--no-pager", "-q"]
    if since is not None:
        command.append(f"--since=@{int(since.timestamp())}")
    if until is not None:
        command.append(f"--until=@{int(until.timestamp()) + 1}")
    if security_only:
        command.append(f"LOGGER={SECURITY_LOGGER}")
    try:
        done = run(command, capture_output=True, timeout=JOURNAL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return LogExtract("journal", b"", f"journalctl failed: {e}")
    note = "" if done.returncode == 0 else f"journalctl exited with {done.returncode}"
    if done.stderr:
        note = (note + "; " if note else "") + done.stderr.decode(errors="replace")[:500]
    return LogExtract("journal", _tail(done.stdout), note)


def _from_file(
    path: Path, since: datetime | None, until: datetime | None, security_only: bool
) -> LogExtract:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 4 * MAX_LOG_BYTES))
            raw = f.read()
    except OSError as e:
        return LogExtract(f"file {path}", b"", f"cannot read the log file: {e.strerror or e}")
    low = since.timestamp() if since is not None else None
    high = until.timestamp() if until is not None else None
    kept: list[bytes] = []
    keep = low is None  # lines before the first stamped one: only with an open start
    for line in raw.splitlines(keepends=True):
        match = _LINE_TIME.match(line)
        if match is not None:
            stamp = _local_time(match.group(1))
            keep = stamp is not None and (low is None or stamp >= low)
            keep = keep and (high is None or (stamp is not None and stamp <= high))
            if keep and security_only:
                keep = f" {SECURITY_LOGGER}".encode() in line
        if keep:
            kept.append(line)
    return LogExtract(f"file {path}", _tail(b"".join(kept)))


def _local_time(text: bytes) -> float | None:
    try:
        return time.mktime(time.strptime(text.decode(), "%Y-%m-%d %H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def _tail(data: bytes) -> bytes:
    if len(data) <= MAX_LOG_BYTES:
        return data
    cut = data[-MAX_LOG_BYTES:]
    return b"[... older lines left out ...]\n" + cut[cut.find(b"\n") + 1 :]


# --- redaction -----------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A dataclass tree (the Config) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def redact(value: Any) -> Any:
    """Replace the value of every secret-named key (at any depth) with "***"; empty
    values stay empty, so "no password set" is still visible."""
    if isinstance(value, dict):
        return {
            k: (MASK if value[k] not in ("", None) else value[k])
            if SECRET_NAMES.search(k)
            else redact(value[k])
            for k in value
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


# --- the archive ---------------------------------------------------------------------------


def build_archive(dest: Path, files: Mapping[str, bytes], now: datetime) -> Path:
    """Write `files` (name -> content) as a gzip'd tar at `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    mtime = now.timestamp()
    with tarfile.open(dest, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = int(mtime)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return dest


def to_json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode() + b"\n"
