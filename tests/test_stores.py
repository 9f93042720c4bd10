"""One tracker-store suite, run against memory, SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.stores import (
    InMemoryLockStore,
    InMemoryTrackerStore,
    RedisTrackerStore,
    SQLTrackerStore,
    SQLiteTrackerStore,
    StoreUnavailable,
    TrackerStore,
    create_lock_store,
    create_tracker_store,
)
from bot.stores.base import mask_url
from tests.stores_fixtures import (  # noqa: F401  (fixtures)
    REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    pg_admin,
    pg_database,
    redis_available,
    redis_prefix,
    store_config,
    store_kind,
    stored_senders,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(store_config: dict, tmp_path: Path) -> AsyncIterator[TrackerStore]:
    tracker_store = create_tracker_store(store_config, tmp_path)
    await tracker_store.ping()
    yield tracker_store
    await tracker_store.close()


@pytest.fixture
def held(store: TrackerStore, store_kind: str, store_config: dict, tmp_path: Path):
    """held() -> the ids of the conversations the backend holds, read around the store."""
    return lambda: stored_senders(store_kind, store, store_config, tmp_path / "store" / "conversations.db")


def turn(text: str, at: float | None = None) -> list[dict]:
    """The events of a typical turn: user message, slot, action, bot reply, listen."""
    at = time.time() if at is None else at
    return [
        {"event": "user", "timestamp": at, "text": text,
         "parse_data": {"intent": {"name": "report_symptom", "confidence": 0.93}, "entities": []},
         "metadata": {}},
        {"event": "slot", "timestamp": at + 0.001, "name": "symptom", "value": "stiffness"},
        {"event": "action", "timestamp": at + 0.002, "name": "utter_ask_duration", "policy": "RulePolicy",
         "confidence": 1.0},
        {"event": "bot", "timestamp": at + 0.003, "text": "How long has it been like this?",
         "data": {"buttons": []}, "metadata": {"utter_action": "utter_ask_duration"}},
        {"event": "action", "timestamp": at + 0.004, "name": "action_listen"},
        {"event": "slot", "timestamp": at + 0.005, "name": "triage_level", "value": "routine"},
    ]


async def raw_traces(kind: str, store: TrackerStore, config: dict, tmp_path: Path, sender: str) -> list[str]:
    """Everything the backend itself still holds about `sender`, read around the store."""
    if kind == "memory":
        assert isinstance(store, InMemoryTrackerStore)
        return [f"memory:{name}" for name in ("_events", "_latest") if sender in getattr(store, name)]
    if kind == "sqlite":
        with sqlite3.connect(tmp_path / "store" / "conversations.db") as conn:
            found = []
            for table in ("conversations", "conversation_events"):
                (count,) = conn.execute(f"SELECT count(*) FROM {table} WHERE sender_id = ?", (sender,)).fetchone()
                found += [f"{table}: {count} rows"] if count else []
            return found
    if kind == "postgresql":
        conn = await pg_admin(config["db"])
        try:
            found = []
            for table in ("conversations", "conversation_events"):
                count = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE sender_id = $1", sender)
                found += [f"{table}: {count} rows"] if count else []
            return found
        finally:
            await conn.close()
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, decode_responses=True)
    try:
        prefix = config["key_prefix"]
        found = [key async for key in client.scan_iter(match=f"{prefix}:*{sender}*")]
        activity = f"{prefix}:tracker-activity"
        if await client.zscore(activity, sender) is not None:
            found.append(f"{activity} member")
        return found
    finally:
        await client.aclose()


# -- load / append / order -------------------------------------------------------------------


async def test_unknown_conversation_is_empty(store: TrackerStore, held) -> None:
    assert await store.load("nobody") == []
    assert (await store.load_window("nobody")).events == []
    assert await held() == []


async def test_append_and_load_keep_order(store: TrackerStore) -> None:
    first, second = turn("my lower back is stiff", 1000.0), turn("für zwei Wochen ✓", 1001.0)
    await store.append("u1", first)
    await store.append("u1", [])
    await store.append("u1", second)
    assert await store.load("u1") == first + second


async def test_loaded_events_are_copies(store: TrackerStore) -> None:
    events = turn("hello")
    await store.append("u1", events)
    events[0]["text"] = "changed after saving"
    loaded = await store.load("u1")
    loaded[0]["text"] = "changed after loading"
    assert (await store.load("u1"))[0]["text"] == "hello"


async def test_each_conversation_is_kept_under_its_sender_id(store: TrackerStore, held) -> None:
    for sender in ("a", "b", "c/with:odd chars"):
        await store.append(sender, turn(sender))
    assert await held() == ["a", "b", "c/with:odd chars"]
    assert [(await store.load(s))[0]["text"] for s in ("a", "b", "c/with:odd chars")] == ["a", "b", "c/with:odd chars"]


# -- atomicity ---------------------------------------------------------------------------------


async def test_failed_append_saves_none_of_its_events(store: TrackerStore, held) -> None:
    await store.append("u1", turn("before"))
    broken = turn("after")
    broken[3]["data"] = {"not json": object()}  # fails half-way through the turn
    with pytest.raises(TypeError):
        await store.append("u1", broken)
    with pytest.raises(TypeError):
        await store.append("fresh", broken)
    assert await store.load("u1") == turn("before", (await store.load("u1"))[0]["timestamp"])
    assert await store.load("fresh") == []
    assert await held() == ["u1"]


# -- delete / purge ----------------------------------------------------------------------------


async def test_delete_leaves_nothing_behind(
    store: TrackerStore, store_kind: str, store_config: dict, tmp_path: Path, held
) -> None:
    await store.append("gone", turn("please forget me"))
    await store.append("gone", turn("twice"))
    await store.append("kept", turn("keep me"))
    assert await raw_traces(store_kind, store, store_config, tmp_path, "gone")

    assert await store.delete("gone") is True
    assert await store.delete("gone") is False
    assert await store.delete("never-existed") is False
    assert await store.load("gone") == []
    assert await held() == ["kept"]
    assert await raw_traces(store_kind, store, store_config, tmp_path, "gone") == []
    assert len(await store.load("kept")) == 6


async def test_purge_deletes_conversations_whose_latest_event_is_old(
    store: TrackerStore, store_kind: str, store_config: dict, tmp_path: Path, held
) -> None:
    now = time.time()
    day = 86400.0
    await store.append("old", turn("a month ago", now - 30 * day))
    await store.append("recent", turn("an hour ago", now - 3600))
    await store.append("revived", turn("a month ago", now - 30 * day))
    await store.append("revived", turn("back again today", now - 60))
    await store.append("also-old", turn("two weeks ago", now - 14 * day))

    assert await store.purge(now - 7 * day) == 2
    assert await held() == ["recent", "revived"]
    assert len(await store.load("revived")) == 12
    for sender in ("old", "also-old"):
        assert await raw_traces(store_kind, store, store_config, tmp_path, sender) == []
    assert await store.purge(now - 7 * day) == 0
    assert await store.purge(now + 1) == 2
    assert await held() == []


# -- concurrency -------------------------------------------------------------------------------


def tagged_turn(sender: str, number: int) -> list[dict]:
    events = turn(f"{sender} message {number}")
    for position, event in enumerate(events):
        event["metadata"] = {"turn": number, "position": position}
    return events


async def test_concurrent_appends_never_interleave_or_lose_events(store: TrackerStore) -> None:
    senders = [f"user-{index}" for index in range(10)]
    jobs = [store.append(sender, tagged_turn(sender, number)) for number in range(5) for sender in senders]
    await asyncio.gather(*jobs)  # 50 appends at once
    for sender in senders:
        events = await store.load(sender)
        assert len(events) == 30
        turns = [events[start : start + 6] for start in range(0, 30, 6)]
        for chunk in turns:  # each append is contiguous and in its own order
            assert [event["metadata"]["position"] for event in chunk] == list(range(6))
            assert len({event["metadata"]["turn"] for event in chunk}) == 1
        assert sorted(chunk[0]["metadata"]["turn"] for chunk in turns) == list(range(5))


async def test_appends_under_the_conversation_lock_keep_arrival_order(store: TrackerStore) -> None:
    locks = InMemoryLockStore()

    async def handle(sender: str, number: int) -> None:
        async with locks.lock(sender):
            await store.append(sender, tagged_turn(sender, number))

    senders = [f"user-{index}" for index in range(10)]
    await asyncio.gather(*(handle(sender, number) for number in range(5) for sender in senders))
    for sender in senders:
        events = await store.load(sender)
        assert [event["metadata"]["turn"] for event in events[::6]] == list(range(5))
    assert len(locks) == 0


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql", "redis"])
async def test_two_workers_on_one_database(store_config: dict, tmp_path: Path) -> None:
    """Separate store instances (as in two worker processes) create the schema at the same
    time and append to the same conversations without losing or splitting a turn."""
    workers = [create_tracker_store(store_config, tmp_path) for _ in range(2)]
    try:
        senders = [f"user-{index}" for index in range(4)]
        await asyncio.gather(*(
            workers[number % 2].append(sender, tagged_turn(sender, number))
            for number in range(6) for sender in senders
        ))
        for sender in senders:
            events = await workers[0].load(sender)
            assert events == await workers[1].load(sender)
            turns = [events[start : start + 6] for start in range(0, len(events), 6)]
            assert sorted(chunk[0]["metadata"]["turn"] for chunk in turns) == list(range(6))
            assert all(len({event["metadata"]["turn"] for event in chunk}) == 1 for chunk in turns)
    finally:
        for worker in workers:
            await worker.close()


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"type": "sql", "dialect": "postgresql", "url": "127.0.0.1", "port": 1, "username": "backline",
         "password": "secret", "db": "backline"},
        {"type": "sql", "url": "postgresql://backline:secret@127.0.0.1:1/backline"},
        {"type": "redis", "url": "127.0.0.1", "port": 1, "password": "secret"},
        {"type": "redis", "url": "redis://:secret@127.0.0.1:1/0"},
    ],
    ids=["postgresql-keys", "postgresql-url", "redis-keys", "redis-url"],
)
async def test_unreachable_store_names_its_url_with_password_masked(config: dict, tmp_path: Path) -> None:
    tracker_store = create_tracker_store(config, tmp_path)
    try:
        for attempt in (tracker_store.ping(), tracker_store.load("u1"), tracker_store.append("u1", turn("hi"))):
            with pytest.raises(StoreUnavailable) as raised:
                await attempt
            message = str(raised.value)
            assert "secret" not in message
            assert "127.0.0.1:1" in message
            assert "***" in message
    finally:
        await tracker_store.close()


async def test_unusable_sqlite_path_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    tracker_store = create_tracker_store({"type": "sql", "db": "a-file/conversations.db"}, tmp_path)
    with pytest.raises(StoreUnavailable, match="a-file"):
        await tracker_store.ping()
    with pytest.raises(StoreUnavailable):
        await tracker_store.append("u1", turn("hi"))
    await tracker_store.close()


async def pg_terminate_others(database: str) -> int:
    conn = await pg_admin()
    try:
        return len(await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", database))
    finally:
        await conn.close()


async def redis_kill_clients(store: RedisTrackerStore) -> int:
    """CLIENT KILL the store's own connections (found by a name we give them)."""
    import redis.asyncio as aioredis

    name = f"victim-{id(store)}"
    await store._redis.client_setname(name)
    admin = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        ids = [client["id"] for client in await admin.client_list() if client.get("name") == name]
        for client_id in ids:
            await admin.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        await admin.aclose()


