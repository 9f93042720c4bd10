"""The default store: conversations in an embedded SQLite file (WAL), for one server process.

The standard library's sqlite3 writes in one dedicated thread, so the event loop never waits
for the disk, and there is no async-driver overhead per statement. Appends that arrive while a
write is in progress are committed together in the next transaction (group commit: one disk
sync for all of them): each append is still all-or-nothing, and a reply is only sent after its
events are committed. Reads (a turn's window: a few dozen rows) run on the event loop through a
second, memory-mapped connection: WAL lets them go on while a commit waits for the disk, and
they cost less than a handoff to a thread. Same tables as the PostgreSQL store (both made
from bot/stores/tables.py), so data can move between them.

Durability: `synchronous=FULL` by default (endpoints.yml `tracker_store: {synchronous: normal}`
trades it for speed): every commit is on disk before its reply is sent, so acknowledged turns
survive a killed process, an OS crash and a power cut. With NORMAL they survive a killed
process only. A database file that is deleted or replaced while the server runs makes every
later operation fail (StoreUnavailable, /health 503) instead of writing into a vanished file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy.dialects import sqlite as sqlite_dialect

from bot.stores.base import (
    StoreUnavailable,
    TrackerStore,
    Window,
    decode_checkpoint,
    decode_events,
    encode_append,
    event_timestamp,
    stale,
    unavailable,
)
from bot.stores.tables import ADDED_COLUMNS, added_column, create_statements

T = TypeVar("T")
log = logging.getLogger(__name__)
SYNCHRONOUS = ("full", "normal", "extra")
# The tables of bot/stores/tables.py as SQLite writes them (the PostgreSQL store uses the same).
_DIALECT = sqlite_dialect.dialect()
SCHEMA = create_statements(_DIALECT)
UPSERT = """
INSERT INTO conversations (sender_id, last_seq, latest_timestamp) VALUES (?, ?, ?)
ON CONFLICT (sender_id) DO UPDATE SET
    last_seq = conversations.last_seq + excluded.last_seq,
    latest_timestamp = MAX(conversations.latest_timestamp, excluded.latest_timestamp)
