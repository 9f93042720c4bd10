"""Run every Backline benchmark and print one Markdown table (also written to results/benchmarks.md).

    .venv/bin/python benchmarks/run.py [--quick] [--out results/benchmarks.md]

Sections, each run in its own process so one's memory does not count in another's RSS:

- engine  benchmarks/engine.py: in-process turn latency, NLU training time, cold start, RSS.
          --quick skips the training (it alone takes 25-80 s here) and times turns on the model
          already in models/ instead (same conversation as engine.py).
- http    benchmarks/http.py's client and server setup (real engine, SQLite store, one worker):
          sequential webhook latency, then 1, 20 and 100 concurrent conversations (throughput,
          latency, server RSS after each level). One server for the three levels, on the model
          in models/ (the full run first does `bot train`, a no-op when it is up to date).
- stores  benchmarks/stores.py: appends/s and loads/s per tracker store (PostgreSQL and Redis
          when they run on loopback).

Every row carries the 1-minute load average read when that row was measured: the machine is
shared, so compare numbers only at similar load. Bounded: 40-90 s in full, 15-30 s quick (load 2-8).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and benchmarks/http.py would shadow
# the standard library's `http` package (aiohttp imports it); drop that folder first.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from benchmarks.machine import describe  # noqa: E402

PY = [sys.executable, "-P"]  # -P: don't put benchmarks/ on sys.path (see above)
Row = tuple[str, str, str, str]  # area, metric, value, load


def load_avg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def load1() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def run_script(args: list[str], timeout: float) -> str:
    proc = subprocess.run(PY + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{' '.join(args[:1])} exited {proc.returncode}: {tail[0]}")
    return proc.stdout


# -- engine -------------------------------------------------------------------------------------

def engine_full(turns: int) -> list[Row]:
    out = run_script(["benchmarks/engine.py", "--turns", str(turns)], timeout=600)
    load = load1()
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\|\s*(.+?)\s*\|\s*(.+?)\s*\|$", line)
        if m and m.group(1) not in ("metric", "---"):
            rows.append(("engine", m.group(1), m.group(2), load))
    if not rows:
        raise RuntimeError("benchmarks/engine.py printed no table")
    return rows


def engine_quick_child(turns: int) -> None:
    """--quick engine section (a child process): engine.py's conversation on the trained model."""
    import psutil

    from benchmarks.engine import CONVERSATION, percentile
    from bot.agent import Agent, UserMessage
    from bot.stores import InMemoryLockStore, InMemoryTrackerStore

    start = time.perf_counter()
    agent = Agent.load(ROOT, tracker_store=InMemoryTrackerStore(), lock_store=InMemoryLockStore(),
                       train_if_needed=False)
    cold = time.perf_counter() - start

    async def run() -> list[float]:
        timings: list[float] = []
        n = 0
        while len(timings) < turns:
            n += 1
            for text in CONVERSATION:
                t = time.perf_counter()
                await agent.handle_message(UserMessage(text, f"quick-{n}"))
                timings.append((time.perf_counter() - t) * 1000)
        return timings

    timings = asyncio.run(run())
    print(json.dumps({"turns": len(timings), "median": statistics.median(timings),
                      "p99": percentile(timings, 0.99), "cold": cold, "model": agent.model_path.name,
                      "rss": psutil.Process().memory_info().rss / 2**20}))


def engine_quick(turns: int) -> list[Row]:
    out = run_script([str(Path(__file__).resolve()), "--engine-quick-child", str(turns)], timeout=300)
    r = json.loads(out.strip().splitlines()[-1])
    load = load1()
    return [
        ("engine", "turns timed (in process, in-memory store)", str(r["turns"]), load),
        ("engine", "turn latency median", f"{r['median']:.2f} ms", load),
        ("engine", "turn latency p99", f"{r['p99']:.2f} ms", load),
        ("engine", "training time", "skipped (--quick; run without it)", load),
        ("engine", f"cold start (load project + existing model {r['model']} + actions)", f"{r['cold']:.2f} s", load),
        ("engine", "RSS after benchmark", f"{r['rss']:.0f} MB", load),
    ]


# -- http ---------------------------------------------------------------------------------------

def serve_child(port: int, tmp: str) -> None:
    """The server child: benchmarks/http.py's server (real engine, throwaway SQLite store, one
    worker), but on the model already in models/ -- never training in the middle of a run."""
    from bot.agent import Agent
    from bot.server import create_app
    from bot.stores import create_tracker_store

    store = create_tracker_store({"type": "sql", "dialect": "sqlite",
                                  "db": str(Path(tmp) / "conversations.db")}, Path(tmp))
    app = create_app(Agent.load(ROOT, tracker_store=store, train_if_needed=False), {"rest": None})
    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False)


def prepare() -> list[Row]:
    """Train the project's model when the data changed (as `bot run` would), so that neither the
    engine benchmark's agent nor the server trains in the middle of a measurement."""
    t = time.perf_counter()
    out = run_script(["-m", "bot", "train", "--quiet"], timeout=600).strip().splitlines()
    return [("prepare", "bot train (skipped when the model is up to date)",
             f"{out[-1] if out else ''} ({time.perf_counter() - t:.1f} s wall)", load1())]


