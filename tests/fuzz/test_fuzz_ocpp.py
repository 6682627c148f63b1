"""Fuzzing every inbound OCPP path with hypothesis.

Level 1 (in-process, fast, many examples): frames go straight into
`RpcSession._on_frame` of a session built like the daemon's, with the real 1.6
handler table of a `ChargePoint16` on simulated hardware in a temporary state
directory (registration Accepted), and a connection that records what the
station sends. 2.0.1 is fuzzed at the RPC level only (version "2.0.1", no
handlers). Each example is a short sequence of frames; after each one every
task it started must settle, and `ocpp_frames.check_replies` judges the replies
(exactly one well-formed answer per CALL, 1.6 error codes, schema-valid
CALLRESULTs, no InternalError for valid payloads, no CALLRESULT to non-CALLs).
The answers to the station's own calls are inbound too: fuzzed CALLRESULTs and
CALLERRORs to its Authorize must leave authorize() returning an IdTagInfo only
for a schema-valid answer, None otherwise, and never raising.

Level 2 (slow, few examples): the real daemon as a subprocess against the test
CSMS over a real websocket; frames go out with `CsmsThread.send_raw` (binary
ones on the CSMS's socket directly). After the run the daemon still runs, never
dropped the link, answers GetConfiguration, and its RSS stayed within a bound.

Default suite: derandomized, fixed example counts (see profiles.py). Long run:
`.venv/bin/python -m fuzz.run --minutes 10` (random seed, many more examples).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from controller.authorizer import Authorizer
from controller.core.connector import ConnectorSettings
from controller.ocpp.rpc import BIG_FRAME, RpcSession, actions
from controller.ocpp.v16.charge_point import ChargePoint16, LinkSettings, Registration
from controller.ocpp.v16.keys import ConfigurationKeys, core_keys
from controller.station import Station
from controller.store import Store
from hwsim.csms import CsmsThread, Record
from hwsim.hardware import SimHardware
from tests.fuzz.ocpp_frames import (
    CALL,
    CALLERROR,
    CALLRESULT,
    DEEP,
    ECHOED_KINDS,
    ERROR_CODES,
    FEATURES_16,
    HANDLED_16,
    HUGE,
    HUGE_KINDS,
    KNOWN_16,
    KNOWN_201,
    Frame,
    byte_frames,
    check_replies,
    dumps,
    frames,
    huge_frames,
    json_values,
    max_depth,
    mutated_payloads,
    read_frame,
    text_mutations,
    unique_ids,
    valid_calls,
)
from tests.fuzz.profiles import LONG, fuzz_settings
from tests.fuzz.schema_strategies import is_valid, payloads
from tests.integration.harness import CARD, Daemon

SETTLE_S = 30.0  # longest a frame's work may take in-process (a 1.5 MB SendLocalList)
YEAR_0 = "0001-01-01T00:00:00+00:01"  # a valid date-time that is before year 1 in UTC
SEND_LOCAL_LIST_DATE_OVERFLOW = {
    "listVersion": 0,
    "updateType": "Full",
    "localAuthorizationList": [
        {"idTag": "", "idTagInfo": {"status": "Accepted", "expiryDate": YEAR_0}}
    ],
}
TIMEOUT_BEYOND_FLOAT = {"key": "ConnectionTimeOut", "value": "1" + "0" * 499}


def remote_start_with_limit(limit: float) -> dict[str, Any]:
    period = {"startPeriod": 0, "limit": limit}
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [period]}
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": schedule,
    }
    return {"idTag": "04A1B2C3", "chargingProfile": profile}


REMOTE_START_LIMIT_1E400 = dumps([2, "1", "RemoteStartTransaction", remote_start_with_limit(0)])
REMOTE_START_LIMIT_1E400 = REMOTE_START_LIMIT_1E400.replace('"limit": 0}', '"limit": 1e400}')


GOOD_AUTHORIZE_ANSWER = '[3, "2", {"idTagInfo": {"status": "Accepted"}}]'  # to the 2nd call


class RecordingConnection:
    """The websocket, as far as RpcSession uses it: keeps what the station sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def recv(self) -> str | bytes:
        raise ConnectionError("the fuzzer feeds frames to _on_frame directly")


