"""controller.transfer against real servers on loopback: HTTP, HTTPS (a test CA the
client is given), FTP (pyftpdlib); downloads, uploads, limits, refusals, cancellation."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from controller.transfer import (
    TransferCancelled,
    TransferError,
    TransferOptions,
    download,
    in_thread,
    parse_location,
    upload,
)
from tests.file_servers import FtpFileServer, HttpFileServer, make_tls

FIRMWARE = bytes(range(256)) * 1000  # 256 kB, more than one chunk


@pytest.fixture
def http_server():  # type: ignore[no-untyped-def]
    with HttpFileServer(files={"/fw/image.bin": FIRMWARE}) as server:
        yield server


# --- locations ---------------------------------------------------------------------------


def test_locations_keep_credentials_out_of_display() -> None:
    location = parse_location("ftp://user:p%40ss@example.com:2121/dir/fw.bin")
    assert (location.user, location.password) == ("user", "p@ss")
    assert location.display == "ftp://example.com:2121/dir/fw.bin"
    assert "p@ss" not in repr(location)
    assert location.file_name == "fw.bin"
    assert location.joined("x y.tar.gz").display == "ftp://example.com:2121/dir/fw.bin/x%20y.tar.gz"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "unsupported scheme"),
        ("sftp://host/x", "unsupported scheme"),
        ("http:///nohost", "no host"),
        ("http://host:99999/x", "not a usable URL"),
        ("no url at all", "unsupported scheme"),
        ("http://host/a\nb", "control characters"),
    ],
)
def test_unusable_locations_are_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_location(url)


# --- HTTP ----------------------------------------------------------------------------------


def test_http_download(http_server: HttpFileServer, tmp_path: Path) -> None:
    dest = tmp_path / "fw.bin"
    size = download(http_server.url + "/fw/image.bin", dest, TransferOptions(timeout=5))
    assert size == len(FIRMWARE)
    assert dest.read_bytes() == FIRMWARE
    assert not (tmp_path / "fw.bin.part").exists()


def test_http_basic_auth_from_the_url(http_server: HttpFileServer, tmp_path: Path) -> None:
    url = http_server.url.replace("http://", "http://ocpp:s%3Acret@") + "/fw/image.bin"
    download(url, tmp_path / "fw.bin", TransferOptions(timeout=5))
    # "ocpp:s:cret" in base64
    assert http_server.requests[-1].headers["Authorization"] == "Basic b2NwcDpzOmNyZXQ="


def test_redirects_stay_with_the_origin_the_csms_named(
    http_server: HttpFileServer, tmp_path: Path
) -> None:
    """Within the origin a redirect is followed; to another host it is refused, so the
    location's credentials never reach that host."""
    with HttpFileServer(files={"/fw.bin": b"elsewhere"}) as other:
        http_server.redirects = {"/moved": "/fw/image.bin", "/away": other.url + "/fw.bin"}
        base = http_server.url.replace("http://", "http://ocpp:secret@")
        download(base + "/moved", tmp_path / "a.bin", TransferOptions(timeout=5))
        assert (tmp_path / "a.bin").read_bytes() == FIRMWARE
        with pytest.raises(TransferError, match="another origin"):
            download(base + "/away", tmp_path / "b.bin", TransferOptions(timeout=5))
        assert other.requests == []


def test_http_404_is_an_error_and_leaves_no_file(
    http_server: HttpFileServer, tmp_path: Path
) -> None:
    with pytest.raises(TransferError, match="HTTP 404") as caught:
        download(http_server.url + "/missing.bin", tmp_path / "fw.bin", TransferOptions())
    assert caught.value.kind == "failed"
    assert list(tmp_path.iterdir()) == []


def test_http_403_is_a_permission_problem(http_server: HttpFileServer, tmp_path: Path) -> None:
    http_server.status["/fw/image.bin"] = 403
    with pytest.raises(TransferError) as caught:
        download(http_server.url + "/fw/image.bin", tmp_path / "fw.bin", TransferOptions())
    assert caught.value.kind == "permission"


def test_a_download_over_the_size_limit_is_refused(
    http_server: HttpFileServer, tmp_path: Path
) -> None:
    with pytest.raises(TransferError, match="exceeds the limit"):
        download(
            http_server.url + "/fw/image.bin", tmp_path / "fw.bin", TransferOptions(max_bytes=1000)
        )
    assert list(tmp_path.iterdir()) == []


def test_a_download_that_would_fill_the_disk_is_refused(
    http_server: HttpFileServer, tmp_path: Path
) -> None:
    options = TransferOptions(reserve_bytes=2**62)  # more than any disk has
    with pytest.raises(TransferError, match="not enough free space"):
        download(http_server.url + "/fw/image.bin", tmp_path / "fw.bin", options)


def test_a_cancelled_download_stops(http_server: HttpFileServer, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TransferCancelled):
        download(http_server.url + "/fw/image.bin", tmp_path / "fw.bin", TransferOptions(), cancel)
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_server_is_an_error(tmp_path: Path) -> None:
    with HttpFileServer() as server:
        url = server.url
    with pytest.raises(TransferError, match=r"127\.0\.0\.1"):
        download(url + "/x", tmp_path / "x", TransferOptions(timeout=2))


