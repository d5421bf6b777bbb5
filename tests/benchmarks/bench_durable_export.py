"""Durable export benchmark: a 60-day export SIGKILLed at about 70% resumes on its retry.

A real Airflow (api-server, scheduler with its executor, dag-processor; SQLite) and the sandbox in its own process,
its order answers slowed by a fixed delay so that the export takes long enough to measure. Three runs:

1. a full export, undisturbed: its task's duration is the reference;
2. the same export; once about 70% of its requests are served, the task process (the one talking to the sandbox)
   is SIGKILLed; Airflow retries it (retries=1, no delay) and the retry resumes after the last checkpoint.

It prints the durations, the retry/full ratio (target <= 0.40) and whether the resumed file equals the undisturbed
one and the ground truth byte for byte.

    .venv/bin/python tests/benchmarks/bench_durable_export.py [--delay 0.02]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from airflow_provider_consentio.demo.stack import AirflowEnv, AirflowServices, SandboxProcess, wait_until  # noqa: E402
from airflow_provider_consentio.models.jsonwire import split_array  # noqa: E402

DAG_ID = "consentio_durable_bench"
START, END = "2025-01-15T00:00:00Z", "2025-03-16T00:00:00Z"  # 60 days


def ground_truth(sandbox: SandboxProcess) -> list[bytes]:
    """Every order of the 60 days exactly as the API serves it."""
    import httpx

    params = {"from": START, "to": END, "kind": "sale"}
    body = httpx.get(f"{sandbox.base_url}/_sandbox/orders", params=params, timeout=120).content
    return [bytes(element) for element in split_array(body)[1]]


def order_requests(sandbox: SandboxProcess) -> int:
    requests = sandbox.admin("GET", "/_sandbox/stats")["requests"]
    return sum(count for key, count in requests.items() if key.startswith("GET /{ws}/order "))


def trigger(services: AirflowServices, run_id: str, output: Path) -> None:
    conf = {"output_path": str(output), "start": START, "end": END}
    services.api(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": None, "conf": conf}
    )


def finished(services: AirflowServices, run_id: str) -> dict[str, Any] | None:
    run = services.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    return run if run["state"] in ("success", "failed") else None


def tries(services: AirflowServices, run_id: str) -> list[dict[str, Any]]:
    """Every attempt of the export task: the earlier ones from the history, then the current one."""
    base = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/export"
    history = services.api("GET", f"{base}/tries")["task_instances"]
    return sorted(history, key=lambda attempt: attempt["try_number"])


def seconds(attempt: dict[str, Any]) -> float:
    start, end = (datetime.fromisoformat(attempt[key]) for key in ("start_date", "end_date"))
    return (end - start).total_seconds()


def task_process_talking_to(port: int, roots: list[int]) -> Any:
    """The process (among the services' descendants) with a connection open to the sandbox: the running task."""
    import psutil

    for root in roots:
        for process in psutil.Process(root).children(recursive=True):
            try:
                if any(conn.raddr and conn.raddr.port == port for conn in process.net_connections("tcp")):
                    return process
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds added to each order answer")
    parser.add_argument("--kill-at", type=float, default=0.7, help="share of the requests served before the kill")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="consentio-durable-bench-"))
    with SandboxProcess(workdir / "sandbox") as sandbox:
        plan = {"paths": r"/order$", "rules": [{"kind": "slow", "delay": args.delay, "every": 1}]}
        sandbox.admin("PUT", "/_sandbox/faults", json=plan)
        env = AirflowEnv(
            home=workdir / "airflow",
            dags_folder=HERE.parent / "dags_durable",
            connections={"consentio_default": sandbox.connection_json()},
        )
        env.prepare()
        with AirflowServices(env) as services:
            wait_until(
                lambda: any(d["dag_id"] == DAG_ID for d in services.api("GET", "/api/v2/dags")["dags"]),
                180,
                "the DAG to be parsed",
                interval=1.0,
            )
            services.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})

            full_output = workdir / "full.jsonl"
            before = order_requests(sandbox)
            trigger(services, "full", full_output)
            assert (
                wait_until(lambda: finished(services, "full"), 900, "the full export", interval=1.0)["state"]
                == "success"
            )
            [full] = tries(services, "full")
            full_requests = order_requests(sandbox) - before

            killed_output = workdir / "killed.jsonl"
            before = order_requests(sandbox)
            trigger(services, "killed", killed_output)
            wait_until(
                lambda: order_requests(sandbox) - before >= args.kill_at * full_requests, 900, "70% of the requests"
            )
            roots = [process.pid for process in services.processes.values()]
            victim = task_process_talking_to(sandbox.port, roots)
            assert victim is not None, "no task process found talking to the sandbox"
            killed_at = order_requests(sandbox) - before
            os.kill(victim.pid, signal.SIGKILL)
            run = wait_until(lambda: finished(services, "killed"), 900, "the retried export", interval=1.0)
            attempts = tries(services, "killed")
            retry_requests = order_requests(sandbox) - before - killed_at
        sandbox.admin("DELETE", "/_sandbox/faults")
        truth = ground_truth(sandbox)

    full_bytes, resumed_bytes = full_output.read_bytes(), killed_output.read_bytes()
    full_seconds, retry_seconds = seconds(full), seconds(attempts[-1])
    print(f"60-day export ({START[:10]} .. {END[:10]}), {full_requests} requests, {args.delay}s added per answer")
    print("| run | task seconds | requests |\n|---|---|---|")
    print(f"| full export, undisturbed | {full_seconds:.1f} | {full_requests} |")
    print(
        f"| killed attempt (SIGKILL at {killed_at / full_requests:.0%} of the requests) "
        f"| {seconds(attempts[0]):.1f} | {killed_at} |"
    )
    print(f"| retry, resumed | {retry_seconds:.1f} | {retry_requests} |")
    print(
        f"retry / full = {retry_seconds / full_seconds:.2f} (target <= 0.40); "
        f"run state {run['state']}, {len(attempts)} attempts"
    )
    print(f"resumed file == undisturbed file byte for byte: {resumed_bytes == full_bytes} ({len(full_bytes)} bytes)")
    print(f"undisturbed file == ground truth ({len(truth)} orders): {full_bytes.splitlines() == truth}")
    print(f"work directory: {workdir}")


if __name__ == "__main__":
    main()
