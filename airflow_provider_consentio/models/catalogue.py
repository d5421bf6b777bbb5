"""Wire models of the seller's catalogue (products, base prices, price groups, clients, addresses) and of promoted
orders. Part of the models layer (see models.py): users give natural types, these models validate them and write
the wire form; the endpoint layer (client/endpoints.py) holds the paths and bodies.

Documented: the endpoints, the Counterpart fields, price-group fields, matching base prices by sku or ean_code,
and that product numbers and multi-value fields travel as strings. Working ASSUMPTIONS where the docs are silent:
* Products: ``sku`` (1..64 characters) is the upsert key and ``name`` (1..256) is required; ``ean_code`` is 8 to 14
  digits (EAN-8 .. GTIN-14); ``price_unit`` and each of ``sale_units`` is one of PRICE_UNITS; other fields are kept
  (lenient, as for orders) and sent as strings too. Multi-value fields are comma-separated, so a value must not
  itself hold a comma.
* Price groups: one row per (pricegroup_id, product); ``pricegroup_id`` 1..64, ``pricegroup_name`` 1..256.
* Clients: ``client_external_id`` 1..64, ``client_name`` 1..256, each phone 1..32, ``rate_id`` and each rate 1..64.
* Addresses: keyed by their own ``external_id`` (1..64), linked by ``client_external_id``; ``country`` is an ISO
  3166-1 alpha-2 code; coordinates are JSON numbers.
* Promoted orders: the caller's ``reference`` travels as the order's ``external_id`` and comes back on the order
  (GET /order), which is what makes a retry safe (see operators/promoted_orders.py); amounts are strings.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from airflow_provider_consentio.models import ExactNumber, IsoDate, Text32, Text64, Text256
from airflow_provider_consentio.models.write_fields import read_only

PriceUnit = Literal["box", "pallet", "kg", "piece"]
PRICE_UNITS: tuple[str, ...] = get_args(PriceUnit)
DeliveryMethod = Literal["delivery", "pickup"]

Text128 = Annotated[str, Field(min_length=1, max_length=128)]
Text16 = Annotated[str, Field(min_length=1, max_length=16)]
EanCode = Annotated[str, Field(pattern=r"^[0-9]{8,14}$")]
Price = Annotated[ExactNumber, Field(ge=0)]
Coordinate = Annotated[ExactNumber, Field(ge=-180, le=180)]
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _values(value: Any) -> Any:
    """A multi-value field from a list, or from a comma-separated text (a CSV cell or an SQL column)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _no_commas(values: list[str] | None) -> list[str] | None:
    for value in values or []:
        if "," in value:
            raise ValueError(f"a value must not hold a comma (the API joins values with commas), got {value!r}")
    return values


MultiValue = Annotated[list[Text64], BeforeValidator(_values)]


def wire_number(value: Decimal) -> str:
    """A number as the API's JSON convention wants it: a string, every digit kept, never in exponent form."""
    return format(value, "f")


def _wire_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return wire_number(value)
    if isinstance(value, float):
        return wire_number(Decimal(repr(value)))
    if isinstance(value, list | tuple):
        return ",".join(_wire_text(item) for item in value)
    return str(value)


class Product(BaseModel):
    """A product to create or update (matched by ``sku``). Unknown fields are kept and sent as strings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    sku: Text64
    name: Text256
    ean_code: EanCode | None = None
    description: str | None = None
    base_price: Price | None = None
    price_unit: PriceUnit | None = None
    sale_units: Annotated[list[PriceUnit], BeforeValidator(_values)] | None = None
    tags: MultiValue | None = None
    id: int | None = read_only()
    created_at: str | None = read_only()
    updated_at: str | None = read_only()

    _tags_have_no_commas = field_validator("tags")(_no_commas)

    @model_validator(mode="after")
    def _extras_are_plain_values(self) -> Product:
        for name, value in (self.model_extra or {}).items():
            items = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(item, dict | list | tuple) for item in items):
                raise ValueError(f"{name} must be a text, a number or a list of them (the API takes strings)")
        return self

    def to_wire(self) -> dict[str, str]:
        """Every value as a string (numbers exact, lists comma-joined); unset fields left out."""
        return {name: _wire_text(value) for name, value in self.model_dump(exclude_none=True).items()}


def products_csv(products: Sequence[Product], *, separator: str, decimal_separator: str) -> bytes:
    """Products as a CSV document (header + rows) with the given separators: what POST /product takes as text/csv."""
    rows = [product.to_wire() for product in products]
    columns = list(dict.fromkeys(name for row in rows for name in row))
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=separator, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        if decimal_separator != "." and "base_price" in row:
            row["base_price"] = row["base_price"].replace(".", decimal_separator)
        writer.writerow([row.get(column, "") for column in columns])
    return out.getvalue().encode("utf-8")


class _MatchesAProduct(BaseModel):
    """A row that names its product by ``sku`` or, failing that, by ``ean_code``."""

    sku: Text64 | None = None
    ean_code: EanCode | None = None

    @model_validator(mode="after")
    def _names_a_product(self) -> _MatchesAProduct:
        if self.sku is None and self.ean_code is None:
            raise ValueError("names no product: give sku or ean_code")
        return self


class BasePrice(_MatchesAProduct):
    """A product's base price (PUT /products/baseprice), matched by sku or ean_code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_price: Price
    price_unit: PriceUnit | None = None

    def to_wire(self) -> dict[str, str]:
        return {name: _wire_text(value) for name, value in self.model_dump(exclude_none=True).items()}


