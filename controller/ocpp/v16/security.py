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

The certificates (controller.certificates) are files under <state>/certs; the
client certificate's key is made on the station for a SignCertificate CSR and
never leaves its 0600 file.

For the other features: `cp.security_event(kind, tech_info)`,
`cp.security_log_lines(since, until)` (GetLog), `cp.sign_certificate_request()`
(ExtendedTriggerMessage) and `cp.certificates.roots("ManufacturerRootCertificate")`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

import websockets

from controller.certificates import (
    CSMS_ROOT,
    CertificateHashData,
    CertificateStore,
    chain_problem,
    client_ssl_context,
    describe,
    fingerprint,
    load_certificates,
    load_private_key,
    renewal_due,
    root_problem,
    signing_request,
)
from controller.core.status import StopReason
from controller.ocpp.rpc import OcppError, Reply
from controller.ocpp.v16.keys import KeySpec, Kind
from controller.security_log import SecurityLog

log = logging.getLogger("evsed.security")  # the security log (see controller.diagnostics)

# The whitepaper's security events (appendix), and which of them are critical.
SECURITY_EVENTS: Final = frozenset(
    {
        "FirmwareUpdated",
        "FailedToAuthenticateAtCentralSystem",
        "CentralSystemFailedToAuthenticate",
        "SettingSystemTime",
        "StartupOfTheDevice",
        "ResetOrReboot",
        "SecurityLogWasCleared",
        "ReconfigurationOfSecurityParameters",
        "MemoryExhaustion",
        "InvalidMessages",
        "AttemptedReplayAttacks",
        "TamperDetectionActivated",
        "InvalidFirmwareSignature",
        "InvalidFirmwareSigningCertificate",
        "InvalidCentralSystemCertificate",
        "InvalidChargePointCertificate",
        "InvalidTLSVersion",
        "InvalidTLSCipherSuite",
    }
)
CRITICAL_EVENTS: Final = frozenset(
    {
        "FirmwareUpdated",
        "SettingSystemTime",
        "StartupOfTheDevice",
        "ResetOrReboot",
        "SecurityLogWasCleared",
        "MemoryExhaustion",
        "TamperDetectionActivated",
    }
)
PROFILES: Final = range(4)
CERTIFICATE_STORE_MAX: Final = 20  # CertificateStoreMaxLength: roots of both uses together
CHAIN_MAX: Final = 10_000  # CertificateSignedMaxChainSize: what the schema allows
FALLBACK_AFTER: Final = 3  # failed connections with a newly raised profile before going back
NOTIFY_ATTEMPTS: Final = 5  # a notification the CSMS keeps refusing is given up (it stays logged)
NOTIFY_RETRY_S: Final = 30.0
RENEW_EVERY_S: Final = 24 * 3600.0  # station-initiated CSRs: at most one a day
WATCH_S: Final = 5.0  # how often the clock and the client certificate are looked at
CLOCK_JUMP_S: Final = 60.0  # a clock correction beyond this is a SettingSystemTime event
ANSWER_WAIT_S: Final = 2.0  # how long a reconnect waits for the answer that caused it
RECORDS: Final = "security"  # store record kind: "raise", "provisioned", "csr_at"

# OpenSSL's reasons, by the event they are.
_TLS_VERSION = ("VERSION", "PROTOCOL")
_TLS_CIPHER = ("CIPHER", "HANDSHAKE_FAILURE")
_REFUSED_CLIENT = (  # alerts: the CSMS did not take our client certificate
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "ACCESS_DENIED",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "CERTIFICATE_UNKNOWN",
)
HOSTNAME_MISMATCH: Final = 62  # X509_V_ERR_HOSTNAME_MISMATCH


def password_acceptable(value: str) -> bool:
    """AuthorizationKey: 16 to 40 printable ASCII characters, used as given (a CSMS that
    sends the whitepaper's 40 hex digits gets those digits as the password)."""
    return 16 <= len(value) <= 40 and all(" " <= ch <= "~" for ch in value)


def _profile_in_range(old: str, new: str) -> str | None:
    return None if int(new) in PROFILES else "must be 0 to 3"


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": "Basic " + token}


