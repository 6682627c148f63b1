"""SendLocalList Full of a large list: time to apply, and card lookups afterwards.

Fleet operators push their whole card base to every station; the update must
finish within the CSMS's patience and must not hold up the event loop that
opens the contactor, and a card tap must still be decided at once. While the
update runs, a probe process asks the control socket for the state every
10 ms: the slowest answer is a lower bound of the longest time the loop could
not have reacted to anything, a pilot change included.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import probe
from bench.common import CARD, YES, Daemon, Row, Target, file_bytes, summarize, wait_until
from bench.memory import SUBPROTOCOLS
from controller.authorizer import Authorizer
from controller.core.authorization import AuthPolicy, IdTagInfo
from hwsim.csms import CsmsThread

FULL = {"entries": 100_000}
QUICK = {"entries": 2_000}
APPLY_TARGET_S = 10.0
LOOKUP_TARGET_MS = 1.0
STALL_TARGET_MS = 100.0  # the loop also opens the contactor: IEC 61851's 100 ms
PROBE_INTERVAL_S = 0.01


def id_tag(n: int) -> str:
    """A 7-byte UID as a reader reports it (14 hex digits)."""
    return f"04{n:012X}"


def local_list(entries: int) -> list[dict[str, Any]]:
    """A realistic list: every 10th card in a fleet group, every 4th with an expiry."""
    expiry = (datetime.now(UTC) + timedelta(days=365)).isoformat(timespec="seconds")
    out = []
    for n in range(entries):
        info: dict[str, Any] = {"status": "Accepted" if n % 50 else "Blocked"}
        if n % 4 == 0:
            info["expiryDate"] = expiry.replace("+00:00", "Z")
        if n % 10 == 0:
            info["parentIdTag"] = f"FLEET{n // 1000:04d}"
        out.append({"idTag": id_tag(n), "idTagInfo": info})
    return out


def local_list_201(entries: int) -> list[dict[str, Any]]:
    """The same list in OCPP 2.0.1 words, every card an ISO15693 one: a type the
    station must keep for each entry (its own guess for 14 hex digits is ISO14443),
    the worst case for the 2.0.1 layer."""
    out = []
    for entry in local_list(entries):
        info = entry["idTagInfo"]
        converted: dict[str, Any] = {"status": info["status"]}
        if "expiryDate" in info:
            converted["cacheExpiryDateTime"] = info["expiryDate"]
        if "parentIdTag" in info:
            converted["groupIdToken"] = {"idToken": info["parentIdTag"], "type": "Central"}
        token = {"idToken": entry["idTag"], "type": "ISO15693"}
        out.append({"idToken": token, "idTokenInfo": converted})
    return out


def _payload(entries: int, version: str) -> dict[str, Any]:
    if version == "1.6":
        return {
            "listVersion": 1,
            "updateType": "Full",
            "localAuthorizationList": local_list(entries),
        }
    return {
        "versionNumber": 1,
        "updateType": "Full",
        "localAuthorizationList": local_list_201(entries),
    }


async def _lookups(db: Path, tags: list[str]) -> tuple[list[float], int]:
    """Time each card decision through Authorizer (offline: the list decides alone)."""
    policy = AuthPolicy(
        local_auth_list_enabled=True,
        cache_enabled=True,
        local_pre_authorize=True,
        local_authorize_offline=True,
        allow_offline_tx_for_unknown_id=False,
    )

    async def no_csms(tag: str) -> IdTagInfo | None:
        return None

    authorizer = Authorizer(db)
    try:
        now = datetime.now(UTC)
        times, accepted = [], 0
        for tag in tags:
            t0 = time.perf_counter_ns()
            answer = await authorizer.authorize(tag, policy, now, False, no_csms)
            times.append((time.perf_counter_ns() - t0) / 1e6)
            accepted += answer.accepted
        return times, accepted
    finally:
        authorizer.close()


def measure(
    entries: int = 100_000, lookups: int = 2000, seed: int = 1, version: str = "1.6"
) -> dict[str, Any]:
    """Apply a Full list of `entries` through the CSMS speaking OCPP `version`, then
    time `lookups` card decisions on the resulting database (half known cards, half
    unknown)."""
    payload = _payload(entries, version)
    rng = random.Random(seed)
    known = [id_tag(rng.randrange(entries)) for _ in range(lookups // 2)]
    unknown = [id_tag(entries + rng.randrange(10**6)) for _ in range(lookups - len(known))]
    with (
        CsmsThread(id_tags={CARD: "Accepted"}, subprotocols=(SUBPROTOCOLS[version],)) as csms,
        Daemon(csms.url, ocpp={"version": version}) as daemon,
    ):
        daemon.start()
        daemon.wait_ready()
        daemon.wait_registered()
        times_file = daemon.dir / "probe.txt"
        prober = probe.spawn("time", str(daemon.socket), str(PROBE_INTERVAL_S), str(times_file))
        try:
            wait_until(lambda: probe.read_times(times_file), 10.0, "the probe to start")
            t0 = time.monotonic()
            # The station validates the list; the CSMS checking it first would only
            # add its own time to the call.
            answer = csms.call("SendLocalList", payload, timeout=300.0, validate=False)
            t1 = time.monotonic()
            time.sleep(5 * PROBE_INTERVAL_S)  # let a request caught in the update finish
        finally:
            probe.end(prober)
        # The requests that were waiting while the update was received and applied.
        during = [
            ms for start, ms in probe.read_times(times_file) if start < t1 and start + ms / 1e3 > t0
        ]
        listed = csms.call("GetLocalListVersion", {})
        list_version = listed.get("listVersion", listed.get("versionNumber"))
        daemon.stop()
        db = daemon.state_dir / "auth.db"
        db_bytes = file_bytes(db, db.with_name(db.name + "-wal"))
        times, accepted = asyncio.run(_lookups(db, known + unknown))
    stored_accepted = sum(1 for tag in known if int(tag[2:], 16) % 50)
    return {
        "entries": entries,
        "answer": answer.get("status"),
        "version": version,
        "list_version_after": list_version,
        "accepted": answer.get("status") == "Accepted" and list_version == 1,
        "apply_s": round(t1 - t0, 3),
        "auth_db_bytes": db_bytes,
        "auth_db_bytes_per_entry": round(db_bytes / entries, 1),
        "loop_probe_ms": summarize(during, 2) if during else None,
        "lookups": len(times),
        "lookups_accepted": accepted,
        "lookups_expected_accepted": stored_accepted,
        "lookup_ms": summarize(times, 4),
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    n = f"{figures['entries']:,}"
    stall = figures["loop_probe_ms"]
    return [
        Row(
            f"SendLocalList Full {n}: call → answer",
            figures["apply_s"],
            "s",
            Target("<=", APPLY_TARGET_S),
        ),
        Row("answered Accepted, list version 1", figures["accepted"], "", YES),
        Row(
            "card lookup, median",
            figures["lookup_ms"]["p50"],
            "ms",
            Target("<=", LOOKUP_TARGET_MS),
        ),
        Row("card lookup, p99", figures["lookup_ms"]["p99"], "ms"),
        Row(
            "loop unresponsive during apply, max",
            None if stall is None else stall["max"],
            "ms",
            Target("<=", STALL_TARGET_MS),
        ),
    ]