class InProcessStation:
    """A ChargePoint16 composed as controller.daemon.serve composes it, in `state_dir`.

    The station is built but not started: its periodic loops would never let an
    example settle, and the handlers need only its state. `cp.rpc` stays None
    unless a test connects it, so station-initiated calls (Authorize for a
    RemoteStart) find the CSMS unreachable instead of waiting for answers.
    """

    def __init__(self, state_dir: Path, version: str = "1.6") -> None:
        self.store = Store(state_dir / "evsed.db")
        keys = ConfigurationKeys(
            core_keys(1), persisted=self.store.config_keys(), persist=self.store.set_config_key
        )
        self.authorizer = Authorizer(state_dir / "auth.db")
        hardware = SimHardware(1, has_lock=[True], ev_reaction_s=0.0)
        limits = [ConnectorSettings(max_current_a=16, has_lock=True, socket_outlet=True)]
        self.station = Station(hardware, self.store, keys, limits, [3], self.authorizer)
        settings = LinkSettings(
            url="ws://127.0.0.1:9/ocpp", station_id="CP-FUZZ", vendor="evsed", model="fuzz"
        )
        self.cp = ChargePoint16(settings, self.station, keys, self.store)
        self.cp.registration = Registration.ACCEPTED
        self.connection = RecordingConnection()
        handlers = self.cp._all_handlers() if version == "1.6" else {}
        self.handled = tuple(handlers)
        self.rpc = RpcSession(
            self.connection,
            version,
            handlers,
            actions(version),
            response_timeout=1.0,
            accept_calls=lambda action: self.cp.registration is not Registration.REJECTED,
        )

    async def close(self) -> None:
        await self.station.stop()
        self.authorizer.close()
        self.store.close()


async def _settle() -> None:
    """Wait until every task but this one is done (replies sent, background work over)."""
    deadline = time.monotonic() + SETTLE_S
    while others := asyncio.all_tasks() - {asyncio.current_task()}:
        left = deadline - time.monotonic()
        assert left > 0, f"frame handling did not settle: {others}"
        await asyncio.wait(others, timeout=left)


def exchange(frame_list: Sequence[Frame], version: str = "1.6") -> list[tuple[Frame, list[str]]]:
    """Feed frames one by one to a fresh in-process station; the replies to each."""

    async def run(state_dir: Path) -> list[tuple[Frame, list[str]]]:
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        node = InProcessStation(state_dir, version)
        if version == "1.6":
            assert sorted(node.handled) == sorted(HANDLED_16), "the handler table changed"
        results = []
        try:
            for frame in frame_list:
                before = len(node.connection.sent)
                node.rpc._on_frame(frame)  # must never raise
                await _settle()
                results.append((frame, node.connection.sent[before:]))
        finally:
            await node.close()
        assert not loop_errors, f"unhandled errors in the event loop: {loop_errors}"
        return results

    with tempfile.TemporaryDirectory(prefix="evsed-fuzz-") as tmp:
        return asyncio.run(run(Path(tmp)))


def judge(frame_list: Sequence[Frame], version: str = "1.6") -> None:
    handled = HANDLED_16 if version == "1.6" else ()
    for frame, replies in exchange(frame_list, version):
        check_replies(frame, replies, version, handled)


# --- level 1: in-process ------------------------------------------------------------------

any_16_frame = st.one_of(frames(HANDLED_16), frames(sorted(KNOWN_16)))


