"""SendLocalList Full over OCPP 2.0.1 (every entry with a token type to keep): time
to apply, the loop meanwhile, card lookups afterwards; as bench/local_list.py."""

from __future__ import annotations

from typing import Any

from bench import local_list
from bench.common import Row

FULL = {**local_list.FULL, "version": "2.0.1"}
QUICK = {**local_list.QUICK, "version": "2.0.1"}


def measure(**sizes: Any) -> dict[str, Any]:
    return local_list.measure(**{"version": "2.0.1", **sizes})


def rows(figures: dict[str, Any]) -> list[Row]:
    return local_list.rows(figures)
