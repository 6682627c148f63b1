"""Smart charging: charging profiles, their validation, and the composite schedule.

Protocol-neutral, so OCPP 1.6 and 2.0.1 share it: times are UTC epoch seconds,
connector 0 is the whole station, a transaction is known by the station's own
key (and the CSMS's id, once it has one), and limits stay in their schedule's
unit (A per phase, or W) until converted with the connector's voltage and phases.

The rules (OCPP 1.6 §3.13, §5.16, §7.7–7.13; 2.0.1 K01–K08 agree):

- at each moment the valid profile with the highest stackLevel that defines a
  limit prevails within its purpose (a connector's own TxDefault profile beats the
  station-wide one at equal level);
- a Tx profile of the running transaction overrules the TxDefault profiles;
- the station's max profile caps the sum over the connectors: its limit is shared
  equally among the connectors charging, a connector that needs less leaving the
  rest to the others;
- a limit below the schedule's minChargingRate is not worth charging at: 0;
- watts become amperes per phase with the connector's voltage (measured, else
  nominal) and the phases it is wired with. A period's numberPhases (3 when absent)
  cannot change those: evsed does not switch phases, so an EV draws on every wired
  phase, and dividing by fewer would let it take a multiple of the power limit.
  For the same reason an ampere limit meant for fewer phases than the connector
  has is scaled to the same power over all of them (16 A on 1 phase: 5.3 A on 3,
  which pauses, rather than 16 A on 3, three times the power meant).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from controller.core.iec61851 import MIN_CURRENT_A

NOMINAL_VOLTAGE_V = 230.0
MAX_SECONDS = 2**31 - 1  # periods and durations beyond this overflow every consumer
DAY_S = 86_400
WEEK_S = 7 * DAY_S


class Purpose(StrEnum):
    STATION_MAX = "StationMax"  # 1.6 ChargePointMaxProfile, 2.0.1 ChargingStationMaxProfile
    TX_DEFAULT = "TxDefault"
    TX = "Tx"


class Kind(StrEnum):
    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class Recurrency(StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"


class RateUnit(StrEnum):
    A = "A"  # current per phase
    W = "W"  # power over all phases


@dataclass(frozen=True, slots=True)
class Period:
    start: int  # seconds from the start of the schedule
    limit: float  # in the schedule's unit
    phases: int | None = None  # numberPhases; None: 3 (reported, see the module's notes)


@dataclass(frozen=True, slots=True)
class Schedule:
    unit: RateUnit
    periods: tuple[Period, ...]
    start: float | None = None  # Absolute / Recurring: epoch; else from the start of charging
    duration: int | None = None  # None: the last period lasts (until the recurrence restarts)
    min_rate: float | None = None  # in the schedule's unit
    id: int | None = None  # 2.0.1's chargingSchedule id, reported back (1.6 has none)


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    id: int
    stack_level: int
    purpose: Purpose
    kind: Kind
    schedule: Schedule
    recurrency: Recurrency | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    transaction_id: str | None = None  # the CSMS's id of the transaction (Tx profiles)


@dataclass(frozen=True, slots=True)
class Installed:
    connector: int  # 0: the whole station
    profile: ChargingProfile
    tx_key: int | None = None  # Tx profiles: the station's key of their transaction


@dataclass(frozen=True, slots=True)
class Rules:
    """The station's capacity for profiles (1.6: its read-only SmartCharging keys)."""

    max_stack_level: int
    max_periods: int
    max_installed: int
    units: frozenset[RateUnit] = frozenset({RateUnit.A, RateUnit.W})


@dataclass(frozen=True, slots=True)
class Supply:
    """What one connector can deliver, for the conversion between A and W."""

    max_current: float  # A per phase: the installation limit
    phases: int = 3
    voltage: float = NOMINAL_VOLTAGE_V

    @property
    def watts_per_amp(self) -> float:
        return self.voltage * self.phases


