"""File transfers for firmware, diagnostics and logs: HTTP, HTTPS and FTP.

A CSMS names a location (`ftp://user:pass@host/dir/`, `https://host/fw.bin`) and the
station fetches or delivers a file there. Everything here blocks, so it runs in a
worker thread (`in_thread`): the event loop that opens the contactor never waits for a
slow server. Every network operation has a timeout, a download has a size limit and
must leave free space on the disk, and a transfer can be cancelled between chunks.

Uploads: FTP `STOR` into the location (a directory, as OCPP says); HTTP(S) `POST` of
multipart/form-data (field "file") to the location, and, if the server refuses POST
(405 or 501), `PUT` to the location joined with the file name. HTTPS verifies the
server against the system's CA certificates plus an optional extra CA file. Credentials
in the URL are used (HTTP Basic, FTP login) and never logged (`Location.display`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ftplib
import os
import shutil
import ssl
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

SCHEMES = ("ftp", "http", "https")
CHUNK = 64 * 1024
MiB = 2**20
T = TypeVar("T")


class TransferError(Exception):
    """A transfer failed; the message says why, without credentials. `kind`: "permission"
    (the server refused our credentials or access), "unsupported" (the server does not
    do the operation) or "failed" (anything else)."""

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


class TransferCancelled(TransferError):
    """The transfer was cancelled (a newer request replaced it)."""


@dataclass(frozen=True, slots=True)
class TransferOptions:
    timeout: float = 60.0  # s per network operation (connect, each read or write)
    max_bytes: int = 512 * MiB  # the largest file a download may bring
    reserve_bytes: int = 32 * MiB  # free space a download must leave on the disk
    ca_file: Path | None = None  # extra CA certificates (PEM) for HTTPS servers
    max_upload_bytes: int = 64 * MiB


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed transfer URL. `user` and `password` never appear in `display`."""

    scheme: str
    host: str
    port: int | None
    path: str  # still percent-encoded
    query: str = ""
    user: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def display(self) -> str:
        """The URL without credentials, for logs and messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port is None else f"{host}:{self.port}"
        return urlunsplit((self.scheme, netloc, self.path, self.query, ""))

    @property
    def file_name(self) -> str:
        """The last path segment, decoded ("" for a directory)."""
        return unquote(self.path.rsplit("/", 1)[-1])

    def joined(self, name: str) -> Location:
        """This location as a directory, with `name` appended."""
        path = self.path if self.path.endswith("/") else self.path + "/"
        return Location(
            self.scheme, self.host, self.port, path + quote(name), "", self.user, self.password
        )


def parse_location(url: str) -> Location:
    """The location in `url`; ValueError saying why it cannot be used."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise ValueError(f"not a usable URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unsupported scheme {scheme or '(none)'!r}: use ftp, http or https")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if any(ord(c) < 0x20 for c in url):
        raise ValueError("the URL contains control characters")
    return Location(
        scheme,
        parts.hostname,
        port,
        parts.path,
        parts.query,
        unquote(parts.username or ""),
        unquote(parts.password or ""),
    )


# --- running in a thread -------------------------------------------------------------------


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking `fn` in its own daemon thread. Not the default executor: the process
    must be able to exit (or exec itself for a reset) while a transfer hangs."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as e:  # handed to the awaiting task
            result, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="evsed-transfer", daemon=True).start()
    return await future


# --- downloads -----------------------------------------------------------------------------


def download(
    url: str,
    dest: Path,
    options: TransferOptions,
    cancel: threading.Event | None = None,
) -> int:
    """Fetch `url` into `dest` (written as dest.part, fsynced, then renamed); the size.
    Raises TransferError."""
    location = _location(url)
    if not location.file_name and location.scheme == "ftp":
        raise TransferError(f"{location.display} names no file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with open(part, "wb") as out:
            sink = _Sink(out, dest.parent, options, cancel)
            if location.scheme == "ftp":
                _ftp_download(location, sink, options)
            else:
                _http_download(location, sink, options)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, dest)
    except TransferError:
        _unlink(part)
        raise
    except (OSError, EOFError, ftplib.Error, ValueError) as e:
        _unlink(part)
        raise TransferError(f"{location.display}: {_reason(e)}", _kind(e)) from None
    except BaseException:
        _unlink(part)
        raise
    return sink.written


class _Sink:
    """Writes chunks of a download, enforcing the size limit, free space and cancellation."""

    def __init__(
        self, out: Any, directory: Path, options: TransferOptions, cancel: threading.Event | None
    ) -> None:
        self.out = out
        self.directory = directory
        self.options = options
        self.cancel = cancel
        self.written = 0
        self._checked_at = 0

    def expect(self, size: int | None) -> None:
        """The server announced the size: refuse at once what cannot fit."""
        if size is None:
            return
        if size > self.options.max_bytes:
            raise TransferError(
                f"file of {size} bytes exceeds the limit of {self.options.max_bytes} bytes"
            )
        free = shutil.disk_usage(self.directory).free
        if free - size < self.options.reserve_bytes:
            raise TransferError(f"not enough free space for {size} bytes ({free} free)")

    def write(self, chunk: bytes) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise TransferCancelled("cancelled")
        self.written += len(chunk)
        if self.written > self.options.max_bytes:
            raise TransferError(f"file exceeds the limit of {self.options.max_bytes} bytes")
        if self.written - self._checked_at >= 8 * MiB:
            self._checked_at = self.written
            if shutil.disk_usage(self.directory).free < self.options.reserve_bytes:
                raise TransferError("the disk is nearly full")
        self.out.write(chunk)


