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
    /var/lib/evsed/update/        the INBOX, the daemon's (user evsed, in its state
                                  directory): everything in it is untrusted input to
                                  root, which never chmods, chowns or follows a symlink
                                  there (directory descriptors, O_NOFOLLOW)
        incoming/                 a bundle being written
        staged.tar                a complete bundle, renamed into place atomically
        taking.tar                staged.tar while the updater copies it
    /var/lib/evsed-updater/       the WORK area, written by root only: root:root 0755
                                  (the daemon reads result.json); the updater refuses to
                                  run if it is a symlink, not root's or group/other-
                                  writable, and trusts in it only regular files of root's
        applying.tar              root's copy (0600) of the bundle being installed
        work-*/                   that bundle unpacked
        state.json                the updater's progress (atomic: temp file + replace + fsync)
        result.json               the last outcome, for the daemon to report (0644):
                                  {"job", "version", "outcome", "detail", "finished_at"}
                                  outcome: installed | rolled_back | install_failed

A bundle is a tar (optionally gzip) of `release.json` {"version", "evsed_wheel"} and
`wheels/*.whl`: evsed's wheel and every dependency, built for the device's platform,
so installing needs no network; deploy/build-bundle.sh adds the installer (install.sh,
the example configuration, systemd/evsed*.service|path), which an update ignores.
Nothing else may be in it; members with absolute
paths, `..`, links or devices are refused, and extraction also uses tarfile's "data"
filter where the interpreter has it. The members are checked and extracted through
one open file and one TarFile, so what is extracted is what was checked.

Details beyond the original design, and why:

- `confirmed`: the root updater unit runs `/opt/evsed/confirmed/bin/evsed update ...`,
  not `current`, so a new release whose own code is broken cannot break the roll-back
  of itself after a power cut during its trial.
- Two areas, not one: the daemon can replace anything in a directory it owns (by a
  symlink to /etc, a FIFO, a directory, a forged state), so nothing root acts on lives
  there. The updater takes a bundle by renaming staged.tar to taking.tar in the inbox
  (a bundle staged meanwhile is kept for the next round), opening it through the
  inbox's descriptor with O_NOFOLLOW|O_NONBLOCK, checking with fstat that it is a
  regular file of at most MAX_BUNDLE_FILE_BYTES, and copying it into applying.tar
  (fsynced) before it removes taking.tar: from then on it reads only its own copy,
  which the daemon cannot change between the check and the extraction. A staged
  bundle is consumed exactly once, the path unit is not re-triggered by a bundle that
  crashed the updater, and the daemon can stage the next bundle meanwhile.
- state.json, result.json and applying.tar are trusted only as regular files owned by
  root (when the updater runs as root), opened without following a symlink and
  without blocking: anything else is an unreadable state (back to the confirmed
  release), no recorded result, a bundle that failed to install; and is removed.
- `apply --bundle FILE` (the installer, as root) copies FILE into applying.tar and
  installs it, without the inbox.
- `job` (a random id) in state.json and result.json: a re-run after a crash between
  writing the result and clearing the state sees that the outcome is already recorded
  and does not record (or redo) it twice; the daemon can report each job once.
- The install is retried after a crash (it only ever touches the inactive slot), at
  most MAX_INSTALL_ATTEMPTS times, so a bundle that kills the updater cannot loop.
- A new slot's files are flushed (os.sync) before its release.json is written: with
  delayed allocation a power cut could otherwise leave empty files in a slot that is
  marked complete, switched to and confirmed.
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
after staged.tar -> taking.tar, before   copies taking.tar, then as below
  its copy is complete
after the copy (applying.tar), before    removes taking.tar; starts the job
  taking.tar is removed
after taking.tar is removed              starts the job (install into the inactive slot)
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
import json
import logging
import os
import re
import shutil
import stat
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
from typing import Any, BinaryIO, Final

log = logging.getLogger("evsed.update")

