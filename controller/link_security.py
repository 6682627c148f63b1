"""Connection security and certificate management for every OCPP version: the security
profiles' connection options, security events and their notification queue, the
station's certificates (controller.certificates) and the checks the CSMS's requests about
them must pass.

The 1.6 security whitepaper and OCPP 2.0.1 (blocks A and M) manage the same things under
their own message and setting names, so each layer only translates (controller.ocpp.v16.
security, controller.ocpp.v201.security) and both work on one `LinkSecurity` per station
(`LinkSecurity.of(cp)`): one queue of events, one certificate store, one start-up event.

Connection security, by security profile:

* 0 — none: as before the whitepaper (Basic auth if a password is set, TLS if the
  URL says wss://, verified against the system's and the installed CSMS roots);
* 1 — HTTP Basic auth (user = station id, password = AuthorizationKey), ws or wss;
* 2 — TLS 1.2+ with the CSMS certificate verified against the installed CSMS roots
  only, and Basic auth;
* 3 — TLS with the station's client certificate, no Basic auth.

A profile-2/3 connection always uses wss:// (a ws:// URL is tried as wss:// on the same
host and port). Which profile a connection uses, and how it is raised, is each
version's rule. A new password (1.6 AuthorizationKey, 2.0.1 BasicAuthPassword) is used
at once: the station reconnects with it once the change is answered.

Security events are logged and queued in the store (controller.security_log) under their
1.6 names, the neutral ones (as the 1.6 keys are the neutral settings); a layer renames
them as its version spells them when it sends them. A failed connection is one event per
failure streak, not one per retry.

The client certificate's key is made on the station for a CSR and never leaves its 0600
file.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
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
from controller.ocpp.rpc import OcppError
from controller.security_log import SecurityLog

log = logging.getLogger("evsed.security")  # the security log (see controller.diagnostics)

# The security events (the whitepaper's appendix; 2.0.1 has the same under other names
# for some), and which of them are critical.
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
CERTIFICATE_STORE_MAX: Final = 20  # roots of every use together
CHAIN_MAX: Final = 10_000  # the longest certificate chain taken: what the schemas allow
NOTIFY_ATTEMPTS: Final = 5  # a notification the CSMS keeps refusing is given up (it stays logged)
NOTIFY_RETRY_S: Final = 30.0
RENEW_EVERY_S: Final = 24 * 3600.0  # station-initiated CSRs: at most one a day
WATCH_S: Final = 5.0  # how often the clock and the client certificate are looked at
CLOCK_JUMP_S: Final = 60.0  # a clock correction beyond this is a SettingSystemTime event
RECORDS: Final = "security"  # store record kind: "raise" (1.6), "provisioned", "csr_at"
ANSWER_WAIT_S: Final = 2.0  # how long a reconnect waits for the answer that caused it
EVENTS_WAIT_S: Final = 10.0  # ... and then for the CSMS to take the events queued by then
NOT_STORED: Final = "cannot be stored"  # a sound client certificate chain, a disk error

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

Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def password_acceptable(value: str) -> bool:
    """AuthorizationKey: 16 to 40 printable ASCII characters, used as given (a CSMS that
    sends the whitepaper's 40 hex digits gets those digits as the password)."""
    return 16 <= len(value) <= 40 and all(" " <= ch <= "~" for ch in value)


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


def hash_data_of(data: Mapping[str, Any]) -> CertificateHashData:
    """The CertificateHashData of an OCPP certificateHashData object (both versions)."""
    return CertificateHashData(
        data["hashAlgorithm"], data["issuerNameHash"], data["issuerKeyHash"], data["serialNumber"]
    )


def hash_data_json(data: CertificateHashData) -> dict[str, str]:
    return {
        "hashAlgorithm": data.hash_algorithm,
        "issuerNameHash": data.issuer_name_hash,
        "issuerKeyHash": data.issuer_key_hash,
        "serialNumber": data.serial_number,
    }


# One per store: every version's layer of a station shares it.
class LinkSecurity:
    """The station's security state and rules, shared by its version layers. `cp` is any
    layer (OcppLink): its settings, station, store and keys are the station's."""

    def __init__(self, cp: Any) -> None:
        self.settings = cp.settings
        self.station = cp.station
        self.store = cp.store
        self.keys = cp.keys
        self.certificates = CertificateStore(cp.store.path.parent / "certs")
        self.events = SecurityLog(cp.store, cp.station.clock)
        self._queued = asyncio.Event()
        self._failures = 0  # connection attempts failed in a row
        self._reported: set[str] = set()  # failure events of this streak already recorded
        self._notify_attempts: dict[str, int] = {}
        self._clock_offset = 0.0
        self._layers: list[Any] = []  # every version's layer: the one connected reconnects
        specs = cp.keys.specs
        if "AuthorizationKey" in specs:  # 2.0.1: SecurityCtrlr.BasicAuthPassword
            specs["AuthorizationKey"] = replace(
                specs["AuthorizationKey"], change_check=self._password_change
            )
        self._provision()
        ended = cp.station.previous_run_ended
        if ended in (StopReason.HARD_RESET, StopReason.SOFT_RESET):
            self.security_event("ResetOrReboot", ended.value)
        else:
            self.security_event("StartupOfTheDevice", f"previous run ended: {ended.value}")

    @staticmethod
    def of(cp: Any) -> LinkSecurity:
        """The station's LinkSecurity (made by the first layer that asks)."""
        found = cp.store.shared("link_security", lambda: LinkSecurity(cp))
        if cp not in found._layers:
            found._layers.append(cp)
        return found

    # --- security events ---------------------------------------------------------------

    def security_event(self, kind: str, tech_info: str | None = None) -> None:
        """Log a security event and queue its notification (both in the store at once)."""
        self.events.record(
            kind[:50], tech_info[:255] if tech_info else None, critical=kind in CRITICAL_EVENTS
        )
        self._queued.set()

    async def notify(self, call: Call, rename: Callable[[str], str] = str) -> None:
        """Send the queued notifications in order with `call`, each until the CSMS takes
        it; `rename` gives an event's name in the layer's version."""
        while True:
            pending = self.events.pending()
            if not pending:
                self._queued.clear()
                await self._queued.wait()
                continue
            event = pending[0]
            payload: dict[str, Any] = {
                "type": rename(event.kind),
                "timestamp": self.events.time_of(event),
            }
            if event.tech_info:
                payload["techInfo"] = event.tech_info
            try:
                await call("SecurityEventNotification", payload)
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

    async def watch(self, sign_request: Callable[[], Awaitable[Any]]) -> None:
        """Clock corrections, and renewing the client certificate (with `sign_request`,
        the layer's CSR sender) before it runs out."""
        next_renewal_check = 0.0
        while True:
            clock = self.station.clock
            if clock.known and abs(clock.offset - self._clock_offset) > CLOCK_JUMP_S:
                jump = clock.offset - self._clock_offset
                self._clock_offset = clock.offset
                self.security_event("SettingSystemTime", f"clock corrected by {jump:+.0f} s")
            if time.monotonic() >= next_renewal_check:
                next_renewal_check = time.monotonic() + 3600.0
                if self.renewal_due():
                    log.info("the client certificate ends soon: asking for a new one")
                    await sign_request()
            await asyncio.sleep(WATCH_S)

    def renewal_due(self) -> bool:
        """The client certificate is close to its end and no CSR went out for a day."""
        if not renewal_due(self.certificates.client_chain(), self.station.now()):
            return False
        last = self.store.records(RECORDS).get("csr_at")
        return not (isinstance(last, int | float) and time.time() - last < RENEW_EVERY_S)

    # --- connections ----------------------------------------------------------------------

    def password(self) -> str:
        return str(self.keys.get("AuthorizationKey") or self.settings.password)

    def _password_change(self, old: str, new: str) -> str | None:
        """A security event, and a new connection with it once the change is answered
        (1.6 TC_073_CS, 2.0.1 A01)."""
        self.security_event(
            "ReconfigurationOfSecurityParameters", "AuthorizationKey (BasicAuthPassword) changed"
        )
        for layer in self._layers:
            self.reconnect_after_answer(layer, "with the new password")
        return None

    def reconnect_after_answer(self, cp: Any, why: str) -> None:
        """Reconnect `cp` (new credentials, new TLS) once it answered the request being
        handled; nothing when it is not connected."""
        rpc = cp.rpc
        if rpc is not None:
            cp._later(self._reconnect_after_answer(cp, rpc, rpc.last_sent, why))

    async def _reconnect_after_answer(self, cp: Any, rpc: Any, sent: float, why: str) -> None:
        """Reconnect once `rpc` sent something after `sent` (the answer to the change) and
        the CSMS took the security events queued by then (the change's own): cut short,
        their notification would be sent again on the next connection."""
        deadline = time.monotonic() + ANSWER_WAIT_S
        while rpc.last_sent == sent and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        deadline = time.monotonic() + EVENTS_WAIT_S
        while cp.rpc is rpc and self.events.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if cp.rpc is rpc:
            log.info("reconnecting %s", why)
            cp.reconnect()

    def connect_options(self, url: str, profile: int) -> tuple[str, dict[str, Any]]:
        """The URL and websockets `connect` options of a connection attempt."""
        return connection_options(
            url, self.settings.station_id, profile, self.password(), self.certificates
        )

    def opened(self) -> None:
        """A connection opened: the failure streak ends."""
        self._failures = 0
        self._reported.clear()

    def failed(self, error: BaseException) -> tuple[str, str] | None:
        """A connection attempt failed: its security event (recorded once per streak)."""
        self._failures += 1
        found = failure_event(error)
        if found is not None and found[0] not in self._reported:
            self._reported.add(found[0])
            self.security_event(*found)
        return found

    @property
    def failures(self) -> int:
        return self._failures

    def reset_failures(self) -> None:
        self._failures = 0

    def missing_for(self, profile: int) -> str | None:
        """What security profile `profile` needs and the station lacks, or None."""
        if profile in (1, 2) and not self.password():
            return "no AuthorizationKey for HTTP Basic auth"
        if profile >= 2 and not self.certificates.roots(CSMS_ROOT):
            return "no CentralSystemRootCertificate installed"
        if profile == 3 and not self.certificates.client_chain():
            return "no ChargePointCertificate installed"
        return None

    # --- the client certificate -----------------------------------------------------------

    def signing_request(self, organization: str, new_key: bool = True) -> str:
        """A PEM CSR (CN = station id, O = `organization`) for a new key pair, or for the
        one already waiting for its certificate (`new_key` False, when there is one)."""
        key = None if new_key else self.certificates.pending_key()
        if key is None:
            key = self.certificates.new_pending_key()
        self.store.put_record(RECORDS, "csr_at", time.time())
        return signing_request(key, self.settings.station_id, organization)

    def install_client_chain(self, text: str, max_size: int) -> str | None:
        """A signed client certificate chain from the CSMS: installed (None), or why not:
        what is wrong with it (logged and a security event), or NOT_STORED (a disk error,
        logged; the pending key stays for the CSMS to try again)."""
        try:
            problem = self._client_chain_problem(text, max_size)
        except OSError as e:
            log.error("cannot store the client certificate: %s", e)
            return NOT_STORED
        if problem is not None:
            log.warning("certificate chain refused: %s", problem)
            self.security_event("InvalidChargePointCertificate", problem)
        return problem

    def _client_chain_problem(self, text: str, max_size: int) -> str | None:
        if len(text) > max_size:
            return f"longer than {max_size} characters"
        try:
            chain = load_certificates(text)
        except ValueError as e:
            return str(e)
        key = self.certificates.pending_key()
        problem = chain_problem(
            chain,
            key,
            self.certificates.roots(CSMS_ROOT),
            self.station.now(),
            common_name=self.settings.station_id,
        )
        if problem is not None:
            return problem
        assert key is not None
        self.certificates.install_client(chain, key)  # OSError: see install_client_chain
        self.certificates.drop_pending_key()
        log.info("client certificate installed: %s", describe(chain[0]))
        return None

    # --- roots ------------------------------------------------------------------------------

    def install_root(self, use: str, pem: str, max_count: int) -> str:
        """InstallCertificate: Accepted, Rejected (not one valid CA certificate, or the
        store is full) or Failed (it cannot be written)."""
        try:
            found = load_certificates(pem)
        except ValueError as e:
            log.warning("InstallCertificate rejected: %s", e)
            return "Rejected"
        if len(found) != 1:
            log.warning("InstallCertificate rejected: %d certificates, not one", len(found))
            return "Rejected"
        certificate = found[0]
        problem = root_problem(certificate, self.station.now())
        if problem is not None:
            log.warning("InstallCertificate %s rejected: %s", describe(certificate), problem)
            return "Rejected"
        if any(r == certificate for r in self.certificates.roots(use)):
            return "Accepted"
        if self.certificates.root_count() >= max_count:
            log.warning("InstallCertificate rejected: the certificate store is full")
            return "Rejected"
        try:
            self.certificates.add_root(use, certificate)
        except OSError as e:
            log.error("InstallCertificate failed: %s", e)
            return "Failed"
        log.info("installed %s %s", use, describe(certificate))
        return "Accepted"

    def delete_root(self, wanted: CertificateHashData, profile: int) -> str:
        """DeleteCertificate: Accepted, NotFound, or Failed for the client certificate and
        for the last CSMS root while security profile `profile` (2 or 3) stands on it."""
        own = self.certificates.client_hash_data(wanted.hash_algorithm)
        if own is not None and wanted.matches(own):
            log.warning("DeleteCertificate refused: that is the station's client certificate")
            return "Failed"
        found = self.certificates.find_root(wanted)
        if found is None:
            return "NotFound"
        use, certificate = found
        if use == CSMS_ROOT and profile >= 2 and len(self.certificates.roots(use)) == 1:
            log.warning(
                "DeleteCertificate refused: the last CSMS root, in use by security profile %d",
                profile,
            )
            return "Failed"
        try:
            self.certificates.remove_root(use, certificate)
        except OSError as e:
            log.error("DeleteCertificate failed: %s", e)
            return "Failed"
        log.info("deleted %s root %s", use, describe(certificate))
        return "Accepted"

    # --- the configuration's certificates -------------------------------------------------------

    def _provision(self) -> None:
        """Import the PEM files of the configuration, each certificate once: one the CSMS
        later deletes is not brought back by the next start."""
        settings = self.settings
        done = set(self.store.records(RECORDS).get("provisioned", []))
        now = self.station.now()
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
            self.store.put_record(RECORDS, "provisioned", sorted(done | imported))

    def _provision_client(self, done: set[str], now: datetime) -> set[str]:
        settings = self.settings
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
