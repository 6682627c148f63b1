"""The daemon starts without loading cryptography (about 14 MB) until a feature uses it."""

from __future__ import annotations

import subprocess
import sys

from controller.lazy import lazy_module


def test_importing_the_daemon_leaves_cryptography_unloaded() -> None:
    check = (
        "import sys, controller.daemon, controller.certificates, controller.firmware_signature;"
        "loaded = [m for m in sys.modules if m.startswith('cryptography.hazmat.bindings')];"
        "sys.exit(1 if loaded else 0)"
    )
    assert subprocess.run([sys.executable, "-c", check]).returncode == 0


def test_a_lazy_module_behaves_as_the_module_once_used() -> None:
    json = lazy_module("json")
    assert json.dumps([1]) == "[1]"
    assert json.loads("[2]") == [2]
