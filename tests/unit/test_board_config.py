"""Board wiring in the configuration: defaults per connector, pin and channel conflicts,
combinations that cannot be wired, [[meters]] buses, simulate_board and the watchdog."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

import controller.config as config_module
from controller.config import (
    DEFAULT_WIRING,
    BoardConfig,
    ConfigError,
    ConnectorConfig,
    HardwareConfig,
    MeterConfig,
    meter_models,
    parse_config,
    used_pins,
)

REAL = {"pilot": "gpio", "contactor": "gpio", "meter": "modbus", "reader": "mfrc522"}
SIM = {"pilot": "sim", "contactor": "sim", "meter": "sim", "reader": "sim"}

# Stand-in register maps, so these tests do not depend on the shipped ones.
MAPS = {
    "sdm630": 'model = "sdm630"\n[serial]\nbaud = 9600\nparity = "N"\nstopbits = 1\n',
    "sdm120": 'model = "sdm120"\n[serial]\nbaud = 2400\nparity = "N"\nstopbits = 1\n',
    "other630": 'model = "other630"\n[serial]\nbaud = 9600\nparity = "N"\nstopbits = 1\n',
    "nodefaults": 'model = "nodefaults"\n',
}


@pytest.fixture(autouse=True)
def maps_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "maps"
    directory.mkdir()
    for model, text in MAPS.items():
        (directory / f"{model}.toml").write_text(text, encoding="utf-8")
    monkeypatch.setattr(config_module, "meter_maps_dir", lambda: directory)
    return directory


def meter(port: str = "/dev/ttyUSB0", **keys: Any) -> dict[str, Any]:
    return {"model": "sdm630", "port": port, **keys}


def document(
    connectors: list[dict[str, Any]] | int = 1,
    *,
    hardware: dict[str, Any] | None = None,
    board: dict[str, Any] | None = None,
    meters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A valid document with every real driver; one meter per connector on one bus."""
    if isinstance(connectors, int):
        connectors = [{"max_current": 16} for _ in range(connectors)]
    hardware = dict(REAL) if hardware is None else hardware
    data: dict[str, Any] = {
        "station": {"id": "CP-1"},
        "csms": {"url": "ws://csms.example/ocpp"},
        "hardware": hardware,
        "connectors": connectors,
    }
    if board is not None:
        data["board"] = board
    if meters is None and hardware.get("meter") == "modbus":
        meters = [meter(unit_id=n) for n in range(1, len(connectors) + 1)]
    if meters is not None:
        data["meters"] = meters
    return data


def problems_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    found = {problem.path: problem.reason for problem in info.value.problems}
    assert len(found) == len(info.value.problems), "one problem per path expected"
    return found


def only_problem(data: dict[str, Any]) -> tuple[str, str]:
    [(path, reason)] = problems_of(data).items()
    return path, reason


# --- defaults ---------------------------------------------------------------

CONNECTOR_1_PINS = {
    12: "connectors[1].pwm_pin",
    17: "connectors[1].contactor_pin",
    22: "connectors[1].rcm_fault_pin",
    23: "connectors[1].rcm_test_pin",
    27: "connectors[1].contactor_feedback_pin",
}
CONNECTOR_2_PINS = {
    13: "connectors[2].pwm_pin",
    16: "connectors[2].contactor_feedback_pin",
    20: "connectors[2].rcm_fault_pin",
    21: "connectors[2].rcm_test_pin",
    24: "connectors[2].contactor_pin",
}
BOARD_PINS = {
    7: "board.adc_spi_device",  # SPI0 CE1
    8: "board.reader_spi_device",  # SPI0 CE0
    9: "board.adc_spi_bus",
    10: "board.adc_spi_bus",
    11: "board.adc_spi_bus",
    25: "board.reader_reset_pin",
}


def test_defaults_for_one_connector_are_valid() -> None:
    config = parse_config(document(1))
    assert config.board == BoardConfig()
    assert config.connectors == (ConnectorConfig(max_current=16.0),)
    assert config.meters == (MeterConfig(model="sdm630", port="/dev/ttyUSB0"),)
    assert used_pins(config) == dict(sorted({**BOARD_PINS, **CONNECTOR_1_PINS}.items()))


