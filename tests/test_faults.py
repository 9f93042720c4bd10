"""Faults: the action server down or stuck, a store down at start or mid-run, broken model files.

Every fault injector is local and bounded: a closed loopback port, a tiny HTTP server that
answers after 5 s, a TCP proxy in front of the real PostgreSQL/Redis that the test cuts and
restores, corrupt copies of the model files in a temporary project.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.hardening_support import SlowActionServer, TcpProxy, agent_with_stores, closed_port, served
from tests.servers import free_port
from tests.stores_fixtures import (  # noqa: F401  (fixtures)
    PG_HOST,
    PG_PORT,
    PG_USER,
    REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    bot_env,
    half_saved_turns,
    make_project,
    pg_database,
    pg_reset,
    project_template,
    redis_available,
    redis_prefix,
    user_texts,
)

ROOT = Path(__file__).resolve().parent.parent
SELF_CARE = "what can I do at home for my back?"
ACTION_FAILED = "something went wrong on my side"
STORE_DOWN = "try again"
SECRET = "hunter2-Secret"


# -- the action server -----------------------------------------------------------------------

def _action_agent(agent, project_template, tmp_path, endpoint: dict):  # noqa: F811
    """An Agent loaded the way `bot run` loads it, from a project whose endpoints.yml names
    `endpoint` as action_endpoint (in-memory tracker store)."""
    from bot.agent import Agent
    from bot.stores import InMemoryLockStore, InMemoryTrackerStore

    project = make_project(project_template, tmp_path, {"tracker_store": {"type": "memory"},
                                                        "action_endpoint": endpoint})
    return Agent.load(project, tracker_store=InMemoryTrackerStore(), lock_store=InMemoryLockStore(),
                      train_if_needed=False)


def _turns(url: str, sender: str, texts: list[str], bound: float) -> list[tuple[list[dict], float]]:
    out = []
    with httpx.Client(base_url=url, timeout=bound + 30) as c:
        for text in texts:
            start = time.monotonic()
            r = c.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
            elapsed = time.monotonic() - start
            assert r.status_code == 200, r.text
            out.append((r.json(), elapsed))
    return out


def _tracker_events(url: str, sender: str) -> list[dict]:
    r = httpx.get(f"{url}/conversations/{sender}/tracker", params={"include_events": "ALL"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["events"]


@pytest.mark.parametrize("fault", ["closed-port", "slow-server"])
def test_action_server_down_or_slow_gets_a_polite_reply_and_the_turn_is_kept(
        agent, project_template, tmp_path, fault):  # noqa: F811
    timeout = 1.0
    slow = SlowActionServer(delay=5.0) if fault == "slow-server" else None
    url = slow.url if slow else f"http://127.0.0.1:{closed_port()}/webhook"
    if slow:
        slow.__enter__()
    try:
        bot = _action_agent(agent, project_template, tmp_path, {"url": url, "timeout": timeout})
        with served(bot) as base:
            results = _turns(base, f"act-{fault}", ["hello", SELF_CARE], bound=30)
            events = _tracker_events(base, f"act-{fault}")
    finally:
        if slow:
            slow.__exit__()
    for replies, elapsed in results:
        assert replies, "every turn is answered"
        # at most a few action calls per turn, each cut off at `timeout`: no hang
        assert elapsed < 6 * timeout + 10, f"turn took {elapsed:.1f}s with a {timeout}s action timeout"
    texts = " ".join(m.get("text", "") for m in results[1][0])
    assert ACTION_FAILED in texts, texts
    assert "healthcare provider" in texts and "911" in texts, "the fallback still points to care"
    assert user_texts(events) == ["hello", SELF_CARE], "both turns are recorded"
    assert half_saved_turns(events) == [], "each turn ends in action_listen"
    if slow:
        assert slow.calls >= 1, "the slow server was really called"


# -- a store down at start -------------------------------------------------------------------

STORES_DOWN = {
    "postgresql": {"type": "sql", "url": f"postgresql://backline:{SECRET}@127.0.0.1:{{port}}/backline"},
    "postgresql-keys": {"type": "sql", "dialect": "postgresql", "url": "127.0.0.1", "port": "{port}",
                        "username": "backline", "password": SECRET, "db": "backline"},
    "redis": {"type": "redis", "url": f"redis://:{SECRET}@127.0.0.1:{{port}}/0"},
}


def _with_port(config: dict, port: int) -> dict:
    return {k: (v.replace("{port}", str(port)) if isinstance(v, str) else v) for k, v in config.items()}


@pytest.mark.parametrize("command", ["run", "shell"])
@pytest.mark.parametrize("store", sorted(STORES_DOWN))
def test_store_down_at_start_is_one_clear_line_with_the_password_masked(
        project_template, tmp_path, store, command):  # noqa: F811
    port = closed_port()
    project = make_project(project_template, tmp_path, {"tracker_store": _with_port(STORES_DOWN[store], port)})
    args = [sys.executable, "-m", "bot", command, "--project", str(project)]
    if command == "run":
        args += ["--port", str(free_port())]
    try:
        done = subprocess.run(args, cwd=ROOT, env=bot_env(), input="", capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`bot {command}` kept running with its store down instead of stopping")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert SECRET not in output, "the password is masked"
    assert "Traceback" not in output, output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, done.stderr
    assert f"127.0.0.1:{port}" in errors[0] and "***" in errors[0], errors[0]


# -- a store down mid-run --------------------------------------------------------------------

def _pg_through(proxy: TcpProxy, database: str) -> dict:
    return {"type": "sql", "dialect": "postgresql", "url": "127.0.0.1", "port": proxy.port,
            "username": PG_USER, "db": database}


def _redis_through(proxy: TcpProxy, prefix: str) -> dict:
    return {"type": "redis", "url": "127.0.0.1", "port": proxy.port, "db": REDIS_DB, "key_prefix": prefix,
            "socket_timeout": 3, "socket_connect_timeout": 3}


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_store_down_mid_run_gets_try_again_and_nothing_half_saved(agent, kind, request):
    from bot.stores import create_tracker_store

    if kind == "postgresql":
        database = request.getfixturevalue("pg_database")
        import asyncio
        asyncio.run(pg_reset(database))
        proxy = TcpProxy(PG_HOST, PG_PORT)
        config = lambda: _pg_through(proxy, database)  # noqa: E731
    else:
        prefix = request.getfixturevalue("redis_prefix")
        proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
        config = lambda: _redis_through(proxy, prefix)  # noqa: E731
    sender = f"mid-{kind}"
    with proxy:
        bot = agent_with_stores(agent, create_tracker_store(config(), ROOT))
        with served(bot) as base, httpx.Client(base_url=base, timeout=60) as c:
            assert c.post("/webhooks/rest/webhook", json={"sender": sender, "message": "hello"}).status_code == 200
            proxy.cut()
            start = time.monotonic()
            r = c.post("/webhooks/rest/webhook", json={"sender": sender, "message": "my lower back hurts"})
            elapsed = time.monotonic() - start
            assert r.status_code == 200, r.text
            texts = " ".join(m.get("text", "") for m in r.json())
            assert STORE_DOWN in texts.lower() and "911" in texts, texts
            assert elapsed < 30, f"the store outage answer took {elapsed:.1f}s"
            down = c.get(f"/conversations/{sender}/tracker")
            assert down.status_code == 503 and down.headers.get("retry-after"), down.text
            assert "Traceback" not in down.text
            proxy.restore()
            events = _tracker_events(base, sender)
            assert user_texts(events) == ["hello"], "the turn during the outage left nothing behind"
            assert half_saved_turns(events) == []
            r = c.post("/webhooks/rest/webhook", json={"sender": sender, "message": "my lower back hurts"})
            assert r.status_code == 200 and STORE_DOWN not in " ".join(m.get("text", "") for m in r.json()).lower()
            assert user_texts(_tracker_events(base, sender)) == ["hello", "my lower back hurts"]


# -- broken model files ------------------------------------------------------------------------

def _corrupt_models(project: Path) -> list[Path]:
    broken = []
    for folder in (project / "models").iterdir():
        if not (folder / "fingerprint.json").exists():
            continue
        for path in sorted((folder / "nlu").rglob("*")):
            if path.is_file() and path.name not in ("meta.json",):
                path.write_bytes(b"\x00garbage\xff" * 7)
                broken.append(path)
    return broken


@pytest.mark.parametrize("command", ["run", "shell"])
def test_corrupt_model_files_are_one_clear_line_no_traceback(project_template, tmp_path, command):  # noqa: F811
    project = make_project(project_template, tmp_path, {"tracker_store": {"type": "memory"}})
    assert _corrupt_models(project)
    args = [sys.executable, "-m", "bot", command, "--project", str(project)]
    if command == "run":
        args += ["--port", str(free_port())]
    try:
        done = subprocess.run(args, cwd=ROOT, env=bot_env(), input="", capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`bot {command}` kept running on a corrupt model")
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error"), done.stderr
    assert "models" in errors[0] and "bot train" in errors[0], errors[0]


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_store_dying_in_the_middle_of_a_write_saves_nothing(agent, kind, request):
    """The proxy forwards the read of the turn and the start of its write, then dies: for
    PostgreSQL after the conversation row's upsert reached the server (before the events insert),
    for Redis after MULTI and the queued RPUSH/ZADD (before EXEC). The turn must be all or nothing."""
    from bot.stores import create_tracker_store

    if kind == "postgresql":
        database = request.getfixturevalue("pg_database")
        import asyncio
        asyncio.run(pg_reset(database))
        proxy = TcpProxy(PG_HOST, PG_PORT, cut_on=b"INSERT INTO conversation_events")
        config = _pg_through(proxy, database)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        proxy = TcpProxy(REDIS_HOST, REDIS_PORT, cut_on=b"EXEC\r\n")
        config = _redis_through(proxy, prefix)
    sender = f"cut-{kind}"
    with proxy:
        bot = agent_with_stores(agent, create_tracker_store(config, ROOT))
        with served(bot) as base, httpx.Client(base_url=base, timeout=60) as c:
            r = c.post("/webhooks/rest/webhook", json={"sender": sender, "message": "my lower back hurts"})
            assert proxy.tripped.is_set(), "the write was cut"
            assert r.status_code == 200, r.text
            assert STORE_DOWN in " ".join(m.get("text", "") for m in r.json()).lower(), r.text
            proxy.cut_on = None
            proxy.restore()
            assert c.get(f"/conversations/{sender}/tracker").status_code == 404, "nothing of the turn was saved"
            r = c.post("/webhooks/rest/webhook", json={"sender": sender, "message": "my lower back hurts"})
            assert r.status_code == 200
            events = _tracker_events(base, sender)
            assert user_texts(events) == ["my lower back hurts"] and half_saved_turns(events) == []


def test_a_corrupt_stored_event_gets_a_polite_reply_not_a_500(agent):
    from bot.stores import InMemoryTrackerStore

    store = InMemoryTrackerStore()
    store._events["corrupt-1"] = ['{"event": "user", "text": "hel']  # noqa: SLF001 - a damaged row
    store._latest["corrupt-1"] = time.time()  # noqa: SLF001
    with served(agent_with_stores(agent, store)) as base, httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/webhooks/rest/webhook", json={"sender": "corrupt-1", "message": "my back hurts"})
    assert r.status_code == 200, (r.status_code, r.text)
    assert any("start a new conversation" in m.get("text", "").lower() for m in r.json()), r.text