def http_levels(requests: int, levels: list[tuple[int, int]]) -> list[Row]:
    import psutil

    from benchmarks import http as bhttp  # sequential(), concurrent(), wait_ready(), --serve
    from tests.servers import free_port

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="backline-run-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/webhooks/rest/webhook"
        child = subprocess.Popen(PY + [str(Path(__file__).resolve()), "--serve-child", str(port), tmp],
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            started = time.perf_counter()
            asyncio.run(bhttp.wait_ready(base, child, timeout=300))
            ready = time.perf_counter() - started
            server = psutil.Process(child.pid)
            rows.append(("http", "server start to /health 200 (SQLite store, 1 worker)", f"{ready:.1f} s", load1()))
            rows.append(("http", "server RSS idle", f"{server.memory_info().rss / 2**20:.0f} MiB", load1()))
            seq = asyncio.run(bhttp.sequential(url, requests))
            rows.append(("http", f"webhook latency, sequential ({len(seq)} messages) median / p99",
                         f"{statistics.median(seq) * 1000:.1f} / {bhttp.percentile(seq, 99) * 1000:.1f} ms", load1()))
            for c, turns in levels:
                elapsed, total, lat = asyncio.run(bhttp.concurrent(url, c, turns))
                load = load1()
                rss = server.memory_info().rss / 2**20
                rows.append(("http", f"{c} concurrent conversations x {turns} turns: throughput",
                             f"{total / elapsed:.1f} messages/s ({total} in {elapsed:.2f} s)", load))
                rows.append(("http", f"{c} concurrent: latency median / p99",
                             f"{statistics.median(lat) * 1000:.1f} / {bhttp.percentile(lat, 99) * 1000:.1f} ms", load))
                rows.append(("http", f"{c} concurrent: server RSS after", f"{rss:.0f} MiB", load))
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return rows


# -- stores -------------------------------------------------------------------------------------

def stores(seconds: float) -> list[Row]:
    out = run_script(["benchmarks/stores.py", "--seconds", str(seconds)], timeout=300)
    load = load1()
    rows: list[Row] = []
    header: list[str] = []
    for line in out.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "store":
            header = cells
            continue
        if len(cells) > 1 and cells[1].startswith("skipped"):
            rows.append(("stores", cells[0], cells[1], load))
            continue
        value = " · ".join(f"{v} {h}" for h, v in zip(header[1:], cells[1:]))
        rows.append(("stores", f"{cells[0]} (turn = 6 events; load = 60 events)", value, load))
    if not rows:
        raise RuntimeError("benchmarks/stores.py printed no table")
    return rows


# -- report -------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, no training (well under a minute)")
    parser.add_argument("--out", default=str(ROOT / "results" / "benchmarks.md"))
    parser.add_argument("--engine-quick-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-child", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(int(args.serve_child[0]), args.serve_child[1])
        return 0
    if args.engine_quick_child:
        engine_quick_child(args.engine_quick_child)
        return 0

    begun = time.perf_counter()
    load_start = load_avg()
    if args.quick:
        plan = [("engine", lambda: engine_quick(300)),
                ("http", lambda: http_levels(40, [(1, 20), (20, 4), (100, 4)])),
                ("stores", lambda: stores(0.2))]
        settings = ("quick: no training (the model already in models/, even if stale); engine 300 turns; "
                    "http 40 sequential messages, then 1x20, 20x4, 100x4 conversations x turns; stores 0.2 s per cell")
    else:
        plan = [("prepare", prepare),
                ("engine", lambda: engine_full(2000)),
                ("http", lambda: http_levels(200, [(1, 40), (20, 12), (100, 8)])),
                ("stores", lambda: stores(1.5))]
        settings = ("full: bot train if the data changed; engine.py 2000 turns + training; http 200 sequential "
                    "messages, then 1x40, 20x12, 100x8 conversations x turns; stores 1.5 s per cell")
    rows: list[Row] = []
    failed = 0
    for area, step in plan:
        t = time.perf_counter()
        print(f"[{area}] running (load {load_avg()}) ...", file=sys.stderr, flush=True)
        try:
            rows.extend(step())
        except Exception as exc:  # report it in the table, keep going
            failed += 1
            rows.append((area, "FAILED", f"{type(exc).__name__}: {exc}", load1()))
        rows.append((area, "section wall time", f"{time.perf_counter() - t:.1f} s", load1()))

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        f"# Backline benchmarks ({'quick' if args.quick else 'full'})",
        "",
        f"- machine: {describe()}",
        f"- load average (1 / 5 / 15 min): {load_start} at start, {load_avg()} at end "
        f"(shared machine: compare numbers only at similar load)",
        f"- {settings}",
        f"- total wall time: {time.perf_counter() - begun:.0f} s; run at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "",
        "| area | metric | value | load 1 min |",
        "|---|---|---|--:|",
    ]
    lines += [f"| {area} | {cell(metric)} | {cell(value)} | {load} |" for area, metric, value, load in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