def test_defaults_for_two_connectors_are_valid() -> None:
    config = parse_config(document(2))
    first, second = config.connectors
    for number, connector in ((1, first), (2, second)):
        wiring = DEFAULT_WIRING[number]
        assert connector.pwm_pin == wiring.pwm_pin
        assert connector.pwm_channel == wiring.pwm_channel
        assert connector.cp_adc_channel == wiring.cp_adc_channel
        assert connector.pp_adc_channel is None  # fixed cables
        assert connector.contactor_pin == wiring.contactor_pin
        assert connector.contactor_feedback_pin == wiring.contactor_feedback_pin
        assert (connector.rcm_fault_pin, connector.rcm_test_pin) == (
            wiring.rcm_fault_pin,
            wiring.rcm_test_pin,
        )
        assert connector.lock_pin is connector.lock_feedback_pin is None
    assert [m.unit_id for m in config.meters] == [1, 2]
    assert used_pins(config) == dict(
        sorted({**BOARD_PINS, **CONNECTOR_1_PINS, **CONNECTOR_2_PINS}.items())
    )


def test_defaults_for_two_socket_outlets_with_locks_are_valid() -> None:
    config = parse_config(document([{"max_current": 32, "lock": True}] * 2))
    first, second = config.connectors
    assert (first.cable, first.pp_adc_channel, first.lock_pin, first.lock_feedback_pin) == (
        "socket",
        1,
        5,
        6,
    )
    assert (second.cable, second.pp_adc_channel, second.lock_pin, second.lock_feedback_pin) == (
        "socket",
        3,
        26,
        4,
    )
    assert first.fixed_cable_rating is None
    pins = used_pins(config)
    assert {pin: pins[pin] for pin in (4, 5, 6, 26)} == {
        4: "connectors[2].lock_feedback_pin",
        5: "connectors[1].lock_pin",
        6: "connectors[1].lock_feedback_pin",
        26: "connectors[2].lock_pin",
    }


def test_existing_simulator_configs_stay_valid_and_use_no_pins() -> None:
    data = document(2, hardware={})
    config = parse_config(data)
    assert config.hardware == HardwareConfig()
    assert config.board == BoardConfig()
    assert config.meters == ()
    assert used_pins(config) == {}


def test_fixed_cable_rating_defaults_to_max_current() -> None:
    config = parse_config(document([{"max_current": 32}, {"max_current": 32, "cable_rating": 20}]))
    assert [c.fixed_cable_rating for c in config.connectors] == [32.0, 20.0]


def test_false_means_not_fitted() -> None:
    config = parse_config(
        document(
            [{"max_current": 16, "rcm_fault_pin": False, "rcm_test_pin": False}],
            board={"reader_reset_pin": False, "led_pin": False},
        )
    )
    assert config.board.reader_reset_pin is None
    assert config.board.led_pin is None
    assert config.connectors[0].rcm_fault_pin is config.connectors[0].rcm_test_pin is None
    pins = used_pins(config)
    assert 25 not in pins and 22 not in pins and 23 not in pins


def test_simulated_and_real_parts_do_not_mix() -> None:
    found = problems_of(document(1, hardware={**REAL, "meter": "sim"}))
    assert found == {
        "hardware.pilot": "cannot mix with the simulated meter: simulate all parts or none",
        "hardware.contactor": "cannot mix with the simulated meter: simulate all parts or none",
    }
    found = problems_of(document(1, hardware={**REAL, "reader": "sim"}))
    assert found == {"hardware.reader": 'the real drivers need a real reader: "mfrc522" or "none"'}
    found = problems_of(document(2, hardware={**REAL, "simulate_board": True}))
    assert found == {
        "connectors": "the simulated board (hardware.simulate_board) has one connector"
    }


