"""Input records for the write operators: a list (e.g. from XCom), a JSONL or CSV file, or a SQL query.

Whatever the source, each record becomes a dict of field name -> value:

* ``column_map`` renames source columns/keys to field names: ``{"code": "PN_CODE", "quantity": "QTY"}`` reads the
  field ``code`` from the column ``PN_CODE``. Unmapped columns keep their names.
* CSV and SQL values: an empty cell or NULL means "not given"; a ``metadata`` column holding a JSON object is
  parsed; columns named ``metadata.<key>`` are gathered into the ``metadata`` object.
* JSONL numbers are parsed as exact Decimals, so decimals survive the trip to the API digit for digit.

Every error names the source and the line or column at fault.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from typing import Any

from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioValidationError
from airflow_provider_consentio.models.jsonwire import loads
from airflow_provider_consentio.operators.base.storage import as_storage_path, read_lines

METADATA_PREFIX = "metadata."


def load_records(
    *,
    records: Sequence[Mapping[str, Any]] | None = None,
    input_path: Any = None,
    sql: str | None = None,
    sql_conn_id: str | None = None,
    sql_parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    column_map: Mapping[str, str] | None = None,
    required_fields: Sequence[str] = (),
    csv_delimiter: str = ",",
) -> tuple[list[dict[str, Any]], str]:
    """Read every record from the one source given; return them and a short name of the source."""
    # An empty list is an input (an upstream task found nothing to send), not a missing one.
    sources = (("records", records is not None), ("input_path", input_path), ("sql", sql))
    given = [name for name, value in sources if value]
    if len(given) != 1:
        raise ConsentioConfigError(
            f"give exactly one input: records, input_path or sql (got {', '.join(given) or 'none'})"
        )
    rename = _renamer(column_map or {})
    if records is not None:
        if not isinstance(records, list | tuple):
            raise ConsentioConfigError(f"records must be a list of objects, got {type(records).__name__}")
        return [rename(dict(r)) if isinstance(r, Mapping) else r for r in records], "records"
    if sql:
        if not sql_conn_id:
            raise ConsentioConfigError("sql needs sql_conn_id: the Airflow connection of the database to query")
        rows = _sql_rows(sql_conn_id, sql, sql_parameters)
        return _tabular(rows, rename, required_fields, f"query on {sql_conn_id!r}"), f"SQL on {sql_conn_id}"
    path = as_storage_path(input_path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return [rename(r) for r in _jsonl_records(path)], str(path)
    if suffix == ".csv":
        return _tabular(_csv_rows(path, csv_delimiter), rename, required_fields, str(path)), str(path)
    raise ConsentioConfigError(f"input_path {str(path)!r}: use a .jsonl, .ndjson or .csv file")


def _renamer(column_map: Mapping[str, str]) -> Any:
    source_to_field = {source: field for field, source in column_map.items()}

    def rename(record: Any) -> Any:
        # A JSONL line that is not an object passes through, for validation to name it by its position.
        if not source_to_field or not isinstance(record, Mapping):
            return record
        return {source_to_field.get(key, key): value for key, value in record.items()}

    return rename


def _jsonl_records(path: Any) -> Iterator[Any]:
    with path.open("rb") as raw:
        for line_number, line in enumerate(read_lines(raw), start=1):
            if not line.strip():
                continue
            try:
                yield loads(line.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ConsentioValidationError(
                    f"{path} line {line_number}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                    [f"line {line_number}: not UTF-8"],
                ) from None
            except ValueError as exc:
                raise ConsentioValidationError(
                    f"{path} line {line_number}: invalid JSON ({exc})", [f"line {line_number}: invalid JSON"]
                ) from None


def _csv_rows(path: Any, delimiter: str) -> Iterator[dict[str, Any]]:
    with path.open("rb") as raw:
        reader = csv.DictReader(_utf8_lines(raw, path), delimiter=delimiter, strict=True)
        try:
            for row in reader:
                if None in row:
                    raise ConsentioValidationError(
                        f"{path} line {reader.line_num}: more values than the header has columns",
                        [f"line {reader.line_num}: too many values"],
                    )
                yield row
        except csv.Error as exc:
            raise ConsentioValidationError(
                f"{path} line {reader.line_num}: malformed CSV ({exc})", [f"line {reader.line_num}: {exc}"]
            ) from None


def _utf8_lines(raw: Any, path: Any) -> Iterator[str]:
    """The file's lines, decoded one by one: a decoder reading ahead in blocks would blame the wrong line.

    Splitting the bytes first is safe: CR and LF never occur inside a multi-byte UTF-8 character. Lines end at LF,
    CRLF or a lone CR, as with ``newline=""``.
    """
    line_number = 0
    for chunk in read_lines(raw):
        for line in chunk.splitlines(keepends=True):
            line_number += 1
            try:
                yield line.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ConsentioValidationError(
                    f"{path} line {line_number}: not UTF-8 text ({exc.reason} at byte {exc.start + 1} of the line); "
                    "save the file as UTF-8",
                    [f"line {line_number}: not UTF-8"],
                ) from None


def _sql_rows(conn_id: str, sql: str, parameters: Any) -> Iterator[dict[str, Any]]:
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection(conn_id).get_hook()
    if not isinstance(hook, DbApiHook):
        raise ConsentioConfigError(f"connection {conn_id!r} is not a SQL database connection (its hook is {hook!r})")
    with closing(hook.get_conn()) as conn, closing(conn.cursor()) as cursor:
        cursor.execute(sql, parameters) if parameters else cursor.execute(sql)
        columns = [description[0] for description in cursor.description or ()]
        for row in cursor:
            yield dict(zip(columns, row, strict=True))


def _tabular(
    rows: Iterable[dict[str, Any]], rename: Any, required_fields: Sequence[str], source: str
) -> list[dict[str, Any]]:
    """Rows of a CSV file or a query as records: required columns checked once, blanks dropped, metadata built."""
    records: list[dict[str, Any]] = []
    for position, row in enumerate(rows, start=1):
        record = rename(row)
        if position == 1:
            missing = [name for name in required_fields if name not in record]
            if missing:
                raise ConsentioValidationError(
                    f"{source}: missing required column(s) {', '.join(missing)} (found: {', '.join(record)}); "
                    "rename them or map them with column_map",
                    [f"missing column {name}" for name in missing],
                )
        records.append(_clean_row(record, f"{source} row {position}"))
    return records


def _clean_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    record: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        if key.startswith(METADATA_PREFIX):
            metadata[key.removeprefix(METADATA_PREFIX)] = value
        elif key == "metadata" and isinstance(value, str):
            try:
                record[key] = loads(value)
            except ValueError:
                record[key] = value  # left for validation to reject, naming the record's code
        else:
            record[key] = value
    if metadata:
        base = record.get("metadata")
        record["metadata"] = {**base, **metadata} if isinstance(base, dict) else metadata
    return record
