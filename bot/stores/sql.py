"""Conversations in PostgreSQL (several workers share it); also where the endpoints.yml
`type: sql` settings are read (the SQLite default is bot/stores/sqlite.py; the tables of both
are bot/stores/tables.py).

An append is one transaction: the conversation row is bumped (and row-locked) first, so
concurrent appends to one conversation queue up instead of colliding.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, exc, insert, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

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
from bot.stores.tables import ADDED_COLUMNS, added_column, conversation_events, conversations, metadata

# Serialises schema creation between workers starting at the same time (PostgreSQL).
_SCHEMA_LOCK_KEY = 0x6261636B  # "back"
_PURGE_CHUNK = 500
_CONNECTION_ERRORS = (exc.OperationalError, exc.InterfaceError, OSError, TimeoutError)
# SQLSTATE classes that mean "the server cannot serve now" (connection exception, operator
# intervention: "the database system is shutting down", admin shutdown): try again later.
_UNAVAILABLE_SQLSTATES = ("08", "57")


def _sqlstate(error: BaseException) -> str:
    for candidate in (getattr(error, "orig", None), getattr(getattr(error, "orig", None), "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return ""


def sql_url(config: dict[str, Any], project_root: Path) -> URL:
    """The SQLAlchemy URL for a Rasa-style `type: sql` section of endpoints.yml."""
    raw_url = config.get("url")
    if isinstance(raw_url, str) and "://" in raw_url:
        return _url_from_string(make_url(raw_url), project_root)
    dialect = str(config.get("dialect") or "sqlite").lower()
    if dialect == "sqlite":
        return _sqlite_url(str(config.get("db") or ".bot/conversations.db"), project_root)
    if dialect in ("postgresql", "postgres", "postgresql+asyncpg"):
        return _postgres_url(config, raw_url)
    raise ValueError(
        f"endpoints.yml: tracker_store dialect {dialect!r} is not supported; "
        "use `dialect: sqlite` or `dialect: postgresql`"
    )


def _url_from_string(url: URL, project_root: Path) -> URL:
    """`url: postgresql://...` or `url: sqlite:///...`."""
    backend = url.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return url.set(drivername="postgresql+asyncpg", query=_asyncpg_query(dict(url.query)))
    if backend == "sqlite":
        return _sqlite_url(url.database or "", project_root)
    raise ValueError(
        f"endpoints.yml: tracker_store url {url.render_as_string()!r} uses an unsupported "
        "database; use postgresql://... or sqlite:///..."
    )


def _postgres_url(config: dict[str, Any], raw_url: Any) -> URL:
    """PostgreSQL from separate keys (`username`, `host`, `db`...); a `url:` without a scheme is the host."""
    port = config.get("port")
    return URL.create(
        "postgresql+asyncpg",
        username=config.get("username"),
        password=None if config.get("password") is None else str(config["password"]),
        host=raw_url or config.get("host") or "localhost",
        port=int(port) if port else None,
        database=config.get("db") or "postgres",
        query=_asyncpg_query(config.get("query") or {}),
    )


def _asyncpg_query(query: dict[str, Any]) -> dict[str, Any]:
    """Rasa configs carry libpq's `sslmode`; asyncpg calls the same setting `ssl`."""
    query = {str(key): value for key, value in query.items()}
    if "sslmode" in query:
        query.setdefault("ssl", query.pop("sslmode"))
    return query


def _sqlite_url(db: str, project_root: Path) -> URL:
    path = Path(db)
    if not path.is_absolute():
        path = project_root / path
    return URL.create("sqlite", database=str(path))  # served by bot/stores/sqlite.py


def display_url(url: URL) -> str:
    """The URL as people write it (no driver suffix), password masked."""
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


