"""The servers a production-shaped Airflow needs, on one machine: Postgres, Redis and an S3-compatible server.

For the distributed end-to-end test and the backfill benchmark (see ``production.py`` beside it). Each server binds
127.0.0.1 on a free port, runs in its own session (process group) and is stopped through that group, never by name.
Postgres and Redis come from Debian packages (``make services`` installs them); the S3 server is moto's server
mode, from PyPI.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_consentio.demo.stack import PYTHON, _stop, free_port, wait_until


def with_harness(pythonpath: str | None) -> str:
    """``pythonpath`` with the harness's parent folder first: the harness is not installed, and the processes it
    starts (the S3 fault proxy, Celery workers importing ``worker_hostname``) import it by name."""
    return os.pathsep.join(filter(None, (str(Path(__file__).resolve().parents[1]), pythonpath)))


def missing_servers() -> list[str]:
    """What of Postgres and Redis is not installed here (empty when both are)."""
    missing = [] if postgres_bin_dir() else ["postgresql (initdb, postgres)"]
    return missing if shutil.which("redis-server") else [*missing, "redis-server"]


def servers_or_skip(test: str) -> None:
    """Skip ``test`` when Postgres or Redis is missing, saying why; under CI, fail instead: CI must run it."""
    import pytest

    missing = missing_servers()
    if missing:
        message = f"{test} needs {', '.join(missing)}: run `make services` (as root: apt-get install)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def postgres_bin_dir() -> Path | None:
    """The newest Debian Postgres install's bin folder (/usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def start_process(command: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def fail_if_exited(process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"{name} exited {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")


def wait_ready(server: Any, timeout: float, what: str, interval: float) -> None:
    """Wait for ``server._ready()``; stop the server if it never gets there or the wait is interrupted."""
    try:
        wait_until(server._ready, timeout, what, interval)
    except BaseException:
        server.stop()
        raise


class _ServerProcess:
    """A server in its own session on a free loopback port, logging to ``<log_dir>/<name>.log``."""

    name = "server"

    def __init__(self, log_dir: Path):
        self.log = log_dir / f"{self.name}.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Any:
        raise NotImplementedError

    def _check_alive(self) -> None:
        assert self.process is not None
        fail_if_exited(self.process, self.name, self.log)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, grace=10)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class PostgresServer(_ServerProcess):
    """A throwaway Postgres cluster: trust auth for the superuser ``airflow``, one database per ``create_database``.

    Postgres refuses to run as root, so as root it runs as the ``postgres`` user, in a folder that user owns (a
    pytest tmp folder is private to root, hence a folder of its own under the system temp dir).
    """

    name = "postgres"
    USER = "airflow"

    def __init__(self, log_dir: Path):
        super().__init__(log_dir)
        self.root: Path | None = None

    def start(self, timeout: float = 120.0) -> PostgresServer:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("Postgres is not installed: run `make services` (apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="consentio-postgres-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        initdb = [str(bin_dir / "initdb"), "-D", str(self.root / "data"), "-A", "trust", "-U", self.USER, "-E", "UTF8"]
        subprocess.run([*self._as_owner(), *initdb], check=True, capture_output=True, timeout=timeout)
        self._launch(bin_dir, timeout)
        return self

    def restart(self, down_for: float = 0.0, timeout: float = 120.0) -> None:
        """Stop the server as a maintenance restart does (fast shutdown: open transactions are rolled back and every
        client is disconnected), stay down ``down_for`` seconds, and start it again on the same port and data."""
        with self.down(timeout):
            time.sleep(down_for)

    @contextlib.contextmanager
    def down(self, timeout: float = 120.0) -> Iterator[None]:
        """The server stopped (fast shutdown) for the duration of the block, then started again as it was."""
        self._shut_down()
        try:
            yield
        finally:
            bin_dir = postgres_bin_dir()
            assert bin_dir is not None and self.root is not None
            self._launch(bin_dir, timeout)

    def _as_owner(self) -> list[str]:
        """Postgres refuses to run as root: as root, run it as the ``postgres`` user."""
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _launch(self, bin_dir: Path, timeout: float) -> None:
        assert self.root is not None
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "max_connections": "200",  # scheduler, api-server, triggerer, dag-processor, workers and their tasks
            "fsync": "off",  # a throwaway cluster: durability across power loss is not under test
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        command = [*self._as_owner(), str(bin_dir / "postgres"), "-D", str(self.root / "data"), *options]
        self.process = start_process(command, self.log)
        wait_ready(self, timeout, "Postgres to accept connections", interval=0.3)

    def _ready(self) -> bool:
        import psycopg2

        self._check_alive()
        try:
            psycopg2.connect(self.dsn("postgres"), connect_timeout=2).close()
        except psycopg2.OperationalError:
            return False
        return True

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create ``name``; return its SQLAlchemy URL (psycopg2 driver)."""
        import psycopg2

        conn = psycopg2.connect(self.dsn("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return f"postgresql+psycopg2://{self.USER}@127.0.0.1:{self.port}/{name}"

    def airflow_connection(self, database: str) -> str:
        """An Airflow connection URI for the postgres provider's hook."""
        return f"postgres://{self.USER}@127.0.0.1:{self.port}/{database}"

    def _shut_down(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGINT is Postgres' fast shutdown: roll back open transactions, disconnect clients, stop.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30)
        super().stop()

    def stop(self) -> None:
        self._shut_down()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


class RedisServer(_ServerProcess):
    """redis-server in the foreground, in memory only (no RDB snapshots, no AOF)."""

    name = "redis"

    def __init__(self, log_dir: Path):
        super().__init__(log_dir)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 60.0) -> RedisServer:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = start_process(command, self.log)
        wait_ready(self, timeout, "Redis to answer PING", interval=0.2)
        return self

    def restart(self, down_for: float = 0.0, timeout: float = 60.0) -> None:
        """Stop Redis and start it again on the same port, as a restarted or failed-over Redis: in memory only, it
        comes back empty, so the Celery messages waiting in its queues are gone with it."""
        self.stop()
        time.sleep(down_for)
        self.start(timeout)

    def _ready(self) -> bool:
        import redis

        self._check_alive()
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=2).ping())
        except redis.ConnectionError:
            return False