SLOTS: Final = ("a", "b")
DEFAULT_CONFIG: Final = Path("/etc/evsed/evsed.toml")
SERVICE: Final = "evsed.service"
DEFAULT_TIMEOUT_S: Final = 120.0
SETTLE_S: Final = 10.0  # the health check's conditions must hold this long
POLL_S: Final = 1.0
MAX_INSTALL_ATTEMPTS: Final = 3
MAX_BUNDLE_BYTES: Final = 512 * 2**20  # unpacked, summed over the members
MAX_BUNDLE_FILE_BYTES: Final = MAX_BUNDLE_BYTES + 16 * 2**20  # the tar file: + headers
MAX_JSON_BYTES: Final = 2**20  # state.json, result.json, release.json
STAGED: Final = "staged.tar"  # in the inbox
TAKING: Final = "taking.tar"  # in the inbox, while the updater copies it
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
    def inbox(self) -> Path:
        """The daemon's hand-over directory: untrusted, never written through by root."""
        return self.root / "var/lib/evsed/update"

    @property
    def incoming(self) -> Path:
        return self.inbox / "incoming"

    @property
    def staged(self) -> Path:
        return self.inbox / STAGED

    @property
    def taking(self) -> Path:
        return self.inbox / TAKING

    @property
    def legacy_result_file(self) -> Path:
        """Where releases before the inbox/work split wrote result.json (in the inbox)."""
        return self.inbox / "result.json"

    @property
    def work_dir(self) -> Path:
        """The updater's own directory: root:root 0755, written by root only."""
        return self.root / "var/lib/evsed-updater"

    @property
    def applying(self) -> Path:
        return self.work_dir / "applying.tar"

    @property
    def state_file(self) -> Path:
        return self.work_dir / "state.json"

    @property
    def result_file(self) -> Path:
        return self.work_dir / "result.json"


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


_O_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO: no wait


def _as_root() -> bool:
    return os.geteuid() == 0


def _distrust(st: os.stat_result) -> str:
    """Why a file the updater reads is not to be trusted, or "": it must be a regular
    file, and root's when the updater runs as root."""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if _as_root() and st.st_uid != 0:
        return f"owned by uid {st.st_uid}, not root"
    return ""


def _open_trusted(path: Path) -> BinaryIO:
    """Open a file of the work area (or a slot) for reading, if it can be trusted:
    FileNotFoundError if there is none, UpdateError if it is not a regular file of
    root's. Never follows a symlink, never blocks on a FIFO."""
    why = _distrust(os.lstat(path))
    if not why:
        try:
            fd = os.open(path, _O_FILE)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise UpdateError(f"{path}: {e.strerror}") from None
        if not (why := _distrust(os.fstat(fd))):
            return os.fdopen(fd, "rb")
        os.close(fd)
    raise UpdateError(f"{path}: {why}")


def _read_json(path: Path) -> Any:
    """The JSON in `path`, or None if there is no such file; ValueError if it cannot be
    read or trusted (a symlink, directory, FIFO, someone else's file: see _open_trusted)."""
    try:
        with _open_trusted(path) as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        return None
    except UpdateError as e:
        raise ValueError(str(e)) from None
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{path}: larger than {MAX_JSON_BYTES} bytes")
    return json.loads(data.decode("utf-8"))


def read_json_file(path: Path) -> Any:
    """The JSON in `path` (a regular file, not followed if a symlink, see _read_json), or
    None if it is missing or unusable. For readers of result.json such as the daemon."""
    try:
        return _read_json(Path(path))
    except (OSError, ValueError):
        return None


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
        if path.is_dir() and not path.is_symlink():  # a rename cannot replace a directory
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _remove(path: Path) -> None:
    """Remove a file (or whatever is there instead: a directory too) durably."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except IsADirectoryError:
        shutil.rmtree(path)
    _fsync_dir(path.parent)


def _discard_at(dir_fd: int, name: str) -> None:
    """Remove `name` in the directory `dir_fd` whatever it is, following no symlink."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except (IsADirectoryError, PermissionError):  # a directory: EISDIR (EPERM elsewhere)
        if shutil.rmtree.avoids_symlink_attacks:
            shutil.rmtree(name, ignore_errors=True, dir_fd=dir_fd)
        else:  # pragma: no cover - Linux has the fd-based functions
            log.error("cannot safely remove the directory %s", name)


