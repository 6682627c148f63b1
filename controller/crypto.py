"""The `cryptography` modules evsed uses, each loaded on first use (controller/lazy.py):
a station that never touches a certificate never pays their 14 MB. Import them from
here, not from `cryptography`; the types stay checked through TYPE_CHECKING."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.lazy import lazy_module

__all__ = ["ec", "exceptions", "hashes", "padding", "rsa", "serialization", "utils", "x509"]

if TYPE_CHECKING:
    from cryptography import exceptions, x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
    from cryptography.x509 import oid as _oid  # noqa: F401  (used as x509.oid)
else:
    exceptions = lazy_module("cryptography.exceptions")
    x509 = lazy_module("cryptography.x509")
    hashes = lazy_module("cryptography.hazmat.primitives.hashes")
    serialization = lazy_module("cryptography.hazmat.primitives.serialization")
    ec = lazy_module("cryptography.hazmat.primitives.asymmetric.ec")
    padding = lazy_module("cryptography.hazmat.primitives.asymmetric.padding")
    rsa = lazy_module("cryptography.hazmat.primitives.asymmetric.rsa")
    utils = lazy_module("cryptography.hazmat.primitives.asymmetric.utils")