class PriceGroupPrice(_MatchesAProduct):
    """One product's price in one price group (POST /pricegroups/sync).

    ``line`` is this row's key in the write path, ``<pricegroup_id>/<sku or ean_code>``; it is filled in from the
    other fields and never sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pricegroup_id: Text64
    pricegroup_name: Text256
    price: Price
    price_unit: PriceUnit | None = None
    line: str | None = Field(default=None, exclude=True)

    def to_wire(self) -> dict[str, str]:
        return {name: _wire_text(value) for name, value in self.model_dump(exclude_none=True).items()}


def price_group_line(record: Any) -> Any:
    """``record`` with its write-path key ``line`` (``G1/SKU-1``), so a row given twice is sent once."""
    if not isinstance(record, dict):
        return record
    group, product = record.get("pricegroup_id"), record.get("sku") or record.get("ean_code")
    return {**record, "line": f"{group if group is not None else '?'}/{product if product is not None else '?'}"}


class Client(BaseModel):
    """A client (the API's Counterpart), upserted by ``client_external_id``. Read-only fields are accepted (so an
    exported file can be sent again) and never sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_external_id: Text64
    client_name: Text256
    phones: Annotated[list[Text32], BeforeValidator(_values)] | None = None
    rate_id: Text64 | None = None
    rates: MultiValue | None = None
    consentio_client_id: int | None = read_only()
    workspace_id: int | None = read_only()
    created_at: str | None = read_only()
    updated_at: str | None = read_only()

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ClientAddress(BaseModel):
    """A client's address, keyed by its ``external_id`` and linked to its client by ``client_external_id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    external_id: Text64
    client_external_id: Text64
    street: Text256
    city: Text128
    postal_code: Text16
    region: Text128 | None = None
    country: str
    latitude: Annotated[Coordinate, Field(ge=-90, le=90)] | None = None
    longitude: Coordinate | None = None
    created_at: str | None = read_only()
    updated_at: str | None = read_only()

    @field_validator("country")
    @classmethod
    def _iso_country(cls, country: str) -> str:
        if not _COUNTRY.match(country):
            raise ValueError(f"must be an ISO 3166-1 alpha-2 code such as ES, got {country!r}")
        return country

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PromotedOrderItem(_MatchesAProduct):
    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: Annotated[ExactNumber, Field(gt=0)]
    unit: PriceUnit | None = None

    def to_wire(self) -> dict[str, str]:
        return {name: _wire_text(value) for name, value in self.model_dump(exclude_none=True).items()}


class PromotedOrder(BaseModel):
    """An order placed on behalf of a buyer. ``reference`` is the caller's own ID of the order (e.g. the ERP's
    order number): it travels with the order and is how a retry finds out whether the order already exists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: Text256
    buyer_email: str
    items: Annotated[list[PromotedOrderItem], Field(min_length=1)]
    delivery_method: DeliveryMethod = "delivery"
    delivery_date: IsoDate | None = None

    @field_validator("buyer_email")
    @classmethod
    def _email(cls, email: str) -> str:
        if len(email) > 254 or not _EMAIL.match(email):
            raise ValueError(f"must be an e-mail address, got {email!r}")
        return email

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "external_id": self.reference,  # ASSUMPTION: the order's external_id carries the caller's reference
            "buyer_email": self.buyer_email,
            "items": [item.to_wire() for item in self.items],
            "delivery_method": self.delivery_method,
        }
        if isinstance(self.delivery_date, date):
            body["delivery_date"] = self.delivery_date.isoformat()
        return body
