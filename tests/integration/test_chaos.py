"""Chaos: charging sessions under real faults, then a consistency check of what the
CSMS ended up with.

A seeded random "driver" plays charging sessions on a real daemon (see harness.py)
while faults are injected at random moments: kill -9 and restart (also exactly when
the CSMS has just answered a transaction message, so the answer is lost and the
message is sent again), SIGTERM and restart, the link cut for 0.5-3 s, a CSMS that
drops the connection and refuses new ones for a while, CALLERRORs and unanswered
calls (timeouts) on StartTransaction, MeterValues and StopTransaction, a card
blocked at the CSMS while the station is offline, meter dropouts (short, and long
enough to be reported as PowerMeterFailure) and a dead RFID reader (a tap on it does
nothing; the driver then unplugs or waits for it). Cards the CSMS knows, one it does
not. Each decision about a card is taken while the link is definitely up or
definitely down, so the test knows what the authorization policy must answer.

At the end everything is restored and the outbox drained; then the daemon's own
record (its SQLite store), the driver's record and the CSMS's view
(`CsmsThread.transactions()`) must agree: every transaction the station ran is
exactly one CSMS transaction with exactly one distinct stop, in order, with
consistent meter readings and timestamps, the expected stop reason (PowerLoss
after a kill -9) and nothing for unknown transaction ids; the authorization
followed the offline policy; no transaction message was given up. The simulation's
power-path log (hardware.sim_event_log) shows the contactor closing only in state C
or D with the PWM on, inside a session the driver was authorized for, and opening as
the next thing whenever the pilot left C/D while it was closed.

Default: three fixed seeds over OCPP 1.6 (two with one connector, one with two) and
two over 2.0.1 (one connector; the default TxStartPoint / TxStopPoint, and
EVConnected/EVConnected), six charging sessions each (five for the last), about 70 s
in all. Run with -s to see a summary per seed (sessions, faults injected, messages,
retransmissions the CSMS recognised). A longer run by hand (some 2-3 s per session;
this one takes over an hour):

    EVSED_CHAOS_SESSIONS=200 EVSED_CHAOS_SEEDS=5 \\
        .venv/bin/python -m pytest -q tests/integration/test_chaos.py::test_chaos -s

EVSED_CHAOS_SESSIONS is the number of sessions that charge per run (refused cards
come on top); EVSED_CHAOS_SEEDS a count (seeds 1..N) or a comma-separated list of
seeds; EVSED_CHAOS_CONNECTORS (1 or 2) restricts the long run to one station
layout (default: both, for every seed). A failure names its case, prints the tail
of the daemon's log and keeps the whole log and the store in pytest's tmp_path
("failed-run", named in the failure).

OCPP 2.0.1: the same driver and faults over 2.0.1 (the daemon with `[ocpp] version =
"2.0.1"`, the CSMS accepting only "ocpp2.0.1"). The CALLERRORs, unanswered calls and
kills on an answer then hit TransactionEvent, and the CSMS's view is
`CsmsThread.transaction_events()`: every transaction the station ran is exactly one
2.0.1 transaction, with one Started and one Ended event, gap-free seqNos, the
expected stoppedReason, an energy register that never goes down over its events and
an Ended energy equal to the store's meter_stop. EVSED_CHAOS_OCPP=2.0.1 (or "both";
default 1.6) selects the version of a long run:

    EVSED_CHAOS_OCPP=2.0.1 EVSED_CHAOS_SESSIONS=100 EVSED_CHAOS_SEEDS=2 \\
        EVSED_CHAOS_CONNECTORS=1 .venv/bin/python -m pytest -q \\
        tests/integration/test_chaos.py::test_chaos -s

TxStartPoint / TxStopPoint (2.0.1 only): EVSED_CHAOS_TX_POINTS is a ";"-separated list
of "TxStartPoint/TxStopPoint" values, each run as its own case with the points set in
the daemon's `[ocpp.variables]`; with them, one card in three (one connector) comes
before the EV. A 2.0.1 transaction may then start at plug-in or at a card, outlive a
card stop until the EV leaves (and hold several station transactions), or with
EnergyTransfer hold none of a station transaction that never charged, so the check is
`check_201_points`: one Started and one Ended per 2.0.1 transaction, gap-free seqNos,
every event stamped inside its transaction, never two open at once on one EVSE,
energy that never goes down, and every station transaction started in exactly one
2.0.1 transaction (its Started, an Updated with its idToken, or the Updated
(CablePluggedIn) after a Started that carried its idToken), or, with EnergyTransfer,
in none if it did not charge. The soak of all three shapes:

    EVSED_CHAOS_OCPP=2.0.1 EVSED_CHAOS_SESSIONS=60 EVSED_CHAOS_SEEDS=1,2 \\
        EVSED_CHAOS_CONNECTORS=1 EVSED_CHAOS_TX_POINTS="EVConnected/EVConnected;\\
        Authorized/EVConnected,Authorized;EnergyTransfer/EVConnected,Authorized" \\
        .venv/bin/python -m pytest -q tests/integration/test_chaos.py::test_chaos -s
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.control import ControlError
from hwsim.csms import CsmsThread, NotConnectedError, Record, TransactionView
from hwsim.csms_v201 import TransactionEvents
from hwsim.event_log import read_events
from tests.integration.harness import CARD, Daemon

KNOWN = ["0A000001", "0A000002", "0A000003"]  # Accepted by the CSMS (unless revoked)
UNKNOWN = "0BADCAFE"  # Invalid at the CSMS
TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")
V201 = "2.0.1"
ATTEMPTS = 5  # TransactionMessageAttempts
ENERGY = "Energy.Active.Import.Register"
# The default run's case with other TxStartPoint / TxStopPoint: this seed has a card
# before the EV, a refused card (a 2.0.1 transaction with no station transaction in it)
# and kills on a TransactionEvent answer in five sessions.
SEED_POINTS = 4
WAIT = 30.0  # generous: the machine may be busy; every wait polls a condition


def _cases() -> list[tuple[int, int, int, str, str]]:
    """(seed, connectors, sessions, OCPP version, TxStartPoint/TxStopPoint) per run."""
    seeds_env = os.environ.get("EVSED_CHAOS_SEEDS")
    sessions_env = os.environ.get("EVSED_CHAOS_SESSIONS")
    if not seeds_env and not sessions_env:
        return [
            (2, 1, 6, "1.6", ""),
            (4, 1, 6, "1.6", ""),
            (3, 2, 6, "1.6", ""),
            (2, 1, 6, V201, ""),
            (SEED_POINTS, 1, 5, V201, "EVConnected/EVConnected"),
        ]
    seeds_env = seeds_env or "3"
    if "," in seeds_env:
        seeds = [int(s) for s in seeds_env.split(",") if s.strip()]
    else:
        seeds = list(range(1, int(seeds_env) + 1))
    sessions = int(sessions_env or "30")
    layouts = (
        [int(os.environ["EVSED_CHAOS_CONNECTORS"])]
        if ("EVSED_CHAOS_CONNECTORS" in os.environ)
        else [1, 2]
    )
    version = os.environ.get("EVSED_CHAOS_OCPP", "1.6")
    versions = ["1.6", V201] if version == "both" else [version]
    assert set(versions) <= {"1.6", V201}, f"EVSED_CHAOS_OCPP={version}: 1.6, 2.0.1 or both"
    points = [p.strip() for p in os.environ.get("EVSED_CHAOS_TX_POINTS", "").split(";")]
    points = [p for p in points if p] or [""]
    assert points == [""] or versions == [V201], (
        "EVSED_CHAOS_TX_POINTS needs EVSED_CHAOS_OCPP=2.0.1"
    )
    assert all(p.count("/") == 1 for p in points if p), f"{points}: start/stop, e.g. A/B,C"
    return [
        (seed, n, sessions, v, p)
        for v in versions
        for p in points
        for seed in seeds
        for n in layouts
    ]


@pytest.fixture
def ocpp() -> str:
    """The OCPP version of the test (test_chaos parametrizes it)."""
    return "1.6"


@pytest.fixture
def csms(ocpp: str) -> Iterator[CsmsThread]:
    """The test CSMS, speaking only the test's OCPP version."""
    subprotocols = ("ocpp2.0.1",) if ocpp == V201 else ("ocpp1.6",)
    with CsmsThread(id_tags={CARD: "Accepted"}, subprotocols=subprotocols) as central:
        yield central


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _energy(meter_values: dict[str, Any]) -> list[float]:
    return [
        float(sample["value"])
        for value in meter_values["meterValue"]
        for sample in value["sampledValue"]
        if sample.get("measurand") == ENERGY
    ]