def test_only_pins_of_real_drivers_count() -> None:
    """With the simulators, the wiring is not used: clashes are fine, bad values are not."""
    wiring = {"max_current": 16, "contactor_pin": 10, "pwm_pin": 18}
    config = parse_config(document([wiring, {"max_current": 16, "contactor_pin": 10}], hardware={}))
    assert used_pins(config) == {}
    # The reader alone on SPI0 still reserves it; the simulated contactor's pins do not count.
    found = problems_of(
        document([wiring], hardware={**SIM, "reader": "mfrc522"}, board={"reader_reset_pin": 10})
    )
    assert found == {
        "board.reader_reset_pin": "GPIO10 is already used by board.reader_spi_bus (SPI0 MOSI)",
        "hardware.reader": 'the simulated station has a simulated reader: "sim" or "none"',
    }
    found = problems_of(document([{"max_current": 16, "contactor_pin": 40}], hardware={}))
    assert found == {
        "connectors[1].contactor_pin": "must be a BCM GPIO number from 0 to 27, got 40"
    }


# --- GPIO conflicts ---------------------------------------------------------


def test_a_pin_used_by_two_connectors() -> None:
    found = problems_of(document([{"max_current": 16}, {"max_current": 16, "contactor_pin": 17}]))
    assert found == {
        "connectors[2].contactor_pin": "GPIO17 is already used by connectors[1].contactor_pin"
    }


def test_the_problem_lands_on_the_key_the_installer_wrote() -> None:
    found = problems_of(document([{"max_current": 16, "contactor_pin": 24}, {"max_current": 16}]))
    assert found == {
        "connectors[1].contactor_pin": "GPIO24 is already used by connectors[2].contactor_pin"
    }


def test_a_pin_used_twice_within_a_connector_and_by_the_board() -> None:
    found = problems_of(
        document(
            [{"max_current": 16, "lock": True, "lock_pin": 27}],
            board={"led_pin": 22, "emergency_stop_pin": 4},
        )
    )
    assert found == {
        "connectors[1].lock_pin": "GPIO27 is already used by connectors[1].contactor_feedback_pin",
        "board.led_pin": "GPIO22 is already used by connectors[1].rcm_fault_pin",
    }


@pytest.mark.parametrize(
    ("pin", "owner"),
    [
        (9, "board.adc_spi_bus (SPI0 MISO)"),
        (11, "board.adc_spi_bus (SPI0 SCLK)"),
        (7, "board.adc_spi_device (SPI0 CE1)"),
        (8, "board.reader_spi_device (SPI0 CE0)"),
        (25, "board.reader_reset_pin"),
    ],
)
def test_spi0_and_reader_pins_are_reserved(pin: int, owner: str) -> None:
    found = problems_of(document([{"max_current": 16, "rcm_test_pin": pin}]))
    assert found == {"connectors[1].rcm_test_pin": f"GPIO{pin} is already used by {owner}"}


def test_both_spi0_chip_selects_are_reserved_even_with_one_device() -> None:
    found = problems_of(
        document([{"max_current": 16, "cp_disconnect_pin": 8}], hardware={**REAL, "reader": "none"})
    )
    assert found == {
        "connectors[1].cp_disconnect_pin": "GPIO8 is already used by board.adc_spi_bus "
        "(SPI0 CE0, reserved while SPI0 is enabled)"
    }


def test_the_adc_and_the_reader_need_their_own_chip_selects() -> None:
    found = problems_of(document(1, board={"reader_spi_device": 1}))
    assert found == {
        "board.reader_spi_device": "SPI0 device 1 is already used by board.adc_spi_device "
        "(the pilot ADC); the RFID reader needs its own chip select"
    }
    # On different buses they may have the same device number.
    board = {"adc_spi_device": 0, "reader_spi_bus": 1, "reader_spi_device": 0}
    pins = used_pins(parse_config(document(1, board=board)))
    assert (pins[8], pins[18]) == ("board.adc_spi_device", "board.reader_spi_device")
    assert pins[7] == "board.adc_spi_bus"  # SPI0 keeps both chip selects
    assert pins[17] == "connectors[1].contactor_pin"  # SPI1 takes only the CE in use


def test_spi1_pins_clash_with_the_default_wiring() -> None:
    found = problems_of(document(1, board={"adc_spi_bus": 1}))
    assert found == {
        "board.adc_spi_device": "GPIO17 (SPI1 CE1) is already used by connectors[1].contactor_pin"
    }


def test_spi_bus_0_has_two_devices() -> None:
    path, reason = only_problem(document(1, board={"adc_spi_device": 2}))
    assert path == "board.adc_spi_device"
    assert reason == "SPI bus 0 has devices 0 (CE0, GPIO8) and 1 (CE1, GPIO7) only, got 2"