@pytest.mark.parametrize("store_kind", ["postgresql", "redis"])
async def test_connection_dropped_between_turns(store: TrackerStore, store_kind: str, store_config: dict) -> None:
    """The server closes our connection while idle: next turn retries or fails cleanly."""
    await store.append("u1", turn("first"))
    if store_kind == "postgresql":
        assert await pg_terminate_others(store_config["db"]) >= 1
    else:
        assert isinstance(store, RedisTrackerStore)
        assert await redis_kill_clients(store) >= 1
    saved = 1
    try:
        await store.append("u1", turn("second"))
        saved += 1
    except StoreUnavailable as error:  # acceptable: the engine asks the user to try again
        assert "is unavailable" in str(error)
    await store.append("u1", turn("third"))
    saved += 1
    events = await store.load("u1")
    assert len(events) == 6 * saved
    assert [event["text"] for event in events if event["event"] == "user"][-1] == "third"


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
async def test_failure_inside_append_transaction_saves_nothing(
    store: TrackerStore, store_kind: str, store_config: dict, tmp_path: Path
) -> None:
    """The write dies after the conversation row was bumped, before the events went in.

    PostgreSQL: the backend is terminated for real; SQLite: SQLite itself refuses the event
    insert (an authorizer on the store's own connection), inside the same transaction.
    """
    await store.append("u1", turn("before"))
    if store_kind == "postgresql":
        from sqlalchemy import event as sa_event

        assert isinstance(store, SQLTrackerStore)

        def fail_events_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "INSERT INTO conversation_events" in statement:
                conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

        sa_event.listen(store._engine.sync_engine, "before_cursor_execute", fail_events_insert)
        try:
            with pytest.raises(StoreUnavailable, match="postgresql:"):
                await store.append("u1", turn("lost"))
        finally:
            sa_event.remove(store._engine.sync_engine, "before_cursor_execute", fail_events_insert)
    else:
        assert isinstance(store, SQLiteTrackerStore)

        def deny_event_inserts(action: int, table: Any, *rest: Any) -> int:
            return sqlite3.SQLITE_DENY if (action == sqlite3.SQLITE_INSERT and table == "conversation_events") \
                else sqlite3.SQLITE_OK

        await store._run(lambda c: c.set_authorizer(deny_event_inserts))
        try:
            with pytest.raises(StoreUnavailable, match="sqlite:"):
                await store.append("u1", turn("lost"))
        finally:
            await store._run(lambda c: c.set_authorizer(None))

    await store.append("u1", turn("after"))
    texts = [event["text"] for event in await store.load("u1") if event["event"] == "user"]
    assert texts == ["before", "after"]
    if store_kind == "postgresql":
        conn = await pg_admin(store_config["db"])
        last_seq = await conn.fetchval("SELECT last_seq FROM conversations WHERE sender_id = 'u1'")
        seqs = [row["seq"] for row in await conn.fetch(
            "SELECT seq FROM conversation_events WHERE sender_id = 'u1' ORDER BY seq")]
        await conn.close()
    else:
        with sqlite3.connect(tmp_path / "store" / "conversations.db") as conn:
            (last_seq,) = conn.execute("SELECT last_seq FROM conversations WHERE sender_id = 'u1'").fetchone()
            seqs = [seq for (seq,) in conn.execute(
                "SELECT seq FROM conversation_events WHERE sender_id = 'u1' ORDER BY seq")]
    assert last_seq == 12
    assert seqs == list(range(1, 13))


