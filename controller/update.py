"""A/B software updates: two release directories and a switch, confirmed by a health check.

A station in the field must never be left without a working controller, so an update
is installed next to the running release, the switch between them is one atomic
rename, and the new release has to prove itself after the restart: if it does not come
up (systemd active, and BootNotification Accepted when a CSMS is configured) within
the timeout, the previous release comes back on its own. Every step is recorded on
disk first, so a power cut at any point ends in one of the two releases, never in
between.

On the device (`root` is a parameter, "/" in production, a temporary dir in tests)::

    /opt/evsed/releases/{a,b}/    one complete virtual environment each (bin/evsed) and
                                  release.json {"version", "evsed_wheel", "installed_at"},
                                  written last: a slot without it is incomplete
    /opt/evsed/current -> releases/a      what evsed.service runs
    /opt/evsed/confirmed -> releases/a    the last release that passed its health check;
                                          the updater runs from here (see below)
    /opt/evsed/.update.lock               one updater at a time (flock)
    /var/lib/evsed/update/        the hand-over area: root:evsed 1770, so the daemon (user
                                  evsed) can stage and the sticky bit keeps it from
                                  touching the updater's files
        incoming/                 a bundle being written
        staged.tar                a complete bundle, renamed into place atomically
        applying.tar              the staged bundle once the updater has taken it
        state.json                the updater's progress (atomic: temp file + replace + fsync)
        result.json               the last outcome, for the daemon to report:
                                  {"job", "version", "outcome", "detail", "finished_at"}
                                  outcome: installed | rolled_back | install_failed

A bundle is a tar (optionally gzip) of `release.json` {"version", "evsed_wheel"} and
`wheels/*.whl`: evsed's wheel and every dependency, built for the device's platform,
so installing needs no network; deploy/build-bundle.sh adds the installer (install.sh,
the example configuration, systemd/evsed*.service|path), which an update ignores.
Nothing else may be in it; members with absolute
paths, `..`, links or devices are refused, and extraction also uses tarfile's "data"
filter where the interpreter has it.

Details beyond the original design, and why:

- `confirmed`: the root updater unit runs `/opt/evsed/confirmed/bin/evsed update ...`,
  not `current`, so a new release whose own code is broken cannot break the roll-back
  of itself after a power cut during its trial.
- The updater renames staged.tar to applying.tar before anything else: a bundle is
  consumed exactly once, the path unit is not re-triggered by a bundle that crashed the
  updater, and the daemon can stage the next bundle meanwhile.
- `job` (a random id) in state.json and result.json: a re-run after a crash between
  writing the result and clearing the state sees that the outcome is already recorded
  and does not record (or redo) it twice; the daemon can report each job once.
- The install is retried after a crash (it only ever touches the inactive slot), at
  most MAX_INSTALL_ATTEMPTS times, so a bundle that kills the updater cannot loop.
- state.json's trial "deadline" is wall-clock time, informational only: after a power
  cut the health check gets a fresh timeout.
- Resuming a trial always restarts the daemon: the updater cannot tell whether the
  running process was started before or after the switch, and a health check of the
  old code would wrongly confirm the new release.
- The default health check also wants the state to hold for SETTLE_S, so a release
  that sends READY=1 and then crashes is not confirmed.
- `install(slot_dir, wheels_dir, release)` also gets the release, and the default
  installs exactly the wheel file release.json names (with its dependencies from the
  bundle), not whatever `evsed==version` would resolve to.

Crash points (power cut or killed updater) and what the next run (at boot, or the next
path-unit trigger; `apply` and `resume` both finish a pending job) does:

=======================================  ===============================================
crash                                    next run
=======================================  ===============================================
after staged.tar -> applying.tar         starts the job (install into the inactive slot)
during install / after install, before   current untouched; install again from
  the trial state is written               applying.tar (attempt n+1 of 3)
after the trial state, before switching  switch to the new slot, restart, health check
after switching, before restarting       restart, health check
during the health check                  restart, health check with a fresh timeout
after `confirmed` moved, before result   health check again; confirm or roll back
during roll-back (state "rollback"),     switch current and confirmed back (no-op if
  before or after switching back           done), restart, record rolled_back
after the result, before the state is    the job's result is already recorded: only
  cleared                                  clear the state
=======================================  ===============================================

`current` is only ever replaced by rename, and only by a complete slot, so it never
dangles and never disappears.

Everything with a side effect outside these files (installing, restarting, checking
health, the clocks) is injected into Updater, so tests need no root, systemd or network.
This module imports only the standard library at import time, so an installer can run
it from the wheel itself: `PYTHONPATH=evsed-X.whl python3 -m controller.update
install-first bundle.tar`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import grp
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final

log = logging.getLogger("evsed.update")

SLOTS: Final = ("a", "b")
DEFAULT_CONFIG: Final = Path("/etc/evsed/evsed.toml")
SERVICE: Final = "evsed.service"
DEFAULT_TIMEOUT_S: Final = 120.0
SETTLE_S: Final = 10.0  # the health check's conditions must hold this long
POLL_S: Final = 1.0
MAX_INSTALL_ATTEMPTS: Final = 3
MAX_BUNDLE_BYTES: Final = 512 * 2**20  # unpacked, summed over the members
# deploy/build-bundle.sh also packs the installer, so one file installs a new device;
# an update installs only the wheels (units change with the installer or the package).
INSTALLER_FILES: Final = frozenset({"install.sh", "evsed.example.toml"})
_UNIT: Final = re.compile(r"evsed[a-z-]*\.(service|path)")

INSTALLED: Final = "installed"
ROLLED_BACK: Final = "rolled_back"
INSTALL_FAILED: Final = "install_failed"

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,63}")
_WHEEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*\.whl")


class UpdateError(Exception):
    """An update step cannot be done; the message says why, for one line of output."""


class BundleError(UpdateError):
    """The bundle is not a valid release bundle."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything lives, below `root` ("/" on the device)."""

    root: Path = Path("/")

    @property
    def base(self) -> Path:
        return self.root / "opt/evsed"

    @property
    def current(self) -> Path:
        return self.base / "current"

    @property
    def confirmed(self) -> Path:
        return self.base / "confirmed"

    @property
    def lock_file(self) -> Path:
        return self.base / ".update.lock"

    def slot(self, name: str) -> Path:
        return self.base / "releases" / name

    @property
    def update_dir(self) -> Path:
        return self.root / "var/lib/evsed/update"

    @property
    def incoming(self) -> Path:
        return self.update_dir / "incoming"

    @property
    def staged(self) -> Path:
        return self.update_dir / "staged.tar"

    @property
    def applying(self) -> Path:
        return self.update_dir / "applying.tar"

    @property
    def state_file(self) -> Path:
        return self.update_dir / "state.json"

    @property
    def result_file(self) -> Path:
        return self.update_dir / "result.json"


