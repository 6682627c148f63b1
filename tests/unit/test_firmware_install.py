"""controller.firmware_install: the command installer and the A/B updater hand-over
(stage a bundle, read the updater's result.json for that bundle, once)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from controller.firmware_install import CommandInstaller, InstallError, UpdaterInstaller
from controller.update import Layout, build_bundle, prepare_work_dir


def make_bundle(directory: Path, version: str = "9.9.9") -> Path:
    wheels = directory / "wheels"
    wheels.mkdir(parents=True)
    (wheels / f"evsed-{version}-py3-none-any.whl").write_bytes(b"not really a wheel")
    return build_bundle(wheels, directory / "bundle.tar", version)


def test_the_command_installer(tmp_path: Path) -> None:
    file = tmp_path / "fw.bin"
    file.write_bytes(b"x")
    marker = tmp_path / "installed"
    script = f"import shutil, sys; shutil.copy(sys.argv[1], {str(marker)!r})"
    installer = CommandInstaller([sys.executable, "-c", script, "{file}"])

    async def main() -> None:
        memo = await installer.begin(file)
        outcome = await installer.run(file, memo)
        assert outcome.installed, outcome.detail
        assert marker.read_bytes() == b"x"

    asyncio.run(main())


def test_a_failing_command(tmp_path: Path) -> None:
    file = tmp_path / "fw.bin"
    file.write_bytes(b"x")

    async def main() -> None:
        failing = CommandInstaller([sys.executable, "-c", "raise SystemExit(3)", "{file}"])
        outcome = await failing.run(file, await failing.begin(file))
        assert not outcome.installed and "exited with 3" in outcome.detail
        missing = CommandInstaller([str(tmp_path / "no-such-program"), "{file}"])
        outcome = await missing.run(file, {})
        assert not outcome.installed and "cannot run" in outcome.detail
        slow = CommandInstaller([sys.executable, "-c", "import time; time.sleep(30)"], 0.2)
        outcome = await slow.run(file, {})
        assert not outcome.installed and "ran over" in outcome.detail
        interrupted = await failing.outcome({"installer": "command"}, None)
        assert not interrupted.installed and "interrupted" in interrupted.detail
        with pytest.raises(InstallError):
            await CommandInstaller([]).begin(file)

    asyncio.run(main())


def test_the_updater_installer_stages_and_reads_its_result(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "build")
    root = tmp_path / "root"
    layout = Layout(root)
    prepare_work_dir(layout)  # the updater's, made by root at the first install
    installer = UpdaterInstaller(root, wait_s=10, poll_s=0.01)

    async def main() -> None:
        memo = await installer.begin(bundle)
        assert memo["version"] == "9.9.9"
        task = asyncio.ensure_future(installer.run(bundle, memo))
        while not layout.staged.exists():
            await asyncio.sleep(0.01)
        # an older result of the same version does not count
        old = {"job": "old", "version": "9.9.9", "outcome": "installed", "detail": ""}
        layout.result_file.write_text(
            json.dumps(old | {"finished_at": "2000-01-01T00:00:00+00:00"})
        )
        await asyncio.sleep(0.05)
        assert not task.done()
        new = {"job": "j1", "version": "9.9.9", "outcome": "rolled_back", "detail": "unhealthy"}
        layout.result_file.write_text(json.dumps(new | {"finished_at": memo["staged_at"]}))
        outcome = await task
        assert (outcome.installed, outcome.job) == (False, "j1")
        assert "rolled_back" in outcome.detail
        # after a restart the same job is not reported again; a newer one is
        pending = asyncio.ensure_future(installer.outcome(memo, "j1"))
        await asyncio.sleep(0.05)
        assert not pending.done()
        done = {"job": "j2", "version": "9.9.9", "outcome": "installed", "detail": "slot b"}
        layout.result_file.write_text(json.dumps(done | {"finished_at": memo["staged_at"]}))
        assert (await pending).installed

    asyncio.run(main())
    assert layout.staged.exists()  # handed over for the updater


def test_the_updater_installer_reads_the_result_an_older_updater_left_in_the_inbox(
    tmp_path: Path,
) -> None:
    """The upgrade to this release was run by the previous release's updater, which
    wrote result.json into the inbox; the new location wins when both are there."""
    root = tmp_path / "root"
    layout = Layout(root)
    installer = UpdaterInstaller(root, wait_s=10, poll_s=0.01)
    memo = {"version": "9.9.9", "staged_at": "2030-01-01T00:00:00+00:00"}
    result = {"version": "9.9.9", "detail": "", "finished_at": memo["staged_at"]}
    layout.inbox.mkdir(parents=True)
    layout.legacy_result_file.write_text(
        json.dumps(result | {"job": "old", "outcome": "installed"})
    )
    outcome = asyncio.run(installer.outcome(memo, None))
    assert (outcome.installed, outcome.job) == (True, "old")

    prepare_work_dir(layout)
    layout.result_file.write_text(json.dumps(result | {"job": "new", "outcome": "rolled_back"}))
    outcome = asyncio.run(installer.outcome(memo, None))
    assert (outcome.installed, outcome.job) == (False, "new")
    layout.result_file.unlink()
    os.mkfifo(layout.result_file)  # unusable (and never waited on): the other one
    assert asyncio.run(installer.outcome(memo, None)).job == "old"


def test_the_updater_installer_refuses_what_is_no_bundle(tmp_path: Path) -> None:
    file = tmp_path / "fw.bin"
    file.write_bytes(b"plain firmware image")
    with pytest.raises(InstallError, match="not a tar bundle"):
        asyncio.run(UpdaterInstaller(tmp_path / "root").begin(file))


def test_the_updater_installer_gives_up_waiting(tmp_path: Path) -> None:
    installer = UpdaterInstaller(tmp_path / "root", wait_s=0, poll_s=0.01)
    memo = {"version": "9.9.9", "staged_at": "2000-01-01T00:00:00+00:00"}
    outcome = asyncio.run(installer.outcome(memo, None))
    assert not outcome.installed and "no outcome" in outcome.detail
