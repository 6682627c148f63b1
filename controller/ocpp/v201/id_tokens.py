"""OCPP 2.0.1 IdTokens and IdTokenInfo, in the station's neutral terms.

The station core and the authorization store speak of an idTag (a string) and an
`IdTagInfo` with the five 1.6 statuses. 2.0.1 adds a token type and more refusal
statuses: every 2.0.1 refusal maps to one the core already refuses (Invalid), so
the cache and the local list keep one meaning for both versions.

Token types: the reader's card UIDs are ISO14443 (4- or 7-byte UIDs, sent as 8 or
14 upper-case hex characters, the form CSMSs compare); a token the CSMS named
(RequestStartTransaction, the local list, Authorize) keeps the type it gave, kept
in the store so a transaction started after a restart still names it right.
"""

from __future__ import annotations

import re
from typing import Any

from controller.core.authorization import IdTagInfo, format_datetime, parse_datetime
from controller.store import Store

ISO14443 = "ISO14443"
NO_AUTHORIZATION = "NoAuthorization"
TYPES_KIND = "id_token_type"  # store records: idToken -> the type the CSMS gave
_UID = re.compile(r"^(?:[0-9A-F]{8}|[0-9A-F]{14})$")
# 2.0.1 AuthorizationStatusEnumType -> the 1.6 status with the same effect here
_TO_NEUTRAL = {
    "Accepted": "Accepted",
    "Blocked": "Blocked",
    "ConcurrentTx": "ConcurrentTx",
    "Expired": "Expired",
    "Invalid": "Invalid",
    "NoCredit": "Invalid",
    "NotAllowedTypeEVSE": "Invalid",
    "NotAtThisLocation": "Invalid",
    "NotAtThisTime": "Invalid",
    "Unknown": "Invalid",
}


def is_card_uid(value: str) -> bool:
    return bool(_UID.match(value))


class TokenTypes:
    """The type of each idToken the station sends."""

    def __init__(self, store: Store, free_vend_id_tag: str | None = None) -> None:
        self.store = store
        self.free_vend = free_vend_id_tag

    def learn(self, id_token: dict[str, Any]) -> None:
        """A token the CSMS named: its type is kept (before the request is answered)."""
        value, kind = str(id_token["idToken"]), str(id_token["type"])
        if self.store.records(TYPES_KIND).get(value) != kind:
            self.store.put_record(TYPES_KIND, value, kind)

    def id_token(self, value: str) -> dict[str, Any]:
        if self.free_vend is not None and value == self.free_vend:
            return {"idToken": "", "type": NO_AUTHORIZATION}
        named = self.store.records(TYPES_KIND).get(value)
        if named is not None:
            return {"idToken": value, "type": named}
        return {"idToken": value, "type": ISO14443 if is_card_uid(value) else "Central"}


def neutral_status(status: str) -> str:
    return _TO_NEUTRAL.get(status, "Invalid")


def id_tag_info(info: dict[str, Any]) -> IdTagInfo:
    """A 2.0.1 IdTokenInfo as the neutral IdTagInfo (ValueError if unreadable)."""
    expiry = info.get("cacheExpiryDateTime")
    group = info.get("groupIdToken")
    return IdTagInfo(
        status=neutral_status(str(info["status"])),
        expiry=None if expiry is None else parse_datetime(str(expiry)),
        parent_id_tag=None if group is None else str(group["idToken"]),
    )


def local_list_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A 2.0.1 AuthorizationData as the authorization store's neutral entry."""
    out: dict[str, Any] = {"idTag": entry["idToken"]["idToken"]}
    info = entry.get("idTokenInfo")
    if info is not None:
        converted: dict[str, Any] = {"status": neutral_status(info["status"])}
        if "cacheExpiryDateTime" in info:
            converted["expiryDate"] = info["cacheExpiryDateTime"]
        if "groupIdToken" in info:
            converted["parentIdTag"] = info["groupIdToken"]["idToken"]
        out["idTagInfo"] = converted
    return out


def id_token_info(info: IdTagInfo) -> dict[str, Any]:
    """The neutral IdTagInfo as a 2.0.1 IdTokenInfo (for reports of the local list)."""
    out: dict[str, Any] = {"status": info.status}
    if info.expiry is not None:
        out["cacheExpiryDateTime"] = format_datetime(info.expiry)
    if info.parent_id_tag is not None:
        out["groupIdToken"] = {"idToken": info.parent_id_tag, "type": "Central"}
    return out