def _open_inbox(layout: Layout) -> int | None:
    """A descriptor of the inbox, not following a symlink; None (logged) if there is
    none or it is not a directory."""
    try:
        return os.open(layout.inbox, _O_DIR)
    except FileNotFoundError:
        return None
    except OSError as e:  # ELOOP/ENOTDIR: a symlink or not a directory
        log.error("ignoring the inbox %s: %s", layout.inbox, e.strerror)
        return None


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


def _open_bundle(source: Path | BinaryIO) -> tarfile.TarFile:
    try:
        if isinstance(source, Path):
            return tarfile.open(source, "r:*")
        return tarfile.open(fileobj=source, mode="r:*")
    except FileNotFoundError:
        raise BundleError(f"no bundle at {source}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(f"not a tar bundle: {e}") from None


def _read_release(tar: tarfile.TarFile) -> Release:
    """Check an open bundle's members; its release.json."""
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


def read_bundle(path: Path) -> Release:
    """Validate a bundle without unpacking it; returns its release.json."""
    with _open_bundle(Path(path)) as tar:
        return _read_release(tar)


def _unpack(source: Path | BinaryIO, dest: Path) -> Release:
    """Check and extract through one TarFile: the members extracted (names, types, from
    its cached member list) are the members checked."""
    with _open_bundle(source) as tar:
        release = _read_release(tar)
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # Python < 3.11.4: the strict member check above is the protection
                tar.extractall(dest)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BundleError(f"cannot unpack bundle: {e}") from None
    return release


def unpack_bundle(path: Path, dest: Path) -> Release:
    """Validate and unpack a bundle into the empty directory `dest`."""
    try:
        with open(path, "rb") as f:  # one open file for the check and the extraction
            return _unpack(f, dest)
    except FileNotFoundError:
        raise BundleError(f"no bundle at {path}") from None


def _subdir(parent_fd: int, name: str, owner: os.stat_result | None) -> int:
    """A descriptor of the directory `name` in `parent_fd`, made (0770) if missing and
    then given to `owner`'s uid and gid (root only); never follows a symlink."""
    try:
        return os.open(name, _O_DIR, dir_fd=parent_fd)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise UpdateError(f"{name}: not a directory ({e.strerror}); not staging") from None
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o770, dir_fd=parent_fd)
    try:
        fd = os.open(name, _O_DIR, dir_fd=parent_fd)
    except OSError as e:
        raise UpdateError(f"{name}: not a directory ({e.strerror}); not staging") from None
    if owner is not None and _as_root():
        os.fchown(fd, owner.st_uid, owner.st_gid)  # the descriptor: no symlink to follow
    os.fsync(parent_fd)
    return fd


def stage(bundle: Path, layout: Layout) -> Path:
    """Hand a downloaded bundle to the updater: validate, copy into incoming/, rename to
    staged.tar in the inbox. Runs as the daemon's user (and as root from an installer).
    A bundle already in incoming/ is moved, not copied (not by root: root copies). A
    staged bundle the updater has not taken yet is replaced.

    The inbox belongs to the daemon: everything here goes through directory
    descriptors opened with O_NOFOLLOW, nothing is chmodded there, and whatever root
    creates (incoming/ if missing, the bundle file) gets the owner of the daemon's state
    directory (the inbox's parent), so the daemon can replace it later."""
    bundle = Path(bundle)
    read_bundle(bundle)
    parent = layout.inbox.parent
    parent.mkdir(parents=True, exist_ok=True)  # /var/lib/evsed: systemd's StateDirectory
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    with contextlib.ExitStack() as stack:
        stack.callback(os.close, parent_fd)
        owner = os.fstat(parent_fd)
        inbox = _subdir(parent_fd, layout.inbox.name, owner)
        stack.callback(os.close, inbox)
        incoming = _subdir(inbox, layout.incoming.name, owner)
        stack.callback(os.close, incoming)
        if not _as_root() and _same_file(bundle.parent, incoming):
            with open(bundle, "rb") as f:
                os.fsync(f.fileno())
            os.replace(bundle.name, STAGED, src_dir_fd=incoming, dst_dir_fd=inbox)
        else:
            _copy_to_inbox(bundle, incoming, inbox, owner)
        os.fsync(inbox)
    return layout.staged


