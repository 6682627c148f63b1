"""The [csms] security keys: security_profile and the PEM files an installer provides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.config import ConfigError, parse_config
from tests.pki import make_ca

PASSWORD = "Station-Password-0001"


def document(**csms: Any) -> dict[str, Any]:
    return {
        "station": {"id": "CP-1"},
        "csms": {"url": "wss://csms.example/ocpp", **csms},
        "connectors": [{"max_current": 16}],
    }


def problems(data: dict[str, Any], base_dir: Path | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir)
    return {problem.path: problem.reason for problem in info.value.problems}


@pytest.fixture
def pem_files(tmp_path: Path) -> Path:
    ca = make_ca()
    (tmp_path / "root.pem").write_text(ca.pem)
    (tmp_path / "client.key").write_text(ca.key_pem)
    (tmp_path / "notes.txt").write_text("no PEM here")
    return tmp_path


def test_defaults_are_profile_0_without_files() -> None:
    csms = parse_config(document()).csms
    assert csms.security_profile == 0
    assert csms.ca_certificate is csms.client_certificate is csms.client_key is None


def test_profile_2_with_files_relative_to_the_configuration(pem_files: Path) -> None:
    data = document(
        security_profile=3,
        password=PASSWORD,
        ca_certificate="root.pem",
        client_certificate="root.pem",
        client_key="client.key",
    )
    csms = parse_config(data, pem_files).csms
    assert csms.security_profile == 3
    assert csms.ca_certificate == pem_files / "root.pem"
    assert csms.client_key == pem_files / "client.key"


def test_every_security_problem_with_its_key(pem_files: Path) -> None:
    data = document(
        url="ws://csms.example/ocpp",
        security_profile=2,
        ca_certificate="missing.pem",
        client_certificate="notes.txt",
    )
    found = problems(data, pem_files)
    assert found["csms.url"] == "must be wss:// for csms.security_profile 2 (TLS)"
    assert found["csms.password"] == "required for csms.security_profile 2 (HTTP Basic auth)"
    assert found["csms.ca_certificate"].startswith("cannot read ")
    assert found["csms.client_certificate"].endswith("holds no PEM certificate")
    assert set(found) == {
        "csms.url",
        "csms.password",
        "csms.ca_certificate",
        "csms.client_certificate",
    }


def test_a_client_certificate_needs_its_key(pem_files: Path) -> None:
    found = problems(document(client_certificate="root.pem"), pem_files)
    assert found == {"csms.client_key": "csms.client_certificate and csms.client_key go together"}
    found = problems(document(client_key="root.pem"), pem_files)
    assert found == {"csms.client_key": f"{pem_files / 'root.pem'} holds no PEM private key"}


@pytest.mark.parametrize("value", [4, -1, "2", True])
def test_the_profile_is_0_to_3(value: Any) -> None:
    assert set(problems(document(security_profile=value))) == {"csms.security_profile"}


def test_profile_1_wants_a_password_and_takes_ws() -> None:
    found = problems(document(url="ws://csms.example/ocpp", security_profile=1))
    assert found == {"csms.password": "required for csms.security_profile 1 (HTTP Basic auth)"}
    data = document(url="ws://csms.example/ocpp", security_profile=1, password=PASSWORD)
    assert parse_config(data).csms.security_profile == 1


def test_a_private_key_is_never_quoted(pem_files: Path) -> None:
    key = (pem_files / "client.key").read_text()
    found = problems(document(ca_certificate="client.key"), pem_files)
    assert key.splitlines()[1] not in found["csms.ca_certificate"]
