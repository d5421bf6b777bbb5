"""``make demo`` / ``make airflow``: the example pipelines against the local sandbox, on one machine.

    python -m airflow_provider_consentio.demo [--date 2025-03-10] [--workdir .demo]
    python -m airflow_provider_consentio.demo --standalone     # the Airflow UI with the sandbox, until Ctrl-C

The demo starts the sandbox on loopback, creates the ERP (SQLite) and the connections, runs both example DAGs for
one day with ``airflow dags test``, prints a one-screen summary and where the outputs are, and stops the sandbox.
It needs the ``sandbox`` extra: ``pip install "airflow-provider-consentio[sandbox]"``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import signal
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_consentio.demo.catalogue_erp import catalogue_facts, seed_catalogue
from airflow_provider_consentio.demo.erp import query, seed_demand_lines, sqlite_connection
from airflow_provider_consentio.demo.stack import AirflowEnv, AirflowServices, SandboxProcess, port_is_free

DEMO_DATE = date(2025, 3, 10)
DAG_IDS = ("consentio_catalogue_daily", "consentio_seller_daily", "consentio_buyer_daily")
UI_PORT = 8280  # `make airflow`'s documented address
DISTRIBUTION = "airflow-provider-consentio"


def example_dags() -> Path:
    """The example DAGs: packaged with an installed wheel, or the repository's ``dags/`` in a source checkout."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "example_dags"
    return packaged if packaged.is_dir() else package.parent / "dags"


def missing_sandbox_extra() -> list[str]:
    """The distributions of the ``sandbox`` extra (the ERP's sqlite provider, the sandbox's web stack) not installed.

    Read from the installed metadata, not by importing: importing ``airflow`` here would configure it before the
    demo has chosen its AIRFLOW_HOME.
    """
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return []
    missing = []
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        if name and re.search(r"""extra\s*==\s*["']sandbox["']""", requirement):
            try:
                importlib.metadata.distribution(name.group())
            except importlib.metadata.PackageNotFoundError:
                missing.append(name.group())
    return missing


def _day_bounds(day: date) -> tuple[str, str]:
    return f"{day.isoformat()}T00:00:00Z", f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"


def build_env(workdir: Path, sandbox: SandboxProcess, dags_folder: Path) -> AirflowEnv:
    return AirflowEnv(
        home=workdir / "airflow",
        dags_folder=dags_folder,
        connections={
            "consentio_default": sandbox.connection_json(),
            "consentio_erp": sqlite_connection(workdir / "erp.db"),
        },
        variables={"consentio_data_dir": str(workdir / "data")},
    )


def edit_some_orders(sandbox: SandboxProcess, day: date, count: int = 3) -> list[str]:
    """Edit a few accepted orders of the day before, as buyers do after acceptance."""
    start, _ = _day_bounds(day - timedelta(days=1))
    end, _ = _day_bounds(day)
    orders = sandbox.admin(
        "GET", "/_sandbox/orders", params={"from": start, "to": end, "kind": "sale", "status": "accepted"}
    )
    edited = [order["hash_id"] for order in orders[:count]]
    for hash_id in edited:
        sandbox.admin("POST", f"/_sandbox/orders/{hash_id}/edit")
    return edited


def seller_facts(workdir: Path, sandbox: SandboxProcess, day: date) -> dict[str, Any]:
    """What the seller pipeline did for ``day``, checked against the sandbox's ground truth."""
    start, end = _day_bounds(day)
    truth = sandbox.admin(
        "GET", "/_sandbox/orders", params={"from": start, "to": end, "kind": "sale", "status": "accepted"}
    )
    export = workdir / "data" / "orders" / f"{day.isoformat()}.jsonl"
    exported = sum(1 for line in export.read_text(encoding="utf-8").splitlines() if line.strip())
    erp_db = workdir / "erp.db"
    loaded = query(
        erp_db,
        "SELECT hash_id, erp_number FROM erp_orders WHERE created_at >= datetime(?) AND created_at < datetime(?)",
        start,
        end,
    )
    state = sandbox.admin("GET", "/_sandbox/state")
    references = state["external_refs"]
    pushed = [h for h, number in loaded if references.get(h, {}).get("external_id") == number]
    return {
        "accepted_in_sandbox": len(truth),
        "exported": exported,
        "loaded": len(loaded),
        "references_pushed": len(pushed),
        "matches_ground_truth": {o["hash_id"] for o in truth} == {h for h, _ in loaded},
        "edits_applied": query(erp_db, "SELECT count(*) FROM erp_order_edits")[0][0],
        "edits_pending": len(state["pending_edits"]),
        "export_path": str(export),
    }


