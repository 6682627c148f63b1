"""Modules loaded on first use, for heavy libraries most stations never need.

`cryptography` alone adds about 14 MB to the daemon's memory, and only stations
that use TLS client certificates, install certificates or check signed firmware
ever call it: controller/crypto.py binds its modules through `lazy_module`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule(ModuleType):
    """Stands in for a module until an attribute is asked for, then takes on its
    contents. It is never put into sys.modules: real imports are not affected."""

    def __getattr__(self, attribute: str) -> Any:  # only for attributes not yet here
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attribute)


def lazy_module(name: str) -> ModuleType:
    """`name`, imported on its first attribute access."""
    return _LazyModule(name)