@dataclass
class Attempt:
    """One time the driver plugged in and presented a card."""

    n: int
    connector: int
    card: str
    online: bool  # the decision was taken with the link up (else: definitely down)
    expected: bool  # what the authorization policy must answer
    accepted: bool | None = None
    why: str = ""
    tx: int | None = None  # the store's id of the transaction it started
    charged: bool = False  # the contactor closed
    reason: str | None = None  # how the driver (or the chaos) ended it
    revoked: bool = False  # the card was blocked at the CSMS while offline
    paused: bool = False  # the EV stopped asking for energy
    min_end: float = 0.0  # monotonic time before which the driver does not end it
    tapped: float = 0.0  # monotonic time the card was presented
    ended: float = float("inf")  # monotonic time the driver saw the transaction over


class LogTail:
    """New text of the daemon log since the last look (the log survives restarts)."""

    def __init__(self, daemon: Daemon) -> None:
        self.path = daemon.log_path
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def read(self) -> str:
        if not self.path.exists():
            return ""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return data.decode(errors="replace")


class AnswerKiller:
    """kill -9 the daemon the moment the CSMS answers a given action (the answer is
    recorded, then the process dies before the frame is sent: it never gets it)."""

    def __init__(self, csms: CsmsThread) -> None:
        self._lock = threading.Lock()
        self._armed: tuple[str, subprocess.Popen[bytes]] | None = None
        self._fired = False
        csms.on_message(self._seen)

    def _seen(self, record: Record) -> None:  # in the CSMS thread
        if record.direction != "out" or record.message_type != "CALLRESULT":
            return
        with self._lock:
            if self._armed is None or record.action != self._armed[0]:
                return
            proc = self._armed[1]
            self._armed, self._fired = None, True
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)

    def arm(self, action: str, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._armed, self._fired = (action, proc), False

    def disarm(self) -> bool:
        """Disarm; True if it fired."""
        with self._lock:
            self._armed = None
            return self._fired


class Chaos:
    def __init__(
        self,
        seed: int,
        connectors: int,
        sessions: int,
        daemon: Daemon,
        csms: CsmsThread,
        ocpp: str = "1.6",
        points: str = "",
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.ocpp = ocpp
        self.points = points  # "TxStartPoint/TxStopPoint" (2.0.1); "": the defaults
        self.connectors = connectors
        self.target = sessions
        self.daemon = daemon
        self.csms = csms
        self.killer = AnswerKiller(csms)
        self.attempts: list[Attempt] = []
        self.active: dict[int, Attempt] = {}  # connector -> attempt with a running transaction
        self.plugged: set[int] = set()
        self.cut_until: float | None = None  # link_cut in force (this run of the daemon)
        self.outage_until: float | None = None  # the CSMS drops and refuses connections
        self.csms_status = {**dict.fromkeys(KNOWN, "Accepted"), UNKNOWN: "Invalid"}
        self.cache: dict[str, str] = {}  # what the station's Authorization Cache must hold
        self.log = LogTail(daemon)
        self.counts: Counter[str] = Counter()
        self.meter_down: dict[int, float] = {}  # connector -> when its meter comes back
        self.reader_down_until: float | None = None

    def tx_action(self, action: str) -> str:
        """The call that carries a 1.6 transaction message in this test's OCPP version."""
        return "TransactionEvent" if self.ocpp == V201 else action

    # --- observing the daemon -----------------------------------------------------

    def state(self) -> dict[str, Any]:
        return self.daemon.state()

    def wait(self, check: Any, what: str, timeout: float = WAIT) -> dict[str, Any]:
        return self.daemon.wait(check, timeout, what)

    def db(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the daemon's store (read-only; WAL lets us read while it writes)."""
        path = self.daemon.dir / "state" / "evsed.db"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return list(db.execute(sql, args))
        finally:
            db.close()

    def offline(self) -> bool:
        return self.cut_until is not None or self.outage_until is not None

    def wait_link(self) -> None:
        """Until the station's view of the link is what the chaos made it."""
        if self.offline():
            self.wait(lambda s: not s["ocpp"]["connected"], "the station to see the link down")
        else:
            self.wait(
                lambda s: s["ocpp"]["connected"] and s["ocpp"]["registration"] == "Accepted",
                "the station to be online",
            )

    def tx_of(self, state: dict[str, Any], connector: int) -> dict[str, Any] | None:
        tx: dict[str, Any] | None = state["connectors"][connector - 1]["transaction"]
        return tx

    # --- the driver -------------------------------------------------------------------

    def begin(self, connector: int, card: str, revoked: bool = False) -> None:
        self.wait_link()
        online = not self.offline()
        cached = self.cache.get(card)
        expected = self.csms_status[card] == "Accepted" if online else cached == "Accepted"
        attempt = Attempt(len(self.attempts) + 1, connector, card, online, expected)
        attempt.revoked = revoked
        self.attempts.append(attempt)
        # With other points, the card sometimes comes before the EV (TxStartPoint Authorized).
        card_first = bool(self.points) and self.connectors == 1 and self.rng.random() < 0.3
        if not card_first:
            self.plug(connector)
        self.log.read()
        if self.reader_down_until is not None:
            self.tap_dead_reader(card)
            self.reader_back()
        attempt.tapped = time.monotonic()
        self.daemon.request("card", uid=card)
        # The station logs each decision ("<card> accepted (<why>)") before acting on it.
        seen = ""
        deadline = time.monotonic() + WAIT
        while not attempt.why:
            assert time.monotonic() < deadline, f"no decision about {card}: {attempt}"
            time.sleep(0.05)
            seen += self.log.read()
            for line in seen.splitlines():
                for verdict in ("accepted", "refused"):
                    if f" {card} {verdict} (" in line:
                        attempt.accepted = verdict == "accepted"
                        attempt.why = line.rsplit("(", 1)[-1].rstrip(")")
        if card_first and attempt.accepted:
            self.counts["cards before the EV"] += 1
            self.plug(connector, authorized=True)
        if attempt.accepted:
            state = self.wait(
                lambda s: (self.tx_of(s, connector) or {}).get("id_tag") == card,
                f"the transaction for {card}",
            )
            attempt.tx = self.tx_of(state, connector)["id"]  # type: ignore[index]
        assert attempt.accepted == expected, (
            f"authorization broke the policy: {attempt}; cache {cached}, "
            f"CSMS {self.csms_status[card]}"
        )
        if online:
            assert attempt.why == "CSMS", f"an online decision not taken by the CSMS: {attempt}"
            self.cache[card] = self.csms_status[card]
        if not attempt.accepted:
            self.counts["refused"] += 1
            assert self.tx_of(self.state(), connector) is None
            attempt.ended = time.monotonic()
            self.leave(connector)
            return
        self.counts["offline starts" if not online else "online starts"] += 1
        self.active[connector] = attempt
        self.daemon.request("ev_charge", connector=connector, on=True)
        self.wait(
            lambda s: s["connectors"][connector - 1]["contactor_closed"],
            f"the contactor of connector {connector} to close",
        )
        attempt.charged = True
        attempt.min_end = time.monotonic() + self.rng.uniform(0.5, 1.8)

    def plug(self, connector: int, authorized: bool = False) -> None:
        """Plug in; without an authorization waiting, until the station sees the cable
        (with one, the transaction it starts is waited for)."""
        self.daemon.request("plug", connector=connector)
        self.plugged.add(connector)
        if not authorized:
            self.wait(
                lambda s: s["connectors"][connector - 1]["status"] == "Preparing",
                f"connector {connector} to see the cable",
            )

    def leave(self, connector: int) -> None:
        """The EV leaves: unplugged, not asking for energy any more."""
        self.daemon.request("unplug", connector=connector)
        self.daemon.request("ev_charge", connector=connector, on=False)
        self.plugged.discard(connector)
        self.wait(
            lambda s: s["connectors"][connector - 1]["status"] == "Available",
            f"connector {connector} Available",
        )

    def end(self, connector: int) -> None:
        attempt = self.active[connector]
        how = self.rng.choice(
            ["card", "unplug", "unplug", "pause"]
            if not attempt.paused
            else ["card", "unplug", "resume"]
        )
        if how == "pause":
            self.daemon.request("ev_charge", connector=connector, on=False)
            attempt.paused = True
            attempt.min_end = time.monotonic() + self.rng.uniform(0.5, 1.5)
            return
        if how == "resume":
            self.daemon.request("ev_charge", connector=connector, on=True)
            attempt.paused = False
            attempt.min_end = time.monotonic() + self.rng.uniform(0.5, 1.5)
            return
        if how == "card" and self.reader_down_until is not None:
            self.tap_dead_reader(attempt.card)  # nothing happens: the driver unplugs
            how = "unplug"
        if how == "card":
            attempt.reason = "Local"
            self.daemon.request("card", uid=attempt.card)
        else:
            attempt.reason = "EVDisconnected"
            self.daemon.request("unplug", connector=connector)
        self.wait(lambda s: self.tx_of(s, connector) is None, f"the end of {attempt}")
        attempt.ended = time.monotonic()
        del self.active[connector]
        self.leave(connector)

    def restarted(self, reason: str) -> None:
        """The daemon went down (kill -9 / SIGTERM) and was started again."""
        for attempt in self.active.values():
            attempt.reason = reason
        ended = list(self.active)
        self.cut_until = None  # a new process: the link is allowed again
        self.meter_down.clear()  # ... and the simulated parts work again
        self.reader_down_until = None
        self.wait(
            lambda s: all(c["transaction"] is None for c in s["connectors"]),
            "the interrupted transactions to be closed",
        )
        for attempt in self.active.values():
            attempt.ended = time.monotonic()
        self.active.clear()
        for connector in ended:
            self.leave(connector)

    # --- the chaos ----------------------------------------------------------------------

    def kill(self) -> None:
        self.counts["kill -9"] += 1
        self.daemon.kill()
        self.daemon.start()
        self.restarted("PowerLoss")

    def term(self) -> None:
        self.counts["SIGTERM"] += 1
        assert self.daemon.stop() == 0
        self.daemon.start()
        self.restarted("Reboot")

    def kill_on_answer(self, action: str, then: Any = None) -> None:
        """Arm the killer for `action`, run `then` (e.g. restore the link), and give it
        a few seconds to fire."""
        assert self.daemon.proc is not None
        self.killer.arm(action, self.daemon.proc)
        if then is not None:
            then()
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and self.daemon.proc.poll() is None:
            time.sleep(0.05)
        fired = self.killer.disarm()
        if not fired:
            return
        self.counts[f"kill -9 on {action} answer"] += 1
        self.daemon.proc.wait(10)
        self.daemon.start()
        self.restarted("PowerLoss")

    def cut(self) -> None:
        self.counts["link cuts"] += 1
        self.daemon.request("link_cut")
        self.cut_until = time.monotonic() + self.rng.uniform(0.5, 3.0)
        self.wait_link()

    def outage(self) -> None:
        self.counts["CSMS outages"] += 1
        self.csms.refuse_connections = True
        with contextlib.suppress(NotConnectedError):
            self.csms.disconnect()
        self.outage_until = time.monotonic() + self.rng.uniform(1.0, 3.0)
        self.wait_link()

    def pending_backlog(self, kind: str) -> bool:
        rows = self.db("SELECT count(*) FROM outbox WHERE state = 'pending' AND kind = ?", (kind,))
        return bool(rows[0][0])

    def restore(self, force: bool = False) -> None:
        """End a link cut / CSMS outage whose time is up; sometimes with a kill -9 the
        moment the CSMS answers the backlog's first StartTransaction or StopTransaction."""
        now = time.monotonic()
        due_cut = self.cut_until is not None and (force or now >= self.cut_until)
        due_outage = self.outage_until is not None and (force or now >= self.outage_until)
        if not (due_cut or due_outage):
            return

        def restore() -> None:
            if due_cut:
                self.daemon.request("link_restore")
                self.cut_until = None
            if due_outage:
                self.csms.refuse_connections = False
                self.outage_until = None

        kinds = [k for k in ("start", "stop") if self.pending_backlog(k)]
        revoked = any(a.revoked for a in self.active.values())
        if kinds and not revoked and not force and self.rng.random() < 0.5:
            action = {"start": "StartTransaction", "stop": "StopTransaction"}[
                self.rng.choice(kinds)
            ]
            self.kill_on_answer(self.tx_action(action), restore)
        else:
            restore()

    def protocol_fault(self) -> None:
        """A CALLERROR or a lost call for a transaction message: only one injection per
        message at a time, so no message fails TransactionMessageAttempts times."""
        if self.csms.pending_faults():
            return
        if self.db("SELECT 1 FROM outbox WHERE state = 'pending' AND attempts > 0"):
            return
        action = self.tx_action(self.rng.choice(TX_ACTIONS))
        if self.rng.random() < 0.55:
            count = self.rng.randint(1, 2)
            self.csms.fail_next(action, self.rng.choice(["InternalError", "GenericError"]), count)
            self.counts["CALLERRORs injected"] += count
        else:
            self.csms.ignore(action, 1)
            self.counts["calls left unanswered"] += 1

    def meter_dropout(self) -> None:
        """A meter stops answering, for less or more than meter_offline_after."""
        up = [c for c in range(1, self.connectors + 1) if c not in self.meter_down]
        if not up:
            return
        connector = self.rng.choice(up)
        self.counts["meter dropouts"] += 1
        self.daemon.request("fault_raise", kind="meter", connector=connector)
        self.meter_down[connector] = time.monotonic() + self.rng.uniform(0.3, 4.0)

    def reader_fault(self) -> None:
        if self.reader_down_until is not None:
            return
        self.counts["reader faults"] += 1
        self.daemon.request("fault_raise", kind="reader", connector=0)
        self.reader_down_until = time.monotonic() + self.rng.uniform(0.5, 4.0)

    def tap_dead_reader(self, card: str) -> None:
        self.counts["taps on a dead reader"] += 1
        with pytest.raises(ControlError, match="reader is offline"):
            self.daemon.request("card", uid=card)

    def reader_back(self) -> None:
        self.daemon.request("fault_clear", kind="reader", connector=0)
        self.reader_down_until = None

    def repair(self, force: bool = False) -> None:
        """Meters and the reader whose time is up answer again."""
        now = time.monotonic()
        for connector, until in list(self.meter_down.items()):
            if force or now >= until:
                self.daemon.request("fault_clear", kind="meter", connector=connector)
                del self.meter_down[connector]
        if self.reader_down_until is not None and (force or now >= self.reader_down_until):
            self.reader_back()

    def revoke(self) -> None:
        """Block a cached card at the CSMS while the station is offline, and use it:
        accepted from the cache, then DeAuthorized once the CSMS answers its start."""
        free = [c for c in range(1, self.connectors + 1) if c not in self.plugged]
        in_use = {a.card for a in self.active.values()}
        cards = [c for c in KNOWN if self.cache.get(c) == "Accepted" and c not in in_use]
        if not free or not cards or not self.offline() or not self.wants_more():
            return
        card = self.rng.choice(cards)
        self.counts["cards revoked offline"] += 1
        self.csms_status[card] = "Blocked"
        self.csms.id_tags = {**self.csms.id_tags, card: "Blocked"}
        # Long enough offline for the transaction to start before the CSMS can say no.
        if self.cut_until is not None:
            self.cut_until = max(self.cut_until, time.monotonic() + 2.0)
        if self.outage_until is not None:
            self.outage_until = max(self.outage_until, time.monotonic() + 2.0)
        self.begin(self.rng.choice(free), card, revoked=True)

    def settle_revoked(self) -> None:
        """A revoked card's transaction ends by itself (DeAuthorized) once online."""
        for connector, attempt in list(self.active.items()):
            if not attempt.revoked or self.tx_of(self.state(), connector) is not None:
                continue
            attempt.reason = "DeAuthorized"
            attempt.ended = time.monotonic()
            del self.active[connector]
            self.leave(connector)
            # The station learnt "Blocked" from the StartTransaction answer; the CSMS
            # lets the card charge again from now on.
            self.cache[attempt.card] = "Blocked"
            self.csms_status[attempt.card] = "Accepted"
            self.csms.id_tags = {**self.csms.id_tags, attempt.card: "Accepted"}

    def pick_card(self) -> str:
        """Mostly cards the CSMS knows; offline, drivers mostly have used theirs before."""
        in_use = {a.card for a in self.active.values()}
        known = [c for c in KNOWN if c not in in_use]
        cached = [c for c in known if self.cache.get(c) == "Accepted"]
        if self.rng.random() < 0.12:
            return UNKNOWN
        if self.offline() and cached and self.rng.random() < 0.75:
            return self.rng.choice(cached)
        return self.rng.choice(known)

    def step(self) -> None:
        """One random moment: the driver's next move, or a fault (rates per second)."""
        dt = self.rng.uniform(0.05, 0.3)
        time.sleep(dt)
        self.restore()
        self.repair()
        self.settle_revoked()
        now = time.monotonic()
        due = [c for c, a in self.active.items() if not a.revoked and now >= a.min_end]
        free = [c for c in range(1, self.connectors + 1) if c not in self.plugged]
        if due and self.rng.random() < 0.7:
            self.end(self.rng.choice(due))
            return
        revoked = any(a.revoked for a in self.active.values())
        # Not while a revoked card's transaction may end at any moment: its connector
        # would be free with the cable in, and a new card could go to it.
        if free and self.wants_more() and not revoked and self.rng.random() < 0.7:
            self.begin(self.rng.choice(free), self.pick_card())
            return
        faults: list[tuple[float, Any]] = [
            (0.4, self.protocol_fault),
            (0.15, self.meter_dropout),
            (0.1, self.reader_fault),
        ]
        if not revoked:  # a revoked card's transaction must end by the CSMS's answer
            faults += [(0.1, self.kill), (0.06, self.term)]
            if self.active and not self.offline():
                faults.append((0.06, lambda: self.kill_on_answer(self.tx_action("MeterValues"))))
        if not self.offline():
            faults += [(0.3, self.cut), (0.1, self.outage)]
        elif not revoked:
            faults.append((0.6, self.revoke))
        self.rng.shuffle(faults)
        for rate, fault in faults:
            if self.rng.random() < rate * dt:
                fault()
                return

    def wants_more(self) -> bool:
        """Sessions count when they charged; refused attempts come on top (bounded)."""
        ran = sum(1 for a in self.attempts if a.accepted)
        return ran < self.target and len(self.attempts) < 3 * self.target

    def run(self) -> None:
        while self.wants_more() or self.active:
            self.step()
        # Restore everything and let the station deliver its backlog.
        self.restore(force=True)
        self.repair(force=True)
        self.csms.clear_overrides()
        deadline = time.monotonic() + 60
        while self.active:  # a revoked card's transaction ends once online
            assert time.monotonic() < deadline, f"still running: {self.active}"
            self.settle_revoked()
            time.sleep(0.1)
        for connector in list(self.plugged):
            self.leave(connector)
        self.wait(
            lambda s: (
                s["queued_messages"] == 0
                and s["ocpp"]["connected"]
                and all(c["transaction"] is None for c in s["connectors"])
            ),
            "the backlog delivered and no transaction running",
            timeout=60,
        )


# --- the consistency check ---------------------------------------------------------------


def check(chaos: Chaos) -> dict[int, TransactionView]:
    csms = chaos.csms
    views = csms.transactions()
    rows = chaos.db(
        "SELECT id, connector, id_tag, meter_start_wh, csms_id, meter_stop_wh, stop_reason"
        " FROM transactions ORDER BY id"
    )
    ran = [a for a in chaos.attempts if a.accepted]

    # Nothing given up, nothing left.
    assert chaos.db("SELECT id, kind, last_error FROM outbox") == [], "undelivered messages"

    # The station's record is the driver's: every session that started, nothing else.
    assert [r[0] for r in rows] == [a.tx for a in ran]
    assert all(a.charged for a in ran), "every accepted session closed the contactor"

    # ... and the CSMS's: one transaction each, in the order they started.
    assert len(views) == len(rows), (
        f"{len(rows)} transactions at the station, {len(views)} at the CSMS: "
        f"{[(v.transaction_id, v.start) for v in views.values()]}"
    )
    for row, (tx_id, view), attempt in zip(rows, views.items(), ran, strict=True):
        where = f"transaction {tx_id} ({attempt})"
        _id, connector, id_tag, start_wh, csms_id, stop_wh, reason = row
        assert csms_id == tx_id, where
        assert view.start["connectorId"] == connector == attempt.connector, where
        assert view.start["idTag"] == id_tag == attempt.card, where
        assert view.start["meterStart"] == round(start_wh), where
        assert len(view.distinct_stops) == 1, f"{where}: stops {view.stops}"
        stop = view.distinct_stops[0]
        assert stop["meterStop"] == round(stop_wh), where
        assert stop["reason"] == reason == attempt.reason, f"{where}: {stop}"
        assert stop["meterStop"] >= view.start["meterStart"], where
        started, stopped = _time(view.start["timestamp"]), _time(stop["timestamp"])
        assert started <= stopped, where
        energy = [view.start["meterStart"] - 0.5]
        for mv in view.meter_values:
            for value in mv["meterValue"]:
                assert started <= _time(value["timestamp"]) <= stopped, f"{where}: {mv}"
            energy += _energy(mv)
        energy.append(stop["meterStop"] + 0.5)
        assert energy == sorted(energy), f"{where}: energy {energy}"
        assert chaos.csms_status.get(id_tag) != "Invalid", f"{where}: an unknown card"

    # Nothing for a transaction the CSMS does not know; no transaction's values without it.
    for action in ("MeterValues", "StopTransaction"):
        for payload in csms.calls(action):
            assert "transactionId" in payload, f"{action} without a transaction: {payload}"
            assert payload["transactionId"] in views, f"{action} for an unknown id: {payload}"

    # Per connector: one after the other, on a meter that only counts up.
    for connector in range(1, chaos.connectors + 1):
        mine = [v for v in views.values() if v.start["connectorId"] == connector]
        for before, after in itertools.pairwise(mine):
            stop = before.distinct_stops[0]
            assert _time(stop["timestamp"]) <= _time(after.start["timestamp"])
            assert stop["meterStop"] <= after.start["meterStart"]

    # The offline policy, once more in one place: checked at every decision too.
    for attempt in chaos.attempts:
        assert attempt.accepted == attempt.expected, attempt
        if attempt.card == UNKNOWN:
            assert not attempt.accepted, attempt
    return views


def _begin_end(event: dict[str, Any], context: str) -> float:
    """The energy register of a Started (Transaction.Begin) or Ended (Transaction.End) event."""
    (value,) = [
        float(sample["value"])
        for mv in event.get("meterValue", [])
        for sample in mv["sampledValue"]
        if sample.get("context") == context and sample.get("measurand") == ENERGY
    ]
    return value


def check_201(chaos: Chaos) -> dict[str, TransactionEvents]:
    """`check` for OCPP 2.0.1: the CSMS's view is its TransactionEvents."""
    csms = chaos.csms
    views = csms.transaction_events()
    rows = chaos.db(
        "SELECT id, connector, id_tag, meter_start_wh, meter_stop_wh, stop_reason"
        " FROM transactions ORDER BY id"
    )
    ran = [a for a in chaos.attempts if a.accepted]

    assert chaos.db("SELECT id, kind, last_error FROM outbox") == [], "undelivered messages"
    assert chaos.db("SELECT count(*) FROM records WHERE kind = 'tx201'") == [(0,)], (
        "a transaction's 2.0.1 record outlived its Ended event"
    )
    assert [r[0] for r in rows] == [a.tx for a in ran]
    assert all(a.charged for a in ran), "every accepted session closed the contactor"

    # One 2.0.1 transaction per station transaction, in the order they started (the
    # outbox delivers one message at a time, oldest first).
    assert len(views) == len(rows), (
        f"{len(rows)} transactions at the station, {len(views)} at the CSMS: "
        f"{[(v.transaction_id, v.seq_nos, v.trigger_reasons) for v in views.values()]}"
    )
    for row, (tx_id, view), attempt in zip(rows, views.items(), ran, strict=True):
        where = f"transaction {tx_id} ({attempt}): events {view.distinct_events()}"
        _id, connector, id_tag, start_wh, stop_wh, reason = row
        events = view.distinct_events()
        assert [e["eventType"] for e in events].count("Started") == 1, where
        assert [e["eventType"] for e in events].count("Ended") == 1, where
        assert view.gap_free(), f"{where}: seqNos {view.seq_nos}"
        started, ended = view.started, view.ended
        assert started is not None and ended is not None, where
        assert sorted(events, key=lambda e: e["seqNo"])[0]["eventType"] == "Started", where
        assert sorted(events, key=lambda e: e["seqNo"])[-1]["eventType"] == "Ended", where
        assert started["evse"]["id"] == connector == attempt.connector, where
        assert started["idToken"]["idToken"] == id_tag == attempt.card, where
        assert reason == attempt.reason, where
        assert view.stopped_reason == reason, f"{where}: stoppedReason {view.stopped_reason}"
        assert _begin_end(started, "Transaction.Begin") == round(start_wh, 3), where
        assert _begin_end(ended, "Transaction.End") == round(stop_wh, 3), where
        began, over = _time(started["timestamp"]), _time(ended["timestamp"])
        assert began <= over, where
        skewed = [e for e in events if not began <= _time(e["timestamp"]) <= over]
        assert not skewed, f"{where}: events timed outside it: {skewed}"
        values = sorted(view.meter_values(), key=lambda mv: _time(mv["timestamp"]))
        for mv in values:
            assert began <= _time(mv["timestamp"]) <= over, f"{where}: {mv}"
        energy = [
            float(sample["value"])
            for mv in values
            for sample in mv["sampledValue"]
            if sample.get("measurand", ENERGY) == ENERGY
        ]
        assert energy == sorted(energy), f"{where}: energy {energy}"
        assert energy[-1] == round(stop_wh, 3), f"{where}: energy {energy}"
        assert chaos.csms_status.get(id_tag) != "Invalid", f"{where}: an unknown card"

    for connector in range(1, chaos.connectors + 1):
        mine = [v for v in views.values() if v.started and v.started["evse"]["id"] == connector]
        for before, after in itertools.pairwise(mine):
            assert before.ended is not None and after.started is not None
            assert _time(before.ended["timestamp"]) <= _time(after.started["timestamp"])
            end_wh = _begin_end(before.ended, "Transaction.End")
            begin_wh = _begin_end(after.started, "Transaction.Begin")
            assert end_wh <= begin_wh, (before.ended, after.started)

    for attempt in chaos.attempts:
        assert attempt.accepted == attempt.expected, attempt
        if attempt.card == UNKNOWN:
            assert not attempt.accepted, attempt
    return views


def _ordered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: e["seqNo"])


def _starts_in(events: list[dict[str, Any]], row: tuple[Any, ...], energy_transfer: bool) -> bool:
    """Whether a 2.0.1 transaction's `events` report the start of station transaction `row`
    (id, connector, id_tag, meter_start_wh, started_at, meter_stop_wh, stopped_at): the
    Started event or an Updated one with its idToken and time; an Updated(CablePluggedIn)
    at its time without idToken when an earlier event of the transaction carried its
    idTag (TxStartPoint Authorized, card first: the Started reported it); with TxStartPoint
    EnergyTransfer also a Started with its idToken while it ran (energy flowed: the
    transaction began)."""
    _id, _connector, id_tag, _start_wh, started_at, _stop_wh, stopped_at = row
    # A start never sent (held, EnergyTransfer) keeps its provisional stamp: its wall time.
    started_at, stopped_at = (s.rpartition("|")[2] for s in (started_at, stopped_at))
    told = False  # an earlier event carried the idTag
    for event in _ordered(events):
        kind, token = event["eventType"], event.get("idToken", {}).get("idToken")
        if kind in ("Started", "Updated") and event["timestamp"] == started_at:
            if token == id_tag:
                return True
            joined = kind == "Updated" and event["triggerReason"] == "CablePluggedIn"
            if joined and token is None and told:
                return True
        during = _time(started_at) <= _time(event["timestamp"]) <= _time(stopped_at)
        if energy_transfer and kind == "Started" and token == id_tag and during:
            return True
        told = told or token == id_tag
    return False


@dataclass
class PointsView:
    """What `check_201_points` found: the CSMS's transactions, how many station
    transactions each holds and how many are in none (EnergyTransfer)."""

    views: dict[str, TransactionEvents]
    held: Counter[str]
    in_none: int


def check_201_points(chaos: Chaos) -> PointsView:
    """`check_201` for any TxStartPoint / TxStopPoint: a 2.0.1 transaction may start at
    plug-in or at a card before the EV, outlive a card stop until the EV leaves (then hold
    several station transactions), or (EnergyTransfer) hold none of a station transaction
    that never charged."""
    views = chaos.csms.transaction_events()
    rows = chaos.db(
        "SELECT id, connector, id_tag, meter_start_wh, started_at, meter_stop_wh, stopped_at"
        " FROM transactions ORDER BY id"
    )
    ran = [a for a in chaos.attempts if a.accepted]
    energy_transfer = "EnergyTransfer" in chaos.points.split("/")[0].split(",")

    assert chaos.db("SELECT id, kind, last_error FROM outbox") == [], "undelivered messages"
    assert chaos.db("SELECT count(*) FROM records WHERE kind = 'tx201'") == [(0,)], (
        "a transaction's 2.0.1 record outlived its Ended event"
    )
    assert [r[0] for r in rows] == [a.tx for a in ran]
    assert all(a.charged for a in ran), "every accepted session closed the contactor"

    evse: dict[str, int] = {}
    for tx_id, view in views.items():
        events = view.distinct_events()
        where = f"transaction {tx_id}: events {events}"
        types = [e["eventType"] for e in events]
        assert (types.count("Started"), types.count("Ended")) == (1, 1), where
        assert view.gap_free(), f"{where}: seqNos {view.seq_nos}"
        ordered = _ordered(events)
        assert (ordered[0]["eventType"], ordered[-1]["eventType"]) == ("Started", "Ended"), where
        started, ended = view.started, view.ended
        assert started is not None and ended is not None, where
        home = started["evse"]
        evse[tx_id] = home["id"]
        assert all(e.get("evse", home)["id"] == home["id"] for e in events), where
        # A power cut ends a transaction at its last checkpoint, which every event is
        # written after: none is stamped outside Started..Ended.
        began, over = _time(started["timestamp"]), _time(ended["timestamp"])
        skewed = [e for e in events if not began <= _time(e["timestamp"]) <= over]
        assert not skewed, f"{where}: events timed outside it: {skewed}"
        assert all(e.get("idToken", {}).get("idToken") != UNKNOWN for e in events), where
        values = sorted(view.meter_values(), key=lambda mv: _time(mv["timestamp"]))
        energy = [
            float(sample["value"])
            for mv in values
            for sample in mv["sampledValue"]
            if sample.get("measurand", ENERGY) == ENERGY
        ]
        assert energy == sorted(energy), f"{where}: energy {energy}"
        final = [
            float(sample["value"])
            for mv in ended.get("meterValue", [])
            for sample in mv["sampledValue"]
            if sample.get("context") == "Transaction.End" and sample.get("measurand") == ENERGY
        ]
        assert all(f >= e for f in final for e in energy), f"{where}: energy {energy}"

    for connector in range(1, chaos.connectors + 1):
        mine = [v for t, v in views.items() if evse[t] == connector]
        mine.sort(key=lambda v: _time(v.started["timestamp"]))  # type: ignore[index]
        for before, after in itertools.pairwise(mine):
            assert before.ended is not None and after.started is not None
            assert _time(before.ended["timestamp"]) <= _time(after.started["timestamp"]), (
                f"two transactions open at once on EVSE {connector}: "
                f"{before.distinct_events()} {after.distinct_events()}"
            )

    held: Counter[str] = Counter()
    in_none = 0
    for row in rows:
        on_evse = {t: v.distinct_events() for t, v in views.items() if evse[t] == row[1]}
        homes = [t for t, events in on_evse.items() if _starts_in(events, row, energy_transfer)]
        at = _time(row[4].rpartition("|")[2])
        around = {  # the EVSE's 2.0.1 transactions open when it started
            t: events
            for t, events in on_evse.items()
            if _time(views[t].started["timestamp"]) <= at  # type: ignore[index]
            and at <= _time(views[t].ended["timestamp"])  # type: ignore[index]
        }
        where = f"station transaction {row} in 2.0.1 transactions {homes}; around it: {around}"
        if not homes and energy_transfer:
            assert row[5] == row[3], f"{where}: it charged"
            in_none += 1
            continue
        assert len(homes) == 1, where
        held[homes[0]] += 1

    for attempt in chaos.attempts:
        assert attempt.accepted == attempt.expected, attempt
        if attempt.card == UNKNOWN:
            assert not attempt.accepted, attempt
    return PointsView(views, held, in_none)


@dataclass
class PowerPath:
    """What the power-path check saw: contactor closings and the reaction times (s)
    from the pilot leaving C/D to the contactor opening."""

    closings: int
    reactions: list[float]


def check_power_path(events: list[dict[str, Any]], attempts: list[Attempt]) -> PowerPath:
    """The safety invariant, from the simulation's own record of the power path
    (hwsim.event_log) and the sessions the driver was authorized for."""
    assert events, "the simulation kept no event log"
    pilot: dict[int, str] = {}
    output: dict[int, str] = {}
    closed: dict[int, bool] = {}
    left_at: dict[int, float] = {}  # the pilot left C/D with the contactor closed
    closings, reactions = 0, []
    for e in events:
        c, t = e["c"], e["t"]
        if e["ev"] == "start":  # a new process: every output off
            closed.clear()
            left_at.clear()
            output.clear()
        elif e["ev"] == "output":
            output[c] = e["mode"]
        elif e["ev"] == "pilot":
            assert c not in left_at, f"connector {c}: pilot moved on before the contactor opened"
            pilot[c] = e["state"]
            if closed.get(c) and e["state"] not in ("C", "D"):
                left_at[c] = t
        elif e["ev"] == "contactor" and e["closed"]:
            closings += 1
            where = f"connector {c} closed at {t:.3f} in state {pilot.get(c)}"
            assert pilot.get(c) in ("C", "D"), where
            assert output.get(c) == "pwm", f"{where} with the pilot output {output.get(c)}"
            assert any(
                a.connector == c and a.accepted and a.tapped <= t <= a.ended for a in attempts
            ), f"{where} outside any authorized session"
            closed[c] = True
        elif e["ev"] == "contactor":
            if c in left_at:
                reactions.append(t - left_at.pop(c))
            closed[c] = False
    assert closings >= sum(1 for a in attempts if a.charged)
    return PowerPath(closings, reactions)


def summary(
    chaos: Chaos, views: dict[int, TransactionView], power: PowerPath, elapsed: float
) -> str:
    records = chaos.csms.records
    calls = [r for r in records if r.direction == "in" and r.message_type == "CALL"]
    tx_calls = [r for r in calls if r.action in TX_ACTIONS]
    resent_starts = len(chaos.csms.retransmissions)
    resent_stops = sum(len(v.stops) - len(v.distinct_stops) for v in views.values())
    resent_values = sum(len(v.meter_values) - len(v.distinct_meter_values) for v in views.values())
    reasons = Counter(v.distinct_stops[0]["reason"] for v in views.values())
    offline = sum(1 for a in chaos.attempts if not a.online)
    faults = ", ".join(f"{k} {v}" for k, v in sorted(chaos.counts.items()))
    return (
        f"chaos seed {chaos.seed}, {chaos.connectors} connector(s), {elapsed:.1f} s: "
        f"{len(chaos.attempts)} sessions ({offline} decided offline), "
        f"{len(views)} transactions, stops {dict(reasons)}; {faults}; "
        f"{len(calls)} calls from the station ({len(tx_calls)} transaction messages); "
        f"retransmissions recognised: {resent_starts} StartTransaction, "
        f"{resent_stops} StopTransaction, {resent_values} MeterValues; "
        f"contactor closed {power.closings} times, only in authorized C/D; "
        f"pilot left C/D while closed {len(power.reactions)} times, opened after "
        f"{_ms(power.reactions)}"
    )


def summary_201(
    chaos: Chaos, views: dict[str, TransactionEvents], power: PowerPath, elapsed: float
) -> str:
    records = chaos.csms.records
    calls = [r for r in records if r.direction == "in" and r.message_type == "CALL"]
    tx_calls = [r for r in calls if r.action == "TransactionEvent"]
    resent = Counter(r.payload["eventType"] for v in views.values() for r in v.retransmitted)
    reasons = Counter(v.stopped_reason for v in views.values())
    offline_events = sum(sum(v.offline_flags) for v in views.values())
    offline = sum(1 for a in chaos.attempts if not a.online)
    faults = ", ".join(f"{k} {v}" for k, v in sorted(chaos.counts.items()))
    return (
        f"chaos OCPP 2.0.1 seed {chaos.seed}, {chaos.connectors} connector(s), "
        f"{elapsed:.1f} s: {len(chaos.attempts)} sessions ({offline} decided offline), "
        f"{len(views)} transactions, stoppedReasons {dict(reasons)}; {faults}; "
        f"{len(calls)} calls from the station ({len(tx_calls)} TransactionEvents, "
        f"{offline_events} events flagged offline); retransmissions recognised: "
        f"{dict(resent) or 0}; contactor closed {power.closings} times, only in authorized "
        f"C/D; pilot left C/D while closed {len(power.reactions)} times, opened after "
        f"{_ms(power.reactions)}"
    )


def summary_points(found: PointsView, points: str) -> str:
    sizes = Counter(found.held.values())
    sizes[0] = len(found.views) - len(found.held)
    return (
        f"; points {points}: {sum(found.held.values()) + found.in_none} station transactions, "
        f"{found.in_none} in no 2.0.1 transaction; 2.0.1 transactions by how many station "
        f"transactions they hold: {dict(sorted(sizes.items()))}"
    )


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"median {statistics.median(ordered) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, "
        f"max {ordered[-1] * 1e3:.1f} ms"
    )


@pytest.mark.parametrize(("seed", "connectors", "sessions", "ocpp", "points"), _cases())
def test_chaos(
    make_daemon: Any,
    csms: CsmsThread,
    seed: int,
    connectors: int,
    sessions: int,
    ocpp: str,
    points: str,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    csms.id_tags = {**dict.fromkeys(KNOWN, "Accepted")}
    daemon = make_daemon(
        keys={
            "MeterValueSampleInterval": 1,
            "TransactionMessageAttempts": ATTEMPTS,
            "TransactionMessageRetryInterval": 1,
            "ConnectionTimeOut": 10,
            "StopTransactionOnEVSideDisconnect": True,
            "AllowOfflineTxForUnknownId": False,
            "LocalAuthorizeOffline": True,
            "LocalPreAuthorize": False,
            "AuthorizationCacheEnabled": True,
        },
        connectors=[{"max_current": 16}] * connectors,
        csms={"response_timeout": 3},
        hardware={"sim_event_log": True},
        ocpp={"version": ocpp},
        extra=_points_toml(points),
    )
    chaos = Chaos(seed, connectors, sessions, daemon, csms, ocpp, points)
    try:
        _play(chaos, began)
    except Exception as failure:
        kept = _keep(daemon, tmp_path)
        failure.add_note(
            f"seed {seed}, {connectors} connector(s), OCPP {ocpp}, points {points or '-'}, "
            f"{time.monotonic() - began:.1f} s in: the daemon's log and store are in {kept}"
        )
        raise


def _keep(daemon: Daemon, into: Path) -> Path:
    """Copy the daemon's log and store (with its WAL) to `into` (pytest keeps it)."""
    kept = into / "failed-run"
    kept.mkdir(exist_ok=True)
    for source in [daemon.log_path, *(daemon.dir / "state").glob("*")]:
        if source.is_file():
            shutil.copy(source, kept / source.name)
    return kept


def _play(chaos: Chaos, began: float) -> None:
    """Play the sessions, then check and print the summary."""
    daemon, ocpp, points = chaos.daemon, chaos.ocpp, chaos.points
    chaos.wait_link()
    for connector in range(1, chaos.connectors + 1):
        daemon.request("meter_set", connector=connector, wh=1000.0 * connector)
    chaos.run()
    events = read_events(daemon.dir / "state" / "sim-events.jsonl")
    if points:
        found = check_201_points(chaos)
        power = check_power_path(events, chaos.attempts)
        elapsed = time.monotonic() - began
        print(
            "\n" + summary_201(chaos, found.views, power, elapsed) + summary_points(found, points)
        )
        return
    if ocpp == V201:
        views_201 = check_201(chaos)
        power = check_power_path(events, chaos.attempts)
        print("\n" + summary_201(chaos, views_201, power, time.monotonic() - began))
        return
    views = check(chaos)
    power = check_power_path(events, chaos.attempts)
    print("\n" + summary(chaos, views, power, time.monotonic() - began))


def _points_toml(points: str) -> str:
    """[ocpp.variables] for "TxStartPoint/TxStopPoint" ("": none, the defaults)."""
    if not points:
        return ""
    start, stop = points.split("/")
    return (
        f'[ocpp.variables]\n"TxCtrlr.TxStartPoint" = "{start}"\n"TxCtrlr.TxStopPoint" = "{stop}"\n'
    )


def test_a_station_transaction_starts_in_the_event_that_reports_it() -> None:
    """`_starts_in`: the Started or an Updated with the idTag at the start's time; the
    Updated(CablePluggedIn) without idToken only after an event that carried the idTag."""
    card, other = KNOWN[0], KNOWN[1]
    at, later, end = "2025-01-01T10:00:01.000Z", "2025-01-01T10:00:05.000Z", "2025-01-01T11:00Z"
    row = (7, 1, card, 1000.0, at, 1010.0, end)

    def event(seq: int, kind: str, trigger: str, stamp: str, tag: str | None) -> dict[str, Any]:
        token = {} if tag is None else {"idToken": {"idToken": tag, "type": "ISO14443"}}
        fields = {"seqNo": seq, "eventType": kind, "triggerReason": trigger, "timestamp": stamp}
        return fields | token

    card_first = event(0, "Started", "Authorized", "2025-01-01T09:59:58.000Z", card)
    joined = event(1, "Updated", "CablePluggedIn", at, None)
    assert _starts_in([card_first, joined], row, energy_transfer=False)
    assert _starts_in([event(0, "Started", "Authorized", at, card)], row, False)
    assert _starts_in([card_first, event(1, "Updated", "Authorized", at, card)], row, False)
    refused = {
        "another card's Started": [event(0, "Started", "Authorized", at, other), joined],
        "no idTag before the join": [event(0, "Started", "EVDetected", at, None), joined],
        "the idTag only after it": [joined | {"seqNo": 0}, card_first | {"seqNo": 1}],
        "another time": [card_first, event(1, "Updated", "CablePluggedIn", later, None)],
        "another trigger": [card_first, event(1, "Updated", "ChargingStateChanged", at, None)],
        "a Started later": [event(0, "Started", "EnergyTransfer", later, card)],
    }
    for what, events in refused.items():
        assert not _starts_in(events, row, energy_transfer=False), what
    assert _starts_in(refused["a Started later"], row, energy_transfer=True)


def test_the_power_path_check_fails_on_each_kind_of_violation() -> None:
    session = Attempt(1, 1, KNOWN[0], True, True, accepted=True, tapped=10.0, ended=20.0)

    def events(*rows: tuple[float, str, dict[str, Any]]) -> list[dict[str, Any]]:
        start = [{"t": 0.0, "c": 0, "ev": "start"}, {"t": 0.0, "c": 1, "ev": "pilot", "state": "A"}]
        return start + [{"t": t, "c": 1, "ev": ev, **fields} for t, ev, fields in rows]

    charging = [
        (11.0, "pilot", {"state": "B"}),
        (11.1, "output", {"mode": "pwm", "duty": 26.7}),
        (11.2, "pilot", {"state": "C"}),
        (11.3, "contactor", {"closed": True}),
    ]
    unplugged = [(12.0, "pilot", {"state": "A"}), (12.001, "contactor", {"closed": False})]
    ok = check_power_path(events(*charging, *unplugged), [session])
    assert ok.closings == 1 and ok.reactions == [pytest.approx(0.001)]

    violations = {
        "in state B": events(*charging[:2], (11.3, "contactor", {"closed": True})),
        "with the pilot output x1": events(
            *charging[:2], (11.15, "output", {"mode": "x1", "duty": 100.0}), *charging[2:]
        ),
        "outside any authorized session": events(*[(t + 10, e, f) for t, e, f in charging]),
        "pilot moved on": events(*charging, (12.0, "pilot", {"state": "B"}), unplugged[0]),
    }
    for what, log in violations.items():
        with pytest.raises(AssertionError, match=what):
            check_power_path(log, [session])


# --- the daemon bugs the chaos found, pinned down ------------------------------------------


def test_a_start_recorded_before_the_clock_was_known_is_resent_identical(
    make_daemon: Any, csms: CsmsThread
) -> None:
    """No RTC: a transaction started before the CSMS said what time it is gets a
    provisional stamp. Sent once, its answer lost in a crash, the StartTransaction
    comes again from the next run: with the same timestamp, so the CSMS recognises
    it (the next run cannot resolve the old run's stamp as that run did)."""
    card = KNOWN[0]
    csms.id_tags = {card: "Accepted"}
    csms.clock = lambda: datetime.now(UTC) + timedelta(minutes=5)  # the system's is off
    csms.refuse_connections = True
    daemon = make_daemon(keys={"AllowOfflineTxForUnknownId": True})
    daemon.request("plug", connector=1)
    daemon.wait_status("Preparing")
    daemon.request("card", uid=card)
    state = daemon.wait(lambda s: s["connectors"][0]["transaction"] is not None, WAIT, "a tx")
    assert state["connectors"][0]["transaction"]["started_at"].startswith("~")  # provisional
    killer = AnswerKiller(csms)
    assert daemon.proc is not None
    killer.arm("StartTransaction", daemon.proc)
    csms.refuse_connections = False
    daemon.proc.wait(WAIT)
    assert killer.disarm()
    daemon.start()
    daemon.request("unplug", connector=1)
    daemon.wait(lambda s: s["queued_messages"] == 0, WAIT, "the backlog delivered")
    starts = csms.calls("StartTransaction")
    assert len(starts) == 2 and starts[0] == starts[1]
    (view,) = csms.transactions().values()
    assert len(view.retransmitted_starts) == 1
    assert [s["reason"] for s in view.distinct_stops] == ["PowerLoss"]


def test_a_power_cut_does_not_end_a_transaction_before_its_last_meter_value(
    make_daemon: Any, csms: CsmsThread
) -> None:
    """kill -9 right as the CSMS takes a MeterValues: the transaction, closed by the
    next run from its last checkpoint, ends no earlier and no lower than that value."""
    daemon = make_daemon(keys={"MeterValueSampleInterval": 1})
    csms.wait_for("BootNotification")
    daemon.request("plug", connector=1)
    daemon.request("card", uid=CARD)
    daemon.request("ev_charge", connector=1, on=True)
    daemon.wait_status("Charging", timeout=WAIT)
    csms.wait_for("MeterValues", timeout=WAIT)  # sampling runs: the next one is the victim
    killer = AnswerKiller(csms)
    assert daemon.proc is not None
    killer.arm("MeterValues", daemon.proc)
    daemon.proc.wait(WAIT)
    assert killer.disarm()
    daemon.start()
    daemon.wait(lambda s: s["queued_messages"] == 0, WAIT, "the backlog delivered")
    (view,) = csms.transactions().values()
    (stop,) = view.distinct_stops
    assert stop["reason"] == "PowerLoss"
    last = view.meter_values[-1]
    assert _time(last["meterValue"][0]["timestamp"]) <= _time(stop["timestamp"])
    assert max(_energy(last)) <= stop["meterStop"] + 0.5


def test_a_link_cut_while_the_station_reconnects_holds(make_daemon: Any, csms: CsmsThread) -> None:
    """link_cut right after link_restore, while the websocket handshake is under way:
    the new connection must not outlive the cut."""
    daemon = make_daemon()
    csms.wait_for("BootNotification")
    for _ in range(3):
        daemon.request("link_cut")
        daemon.wait(lambda s: not s["ocpp"]["connected"], WAIT, "the link down")
        mark = csms.mark()
        daemon.request("link_restore")
        daemon.request("link_cut")
        try:
            csms.wait_connected(timeout=2, after=mark)
        except TimeoutError:
            continue  # cut before the station even tried: nothing to see
        csms.wait_disconnected(timeout=WAIT, after=mark)
        state = daemon.wait(lambda s: not s["ocpp"]["connected"], WAIT, "the link down")
        assert state["ocpp"]["allowed"] is False
        assert csms.connected_stations == []
