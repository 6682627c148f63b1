"""Charging profiles: validation, the installed set, schedules over time, the composite
schedule and the current arbiter (controller.core.smart_charging, controller.core.arbiter)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.core.arbiter import CurrentArbiter
from controller.core.connector import ConnectorSession, ConnectorSettings
from controller.core.iec61851 import PilotMode, PilotState
from controller.core.smart_charging import (
    DAY_S,
    WEEK_S,
    ChargingProfile,
    Installed,
    Kind,
    Period,
    ProfileSet,
    Purpose,
    RateUnit,
    Recurrency,
    Rules,
    Running,
    Schedule,
    Site,
    Supply,
    anchored,
    check_profile,
    check_transaction_profile,
    composite_schedule,
    installed_from_json,
    installed_to_json,
    limit_at,
    next_change,
    period_at,
    round_down,
    share,
    station_limit_at,
)
from controller.core.status import ConnectorStatus

T0 = datetime(2024, 3, 4, 0, 0, tzinfo=UTC).timestamp()  # a Monday, midnight UTC
RULES = Rules(max_stack_level=10, max_periods=5, max_installed=4)


def profile(
    *periods: tuple[int, float] | tuple[int, float, int],
    id: int = 1,
    stack: int = 0,
    purpose: Purpose = Purpose.TX_DEFAULT,
    kind: Kind = Kind.ABSOLUTE,
    unit: RateUnit = RateUnit.A,
    start: float | None = T0,
    duration: int | None = None,
    min_rate: float | None = None,
    **fields: Any,
) -> ChargingProfile:
    schedule = Schedule(
        unit, tuple(Period(*p) for p in periods or [(0, 10.0)]), start, duration, min_rate
    )
    return ChargingProfile(id, stack, purpose, kind, schedule, **fields)


def site(connectors: int = 1, running: dict[int, Running] | None = None, **supply: Any) -> Site:
    supplies = {n: Supply(**({"max_current": 32.0} | supply)) for n in range(1, connectors + 1)}
    return Site(supplies, running or {})


def installed(*items: Installed) -> ProfileSet:
    return ProfileSet(tuple(items))


TX = Running(key=7, transaction_id="1001", started=T0 + 100)


# --- validation --------------------------------------------------------------------------


def check(p: ChargingProfile, connector: int = 1, **kw: Any) -> str | None:
    return check_profile(
        p,
        connector,
        kw.get("site", site(2, {1: TX})),
        kw.get("rules", RULES),
        kw.get("profiles", ProfileSet()),
        kw.get("now", T0),
    )


def test_a_plain_tx_default_profile_is_valid_on_a_connector_and_on_0() -> None:
    assert check(profile()) is None
    assert check(profile(), connector=0) is None


@pytest.mark.parametrize(
    ("p", "why"),
    [
        (profile(stack=11), "stackLevel"),
        (profile(stack=-1), "stackLevel"),
        (profile(*[(i * 10, 10.0) for i in range(6)]), "more than 5 periods"),
        (replace(profile(), schedule=Schedule(RateUnit.A, ())), "at least one period"),
        (profile((10, 10.0)), "first period must start at 0"),
        (profile((0, 10.0), (0, 8.0)), "increase"),
        (profile((0, 10.0), (60, 8.0), (30, 6.0)), "increase"),
        (profile((0, -1.0)), "limit"),
        (profile((0, float("nan"))), "limit"),
        (profile((0, float("inf"))), "limit"),
        (profile((0, 10.0, 0)), "numberPhases"),
        (profile((0, 10.0, 4)), "numberPhases"),
        (profile((0, 10.0), (2**31, 8.0)), "startPeriod out of range"),
        (profile(duration=0), "duration"),
        (profile(duration=-5), "duration"),
        (profile(min_rate=-1.0), "minChargingRate"),
        (profile(kind=Kind.RECURRING), "recurrencyKind"),
        (profile(kind=Kind.RECURRING, recurrency=Recurrency.DAILY, start=None), "startSchedule"),
        (profile(kind=Kind.RELATIVE), "no startSchedule"),
        (profile(valid_from=T0 + 10, valid_to=T0 + 10), "validFrom"),
        (profile(valid_from=T0 + 20, valid_to=T0 + 10), "validFrom"),
        (profile(valid_to=T0 - 1), "validTo has passed"),
        (profile(transaction_id="1001"), "only a Tx profile"),
    ],
)
def test_invalid_profiles_are_refused_with_a_reason(p: ChargingProfile, why: str) -> None:
    reason = check(p)
    assert reason is not None and why in reason


def test_a_rate_unit_the_station_does_not_allow_is_refused() -> None:
    amps_only = replace(RULES, units=frozenset({RateUnit.A}))
    assert check(profile(unit=RateUnit.W), rules=amps_only) == "chargingRateUnit W is not allowed"
    assert check(profile(unit=RateUnit.A), rules=amps_only) is None


def test_an_unknown_connector_is_refused() -> None:
    assert check(profile(), connector=3) == "no connector 3"
    assert check(profile(), connector=-1) == "no connector -1"


def test_the_station_max_profile_belongs_on_connector_0_and_needs_a_start() -> None:
    cp_max = profile(purpose=Purpose.STATION_MAX)
    assert check(cp_max, connector=0) is None
    assert "connector 0" in (check(cp_max, connector=1) or "")
    relative = profile(purpose=Purpose.STATION_MAX, kind=Kind.RELATIVE, start=None)
    assert "cannot be relative" in (check(relative, connector=0) or "")


def test_a_tx_profile_needs_the_running_transaction_of_its_connector() -> None:
    tx = profile(purpose=Purpose.TX)
    assert check(tx, connector=1) is None
    assert check(replace(tx, transaction_id="1001"), connector=1) is None
    assert "not the one" in (check(replace(tx, transaction_id="999"), connector=1) or "")
    assert check(tx, connector=2) == "no transaction on connector 2"
    assert "not 0" in (check(tx, connector=0) or "")


def test_a_tx_profile_naming_a_transaction_the_csms_has_not_numbered_yet_is_refused() -> None:
    offline = site(1, {1: replace(TX, transaction_id=None)})
    tx = profile(purpose=Purpose.TX)
    assert check(tx, site=offline) is None
    assert check(replace(tx, transaction_id="1001"), site=offline) is not None


def test_the_installed_count_is_judged_after_replacement() -> None:
    full = installed(*(Installed(1, profile(id=i, stack=i)) for i in range(4)))
    assert "more than 4" in (check(profile(id=9, stack=9), profiles=full) or "")
    assert check(profile(id=2, stack=9), profiles=full) is None  # replaces id 2
    assert check(profile(id=9, stack=3), profiles=full) is None  # replaces stack 3
    assert "more than 4" in (check(profile(id=9, stack=3), connector=2, profiles=full) or "")


def test_a_remote_start_brings_only_a_tx_profile_without_a_transaction_id() -> None:
    def check_rs(p: ChargingProfile, connector: int = 1) -> str | None:
        return check_transaction_profile(p, connector, site(2), RULES, ProfileSet(), T0)

    tx = profile(purpose=Purpose.TX, kind=Kind.RELATIVE, start=None)
    assert check_rs(tx) is None  # no transaction is needed yet
    assert "Tx profile" in (check_rs(replace(tx, purpose=Purpose.TX_DEFAULT)) or "")
    assert "no id yet" in (check_rs(replace(tx, transaction_id="5")) or "")
    assert check_rs(tx, connector=0) == "no connector 0"
    assert "stackLevel" in (check_rs(replace(tx, stack_level=99)) or "")


# --- the installed set ---------------------------------------------------------------------


def test_installing_replaces_the_same_id_anywhere_and_the_same_level_and_purpose_there() -> None:
    a = Installed(1, profile(id=1, stack=0))
    b = Installed(2, profile(id=2, stack=0))
    c = Installed(1, profile(id=3, stack=1))
    profiles = installed(a, b, c)
    same_id = Installed(2, profile(id=1, stack=5))
    assert [i.profile.id for i in profiles.installing(same_id)] == [2, 3, 1]
    same_level = Installed(1, profile(id=9, stack=1))
    assert [i.profile.id for i in profiles.installing(same_level)] == [1, 2, 9]
    other_purpose = Installed(1, profile(id=9, stack=1, purpose=Purpose.TX), tx_key=7)
    assert len(profiles.installing(other_purpose)) == 4


def test_installing_without_the_same_level_rule_replaces_only_the_same_id() -> None:
    # 2.0.1 keeps profiles of one purpose and stackLevel side by side (valid at other times).
    profiles = installed(Installed(1, profile(id=1, stack=0)), Installed(1, profile(id=2, stack=1)))
    same_level = Installed(1, profile(id=9, stack=1))
    kept = profiles.installing(same_level, same_level_replaces=False)
    assert [i.profile.id for i in kept] == [1, 2, 9]
    same_id = Installed(1, profile(id=1, stack=1))
    assert [i.profile.id for i in profiles.installing(same_id, same_level_replaces=False)] == [2, 1]


def test_clearing_by_id_ignores_the_other_criteria() -> None:
    profiles = installed(Installed(1, profile(id=1)), Installed(0, profile(id=2, stack=1)))
    kept, cleared = profiles.clearing(profile_id=2, connector=1)
    assert cleared == 1 and [i.profile.id for i in kept] == [1]
    assert profiles.clearing(profile_id=5) == (profiles, 0)


def test_clearing_by_criteria_takes_what_matches_all_of_them() -> None:
    profiles = installed(
        Installed(0, profile(id=1, purpose=Purpose.STATION_MAX)),
        Installed(0, profile(id=2, stack=1)),
        Installed(1, profile(id=3, stack=1)),
        Installed(1, profile(id=4, stack=2, purpose=Purpose.TX), tx_key=7),
    )

    def ids(**criteria: Any) -> list[int]:
        kept, _ = profiles.clearing(**criteria)
        return [i.profile.id for i in kept]

    assert ids() == []  # no criteria: everything
    assert ids(connector=0) == [3, 4]
    assert ids(connector=1, stack_level=1) == [1, 2, 4]
    assert ids(purpose=Purpose.TX_DEFAULT) == [1, 4]
    assert ids(purpose=Purpose.TX_DEFAULT, connector=0) == [1, 3, 4]
    assert profiles.clearing(connector=2)[1] == 0
    assert profiles.clearing(stack_level=1, purpose=Purpose.TX)[1] == 0


def test_tx_profiles_end_with_their_transaction() -> None:
    profiles = installed(
        Installed(1, profile(id=1)),
        Installed(1, profile(id=2, purpose=Purpose.TX), tx_key=7),
        Installed(2, profile(id=3, purpose=Purpose.TX), tx_key=8),
    )
    assert [i.profile.id for i in profiles.without_transaction(7)] == [1, 3]
    assert [i.profile.id for i in profiles.keeping_transactions([8])] == [1, 3]
    assert [i.profile.id for i in profiles.keeping_transactions([])] == [1]


def test_stored_form_round_trips() -> None:
    item = Installed(
        1,
        profile(
            (0, 10.5, 1),
            (60, 7.0),
            id=5,
            stack=2,
            purpose=Purpose.TX,
            kind=Kind.RECURRING,
            recurrency=Recurrency.WEEKLY,
            duration=3600,
            min_rate=2.5,
            valid_from=T0,
            valid_to=T0 + 10,
            transaction_id="1001",
        ),
        tx_key=7,
    )
    assert installed_from_json(installed_to_json(item)) == item
    with pytest.raises((KeyError, ValueError, TypeError)):
        installed_from_json({"id": 1})


# --- one profile over time ---------------------------------------------------------------


def test_an_absolute_schedule_runs_its_periods_from_its_start_for_its_duration() -> None:
    p = profile((0, 6.0), (100, 8.0), (200, 10.0), duration=400)
    assert period_at(p, T0 - 1, 0) is None
    assert [period_at(p, T0 + s, 0) for s in (0, 99.9, 100, 250)] == [
        Period(0, 6.0),
        Period(0, 6.0),
        Period(100, 8.0),
        Period(200, 10.0),
    ]
    assert period_at(p, T0 + 400, 0) is None
    assert period_at(replace(p, schedule=replace(p.schedule, duration=None)), T0 + 9e6, 0) == (
        Period(200, 10.0)
    )


def test_validity_bounds_the_profile() -> None:
    p = profile(valid_from=T0 + 10, valid_to=T0 + 20)
    assert [period_at(p, T0 + s, 0) is not None for s in (9, 10, 19.9, 20)] == [
        False,
        True,
        True,
        False,
    ]


def test_relative_schedules_and_absolute_ones_without_a_start_run_from_the_origin() -> None:
    for p in (
        profile((0, 6.0), (60, 12.0), kind=Kind.RELATIVE, start=None),
        profile((0, 6.0), (60, 12.0), start=None),
    ):
        assert period_at(p, T0 + 1000 + 59, T0 + 1000) == Period(0, 6.0)
        assert period_at(p, T0 + 1000 + 60, T0 + 1000) == Period(60, 12.0)
        assert period_at(p, T0 + 999, T0 + 1000) is None


def test_the_daily_recurring_example_limits_the_day_and_not_the_night() -> None:
    # The shape of OCPP 1.6's example: 11 kW at night, 6 kW from 08:00 to 20:00, every day.
    p = profile(
        (0, 11000.0),
        (8 * 3600, 6000.0),
        (20 * 3600, 11000.0),
        unit=RateUnit.W,
        kind=Kind.RECURRING,
        recurrency=Recurrency.DAILY,
        start=datetime(2013, 1, 1, tzinfo=UTC).timestamp(),
    )
    for day in range(3):
        for hour, watts in (
            (0, 11000.0),
            (7.99, 11000.0),
            (8, 6000.0),
            (19.9, 6000.0),
            (20, 11000.0),
        ):
            period = period_at(p, T0 + day * DAY_S + hour * 3600, 0)
            assert period is not None and period.limit == watts, (day, hour)


def test_a_recurring_schedule_begins_at_its_start_schedule() -> None:
    """A daily profile starting in three days limits nothing before then."""
    p = profile((0, 8.0), kind=Kind.RECURRING, recurrency=Recurrency.DAILY, start=T0 + 3 * DAY_S)
    assert period_at(p, T0 + 2 * DAY_S, 0) is None
    assert period_at(p, T0 + 3 * DAY_S, 0) == Period(0, 8.0)
    assert period_at(p, T0 + 5 * DAY_S + 60, 0) == Period(0, 8.0)


def test_a_weekly_recurrence_with_a_duration_leaves_the_rest_of_the_week_open() -> None:
    p = profile(
        (0, 8.0),
        kind=Kind.RECURRING,
        recurrency=Recurrency.WEEKLY,
        start=T0 + 3600,  # Mondays 01:00, for two hours
        duration=7200,
    )
    assert period_at(p, T0 + WEEK_S * 5 + 3600 + 7199, 0) == Period(0, 8.0)
    assert period_at(p, T0 + WEEK_S * 5 + 3600 + 7200, 0) is None
    assert period_at(p, T0 + WEEK_S * 5 + DAY_S + 3600, 0) is None
    assert period_at(p, T0 + 3599, 0) is None


def test_a_recurrence_longer_than_its_cycle_restarts_with_the_cycle() -> None:
    p = profile(
        (0, 6.0),
        (DAY_S - 60, 7.0),
        kind=Kind.RECURRING,
        recurrency=Recurrency.DAILY,
        duration=2 * DAY_S,
    )
    assert period_at(p, T0 + DAY_S, 0) == Period(0, 6.0)
    assert period_at(p, T0 + DAY_S - 1, 0) == Period(DAY_S - 60, 7.0)


# --- the composite ----------------------------------------------------------------------------


def amps(profiles: ProfileSet, s: Site, connector: int = 1, at: float = T0) -> float:
    return limit_at(profiles, s, connector, at, at).amps


def test_no_profile_leaves_the_installation_limit() -> None:
    assert amps(ProfileSet(), site(max_current=16.0)) == 16.0


def test_the_installation_limit_caps_a_generous_profile() -> None:
    profiles = installed(Installed(1, profile((0, 40.0))))
    assert amps(profiles, site(max_current=16.0)) == 16.0


def test_stacking_the_higher_level_prevails_until_its_schedule_ends() -> None:
    # The OCA's stacking test (TC_072): level 0 for 400 s, level 1 for its first 150 s.
    low = Installed(1, profile((0, 6.0), (100, 8.0), (200, 10.0), id=1, duration=400))
    high = Installed(1, profile((0, 10.0), (100, 6.0), id=2, stack=1, duration=150))
    profiles = installed(low, high)
    schedule = composite_schedule(profiles, site(), 1, T0, 400, RateUnit.A)
    assert schedule.periods == (
        Period(0, 10.0),
        Period(100, 6.0),
        Period(150, 8.0),
        Period(200, 10.0),
    )


def test_profiles_of_one_level_valid_at_different_times_each_prevail_in_their_own() -> None:
    day = Installed(1, profile((0, 10.0), id=1, valid_from=T0, valid_to=T0 + 100))
    night = Installed(1, profile((0, 6.0), id=2, valid_from=T0 + 100, valid_to=T0 + 200))
    for profiles in (installed(day, night), installed(night, day)):
        schedule = composite_schedule(profiles, site(), 1, T0, 300, RateUnit.A)
        assert schedule.periods == (Period(0, 10.0), Period(100, 6.0), Period(200, 32.0))


def test_a_higher_level_valid_only_on_a_holiday_overrides_the_daily_profile_that_day() -> None:
    daily = profile(
        (0, 16.0), (8 * 3600, 10.0), kind=Kind.RECURRING, recurrency=Recurrency.DAILY, id=1
    )
    holiday = profile((0, 32.0), id=2, stack=1, valid_from=T0 + DAY_S, valid_to=T0 + 2 * DAY_S)
    profiles = installed(Installed(0, daily), Installed(0, holiday))
    assert amps(profiles, site(), at=T0 + 9 * 3600) == 10.0
    assert amps(profiles, site(), at=T0 + DAY_S + 9 * 3600) == 32.0
    assert amps(profiles, site(), at=T0 + 2 * DAY_S + 9 * 3600) == 10.0


def test_the_tx_profile_of_the_running_transaction_overrules_any_tx_default() -> None:
    default = Installed(1, profile((0, 16.0), id=1, stack=9))
    tx = Installed(1, profile((0, 20.0), id=2, purpose=Purpose.TX), tx_key=7)
    other_tx = Installed(1, profile((0, 6.0), id=3, purpose=Purpose.TX, stack=5), tx_key=6)
    profiles = installed(default, tx, other_tx)
    assert amps(profiles, site(1, {1: TX})) == 20.0
    assert amps(profiles, site(1)) == 16.0  # no transaction: the default


def test_a_connectors_own_default_beats_the_station_wide_one_only_at_equal_level() -> None:
    everywhere = Installed(0, profile((0, 10.0), id=1, stack=1))
    own = Installed(1, profile((0, 12.0), id=2, stack=1))
    assert amps(installed(everywhere, own), site(2)) == 12.0
    assert amps(installed(everywhere, own), site(2), connector=2) == 10.0
    lower_own = Installed(1, profile((0, 12.0), id=2, stack=0))
    assert amps(installed(everywhere, lower_own), site(2)) == 10.0


def test_the_station_max_profile_caps_the_connector() -> None:
    # The OCA's composite test (TC_066): station max 10 A over TxDefault and Tx profiles.
    cp_max = Installed(0, profile((0, 10.0), id=1, purpose=Purpose.STATION_MAX, duration=86400))
    default = Installed(1, profile((0, 6.0), (60, 12.0), id=2, duration=400))
    tx = Installed(
        1, profile((0, 8.0), (100, 16.0), id=3, purpose=Purpose.TX, duration=300), tx_key=7
    )
    running = site(1, {1: replace(TX, started=T0)})
    schedule = composite_schedule(installed(cp_max, default, tx), running, 1, T0, 400, RateUnit.A)
    assert schedule.periods == (Period(0, 8.0), Period(100, 10.0))
    schedule = composite_schedule(installed(cp_max, default), site(1), 1, T0, 400, RateUnit.A)
    assert schedule.periods == (Period(0, 6.0), Period(60, 10.0))


def test_the_station_max_is_shared_by_the_charging_connectors() -> None:
    cp_max = Installed(0, profile((0, 20.0), purpose=Purpose.STATION_MAX))
    both = site(2, {1: TX, 2: replace(TX, key=8)})
    assert (amps(installed(cp_max), both, 1), amps(installed(cp_max), both, 2)) == (10.0, 10.0)
    # One charging: it has all of it; an idle connector is counted as joining.
    one = site(2, {1: TX})
    assert amps(installed(cp_max), one, 1) == 20.0
    assert amps(installed(cp_max), one, 2) == 10.0


def test_a_connector_needing_less_leaves_its_share_to_the_others() -> None:
    cp_max = Installed(0, profile((0, 30.0), purpose=Purpose.STATION_MAX))
    modest = Installed(2, profile((0, 6.0), id=2))
    both = site(2, {1: TX, 2: replace(TX, key=8)})
    assert amps(installed(cp_max, modest), both, 1) == 24.0
    assert amps(installed(cp_max, modest), both, 2) == 6.0


def test_share_never_gives_more_than_demanded_or_the_cap() -> None:
    assert share(30.0, {1: 32.0, 2: 6.0, 3: 32.0}, {1: 1, 2: 1, 3: 1}) == {
        2: 6.0,
        1: 12.0,
        3: 12.0,
    }
    assert share(100.0, {1: 10.0, 2: 20.0}, {1: 1, 2: 1}) == {1: 10.0, 2: 20.0}
    assert share(0.0, {1: 10.0}, {1: 1}) == {1: 0.0}


def test_a_cap_too_small_to_share_charges_as_many_as_it_can_carry() -> None:
    """10 A for two cars: 5 A each would pause both; one charges at 10 A instead."""
    assert share(10.0, {1: 32.0, 2: 32.0}, {1: 1, 2: 1}) == {1: 10.0, 2: 0.0}
    assert share(13.0, {1: 32.0, 2: 32.0, 3: 32.0}, {1: 1, 2: 1, 3: 1}) == {
        1: 6.5,
        2: 6.5,
        3: 0.0,
    }
    assert share(20.0, {1: 32.0, 2: 32.0, 3: 32.0}, {1: 1, 2: 1, 3: 1})[3] > 6.0


def test_watts_become_amps_with_the_voltage_and_the_connectors_phases() -> None:
    watts = installed(Installed(1, profile((0, 6900.0), unit=RateUnit.W)))
    assert amps(watts, site()) == pytest.approx(10.0)
    assert amps(watts, site(phases=1)) == pytest.approx(30.0)
    assert amps(watts, site(voltage=115.0)) == pytest.approx(20.0)


def test_a_station_max_in_watts_is_shared_by_power() -> None:
    cp_max = Installed(0, profile((0, 13800.0), purpose=Purpose.STATION_MAX, unit=RateUnit.W))
    both = site(2, {1: TX, 2: replace(TX, key=8)})
    assert amps(installed(cp_max), both, 1) == pytest.approx(10.0)
    one_phase = Site({1: Supply(32.0, 3), 2: Supply(32.0, 1)}, {1: TX, 2: replace(TX, key=8)})
    assert amps(installed(cp_max), one_phase, 1) == pytest.approx(10.0)
    assert amps(installed(cp_max), one_phase, 2) == pytest.approx(30.0)


def test_below_the_minimum_charging_rate_charging_pauses() -> None:
    p = installed(Installed(1, profile((0, 8.0), (60, 5.0), min_rate=6.0)))
    assert amps(p, site()) == 8.0
    assert amps(p, site(), at=T0 + 60) == 0.0


def test_the_phases_of_the_period_in_force_are_reported() -> None:
    p = installed(Installed(1, profile((0, 8.0, 1))))
    assert limit_at(p, site(phases=1), 1, T0, T0).phases == 1
    assert limit_at(p, site(phases=3), 1, T0, T0).phases == 3  # spread over the wired phases


# --- when to look again -------------------------------------------------------------------------


def test_next_change_is_the_next_boundary_of_any_profile() -> None:
    p = installed(
        Installed(1, profile((0, 6.0), (100, 8.0), duration=400)),
        Installed(0, profile((0, 10.0), id=2, stack=1, valid_to=T0 + 50)),
    )
    assert next_change(p, site(), T0, 3600) == T0 + 50
    assert next_change(p, site(), T0 + 50, 3600) == T0 + 100
    assert next_change(p, site(), T0 + 100, 3600) == T0 + 400
    assert next_change(p, site(), T0 + 400, 3600) is None
    assert next_change(ProfileSet(), site(), T0, 3600) is None


def test_next_change_of_a_recurrence_is_in_the_next_cycle() -> None:
    p = installed(
        Installed(
            1, profile((0, 6.0), (3600, 8.0), kind=Kind.RECURRING, recurrency=Recurrency.DAILY)
        )
    )
    assert next_change(p, site(), T0 + 3 * DAY_S + 7200, 2 * DAY_S) == T0 + 4 * DAY_S


def test_relative_schedules_change_only_on_a_charging_connector() -> None:
    p = installed(Installed(1, profile((0, 6.0), (60, 8.0), kind=Kind.RELATIVE, start=None)))
    assert next_change(p, site(), T0, 3600) is None
    assert next_change(p, site(1, {1: TX}), T0 + 100, 3600) == TX.started + 60


# --- the composite schedule -----------------------------------------------------------------------


def test_the_composite_schedule_merges_equal_periods_and_reports_offsets() -> None:
    p = installed(Installed(1, profile((0, 10.0), (60, 10.0), (120, 6.0), start=T0 - 30)))
    schedule = composite_schedule(p, site(max_current=16.0), 1, T0, 300, RateUnit.A)
    assert (schedule.start, schedule.duration, schedule.unit) == (T0, 300, RateUnit.A)
    assert schedule.periods == (Period(0, 10.0), Period(90, 6.0))


def test_the_composite_schedule_fills_gaps_with_the_installation_limit() -> None:
    p = installed(Installed(1, profile((0, 10.0), start=T0 + 60, duration=60)))
    schedule = composite_schedule(p, site(max_current=16.0), 1, T0, 300, RateUnit.A)
    assert schedule.periods == (Period(0, 16.0), Period(60, 10.0), Period(120, 16.0))


def test_the_composite_schedule_in_watts() -> None:
    p = installed(Installed(1, profile((0, 10.0))))
    schedule = composite_schedule(p, site(), 1, T0, 60, RateUnit.W)
    assert schedule.periods == (Period(0, 6900.0),)


def test_the_composite_schedule_of_a_relative_default_starts_now_when_idle() -> None:
    p = installed(Installed(1, profile((0, 6.0), (60, 8.0), kind=Kind.RELATIVE, start=None)))
    schedule = composite_schedule(p, site(), 1, T0 + 500, 120, RateUnit.A)
    assert schedule.periods == (Period(0, 6.0), Period(60, 8.0))
    charging = site(1, {1: replace(TX, started=T0 + 480)})
    schedule = composite_schedule(p, charging, 1, T0 + 500, 120, RateUnit.A)
    assert schedule.periods == (Period(0, 6.0), Period(40, 8.0))


def test_the_station_composite_is_the_sum_of_the_connectors_within_the_station_max() -> None:
    s = site(2, max_current=16.0)
    assert composite_schedule(ProfileSet(), s, 0, T0, 60, RateUnit.A).periods == (Period(0, 32.0),)
    cp_max = Installed(0, profile((0, 20.0), (30, 40.0), purpose=Purpose.STATION_MAX))
    assert composite_schedule(installed(cp_max), s, 0, T0, 60, RateUnit.A).periods == (
        Period(0, 20.0),
        Period(30, 32.0),
    )
    assert station_limit_at(installed(cp_max), s, T0, T0, RateUnit.W) == pytest.approx(13800.0)


def test_limits_are_reported_rounded_down_to_a_tenth() -> None:
    assert [round_down(v) for v in (13.333, 0.3, 5.0, 0.09999, 7.96)] == [13.3, 0.3, 5.0, 0.0, 7.9]
    p = installed(Installed(1, profile((0, 11000.0), unit=RateUnit.W)))
    assert composite_schedule(p, site(), 1, T0, 60, RateUnit.A).periods == (Period(0, 15.9),)


def test_a_station_max_profile_without_a_start_starts_when_installed() -> None:
    cp_max = profile((0, 10.0), (60, 20.0), purpose=Purpose.STATION_MAX, start=None)
    assert anchored(cp_max, T0 + 5).schedule.start == T0 + 5
    default = profile(start=None)
    assert anchored(default, T0 + 5) == default


# --- the arbiter ------------------------------------------------------------------------------


def charging_session(max_current: float = 32.0) -> ConnectorSession:
    session = ConnectorSession(1, ConnectorSettings(max_current_a=max_current))
    session.authorize("TAG", None, 0.0)
    session.pilot_changed(PilotState.B, 0.0)
    session.pilot_changed(PilotState.C, 0.0)
    assert session.status().status is ConnectorStatus.CHARGING
    return session


def test_without_a_session_the_limit_moves_at_once() -> None:
    arbiter, session = CurrentArbiter(), ConnectorSession(1, ConnectorSettings())
    for limit in (10.0, 12.0, None, 3.0):
        assert arbiter.apply(session, limit, 100.0) is None
        assert session.offered_limit_a == limit


def test_a_running_session_sees_at_most_one_duty_change_every_five_seconds() -> None:
    arbiter, session = CurrentArbiter(), charging_session()
    arbiter.observe(session, 90.0)  # the PWM came on at 90 s
    assert arbiter.apply(session, 20.0, 100.0) is None
    assert session.outputs().pilot.duty_percent == 33.33
    assert arbiter.apply(session, 16.0, 102.0) == 105.0
    assert session.offered_limit_a == 20.0 and arbiter.due(1) == 105.0
    assert arbiter.apply(session, 16.0, 104.9) == 105.0
    assert arbiter.apply(session, 16.0, 105.0) is None
    assert session.offered_limit_a == 16.0 and arbiter.due(1) is None


def test_pausing_is_immediate_and_resuming_waits_its_turn() -> None:
    arbiter, session = CurrentArbiter(), charging_session()
    arbiter.observe(session, 90.0)  # the PWM came on at 90 s
    assert arbiter.apply(session, 20.0, 100.0) is None
    assert arbiter.apply(session, 3.0, 101.0) is None  # below 6 A: at once
    assert session.outputs().pilot.mode is PilotMode.X1
    assert session.outputs().contactor_closed is False
    assert session.status().status is ConnectorStatus.SUSPENDED_EVSE
    assert arbiter.apply(session, 0.0, 102.0) is None  # still paused: nothing moves
    assert arbiter.apply(session, 16.0, 103.0) == 106.0
    assert session.status().status is ConnectorStatus.SUSPENDED_EVSE
    assert arbiter.apply(session, 16.0, 106.0) is None
    assert session.outputs().pilot.mode is PilotMode.PWM
    assert session.status().status is ConnectorStatus.CHARGING


def test_the_pwm_coming_on_counts_as_a_duty_change() -> None:
    arbiter, session = CurrentArbiter(), ConnectorSession(1, ConnectorSettings())
    arbiter.observe(session, 10.0)  # idle: nothing offered
    session.authorize("TAG", None, 11.0)
    session.pilot_changed(PilotState.B, 11.0)  # the session starts: PWM on
    assert arbiter.apply(session, 10.0, 12.0) == 17.0
    assert session.offered_limit_a is None
    assert arbiter.apply(session, 3.0, 13.0) is None  # pausing still does not wait


def test_a_limit_change_the_installation_hides_does_not_count_as_a_duty_change() -> None:
    arbiter, session = CurrentArbiter(), charging_session(max_current=16.0)
    arbiter.observe(session, 90.0)
    assert arbiter.apply(session, 10.0, 100.0) is None
    assert arbiter.apply(session, 20.0, 101.0) == 105.0  # 10 -> 16 A moves the duty: waits
    assert arbiter.apply(session, 20.0, 105.0) is None
    assert arbiter.apply(session, 25.0, 106.0) is None  # 16 A either way
    assert session.offered_limit_a == 25.0


def test_an_ampere_limit_for_fewer_phases_keeps_its_power_on_all_wired_phases() -> None:
    """16 A on one phase (3.7 kW) on a 3-phase connector: 16/3 A per phase, which
    pauses, never 16 A on three phases (11 kW)."""
    one_phase = installed(Installed(1, profile((0, 16.0, 1))))
    scaled = limit_at(one_phase, site(1, phases=3), 1, T0 + 10, T0)
    assert (scaled.amps, scaled.phases) == (pytest.approx(16 / 3), 3)  # as reported, too
    three = installed(Installed(1, profile((0, 16.0, 3))))
    assert limit_at(three, site(1, phases=3), 1, T0 + 10, T0).amps == 16.0
    assert limit_at(one_phase, site(1, phases=1), 1, T0 + 10, T0).amps == 16.0