@pytest.mark.parametrize("port", ["/dev/serial0", "/dev/ttyAMA0", "/dev/ttyS0"])
def test_the_header_uart_reserves_gpio14_and_15(port: str) -> None:
    data = document(1, board={"led_pin": 15}, meters=[meter(port)])
    assert problems_of(data) == {
        "board.led_pin": f"GPIO15 is already used by meters[1].port ({port} RXD)"
    }
    config = parse_config(document(1, board={"led_pin": 15}, meters=[meter("/dev/ttyUSB0")]))
    assert used_pins(config)[15] == "board.led_pin"


def test_two_names_for_the_header_uart_clash_once() -> None:
    found = problems_of(
        document(2, meters=[meter("/dev/serial0"), meter("/dev/ttyAMA0", unit_id=2)])
    )
    assert found == {
        "meters[2].port": "GPIO14 (/dev/ttyAMA0 TXD) is already used by meters[1].port "
        "(/dev/serial0 TXD)"
    }


# --- PWM and ADC channels ---------------------------------------------------


def test_pwm_pins_sharing_a_channel_on_pi_1_to_4() -> None:
    found = problems_of(
        document([{"max_current": 16}, {"max_current": 16, "pwm_pin": 18, "pwm_channel": 2}])
    )
    assert set(found) == {"connectors[2].pwm_pin"}
    reason = found["connectors[2].pwm_pin"]
    assert reason.startswith("GPIO18 and GPIO12 (connectors[1].pwm_pin) are both PWM0")
    assert "Pi 1-4" in reason and "GPIO12 and GPIO13" in reason
    # 18 + 19 is the other working pair.
    pins = [{"max_current": 16, "pwm_pin": 18}, {"max_current": 16, "pwm_pin": 19}]
    assert [c.pwm_pin for c in parse_config(document(pins)).connectors] == [18, 19]


def test_pwm_pin_and_channel_used_twice() -> None:
    found = problems_of(
        document([{"max_current": 16}, {"max_current": 16, "pwm_pin": 12, "pwm_channel": 0}])
    )
    assert found == {
        "connectors[2].pwm_pin": "GPIO12 is already used by connectors[1].pwm_pin",
        "connectors[2].pwm_channel": "PWM channel 0 is already used by connectors[1].pwm_channel",
    }


def test_pwm_channel_must_match_the_pin() -> None:
    found = problems_of(
        document([{"max_current": 16, "pwm_channel": 1}, {"max_current": 16, "pwm_pin": 19}])
    )
    # connectors[2] keeps channel 1, right for GPIO19 on a Pi 1-4; a wrong channel is
    # not also counted as a duplicate.
    assert found == {"connectors[1].pwm_channel": "GPIO12 is PWM channel 0 on every Pi, got 1"}
    found = problems_of(document([{"max_current": 16, "pwm_pin": 19, "pwm_channel": 2}]))
    assert found == {
        "connectors[1].pwm_channel": "GPIO19 is PWM channel 1 on Pi 1-4 or 3 on Pi 5, got 2"
    }


def test_adc_channels_are_distinct_across_cp_and_pp() -> None:
    found = problems_of(
        document(
            [
                {"max_current": 16, "cable": "socket"},  # CP 0, PP 1
                {"max_current": 16, "cp_adc_channel": 1, "cable": "socket", "pp_adc_channel": 0},
            ]
        )
    )
    assert found == {
        "connectors[2].cp_adc_channel": "ADC channel 1 is already used by "
        "connectors[1].pp_adc_channel",
        "connectors[2].pp_adc_channel": "ADC channel 0 is already used by "
        "connectors[1].cp_adc_channel",
    }
    found = problems_of(document([{"max_current": 16, "cable": "socket", "pp_adc_channel": 0}]))
    assert found == {
        "connectors[1].pp_adc_channel": "ADC channel 0 is already used by "
        "connectors[1].cp_adc_channel"
    }


# --- combinations that cannot be wired --------------------------------------


