"""Where conversations live (tracker stores) and how workers take turns on them (lock stores).

Both are chosen by endpoints.yml, with Rasa 3.x keys::

    tracker_store:            # default: SQLite file .bot/conversations.db
      type: sql               # sql | redis | memory
      dialect: postgresql     # sqlite (default) | postgresql
      url: 127.0.0.1          # host, or a full postgresql://user:pass@host/db URL
      port: 5432
      username: backline
      password: secret
      db: backline
      synchronous: full       # SQLite only: full (default, survives an OS crash) | normal
    lock_store:               # default: in process memory (one worker)
      type: redis
      url: 127.0.0.1
      port: 6379
      db: 1

The factories only build the store; call `await store.ping()` at start-up to fail early with
StoreUnavailable when the server cannot be reached. The PostgreSQL and Redis stores (and
their client libraries) are imported only when configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.stores.base import LockStore, StaleTurn, StoreUnavailable, TrackerStore, mask_url
from bot.stores.locks import InMemoryLockStore
from bot.stores.memory import InMemoryTrackerStore
from bot.stores.sqlite import SQLiteTrackerStore, sqlite_path

__all__ = [
    "InMemoryLockStore",
    "InMemoryTrackerStore",
    "LockStore",
    "RedisLockStore",
    "RedisTrackerStore",
    "SQLTrackerStore",
    "SQLiteTrackerStore",
    "StaleTurn",
    "StoreUnavailable",
    "TrackerStore",
    "create_lock_store",
    "create_tracker_store",
    "mask_url",
]

DEFAULT_TRACKER_STORE: dict[str, Any] = {"type": "sql", "dialect": "sqlite", "db": ".bot/conversations.db"}

_MEMORY_TYPES = ("memory", "in_memory", "inmemory")


def _store_type(config: dict[str, Any], section: str, accepted: tuple[str, ...]) -> str:
    store_type = str(config.get("type") or "").strip().lower()
    if store_type not in accepted:
        raise ValueError(
            f"endpoints.yml: {section} type {config.get('type')!r} is not supported; "
            f"use one of: {', '.join(accepted)}"
        )
    return store_type


def create_tracker_store(config: dict | None, project_root: Path) -> TrackerStore:
    """The tracker store for endpoints.yml's `tracker_store` section (None: the SQLite default)."""
    config = dict(config or DEFAULT_TRACKER_STORE)
    config.setdefault("type", "sql")
    store_type = _store_type(config, "tracker_store", ("sql", "redis", "memory", "in_memory"))
    if store_type == "sql":
        path = sqlite_path(config, Path(project_root))
        if path is not None:
            return SQLiteTrackerStore(path, synchronous=str(config.get("synchronous") or "full"))
        from bot.stores.sql import SQLTrackerStore, sql_url

        return SQLTrackerStore(sql_url(config, Path(project_root)))
    if store_type == "redis":
        from bot.stores.redis import RedisTrackerStore

        return RedisTrackerStore.from_config(config)
    return InMemoryTrackerStore()


def create_lock_store(config: dict | None) -> LockStore:
    """The lock store for endpoints.yml's `lock_store` section (None: in process memory)."""
    if not config:
        return InMemoryLockStore()
    config = dict(config)
    store_type = _store_type(config, "lock_store", ("redis", "memory", "in_memory"))
    if store_type == "redis":
        from bot.stores.redis import RedisLockStore

        return RedisLockStore.from_config(config)
    return InMemoryLockStore()


def __getattr__(name: str) -> Any:
    """`from bot.stores import RedisLockStore` etc. still work, importing on first use."""
    lazy = {"RedisLockStore": "bot.stores.redis", "RedisTrackerStore": "bot.stores.redis",
            "SQLTrackerStore": "bot.stores.sql"}
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'bot.stores' has no attribute {name!r}")
