"""JSON from users, with a limit on how deeply it nests.

Python's ``json`` parser recurses once per level: a body nested some thousands deep raises
``RecursionError`` (a 500), and one just under that limit still reaches code that walks it
recursively (validation, ``json.dumps`` into the database). Nothing the platform stores nests more
than a few levels (answers, meta, message lists), so anything past ``MAX_JSON_DEPTH`` is refused as
"nested too deeply": 400 from the API, a line error from an import, a field error from a form.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 64


class NestedTooDeeply(ValueError):
    """JSON nested beyond ``MAX_JSON_DEPTH`` levels."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)")


def loads(text: str | bytes) -> Any:
    """``json.loads``, raising ``NestedTooDeeply`` for JSON nested beyond the limit (and
    ``json.JSONDecodeError`` as usual for JSON that is not valid)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise NestedTooDeeply() from None
    # Each level opens with a bracket, so text with few of them cannot nest too deeply: most
    # documents skip the walk, which is a large share of parsing a file of small rows.
    openers = text.count("[") + text.count("{") if isinstance(text, str) else None
    if (openers is None or openers > MAX_JSON_DEPTH) and nesting_depth(value) > MAX_JSON_DEPTH:
        raise NestedTooDeeply()
    return value


def nesting_depth(value: Any) -> int:
    """Levels of lists and objects in ``value`` (0 for a scalar), counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        if depth + 1 > MAX_JSON_DEPTH:
            return depth + 1  # deep enough to refuse: no need to walk the rest
        stack.extend((child, depth + 1) for child in item)
    return deepest


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering 400 "nested too deeply" instead of a 500."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(str(NestedTooDeeply())) from None
        if nesting_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(str(NestedTooDeeply()))
        return data
