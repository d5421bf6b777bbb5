"""The seller's catalogue as the sandbox holds it: products, base prices, price groups, clients and addresses, and
the promoted orders placed against it. Every rule of those endpoints lives here; the routes are in catalogue_api.py.

Wire ASSUMPTIONS (the docs give the paths and fields, not the bodies; see shared/consentio-api.md):
* Batches are ``{"<resource>": [...]}`` answered ``{"<resource>": [saved], "errors": ["<key>: <reason>"]}`` with
  HTTP 200 on per-row problems (as purchase needs): products, base_prices, pricegroups, clients, addresses.
* Products: numbers and multi-value fields travel as strings (``"12.50"``, ``"box,kg"``), as documented; ``sku``
  (1..64) is the upsert key, ``name`` (1..256) is required, ``ean_code`` is 8 to 14 digits, ``price_unit`` and each
  of ``sale_units`` is one of PRICE_UNITS; other fields are kept as given (strings). A known sku is updated with
  the fields given; ``updated_at`` moves only when a value changed.
* GET /products?from&to: products whose ``updated_at`` is in [from, to), sorted by (updated_at, sku), a bare array.
* Base prices match a product by ``sku`` or else ``ean_code``; price-group rows are upserted per (pricegroup_id,
  product) and must name an existing product (products come first, as the docs say).
* Clients: upsert by ``client_external_id``; ``consentio_client_id`` stays null until Consentio maps the client.
  Addresses: keyed by their ``external_id``, linked to an existing client by ``client_external_id``; coordinates
  are JSON numbers.
* POST /promoted-order: ``{"external_id", "buyer_email", "items": [{"sku" | "ean_code", "amount", "unit"}],
  "delivery_method", "delivery_date"}``; the order is a pending sale whose ``external_id`` (seller side) is the
  caller's reference, so GET /order finds it again.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_consentio.sandbox.data import parse_rfc3339, recompute_totals
from airflow_provider_consentio.sandbox.wire import has_nul, num

PRICE_UNITS = ("box", "pallet", "kg", "piece")
DELIVERY_METHODS = ("delivery", "pickup")
CSV_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "pl")
CSV_TYPES = ("product",)
MAX_ROWS_PER_REQUEST = 5000
PRODUCT_READ_ONLY = {"id", "created_at", "updated_at"}
CLIENT_READ_ONLY = {"consentio_client_id", "workspace_id", "created_at", "updated_at"}
ADDRESS_FIELDS = ("street", "city", "postal_code", "region", "country")
_EAN = re.compile(r"^[0-9]{8,14}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class CatalogueError(Exception):
    """A whole request refused (HTTP 400), e.g. a CSV without a header the sandbox can read."""


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def text_problem(record: dict[str, Any], name: str, limit: int, required: bool = True) -> str | None:
    value = record.get(name)
    if value is None:
        return f"{name} is required" if required else None
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        return f"{name} must be a string of 1 to {limit} characters"
    return None


def decimal_text(value: Any, name: str, *, minimum: Decimal | None = Decimal(0)) -> tuple[str | None, str | None]:
    """(the number as stored, problem): numbers travel as strings, e.g. "12.50"; a JSON number is refused."""
    if not isinstance(value, str):
        got = "a number" if isinstance(value, int | Decimal) and not isinstance(value, bool) else repr(value)
        return None, f'{name} must be a number written as a string (e.g. "12.50"), got {got}'
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None, f"{name} {value!r} is not a number"
    if not number.is_finite() or (minimum is not None and number < minimum):
        return None, f"{name} must not be negative" if number.is_finite() else f"{name} must be finite"
    return value.strip(), None


def _row_name(record: Any, *keys: str, position: int) -> str:
    if isinstance(record, dict):
        for key in keys:
            if isinstance(record.get(key), str) and record[key].strip():
                return str(record[key])
    return f"#{position}"


class Catalogue:
    """Products (by sku), price-group prices (by group and sku), clients and addresses (by external IDs)."""

    def __init__(self) -> None:
        self.products: dict[str, dict[str, Any]] = {}
        self.price_groups: dict[tuple[str, str], dict[str, Any]] = {}
        self.clients: dict[str, dict[str, Any]] = {}
        self.addresses: dict[str, dict[str, Any]] = {}
        self.next_product_id = 1

    # --- products ----------------------------------------------------------------------------------------------

    def upsert_products(self, records: list[Any], now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        saved, errors = [], []
        for position, record in enumerate(records, start=1):
            problems = product_problems(record)
            if problems:
                errors.append(f"{_row_name(record, 'sku', position=position)}: {'; '.join(problems)}")
                continue
            saved.append(self._store_product(record, now))
        return saved, errors

    def _store_product(self, record: dict[str, Any], now: datetime) -> dict[str, Any]:
        values = {k: v.strip() if k == "base_price" else v for k, v in record.items() if k not in PRODUCT_READ_ONLY}
        existing = self.products.get(record["sku"])
        if existing is None:
            product = {"id": self.next_product_id, **values, "created_at": stamp(now), "updated_at": stamp(now)}
            self.next_product_id += 1
        else:
            product = {**existing, **values}
            if product != existing:
                product["updated_at"] = _after(existing["updated_at"], now)
        self.products[record["sku"]] = product
        return product

    def products_changed(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        lower, upper = stamp(start.astimezone(UTC)), stamp(end.astimezone(UTC))
        selected = [p for p in self.products.values() if lower <= p["updated_at"] < upper]
        return sorted(selected, key=lambda product: (product["updated_at"], product["sku"]))

    def product_by(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The product a row names: by sku, else by ean_code."""
        if isinstance(record.get("sku"), str):
            return self.products.get(record["sku"])
        if isinstance(record.get("ean_code"), str):
            return next((p for p in self.products.values() if p.get("ean_code") == record["ean_code"]), None)
        return None

    def set_base_prices(self, records: list[Any], now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        saved, errors = [], []
        for position, record in enumerate(records, start=1):
            name = _row_name(record, "sku", "ean_code", position=position)
            problems = base_price_problems(record)
            product = self.product_by(record) if not problems else None
            if not problems and product is None:
                problems = [f"product {name} not found"]
            if problems:
                errors.append(f"{name}: {'; '.join(problems)}")
                continue
            assert product is not None
            changes = {"base_price": record["base_price"].strip()}
            if record.get("price_unit") is not None:
                changes["price_unit"] = record["price_unit"]
            saved.append(self._store_product({**changes, "sku": product["sku"]}, now))
        return saved, errors

    # --- price groups ----------------------------------------------------------------------------------------------

    def sync_price_groups(self, records: list[Any], now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        saved, errors = [], []
        for position, record in enumerate(records, start=1):
            product_name = _row_name(record, "sku", "ean_code", position=position)
            group = record.get("pricegroup_id") if isinstance(record, dict) else None
            name = f"{group if isinstance(group, str) else '?'}/{product_name}"
            problems = price_group_problems(record)
            product = self.product_by(record) if not problems else None
            if not problems and product is None:
                problems = [f"product {product_name} not found (create products before their price groups)"]
            if problems:
                errors.append(f"{name}: {'; '.join(problems)}")
                continue
            assert product is not None
            key = (record["pricegroup_id"], product["sku"])
            row = {
                "pricegroup_id": record["pricegroup_id"],
                "pricegroup_name": record["pricegroup_name"],
                "sku": product["sku"],
                "ean_code": product.get("ean_code"),
                "price": record["price"].strip(),
                "price_unit": record.get("price_unit") or product.get("price_unit"),
            }
            existing = self.price_groups.get(key)
            if existing is None or {k: existing[k] for k in row} != row:
                row["updated_at"] = stamp(now) if existing is None else _after(existing["updated_at"], now)
            else:
                row["updated_at"] = existing["updated_at"]
            self.price_groups[key] = row
            saved.append(row)
        return saved, errors

    # --- clients and addresses ---------------------------------------------------------------------------------

    def upsert_clients(
        self, records: list[Any], now: datetime, workspace_id: int
    ) -> tuple[list[dict[str, Any]], list[str]]:
        saved, errors = [], []
        for position, record in enumerate(records, start=1):
            problems = client_problems(record)
            if problems:
                errors.append(f"{_row_name(record, 'client_external_id', position=position)}: {'; '.join(problems)}")
                continue
            key = record["client_external_id"]
            values = {
                "client_external_id": key,
                "client_name": record["client_name"],
                "phones": list(record.get("phones") or []),
                "rate_id": record.get("rate_id"),
                "rates": list(record.get("rates") or []),
            }
            existing = self.clients.get(key)
            if existing is None:
                client = {**values, "consentio_client_id": None, "workspace_id": workspace_id}
                client |= {"created_at": stamp(now), "updated_at": stamp(now)}
            else:
                client = {**existing, **values}
                if client != existing:
                    client["updated_at"] = _after(existing["updated_at"], now)
            self.clients[key] = client
            saved.append(client)
        return saved, errors

    def upsert_addresses(self, records: list[Any], now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        saved, errors = [], []
        for position, record in enumerate(records, start=1):
            problems = address_problems(record)
            if not problems and record["client_external_id"] not in self.clients:
                problems = [f"client {record['client_external_id']} not found (create clients before their addresses)"]
            if problems:
                errors.append(f"{_row_name(record, 'external_id', position=position)}: {'; '.join(problems)}")
                continue
            values = {
                "external_id": record["external_id"],
                "client_external_id": record["client_external_id"],
                **{name: record.get(name) for name in ADDRESS_FIELDS},
                "latitude": record.get("latitude"),
                "longitude": record.get("longitude"),
            }
            existing = self.addresses.get(record["external_id"])
            if existing is None:
                address = {**values, "created_at": stamp(now), "updated_at": stamp(now)}
            else:
                address = {**existing, **values}
                if address != existing:
                    address["updated_at"] = _after(existing["updated_at"], now)
            self.addresses[record["external_id"]] = address
            saved.append(address)
        return saved, errors

    def addresses_of(self, client_external_id: str | None) -> list[dict[str, Any]]:
        selected = [
            a
            for a in self.addresses.values()
            if client_external_id is None or a["client_external_id"] == client_external_id
        ]
        return sorted(selected, key=lambda a: (a["client_external_id"], a["external_id"]))

    # --- promoted orders ---------------------------------------------------------------------------------------

    def promoted_items(self, items: Any) -> list[tuple[dict[str, Any], Decimal, str]]:
        """(product, amount, unit) per ordered item; raises CatalogueError naming the first bad item."""
        if not isinstance(items, list) or not items:
            raise CatalogueError("items must be a non-empty array")
        resolved = []
        for position, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                raise CatalogueError(f"item {position} must be an object")
            product = self.product_by(item)
            if product is None:
                name = _row_name(item, "sku", "ean_code", position=position)
                raise CatalogueError(f"item {position}: product {name} not found")
            amount, problem = decimal_text(item.get("amount"), "amount")
            if problem or Decimal(amount or "0") <= 0:
                raise CatalogueError(f"item {position}: {problem or 'amount must be positive'}")
            unit = item.get("unit") or product.get("price_unit") or "piece"
            if unit not in PRICE_UNITS:
                raise CatalogueError(f"item {position}: unit must be one of {', '.join(PRICE_UNITS)}")
            resolved.append((product, Decimal(amount or "0"), unit))
        return resolved

    def view(self) -> dict[str, Any]:
        """The whole catalogue: products by sku, price-group prices by "group/sku", clients, addresses."""
        return {
            "products": self.products,
            "price_groups": {f"{group}/{sku}": row for (group, sku), row in self.price_groups.items()},
            "clients": self.clients,
            "addresses": self.addresses,
        }

    def summary(self) -> dict[str, int]:
        return {
            "products": len(self.products),
            "price_group_prices": len(self.price_groups),
            "clients": len(self.clients),
            "addresses": len(self.addresses),
        }


def promoted_order_problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = []
    email = body.get("buyer_email")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        problems.append("buyer_email must be an e-mail address")
    if body.get("delivery_method", "delivery") not in DELIVERY_METHODS:
        problems.append(f"delivery_method must be one of {', '.join(DELIVERY_METHODS)}")
    reference = body.get("external_id")
    if reference is not None and (not isinstance(reference, str) or not 1 <= len(reference) <= 256):
        problems.append("external_id must be a string of 1 to 256 characters")
    day = body.get("delivery_date")
    if day is not None:
        try:
            date.fromisoformat(day) if isinstance(day, str) and len(day) == 10 else parse_rfc3339(str(day))
        except ValueError:
            problems.append("delivery_date must be a date (YYYY-MM-DD) or an RFC3339 date-time")
    return problems


def apply_promoted_items(order: dict[str, Any], items: list[tuple[dict[str, Any], Decimal, str]]) -> None:
    """Replace a generated order's items with the products ordered, at their base prices."""
    base_id = order["id"] * 10
    order["items"] = [
        {
            "id": base_id + number,
            "product_id": product["id"],
            "product_hash_id": None,
            "sku": product["sku"],
            "ean_code": product.get("ean_code"),
            "display_name": product["name"],
            "origin": product.get("origin"),
            "amount": num(amount),
            "unit": unit,
            "price": num(product.get("base_price") or "0.00"),
            "price_unit": product.get("price_unit") or unit,
            "total_price": num("0.00"),
            "served_amount": num(amount),
            "served_price": num(product.get("base_price") or "0.00"),
            "currency": order["currency"],
            "prepared": False,
        }
        for number, (product, amount, unit) in enumerate(items)
    ]
    recompute_totals(order)


# --- per-row rules -------------------------------------------------------------------------------------------------


def product_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["must be an object"]
    problems = [p for p in (text_problem(record, "sku", 64), text_problem(record, "name", 256)) if p]
    ean = record.get("ean_code")
    if ean is not None and (not isinstance(ean, str) or not _EAN.match(ean)):
        problems.append("ean_code must be 8 to 14 digits")
    if record.get("base_price") is not None:
        problems += [p for p in [decimal_text(record["base_price"], "base_price")[1]] if p]
    if record.get("price_unit") is not None and record["price_unit"] not in PRICE_UNITS:
        problems.append(f"price_unit must be one of {', '.join(PRICE_UNITS)}")
    units = record.get("sale_units")
    if units is not None:
        if not isinstance(units, str):
            problems.append('sale_units must be a comma-separated string (e.g. "box,kg")')
        elif any(unit.strip() not in PRICE_UNITS for unit in units.split(",")):
            problems.append(f"each of sale_units must be one of {', '.join(PRICE_UNITS)}")
    for name, value in record.items():
        if name not in PRODUCT_READ_ONLY | {"base_price"} and value is not None and not isinstance(value, str):
            problems.append(f"{name} must be a string (the API takes numbers and lists as strings)")
    if has_nul(record):
        problems.append("control characters are not allowed")
    return problems


def base_price_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["must be an object"]
    problems = []
    if not isinstance(record.get("sku"), str) and not isinstance(record.get("ean_code"), str):
        problems.append("sku or ean_code is required")
    unknown = set(record) - {"sku", "ean_code", "base_price", "price_unit"}
    if unknown:
        problems.append(f"unknown field(s) {', '.join(sorted(unknown))}")
    problems += [p for p in [decimal_text(record.get("base_price"), "base_price")[1]] if p]
    if record.get("price_unit") is not None and record["price_unit"] not in PRICE_UNITS:
        problems.append(f"price_unit must be one of {', '.join(PRICE_UNITS)}")
    return problems


def price_group_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["must be an object"]
    problems = [
        p for p in (text_problem(record, "pricegroup_id", 64), text_problem(record, "pricegroup_name", 256)) if p
    ]
    if not isinstance(record.get("sku"), str) and not isinstance(record.get("ean_code"), str):
        problems.append("sku or ean_code is required")
    unknown = set(record) - {"pricegroup_id", "pricegroup_name", "sku", "ean_code", "price", "price_unit"}
    if unknown:
        problems.append(f"unknown field(s) {', '.join(sorted(unknown))}")
    problems += [p for p in [decimal_text(record.get("price"), "price")[1]] if p]
    if record.get("price_unit") is not None and record["price_unit"] not in PRICE_UNITS:
        problems.append(f"price_unit must be one of {', '.join(PRICE_UNITS)}")
    if has_nul(record):
        problems.append("control characters are not allowed")
    return problems


def client_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["must be an object"]
    problems = [
        p for p in (text_problem(record, "client_external_id", 64), text_problem(record, "client_name", 256)) if p
    ]
    unknown = set(record) - {"client_external_id", "client_name", "phones", "rate_id", "rates"} - CLIENT_READ_ONLY
    if unknown:
        problems.append(f"unknown field(s) {', '.join(sorted(unknown))}")
    for name, limit in (("phones", 32), ("rates", 64)):
        values = record.get(name)
        if values is not None and (
            not isinstance(values, list) or any(not isinstance(v, str) or not 1 <= len(v) <= limit for v in values)
        ):
            problems.append(f"{name} must be an array of strings of 1 to {limit} characters")
    problems += [p for p in [text_problem(record, "rate_id", 64, required=False)] if p]
    if has_nul(record):
        problems.append("control characters are not allowed")
    return problems


def address_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["must be an object"]
    limits = {"external_id": 64, "client_external_id": 64, "street": 256, "city": 128, "postal_code": 16}
    problems = [p for name, limit in limits.items() if (p := text_problem(record, name, limit))]
    problems += [p for p in [text_problem(record, "region", 128, required=False)] if p]
    if not isinstance(record.get("country"), str) or not _COUNTRY.match(record["country"]):
        problems.append("country must be an ISO 3166-1 alpha-2 code (e.g. ES)")
    unknown = set(record) - set(limits) - {"region", "country", "latitude", "longitude", "created_at", "updated_at"}
    if unknown:
        problems.append(f"unknown field(s) {', '.join(sorted(unknown))}")
    for name, bound in (("latitude", 90), ("longitude", 180)):
        value = record.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | Decimal) or not -bound <= value <= bound
        ):
            problems.append(f"{name} must be a number from -{bound} to {bound}")
    if has_nul(record):
        problems.append("control characters are not allowed")
    return problems


# --- CSV imports ---------------------------------------------------------------------------------------------------


def csv_products(body: bytes, *, separator: str, decimal_separator: str, language: str, kind: str) -> list[Any]:
    """The rows of a product CSV as JSON-style records (blank cells left out, decimals normalised)."""
    if language not in CSV_LANGUAGES:
        raise CatalogueError(f"language must be one of {', '.join(CSV_LANGUAGES)}, got {language!r}")
    if kind not in CSV_TYPES:
        raise CatalogueError(f"type must be one of {', '.join(CSV_TYPES)}, got {kind!r}")
    if len(separator) != 1 or separator in '\r\n"':
        raise CatalogueError(f"csvseparator must be one character, got {separator!r}")
    if decimal_separator not in (".", ","):
        raise CatalogueError(f"decimalseparator must be '.' or ',', got {decimal_separator!r}")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"the CSV is not UTF-8 text (byte {exc.start + 1})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
    header = reader.fieldnames or []
    if "sku" not in header:
        raise CatalogueError(
            f"the CSV header has no sku column (read with csvseparator {separator!r}: {header[:5]}); "
            "is csvseparator right?"
        )
    rows: list[Any] = []
    try:
        for row in reader:
            if None in row:
                raise CatalogueError(f"CSV line {reader.line_num}: more values than the header has columns")
            rows.append(_csv_record(row, decimal_separator))
    except csv.Error as exc:
        raise CatalogueError(f"CSV line {reader.line_num}: {exc}") from None
    if len(rows) > MAX_ROWS_PER_REQUEST:
        raise CatalogueError(f"at most {MAX_ROWS_PER_REQUEST} rows per request, got {len(rows)}")
    return rows


def _csv_record(row: dict[str, str], decimal_separator: str) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or not value.strip():
            continue
        if name == "base_price":
            other = "." if decimal_separator == "," else ","
            # A value written with the other separator is left for validation to refuse, not silently misread.
            value = value.replace(decimal_separator, ".") if other not in value else value.replace(other, "?")
        record[name] = value
    return record


def _after(previous: str, now: datetime) -> str:
    """``now``, or just after ``previous`` when the clock has not moved past it (versions strictly increase)."""
    current = stamp(now)
    if current > previous:
        return current
    moment = datetime.strptime(previous, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return stamp(moment + timedelta(microseconds=1))
