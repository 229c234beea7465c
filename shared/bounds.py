"""Bounds on what a client sends before it reaches the JSON parser, pydantic or BSON.

BSON integers are 64-bit: a larger Python int raises ``OverflowError`` deep in
pymongo. ``json.loads`` recurses once per nesting level: 30,000 ``[`` raise
``RecursionError``. Both become a 400 with a code here, before they get that far.
"""

from __future__ import annotations

import json
import re

from shared.contracts.errors import ErrorCode
from shared.errors import BadInput

INT64_MAX = 2**63 - 1
#: an event or a form is a flat object: a few levels leave room for any honest client
MAX_JSON_DEPTH = 16
MAX_JSON_CHARS = 64 * 1024

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"?', re.S)
_ID = re.compile(r"\s*\+?[0-9]{1,19}\s*")


def parse_id(value: object, name: str, hint: str = "") -> int:
    """A stored integer id (followup_id, alert_id): 0 to 2^63-1, else ``BadInput`` (``bad_field``)."""
    text = str(value)
    number = int(text) if _ID.fullmatch(text) else -1
    if not 0 <= number <= INT64_MAX:
        raise BadInput(f"{name} is an integer id from 0 to 2^63-1{hint}", code=ErrorCode.BAD_FIELD)
    return number


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text`` (strings skipped), without recursion."""
    depth = deepest = 0
    for char in _STRINGS.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads_json(text: str, *, max_depth: int = MAX_JSON_DEPTH, max_chars: int = MAX_JSON_CHARS):
    """``json.loads`` with the size and the nesting bounded first; ``BadInput`` (``bad_json``) otherwise."""
    if len(text) > max_chars:
        raise BadInput(f"the JSON body is longer than {max_chars // 1024} kB", code=ErrorCode.TOO_LARGE)
    if json_depth(text) > max_depth:
        raise BadInput(f"the JSON body is nested deeper than {max_depth} levels", code=ErrorCode.BAD_JSON)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadInput("the body is not valid JSON", code=ErrorCode.BAD_JSON) from exc
