"""``make screenshots``: the README's pictures of the Airflow UI, taken from a real run against the sandbox.

    PYTHONPATH=tests python -m harness.screenshots [--out docs/screenshots]    # from the repository root

Starts the sandbox and Airflow (as ``make airflow`` does, connections in the metadata DB), runs the seller DAG for
one day, then photographs the connection form, the run's graph, the export task's log and the asset graph.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from airflow_provider_consentio.demo.stack import ADMIN, AirflowServices, SandboxProcess, wait_until
from harness.browser import AirflowBrowser, missing_browser

SELLER = "consentio_seller_daily"
REPORT = "consentio_orders_report"
RUN_ID = "tour_2025-03-10"
LOGICAL_DATE = "2025-03-11T00:00:00Z"  # covers 2025-03-10
EXPORT_TASK = "export_accepted_orders"
ORDERS_ASSET_URI = "consentio://consentio_default/orders/sale"


@dataclass
class SellerRun:
    """A running stack with one finished seller run (and the report it triggered)."""

    sandbox: SandboxProcess
    services: AirflowServices
    run_id: str
    task_states: dict[str, str]
    orders_asset_id: int


@contextlib.contextmanager
def seller_run(workdir: Path, dags_folder: Path, timeout: float = 600) -> Iterator[SellerRun]:
    from airflow_provider_consentio.demo.__main__ import build_env
    from airflow_provider_consentio.demo.erp import seed_demand_lines

    with SandboxProcess(workdir / "sandbox") as sandbox:
        seed_demand_lines(workdir / "erp.db", date(2025, 3, 10), days=1)
        env = build_env(workdir, sandbox, dags_folder)
        env.prepare()
        env.store_connections()
        with AirflowServices(env) as services:
            wait_until(lambda: _dag_parsed(services, SELLER), timeout, f"the dag-processor to parse {SELLER}", 1.0)
            for dag_id in (SELLER, REPORT):
                services.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
            services.api(
                "POST", f"/api/v2/dags/{SELLER}/dagRuns", json={"dag_run_id": RUN_ID, "logical_date": LOGICAL_DATE}
            )
            run = f"/api/v2/dags/{SELLER}/dagRuns/{RUN_ID}"
            wait_until(
                lambda: services.api("GET", run)["state"] in ("success", "failed"), timeout, "the seller run", 2.0
            )
            wait_until(lambda: _report_ran(services), timeout, f"{REPORT} to run on the export's asset event", 2.0)
            tasks = services.api("GET", f"{run}/taskInstances")["task_instances"]
            assets = services.api("GET", "/api/v2/assets", params={"uri_pattern": ORDERS_ASSET_URI})["assets"]
            yield SellerRun(
                sandbox=sandbox,
                services=services,
                run_id=RUN_ID,
                task_states={ti["task_id"]: ti["state"] for ti in tasks},
                orders_asset_id=next(a["id"] for a in assets if a["uri"] == ORDERS_ASSET_URI),
            )


def _dag_parsed(services: AirflowServices, dag_id: str) -> bool:
    dags = services.api("GET", "/api/v2/dags", params={"dag_id_pattern": dag_id})["dags"]
    return dag_id in {dag["dag_id"] for dag in dags}


def _report_ran(services: AirflowServices) -> bool:
    runs: list[dict[str, Any]] = services.api("GET", f"/api/v2/dags/{REPORT}/dagRuns")["dag_runs"]
    return any(run["state"] == "success" for run in runs)


def take_screenshots(tour: SellerRun, out: Path) -> list[Path]:
    with AirflowBrowser(tour.services.base_url, width=1400, height=1000) as browser:
        browser.log_in(*ADMIN)
        browser.new_connection_form("Consentio", "Workspace ID", "API key", "Base URL")
        shots = [browser.screenshot(out / "connection-form.png")]
        browser.dag_run(SELLER, tour.run_id, tour.task_states)
        browser.show_view("Graph", EXPORT_TASK, "mark_edits_seen")
        shots.append(browser.screenshot(out / "seller-run-graph.png"))
        browser.show_view("Grid", EXPORT_TASK)  # the narrow grid leaves the log most of the width
        browser.task_log(SELLER, tour.run_id, EXPORT_TASK, "Exported ")
        shots.append(browser.screenshot(out / "export-log.png"))
        browser.asset(tour.orders_asset_id, "consentio_orders_report", "Group", "consentio")
        shots.append(browser.screenshot(out / "asset-graph.png"))
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="where the PNG files go")
    parser.add_argument("--dags-folder", type=Path, default=Path("dags"), help="the example DAGs")
    args = parser.parse_args(argv)
    reason = missing_browser()
    if reason:
        print(f"Cannot take screenshots: {reason}", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="consentio-screenshots-"))
    try:
        with seller_run(workdir, args.dags_folder.resolve()) as tour:
            for shot in take_screenshots(tour, args.out):
                print(f"  {shot}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
