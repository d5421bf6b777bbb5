"""A production-shaped Airflow on one machine: Celery workers and the Airflow services on Postgres, Redis and S3.

For the distributed end-to-end test and the backfill benchmark; the servers themselves are in ``services.py``.
Each worker has its own session, working folder and TMPDIR, as on separate machines.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_consentio.demo.stack import PYTHON, AirflowEnv, _stop, wait_until
from harness.services import (
    PostgresServer,
    RedisServer,
    S3Server,
    fail_if_exited,
    start_process,
    wait_ready,
    with_harness,
)

# Which TI.hostname a worker reports (see worker_hostname).
WORKER_HOSTNAME_VARIABLE = "CONSENTIO_WORKER_HOSTNAME"


def celery_settings(metadata_db_url: str, broker_url: str) -> dict[str, str]:
    """Airflow settings for the CeleryExecutor: Redis as broker, the metadata database as result backend."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_db_url.replace("+psycopg2", ""),
    }


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the test workers: two workers on one machine report distinct hostnames."""
    from airflow.utils.net import getfqdn

    return os.environ.get(WORKER_HOSTNAME_VARIABLE) or getfqdn()


class CeleryWorker:
    """``airflow celery worker`` in its own session, working folder, TMPDIR, AIRFLOW_HOME and log folder.

    Nothing on local disk is shared with another worker: what tasks hand each other goes through object storage
    and the metadata database, as on separate machines.
    """

    def __init__(self, env: AirflowEnv, name: str, workdir: Path, concurrency: int = 2):
        self.env = env
        self.name = name
        self.workdir = workdir
        self.concurrency = concurrency
        self.log = workdir / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def environ(self) -> dict[str, str]:
        home = self.workdir / "home"
        base = self.env.environ()
        return {
            **base,
            "PYTHONPATH": with_harness(base.get("PYTHONPATH")),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
            WORKER_HOSTNAME_VARIABLE: self.name,
            "TMPDIR": str(self.workdir / "tmp"),
        }

    def start(self, timeout: float = 180.0) -> CeleryWorker:
        for folder in ("home", "tmp"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        self.launch()
        wait_ready(self, timeout, f"Celery worker {self.name} to be ready", interval=0.5)
        return self

    def launch(self) -> None:
        """Start the worker process, without waiting for it to be ready."""
        command = [PYTHON, "-m", "airflow", "celery", "worker", "--celery-hostname", f"{self.name}@%h"]
        command += ["--concurrency", str(self.concurrency), "--skip-serve-logs", "--without-mingle"]
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        self.process = start_process(command, self.log, env=self.environ(), cwd=self.workdir)

    def _ready(self) -> bool:
        assert self.process is not None
        fail_if_exited(self.process, f"celery worker {self.name}", self.log)
        with self.log.open("rb") as log:  # this start's lines only: a restarted worker's log holds its predecessor's
            log.seek(self._log_start)
            text = log.read().decode(errors="replace")
        return f"{self.name}@" in text and " ready." in text

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL the worker as a lost machine: its process group and the groups its task processes run in."""
        if self.process is None:
            return
        for group in self._process_groups():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None:
            return
        task_groups = self._process_groups()
        _stop(self.process, grace=20)
        for group in task_groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    def _process_groups(self) -> set[int]:
        """The worker's own group and those of its descendants (Airflow runs each task in a group of its own)."""
        import psutil

        assert self.process is not None
        groups = {self.process.pid}
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(ProcessLookupError):
                    groups.add(os.getpgid(child.pid))
        return groups

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Supervisor(threading.Thread):
    """Starts again every Airflow service and Celery worker that exits, as systemd's ``Restart=always`` or a
    Kubernetes Deployment does in production: Airflow's scheduler, dag-processor and triggerer exit when their
    database goes away, and are meant to be restarted.

    A process that keeps exiting is started again at most every ``backoff`` seconds. ``paused()`` holds the restarts
    while a test keeps a service down on purpose.
    """

    def __init__(self, stack: ProductionAirflow, interval: float = 1.0, backoff: float = 5.0):
        super().__init__(daemon=True, name="supervisor")
        self.stack, self.interval, self.backoff = stack, interval, backoff
        self.restarts: list[str] = []
        self._last_start: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            with self._lock:
                self._restart_exited()

    def _restart_exited(self) -> None:
        now = time.monotonic()
        airflow = self.stack.airflow
        exited: list[tuple[str, Any]] = [(name, functools.partial(airflow.launch, name)) for name in airflow.exited()]
        exited += [(worker.name, worker.launch) for worker in self.stack.workers if worker.exited()]
        for name, launch in exited:
            if now - self._last_start.get(name, -self.backoff) >= self.backoff:
                self._last_start[name] = now
                launch()
                self.restarts.append(name)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            yield

    def stop(self) -> None:
        self._stopped.set()
        self.join(30)


