"""Tracker-store throughput: appends/s and loads/s of a typical turn (6 events) per store.

    python benchmarks/stores.py [--seconds 1.5] [--concurrency 16]

Uses PostgreSQL and Redis on loopback when they run (a temporary database, Redis db 15 with
a random key prefix; both cleaned up) and skips them otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model  # noqa: E402

from bot.stores import StoreUnavailable, TrackerStore, create_tracker_store  # noqa: E402

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = {"url": "127.0.0.1", "port": 6379, "db": 15}
HISTORY_TURNS = 10  # a load reads a conversation of this many turns (60 events)


def typical_turn(sender: str, number: int) -> list[dict]:
    at = time.time()
    return [
        {"event": "user", "timestamp": at, "text": f"my lower back has been stiff for {number} days",
         "parse_data": {"intent": {"name": "report_symptom", "confidence": 0.91},
                        "entities": [{"entity": "body_part", "value": "lower back", "start": 3, "end": 13}]},
         "input_channel": "rest", "metadata": {}},
        {"event": "slot", "timestamp": at, "name": "symptom", "value": "stiffness"},
        {"event": "slot", "timestamp": at, "name": "triage_level", "value": "routine"},
        {"event": "action", "timestamp": at, "name": "utter_self_care", "policy": "RulePolicy", "confidence": 1.0},
        {"event": "bot", "timestamp": at, "text": "Gentle movement and heat often help. Please also book a visit "
                                                  "with a healthcare provider.", "data": {}, "metadata": {}},
        {"event": "action", "timestamp": at, "name": "action_listen", "policy": "RulePolicy", "confidence": 1.0},
    ]


async def rate(seconds: float, concurrency: int, op: Callable[[int, int], Awaitable[None]]) -> float:
    """Operations per second with `concurrency` tasks calling op(task, n) for `seconds`."""
    deadline = time.perf_counter() + seconds
    counts = [0] * concurrency

    async def worker(task: int) -> None:
        while time.perf_counter() < deadline:
            await op(task, counts[task])
            counts[task] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(task) for task in range(concurrency)))
    return sum(counts) / (time.perf_counter() - started)


async def measure(store: TrackerStore, seconds: float, concurrency: int) -> dict[str, float]:
    run = uuid.uuid4().hex[:6]

    async def append(task: int, n: int) -> None:
        await store.append(f"bench-{run}-{task}-{n // 20}", typical_turn("x", n))

    history = [f"history-{run}-{i}" for i in range(32)]
    for sender in history:
        for n in range(HISTORY_TURNS):
            await store.append(sender, typical_turn(sender, n))

    async def load(task: int, n: int) -> None:
        events = await store.load(history[(task + n) % len(history)])
        assert len(events) == 6 * HISTORY_TURNS

    return {
        "append_1": await rate(seconds, 1, append),
        "append_n": await rate(seconds, concurrency, append),
        "load_1": await rate(seconds, 1, load),
        "load_n": await rate(seconds, concurrency, load),
    }


async def pg_database(action: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(database="postgres", timeout=5, **PG)
    try:
        if action == "create":
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def redis_cleanup(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=REDIS["url"], port=REDIS["port"], db=REDIS["db"])
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


async def bench_store(kind: str, workdir: Path, seconds: float, concurrency: int) -> dict[str, float] | str:
    name = f"backline_bench_{uuid.uuid4().hex[:8]}"
    config: dict
    if kind == "memory":
        config = {"type": "memory"}
    elif kind == "sqlite":
        config = {"type": "sql", "dialect": "sqlite", "db": str(workdir / "bench.db")}
    elif kind == "postgresql":
        try:
            await pg_database("create", name)
        except OSError as error:
            return f"skipped: PostgreSQL not reachable ({error})"
        config = {"type": "sql", "dialect": "postgresql", "url": PG["host"], "port": PG["port"],
                  "username": PG["user"], "db": name}
    else:
        config = {"type": "redis", **REDIS, "key_prefix": name}
    store = create_tracker_store(config, workdir)
    try:
        await store.ping()
        return await measure(store, seconds, concurrency)
    except StoreUnavailable as error:
        return f"skipped: {error}"
    finally:
        await store.close()
        if kind == "postgresql":
            await pg_database("drop", name)
        elif kind == "redis":
            await redis_cleanup(name)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="duration of each measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent tasks in the parallel columns")
    parser.add_argument("--stores", default="memory,sqlite,postgresql,redis")
    args = parser.parse_args()

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs (nproc), {cpu_model()}; Python {platform.python_version()}; "
          f"load average {load}")
    print(f"turn = 6 events; load = conversation of {HISTORY_TURNS} turns ({6 * HISTORY_TURNS} events); "
          f"{args.seconds:g} s per cell; c = concurrent tasks in one process")
    print()
    header = ["store", "appends/s c=1", f"appends/s c={args.concurrency}", "loads/s c=1",
              f"loads/s c={args.concurrency}"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "--:" for i in range(len(header))) + "|")
    with tempfile.TemporaryDirectory(prefix="backline-bench-") as tmp:
        for kind in args.stores.split(","):
            result = await bench_store(kind, Path(tmp), args.seconds, args.concurrency)
            if isinstance(result, str):
                print(f"| {kind} | {result} | | | |")
                continue
            cells = [f"{result[key]:,.0f}" for key in ("append_1", "append_n", "load_1", "load_n")]
            print(f"| {kind} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
