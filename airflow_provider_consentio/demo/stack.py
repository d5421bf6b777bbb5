"""Run the sandbox and a real Airflow on one machine: for the demo, the end-to-end tests and the chaos runs.

Everything binds 127.0.0.1 on free ports and lives under one work directory; ``stop()`` ends every process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_consentio.demo import airflow_sqlite

PYTHON = sys.executable
ADMIN = ("admin", "admin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _stop(process: subprocess.Popen[Any], grace: float = 20.0) -> None:
    """SIGTERM, SIGKILL after ``grace``; then the rest of its session too, so no executor worker outlives it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # each service was started as its own session (group id == pid)
    process.wait(5)


class SandboxProcess:
    """The sandbox CLI in its own process (its own core), on a free loopback port."""

    def __init__(
        self, workdir: Path, *, seed: int = 42, extra_args: tuple[str, ...] = (), start_timeout: float = 120.0
    ):
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.seed = seed
        self.extra_args = extra_args
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> SandboxProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / f"sandbox-{self.port}.ready"
        ready.unlink(missing_ok=True)
        log = (self.workdir / f"sandbox-{self.port}.log").open("wb")
        command = [
            PYTHON,
            "-m",
            "airflow_provider_consentio.sandbox",
            "--port",
            str(self.port),
            "--seed",
            str(self.seed),
        ]
        self.process = subprocess.Popen(
            [*command, "--ready-file", str(ready), *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            lambda: ready.exists() or self.process.poll() is not None, self.start_timeout, "the sandbox to listen"
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"the sandbox exited early; see {log.name}")
        self.info = self.admin("GET", "/_sandbox/info")
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, grace=10)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, self.base_url + path, timeout=60, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def connection_json(self) -> str:
        return json.dumps(
            {
                "conn_type": "consentio",
                "login": str(self.info["workspace_id"]),
                "password": self.info["api_key"],
                # Host and port apart: Airflow 3.3.1-3.3.2's Test button fails on connections without a port.
                "host": "http://127.0.0.1",
                "port": self.port,
                "extra": {"timeout": 30, "max_retries": 8},
            }
        )

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class AirflowEnv:
    """An isolated Airflow installation: its own home, SQLite database, DAG folder, connections and variables."""

    home: Path
    dags_folder: Path
    connections: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        """The environment of every Airflow command and service of this installation."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "_AIRFLOW"))}
        passwords = self.home / "simple_auth_passwords.json"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                # The API server and workers need `airflow` on PATH (design.md: standalone needs the venv's bin).
                "PATH": f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONWARNINGS": "ignore::DeprecationWarning",
            }
        )
        env.update({f"AIRFLOW_CONN_{name.upper()}": value for name, value in self.connections.items()})
        env.update({f"AIRFLOW_VAR_{name.upper()}": value for name, value in self.variables.items()})
        if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in self.settings:
            # SQLite: writers wait for each other's lock instead of failing (see airflow_sqlite.py).
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = f"{airflow_sqlite.__name__}.CONNECT_ARGS"
        env.update(self.settings)
        return env

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config").mkdir(exist_ok=True)
        (self.home / "config" / "airflow_local_settings.py").write_text(airflow_sqlite.LOCAL_SETTINGS)
        (self.home / "simple_auth_passwords.json").write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
        self.airflow("db", "migrate", timeout=300)

    def store_connections(self) -> None:
        """Move the connections from environment variables into the metadata DB: Admin > Connections lists them."""
        for conn_id, value in self.connections.items():
            self.airflow("connections", "add", conn_id, "--conn-json", value)
        self.connections.clear()

    def import_errors(self) -> dict[str, str]:
        """DAG file -> traceback, for every file of the DAGs folder that fails to import (parsed as Airflow does)."""
        result = self.airflow("dags", "list-import-errors", "--local", "--output", "json", check=False)
        # Exit status 1 means "errors found"; log lines may precede the JSON on stdout.
        listing = [line for line in result.stdout.splitlines() if line.startswith("[")]
        if not listing:
            raise RuntimeError(f"airflow dags list-import-errors exited {result.returncode}:\n{result.stderr[-4000:]}")
        return {row["filepath"]: row["error"] for row in json.loads(listing[-1])}

    def airflow(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [PYTHON, "-m", "airflow", *args],
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {result.returncode}\n--- stdout ---\n{result.stdout[-6000:]}"
                f"\n--- stderr ---\n{result.stderr[-6000:]}"
            )
        return result


# Airflow's services, as `airflow <command>`; the api-server also gets its port.
SERVICE_COMMANDS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
# Each service's entry in /api/v2/monitor/health, and the field of its newest heartbeat.
SERVICE_HEALTH = {
    "scheduler": ("scheduler", "latest_scheduler_heartbeat"),
    "triggerer": ("triggerer", "latest_triggerer_heartbeat"),
    "dag-processor": ("dag_processor", "latest_dag_processor_heartbeat"),
}


class AirflowServices:
    """api-server, scheduler, dag-processor and triggerer as separate processes (each exits cleanly on TERM)."""

    def __init__(self, env: AirflowEnv, port: int | None = None):
        self.env = env
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env.settings.setdefault("AIRFLOW__API__PORT", str(self.port))
        self.env.settings.setdefault("AIRFLOW__API__BASE_URL", self.base_url)
        self.env.settings.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"{self.base_url}/execution/")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None

    def start(self, timeout: float = 180.0) -> AirflowServices:
        for name in SERVICE_COMMANDS:
            self.launch(name)
        wait_until(self._healthy, timeout, "the Airflow services to report healthy", interval=1.0)
        return self

    def launch(self, name: str) -> None:
        """Start service ``name``'s process, without waiting for it."""
        args = SERVICE_COMMANDS[name] + (["--port", str(self.port)] if name == "api-server" else [])
        log = self.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:  # appended: a restarted service's log follows its predecessor's
            self.processes[name] = subprocess.Popen(
                [PYTHON, "-m", "airflow", *args],
                env=self.env.environ(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_path(self, name: str) -> Path:
        return self.env.home / "service-logs" / f"{name}.log"

    def kill(self, name: str) -> None:
        """SIGKILL service ``name`` and everything in its session, as an evicted pod: no shutdown of any kind."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def restart(self, name: str, timeout: float = 180.0) -> None:
        """Start service ``name`` again (after ``kill``, or after it exited), and wait until that new process
        heartbeats: the health endpoint reports a dead service healthy until its last heartbeat grows old."""
        if self.processes[name].poll() is None:
            raise RuntimeError(f"airflow {name} is still running: kill it first")
        restarted_at = datetime.now(UTC)
        self.launch(name)
        if name not in SERVICE_HEALTH:  # the api-server: it serves the health endpoint itself
            wait_until(self._answers, timeout, f"the restarted airflow {name} to answer", interval=1.0)
            return
        component, field = SERVICE_HEALTH[name]

        def heartbeat_since_restart() -> bool:
            beat: str | None = ((self._health() or {}).get(component) or {}).get(field)
            return beat is not None and datetime.fromisoformat(beat.replace("Z", "+00:00")) > restarted_at

        wait_until(heartbeat_since_restart, timeout, f"the restarted airflow {name} to heartbeat", interval=1.0)

    def _answers(self) -> bool:
        return self._health() is not None

    def _health(self) -> dict[str, Any] | None:
        """/api/v2/monitor/health's answer, or None while the api-server does not answer it; fails if a service
        has exited."""
        self._check_running()
        try:
            response = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
            return dict(response.json()) if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def exited(self) -> list[str]:
        """The services whose process has exited."""
        return [name for name, process in self.processes.items() if process.poll() is not None]

    def _check_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = self.log_path(name)
                raise RuntimeError(f"airflow {name} exited {process.returncode}:\n{log.read_text()[-4000:]}")

    def _healthy(self) -> bool:
        health = self._health() or {}
        return all(
            health.get(component, {}).get("status") == "healthy"
            for component in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            _stop(process)

    def token(self) -> str:
        if self._token is None:
            response = httpx.post(
                f"{self.base_url}/auth/token", json={"username": ADMIN[0], "password": ADMIN[1]}, timeout=30
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method, self.base_url + path, headers={"Authorization": f"Bearer {self.token()}"}, timeout=60, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def __enter__(self) -> AirflowServices:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
