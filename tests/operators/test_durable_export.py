"""Durable exports (Airflow 3.3's task state store): an attempt that fails midway leaves its completed sub-windows
(or periods) checkpointed, and the retry resumes after them, still writing one exact file (or exact files)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from airflow_provider_consentio.models.jsonwire import loads, split_array

WINDOW = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-03T00:00:00Z"}


@pytest.fixture(autouse=True)
def needs_the_task_state_store():
    from airflow_provider_consentio.version_compat import AIRFLOW_V_3_3_PLUS

    if not AIRFLOW_V_3_3_PLUS:
        pytest.skip("durable exports need the task state store, new in Airflow 3.3 (older: a retry starts over)")


def ground_truth_lines(sandbox, start, end):
    params = {"from": start, "to": end, "kind": "sale"}
    body = httpx.get(f"{sandbox.base_url}/_sandbox/orders", params=params, timeout=60).content
    return [bytes(element) for element in split_array(body)[1]]


def garbage_every(sandbox, nth: int, paths: str = "/order$") -> None:
    """Every nth answer (of orders, by default) is garbage: not retryable, so the attempt fails there."""
    plan = {"rules": [{"kind": "garbage", "every": nth}], "paths": paths}
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan).raise_for_status()


def order_requests(sandbox) -> int:
    requests = httpx.get(f"{sandbox.base_url}/_sandbox/stats", timeout=10).json()["requests"]
    return sum(count for key, count in requests.items() if key.startswith("GET /{ws}/order "))


def test_a_retry_resumes_after_the_last_checkpoint_and_writes_the_exact_file(run_dag, sandbox, tmp_path):
    out = tmp_path / "orders.jsonl"
    # 48 hourly sub-windows; the 30th answer is garbage (not retryable): the first attempt fails after 29.
    garbage_every(sandbox, 30)
    result = run_dag("t_export_durable", output_path=str(out), **WINDOW)

    assert result.succeeded, result.output[-3000:]
    assert "not a JSON array" in result.output  # the first attempt did fail
    summary = result.xcoms["export"]
    assert f"Resuming after the checkpoint of a previous attempt: [.., {summary['resumed_from']}) done" in result.output
    assert "2025-03-02T00:00:00+00:00" < summary["resumed_from"] < WINDOW["end"].replace("Z", "+00:00")
    # 29 sub-windows, the garbage answer, the 29th asked again (for its edge), then this attempt's: nothing else
    # was fetched twice.
    assert order_requests(sandbox) == 29 + 1 + 1 + summary["sub_windows"]
    assert out.read_bytes().splitlines() == ground_truth_lines(sandbox, WINDOW["start"], WINDOW["end"])
    assert [path.name for path in tmp_path.iterdir()] == ["orders.jsonl"]  # the parts are gone


def test_the_last_attempt_leaves_no_parts_behind(run_dag, sandbox, tmp_path):
    out = tmp_path / "orders.jsonl"
    garbage_every(sandbox, 10)
    result = run_dag("t_export_durable", output_path=str(out), **WINDOW)

    assert result.state == "failed"
    assert list(tmp_path.iterdir()) == []  # neither a partial file nor the parts of an attempt no one will resume


def test_the_export_by_day_resumes_after_the_last_completed_day(run_dag, sandbox, tmp_path):
    window = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-05T00:00:00Z"}
    garbage_every(sandbox, 60)
    result = run_dag("t_export_by_day_durable", output_path=str(tmp_path / "{day}.jsonl"), **window)

    assert result.succeeded, result.output[-3000:]
    assert "not a JSON array" in result.output
    assert "periods already written" in result.output
    summary = result.xcoms["export"]
    days = ("2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04", "2025-03-05")
    for day, next_day in itertools.pairwise(days):
        lines = (tmp_path / f"{day}.jsonl").read_bytes().splitlines()
        assert lines == ground_truth_lines(sandbox, f"{day}T00:00:00Z", f"{next_day}T00:00:00Z"), day
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"{day}.jsonl" for day in days[:4]]
    assert summary["count"] == sum(partition["count"] for partition in summary["partitions"])
    assert summary["count"] == len(ground_truth_lines(sandbox, window["start"], window["end"]))


def test_the_changed_products_export_resumes_too(run_dag, sandbox, make_client, tmp_path):
    from airflow_provider_consentio.models.catalogue import Product

    make_client().upsert_products(
        [Product.model_validate({"sku": f"DUR-{n:04d}", "name": f"Product {n}"}) for n in range(300)]
    )
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(minutes=30)).isoformat(), "end": (now + timedelta(minutes=30)).isoformat()}
    # 12 sub-windows of 5 minutes; the products are in the 6th; the 10th answer is garbage.
    garbage_every(sandbox, 10, paths="/products$")
    out = tmp_path / "products.jsonl"
    result = run_dag("t_export_products_durable", output_path=str(out), **window)

    assert result.succeeded, result.output[-3000:]
    assert "not a JSON array" in result.output
    assert "Resuming after the checkpoint of a previous attempt" in result.output
    assert result.xcoms["export"]["count"] == 300
    stored = loads(httpx.get(f"{sandbox.base_url}/_sandbox/catalogue", timeout=60).content)["products"]
    expected = sorted(stored.values(), key=lambda product: (product["updated_at"], product["sku"]))
    assert [loads(line) for line in out.read_bytes().splitlines()] == expected
    assert [path.name for path in tmp_path.iterdir()] == ["products.jsonl"]
