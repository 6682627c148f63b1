"""The yielding parser of big frames gives exactly what json.loads gives, errors included."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.ocpp.big_json import loads_yielding

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def same(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            loads_yielding(text)
        return
    assert json.dumps(loads_yielding(text)) == json.dumps(expected)  # NaN == NaN too


@settings(max_examples=300, derandomize=True)
@given(json_values, st.sampled_from([None, 1, "\t"]), st.sampled_from([(",", ":"), (" , ", " : ")]))
def test_valid_documents_parse_as_json_loads_does(
    value: Any, indent: int | str | None, separators: tuple[str, str]
) -> None:
    same(json.dumps(value, indent=indent, separators=separators, ensure_ascii=False))


@settings(max_examples=300, derandomize=True)
@given(json_values, st.integers(min_value=0, max_value=200), st.text(max_size=3))
def test_damaged_documents_fail_as_json_loads_does(value: Any, cut: int, junk: str) -> None:
    text = json.dumps([2, "id", "SendLocalList", {"list": value}])
    same(text[:cut] + junk + text[cut:])
    same(text[:cut])


@pytest.mark.parametrize(
    "text",
    ["", " ", "[", "[1,]", '{"a" 1}', '{"a":1,}', "[1 2]", "{1:2}", "[] x", '["\x01"]', "NaN"],
)
def test_edge_cases(text: str) -> None:
    same(text)


def test_other_threads_run_while_a_big_list_is_parsed() -> None:
    """The point of it: the interpreter switches threads between the list's entries."""
    entries = [{"idTag": f"{i:08X}", "idTagInfo": {"status": "Accepted"}} for i in range(200_000)]
    text = json.dumps(
        [2, "1", "SendLocalList", {"listVersion": 1, "localAuthorizationList": entries}]
    )
    ticks: list[float] = []
    done = threading.Event()

    def parse() -> None:
        assert loads_yielding(text)[3]["localAuthorizationList"][-1]["idTag"] == "00030D3F"
        done.set()

    worker = threading.Thread(target=parse)
    worker.start()
    while not done.is_set():
        ticks.append(time.monotonic())
        time.sleep(0.001)
    worker.join()
    assert len(ticks) > 10  # this thread kept running during the parse