def _same_file(path: Path, fd: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    there = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (there.st_dev, there.st_ino)


def _copy_to_inbox(bundle: Path, incoming: int, inbox: int, owner: os.stat_result) -> None:
    name = f"bundle.{uuid.uuid4().hex}.tar"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, 0o644, dir_fd=incoming)
    try:
        with os.fdopen(fd, "wb") as out, open(bundle, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            if _as_root():
                os.fchown(out.fileno(), owner.st_uid, owner.st_gid)
            os.fchmod(out.fileno(), 0o644)
            os.fsync(out.fileno())
        os.replace(name, STAGED, src_dir_fd=incoming, dst_dir_fd=inbox)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=incoming)
        raise


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
    # Everything the install wrote reaches the disk before release.json marks the slot
    # complete (ext4 delayed allocation: else a power cut can leave empty files in it).
    os.sync()
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

    def apply(
        self, timeout_s: float = DEFAULT_TIMEOUT_S, bundle: Path | None = None
    ) -> list[Result]:
        """Finish a pending job, then install every staged bundle (or only `bundle`, a
        file of the caller's, when given); the outcomes, in order."""
        results: list[Result] = []
        with _locked(self.layout):
            prepare_work_dir(self.layout)
            if (pending := self._resume(timeout_s)) is not None:
                results.append(pending)
            if bundle is not None:
                self._take_file(Path(bundle))
                self.step("taken")
                results.append(self._install_job({}, timeout_s))
                return results
            while (result := self._take(STAGED, timeout_s)) is not None:
                results.append(result)
        return results

    def resume(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> Result | None:
        """Finish a job interrupted by a crash or power cut; None if there is none."""
        with _locked(self.layout):
            prepare_work_dir(self.layout)
            return self._resume(timeout_s)

    # --- taking a bundle ---

    def _take(self, name: str, timeout_s: float) -> Result | None:
        """Take the inbox's `name` (staged.tar, or taking.tar after a crash) and run its
        job; None if there is nothing to take."""
        inbox = _open_inbox(self.layout)
        if inbox is None:
            return None
        try:
            if name != TAKING:
                try:
                    os.rename(name, TAKING, src_dir_fd=inbox, dst_dir_fd=inbox)
                except FileNotFoundError:
                    return None
                except OSError:  # something in the way (a directory): remove it, once
                    _discard_at(inbox, TAKING)
                    try:
                        os.rename(name, TAKING, src_dir_fd=inbox, dst_dir_fd=inbox)
                    except FileNotFoundError:
                        return None
                    except OSError as e:
                        log.error("cannot take %s/%s: %s", self.layout.inbox, name, e.strerror)
                        return None
                os.fsync(inbox)
            try:
                src = os.open(TAKING, _O_FILE, dir_fd=inbox)
            except FileNotFoundError:
                return None
            except OSError as e:  # ELOOP: a symlink
                refused = f"the staged bundle cannot be opened: {e.strerror}"
            else:
                try:
                    refused = self._copy_in(src)
                except (UpdateError, OSError) as e:
                    refused = f"cannot copy the staged bundle: {e}"
                finally:
                    os.close(src)
            _discard_at(inbox, TAKING)
            os.fsync(inbox)
        finally:
            os.close(inbox)
        if refused:
            return self._finish(uuid.uuid4().hex, "", INSTALL_FAILED, refused)
        self.step("taken")
        return self._install_job({}, timeout_s)

    def _take_file(self, bundle: Path) -> None:
        """Copy a bundle file given on the command line into applying.tar."""
        try:
            src = os.open(bundle, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise UpdateError(f"cannot open {bundle}: {e.strerror}") from None
        try:
            refused = self._copy_in(src)
        finally:
            os.close(src)
        if refused:
            raise UpdateError(f"{bundle}: {refused}")

    def _copy_in(self, src: int) -> str:
        """Copy the open bundle file `src` into applying.tar (root's, 0600, durable);
        why it is refused, or "". Only this copy is read from then on."""
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            return "the bundle is not a regular file"
        if st.st_size > MAX_BUNDLE_FILE_BYTES:
            return f"the bundle is too large: {st.st_size} bytes"
        work = self.layout.work_dir
        fd, tmp = tempfile.mkstemp(prefix=".applying.", dir=work)  # 0600
        try:
            with os.fdopen(fd, "wb") as out:
                size = 0
                while chunk := os.read(src, 1 << 20):
                    size += len(chunk)
                    if size > MAX_BUNDLE_FILE_BYTES:  # it grew meanwhile
                        raise BundleError(f"the bundle is too large: over {size} bytes")
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.layout.applying)
        except BundleError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return str(e)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(work)
        return ""

    # --- jobs ---

    def _resume(self, timeout_s: float) -> Result | None:
        self._clean_leftovers()
        if os.path.lexists(self.layout.applying):
            self._forget_taken()
        try:
            state = _read_json(self.layout.state_file)
        except (OSError, ValueError) as e:
            log.error("state.json: %s", e)
            state = "unreadable"
        if state is None:
            if os.path.lexists(self.layout.applying):
                return self._install_job({}, timeout_s)
            return self._take(TAKING, timeout_s)
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
        if not os.path.lexists(layout.applying):
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
        with tempfile.TemporaryDirectory(prefix="work-", dir=layout.work_dir) as work:
            try:
                with _open_trusted(layout.applying) as bundle:  # root's copy, only
                    release = _unpack(bundle, Path(work))
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

    def _forget_taken(self) -> None:
        """Drop the inbox's taking.tar: applying.tar exists, so a crash came after the
        copy was complete and before taking.tar was removed; the copy is the job."""
        inbox = _open_inbox(self.layout)
        if inbox is not None:
            try:
                _discard_at(inbox, TAKING)
                os.fsync(inbox)
            finally:
                os.close(inbox)

    def _clean_leftovers(self) -> None:
        for work in self.layout.work_dir.glob("work-*"):
            shutil.rmtree(work, ignore_errors=True)
        for tmp in self.layout.work_dir.glob(".applying.*"):
            _remove(tmp)


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
        prepare_work_dir(layout)
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
        return release


def prepare_work_dir(layout: Layout) -> None:
    """Make the updater's work area (root:root 0755) if missing, and refuse
    (UpdateError) to work in one that is a symlink or not a directory, not root's (when
    running as root) or writable by group or others: it must be written by root only.
    Its parent (/var/lib) is root's, so what is checked here stays so."""
    path = layout.work_dir
    created = False
    try:
        os.makedirs(path, mode=0o755)
        created = True
    except FileExistsError:
        pass
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise UpdateError(f"{path} is a symlink; refusing to update")
    try:
        fd = os.open(path, _O_DIR)
    except OSError as e:
        raise UpdateError(f"{path}: {e.strerror}; refusing to update") from None
    try:
        st = os.fstat(fd)
        if _as_root() and st.st_uid != 0:
            raise UpdateError(f"{path} is owned by uid {st.st_uid}, not root; refusing to update")
        if st.st_mode & 0o022:
            mode = stat.S_IMODE(st.st_mode)
            raise UpdateError(f"{path} is writable by others ({mode:o}); refusing to update")
        if created and stat.S_IMODE(st.st_mode) != 0o755:  # the umask: the daemon reads it
            os.fchmod(fd, 0o755)
    finally:
        os.close(fd)


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
    if os.path.lexists(layout.staged):
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
        if name == "apply":
            p.add_argument(
                "--bundle",
                type=Path,
                help="install this bundle file (the installer's, as root), not the staged one",
            )
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
            results = updater.apply(args.timeout, bundle=args.bundle)
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
