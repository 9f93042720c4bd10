"""HTTP benchmark: webhook latency (sequential) and throughput (concurrent conversations).

    python benchmarks/http.py [--requests 200] [--conversations 20] [--turns 10]

Starts a real server in a child process on loopback (the real engine, SQLite tracker store in
a temporary directory, one worker), then measures with an aiohttp client from this process:
per-message latency one request at a time (median, p99), and messages per second with N
conversations sending at once. Prints the machine (nproc, CPU model) and the server's RSS.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and "benchmarks/http.py" would
# shadow the standard library's `http` package; drop that folder before anything imports it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from benchmarks.machine import cpu_model  # noqa: E402
from tests.servers import free_port  # noqa: E402

# One realistic turn mix: greeting, symptom report, FAQ question, thanks.
MESSAGES = ["hello", "my lower back hurts after lifting", "what are the paraspinal muscles?",
            "thanks"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def post(session: aiohttp.ClientSession, url: str, sender: str, text: str) -> float:
    start = time.perf_counter()
    async with session.post(url, json={"sender": sender, "message": text}) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"webhook answered {r.status}")
    return time.perf_counter() - start


async def sequential(url: str, n: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for i in range(5):  # warm-up
            await post(session, url, "bench-warmup", MESSAGES[i % len(MESSAGES)])
        return [await post(session, url, f"bench-seq-{i // len(MESSAGES)}",
                           MESSAGES[i % len(MESSAGES)]) for i in range(n)]


async def concurrent(url: str, conversations: int, turns: int) -> tuple[float, int, list[float]]:
    latencies: list[float] = []

    async def conversation(session: aiohttp.ClientSession, c: int) -> None:
        for t in range(turns):
            latencies.append(await post(session, url, f"bench-par-{c}", MESSAGES[t % len(MESSAGES)]))

    connector = aiohttp.TCPConnector(limit=conversations)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(conversation(session, c) for c in range(conversations)))
        elapsed = time.perf_counter() - start
    return elapsed, conversations * turns, latencies


def serve(port: int, tmp: str) -> None:
    """The child process: the app with a throwaway SQLite store, served until killed."""
    from bot.agent import Agent
    from bot.server import create_app
    from bot.stores import create_tracker_store

    store = create_tracker_store({"type": "sql", "dialect": "sqlite",
                                  "db": str(Path(tmp) / "conversations.db")}, Path(tmp))
    app = create_app(Agent.load(ROOT, tracker_store=store), {"rest": None})
    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False)


async def wait_ready(base: str, child: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise RuntimeError(f"server exited with {child.returncode}")
            try:
                async with session.get(f"{base}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/webhooks/rest/webhook"
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(port), tmp],
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            asyncio.run(wait_ready(base, child))
            server = psutil.Process(child.pid)
            rss_start = server.memory_info().rss
            seq = asyncio.run(sequential(url, args.requests))
            elapsed, total, par = asyncio.run(concurrent(url, args.conversations, args.turns))
            rss_end = server.memory_info().rss
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()

    ms = 1000.0
    rows = [
        ("machine", f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}"),
        ("python", platform.python_version()),
        ("sequential requests", str(len(seq))),
        ("latency median", f"{statistics.median(seq) * ms:.1f} ms"),
        ("latency p99", f"{percentile(seq, 99) * ms:.1f} ms"),
        (f"concurrent: {args.conversations} conversations x {args.turns} turns",
         f"{total} messages in {elapsed:.2f} s"),
        ("throughput", f"{total / elapsed:.1f} messages/s"),
        ("concurrent latency median / p99",
         f"{statistics.median(par) * ms:.1f} / {percentile(par, 99) * ms:.1f} ms"),
        ("server RSS (after load / idle)",
         f"{rss_end / 2**20:.0f} MiB / {rss_start / 2**20:.0f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'metric'.ljust(width)} | value")
    print(f"{'-' * width}-|-{'-' * 40}")
    for key, value in rows:
        print(f"{key.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