@dataclass(frozen=True, slots=True)
class Running:
    """A running transaction, as the profiles see it."""

    key: int  # the station's own key
    transaction_id: str | None  # the CSMS's id, once it has answered
    started: float  # epoch: where Relative schedules start


@dataclass(frozen=True, slots=True)
class Site:
    supplies: dict[int, Supply]  # connector (1..n) -> its supply
    running: dict[int, Running]  # connector -> its transaction (not stopping)

    def station_supply(self) -> Supply:
        """The grid connection: the connectors' sum (for connector 0's schedules)."""
        supplies = list(self.supplies.values())
        return Supply(
            sum(s.max_current for s in supplies),
            max(s.phases for s in supplies),
            sum(s.voltage for s in supplies) / len(supplies),
        )


@dataclass(frozen=True, slots=True)
class Limit:
    """The current a connector may be offered at one moment."""

    amps: float  # A per phase; 0 = pause
    phases: int | None = None  # numberPhases of the period that set it, if it said


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    start: float  # epoch
    duration: int
    unit: RateUnit
    periods: tuple[Period, ...]


# --- validation ------------------------------------------------------------------------


def check_profile(
    profile: ChargingProfile,
    connector: int,
    site: Site,
    rules: Rules,
    installed: ProfileSet,
    now: float,
    same_level_replaces: bool = True,
) -> str | None:
    """Why `profile` may not be installed on `connector` now, or None (SetChargingProfile);
    `same_level_replaces` as for ProfileSet.installing."""
    if not 0 <= connector <= len(site.supplies):
        return f"no connector {connector}"
    why = _check_common(profile, rules, now)
    if why:
        return why
    purpose = profile.purpose
    if purpose is not Purpose.TX and profile.transaction_id is not None:
        return "only a Tx profile names a transaction"
    if purpose is Purpose.STATION_MAX:
        if connector != 0:
            return "a station max profile belongs on connector 0"
        if profile.kind is Kind.RELATIVE:
            return "a station max profile cannot be relative: there is no transaction to start it"
    if purpose is Purpose.TX:
        if connector == 0:
            return "a Tx profile belongs on a connector, not 0"
        running = site.running.get(connector)
        if running is None:
            return f"no transaction on connector {connector}"
        if profile.transaction_id is not None and profile.transaction_id != running.transaction_id:
            return f"transaction {profile.transaction_id} is not the one on connector {connector}"
    after = installed.installing(Installed(connector, profile), same_level_replaces)
    return _check_room(after, rules)


def check_transaction_profile(
    profile: ChargingProfile,
    connector: int,
    site: Site,
    rules: Rules,
    installed: ProfileSet,
    now: float,
) -> str | None:
    """Why `profile` may not come with a remote start on `connector` (it is installed for
    the transaction the start opens), or None."""
    if not 1 <= connector <= len(site.supplies):
        return f"no connector {connector}"
    if profile.purpose is not Purpose.TX:
        return "a remote start's profile must be a Tx profile"
    if profile.transaction_id is not None:
        return "the transaction of a remote start has no id yet"
    return _check_common(profile, rules, now) or _check_room(
        installed.installing(Installed(connector, profile, tx_key=-1)), rules
    )


def _check_room(after: ProfileSet, rules: Rules) -> str | None:
    if len(after) > rules.max_installed:
        return f"more than {rules.max_installed} profiles installed"
    return None


def _check_common(profile: ChargingProfile, rules: Rules, now: float) -> str | None:
    if not 0 <= profile.stack_level <= rules.max_stack_level:
        return f"stackLevel must be 0..{rules.max_stack_level}"
    if profile.kind is Kind.RECURRING and profile.recurrency is None:
        return "a recurring profile needs a recurrencyKind"
    valid_from, valid_to = profile.valid_from, profile.valid_to
    if valid_from is not None and valid_to is not None and valid_from >= valid_to:
        return "validFrom is not before validTo"
    if profile.valid_to is not None and profile.valid_to <= now:
        return "validTo has passed"
    return _check_schedule(profile.schedule, profile.kind, rules)


