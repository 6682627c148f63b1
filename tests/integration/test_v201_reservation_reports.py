"""ReservationStatusUpdate is not lost: not when the reservation made over 2.0.1 ends
while the CSMS has moved the station to 1.6 (it is reported once 2.0.1 is back), and
not when the CSMS answers it with a CALLERROR that says it had a hiccup (it is sent
again). The unit tests: tests/unit/test_reservation_v201.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, Daemon

BOTH = ("ocpp2.0.1", "ocpp1.6")


@pytest.fixture
def csms() -> Iterator[CsmsThread]:
    with CsmsThread(id_tags={CARD: "Accepted"}, subprotocols=BOTH) as central:
        yield central


def reserve(csms: CsmsThread, reservation_id: int, seconds: float) -> str:
    expiry = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    request = {
        "id": reservation_id,
        "expiryDateTime": expiry.replace("+00:00", "Z"),
        "idToken": {"idToken": CARD, "type": "ISO14443"},
        "evseId": 1,
    }
    return str(csms.call("ReserveNow", request)["status"])


def reconnect(daemon: Daemon, csms: CsmsThread, subprotocols: tuple[str, ...]) -> int:
    """Cut the link, let the CSMS speak `subprotocols`, restore it; the mark before."""
    daemon.request("link_cut")
    csms.wait_disconnected()
    csms.subprotocols = subprotocols
    mark = csms.mark()
    daemon.request("link_restore")
    csms.wait_connected(after=mark)
    return mark


def test_an_ending_while_1_6_serves_the_link_is_reported_once_2_0_1_is_back(
    make_daemon: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = make_daemon(ocpp={"version": ["2.0.1", "1.6"]})
    csms.wait_for("BootNotification")
    assert csms.version_of() == "2.0.1"
    assert reserve(csms, 11, seconds=6) == "Accepted"

    mark = reconnect(daemon, csms, ("ocpp1.6",))
    assert csms.version_of() == "1.6"
    reserved = csms.wait_for_record(
        "StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Reserved", mark
    )
    # It expires while the 1.6 layer serves the link (1.6 has no report for it).
    csms.wait_for(
        "StatusNotification",
        lambda p: p["connectorId"] == 1 and p["status"] == "Available",
        after=reserved.seq,
        timeout=15,
    )

    mark = reconnect(daemon, csms, ("ocpp2.0.1",))
    update = csms.wait_for("ReservationStatusUpdate", after=mark)
    assert update == {"reservationId": 11, "reservationUpdateStatus": "Expired"}


def test_a_csms_hiccup_has_the_report_sent_again(
    make_daemon: Callable[..., Daemon], csms: CsmsThread
) -> None:
    daemon = make_daemon(ocpp={"version": "2.0.1"})
    csms.wait_for("BootNotification")
    csms.fail_next("ReservationStatusUpdate", "InternalError")
    mark = csms.mark()
    assert reserve(csms, 12, seconds=1.5) == "Accepted"
    first = csms.wait_for_record("ReservationStatusUpdate", after=mark)
    assert csms.answer_to(first).message_type == "CALLERROR"  # type: ignore[union-attr]

    mark = reconnect(daemon, csms, ("ocpp2.0.1",))  # sent again at once, not after 30 s
    again = csms.wait_for_record("ReservationStatusUpdate", after=mark)
    assert again.payload == {"reservationId": 12, "reservationUpdateStatus": "Expired"}
    assert csms.answer_to(again).message_type == "CALLRESULT"  # type: ignore[union-attr]
