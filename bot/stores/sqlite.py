"""The default store: conversations in an embedded SQLite file (WAL), for one server process.

The standard library's sqlite3 runs in one dedicated thread, so the event loop never blocks
and there is no async-driver overhead per statement. Appends that arrive while a write is in
progress are committed together in the next transaction (group commit): each append is still
all-or-nothing, and a reply is only sent after its events are committed. Same tables as the
PostgreSQL store (bot/stores/sql.py), so data can move between them."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from bot.stores.base import StoreUnavailable, TrackerStore, decode_events, event_timestamp, unavailable

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    sender_id VARCHAR(255) NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    latest_timestamp FLOAT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_conversations_latest_timestamp ON conversations (latest_timestamp);
CREATE TABLE IF NOT EXISTS conversation_events (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    sender_id VARCHAR(255) NOT NULL,
    seq INTEGER NOT NULL,
    type_name VARCHAR(255) NOT NULL,
    timestamp FLOAT NOT NULL,
    data TEXT NOT NULL,
    CONSTRAINT uq_conversation_events_sender_seq UNIQUE (sender_id, seq)
);
"""
UPSERT = """
INSERT INTO conversations (sender_id, last_seq, latest_timestamp) VALUES (?, ?, ?)
ON CONFLICT (sender_id) DO UPDATE SET
    last_seq = conversations.last_seq + excluded.last_seq,
    latest_timestamp = MAX(conversations.latest_timestamp, excluded.latest_timestamp)
RETURNING last_seq
"""
INSERT_EVENT = "INSERT INTO conversation_events (sender_id, seq, type_name, timestamp, data) VALUES (?, ?, ?, ?, ?)"


class SQLiteTrackerStore(TrackerStore):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.display_url = f"sqlite:///{self.path}"
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backline-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, list[tuple], asyncio.Future]] = []
        self._writing: asyncio.Lock | None = None

    # -- the store thread -------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            try:
                _retry_locked(lambda: _prepare(conn))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, lambda: fn(self._connection()))
        except StoreUnavailable:
            raise
        except (sqlite3.Error, OSError) as error:
            raise unavailable(self.display_url, error) from error

    async def run_on_connection(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in the store's thread (maintenance and tests)."""
        return await self._run(fn)

    # -- TrackerStore ---------------------------------------------------------------------------

    async def load(self, sender_id: str) -> list[dict]:
        rows = await self._run(lambda c: c.execute(
            "SELECT data FROM conversation_events WHERE sender_id = ? ORDER BY seq", (sender_id,)).fetchall())
        return decode_events([data for (data,) in rows], self.display_url)

    async def append(self, sender_id: str, events: list[dict]) -> None:
        # Encode before touching the database: a bad event fails the whole append up front.
        encoded = [json.dumps(event) for event in events]
        if not encoded:
            return
        now = time.time()
        rows = [(str(e.get("event", "")), event_timestamp(e, now), data) for e, data in zip(events, encoded)]
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((sender_id, rows, future))
        if self._writing is None:
            self._writing = asyncio.Lock()
        async with self._writing:
            if not future.done():   # nobody committed us yet: commit everything that is waiting
                batch, self._pending = self._pending, []
                try:
                    await self._run(lambda c: _write(c, [(s, r) for s, r, _ in batch]))
                except BaseException as error:
                    for _, _, waiting in batch:
                        if not waiting.done():  # one exception object each: no shared tracebacks
                            waiting.set_exception(_copy_error(error))
                else:
                    for _, _, waiting in batch:
                        if not waiting.done():
                            waiting.set_result(None)
        await future

    async def delete(self, sender_id: str) -> bool:
        def erase(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                gone = c.execute("DELETE FROM conversations WHERE sender_id = ?", (sender_id,)).rowcount
                gone += c.execute("DELETE FROM conversation_events WHERE sender_id = ?", (sender_id,)).rowcount
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no copy left behind in the WAL file
            return bool(gone)

        return await self._run(erase)

    async def exists(self, sender_id: str) -> bool:
        return await self._run(lambda c: c.execute(
            "SELECT 1 FROM conversations WHERE sender_id = ?", (sender_id,)).fetchone() is not None)

    async def senders(self) -> list[str]:
        return await self._run(lambda c: [s for (s,) in c.execute("SELECT sender_id FROM conversations")])

    async def purge(self, older_than: float) -> int:
        def purge(c: sqlite3.Connection) -> int:
            with _transaction(c):
                stale = [s for (s,) in c.execute(
                    "DELETE FROM conversations WHERE latest_timestamp < ? RETURNING sender_id", (older_than,))]
                c.executemany("DELETE FROM conversation_events WHERE sender_id = ?", [(s,) for s in stale])
            if stale:
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return len(stale)

        return await self._run(purge)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        def shut(_: Any) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, shut, None)


def _prepare(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout=30000")   # other processes (bot forget) may write
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL survives a killed process
    conn.execute("PRAGMA secure_delete=ON")     # erased conversations are overwritten
    # Take the write lock before reading the schema: two processes creating it at once would
    # otherwise both upgrade a read lock, and SQLite refuses one without waiting.
    with _transaction(conn):
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)


def _retry_locked(step: Callable[[], T], attempts: int = 100) -> T:
    """Switching a new file to WAL while another process does the same can fail at once with
    "database is locked" (SQLite does not wait there); it succeeds a moment later."""
    for attempt in range(attempts):
        try:
            return step()
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.02)
    raise AssertionError("unreachable")


def _copy_error(error: BaseException) -> BaseException:
    if isinstance(error, StoreUnavailable):
        return type(error)(str(error))
    return StoreUnavailable(f"{type(error).__name__}: {error}")


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (nothing half-saved)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if kind is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:  # SQLite may have rolled back already (I/O errors)
            self.conn.execute("ROLLBACK")


def _write(conn: sqlite3.Connection, batch: list[tuple[str, list[tuple]]]) -> None:
    with _transaction(conn):
        for sender_id, rows in batch:
            (last_seq,) = conn.execute(UPSERT, (sender_id, len(rows), max(r[1] for r in rows))).fetchone()
            first = last_seq - len(rows) + 1
            conn.executemany(INSERT_EVENT, [(sender_id, first + i, kind, stamp, data)
                                            for i, (kind, stamp, data) in enumerate(rows)])
