"""A/B updates: install into the other slot, confirm or roll back, survive a power cut anywhere."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socketserver
import stat
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from controller import update
from controller.update import (
    INSTALL_FAILED,
    INSTALLED,
    ROLLED_BACK,
    BundleError,
    Layout,
    Release,
    Result,
    ServiceHealth,
    UpdateError,
    Updater,
    add_parser,
    base_python,
    build_bundle,
    install_first,
    main,
    prepare_work_dir,
    read_bundle,
    slot_of,
    stage,
    status_lines,
)

# --- wheels and bundles -------------------------------------------------------------------


def make_wheel(
    out_dir: Path, name: str, version: str, *, requires: str = "", console: bool = False
) -> Path:
    """A minimal pure-Python wheel, written by hand (no build backend, no network)."""
    dist = name.replace("-", "_")
    module = f"{dist}_code"
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires:
        metadata += f"Requires-Dist: {requires}\n"
    files = {
        f"{module}.py": f"def main():\n    print('{name} {version}')\n",
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    if console:
        files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{name} = {module}:main\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


def make_bundle(tmp: Path, version: str, *, gz: bool = False) -> Path:
    wheels = tmp / f"wheels-{version}"
    make_wheel(wheels, "evsed", version, requires="evsed-tinydep", console=True)
    make_wheel(wheels, "evsed-tinydep", "1.0")
    return build_bundle(wheels, tmp / f"evsed-{version}.tar{'.gz' if gz else ''}", version)


def raw_bundle(path: Path, members: dict[str, bytes], *, link: str | None = None) -> Path:
    """A tar with exactly these members (no validation), plus a symlink member if asked."""
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo("wheels/link.whl")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    return path


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
DAEMON_UID = 65534  # "nobody" standing in for the daemon's user, evsed
RELEASE_JSON = json.dumps({"version": "9.0", "evsed_wheel": "evsed-9.0-py3-none-any.whl"}).encode()
WHEEL_MEMBER = {"wheels/evsed-9.0-py3-none-any.whl": b"not really a wheel"}


# --- fakes ---------------------------------------------------------------------------------


class PowerCut(BaseException):
    """Stops the updater dead, like pulling the plug (not caught as an error)."""


class FakeInstall:
    """Writes what an install leaves behind (bin/evsed) and checks where it is asked to."""

    def __init__(self, layout: Layout, fail: str = "", cut: bool = False) -> None:
        self.layout, self.fail, self.cut = layout, fail, cut
        self.calls: list[tuple[str, str]] = []

    def __call__(self, slot_dir: Path, wheels_dir: Path, release: Release) -> None:
        assert slot_dir.name != slot_of(self.layout.current), "installing over the running slot"
        assert (wheels_dir / release.evsed_wheel).is_file()
        self.calls.append((slot_dir.name, release.version))
        shutil.rmtree(slot_dir, ignore_errors=True)  # like venv --clear
        if self.cut:
            raise PowerCut("during install")
        if self.fail:
            raise UpdateError(self.fail)
        (slot_dir / "bin").mkdir(parents=True)
        (slot_dir / "bin/evsed").write_text(release.version)


class FakeStation:
    """restart() starts whatever `current` points at; healthy() judges that release."""

    def __init__(self, layout: Layout, bad: tuple[str, ...] = ()) -> None:
        self.layout, self.bad = layout, set(bad)
        self.restarts = 0
        self.running = self._current_version()  # what systemd started at boot

    def _current_version(self) -> str | None:
        slot = slot_of(self.layout.current)
        return None if slot is None else (self.layout.slot(slot) / "bin/evsed").read_text()

    def restart(self) -> None:
        assert_current_complete(self.layout)
        self.running = self._current_version()
        self.restarts += 1

    def healthy(self, deadline: float) -> tuple[bool, str]:
        if self.running in self.bad:
            return False, "BootNotification not Accepted within 120 s (last: Rejected)"
        return True, "active, BootNotification Accepted"


def updater(
    layout: Layout,
    install: FakeInstall,
    station: FakeStation,
    step: Callable[[str], None] | None = None,
) -> Updater:
    return Updater(
        layout, install=install, restart=station.restart, healthy=station.healthy, step=step
    )


def cut_at(name: str) -> Callable[[str], None]:
    def step(step_name: str) -> None:
        if step_name == name:
            raise PowerCut(name)

    return step


def assert_current_complete(layout: Layout) -> None:
    assert layout.current.is_symlink()
    slot = slot_of(layout.current)
    assert slot in ("a", "b")
    assert (layout.current / "bin/evsed").is_file()
    assert (layout.current / "release.json").is_file()


def result_json(layout: Layout) -> dict[str, str]:
    data = json.loads(layout.result_file.read_text())
    assert isinstance(data, dict)
    return data


def assert_idle(layout: Layout) -> None:
    """Nothing pending: no state, no bundle in hand, no unpacked leftovers."""
    assert not os.path.lexists(layout.state_file)
    assert not os.path.lexists(layout.applying)
    assert not os.path.lexists(layout.staged)
    assert not os.path.lexists(layout.taking)
    assert [p.name for p in layout.work_dir.iterdir()] in ([], ["result.json"])
    assert list(layout.base.glob(".*.new")) == []


def tree(path: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """A device with release 1.0 installed in slot a."""
    layout = Layout(tmp_path / "root")
    install_first(make_bundle(tmp_path, "1.0"), layout, FakeInstall(layout))
    return layout


# --- first install -------------------------------------------------------------------------


def test_first_install_goes_to_slot_a(layout: Layout) -> None:
    assert os.readlink(layout.current) == "releases/a"
    assert os.readlink(layout.confirmed) == "releases/a"
    assert_current_complete(layout)
    info = json.loads((layout.slot("a") / "release.json").read_text())
    assert (info["version"], info["evsed_wheel"]) == ("1.0", "evsed-1.0-py3-none-any.whl")


def test_first_install_from_a_wheel_directory(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "root")
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "evsed", "1.5", console=True)
    assert install_first(wheels, layout, FakeInstall(layout)).version == "1.5"
    assert slot_of(layout.current) == "a"


def test_first_install_refuses_when_already_installed(layout: Layout, tmp_path: Path) -> None:
    with pytest.raises(UpdateError, match="already installed"):
        install_first(make_bundle(tmp_path, "2.0"), layout, FakeInstall(layout))
    assert slot_of(layout.current) == "a"


# --- apply -------------------------------------------------------------------------------


def test_apply_switches_to_the_other_slot_and_records_installed(
    layout: Layout, tmp_path: Path
) -> None:
    install, station = FakeInstall(layout), FakeStation(layout)
    stage(make_bundle(tmp_path, "2.0"), layout)

    [result] = updater(layout, install, station).apply()

    assert (result.outcome, result.version) == (INSTALLED, "2.0")
    assert install.calls == [("b", "2.0")]
    assert station.restarts == 1 and station.running == "2.0"
    assert slot_of(layout.current) == slot_of(layout.confirmed) == "b"
    assert result_json(layout)["outcome"] == INSTALLED
    assert result_json(layout)["version"] == "2.0"
    assert_idle(layout)

    stage(make_bundle(tmp_path, "3.0", gz=True), layout)  # the next one goes back to a
    [result] = updater(layout, install, station).apply()
    assert result.ok and slot_of(layout.current) == "a"
    assert "current: a (3.0)" in status_lines(layout)
    assert "other: b (2.0)" in status_lines(layout)


def test_unhealthy_release_rolls_back_and_leaves_the_previous_slot_untouched(
    layout: Layout, tmp_path: Path
) -> None:
    before = tree(layout.slot("a"))
    station = FakeStation(layout, bad=("2.0",))
    stage(make_bundle(tmp_path, "2.0"), layout)

    [result] = updater(layout, FakeInstall(layout), station).apply()

    assert result.outcome == ROLLED_BACK
    assert "BootNotification not Accepted within 120 s" in result.detail
    assert result_json(layout)["detail"] == result.detail
    assert slot_of(layout.current) == slot_of(layout.confirmed) == "a"
    assert station.running == "1.0" and station.restarts == 2
    assert tree(layout.slot("a")) == before
    assert_idle(layout)


def test_install_failure_leaves_current_untouched(layout: Layout, tmp_path: Path) -> None:
    station = FakeStation(layout)
    stage(make_bundle(tmp_path, "2.0"), layout)

    [result] = updater(layout, FakeInstall(layout, fail="pip install failed"), station).apply()

    assert (result.outcome, result.detail) == (INSTALL_FAILED, "pip install failed")
    assert slot_of(layout.current) == "a" and station.restarts == 0
    assert "other: b (empty or incomplete)" in status_lines(layout)
    assert_idle(layout)


def test_staged_bundle_is_consumed_exactly_once(layout: Layout, tmp_path: Path) -> None:
    install, station = FakeInstall(layout), FakeStation(layout)
    stage(make_bundle(tmp_path, "2.0"), layout)
    assert len(updater(layout, install, station).apply()) == 1
    recorded = layout.result_file.read_text()

    assert updater(layout, install, station).apply() == []
    assert updater(layout, install, station).resume() is None
    assert install.calls == [("b", "2.0")] and station.restarts == 1
    assert layout.result_file.read_text() == recorded


def test_a_bundle_staged_twice_before_apply_installs_the_newest(
    layout: Layout, tmp_path: Path
) -> None:
    install = FakeInstall(layout)
    stage(make_bundle(tmp_path, "2.0"), layout)
    stage(make_bundle(tmp_path, "2.1"), layout)
    [result] = updater(layout, install, FakeStation(layout)).apply()
    assert result.version == "2.1" and install.calls == [("b", "2.1")]


# --- power cuts ----------------------------------------------------------------------------

HEALTHY_STEPS = ["taken", "installing", "installed", "trial", "switched", "restarted"]
HEALTHY_STEPS += ["confirmed", "recorded"]
UNHEALTHY_STEPS = ["taken", "installing", "installed", "trial", "switched", "restarted"]
UNHEALTHY_STEPS += ["rollback", "switched_back", "restarted_previous", "recorded"]


@pytest.mark.parametrize(
    ("step", "new_is_healthy"),
    [(s, True) for s in HEALTHY_STEPS] + [(s, False) for s in UNHEALTHY_STEPS],
)
@pytest.mark.parametrize("boot_runs", ["resume", "apply"])
def test_power_cut_at_any_step_ends_consistent(
    layout: Layout, tmp_path: Path, step: str, new_is_healthy: bool, boot_runs: str
) -> None:
    bad = () if new_is_healthy else ("2.0",)
    stage(make_bundle(tmp_path, "2.0"), layout)
    with pytest.raises(PowerCut):
        updater(layout, FakeInstall(layout), FakeStation(layout, bad), cut_at(step)).apply()
    assert_current_complete(layout)

    # The boot: systemd starts evsed from `current`, then the updater runs.
    install, station = FakeInstall(layout), FakeStation(layout, bad)
    boot = updater(layout, install, station)
    result = boot.resume() if boot_runs == "resume" else boot.apply()[0]

    expected = ("b", INSTALLED) if new_is_healthy else ("a", ROLLED_BACK)
    assert result is not None
    assert (slot_of(layout.current), result.outcome) == expected
    assert slot_of(layout.confirmed) == expected[0]
    assert result_json(layout)["outcome"] == expected[1]
    assert station.running == ("2.0" if new_is_healthy else "1.0")
    assert_current_complete(layout)
    assert_idle(layout)
    assert (slot_of(layout.current) == "a") == (not new_is_healthy)
    if step in ("taken", "installing", "installed"):
        assert install.calls == [("b", "2.0")]  # the interrupted install is done again
    else:
        assert install.calls == []
    assert updater(layout, install, station).apply() == []  # and nothing is left to do


def test_power_cut_during_the_health_check(layout: Layout, tmp_path: Path) -> None:
    stage(make_bundle(tmp_path, "2.0"), layout)
    station = FakeStation(layout)

    def dies(deadline: float) -> tuple[bool, str]:
        raise PowerCut("health check")

    cut = Updater(layout, install=FakeInstall(layout), restart=station.restart, healthy=dies)
    with pytest.raises(PowerCut):
        cut.apply()
    assert json.loads(layout.state_file.read_text())["phase"] == "trial"

    station = FakeStation(layout)
    result = updater(layout, FakeInstall(layout), station).resume()
    assert result is not None and result.ok
    assert station.restarts == 1  # a fresh restart, a fresh deadline
    assert_idle(layout)


def test_power_cut_after_recording_a_failed_install(layout: Layout, tmp_path: Path) -> None:
    stage(make_bundle(tmp_path, "2.0"), layout)
    failing = FakeInstall(layout, fail="pip install failed")
    with pytest.raises(PowerCut):
        updater(layout, failing, FakeStation(layout), cut_at("recorded")).apply()
    recorded = layout.result_file.read_text()

    install = FakeInstall(layout)
    result = updater(layout, install, FakeStation(layout)).resume()
    assert result is not None and result.outcome == INSTALL_FAILED
    assert install.calls == []  # recorded once, not retried
    assert layout.result_file.read_text() == recorded
    assert slot_of(layout.current) == "a"
    assert_idle(layout)


def test_an_install_that_keeps_crashing_is_dropped(layout: Layout, tmp_path: Path) -> None:
    stage(make_bundle(tmp_path, "2.0"), layout)
    for _ in range(3):
        with pytest.raises(PowerCut):
            updater(layout, FakeInstall(layout, cut=True), FakeStation(layout)).apply()
        assert_current_complete(layout)
    result = updater(layout, FakeInstall(layout), FakeStation(layout)).resume()
    assert result is not None and result.outcome == INSTALL_FAILED
    assert "interrupted 3 times" in result.detail
    assert slot_of(layout.current) == "a"
    assert_idle(layout)


def test_unreadable_state_returns_to_the_confirmed_release(layout: Layout) -> None:
    layout.state_file.write_text("{not json")
    result = updater(layout, FakeInstall(layout), FakeStation(layout)).resume()
    assert result is not None and result.outcome == ROLLED_BACK
    assert slot_of(layout.current) == "a"
    assert_idle(layout)


# --- bundle validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "link", "reason"),
    [
        ({"release.json": RELEASE_JSON, "../evil": b"x", **WHEEL_MEMBER}, None, "unsafe path"),
        ({"release.json": RELEASE_JSON, "wheels/../../evil": b"x"}, None, "unsafe path"),
        ({"release.json": RELEASE_JSON, "/tmp/evil": b"x"}, None, "unsafe path"),
        ({"release.json": RELEASE_JSON, **WHEEL_MEMBER}, "../../evil", "unexpected member"),
        ({"release.json": RELEASE_JSON, "setup.py": b"x", **WHEEL_MEMBER}, None, "unexpected"),
        (
            {"release.json": RELEASE_JSON, "systemd/ssh.service": b"x", **WHEEL_MEMBER},
            None,
            "unexp",
        ),
        (WHEEL_MEMBER, None, "release.json missing"),
        ({"release.json": b"[1]", **WHEEL_MEMBER}, None, "not a JSON object"),
        ({"release.json": RELEASE_JSON}, None, "lacks wheels/evsed-9.0"),
    ],
)
def test_bad_bundles_are_refused_on_stage_and_on_apply(
    layout: Layout,
    tmp_path: Path,
    members: dict[str, bytes],
    link: str | None,
    reason: str,
) -> None:
    bad = raw_bundle(tmp_path / "bad.tar", members, link=link)
    with pytest.raises(BundleError, match=reason):
        stage(bad, layout)
    assert not layout.staged.exists()

    layout.inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy(bad, layout.staged)  # bypassing stage(): apply checks again
    install, station = FakeInstall(layout), FakeStation(layout)
    [result] = updater(layout, install, station).apply()
    assert result.outcome == INSTALL_FAILED and reason in result.detail
    assert install.calls == [] and station.restarts == 0
    assert slot_of(layout.current) == "a"
    assert not list(tmp_path.rglob("evil"))
    assert_idle(layout)


def test_the_installer_files_in_a_bundle_are_accepted_and_ignored(tmp_path: Path) -> None:
    members = {
        "release.json": RELEASE_JSON,
        **WHEEL_MEMBER,
        "install.sh": b"#!/bin/sh\n",
        "evsed.example.toml": b"",
        "systemd/evsed.service": b"",
        "systemd/evsed-update.path": b"",
    }
    assert read_bundle(raw_bundle(tmp_path / "full.tar", members)).version == "9.0"


def test_not_a_tar_is_refused(layout: Layout, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(BundleError, match="not a tar bundle"):
        stage(junk, layout)


def test_build_bundle_needs_the_evsed_wheel_of_that_version(tmp_path: Path) -> None:
    make_wheel(tmp_path / "w", "evsed", "1.0")
    with pytest.raises(BundleError, match=r"evsed-2\.0-"):
        build_bundle(tmp_path / "w", tmp_path / "b.tar", "2.0")
    bundle = build_bundle(tmp_path / "w", tmp_path / "b.tar", "1.0")
    assert read_bundle(bundle) == Release("1.0", "evsed-1.0-py3-none-any.whl")


def test_stage_moves_a_bundle_written_into_incoming(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(update, "_as_root", lambda: False)  # as the daemon
    layout.incoming.mkdir(parents=True)  # the daemon downloads straight into incoming/
    downloaded = layout.incoming / "download.tar"
    shutil.copy(make_bundle(tmp_path, "2.0"), downloaded)
    assert stage(downloaded, layout) == layout.staged
    assert not downloaded.exists()
    assert read_bundle(layout.staged).version == "2.0"


def test_stage_as_root_copies_and_leaves_the_files_to_the_daemon(
    layout: Layout, tmp_path: Path
) -> None:
    state_dir = layout.inbox.parent
    state_dir.mkdir(parents=True)
    os.chown(state_dir, DAEMON_UID, DAEMON_UID)  # /var/lib/evsed is the daemon's
    layout.inbox.mkdir()
    os.chown(layout.inbox, DAEMON_UID, DAEMON_UID)
    os.chmod(layout.inbox, 0o700)
    layout.incoming.mkdir()
    os.chown(layout.incoming, DAEMON_UID, DAEMON_UID)
    downloaded = layout.incoming / "download.tar"
    shutil.copy(make_bundle(tmp_path, "2.0"), downloaded)

    assert stage(downloaded, layout) == layout.staged
    assert downloaded.exists()  # root copies, never moves
    staged = os.stat(layout.staged)
    assert (staged.st_uid, staged.st_gid, staged.st_mode & 0o777) == (DAEMON_UID, DAEMON_UID, 0o644)
    inbox = os.stat(layout.inbox)
    assert (inbox.st_uid, inbox.st_mode & 0o7777) == (DAEMON_UID, 0o700)  # untouched

    shutil.rmtree(layout.incoming)  # missing: root makes it, for the daemon
    stage(make_bundle(tmp_path, "2.1"), layout)
    incoming = os.stat(layout.incoming)
    assert (incoming.st_uid, incoming.st_gid) == (DAEMON_UID, DAEMON_UID)
    assert read_bundle(layout.staged).version == "2.1"


# --- the inbox (the daemon's) and the work area (root's) ----------------------------------

FORGED_RESULT = {"version": "2.0", "outcome": "installed", "detail": "forged"}
FORGED_RESULT |= {"finished_at": "2030-01-01T00:00:00+00:00"}
PLANTED = ["directory", "fifo", "symlink"] + (["foreign"] if os.geteuid() == 0 else [])


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail instead of hanging forever (on a FIFO opened for reading, say)."""

    def hung(signum: int, frame: object) -> None:
        raise PowerCut("hung")  # a BaseException: the updater does not catch it

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def plant(path: Path, kind: str, content: bytes) -> Path | None:
    """Put something other than root's regular file at `path`; the symlink's target."""
    if kind == "directory":
        path.mkdir()
        (path / "x").write_bytes(content)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        target = path.parent.parent / f"target-of-{path.name}"  # not in the same directory
        target.write_bytes(content)
        path.symlink_to(target)
        return target
    else:
        assert kind == "foreign"
        path.write_bytes(content)
        os.chown(path, DAEMON_UID, DAEMON_UID)
    return None


