"""Who may charge: the Local Authorization List, the Authorization Cache and the
CSMS, combined by the pure rules in controller/core/authorization.py.

The list and the cache live in their own SQLite file. Every write (a list
update of 100,000 entries, a cache entry) runs on one dedicated worker thread
with its own connection, so the event loop — which also opens the contactor on
a pilot change — never waits for the card; lookups use a second, read-only
connection (WAL readers never wait for the writer).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from controller.auth_store import AuthStore
from controller.core.authorization import AuthPolicy, IdTagInfo, Verdict, decide, list_conflict

log = logging.getLogger("evsed.auth")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    accepted: bool
    parent_id_tag: str | None
    why: str  # for the log: "local list", "cache", "CSMS", "offline: unknown id allowed"...


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA journal_size_limit=4194304")
    return db


class Authorizer:
    def __init__(self, path: Path, cache_capacity: int = 10_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer_db = _connect(path)
        self._writer = AuthStore(self._writer_db, cache_capacity)
        self._reader_db = _connect(path)
        self._reader = AuthStore(self._reader_db, cache_capacity)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auth-store")

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._writer.flush()
        self._writer_db.close()
        self._reader_db.close()

    async def _write(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    # --- deciding -------------------------------------------------------------------

    async def authorize(
        self,
        id_tag: str,
        policy: AuthPolicy,
        now: datetime,
        online: bool,
        ask_csms: Callable[[str], Awaitable[IdTagInfo | None]],
    ) -> Answer:
        """The decision for `id_tag`, asking the CSMS when the rules say so; a CSMS that
        does not answer counts as offline."""
        list_entry = self._reader.list_lookup(id_tag) if policy.local_auth_list_enabled else None
        cache_entry = self._reader.cache_lookup(id_tag) if policy.cache_enabled else None

        def rules(online: bool) -> tuple[Verdict, IdTagInfo | None]:
            return decide(
                id_tag,
                online=online,
                policy=policy,
                list_entry=list_entry,
                cache_entry=cache_entry,
                now=now,
            )

        verdict, entry = rules(online)
        if verdict is Verdict.ASK_CSMS:
            info = await ask_csms(id_tag)
            if info is not None:
                return Answer(info.effective_status(now) == "Accepted", info.parent_id_tag, "CSMS")
            verdict, entry = rules(online=False)
        source = (
            "local list"
            if entry is not None and entry is list_entry
            else "cache"
            if entry is not None
            else "offline, unknown id"
        )
        accepted = verdict is Verdict.ACCEPT
        return Answer(accepted, entry.parent_id_tag if entry else None, source)

    # --- learning from the CSMS --------------------------------------------------------

    async def remember(
        self, id_tag: str, info: IdTagInfo, policy: AuthPolicy, now: datetime
    ) -> bool:
        """Update the cache from an idTagInfo the CSMS sent; True when it contradicts the
        local list (LocalListConflict)."""
        if policy.cache_enabled:
            await self._write(lambda: self._writer.cache_update(id_tag, info))
        if not policy.local_auth_list_enabled:
            return False
        return list_conflict(self._reader.list_lookup(id_tag), info, now)

    async def clear_cache(self) -> None:
        await self._write(self._writer.cache_clear)

    # --- the local list --------------------------------------------------------------

    def list_version(self) -> int:
        return self._reader.list_version()

    def list_size(self) -> int:
        return self._reader.list_size()

    def list_token_type(self, id_tag: str) -> str | None:
        """The token type the list's CSMS named for `id_tag`, if one is kept."""
        return self._reader.list_token_type(id_tag)

    async def apply_list(self, version: int, full: bool, entries: Sequence[dict[str, Any]]) -> None:
        """Replace (full) or update (differential) the list from SendLocalList's
        localAuthorizationList, atomically; parsing and writing both off the loop. An
        entry's "tokenType" (a layer's token type to keep) is kept with it.
        Raises ValueError/KeyError/TypeError for a malformed entry, with nothing changed."""

        def work() -> None:
            items = [
                (e["idTag"], IdTagInfo.from_ocpp(e["idTagInfo"]) if "idTagInfo" in e else None)
                for e in entries
            ]
            types: dict[str, str] = {}  # the last entry of an idTag decides
            for e in entries:
                if "tokenType" in e and "idTagInfo" in e:
                    types[e["idTag"]] = str(e["tokenType"])
                else:
                    types.pop(e["idTag"], None)
            if full:
                self._writer.apply_full(version, items, types)
            else:
                self._writer.apply_differential(version, items, types)

        await self._write(work)
