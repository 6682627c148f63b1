"""OCPP 1.6 security whitepaper (edition 3): security profiles, their keys, security
events and certificate management, for a ChargePoint16.

Connection security, by the SecurityProfile key:

* 0 — none: as before the whitepaper (Basic auth if a password is set, TLS if the
  URL says wss://, verified against the system's and the installed CSMS roots);
* 1 — HTTP Basic auth (user = station id, password = AuthorizationKey), ws or wss;
* 2 — TLS 1.2+ with the CSMS certificate verified against the installed
  CentralSystemRootCertificates only, and Basic auth;
* 3 — TLS with the ChargePointCertificate as client certificate, no Basic auth.

A profile-2/3 connection always uses wss:// (a ws:// URL is tried as wss:// on the
same host and port). SecurityProfile may only be raised, and only when what the
new profile needs is there; the station then reconnects with it, and after
`FALLBACK_AFTER` failed attempts goes back to the previous profile. What a raise
would fall back to is in the store before the change is answered, so a power cut
in between changes nothing.

Security events are logged and queued in the store (controller.security_log) and
notified with SecurityEventNotification while the station is online, oldest
first. A failed connection is one event per failure streak, not one per retry.
What is not 1.6's own (the profiles' connection options, the events, the certificate
checks) is controller.link_security, which the 2.0.1 layer shares.

The certificates (controller.certificates) are files under <state>/certs; the
client certificate's key is made on the station for a SignCertificate CSR and
never leaves its 0600 file.

For the other features: `cp.security_event(kind, tech_info)`,
`cp.security_log_lines(since, until)` (GetLog), `cp.sign_certificate_request()`
(ExtendedTriggerMessage) and `cp.certificates.roots("ManufacturerRootCertificate")`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final

from controller.link_security import (  # the neutral part; names kept importable from here
    CERTIFICATE_STORE_MAX,
    CHAIN_MAX,
    CRITICAL_EVENTS,
    PROFILES,
    RECORDS,
    SECURITY_EVENTS,
    LinkSecurity,
    basic_auth,
    connection_options,
    failure_event,
    hash_data_json,
    hash_data_of,
    password_acceptable,
)
from controller.ocpp.rpc import OcppError, Reply
from controller.ocpp.v16.keys import KeySpec, Kind

__all__ = [
    "CRITICAL_EVENTS",
    "SECURITY_EVENTS",
    "Security",
    "basic_auth",
    "connection_options",
    "failure_event",
    "password_acceptable",
]

log = logging.getLogger("evsed.security")  # the security log (see controller.diagnostics)

FALLBACK_AFTER: Final = 3  # failed connections with a newly raised profile before going back


def _profile_in_range(old: str, new: str) -> str | None:
    return None if int(new) in PROFILES else "must be 0 to 3"


class Security:
    """The security whitepaper's part of a ChargePoint16 (see the module docstring)."""

    PROFILE = None  # not a 1.6 feature profile

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.core = LinkSecurity.of(cp)
        self.certificates = self.core.certificates
        self.events = self.core.events
        self._lowering = False  # our own fallback may lower the profile
        self._raise: dict[str, int] | None = cp.store.records(RECORDS).get("raise")
        specs = cp.keys.specs
        specs["SecurityProfile"] = replace(
            specs["SecurityProfile"], change_check=self._profile_change
        )
        cp.link_security = self
        cp.certificates = self.certificates
        cp.security_event = self.security_event
        cp.security_log_lines = self.events.lines
        cp.sign_certificate_request = self.sign_certificate_request

    @staticmethod
    def keys(number_of_connectors: int) -> dict[str, KeySpec]:
        specs = (
            KeySpec("SecurityProfile", Kind.INT, "0", change_check=_profile_in_range),
            KeySpec(
                "AuthorizationKey",
                Kind.STRING,
                "",
                write_only=True,
                item_check=password_acceptable,
            ),
            KeySpec("CpoName", Kind.STRING, "", item_check=lambda v: len(v) <= 64),
            KeySpec(
                "CertificateStoreMaxLength", Kind.INT, str(CERTIFICATE_STORE_MAX), readonly=True
            ),
            # Only "false" is offered: the CSMS replaces roots with Install/DeleteCertificate.
            KeySpec("AdditionalRootCertificateCheck", Kind.BOOL, "false", readonly=True),
            KeySpec("CertificateSignedMaxChainSize", Kind.INT, str(CHAIN_MAX), readonly=True),
        )
        return {spec.name: spec for spec in specs}

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any] | Reply]]]:
        return {
            "CertificateSigned": self._certificate_signed,
            "DeleteCertificate": self._delete_certificate,
            "GetInstalledCertificateIds": self._get_installed_certificate_ids,
            "InstallCertificate": self._install_certificate,
        }

    # --- security events ---------------------------------------------------------------

    def security_event(self, kind: str, tech_info: str | None = None) -> None:
        """Log a security event and queue its notification (both in the store at once)."""
        self.core.security_event(kind, tech_info)

    async def while_connected(self) -> None:
        await asyncio.gather(
            self.core.notify(self.cp._call), self.core.watch(self.sign_certificate_request)
        )

    # --- connection security (called by ChargePoint16.run) ----------------------------------

    def profile(self) -> int:
        value = self.cp.keys.get_int("SecurityProfile")
        return value if value in PROFILES else 0

    def connect_options(self, url: str) -> tuple[str, dict[str, Any]]:
        """The URL and websockets `connect` options of the next connection attempt."""
        return self.core.connect_options(url, self.profile())

    def link_opened(self) -> None:
        self.core.opened()
        if self._raise is not None:
            log.info("security profile %d confirmed", self._raise["to"])
            self.cp.store.delete_record(RECORDS, "raise")
            self._raise = None

    def link_failed(self, error: BaseException) -> None:
        found = self.core.failed(error)
        if self._raise is not None and self.core.failures >= FALLBACK_AFTER:
            self._fall_back(found[1] if found else str(error) or type(error).__name__)

    def _fall_back(self, why: str) -> None:
        assert self._raise is not None
        previous, failed = self._raise["from"], self._raise["to"]
        log.error("security profile %d does not connect (%s): back to %d", failed, why, previous)
        self._lowering = True
        try:
            self.cp.keys.change("SecurityProfile", str(previous))
        finally:
            self._lowering = False
        self.cp.store.delete_record(RECORDS, "raise")
        self._raise = None
        self.core.reset_failures()
        self.security_event(
            "ReconfigurationOfSecurityParameters",
            f"SecurityProfile {failed} failed to connect ({why}); back to {previous}",
        )

    # --- key changes --------------------------------------------------------------------------

    def _profile_change(self, old: str, new: str) -> str | None:
        """SecurityProfile: only up, and only to a profile whose prerequisites are there.
        An accepted raise is recorded (with its way back) before it is answered, and the
        station reconnects with it once the answer is out."""
        if self._lowering:
            return None
        current, wanted = int(old), int(new)
        if wanted not in PROFILES:
            return "must be 0 to 3"
        if wanted < current:
            log.warning("SecurityProfile %d -> %d refused: it may only be raised", current, wanted)
            return "may only be raised"
        if wanted == current:
            return None
        missing = self.core.missing_for(wanted)
        if missing is not None:
            log.warning("SecurityProfile %d refused: %s", wanted, missing)
            return missing
        self._raise = {"from": current, "to": wanted}
        self.cp.store.put_record(RECORDS, "raise", self._raise)
        self.core.reset_failures()
        self.security_event(
            "ReconfigurationOfSecurityParameters", f"SecurityProfile {current} -> {wanted}"
        )
        self.core.reconnect_after_answer(self.cp, f"with security profile {wanted}")
        return None

    # --- certificates ---------------------------------------------------------------------------

    async def sign_certificate_request(self) -> bool:
        """Make a new key pair and send its CSR (CN = station id, O = CpoName) in a
        SignCertificate.req; True when the CSMS got it (whatever it answered)."""
        csr = self.core.signing_request(self.cp.keys.get("CpoName"))
        try:
            answer = await self.cp._call("SignCertificate", {"csr": csr})
        except (OcppError, TimeoutError, ConnectionError) as e:
            log.warning("SignCertificate failed: %s", e, extra={"action": "SignCertificate"})
            return False
        log.info("SignCertificate %s", answer["status"], extra={"action": "SignCertificate"})
        return True

    async def _certificate_signed(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        limit = self.cp.keys.get_int("CertificateSignedMaxChainSize")
        if self.core.install_client_chain(req["certificateChain"], limit) is not None:
            return {"status": "Rejected"}
        if self.profile() < 3:
            return {"status": "Accepted"}
        # In use: the next connection presents the new certificate.
        return Reply({"status": "Accepted"}, self.cp.reconnect)

    async def _install_certificate(self, req: dict[str, Any]) -> dict[str, Any]:
        limit = self.cp.keys.get_int("CertificateStoreMaxLength")
        return {"status": self.core.install_root(req["certificateType"], req["certificate"], limit)}

    async def _delete_certificate(self, req: dict[str, Any]) -> dict[str, Any]:
        wanted = hash_data_of(req["certificateHashData"])
        return {"status": self.core.delete_root(wanted, self.profile())}

    async def _get_installed_certificate_ids(self, req: dict[str, Any]) -> dict[str, Any]:
        found = self.certificates.root_hash_data(req["certificateType"])
        if not found:
            return {"status": "NotFound"}
        return {"status": "Accepted", "certificateHashData": [hash_data_json(d) for d in found]}
