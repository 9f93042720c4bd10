"""Conversations and conversation locks in Redis: one list of JSON events per conversation,
and ticket locks shared by every worker (RedisLockStore).

Keys (with the Rasa-style prefix, `tracker:` by default or `<key_prefix>:tracker:`):
`<prefix><sender_id>` is the event list; `<prefix-base>tracker-activity` is a sorted set of
sender ids scored by their latest event time, which `purge` reads;
`<prefix-base>tracker-checkpoint:<sender_id>` is a hash (`seq`, `state`) of its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from bot.privacy import sender_ref
from bot.stores.base import (
    LockStore,
    TrackerStore,
    Window,
    decode_checkpoint,
    decode_events,
    event_timestamp,
    mask_url,
    stale,
    unavailable,
)

logger = logging.getLogger(__name__)

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)

# Deletes one conversation if it is still stale: the check and the delete are one step, so
# an append that lands during a purge is never thrown away.
_PURGE_ONE = """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if score and tonumber(score) < tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


def redis_client(config: dict[str, Any], default_db: int = 0) -> tuple[aioredis.Redis, str]:
    """A redis.asyncio client for a Rasa-style endpoints.yml section, and its display URL."""
    raw_url = config.get("url") or config.get("host") or "localhost"
    common = {
        "socket_connect_timeout": float(config.get("socket_connect_timeout", 5.0)),
        "socket_timeout": float(config.get("socket_timeout", 10.0)),
        # One retry on a fresh connection covers a connection the server closed while idle.
        # Timeouts are not retried: the server may have run the command, and retrying an
        # append would save the turn twice.
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if "://" in str(raw_url):
        client = aioredis.Redis.from_url(str(raw_url), **common)
        return client, mask_url(str(raw_url))
    password = config.get("password")
    username = config.get("username")
    db = int(config.get("db", default_db) or 0)
    port = int(config.get("port") or 6379)
    use_ssl = bool(config.get("use_ssl", False))
    client = aioredis.Redis(
        host=str(raw_url),
        port=port,
        db=db,
        username=username,
        password=None if password is None else str(password),
        ssl=use_ssl,
        **common,
    )
    scheme = "rediss" if use_ssl else "redis"
    auth = f"{username or ''}:***@" if password else ""
    return client, f"{scheme}://{auth}{raw_url}:{port}/{db}"


class RedisTrackerStore(TrackerStore):
    """Tracker store on a Redis server, shared by any number of workers."""

    def __init__(self, client: aioredis.Redis, display_url: str, key_prefix: str | None = None,
                 password: str | None = None) -> None:
        self._redis = client
        self.display_url = display_url
        self._password = password
        base = f"{key_prefix}:" if key_prefix else ""
        self._prefix = f"{base}tracker:"
        self._activity = f"{base}tracker-activity"
        self._checkpoints = f"{base}tracker-checkpoint:"
        self._purge_one = client.register_script(_PURGE_ONE)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RedisTrackerStore":
        client, url = redis_client(config)
        password = config.get("password") or urlsplit(str(config.get("url") or "")).password
        return cls(client, url, config.get("key_prefix"), None if password is None else str(password))

    def _key(self, sender_id: str) -> str:
        return f"{self._prefix}{sender_id}"

    def _unavailable(self, error: BaseException) -> Exception:
        return unavailable(self.display_url, error, self._password)

    def _checkpoint_key(self, sender_id: str) -> str:
        return f"{self._checkpoints}{sender_id}"

    async def load(self, sender_id: str) -> list[dict]:
        try:
            raw = await self._redis.lrange(self._key(sender_id), 0, -1)
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        return decode_events(raw, self.display_url)

    async def load_window(self, sender_id: str) -> Window:
        try:
            # The checkpoint only ever moves forward and the list only grows, so reading the
            # checkpoint first and then the events after it is consistent without a transaction.
            seq, state = await self._redis.hmget(self._checkpoint_key(sender_id), "seq", "state")
            seq = int(seq or 0)
            raw = await self._redis.lrange(self._key(sender_id), seq, -1)
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        checkpoint = decode_checkpoint(state, seq, self.display_url)
        return Window(decode_events(raw, self.display_url), checkpoint)

    async def load_after(self, sender_id: str, seq: int) -> tuple[list[dict], int]:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lrange(self._key(sender_id), max(0, seq), -1)
                pipe.llen(self._key(sender_id))
                raw, last = await pipe.execute()
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        return decode_events(raw, self.display_url), int(last)

    async def append(self, sender_id: str, events: list[dict], *, expected_seq: int | None = None,
                     checkpoint: dict[str, Any] | None = None) -> None:
        encoded = [json.dumps(event) for event in events]
        kept = ({"seq": int(checkpoint["seq"]), "state": json.dumps(checkpoint["state"])}
                if checkpoint and expected_seq is not None else None)
        if not encoded:
            return
        now = time.time()
        latest = max(event_timestamp(event, now) for event in events)
        key = self._key(sender_id)
        try:
            # MULTI/EXEC: the events, the activity score and the checkpoint are written together
            # or not at all; with expected_seq, WATCH makes EXEC fail if another turn got in.
            async with self._redis.pipeline(transaction=True) as pipe:
                if expected_seq is not None:
                    await pipe.watch(key)
                    found = int(await pipe.llen(key))
                    if found != expected_seq:
                        raise stale(self.display_url, expected_seq, found)
                    pipe.multi()
                pipe.rpush(key, *encoded)
                pipe.zadd(self._activity, {sender_id: latest}, gt=True)
                if kept is not None:
                    pipe.hset(self._checkpoint_key(sender_id), mapping=kept)
                try:
                    await pipe.execute()
                except WatchError:
                    raise stale(self.display_url, expected_seq or 0, -1) from None
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error

    async def delete(self, sender_id: str) -> bool:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(sender_id), self._checkpoint_key(sender_id))
                pipe.zrem(self._activity, sender_id)
                deleted, removed = await pipe.execute()
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        return bool(deleted or removed)

    async def purge(self, older_than: float) -> int:
        try:
            stale = await self._redis.zrangebyscore(self._activity, "-inf", f"({older_than}")
            purged = 0
            for member in stale:
                sender_id = member.decode() if isinstance(member, bytes) else member
                purged += int(
                    await self._purge_one(keys=[self._key(sender_id), self._activity,
                                                self._checkpoint_key(sender_id)],
                                          args=[sender_id, older_than])
                )
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        return purged

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        except Exception as error:  # e.g. AuthenticationError: still "cannot use this store"
            raise self._unavailable(error) from error

    async def close(self) -> None:
        await self._redis.aclose()


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
    release_retry_seconds = 0.25

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
        self._retries: set[asyncio.Task] = set()   # releases waiting for Redis to come back

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
            # A short outage must not leave the conversation locked until the lock expires
            # (its lifetime is the longest possible turn): keep trying in the background.
            logger.warning("Could not release a conversation lock: %s; retrying until Redis is back.", error)
            task = asyncio.ensure_future(self._release_later(keys, ticket, token, key_ms))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
            return
        if not released:
            logger.debug("Lock ticket %s was no longer the holder.", ticket)

    async def _release_later(self, keys: list[str], ticket: int, token: str, key_ms: int) -> None:
        """Retry a failed release every RELEASE_RETRY_SECONDS until it succeeds or the lock has
        expired anyway (bounded by its key lifetime)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + key_ms / 1000
        while loop.time() < deadline:
            await asyncio.sleep(self.release_retry_seconds)
            try:
                await self._release(keys=keys, args=[ticket, token, key_ms])
                return
            except _CONNECTION_ERRORS:
                continue

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except Exception as error:
            raise unavailable(self.display_url, error, self._password) from error

    async def close(self) -> None:
        for task in list(self._retries):
            task.cancel()
        await self._redis.aclose()
