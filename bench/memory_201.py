"""Resident memory of the daemon speaking OCPP 2.0.1 (device model, every 2.0.1
feature), after start and across many whole sessions; as bench/memory.py."""

from __future__ import annotations

from typing import Any

from bench import memory
from bench.common import Row

FULL = {**memory.FULL, "version": "2.0.1"}
QUICK = {**memory.QUICK, "version": "2.0.1"}


def measure(**sizes: Any) -> dict[str, Any]:
    return memory.measure(**sizes)


def rows(figures: dict[str, Any]) -> list[Row]:
    return memory.rows(figures)
