"""Pilot generator on sysfs PWM (drivers.pilot.pwm) against the fake sysfs tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from controller.core.iec61851 import PilotOutput
from drivers.pilot.pwm import PERIOD_NS, PwmChipNotFound, SysfsPwm, duty_ns, find_pwmchip
from hwsim.pilot_sim import PI4_PWM_DEVICE, PI5_OTHER_DEVICE, PI5_PWM_DEVICE, FakePwmSysfs

PI5_MATCH = "1f00098000.pwm"


@pytest.fixture
def sysfs(tmp_path: Path) -> Iterator[FakePwmSysfs]:
    fake = FakePwmSysfs(tmp_path, chips={2: PI5_PWM_DEVICE})
    yield fake
    fake.close()


def files(fake: FakePwmSysfs, chip: int = 2, channel: int = 0) -> tuple[str, str, str]:
    return tuple(fake.read(chip, channel, n) for n in ("period", "duty_cycle", "enable"))  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("output", "duty"),
    [
        (PilotOutput.x1(), 1_000_000),
        (PilotOutput.state_f(), 0),
        (PilotOutput.offering(6), 100_000),
        (PilotOutput.offering(16), 266_700),
        (PilotOutput.offering(32), 533_300),
        (PilotOutput.offering(63), 892_000),
    ],
)
def test_sysfs_files_for_each_output(sysfs: FakePwmSysfs, output: PilotOutput, duty: int) -> None:
    with SysfsPwm(root=sysfs.class_dir, device_match=PI5_MATCH) as pwm:
        pwm.set_output(output)
        assert files(sysfs) == (str(PERIOD_NS), str(duty), "1")  # F too: enabled, 0 %
        assert duty_ns(output) == duty
        back = sysfs.output(2)
        assert back is not None and back.mode is output.mode
        assert back.duty_percent == pytest.approx(output.duty_percent, abs=0.01)


def test_realistic_export_is_waited_for(sysfs: FakePwmSysfs) -> None:
    assert not sysfs.channel_dir(2, 1).exists()
    with SysfsPwm(root=sysfs.class_dir, channel=1):  # the only chip: no device path needed
        assert files(sysfs, channel=1) == (str(PERIOD_NS), str(PERIOD_NS), "1")  # starts in x1


def test_already_exported_channel_is_reused(tmp_path: Path) -> None:
    with FakePwmSysfs(tmp_path, chips={0: PI4_PWM_DEVICE}, react=False) as fake:
        fake.pre_export(0, 0)
        (fake.channel_dir(0) / "duty_cycle").write_text("5000000\n")  # left over, > 1 ms
        (fake.channel_dir(0) / "period").write_text("10000000\n")
        with SysfsPwm(root=fake.class_dir, device_match="7e20c000.pwm") as pwm:
            pwm.set_output(PilotOutput.offering(16))
            assert files(fake, chip=0) == (str(PERIOD_NS), "266700", "1")


def test_export_timeout(tmp_path: Path) -> None:
    with FakePwmSysfs(tmp_path, react=False) as fake, pytest.raises(TimeoutError):
        SysfsPwm(root=fake.class_dir, export_timeout_s=0.05)


def test_channel_beyond_npwm_is_refused(sysfs: FakePwmSysfs) -> None:
    with pytest.raises(ValueError, match="4 channels"):
        SysfsPwm(root=sysfs.class_dir, channel=4)


def test_finds_the_chip_by_device_path_among_several(tmp_path: Path) -> None:
    chips = {0: PI5_OTHER_DEVICE, 1: PI4_PWM_DEVICE, 2: PI5_PWM_DEVICE}
    with FakePwmSysfs(tmp_path, chips=chips) as fake:
        assert find_pwmchip(fake.class_dir, PI5_MATCH).name == "pwmchip2"
        assert find_pwmchip(fake.class_dir, "7e20c000.pwm").name == "pwmchip1"
        with pytest.raises(PwmChipNotFound, match="3 pwmchips"):
            find_pwmchip(fake.class_dir)  # several and no device path: refuse to guess
        with pytest.raises(PwmChipNotFound, match="0 pwmchips"):
            find_pwmchip(fake.class_dir, "no-such.pwm")
        with pytest.raises(PwmChipNotFound, match="2 pwmchips"):
            find_pwmchip(fake.class_dir, "1000120000.pcie")  # ambiguous substring
        with SysfsPwm(root=fake.class_dir, device_match=PI5_MATCH) as pwm:
            pwm.set_output(PilotOutput.offering(32))
            assert fake.read(2, 0, "duty_cycle") == "533300"
            assert not fake.channel_dir(0).exists()  # pwmchip0 untouched


def test_only_chip_is_used_whatever_its_number(tmp_path: Path) -> None:
    with FakePwmSysfs(tmp_path, chips={3: PI5_PWM_DEVICE}) as fake:
        assert find_pwmchip(fake.class_dir).name == "pwmchip3"


def test_no_pwm_sysfs(tmp_path: Path) -> None:
    with pytest.raises(PwmChipNotFound):
        find_pwmchip(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PwmChipNotFound, match="0 pwmchips"):
        find_pwmchip(tmp_path / "empty")


def test_close_leaves_the_safe_state(sysfs: FakePwmSysfs) -> None:
    pwm = SysfsPwm(root=sysfs.class_dir)
    pwm.set_output(PilotOutput.offering(16))
    pwm.close()
    assert files(sysfs) == (str(PERIOD_NS), str(PERIOD_NS), "0")  # x1 written, then disabled
    assert pwm.output is None
    with pytest.raises(RuntimeError):
        pwm.set_output(PilotOutput.x1())
    pwm.close()  # idempotent


def test_inverted_stage_complements_the_duty(sysfs: FakePwmSysfs) -> None:
    sysfs.inverted = True
    with SysfsPwm(root=sysfs.class_dir, inverted=True) as pwm:
        pwm.set_output(PilotOutput.offering(16))
        assert sysfs.read(2, 0, "duty_cycle") == str(PERIOD_NS - 266_700)
        out = sysfs.output(2)
        assert out is not None and out.duty_percent == pytest.approx(26.67)
        pwm.set_output(PilotOutput.x1())
        assert sysfs.read(2, 0, "duty_cycle") == "0"


def test_cp_disconnect_pin(sysfs: FakePwmSysfs) -> None:
    factory = MockFactory()
    with SysfsPwm(root=sysfs.class_dir, cp_disconnect_pin=17, pin_factory=factory) as pwm:
        pin = factory.pin(17)
        assert pin.state == 0 and not pwm.disconnected
        pwm.set_disconnected(True)
        assert pin.state == 1 and pwm.disconnected
    assert factory.pin(17).state == 0  # reconnected before letting go
