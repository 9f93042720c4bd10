"""The tables the SQL tracker stores keep conversations in: one definition for PostgreSQL
(bot/stores/sql.py, through SQLAlchemy) and SQLite (bot/stores/sqlite.py, which runs the DDL
below on the standard library's driver), so a database means the same to both.

One row per event in `conversation_events` (unique on sender_id + seq) and one row per
conversation in `conversations`: it hands out sequence numbers, remembers the latest event time
(for `purge`) and holds the latest checkpoint (the state after event number `checkpoint_seq`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("sender_id", String(255), primary_key=True),
    Column("last_seq", Integer, nullable=False),
    Column("latest_timestamp", Float, nullable=False, index=True),
    Column("checkpoint_seq", Integer, nullable=False, server_default=text("0")),
    Column("checkpoint", Text, nullable=True),
)

conversation_events = Table(
    "conversation_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("sender_id", String(255), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("data", Text, nullable=False),
    UniqueConstraint("sender_id", "seq", name="uq_conversation_events_sender_seq"),
    sqlite_autoincrement=True,  # ids never reused after a purge (as the first SQLite files)
)

# Columns of `conversations` added after the first release; older databases get them on open.
ADDED_COLUMNS = ("checkpoint_seq", "checkpoint")


def create_statements(dialect: Dialect) -> list[str]:
    """CREATE TABLE / CREATE INDEX ... IF NOT EXISTS for every table, in `dialect`'s SQL."""
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)).strip())
    return statements


def added_column(name: str, dialect: Dialect) -> str:
    """The column's definition as `ALTER TABLE conversations ADD COLUMN` takes it in `dialect`."""
    return dialect.ddl_compiler(dialect, None).get_column_specification(conversations.c[name])
