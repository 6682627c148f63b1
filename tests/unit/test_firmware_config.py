"""The [firmware] table of the configuration: defaults, the example file, problems."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from controller.config import ConfigError, FirmwareConfig, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "evsed.example.toml"
BASE: dict[str, Any] = {
    "station": {"id": "CP-1"},
    "csms": {"url": "ws://127.0.0.1:9000"},
    "connectors": [{"max_current": 16}],
}


def firmware(table: dict[str, Any], base_dir: Path | None = None) -> FirmwareConfig:
    return parse_config(BASE | {"firmware": table}, base_dir).firmware


def problems(table: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE | {"firmware": table})
    return [str(p) for p in caught.value.problems]


def test_the_defaults() -> None:
    assert parse_config(BASE).firmware == FirmwareConfig()
    assert FirmwareConfig().installer == "update"


def test_the_example_file_lists_every_key_with_its_default() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert set(data["firmware"]) == {f.name for f in dataclasses.fields(FirmwareConfig)}
    assert load_config(EXAMPLE).firmware == FirmwareConfig()


def test_a_command_installer_and_paths(tmp_path: Path) -> None:
    config = firmware(
        {
            "installer": "command",
            "install_command": ["/usr/bin/flash", "--image", "{file}"],
            "manufacturer_roots": "roots.pem",
            "ca_file": "/etc/ssl/extra.pem",
            "log_file": "daemon.log",
            "update_root": "root",
            "max_download_mb": 64,
            "transfer_timeout": 5,
        },
        tmp_path,
    )
    assert config.install_command == ("/usr/bin/flash", "--image", "{file}")
    assert config.manufacturer_roots == tmp_path / "roots.pem"
    assert config.ca_file == Path("/etc/ssl/extra.pem")
    assert config.log_file == tmp_path / "daemon.log"
    assert config.update_root == tmp_path / "root"
    assert (config.max_download_mb, config.transfer_timeout) == (64, 5)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"installer": "flash"}, "firmware.installer: must be one of: update, command"),
        ({"installer": "command"}, 'firmware.install_command: required with installer = "command"'),
        ({"install_command": "flash {file}"}, "firmware.install_command: expected an array"),
        ({"install_command": ["flash", ""]}, "firmware.install_command: expected an array"),
        ({"install_command": ["flash"]}, 'firmware.install_command: no argument holds "{file}"'),
        ({"max_download_mb": 0}, "firmware.max_download_mb: must be"),
        ({"transfer_timeout": 0}, "firmware.transfer_timeout: must be"),
        ({"ca_file": 3}, "firmware.ca_file: expected a string"),
        ({"log_file": "a\0b"}, "firmware.log_file: must not contain a NUL"),
        ({"colour": "blue"}, "firmware.colour: unknown key"),
    ],
)
def test_problems_name_their_key(table: dict[str, Any], expected: str) -> None:
    found = problems(table)
    assert any(p.startswith(expected) for p in found), found