@pytest.mark.parametrize(
    ("connector", "path", "fragment"),
    [
        (
            {"phases": 1, "phase_contactor_pin": 2},
            "phase_contactor_pin",
            "needs connectors[1].phases = 3",
        ),
        (
            {"phase_feedback_pin": 3},
            "phase_feedback_pin",
            "needs connectors[1].phase_contactor_pin",
        ),
        (
            {"rcm_test_pin": False},
            "rcm_test_pin",
            "required when connectors[1].rcm_fault_pin is set",
        ),
        (
            {"rcm_fault_pin": False},
            "rcm_fault_pin",
            "required when connectors[1].rcm_test_pin is set",
        ),
        (
            {"lock": True, "cable": "fixed"},
            "lock",
            'needs connectors[1].cable = "socket": a fixed cable has no socket to lock',
        ),
        ({"lock": True, "lock_pin": False}, "lock_pin", "required when connectors[1].lock = true"),
        ({"lock_pin": 5}, "lock_pin", "only used with connectors[1].lock = true"),
        (
            {"cable": "socket", "pp_adc_channel": False},
            "pp_adc_channel",
            'required for a socket outlet (connectors[1].cable = "socket")',
        ),
        ({"cable": "socket", "cable_rating": 20}, "cable_rating", "only for a fixed cable"),
        ({"pp_adc_channel": 1}, "pp_adc_channel", "only for a socket outlet"),
    ],
)
def test_impossible_combinations(connector: dict[str, Any], path: str, fragment: str) -> None:
    found = problems_of(document([{"max_current": 16, **connector}]))
    assert list(found) == [f"connectors[1].{path}"]
    assert fragment in found[f"connectors[1].{path}"]


def test_phase_switching_with_feedback_is_accepted() -> None:
    config = parse_config(
        document([{"max_current": 16, "phase_contactor_pin": 2, "phase_feedback_pin": 3}])
    )
    assert (config.connectors[0].phase_contactor_pin, config.connectors[0].phase_feedback_pin) == (
        2,
        3,
    )
    assert used_pins(config)[3] == "connectors[1].phase_feedback_pin"


# --- [[meters]] -------------------------------------------------------------


def test_modbus_needs_one_meter_per_connector() -> None:
    assert problems_of(document(2, meters=[]))["meters"].endswith("expected 2, got 0")
    found = problems_of({k: v for k, v in document(1).items() if k != "meters"})
    assert found["meters"].startswith('required: hardware.meter = "modbus" needs one [[meters]]')
    # Unused meters are allowed, but still checked.
    meters = [meter(unit_id=n) for n in (1, 2, 3)]
    config = parse_config(document(1, hardware=SIM, meters=meters))
    assert len(config.meters) == 3
    found = problems_of(document(1, hardware={}, meters=[{"model": "sdm630", "unit_id": 0}]))
    assert found == {
        "meters[1].port": "required",
        "meters[1].unit_id": "must be between 1 and 247, got 0",
    }


