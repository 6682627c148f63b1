"""Real file servers on loopback for the transfer tests: HTTP and HTTPS (http.server in a
thread) and FTP (pyftpdlib in a thread), plus the certificates they and the firmware
signing tests need (a test CA, a server certificate, a manufacturer root and a
signing certificate), all made with `cryptography` at test time."""

from __future__ import annotations

import base64
import hashlib
import http.server
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# --- certificates ----------------------------------------------------------------------------


@dataclass
class Issued:
    certificate: x509.Certificate
    key: Any

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def issue(
    name: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    key_type: str = "ec",
    server: bool = False,
    code_signing: bool = False,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Issued:
    """A certificate for `name`, self-signed when `issuer` is None."""
    key: Any = (
        ec.generate_private_key(ec.SECP256R1())
        if key_type == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
    if code_signing:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def sign_file(data: bytes, signer: Issued) -> str:
    """The base64 signature over `data` (SHA-256; ECDSA or RSA PKCS#1 v1.5)."""
    digest = hashlib.sha256(data).digest()
    prehashed = utils.Prehashed(hashes.SHA256())
    if isinstance(signer.key, rsa.RSAPrivateKey):
        signature = signer.key.sign(digest, padding.PKCS1v15(), prehashed)
    else:
        signature = signer.key.sign(digest, ec.ECDSA(prehashed))
    return base64.b64encode(signature).decode()


@dataclass
class TestTls:
    ca_file: Path  # the CA the station must be told about
    server_context: ssl.SSLContext


def make_tls(directory: Path) -> TestTls:
    ca = issue("evsed test CA", ca=True)
    server = issue("localhost", ca, server=True)
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "test-ca.pem"
    ca_file.write_text(ca.pem)
    cert_file, key_file = directory / "server.pem", directory / "server-key.pem"
    cert_file.write_text(server.pem)
    key_file.write_bytes(server.key_pem())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return TestTls(ca_file, context)


# --- HTTP(S) -------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpFileServer:
    """Serves `files` (path -> bytes) to GET; stores POSTed multipart files and PUT bodies
    in `uploads` (file name -> bytes). `status` forces an answer for a path; `post_allowed`
    False answers POST with 405 (the client should PUT instead)."""

    tls: ssl.SSLContext | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    requests: list[HttpRequest] = field(default_factory=list)
    post_allowed: bool = True
    refuse_all_uploads: int | None = None  # an HTTP status for every upload
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location (302)
    on_request: Callable[[HttpRequest], None] | None = None

    def __post_init__(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                logging.getLogger("test.http").debug(format, *args)

            def _record(self) -> HttpRequest:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = HttpRequest(self.command, self.path, dict(self.headers), body)
                server.requests.append(request)
                if server.on_request is not None:
                    server.on_request(request)
                return request

            def _answer(self, code: int, body: bytes = b"") -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                request = self._record()
                if request.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[request.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif request.path in server.status:
                    self._answer(server.status[request.path])
                elif request.path in server.files:
                    self._answer(200, server.files[request.path])
                else:
                    self._answer(404)

            def do_POST(self) -> None:
                request = self._record()
                if server.refuse_all_uploads is not None:
                    self._answer(server.refuse_all_uploads)
                    return
                if not server.post_allowed:
                    self._answer(405)
                    return
                name, content = _multipart_file(request)
                server.uploads[name] = content
                self._answer(201)

            def do_PUT(self) -> None:
                request = self._record()
                if server.refuse_all_uploads is not None:
                    self._answer(server.refuse_all_uploads)
                    return
                server.uploads[request.path.rsplit("/", 1)[-1]] = request.body
                self._answer(201)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = "localhost" if self.tls is not None else "127.0.0.1"
        return f"{scheme}://{host}:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HttpFileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _multipart_file(request: HttpRequest) -> tuple[str, bytes]:
    content_type = request.headers.get("Content-Type", "")
    boundary = content_type.split("boundary=", 1)[1].encode()
    for part in request.body.split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            name = head.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()
            return name, content.removesuffix(b"\r\n")
    raise AssertionError("no file part in the multipart body")


# --- FTP -------------------------------------------------------------------------------------


class FtpFileServer:
    """pyftpdlib on loopback: user "evse" / "secret" with its home at `root`."""

    USER, PASSWORD = "evse", "secret"

    def __init__(self, root: Path) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import ThreadedFTPServer

        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        authorizer = DummyAuthorizer()
        authorizer.add_user(self.USER, self.PASSWORD, str(root), perm="elradfmw")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
        handler.auth_failed_timeout = 0  # type: ignore[attr-defined]  # no 3 s penalty
        self._server = ThreadedFTPServer(("127.0.0.1", 0), handler)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # Closed by the serving thread itself: close_all() from another thread races the
        # poll loop (an unhandled exception in the thread).
        while not self._stop.is_set():
            self._server.serve_forever(timeout=0.05, blocking=False)
        self._server.close_all()

    def url(self, path: str = "/", user: str = USER, password: str = PASSWORD) -> str:
        port = self._server.address[1]
        return f"ftp://{user}:{password}@127.0.0.1:{port}{path}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def __enter__(self) -> FtpFileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
