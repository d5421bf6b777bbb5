"""ConsentioToSqlOperator: Consentio export files into typed SQL tables, exact, incremental and all or nothing.

common.sql is an extra (``airflow-provider-consentio[sql]``): this module imports it only inside ``execute``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseOperator

from airflow_provider_consentio.assets import ASSET_GROUP
from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.operators.base.common import (
    SUMMARY_LISTS_AT_MOST,
    ConsentioInvalidRecordsError,
    ProgressLog,
    listing,
    plural,
)
from airflow_provider_consentio.operators.base.lineage import LineageMixin, sql_table_dataset, storage_dataset
from airflow_provider_consentio.transfers.tables import table_for, table_names

if TYPE_CHECKING:
    from airflow.sdk import Context

# Lineage lists this many input files (a year and a bit of day files) and leaves the rest out.
LINEAGE_FILES_AT_MOST = 400


def sql_table_asset(sql_conn_id: str, table: str, schema: str | None = None) -> Asset:
    """The Asset of one table a load writes; schedule a DAG on it to run when the table changed."""
    where = f"{schema}.{table}" if schema else table
    return Asset(
        name=f"consentio_sql__{sql_conn_id}__{where}",
        uri=f"consentio-sql://{sql_conn_id}/{schema or '_'}/{table}",
        group=ASSET_GROUP,
        extra={"connection": sql_conn_id, "table": where},
    )


def input_files(value: Any) -> list[str]:
    """The files to load from a path, a list of paths, or an export operator's summary (XCom), or a list of them.

    A summary of the export by period names every day's file (``path_template``), of another export its ``path``.
    """
    if isinstance(value, Mapping):
        if "path_template" in value:
            from airflow_provider_consentio.operators.partitioned_export import partition_files

            return [path for _, path in partition_files(value)]
        if "path" in value:
            return [str(value["path"])]
        raise ConsentioConfigError(
            f"input_path: a summary without 'path' or 'path_template' (keys: {', '.join(value)})"
        )
    if isinstance(value, list | tuple):
        return [path for item in value for path in input_files(item)]
    if not value:
        raise ConsentioConfigError("input_path is empty: give a file, a list of files or an export's summary")
    return [str(value)]


def _lines(path: str) -> Iterator[bytes]:
    """The file's lines, read as they are needed."""
    from airflow_provider_consentio.operators.base.storage import as_storage_path, read_lines, storage_errors

    # A generator: what the loader does with a line never raises in here, only the reads do.
    with storage_errors("Reading", path), as_storage_path(path).open("rb") as stream:
        yield from read_lines(stream)


