"""What a resource of the Partner API is, as data: the one place an operator, the client, the SQL transfer, the
check and the lineage read it from.

Light to import on purpose: DAG files import the operators at parse time, and parsing must not pay for pydantic
models or msgspec structs. A declaration names its model and key struct by ``"module:name"``; they are imported
on first use (:func:`resolve`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any

from airflow_provider_consentio.errors import ConsentioConfigError

MODELS = "airflow_provider_consentio.models"


@cache
def resolve(reference: str) -> Any:
    """The object a ``"module:name"`` reference names (a model, a key struct)."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Choices:
    """A read parameter's allowed values, held by a model module (``"module:NAME"``, a tuple)."""

    reference: str


@dataclass(frozen=True)
class AssetName:
    """The Asset a task updates: ``<stem>__<connection id>``, URI ``consentio://<connection id>/<path>``.

    Both may name a parameter of the read (``{kind}``: ``consentio_sale_orders``, ``orders/sale``).
    """

    stem: str
    path: str


@dataclass(frozen=True)
class Read:
    """How the API lists a resource: one GET, its parameters, and what its answer is assumed to hold.

    :param path: below ``/v2/partner/<workspace id>``.
    :param keys: the key struct read of every record (``"module:Struct"``); the rest travels as exact bytes.
    :param typed: wire path -> kind of further fields, checked where present (client/shapes.py's kinds).
    :param documented: the model whose fields are the record's documented ones, or the field names themselves.
    :param envelope: the object key the array may arrive in; None: a bare array.
    :param window: the query parameters of a ``[start, end)`` window (RFC 3339), if the listing takes one.
    :param params: its other parameters: name -> what it takes: None (any text), :class:`Choices`, ``"date"``
        (sent ISO 8601) or ``"instant"`` (a timezone-aware datetime, sent as RFC 3339).
    :param required: the parameters a request must give.
    :param records_per_request: the export's default sizing target: about this many records per answer.
    :param window_size: the export's default longest sub-window.
    :param asset: the Asset an export of it updates by default (None: none).
    :param readers: the operators, sensors and triggers that read it: those a drift of its answers breaks
        (``consentio check`` names them).
    :param title: what ``consentio check`` calls the listing (default: the resource's plural).
    """

    path: str
    keys: str
    typed: Mapping[str, str] = field(default_factory=dict)
    documented: str | frozenset[str] = frozenset()
    envelope: str | None = None
    window: tuple[str, str] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    records_per_request: int = 2000
    window_size: timedelta = timedelta(hours=1)
    asset: AssetName | None = None
    readers: tuple[str, ...] = ()
    title: str | None = None

    @property
    def windowed(self) -> bool:
        return self.window is not None

    @property
    def key_struct(self) -> Any:
        return resolve(self.keys)

    @property
    def documented_fields(self) -> frozenset[str]:
        if not isinstance(self.documented, str):
            return self.documented
        named = resolve(self.documented)  # a model, or a set of names
        return frozenset(getattr(named, "model_fields", named))


@dataclass(frozen=True)
class Write:
    """How the API takes records of a resource: one request per batch, keyed so that a batch can be sent again.

    :param method: ``POST`` or ``PUT``; ``path`` below ``/v2/partner/<workspace id>``.
    :param model: the pydantic model of one record (``"module:Model"``); its ``to_wire()`` is the record's body.
    :param key_field: the record's key: the API's idempotency key, or the caller's reference of a create.
    :param body_key: the body is ``{body_key: [record, ...]}``; None: one record per request, the body itself.
    :param saved_key: the answer's key listing the saved records (per-record failures come in ``errors``).
    :param item_field: each record goes as its value of this field (``{"hash_ids": ["a", ...]}``), not whole.
    :param idempotent: False for a create, which the client never sends twice blindly.
    :param rejected_key_name: how a summary names the key of a rejected record.
    :param asset: the Asset a write updates by default (None: none).
    """

    method: str
    path: str
    model: str
    key_field: str
    body_key: str | None
    saved_key: str | None = None
    item_field: str | None = None
    idempotent: bool = True
    rejected_key_name: str = "key"
    asset: AssetName | None = None

    @property
    def model_class(self) -> Any:
        return resolve(self.model)

    def body(self, records: Any) -> Any:
        """The request body of one batch of validated models."""
        if self.body_key is None:
            (record,) = records
            return record.to_wire()
        if self.item_field is not None:
            return {self.body_key: [getattr(record, self.item_field) for record in records]}
        return {self.body_key: [record.to_wire() for record in records]}


@dataclass(frozen=True)
class ChildRows:
    """Rows of a list inside each record (an order's ``items``), for the SQL transfer's child table."""

    name: str
    path: str
    model: str
    parent_columns: tuple[str, ...]
    key: tuple[str, ...]
    rename: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TableSpec:
    """The SQL transfer's table of a resource: one row per record, typed columns from the model's fields."""

    name: str
    key: tuple[str, ...]
    model: str
    leave_out: tuple[str, ...] = ()
    child: ChildRows | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Every table a load writes, unprefixed."""
        return (self.name, self.child.name) if self.child else (self.name,)


@dataclass(frozen=True)
class Resource:
    """One resource of the Partner API, declared once.

    :param name: its registry key (``resources.by_name``), also the SQL transfer's ``resource=``.
    :param noun: one record in log lines (``"product"``); ``nouns`` the plural.
    :param lineage: the API dataset's name in lineage (``catalogue/products``; may name a read parameter:
        ``orders/{kind}``).
    """

    name: str
    noun: str
    nouns: str
    lineage: str
    read: Read | None = None
    write: Write | None = None
    table: TableSpec | None = None

    def lineage_name(self, **params: Any) -> str:
        return self.lineage.format(**params)

    def counted(self, count: int) -> str:
        """``1 product``, ``2 products``."""
        return f"{count} {self.noun if count == 1 else self.nouns}"

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The read's parameters, each checked against the declaration; None values are left out."""
        if self.read is None:
            raise ConsentioConfigError(f"The Partner API does not list {self.nouns}")
        given = {name: value for name, value in params.items() if value is not None}
        unknown = sorted(set(given) - set(self.read.params))
        if unknown:
            raise ConsentioConfigError(
                f"the {self.nouns} listing takes no parameter {', '.join(unknown)} "
                f"(it takes {', '.join(self.read.params) or 'none'})"
            )
        missing = [name for name in self.read.required if name not in given]
        if missing:
            raise ConsentioConfigError(f"the {self.nouns} listing needs {', '.join(missing)}")
        for name, value in given.items():
            choices = self.read.params[name]
            if isinstance(choices, Choices):
                choices = resolve(choices.reference)
            if isinstance(choices, tuple) and value not in choices:
                raise ConsentioConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return given
