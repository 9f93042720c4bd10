"""Conversations kept in process memory: for tests and throwaway sessions."""

from __future__ import annotations

import json
import time

from bot.stores.base import TrackerStore, decode_events, event_timestamp


class InMemoryTrackerStore(TrackerStore):
    """Events as JSON strings in a dict; gone when the process exits."""

    def __init__(self) -> None:
        self._events: dict[str, list[str]] = {}
        self._latest: dict[str, float] = {}

    async def load(self, sender_id: str) -> list[dict]:
        return decode_events(self._events.get(sender_id, []), "memory://")

    async def append(self, sender_id: str, events: list[dict]) -> None:
        # Serialise everything first: a bad event must leave the conversation untouched,
        # and the copies keep callers from mutating stored events.
        encoded = [json.dumps(event) for event in events]
        if not encoded:
            return
        now = time.time()
        latest = max(event_timestamp(event, now) for event in events)
        self._events.setdefault(sender_id, []).extend(encoded)
        self._latest[sender_id] = max(latest, self._latest.get(sender_id, latest))

    async def delete(self, sender_id: str) -> bool:
        self._latest.pop(sender_id, None)
        return self._events.pop(sender_id, None) is not None

    async def exists(self, sender_id: str) -> bool:
        return sender_id in self._events

    async def senders(self) -> list[str]:
        return list(self._events)

    async def purge(self, older_than: float) -> int:
        stale = [sender for sender, latest in self._latest.items() if latest < older_than]
        for sender in stale:
            await self.delete(sender)
        return len(stale)

    async def ping(self) -> None:
        return None
