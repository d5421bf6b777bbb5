"""Export files into a resource's tables: read -> typed rows -> staging -> one merge transaction.

No Airflow here: the operator (consentio_to_sql.py) gives a DB-API connection, the dialect and the files.

1. The tables are created when missing and missing columns added (one short transaction of its own); columns the
   user added are left alone.
2. Every line of every file becomes a typed row (and its items' rows) in temporary staging tables, in the same
   transaction as the merge; a record without its key, or with a value that does not fit its column, is rejected
   and named (file, line, key). Over ``max_rejected`` the load stops before the merge: nothing was written.
3. The merge (one transaction): the newest staged version of each key; a verdict per key (new, newer than the
   table's row, or not); the upsert of the new and newer ones; each of their items deleted and written again. A
   rerun, and an older file loaded after a newer one, find every key "not newer" and write nothing.

A first load on Postgres (the table empty, every key once in the files) skips staging: the rows are COPY'd straight
into the tables, in one transaction all the same (a repeated key sends the load back to staging).
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec

from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.transfers.dialects import SqlDialect
from airflow_provider_consentio.transfers.tables import ChildTable, Column, Table

SEQ = "consentio_seq"
VERDICT = "consentio_verdict"
FLUSH_EVERY = 5000  # staged records per COPY / executemany
NEW, NEWER, NOT_NEWER = "i", "u", "n"
_PY_TYPES: dict[str, Any] = {
    "text": str,
    "bigint": int,
    "numeric": Decimal,
    "timestamp": datetime,
    "date": date,
    "boolean": bool,
}


@dataclass(frozen=True)
class Rejection:
    path: str
    line: int
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} line {self.line} ({self.key}): {self.reason}"


@dataclass
class TableCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    deleted: int = 0

    def as_dict(self, with_deleted: bool) -> dict[str, int]:
        counts = {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged}
        counts["rejected"] = self.rejected
        if with_deleted:
            counts["deleted"] = self.deleted
        return counts


class RecordTooBad(ValueError):
    """A record that cannot be loaded; the message says why."""


def _struct(name: str, columns: Sequence[Column], extra: Sequence[tuple[str, Any, Any]] = ()) -> Any:
    fields = [(column.path, _PY_TYPES[column.type] | None, None) for column in columns]
    return msgspec.defstruct(name, [*fields, *extra], gc=False)


def _getter(paths: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    get = operator.attrgetter(*paths)
    return (lambda record: (get(record),)) if len(paths) == 1 else get


class RowBuilder:
    """Decodes one JSONL line into the typed row of its table (and its child rows), in the dialect's form."""

    def __init__(self, table: Table, dialect: SqlDialect) -> None:
        self.table, self.dialect = table, dialect
        self.child = table.child
        extra: list[tuple[str, Any, Any]] = []
        if self.child:
            item: Any = _struct(f"{self.child.name}_row", self.child.columns)
            extra.append((self.child.path, list[item] | None, None))
        self.decoder = msgspec.json.Decoder(_struct(f"{table.name}_row", table.columns, extra), strict=False)
        self.values = _getter([column.path for column in table.columns])
        self.formats = [dialect.formats[column.type] for column in table.columns]
        names = [column.name for column in table.columns]
        self.key_positions = [names.index(key) for key in table.key]
        if self.child:
            self.child_values = _getter([column.path for column in self.child.columns])
            self.child_formats = [dialect.formats[column.type] for column in self.child.columns]
            child_names = [column.name for column in self.child.columns]
            own_key = [key for key in self.child.key if key not in self.child.parent_columns]
            self.child_key_positions = [child_names.index(key) for key in own_key]

    def key_name(self, line: bytes) -> str:
        """``id=123`` (or ``id=?``) for messages, read leniently from a line that failed to decode."""
        try:
            record = msgspec.json.decode(line)
        except msgspec.DecodeError:
            record = None
        values = [
            record.get(self.table.column(key).path) if isinstance(record, dict) else None for key in self.table.key
        ]
        return ", ".join(
            f"{key}={'?' if value is None else value}" for key, value in zip(self.table.key, values, strict=True)
        )

    def rows(self, line: bytes) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], tuple[Any, ...]]:
        """(the record's row, its child rows, its key); raises :class:`RecordTooBad`."""
        try:
            record = self.decoder.decode(line)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise RecordTooBad(str(exc)) from None
        if self.dialect.refuses_nul and b"\\u0000" in line:
            raise RecordTooBad("holds the character U+0000, which Postgres cannot store in text or JSONB")
        raw_values = self.values(record)
        key = tuple(raw_values[position] for position in self.key_positions)
        if any(part is None for part in key):
            missing = [name for name, part in zip(self.table.key, key, strict=True) if part is None]
            raise RecordTooBad(f"has no {', '.join(missing)} (the table's key)")
        row = self._format(raw_values, self.formats, self.table.columns, "$")
        row.append(self.dialect.raw(line.decode("utf-8")))
        children: list[tuple[Any, ...]] = []
        if self.child:
            children = self._child_rows(record, key)
        return tuple(row), children, key

    def _child_rows(self, record: Any, key: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        assert self.child is not None
        child: ChildTable = self.child
        parent = [self.formats[position](part) for position, part in zip(self.key_positions, key, strict=True)]
        rows, seen = [], set()
        for number, item in enumerate(getattr(record, child.path) or (), start=1):
            raw_values = self.child_values(item)
            own_key = tuple(raw_values[position] for position in self.child_key_positions)
            where = f"$.{child.path}[{number - 1}]"
            if any(part is None for part in own_key):
                raise RecordTooBad(f"{where} has no {child.columns[self.child_key_positions[0]].path} (its key)")
            if own_key in seen:
                raise RecordTooBad(f"{where}: item {own_key[0]} is listed twice")
            seen.add(own_key)
            values = self._format(raw_values, self.child_formats, child.columns, where)
            rows.append((*parent, self._line_number(number), *values))
        return rows

    def _line_number(self, number: int) -> Any:
        return self.dialect.formats["bigint"](number)

    def _format(
        self, values: Sequence[Any], formats: Sequence[Callable[[Any], Any]], columns: Sequence[Column], where: str
    ) -> list[Any]:
        null = self.dialect.null
        try:
            return [null if value is None else form(value) for value, form in zip(values, formats, strict=True)]
        except (ValueError, OverflowError, TypeError):
            for value, form, column in zip(values, formats, columns, strict=True):  # find the one at fault
                try:
                    null if value is None else form(value)
                except (ValueError, OverflowError, TypeError) as exc:
                    raise RecordTooBad(f"{exc} - at `{where}.{column.path}`") from None
            raise


@dataclass
class StagedLoad:
    """What reading the files staged."""

    records: int = 0
    child_records: int = 0
    files: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    repeated_keys: bool = False


class StagingWriter:
    """Writes batches of staged rows; with COPY, in a thread of its own, so the next batch is read and typed while
    Postgres takes the last one (the driver waits on the socket without holding the GIL)."""

    PENDING_AT_MOST = 2  # batches in memory waiting for the database

    def __init__(self, cursor: Any, dialect: SqlDialect, *, sequence: bool = True) -> None:
        self.cursor, self.dialect, self.sequence = cursor, dialect, sequence
        self.pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="consentio-copy") if dialect.uses_copy else None
        )
        self.pending: deque[Future[None]] = deque()

    def __enter__(self) -> StagingWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            while self.pending:
                self.pending.popleft().result()  # the first failure is raised
        finally:
            if self.pool:
                self.pool.shutdown(wait=True, cancel_futures=True)

    def write(self, stage: str, columns: Sequence[str], rows: list[Any]) -> None:
        if self.pool is None:
            marks = ", ".join([self.dialect.placeholder] * len(columns))
            self.cursor.executemany(f"INSERT INTO {stage} ({', '.join(columns)}) VALUES ({marks})", rows)
            return
        text = "".join(["\t".join(row) + "\n" for row in rows])
        while len(self.pending) >= self.PENDING_AT_MOST:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self.dialect.copy, self.cursor, stage, columns, text))


