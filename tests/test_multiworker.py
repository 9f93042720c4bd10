"""Two `bot run` processes share one tracker store and one Redis lock store.

Conversations hop between the workers message by message; afterwards every tracker must
hold every user turn exactly once, in the order sent, and no turn half-saved.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.stores import create_tracker_store
from tests.stores_fixtures import (  # noqa: F401  (fixtures)
    BotServer,
    half_saved_turns,
    make_project,
    pg_config,
    pg_database,
    pg_reset,
    project_template,
    redis_available,
    redis_cleanup,
    redis_config,
    user_texts,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

CONVERSATIONS = 20
SCRIPT = [
    "hello",
    "my lower back is stiff",
    "it started three days ago",
    "it is mild",
    "it gets worse when I bend over",
    "thank you",
]


@pytest.fixture(scope="module", params=["redis", "postgresql"], ids=["redis-tracker", "postgresql-tracker"])
def endpoints(request: pytest.FixtureRequest, redis_available: None) -> Iterator[dict]:
    prefix = f"backline_test_{uuid.uuid4().hex[:12]}"
    if request.param == "redis":
        tracker = redis_config(prefix)
    else:
        database = request.getfixturevalue("pg_database")
        asyncio.run(pg_reset(database))
        tracker = pg_config(database)
    yield {"tracker_store": tracker, "lock_store": redis_config(prefix)}
    asyncio.run(redis_cleanup(prefix))


@pytest.fixture(scope="module")
def workers(project_template: Path, endpoints: dict,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[BotServer]]:
    """Two `bot run` processes on one project, shared by the tests of one store pairing."""
    where = tmp_path_factory.mktemp("multiworker")
    project = make_project(project_template, where, endpoints)
    servers = [BotServer(project, where, f"worker-{n}") for n in range(2)]
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


async def post(client, server: BotServer, sender: str, text: str) -> list[dict]:
    reply = await client.post(f"{server.url}/webhooks/rest/webhook",
                              json={"sender": sender, "message": text}, timeout=60)
    assert reply.status_code == 200, f"{server.url}: {reply.status_code} {reply.text[:300]}"
    return reply.json()


async def load_all(endpoints: dict, project: Path, senders: list[str]) -> dict[str, list[dict]]:
    store = create_tracker_store(endpoints["tracker_store"], project)
    try:
        return {sender: await store.load(sender) for sender in senders}
    finally:
        await store.close()


def test_conversations_hopping_between_workers_keep_every_turn_once_in_order(
    workers: list[BotServer], endpoints: dict
) -> None:
    import httpx

    run = uuid.uuid4().hex[:6]
    senders = [f"mw-{run}-{n}" for n in range(CONVERSATIONS)]
    sent: dict[str, list[str]] = {sender: [] for sender in senders}

    async def converse(number: int, sender: str, client: httpx.AsyncClient) -> None:
        for turn, message in enumerate(SCRIPT):
            await post(client, workers[(number + turn) % 2], sender, message)
            sent[sender].append(message)

    async def main() -> dict[str, list[dict]]:
        async with httpx.AsyncClient() as client:
            await asyncio.gather(*(converse(n, sender, client) for n, sender in enumerate(senders)))
        return await load_all(endpoints, workers[0].project, senders)

    trackers = asyncio.run(main())
    for sender in senders:
        events = trackers[sender]
        assert user_texts(events) == sent[sender], sender
        assert half_saved_turns(events) == [], sender
        assert sum(event["event"] == "session_started" for event in events) <= 1, sender


def test_simultaneous_messages_to_one_conversation_are_serialised(
    workers: list[BotServer], endpoints: dict
) -> None:
    """Both workers get messages of the same new conversation at once: the lock lets one
    turn run at a time, so the conversation starts once and no turn is lost or doubled."""
    import httpx

    run = uuid.uuid4().hex[:6]
    senders = [f"burst-{run}-{n}" for n in range(5)]

    async def burst(sender: str, client: httpx.AsyncClient) -> list[str]:
        await asyncio.gather(*(post(client, workers[turn % 2], sender, message)
                               for turn, message in enumerate(SCRIPT)))
        return list(SCRIPT)

    async def main() -> tuple[dict[str, list[str]], dict[str, list[dict]]]:
        async with httpx.AsyncClient() as client:
            sent = dict(zip(senders, await asyncio.gather(*(burst(sender, client) for sender in senders))))
        return sent, await load_all(endpoints, workers[0].project, senders)

    sent, trackers = asyncio.run(main())
    for sender in senders:
        events = trackers[sender]
        assert sorted(user_texts(events)) == sorted(sent[sender]), sender
        assert half_saved_turns(events) == [], sender
        assert sum(event["event"] == "session_started" for event in events) <= 1, sender
