"""The OCPP 2.0.1 controller variables that have no OCPP 1.6 key, made to act on the station.

The device model stores them (device_model.configuration_variables); this module makes the
station follow them, each read when it is used, so a SetVariables takes effect at once:

* SampledDataCtrlr.Enabled / AlignedDataCtrlr.Enabled: false stops the sampled (periodic,
  and kept for the Ended event) or the clock-aligned meter values. The energy register at
  a transaction's start and end (Transaction.Begin / Transaction.End) is always sent: it is
  the transaction's bill.
* SampledDataCtrlr.TxStartedMeasurands: the measurands the Started event carries, read from
  the meter as the transaction starts (the energy register is always among them).
* SampledDataCtrlr.TxEndedMeasurands (the 1.6 StopTxnSampledData) and TxEndedInterval: the
  samples kept for the Ended event, every TxEndedInterval seconds (0: none kept).
* AlignedDataCtrlr.TxEndedInterval: the station keeps clock-aligned samples for the Ended
  event at the aligned interval itself, so this is ReadOnly and shows that interval.
* OCPPCommCtrlr.OfflineThreshold (B04): after an outage no longer than it, only the
  connectors whose status changed are reported; after a longer one, every connector.
* OCPPCommCtrlr.RetryBackOffWaitMinimum / RandomRange / RepeatTimes: the reconnect
  back-off, once any of them is set (by the CSMS or [ocpp.variables]); until then the
  [csms] reconnect_min / reconnect_max the installer chose apply.
* AuthCtrlr.Enabled: ReadOnly. Whether the station charges without authorization is the
  installer's choice (station.free_vend_id_tag), not the CSMS's: turning every wallbox of
  a site into free charging remotely is not something one SetVariables should do. It
  shows false on a free-vend station, true otherwise.

OCPPCommCtrlr.MessageTimeout is the active network profile's messageTimeout (network.py);
ChargePoint201.response_timeout makes it the RPC's answer timeout.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from controller.ocpp.v201.device_model import DataType, DeviceModel, Mutability, split_list

SAMPLED, ALIGNED, COMM = "SampledDataCtrlr", "AlignedDataCtrlr", "OCPPCommCtrlr"
ENERGY = "Energy.Active.Import.Register"
# The 1.6 keys the station samples by, and the controller whose Enabled switches them.
_CONTROLLER_OF_KEY = {
    "MeterValuesSampledData": SAMPLED,
    "StopTxnSampledData": SAMPLED,
    "MeterValuesAlignedData": ALIGNED,
    "StopTxnAlignedData": ALIGNED,
}
BACKOFF_VARIABLES = (
    "RetryBackOffWaitMinimum",
    "RetryBackOffRandomRange",
    "RetryBackOffRepeatTimes",
)


# --- the rules (pure) --------------------------------------------------------------------


def retry_backoff(
    failures: int,
    wait_minimum: int,
    random_range: int,
    repeat_times: int,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """The wait before a reconnection attempt after `failures` earlier ones: the minimum,
    doubled once per failure up to `repeat_times` doublings, plus a random part of at most
    `random_range` seconds."""
    doublings = min(max(failures, 0), max(repeat_times, 0), 30)
    return wait_minimum * 2**doublings + uniform(0.0, float(max(random_range, 0)))


def report_every_status(offline_s: float | None, offline_threshold_s: int) -> bool:
    """After a reconnection: whether every connector's status is sent (B04.FR.01), or only
    those that changed while offline (B04.FR.02). `offline_s` None: no earlier connection."""
    return offline_s is None or offline_s > offline_threshold_s


def started_measurands(listed: list[str]) -> list[str]:
    """The measurands beyond the energy register that the Started event carries."""
    return [m for m in listed if m != ENERGY]


# --- the station following them ---------------------------------------------------------


class ControllerVariables:
    """Installs the variables' effects on the station; answers no request itself."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        model: DeviceModel = cp.device_model
        self.model = model
        station = cp.station
        keys = cp.keys
        station.measurands = self.measurands
        station.start_measurands = self.start_measurands
        station.stop_data_interval = self.stop_data_interval
        free_vend = station.core.connectors[0].settings.free_vend_id_tag
        auth = model.spec("AuthCtrlr", "Enabled")
        model.replace(
            replace(
                auth,
                mutability=Mutability.READ_ONLY,
                read=lambda: "false" if free_vend else "true",
            )
        )
        aligned_ended = model.spec(ALIGNED, "TxEndedInterval")
        model.replace(
            replace(
                aligned_ended,
                mutability=Mutability.READ_ONLY,
                data_type=DataType.INTEGER,
                read=lambda: str(keys.get_int("ClockAlignedDataInterval")),
            )
        )

    @staticmethod
    def variables(number_of_evses: int) -> list[Any]:
        return []  # they are the device model's (configuration_variables)

    def handlers(self) -> dict[str, Any]:
        return {}

    # --- metering (station.measurands / start_measurands / stop_data_interval)

    def _serving(self) -> bool:
        """Whether 2.0.1 is the station's link: with 1.6 offered too, a 1.6 connection
        keeps the 1.6 rules."""
        return self.cp.station.link is self.cp

    def _enabled(self, controller: str) -> bool:
        return self.model.bool_value(controller, "Enabled")

    def measurands(self, key: str) -> list[str]:
        """The station's samples by their 1.6 key: none while the controller is disabled."""
        controller = _CONTROLLER_OF_KEY.get(key)
        if self._serving() and controller is not None and not self._enabled(controller):
            return []
        return list(self.cp.keys.get_list(key))

    def start_measurands(self) -> list[str] | None:
        if not self._serving():
            return None
        if not self._enabled(SAMPLED):
            return []
        return started_measurands(split_list(self.model.value(SAMPLED, "TxStartedMeasurands")))

    def stop_data_interval(self) -> int | None:
        if not self._serving():
            return None
        if not self._enabled(SAMPLED):
            return 0
        return self.model.int_value(SAMPLED, "TxEndedInterval")


# --- for ChargePoint201 -------------------------------------------------------------------


def configured_backoff(
    model: DeviceModel, persisted: Mapping[str, str], initial: Mapping[str, str]
) -> tuple[int, int, int] | None:
    """(wait minimum, random range, repeat times) once any of the three is set, from the
    store (`persisted`, the CSMS's) or the configuration file (`initial`); None before."""
    names = [model.spec(COMM, v).storage_name() for v in BACKOFF_VARIABLES]
    if not any(name in persisted or name in initial for name in names):
        return None
    wait, spread, repeat = (model.int_value(COMM, v) for v in BACKOFF_VARIABLES)
    return wait, spread, repeat
