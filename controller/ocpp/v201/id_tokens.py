"""OCPP 2.0.1 IdTokens and IdTokenInfo, in the station's neutral terms.

The station core and the authorization store speak of an idTag (a string) and an
`IdTagInfo` with the five 1.6 statuses. 2.0.1 adds a token type and more refusal
statuses: every 2.0.1 refusal maps to one the core already refuses (Invalid), so
the cache and the local list keep one meaning for both versions.

Token types: the reader's card UIDs are ISO14443 (4- or 7-byte UIDs, sent as 8 or
14 upper-case hex characters, the form CSMSs compare); a token the CSMS named keeps
the type it gave, so a transaction started after a restart still names it right. A
token named by a request (RequestStartTransaction, ReserveNow) is kept in the store,
one record each; the local list's types (up to 100,000) are kept with the list itself
by the authorization store, written with it off the event loop and replaced with it.
A request's naming comes before the list's: it is the more specific one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from controller.core.authorization import IdTagInfo, format_datetime, parse_datetime
from controller.store import Store

ISO14443 = "ISO14443"
NO_AUTHORIZATION = "NoAuthorization"
TYPES_KIND = "id_token_type"  # store records: idToken -> the type a request gave
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


def default_type(value: str) -> str:
    """The type of a token nobody named: a card the reader saw, or the CSMS's own."""
    return ISO14443 if is_card_uid(value) else "Central"


class TokenTypes:
    """The type of each idToken the station sends: one keyed lookup each."""

    def __init__(
        self,
        store: Store,
        free_vend_id_tag: str | None = None,
        listed: Callable[[str], str | None] = lambda value: None,
    ) -> None:
        """`listed`: the type the local list keeps for a token (Authorizer.list_token_type)."""
        self.store = store
        self.free_vend = free_vend_id_tag
        self.listed = listed

    def learn(self, *id_tokens: dict[str, Any]) -> None:
        """Tokens a request named: their types are kept (before the request is answered),
        in one write."""
        changed = {
            str(t["idToken"]): str(t["type"])
            for t in id_tokens
            if self.store.record(TYPES_KIND, str(t["idToken"])) != t["type"]
        }
        if changed:
            self.store.put_records(TYPES_KIND, changed)

    def id_token(self, value: str) -> dict[str, Any]:
        if self.free_vend is not None and value == self.free_vend:
            return {"idToken": "", "type": NO_AUTHORIZATION}
        named = self.store.record(TYPES_KIND, value) or self.listed(value)
        return {"idToken": value, "type": named or default_type(value)}


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
    """A 2.0.1 AuthorizationData as the authorization store's neutral entry, with the
    token's type where the station would not guess it (kept with the entry)."""
    token = entry["idToken"]
    out: dict[str, Any] = {"idTag": token["idToken"]}
    if token["type"] != default_type(str(token["idToken"])):
        out["tokenType"] = token["type"]
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
