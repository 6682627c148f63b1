"""Offline authorization for OCPP 1.6: may this idTag start now, locally?

Pure like the rest of the core: the caller looks the idTag up in the Local
Authorization List and the Authorization Cache (see `controller.auth_store`),
passes what it found with the station's connection state, policy and the time,
and gets a verdict back. Nothing here reads a clock, a disk or a socket, so the
rules of OCPP 1.6 §3.4/§3.5 and of the configuration keys can be tested as a
table.

idTags are OCPP CiString20 (case-insensitive printable ASCII): comparisons of
parentIdTag here ignore case, and the store looks idTags up case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

ACCEPTED = "Accepted"
BLOCKED = "Blocked"
EXPIRED = "Expired"
INVALID = "Invalid"
CONCURRENT_TX = "ConcurrentTx"
STATUSES = frozenset({ACCEPTED, BLOCKED, EXPIRED, INVALID, CONCURRENT_TX})


def parse_datetime(value: str) -> datetime:
    """An OCPP dateTime as an aware UTC datetime.

    Tolerant, because CSMSs differ: "Z" or "z" or any offset, fractions of any
    length, and no zone at all (read as UTC, the only zone OCPP 1.6 intends).
    """
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as e:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"date-time out of range in UTC: {value!r}") from e


def format_datetime(value: datetime) -> str:
    """UTC, milliseconds, "Z": the form the station uses for every timestamp it sends."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _require_aware(value: datetime, what: str) -> None:
    if value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")


@dataclass(frozen=True, slots=True)
class IdTagInfo:
    """What the CSMS (live, via the cache, or via the local list) says about an idTag."""

    status: str  # Accepted | Blocked | Expired | Invalid | ConcurrentTx
    expiry: datetime | None = None
    parent_id_tag: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown idTagInfo status {self.status!r}")
        if self.expiry is not None:
            _require_aware(self.expiry, "expiry")

    def effective_status(self, now: datetime) -> str:
        """The status at `now`: an Accepted entry past its expiryDate counts as Expired.

        OCPP 1.6 expiryDate is the instant *after which* the idTag is invalid, so
        the entry is still Accepted at exactly `expiry`. Other statuses stand as
        they are: a Blocked card does not become "Expired" by waiting.
        """
        _require_aware(now, "now")
        if self.status == ACCEPTED and self.expiry is not None and now > self.expiry:
            return EXPIRED
        return self.status

    @classmethod
    def from_ocpp(cls, d: dict[str, Any]) -> IdTagInfo:
        """From a 1.6 idTagInfo object (Authorize.conf, StartTransaction.conf, SendLocalList)."""
        expiry = d.get("expiryDate")
        return cls(
            status=str(d["status"]),
            expiry=None if expiry is None else parse_datetime(str(expiry)),
            parent_id_tag=d.get("parentIdTag"),
        )

    def to_ocpp(self) -> dict[str, Any]:
        """To a 1.6 idTagInfo object; optional fields are left out rather than null."""
        d: dict[str, Any] = {"status": self.status}
        if self.expiry is not None:
            d["expiryDate"] = format_datetime(self.expiry)
        if self.parent_id_tag is not None:
            d["parentIdTag"] = self.parent_id_tag
        return d


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """The 1.6 configuration keys that govern local authorization."""

    local_auth_list_enabled: bool  # LocalAuthListEnabled
    cache_enabled: bool  # AuthorizationCacheEnabled
    local_pre_authorize: bool  # LocalPreAuthorize
    local_authorize_offline: bool  # LocalAuthorizeOffline
    allow_offline_tx_for_unknown_id: bool  # AllowOfflineTxForUnknownId


class Verdict(StrEnum):
    ACCEPT = "accept"  # start now, locally, without waiting for the CSMS
    REJECT = "reject"  # refuse the card
    ASK_CSMS = "ask_csms"  # send Authorize.req and act on the answer