def api_instant(value: str) -> datetime:
    """A timestamp of Airflow's REST API as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def dag_bundles(**folders: Path) -> str:
    """``[dag_processor] dag_bundle_config_list``: one local bundle per named folder."""
    import json

    classpath = "airflow.dag_processing.bundles.local.LocalDagBundle"
    return json.dumps([{"name": n, "classpath": classpath, "kwargs": {"path": str(p)}} for n, p in folders.items()])


# A killed worker's running tasks are failed (then retried elsewhere) once their heartbeat is this old; a task a dead
# worker had received but not started is re-queued after the queued timeout. Airflow's defaults (300 s, 600 s) suit
# production; a test wants the recovery within minutes, with room for a loaded two-core machine.
FAST_RECOVERY = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
}


@dataclass(frozen=True)
class Backfill:
    """A backfill created through the REST API: its ID and the days it covers."""

    id: int
    dag_id: str
    first: date
    days: int


class ProductionAirflow:
    """Postgres (metadata DB, Celery results, the ERP), Redis, S3, the sandbox, Airflow's services and workers.

    ``executor="celery"`` starts one Celery worker per name in ``workers``; ``"local"`` runs tasks in the scheduler's
    LocalExecutor. The ERP is the database ``erp`` on a Postgres server of its own (``erp_postgres``: restarting
    one database server leaves the other alone, as in production), reached through the connection ``consentio_erp``;
    S3 through ``aws_default`` with the bucket ``bucket`` created. ``s3_faults=True`` puts the fault proxy between
    Airflow and the S3 server (``s3_proxy``); the test's own ``s3.client()`` still talks to the server directly.
    ``sandbox_args``: the sandbox CLI's options (``--orders-per-day``, ``--start``...).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        bundles: dict[str, Path],
        executor: str = "celery",
        workers: tuple[str, ...] = ("worker-1", "worker-2"),
        bucket: str = "consentio-data",
        variables: dict[str, str] | None = None,
        settings: dict[str, str] | None = None,
        s3_faults: bool = False,
        sandbox_args: tuple[str, ...] = (),
        sandbox_start_timeout: float = 120.0,
    ):
        self.workdir, self.bundles, self.executor, self.worker_names = workdir, bundles, executor, workers
        self.bucket, self.variables, self.settings = bucket, variables or {}, settings or {}
        # The sandbox's command-line options (--orders-per-day, --start, --days...); 10,000 orders a day over weeks
        # takes the sandbox tens of seconds to generate, hence its own start timeout.
        self.s3_faults, self.sandbox_args, self.sandbox_start_timeout = s3_faults, sandbox_args, sandbox_start_timeout
        self.workers: list[CeleryWorker] = []
        self._services = contextlib.ExitStack()

    def start(self) -> ProductionAirflow:
        from airflow_provider_consentio.demo.stack import AirflowServices, SandboxProcess

        logs, enter = self.workdir / "logs", self._started
        try:
            self.postgres = enter(PostgresServer(logs))
            self.erp_postgres = enter(PostgresServer(logs / "erp"))
            self.redis = redis = enter(RedisServer(logs)) if self.executor == "celery" else None
            self.s3 = enter(S3Server(logs))
            self.s3_proxy = enter(self._s3_fault_proxy(logs)) if self.s3_faults else None
            self.sandbox = enter(
                SandboxProcess(
                    self.workdir / "sandbox", extra_args=self.sandbox_args, start_timeout=self.sandbox_start_timeout
                )
            )
            metadata_db = self.postgres.create_database("airflow")
            self.erp_postgres.create_database("erp")
            self.s3.client().create_bucket(Bucket=self.bucket)
            if redis is not None:
                executor_settings = celery_settings(metadata_db, redis.url)
            else:
                executor_settings = {
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
                }
            self.env = AirflowEnv(
                home=self.workdir / "airflow",
                dags_folder=next(iter(self.bundles.values())),
                connections={
                    "consentio_default": self.sandbox.connection_json(),
                    "consentio_erp": self.erp_postgres.airflow_connection("erp"),
                    "aws_default": (self.s3_proxy or self.s3).airflow_connection(),
                },
                variables=self.variables,
                settings={
                    **executor_settings,
                    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": dag_bundles(**self.bundles),
                    **self.settings,
                },
            )
            self.env.prepare()
            self.airflow = enter(AirflowServices(self.env))
            if self.executor == "celery":
                self.workers = [enter(CeleryWorker(self.env, n, self.workdir / n)) for n in self.worker_names]
        except BaseException:
            self._services.close()
            raise
        return self

    def _s3_fault_proxy(self, logs: Path) -> Any:
        from harness.services import S3FaultProxy

        return S3FaultProxy(logs, upstream=self.s3)

    def _started(self, service: Any) -> Any:
        """Start ``service``, stopped with the rest even if its own start fails half-way."""
        self._services.callback(service.stop)
        return service.start()

    def stop(self) -> None:
        self._services.close()

    def __enter__(self) -> ProductionAirflow:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def erp_connection(self) -> Iterator[Any]:
        """A connection to the ERP database, committed if the block completes, closed in any case."""
        import psycopg2

        conn = psycopg2.connect(self.erp_postgres.dsn("erp"))
        try:
            yield conn
            conn.commit()
        finally:
            conn.close()

    def erp(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        return self.erp_many([(sql, parameters)])[0]

    def erp_many(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[list[tuple[Any, ...]]]:
        """Run statements in one ERP connection and transaction; their rows, in order."""
        with self.erp_connection() as conn, conn.cursor() as cursor:
            results = []
            for sql, parameters in statements:
                cursor.execute(sql, parameters)
                results.append(cursor.fetchall() if cursor.description else [])
            return results

    def wait_for_dags(self, dag_ids: set[str], timeout: float = 180.0) -> None:
        def parsed() -> bool:
            dags = self.airflow.api("GET", "/api/v2/dags", params={"limit": 100})["dags"]
            return dag_ids <= {dag["dag_id"] for dag in dags}

        wait_until(parsed, timeout, f"the dag-processor to parse {', '.join(sorted(dag_ids))}", interval=2)

    def backfill(self, dag_id: str, first: date, days: int) -> Backfill:
        """Unpause ``dag_id`` (the scheduler runs a backfill only then) and backfill ``days`` days from ``first``."""
        self.airflow.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        last = first + timedelta(days=days - 1)
        body = {"dag_id": dag_id, "from_date": f"{first}T00:00:00Z", "to_date": f"{last}T00:00:00Z"}
        created = self.airflow.api("POST", "/api/v2/backfills", json=body)
        return Backfill(created["id"], dag_id, first, days)

    def backfill_runs(self, backfill: Backfill) -> list[dict[str, Any]]:
        wanted = {str(backfill.first + timedelta(days=offset)) for offset in range(backfill.days)}
        runs = self._pages(f"/api/v2/dags/{backfill.dag_id}/dagRuns", "dag_runs", run_type="backfill")
        return [run for run in runs if run["data_interval_start"][:10] in wanted]

    def wait_for_backfill(self, backfill: Backfill, timeout: float) -> list[dict[str, Any]]:
        """Wait for the scheduler to mark ``backfill`` complete, and return its runs.

        Not for its runs to finish: the scheduler marks the backfill complete a loop later, and until then the DAG
        has a running backfill, so creating the next one fails (AlreadyRunningBackfill).
        """
        wait_until(
            lambda: self.airflow.api("GET", f"/api/v2/backfills/{backfill.id}")["completed_at"],
            timeout,
            f"backfill {backfill.id} of {backfill.dag_id} ({backfill.days} days from {backfill.first}) to complete",
            interval=3,
        )
        runs = self.backfill_runs(backfill)
        unfinished = [run["dag_run_id"] for run in runs if run["state"] not in ("success", "failed")]
        if len(runs) != backfill.days or unfinished:
            raise AssertionError(f"backfill {backfill.id} completed with {len(runs)} runs, unfinished: {unfinished}")
        return runs

    def rerun_failed(self, dag_id: str, runs: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Clear the failed tasks of ``runs`` (as an owner does from the UI) and wait for the runs to succeed."""
        for run in runs:
            body = {"dry_run": False, "only_failed": True, "reset_dag_runs": True, "dag_run_id": run["dag_run_id"]}
            self.airflow.api("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", json=body)

        def finished() -> list[dict[str, Any]] | None:
            now = [self.airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}") for run in runs]
            return now if all(run["state"] in ("success", "failed") for run in now) else None

        rerun = wait_until(finished, timeout, f"the rerun of {len(runs)} failed run(s) of {dag_id}", interval=3)
        failed = [run["dag_run_id"] for run in rerun if run["state"] != "success"]
        if failed:
            raise AssertionError(f"the rerun did not repair {dag_id}: {failed} failed again")
        return rerun

    def task_instances(self, dag_id: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        run_ids = {run["dag_run_id"] for run in runs}
        tis = self._pages(f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", "task_instances")
        return [ti for ti in tis if ti["dag_run_id"] in run_ids]

    def _pages(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.airflow.api("GET", path, params={**params, "limit": 100, "offset": len(items)})
            items.extend(page[key])
            if not page[key] or len(items) >= page["total_entries"]:
                return items
