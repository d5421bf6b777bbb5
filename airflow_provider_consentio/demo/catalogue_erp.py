"""The seller's catalogue in the stand-in ERP (SQLite): items, the price list, price groups, customers and their
addresses, as dags/consentio_catalogue_daily.py reads them; and the check that Consentio holds exactly that.

Values are text, as an ERP export hands them over, so prices stay exact.
"""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

TABLES = {
    "erp_items": ("item_code", "description", "ean", "unit", "sale_units", "tags"),
    "erp_price_list": ("item_code", "price"),
    "erp_price_groups": ("group_code", "group_name", "item_code", "price", "unit"),
    "erp_customers": ("customer_code", "name", "phones", "price_group"),
    "erp_customer_addresses": ("address_code", "customer_code", "street", "city", "zip", "country", "lat", "lon"),
}
ITEM_NAMES = ("Tomates cherry", "Äpfel Elstar", "Pêches plates", "Aguacate Hass", "Spargel weiß", "Limones Verna")
CUSTOMER_NAMES = ("Bäckerei Müller", "Café Zürich", "Épicerie Côté Jardin", "Frutas Doña Álvarez", "Fresh & Co")
CITIES = (("Sevilla", "41001", "ES"), ("München", "80331", "DE"), ("Lyon", "69001", "FR"), ("Zürich", "8001", "CH"))
GROUPS = {"HORECA": "Hotels and restaurants", "RETAIL": "Shops", "WHOLESALE": "Wholesalers"}


def seed_catalogue(db_path: Path, items: int = 200, customers: int = 30, seed: int = 42) -> dict[str, int]:
    """Create the catalogue tables and fill them; the same seed gives the same catalogue. Returns the row counts."""
    rng = random.Random(seed)
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLES}
    for number in range(1, items + 1):
        code = f"ITM-{number:05d}"
        unit = rng.choice(("kg", "box", "piece"))
        rows["erp_items"].append(
            (code, f"{rng.choice(ITEM_NAMES)} {number}", f"84{number:011d}", unit, f"{unit},pallet", "fresh,daily")
        )
        price = Decimal(rng.randint(50, 4000)) / 100
        rows["erp_price_list"].append((code, f"{price:.2f}"))
        for group in rng.sample(sorted(GROUPS), 2):
            discount = Decimal(rng.choice(("0.90", "0.95", "0.975")))
            rows["erp_price_groups"].append((group, GROUPS[group], code, f"{price * discount:.4f}", unit))
    for number in range(1, customers + 1):
        code = f"CUS-{number:04d}"
        phones = ",".join(f"+34 955 {rng.randint(100000, 999999)}" for _ in range(rng.randint(1, 2)))
        rows["erp_customers"].append(
            (code, f"{rng.choice(CUSTOMER_NAMES)} #{number}", phones, rng.choice(sorted(GROUPS)))
        )
        city, postal, country = rng.choice(CITIES)
        lat, lon = f"{rng.uniform(36, 52):.6f}", f"{rng.uniform(-6, 12):.6f}"
        rows["erp_customer_addresses"].append(
            (f"ADR-{number:04d}", code, f"Calle Mayor {number}", city, postal, country, lat, lon)
        )
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(db_path)) as conn:
        for table, columns in TABLES.items():
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{c} TEXT' for c in columns)})")
            conn.execute(f"DELETE FROM {table}")
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows[table])
        conn.commit()
    return {table: len(table_rows) for table, table_rows in rows.items()}


def _rows(db_path: Path, table: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(db_path)) as conn:
        cursor = conn.execute(f"SELECT {', '.join(TABLES[table])} FROM {table}")
        return [dict(zip(TABLES[table], row, strict=True)) for row in cursor]


def catalogue_differences(db_path: Path, catalogue: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    """The ERP's row counts, and every way Consentio's catalogue (the sandbox's admin view) differs from the ERP."""
    problems: list[str] = []
    products, groups = catalogue["products"], catalogue["price_groups"]
    prices = {row["item_code"]: row["price"] for row in _rows(db_path, "erp_price_list")}
    for item in _rows(db_path, "erp_items"):
        stored = products.get(item["item_code"], {})
        expected = {"name": item["description"], "ean_code": item["ean"], "price_unit": item["unit"]}
        expected |= {"sale_units": item["sale_units"], "base_price": prices.get(item["item_code"])}
        problems += [
            f"product {item['item_code']}: {field} {stored.get(field)!r} != ERP {value!r}"
            for field, value in expected.items()
            if stored.get(field) != value
        ]
    for row in _rows(db_path, "erp_price_groups"):
        stored = groups.get(f"{row['group_code']}/{row['item_code']}", {})
        if stored.get("price") is None or Decimal(stored["price"]) != Decimal(row["price"]):
            problems.append(f"price group {row['group_code']}/{row['item_code']}: {stored.get('price')!r}")
    for row in _rows(db_path, "erp_customers"):
        stored = catalogue["clients"].get(row["customer_code"], {})
        expected = {"client_name": row["name"], "phones": row["phones"].split(","), "rate_id": row["price_group"]}
        if {field: stored.get(field) for field in expected} != expected:
            problems.append(f"client {row['customer_code']}: {stored!r}")
    for row in _rows(db_path, "erp_customer_addresses"):
        stored = catalogue["addresses"].get(row["address_code"], {})
        if (stored.get("client_external_id"), stored.get("city"), stored.get("latitude")) != (
            row["customer_code"],
            row["city"],
            Decimal(row["lat"]),
        ):
            problems.append(f"address {row['address_code']}: {stored!r}")
    counts = {table: len(_rows(db_path, table)) for table in TABLES}
    extra = len(products) - counts["erp_items"], len(catalogue["clients"]) - counts["erp_customers"]
    if any(extra):
        problems.append(f"Consentio holds {extra[0]} products and {extra[1]} clients the ERP does not")
    return counts, problems


def catalogue_facts(db_path: Path, sandbox_url: str) -> dict[str, Any]:
    """What the catalogue pipeline left in Consentio (the sandbox at ``sandbox_url``), checked against the ERP."""
    import httpx

    from airflow_provider_consentio.models.jsonwire import loads

    response = httpx.get(f"{sandbox_url}/_sandbox/catalogue", timeout=60)
    response.raise_for_status()
    catalogue = loads(response.content)
    counts, problems = catalogue_differences(db_path, catalogue)
    return {
        "erp": counts,
        "products": len(catalogue["products"]),
        "priced": sum(1 for product in catalogue["products"].values() if product.get("base_price") is not None),
        "price_group_prices": len(catalogue["price_groups"]),
        "clients": len(catalogue["clients"]),
        "addresses": len(catalogue["addresses"]),
        "problems": problems,
    }


def reprice(db_path: Path, day_number: int, count: int = 5) -> None:
    """A day's price changes in the ERP: ``count`` items get a new list price (deterministic per day)."""
    with closing(sqlite3.connect(db_path)) as conn:
        codes = [code for (code,) in conn.execute("SELECT item_code FROM erp_price_list ORDER BY item_code")]
        for offset in range(count):
            code = codes[(day_number * count + offset) % len(codes)]
            conn.execute(
                "UPDATE erp_price_list SET price = ? WHERE item_code = ?",
                (f"{day_number + offset + 1}.{offset}5", code),
            )
        conn.commit()
