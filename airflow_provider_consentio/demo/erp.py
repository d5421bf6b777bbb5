"""A stand-in ERP for the demo and the tests: a SQLite database holding the buyer's planned demand lines.

The seller pipeline creates its own order tables (see dags/consentio_seller_daily.py); this module only seeds what
the buyer pipeline reads. Values are stored as text, as an ERP export would hand them over, so decimals stay exact.
"""

from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path
from typing import Any

DEMAND_LINES_TABLE = """CREATE TABLE IF NOT EXISTS demand_lines (
    line_code TEXT PRIMARY KEY,
    plan_date TEXT NOT NULL,
    product_code TEXT NOT NULL,
    delivery_from TEXT NOT NULL,
    delivery_to TEXT NOT NULL,
    qty TEXT NOT NULL,
    unit TEXT NOT NULL,
    status TEXT NOT NULL,
    warehouse TEXT,
    depot TEXT,
    tender TEXT,
    notes TEXT
)"""
COLUMNS = (
    "line_code", "plan_date", "product_code", "delivery_from", "delivery_to", "qty", "unit", "status", "warehouse",
    "depot", "tender", "notes",
)  # fmt: skip
UNITS = ("box", "pallet", "kg", "piece")
TENDERS = (None, None, "standard", "promotion", "weekend_flash_offer")


def demand_line(plan_date: date, number: int, rng: random.Random) -> dict[str, Any]:
    """One planned need: delivered 1..7 days after the plan date, with exact decimal quantities."""
    first = plan_date + timedelta(days=rng.randint(1, 4))
    notes = {"priority": rng.choice(["high", "normal"]), "target_price": f"{rng.randint(100, 9999) / 100:.2f}"}
    return {
        "line_code": f"DL-{plan_date:%Y%m%d}-{number:03d}",
        "plan_date": plan_date.isoformat(),
        "product_code": f"PRD-{rng.randint(1, 500):05d}",
        "delivery_from": first.isoformat(),
        "delivery_to": (first + timedelta(days=rng.randint(0, 3))).isoformat(),
        "qty": f"{rng.randint(1, 5000) / 10:.2f}",
        "unit": rng.choice(UNITS),
        "status": "A",
        "warehouse": f"WH{rng.randint(1, 4):02d}",
        "depot": f"DEP{rng.randint(1, 9):02d}",
        "tender": rng.choice(TENDERS),
        "notes": json.dumps(notes),
    }


def seed_demand_lines(db_path: Path, first_day: date, days: int, lines_per_day: int = 20, seed: int = 42) -> int:
    """Create the table and plan ``lines_per_day`` demand lines for each day; the same seed gives the same lines."""
    rng = random.Random(seed)
    lines = [
        demand_line(first_day + timedelta(days=offset), number, rng)
        for offset in range(days)
        for number in range(1, lines_per_day + 1)
    ]
    insert_demand_lines(db_path, lines)
    return len(lines)


def insert_demand_lines(db_path: Path, lines: list[dict[str, Any]]) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    marks = ", ".join("?" * len(COLUMNS))
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute(DEMAND_LINES_TABLE)
        conn.executemany(
            f"INSERT OR REPLACE INTO demand_lines ({', '.join(COLUMNS)}) VALUES ({marks})",
            [tuple(line.get(column) for column in COLUMNS) for line in lines],
        )
        conn.commit()


def sqlite_connection(db_path: Path) -> str:
    """The Airflow connection (JSON) for a SQLite file: the sqlite hook reads the file's path from ``host``."""
    return json.dumps({"conn_type": "sqlite", "host": str(db_path.resolve())})


def query(db_path: Path, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(sql, parameters).fetchall()