def buyer_facts(workdir: Path, sandbox: SandboxProcess, day: date) -> dict[str, Any]:
    lines = {
        row[0]
        for row in query(workdir / "erp.db", "SELECT line_code FROM demand_lines WHERE plan_date = ?", day.isoformat())
    }
    stored = {need["code"] for need in sandbox.admin("GET", "/_sandbox/purchase-needs")}
    return {"demand_lines": len(lines), "needs_in_consentio": len(lines & stored)}


def describe_import_errors(import_errors: dict[str, str]) -> str:
    """One block per DAG file: the file, the line of it that failed, and the error (a traceback's last line)."""
    blocks = []
    for path, traceback in sorted(import_errors.items()):
        lines = traceback.strip().splitlines()
        in_file = [line.strip() for line in lines if line.strip().startswith(f'File "{path}"')]
        where = f" ({in_file[-1].split(', ', 2)[1]})" if in_file else ""
        blocks.append(f"  DAG import error in {path}{where}:\n      {lines[-1] if lines else '(no message)'}")
    return "\n".join(["", *blocks])


def run_demo(workdir: Path, dags_folder: Path, day: date) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)
    began = time.monotonic()
    print(f"Consentio demo for {day} in {workdir}")
    with SandboxProcess(workdir / "sandbox") as sandbox:
        print(f"  sandbox        {sandbox.base_url} (workspace {sandbox.info['workspace_id']})")
        seed_demand_lines(workdir / "erp.db", day, days=1)
        seed_catalogue(workdir / "erp.db")
        env = build_env(workdir, sandbox, dags_folder)
        print("  airflow        db migrate ...")
        env.prepare()
        edit_some_orders(sandbox, day)
        failed = []
        # A manual run at logical date D covers the data interval [D - 1 day, D).
        run_date = (day + timedelta(days=1)).isoformat()
        import_errors: dict[str, str] | None = None
        for dag_id in DAG_IDS:
            print(f"  airflow        dags test {dag_id} {run_date}   (covers {day}) ...")
            result = env.airflow("dags", "test", dag_id, run_date, check=False)
            if result.returncode != 0 or "state=failed" in result.stdout + result.stderr:
                failed.append(dag_id)
                # `dags test` says only "could not be found" for a DAG file that failed to import: ask why.
                import_errors = env.import_errors() if import_errors is None else import_errors
                if not import_errors:
                    print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        if failed:
            # A failed run leaves no complete outputs to sum up: say what failed and where to look instead.
            why = "could not be imported" if import_errors else f"failed; task logs in {workdir / 'airflow' / 'logs'}"
            print(
                describe_import_errors(import_errors or {}),
                f"\nDEMO FAILED: {', '.join(failed)} {why}",
                file=sys.stderr,
            )
            return 1
        seller = seller_facts(workdir, sandbox, day)
        buyer = buyer_facts(workdir, sandbox, day)
        catalogue = catalogue_facts(workdir / "erp.db", sandbox.base_url)
    erp, addresses, priced = catalogue["erp"], catalogue["addresses"], catalogue["priced"]
    print(
        f"""
  Catalog clients in Consentio        {catalogue["clients"]:>5}   (ERP: {erp["erp_customers"]}; addresses: {addresses})
          products in Consentio       {catalogue["products"]:>5}   (ERP: {erp["erp_items"]}; with base price: {priced})
          price-group prices          {catalogue["price_group_prices"]:>5}   (ERP: {erp["erp_price_groups"]})
          ERP == sandbox              {"yes" if not catalogue["problems"] else "NO":>5}
  Seller  orders accepted in Consentio {seller["accepted_in_sandbox"]:>5}
          exported to JSONL           {seller["exported"]:>5}   {seller["export_path"]}
          loaded into the ERP         {seller["loaded"]:>5}   {workdir / "erp.db"} (erp_orders)
          ERP numbers pushed back     {seller["references_pushed"]:>5}
          edits applied and seen      {seller["edits_applied"]:>5}   (older, unseen: {seller["edits_pending"]})
          ERP == sandbox ground truth {"yes" if seller["matches_ground_truth"] else "NO":>5}
  Buyer   demand lines in the ERP     {buyer["demand_lines"]:>5}
          purchase needs in Consentio {buyer["needs_in_consentio"]:>5}
  Files   {workdir / "data"}
  Logs    {workdir / "airflow" / "logs"}
  Done in {time.monotonic() - began:.0f}s; the sandbox is stopped."""
    )
    ok = seller["matches_ground_truth"] and seller["references_pushed"] == seller["loaded"]
    ok = ok and buyer["needs_in_consentio"] == buyer["demand_lines"]
    if catalogue["problems"]:
        ok = False
        print("\nThe catalogue differs from the ERP:\n  " + "\n  ".join(catalogue["problems"][:20]), file=sys.stderr)
    if not ok:
        print("\nDEMO FAILED: the outputs differ from the sandbox's ground truth", file=sys.stderr)
    return 0 if ok else 1


