"""What differs between databases for a load: column types, value forms, how rows reach staging, and locking.

* Postgres: staging is filled with COPY (text format, written here), the merge locks each target table against
  other writers (readers go on) just before writing it, so loads running side by side cannot interleave.
* SQLite: no exact decimal type (a NUMERIC column rounds to 15 digits), so amounts are TEXT holding the exact
  digits; timestamps are UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` (fixed width, so text order is time order; the
  form SQLAlchemy reads back as datetimes); the merge takes the database's write lock first (BEGIN IMMEDIATE).
* Others: standard types and the driver's own parameter conversion; untested here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

INT64 = 2**63 - 1
TYPES: dict[str, dict[str, str]] = {
    "postgresql": {
        "text": "TEXT",
        "bigint": "BIGINT",
        "numeric": "NUMERIC",
        "timestamp": "TIMESTAMPTZ",
        "date": "DATE",
        "boolean": "BOOLEAN",
        "json": "JSONB",
    },
    "sqlite": {
        "text": "TEXT",
        "bigint": "INTEGER",
        "numeric": "TEXT",
        "timestamp": "TIMESTAMP",
        "date": "DATE",
        "boolean": "BOOLEAN",
        "json": "TEXT",
    },
    "mysql": {
        "text": "VARCHAR(1024)",
        "bigint": "BIGINT",
        "numeric": "DECIMAL(65, 30)",
        "timestamp": "DATETIME(6)",
        "date": "DATE",
        "boolean": "BOOLEAN",
        "json": "JSON",
    },
    "default": {
        "text": "VARCHAR(4000)",
        "bigint": "BIGINT",
        "numeric": "NUMERIC(38, 18)",
        "timestamp": "TIMESTAMP",
        "date": "DATE",
        "boolean": "BOOLEAN",
        "json": "TEXT",
    },
}


def checked_int(value: int) -> int:
    if not -INT64 - 1 <= value <= INT64:
        raise ValueError(f"{value} does not fit a 64-bit integer column")
    return value


def checked_decimal(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return value


def utc(value: datetime) -> datetime:
    """An aware UTC datetime; a time without offset is taken as UTC (as the API means it)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- Postgres COPY text format ---------------------------------------------------------------------------------------

COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


COPY_FORMATS: dict[str, Callable[[Any], str]] = {
    "text": copy_text,
    "bigint": lambda value: str(checked_int(value)),
    "numeric": lambda value: str(checked_decimal(value)),
    "timestamp": lambda value: utc(value).isoformat(),
    "date": date.isoformat,
    "boolean": lambda value: "t" if value else "f",
}

# --- parameters of executemany ---------------------------------------------------------------------------------------

SQLITE_FORMATS: dict[str, Callable[[Any], Any]] = {
    "text": lambda value: value,
    "bigint": checked_int,
    "numeric": lambda value: str(checked_decimal(value)),
    "timestamp": lambda value: utc(value).strftime("%Y-%m-%d %H:%M:%S.%f"),
    "date": date.isoformat,
    "boolean": int,
}
NATIVE_FORMATS: dict[str, Callable[[Any], Any]] = {
    "text": lambda value: value,
    "bigint": checked_int,
    "numeric": checked_decimal,
    "timestamp": utc,
    "date": lambda value: value,
    "boolean": bool,
}


class SqlDialect:
    """The load's view of one database (chosen from the hook's ``dialect_name``)."""

    def __init__(self, hook: Any) -> None:
        self.name = str(getattr(hook, "dialect_name", "default") or "default")
        self.types = TYPES.get(self.name, TYPES["default"])
        self.placeholder = str(getattr(hook, "placeholder", "%s"))
        self.quote_format = str(getattr(hook, "escape_word_format", '"{}"') or '"{}"')
        self.uses_copy = self.name == "postgresql"
        self.refuses_nul = self.name == "postgresql"  # text and JSONB values cannot hold U+0000 there
        formats = {"postgresql": COPY_FORMATS, "sqlite": SQLITE_FORMATS}.get(self.name, NATIVE_FORMATS)
        self.formats: dict[str, Callable[[Any], Any]] = formats
        self.null: Any = COPY_NULL if self.uses_copy else None
        self.raw: Callable[[str], Any] = copy_text if self.uses_copy else (lambda value: value)

    def quote(self, name: str) -> str:
        return self.quote_format.format(name)

    def qualified(self, schema: str | None, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)

    def prepare_staging(self, cursor: Any) -> None:
        """Postgres keeps temp tables in 8 MB of session memory by default; a load's staging spills far past that."""
        if self.name == "postgresql":
            cursor.execute("SET temp_buffers = '256MB'")  # only before the session's first temp table; freed after

    def temp_table(self, name: str, columns: Sequence[str]) -> str:
        on_commit = " ON COMMIT DROP" if self.name == "postgresql" else ""
        return f"CREATE TEMPORARY TABLE {self.quote(name)} ({', '.join(columns)}){on_commit}"

    def begin_merge(self, cursor: Any, connection: Any) -> None:
        """Make the merge's reads and writes one unit no other writer can interleave with."""
        if self.name == "sqlite":
            connection.commit()  # staging went to temp tables: nothing of the targets to keep apart
            cursor.execute("BEGIN IMMEDIATE")

    def lock(self, cursor: Any, table: str) -> None:
        """Keep other loads from writing ``table`` until this transaction ends (Postgres; readers go on)."""
        if self.name == "postgresql":
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")

    def analyze(self, cursor: Any, table: str) -> None:
        """Postgres plans temp tables blind (autovacuum never sees them) without this."""
        if self.name == "postgresql":
            cursor.execute(f"ANALYZE {table}")

    def copy(self, cursor: Any, table: str, columns: Sequence[str], text: str) -> None:
        """COPY ``text`` (COPY's text format) into ``table`` through psycopg 3 or psycopg2."""
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        data = text.encode("utf-8")
        if hasattr(cursor, "copy_expert"):  # psycopg2
            import io

            cursor.copy_expert(sql, io.BytesIO(data))
        else:
            with cursor.copy(sql) as copy:
                copy.write(data)
