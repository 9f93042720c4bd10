"""What may appear in logs: never message text, never a raw conversation id (only a short hash)."""

from __future__ import annotations

import hashlib


def sender_ref(sender_id: str) -> str:
    """A stable, non-reversible reference to a conversation for logs (`conv:1a2b3c4d5e6f`)."""
    return "conv:" + hashlib.sha256(str(sender_id).encode("utf-8", "surrogatepass")).hexdigest()[:12]
