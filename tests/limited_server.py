"""A Backline server whose own process runs under a memory cap (RLIMIT_AS), for memory tests.

    python tests/limited_server.py PORT DB_FILE HEADROOM_MB

Loads the real engine with an SQLite store at DB_FILE, then caps the process's address space
at what it uses now plus HEADROOM_MB and serves REST + socket.io on 127.0.0.1:PORT. A request
that makes the server balloon then fails inside this process (MemoryError, or the process
dies) instead of taking the machine down; the test sees the failure.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(port: int, db_file: str, headroom_mb: int) -> None:
    import psutil

    from bot.agent import Agent
    from bot.server import create_app
    from bot.stores import create_tracker_store

    store = create_tracker_store({"type": "sql", "dialect": "sqlite", "db": db_file}, ROOT)
    app = create_app(Agent.load(ROOT, tracker_store=store, train_if_needed=False),
                     {"rest": None, "socketio": None})
    limit = psutil.Process().memory_info().vms + headroom_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(f"RLIMIT_AS {limit} bytes", flush=True)
    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