def _check_schedule(schedule: Schedule, kind: Kind, rules: Rules) -> str | None:
    if schedule.unit not in rules.units:
        return f"chargingRateUnit {schedule.unit.value} is not allowed"
    if kind is Kind.RECURRING and schedule.start is None:
        return "a recurring profile needs a startSchedule"
    if kind is Kind.RELATIVE and schedule.start is not None:
        return "a relative profile has no startSchedule"
    if schedule.duration is not None and not 0 < schedule.duration <= MAX_SECONDS:
        return "duration must be positive"
    if schedule.min_rate is not None and not (
        math.isfinite(schedule.min_rate) and schedule.min_rate >= 0
    ):
        return "minChargingRate must be a number >= 0"
    periods = schedule.periods
    if not periods:
        return "a schedule needs at least one period"
    if len(periods) > rules.max_periods:
        return f"more than {rules.max_periods} periods"
    if periods[0].start != 0:
        return "the first period must start at 0"
    for before, after in itertools.pairwise(periods):
        if after.start <= before.start:
            return "startPeriod must increase from one period to the next"
    for period in periods:
        if period.start > MAX_SECONDS:
            return "startPeriod out of range"
        if not (math.isfinite(period.limit) and period.limit >= 0):
            return "a limit must be a number >= 0"
        if period.phases is not None and not 1 <= period.phases <= 3:
            return "numberPhases must be 1, 2 or 3"
    return None