def s3_client(endpoint_url: str, **config: Any) -> Any:
    """A boto3 S3 client of the test servers' account at ``endpoint_url``; ``config``: botocore's Config options."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=S3Server.REGION,
        aws_access_key_id=S3Server.ACCESS_KEY,
        aws_secret_access_key=S3Server.SECRET_KEY,
        config=Config(**config),
    )


class S3Server(_ServerProcess):
    """moto's S3-compatible server mode in its own process; any access key is accepted."""

    ACCESS_KEY = "consentio-test"
    SECRET_KEY = "consentio-test-secret"
    REGION = "us-east-1"
    name = "s3"

    def __init__(self, log_dir: Path):
        super().__init__(log_dir)
        self.endpoint_url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> S3Server:
        self.process = start_process([PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], self.log)
        wait_ready(self, timeout, "the S3 server to listen", interval=0.3)
        return self

    def _ready(self) -> bool:
        self._check_alive()
        try:
            return httpx.get(self.endpoint_url + "/moto-api/", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    def client(self, **config: Any) -> Any:
        return s3_client(self.endpoint_url, **config)

    def airflow_connection(self) -> str:
        """The Airflow ``aws`` connection (JSON) that points ObjectStoragePath's s3:// at this server."""
        import json

        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.ACCESS_KEY,
                "password": self.SECRET_KEY,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": self.REGION},
            }
        )


class S3FaultProxy(_ServerProcess):
    """The S3 fault proxy (``s3_faults.py`` beside this file) in front of an :class:`S3Server`: clients given its
    endpoint reach moto through it, and a seeded share of their requests fail as S3 fails (503 SlowDown, 500, a
    reset connection, a lost answer, a slow answer). No faults until :meth:`set_faults`."""

    name = "s3-proxy"

    def __init__(self, log_dir: Path, upstream: S3Server):
        super().__init__(log_dir)
        self.upstream = upstream
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"{self.endpoint_url}/_fault_proxy"

    def start(self, timeout: float = 30.0) -> S3FaultProxy:
        command = [
            PYTHON,
            "-m",
            "harness.s3_faults",
            "--upstream",
            self.upstream.endpoint_url,
            "--port",
            str(self.port),
        ]
        env = {**os.environ, "PYTHONPATH": with_harness(os.environ.get("PYTHONPATH"))}
        self.process = start_process(command, self.log, env=env)
        wait_ready(self, timeout, "the S3 fault proxy to listen", interval=0.2)
        return self

    def _ready(self) -> bool:
        self._check_alive()
        try:
            return httpx.get(self.admin_url + "/stats", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def set_faults(self, seed: int, rules: list[dict[str, Any]]) -> None:
        """Fail requests from now on: ``rules`` as ``{"kind", "probability", "operations"?, "delay"?}``."""
        httpx.put(self.admin_url + "/faults", json={"seed": seed, "rules": rules}, timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(self.admin_url + "/faults", timeout=10).raise_for_status()

    def stats(self) -> dict[str, Any]:
        """``{"requests", "by_operation", "faults" (by kind), "faults_by_operation", "retried"}`` since the last
        reset."""
        response = httpx.get(self.admin_url + "/stats", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def reset_stats(self) -> None:
        httpx.post(self.admin_url + "/stats/reset", timeout=10).raise_for_status()

    def client(self, **config: Any) -> Any:
        """A boto3 client that goes through the proxy (botocore's own retries on, as a user's would be, unless
        ``config`` says otherwise)."""
        return s3_client(self.endpoint_url, **config)

    def airflow_connection(self) -> str:
        """:meth:`S3Server.airflow_connection`, through the proxy."""
        import json

        connection = json.loads(self.upstream.airflow_connection())
        connection["extra"]["endpoint_url"] = self.endpoint_url
        return json.dumps(connection)
