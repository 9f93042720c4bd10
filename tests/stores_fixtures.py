"""Real PostgreSQL and Redis servers on loopback for the store tests, each test isolated.

PostgreSQL: one temporary database `backline_test_<random>` per test run, dropped at the end.
Redis: db 15 with a random key prefix per test, whose keys are deleted afterwards.
Without a server the tests skip; with CI=true set they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

PG_HOST = os.environ.get("BACKLINE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BACKLINE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("BACKLINE_TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("BACKLINE_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BACKLINE_TEST_REDIS_PORT", "6379"))
REDIS_DB = 15

STORE_KINDS = ["memory", "sqlite", "postgresql", "redis"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing_service(message: str) -> None:
    """Skip, or fail in CI, where the services must be there."""
    if in_ci():
        pytest.fail(f"{message} (CI is set, so the server must be running: see .ci/services.sh)")
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


async def pg_admin(database: str = "postgres") -> Any:
    import asyncpg

    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run; dropped afterwards."""
    if not port_open(PG_HOST, PG_PORT):
        missing_service(f"PostgreSQL is not running on {PG_HOST}:{PG_PORT}")
    name = f"backline_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await pg_admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await pg_admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except OSError as error:
        missing_service(f"PostgreSQL on {PG_HOST}:{PG_PORT} refused the connection: {error}")
    yield name
    asyncio.run(drop())


async def pg_reset(database: str) -> None:
    conn = await pg_admin(database)
    try:
        await conn.execute("DROP TABLE IF EXISTS conversation_events, conversations")
    finally:
        await conn.close()


def pg_config(database: str) -> dict[str, Any]:
    return {"type": "sql", "dialect": "postgresql", "url": PG_HOST, "port": PG_PORT,
            "username": PG_USER, "db": database}


@pytest.fixture(scope="session")
def redis_available() -> None:
    if not port_open(REDIS_HOST, REDIS_PORT):
        missing_service(f"Redis is not running on {REDIS_HOST}:{REDIS_PORT}")


async def redis_cleanup(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def redis_prefix(redis_available: None) -> Iterator[str]:
    """A key prefix no other test uses; its keys are removed afterwards."""
    prefix = f"backline_test_{uuid.uuid4().hex[:12]}"
    yield prefix
    asyncio.run(redis_cleanup(prefix))


def redis_config(prefix: str, kind: str = "redis") -> dict[str, Any]:
    return {"type": kind, "url": REDIS_HOST, "port": REDIS_PORT, "db": REDIS_DB, "key_prefix": prefix}


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_config(store_kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """endpoints.yml `tracker_store` section for the parametrized store kind, isolated."""
    if store_kind == "memory":
        return {"type": "memory"}
    if store_kind == "sqlite":
        return {"type": "sql", "dialect": "sqlite", "db": "store/conversations.db"}
    if store_kind == "postgresql":
        database = request.getfixturevalue("pg_database")
        asyncio.run(pg_reset(database))
        return pg_config(database)
    return redis_config(request.getfixturevalue("redis_prefix"))
