"""Fixtures of the system tests: release bundles of this tree and a booted Debian system
with evsed installed by its installer (see container.py). Run with `./dev system-test`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwsim.csms import CsmsThread
from tests.system.container import Container, Unavailable, require_tools

REPO = Path(__file__).resolve().parents[2]
CARD = "04A1B2C3"


@pytest.fixture(scope="session")
def tools() -> None:
    try:
        require_tools()
    except Unavailable as e:
        pytest.skip(f"system tests unavailable: {e}")


def _copy_tree(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "dist", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
    )
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def _set_version(tree: Path, version: str) -> None:
    for path, pattern in (
        (tree / "pyproject.toml", r'^version = ".*"$'),
        (tree / "controller" / "__init__.py", r'^__version__ = ".*"$'),
    ):
        text = path.read_text()
        key = pattern.split(" ")[0].lstrip("^")
        path.write_text(re.sub(pattern, f'{key} = "{version}"', text, count=1, flags=re.M))


def _rebundle(tree: Path, deps: Path, out: Path, version: str) -> Path:
    """A bundle of `tree` at `version`, reusing the dependency wheels of `deps`."""
    wheels = out.parent / f"wheels-{version}"
    shutil.copytree(deps / "wheels", wheels, ignore=shutil.ignore_patterns("evsed-*"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(tree)],
        check=True,
    )
    from controller.update import build_bundle

    return build_bundle(wheels, out, version)


@pytest.fixture(scope="session")
def bundles(tools: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1: this tree (with its installer unpacked beside it); v2: the same code as a
    newer version; bad: a newer version whose daemon exits at start."""
    work = tmp_path_factory.mktemp("bundles")
    v1 = work / "v1.tar"
    subprocess.run(
        ["sh", str(REPO / "deploy" / "build-bundle.sh"), str(v1)],
        check=True,
        capture_output=True,
        env={"PYTHON": sys.executable, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )
    with tarfile.open(v1) as tar:
        tar.extractall(work / "v1", filter="data")
    v2_tree = _copy_tree(work / "v2-src")
    _set_version(v2_tree, "0.1.0.post2")
    v2 = _rebundle(v2_tree, work / "v1", work / "v2.tar", "0.1.0.post2")
    bad_tree = _copy_tree(work / "bad-src")
    _set_version(bad_tree, "0.1.0.post3")
    daemon = bad_tree / "controller" / "daemon.py"
    daemon.write_text(
        daemon.read_text().replace(
            '    """Run until a signal (None) or a reset (the reset\'s reason)."""\n',
            '    """Run until a signal (None) or a reset (the reset\'s reason)."""\n'
            '    raise SystemExit("this release is broken on purpose")\n',
            1,
        )
    )
    assert "broken on purpose" in daemon.read_text()
    bad = _rebundle(bad_tree, work / "v1", work / "bad.tar", "0.1.0.post3")
    return {"dir": work, "v1": v1, "v2": v2, "bad": bad}


@pytest.fixture(scope="module")
def csms() -> Iterator[CsmsThread]:
    with CsmsThread(id_tags={CARD: "Accepted"}) as central:
        yield central


def config_for(csms: CsmsThread) -> str:
    return f"""
[station]
id = "CP-SYSTEM-1"
[csms]
url = "{csms.url}"
reconnect_min = 0.5
reconnect_max = 2.0
[[connectors]]
max_current = 16
[ocpp.keys]
MeterValueSampleInterval = 5
"""


@pytest.fixture(scope="module")
def device(
    bundles: dict[str, Path], csms: CsmsThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    """A booted Debian with evsed installed by deploy/install.sh from the v1 bundle,
    configured for the test CSMS; the test drop-ins shorten the watchdog and the
    update's health-check timeout, and enable the test hooks."""
    work = tmp_path_factory.mktemp("device")
    box = Container.fresh(work, {bundles["dir"]: "/mnt/evsed"})
    installed = box.run_offline("/mnt/evsed/v1/install.sh", "--bundle", "/mnt/evsed/v1.tar")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    (box.root / "etc/evsed/evsed.toml").write_text(config_for(csms))
    for unit, text in {
        "evsed.service": "[Service]\nEnvironment=EVSED_TEST_HOOKS=1\nWatchdogSec=3s\n",
        "evsed-update.service": (
            "[Service]\nExecStart=\n"
            "ExecStart=/opt/evsed/confirmed/bin/evsed update apply --timeout 40\n"
        ),
    }.items():
        dropin = box.root / f"etc/systemd/system/{unit}.d"
        dropin.mkdir(parents=True, exist_ok=True)
        (dropin / "test.conf").write_text(text)
    box.boot()  # stops the container again if it does not come up
    try:
        yield box
    finally:
        box.poweroff()
