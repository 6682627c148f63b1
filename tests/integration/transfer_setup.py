"""What the firmware and diagnostics integration tests share: the [firmware] table of
a daemon (the command installer: a script that copies the file it is given, or fails
for a file starting with "BAD"), the three transports, and reading notifications."""

from __future__ import annotations

import json
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hwsim.csms import CsmsThread
from tests.file_servers import FtpFileServer, HttpFileServer, make_tls
from tests.integration.harness import Daemon

INSTALL_SCRIPT = """\
import shutil, sys
source, marker = sys.argv[1], sys.argv[2]
if open(source, "rb").read(3) == b"BAD":
    sys.exit(2)
shutil.copy(source, marker)
"""
FIRMWARE = b"evsed firmware image\n" * 5000
TRANSPORTS = ("http", "https", "ftp")


def toml_table(name: str, values: dict[str, Any]) -> str:
    """A TOML table; json.dumps writes strings and arrays TOML reads the same way."""
    return f"\n[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


class Installer:
    """The command installer's script and the file it leaves behind."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.script = directory / "install.py"
        self.script.write_text(INSTALL_SCRIPT)
        self.marker = directory / "installed.bin"

    def firmware_table(self, **overrides: Any) -> str:
        values: dict[str, Any] = {
            "installer": "command",
            "install_command": [sys.executable, str(self.script), "{file}", str(self.marker)],
            "log_file": "daemon.log",
            "transfer_timeout": 5,
        }
        return toml_table("firmware", values | overrides)


@contextmanager
def file_server(transport: str, directory: Path) -> Iterator[tuple[Any, str, dict[str, Any]]]:
    """A server for `transport`: (server, base URL, [firmware] settings it needs)."""
    if transport == "ftp":
        with FtpFileServer(directory / "ftp") as ftp:
            yield ftp, ftp.url("").rstrip("/"), {}
        return
    tls = make_tls(directory / "tls") if transport == "https" else None
    with HttpFileServer(tls=tls.server_context if tls else None) as http:
        yield http, http.url, ({"ca_file": str(tls.ca_file)} if tls else {})


def publish(server: Any, path: str, content: bytes) -> None:
    """Make `content` downloadable at `path` ("/fw/image.bin") on either kind of server."""
    if isinstance(server, FtpFileServer):
        target = server.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    else:
        server.files[path] = content


def uploaded(server: Any, name: str, timeout: float = 10.0) -> bytes:
    """The file `name` uploaded to the server (FTP: into /upload/)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if isinstance(server, FtpFileServer):
            path = server.root / "upload" / name
            if path.exists():
                return path.read_bytes()
        elif name in server.uploads:
            return server.uploads[name]  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"{name} was not uploaded")


def members(archive: bytes, directory: Path) -> dict[str, bytes]:
    path = directory / "archive.tar.gz"
    path.write_bytes(archive)
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def start(make_daemon: Callable[..., Daemon], csms: CsmsThread, /, **options: Any) -> Daemon:
    """make_daemon(**options), once the CSMS has accepted it (the first StatusNotification
    follows the accepted BootNotification): from then on the CSMS can call it."""
    mark = csms.mark()
    daemon = make_daemon(**options)
    csms.wait_for("StatusNotification", after=mark)
    return daemon


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def now_plus(seconds: float) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=seconds))


def notifications(
    csms: CsmsThread, action: str, final: set[str], after: int, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Every `action` payload from `after` up to and including the first final one
    (whether or not an earlier wait_for consumed some of them)."""
    last = csms.wait_for_record(action, lambda p: p["status"] in final, timeout, after)
    return [
        dict(r.payload)
        for r in csms.records
        if after <= r.seq <= last.seq
        and r.direction == "in"
        and r.message_type == "CALL"
        and r.action == action
    ]


def statuses(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["status"] for p in payloads]
