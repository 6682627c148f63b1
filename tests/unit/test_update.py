"""A/B updates: install into the other slot, confirm or roll back, survive a power cut anywhere."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import socketserver
import subprocess
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

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
    assert not layout.state_file.exists()
    assert not layout.applying.exists()
    assert not layout.staged.exists()
    assert list(layout.update_dir.glob("work-*")) == []
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
    layout.update_dir.mkdir(parents=True, exist_ok=True)
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


def test_stage_moves_a_bundle_written_into_incoming(layout: Layout, tmp_path: Path) -> None:
    layout.incoming.mkdir(exist_ok=True)  # the daemon downloads straight into incoming/
    downloaded = layout.incoming / "download.tar"
    shutil.copy(make_bundle(tmp_path, "2.0"), downloaded)
    assert stage(downloaded, layout) == layout.staged
    assert not downloaded.exists()
    assert read_bundle(layout.staged).version == "2.0"


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
