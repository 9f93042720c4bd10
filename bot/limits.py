"""What one request may carry, the same for every channel (REST, socket.io, /model/parse, CLI).

The limits bound the work per message at the door: a longer message, a deeper JSON object or
an id the stores cannot keep (or the API could never name again to erase it) is refused with
a clear error before anything is parsed, screened or stored.
"""

from __future__ import annotations

import re
from typing import Any

# About 800 words: longer than any chat message; the NLU reads only this much anyway.
MAX_MESSAGE_CHARS = 5000
# PostgreSQL keeps sender ids in VARCHAR(255) (characters).
MAX_SENDER_ID_CHARS = 255
# Metadata and request bodies: deeper JSON than this is refused (it is never useful, and
# thousands of levels make every later read of the stored event fail).
MAX_JSON_DEPTH = 32

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def message_error(text: str) -> str | None:
    """Why `text` cannot be taken as a user message, or None when it can."""
    if len(text) > MAX_MESSAGE_CHARS:
        return (f"the message is {len(text):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}. "
                "Please send a shorter message")
    return None


def sender_id_error(value: Any) -> str | None:
    """Why `value` cannot be a conversation id, or None when it can.

    One rule for every channel, so every stored conversation can be read and erased through
    the API and `bot forget`: 1-255 characters, no control characters, no lone surrogates
    (which no store can encode)."""
    if not isinstance(value, str):
        return "must be a string"
    if not value or len(value) > MAX_SENDER_ID_CHARS or _CONTROL.search(value) or _SURROGATE.search(value):
        return (f"must be 1-{MAX_SENDER_ID_CHARS} characters without control characters "
                "or lone surrogates")
    return None


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `value` (parsed JSON) nests objects/arrays deeper than `limit` (iterative:
    never recurses, so any depth is safe to check)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
