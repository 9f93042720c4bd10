"""Hardening benchmark (issue 13): turn cost against history, memory after a 1 MB message,
the default store's durability cost.

    .venv/bin/python -P benchmarks/hardening.py [--quick]

Each server is a child process on loopback (the real engine, one worker), measured with
benchmarks/http.py's aiohttp client from this process:

- turn latency with 1 / 500 / 2,000 earlier turns in the conversation (default store: SQLite,
  synchronous=FULL): the median of 30 turns at each point, and the /widget/state poll after them
  (incremental, `?after=`), in ms and bytes;
- server RSS before and after a 1 MB message (refused at the door with 413);
- throughput and latency at 20 concurrent conversations (http.py's harness) for the default
  store (SQLite FULL), SQLite NORMAL and the in-memory store, in alternating rounds (the machine
  is shared: each store's median over the rounds); FULL as a share of in-memory, and the server's
  CPU time per message, which other load on the machine disturbs much less than throughput.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from benchmarks import http as bhttp  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from tests.servers import free_port  # noqa: E402

FILLER = ["hello", "my lower back hurts after lifting a box", "3 days", "6", "lifting", "no", "no",
          "what are the paraspinal muscles?", "what can I do at home?", "thanks", "/restart"]
PROBE = "what are the paraspinal muscles?"
STORES = {"sqlite-full": {"type": "sql", "dialect": "sqlite", "db": "{tmp}/conversations.db"},
          "sqlite-normal": {"type": "sql", "dialect": "sqlite", "db": "{tmp}/conversations.db",
                            "synchronous": "normal"},
          "memory": {"type": "memory"}}


def serve(port: int, tmp: str, kind: str) -> None:
    from bot.agent import Agent
    from bot.server import create_app
    from bot.stores import create_tracker_store

    config = {k: (v.format(tmp=tmp) if isinstance(v, str) else v) for k, v in STORES[kind].items()}
    store = create_tracker_store(config, Path(tmp))
    app = create_app(Agent.load(ROOT, tracker_store=store, train_if_needed=False), {"rest": None})
    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False)


class Server:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __enter__(self) -> "Server":
        self.tmp = tempfile.TemporaryDirectory(prefix="backline-hardening-")
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.child = subprocess.Popen([sys.executable, "-P", __file__, "--serve", str(port), self.tmp.name, self.kind],
                                      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        asyncio.run(bhttp.wait_ready(self.base, self.child))
        self.process = psutil.Process(self.child.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.child.terminate()
        try:
            self.child.wait(15)
        except subprocess.TimeoutExpired:
            self.child.kill()
        self.tmp.cleanup()


async def history_curve(base: str, points: list[int], probes: int) -> list[tuple[int, float, float, int]]:
    """(history, turn median ms, state poll median ms, state poll bytes) at each point.

    History h: the probe is the turn after h earlier turns. At history 1 every probe goes to a
    fresh conversation (one "hello" before it); at the later points the probes follow each
    other in the one long conversation (h, h+1, ... earlier turns)."""
    url = f"{base}/webhooks/rest/webhook"
    out = []
    async with aiohttp.ClientSession() as session:
        sender = "history-long"
        done = 0
        seq = 0
        for point in points:
            turns, polls, sizes = [], [], []
            if point <= 1:
                for n in range(probes):
                    fresh = f"history-fresh-{n}"
                    await bhttp.post(session, url, fresh, FILLER[0])
                    turns.append(await bhttp.post(session, url, fresh, PROBE))
                    start = time.perf_counter()
                    async with session.get(f"{base}/widget/state/{fresh}", params={"after": "0"}) as r:
                        sizes.append(len(await r.read()))
                    polls.append(time.perf_counter() - start)
                out.append((point, statistics.median(turns) * 1000, statistics.median(polls) * 1000,
                            int(statistics.median(sizes))))
                continue
            while done < point:
                await bhttp.post(session, url, sender, FILLER[done % len(FILLER)])
                done += 1
            for _ in range(probes):
                turns.append(await bhttp.post(session, url, sender, PROBE))
                start = time.perf_counter()
                async with session.get(f"{base}/widget/state/{sender}", params={"after": str(seq)}) as r:
                    body = await r.read()
                    seq = (await r.json())["seq"]
                polls.append(time.perf_counter() - start)
                sizes.append(len(body))
            done += probes
            out.append((point, statistics.median(turns) * 1000, statistics.median(polls) * 1000,
                        int(statistics.median(sizes))))
    return out


async def one_megabyte(base: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/webhooks/rest/webhook",
                                json={"sender": "mem-1", "message": "a" * 990_000}) as r:
            await r.read()
            return r.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="history 1/200/500, fewer turns")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per store")
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "DIR", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return
    points = [1, 200, 500] if args.quick else [1, 500, 2000]
    turns = 6 if args.quick else 12
    rows: list[tuple[str, str]] = [("machine", describe()), ("started", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
                                   ("load average at start", " / ".join(f"{x:.2f}" for x in os.getloadavg()))]

    for kind in ("sqlite-full", "memory"):
        with Server(kind) as server:
            curve = asyncio.run(history_curve(server.base, points, 30))
            for history, turn, poll, size in curve:
                rows.append((f"{kind}: turn median at history {history}", f"{turn:.2f} ms"))
                if kind == "sqlite-full":
                    rows.append((f"{kind}: /widget/state?after= at history {history}, median / size",
                                 f"{poll:.2f} ms / {size} B"))
            rows.append((f"{kind}: turn at history {points[-1]} / at history {points[0]}",
                         f"{curve[-1][1] / curve[0][1]:.2f}x (load {os.getloadavg()[0]:.2f})"))
            if kind == "sqlite-full":
                before = server.process.memory_info().rss
                status = asyncio.run(one_megabyte(server.base))
                after = server.process.memory_info().rss
                rows.append(("1 MB message: status, server RSS before -> after",
                             f"{status}, {before / 2**20:.0f} -> {after / 2**20:.0f} MiB "
                             f"({(after - before) / 2**20:+.1f} MiB)"))

    kinds = ("sqlite-full", "sqlite-normal", "memory")
    runs: dict[str, list[tuple[float, float, float, float]]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            with Server(kind) as server:
                url = f"{server.base}/webhooks/rest/webhook"
                asyncio.run(bhttp.sequential(url, 20))  # warm-up
                cpu_before = server.process.cpu_times()
                elapsed, total, lat = asyncio.run(bhttp.concurrent(url, 20, turns))
                cpu_after = server.process.cpu_times()
                cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / total
                runs[kind].append((total / elapsed, statistics.median(lat) * 1000,
                                   bhttp.percentile(lat, 99) * 1000, cpu * 1000))
    for kind in kinds:
        rate = statistics.median(r[0] for r in runs[kind])
        rows.append((f"20 concurrent x {turns} turns, {kind} (median of {args.rounds} rounds)",
                     f"{rate:.0f} msg/s (rounds: {', '.join(f'{r[0]:.0f}' for r in runs[kind])}), "
                     f"latency median {statistics.median(r[1] for r in runs[kind]):.1f} ms, "
                     f"p99 {statistics.median(r[2] for r in runs[kind]):.1f} ms, "
                     f"server CPU {statistics.median(r[3] for r in runs[kind]):.2f} ms/message"))
    full = statistics.median(r[0] for r in runs["sqlite-full"])
    memory = statistics.median(r[0] for r in runs["memory"])
    rows.append(("default store (SQLite FULL) throughput / in-memory", f"{100 * full / memory:.0f} %"))
    cpu_full = statistics.median(r[3] for r in runs["sqlite-full"])
    cpu_memory = statistics.median(r[3] for r in runs["memory"])
    rows.append(("in-memory / SQLite FULL server CPU per message (load-independent)",
                 f"{100 * cpu_memory / cpu_full:.0f} %"))
    rows.append(("load average at end", " / ".join(f"{x:.2f}" for x in os.getloadavg())))

    width = max(len(k) for k, _ in rows)
    print(f"| {'metric'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
