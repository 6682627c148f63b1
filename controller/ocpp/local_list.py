"""Applying a SendLocalList, for any OCPP version.

Both versions send the same update (a version number, full or differential, entries
to add, replace or remove) in their own words; each layer translates its entries
to the neutral form the authorization store takes ({"idTag", "idTagInfo"} with
1.6 status names, no idTagInfo: remove) and this module decides the answer.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from controller.ocpp.v16.keys import SEND_LOCAL_LIST_MAX
from controller.station import Station

log = logging.getLogger("evsed.ocpp")


async def apply_local_list(
    station: Station, version: int, full: bool, entries: list[dict[str, Any]]
) -> str:
    """Accepted, Failed or VersionMismatch (the status both versions answer with)."""
    authorizer = station.authorizer
    if len(entries) > SEND_LOCAL_LIST_MAX:
        log.warning(
            "SendLocalList with %d entries refused (limit %d)", len(entries), SEND_LOCAL_LIST_MAX
        )
        return "Failed"
    if not full and version <= authorizer.list_version():
        return "VersionMismatch"
    adding = sum("idTagInfo" in e for e in entries)
    if (adding if full else authorizer.list_size() + adding) > station.keys.get_int(
        "LocalAuthListMaxLength"
    ):
        log.warning("SendLocalList refused: the list would exceed LocalAuthListMaxLength")
        return "Failed"
    try:
        await authorizer.apply_list(version, full, entries)
    except (ValueError, KeyError, TypeError, sqlite3.Error) as e:
        log.warning("SendLocalList failed: %s", e)
        return "Failed"
    kind = "Full" if full else "Differential"
    log.info("local list %s: version %d, %d entries", kind, version, len(entries))
    station.local_list_updated()
    return "Accepted"
