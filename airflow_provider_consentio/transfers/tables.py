"""The SQL tables of each exported resource, built from its declaration (``Resource.table`` in resources/), its
columns derived from the wire model.

A table holds one row per record, keyed by the API's ID; the fields people query get typed columns (read from the
record's top-level field of the same name); the record's whole JSON goes to the ``raw`` column, so a field the API
adds later is never lost. The typed columns are the fields of the resource's model (models/),
each typed from the model's annotation:

=========================================== ================ =====================================================
model annotation                            column type      Postgres / SQLite / others
=========================================== ================ =====================================================
int                                         ``bigint``       BIGINT / INTEGER / BIGINT
Decimal (amounts, prices, quantities)       ``numeric``      NUMERIC / TEXT (exact digits) / NUMERIC(38, 18)
datetime, or a text field named ``*_at``    ``timestamp``    TIMESTAMPTZ / TIMESTAMP (UTC text) / TIMESTAMP
date                                        ``date``         DATE
bool                                        ``boolean``      BOOLEAN
str, Literal                                ``text``         TEXT / TEXT / VARCHAR(4000)
list, dict                                  (none)           in ``raw`` only
=========================================== ================ =====================================================

An order's items go to a child table keyed by (order, item), replaced together with their order.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from airflow_provider_consentio import resources
from airflow_provider_consentio.errors import ConsentioConfigError

COLUMN_TYPES = ("text", "bigint", "numeric", "timestamp", "date", "boolean")
RAW_COLUMN = "raw"
VERSION_COLUMN = "updated_at"


@dataclass(frozen=True)
class Column:
    """A typed column, filled from the record's field ``path`` (the wire name; the column may be renamed)."""

    name: str
    type: str
    path: str


@dataclass(frozen=True)
class ChildTable:
    """Rows read from a list inside each record (an order's ``items``), replaced whenever their record is.

    ``parent_columns`` are the parent's key columns repeated in each row; ``line`` numbers the rows from 1 in the
    order the record lists them.
    """

    name: str
    path: str
    parent_columns: tuple[str, ...]
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    line_column: str = "line"

    @property
    def all_columns(self) -> tuple[str, ...]:
        return (*self.parent_columns, self.line_column, *(column.name for column in self.columns))


@dataclass(frozen=True)
class Table:
    """One resource's table: key columns, typed columns, the raw JSON, and an optional child table."""

    resource: str
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    version: str = VERSION_COLUMN
    raw: str = RAW_COLUMN
    child: ChildTable | None = None

    @property
    def all_columns(self) -> tuple[str, ...]:
        return (*(column.name for column in self.columns), self.raw)

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


def model_columns(
    model: type[BaseModel], *, rename: dict[str, str] | None = None, leave_out: tuple[str, ...] = ()
) -> tuple[Column, ...]:
    """The typed columns of ``model``'s fields (see the module's table); lists and objects stay in ``raw`` only."""
    rename = rename or {}
    columns = []
    for name, info in model.model_fields.items():
        if name in leave_out:
            continue
        column_type = _column_type(info.annotation, name)
        if column_type is not None:
            columns.append(Column(rename.get(name, name), column_type, name))
    return tuple(columns)


def _column_type(annotation: Any, name: str) -> str | None:
    base = _unwrap(annotation)
    if base is bool:
        return "boolean"
    if base is int:
        return "bigint"
    if base is Decimal:
        return "numeric"
    if base is datetime or (base is str and name.endswith("_at")):
        return "timestamp"
    if base is date:
        return "date"
    if base is str or typing.get_origin(base) is typing.Literal:
        return "text"
    return None


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]``, ``X | None`` -> ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return None
            annotation = options[0]
        else:
            return annotation


def loadable() -> tuple[str, ...]:
    """The resources a load can write: those whose declaration has a table (resources/)."""
    return tuple(resource.name for resource in resources.ALL if resource.table is not None)


def table_names(resource: str) -> tuple[str, ...]:
    """The tables a load of ``resource`` writes, unprefixed (orders: ``orders`` and ``order_items``); known
    without importing the models (DAG files parse without them)."""
    spec = resources.by_name(resource).table if resource in loadable() else None
    if spec is None:
        raise ConsentioConfigError(f"resource must be one of {', '.join(loadable())}, got {resource!r}")
    return spec.names


def table_for(resource: str) -> Table:
    """The table of ``resource`` (one of :func:`loadable`), its columns typed from its declared model."""
    table_names(resource)
    spec = resources.by_name(resource).table
    assert spec is not None
    child = None
    if spec.child is not None:
        rows = spec.child
        child = ChildTable(
            name=rows.name,
            path=rows.path,
            parent_columns=rows.parent_columns,
            key=rows.key,
            columns=model_columns(resources.resolve(rows.model), rename=dict(rows.rename)),
        )
    columns = model_columns(resources.resolve(spec.model), leave_out=spec.leave_out)
    return Table(resource, spec.name, spec.key, columns, child=child)