def connection_options(
    url: str, station_id: str, profile: int, password: str, certificates: CertificateStore | None
) -> tuple[str, dict[str, Any]]:
    """The URL and websockets `connect` options for a security profile (the daemon's
    link and `evsed selftest` connect alike); ConnectionError when the profile cannot
    be used (nothing to verify the CSMS with, no client certificate)."""
    options: dict[str, Any] = {"additional_headers": {}}
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()  # "WS://" is ws:// too: never a way around TLS
    if profile >= 2 and scheme == "ws":
        scheme = "wss"
    url = scheme + separator + rest
    if profile < 3 and password:
        options["additional_headers"] = basic_auth(station_id, password)
    if scheme == "wss":
        roots = certificates.roots(CSMS_ROOT) if certificates is not None else []
        if profile >= 2 and not roots:
            raise ConnectionError(
                f"security profile {profile}: no CentralSystemRootCertificate installed"
            )
        client = None
        if profile == 3:
            client = certificates.client_files() if certificates is not None else None
            if client is None:
                raise ConnectionError("security profile 3: no ChargePointCertificate")
        options["ssl"] = client_ssl_context(roots, client, system_roots=profile < 2)
    return url, options


def failure_event(error: BaseException) -> tuple[str, str] | None:
    """The security event a failed connection attempt is, with its techInfo, or None
    (an unreachable CSMS is no security event)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _one_failure(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _one_failure(error: BaseException) -> tuple[str, str] | None:
    if isinstance(error, ssl.SSLCertVerificationError):
        info = str(error.verify_message or error)[:255]
        if error.verify_code == HOSTNAME_MISMATCH:
            return "CentralSystemFailedToAuthenticate", info
        return "InvalidCentralSystemCertificate", info
    if isinstance(error, ssl.SSLError):
        reason = str(error.reason or "")
        if any(word in reason for word in _REFUSED_CLIENT):
            return "FailedToAuthenticateAtCentralSystem", f"TLS: {reason}"
        if any(word in reason for word in _TLS_VERSION):
            return "InvalidTLSVersion", f"TLS: {reason}"
        if any(word in reason for word in _TLS_CIPHER):
            return "InvalidTLSCipherSuite", f"TLS: {reason}"
        return None
    if isinstance(error, websockets.exceptions.InvalidStatus):
        status = error.response.status_code
        if status in (401, 403):
            return "FailedToAuthenticateAtCentralSystem", f"HTTP {status}"
    return None


class Security:
    """The security whitepaper's part of a ChargePoint16 (see the module docstring)."""

    PROFILE = None  # not a 1.6 feature profile

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.certificates = CertificateStore(cp.store.path.parent / "certs")
        self.events = SecurityLog(cp.store, cp.station.clock)
        self._queued = asyncio.Event()
        self._lowering = False  # our own fallback may lower the profile
        self._failures = 0  # connection attempts failed in a row
        self._reported: set[str] = set()  # failure events of this streak already recorded
        self._raise: dict[str, int] | None = cp.store.records(RECORDS).get("raise")
        self._notify_attempts: dict[str, int] = {}
        self._clock_offset = 0.0
        specs = cp.keys.specs
        specs["SecurityProfile"] = replace(
            specs["SecurityProfile"], change_check=self._profile_change
        )
        specs["AuthorizationKey"] = replace(
            specs["AuthorizationKey"], change_check=self._authorization_key_change
        )
        cp.link_security = self
        cp.certificates = self.certificates
        cp.security_event = self.security_event
        cp.security_log_lines = self.events.lines
        cp.sign_certificate_request = self.sign_certificate_request
        self._provision()
        ended = cp.station.previous_run_ended
        if ended in (StopReason.HARD_RESET, StopReason.SOFT_RESET):
            self.security_event("ResetOrReboot", ended.value)
        else:
            self.security_event("StartupOfTheDevice", f"previous run ended: {ended.value}")

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
        self.events.record(
            kind[:50], tech_info[:255] if tech_info else None, critical=kind in CRITICAL_EVENTS
        )
        self._queued.set()

    async def while_connected(self) -> None:
        await asyncio.gather(self._notify(), self._watch())

    async def _notify(self) -> None:
        """Send the queued notifications in order, each until the CSMS takes it."""
        while True:
            pending = self.events.pending()
            if not pending:
                self._queued.clear()
                await self._queued.wait()
                continue
            event = pending[0]
            payload: dict[str, Any] = {"type": event.kind, "timestamp": self.events.time_of(event)}
            if event.tech_info:
                payload["techInfo"] = event.tech_info
            try:
                await self.cp._call("SecurityEventNotification", payload)
            except ConnectionError:
                return  # the link is gone; the event waits in the store for the next one
            except (OcppError, TimeoutError) as e:
                attempts = self._notify_attempts.get(event.key, 0) + 1
                self._notify_attempts[event.key] = attempts
                if attempts >= NOTIFY_ATTEMPTS:
                    log.error("giving up SecurityEventNotification %s: %s", event.kind, e)
                    self.events.delivered(event)
                else:
                    log.warning("SecurityEventNotification %s failed: %s", event.kind, e)
                    await asyncio.sleep(NOTIFY_RETRY_S)
                continue
            self._notify_attempts.pop(event.key, None)
            self.events.delivered(event)

    async def _watch(self) -> None:
        """Clock corrections, and renewing the client certificate before it runs out."""
        next_renewal_check = 0.0
        while True:
            clock = self.cp.station.clock
            if clock.known and abs(clock.offset - self._clock_offset) > CLOCK_JUMP_S:
                jump = clock.offset - self._clock_offset
                self._clock_offset = clock.offset
                self.security_event("SettingSystemTime", f"clock corrected by {jump:+.0f} s")
            if time.monotonic() >= next_renewal_check:
                next_renewal_check = time.monotonic() + 3600.0
                await self._renew_if_due()
            await asyncio.sleep(WATCH_S)

    async def _renew_if_due(self) -> None:
        chain = self.certificates.client_chain()
        if not renewal_due(chain, self.cp.station.now()):
            return
        last = self.cp.store.records(RECORDS).get("csr_at")
        if isinstance(last, int | float) and time.time() - last < RENEW_EVERY_S:
            return
        log.info(
            "the ChargePointCertificate ends %s: asking for a new one", chain[0].not_valid_after_utc
        )
        await self.sign_certificate_request()

    # --- connection security (called by ChargePoint16.run) ----------------------------------

    def profile(self) -> int:
        value = self.cp.keys.get_int("SecurityProfile")
        return value if value in PROFILES else 0

    def _password(self) -> str:
        return str(self.cp.keys.get("AuthorizationKey") or self.cp.settings.password)

    def connect_options(self, url: str) -> tuple[str, dict[str, Any]]:
        """The URL and websockets `connect` options of the next connection attempt."""
        return connection_options(
            url, self.cp.settings.station_id, self.profile(), self._password(), self.certificates
        )

    def link_opened(self) -> None:
        self._failures = 0
        self._reported.clear()
        if self._raise is not None:
            log.info("security profile %d confirmed", self._raise["to"])
            self.cp.store.delete_record(RECORDS, "raise")
            self._raise = None

    def link_failed(self, error: BaseException) -> None:
        self._failures += 1
        found = failure_event(error)
        if found is not None and found[0] not in self._reported:
            self._reported.add(found[0])
            self.security_event(*found)
        if self._raise is not None and self._failures >= FALLBACK_AFTER:
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
        self._failures = 0
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
        missing = self._missing_for(wanted)
        if missing is not None:
            log.warning("SecurityProfile %d refused: %s", wanted, missing)
            return missing
        self._raise = {"from": current, "to": wanted}
        self.cp.store.put_record(RECORDS, "raise", self._raise)
        self._failures = 0
        self.security_event(
            "ReconfigurationOfSecurityParameters", f"SecurityProfile {current} -> {wanted}"
        )
        rpc = self.cp.rpc
        if rpc is not None:
            self.cp._later(self._reconnect_after_answer(rpc, rpc.last_sent))
        return None

    def _missing_for(self, profile: int) -> str | None:
        if profile in (1, 2) and not self._password():
            return "no AuthorizationKey for HTTP Basic auth"
        if profile >= 2 and not self.certificates.roots(CSMS_ROOT):
            return "no CentralSystemRootCertificate installed"
        if profile == 3 and not self.certificates.client_chain():
            return "no ChargePointCertificate installed"
        return None

    def _authorization_key_change(self, old: str, new: str) -> str | None:
        """Used from the next connection on; the change itself is a security event."""
        self.security_event("ReconfigurationOfSecurityParameters", "AuthorizationKey changed")
        return None

    async def _reconnect_after_answer(self, rpc: Any, sent: float) -> None:
        """Reconnect once `rpc` sent something after `sent`: the answer to the change."""
        deadline = time.monotonic() + ANSWER_WAIT_S
        while rpc.last_sent == sent and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.cp.rpc is rpc:
            log.info("reconnecting with security profile %d", self.profile())
            self.cp.reconnect()

    # --- certificates ---------------------------------------------------------------------------

    def _provision(self) -> None:
        """Import the PEM files of the configuration, each certificate once: one the CSMS
        later deletes is not brought back by the next start."""
        settings = self.cp.settings
        done = set(self.cp.store.records(RECORDS).get("provisioned", []))
        now = self.cp.station.now()
        imported = set()
        if settings.ca_certificate is not None:
            try:
                roots = load_certificates(settings.ca_certificate.read_bytes())
            except (OSError, ValueError) as e:
                log.error("csms.ca_certificate not used: %s", e)
                roots = []
            for root in roots:
                mark = f"root:{fingerprint(root)}"
                if mark in done:
                    continue
                problem = root_problem(root, now)
                if problem is not None:
                    log.error("csms.ca_certificate %s not used: %s", describe(root), problem)
                    continue
                self.certificates.add_root(CSMS_ROOT, root)
                log.info("installed CentralSystemRootCertificate %s", describe(root))
                imported.add(mark)
        if settings.client_certificate is not None and settings.client_key is not None:
            imported |= self._provision_client(done, now)
        if imported:
            self.cp.store.put_record(RECORDS, "provisioned", sorted(done | imported))

    def _provision_client(self, done: set[str], now: datetime) -> set[str]:
        settings = self.cp.settings
        try:
            chain = load_certificates(settings.client_certificate.read_bytes())
            key = load_private_key(settings.client_key.read_bytes())
        except (OSError, ValueError, TypeError) as e:
            log.error("csms.client_certificate not used: %s", e)
            return set()
        mark = f"client:{fingerprint(chain[0])}"
        if mark in done:
            return set()
        problem = chain_problem(chain, key, self.certificates.roots(CSMS_ROOT), now)
        if problem is not None:
            log.error("csms.client_certificate not used: %s", problem)
            return set()
        self.certificates.install_client(chain, key)
        log.info("installed ChargePointCertificate %s", describe(chain[0]))
        return {mark}

    async def sign_certificate_request(self) -> bool:
        """Make a new key pair and send its CSR (CN = station id, O = CpoName) in a
        SignCertificate.req; True when the CSMS got it (whatever it answered)."""
        key = self.certificates.new_pending_key()
        csr = signing_request(key, self.cp.settings.station_id, self.cp.keys.get("CpoName"))
        self.cp.store.put_record(RECORDS, "csr_at", time.time())
        try:
            answer = await self.cp._call("SignCertificate", {"csr": csr})
        except (OcppError, TimeoutError, ConnectionError) as e:
            log.warning("SignCertificate failed: %s", e, extra={"action": "SignCertificate"})
            return False
        log.info("SignCertificate %s", answer["status"], extra={"action": "SignCertificate"})
        return True

    def _refuse_certificate(self, why: str) -> dict[str, Any]:
        log.warning("CertificateSigned rejected: %s", why, extra={"action": "CertificateSigned"})
        self.security_event("InvalidChargePointCertificate", why)
        return {"status": "Rejected"}

    async def _certificate_signed(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        text = req["certificateChain"]
        if len(text) > self.cp.keys.get_int("CertificateSignedMaxChainSize"):
            return self._refuse_certificate("longer than CertificateSignedMaxChainSize")
        try:
            chain = load_certificates(text)
        except ValueError as e:
            return self._refuse_certificate(str(e))
        key = self.certificates.pending_key()
        problem = chain_problem(
            chain,
            key,
            self.certificates.roots(CSMS_ROOT),
            self.cp.station.now(),
            common_name=self.cp.settings.station_id,
        )
        if problem is not None:
            return self._refuse_certificate(problem)
        assert key is not None
        try:
            self.certificates.install_client(chain, key)
        except OSError as e:
            log.error("cannot store the ChargePointCertificate: %s", e)
            return {"status": "Rejected"}
        self.certificates.drop_pending_key()
        log.info("ChargePointCertificate installed: %s", describe(chain[0]))
        if self.profile() < 3:
            return {"status": "Accepted"}
        # In use: the next connection presents the new certificate.
        return Reply({"status": "Accepted"}, self.cp.reconnect)

    async def _install_certificate(self, req: dict[str, Any]) -> dict[str, Any]:
        use = req["certificateType"]
        try:
            found = load_certificates(req["certificate"])
        except ValueError as e:
            log.warning("InstallCertificate rejected: %s", e)
            return {"status": "Rejected"}
        if len(found) != 1:
            log.warning("InstallCertificate rejected: %d certificates, not one", len(found))
            return {"status": "Rejected"}
        certificate = found[0]
        problem = root_problem(certificate, self.cp.station.now())
        if problem is not None:
            log.warning("InstallCertificate %s rejected: %s", describe(certificate), problem)
            return {"status": "Rejected"}
        if any(r == certificate for r in self.certificates.roots(use)):
            return {"status": "Accepted"}
        if self.certificates.root_count() >= self.cp.keys.get_int("CertificateStoreMaxLength"):
            log.warning("InstallCertificate rejected: CertificateStoreMaxLength reached")
            return {"status": "Rejected"}
        try:
            self.certificates.add_root(use, certificate)
        except OSError as e:
            log.error("InstallCertificate failed: %s", e)
            return {"status": "Failed"}
        log.info("installed %s %s", use, describe(certificate))
        return {"status": "Accepted"}

    async def _delete_certificate(self, req: dict[str, Any]) -> dict[str, Any]:
        data = req["certificateHashData"]
        wanted = CertificateHashData(
            data["hashAlgorithm"],
            data["issuerNameHash"],
            data["issuerKeyHash"],
            data["serialNumber"],
        )
        own = self.certificates.client_hash_data(wanted.hash_algorithm)
        if own is not None and wanted.matches(own):
            log.warning("DeleteCertificate refused: that is the ChargePointCertificate")
            return {"status": "Failed"}
        found = self.certificates.find_root(wanted)
        if found is None:
            return {"status": "NotFound"}
        use, certificate = found
        if use == CSMS_ROOT and self.profile() >= 2 and len(self.certificates.roots(use)) == 1:
            log.warning(
                "DeleteCertificate refused: the last CentralSystemRootCertificate, in use by "
                "security profile %d",
                self.profile(),
            )
            return {"status": "Failed"}
        try:
            self.certificates.remove_root(use, certificate)
        except OSError as e:
            log.error("DeleteCertificate failed: %s", e)
            return {"status": "Failed"}
        log.info("deleted %s root %s", use, describe(certificate))
        return {"status": "Accepted"}

    async def _get_installed_certificate_ids(self, req: dict[str, Any]) -> dict[str, Any]:
        found = self.certificates.root_hash_data(req["certificateType"])
        if not found:
            return {"status": "NotFound"}
        return {
            "status": "Accepted",
            "certificateHashData": [
                {
                    "hashAlgorithm": d.hash_algorithm,
                    "issuerNameHash": d.issuer_name_hash,
                    "issuerKeyHash": d.issuer_key_hash,
                    "serialNumber": d.serial_number,
                }
                for d in found
            ],
        }