class ConsentioToSqlOperator(LineageMixin, BaseOperator):
    """Load Consentio export files (JSONL, as the export operators write them) into a resource's SQL tables.

    Works with every database whose Airflow connection has a common.sql hook (``DbApiHook``): COPY on Postgres,
    the dialect's inserts elsewhere (tested on Postgres and SQLite). See the README's "Into a SQL database" for
    the tables and their columns.

    * Merge: one row per key; a record replaces its row only when its ``updated_at`` is newer, so an older file
      loaded after a newer one, and a rerun, change nothing. An order's items are replaced with it (an item removed
      by an edit disappears). Within one load, the newest version of a key wins.
    * All or nothing: every file is staged, then merged in one transaction (a first load into empty Postgres
      tables is COPY'd straight into them, in one transaction too); a failed or killed load leaves each table as
      it was.
    * Bad input: a record without its key, or with a value that does not fit its column (a bad number or
      timestamp), is rejected and named by file, line and key. More than ``max_rejected`` fail the task before
      anything is written (without retries: the same files would fail again); fewer are left out and listed.
    * Returns ``{"resource", "files", "read", "tables": {table: {"inserted", "updated", "unchanged", "rejected"
      [, "deleted"]}}, "rejected_count", "rejected": [...]}``; each table's Asset event carries its counts.

    :param input_path: a file (local or any ObjectStoragePath, e.g. ``s3://``), a list of them, or the summary of
        an export operator (``export.output``), including the export by period (every day's file). Templated.
    :param sql_conn_id: the database's Airflow connection.
    :param resource: ``orders`` (tables ``orders`` and ``order_items``), ``purchase_needs``, ``products``,
        ``clients`` or ``addresses``.
    :param table_prefix: prepended to each table's name (``erp_`` -> ``erp_orders``).
    :param schema: the tables' schema; default: the connection's.
    :param create_tables: create missing tables and add missing columns (columns the user added are left alone);
        with False, a missing table or column fails the task before anything is read.
    :param max_rejected: how many rejected records are tolerated.
    """

    template_fields: Sequence[str] = ("input_path",)
    ui_color = "#e8f1ee"

    def __init__(
        self,
        *,
        input_path: Any,
        sql_conn_id: str,
        resource: str = "orders",
        table_prefix: str = "",
        schema: str | None = None,
        create_tables: bool = True,
        max_rejected: int = 0,
        **kwargs: Any,
    ) -> None:
        if max_rejected < 0:
            raise ConsentioConfigError(f"max_rejected must not be negative, got {max_rejected}")
        tables = table_names(resource)  # an unknown resource fails at parse time
        kwargs.setdefault("outlets", [sql_table_asset(sql_conn_id, table_prefix + name, schema) for name in tables])
        super().__init__(**kwargs)
        self.input_path = input_path
        self.sql_conn_id = sql_conn_id
        self.resource = resource
        self.table_prefix = table_prefix
        self.schema = schema
        self.create_tables = create_tables
        self.max_rejected = max_rejected

    @staticmethod
    def _files(files: list[str]) -> Iterator[tuple[str, Iterator[bytes]]]:
        return ((path, _lines(path)) for path in files)

    def get_db_hook(self) -> Any:
        from airflow.providers.common.sql.hooks.sql import DbApiHook
        from airflow.sdk import BaseHook

        hook = BaseHook.get_connection(self.sql_conn_id).get_hook(hook_params={"log_sql": False})
        if not isinstance(hook, DbApiHook):
            raise ConsentioConfigError(
                f"connection {self.sql_conn_id!r} is not a SQL database connection (its hook is {type(hook).__name__})"
            )
        return hook

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.transfers.dialects import SqlDialect
        from airflow_provider_consentio.transfers.sql_load import TableLoader

        files = input_files(self.input_path)
        hook = self.get_db_hook()
        dialect = SqlDialect(hook)
        loader = TableLoader(table_for(self.resource), dialect, prefix=self.table_prefix, schema=self.schema)
        progress = ProgressLog()
        self.log.info(
            "Loading %s into %s (%s, connection %s)",
            plural(len(files), "file"),
            ", ".join(target for target, _, _ in loader.table_columns()),
            dialect.name,
            self.sql_conn_id,
        )

        def report(done: int, path: str, in_file: int, total: int) -> None:
            if progress.due(done / len(files)):
                self.log.info(
                    "File %d/%d %s: %s staged; %s so far (%.0f records/s)",
                    done,
                    len(files),
                    path,
                    plural(in_file, "record"),
                    plural(total, "record"),
                    progress.rate(total),
                )

        connection = hook.get_conn()
        try:
            loader.ensure_tables(connection, create=self.create_tables, log=self.log)
            cursor = connection.cursor()
            first_load = loader.load_into_empty_tables(cursor, self._files(files), progress=report)
            if first_load is None:
                connection.rollback()  # not a first load after all: nothing of it is kept
                cursor = connection.cursor()
                loader.create_staging(cursor)
                staged = loader.stage_files(cursor, self._files(files), progress=report)
            else:
                staged, counts = first_load
            rejected = [str(rejection) for rejection in staged.rejections]
            if len(rejected) > self.max_rejected:
                raise ConsentioInvalidRecordsError(
                    f"{len(rejected)} of {staged.records + len(rejected)} records cannot be loaded "
                    f"(max_rejected={self.max_rejected}); nothing was written:\n{listing(rejected, 'records')}",
                    rejected[:SUMMARY_LISTS_AT_MOST],
                )
            if rejected:
                self.log.warning(
                    "Leaving out %s:\n%s", plural(len(rejected), "rejected record"), listing(rejected, "records")
                )
            staged_at = progress.elapsed()
            if first_load is None:
                counts = loader.merge(cursor, connection, staged)
            connection.commit()
        except BaseException:
            with suppress(Exception):
                connection.rollback()
            raise
        finally:
            with suppress(Exception):
                connection.close()
        counts[loader.table.name].rejected = len(rejected)
        has_child = {loader.table.child.name} if loader.table.child else set()
        tables = {name: table_counts.as_dict(name in has_child) for name, table_counts in counts.items()}
        self.log.info(
            "Loaded %s from %s in %.1fs (staged in %.1fs, merged in %.1fs): %s",
            plural(staged.records, "record"),
            plural(len(files), "file"),
            progress.elapsed(),
            staged_at,
            progress.elapsed() - staged_at,
            tables,
        )
        summary = {
            "resource": self.resource,
            "files": len(files),
            "read": staged.records + len(rejected),
            "tables": tables,
            "rejected_count": len(rejected),
            "rejected": rejected[:SUMMARY_LISTS_AT_MOST],
        }
        self._record_observations(context, hook, files, staged.records, tables)
        return summary

    def _record_observations(
        self, context: Context, hook: Any, files: list[str], records: int, tables: dict[str, dict[str, int]]
    ) -> None:
        """Lineage (files in, tables out) and each table's Asset event (its counts)."""
        written = {name: counts["inserted"] + counts["updated"] for name, counts in tables.items()}
        self.record_lineage(
            [storage_dataset(path) for path in files[:LINEAGE_FILES_AT_MOST]],
            [sql_table_dataset(hook, self.schema, self.table_prefix + name, written[name]) for name in tables],
        )
        by_uri = {sql_table_asset(self.sql_conn_id, self.table_prefix + name, self.schema).uri: name for name in tables}
        for outlet in self.outlets:
            if isinstance(outlet, Asset) and outlet.uri in by_uri:
                name = by_uri[outlet.uri]
                context["outlet_events"][outlet].extra = {
                    "table": self.table_prefix + name,
                    "resource": self.resource,
                    "files": len(files),
                    "records": records,
                    **tables[name],
                }
