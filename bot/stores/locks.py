"""Per-conversation locks: messages of one conversation are handled one at a time, in order.

Both stores are ticket locks: each request draws the next ticket number and waits until the
conversation's "now serving" number reaches it, so waiters go first come first served. A
holder that keeps the lock longer than its `timeout` is presumed dead and skipped. The Redis
lock store (several workers) lives in bot/stores/redis.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot.privacy import sender_ref
from bot.stores.base import LockStore

logger = logging.getLogger(__name__)


@dataclass
class _Line:
    """The queue of one conversation."""

    next_ticket: int = 0
    serving: int = 0
    deadline: float = math.inf  # when the current holder is presumed dead (loop time)
    timeouts: dict[int, float] = field(default_factory=dict)
    abandoned: set[int] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class InMemoryLockStore(LockStore):
    """Locks for one process (asyncio). A conversation's entry is dropped once nobody waits."""

    def __init__(self) -> None:
        self._lines: dict[str, _Line] = {}

    def __len__(self) -> int:
        """Conversations with a holder or waiters right now."""
        return len(self._lines)

    @contextlib.asynccontextmanager
    async def lock(self, sender_id: str, timeout: float = 30.0) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        line = self._lines.setdefault(sender_id, _Line())
        ticket = line.next_ticket
        line.next_ticket += 1
        line.timeouts[ticket] = timeout
        if ticket == line.serving:
            line.deadline = loop.time() + line.timeouts.pop(ticket)
        try:
            while line.serving < ticket:
                changed = line.changed
                remaining = line.deadline - loop.time()
                if remaining <= 0:
                    logger.warning("Lock of conversation %s held past its timeout; skipping the holder.",
                                   sender_ref(sender_id))
                    self._advance(sender_id, line, loop)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), None if math.isinf(remaining) else remaining)
        except BaseException:
            if line.serving == ticket:
                self._advance(sender_id, line, loop)
            elif line.serving < ticket:
                line.abandoned.add(ticket)
                line.timeouts.pop(ticket, None)
            raise
        if line.serving != ticket:  # we were skipped while waiting; cannot happen to a live waiter
            raise RuntimeError(f"lost the lock queue position of conversation {sender_id!r}")
        try:
            yield
        finally:
            if line.serving == ticket:  # otherwise we overstayed and were skipped already
                self._advance(sender_id, line, loop)

    def _advance(self, sender_id: str, line: _Line, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the lock to the next waiting ticket, or forget the conversation if none."""
        line.serving += 1
        while line.serving in line.abandoned:
            line.abandoned.discard(line.serving)
            line.serving += 1
        if line.serving >= line.next_ticket:
            if self._lines.get(sender_id) is line:
                del self._lines[sender_id]
        else:
            line.deadline = loop.time() + line.timeouts.pop(line.serving, math.inf)
        line.changed.set()
        line.changed = asyncio.Event()
