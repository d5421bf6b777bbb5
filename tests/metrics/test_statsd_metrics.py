"""The metrics the README lists, read from a real StatsD listener (a UDP socket on 127.0.0.1) during a real DAG run
(dag.test), and nothing at all with metrics off."""

from __future__ import annotations

import re
import socket
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
WINDOW = {"start": "2025-03-10T00:00:00Z", "end": "2025-03-11T00:00:00Z"}


@dataclass(frozen=True)
class Sample:
    name: str
    tags: dict[str, str]
    value: float
    kind: str  # c (counter), ms (timer), g (gauge)


class Listener:
    """A StatsD server reduced to its socket: every line received, parsed (InfluxDB-style tags in the name)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]

    def received(self) -> list[Sample]:
        self.socket.settimeout(0.5)
        samples = []
        try:
            while True:
                for line in self.socket.recv(65536).decode().splitlines():
                    samples.append(parse(line))
        except TimeoutError:
            return samples

    def close(self) -> None:
        self.socket.close()


def parse(line: str) -> Sample:
    """``airflow.consentio.api.requests,endpoint=/order,status=2xx:1|c`` -> the name without the prefix, tags, value."""
    stat, _, rest = line.partition(":")
    name, *tags = stat.split(",")
    value, kind, *_ = rest.split("|")
    return Sample(name.removeprefix("airflow."), dict(tag.split("=", 1) for tag in tags), float(value), kind)


def use_statsd(monkeypatch: pytest.MonkeyPatch, on: bool, port: int) -> None:
    """Configure Airflow's metrics as a task process does at its start (task_runner.main), from the [metrics]
    section in the environment; monkeypatch puts the process's previous metrics back after the test."""
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", str(on))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(port))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED", "True")
    try:  # Airflow 3.3: the task SDK's module-level backend, made on first use from the factory
        from airflow.sdk._shared.observability.metrics import stats
        from airflow.sdk.observability.metrics import stats_utils

        monkeypatch.setattr(stats, "_factory", stats_utils.get_stats_factory())
        monkeypatch.setattr(stats, "_backend", None)
    except ImportError:  # Airflow 3.1: airflow.stats' class, whose factory is chosen once, at its import
        from airflow.metrics import statsd_logger
        from airflow.metrics.base_stats_logger import NoStatsLogger
        from airflow.stats import Stats, _Stats

        monkeypatch.setattr(_Stats, "factory", statsd_logger.get_statsd_logger if on else NoStatsLogger)
        # The instance made on first use is set on the class, not on its metaclass.
        monkeypatch.setattr(Stats, "instance", None)


@pytest.fixture
def listener() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


def documented_metrics() -> list[str]:
    """The metric names of the README's Metrics table."""
    section = README.read_text(encoding="utf-8").split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(consentio\.[a-z_.]+)` \|", section, flags=re.MULTILINE)


def needs(count: int) -> list[dict[str, Any]]:
    return [
        {
            "code": f"PN-M{number:04d}",
            "reference_code": f"PRD-{number:05d}",
            "start_date": "2025-03-01",
            "end_date": "2025-03-02",
            "quantity": number + 1,
            "quantity_unit": "box",
            "external_status": "A",
        }
        for number in range(count)
    ]


def by_name(samples: list[Sample]) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        found[sample.name].append(sample)
    return found


def total(samples: list[Sample], **tags: str) -> float:
    return sum(s.value for s in samples if all(s.tags.get(key) == value for key, value in tags.items()))


def test_a_dag_run_emits_every_documented_metric(run_dag, sandbox, listener, monkeypatch, tmp_path):
    use_statsd(monkeypatch, True, listener.port)
    plan = {
        "paths": "/order|/purchase-needs",
        "rules": [{"kind": "429", "every": 3, "retry_after": 0.01}, {"kind": "503", "every": 5}],
    }
    httpx.put(f"{sandbox.base_url}/_sandbox/faults", json=plan, timeout=10).raise_for_status()
    out = tmp_path / "orders.jsonl"

    result = run_dag("t_metrics", output_path=str(out), needs=needs(25), **WINDOW)

    assert result.succeeded, result.output
    metrics = by_name(listener.received())
    documented = documented_metrics()
    assert len(documented) == 9
    assert sorted(documented) == sorted(name for name in metrics if name.startswith("consentio.")), metrics.keys()

    export, upsert = result.xcoms["export"], result.xcoms["upsert"]
    requests = metrics["consentio.api.requests"]
    server = sandbox.sandbox.stats
    assert total(requests) == sum(server.requests.values())
    assert total(requests) >= export["sub_windows"] + upsert["batches"] + 1  # and a login
    assert total(requests, endpoint="/order", method="GET", task_id="export") >= export["sub_windows"]
    assert total(requests, endpoint="/purchase-needs", method="POST", task_id="upsert") >= upsert["batches"]
    assert all(s.tags["conn_id"] == "consentio_default" and s.tags["dag_id"] == "t_metrics" for s in requests)
    assert {s.tags["status"] for s in requests} == {"2xx", "4xx", "5xx"}
    durations = metrics["consentio.api.request_duration"]
    assert len(durations) == total(requests) and all(s.kind == "ms" and s.value > 0 for s in durations)

    assert server.faults["429"] > 0 and server.faults["503"] > 0
    assert total(metrics["consentio.api.rate_limited"]) == server.faults["429"]
    retries = metrics["consentio.api.retries"]
    assert total(retries) == server.faults["429"] + server.faults["503"]
    assert total(retries, reason="429") == server.faults["429"]
    waits = metrics["consentio.api.wait"]
    assert len([s for s in waits if s.tags["reason"] == "retry_after"]) == server.faults["429"]
    assert len([s for s in waits if s.tags["reason"] == "backoff"]) == server.faults["503"]
    assert all(s.kind == "ms" and s.value > 0 for s in waits)

    assert total(metrics["consentio.api.bytes_received"], endpoint="/order") >= out.stat().st_size > 0
    assert total(metrics["consentio.api.bytes_sent"], endpoint="/purchase-needs") > 25 * 50

    read = metrics["consentio.records.read"]
    assert total(read, task_id="export", resource="orders") == export["count"] > 0
    written = metrics["consentio.records.written"]
    assert total(written, task_id="upsert", resource="purchase_needs") == upsert["submitted"] == 25


def test_with_metrics_off_nothing_is_sent_and_the_tasks_succeed(run_dag, listener, monkeypatch, tmp_path):
    use_statsd(monkeypatch, False, listener.port)
    result = run_dag("t_metrics", output_path=str(tmp_path / "orders.jsonl"), needs=needs(5), **WINDOW)
    assert result.succeeded, result.output
    assert listener.received() == []


def test_a_failing_metrics_backend_fails_no_task(execute, monkeypatch, tmp_path):
    from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("the metrics backend is down")

    monkeypatch.setattr("airflow_provider_consentio.version_compat.airflow_stats", Broken)
    out = tmp_path / "orders.jsonl"
    operator = ConsentioExportOrdersOperator(task_id="export", output_path=str(out), **WINDOW)
    summary, _ = execute(operator)
    assert summary["count"] > 0 and out.exists()
