"""Per-conversation locks: messages of one conversation are handled one at a time, in order.

Both stores are ticket locks: each request draws the next ticket number and waits until the
conversation's "now serving" number reaches it, so waiters go first come first served. A
holder that keeps the lock longer than its `timeout` is presumed dead and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.privacy import sender_ref
from bot.stores.base import LockStore, unavailable
from bot.stores.redis import redis_client

logger = logging.getLogger(__name__)

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


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


# KEYS: next (ticket counter), serving (now serving), alive (zset ticket -> deadline ms),
# holder (token of the current holder). Times come from the Redis server clock, so workers
# on different machines agree on expiry.
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_EXPIRE_KEYS = """
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[#ARGV]) end
"""

# ARGV: waiter_ttl_ms, key_ttl_ms
_TAKE_TICKET = _NOW_MS + """
local ticket = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], 1, 'NX')
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), ticket)
""" + _EXPIRE_KEYS + """
return ticket
"""

# ARGV: ticket, waiter_ttl_ms, hold_ttl_ms, token, key_ttl_ms
# Returns 1 (lock taken), 0 (keep waiting) or -1 (this ticket was presumed dead and skipped).
_POLL = _NOW_MS + """
local ticket = tonumber(ARGV[1])
local serving = tonumber(redis.call('GET', KEYS[2]) or '1')
while serving < ticket do
  local deadline = redis.call('ZSCORE', KEYS[3], serving)
  if deadline and tonumber(deadline) > now then break end
  redis.call('ZREM', KEYS[3], serving)
  redis.call('DEL', KEYS[4])
  serving = serving + 1
  redis.call('SET', KEYS[2], serving)
end
local result = 0
if serving > ticket or not redis.call('ZSCORE', KEYS[3], ticket) then
  result = -1
elseif serving == ticket then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ticket)
  redis.call('SET', KEYS[4], ARGV[4])
  result = 1
else
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ticket)
end
""" + _EXPIRE_KEYS + """
return result
"""

# ARGV: ticket, token, key_ttl_ms
_RELEASE = """
local ticket = tonumber(ARGV[1])
if redis.call('GET', KEYS[4]) ~= ARGV[2] then
  redis.call('ZREM', KEYS[3], ticket)
  return 0
end
redis.call('ZREM', KEYS[3], ticket)
redis.call('DEL', KEYS[4])
if tonumber(redis.call('GET', KEYS[1]) or '0') <= ticket then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
else
  redis.call('SET', KEYS[2], ticket + 1)
""" + _EXPIRE_KEYS + """
end
return 1
"""


class RedisLockStore(LockStore):
    """Ticket locks in Redis, shared by every worker that uses the same server and db."""

    poll_min = 0.002
    poll_max = 0.02

    def __init__(self, client: aioredis.Redis, display_url: str, key_prefix: str | None = None,
                 password: str | None = None, waiter_ttl: float = 10.0) -> None:
        self._redis = client
        self.display_url = display_url
        self._password = password
        self._prefix = f"{key_prefix}:lock:" if key_prefix else "lock:"
        # A waiter refreshes its place every poll; one silent for this long is presumed dead.
        self.waiter_ttl = waiter_ttl
        self._take = client.register_script(_TAKE_TICKET)
        self._poll = client.register_script(_POLL)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RedisLockStore":
        client, url = redis_client(config, default_db=1)
        password = config.get("password")
        return cls(client, url, config.get("key_prefix"), None if password is None else str(password))

    def keys(self, sender_id: str) -> list[str]:
        base = f"{self._prefix}{sender_id}"
        return [f"{base}:next", f"{base}:serving", f"{base}:alive", f"{base}:holder"]

    @contextlib.asynccontextmanager
    async def lock(self, sender_id: str, timeout: float = 30.0) -> AsyncIterator[None]:
        keys = self.keys(sender_id)
        waiter_ms = int(min(self.waiter_ttl, timeout) * 1000)
        hold_ms = int(timeout * 1000)
        key_ms = int(max(self.waiter_ttl, timeout) * 1000) + 60_000
        token = uuid.uuid4().hex
        ticket: int | None = None
        try:
            ticket = int(await self._take(keys=keys, args=[waiter_ms, key_ms]))
            delay = self.poll_min
            while True:
                state = int(await self._poll(keys=keys, args=[ticket, waiter_ms, hold_ms, token, key_ms]))
                if state == 1:
                    break
                if state == -1:
                    logger.warning("Lock ticket of conversation %s expired while waiting; queueing again.",
                                   sender_ref(sender_id))
                    ticket = int(await self._take(keys=keys, args=[waiter_ms, key_ms]))
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, self.poll_max)
        except _CONNECTION_ERRORS as error:
            await self._give_up(keys, ticket, token, key_ms)
            raise unavailable(self.display_url, error, self._password) from error
        except BaseException:
            await self._give_up(keys, ticket, token, key_ms)
            raise
        try:
            yield
        finally:
            await self._give_up(keys, ticket, token, key_ms)

    async def _give_up(self, keys: list[str], ticket: int | None, token: str, key_ms: int) -> None:
        """Release the lock or leave the queue; best effort, expiry covers failures."""
        if ticket is None:
            return
        release = asyncio.ensure_future(self._release(keys=keys, args=[ticket, token, key_ms]))
        try:
            released = await asyncio.shield(release)
        except _CONNECTION_ERRORS as error:
            logger.warning("Could not release a conversation lock: %s; it expires by itself.", error)
            return
        if not released:
            logger.debug("Lock ticket %s was no longer the holder.", ticket)

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except Exception as error:
            raise unavailable(self.display_url, error, self._password) from error

    async def close(self) -> None:
        await self._redis.aclose()
