"""Configuration loading: defaults, every-problem-at-once reporting, secrets kept out."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from controller.config import (
    BoardConfig,
    Config,
    ConfigError,
    ConnectorConfig,
    CsmsConfig,
    HardwareConfig,
    LoggingConfig,
    MeterConfig,
    OcppConfig,
    Problem,
    StationConfig,
    load_config,
    parse_config,
)
from controller.ocpp.v16.keys import core_keys

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "evsed.example.toml"
SECRET = "Hunter2-secret"  # 14 characters: too short, so it must be reported, never echoed

MINIMAL = """\
[station]
id = "CP-1"

[csms]
url = "ws://csms.example:9000/ocpp"

[[connectors]]
max_current = 16
"""


def write(tmp_path: Path, text: str, name: str = "evsed.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(data: dict[str, Any], base_dir: Path | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir)
    return {problem.path: problem.reason for problem in info.value.problems}


def minimal(**sections: Any) -> dict[str, Any]:
    """The minimal valid document as a dict, with some sections replaced."""
    data: dict[str, Any] = tomllib.loads(MINIMAL)
    data.update(sections)
    return data


def commented_block(marker: str) -> dict[str, Any]:
    """The `# key = value` lines of the example from `marker` to the next blank line."""
    block = EXAMPLE.read_text(encoding="utf-8").split(marker, 1)[1].split("\n\n", 1)[0]
    return tomllib.loads("\n".join(re.findall(r"^# ([a-z_]+ = .+)$", block, re.MULTILINE)))


# --- the shipped example ----------------------------------------------------


def test_example_file_is_valid_and_creates_nothing() -> None:
    state_dir = Path("/var/lib/evsed")
    existed = state_dir.exists()
    config = load_config(EXAMPLE)
    assert state_dir.exists() == existed
    assert config.station.id == "EVSED-0001"
    assert config.state.dir == state_dir
    assert config.control.socket == state_dir / "control.sock"


def test_example_file_shows_the_defaults() -> None:
    config = load_config(EXAMPLE)
    defaults = {
        "station": StationConfig(id=config.station.id),
        "csms": CsmsConfig(url=config.csms.url),
        "hardware": HardwareConfig(),
        "ocpp": OcppConfig(),
        "logging": LoggingConfig(),
    }
    for name, default in defaults.items():
        assert getattr(config, name) == default, name
    assert config.connectors == (ConnectorConfig(max_current=32.0),)


def test_example_file_lists_every_key() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for section, cls in [
        ("station", StationConfig),
        ("csms", CsmsConfig),
        ("hardware", HardwareConfig),
        ("logging", LoggingConfig),
    ]:
        assert set(data[section]) == {f.name for f in dataclasses.fields(cls)}, section
    # The wiring keys are listed too, commented out, as only the real drivers read them.
    wiring = commented_block("\n[[connectors]]\n")
    assert not set(data["connectors"][0]) & set(wiring)
    assert set(data["connectors"][0]) | set(wiring) == {
        f.name for f in dataclasses.fields(ConnectorConfig)
    }
    assert set(commented_block("# [board]\n")) == {f.name for f in dataclasses.fields(BoardConfig)}
    assert set(commented_block("# [[meters]]\n")) == {
        f.name for f in dataclasses.fields(MeterConfig)
    }
    assert "board" not in data and "meters" not in data
    assert set(data["ocpp"]) == {
        "version",
        "heartbeat_on_idle_only",
        "resume_transactions",
        "keys",
    }
    assert set(data["state"]) == {"dir", "queue_budget_mb"}
    assert set(data["control"]) == {"socket"}


def test_example_commented_wiring_shows_the_defaults() -> None:
    """Uncommented (with every real driver chosen), the wiring sections change nothing."""
    config = load_config(EXAMPLE)
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["hardware"].update(pilot="gpio", contactor="gpio", meter="modbus", reader="mfrc522")
    data["board"] = commented_block("# [board]\n")
    data["connectors"][0].update(commented_block("\n[[connectors]]\n"))
    data["meters"] = [commented_block("# [[meters]]\n")]
    uncommented = parse_config(data)
    assert uncommented.board == config.board == BoardConfig()
    # cable_rating is shown with the value it defaults to: max_current.
    assert uncommented.connectors == (dataclasses.replace(config.connectors[0], cable_rating=32.0),)
    assert uncommented.meters == (MeterConfig(model="eastron_sdm630", port="/dev/ttyUSB0"),)


def test_example_ocpp_key_comments_match_the_registry() -> None:
    """The commented-out [ocpp.keys] lines are every writable key with its real default."""
    text = EXAMPLE.read_text(encoding="utf-8")
    section = text.split("[ocpp.keys]", 1)[1].split("\n[", 1)[0]
    shown = {}
    for match in re.finditer(r"^# ([A-Za-z]+ = .+)$", section, re.MULTILINE):
        shown.update(tomllib.loads(match.group(1)))
    writable = {name: spec for name, spec in core_keys(1).items() if not spec.readonly}
    assert set(shown) == set(writable)
    # Uncommented, they are accepted and equal the defaults.
    config = parse_config(minimal(ocpp={"keys": shown}))
    assert dict(config.ocpp.keys) == {name: spec.default for name, spec in writable.items()}


# --- a valid file -----------------------------------------------------------


def test_minimal_file_gets_all_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config == Config(
        station=StationConfig(id="CP-1"),
        csms=CsmsConfig(url="ws://csms.example:9000/ocpp"),
        state=config.state,
        control=config.control,
        hardware=HardwareConfig(),
        connectors=(ConnectorConfig(max_current=16.0, phases=3, lock=False, ventilation=False),),
        ocpp=OcppConfig(),
        logging=LoggingConfig(),
    )
    assert config.state.dir == Path("/var/lib/evsed")
    assert config.control.socket == Path("/var/lib/evsed/control.sock")
    assert isinstance(config.connectors[0].max_current, float)
    assert dict(config.ocpp.keys) == {}
    assert config.websocket_url == "ws://csms.example:9000/ocpp/CP-1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.station.id = "other"  # type: ignore[misc]


def test_ocpp_keys_are_converted_to_ocpp_strings() -> None:
    config = parse_config(
        minimal(
            ocpp={
                "keys": {
                    "HeartbeatInterval": 120,
                    "LocalPreAuthorize": True,
                    "AuthorizeRemoteTxRequests": "FALSE",
                    "MeterValuesSampledData": "Energy.Active.Import.Register, Current.Import",
                }
            }
        )
    )
    assert dict(config.ocpp.keys) == {
        "HeartbeatInterval": "120",
        "LocalPreAuthorize": "true",
        "AuthorizeRemoteTxRequests": "false",
        "MeterValuesSampledData": "Energy.Active.Import.Register,Current.Import",
    }
    with pytest.raises(TypeError):
        config.ocpp.keys["HeartbeatInterval"] = "1"  # type: ignore[index]


def test_two_connectors_size_the_ocpp_registry() -> None:
    connectors = [{"max_current": 32, "lock": True}, {"max_current": 16.5, "phases": 1}]
    rotation = {"ConnectorPhaseRotation": "0.Unknown,1.RST,2.Unknown"}
    config = parse_config(minimal(connectors=connectors, ocpp={"keys": rotation}))
    # lock = true makes connector 1 a socket outlet; connector 2 gets its own default wiring.
    assert config.connectors == (
        ConnectorConfig(
            max_current=32.0,
            phases=3,
            lock=True,
            cable="socket",
            pp_adc_channel=1,
            lock_pin=5,
            lock_feedback_pin=6,
        ),
        ConnectorConfig(
            max_current=16.5,
            phases=1,
            pwm_pin=13,
            pwm_channel=1,
            cp_adc_channel=2,
            contactor_pin=24,
            contactor_feedback_pin=16,
            rcm_fault_pin=20,
            rcm_test_pin=21,
        ),
    )
    assert config.ocpp.keys["ConnectorPhaseRotation"] == "0.Unknown,1.RST,2.Unknown"


def test_password_is_kept_out_of_repr() -> None:
    password = "correct-horse-battery-staple"
    config = parse_config(minimal(csms={"url": "wss://csms.example/ocpp", "password": password}))
    assert config.csms.password == password
    assert password not in repr(config)
    assert password not in str(config.csms)


# --- paths ------------------------------------------------------------------


def test_relative_state_dir_resolves_against_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(conf_dir, MINIMAL + '\n[state]\ndir = "../state/evsed"\n')
    config = load_config(path)
    assert config.state.dir == (tmp_path / "state" / "evsed").resolve()
    assert config.control.socket == config.state.dir / "control.sock"
    assert not config.state.dir.exists()  # loading creates nothing


def test_explicit_control_socket_is_resolved(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[control]\nsocket = "run/ctl.sock"\n')
    assert load_config(path).control.socket == (tmp_path / "run" / "ctl.sock").resolve()


def test_too_long_control_socket_is_a_problem() -> None:
    long_dir = "/tmp/" + "d" * 100
    found = problems_of(minimal(state={"dir": long_dir}))
    assert set(found) == {"control.socket"}
    assert "108 bytes" in found["control.socket"]
    assert "state.dir" in found["control.socket"]  # says where the default came from
    found = problems_of(minimal(control={"socket": "/run/" + "s" * 110}))
    assert set(found) == {"control.socket"}


# --- problems ---------------------------------------------------------------

MANY_MISTAKES = f"""\
[station]
id = "CP 1/2"
vendor = "a-vendor-name-that-is-too-long"