@pytest.mark.parametrize("store_kind", ["redis"])
async def test_redis_transaction_cut_before_exec_saves_nothing(store: TrackerStore) -> None:
    """Redis: a MULTI whose connection closes before EXEC is discarded by the server."""
    import redis.asyncio as aioredis

    assert isinstance(store, RedisTrackerStore)
    await store.append("u1", turn("before"))
    # Send MULTI + RPUSH on a raw connection, then drop it without EXEC, as a dying worker would.
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, single_connection_client=True)
    await client.execute_command("MULTI")
    await client.execute_command("RPUSH", store._key("u1"), '{"event": "user", "text": "half"}')
    await client.aclose()
    await asyncio.sleep(0.05)
    texts = [event["text"] for event in await store.load("u1") if event["event"] == "user"]
    assert texts == ["before"]


# -- configuration -----------------------------------------------------------------------------


def test_unknown_type_names_endpoints_yml_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"endpoints\.yml.*mongod.*sql, redis, memory"):
        create_tracker_store({"type": "mongod"}, tmp_path)
    with pytest.raises(ValueError, match=r"endpoints\.yml.*lock_store.*redis"):
        create_lock_store({"type": "zookeeper"})
    with pytest.raises(ValueError, match="dialect"):
        create_tracker_store({"type": "sql", "dialect": "oracle"}, tmp_path)


