"""Installing downloaded firmware: a pluggable step, chosen by `firmware.installer`.

* "update" (the device): the file must be an evsed release bundle; it is handed to the
  A/B updater (`controller.update.stage`, into its inbox /var/lib/evsed/update), whose
  root service installs it, restarts evsed and writes result.json in its own work
  area /var/lib/evsed-updater, which the daemon only reads. The outcome is read from
  there, by this run (an install that failed before any restart) or by the next one,
  for the bundle this station staged and only once. (A release from before that split
  wrote result.json into the inbox: the upgrade it ran is found there.)
* "command" (other boards, HIL rigs, tests): `firmware.install_command`, an argument
  list in which "{file}" stands for the downloaded file, runs to completion; exit
  status 0 means installed. A command that reboots the board never reports back: the
  next run reports the install as failed (interrupted), so a rebooting flasher should
  exit 0 first and reboot afterwards (e.g. `systemd-run --on-active=5 reboot`).

`begin` checks the file and returns what identifies the install; the caller persists
that before `run`, so `outcome` can find the result after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from controller.core.firmware import InstallOutcome, updater_outcome

log = logging.getLogger("evsed.firmware")

COMMAND_TIMEOUT_S = 30 * 60.0
UPDATER_WAIT_S = 30 * 60.0  # install, restart and health check of a release: minutes
UPDATER_POLL_S = 2.0


class InstallError(Exception):
    """The file cannot be installed (not a bundle, installer unusable)."""


class FirmwareInstaller(Protocol):
    async def begin(self, file: Path) -> dict[str, Any]:
        """Check `file`; what identifies this install (JSON), to be persisted before run."""

    async def run(self, file: Path, memo: dict[str, Any]) -> InstallOutcome:
        """Install `file`; returns the outcome (the process may be restarted first)."""

    async def outcome(self, memo: dict[str, Any], reported_job: str | None) -> InstallOutcome:
        """After a restart: the outcome of the install `memo` describes."""


class CommandInstaller:
    restarts = False  # the command runs to completion and reports its outcome

    def __init__(self, command: Sequence[str], timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self.command = tuple(command)
        self.timeout_s = timeout_s

    async def begin(self, file: Path) -> dict[str, Any]:
        if not self.command:
            raise InstallError("firmware.install_command is empty")
        return {"installer": "command"}

    async def run(self, file: Path, memo: dict[str, Any]) -> InstallOutcome:
        argv = [part.replace("{file}", str(file)) for part in self.command]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as e:
            return InstallOutcome(False, f"cannot run {argv[0]}: {e.strerror or e}")
        try:
            async with asyncio.timeout(self.timeout_s):
                output, _ = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            return InstallOutcome(False, f"the install command ran over {self.timeout_s:.0f} s")
        text = output.decode(errors="replace").strip()
        for line in text.splitlines()[-20:]:
            log.info("install command: %s", line)
        if process.returncode == 0:
            return InstallOutcome(True, "install command succeeded")
        return InstallOutcome(False, f"install command exited with {process.returncode}")

    async def outcome(self, memo: dict[str, Any], reported_job: str | None) -> InstallOutcome:
        return InstallOutcome(False, "the install command was interrupted by a restart")


class UpdaterInstaller:
    """Stages evsed release bundles for the A/B updater (see controller.update)."""

    restarts = True  # the updater restarts evsed to switch releases

    def __init__(
        self,
        root: Path = Path("/"),
        wait_s: float = UPDATER_WAIT_S,
        poll_s: float = UPDATER_POLL_S,
    ) -> None:
        from controller.update import Layout

        self.layout = Layout(root)
        self.wait_s = wait_s
        self.poll_s = poll_s

    async def begin(self, file: Path) -> dict[str, Any]:
        from controller.update import UpdateError, read_bundle

        try:
            release = await asyncio.to_thread(read_bundle, file)
        except UpdateError as e:
            raise InstallError(str(e)) from None
        now = datetime.fromtimestamp(int(time.time()), UTC).isoformat(timespec="seconds")
        return {"installer": "update", "version": release.version, "staged_at": now}

    async def run(self, file: Path, memo: dict[str, Any]) -> InstallOutcome:
        from controller.update import UpdateError, stage

        try:
            staged = await asyncio.to_thread(stage, file, self.layout)
        except (UpdateError, OSError) as e:
            return InstallOutcome(False, f"cannot stage the bundle: {e}")
        log.info("bundle %s staged at %s for the updater", memo.get("version"), staged)
        return await self.outcome(memo, None)

    async def outcome(self, memo: dict[str, Any], reported_job: str | None) -> InstallOutcome:
        version, staged_at = str(memo.get("version", "")), str(memo.get("staged_at", ""))
        try:
            started = datetime.fromisoformat(staged_at).timestamp()
        except ValueError:
            started = time.time()
        while True:
            for result in self._results():
                found = updater_outcome(result, version, staged_at, reported_job)
                if found is not None:
                    return found
            if time.time() - started > self.wait_s:
                return InstallOutcome(False, f"no outcome from the updater within {self.wait_s} s")
            await asyncio.sleep(self.poll_s)

    def _results(self) -> list[Any]:
        """result.json of the updater's work area, then the one an updater from before
        the inbox/work split wrote into the inbox (the job that installed this release)."""
        from controller.update import read_json_file

        return [
            read_json_file(self.layout.result_file),
            read_json_file(self.layout.legacy_result_file),
        ]


def make_installer(kind: str, command: Sequence[str], update_root: Path) -> FirmwareInstaller:
    if kind == "command":
        return CommandInstaller(command)
    return UpdaterInstaller(update_root)
