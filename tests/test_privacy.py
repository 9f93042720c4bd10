"""Privacy: what a health chat must not keep or leak.

* Logs carry no message text and no raw sender id by default (a real `bot run`, its whole
  output captured; plus the engine's rarer log lines: lock timeouts, unexpected errors).
* DELETE /conversations/<id> leaves nothing behind in any store: memory, the SQLite file (raw
  tables), PostgreSQL (raw tables), Redis (every key and value under the prefix).
* Retention: `conversation_ttl_days` (endpoints.yml tracker_store) erases old conversations via
  `Agent.purge_expired()` on every store, and `bot run` applies it at start.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.hardening_support import LogCapture, agent_with_stores, closed_port, served
from tests.stores_fixtures import (  # noqa: F401  (fixtures)
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    BotServer,
    make_project,
    pg_admin,
    pg_config,
    pg_database,
    pg_reset,
    project_template,
    redis_available,
    redis_config,
    redis_prefix,
    stored_senders,
)

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0


def marker() -> str:
    return f"zebraquartz{uuid.uuid4().hex[:10]}"


# -- logs ----------------------------------------------------------------------------------------

def test_bot_run_logs_no_message_text_and_no_raw_sender_id(project_template, tmp_path):  # noqa: F811
    """A whole conversation through `bot run` (default log level), including the paths that
    log: a failing action server, bad requests, an oversized body, an unknown conversation."""
    secret_text = marker()
    sender = f"patient-{uuid.uuid4().hex[:12]}"
    project = make_project(project_template, tmp_path, {
        "tracker_store": {"type": "sql", "dialect": "sqlite", "db": str(tmp_path / "p.db")},
        "action_endpoint": {"url": f"http://127.0.0.1:{closed_port()}/webhook", "timeout": 1}})
    server = BotServer(project, tmp_path, "privacy").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for text in (f"hello {secret_text}", f"my lower back hurts {secret_text}",
                         f"what can I do at home {secret_text}", f"I can't control my bladder {secret_text}",
                         f"what do I have? {secret_text}", f"{secret_text} \x00\x1b[2J"):
                assert c.post("/webhooks/rest/webhook", json={"sender": sender, "message": text}).status_code == 200
            c.post("/model/parse", json={"text": f"bak pain {secret_text}"})
            c.post("/webhooks/rest/webhook", content=f'{{"sender": "{sender}", "message": "{secret_text}'.encode(),
                   headers={"content-type": "application/json"})
            c.post("/webhooks/rest/webhook", json={"sender": sender, "message": secret_text * 200_000})
            c.post("/webhooks/rest/webhook", json={"sender": sender, "message": 5, "metadata": secret_text})
            c.get(f"/conversations/{sender}/tracker", params={"include_events": "BAD"})
            c.get(f"/conversations/{sender}-unknown/tracker")
            c.get(f"/widget/state/{sender}")
            assert c.delete(f"/conversations/{sender}").status_code == 200
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "Backline" in log, "the log was captured"
    assert secret_text not in log, "message text in the server log"
    assert sender not in log, "raw sender id in the server log"


def test_debug_is_the_documented_opt_in_for_message_text():
    from bot.cli import build_parser

    assert "message text" in build_parser().format_help()


def test_lock_timeout_warning_does_not_log_the_raw_sender_id():
    from bot.stores import InMemoryLockStore

    sender = f"patient-{uuid.uuid4().hex[:12]}"
    locks = InMemoryLockStore()

    async def main() -> None:
        async def holder() -> None:
            async with locks.lock(sender, timeout=0.05):
                await asyncio.sleep(0.3)

        task = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        async with locks.lock(sender, timeout=0.05):
            pass
        await task

    with LogCapture(logging.INFO) as logs:
        asyncio.run(main())
    assert logs.records, "the stale holder was reported"
    assert sender not in logs.text()


def test_unexpected_error_log_does_not_name_the_conversation(agent):
    from bot.stores import InMemoryTrackerStore

    sender = f"patient-{uuid.uuid4().hex[:12]}"
    store = InMemoryTrackerStore()
    store._events[sender] = ["{corrupt row"]  # noqa: SLF001 - a damaged stored event
    store._latest[sender] = time.time()  # noqa: SLF001
    with LogCapture(logging.INFO) as logs, served(agent_with_stores(agent, store)) as url:
        r = httpx.get(f"{url}/conversations/{sender}/tracker", timeout=30)
    # A damaged conversation is refused as CorruptConversation (503, "try again"), not a crash.
    assert r.status_code == 503 and sender not in r.text and "Traceback" not in r.text
    assert logs.records, "the error was logged"
    assert sender not in logs.text()


# -- DELETE leaves nothing behind -----------------------------------------------------------------

def _say(c: httpx.Client, sender: str, texts: list[str]) -> None:
    for text in texts:
        assert c.post("/webhooks/rest/webhook", json={"sender": sender, "message": text}).status_code == 200


async def _redis_dump(prefix: str) -> dict[str, str]:
    """Every key under `prefix` with its whole value as text."""
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, decode_responses=True)
    dump: dict[str, str] = {}
    try:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            kind = await client.type(key)
            if kind == "list":
                value = await client.lrange(key, 0, -1)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1)
            elif kind == "hash":
                value = await client.hgetall(key)
            elif kind == "set":
                value = await client.smembers(key)
            else:
                value = await client.get(key)
            dump[key] = str(value)
    finally:
        await client.aclose()
    return dump


async def _pg_rows(database: str, needle: str) -> int:
    conn = await pg_admin(database)
    try:
        return (await conn.fetchval("SELECT count(*) FROM conversation_events WHERE sender_id = $1 OR data LIKE $2",
                                    needle, f"%{needle}%")
                + await conn.fetchval("SELECT count(*) FROM conversations WHERE sender_id = $1", needle))
    finally:
        await conn.close()


STORE_KINDS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.services),
               pytest.param("redis", marks=pytest.mark.services)]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_delete_conversation_leaves_nothing_behind(agent, kind, tmp_path, request):
    from bot.stores import InMemoryLockStore, RedisLockStore, create_tracker_store

    secret_text = marker()
    sender, keeper = f"erase-{uuid.uuid4().hex[:10]}", f"keep-{uuid.uuid4().hex[:10]}"
    lock_store = InMemoryLockStore()
    if kind == "memory":
        config = {"type": "memory"}
    elif kind == "sqlite":
        config = {"type": "sql", "dialect": "sqlite", "db": str(tmp_path / "erase.db")}
    elif kind == "postgresql":
        database = request.getfixturevalue("pg_database")
        asyncio.run(pg_reset(database))
        config = pg_config(database)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        config = redis_config(prefix)
        lock_store = RedisLockStore.from_config(redis_config(prefix))
    store = create_tracker_store(config, tmp_path)
    bot = agent_with_stores(agent, store, lock_store)
    with served(bot) as url, httpx.Client(base_url=url, timeout=60) as c:
        _say(c, sender, [f"hello {secret_text}", f"my lower back hurts {secret_text}", "3 days"])
        _say(c, keeper, ["hello"])
        assert c.delete(f"/conversations/{sender}").status_code == 200
        assert c.get(f"/conversations/{sender}/tracker").status_code == 404
        assert c.get(f"/widget/state/{sender}").json()["messages"] == []
        assert c.get(f"/conversations/{keeper}/tracker").status_code == 200, "other conversations stay"
        if kind == "memory":
            assert sender not in store._events and sender not in store._latest  # noqa: SLF001
            assert secret_text not in repr(store._events)  # noqa: SLF001
            assert sender not in lock_store._lines  # noqa: SLF001
    if kind == "sqlite":
        with sqlite3.connect(tmp_path / "erase.db") as db:
            for table in ("conversation_events", "conversations"):
                assert db.execute(f"SELECT count(*) FROM {table} WHERE sender_id = ?", (sender,)).fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM conversation_events WHERE data LIKE ?",
                              (f"%{secret_text}%",)).fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM conversations WHERE sender_id = ?", (keeper,)).fetchone() == (1,)
    elif kind == "postgresql":
        assert asyncio.run(_pg_rows(database, sender)) == 0
        assert asyncio.run(_pg_rows(database, secret_text)) == 0
    elif kind == "redis":
        dump = asyncio.run(_redis_dump(prefix))
        assert dump, "the keeper's conversation is in Redis"
        assert not [k for k in dump if sender in k], "no key (tracker or lock) names the erased conversation"
        assert not [k for k, v in dump.items() if sender in v or secret_text in v], "no value holds it"


def test_delete_leaves_no_message_text_in_the_sqlite_file_bytes(agent, tmp_path):
    from bot.stores import create_tracker_store

    secret_text = marker()
    sender = f"erase-{uuid.uuid4().hex[:10]}"
    store = create_tracker_store({"type": "sql", "dialect": "sqlite", "db": str(tmp_path / "raw.db")}, tmp_path)
    with served(agent_with_stores(agent, store)) as url, httpx.Client(base_url=url, timeout=60) as c:
        _say(c, sender, [f"my lower back hurts {secret_text}"])
        _say(c, "someone-else", ["hello"])
        assert c.delete(f"/conversations/{sender}").status_code == 200
        # while the server runs (the WAL is not checkpointed yet) and after it stopped
        running = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("raw.db")}
    stopped = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("raw.db")}
    assert running and stopped
    for when, files in (("running", running), ("stopped", stopped)):
        for name, data in files.items():
            assert secret_text.encode() not in data, f"{name} ({when}) still holds the erased text"


# -- retention --------------------------------------------------------------------------------------

def _events(stamp: float, text: str) -> list[dict]:
    return [{"event": "action", "name": "action_session_start", "timestamp": stamp},
            {"event": "user", "text": text, "timestamp": stamp, "parse_data": {}},
            {"event": "action", "name": "action_listen", "timestamp": stamp}]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_purge_expired_erases_conversations_past_the_retention(agent, kind, tmp_path, request):
    from bot.agent import Agent
    from bot.stores import create_tracker_store

    if kind == "memory":
        config = {"type": "memory"}
    elif kind == "sqlite":
        config = {"type": "sql", "dialect": "sqlite", "db": str(tmp_path / "ttl.db")}
    elif kind == "postgresql":
        database = request.getfixturevalue("pg_database")
        asyncio.run(pg_reset(database))
        config = pg_config(database)
    else:
        config = redis_config(request.getfixturevalue("redis_prefix"))
    config["conversation_ttl_days"] = 30
    project = copy.copy(agent.project)
    project.endpoints = {**agent.project.endpoints, "tracker_store": config}
    now = time.time()

    async def main() -> tuple[int, list[str], int]:
        store = create_tracker_store(config, tmp_path)
        bot = Agent(project, agent.nlu, agent.processor, store, agent.lock_store, agent.model_path, agent.model_meta)
        try:
            await store.append("old", _events(now - 31 * DAY, "old text"))
            await store.append("edge", _events(now - 29 * DAY, "recent enough"))
            await store.append("new", _events(now, "today"))
            purged = await bot.purge_expired()
            return purged, await stored_senders(kind, store, config, tmp_path / "ttl.db"), len(await store.load("old"))
        finally:
            await store.close()

    purged, left, old_events = asyncio.run(main())
    assert purged == 1 and left == ["edge", "new"] and old_events == 0


def test_bot_run_applies_the_retention_at_start(project_template, tmp_path):  # noqa: F811
    from bot.stores import create_tracker_store

    db = tmp_path / "ttl.db"
    config = {"type": "sql", "dialect": "sqlite", "db": str(db), "conversation_ttl_days": 7}
    now = time.time()

    async def seed() -> None:
        store = create_tracker_store(config, tmp_path)
        try:
            await store.append("stale-patient", _events(now - 8 * DAY, "old"))
            await store.append("fresh-patient", _events(now - 1 * DAY, "new"))
        finally:
            await store.close()

    asyncio.run(seed())
    project = make_project(project_template, tmp_path, {"tracker_store": config})
    server = BotServer(project, tmp_path, "ttl").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.get("/conversations/fresh-patient/tracker").status_code == 200
            assert c.get("/conversations/stale-patient/tracker").status_code == 404
    finally:
        server.stop()
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT count(*) FROM conversation_events WHERE sender_id = 'stale-patient'").fetchone() == (0,)
