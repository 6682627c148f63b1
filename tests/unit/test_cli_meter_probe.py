"""`evsed meter probe PORT` finds a meter on a real RTU line and prints its config."""

import tomllib

import pytest

from controller.cli import main
from hwsim.modbus_meter import ModbusMeterSim


def test_probe_prints_a_valid_config_snippet(capsys: pytest.CaptureFixture[str]) -> None:
    sim = ModbusMeterSim().start()
    try:
        sim.add("eastron_sdm630", 2)
        assert main(["meter", "probe", sim.port]) == 0
    finally:
        sim.stop()
    out = capsys.readouterr().out
    snippet = out[out.index("[[meters]]") :]
    meters = tomllib.loads(snippet)["meters"]
    assert meters[0]["model"] in ("eastron_sdm630", "eastron_sdm72d_m")
    assert (meters[0]["unit_id"], meters[0]["baud"], meters[0]["port"]) == (2, 9600, sim.port)


def test_probe_reports_nothing_found(capsys: pytest.CaptureFixture[str]) -> None:
    sim = ModbusMeterSim().start()
    try:
        assert main(["meter", "probe", sim.port, "--max-unit-id", "1"]) == 1
    finally:
        sim.stop()
    assert "no meter answered" in capsys.readouterr().out
