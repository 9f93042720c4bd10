"""Conversations in Redis: one list of JSON events per conversation.

Keys (with the Rasa-style prefix, `tracker:` by default or `<key_prefix>:tracker:`):
`<prefix><sender_id>` is the event list; `<prefix-base>tracker-activity` is a sorted set of
sender ids scored by their latest event time, which `senders` and `purge` read.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.stores.base import TrackerStore, decode_events, event_timestamp, mask_url, unavailable

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)

# Deletes one conversation if it is still stale: the check and the delete are one step, so
# an append that lands during a purge is never thrown away.
_PURGE_ONE = """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if score and tonumber(score) < tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
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

    async def load(self, sender_id: str) -> list[dict]:
        try:
            raw = await self._redis.lrange(self._key(sender_id), 0, -1)
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        return decode_events(raw, self.display_url)

    async def append(self, sender_id: str, events: list[dict]) -> None:
        encoded = [json.dumps(event) for event in events]
        if not encoded:
            return
        now = time.time()
        latest = max(event_timestamp(event, now) for event in events)
        try:
            # MULTI/EXEC: the events and the activity score are written together or not at all.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(self._key(sender_id), *encoded)
                pipe.zadd(self._activity, {sender_id: latest}, gt=True)
                await pipe.execute()
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error

    async def delete(self, sender_id: str) -> bool:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(sender_id))
                pipe.zrem(self._activity, sender_id)
                deleted, removed = await pipe.execute()
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        return bool(deleted or removed)

    async def exists(self, sender_id: str) -> bool:
        try:
            return bool(await self._redis.exists(self._key(sender_id)))
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error

    async def senders(self) -> list[str]:
        try:
            members = await self._redis.zrange(self._activity, 0, -1)
        except _CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        return [member.decode() if isinstance(member, bytes) else member for member in members]

    async def purge(self, older_than: float) -> int:
        try:
            stale = await self._redis.zrangebyscore(self._activity, "-inf", f"({older_than}")
            purged = 0
            for member in stale:
                sender_id = member.decode() if isinstance(member, bytes) else member
                purged += int(
                    await self._purge_one(keys=[self._key(sender_id), self._activity],
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