@fuzz_settings(250)
@given(st.lists(any_16_frame, min_size=1, max_size=4))
# Found by this test: a binary frame that is not UTF-8 was decoded with replacement
# characters and carried out, answered under an id the CSMS never sent.
@example([b'[2, "\xffeb1167b3", "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}]'])
# ... and a limit beyond a double (read as an infinite float) was an InternalError:
@example([REMOTE_START_LIMIT_1E400])
def test_v16_session_answers_every_frame_by_the_rules(frame_list: list[Frame]) -> None:
    """Random, mutated and broken frames, in short sequences, against the real handlers."""
    judge(frame_list)


@fuzz_settings(250)
@given(st.lists(valid_calls(HANDLED_16).map(dumps), min_size=1, max_size=3))
# Found by this test (each was an InternalError before the fix):
@example([dumps([2, "1", "SendLocalList", {"listVersion": 2**63, "updateType": "Differential"}])])
@example([dumps([2, "1", "SendLocalList", SEND_LOCAL_LIST_DATE_OVERFLOW])])
@example([dumps([2, "1", "ChangeConfiguration", TIMEOUT_BEYOND_FLOAT])])
@example([dumps([2, "1", "RemoteStartTransaction", remote_start_with_limit(1e27)])])
def test_v16_schema_valid_calls_get_schema_valid_results(frame_list: list[str]) -> None:
    """Schema-valid requests of every handled action: a CALLRESULT, never an InternalError."""
    judge(frame_list)


@pytest.mark.parametrize("kind", HUGE_KINDS)
@fuzz_settings(2)
@given(data=st.data())
def test_v16_huge_frames(kind: str, data: st.DataObject) -> None:
    """Frames of 1 to 1.5 MB take the off-loop path and are answered by the same rules."""
    frame = data.draw(huge_frames([kind]))
    assert len(frame) >= BIG_FRAME
    judge([frame])


# --- answers to the station's own calls --------------------------------------------------


def answers_to(uid: str) -> st.SearchStrategy[Frame]:
    """CALLRESULTs and CALLERRORs for the station's Authorize `uid`: valid, mutated, broken."""
    valid = payloads("1.6", "Authorize", response=True)
    results = st.one_of(valid, valid.flatmap(mutated_payloads), json_values)
    structured = st.one_of(
        results.map(lambda p: [CALLRESULT, uid, p]),
        st.lists(json_values, max_size=4).map(lambda parts: [CALLERROR, uid, *parts]),
        st.tuples(st.sampled_from(sorted(ERROR_CODES["1.6"])), st.text(max_size=20)).map(
            lambda e: [CALLERROR, uid, e[0], e[1], {}]
        ),
    )
    return st.one_of(
        structured.map(dumps),
        structured.map(dumps).flatmap(text_mutations),
        structured.map(dumps).flatmap(byte_frames),
    )