def test_http_upload_posts_multipart(http_server: HttpFileServer, tmp_path: Path) -> None:
    source = tmp_path / "evsed-CP-1-20260101T000000Z.tar.gz"
    source.write_bytes(b"archive bytes")
    where = upload(http_server.url + "/upload/", source, TransferOptions(timeout=5))
    assert where == http_server.url + "/upload/"
    assert http_server.uploads == {source.name: b"archive bytes"}
    assert [r.method for r in http_server.requests] == ["POST"]


def test_http_upload_falls_back_to_put(http_server: HttpFileServer, tmp_path: Path) -> None:
    http_server.post_allowed = False
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(b"archive bytes")
    where = upload(http_server.url + "/upload", source, TransferOptions(timeout=5))
    assert where == http_server.url + "/upload/diag.tar.gz"
    assert [(r.method, r.path) for r in http_server.requests] == [
        ("POST", "/upload"),
        ("PUT", "/upload/diag.tar.gz"),
    ]
    assert http_server.uploads == {"diag.tar.gz": b"archive bytes"}


def test_a_refused_upload_is_an_error(http_server: HttpFileServer, tmp_path: Path) -> None:
    http_server.refuse_all_uploads = 403
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(b"x")
    with pytest.raises(TransferError) as caught:
        upload(http_server.url + "/upload", source, TransferOptions(timeout=5))
    assert caught.value.kind == "permission"


# --- HTTPS ---------------------------------------------------------------------------------


def test_https_with_the_test_ca(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    with HttpFileServer(tls=tls.server_context, files={"/fw.bin": FIRMWARE}) as server:
        options = TransferOptions(timeout=5, ca_file=tls.ca_file)
        download(server.url + "/fw.bin", tmp_path / "fw.bin", options)
        assert (tmp_path / "fw.bin").read_bytes() == FIRMWARE
        source = tmp_path / "diag.tar.gz"
        source.write_bytes(b"secret diagnostics")
        upload(server.url + "/up/", source, options)
        assert server.uploads == {"diag.tar.gz": b"secret diagnostics"}


def test_https_refuses_a_server_it_cannot_verify(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    with HttpFileServer(tls=tls.server_context, files={"/fw.bin": FIRMWARE}) as server:
        with pytest.raises(TransferError, match="CERTIFICATE_VERIFY_FAILED"):
            download(server.url + "/fw.bin", tmp_path / "fw.bin", TransferOptions(timeout=5))
        assert not (tmp_path / "fw.bin").exists()


def test_a_missing_ca_file_is_an_error(http_server: HttpFileServer, tmp_path: Path) -> None:
    options = TransferOptions(ca_file=tmp_path / "nope.pem")
    with pytest.raises(TransferError, match="cannot load the CA file"):
        download(http_server.url + "/fw/image.bin", tmp_path / "fw.bin", options)


# --- FTP -----------------------------------------------------------------------------------


def test_ftp_download_and_upload(tmp_path: Path) -> None:
    with FtpFileServer(tmp_path / "ftp") as ftp:
        (ftp.root / "fw").mkdir()
        (ftp.root / "fw" / "image.bin").write_bytes(FIRMWARE)
        (ftp.root / "diag").mkdir()
        dest = tmp_path / "fw.bin"
        assert download(ftp.url("/fw/image.bin"), dest, TransferOptions(timeout=5)) == len(FIRMWARE)
        assert dest.read_bytes() == FIRMWARE
        where = upload(ftp.url("/diag/"), dest, TransferOptions(timeout=5))
        assert where.endswith("/diag/fw.bin") and "secret" not in where
        assert (ftp.root / "diag" / "fw.bin").read_bytes() == FIRMWARE


def test_ftp_missing_file_and_bad_login(tmp_path: Path) -> None:
    with FtpFileServer(tmp_path / "ftp") as ftp:
        with pytest.raises(TransferError, match="550"):
            download(ftp.url("/nope.bin"), tmp_path / "x", TransferOptions(timeout=5))
        with pytest.raises(TransferError) as caught:
            download(
                ftp.url("/x.bin", password="wrong"), tmp_path / "x", TransferOptions(timeout=5)
            )
        assert caught.value.kind == "permission"
        assert "wrong" not in str(caught.value)
        assert list(tmp_path.glob("x*")) == []


def test_ftp_size_limit(tmp_path: Path) -> None:
    with FtpFileServer(tmp_path / "ftp") as ftp:
        (ftp.root / "big.bin").write_bytes(FIRMWARE)
        with pytest.raises(TransferError, match="exceeds the limit"):
            download(ftp.url("/big.bin"), tmp_path / "x", TransferOptions(max_bytes=10))


# --- threads -------------------------------------------------------------------------------


def test_in_thread_returns_and_raises() -> None:
    async def main() -> tuple[int, str]:
        value = await in_thread(lambda a, b: a + b, 2, 3)
        try:
            await in_thread(int, "not a number")
        except ValueError as e:
            return value, str(e)
        raise AssertionError("no exception")

    value, error = asyncio.run(main())
    assert value == 5 and "not a number" in error