def run_standalone(workdir: Path, dags_folder: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    with SandboxProcess(workdir / "sandbox") as sandbox:
        seed_demand_lines(workdir / "erp.db", date(2025, 1, 1), days=90)
        seed_catalogue(workdir / "erp.db")
        env = build_env(workdir, sandbox, dags_folder)
        env.prepare()
        env.store_connections()  # in the metadata DB, so Admin > Connections shows working ones to copy
        port = UI_PORT if port_is_free(UI_PORT) else None
        with AirflowServices(env, port=port) as services:
            print(
                ("" if port else f"Port {UI_PORT} is taken: serving on a free port instead.\n")
                + f"Airflow UI: {services.base_url}  (user admin, password admin)\n"
                f"Sandbox:    {sandbox.base_url}  (workspace {sandbox.info['workspace_id']}, "
                f"API key {sandbox.info['api_key']}; the local sandbox's, not a secret)\n"
                "Connections consentio_default and consentio_erp: Admin > Connections.\n"
                "Unpause a DAG, or backfill one, e.g.:\n"
                f"  AIRFLOW_HOME={env.home} .venv/bin/airflow backfill create --dag-id consentio_seller_daily "
                "--from-date 2025-03-01 --to-date 2025-03-07\n"
                "Ctrl-C stops everything."
            )
            stop = False

            def request_stop(*_: object) -> None:
                nonlocal stop
                stop = True

            signal.signal(signal.SIGTERM, request_stop)
            try:
                while not stop:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_consentio.demo", description=__doc__)
    parser.add_argument("--date", type=date.fromisoformat, default=DEMO_DATE, help="the day to run (YYYY-MM-DD)")
    parser.add_argument("--workdir", type=Path, default=Path(".demo"), help="where everything goes (recreated)")
    parser.add_argument("--dags-folder", type=Path, default=example_dags(), help="the example DAGs")
    parser.add_argument("--standalone", action="store_true", help="serve the Airflow UI with the sandbox instead")
    args = parser.parse_args(argv)
    missing = missing_sandbox_extra()
    if missing:
        parser.error(f"{', '.join(missing)} not installed: pip install 'airflow-provider-consentio[sandbox]'")
    dags_folder = args.dags_folder.resolve()
    if not (dags_folder / "consentio_seller_daily.py").exists():
        parser.error(f"no example DAGs in {dags_folder}; pass --dags-folder")
    if args.standalone:
        return run_standalone(args.workdir.resolve() / "standalone", dags_folder)
    return run_demo(args.workdir.resolve(), dags_folder, args.date)


if __name__ == "__main__":
    sys.exit(main())
