"""The Airflow UI in a real browser (headless Chromium from Debian), as a data engineer walks it after `make airflow`.

Log in; Admin > Connections > add, type Consentio: the provider's fields and its docs link; the stored connection's
Test button (Airflow 3.3.1-3.3.2 break it for connections without a port, see the README); the seller DAG's run:
every task succeeded; the export task's log: the summary line; the orders asset: group and extras.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_provider_consentio.demo.stack import ADMIN
from harness.browser import AirflowBrowser, missing_browser
from harness.screenshots import EXPORT_TASK, SELLER, seller_run

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    reason = missing_browser()
    if reason:
        pytest.skip(f"no browser: {reason}")
    with seller_run(tmp_path_factory.mktemp("browser-tour"), REPO / "dags") as run:
        yield run


@pytest.fixture(scope="module")
def browser(tour):
    with AirflowBrowser(tour.services.base_url) as session:
        session.log_in(*ADMIN)
        yield session


def test_the_connection_form_shows_the_provider_fields_and_its_docs(browser):
    form = browser.new_connection_form("Consentio", "Workspace ID", "API key", "Base URL", "Port")
    assert "Schema" not in form  # hidden: the provider does not use it
    browser.expand_section("Extra Fields", "Environment", "Timeout (seconds)", "Max retries", "CA bundle path")
    [docs] = browser.driver.find_elements("css selector", "[role=dialog] a")
    assert docs.text == "How to set up this connection"
    assert docs.get_attribute("href") == "https://github.com/consentio/airflow-provider-consentio#the-connection"


def test_the_stored_connections_test_button_turns_green(browser, tour):
    browser.open("/connections", "consentio_default", "consentio_erp")
    row = browser.driver.find_element("xpath", "//tr[td[normalize-space()='consentio_default']]")
    row.find_element("css selector", "button[aria-label='Test Connection']").click()
    # The UI swaps the button's icon for a green (logged in) or red (failed) wifi icon.
    browser.wait_for("tr svg[color='green']")
    assert not row.find_elements("css selector", "svg[color='red']")


def test_the_seller_run_shows_every_task_succeeded(browser, tour):
    expected = {task: ("skipped" if task == "prepare_orders" else "success") for task in tour.task_states}
    assert tour.task_states == expected  # prepare_orders runs only with the param prepare_orders
    page = browser.dag_run(SELLER, tour.run_id, expected)  # waits for each row: the task ID, then its state
    for task, state in expected.items():
        assert re.search(rf"\b{task}\s+{state.capitalize()}\b", page), f"{task} is not shown as {state}"


def test_the_export_log_shows_the_summary_line(browser, tour):
    log = browser.task_log(SELLER, tour.run_id, EXPORT_TASK, "Exported ")
    accepted = tour.sandbox.admin(
        "GET",
        "/_sandbox/orders",
        params={"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z", "kind": "sale", "status": "accepted"},
    )
    assert f"Exported {len(accepted)} orders to " in log and "2025-03-10.jsonl" in log


def test_the_orders_asset_is_in_the_consentio_group_with_its_extras(browser, tour):
    page = browser.asset(tour.orders_asset_id, "consentio_orders_report", SELLER)
    assert "Group\nconsentio" in page
    assert '"connection": "consentio_default"' in page and '"resource": "orders/sale"' in page