def test_meter_models_come_from_the_maps(maps_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert meter_models() == frozenset(MAPS)
    found = problems_of(document(1, meters=[meter(model="sdm999")]))
    assert found == {
        "meters[1].model": "unknown meter model 'sdm999' "
        "(known: nodefaults, other630, sdm120, sdm630)"
    }
    monkeypatch.setattr(config_module, "meter_maps_dir", lambda: maps_dir / "missing")
    assert meter_models() is None
    assert parse_config(document(1, meters=[meter(model="sdm999")])).meters[0].model == "sdm999"
    assert problems_of(document(1, meters=[meter(model="")])) == {
        "meters[1].model": "must not be empty"
    }


def test_meter_model_check_against_the_shipped_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    models = meter_models()
    if models is None:
        pytest.skip("no register maps installed")
    assert models
    assert set(problems_of(document(1, meters=[meter(model="no-such-meter")]))) == {
        "meters[1].model"
    }


def test_meters_on_one_port_share_the_bus_settings() -> None:
    found = problems_of(
        document(
            2,
            meters=[
                meter(baud=19200, parity="E", stopbits=1),
                meter(baud=9600, parity="E", stopbits=2, unit_id=2),
            ],
        )
    )
    assert found == {
        "meters[2].baud": "meters on /dev/ttyUSB0 share one bus and need the same baud: "
        "meters[1] uses 19200, got 9600",
        "meters[2].stopbits": "meters on /dev/ttyUSB0 share one bus and need the same "
        "stopbits: meters[1] uses 1, got 2",
    }


def test_model_defaults_are_compared_through_the_maps() -> None:
    # 9600 8N1 from either map, or written out: one bus.
    parse_config(document(2, meters=[meter(), meter(model="other630", unit_id=2)]))
    parse_config(document(2, meters=[meter(), meter(model="sdm120", baud=9600, unit_id=2)]))
    found = problems_of(document(2, meters=[meter(), meter(model="sdm120", unit_id=2)]))
    assert found == {
        "meters[2].baud": "meters on /dev/ttyUSB0 share one bus and need the same baud: "
        "meters[1] uses 9600, got 2400"
    }
    found = problems_of(document(2, meters=[meter(), meter(model="nodefaults", unit_id=2)]))
    assert set(found) == {"meters[2].baud", "meters[2].parity", "meters[2].stopbits"}
    assert found["meters[2].baud"].endswith(
        "the default of sdm630 or nodefaults is unknown; set baud"
    )


def test_unit_ids_are_distinct_per_port() -> None:
    found = problems_of(document(2, meters=[meter(), meter()]))
    assert found == {
        "meters[2].unit_id": "unit id 1 on /dev/ttyUSB0 is already used by meters[1].unit_id"
    }
    # Separate ports are separate buses.
    parse_config(document(2, meters=[meter("/dev/ttyUSB0"), meter("/dev/ttyUSB1", baud=2400)]))


def test_meter_values_are_checked() -> None:
    found = problems_of(
        document(
            1,
            meters=[
                meter(baud=12345, parity="e", stopbits=3, timeout=0, retries=9, extra=1),
            ],
        )
    )
    assert set(found) == {
        "meters[1].baud",
        "meters[1].parity",
        "meters[1].stopbits",
        "meters[1].timeout",
        "meters[1].retries",
        "meters[1].extra",
    }
    assert "9600" in found["meters[1].baud"]
    assert found["meters[1].extra"] == "unknown key"


# --- [hardware]: simulate_board and the watchdog ----------------------------


def test_simulate_board_refuses_simulated_parts() -> None:
    found = problems_of(document(1, hardware={"simulate_board": True, "meter": "modbus"}))
    assert found == {
        "hardware.pilot": 'simulate_board runs the real drivers; choose "gpio"',
        "hardware.contactor": 'simulate_board runs the real drivers; choose "gpio"',
        "hardware.reader": 'simulate_board runs the real drivers; choose "mfrc522" or "none"',
    }
    config = parse_config(document(1, hardware={**REAL, "simulate_board": True, "reader": "none"}))
    assert config.hardware.simulate_board


def test_watchdog() -> None:
    config = parse_config(
        document(1, hardware={**REAL, "watchdog": "/dev/watchdog", "watchdog_timeout": 30})
    )
    assert (config.hardware.watchdog, config.hardware.watchdog_timeout) == ("/dev/watchdog", 30)
    found = problems_of(document(1, hardware={"watchdog": "watchdog", "watchdog_timeout": 61}))
    assert found == {
        "hardware.watchdog": 'must be an absolute device path such as "/dev/watchdog", '
        'or "" for none',
        "hardware.watchdog_timeout": "must be between 5 and 60 s, got 61",
    }
    assert problems_of(document(1, hardware={"watchdog_timeout": 15.5})) == {
        "hardware.watchdog_timeout": "expected an integer, got float"
    }


# --- types and ranges -------------------------------------------------------


def test_board_values_are_checked() -> None:
    found = problems_of(
        document(
            1,
            board={
                "pwm_sysfs": "sys/class/pwm",
                "adc": "ads1115",
                "adc_spi_bus": 7,
                "cp_gain": 0,
                "cp_offset": 3.4,
                "pp_pullup_ohm": -1,
                "reader_reset_pin": True,
                "reader_poll_hz": 50,
                "emergency_stop_pin": "GPIO4",
                "emergency_stop_active_high": 1,
                "led_pin": 28,
                "colour": "red",
            },
        )
    )
    assert found == {
        "board.pwm_sysfs": "must be an absolute path",
        "board.adc": "must be one of: mcp3008, mcp3208 (got 'ads1115')",
        "board.adc_spi_bus": "must be between 0 and 6, got 7",
        "board.cp_gain": "must not be 0",
        "board.cp_offset": "must be between 0 and board.adc_vref (3.3 V), got 3.4",
        "board.pp_pullup_ohm": "must be greater than 0 ohm, got -1",
        "board.reader_reset_pin": "expected an integer or false (not used), got boolean",
        "board.reader_poll_hz": "must be between 1 and 20 Hz, got 50",
        "board.emergency_stop_pin": "expected an integer or false (not used), got string",
        "board.emergency_stop_active_high": "expected true or false, got integer",
        "board.led_pin": "must be a BCM GPIO number from 0 to 27, got 28",
        "board.colour": "unknown key",
    }


def test_connector_wiring_values_are_checked() -> None:
    found = problems_of(
        document(
            [
                {
                    "max_current": 16,
                    "cable": "tethered",
                    "cable_rating": 100,
                    "pwm_pin": 5,
                    "pwm_channel": 4,
                    "cp_adc_channel": 8,
                    "contactor_pin": False,
                    "contactor_feedback_pin": 27.0,
                    "contactor_settle": 2,
                }
            ]
        )
    )
    assert found == {
        "connectors[1].cable": "must be one of: fixed, socket (got 'tethered')",
        "connectors[1].cable_rating": "must be between 6 and 80 A, got 100",
        "connectors[1].pwm_pin": "must be a hardware-PWM pin (12, 13, 18, 19), got 5",
        "connectors[1].pwm_channel": "must be between 0 and 3, got 4",
        "connectors[1].cp_adc_channel": "must be between 0 and 7, got 8",
        "connectors[1].contactor_pin": "expected an integer, got boolean",
        "connectors[1].contactor_feedback_pin": "expected an integer or false (not used), "
        "got float",
        "connectors[1].contactor_settle": "must be between 0.02 and 1 s, got 2",
    }


def test_several_problems_are_all_reported_at_once() -> None:
    text = """\
[station]
id = "CP-1"

[csms]
url = "ws://csms.example/ocpp"

[hardware]
pilot = "gpio"
contactor = "gpio"
meter = "modbus"
reader = "mfrc522"
watchdog_timeout = 2

[board]
reader_spi_device = 1
led_pin = 10

[[connectors]]
max_current = 32
lock = true
cable = "fixed"
phases = 1
phase_contactor_pin = 2

[[connectors]]
max_current = 32
pwm_pin = 18
contactor_pin = 17
cp_adc_channel = 0

[[meters]]
model = "sdm630"
port = "/dev/serial0"

[[meters]]
model = "sdm630"
port = "/dev/serial0"
baud = 19200
"""
    found = problems_of(tomllib.loads(text))
    assert found == {
        "hardware.watchdog_timeout": "must be between 5 and 60 s, got 2",
        "connectors[1].lock": 'needs connectors[1].cable = "socket": a fixed cable has no '
        "socket to lock",
        "connectors[1].phase_contactor_pin": "needs connectors[1].phases = 3: it switches "
        "between one and three phases",
        "meters[2].unit_id": "unit id 1 on /dev/serial0 is already used by meters[1].unit_id",
        "meters[2].baud": "meters on /dev/serial0 share one bus and need the same baud: "
        "meters[1] uses 9600, got 19200",
        "board.led_pin": "GPIO10 is already used by board.adc_spi_bus (SPI0 MOSI)",
        "connectors[2].contactor_pin": "GPIO17 is already used by connectors[1].contactor_pin",
        "connectors[2].cp_adc_channel": "ADC channel 0 is already used by "
        "connectors[1].cp_adc_channel",
        "connectors[2].pwm_pin": found["connectors[2].pwm_pin"],
        "connectors[2].pwm_channel": "GPIO18 is PWM channel 0 on Pi 1-4 or 2 on Pi 5, got 1",
        "board.reader_spi_device": "SPI0 device 1 is already used by board.adc_spi_device "
        "(the pilot ADC); the RFID reader needs its own chip select",
    }
    assert "both PWM0" in found["connectors[2].pwm_pin"]
