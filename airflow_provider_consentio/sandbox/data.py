"""Deterministic sandbox data: counterparts, products and orders, all from ``random.Random(seed)``.

Orders are plain dicts in ViewOrder shape (every documented field, in a fixed key order, plus the undocumented
``channel``), numbers held exactly (see wire.py). The same config always gives byte-identical data.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from airflow_provider_consentio.sandbox.config import SandboxConfig
from airflow_provider_consentio.sandbox.wire import dec, num

CENT = Decimal("0.01")
STATUS_WEIGHTS = (("accepted", 70), ("pending", 15), ("canceled", 10), ("incomplete", 5))
CURRENCY_WEIGHTS = (("EUR", 70), ("USD", 12), ("GBP", 10), ("CHF", 8))
CLIENT_NAMES = (
    "Frutas Doña Álvarez", "Bäckerei Müller", "東京青果", "Łódź Świeże", "Épicerie Côté Jardin", "Café Zürich",
    "Ολυμπία Τρόφιμα", "Mercado São João", "Smørrebrød Kbh", "Hôtel Les Pâquerettes", "Ristorante Città",
    "Fresh & Co", "Çiftlik Pazarı", "Ísbúð Reykjavík", "Groenten De Bruyn", "Пекарня Волна",
)  # fmt: skip
CITIES = (
    ("Sevilla", "Andalucía", "ES", "41001"), ("München", "Bayern", "DE", "80331"), ("Tōkyō", "Tōkyō", "JP", "100-0001"),
    ("Łódź", "Łódzkie", "PL", "90-001"), ("Lyon", "Auvergne-Rhône-Alpes", "FR", "69001"),
    ("Zürich", "ZH", "CH", "8001"), ("London", "England", "GB", "EC1A 1BB"), ("New York", "NY", "US", "10001"),
)  # fmt: skip
PRODUCTS = (
    "Tomates cherry", "Äpfel Elstar", "みかん", "Ziemniaki młode", "Pêches plates", "Kartoffeln festkochend",
    "Aguacate Hass", "Fraises Gariguette", "Limones Verna", "Cogumelos", "Spargel weiß", "Piments d'Espelette",
)  # fmt: skip
ORIGINS = ("ES", "DE", "JP", "PL", "FR", "IT", "MA", "PE", "NL")
UNITS = ("kg", "box", "piece", "pallet")
CHANNELS = ("web", "app", "edi")
HASH_ALPHABET = string.ascii_lowercase + string.digits
# About 1 order in this many is created exactly at midnight: window-edge cases.
MIDNIGHT_EVERY = 40
# About 1 accepted order in this many already has an unseen edit in a fresh sandbox.
PENDING_EDIT_EVERY = 25


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> datetime:
    """Any RFC3339 timestamp (offset or Z, fractional seconds) as an aware datetime; ValueError otherwise."""
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError(f"{value!r} is not an RFC3339 date-time")
    moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone offset")
    return moment


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([value for value, _ in weighted], weights=[weight for _, weight in weighted])[0]


@dataclass(frozen=True)
class Counterpart:
    id: int
    external_id: str
    name: str
    address: dict[str, Any]
    currency: str


@dataclass(frozen=True)
class Product:
    id: int
    hash_id: str
    sku: str
    ean_code: str
    display_name: str
    origin: str
    unit: str
    base_price: Decimal


class Generator:
    """Builds counterparts, products and orders from one seeded random stream."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.rng = random.Random(config.seed)
        self.hash_ids: set[str] = set()
        self.counterparts = [self._counterpart(i) for i in range(1, 41)]
        self.products = [self._product(i) for i in range(1, 201)]

    def hash_id(self) -> str:
        while True:
            candidate = "".join(self.rng.choices(HASH_ALPHABET, k=12))
            if candidate not in self.hash_ids:
                self.hash_ids.add(candidate)
                return candidate

    def _counterpart(self, number: int) -> Counterpart:
        city, region, country, postal = self.rng.choice(CITIES)
        name = f"{self.rng.choice(CLIENT_NAMES)} #{number}"
        address = {
            "id": 5000 + number,
            "name": name,
            "street": f"Calle Mayor {self.rng.randint(1, 200)}",
            "city": city,
            "postal_code": postal,
            "region": region,
            "country": country,
            "external_id": f"ADDR-{number:04d}",
        }
        return Counterpart(7000 + number, f"CLI-{number:04d}", name, address, pick(self.rng, CURRENCY_WEIGHTS))

    def _product(self, number: int) -> Product:
        price = (Decimal(self.rng.randint(50, 4000)) / 100).quantize(CENT)
        return Product(
            id=9000 + number,
            hash_id=self.hash_id(),
            sku=f"SKU-{number:05d}",
            ean_code=f"84{self.rng.randint(10**10, 10**11 - 1)}",
            display_name=f"{self.rng.choice(PRODUCTS)} {number}",
            origin=self.rng.choice(ORIGINS),
            unit=self.rng.choice(UNITS),
            base_price=price,
        )

    def orders(self) -> list[tuple[str, dict[str, Any]]]:
        """(kind, order) over the configured days: sale orders, and purchase orders (about a tenth as many), with
        ids in creation order."""
        start = datetime(self.config.start.year, self.config.start.month, self.config.start.day, tzinfo=UTC)
        moments: list[tuple[datetime, str]] = []
        for day in range(self.config.days):
            day_start = start + timedelta(days=day)
            jitter = max(1, self.config.orders_per_day // 10)
            count = max(0, self.config.orders_per_day + self.rng.randint(-jitter, jitter))
            for _ in range(count):
                second = 0 if self.rng.randrange(MIDNIGHT_EVERY) == 0 else self.rng.randrange(86400)
                kind = "purchase" if self.rng.randrange(10) == 0 else "sale"
                moments.append((day_start + timedelta(seconds=second), kind))
        moments.sort(key=lambda moment: moment[0])
        return [(kind, self.order(100_000 + index, created, kind)) for index, (created, kind) in enumerate(moments)]

    def order(self, order_id: int, created: datetime, kind: str = "sale", status: str | None = None) -> dict[str, Any]:
        rng = self.rng
        status = status or pick(rng, STATUS_WEIGHTS)
        client = rng.choice(self.counterparts)
        delivery = rng.random() < 0.8
        estimated = rfc3339(created + timedelta(days=rng.randint(1, 5), hours=rng.randint(6, 14)))
        items = [self.item(order_id * 10 + n, client.currency) for n in range(rng.randint(1, 8))]
        closed = rfc3339(created + timedelta(hours=rng.randint(1, 12))) if status in ("accepted", "canceled") else None
        seller_side, buyer_side = f"SELLER-{client.external_id}", client.external_id
        order: dict[str, Any] = {
            "id": order_id,
            "hash_id": self.hash_id(),
            "status": status,
            "buyer_id": client.id,
            "seller_id": 4242,
            "counterpart_id": seller_side if kind == "sale" else buyer_side,
            "counterpart_id_buyer": buyer_side,
            "counterpart_id_seller": seller_side,
            "external_id": None,
            "external_status": None,
            "external_id_buyer": None,
            "external_id_seller": None,
            "external_status_buyer": None,
            "external_status_seller": None,
            "created_at": rfc3339(created),
            "updated_at": rfc3339(created),
            "closed_at": closed,
            "delivery_method": "delivery" if delivery else "pickup",
            "delivery_estimated_at": estimated if delivery else None,
            "pickup_estimated_at": None if delivery else estimated,
            "deliver_to": dict(client.address) if delivery else None,
            "pickup_from": None if delivery else {**client.address, "name": "Almacén Central", "id": 5999},
            "currency": client.currency,
            "price": num("0.00"),
            "weight": num(f"{rng.randint(1, 999)}.{rng.randint(10**17, 10**18 - 1)}"),
            "weight_unit": "lb" if client.currency == "USD" else "kg",
            "more_info": rng.choice(["", "Entregar por la mañana", "Bitte klingeln", "冷蔵でお願いします"]),
            "is_read": rng.random() < 0.5,
            "items": items,
            "channel": rng.choice(CHANNELS),
        }
        recompute_totals(order)
        return order

    def item(self, item_id: int, currency: str) -> dict[str, Any]:
        product = self.rng.choice(self.products)
        amount = Decimal(self.rng.choice(["1", "2", "2.5", "3", "5", "10", "12", "0.75"]))
        price = (product.base_price * Decimal(self.rng.choice(["1", "0.95", "1.10"]))).quantize(CENT, ROUND_HALF_UP)
        return {
            "id": item_id,
            "product_id": product.id,
            "product_hash_id": product.hash_id,
            "sku": product.sku,
            "ean_code": product.ean_code,
            "display_name": product.display_name,
            "origin": product.origin,
            "amount": num(amount),
            "unit": product.unit,
            "price": num(price),
            "price_unit": product.unit,
            "total_price": num("0.00"),
            "served_amount": num(amount),
            "served_price": num(price),
            "currency": currency,
            "prepared": False,
        }


def recompute_totals(order: dict[str, Any]) -> None:
    total = Decimal("0.00")
    for item in order["items"]:
        line = (dec(item["served_amount"]) * dec(item["price"])).quantize(CENT, ROUND_HALF_UP)
        item["total_price"] = num(line)
        total += line
    order["price"] = num(total.quantize(CENT))


def apply_edit(order: dict[str, Any], at: datetime, rng: random.Random) -> None:
    """A buyer's post-acceptance change: one more unit of one item (served amount and totals follow)."""
    item = order["items"][rng.randrange(len(order["items"]))]
    item["amount"] = num(dec(item["amount"]) + 1)
    item["served_amount"] = num(dec(item["served_amount"]) + 1)
    recompute_totals(order)
    order["updated_at"] = rfc3339(at)