@fuzz_settings(150)
@given(answers_to("1"))
# Found by this test: authorize() raised OverflowError (a year-1 date west of UTC).
@example(dumps([3, "1", {"idTagInfo": {"status": "Accepted", "expiryDate": YEAR_0}}]))
def test_v16_answers_to_the_stations_own_calls(answer: Frame) -> None:
    """Whatever answers the station's Authorize, authorize() returns an IdTagInfo or None,
    never raises, trusts only a schema-valid CALLRESULT, and the link stays usable."""

    async def run(state_dir: Path) -> None:
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        node = InProcessStation(state_dir)
        node.cp.rpc = node.rpc  # online: Authorize goes to the "CSMS"
        try:
            # The fuzzed answer to the first call, then a good one to a second call.
            for attempt, frame in ((1, answer), (2, GOOD_AUTHORIZE_ANSWER)):
                asked = asyncio.ensure_future(node.cp.authorize(CARD))
                call = f'[2, "{attempt}", "Authorize"'
                for _ in range(1000):
                    if any(sent.startswith(call) for sent in node.connection.sent):
                        break
                    await asyncio.sleep(0)
                else:
                    raise AssertionError(f"authorize() sent no {call}: {node.connection.sent}")
                node.rpc._on_frame(frame)
                # If that did not settle the call, this does (else it is a response to a call
                # no longer outstanding, dropped): no example waits for the response timeout.
                node.rpc._on_frame(f'[4, "{attempt}", "GenericError", "no answer", {{}}]')
                result = await asyncio.wait_for(asked, 5.0)  # never an exception
                await _settle()
                reading = read_frame(frame)
                m = reading.strict
                trusted = (
                    reading.strict_ok
                    and isinstance(m, list)
                    and len(m) == 3
                    and m[:2] == [CALLRESULT, str(attempt)]
                    and isinstance(m[2], dict)
                    and is_valid("1.6", "Authorize", m[2], response=True)
                )
                if trusted:
                    assert result is None or result.status == m[2]["idTagInfo"]["status"]
                else:
                    assert result is None, f"authorize() believed {frame!r:.300}: {result}"
                if attempt > 1:
                    assert result is not None and result.status == "Accepted", "link unusable"
        finally:
            await node.close()
        assert not loop_errors, f"unhandled errors in the event loop: {loop_errors}"

    with tempfile.TemporaryDirectory(prefix="evsed-fuzz-") as tmp:
        asyncio.run(run(Path(tmp)))


calls_201 = st.one_of(
    frames(sorted(KNOWN_201), "2.0.1"),
    st.builds(
        lambda uid, action, payload: dumps([2, uid, action, payload]),
        unique_ids,
        st.sampled_from(sorted(KNOWN_201 | KNOWN_16)),
        json_values,
    ),
)


@fuzz_settings(150)
@given(st.lists(calls_201, min_size=1, max_size=4))
def test_v201_rpc_without_handlers(frame_list: list[Frame]) -> None:
    """OCPP 2.0.1 framing: with no handlers, NotSupported / NotImplemented / 2.0.1 codes."""
    judge(frame_list, "2.0.1")


# --- level 2: the real daemon over a real websocket ----------------------------------------

L2_ACTIONS = [a for a in HANDLED_16 if a != "Reset"]  # a valid Reset restarts the daemon
RSS_GROWTH_LIMIT_KB = 48 * 1024
RSS_SECOND_HALF_KB = 16 * 1024
LONG_RUN_FRAMES = 300  # enough frames for the second-half check to mean something


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc status")


def _parsed(frame: Frame) -> Any:
    """The message as the daemon reads it (None: unreadable, answered with id "-1")."""
    try:
        text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def is_reset(frame: Frame) -> bool:
    m = _parsed(frame)
    return isinstance(m, list) and len(m) > 2 and m[2] == "Reset"


def changes_password(frame: Frame) -> bool:
    """A ChangeConfiguration of AuthorizationKey: once accepted, the station reconnects
    with the new password (TC_073_CS)."""
    m = _parsed(frame)
    return (
        isinstance(m, list)
        and len(m) > 3
        and m[2] == "ChangeConfiguration"
        and isinstance(m[3], dict)
        and m[3].get("key") == "AuthorizationKey"
    )


def wire_form(frame: Frame) -> Frame:
    """A text frame must be UTF-8 on the wire: lone surrogates go out as a binary frame."""
    if isinstance(frame, str):
        try:
            frame.encode("utf-8")
        except UnicodeEncodeError:
            return frame.encode("utf-8", "surrogatepass")
    return frame


def daemon_replies(frame: Frame) -> bool:
    """Whether the daemon will answer at all (only a well-formed response is not)."""
    m = _parsed(frame)
    return not (
        isinstance(m, list)
        and len(m) > 1
        and isinstance(m[1], str)
        and not isinstance(m[0], bool)
        and m[0] in (CALLRESULT, CALLERROR)
    )


