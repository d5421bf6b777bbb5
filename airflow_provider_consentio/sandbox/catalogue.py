"""The seller's catalogue as the sandbox holds it: products, base prices, price groups, clients and addresses, and
the promoted orders placed against it. The per-row rules are in catalogue_rules.py; the routes are in catalogue_api.py.

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

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from airflow_provider_consentio.sandbox.catalogue_rules import (
    ADDRESS_FIELDS,
    PRICE_UNITS,
    PRODUCT_READ_ONLY,
    CatalogueError,
    address_problems,
    base_price_problems,
    client_problems,
    decimal_text,
    price_group_problems,
    product_problems,
)
from airflow_provider_consentio.sandbox.data import recompute_totals
from airflow_provider_consentio.sandbox.wire import num


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        return _write_rows(
            records,
            lambda record, position: _row_name(record, "sku", position=position),
            product_problems,
            lambda record: self._store_product(record, now),
        )

    def _store_product(self, record: dict[str, Any], now: datetime) -> dict[str, Any]:
        values = {k: v.strip() if k == "base_price" else v for k, v in record.items() if k not in PRODUCT_READ_ONLY}
        existing = self.products.get(record["sku"])
        product = _upserted(existing, values, now, id=self.next_product_id)
        if existing is None:
            self.next_product_id += 1
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

    def _product_problems(self, record: Any, problems_of: Callable[[Any], list[str]], hint: str = "") -> list[str]:
        """The row's own problems, else whether the product it names exists."""
        problems = problems_of(record)
        if not problems and self.product_by(record) is None:
            name = _row_name(record, "sku", "ean_code", position=0)
            problems = [f"product {name} not found{hint}"]
        return problems

    def set_base_prices(self, records: list[Any], now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        def store(record: dict[str, Any]) -> dict[str, Any]:
            changes = {"base_price": record["base_price"].strip()}
            if record.get("price_unit") is not None:
                changes["price_unit"] = record["price_unit"]
            product = self.product_by(record)
            assert product is not None
            return self._store_product({**changes, "sku": product["sku"]}, now)

        return _write_rows(
            records,
            lambda record, position: _row_name(record, "sku", "ean_code", position=position),
            lambda record: self._product_problems(record, base_price_problems),
            store,
        )

    # --- price groups ----------------------------------------------------------------------------------------------

    def sync_price_groups(self, records: list[Any], now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        def name_of(record: Any, position: int) -> str:
            group = record.get("pricegroup_id") if isinstance(record, dict) else None
            return (
                f"{group if isinstance(group, str) else '?'}/{_row_name(record, 'sku', 'ean_code', position=position)}"
            )

        def store(record: dict[str, Any]) -> dict[str, Any]:
            product = self.product_by(record)
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
            return row

        hint = " (create products before their price groups)"
        return _write_rows(
            records, name_of, lambda record: self._product_problems(record, price_group_problems, hint), store
        )

    # --- clients and addresses ---------------------------------------------------------------------------------

    def upsert_clients(
        self, records: list[Any], now: datetime, workspace_id: int
    ) -> tuple[list[dict[str, Any]], list[str]]:
        def store(record: dict[str, Any]) -> dict[str, Any]:
            key = record["client_external_id"]
            values = {
                "client_external_id": key,
                "client_name": record["client_name"],
                "phones": list(record.get("phones") or []),
                "rate_id": record.get("rate_id"),
                "rates": list(record.get("rates") or []),
            }
            created = {"consentio_client_id": None, "workspace_id": workspace_id}
            self.clients[key] = _upserted(self.clients.get(key), values, now, **created)
            return self.clients[key]

        return _write_rows(
            records,
            lambda record, position: _row_name(record, "client_external_id", position=position),
            client_problems,
            store,
        )

    def upsert_addresses(self, records: list[Any], now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        def problems_of(record: Any) -> list[str]:
            problems = address_problems(record)
            if not problems and record["client_external_id"] not in self.clients:
                problems = [f"client {record['client_external_id']} not found (create clients before their addresses)"]
            return problems

        def store(record: dict[str, Any]) -> dict[str, Any]:
            values = {
                "external_id": record["external_id"],
                "client_external_id": record["client_external_id"],
                **{name: record.get(name) for name in ADDRESS_FIELDS},
                "latitude": record.get("latitude"),
                "longitude": record.get("longitude"),
            }
            key = record["external_id"]
            self.addresses[key] = _upserted(self.addresses.get(key), values, now)
            return self.addresses[key]

        return _write_rows(
            records, lambda record, position: _row_name(record, "external_id", position=position), problems_of, store
        )

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


def _write_rows(
    records: list[Any],
    name_of: Callable[[Any, int], str],
    problems_of: Callable[[Any], list[str]],
    store: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every batch write: each row (``position`` from 1) is stored, or refused as ``"<name>: <problems>"`` while the
    batch goes on (the API's per-row errors, HTTP 200)."""
    saved, errors = [], []
    for position, record in enumerate(records, start=1):
        problems = problems_of(record)
        if problems:
            errors.append(f"{name_of(record, position)}: {'; '.join(problems)}")
        else:
            saved.append(store(record))
    return saved, errors


def _upserted(existing: dict[str, Any] | None, values: dict[str, Any], now: datetime, **created: Any) -> dict[str, Any]:
    """``values`` stored over ``existing``: a new record also gets ``created`` and both stamps; a known one moves
    ``updated_at`` only when a value changed (a rerun changes nothing)."""
    if existing is None:
        return {**created, **values, "created_at": stamp(now), "updated_at": stamp(now)}
    merged = {**existing, **values}
    if merged != existing:
        merged["updated_at"] = _after(existing["updated_at"], now)
    return merged


def _after(previous: str, now: datetime) -> str:
    """``now``, or just after ``previous`` when the clock has not moved past it (versions strictly increase)."""
    current = stamp(now)
    if current > previous:
        return current
    moment = datetime.strptime(previous, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return stamp(moment + timedelta(microseconds=1))