def _http_download(location: Location, sink: _Sink, options: TransferOptions) -> None:
    request = urllib.request.Request(location.display, headers=_auth_header(location))
    with _opener(options).open(request, timeout=options.timeout) as response:
        length = response.headers.get("Content-Length")
        sink.expect(int(length) if length and length.isdigit() else None)
        while chunk := response.read(CHUNK):
            sink.write(chunk)


def _ftp_download(location: Location, sink: _Sink, options: TransferOptions) -> None:
    with _ftp(location, options) as ftp:
        path = _ftp_path(location)
        ftp.voidcmd("TYPE I")
        size = None
        with contextlib.suppress(ftplib.Error):
            size = ftp.size(path)
        sink.expect(size)
        ftp.retrbinary(f"RETR {path}", sink.write, blocksize=CHUNK)


# --- uploads -------------------------------------------------------------------------------


def upload(
    url: str,
    source: Path,
    options: TransferOptions,
    cancel: threading.Event | None = None,
) -> str:
    """Deliver `source` to the location (a directory) under its own name; returns where it
    went (without credentials). Raises TransferError."""
    location = _location(url)
    try:
        size = source.stat().st_size
        if size > options.max_upload_bytes:
            raise TransferError(f"{source.name} is larger than {options.max_upload_bytes} bytes")
        if cancel is not None and cancel.is_set():
            raise TransferCancelled("cancelled")
        if location.scheme == "ftp":
            return _ftp_upload(location, source, options)
        return _http_upload(location, source, options)
    except TransferError:
        raise
    except (OSError, EOFError, ftplib.Error, ValueError) as e:
        raise TransferError(f"{location.display}: {_reason(e)}", _kind(e)) from None


def _ftp_upload(location: Location, source: Path, options: TransferOptions) -> str:
    with _ftp(location, options) as ftp:
        directory = _ftp_path(location)
        if directory:
            ftp.cwd(directory)
        with open(source, "rb") as f:
            ftp.storbinary(f"STOR {source.name}", f, blocksize=CHUNK)
    return location.joined(source.name).display


def _http_upload(location: Location, source: Path, options: TransferOptions) -> str:
    data = source.read_bytes()
    boundary = uuid.uuid4().hex
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="file"; filename="{source.name}"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n",
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    headers = _auth_header(location) | {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    post = urllib.request.Request(location.display, data=body, headers=headers, method="POST")
    try:
        with _opener(options).open(post, timeout=options.timeout) as response:
            response.read()
        return location.display
    except urllib.error.HTTPError as e:
        if e.code not in (405, 501):
            raise
    target = location.joined(source.name)
    headers = _auth_header(location) | {"Content-Type": "application/octet-stream"}
    put = urllib.request.Request(target.display, data=data, headers=headers, method="PUT")
    with _opener(options).open(put, timeout=options.timeout) as response:
        response.read()
    return target.display


# --- shared --------------------------------------------------------------------------------


def _location(url: str) -> Location:
    try:
        return parse_location(url)
    except ValueError as e:
        raise TransferError(str(e)) from None


def _auth_header(location: Location) -> dict[str, str]:
    if not location.user:
        return {}
    token = f"{location.user}:{location.password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(token).decode()}


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's CA certificates, plus `ca_file` if given; hostnames are checked."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def _opener(options: TransferOptions) -> urllib.request.OpenerDirector:
    try:
        context = tls_context(options.ca_file)
    except (OSError, ssl.SSLError) as e:
        raise TransferError(f"cannot load the CA file {options.ca_file}: {_reason(e)}") from None
    # No proxies from the environment: a station talks to the location it was given.
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=context),
        _SameOriginRedirects(),
    )


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects only within the origin the CSMS named: urllib would otherwise carry the
    location's credentials to any host, and follow https:// down to http://."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            raise urllib.error.HTTPError(
                req.full_url, code, "redirect to another origin refused", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _FTP(ftplib.FTP):
    """Passive mode; the data connection goes to the control connection's host, never
    to an address the server names (which a hostile server could point anywhere)."""

    trust_server_pasv_ipv4_address = False


@contextlib.contextmanager
def _ftp(location: Location, options: TransferOptions) -> Any:
    ftp = _FTP(timeout=options.timeout)
    try:
        ftp.connect(location.host, location.port or 21)
        ftp.login(location.user or "anonymous", location.password or "anonymous@")
        ftp.set_pasv(True)
        yield ftp
        with contextlib.suppress(OSError, EOFError, ftplib.Error):
            ftp.quit()
    finally:
        ftp.close()


def _ftp_path(location: Location) -> str:
    """The URL path relative to the login directory (RFC 1738); %2F makes it absolute."""
    return unquote(location.path[1:] if location.path.startswith("/") else location.path)


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return _reason(e.reason) if isinstance(e.reason, BaseException) else str(e.reason)
    text = str(e) or type(e).__name__
    return text[:200]


def _kind(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        if e.code in (401, 403):
            return "permission"
        if e.code in (405, 501):
            return "unsupported"
    if isinstance(e, ftplib.error_perm):
        code = str(e)[:3]
        if code in ("530", "532"):
            return "permission"
        if code in ("500", "502", "504"):
            return "unsupported"
    return "failed"


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