async def test_default_is_sqlite_in_project_with_wal(tmp_path: Path) -> None:
    tracker_store = create_tracker_store(None, tmp_path)
    assert isinstance(tracker_store, SQLiteTrackerStore)
    await tracker_store.append("u1", turn("hi"))
    await tracker_store.close()
    path = tmp_path / ".bot" / "conversations.db"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_factories_pick_the_configured_stores(tmp_path: Path) -> None:
    assert isinstance(create_tracker_store({"type": "memory"}, tmp_path), InMemoryTrackerStore)
    assert isinstance(create_tracker_store({"type": "in_memory"}, tmp_path), InMemoryTrackerStore)
    assert isinstance(create_tracker_store({"type": "redis", "url": "127.0.0.1"}, tmp_path), RedisTrackerStore)
    pg = create_tracker_store({"type": "sql", "url": "postgres://u:pw@db.example:5433/bot?ssl=require"}, tmp_path)
    assert isinstance(pg, SQLTrackerStore)
    assert pg.display_url == "postgresql://u:***@db.example:5433/bot?ssl=require"
    rasa_style = create_tracker_store({"type": "sql", "dialect": "postgresql", "url": "db.example",
                                       "username": "u", "password": "pw", "db": "bot",
                                       "query": {"sslmode": "require"}}, tmp_path)
    assert isinstance(rasa_style, SQLTrackerStore)
    assert rasa_style.display_url == "postgresql://u:***@db.example/bot?ssl=require"
    assert isinstance(create_lock_store(None), InMemoryLockStore)
    assert type(create_lock_store({"type": "redis", "url": "127.0.0.1"})).__name__ == "RedisLockStore"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user:p%40ss@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("redis://:secret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# -- the tables: one definition (bot/stores/tables.py), databases of earlier releases load -----

# Written by Backline main at 1dbe86e (`bot.agent.Agent` with the SQLite store, two real
# conversations: "patient-a" ran the whole symptom form, 112 events, checkpoint after event 96;
# "patient-b" asked a question, 12 events). Never regenerate it with newer code.
MAIN_FILE = Path(__file__).parent / "fixtures" / "conversations-main-1dbe86e.db"
# The tables as the first SQLite release made them (bot/stores/sqlite.py before 76cecaf).
FIRST_RELEASE_SCHEMA = """
CREATE TABLE conversations (
    sender_id VARCHAR(255) NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    latest_timestamp FLOAT NOT NULL
);
CREATE INDEX ix_conversations_latest_timestamp ON conversations (latest_timestamp);
CREATE TABLE conversation_events (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    sender_id VARCHAR(255) NOT NULL,
    seq INTEGER NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT NOT NULL,
    data TEXT NOT NULL,
    CONSTRAINT uq_conversation_events_sender_seq UNIQUE (sender_id, seq)
);
"""


def sqlite_layout(path: Path) -> dict[str, Any]:
    """Columns (name, type, not null, default, primary key), indexes (unique, columns) and
    AUTOINCREMENT of every table, read with sqlite3 itself."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        layout: dict[str, Any] = {}
        for table in tables:
            columns = [row[1:] for row in conn.execute(f"PRAGMA table_info({table})")]
            indexes = sorted((bool(unique), tuple(col for (_, _, col) in conn.execute(f"PRAGMA index_info('{name}')")))
                             for (_, name, unique, *_) in conn.execute(f"PRAGMA index_list({table})"))
            (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
            layout[table] = {"columns": columns, "indexes": indexes, "autoincrement": "AUTOINCREMENT" in sql}
        return layout


async def test_a_new_sqlite_file_has_the_tables_of_the_file_main_wrote(tmp_path: Path) -> None:
    tracker_store = create_tracker_store({"type": "sql", "db": "new.db"}, tmp_path)
    await tracker_store.ping()
    await tracker_store.close()
    layout = sqlite_layout(tmp_path / "new.db")
    assert set(layout) == {"conversations", "conversation_events"}
    shutil.copy(MAIN_FILE, tmp_path / "main.db")   # opening a WAL file writes next to it
    assert layout == sqlite_layout(tmp_path / "main.db")


async def test_an_sqlite_file_written_by_main_still_loads_and_goes_on(tmp_path: Path) -> None:
    from bot.dialogue.tracker import Tracker
    from bot.project import load_project

    path = tmp_path / "conversations.db"
    shutil.copy(MAIN_FILE, path)
    with contextlib.closing(sqlite3.connect(path)) as conn:   # what main stored, read around the store
        stored = {sender: [json.loads(data) for (data,) in conn.execute(
            "SELECT data FROM conversation_events WHERE sender_id = ? ORDER BY seq", (sender,))]
            for sender in ("patient-a", "patient-b")}
        ((checkpoint_seq,),) = conn.execute("SELECT checkpoint_seq FROM conversations WHERE sender_id = 'patient-a'")
    assert len(stored["patient-a"]) == 112 and checkpoint_seq == 96 and len(stored["patient-b"]) == 12

    tracker_store = create_tracker_store({"type": "sql", "db": str(path)}, tmp_path)
    try:
        assert await tracker_store.load("patient-a") == stored["patient-a"]
        window = await tracker_store.load_window("patient-a")
        assert window.checkpoint is not None and window.checkpoint["seq"] == checkpoint_seq
        assert window.events == stored["patient-a"][checkpoint_seq:]
        # the engine resumes from main's checkpoint in the state a replay of every event gives
        domain = load_project(Path(__file__).resolve().parent.parent).domain
        resumed = Tracker("patient-a", domain, window.events, checkpoint=window.checkpoint)
        replayed = Tracker("patient-a", domain, stored["patient-a"])
        assert resumed.slots == replayed.slots and resumed.slots["triage_level"]
        assert resumed.seq == replayed.seq == 112
        later = turn("thanks", at=time.time())
        await tracker_store.append("patient-a", later, expected_seq=112)
        assert await tracker_store.load("patient-a") == stored["patient-a"] + later
        assert (await tracker_store.load_window("patient-a")).checkpoint["seq"] == checkpoint_seq
        assert (await tracker_store.load_window("patient-b")).events == stored["patient-b"]
    finally:
        await tracker_store.close()


async def test_an_sqlite_file_of_the_first_release_gets_the_checkpoint_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_events = turn("hi", at=1000.0)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(FIRST_RELEASE_SCHEMA)
        conn.execute("INSERT INTO conversations VALUES ('u1', ?, ?)", (len(old_events), 1000.005))
        conn.executemany("INSERT INTO conversation_events (sender_id, seq, type_name, timestamp, data) "
                         "VALUES ('u1', ?, ?, ?, ?)",
                         [(i + 1, e["event"], e["timestamp"], json.dumps(e)) for i, e in enumerate(old_events)])
        conn.commit()
    tracker_store = create_tracker_store({"type": "sql", "db": str(path)}, tmp_path)
    try:
        window = await tracker_store.load_window("u1")
        assert window.events == old_events and window.checkpoint is None
        await tracker_store.append("u1", turn("again"), expected_seq=6,
                                   checkpoint={"seq": 6, "state": {"slots": {"symptom": "stiffness"}}})
        window = await tracker_store.load_window("u1")
        assert window.checkpoint == {"seq": 6, "state": {"slots": {"symptom": "stiffness"}}}
        assert [e.get("text") for e in window.events if e["event"] == "user"] == ["again"]
    finally:
        await tracker_store.close()
    fresh = create_tracker_store({"type": "sql", "db": "fresh.db"}, tmp_path)
    await fresh.ping()
    await fresh.close()
    upgraded, new = sqlite_layout(path), sqlite_layout(tmp_path / "fresh.db")
    assert [c[0] for c in upgraded["conversations"]["columns"]] == [c[0] for c in new["conversations"]["columns"]]
    assert upgraded["conversation_events"] == new["conversation_events"]


async def test_postgresql_has_the_columns_sqlite_has(pg_database: str, tmp_path: Path) -> None:  # noqa: F811
    from tests.stores_fixtures import pg_config, pg_reset

    await pg_reset(pg_database)
    tracker_store = create_tracker_store(pg_config(pg_database), tmp_path)
    await tracker_store.append("u1", turn("hi"))
    await tracker_store.close()
    conn = await pg_admin(pg_database)
    try:
        rows = await conn.fetch("SELECT table_name, column_name, is_nullable FROM information_schema.columns "
                                "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
    finally:
        await conn.close()
    sqlite_file = create_tracker_store({"type": "sql", "db": "s.db"}, tmp_path)
    await sqlite_file.ping()
    await sqlite_file.close()
    layout = sqlite_layout(tmp_path / "s.db")
    in_sqlite = [(table, name, "NO" if notnull or pk else "YES")
                 for table in sorted(layout) for (name, _, notnull, _, pk) in layout[table]["columns"]]
    assert [tuple(row) for row in rows] == in_sqlite
