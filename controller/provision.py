"""Headless provisioning: a configuration dropped on the boot partition becomes the
station's configuration at the next boot, if it is valid.

Installers write `evsed.toml` onto the SD card's boot partition (FAT, readable
from any laptop) before the first boot. `evsed provision`, run as root by
evsed-provision.service before evsed starts, checks it where it will live (so
relative paths mean what they will mean) and moves it to /etc/evsed/evsed.toml,
keeping the previous file as evsed.toml.bak. The copy on the boot partition is
removed: it may hold the CSMS password, and FAT has no permissions.

An invalid file is never used. It is renamed evsed-invalid.toml, every problem
is written to evsed-problems.txt beside it (where the installer, holding the
card, will look) and to the journal, and a marker in the state directory tells
the daemon, still running on the previous configuration, to show it on the
status LED and in its systemd STATUS.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from controller.config import ConfigError, load_config

BOOT_CANDIDATES = (Path("/boot/firmware/evsed.toml"), Path("/boot/evsed.toml"))
TARGET = Path("/etc/evsed/evsed.toml")
FAILED_MARKER = "provisioning-failed.json"  # in the state directory
INVALID_NAME = "evsed-invalid.toml"
PROBLEMS_NAME = "evsed-problems.txt"
CONFIG_GROUP = "evsed"


def provision(
    sources: tuple[Path, ...] = BOOT_CANDIDATES,
    target: Path = TARGET,
    state_dir: Path = Path("/var/lib/evsed"),
) -> int:
    """0: nothing to do or provisioned; 1: the dropped file was invalid (not used)."""
    source = next((s for s in sources if s.is_file()), None)
    if source is None:
        print("no configuration on the boot partition; nothing to do")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate = target.with_name(f".{target.name}.provisioning")
    candidate.write_bytes(source.read_bytes())
    try:
        config = load_config(candidate)
    except ConfigError as e:
        candidate.unlink()
        problems = [str(p) for p in e.problems]
        _reject(source, problems, state_dir)
        return 1
    os.chmod(candidate, 0o640)
    with contextlib.suppress(KeyError, PermissionError):  # no such group: not installed
        os.chown(candidate, 0, grp.getgrnam(CONFIG_GROUP).gr_gid)
    _fsync(candidate)
    if target.exists():  # a copy, so that there is a configuration at every moment
        backup = target.with_name(target.name + ".bak")
        shutil.copy2(target, backup)
        _fsync(backup)
    os.replace(candidate, target)
    _fsync(target.parent)
    source.unlink()
    os.sync()  # FAT: the removal must be on the card, or the next boot provisions again
    (state_dir / FAILED_MARKER).unlink(missing_ok=True)
    print(
        f"provisioned {target} from {source}: station {config.station.id}, "
        f"{len(config.connectors)} connector(s); the previous file is {target.name}.bak"
    )
    return 0


def _reject(source: Path, problems: list[str], state_dir: Path) -> None:
    invalid = source.with_name(INVALID_NAME)
    os.replace(source, invalid)
    text = f"{source} was not used; fix these and put it back as {source.name}:\n"
    text += "".join(f"  {p}\n" for p in problems)
    source.with_name(PROBLEMS_NAME).write_text(text)
    # "<3>": the journal's error priority for this line (systemd reads the prefix).
    print(f"<3>{text.rstrip()}", file=sys.stderr)
    marker = {
        "source": str(source),
        "problems": problems,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if state_dir.is_dir():
        (state_dir / FAILED_MARKER).write_text(json.dumps(marker))


def failed_provisioning(state_dir: Path) -> list[str] | None:
    """The problems of the last rejected boot-partition configuration, if any."""
    try:
        problems = json.loads((state_dir / FAILED_MARKER).read_text())["problems"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [str(p) for p in problems] if isinstance(problems, list) else None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
