"""The station's smart charging: the installed charging profiles and the loop that
holds every connector to its composite schedule.

The decisions are in controller.core.smart_charging (what the schedule says) and
controller.core.arbiter (when the offer may move); this shell keeps the profiles
in the store (written before a change is answered or acted on, all of them in one
atomic write), tells the core what is running and at which voltage, and wakes at
each change of a schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from controller.core.arbiter import CurrentArbiter
from controller.core.smart_charging import (
    NOMINAL_VOLTAGE_V,
    ChargingProfile,
    CompositeSchedule,
    Installed,
    ProfileSet,
    Purpose,
    RateUnit,
    Rules,
    Running,
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
    round_down,
    station_limit_at,
)
from controller.core.station import same_id

if TYPE_CHECKING:
    from controller.station import Station

log = logging.getLogger("evsed.smart_charging")

RECORDS = "charging_profile"  # store record kind, keyed by profile id
HORIZON_S = 3600.0  # how far ahead the next schedule change is looked for
RECHECK_S = 30.0  # the longest between evaluations (the CSMS may set the clock; voltage drifts)
LATE_S = 0.01  # wake just after a change, not just before it
MAX_COMPOSITE_S = 7 * 86_400  # the longest composite schedule reported
EXPECTED_KEY = -1  # stands for the transaction a remote start is about to open


@dataclass(frozen=True, slots=True)
class _Expected:
    """A profile that came with a remote start, for the transaction it opens."""

    id_tag: str
    profile: ChargingProfile
    until: float  # monotonic


class SmartCharging:
    def __init__(self, station: Station) -> None:
        self.station = station
        self.store = station.store
        self.arbiter = CurrentArbiter()
        self._started: dict[int, float] = {}  # transaction key -> epoch of its start
        self._expected: dict[int, _Expected] = {}  # connector -> its remote start's profile
        self._targets: dict[int, float] = {}  # connector -> the A its profiles allow, last seen
        self._wake = asyncio.Event()
        self.profiles = self._load()

    # --- the store ------------------------------------------------------------------

    def _load(self) -> ProfileSet:
        items = []
        for key, data in self.store.records(RECORDS).items():
            try:
                items.append(installed_from_json(data))
            except (KeyError, ValueError, TypeError) as e:
                log.error("stored charging profile %s is unreadable, dropped: %r", key, e)
        loaded = ProfileSet(tuple(items))
        # Tx profiles end with their transaction, also with one the last run left open
        # and this run closed.
        kept = loaded.keeping_transactions(tx.id for tx in self.store.open_transactions())
        if len(kept) != len(loaded) or len(items) != len(self.store.records(RECORDS)):
            self._save(kept)
        if kept:
            log.info("%d charging profile(s) installed", len(kept))
        return kept

    def _save(self, profiles: ProfileSet) -> None:
        """Replace the stored profiles, atomically: all of the new set or none of it."""
        records = {str(i.profile.id): installed_to_json(i) for i in profiles}
        self.store.replace_records(RECORDS, records)

    def _commit(self, profiles: ProfileSet) -> None:
        self._save(profiles)
        self.profiles = profiles

    # --- what the core needs to know ----------------------------------------------------

    def site(self) -> Site:
        station = self.station
        supplies, running = {}, {}
        for i, session in enumerate(station.core.connectors):
            n = session.number
            supplies[n] = Supply(
                session.settings.max_current_a, station.phases[i], self._voltage(i)
            )
            key = station.transaction_id(n)
            if key is None or session.tx is None or session.tx.stopping:
                continue
            record = self.store.transaction(key)
            csms_id = None if record is None or record.csms_id is None else str(record.csms_id)
            started = self._started.get(key)
            if started is None:
                started = self._epoch(record.started_at) if record is not None else None
                self._started[key] = started if started is not None else self._now()
            running[n] = Running(key, csms_id, self._started[key])
        return Site(supplies, running)

    def _voltage(self, index: int) -> float:
        """The measured voltage (whole volts, so the limit does not follow every
        flicker), or the nominal one."""
        reading, phases = self.station.readings[index], self.station.phases[index]
        volts = [] if reading is None else [v for v in reading.voltage_v[:phases] if v > 50.0]
        return float(round(sum(volts) / len(volts))) if volts else NOMINAL_VOLTAGE_V

    def _now(self) -> float:
        return self.station.clock.epoch()

    def _epoch(self, stamp: str) -> float | None:
        try:
            moment = datetime.fromisoformat(
                self.station.clock.resolve(stamp).replace("Z", "+00:00")
            )
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()

    # --- commands (from an OCPP layer) ------------------------------------------------------

    def set_profile(
        self,
        profile: ChargingProfile,
        connector: int,
        rules: Rules,
        same_level_replaces: bool = True,
    ) -> str | None:
        """Install `profile` on `connector` (0: the station); why not, or None once it is
        stored and applied. `same_level_replaces`: OCPP 1.6's rule (ProfileSet.installing)."""
        now = self._now()
        site = self.site()
        why = check_profile(
            profile, connector, site, rules, self.profiles, now, same_level_replaces
        )
        if why is not None:
            return why
        tx_key = site.running[connector].key if profile.purpose is Purpose.TX else None
        new = Installed(connector, anchored(profile, now), tx_key)
        self._commit(self.profiles.installing(new, same_level_replaces))
        log.info(
            "charging profile %d installed (%s, stack level %d)",
            profile.id,
            profile.purpose.value,
            profile.stack_level,
            extra={"connector": connector},
        )
        self.refresh()
        return None

    def clear(
        self,
        profile_id: int | None = None,
        connector: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> int:
        """Remove the matching profiles; how many there were."""
        kept, cleared = self.profiles.clearing(profile_id, connector, purpose, stack_level)
        if cleared:
            self._commit(kept)
            log.info("%d charging profile(s) cleared", cleared)
            self.refresh()
        return cleared

    async def composite(
        self, connector: int, duration: int, unit: RateUnit
    ) -> CompositeSchedule | None:
        """The schedule `connector` (0: the station) will follow from now; None for no
        such connector. Worked out on a worker thread: a week of many recurring
        profiles takes a while on a Pi, and the loop must stay free for the pilot."""
        site = self.site()
        if not 0 <= connector <= len(site.supplies):
            return None
        start = float(math.floor(self._now()))
        length = min(duration, MAX_COMPOSITE_S)
        return await asyncio.to_thread(
            composite_schedule, self.profiles, site, connector, start, length, unit
        )

    def expect_transaction(
        self, connector: int, id_tag: str, profile: ChargingProfile, rules: Rules, wait_s: float
    ) -> str | None:
        """A remote start brought `profile` for the transaction it is to open on
        `connector` within `wait_s`; why it cannot be used, or None."""
        why = check_transaction_profile(
            profile, connector, self.site(), rules, self.profiles, self._now()
        )
        if why is None:
            self._expected[connector] = _Expected(id_tag, profile, time.monotonic() + wait_s)
            self.refresh()  # the transaction starts under its profile's limit, not above it
        return why

    def forget_expected(self, connector: int, id_tag: str | None = None) -> None:
        """The remote start on `connector` (for `id_tag`, if given) will open no
        transaction: its profile no longer counts, so the others get their share back."""
        expected = self._expected.get(connector)
        if expected is None or (id_tag is not None and not same_id(expected.id_tag, id_tag)):
            return
        del self._expected[connector]
        log.info(
            "charging profile %d of a failed remote start dropped",
            expected.profile.id,
            extra={"connector": connector},
        )
        self.refresh()

    # --- the station's transactions (called while it applies a change) -------------------------

    def transaction_started(self, connector: int, key: int, id_tag: str) -> None:
        self._started[key] = self._now()
        expected = self._expected.pop(connector, None)
        if (
            expected is not None
            and same_id(expected.id_tag, id_tag)
            and time.monotonic() < expected.until
        ):
            self._commit(self.profiles.installing(Installed(connector, expected.profile, key)))
            log.info(
                "charging profile %d of the remote start installed",
                expected.profile.id,
                extra={"connector": connector, "tx": key},
            )
        self.evaluate()
        self._wake.set()

    def transaction_ended(self, connector: int, key: int) -> None:
        self._started.pop(key, None)
        remaining = self.profiles.without_transaction(key)
        if len(remaining) != len(self.profiles):
            self._commit(remaining)
            log.info("the transaction's Tx profile ended", extra={"connector": connector})
        self.evaluate()
        self._wake.set()

    # --- holding the connectors to their schedules -----------------------------------------------

    def refresh(self) -> None:
        """Apply what the profiles say now, and look again at the next change."""
        if self.evaluate():
            self.station.limits_changed()
        self._wake.set()

    def evaluate(self) -> bool:
        """Set each connector's limit (through the arbiter) to what its schedule says
        now; whether any limit moved."""
        site = self.site()
        self._end_finished_transactions()
        now, mono = self._now(), time.monotonic()
        profiles, site = self._with_expected(site, now, mono)
        changed = False
        for session in self.station.core.connectors:
            amps = round_down(limit_at(profiles, site, session.number, now, now).amps)
            self._targets[session.number] = amps
            wanted = None if amps >= session.settings.max_current_a else amps
            before = session.offered_limit_a
            self.arbiter.apply(session, wanted, mono)
            changed |= session.offered_limit_a != before
        return changed

    def target_current(self, connector: int) -> float:
        """The current (A per phase) `connector` is steered to: what its charging profiles
        allow now, within the installation limit. The arbiter moves the pilot's offer
        there (a rise waits up to 5 s); a cable rated lower offers less."""
        session = self.station.core.connector(connector)
        return min(self._targets.get(connector, math.inf), session.settings.max_current_a)

    def target_power(self, connector: int) -> float:
        """The same in W, at the voltage the profiles are converted with (what
        GetCompositeSchedule reports for now); 0: what the whole station may draw now."""
        site = self.site()
        if connector == 0:
            now = self._now()
            return round_down(station_limit_at(self.profiles, site, now, now, RateUnit.W))
        return self.target_current(connector) * site.supplies[connector].watts_per_amp

    def _with_expected(self, site: Site, now: float, mono: float) -> tuple[ProfileSet, Site]:
        """The profiles and transactions as they will be once the remote starts that
        brought a profile open their transactions (starting now)."""
        for connector, expected in list(self._expected.items()):
            if mono >= expected.until:
                del self._expected[connector]
        profiles, running = self.profiles, dict(site.running)
        for connector, expected in self._expected.items():
            if connector not in running:
                running[connector] = Running(EXPECTED_KEY, None, now)
                profiles = profiles.installing(Installed(connector, expected.profile, EXPECTED_KEY))
        return profiles, Site(site.supplies, running)

    def _delay(self) -> float:
        """How long until a limit may change: the next schedule change, or the moment a
        change the arbiter held back becomes due."""
        now, mono = self._now(), time.monotonic()
        delays = [RECHECK_S]
        moment = next_change(self.profiles, self.site(), now, HORIZON_S)
        if moment is not None:
            delays.append(moment - now + LATE_S)
        for session in self.station.core.connectors:
            due = self.arbiter.due(session.number)
            if due is not None:
                delays.append(due - mono + LATE_S)
        return max(LATE_S, min(delays))

    def _end_finished_transactions(self) -> None:
        """Drop Tx profiles whose transaction closed without this run seeing it end
        (one the previous run left open)."""
        active = {
            k
            for c in self.station.core.connectors
            if (k := self.station.transaction_id(c.number)) is not None
        }
        if all(i.tx_key is None or i.tx_key in active for i in self.profiles):
            return
        alive = active | {tx.id for tx in self.store.open_transactions()}
        kept = self.profiles.keeping_transactions(alive)
        if len(kept) != len(self.profiles):
            self._commit(kept)

    async def run(self) -> None:
        while True:
            if self.evaluate():
                self.station.limits_changed()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._delay()):
                    await self._wake.wait()
