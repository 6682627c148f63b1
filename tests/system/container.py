"""A Debian bookworm system in a systemd-nspawn container, for testing evsed as installed.

The root file system is made once with debootstrap from Debian's archive and kept
in a cache directory (EVSED_SYSTEM_CACHE, default /var/tmp/evsed-system); each test
session boots a fresh copy of it. The container shares the host's network, so the
daemon inside reaches a test CSMS listening on the host's loopback. Commands run
inside the booted system through nsenter (no systemd-machined is needed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "ca-certificates"]
MIRROR = os.environ.get("EVSED_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("EVSED_SYSTEM_CACHE", "/var/tmp/evsed-system"))
NSPAWN = ["systemd-nspawn", "--register=no", "--keep-unit", "-q"]
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Unavailable(Exception):
    """This machine cannot run the system tests; the message says why."""


def require_tools() -> None:
    """Root, systemd-nspawn and debootstrap; installed with apt-get when missing."""
    if os.geteuid() != 0:
        raise Unavailable("the system tests boot a container with systemd-nspawn: run as root")
    missing = [t for t in ("systemd-nspawn", "debootstrap", "nsenter") if not shutil.which(t)]
    if missing and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "systemd-container", "debootstrap"],
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        missing = [t for t in missing if not shutil.which(t)]
    if missing:
        raise Unavailable(
            f"missing {', '.join(missing)}: apt-get install systemd-container debootstrap"
        )


def base_rootfs() -> Path:
    """The cached Debian root (made on first use: about a minute and 300 MB)."""
    root = CACHE / ("bookworm-" + "-".join(sorted(PACKAGES)).replace("/", "_"))
    if (root / "etc" / "os-release").exists() and (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            "bookworm",
            str(root),
            MIRROR,
        ],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"debootstrap from {MIRROR} failed: {made.stderr.strip()[-500:]}")
    (root / ".complete").touch()
    return root


def _command(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Container:
    def __init__(self, root: Path, binds: dict[Path, str]) -> None:
        self.root = root
        self.binds = [f"--bind-ro={host}:{inside}" for host, inside in binds.items()]
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None
        self.console = root.parent / (root.name + ".console.log")

    @classmethod
    def fresh(cls, work: Path, binds: dict[Path, str]) -> Container:
        root = work / "rootfs"
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["cp", "-a", "--reflink=auto", str(base_rootfs()), str(root)], check=True)
        return cls(root, binds)

    def run_offline(
        self, *cmd: str, network: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the container's file system, without booting it (and, with
        network=False, without any network but loopback)."""
        isolated = [] if network else ["--private-network"]
        return subprocess.run(
            [
                *NSPAWN,
                *isolated,
                *self.binds,
                "-D",
                str(self.root),
                "--pipe",
                "/usr/bin/env",
                PATH,
                *cmd,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def boot(self, timeout: float = 120) -> None:
        """Boot the container's systemd and wait until it is running; on failure the
        container is stopped again."""
        try:
            self._boot(timeout)
        except BaseException:
            self.poweroff()
            raise

    def _boot(self, timeout: float) -> None:
        console = open(self.console, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [*NSPAWN, *self.binds, "-D", str(self.root), "-b", "--console=pipe"],
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        console.close()
        deadline = time.monotonic() + timeout
        while self.leader is None:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"the container did not start:\n{self.console_log()}")
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            # the container's init, once nspawn has exec'd it (not a helper child)
            self.leader = next((int(p) for p in pids if _command(p) == "systemd"), None)
            time.sleep(0.1)
        while True:
            done = self.exec("systemctl", "is-system-running")
            state = done.stdout.strip()
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the container's system is {state!r} ({done.stderr.strip()[-300:]}):\n"
                    f"{self.console_log()}"
                )
            time.sleep(0.3)

    def exec(self, *cmd: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a command inside the booted system (all its namespaces)."""
        assert self.leader is not None, "boot() first"
        return subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", "/usr/bin/env", "-i", PATH, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def check(self, *cmd: str, timeout: float = 300) -> str:
        done = self.exec(*cmd, timeout=timeout)
        assert done.returncode == 0, (
            f"{' '.join(cmd)}: {done.returncode}\n{done.stdout}{done.stderr}"
        )
        return done.stdout

    def show(self, unit: str, prop: str) -> str:
        return self.check("systemctl", "show", "-P", prop, unit).strip()

    def console_log(self) -> str:
        return self.console.read_text(errors="replace")[-5000:] if self.console.exists() else ""

    def poweroff(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's init to halt
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.leader = None