class SQLTrackerStore(TrackerStore):
    """PostgreSQL tracker store on SQLAlchemy's async engine (asyncpg), for several workers.
    The SQLite default lives in bot/stores/sqlite.py (same tables)."""

    def __init__(self, url: URL) -> None:
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"SQLTrackerStore serves PostgreSQL; {url.get_backend_name()} URLs go to "
                             "create_tracker_store, which picks the SQLite store")
        self.url = url
        self.display_url = display_url(url)
        self._password = url.password
        self._schema_ready = False
        self._engine = create_async_engine(
            self.url,
            hide_parameters=True,  # statement parameters hold sender ids and message text
            pool_pre_ping=True,  # a connection the server dropped while idle is replaced
            connect_args={"timeout": 5.0, "command_timeout": 30.0},
        )

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Turn connection failures into StoreUnavailable (rolled back, nothing saved)."""
        try:
            yield
        except StoreUnavailable:
            raise
        except _CONNECTION_ERRORS as error:
            raise unavailable(self.display_url, error, self._password) from error
        except exc.DBAPIError as error:
            if error.connection_invalidated or _sqlstate(error).startswith(_UNAVAILABLE_SQLSTATES):
                raise unavailable(self.display_url, error, self._password) from error
            raise

    async def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        async with self._guard(), self._engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            await conn.run_sync(metadata.create_all)
            for name in ADDED_COLUMNS:  # older databases get the columns added since
                spec = added_column(name, conn.dialect)
                await conn.execute(text(f"ALTER TABLE conversations ADD COLUMN IF NOT EXISTS {spec}"))
        self._schema_ready = True

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        await self._ensure_schema()
        async with self._guard(), self._engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[AsyncConnection]:
        await self._ensure_schema()
        async with self._guard(), self._engine.connect() as conn:
            yield conn

    def _upsert(self) -> Any:
        """INSERT ... ON CONFLICT (PostgreSQL)."""
        return postgresql.insert(conversations)

    async def load(self, sender_id: str) -> list[dict]:
        query = (
            select(conversation_events.c.data)
            .where(conversation_events.c.sender_id == sender_id)
            .order_by(conversation_events.c.seq)
        )
        async with self._reader() as conn:
            rows = (await conn.execute(query)).scalars().all()
        return decode_events(rows, self.display_url)

    async def load_window(self, sender_id: str) -> Window:
        head = select(conversations.c.checkpoint_seq, conversations.c.checkpoint).where(
            conversations.c.sender_id == sender_id)
        async with self._reader() as conn:
            row = (await conn.execute(head)).first()
            seq, state = (row[0], row[1]) if row else (0, None)
            rows = (await conn.execute(self._events_after(sender_id, seq))).scalars().all()
        return Window(decode_events(rows, self.display_url), decode_checkpoint(state, seq, self.display_url))

    async def load_after(self, sender_id: str, seq: int) -> tuple[list[dict], int]:
        head = select(conversations.c.last_seq).where(conversations.c.sender_id == sender_id)
        async with self._reader() as conn:
            rows = (await conn.execute(self._events_after(sender_id, seq))).scalars().all()
            last = (await conn.execute(head)).scalar()
        events = decode_events(rows, self.display_url)
        return events, max(int(last or 0), seq + len(events))

    @staticmethod
    def _events_after(sender_id: str, seq: int) -> Any:
        return (select(conversation_events.c.data)
                .where(conversation_events.c.sender_id == sender_id, conversation_events.c.seq > seq)
                .order_by(conversation_events.c.seq))

    async def append(self, sender_id: str, events: list[dict], *, expected_seq: int | None = None,
                     checkpoint: dict[str, Any] | None = None) -> None:
        encoded, kept = encode_append(events, expected_seq, checkpoint)
        if not encoded:
            return
        now = time.time()
        stamps = [event_timestamp(event, now) for event in events]
        count = len(encoded)
        upsert = self._upsert().values(sender_id=sender_id, last_seq=count, latest_timestamp=max(stamps))
        upsert = upsert.on_conflict_do_update(
            index_elements=[conversations.c.sender_id],
            set_={
                "last_seq": conversations.c.last_seq + count,
                "latest_timestamp": case(
                    (
                        upsert.excluded.latest_timestamp > conversations.c.latest_timestamp,
                        upsert.excluded.latest_timestamp,
                    ),
                    else_=conversations.c.latest_timestamp,
                ),
            },
        ).returning(conversations.c.last_seq)
        async with self._transaction() as conn:
            # The upsert row-locks the conversation: concurrent appends queue up here, and the
            # number it returns tells whether another turn got in since this one read it.
            last_seq = (await conn.execute(upsert)).scalar_one()
            if expected_seq is not None and last_seq - count != expected_seq:
                raise stale(self.display_url, expected_seq, last_seq - count)  # rolls back
            first_seq = last_seq - count + 1
            rows = [
                {
                    "sender_id": sender_id,
                    "seq": first_seq + offset,
                    "type_name": str(event.get("event", "")),
                    "timestamp": stamp,
                    "data": data,
                }
                for offset, (event, stamp, data) in enumerate(zip(events, stamps, encoded))
            ]
            await conn.execute(insert(conversation_events), rows)
            if kept is not None:
                await conn.execute(conversations.update().where(conversations.c.sender_id == sender_id)
                                   .values(checkpoint_seq=kept[0], checkpoint=kept[1]))

    async def delete(self, sender_id: str) -> bool:
        async with self._transaction() as conn:
            gone = await conn.execute(delete(conversations).where(conversations.c.sender_id == sender_id))
            events_gone = await conn.execute(
                delete(conversation_events).where(conversation_events.c.sender_id == sender_id)
            )
        return bool(gone.rowcount or events_gone.rowcount)

    async def purge(self, older_than: float) -> int:
        async with self._transaction() as conn:
            # Deleting the conversation rows first locks them: an append racing with the purge
            # either lands before (and keeps the conversation) or starts a fresh one after.
            stale = (
                await conn.execute(
                    delete(conversations)
                    .where(conversations.c.latest_timestamp < older_than)
                    .returning(conversations.c.sender_id)
                )
            ).scalars().all()
            for start in range(0, len(stale), _PURGE_CHUNK):
                chunk = stale[start : start + _PURGE_CHUNK]
                await conn.execute(
                    delete(conversation_events).where(conversation_events.c.sender_id.in_(chunk))
                )
        return len(stale)

    async def ping(self) -> None:
        async with self._guard(), self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self._engine.dispose()
