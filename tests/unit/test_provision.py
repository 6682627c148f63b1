"""Headless provisioning from the boot partition (controller.provision)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.config import load_config
from controller.provision import failed_provisioning, provision

VALID = """
[station]
id = "CP-BOOT-1"
[csms]
url = "ws://csms.example:9000/ocpp"
password = "a-password-of-16+chars"
[state]
dir = "state"
[[connectors]]
max_current = 16
"""


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path, Path]:
    boot, etc, state = tmp_path / "boot", tmp_path / "etc", tmp_path / "state"
    for d in (boot, etc, state):
        d.mkdir()
    return boot / "evsed.toml", etc / "evsed.toml", state


def test_a_valid_file_replaces_the_configuration_and_leaves_the_boot_partition(
    places: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source, target, state = places
    target.write_text('[station]\nid = "OLD"\n[csms]\nurl = "ws://old:1"\n')
    source.write_text(VALID)
    (state / "provisioning-failed.json").write_text('{"problems": ["old"]}')
    assert provision((source,), target, state) == 0
    assert load_config(target).station.id == "CP-BOOT-1"
    # relative paths resolve where the file now lives, not on the boot partition
    assert load_config(target).state.dir == target.parent / "state"
    assert target.stat().st_mode & 0o777 == 0o640  # the password is not world-readable
    assert 'id = "OLD"' in target.with_name("evsed.toml.bak").read_text()
    assert not source.exists()
    assert failed_provisioning(state) is None
    assert "provisioned" in capsys.readouterr().out


def test_an_invalid_file_is_not_used_and_every_problem_is_reported(
    places: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source, target, state = places
    target.write_text(VALID)
    before = target.read_bytes()
    source.write_text(
        '[station]\nid = "bad id!"\n[csms]\nurl = "http://x"\n[hardware]\npilot = "?"\n'
    )
    assert provision((source,), target, state) == 1
    assert target.read_bytes() == before
    assert not source.exists()
    assert (source.parent / "evsed-invalid.toml").exists()
    report = (source.parent / "evsed-problems.txt").read_text()
    problems = failed_provisioning(state)
    assert problems is not None and len(problems) >= 3
    for key in ("station.id", "csms.url", "hardware.pilot"):
        assert key in report
        assert any(key in p for p in problems)
    err = capsys.readouterr().err
    assert err.startswith("<3>") and "hardware.pilot" in err
    assert json.loads((state / "provisioning-failed.json").read_text())["source"] == str(source)


def test_nothing_on_the_boot_partition_changes_nothing(places: tuple[Path, Path, Path]) -> None:
    source, target, state = places
    assert provision((source,), target, state) == 0
    assert not target.exists()
