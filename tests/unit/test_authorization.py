"""Offline authorization rules (OCPP 1.6 §3.4/§3.5 and the configuration keys), as tables."""

from __future__ import annotations

import itertools
from dataclasses import astuple
from datetime import UTC, datetime, timedelta, timezone

import pytest

from controller.core.authorization import (
    AuthPolicy,
    IdTagInfo,
    Verdict,
    decide,
    list_conflict,
    parse_datetime,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TAG = "04A2B3C4"

ACC = IdTagInfo("Accepted", parent_id_tag="FLEET")
ACC_VALID = IdTagInfo("Accepted", NOW + timedelta(days=1))
ACC_LAPSED = IdTagInfo("Accepted", NOW - timedelta(seconds=1))  # Accepted, but expired by time
BLK = IdTagInfo("Blocked")
EXP = IdTagInfo("Expired")
INV = IdTagInfo("Invalid")
CTX = IdTagInfo("ConcurrentTx")
NOT_ACCEPTED = {"blocked": BLK, "expired": EXP, "lapsed": ACC_LAPSED, "invalid": INV, "ctx": CTX}

ALL_POLICIES = [AuthPolicy(*flags) for flags in itertools.product([False, True], repeat=5)]

A, R, Q = Verdict.ACCEPT, Verdict.REJECT, Verdict.ASK_CSMS
ON, OFF = True, False  # online / offline


def p(
    lst: bool = True, cache: bool = True, pre: bool = True, off: bool = True, unk: bool = False
) -> AuthPolicy:
    """LocalAuthListEnabled, AuthorizationCacheEnabled, LocalPreAuthorize,
    LocalAuthorizeOffline, AllowOfflineTxForUnknownId. Default: all on but unknown ids."""
    return AuthPolicy(lst, cache, pre, off, unk)


def policy_id(pol: AuthPolicy) -> str:
    """The five keys as bits, in the order of `p`."""
    return "".join("1" if flag else "0" for flag in astuple(pol))


# (case, online, policy, list entry, cache entry, verdict, which entry decided)
CASES: list[tuple[str, bool, AuthPolicy, IdTagInfo | None, IdTagInfo | None, Verdict, str]] = [
    # --- online, in the list -------------------------------------------------------
    ("on list accepted", ON, p(), ACC, None, A, "list"),
    ("on list accepted, no pre-authorize", ON, p(pre=False), ACC, None, Q, "list"),
    ("on list accepted, future expiry", ON, p(), ACC_VALID, None, A, "list"),
    ("on list lapsed", ON, p(), ACC_LAPSED, None, Q, "list"),
    ("on list blocked", ON, p(), BLK, None, Q, "list"),
    ("on list expired", ON, p(), EXP, None, Q, "list"),
    ("on list invalid", ON, p(), INV, None, Q, "list"),
    ("on list concurrent", ON, p(), CTX, None, Q, "list"),
    ("on list blocked, no pre-authorize", ON, p(pre=False), BLK, None, Q, "list"),
    # --- online, in the cache ------------------------------------------------------
    ("on cache accepted", ON, p(), None, ACC, A, "cache"),
    ("on cache accepted, no pre-authorize", ON, p(pre=False), None, ACC, Q, "cache"),
    ("on cache accepted, offline auth off", ON, p(off=False), None, ACC, A, "cache"),
    ("on cache lapsed", ON, p(), None, ACC_LAPSED, Q, "cache"),
    ("on cache blocked", ON, p(), None, BLK, Q, "cache"),
    ("on cache expired", ON, p(), None, EXP, Q, "cache"),
    # --- online, unknown -----------------------------------------------------------
    ("on unknown", ON, p(), None, None, Q, "none"),
    ("on unknown, unknown allowed", ON, p(unk=True), None, None, Q, "none"),
    # --- offline, in the list ------------------------------------------------------
    ("off list accepted", OFF, p(), ACC, None, A, "list"),
    ("off list accepted, no pre-authorize", OFF, p(pre=False), ACC, None, A, "list"),
    ("off list accepted, offline auth off", OFF, p(off=False), ACC, None, R, "list"),
    ("off list acc, no offline auth, unk ok", OFF, p(off=False, unk=True), ACC, None, A, "list"),
    ("off list lapsed", OFF, p(), ACC_LAPSED, None, R, "list"),
    ("off list blocked", OFF, p(), BLK, None, R, "list"),
    ("off list expired", OFF, p(), EXP, None, R, "list"),
    ("off list invalid", OFF, p(), INV, None, R, "list"),
    ("off list concurrent", OFF, p(), CTX, None, R, "list"),
    ("off list blocked, unknown ok", OFF, p(unk=True), BLK, None, R, "list"),
    ("off list lapsed, unknown ok", OFF, p(unk=True), ACC_LAPSED, None, R, "list"),
    # --- offline, in the cache -----------------------------------------------------
    ("off cache accepted", OFF, p(), None, ACC, A, "cache"),
    ("off cache accepted, offline auth off", OFF, p(off=False), None, ACC, R, "cache"),
    ("off cache acc, no offline auth, unk ok", OFF, p(off=False, unk=True), None, ACC, A, "cache"),
    ("off cache lapsed", OFF, p(), None, ACC_LAPSED, R, "cache"),
    ("off cache blocked", OFF, p(), None, BLK, R, "cache"),
    ("off cache expired, unknown ok", OFF, p(unk=True), None, EXP, R, "cache"),
    # --- offline, unknown ----------------------------------------------------------
    ("off unknown", OFF, p(), None, None, R, "none"),
    ("off unknown, unknown ok", OFF, p(unk=True), None, None, A, "none"),
    ("off unknown, unk ok, offline auth off", OFF, p(unk=True, off=False), None, None, A, "none"),
    # --- a disabled source does not count ------------------------------------------
    ("list disabled, on, in list only", ON, p(lst=False), ACC, None, Q, "none"),
    ("list disabled, off, in list only", OFF, p(lst=False), ACC, None, R, "none"),
    ("list disabled, off, blocked, unk ok", OFF, p(lst=False, unk=True), BLK, None, A, "none"),
    ("list disabled, falls back to cache", OFF, p(lst=False), BLK, ACC, A, "cache"),
    ("cache disabled, on, in cache only", ON, p(cache=False), None, ACC, Q, "none"),
    ("cache disabled, off, in cache only", OFF, p(cache=False), None, ACC, R, "none"),
    ("cache disabled, off, blocked, unk ok", OFF, p(cache=False, unk=True), None, BLK, A, "none"),
    ("cache disabled, list still counts", OFF, p(cache=False), ACC, BLK, A, "list"),
    ("both disabled, off", OFF, p(lst=False, cache=False), ACC, ACC, R, "none"),
    # --- the list takes precedence over the cache ----------------------------------
    ("list blocked beats cache accepted, off", OFF, p(), BLK, ACC, R, "list"),
    ("list blocked beats cache accepted, on", ON, p(), BLK, ACC, Q, "list"),
    ("list accepted beats cache blocked, off", OFF, p(), ACC, BLK, A, "list"),
    ("list accepted beats cache blocked, on", ON, p(), ACC, BLK, A, "list"),
    ("list lapsed beats cache accepted, off", OFF, p(), ACC_LAPSED, ACC, R, "list"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("online", "pol", "list_entry", "cache_entry", "verdict", "source"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(
    online: bool,
    pol: AuthPolicy,
    list_entry: IdTagInfo | None,
    cache_entry: IdTagInfo | None,
    verdict: Verdict,
    source: str,
) -> None:
    got, entry = decide(
        TAG, online=online, policy=pol, list_entry=list_entry, cache_entry=cache_entry, now=NOW
    )
    assert got is verdict
    expected = {"list": list_entry, "cache": cache_entry, "none": None}[source]
    assert entry is expected


@pytest.mark.parametrize("pol", ALL_POLICIES, ids=policy_id)
def test_online_never_rejects_and_unknown_always_asks(pol: AuthPolicy) -> None:
    """Online, the CSMS has the last word on anything not accepted locally."""
    for list_entry, cache_entry in itertools.product([None, ACC, *NOT_ACCEPTED.values()], repeat=2):
        verdict, _ = decide(
            TAG, online=True, policy=pol, list_entry=list_entry, cache_entry=cache_entry, now=NOW
        )
        assert verdict is not Verdict.REJECT
    assert decide(TAG, online=True, policy=pol, list_entry=None, cache_entry=None, now=NOW) == (
        Verdict.ASK_CSMS,
        None,
    )


@pytest.mark.parametrize("pol", ALL_POLICIES, ids=policy_id)
@pytest.mark.parametrize("kind", sorted(NOT_ACCEPTED))
def test_offline_known_but_not_accepted_is_always_rejected(pol: AuthPolicy, kind: str) -> None:
    """§3.5.3: such an idTag is not "unknown", whatever AllowOfflineTxForUnknownId says."""
    bad = NOT_ACCEPTED[kind]
    if pol.local_auth_list_enabled:
        got = decide(TAG, online=False, policy=pol, list_entry=bad, cache_entry=ACC, now=NOW)
        assert got == (Verdict.REJECT, bad)
    if pol.cache_enabled:
        got = decide(TAG, online=False, policy=pol, list_entry=None, cache_entry=bad, now=NOW)
        assert got == (Verdict.REJECT, bad)


@pytest.mark.parametrize("pol", ALL_POLICIES, ids=policy_id)
def test_offline_accepted_locally_follows_local_authorize_offline(pol: AuthPolicy) -> None:
    verdict, _ = decide(TAG, online=False, policy=pol, list_entry=ACC, cache_entry=ACC, now=NOW)
    if pol.local_auth_list_enabled or pol.cache_enabled:
        allowed = pol.local_authorize_offline or pol.allow_offline_tx_for_unknown_id
    else:
        allowed = pol.allow_offline_tx_for_unknown_id
    assert verdict is (Verdict.ACCEPT if allowed else Verdict.REJECT)


# --- expiry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "at", "status"),
    [
        (IdTagInfo("Accepted"), NOW, "Accepted"),
        (IdTagInfo("Accepted", NOW), NOW - timedelta(microseconds=1), "Accepted"),
        (IdTagInfo("Accepted", NOW), NOW, "Accepted"),  # invalid only *after* expiryDate
        (IdTagInfo("Accepted", NOW), NOW + timedelta(microseconds=1), "Expired"),
        (IdTagInfo("Blocked", NOW), NOW + timedelta(days=1), "Blocked"),
        (IdTagInfo("Invalid", NOW), NOW + timedelta(days=1), "Invalid"),
        (IdTagInfo("ConcurrentTx", NOW), NOW + timedelta(days=1), "ConcurrentTx"),
        # the same instant in another zone
        (IdTagInfo("Accepted", NOW), NOW.astimezone(timezone(timedelta(hours=2))), "Accepted"),
    ],
)
def test_effective_status(info: IdTagInfo, at: datetime, status: str) -> None:
    assert info.effective_status(at) == status


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        IdTagInfo("Accepted", datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        IdTagInfo("Accepted").effective_status(datetime(2026, 1, 1))


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        IdTagInfo("accepted")


def test_expiry_is_checked_against_now_not_when_stored() -> None:
    info = IdTagInfo("Accepted", NOW + timedelta(hours=1))
    pol = p()
    assert decide(TAG, online=False, policy=pol, list_entry=info, cache_entry=None, now=NOW)[0] is A
    later = NOW + timedelta(hours=2)
    assert (
        decide(TAG, online=False, policy=pol, list_entry=info, cache_entry=None, now=later)[0] is R
    )


# --- OCPP JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00Z", NOW),
        ("2026-03-01T12:00:00.000Z", NOW),
        ("2026-03-01T12:00:00z", NOW),
        ("2026-03-01T12:00:00+00:00", NOW),
        ("2026-03-01T14:00:00+02:00", NOW),
        ("2026-03-01T07:00:00-05:00", NOW),
        ("2026-03-01T12:00:00", NOW),  # no zone: UTC
        ("2026-03-01T12:00:00.5Z", NOW + timedelta(milliseconds=500)),
        ("2026-03-01T12:00:00.123456789Z", NOW + timedelta(microseconds=123456)),
    ],
)
def test_parse_datetime_is_tolerant(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_from_ocpp_full_and_minimal() -> None:
    info = IdTagInfo.from_ocpp(
        {"status": "Accepted", "expiryDate": "2026-03-01T14:00:00+02:00", "parentIdTag": "FLEET"}
    )
    assert info == IdTagInfo("Accepted", NOW, "FLEET")
    assert IdTagInfo.from_ocpp({"status": "Blocked"}) == IdTagInfo("Blocked")
    assert IdTagInfo.from_ocpp({"status": "Invalid", "expiryDate": None}) == IdTagInfo("Invalid")


def test_from_ocpp_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        IdTagInfo.from_ocpp({"status": "Maybe"})
    with pytest.raises(ValueError):
        IdTagInfo.from_ocpp({"status": "Accepted", "expiryDate": "tomorrow"})
    with pytest.raises(KeyError):
        IdTagInfo.from_ocpp({})


def test_to_ocpp() -> None:
    cest = timezone(timedelta(hours=2))
    info = IdTagInfo("Accepted", datetime(2026, 3, 1, 14, 0, 0, 250_000, tzinfo=cest), "FLEET")
    assert info.to_ocpp() == {
        "status": "Accepted",
        "expiryDate": "2026-03-01T12:00:00.250Z",
        "parentIdTag": "FLEET",
    }
    assert IdTagInfo("Blocked").to_ocpp() == {"status": "Blocked"}


def test_ocpp_round_trip() -> None:
    info = IdTagInfo("Expired", NOW + timedelta(milliseconds=7), "P")
    assert IdTagInfo.from_ocpp(info.to_ocpp()) == info


# --- LocalListConflict ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("list_entry", "csms", "conflict"),
    [
        (None, IdTagInfo("Accepted"), False),  # not in the list: the list need not be complete
        (None, IdTagInfo("Blocked"), False),
        (IdTagInfo("Accepted"), IdTagInfo("Accepted"), False),
        (IdTagInfo("Accepted"), IdTagInfo("Blocked"), True),
        (IdTagInfo("Blocked"), IdTagInfo("Accepted"), True),
        (IdTagInfo("Blocked"), IdTagInfo("Invalid"), True),
        (IdTagInfo("Invalid"), IdTagInfo("Invalid"), False),
        # expiry counts through the effective status only
        (IdTagInfo("Accepted", NOW - timedelta(days=1)), IdTagInfo("Accepted"), True),
        (IdTagInfo("Accepted", NOW - timedelta(days=1)), IdTagInfo("Expired"), False),
        (IdTagInfo("Accepted", NOW + timedelta(days=1)), IdTagInfo("Accepted"), False),
        (IdTagInfo("Accepted", NOW + timedelta(days=1)), IdTagInfo("Accepted", NOW), False),
        (IdTagInfo("Accepted"), IdTagInfo("Accepted", NOW - timedelta(days=1)), True),
        # parentIdTag
        (IdTagInfo("Accepted", None, "G1"), IdTagInfo("Accepted", None, "G1"), False),
        (IdTagInfo("Accepted", None, "G1"), IdTagInfo("Accepted", None, "g1"), False),  # CiString
        (IdTagInfo("Accepted", None, "G1"), IdTagInfo("Accepted", None, "G2"), True),
        (IdTagInfo("Accepted", None, "G1"), IdTagInfo("Accepted"), True),
        (IdTagInfo("Accepted"), IdTagInfo("Accepted", None, "G1"), True),
    ],
)
def test_list_conflict(list_entry: IdTagInfo | None, csms: IdTagInfo, conflict: bool) -> None:
    assert list_conflict(list_entry, csms, NOW) is conflict
