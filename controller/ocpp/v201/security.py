"""OCPP 2.0.1 security for a ChargePoint201: security profiles 1-3 (A00), the client
certificate by the CSMS's request or the station's (A02/A03: SignCertificate,
CertificateSigned), security events (A04: SecurityEventNotification) and certificate
management (M03-M05: GetInstalledCertificateIds, DeleteCertificate, InstallCertificate).

The rules and state are the station's, shared with 1.6 (controller.link_security); this
module translates. Differences from 1.6:

* The security profile of a connection is its network profile's securityProfile
  (controller.ocpp.v201.network), never below SecurityCtrlr.SecurityProfile (the
  neutral SecurityProfile key, which network.py raises once a connection with a higher
  profile succeeded): a station that reached profile 2 does not go back to 1 on a
  fallback slot. Slot 0's profile 0 means "as the URL and password say", as in 1.6.
* SetNetworkProfile (and NetworkConfigurationPriority) naming a profile whose
  prerequisites are missing (a CSMS root for 2 and 3, a client certificate for 3, a
  password for 1 and 2) is Rejected (A05), through the network profiles' hook.
* Event names: the neutral (1.6) names are sent as 2.0.1 spells them (`EVENT_NAMES`).
* After a SignCertificate the CSMS accepted, the station waits CertSigningWaitMinimum
  seconds for the CertificateSigned, then asks again with the same key, doubling the
  wait, at most CertSigningRepeatTimes times (A02.FR.17-19).
* V2GRootCertificate and MORootCertificate are stored and listed (ISO 15118 is not
  implemented, nothing uses them); a CertificateSigned of a V2GCertificate is Rejected.

For the other features: `cp.security_event(kind, tech_info)`, `cp.security_log_lines`,
`cp.sign_certificate_request()` (TriggerMessage SignChargingStationCertificate) and
`cp.certificates`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from controller.link_security import (
    NOT_STORED,
    PROFILES,
    LinkSecurity,
    hash_data_json,
    hash_data_of,
)
from controller.ocpp.rpc import OcppError, Reply
from controller.ocpp.v201.device_model import DataType, Mutability, VariableSpec

log = logging.getLogger("evsed.security")

# The neutral (1.6) event names that 2.0.1 spells otherwise; the rest are the same.
EVENT_NAMES: Final = {
    "FailedToAuthenticateAtCentralSystem": "FailedToAuthenticateAtCsms",
    "CentralSystemFailedToAuthenticate": "CsmsFailedToAuthenticate",
    "InvalidCentralSystemCertificate": "InvalidCsmsCertificate",
    "InvalidChargePointCertificate": "InvalidChargingStationCertificate",
}
# What GetInstalledCertificateIds lists, in this order (V2GCertificateChain: the station
# has none, no ISO 15118).
ROOT_TYPES: Final = (
    "V2GRootCertificate",
    "MORootCertificate",
    "CSMSRootCertificate",
    "ManufacturerRootCertificate",
)
CLIENT = "ChargingStationCertificate"
SECURITY = "SecurityCtrlr"
CERT_SIGNING_WAIT_MINIMUM = "60"  # s
CERT_SIGNING_REPEAT_TIMES = "3"


def event_name(kind: str) -> str:
    """A security event's 2.0.1 name."""
    return EVENT_NAMES.get(kind, kind)


def connection_profile(network_profile: int, active: int) -> int:
    """The security profile a connection uses: its network profile's, but never below the
    station's active SecurityProfile (no downgrade through a fallback slot)."""
    profile = max(network_profile, active)
    return profile if profile in PROFILES else 0