# --- the installed set --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileSet:
    items: tuple[Installed, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Installed]:
        return iter(self.items)

    def installing(self, new: Installed, same_level_replaces: bool = True) -> ProfileSet:
        """With `new`, replacing a profile of the same id anywhere, or (OCPP 1.6's rule,
        `same_level_replaces`) of the same stackLevel and purpose on the same connector.
        2.0.1 keeps those side by side: they are valid at different times (K01.FR.06)."""
        p = new.profile

        def replaced(old: Installed) -> bool:
            q = old.profile
            return q.id == p.id or (
                same_level_replaces
                and old.connector == new.connector
                and q.stack_level == p.stack_level
                and q.purpose is p.purpose
            )

        return ProfileSet((*(i for i in self.items if not replaced(i)), new))

    def clearing(
        self,
        profile_id: int | None = None,
        connector: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> tuple[ProfileSet, int]:
        """Without the profiles that match (by id alone when it is given; else every
        given criterion), and how many went."""

        def matches(i: Installed) -> bool:
            if profile_id is not None:
                return i.profile.id == profile_id
            return (
                (connector is None or i.connector == connector)
                and (purpose is None or i.profile.purpose is purpose)
                and (stack_level is None or i.profile.stack_level == stack_level)
            )

        kept = tuple(i for i in self.items if not matches(i))
        return ProfileSet(kept), len(self.items) - len(kept)

    def without_transaction(self, key: int) -> ProfileSet:
        """Without the Tx profiles of transaction `key`: they end with it."""
        return ProfileSet(tuple(i for i in self.items if i.tx_key != key))

    def keeping_transactions(self, keys: Iterable[int]) -> ProfileSet:
        """Without the Tx profiles of transactions other than `keys` (they end with theirs)."""
        alive = set(keys)
        return ProfileSet(tuple(i for i in self.items if i.tx_key is None or i.tx_key in alive))


# --- schedules over time ------------------------------------------------------------------


def _cycle(profile: ChargingProfile) -> float:
    return WEEK_S if profile.recurrency is Recurrency.WEEKLY else DAY_S


def _valid_at(profile: ChargingProfile, t: float) -> bool:
    return (profile.valid_from is None or profile.valid_from <= t) and (
        profile.valid_to is None or t < profile.valid_to
    )


def _schedule_start(profile: ChargingProfile, t: float, origin: float) -> float:
    start = profile.schedule.start
    if profile.kind is Kind.RECURRING and start is not None:
        cycle = _cycle(profile)
        return start + math.floor((t - start) / cycle) * cycle
    if profile.kind is Kind.ABSOLUTE and start is not None:
        return start
    return origin  # Relative, or Absolute without a start: "relative to start of charging"


def _length(profile: ChargingProfile) -> float | None:
    """How long one run of the schedule lasts; None: for ever."""
    duration = profile.schedule.duration
    if profile.kind is Kind.RECURRING:
        cycle = _cycle(profile)
        return cycle if duration is None else min(duration, cycle)
    return duration


def period_at(profile: ChargingProfile, t: float, origin: float) -> Period | None:
    """The period in force at `t`, or None; `origin` is where a schedule without a start
    of its own begins (the transaction's start)."""
    if not _valid_at(profile, t):
        return None
    start = profile.schedule.start
    if profile.kind is Kind.RECURRING and start is not None and t < start:
        return None  # a recurring schedule begins at its startSchedule, not cycles before
    offset = t - _schedule_start(profile, t, origin)
    length = _length(profile)
    if offset < 0 or (length is not None and offset >= length):
        return None
    periods = profile.schedule.periods
    index = bisect.bisect_right(periods, offset, key=_period_start)
    return periods[index - 1] if index else None


def _period_start(period: Period) -> float:
    return period.start


def _changes(profile: ChargingProfile, a: float, b: float, origin: float | None) -> Iterator[float]:
    """The moments in (a, b) at which the profile's limit may change; schedules that
    start with charging are left out when `origin` is None."""
    for edge in (profile.valid_from, profile.valid_to):
        if edge is not None:
            yield edge
    start = profile.schedule.start
    if profile.kind is Kind.RECURRING and start is not None:
        cycle = _cycle(profile)
        first = math.floor((a - start) / cycle)
        last = math.floor((b - start) / cycle)
        starts = [start + k * cycle for k in range(first, last + 1)]
    elif profile.kind is Kind.ABSOLUTE and start is not None:
        starts = [start]
    elif origin is not None:
        starts = [origin]
    else:
        starts = []
    length = _length(profile)
    for run in starts:
        yield from (run + p.start for p in profile.schedule.periods)
        if length is not None:
            yield run + length


def _to_amps(value: float, unit: RateUnit, supply: Supply) -> float:
    return value if unit is RateUnit.A else value / supply.watts_per_amp


def _prevailing(
    candidates: Iterable[Installed], connector: int, t: float, origin: float
) -> tuple[Installed, Period] | None:
    def rank(item: Installed) -> tuple[int, bool]:
        return item.profile.stack_level, item.connector == connector

    for item in sorted(candidates, key=rank, reverse=True):
        period = period_at(item.profile, t, origin)
        if period is not None:
            return item, period
    return None


def _transaction_level(
    profiles: ProfileSet, site: Site, connector: int, t: float, origin: float
) -> Limit:
    """The connector's own limit at `t`: its Tx profile, else its TxDefault, capped by
    the installation, and paused below the schedule's minChargingRate."""
    supply = site.supplies[connector]
    running = site.running.get(connector)
    if running is not None:
        origin = running.started
        tx = [
            i
            for i in profiles
            if i.profile.purpose is Purpose.TX
            and i.connector == connector
            and i.tx_key == running.key
        ]
        found = _prevailing(tx, connector, t, origin)
    else:
        found = None
    if found is None:
        defaults = [
            i
            for i in profiles
            if i.profile.purpose is Purpose.TX_DEFAULT and i.connector in (0, connector)
        ]
        found = _prevailing(defaults, connector, t, origin)
    if found is None:
        return Limit(supply.max_current)
    schedule = found[0].profile.schedule
    period = found[1]
    amps, phases = _to_amps(period.limit, schedule.unit, supply), period.phases
    if schedule.unit is RateUnit.A and phases is not None and phases < supply.phases:
        # Amperes meant for fewer phases than the EV will draw on: the same power,
        # spread over every wired phase (evsed does not switch phases).
        amps, phases = amps * phases / supply.phases, supply.phases
    amps = min(supply.max_current, amps)
    if schedule.min_rate is not None and amps < _to_amps(schedule.min_rate, schedule.unit, supply):
        amps = 0.0
    return Limit(amps, phases)


def _station_cap(profiles: ProfileSet, t: float, origin: float) -> tuple[float, RateUnit] | None:
    caps = [i for i in profiles if i.profile.purpose is Purpose.STATION_MAX]
    found = _prevailing(caps, 0, t, origin)
    if found is None:
        return None
    return found[1].limit, found[0].profile.schedule.unit


def share(cap: float, demands: dict[int, float], cost: dict[int, float]) -> dict[int, float]:
    """Share `cap` (in its unit) equally among the connectors, none getting more than it
    demands (A); `cost` is what one ampere of each costs in the cap's unit. When an equal
    share would be below 6 A (which pauses every one of them), as many connectors as
    the cap can carry at 6 A share it, lowest number first, and the others get 0."""
    result: dict[int, float] = {}
    left = dict(demands)
    remaining = cap
    while left:
        fair = remaining / len(left)
        modest = {c: d for c, d in left.items() if d * cost[c] <= fair}
        if not modest:
            if all(fair / cost[c] >= MIN_CURRENT_A for c in left) or len(left) == 1:
                result.update({c: fair / cost[c] for c in left})
                break
            fits, budget = [], remaining
            for c in sorted(left):
                if budget >= MIN_CURRENT_A * cost[c]:
                    fits.append(c)
                    budget -= MIN_CURRENT_A * cost[c]
            result.update({c: 0.0 for c in left if c not in fits})
            if fits:
                result.update(share(remaining, {c: left[c] for c in fits}, cost))
            break
        for c, d in modest.items():
            result[c] = d
            remaining -= d * cost[c]
            del left[c]
    return result


def limit_at(profiles: ProfileSet, site: Site, connector: int, t: float, origin: float) -> Limit:
    """What `connector` may be offered at `t`: its own limit within its share of the
    station's max profile. A connector not charging is counted as if it started
    charging at `origin`."""
    own = _transaction_level(profiles, site, connector, t, origin)
    cap = _station_cap(profiles, t, origin)
    if cap is None:
        return own
    value, unit = cap
    sharing = set(site.running) | {connector}
    demands = {
        c: own.amps if c == connector else _transaction_level(profiles, site, c, t, origin).amps
        for c in sharing
    }
    cost = {c: 1.0 if unit is RateUnit.A else site.supplies[c].watts_per_amp for c in sharing}
    return Limit(min(own.amps, share(value, demands, cost)[connector]), own.phases)


def station_limit_at(
    profiles: ProfileSet, site: Site, t: float, origin: float, unit: RateUnit
) -> float:
    """What the whole station may draw at `t`, in `unit` (A: the sum of the connectors'
    currents per phase)."""
    total = 0.0
    for c, supply in site.supplies.items():
        amps = _transaction_level(profiles, site, c, t, origin).amps
        total += amps if unit is RateUnit.A else amps * supply.watts_per_amp
    cap = _station_cap(profiles, t, origin)
    if cap is not None:
        value, cap_unit = cap
        station = site.station_supply()
        if cap_unit is not unit:
            value = (
                value / station.watts_per_amp
                if unit is RateUnit.A
                else value * station.watts_per_amp
            )
        total = min(total, value)
    return total


def next_change(profiles: ProfileSet, site: Site, now: float, horizon: float) -> float | None:
    """The first moment in (now, now + horizon) at which a limit may change. Schedules
    that start with charging count only on connectors that are charging."""
    origins: list[float | None] = [r.started for r in site.running.values()] or [None]
    end = now + horizon
    moments = (
        t
        for item in profiles
        for origin in origins
        for t in _changes(item.profile, now, end, origin)
        if now < t < end
    )
    return min(moments, default=None)


def composite_schedule(
    profiles: ProfileSet,
    site: Site,
    connector: int,
    start: float,
    duration: int,
    unit: RateUnit,
) -> CompositeSchedule:
    """The limits `connector` (0: the station) will be held to from `start` for
    `duration` s, in `unit`, as periods; the connectors' supplies fill what no profile
    limits."""
    end = start + duration
    origins = {start, *(r.started for r in site.running.values())}
    moments = {start}
    for item in profiles:
        for origin in origins:
            moments.update(t for t in _changes(item.profile, start, end, origin) if start < t < end)
    periods: list[Period] = []
    for t in sorted(moments):
        if connector == 0:
            value, phases = station_limit_at(profiles, site, t, start, unit), None
        else:
            limit = limit_at(profiles, site, connector, t, start)
            supply = site.supplies[connector]
            value = limit.amps if unit is RateUnit.A else limit.amps * supply.watts_per_amp
            phases = limit.phases
        period = Period(math.floor(t - start), round_down(value), phases)
        if periods and periods[-1].start == period.start:
            periods.pop()  # what lasted less than a second is not reported
        if periods and (periods[-1].limit, periods[-1].phases) == (period.limit, period.phases):
            continue
        periods.append(period)
    return CompositeSchedule(start, duration, unit, tuple(periods))


def round_down(value: float) -> float:
    """To 0.1 below (a limit reported is never more than the one applied)."""
    return round(math.floor(value * 10 + 1e-9) / 10, 1)


def anchored(profile: ChargingProfile, now: float) -> ChargingProfile:
    """A station max profile without a start of its own starts when it is installed
    (there is no transaction to start it)."""
    if profile.purpose is Purpose.STATION_MAX and profile.schedule.start is None:
        return replace(profile, schedule=replace(profile.schedule, start=now))
    return profile


# --- stored form --------------------------------------------------------------------------


def installed_to_json(item: Installed) -> dict[str, Any]:
    p, s = item.profile, item.profile.schedule
    return {
        "connector": item.connector,
        "tx_key": item.tx_key,
        "id": p.id,
        "stack_level": p.stack_level,
        "purpose": p.purpose.value,
        "kind": p.kind.value,
        "recurrency": p.recurrency.value if p.recurrency else None,
        "valid_from": p.valid_from,
        "valid_to": p.valid_to,
        "transaction_id": p.transaction_id,
        "schedule": {
            "unit": s.unit.value,
            "start": s.start,
            "duration": s.duration,
            "min_rate": s.min_rate,
            "periods": [[q.start, q.limit, q.phases] for q in s.periods],
            "id": s.id,
        },
    }


def installed_from_json(data: dict[str, Any]) -> Installed:
    """Raises KeyError, ValueError or TypeError for a record that is not one."""
    s = data["schedule"]
    schedule = Schedule(
        RateUnit(s["unit"]),
        tuple(Period(int(a), float(b), None if c is None else int(c)) for a, b, c in s["periods"]),
        s["start"],
        s["duration"],
        s["min_rate"],
        s.get("id"),  # absent in records written before 2.0.1
    )
    profile = ChargingProfile(
        int(data["id"]),
        int(data["stack_level"]),
        Purpose(data["purpose"]),
        Kind(data["kind"]),
        schedule,
        Recurrency(data["recurrency"]) if data["recurrency"] else None,
        data["valid_from"],
        data["valid_to"],
        data["transaction_id"],
    )
    return Installed(int(data["connector"]), profile, data["tx_key"])