def snapshot(directory: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Modes, owners and contents of a directory and what is in it (not following links)."""
    out = {}
    for path in [directory, *sorted(directory.rglob("*"))]:
        st = os.lstat(path)
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
        out[str(path)] = (st.st_mode, st.st_uid, st.st_gid, data)
    return out


def test_the_work_area_is_roots_and_readable(layout: Layout, tmp_path: Path) -> None:
    st = os.lstat(layout.work_dir)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    assert st.st_uid == os.geteuid()
    assert not layout.inbox.exists()  # the daemon's: root does not make it

    fresh = Layout(tmp_path / "fresh")
    old = os.umask(0o077)  # a strict umask must not hide result.json from the daemon
    try:
        prepare_work_dir(fresh)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(fresh.work_dir).st_mode) == 0o755


@pytest.mark.parametrize(
    "how", ["symlink", "writable"] + (["foreign"] if os.geteuid() == 0 else [])
)
def test_an_unsafe_work_area_is_refused(
    layout: Layout, tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if how == "symlink":
        elsewhere = tmp_path / "elsewhere"
        layout.work_dir.rename(elsewhere)
        layout.work_dir.symlink_to(elsewhere)
    elif how == "writable":
        os.chmod(layout.work_dir, 0o777)
    else:
        os.chown(layout.work_dir, DAEMON_UID, DAEMON_UID)
    stage(make_bundle(tmp_path, "2.0"), layout)
    install, station = FakeInstall(layout), FakeStation(layout)

    with pytest.raises(UpdateError, match="refusing to update"):
        updater(layout, install, station).apply()
    with pytest.raises(UpdateError, match="refusing to update"):
        updater(layout, install, station).resume()
    assert main(["--root", str(layout.root), "apply"]) == 1
    assert "refusing to update" in capsys.readouterr().err
    assert install.calls == [] and station.restarts == 0
    assert layout.staged.exists() and slot_of(layout.current) == "a"


@needs_root
def test_a_symlinked_inbox_is_never_written_through(layout: Layout, tmp_path: Path) -> None:
    etc = tmp_path / "etc"  # stands in for /etc
    etc.mkdir(mode=0o755)
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.chmod(etc / "passwd", 0o644)
    shutil.copy(make_bundle(tmp_path, "2.0"), etc / "staged.tar")  # reachable through it
    (etc / "incoming").mkdir(mode=0o755)
    before = snapshot(etc)
    layout.inbox.parent.mkdir(parents=True)
    layout.inbox.symlink_to(etc)
    install, station = FakeInstall(layout), FakeStation(layout)

    with pytest.raises(UpdateError, match="not a directory"):
        stage(make_bundle(tmp_path, "3.0"), layout)  # as root
    assert updater(layout, install, station).apply() == []
    assert updater(layout, install, station).resume() is None
    assert "current: a (1.0)" in status_lines(layout)
    fresh = Layout(tmp_path / "fresh")  # a first install does not touch the inbox either
    fresh.inbox.parent.mkdir(parents=True)
    fresh.inbox.symlink_to(etc)
    install_first(make_bundle(tmp_path, "1.1"), fresh, FakeInstall(fresh))

    assert snapshot(etc) == before
    assert install.calls == [] and station.restarts == 0
    assert slot_of(layout.current) == "a"


@needs_root
def test_a_symlinked_incoming_is_never_written_through(layout: Layout, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    before = snapshot(elsewhere)
    layout.inbox.mkdir(parents=True)
    layout.incoming.symlink_to(elsewhere)
    with pytest.raises(UpdateError, match="not a directory"):
        stage(make_bundle(tmp_path, "2.0"), layout)
    assert snapshot(elsewhere) == before
    assert not os.path.lexists(layout.staged)


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink"])
def test_a_staged_thing_that_is_no_regular_file_is_refused(
    layout: Layout, tmp_path: Path, kind: str, no_hang: None
) -> None:
    layout.inbox.mkdir(parents=True)
    target = plant(layout.staged, kind, make_bundle(tmp_path, "2.0").read_bytes())
    install, station = FakeInstall(layout), FakeStation(layout)

    [result] = updater(layout, install, station).apply()

    assert result.outcome == INSTALL_FAILED
    assert "not a regular file" in result.detail or "cannot be opened" in result.detail
    assert install.calls == [] and slot_of(layout.current) == "a"
    assert target is None or read_bundle(target).version == "2.0"  # the link's target stays
    assert_idle(layout)


def test_a_staged_bundle_over_the_size_limit_is_refused(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage(make_bundle(tmp_path, "2.0"), layout)
    monkeypatch.setattr(update, "MAX_BUNDLE_FILE_BYTES", 1000)
    install = FakeInstall(layout)
    [result] = updater(layout, install, FakeStation(layout)).apply()
    assert result.outcome == INSTALL_FAILED and "too large" in result.detail
    assert install.calls == []
    assert_idle(layout)


def test_a_bundle_changed_after_it_was_taken_changes_nothing(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage(make_bundle(tmp_path, "2.0"), layout)
    kept = layout.inbox / "kept.tar"
    os.link(layout.staged, kept)  # the daemon keeps hold of the staged file (its inode)
    other = make_bundle(tmp_path, "6.6.6").read_bytes()
    changes: list[str] = []

    def change(when: str) -> None:
        with open(kept, "r+b") as f:  # the same file, rewritten in place
            f.write(other)
            f.truncate()
        changes.append(when)

    def step(name: str) -> None:
        if name == "taken":
            st = os.stat(layout.applying)
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600) or os.geteuid() != 0
            change("after the take")

    check = update._check_members

    def check_then_change(tar: tarfile.TarFile) -> None:
        check(tar)
        change("between the check and the extraction")

    monkeypatch.setattr(update, "_check_members", check_then_change)
    install = FakeInstall(layout)
    [result] = updater(layout, install, FakeStation(layout), step).apply()

    assert changes == ["after the take", "between the check and the extraction"]
    assert read_bundle(kept).version == "6.6.6"
    assert (result.outcome, result.version) == (INSTALLED, "2.0")
    assert install.calls == [("b", "2.0")]
    assert json.loads((layout.slot("b") / "release.json").read_text())["version"] == "2.0"
    assert_idle(layout)


def test_a_bundle_staged_while_one_is_taken_is_kept(layout: Layout, tmp_path: Path) -> None:
    newer = [make_bundle(tmp_path, "3.0")]

    def step(name: str) -> None:
        if name == "taken" and newer:
            stage(newer.pop(), layout)  # while 2.0 is in hand

    install = FakeInstall(layout)
    stage(make_bundle(tmp_path, "2.0"), layout)
    results = updater(layout, install, FakeStation(layout), step).apply()
    assert [(r.outcome, r.version) for r in results] == [(INSTALLED, "2.0"), (INSTALLED, "3.0")]
    assert_idle(layout)


@pytest.mark.parametrize("boot_runs", ["resume", "apply"])
def test_a_power_cut_while_taking_a_bundle(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, boot_runs: str
) -> None:
    stage(make_bundle(tmp_path, "2.0"), layout)
    os.rename(layout.staged, layout.taking)  # cut before the copy
    install = FakeInstall(layout)
    boot = updater(layout, install, FakeStation(layout))
    result = boot.resume() if boot_runs == "resume" else boot.apply()[0]
    assert result is not None and result.ok and install.calls == [("b", "2.0")]
    assert_idle(layout)

    copy_in = Updater._copy_in

    def copy_then_cut(self: Updater, src: int) -> str:
        assert copy_in(self, src) == ""
        raise PowerCut("after the copy, before taking.tar is removed")

    stage(make_bundle(tmp_path, "3.0"), layout)
    with monkeypatch.context() as m:
        m.setattr(Updater, "_copy_in", copy_then_cut)
        with pytest.raises(PowerCut):
            updater(layout, install, FakeStation(layout)).apply()
    assert layout.taking.exists() and layout.applying.exists()
    stage(make_bundle(tmp_path, "4.0"), layout)  # the daemon stages the next one
    boot = updater(layout, install, FakeStation(layout))
    results = [boot.resume()] if boot_runs == "resume" else boot.apply()
    assert [r.version for r in results if r] == (
        ["3.0"] if boot_runs == "resume" else ["3.0", "4.0"]
    )
    assert install.calls[1] == ("a", "3.0")  # installed once
    if boot_runs == "resume":
        assert updater(layout, install, FakeStation(layout)).apply()[0].version == "4.0"
    assert [c[1] for c in install.calls] == ["2.0", "3.0", "4.0"]
    assert_idle(layout)


FORGED_STATE = {"phase": "rollback", "job": "forged", "from": "a", "to": "b", "reason": "x"}


@pytest.mark.parametrize("kind", PLANTED)
def test_a_planted_state_file_is_not_trusted(
    layout: Layout, tmp_path: Path, kind: str, no_hang: None
) -> None:
    install = FakeInstall(layout)
    stage(make_bundle(tmp_path, "2.0"), layout)
    assert updater(layout, install, FakeStation(layout)).apply()[0].ok  # now b; a has 1.0
    plant(layout.state_file, kind, json.dumps(FORGED_STATE).encode())
    assert "in progress: state.json unreadable" in status_lines(layout)

    station = FakeStation(layout)
    result = updater(layout, install, station).resume()

    assert result is not None and result.outcome == ROLLED_BACK  # back to the confirmed one,
    assert "unreadable" in result.detail and result.job != "forged"
    assert slot_of(layout.current) == slot_of(layout.confirmed) == "b"  # which it still is
    assert station.restarts == 0
    assert_idle(layout)
    stage(make_bundle(tmp_path, "3.0"), layout)  # and updates go on
    assert updater(layout, install, station).apply()[0].ok


@pytest.mark.parametrize("kind", PLANTED)
def test_a_planted_result_file_is_not_trusted(
    layout: Layout, tmp_path: Path, kind: str, no_hang: None
) -> None:
    stage(make_bundle(tmp_path, "2.0"), layout)
    with pytest.raises(PowerCut):
        updater(layout, FakeInstall(layout), FakeStation(layout), cut_at("trial")).apply()
    job = json.loads(layout.state_file.read_text())["job"]
    forged = json.dumps({"job": job, **FORGED_RESULT}).encode()
    target = plant(layout.result_file, kind, forged)  # "already recorded", if trusted
    assert status_lines(layout)[-1] == "last result: none"

    station = FakeStation(layout)
    result = updater(layout, FakeInstall(layout), station).resume()

    assert result is not None and result.ok and result.detail != "forged"
    assert station.restarts == 1  # the trial was run, not skipped
    assert slot_of(layout.current) == slot_of(layout.confirmed) == "b"
    st = os.lstat(layout.result_file)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644
    assert st.st_uid == os.geteuid()
    assert result_json(layout)["job"] == job and result_json(layout)["detail"] != "forged"
    assert target is None or target.read_bytes() == forged  # replaced the link, not its target
    assert_idle(layout)


@pytest.mark.parametrize("kind", PLANTED)
def test_a_planted_applying_bundle_is_not_trusted(
    layout: Layout, tmp_path: Path, kind: str, no_hang: None
) -> None:
    plant(layout.applying, kind, make_bundle(tmp_path, "2.0").read_bytes())
    install = FakeInstall(layout)
    result = updater(layout, install, FakeStation(layout)).resume()
    assert result is not None and result.outcome == INSTALL_FAILED
    assert install.calls == [] and slot_of(layout.current) == "a"
    assert_idle(layout)


def test_the_new_slot_is_flushed_before_it_is_marked_complete(
    layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slot = layout.slot("b")
    events: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        update.os, "sync", lambda: events.append(("sync", (slot / "release.json").exists()))
    )
    write_json = update._write_json

    def write(path: Path, data: dict[str, object]) -> None:
        if path == slot / "release.json":
            events.append(("release.json", (slot / "bin/evsed").exists()))
        write_json(path, data)

    monkeypatch.setattr(update, "_write_json", write)
    stage(make_bundle(tmp_path, "2.0"), layout)
    assert updater(layout, FakeInstall(layout), FakeStation(layout)).apply()[0].ok
    assert events == [("sync", False), ("release.json", True)]


def test_apply_a_bundle_file_without_the_inbox(
    layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(tmp_path, "2.0")
    stage(make_bundle(tmp_path, "3.0"), layout)  # left to the path unit's run
    install = FakeInstall(layout)
    [result] = updater(layout, install, FakeStation(layout)).apply(bundle=bundle)
    assert (result.outcome, result.version) == (INSTALLED, "2.0")
    assert install.calls == [("b", "2.0")]
    assert bundle.exists() and read_bundle(layout.staged).version == "3.0"

    with pytest.raises(UpdateError, match="cannot open"):
        updater(layout, install, FakeStation(layout)).apply(bundle=tmp_path / "missing.tar")
    with pytest.raises(UpdateError, match="not a regular file"):
        updater(layout, install, FakeStation(layout)).apply(bundle=tmp_path)
    root = str(layout.root)
    assert main(["--root", root, "apply", "--bundle", str(tmp_path / "missing.tar")]) == 1
    assert "cannot open" in capsys.readouterr().err
    assert install.calls == [("b", "2.0")]


# --- the default health check ----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def scripted_health(
    clock: FakeClock,
    active: Callable[[float], str],
    registration: Callable[[float], str] | None,
) -> ServiceHealth:
    class Scripted(ServiceHealth):
        def _socket(self) -> Path | None:
            return None if registration is None else Path("/nowhere")

        def active_state(self) -> str:
            return active(clock.now)

        def registration(self, socket: Path) -> str:
            assert registration is not None
            return registration(clock.now)

    return Scripted(clock=clock, sleep=clock.sleep)


def test_health_never_active() -> None:
    clock = FakeClock()
    check = scripted_health(clock, lambda t: "failed", lambda t: "Accepted")
    assert check(120.0) == (False, "not active within 120 s (last: failed)")
    assert clock.now == 120.0


def test_health_active_but_boot_notification_not_accepted() -> None:
    clock = FakeClock()
    check = scripted_health(clock, lambda t: "active", lambda t: "Pending")
    assert check(120.0) == (False, "BootNotification not Accepted within 120 s (last: Pending)")


def test_health_confirms_once_accepted_for_the_settle_time() -> None:
    clock = FakeClock()
    check = scripted_health(
        clock, lambda t: "active", lambda t: "Accepted" if t >= 30 else "Pending"
    )
    ok, reason = check(120.0)
    assert ok and "Accepted" in reason
    assert 40.0 <= clock.now <= 41.0


def test_health_does_not_confirm_a_daemon_that_dies_after_ready() -> None:
    clock = FakeClock()
    check = scripted_health(clock, lambda t: "active" if t < 5 else "activating", None)
    assert check(120.0) == (False, "not active within 120 s (last: activating)")


def test_health_without_csms_needs_only_active() -> None:
    clock = FakeClock()
    check = scripted_health(clock, lambda t: "active", None)
    assert check(120.0) == (True, "active")


@pytest.fixture
def control_socket(tmp_path: Path) -> Iterator[Path]:
    """A stand-in daemon answering `state` on a Unix socket, as ControlServer does."""
    path = tmp_path / "c.sock"

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                assert json.loads(line)["cmd"] == "state"
                answer = {"ok": True, "result": {"ocpp": {"registration": "Accepted"}}}
                self.wfile.write(json.dumps(answer).encode() + b"\n")

    server = socketserver.UnixStreamServer(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_health_reads_registration_from_the_control_socket(control_socket: Path) -> None:
    check = ServiceHealth()
    assert check.registration(control_socket) == "Accepted"
    assert check.registration(control_socket.with_name("missing.sock")).startswith("no answer")


# --- command line --------------------------------------------------------------------------


def test_cli_stage_and_status(
    layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(layout.root)
    assert main(["--root", root, "stage", str(make_bundle(tmp_path, "2.0"))]) == 0
    assert capsys.readouterr().out == f"staged 2.0 at {layout.staged}\n"
    result = Result("j", "0.9", ROLLED_BACK, "back to slot a: x", "2026-01-01")
    layout.result_file.write_text(json.dumps(asdict(result)))
    assert main(["--root", root, "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["current: a (1.0)", "other: b (empty or incomplete)"]
    assert f"staged: {layout.staged}" in out
    assert out[-1] == "last result: rolled_back 0.9 at 2026-01-01: back to slot a: x"


def test_add_parser_wires_update_into_the_evsed_cli(layout: Layout) -> None:
    parser = argparse.ArgumentParser(prog="evsed")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["update", "--root", str(layout.root), "status"])
    assert args.func(args) == 0


def test_cli_exit_codes(layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(layout.root)
    assert main(["--root", root, "frobnicate"]) == 2
    assert main(["--root", root, "stage"]) == 2
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"junk")
    assert main(["--root", root, "stage", str(junk)]) == 1
    assert "update stage failed: not a tar bundle" in capsys.readouterr().err
    assert main(["--root", root, "install-first", str(junk)]) == 1


# --- the real default install ----------------------------------------------------------------


def _venv_works() -> bool:
    try:
        done = subprocess.run(
            [base_python(), "-c", "import venv, ensurepip"], capture_output=True, check=False
        )
    except OSError:
        return False
    return done.returncode == 0


@pytest.mark.skipif(not _venv_works(), reason="python -m venv (with ensurepip) is unavailable")
def test_real_install_creates_a_working_venv_offline(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "root")
    release = install_first(make_bundle(tmp_path, "0.0.1"), layout)  # the default pip_install

    assert release.version == "0.0.1"
    evsed = layout.current / "bin/evsed"
    done = subprocess.run([str(evsed)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "evsed 0.0.1"
    python = str(layout.current / "bin/python")
    check = [python, "-c", "import evsed_tinydep_code"]  # the dependency came from the bundle
    subprocess.run(check, check=True)
    assert "current: a (0.0.1)" in status_lines(layout)