def decide(
    id_tag: str,
    *,
    online: bool,
    policy: AuthPolicy,
    list_entry: IdTagInfo | None,
    cache_entry: IdTagInfo | None,
    now: datetime,
) -> tuple[Verdict, IdTagInfo | None]:
    """What to do with a presented idTag; returns the verdict and the local entry
    behind it (None when the idTag is unknown to every enabled source).

    `list_entry`/`cache_entry` are the lookups for `id_tag`; the caller may pass
    them unconditionally, the policy decides which ones count.

    Rules, in order:

    1. LocalAuthListEnabled / AuthorizationCacheEnabled: a source that is
       disabled is not consulted. The Local Authorization List takes precedence
       over the cache (§3.5: "the Local Authorization List entries SHALL take
       precedence over the Authorization Cache entries for the same
       identifier"), even when the list's entry is not Accepted and the cache's is.
    2. Known and effectively Accepted (expiry honoured):
       - online: LocalPreAuthorize true → ACCEPT without waiting for the CSMS
         (it may still deauthorize via StartTransaction.conf); false → ASK_CSMS.
       - offline: LocalAuthorizeOffline true → ACCEPT. False → the local entry
         may not authorize, so the idTag "cannot be explicitly authorized by
         Local Authorization List or Authorization Cache entries" and is treated
         like an unknown one (rule 4); it would be absurd to refuse a valid card
         while letting any unknown card charge.
    3. Known and not effectively Accepted (Blocked, Expired, Invalid,
       ConcurrentTx, or Accepted past its expiryDate):
       - online → ASK_CSMS: the entry may be stale and the CSMS may know better.
       - offline → REJECT, whatever AllowOfflineTxForUnknownId says (§3.5.3:
         identifiers present with a status other than Accepted, or apparently
         expired, must be rejected; they are not "unknown").
    4. Unknown:
       - online → ASK_CSMS.
       - offline → AllowOfflineTxForUnknownId true → ACCEPT, else REJECT.
    """
    entry = _consulted_entry(policy, list_entry, cache_entry)
    if entry is not None and entry.effective_status(now) == ACCEPTED:
        if online:
            return (Verdict.ACCEPT if policy.local_pre_authorize else Verdict.ASK_CSMS), entry
        if policy.local_authorize_offline:
            return Verdict.ACCEPT, entry
        return _unknown_offline(policy), entry
    if entry is not None:
        return (Verdict.ASK_CSMS if online else Verdict.REJECT), entry
    if online:
        return Verdict.ASK_CSMS, None
    return _unknown_offline(policy), None


def _consulted_entry(
    policy: AuthPolicy, list_entry: IdTagInfo | None, cache_entry: IdTagInfo | None
) -> IdTagInfo | None:
    if policy.local_auth_list_enabled and list_entry is not None:
        return list_entry
    if policy.cache_enabled and cache_entry is not None:
        return cache_entry
    return None


def _unknown_offline(policy: AuthPolicy) -> Verdict:
    """AllowOfflineTxForUnknownId: §3.5.3 Unknown Offline Authorization."""
    return Verdict.ACCEPT if policy.allow_offline_tx_for_unknown_id else Verdict.REJECT


def list_conflict(list_entry: IdTagInfo | None, csms: IdTagInfo, now: datetime) -> bool:
    """Does the Local Authorization List contradict the CSMS's answer for this idTag?

    True → the station reports StatusNotification(connectorId 0, LocalListConflict).
    A conflict is a different effective status at `now` (Accepted in the list but
    Blocked at the CSMS, or the list's entry has expired while the CSMS still
    accepts, ...) or a different parentIdTag (case-insensitive, CiString20).
    An idTag absent from the list is no conflict: the list need not be complete.
    A different expiryDate alone is not one either: CSMSs commonly answer with a
    rolling expiry, which would report a conflict on every tap.
    """
    if list_entry is None:
        return False
    if list_entry.effective_status(now) != csms.effective_status(now):
        return True
    return _fold(list_entry.parent_id_tag) != _fold(csms.parent_id_tag)


def _fold(id_tag: str | None) -> str | None:
    return None if id_tag is None else id_tag.upper()
