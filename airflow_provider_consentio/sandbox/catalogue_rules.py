"""The rules of the sandbox's catalogue endpoints, row by row, and its CSV import: what a product, price, client,
address or promoted order must hold, worded as the API words its errors. The store that applies them, and the wire
ASSUMPTIONS they follow, are in catalogue.py."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_consentio.sandbox.data import parse_rfc3339
from airflow_provider_consentio.sandbox.wire import has_nul

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
    return _price_row_problems(record, "base_price", {"sku", "ean_code", "base_price", "price_unit"})


def price_group_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["must be an object"]
    problems = [
        p for p in (text_problem(record, "pricegroup_id", 64), text_problem(record, "pricegroup_name", 256)) if p
    ]
    fields = {"pricegroup_id", "pricegroup_name", "sku", "ean_code", "price", "price_unit"}
    problems += _price_row_problems(record, "price", fields)
    if has_nul(record):
        problems.append("control characters are not allowed")
    return problems


def _price_row_problems(record: dict[str, Any], price_field: str, fields: set[str]) -> list[str]:
    """What a base price and a price-group price share: a product by sku or ean_code, no unknown field, an exact
    decimal price and a known unit."""
    problems = []
    if not isinstance(record.get("sku"), str) and not isinstance(record.get("ean_code"), str):
        problems.append("sku or ean_code is required")
    unknown = set(record) - fields
    if unknown:
        problems.append(f"unknown field(s) {', '.join(sorted(unknown))}")
    problems += [p for p in [decimal_text(record.get(price_field), price_field)[1]] if p]
    if record.get("price_unit") is not None and record["price_unit"] not in PRICE_UNITS:
        problems.append(f"price_unit must be one of {', '.join(PRICE_UNITS)}")
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
