"""The shortest whole session: plug, card, charge, card again, unplug."""

from hwsim.csms import CsmsThread
from tests.integration.harness import CARD, start_session


def test_card_session_reaches_csms(make_daemon, csms: CsmsThread) -> None:
    daemon = make_daemon()
    csms.wait_for("BootNotification")
    start = start_session(daemon, csms)
    assert start["idTag"] == CARD and start["connectorId"] == 1
    assert daemon.connector()["contactor_closed"] is True
    daemon.request("card", uid=CARD)
    stop = csms.wait_for("StopTransaction")
    assert stop["reason"] == "Local"
    assert stop["transactionId"] == csms.last_transaction_id
    assert stop["meterStop"] >= start["meterStart"]
    assert daemon.connector()["contactor_closed"] is False