class LiveDaemon:
    """The daemon subprocess and the test CSMS, with one frame-and-probe exchange."""

    def __init__(self, daemon: Daemon, csms: CsmsThread) -> None:
        self.daemon = daemon
        self.csms = csms
        self.probes = 0

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    def send(self, frame: Frame) -> None:
        if isinstance(frame, str) and len(frame) <= BIG_FRAME and max_depth(frame) <= DEEP:
            self.csms.send_raw(frame, timeout=0.001)  # replies are collected from the records
            return
        # send_raw takes no binary frames, its parser gives up on deep nesting, and it keeps
        # every frame it sends (a long run's megabyte frames would pile up in this process):
        # use the CSMS's connection directly, on the CSMS's loop.
        ws = self.csms.csms._session(None).ws
        self.csms._run(ws.send(frame), 10.0)

    def replies_to(self, frame: Frame) -> list[str]:
        """Send `frame`, then a probe CALL; the replies that arrived for the frame."""
        mark = self.csms.mark()
        self.send(frame)
        self.probes += 1
        probe = f"probe-{self.probes}"
        self.csms.send_raw(
            dumps([2, probe, "GetConfiguration", {"key": ["HeartbeatInterval"]}]), 0.001
        )
        wait = 30.0 if len(frame) > BIG_FRAME else 10.0
        try:
            answer = self.csms.wait_record(
                lambda r: r.direction == "in" and r.unique_id == probe, timeout=wait, after=mark
            )
        except TimeoutError:
            events = [e for e in self.csms.events if e.seq >= mark]
            raise AssertionError(
                f"the probe after the frame got no answer; link: {events}"
            ) from None
        assert answer.message_type == "CALLRESULT", f"probe answered with {answer.raw}"
        # Each CALL is answered by its own task, so a handler that waits (a database write in
        # a thread) answers after the probe; frames over BIG_FRAME are read off the loop.
        m = _parsed(frame)
        uid = m[1] if isinstance(m, list) and len(m) > 1 and isinstance(m[1], str) else None
        try:
            if uid is not None and not isinstance(m[0], bool) and m[0] == CALL:
                self.csms.wait_record(
                    lambda r: self._is_reply(r, probe) and r.unique_id == uid, 30.0, mark
                )
            elif len(frame) > BIG_FRAME and daemon_replies(frame):
                self.csms.wait_record(lambda r: self._is_reply(r, probe), 30.0, mark)
        except TimeoutError:
            raise AssertionError(f"no answer to the frame within 30 s (id {uid!r:.60})") from None
        return [r.raw for r in self.csms.records if r.seq >= mark and self._is_reply(r, probe)]

    @staticmethod
    def _is_reply(record: Record, probe: str) -> bool:
        return (
            record.direction == "in" and record.message_type != "CALL" and record.unique_id != probe
        )


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveDaemon]:
    # Two malloc arenas: glibc otherwise keeps a growing arena per worker thread that
    # parsed a big frame, and that plateau (tens of MB) would hide or fake a leak.
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    with CsmsThread(id_tags={CARD: "Accepted"}) as csms:
        daemon = Daemon(
            csms, {"ConnectionTimeOut": 5, "MeterValueSampleInterval": 0}, [{"max_current": 16}]
        )
        try:
            daemon.start()
            csms.wait_for("BootNotification", timeout=15.0)
            yield LiveDaemon(daemon, csms)
            print(f"\n--- daemon log tail ---\n{daemon.log()[-3000:]}")
        finally:
            daemon.cleanup()


