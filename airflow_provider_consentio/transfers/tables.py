"""The SQL tables of each exported resource: one declaration per resource, its columns derived from the wire models.

A table holds one row per record, keyed by the API's ID; the fields people query get typed columns (read from the
record's top-level field of the same name); the record's whole JSON goes to the ``raw`` column, so a field the API
adds later is never lost. The typed columns are the fields of the resource's model (models.py,
models/catalogue.py), each typed from the model's annotation:

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


# Each resource's tables, unprefixed: known without importing the models (DAG files parse without them).
RESOURCE_TABLES: dict[str, tuple[str, ...]] = {
    "orders": ("orders", "order_items"),
    "purchase_needs": ("purchase_needs",),
    "products": ("products",),
    "clients": ("clients",),
    "addresses": ("addresses",),
}
RESOURCES = tuple(RESOURCE_TABLES)


def _tables() -> dict[str, Table]:
    from airflow_provider_consentio.models import Order, OrderItem, PurchaseNeed
    from airflow_provider_consentio.models.catalogue import Client, ClientAddress, Product

    items = ChildTable(
        name=RESOURCE_TABLES["orders"][1],
        path="items",
        parent_columns=("order_id",),
        key=("order_id", "item_id"),
        columns=model_columns(OrderItem, rename={"id": "item_id"}),
    )
    declarations = {
        "orders": (("id",), model_columns(Order, leave_out=("items",)), items),
        "purchase_needs": (("code",), model_columns(PurchaseNeed), None),
        "products": (("sku",), model_columns(Product), None),
        "clients": (("client_external_id",), model_columns(Client), None),
        "addresses": (("external_id",), model_columns(ClientAddress), None),
    }
    return {
        resource: Table(resource, RESOURCE_TABLES[resource][0], key, columns, child=child)
        for resource, (key, columns, child) in declarations.items()
    }


def table_names(resource: str) -> tuple[str, ...]:
    """The tables a load of ``resource`` writes, unprefixed (orders: ``orders`` and ``order_items``)."""
    if resource not in RESOURCE_TABLES:
        raise ConsentioConfigError(f"resource must be one of {', '.join(RESOURCES)}, got {resource!r}")
    return RESOURCE_TABLES[resource]


def table_for(resource: str) -> Table:
    """The declaration of ``resource`` (one of RESOURCES)."""
    table_names(resource)
    return _tables()[resource]
