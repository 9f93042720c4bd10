"""Load: many concurrent conversations against one real `bot run` process on loopback.

Default run (`make test`): 20 conversations x 10 turns. Soak run (`make soak`,
BACKLINE_SOAK=1, markers `slow` and `soak`): 100 conversations x 50 turns. Each conversation
sends its turns one after another (as a person does); the conversations run concurrently. Asserted: no errors (every request
200 with at least one bot message), every turn finished within the time bound, and the server's
resident memory grew by less than MEMORY_GROWTH_BOUND_MB between warm-up and the end. Latency
percentiles and memory are printed and written to results/hardening_load*.json.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.hardening_support import ROOT, soak
from tests.stores_fixtures import BotServer, make_project, project_template  # noqa: F401  (fixture)

MEMORY_GROWTH_BOUND_MB = 150

SCRIPT = [
    "hello", "my lower back hurts after lifting a box", "about 3 days", "6 out of 10",
    "it started when I lifted something heavy", "no fever and no numbness",
    "what are the paraspinal muscles?", "what can I do at home?", "is it sciatica?",
    "when should I see a doctor?", "thanks", "/restart",
    "I can't control my bladder and my legs are numb", "what do I have?", "bye",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def conversation(client: httpx.AsyncClient, sender: str, turns: int, latencies: list[float],
                       errors: list[str], deadline: float) -> int:
    done = 0
    for text in itertools.islice(itertools.cycle(SCRIPT), turns):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        try:
            r = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
            ok = r.status_code == 200 and isinstance(r.json(), list) and len(r.json()) > 0
            if not ok:
                errors.append(f"{sender}: {r.status_code} {r.text[:120]}")
        except (httpx.HTTPError, ValueError) as exc:
            errors.append(f"{sender}: {type(exc).__name__}: {exc}")
        latencies.append(time.perf_counter() - start)
        done += 1
    return done


def run_load(server: BotServer, conversations: int, turns: int, time_bound: float, tag: str) -> dict:
    proc = psutil.Process(server.process.pid)
    with httpx.Client(base_url=server.url, timeout=60) as c:  # warm-up: caches, first tracker
        for text in SCRIPT[:4]:
            assert c.post("/webhooks/rest/webhook", json={"sender": f"warm-{tag}", "message": text}).status_code == 200
    rss_before = proc.memory_info().rss
    latencies: list[float] = []
    errors: list[str] = []

    async def main() -> list[int]:
        limits = httpx.Limits(max_connections=conversations, max_keepalive_connections=conversations)
        async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:
            deadline = time.monotonic() + time_bound
            return await asyncio.gather(*(
                conversation(client, f"load-{tag}-{i}", turns, latencies, errors, deadline)
                for i in range(conversations)))

    started = time.perf_counter()
    done = asyncio.run(main())
    elapsed = time.perf_counter() - started
    rss_after = proc.memory_info().rss
    report = {
        "conversations": conversations, "turns_each": turns, "requests": len(latencies),
        "completed_turns": sum(done), "errors": len(errors), "error_samples": errors[:5],
        "seconds": round(elapsed, 1), "throughput_rps": round(len(latencies) / elapsed, 1),
        "latency_ms": {name: round(1000 * percentile(latencies, q), 1)
                       for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("max", 100))},
        "latency_mean_ms": round(1000 * statistics.fmean(latencies), 1),
        "rss_before_mb": round(rss_before / 2**20, 1), "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_growth_mb": round((rss_after - rss_before) / 2**20, 1),
        "memory_bound_mb": MEMORY_GROWTH_BOUND_MB,
    }
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / f"hardening_load_{tag}.json").write_text(json.dumps(report, indent=2))
    print(f"\nload {tag}: {json.dumps(report)}")
    return report


@pytest.fixture(scope="module")
def load_server(project_template, tmp_path_factory):  # noqa: F811
    """`bot run` on a copy of the project with the default SQLite tracker store."""
    where = tmp_path_factory.mktemp("load")
    project = make_project(project_template, where, {
        "tracker_store": {"type": "sql", "dialect": "sqlite", "db": str(where / "load.db")}})
    server = BotServer(project, where, "load").start()
    try:
        yield server
    finally:
        server.stop()


def check(report: dict) -> None:
    assert report["errors"] == 0, report["error_samples"]
    assert report["completed_turns"] == report["conversations"] * report["turns_each"], \
        "every turn finished within the time bound"
    assert report["rss_growth_mb"] < MEMORY_GROWTH_BOUND_MB, report


def test_load_reduced(load_server):
    """20 concurrent conversations x 10 turns (the default run)."""
    check(run_load(load_server, 20, 10, time_bound=240, tag="reduced"))


@pytest.mark.slow
@pytest.mark.soak
@pytest.mark.skipif(not soak(), reason="full load only in the soak run (BACKLINE_SOAK=1)")
def test_load_full(load_server):
    """100 concurrent conversations x 50 turns (soak run), then the same again with new
    conversations: memory must level off, not grow by the same amount again (a leak)."""
    first = run_load(load_server, 100, 50, time_bound=1500, tag="full")
    check(first)
    second = run_load(load_server, 100, 50, time_bound=1500, tag="full-again")
    check(second)
    assert second["rss_growth_mb"] < max(0.5 * first["rss_growth_mb"], 25), (first, second)