@dataclass(frozen=True, slots=True)
class Release:
    """A bundle's release.json: the version and the file name of evsed's wheel."""

    version: str
    evsed_wheel: str

    @classmethod
    def from_json(cls, data: object) -> Release:
        if not isinstance(data, dict):
            raise BundleError("release.json is not a JSON object")
        version, wheel = data.get("version"), data.get("evsed_wheel")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise BundleError(f"release.json: version {version!r} is not a version")
        if not isinstance(wheel, str) or not _WHEEL.fullmatch(wheel):
            raise BundleError(f"release.json: evsed_wheel {wheel!r} is not a wheel file name")
        if not wheel.startswith("evsed-"):
            raise BundleError(f"release.json: evsed_wheel {wheel!r} is not evsed's wheel")
        return cls(version, wheel)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one update job, as written to result.json."""

    job: str
    version: str
    outcome: str  # INSTALLED, ROLLED_BACK or INSTALL_FAILED
    detail: str
    finished_at: str  # ISO 8601, UTC

    @property
    def ok(self) -> bool:
        return self.outcome == INSTALLED

    def line(self) -> str:
        """One line for the CLI and the log."""
        version = self.version or "(unknown version)"
        return f"{self.outcome} {version}: {self.detail}"


# --- files: atomic writes, symlink switch -----------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` with `data` atomically and durably (temp file, fsync, rename, fsync dir)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _read_json(path: Path) -> Any:
    """The JSON in `path`, or None if there is no such file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _remove(path: Path) -> None:
    """Remove a file durably, if it is there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(path.parent)


def _point(link: Path, slot: str) -> None:
    """Point `link` at releases/<slot> atomically: a new symlink renamed over the old one."""
    target = f"releases/{slot}"
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            return
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def slot_of(link: Path) -> str | None:
    """The slot a `current`/`confirmed` symlink points to; None if missing or elsewhere."""
    try:
        target = PurePosixPath(os.readlink(link))
    except OSError:
        return None
    if target.name in SLOTS and target.parent.name == "releases":
        return target.name
    return None


def other_slot(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def slot_release(layout: Layout, slot: str) -> dict[str, Any] | None:
    """The release.json of an installed slot; None if the slot is empty or incomplete."""
    try:
        data = _read_json(layout.slot(slot) / "release.json")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _slot_complete(layout: Layout, slot: str) -> bool:
    return (layout.slot(slot) / "bin/evsed").exists() and slot_release(layout, slot) is not None


def _now_iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


# --- bundles -----------------------------------------------------------------------------


def build_bundle(wheel_dir: Path, out_path: Path, version: str) -> Path:
    """Write a bundle of every wheel in `wheel_dir`; evsed's must be evsed-<version>-*.whl.

    `out_path` ending in .gz or .tgz is gzip-compressed. Returns `out_path`.
    """
    wheels = sorted(Path(wheel_dir).glob("*.whl"))
    prefix = f"evsed-{version.replace('-', '_')}-"
    evsed = [w for w in wheels if w.name.startswith(prefix)]
    if len(evsed) != 1:
        found = ", ".join(w.name for w in wheels) or "no wheels"
        raise BundleError(f"need exactly one {prefix}*.whl in {wheel_dir}, found: {found}")
    release = Release.from_json({"version": version, "evsed_wheel": evsed[0].name})
    out_path = Path(out_path)
    gzip = out_path.suffix in (".gz", ".tgz")
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") if gzip else tarfile.open(tmp, "w") as tar:
            data = json.dumps(asdict(release), indent=1).encode() + b"\n"
            info = tarfile.TarInfo("release.json")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.seek(0)
                tar.addfile(info, f)
            for wheel in wheels:
                tar.add(wheel, arcname=f"wheels/{wheel.name}", recursive=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return out_path


def _member_name(member: tarfile.TarInfo) -> str:
    """The member's path with a leading "./" removed; refuses unsafe paths."""
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    path = PurePosixPath(name)
    if name.startswith("/") or ".." in path.parts or "\\" in name:
        raise BundleError(f"unsafe path in bundle: {member.name!r}")
    return str(path) if name not in ("", ".") else "."