class Security201:
    """Blocks A and M of a ChargePoint201 (see the module docstring); it is also the
    layer's `link_security`."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.core = LinkSecurity.of(cp)
        self.certificates = self.core.certificates
        self._signed = asyncio.Event()  # the certificate asked for arrived
        self._request = 0  # numbers the CSR exchanges: a newer one ends an older one's repeats
        cp.link_security = self
        cp.certificates = self.certificates
        cp.security_event = self.core.security_event
        cp.security_log_lines = self.core.events.lines
        cp.sign_certificate_request = self.sign_certificate_request
        model = cp.device_model
        if model is not None:
            model.add(self._live_variables())
        profiles = cp.network_profiles
        if profiles is not None:
            profiles.prerequisite_problem = self.core.missing_for

    @staticmethod
    def variables(number_of_evses: int) -> list[VariableSpec]:
        """SecurityCtrlr's settings (OrganizationName, SecurityProfile and
        BasicAuthPassword are the device model's own)."""
        ro, integer = Mutability.READ_ONLY, DataType.INTEGER
        return [
            VariableSpec(
                SECURITY,
                "AdditionalRootCertificateCheck",
                DataType.BOOLEAN,
                ro,
                key="AdditionalRootCertificateCheck",
            ),
            VariableSpec(
                SECURITY,
                "MaxCertificateChainSize",
                integer,
                ro,
                key="CertificateSignedMaxChainSize",
            ),
            VariableSpec(
                SECURITY,
                "CertSigningWaitMinimum",
                integer,
                default=CERT_SIGNING_WAIT_MINIMUM,
                unit="s",
                min_limit=1,
            ),
            VariableSpec(
                SECURITY,
                "CertSigningRepeatTimes",
                integer,
                default=CERT_SIGNING_REPEAT_TIMES,
                min_limit=0,
            ),
        ]

    def _live_variables(self) -> list[VariableSpec]:
        """What the station reads itself: its identity, the certificates installed."""
        ro = Mutability.READ_ONLY
        limit = self.cp.keys.get_int("CertificateStoreMaxLength")
        return [
            VariableSpec(
                SECURITY,
                "Identity",
                DataType.STRING,
                ro,
                read=lambda: str(self.cp.settings.station_id),
                max_limit=48,
            ),
            VariableSpec(
                SECURITY,
                "CertificateEntries",
                DataType.INTEGER,
                ro,
                read=lambda: str(self.certificates.root_count()),
                max_limit=limit,
            ),
        ]

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any] | Reply]]]:
        return {
            "CertificateSigned": self._certificate_signed,
            "DeleteCertificate": self._delete_certificate,
            "GetInstalledCertificateIds": self._get_installed_certificate_ids,
            "InstallCertificate": self._install_certificate,
        }

    async def while_connected(self) -> None:
        await asyncio.gather(
            self.core.notify(self.cp._call, event_name),
            self.core.watch(self.sign_certificate_request),
        )

    # --- connection security (called by the connection loop) -------------------------------

    def profile(self) -> int:
        """The security profile of the network profile being (or to be) connected."""
        active = self.cp.keys.get_int("SecurityProfile")
        profiles = self.cp.network_profiles
        chosen = profiles.current().security_profile if profiles is not None else 0
        return connection_profile(chosen, active)

    def connect_options(self, url: str) -> tuple[str, dict[str, Any]]:
        return self.core.connect_options(url, self.profile())

    def link_opened(self) -> None:
        self.core.opened()

    def link_failed(self, error: BaseException) -> None:
        self.core.failed(error)

    # --- A02/A03: the client certificate -------------------------------------------------------

    async def sign_certificate_request(self) -> bool:
        """Send a CSR for a new key pair (CN = station id, O = OrganizationName); True when
        the CSMS got it. If it accepts, the request is repeated until the certificate
        comes (see the module docstring)."""
        self._request += 1
        self._signed.clear()
        status = await self._send_csr(new_key=True)
        if status == "Accepted":
            self.cp._later(self._repeat_until_signed(self._request))
        return status is not None

    async def _send_csr(self, new_key: bool) -> str | None:
        """SignCertificate: the CSMS's status, or None when it could not be asked."""
        csr = self.core.signing_request(self.cp.keys.get("CpoName"), new_key=new_key)
        where = {"action": "SignCertificate"}
        try:
            answer = await self.cp._call("SignCertificate", {"csr": csr, "certificateType": CLIENT})
        except (OcppError, TimeoutError, ConnectionError) as e:
            log.warning("SignCertificate failed: %s", e, extra=where)
            return None
        log.info("SignCertificate %s", answer["status"], extra=where)
        return str(answer["status"])

    async def _repeat_until_signed(self, request: int) -> None:
        model = self.cp.device_model
        if model is None:
            return
        wait = model.int_value(SECURITY, "CertSigningWaitMinimum")
        for attempt in range(model.int_value(SECURITY, "CertSigningRepeatTimes")):
            try:
                async with asyncio.timeout(wait * 2**attempt):
                    await self._signed.wait()
                return
            except TimeoutError:
                pass
            if request != self._request:
                return  # a newer request took over
            log.warning("no CertificateSigned after SignCertificate: asking again")
            if await self._send_csr(new_key=False) != "Accepted":
                return

    async def _certificate_signed(self, req: dict[str, Any]) -> dict[str, Any] | Reply:
        if req.get("certificateType", CLIENT) != CLIENT:
            return _refused("Rejected", "NotSupported", "no ISO 15118: no V2GCertificate")
        limit = self.cp.keys.get_int("CertificateSignedMaxChainSize")
        problem = self.core.install_client_chain(req["certificateChain"], limit)
        if problem == NOT_STORED:
            return _refused("Rejected", "InternalError", problem)
        if problem is not None:
            return _refused("Rejected", "InvalidCertificate", problem)
        self._signed.set()
        if self.profile() < 3:
            return {"status": "Accepted"}
        # In use: the next connection presents the new certificate (A02.FR.09).
        return Reply({"status": "Accepted"}, self.cp.reconnect)

    # --- M: certificate management -----------------------------------------------------------

    async def _install_certificate(self, req: dict[str, Any]) -> dict[str, Any]:
        limit = self.cp.keys.get_int("CertificateStoreMaxLength")
        return {"status": self.core.install_root(req["certificateType"], req["certificate"], limit)}

    async def _delete_certificate(self, req: dict[str, Any]) -> dict[str, Any]:
        wanted = hash_data_of(req["certificateHashData"])
        return {"status": self.core.delete_root(wanted, self.profile())}

    async def _get_installed_certificate_ids(self, req: dict[str, Any]) -> dict[str, Any]:
        wanted = req.get("certificateType") or ROOT_TYPES
        chain = [
            {"certificateType": kind, "certificateHashData": hash_data_json(data)}
            for kind in dict.fromkeys(wanted)
            if kind in ROOT_TYPES
            for data in self.certificates.root_hash_data(kind)
        ]
        if not chain:
            return {"status": "NotFound"}
        return {"status": "Accepted", "certificateHashDataChain": chain}


def _refused(status: str, reason: str, text: str) -> dict[str, Any]:
    return {"status": status, "statusInfo": {"reasonCode": reason, "additionalInfo": text[:512]}}