class TableLoader:
    """Loads export files of one resource into its table(s) through one DB-API connection."""

    def __init__(self, table: Table, dialect: SqlDialect, *, prefix: str = "", schema: str | None = None) -> None:
        self.table, self.dialect = table, dialect
        self.target = dialect.qualified(schema, prefix + table.name)
        self.child_target = dialect.qualified(schema, prefix + table.child.name) if table.child else None
        self.stage_names = [f"consentio_stage_{table.name}"] + (
            [f"consentio_stage_{table.child.name}"] if table.child else []
        )
        self.stage = dialect.quote(self.stage_names[0])
        self.child_stage = dialect.quote(self.stage_names[1]) if table.child else None
        self.verdicts = dialect.quote("consentio_verdicts")
        self.builder = RowBuilder(table, dialect)

    # --- tables ---------------------------------------------------------------------------------------------------

    def table_columns(self) -> list[tuple[str, list[tuple[str, str]], tuple[str, ...]]]:
        """(target, [(column, SQL type)], key) of each table this load writes."""
        types = self.dialect.types
        own = [(column.name, types[column.type]) for column in self.table.columns]
        tables = [(self.target, [*own, (self.table.raw, types["json"])], self.table.key)]
        if self.table.child and self.child_target:
            child = self.table.child
            parent = [
                (name, types[self.table.column(key).type])
                for name, key in zip(child.parent_columns, self.table.key, strict=True)
            ]
            columns = [*parent, (child.line_column, types["bigint"])]
            columns += [(column.name, types[column.type]) for column in child.columns]
            tables.append((self.child_target, columns, child.key))
        return tables

    def ensure_tables(self, connection: Any, *, create: bool, log: Any) -> None:
        """Create missing tables and add missing columns (``create``), or fail naming what is missing."""
        for target, columns, key in self.table_columns():
            present = self._existing_columns(connection, target)
            if present is None:
                if not create:
                    raise ConsentioConfigError(f"table {target} does not exist (create_tables=False): create it first")
                definitions = [
                    f"{self.dialect.quote(name)} {kind}{' NOT NULL' if name in key else ''}" for name, kind in columns
                ]
                keys = ", ".join(self.dialect.quote(name) for name in key)
                self._ddl(
                    connection,
                    f"CREATE TABLE IF NOT EXISTS {target} ({', '.join(definitions)}, PRIMARY KEY ({keys}))",
                    lambda: self._existing_columns(connection, target) is not None,  # noqa: B023 (called at once)
                )
                log.info("Created table %s", target)
                continue
            missing = [(name, kind) for name, kind in columns if name.lower() not in present]
            if missing and not create:
                raise ConsentioConfigError(
                    f"table {target} lacks the columns {', '.join(name for name, _ in missing)} (create_tables=False)"
                )
            for name, kind in missing:
                self._ddl(
                    connection,
                    f"ALTER TABLE {target} ADD COLUMN {self.dialect.quote(name)} {kind}",
                    lambda: name.lower() in (self._existing_columns(connection, target) or ()),  # noqa: B023
                )
                log.info("Added column %s %s to %s", name, kind, target)

    @staticmethod
    def _existing_columns(connection: Any, target: str) -> set[str] | None:
        cursor = connection.cursor()
        try:
            cursor.execute(f"SELECT * FROM {target} WHERE 1 = 0")
            names = {str(description[0]).lower() for description in cursor.description or ()}
        except Exception:  # the drivers' "no such table" errors share no class beyond DB-API's per-driver Error
            connection.rollback()
            return None
        finally:
            cursor.close()
        connection.rollback()
        return names

    @staticmethod
    def _ddl(connection: Any, sql: str, done: Callable[[], bool]) -> None:
        """Run one DDL statement; when it fails because a load running beside this one did the same first
        (Postgres fails all but one of concurrent CREATE TABLE IF NOT EXISTS), ``done()`` says so and all is well."""
        cursor = connection.cursor()
        try:
            cursor.execute(sql)
            connection.commit()
        except Exception:
            connection.rollback()
            if not done():
                raise
        finally:
            cursor.close()

    # --- staging --------------------------------------------------------------------------------------------------

    def create_staging(self, cursor: Any) -> None:
        self.dialect.prepare_staging(cursor)
        for stage, (_, columns, _) in zip(self.stage_names, self.table_columns(), strict=True):
            definitions = [f"{self.dialect.quote(name)} {kind}" for name, kind in columns]
            cursor.execute(self.dialect.temp_table(stage, [*definitions, f"{SEQ} BIGINT NOT NULL"]))
        cursor.execute(
            self.dialect.temp_table("consentio_verdicts", [f"{SEQ} BIGINT PRIMARY KEY", f"{VERDICT} CHAR(1) NOT NULL"])
        )

    def stage_files(
        self,
        cursor: Any,
        files: Iterable[tuple[str, Iterator[bytes]]],
        *,
        progress: Callable[[int, str, int, int], None],
    ) -> StagedLoad:
        """Stage every line of every (name, lines) file; rejections are collected, not raised."""
        staged = StagedLoad()
        with StagingWriter(cursor, self.dialect) as writer:
            self._read_into(writer, files, staged, self.stage_names_quoted(), progress, stop_on_repeat=False)
        return staged

    def stage_names_quoted(self) -> list[str]:
        return [self.dialect.quote(name) for name in self.stage_names]

    def load_into_empty_tables(
        self,
        cursor: Any,
        files: Iterable[tuple[str, Iterator[bytes]]],
        *,
        progress: Callable[[int, str, int, int], None],
    ) -> tuple[StagedLoad, dict[str, TableCounts]] | None:
        """Postgres, the tables empty (a first load): COPY straight into them, in this transaction, as nothing can
        be older there. Returns None (the caller rolls back and stages) when the table is not empty or a key turns
        up twice in the files (a straight COPY cannot keep only the newest)."""
        if not self.dialect.uses_copy:
            return None
        # A look without the lock first: a table that has committed rows means staging (and staging is right for
        # any table, should they vanish meanwhile), so such a load does not queue for the lock behind a first load,
        # which holds it while it reads its whole input (a backfill at 10,000 orders a day: loads waited up to 8 s).
        cursor.execute(f"SELECT 1 FROM {self.target} LIMIT 1")
        if cursor.fetchone() is not None:
            return None
        self.dialect.lock(cursor, self.target)
        cursor.execute(f"SELECT 1 FROM {self.target} LIMIT 1")
        if cursor.fetchone() is not None:
            return None
        if self.child_target:  # locked after the parent, as the merge does: loads side by side cannot deadlock
            self.dialect.lock(cursor, self.child_target)
        staged = StagedLoad()
        targets = [self.target, *([self.child_target] if self.child_target else [])]
        with StagingWriter(cursor, self.dialect, sequence=False) as writer:
            self._read_into(writer, files, staged, targets, progress, stop_on_repeat=True)
        if staged.repeated_keys:
            return None
        counts = {self.table.name: TableCounts(inserted=staged.records)}
        if self.table.child:
            counts[self.table.child.name] = TableCounts(inserted=staged.child_records)
        return staged, counts

    def _read_into(
        self,
        writer: StagingWriter,
        files: Iterable[tuple[str, Iterator[bytes]]],
        staged: StagedLoad,
        tables: Sequence[str],
        progress: Callable[[int, str, int, int], None],
        *,
        stop_on_repeat: bool,
    ) -> None:
        keys: set[tuple[Any, ...]] = set()
        rows: list[Any] = []
        child_rows: list[Any] = []
        sequence = writer.sequence
        for name, lines in files:
            in_file = 0
            for number, line in enumerate(lines, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row, children, key = self.builder.rows(line)
                except RecordTooBad as exc:
                    staged.rejections.append(Rejection(name, number, self.builder.key_name(line), str(exc)))
                    continue
                except UnicodeDecodeError as exc:
                    staged.rejections.append(Rejection(name, number, "?", f"not UTF-8 text ({exc.reason})"))
                    continue
                staged.records += 1
                staged.child_records += len(children)
                in_file += 1
                if key in keys:
                    staged.repeated_keys = True
                    if stop_on_repeat:
                        return
                keys.add(key)
                if sequence:
                    seq = self._seq(staged.records)
                    rows.append((*row, seq))
                    child_rows.extend((*child, seq) for child in children)
                else:
                    rows.append(row)
                    child_rows.extend(children)
                if len(rows) >= FLUSH_EVERY:
                    self._flush(writer, tables, rows, child_rows)
                    rows, child_rows = [], []
            staged.files += 1
            progress(staged.files, name, in_file, staged.records)
        self._flush(writer, tables, rows, child_rows)

    def _seq(self, number: int) -> Any:
        return self.dialect.formats["bigint"](number)

    def _flush(self, writer: StagingWriter, tables: Sequence[str], rows: list[Any], child_rows: list[Any]) -> None:
        for table, (_, columns, _), batch in zip(tables, self.table_columns(), (rows, child_rows), strict=False):
            if batch:
                names = [self.dialect.quote(name) for name, _ in columns]
                writer.write(table, [*names, SEQ] if writer.sequence else names, batch)

    # --- the merge ------------------------------------------------------------------------------------------------

    def merge(self, cursor: Any, connection: Any, staged: StagedLoad) -> dict[str, TableCounts]:
        """Write the staged records into the tables (the caller commits). Returns the counts per table."""
        quote, table = self.dialect.quote, self.table
        key = [quote(name) for name in table.key]
        version = quote(table.version)
        self.dialect.analyze(cursor, self.stage)
        if self.child_stage:
            self.dialect.analyze(cursor, self.child_stage)
        self.dialect.begin_merge(cursor, connection)
        if staged.repeated_keys:  # keep the newest version of each key (the last one read among equals)
            partition = ", ".join(key)
            cursor.execute(
                f"DELETE FROM {self.stage} WHERE {SEQ} NOT IN (SELECT {SEQ} FROM (SELECT {SEQ}, ROW_NUMBER() OVER"
                f" (PARTITION BY {partition} ORDER BY CASE WHEN {version} IS NULL THEN 1 ELSE 0 END,"
                f" {version} DESC, {SEQ} DESC) AS newest FROM {self.stage}) ranked WHERE newest = 1)"
            )
        self.dialect.lock(cursor, self.target)
        joined = " AND ".join(f"t.{name} = s.{name}" for name in key)
        newer = f"(t.{version} IS NULL AND s.{version} IS NOT NULL OR t.{version} < s.{version})"
        cursor.execute(
            f"INSERT INTO {self.verdicts} ({SEQ}, {VERDICT}) SELECT s.{SEQ}, CASE WHEN t.{key[0]} IS NULL THEN"
            f" '{NEW}' WHEN {newer} THEN '{NEWER}' ELSE '{NOT_NEWER}' END FROM {self.stage} s"
            f" LEFT JOIN {self.target} t ON {joined}"
        )
        counts = {table.name: self._verdict_counts(cursor, self.stage)}
        self._upsert(cursor)
        if self.table.child and self.child_stage and self.child_target:
            counts[self.table.child.name] = self._replace_children(cursor)
        return counts

    def _verdict_counts(self, cursor: Any, stage: str) -> TableCounts:
        cursor.execute(
            f"SELECT v.{VERDICT}, COUNT(*) FROM {stage} s JOIN {self.verdicts} v ON v.{SEQ} = s.{SEQ}"
            f" GROUP BY v.{VERDICT}"
        )
        by_verdict = {str(verdict).strip(): int(count) for verdict, count in cursor.fetchall()}
        return TableCounts(by_verdict.get(NEW, 0), by_verdict.get(NEWER, 0), by_verdict.get(NOT_NEWER, 0))

    def _upsert(self, cursor: Any) -> None:
        quote, table = self.dialect.quote, self.table
        names = [quote(name) for name in table.all_columns]
        key = [quote(name) for name in table.key]
        version = quote(table.version)
        chosen = (
            f"SELECT {', '.join('s.' + name for name in names)} FROM {self.stage} s JOIN {self.verdicts} v"
            f" ON v.{SEQ} = s.{SEQ} WHERE v.{VERDICT} IN ('{NEW}', '{NEWER}')"
        )
        updates = [name for name in names if name not in key]
        if self.dialect.name in ("postgresql", "sqlite"):
            cursor.execute(
                f"INSERT INTO {self.target} AS t ({', '.join(names)}) {chosen} ON CONFLICT ({', '.join(key)})"
                f" DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in updates)}"
                f" WHERE t.{version} IS NULL AND excluded.{version} IS NOT NULL OR t.{version} < excluded.{version}"
            )
            return
        on = " AND ".join(f"t.{name} = s.{name}" for name in key)
        cursor.execute(  # standard SQL's MERGE (SQL:2003): Postgres 15+, SQL Server, Oracle, Snowflake, BigQuery...
            f"MERGE INTO {self.target} t USING ({chosen}) s ON ({on})"
            f" WHEN MATCHED AND (t.{version} IS NULL AND s.{version} IS NOT NULL OR t.{version} < s.{version})"
            f" THEN UPDATE SET {', '.join(f'{name} = s.{name}' for name in updates)}"
            f" WHEN NOT MATCHED THEN INSERT ({', '.join(names)}) VALUES ({', '.join('s.' + name for name in names)})"
        )

    def _replace_children(self, cursor: Any) -> TableCounts:
        assert self.table.child and self.child_stage and self.child_target
        quote, child = self.dialect.quote, self.table.child
        counts = self._verdict_counts(cursor, self.child_stage)
        self.dialect.lock(cursor, self.child_target)
        (parent,), (key,) = child.parent_columns, self.table.key  # one key column: row values are not everywhere
        cursor.execute(
            f"DELETE FROM {self.child_target} WHERE {quote(parent)} IN (SELECT s.{quote(key)} FROM {self.stage} s"
            f" JOIN {self.verdicts} v ON v.{SEQ} = s.{SEQ} WHERE v.{VERDICT} = '{NEWER}')"
        )
        counts.deleted = max(cursor.rowcount, 0)
        names = ", ".join(quote(name) for name in child.all_columns)
        cursor.execute(
            f"INSERT INTO {self.child_target} ({names}) SELECT {', '.join('c.' + quote(n) for n in child.all_columns)}"
            f" FROM {self.child_stage} c JOIN {self.verdicts} v ON v.{SEQ} = c.{SEQ}"
            f" WHERE v.{VERDICT} IN ('{NEW}', '{NEWER}')"
        )
        return counts