def _check_members(tar: tarfile.TarFile) -> None:
    """Refuse anything but release.json, wheels/*.whl and the installer's files
    (INSTALLER_FILES, which the updater ignores) as regular files."""
    seen: set[str] = set()
    total = 0
    for member in tar.getmembers():
        name = _member_name(member)
        if member.isdir() and name in (".", "wheels", "systemd"):
            continue
        parts = PurePosixPath(name).parts
        is_wheel = len(parts) == 2 and parts[0] == "wheels" and _WHEEL.fullmatch(parts[1])
        is_installer = name in INSTALLER_FILES or (
            len(parts) == 2 and parts[0] == "systemd" and _UNIT.fullmatch(parts[1])
        )
        if not member.isfile() or not (name == "release.json" or is_wheel or is_installer):
            raise BundleError(f"unexpected member in bundle: {member.name!r}")
        if name in seen:
            raise BundleError(f"member twice in bundle: {member.name!r}")
        seen.add(name)
        total += member.size
    if total > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle too large: {total} bytes unpacked")
    if "release.json" not in seen:
        raise BundleError("release.json missing from bundle")


def _open_bundle(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except FileNotFoundError:
        raise BundleError(f"no bundle at {path}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(f"not a tar bundle: {e}") from None


def read_bundle(path: Path) -> Release:
    """Validate a bundle without unpacking it; returns its release.json."""
    with _open_bundle(path) as tar:
        try:
            _check_members(tar)
            name = next(m for m in tar.getmembers() if _member_name(m) == "release.json")
            f = tar.extractfile(name)
            assert f is not None  # a regular file, checked above
            release = Release.from_json(json.loads(f.read()))
            wheels = {_member_name(m) for m in tar.getmembers()}
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            raise BundleError(f"damaged bundle: {e}") from None
    if f"wheels/{release.evsed_wheel}" not in wheels:
        raise BundleError(f"bundle lacks wheels/{release.evsed_wheel} named by release.json")
    return release


def unpack_bundle(path: Path, dest: Path) -> Release:
    """Validate and unpack a bundle into the empty directory `dest`."""
    release = read_bundle(path)
    with _open_bundle(path) as tar:
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # Python < 3.11.4: the strict member check above is the protection
                tar.extractall(dest)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BundleError(f"cannot unpack bundle: {e}") from None
    return release


def stage(bundle: Path, layout: Layout) -> Path:
    """Hand a downloaded bundle to the updater: validate, copy into incoming/, rename to
    staged.tar. Runs as the daemon's user. A bundle already in incoming/ is moved, not
    copied. A staged bundle the updater has not taken yet is replaced."""
    bundle = Path(bundle)
    read_bundle(bundle)
    if os.geteuid() == 0:
        prepare_update_dir(layout)  # root stages too (the installer): keep it the daemon's
    layout.incoming.mkdir(parents=True, exist_ok=True)
    if bundle.resolve().parent == layout.incoming.resolve():
        with open(bundle, "rb") as f:
            os.fsync(f.fileno())
        os.replace(bundle, layout.staged)
    else:
        fd, tmp = tempfile.mkstemp(prefix="bundle.", suffix=".tar", dir=layout.incoming)
        try:
            with os.fdopen(fd, "wb") as out, open(bundle, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, layout.staged)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    _fsync_dir(layout.update_dir)
    return layout.staged


# --- the defaults of the injected side effects --------------------------------------------

Install = Callable[[Path, Path, Release], None]  # (slot dir, wheels dir, release)
Restart = Callable[[], None]
Healthy = Callable[[float], tuple[bool, str]]  # (deadline on the clock) -> (ok, reason)


def base_python() -> str:
    """The interpreter new slots are made with: the system's, else this venv's base."""
    if os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3"
    return str(getattr(sys, "_base_executable", sys.executable))


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise UpdateError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}"[:500])


def pip_install(slot_dir: Path, wheels_dir: Path, release: Release) -> None:
    """A fresh venv in `slot_dir` with evsed and its dependencies from `wheels_dir` only."""
    _run([base_python(), "-m", "venv", "--clear", str(slot_dir)], "python -m venv")
    _run(
        [
            str(slot_dir / "bin/python"),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            str(wheels_dir),
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            str(wheels_dir / release.evsed_wheel),
        ],
        "pip install",
    )


def systemctl_restart(unit: str = SERVICE) -> None:
    """`systemctl restart`; waits for a Type=notify unit's READY=1 (or its failure), and
    leaves judging the outcome to the health check."""
    done = subprocess.run(
        ["systemctl", "restart", unit], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        log.warning("systemctl restart %s: exit %d %s", unit, done.returncode, done.stderr.strip())


class ServiceHealth:
    """The default health check: the unit is active (Type=notify: READY=1 was sent) and,
    when the configuration names a CSMS, the daemon reports registration Accepted over
    its control socket; both holding for `settle_s`."""

    def __init__(
        self,
        config_path: Path = DEFAULT_CONFIG,
        *,
        unit: str = SERVICE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        settle_s: float = SETTLE_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.config_path = config_path
        self.unit = unit
        self.clock = clock
        self.sleep = sleep
        self.settle_s = settle_s
        self.poll_s = poll_s

    def _socket(self) -> Path | None:
        """The control socket to ask, or None when no CSMS is configured."""
        from controller.config import ConfigError, load_config

        try:
            config = load_config(self.config_path)
        except ConfigError as e:
            log.warning("health check without CSMS: %s: %s", self.config_path, e)
            return None
        return config.control.socket if config.csms.url else None

    def active_state(self) -> str:
        done = subprocess.run(
            ["systemctl", "is-active", self.unit], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() or f"unknown (exit {done.returncode})"

    def registration(self, socket: Path) -> str:
        from controller.control import ControlClient, ControlError

        try:
            with ControlClient(socket, timeout=5.0) as client:
                state = client.request("state")
            return str(state["ocpp"]["registration"])
        except (OSError, ControlError, ValueError, KeyError, TypeError) as e:
            return f"no answer on the control socket ({e or type(e).__name__})"

    def __call__(self, deadline: float) -> tuple[bool, str]:
        timeout = max(0, round(deadline - self.clock()))
        socket = self._socket()
        good_since: float | None = None
        while True:
            now = self.clock()
            active = self.active_state()
            if active != "active":
                reason = f"not active within {timeout} s (last: {active})"
            elif socket is not None and (reg := self.registration(socket)) != "Accepted":
                reason = f"BootNotification not Accepted within {timeout} s (last: {reg})"
            else:
                reason = ""
            if reason:
                good_since = None
            elif good_since is None:
                good_since = now
            if good_since is not None and now - good_since >= self.settle_s:
                return True, "active" + (", BootNotification Accepted" if socket else "")
            if reason and now >= deadline:  # once good, the settle time may pass the deadline
                return False, reason
            self.sleep(min(self.poll_s, deadline - now) if reason else self.poll_s)


# --- the updater -------------------------------------------------------------------------


def _install_slot(
    layout: Layout, slot: str, wheels: Path, release: Release, install: Install, wall: float
) -> None:
    """Install into `slot` and mark it complete; the slot is incomplete until the end."""
    _remove(layout.slot(slot) / "release.json")
    layout.slot(slot).parent.mkdir(parents=True, exist_ok=True)
    install(layout.slot(slot), wheels, release)
    if not (layout.slot(slot) / "bin/evsed").exists():
        raise UpdateError(f"the install left no bin/evsed in slot {slot}")
    info = {**asdict(release), "installed_at": _now_iso(wall)}
    _write_json(layout.slot(slot) / "release.json", info)


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    layout.base.mkdir(parents=True, exist_ok=True)
    with open(layout.lock_file, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


class Updater:
    """Installs staged bundles into the inactive slot and confirms or rolls them back.

    `step(name)` is called after each durable step (default: log it); tests raise from it
    to simulate a power cut there. Steps: taken, installing, installed, trial, switched,
    restarted, confirmed, recorded, rollback, switched_back, restarted_previous.
    """

    def __init__(
        self,
        layout: Layout,
        *,
        install: Install = pip_install,
        restart: Restart = systemctl_restart,
        healthy: Healthy | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        config_path: Path = DEFAULT_CONFIG,
        step: Callable[[str], None] | None = None,
    ) -> None:
        self.layout = layout
        self.install = install
        self.restart = restart
        self.healthy = healthy or ServiceHealth(config_path, clock=clock)
        self.clock = clock
        self.wall_clock = wall_clock
        self.step = step or (lambda name: log.debug("update step: %s", name))

    # --- public ---

    def apply(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Result]:
        """Finish a pending job, then install every staged bundle; the outcomes, in order."""
        results: list[Result] = []
        with _locked(self.layout):
            if (pending := self._resume(timeout_s)) is not None:
                results.append(pending)
            while self.layout.staged.exists():
                os.replace(self.layout.staged, self.layout.applying)
                _fsync_dir(self.layout.update_dir)
                self.step("taken")
                results.append(self._install_job({}, timeout_s))
        return results

    def resume(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> Result | None:
        """Finish a job interrupted by a crash or power cut; None if there is none."""
        with _locked(self.layout):
            return self._resume(timeout_s)

    # --- jobs ---

    def _resume(self, timeout_s: float) -> Result | None:
        self._clean_leftovers()
        try:
            state = _read_json(self.layout.state_file)
        except (OSError, ValueError):
            state = "unreadable"
        if state is None:
            if self.layout.applying.exists():
                return self._install_job({}, timeout_s)
            return None
        phase = state.get("phase") if isinstance(state, dict) else None
        slots_ok = isinstance(state, dict) and {state.get("from"), state.get("to")} == set(SLOTS)
        if phase not in ("installing", "trial", "rollback") or not slots_ok:
            return self._repair(state)
        assert isinstance(state, dict)
        done = self._recorded(state)
        if done is not None:
            log.info("job %s already recorded: %s", state.get("job"), done.line())
            _remove(self.layout.applying)
            _remove(self.layout.state_file)
            return done
        if phase == "installing":
            return self._install_job(state, timeout_s)
        if phase == "trial":
            return self._trial(state, timeout_s)
        return self._roll_back(state, str(state.get("reason", "roll-back interrupted")))

    def _install_job(self, state: dict[str, Any], timeout_s: float) -> Result:
        """Install applying.tar into the inactive slot, then start its trial."""
        layout = self.layout
        job = str(state.get("job") or uuid.uuid4().hex)
        version = str(state.get("version", ""))
        if not layout.applying.exists():
            return self._finish(job, version, INSTALL_FAILED, "the bundle vanished mid-install")
        attempts = int(state.get("attempts", 0)) + 1
        if attempts > MAX_INSTALL_ATTEMPTS:
            detail = f"install interrupted {MAX_INSTALL_ATTEMPTS} times; bundle dropped"
            return self._finish(job, version, INSTALL_FAILED, detail)
        old = slot_of(layout.current)
        if old is None or not _slot_complete(layout, old):
            detail = f"{layout.current} does not point to a complete release; nothing changed"
            return self._finish(job, version, INSTALL_FAILED, detail)
        new = other_slot(old)
        state = {"phase": "installing", "job": job, "from": old, "to": new}
        state |= {"attempts": attempts, "version": version}
        _write_json(layout.state_file, state)
        self.step("installing")
        with tempfile.TemporaryDirectory(prefix="work-", dir=layout.update_dir) as work:
            try:
                release = unpack_bundle(layout.applying, Path(work))
                version = release.version
                log.info("installing %s into slot %s", version, new)
                wheels = Path(work) / "wheels"
                _install_slot(layout, new, wheels, release, self.install, self.wall_clock())
            except Exception as e:  # a failed install leaves `current` alone
                return self._finish(job, version, INSTALL_FAILED, str(e) or type(e).__name__)
        self.step("installed")
        deadline = _now_iso(self.wall_clock() + timeout_s)
        trial = {"phase": "trial", "job": job, "from": old, "to": new, "version": version}
        _write_json(layout.state_file, trial | {"deadline": deadline})
        self.step("trial")
        _remove(layout.applying)
        return self._trial(trial, timeout_s)

    def _trial(self, state: dict[str, Any], timeout_s: float) -> Result:
        """Switch to the new slot, restart, and confirm it or roll back."""
        new, version = str(state["to"]), str(state.get("version", ""))
        if not _slot_complete(self.layout, new):
            return self._roll_back(state, f"slot {new} is incomplete")
        _point(self.layout.current, new)
        self.step("switched")
        try:
            self.restart()
            self.step("restarted")
            ok, reason = self.healthy(self.clock() + timeout_s)
        except Exception as e:
            ok, reason = False, f"health check failed: {e or type(e).__name__}"
        if not ok:
            log.warning("release %s unhealthy: %s", version, reason)
            return self._roll_back(state, reason)
        _point(self.layout.confirmed, new)
        self.step("confirmed")
        return self._finish(str(state["job"]), version, INSTALLED, f"slot {new}: {reason}")

    def _roll_back(self, state: dict[str, Any], reason: str) -> Result:
        """Back to the previous slot: both links, then a restart; records rolled_back."""
        old, version = str(state["from"]), str(state.get("version", ""))
        if state.get("phase") != "rollback":
            _write_json(self.layout.state_file, {**state, "phase": "rollback", "reason": reason})
            self.step("rollback")
        _point(self.layout.current, old)
        _point(self.layout.confirmed, old)
        self.step("switched_back")
        detail = f"back to slot {old}: {reason}"
        try:
            self.restart()
        except Exception as e:
            detail += f"; restarting the previous release failed: {e}"
        self.step("restarted_previous")
        return self._finish(str(state["job"]), version, ROLLED_BACK, detail)

    def _repair(self, state: object) -> Result:
        """An unreadable or unknown state.json: back to the confirmed release."""
        log.error("unusable update state %r; returning to the confirmed release", state)
        job = str(state.get("job", "")) if isinstance(state, dict) else ""
        version = str(state.get("version", "")) if isinstance(state, dict) else ""
        slot = slot_of(self.layout.confirmed)
        detail = "update state unreadable"
        if slot is not None and slot != slot_of(self.layout.current):
            _point(self.layout.current, slot)
            detail += f"; back to slot {slot}"
            with contextlib.suppress(Exception):
                self.restart()
        return self._finish(job or uuid.uuid4().hex, version, ROLLED_BACK, detail)

    def _finish(self, job: str, version: str, outcome: str, detail: str) -> Result:
        """Record the outcome, then drop the bundle and the state (in this order)."""
        result = Result(job, version, outcome, detail, _now_iso(self.wall_clock()))
        _write_json(self.layout.result_file, asdict(result))
        self.step("recorded")
        _remove(self.layout.applying)
        _remove(self.layout.state_file)
        (log.info if result.ok else log.error)("update %s", result.line())
        return result

    def _recorded(self, state: dict[str, Any]) -> Result | None:
        """The result of `state`'s job if it was already written."""
        try:
            data = _read_json(self.layout.result_file)
            result = Result(**data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None
        return result if result is not None and result.job == state.get("job") else None

    def _clean_leftovers(self) -> None:
        for work in self.layout.update_dir.glob("work-*"):
            shutil.rmtree(work, ignore_errors=True)


def install_first(
    bundle_or_wheels: Path, layout: Layout, install: Install = pip_install
) -> Release:
    """First installation: into slot a, then `current` and `confirmed` point at it.

    Takes a bundle or a directory of wheels (evsed's version then comes from its wheel's
    file name). Refuses if `current` exists: upgrades go through stage + apply. Safe to
    re-run after a crash: until `current` exists, nothing is in use.
    """
    source = Path(bundle_or_wheels)
    with _locked(layout):
        if layout.current.is_symlink() or layout.current.exists():
            slot = slot_of(layout.current)
            raise UpdateError(
                f"already installed ({layout.current} -> {slot}); "
                "upgrade with 'evsed update stage BUNDLE' and 'evsed update apply'"
            )
        with contextlib.ExitStack() as stack:
            if source.is_dir():
                evsed = sorted(source.glob("evsed-*.whl"))
                if len(evsed) != 1:
                    raise BundleError(f"need exactly one evsed-*.whl in {source}")
                release = Release.from_json(
                    {"version": evsed[0].name.split("-")[1], "evsed_wheel": evsed[0].name}
                )
                wheels = source
            else:
                layout.base.mkdir(parents=True, exist_ok=True)
                work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=layout.base)))
                release = unpack_bundle(source, work)
                wheels = work / "wheels"
            _install_slot(layout, "a", wheels, release, install, time.time())
        _point(layout.current, "a")
        _point(layout.confirmed, "a")
        prepare_update_dir(layout)
        return release


def prepare_update_dir(layout: Layout, group: str = "evsed") -> None:
    """Create the hand-over area and its incoming/ as root:<group> 1770 (as tmpfiles.d
    would): the daemon can stage into them, the sticky bit keeps it from replacing the
    updater's files. The group is set only when run as root and the group exists."""
    for directory in (layout.update_dir, layout.incoming):
        directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            with contextlib.suppress(KeyError):
                os.chown(directory, 0, grp.getgrnam(group).gr_gid)
        os.chmod(directory, 0o1770)


# --- command line ------------------------------------------------------------------------


def status_lines(layout: Layout) -> list[str]:
    """What `evsed update status` prints."""

    def describe(slot: str | None) -> str:
        if slot is None:
            return "none"
        info = slot_release(layout, slot)
        return f"{slot} ({info.get('version', '?') if info else 'empty or incomplete'})"

    current = slot_of(layout.current)
    lines = [f"current: {describe(current)}"]
    lines.append(f"other: {describe(other_slot(current)) if current else 'none'}")
    confirmed = slot_of(layout.confirmed)
    if confirmed != current:
        lines.append(f"confirmed: {describe(confirmed)}")
    try:
        state = _read_json(layout.state_file)
    except (OSError, ValueError):
        state = "unreadable"
    if isinstance(state, dict):
        lines.append(
            f"in progress: {state.get('phase')} of {state.get('version') or '?'} "
            f"({state.get('from')} -> {state.get('to')})"
        )
    elif state is not None:
        lines.append("in progress: state.json unreadable")
    if layout.staged.exists():
        lines.append(f"staged: {layout.staged}")
    try:
        result = _read_json(layout.result_file)
    except (OSError, ValueError):
        result = None
    if isinstance(result, dict):
        lines.append(
            f"last result: {result.get('outcome')} {result.get('version') or '?'} at "
            f"{result.get('finished_at')}: {result.get('detail')}"
        )
    else:
        lines.append("last result: none")
    return lines


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `update {stage,apply,resume,status,install-first}` to an argparse subparsers
    object; the parsed namespace's `func` is `cli`."""
    update = subparsers.add_parser("update", help="A/B software updates")
    _add_arguments(update)
    return update


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="/", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="update_command", required=True)
    p = sub.add_parser("stage", help="hand a downloaded bundle to the updater (as evsed)")
    p.add_argument("bundle", type=Path)
    for name, text in (
        ("apply", "install the staged bundle, switch, confirm or roll back (root)"),
        ("resume", "finish an update interrupted by a power cut (root, at boot)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="health check s")
        p.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG)
    sub.add_parser("status", help="the installed releases and the last outcome")
    p = sub.add_parser("install-first", help="first installation into slot a (root)")
    p.add_argument("source", type=Path, help="a bundle or a directory of wheels")
    parser.set_defaults(func=cli)


def cli(args: argparse.Namespace) -> int:
    """Run a parsed `update` command: 0 ok, 1 failed."""
    layout = Layout(Path(args.root))
    command = args.update_command
    try:
        if command == "stage":
            version = read_bundle(args.bundle).version  # before: the updater may take it at once
            print(f"staged {version} at {stage(args.bundle, layout)}")
            return 0
        if command == "status":
            print("\n".join(status_lines(layout)))
            return 0
        if command == "install-first":
            release = install_first(args.source, layout)
            print(f"installed {release.version} into slot a; {layout.current} -> releases/a")
            return 0
        updater = Updater(layout, config_path=args.config)
        if command == "apply":
            results = updater.apply(args.timeout)
        else:
            resumed = updater.resume(args.timeout)
            results = [resumed] if resumed else []
    except (UpdateError, OSError) as e:
        print(f"update {command} failed: {e}", file=sys.stderr)
        return 1
    if not results:
        print("nothing to do" if command == "apply" else "no update in progress")
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m controller.update ...`: the same commands as `evsed update ...`."""
    parser = argparse.ArgumentParser(prog="evsed update", description="A/B software updates")
    _add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (2) and --help (0)
        return int(e.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    return cli(args)


if __name__ == "__main__":
    raise SystemExit(main())
