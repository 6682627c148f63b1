"""Energy meters over Modbus RTU: register maps as data, read planning, driver and probe.

- registermap: maps/<model>.toml loading, validation and the value codec
- planning: plan_reads() and the RTU wire-time model (hardware reference §5.3)
- modbus: ModbusBus (one per serial port) and ModbusMeter (the Meter protocol)
- probe: find meters on a port and print their configuration
"""

from drivers.meter.modbus import (
    MeterError,
    MeterExceptionResponse,
    MeterNotAnswering,
    MeterPortError,
    MeterValueError,
    ModbusBus,
    ModbusMeter,
    meters_from_config,
)
from drivers.meter.planning import (
    Block,
    bus_time_ms,
    char_time_ms,
    plan_reads,
    t35_ms,
    transaction_time_ms,
)
from drivers.meter.probe import Found, config_snippet, probe, probe_sync
from drivers.meter.registermap import (
    MeterMap,
    MeterMapError,
    Register,
    available_models,
    load_all_maps,
    load_map,
    load_map_file,
    parse_map,
)

__all__ = [
    "Block",
    "Found",
    "MeterError",
    "MeterExceptionResponse",
    "MeterMap",
    "MeterMapError",
    "MeterNotAnswering",
    "MeterPortError",
    "MeterValueError",
    "ModbusBus",
    "ModbusMeter",
    "Register",
    "available_models",
    "bus_time_ms",
    "char_time_ms",
    "config_snippet",
    "load_all_maps",
    "load_map",
    "load_map_file",
    "meters_from_config",
    "parse_map",
    "plan_reads",
    "probe",
    "probe_sync",
    "t35_ms",
    "transaction_time_ms",
]
