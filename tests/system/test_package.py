"""The Debian package: built by deploy/build-deb.sh, installed with dpkg on a Debian
system without network (the wheels are inside), started by systemd, removed cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.system.conftest import REPO
from tests.system.container import Container

pytestmark = pytest.mark.system


def test_the_package_installs_offline_runs_and_purges(
    tools: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("deb")
    built = subprocess.run(
        ["sh", str(REPO / "deploy" / "build-deb.sh"), str(work)],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )
    assert built.returncode == 0, built.stderr
    deb = Path(built.stdout.strip().splitlines()[-1])
    box = Container.fresh(work, {deb.parent: "/mnt/deb"})
    installed = box.run_offline("dpkg", "-i", f"/mnt/deb/{deb.name}", network=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (box.root / "etc/evsed/evsed.toml").exists()
    box.boot()  # stops the container again if it does not come up
    try:
        state = ""
        for _ in range(100):
            state = box.show("evsed.service", "ActiveState")
            if state == "active":
                break
            subprocess.run(["sleep", "0.3"])
        assert state == "active", box.exec("journalctl", "-u", "evsed", "--no-pager").stdout
        assert box.check("evsed", "--version").startswith("evsed ")
        assert "connector 1" in box.show("evsed.service", "StatusText")
        box.check("dpkg", "--purge", "evsed")
        assert box.show("evsed.service", "LoadState") == "not-found"
        for gone in ("opt/evsed", "etc/evsed", "var/lib/evsed", "usr/local/bin/evsed"):
            assert not (box.root / gone).exists(), gone
    finally:
        box.poweroff()
