"""Values that hold values, in PostgreSQL's text formats: arrays (``{1,2,NULL,"a,b"}``,
nested for more dimensions) and hstore maps (``"k"=>"v"``); ``types`` says which
columns get them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

# --- hstore ------------------------------------------------------------------------------

_HSTORE_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|(NULL)\b)\s*(=>|,|$)', re.S | re.I)
_UNESCAPE = re.compile(r"\\(.)", re.S)


def hstore(text: str) -> str:
    """io.debezium.data.Json of an hstore: the map as compact JSON text, keys in order."""
    return (
        "{"
        + ",".join(
            f"{_json_string(k)}:{'null' if v is None else _json_string(v)}"
            for k, v in hstore_map(text).items()
        )
        + "}"
    )


def hstore_map(text: str) -> dict[str, str | None]:
    """An hstore as a map (hstore.handling.mode=map: a JSON object), keys in order."""
    pairs: dict[str, str | None] = {}
    pos, end = 0, len(text)
    key: str | None = None
    while pos < end:
        match = _HSTORE_TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"malformed hstore at offset {pos}: {text!r}")
        quoted, separator = match.group(1), match.group(3)
        value = None if quoted is None else _UNESCAPE.sub(r"\1", quoted)
        if key is None:
            if separator != "=>" or value is None:
                raise ValueError(f"malformed hstore key at offset {pos}: {text!r}")
            key = value
        else:
            if separator == "=>":
                raise ValueError(f"malformed hstore value at offset {pos}: {text!r}")
            pairs[key] = value
            key = None
        pos = match.end()
    if key is not None:
        raise ValueError(f"hstore key without value: {text!r}")
    return pairs


# Jackson's default string escaping: '"', '\\', and control characters (\b \t \n \f \r short,
# the others as \u00XX in upper case); everything else, non-ASCII included, as is.
_JSON_ESCAPES: Final = {c: f"\\u{c:04X}" for c in range(0x20)} | {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}


def _json_string(value: str) -> str:
    return '"' + value.translate(_JSON_ESCAPES) + '"'


# --- arrays ------------------------------------------------------------------------------

# PostgreSQL's array_isspace: ASCII whitespace only.
_ARRAY_TOKEN = re.compile(
    r'[ \t\n\r\v\f]*(?:([{},])|(?:"((?:[^"\\]|\\.)*)"|((?:[^{},"\\]|\\.)+?))'
    r"[ \t\n\r\v\f]*(?=[},]))",
    re.S,
)
_FLAT_ARRAY = re.compile(r'\{[^{}"\\ \t\n\r\v\f]*\}')
_ARRAY_DIMENSIONS = re.compile(r"[ \t\n\r\v\f]*(?:\[[+-]?\d+:[+-]?\d+\])+[ \t\n\r\v\f]*=")

ArrayItems = list[Any]  # nested lists of str | None


def parse_array(text: str) -> ArrayItems:
    """Parse PostgreSQL's array text format (``{1,2,NULL,"a,b"}``) into nested lists.

    Elements stay text (``None`` for NULL); multi-dimensional arrays become nested lists.
    """
    if _FLAT_ARRAY.fullmatch(text):
        # PostgreSQL's array_out quotes anything with special characters or whitespace:
        # a flat array of plain elements is a split away.
        inner = text[1:-1]
        if not inner:
            return []
        items = inner.split(",")
        if "" not in items:
            return [None if len(item) == 4 and item.upper() == "NULL" else item for item in items]
    return _parse_array_general(text)


def _parse_array_general(text: str) -> ArrayItems:
    pos = 0
    decoration = _ARRAY_DIMENSIONS.match(text)
    if decoration is not None:
        pos = decoration.end()
    root: ArrayItems | None = None
    stack: list[ArrayItems] = []
    expect_item = True  # after '{' or ',': an element or '{' (or '}' right after '{')
    just_opened = False
    end = len(text)
    while pos < end:
        match = _ARRAY_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"malformed array at offset {pos}: {text!r}")
        punct, quoted, bare = match.groups()
        pos = match.end()
        if punct == "{":
            if not expect_item or (root is not None and not stack):
                raise ValueError(f"unexpected '{{' at offset {match.start(1)}: {text!r}")
            new: ArrayItems = []
            if stack:
                stack[-1].append(new)
            else:
                root = new
            stack.append(new)
            expect_item, just_opened = True, True
        elif punct == "}":
            if not stack or (expect_item and not just_opened):
                raise ValueError(f"unexpected '}}' at offset {match.start(1)}: {text!r}")
            stack.pop()
            expect_item, just_opened = False, False
        elif punct == ",":
            if expect_item or not stack:
                raise ValueError(f"unexpected ',' at offset {match.start(1)}: {text!r}")
            expect_item, just_opened = True, False
        else:
            if not expect_item or not stack:
                raise ValueError(f"unexpected element at offset {match.start()}: {text!r}")
            if quoted is not None:
                stack[-1].append(_UNESCAPE.sub(r"\1", quoted))
            elif "\\" in bare:
                stack[-1].append(_UNESCAPE.sub(r"\1", bare))
            elif bare.isascii() and bare.upper() == "NULL":
                stack[-1].append(None)
            else:
                stack[-1].append(bare)
            expect_item, just_opened = False, False
    if root is None or stack:
        raise ValueError(f"unterminated array: {text!r}")
    return root


def _map_nested(items: ArrayItems, convert: Callable[[str], Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item is None:
            out.append(None)
        elif type(item) is list:
            out.append(_map_nested(item, convert))
        else:
            out.append(convert(item))
    return out


def array_converter(element: Callable[[str], Any]) -> Callable[[str], Any]:
    """The converter of an array whose elements ``element`` converts (nested lists)."""
    if element is str:  # text-like elements: the parsed array is the value
        return parse_array

    def convert(text: str) -> list[Any]:
        return _map_nested(parse_array(text), element)

    return convert
