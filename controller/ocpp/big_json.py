"""Parse a big JSON frame in a worker thread without holding the interpreter for long.

`json.loads` parses a whole document in one C call and keeps the GIL for all of it:
a 6 MB SendLocalList held the event loop (and with it the contactor's reaction to
the pilot) for about 0.2 s on a fast PC, far longer on a Pi. Here the outer levels
of the document (the OCPP-J array, the payload, a list in it) are walked in Python
and each element below them is parsed by the C decoder on its own, so the
interpreter can switch threads between elements (every few milliseconds). The
result is the same as `json.loads` gives, and so are the errors (ValueError).
"""

from __future__ import annotations

import json
from json.decoder import scanstring  # type: ignore[attr-defined]  # not in typeshed
from typing import Any

_WHITESPACE = frozenset(" \t\n\r")
_DECODER = json.JSONDecoder()
WALKED_LEVELS = 3  # [2, id, action, {payload: [entries...]}]: entries are parsed in C


def loads_yielding(text: str) -> Any:
    parser = _Parser(text)
    value, end = parser.value(0, 0)
    if parser.skip(end) != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)

    def skip(self, i: int) -> int:
        while i < self.n and self.text[i] in _WHITESPACE:
            i += 1
        return i

    def _expect(self, i: int, what: str) -> json.JSONDecodeError:
        return json.JSONDecodeError(f"Expecting {what}", self.text, i)

    def value(self, i: int, level: int) -> tuple[Any, int]:
        i = self.skip(i)
        if level < WALKED_LEVELS and i < self.n:
            if self.text[i] == "[":
                return self.array(i + 1, level + 1)
            if self.text[i] == "{":
                return self.object(i + 1, level + 1)
        return _DECODER.raw_decode(self.text, i)

    def array(self, i: int, level: int) -> tuple[list[Any], int]:
        items: list[Any] = []
        i = self.skip(i)
        if i < self.n and self.text[i] == "]":
            return items, i + 1
        while True:
            item, i = self.value(i, level)
            items.append(item)
            i = self.skip(i)
            if i < self.n and self.text[i] == ",":
                i += 1
            elif i < self.n and self.text[i] == "]":
                return items, i + 1
            else:
                raise self._expect(i, "',' delimiter")

    def object(self, i: int, level: int) -> tuple[dict[str, Any], int]:
        members: dict[str, Any] = {}
        i = self.skip(i)
        if i < self.n and self.text[i] == "}":
            return members, i + 1
        while True:
            i = self.skip(i)
            if i >= self.n or self.text[i] != '"':
                raise self._expect(i, "property name enclosed in double quotes")
            key, i = scanstring(self.text, i + 1)
            i = self.skip(i)
            if i >= self.n or self.text[i] != ":":
                raise self._expect(i, "':' delimiter")
            members[key], i = self.value(i + 1, level)
            i = self.skip(i)
            if i < self.n and self.text[i] == ",":
                i += 1
            elif i < self.n and self.text[i] == "}":
                return members, i + 1
            else:
                raise self._expect(i, "',' delimiter")