def warm_up(node: LiveDaemon, rounds: int = 3) -> None:
    """Frames of each heavy kind, a few times over, so the allocator's high-water marks
    are mostly reached before the baseline is taken."""
    big = "x" * (HUGE + HUGE // 2)
    entries = [{"idTag": f"T{i:019d}", "idTagInfo": {"status": "Accepted"}} for i in range(26000)]
    heavy = (
        dumps([2, "w1", "DataTransfer", {"vendorId": "v", "data": big}]),
        dumps([2, "w2", "RemoteStartTransaction", {"idTag": big}]),
        "[" * len(big),
        big.encode() + b"\xff",
        dumps([3, "w3", {"data": big}]),
        dumps(
            [
                2,
                "w4",
                "SendLocalList",
                {"listVersion": 3, "updateType": "Full", "localAuthorizationList": entries},
            ]
        ),
    )
    for _ in range(rounds):
        for frame in heavy:
            node.replies_to(frame)


def test_daemon_survives_fuzzed_frames_without_leaking(live: LiveDaemon) -> None:
    """The real daemon: every reply by the rules, no crash, no reconnect, bounded RSS.

    RSS after the warm-up must stay within RSS_GROWTH_LIMIT_KB (the allocator still
    swings by 10-20 MB with the mix of megabyte frames); in a long run, the second
    half must not grow by more than RSS_SECOND_HALF_KB, which a leak would.
    """
    csms = live.csms
    warm_up(live)
    baseline = rss_kb(live.pid)
    connections = [e for e in csms.events if e.kind != "rejected"]
    # The test CSMS takes frames up to 1 MiB: answers that must echo over 1 MiB would
    # (rightly) cost the link, so those huge kinds are left to level 1.
    huge = huge_frames([k for k in HUGE_KINDS if k not in ECHOED_KINDS])
    frame_strategy = st.one_of(*[frames(L2_ACTIONS)] * 4, huge)
    run_settings = fuzz_settings(80)
    sent = 0
    midway: int | None = None

    @run_settings
    @given(frame_strategy.map(wire_form))
    def one_frame(frame: Frame) -> None:
        nonlocal sent, midway
        assume(not is_reset(frame) and not changes_password(frame))
        check_replies(frame, live.replies_to(frame), "1.6", HANDLED_16 + FEATURES_16)
        sent += 1
        if sent == run_settings.max_examples // 2:
            midway = rss_kb(live.pid)

    one_frame()
    assert live.daemon.proc is not None and live.daemon.proc.poll() is None, "daemon exited"
    after = [e for e in csms.events if e.kind != "rejected"]
    assert after == connections, f"the link dropped during fuzzing: {after[len(connections) :]}"
    config = csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]}, timeout=10.0)
    assert config["configurationKey"][0]["key"] == "HeartbeatInterval"
    end = rss_kb(live.pid)
    rss = f"daemon RSS {baseline} kB after warm-up, {midway} kB midway, {end} kB at the end"
    print(rss)
    if LONG:  # for fuzz.run's summary: hypothesis reports no statistics for an inner test
        print(f"evsed-fuzz: {sent} passing examples; {rss}", file=sys.__stderr__)
    assert end - baseline < RSS_GROWTH_LIMIT_KB, f"daemon RSS grew by {end - baseline} kB"
    if midway is not None and sent >= LONG_RUN_FRAMES:
        assert end - midway < RSS_SECOND_HALF_KB, f"RSS still grew {end - midway} kB: a leak"


def test_the_daemon_answers_exactly_the_listed_actions(live: LiveDaemon) -> None:
    """Each OCPP 1.6 action with an empty payload: NotSupported exactly for the actions
    neither Core nor a feature profile handles (others fail their schema or succeed),
    so the table level 2 judges by is the daemon's own."""
    supported = set()
    for n, action in enumerate(sorted(KNOWN_16)):
        if action == "Reset":  # an empty Reset is invalid anyway; a valid one restarts
            supported.add(action)
            continue
        replies = [json.loads(r) for r in live.replies_to(dumps([2, f"t{n}", action, {}]))]
        assert len(replies) == 1, (action, replies)
        if not (replies[0][0] == CALLERROR and replies[0][2] == "NotSupported"):
            supported.add(action)
    assert sorted(supported) == sorted(HANDLED_16 + FEATURES_16)