[csms]
url = "http://csms.example:9000/ocpp"
password = "{SECRET}"
reconnect_min = 10
reconnect_max = 5

[hardware]
pilot = "mcu"
colour = "red"

[[connectors]]
max_current = 100
phases = 2

[[connectors]]
max_current = 16

[[connectors]]
max_current = 16
lock = "yes"

[ocpp]
version = "2.1"

[ocpp.keys]
HeartbeatInterval = "abc"
NumberOfConnectors = 3
NoSuchKey = 1
MeterValueSampleInterval = 1.5

[logging]
level = "verbose"

[extras]
x = 1
"""


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MANY_MISTAKES))
    error = info.value
    found = {problem.path: problem.reason for problem in error.problems}
    assert set(found) == {
        "station.id",
        "station.vendor",
        "csms.url",
        "csms.password",
        "csms.reconnect_max",
        "hardware.pilot",
        "hardware.colour",
        "connectors",
        "connectors[1].max_current",
        "connectors[1].phases",
        "connectors[3].lock",
        "ocpp.version",
        "ocpp.keys.HeartbeatInterval",
        "ocpp.keys.NumberOfConnectors",
        "ocpp.keys.NoSuchKey",
        "ocpp.keys.MeterValueSampleInterval",
        "logging.level",
        "extras",
    }
    assert len(error.problems) == len(found)  # one problem per path here
    assert "ws or wss" in found["csms.url"]
    assert "16 to 40" in found["csms.password"]
    assert "6 and 80" in found["connectors[1].max_current"]
    assert "1 or 3" in found["connectors[1].phases"]
    assert "got 3" in found["connectors"]
    assert found["connectors[3].lock"] == "expected true or false, got string"
    assert found["hardware.colour"] == "unknown key"
    assert found["extras"] == "unknown key"
    assert "1.6" in found["ocpp.version"]
    assert found["ocpp.keys.HeartbeatInterval"] == "must be a whole number"
    assert found["ocpp.keys.NumberOfConnectors"] == "read-only key, evsed sets it itself"
    assert found["ocpp.keys.NoSuchKey"] == "unknown OCPP configuration key"
    assert "float" in found["ocpp.keys.MeterValueSampleInterval"]
    assert "debug, info, warning, error" in found["logging.level"]
    # One line per problem, in "path: reason" form; the secret appears nowhere.
    assert str(error).splitlines() == [f"{p.path}: {p.reason}" for p in error.problems]
    assert str(error.problems[0]) == f"{error.problems[0].path}: {error.problems[0].reason}"
    for text in (str(error), repr(error), *map(repr, error.problems)):
        assert SECRET not in text


def test_password_problems_never_echo_the_password() -> None:
    for bad in ["Pw-9Kq2", "x" * 41, "sixteen-chars-ok\u00e9", "tab\there-long-enough"]:
        found = problems_of(minimal(csms={"url": "ws://h", "password": bad}))
        assert set(found) == {"csms.password"}
        assert bad not in found["csms.password"]


def test_credentials_in_the_url_are_rejected_without_echoing_them() -> None:
    found = problems_of(minimal(csms={"url": "ws://cp:TopSecret99@csms.example/ocpp"}))
    assert found == {"csms.url": "put credentials in csms.password"}


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ws://csms.example/ocpp?x=1", "query"),
        ("ws://csms.example/#top", "fragment"),
        ("ws:///ocpp", "host"),
        ("ws://csms.example:99999/", "URL"),
        ("csms.example:9000", "ws or wss"),
        ("ws://csms example/", "spaces"),
    ],
)
def test_bad_urls(url: str, fragment: str) -> None:
    found = problems_of(minimal(csms={"url": url}))
    assert set(found) == {"csms.url"}
    assert fragment in found["csms.url"]


def test_missing_required_keys() -> None:
    found = problems_of({"station": {}, "logging": {"level": "info"}})
    assert found == {"station.id": "required", "csms.url": "required", "connectors": "required"}
    found = problems_of(minimal(connectors=[{"phases": 1}]))
    assert found == {"connectors[1].max_current": "required"}


def test_bool_is_not_a_number() -> None:
    found = problems_of(
        minimal(
            csms={"url": "ws://h", "response_timeout": True},
            connectors=[{"max_current": True, "phases": False}],
        )
    )
    assert found == {
        "csms.response_timeout": "expected a number, got boolean",
        "connectors[1].max_current": "expected a number, got boolean",
        "connectors[1].phases": "expected an integer, got boolean",
    }


def test_numbers_must_be_finite_and_in_range() -> None:
    found = problems_of(
        minimal(
            csms={"url": "ws://h", "response_timeout": float("nan"), "reconnect_min": 0},
            hardware={"meter_poll_interval": float("inf")},
        )
    )
    assert found == {
        "csms.response_timeout": "must be a finite number",
        "csms.reconnect_min": "must be greater than 0 s, got 0",
        "hardware.meter_poll_interval": "must be a finite number",
    }


def test_meter_offline_after_must_exceed_the_poll_interval() -> None:
    found = problems_of(minimal(hardware={"meter_poll_interval": 5, "meter_offline_after": 5}))
    assert set(found) == {"hardware.meter_offline_after"}


def test_wrong_shapes_are_problems_not_crashes() -> None:
    found = problems_of(
        minimal(
            station="CP-1",
            connectors={"max_current": 16},
            ocpp={"keys": ["HeartbeatInterval"]},
            hardware={"reader": "none", "a key": 1},
        )
    )
    assert found == {
        "station": "expected a table, got string",
        "connectors": "expected an array of tables ([[connectors]]), got table",
        "ocpp.keys": "expected a table, got array",
        'hardware."a key"': "unknown key",
    }
    found = problems_of(minimal(connectors=[16, {"max_current": 16}]))
    assert found == {"connectors[1]": "expected a table, got integer"}
    assert problems_of([]) == {"(file)": "expected a table, got array"}  # type: ignore[arg-type]


def test_station_id_rules() -> None:
    for bad in ["", ".", "..", "a/b", "x" * 49, "café"]:
        assert set(problems_of(minimal(station={"id": bad}))) == {"station.id"}, bad
    assert parse_config(minimal(station={"id": "A-z_0.9" + "x" * 41})).station.id


# --- file-level problems ----------------------------------------------------


def test_toml_syntax_error_is_a_file_problem_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[station]\nid = "CP-1"\nvendor "evsed"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.path == "(file)"
    assert "line 3" in problem.reason
    assert "TOML" in problem.reason


def test_syntax_error_at_end_of_document_still_names_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[station]\nid = "CP-1"\nvendor = ')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        Problem("(file)", info.value.problems[0].reason),
    ]
    assert "line 3" in info.value.problems[0].reason


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.path == "(file)"
    assert str(path) in problem.reason


def test_directory_and_bad_encoding_are_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert [p.path for p in info.value.problems] == ["(file)"]
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[station]\nid = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    [problem] = info.value.problems
    assert problem.path == "(file)"
    assert "UTF-8" in problem.reason
    assert "line 2" in problem.reason


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(path).station.id == "CP-1"


@pytest.mark.parametrize(
    ("version", "offered"),
    [(None, ("1.6",)), ("2.0.1", ("2.0.1",)), (["2.0.1", "1.6"], ("2.0.1", "1.6"))],
)
def test_ocpp_versions_offered(version: Any, offered: tuple[str, ...]) -> None:
    """One version, or several offered in order of preference (the CSMS picks)."""
    ocpp = {} if version is None else {"version": version}
    assert parse_config(minimal(ocpp=ocpp)).ocpp.versions == offered


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        ("2.1", "must be one of: 1.6, 2.0.1 (got '2.1')"),
        (["1.6", "1.6"], "a version is listed twice"),
        ([], "expected a version or a list of versions (1.6, 2.0.1)"),
        ([16], "expected a version or a list of versions (1.6, 2.0.1)"),
    ],
)
def test_ocpp_version_problems(version: Any, problem: str) -> None:
    assert problems_of(minimal(ocpp={"version": version})) == {"ocpp.version": problem}