RETURNING last_seq
"""
INSERT_EVENT = "INSERT INTO conversation_events (sender_id, seq, type_name, timestamp, data) VALUES (?, ?, ?, ?, ?)"


class SQLiteTrackerStore(TrackerStore):
    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = Path(path)
        self.display_url = f"sqlite:///{self.path}"
        self.synchronous = str(synchronous).lower()
        if self.synchronous not in SYNCHRONOUS:
            raise ValueError(f"endpoints.yml: tracker_store synchronous {synchronous!r} is not supported; "
                             f"use one of: {', '.join(SYNCHRONOUS)}")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backline-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None
        self._checkpoint_due = False   # an erase could not clear the WAL yet (a reader held it)
        self._pending: list[tuple[str, list[tuple], int | None, tuple | None, asyncio.Future]] = []
        self._writing: asyncio.Lock | None = None

    # -- the store thread -------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            try:
                _retry_locked(lambda: _prepare(conn, self.synchronous))
                stat = os.stat(self.path)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self._file_id = (stat.st_dev, stat.st_ino)
            return conn
        self._check_file()
        return self._conn

    def _reader(self) -> sqlite3.Connection:
        """The reading connection, used on the event loop (opened after the writer made the schema)."""
        if self._read_conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            # Every write invalidates this connection's page cache; reading the file through a
            # memory map instead of one read() per page keeps a window's load cheap.
            conn.execute(f"PRAGMA mmap_size={READ_MMAP_BYTES}")
            self._read_conn = conn
        self._check_file()
        return self._read_conn

    def _check_file(self) -> None:
        # An open connection keeps working on a deleted or replaced file, where nothing
        # survives a restart: refuse instead.
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        if stat is None or (stat.st_dev, stat.st_ino) != self._file_id:
            raise StoreUnavailable(f"store {self.display_url}: the database file was deleted or replaced "
                                   "while the server ran; nothing more is saved there. Restore it and restart")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` in the writing thread."""
        loop = asyncio.get_running_loop()
        with self._failures():
            return await loop.run_in_executor(self._thread, lambda: fn(self._connection()))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` on the event loop's own thread: a WAL read never waits for the
        writer, and one from the page cache takes a fraction of a millisecond, less than
        handing it to a thread and back (which also makes both threads fight for the GIL)."""
        if self._conn is None:
            await self._run(lambda c: None)   # the writer opens the file and makes the schema
        with self._failures():
            return fn(self._reader())

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        """sqlite3 and OS errors as StoreUnavailable (URL named, nothing of the turn saved)."""
        try:
            yield
        except StoreUnavailable:
            raise
        except (sqlite3.Error, OSError) as error:
            raise unavailable(self.display_url, error) from error

    # -- TrackerStore ---------------------------------------------------------------------------

    async def load(self, sender_id: str) -> list[dict]:
        rows = await self._read(lambda c: c.execute(
            "SELECT data FROM conversation_events WHERE sender_id = ? ORDER BY seq", (sender_id,)).fetchall())
        return decode_events([data for (data,) in rows], self.display_url)

    async def load_window(self, sender_id: str) -> Window:
        def read(c: sqlite3.Connection) -> tuple[Any, int, list]:
            with _reading(c):
                row = c.execute("SELECT checkpoint, checkpoint_seq FROM conversations WHERE sender_id = ?",
                                (sender_id,)).fetchone()
                state, seq = row if row else (None, 0)
                return state, seq, c.execute("SELECT data FROM conversation_events WHERE sender_id = ? AND seq > ? "
                                             "ORDER BY seq", (sender_id, seq)).fetchall()

        state, seq, rows = await self._read(read)
        checkpoint = decode_checkpoint(state, seq, self.display_url)
        return Window(decode_events([data for (data,) in rows], self.display_url), checkpoint)

    async def load_after(self, sender_id: str, seq: int) -> tuple[list[dict], int]:
        def read(c: sqlite3.Connection) -> tuple[list, int]:
            with _reading(c):
                row = c.execute("SELECT last_seq FROM conversations WHERE sender_id = ?", (sender_id,)).fetchone()
                rows = c.execute("SELECT data FROM conversation_events WHERE sender_id = ? AND seq > ? ORDER BY seq",
                                 (sender_id, seq)).fetchall()
                return rows, row[0] if row else 0

        rows, last = await self._read(read)
        return decode_events([data for (data,) in rows], self.display_url), last

    async def append(self, sender_id: str, events: list[dict], *, expected_seq: int | None = None,
                     checkpoint: dict[str, Any] | None = None) -> None:
        encoded, kept = encode_append(events, expected_seq, checkpoint)
        if not encoded:
            return
        now = time.time()
        rows = [(str(e.get("event", "")), event_timestamp(e, now), data) for e, data in zip(events, encoded)]
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((sender_id, rows, expected_seq, kept, future))
        if self._writing is None:
            self._writing = asyncio.Lock()
        async with self._writing:
            if not future.done():   # nobody committed us yet: commit everything that is waiting
                await self._commit_pending()
        await future

    async def _commit_pending(self) -> None:
        """Write every waiting append in one go and settle each one's future."""
        batch, self._pending = self._pending, []
        try:
            refused = await self._run(lambda c: self._write(c, [item[:4] for item in batch]))
        except BaseException as error:
            for *_, waiting in batch:
                if not waiting.done():  # one exception object each: no shared tracebacks
                    waiting.set_exception(_copy_error(error))
        else:
            for index, (*_, waiting) in enumerate(batch):
                if waiting.done():
                    continue
                if index in refused:
                    waiting.set_exception(stale(self.display_url, *refused[index]))
                else:
                    waiting.set_result(None)

    def _write(self, conn: sqlite3.Connection, batch: list[tuple]) -> dict[int, tuple[int, int]]:
        refused = _write(conn, batch)
        if self._checkpoint_due:
            self._checkpoint_due = not _clear_wal(conn, wait=0.0)
        return refused

    async def delete(self, sender_id: str) -> bool:
        def erase(c: sqlite3.Connection) -> bool:
            with _transaction(c):
                gone = c.execute("DELETE FROM conversations WHERE sender_id = ?", (sender_id,)).rowcount
                gone += c.execute("DELETE FROM conversation_events WHERE sender_id = ?", (sender_id,)).rowcount
            self._erased(c)  # no copy left behind in the WAL file
            return bool(gone)

        return await self._run(erase)

    async def purge(self, older_than: float) -> int:
        def purge(c: sqlite3.Connection) -> int:
            with _transaction(c):
                stale = [s for (s,) in c.execute(
                    "DELETE FROM conversations WHERE latest_timestamp < ? RETURNING sender_id", (older_than,))]
                c.executemany("DELETE FROM conversation_events WHERE sender_id = ?", [(s,) for s in stale])
            if stale:
                self._erased(c)
            return len(stale)

        return await self._run(purge)

    def _erased(self, conn: sqlite3.Connection) -> None:
        """Clear the WAL after an erase so the erased text is nowhere in the files. A reader
        holding an old snapshot keeps the WAL in use: wait a moment, then retry after later writes."""
        if not _clear_wal(conn, wait=ERASE_WAL_WAIT_SECONDS):
            self._checkpoint_due = True
            log.warning("erased conversation text is still in the WAL file of %s (a reader holds it); "
                        "it is cleared after a later write", self.display_url)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        def shut(_: Any) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, shut, None)


ERASE_WAL_WAIT_SECONDS = 1.0
READ_MMAP_BYTES = 256 * 2**20


def _prepare(conn: sqlite3.Connection, synchronous: str = "full") -> None:
    conn.execute("PRAGMA busy_timeout=30000")   # other processes (bot forget) may write
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is synced at every commit (acknowledged turns survive an OS crash);
    # NORMAL only survives a killed process.
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA secure_delete=ON")     # erased conversations are overwritten
    # Take the write lock before reading the schema: two processes creating it at once would
    # otherwise both upgrade a read lock, and SQLite refuses one without waiting.
    with _transaction(conn):
        for statement in SCHEMA:
            conn.execute(statement)
        have = {row[1] for row in conn.execute("PRAGMA table_info(conversations)")}
        for name in ADDED_COLUMNS:  # files of older releases get the columns added since
            if name not in have:
                conn.execute(f"ALTER TABLE conversations ADD COLUMN {added_column(name, _DIALECT)}")


def _clear_wal(conn: sqlite3.Connection, wait: float) -> bool:
    """PRAGMA wal_checkpoint(TRUNCATE) until it reports done (busy = 0), for up to `wait` s.
    Polled without the busy timeout, which would block every other conversation for 30 s."""
    deadline = time.monotonic() + wait
    conn.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
    finally:
        conn.execute("PRAGMA busy_timeout=30000")


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


class _reading:
    """One read transaction, so a window's checkpoint and events come from one snapshot."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN")
        return self.conn

    def __exit__(self, *exc: Any) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")


def _write(conn: sqlite3.Connection, batch: list[tuple]) -> dict[int, tuple[int, int]]:
    """Commit every append of the batch in one transaction; returns {index: (expected, found)}
    for the appends refused because their conversation changed since they read it."""
    refused: dict[int, tuple[int, int]] = {}
    with _transaction(conn):
        for index, (sender_id, rows, expected, kept) in enumerate(batch):
            if expected is not None:
                row = conn.execute("SELECT last_seq FROM conversations WHERE sender_id = ?", (sender_id,)).fetchone()
                found = row[0] if row else 0
                if found != expected:
                    refused[index] = (expected, found)
                    continue
            (last_seq,) = conn.execute(UPSERT, (sender_id, len(rows), max(r[1] for r in rows))).fetchone()
            first = last_seq - len(rows) + 1
            conn.executemany(INSERT_EVENT, [(sender_id, first + i, kind, stamp, data)
                                            for i, (kind, stamp, data) in enumerate(rows)])
            if kept is not None:
                conn.execute("UPDATE conversations SET checkpoint_seq = ?, checkpoint = ? WHERE sender_id = ?",
                             (kept[0], kept[1], sender_id))
    return refused


def sqlite_path(config: dict[str, Any], project_root: Path) -> Path | None:
    """The database file of a `type: sql` endpoints.yml section that names SQLite (`dialect:
    sqlite`, the default, or a `sqlite:///file` url); None when it names another database."""
    raw_url = config.get("url")
    if isinstance(raw_url, str) and "://" in raw_url:
        scheme, _, rest = raw_url.partition("://")
        if scheme.split("+")[0].lower() != "sqlite":
            return None
        db = rest[1:] if rest.startswith("/") else rest   # sqlite:///rel.db, sqlite:////abs.db
    else:
        if str(config.get("dialect") or "sqlite").lower() != "sqlite":
            return None
        db = str(config.get("db") or ".bot/conversations.db")
    path = Path(db.split("?")[0] or ".bot/conversations.db")
    return path if path.is_absolute() else Path(project_root) / path
