"""Conversation locks: FIFO, independent per conversation, shared across clients, expiring."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.stores import InMemoryLockStore, LockStore, RedisLockStore, create_lock_store
from tests.stores_fixtures import (  # noqa: F401  (fixtures)
    REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    redis_available,
    redis_config,
    redis_prefix,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
def lock_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def lock_config(lock_kind: str, request: pytest.FixtureRequest) -> dict | None:
    if lock_kind == "memory":
        return None
    return redis_config(request.getfixturevalue("redis_prefix"))


@pytest.fixture
async def locks(lock_config: dict | None) -> AsyncIterator[LockStore]:
    store = create_lock_store(lock_config)
    await store.ping()
    yield store
    await store.close()


async def redis_keys(prefix: str) -> list[bytes]:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}:*")]
    finally:
        await client.aclose()


async def queued(locks: LockStore, sender: str, tickets: int) -> None:
    """Wait until `tickets` tickets were drawn for `sender` (arrival at the lock, not at the task)."""
    if not isinstance(locks, RedisLockStore):
        await asyncio.sleep(0)  # the in-memory store draws the ticket before its first await
        return
    deadline = time.monotonic() + 5
    while int(await locks._redis.get(locks.keys(sender)[0]) or 0) < tickets:
        assert time.monotonic() < deadline, "waiter never drew a ticket"
        await asyncio.sleep(0.001)


async def test_waiters_get_the_lock_in_arrival_order(locks: LockStore) -> None:
    order: list[int] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.lock("u1"):
            await release.wait()

    async def waiter(number: int) -> None:
        async with locks.lock("u1"):
            order.append(number)
            await asyncio.sleep(0.001)

    tasks = [asyncio.create_task(holder())]
    await asyncio.sleep(0.05)
    for number in range(20):
        tasks.append(asyncio.create_task(waiter(number)))
        await queued(locks, "u1", number + 2)  # the holder has ticket 1
    await asyncio.sleep(0.05)
    assert order == []
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert order == list(range(20))


async def test_lock_excludes_concurrent_holders(locks: LockStore) -> None:
    inside = 0
    most = 0

    async def critical(number: int) -> None:
        nonlocal inside, most
        async with locks.lock("u1"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.002)
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(critical(n) for n in range(30))), 20)
    assert most == 1


async def test_different_conversations_do_not_block_each_other(locks: LockStore) -> None:
    release = asyncio.Event()
    held = asyncio.Event()

    async def hold_a() -> None:
        async with locks.lock("a"):
            held.set()
            await release.wait()

    task = asyncio.create_task(hold_a())
    await held.wait()
    started = time.monotonic()
    async with locks.lock("b"):
        assert time.monotonic() - started < 0.5
    release.set()
    await task


async def test_expired_holder_is_skipped(locks: LockStore) -> None:
    """A holder that never lets go (a crashed worker) blocks others only until its timeout."""
    crashed = locks.lock("u1", timeout=0.3)
    await crashed.__aenter__()  # and never __aexit__: the worker died holding it
    started = time.monotonic()
    async with locks.lock("u1"):
        waited = time.monotonic() - started
    assert 0.2 <= waited < 3.0
    await crashed.__aexit__(None, None, None)  # a late release must not free someone else's lock
    async with locks.lock("u1", timeout=5):
        pass


async def test_late_release_does_not_free_the_next_holder(locks: LockStore) -> None:
    slow = locks.lock("u1", timeout=0.2)
    await slow.__aenter__()
    entered = asyncio.Event()
    leave = asyncio.Event()

    async def next_holder() -> None:
        async with locks.lock("u1", timeout=10):
            entered.set()
            await leave.wait()

    task = asyncio.create_task(next_holder())
    await asyncio.wait_for(entered.wait(), 5)
    await slow.__aexit__(None, None, None)  # the slow one finally finishes
    third = asyncio.create_task(_enter_and_leave(locks, "u1"))
    await asyncio.sleep(0.2)
    assert not third.done()  # still excluded by next_holder
    leave.set()
    await asyncio.wait_for(asyncio.gather(task, third), 5)


async def _enter_and_leave(locks: LockStore, sender: str) -> None:
    async with locks.lock(sender):
        pass


async def test_cancelled_waiter_does_not_block_the_queue(locks: LockStore) -> None:
    release = asyncio.Event()
    held = asyncio.Event()

    async def holder() -> None:
        async with locks.lock("u1"):
            held.set()
            await release.wait()

    first = asyncio.create_task(holder())
    await held.wait()
    impatient = asyncio.create_task(_enter_and_leave(locks, "u1"))
    await asyncio.sleep(0.05)
    patient = asyncio.create_task(_enter_and_leave(locks, "u1"))
    await asyncio.sleep(0.05)
    for _ in range(50):  # Python 3.11's wait_for (inside redis-py) can swallow one cancel
        impatient.cancel()
        await asyncio.sleep(0.01)
        if impatient.done():
            break
    assert impatient.cancelled()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, patient), 5)


async def test_locks_leave_nothing_behind(locks: LockStore, lock_config: dict | None) -> None:
    async def use(sender: str) -> None:
        async with locks.lock(sender):
            await asyncio.sleep(0.001)

    await asyncio.gather(*(use(f"user-{n % 7}") for n in range(40)))
    if isinstance(locks, InMemoryLockStore):
        assert len(locks) == 0
    else:
        assert lock_config is not None
        assert await redis_keys(lock_config["key_prefix"]) == []


async def test_redis_lock_is_shared_across_separate_clients(redis_prefix: str) -> None:
    stores = [RedisLockStore.from_config(redis_config(redis_prefix)) for _ in range(2)]
    assert stores[0]._redis is not stores[1]._redis
    inside = 0
    most = 0
    order: list[int] = []

    async def critical(number: int) -> None:
        nonlocal inside, most
        async with stores[number % 2].lock("shared"):
            inside += 1
            most = max(most, inside)
            order.append(number)
            await asyncio.sleep(0.003)
            inside -= 1

    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with stores[1].lock("shared"):
            held.set()
            await release.wait()

    first = asyncio.create_task(holder())
    await held.wait()
    tasks = []
    for number in range(10):
        tasks.append(asyncio.create_task(critical(number)))
        await queued(stores[0], "shared", number + 2)
    release.set()
    await asyncio.wait_for(asyncio.gather(first, *tasks), 10)
    assert most == 1
    assert order == list(range(10))
    for store in stores:
        await store.close()


async def test_redis_lock_unreachable_is_store_unavailable() -> None:
    from bot.stores import StoreUnavailable

    store = create_lock_store({"type": "redis", "url": "127.0.0.1", "port": 1, "password": "secret"})
    with pytest.raises(StoreUnavailable) as raised:
        await store.ping()
    assert "secret" not in str(raised.value)
    with pytest.raises(StoreUnavailable):
        async with store.lock("u1"):
            pass
    await store.close()
