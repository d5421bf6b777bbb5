"""consentio_catalogue_daily against the sandbox (dag.test): the ERP's catalogue lands in Consentio exactly, a rerun
changes nothing, and a bad row fails its step naming it. Module level imports no Airflow (scenario bundle folder)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import httpx
from test_example_dags import RUN_DATE, example_env  # noqa: F401 (a fixture)

from airflow_provider_consentio.demo.catalogue_erp import catalogue_differences, seed_catalogue
from airflow_provider_consentio.models.jsonwire import loads


def catalogue(sandbox) -> dict:
    return loads(httpx.get(f"{sandbox.base_url}/_sandbox/catalogue", timeout=30).content)


def test_the_erp_catalogue_lands_in_consentio_and_a_rerun_changes_nothing(sandbox, run_dag, example_env):  # noqa: F811
    erp, _ = example_env
    counts = seed_catalogue(erp, items=120, customers=15)
    result = run_dag("consentio_catalogue_daily", logical_date=RUN_DATE)
    assert result.succeeded, result.output[-3000:]
    assert result.xcoms["catalogue_ready"] == {
        "clients": 15,
        "addresses": 15,
        "products": 120,
        "base_prices": 120,
        "price_groups": counts["erp_price_groups"],
    }
    stored = catalogue(sandbox)
    assert catalogue_differences(erp, stored) == (counts, [])

    again = run_dag("consentio_catalogue_daily", logical_date=RUN_DATE)
    assert again.succeeded, again.output[-3000:]
    assert catalogue(sandbox) == stored  # versions included


def test_a_bad_price_fails_its_step_naming_the_item_and_sends_none_of_it(sandbox, run_dag, example_env):  # noqa: F811
    erp, _ = example_env
    seed_catalogue(erp, items=20, customers=3)
    with closing(sqlite3.connect(erp)) as conn:
        conn.execute("UPDATE erp_price_list SET price = '12,5O' WHERE item_code = 'ITM-00007'")
        conn.commit()
    result = run_dag("consentio_catalogue_daily", logical_date=RUN_DATE)
    assert result.state == "failed"
    assert result.task_states["set_base_prices"] == "failed"
    assert "- ITM-00007: base_price must be a number, got '12,5O'" in result.output
    assert "new_state=up_for_retry" not in result.output  # invalid input fails at once: a retry would fail again
    stored = catalogue(sandbox)
    assert all("base_price" not in product for product in stored["products"].values())
    assert len(stored["products"]) == 20 and len(stored["clients"]) == 3
