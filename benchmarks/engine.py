"""In-process engine benchmark: per-turn latency (median, p99), training time, cold start, RSS.

Usage: python benchmarks/engine.py [--turns 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this folder would shadow the stdlib (benchmarks/http.py vs http).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from benchmarks.machine import describe  # noqa: E402

CONVERSATION = [
    "hi", "my lower back seized up after lifting a box", "about 3 days", "6", "/deny", "/deny", "/deny",
    "/deny", "/deny", "/deny", "/deny", "/deny", "/deny", "yes please", "what are the paraspinal muscles?",
    "what do I have?", "thanks, bye",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2000, help="turns to time (default 2000)")
    args = parser.parse_args()
    proc = psutil.Process()

    from bot import model
    from bot.project import load_project

    t0 = time.perf_counter()
    project = load_project(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        _, train_seconds = model.train(project, progress=False, out_dir=Path(tmp))

    from bot.agent import Agent, UserMessage
    from bot.stores import InMemoryLockStore, InMemoryTrackerStore

    model.load_or_train(project, progress=False)        # cold start below must not include training
    start = time.perf_counter()
    agent = Agent.load(ROOT, project=load_project(ROOT), tracker_store=InMemoryTrackerStore(),
                       lock_store=InMemoryLockStore())
    cold_start = time.perf_counter() - start

    async def run() -> list[float]:
        timings: list[float] = []
        n = 0
        while len(timings) < args.turns:
            sender = f"bench-{n}"
            n += 1
            for text in CONVERSATION:
                t = time.perf_counter()
                await agent.handle_message(UserMessage(text, sender))
                timings.append((time.perf_counter() - t) * 1000)
        return timings

    timings = asyncio.run(run())
    parse_times = []
    for text in [t for t in CONVERSATION if not t.startswith("/")] * 50:   # payloads skip the model
        t = time.perf_counter()
        agent.nlu.parse(text)
        parse_times.append((time.perf_counter() - t) * 1000)
    screener = agent.processor.safety.screener
    long_message = ("I lifted a heavy box at work yesterday and now my lower back really hurts when I bend "
                    "over, no fever but my legs feel a bit odd")
    screen_times = []
    for _ in range(2000):
        t = time.perf_counter()
        screener.screen(long_message)
        screen_times.append((time.perf_counter() - t) * 1000)
    rss = proc.memory_info().rss / 1024 / 1024
    print(f"machine: {describe()}")
    print("| metric | value |\n|---|---|")
    print(f"| turns timed (in process, in-memory store) | {len(timings)} |")
    print(f"| turn latency median | {statistics.median(timings):.2f} ms |")
    print(f"| turn latency p99 | {percentile(timings, 0.99):.2f} ms |")
    print(f"| NLU parse median | {statistics.median(parse_times):.3f} ms |")
    print(f"| safety screen median (24-word message) | {statistics.median(screen_times):.3f} ms |")
    print(f"| training time ({len(project.nlu.examples)} examples) | {train_seconds:.2f} s |")
    print(f"| cold start (load project + model + actions) | {cold_start:.2f} s |")
    print(f"| RSS after benchmark | {rss:.0f} MB |")
    print(f"| total benchmark time | {time.perf_counter() - t0:.1f} s |")


if __name__ == "__main__":
    main()
