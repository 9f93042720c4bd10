"""Conversations kept in process memory: for tests and throwaway sessions."""

from __future__ import annotations

import json
import time

from typing import Any

from bot.stores.base import TrackerStore, Window, decode_checkpoint, decode_events, event_timestamp, stale


class InMemoryTrackerStore(TrackerStore):
    """Events as JSON strings in a dict; gone when the process exits."""

    def __init__(self) -> None:
        self._events: dict[str, list[str]] = {}
        self._latest: dict[str, float] = {}
        self._checkpoints: dict[str, tuple[int, str]] = {}

    async def load(self, sender_id: str) -> list[dict]:
        return decode_events(self._events.get(sender_id, []), "memory://")

    async def load_window(self, sender_id: str) -> Window:
        seq, state = self._checkpoints.get(sender_id, (0, None))
        checkpoint = decode_checkpoint(state, seq, "memory://")
        return Window(decode_events(self._events.get(sender_id, [])[seq:], "memory://"), checkpoint)

    async def load_after(self, sender_id: str, seq: int) -> tuple[list[dict], int]:
        stored = self._events.get(sender_id, [])
        return decode_events(stored[max(0, seq):], "memory://"), len(stored)

    async def append(self, sender_id: str, events: list[dict], *, expected_seq: int | None = None,
                     checkpoint: dict[str, Any] | None = None) -> None:
        # Serialise everything first: a bad event must leave the conversation untouched,
        # and the copies keep callers from mutating stored events.
        encoded = [json.dumps(event) for event in events]
        state = json.dumps(checkpoint["state"]) if checkpoint and expected_seq is not None else None
        if not encoded:
            return
        found = len(self._events.get(sender_id, []))
        if expected_seq is not None and found != expected_seq:
            raise stale("memory://", expected_seq, found)
        now = time.time()
        latest = max(event_timestamp(event, now) for event in events)
        self._events.setdefault(sender_id, []).extend(encoded)
        self._latest[sender_id] = max(latest, self._latest.get(sender_id, latest))
        if state is not None:
            self._checkpoints[sender_id] = (int(checkpoint["seq"]), state)

    async def delete(self, sender_id: str) -> bool:
        self._latest.pop(sender_id, None)
        self._checkpoints.pop(sender_id, None)
        return self._events.pop(sender_id, None) is not None

    async def purge(self, older_than: float) -> int:
        stale = [sender for sender, latest in self._latest.items() if latest < older_than]
        for sender in stale:
            await self.delete(sender)
        return len(stale)

    async def ping(self) -> None:
        return None
