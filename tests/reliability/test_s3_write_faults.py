"""The provider's S3 write and read paths through the S3 fault proxy (tests/harness/s3_faults.py) in front of moto.

The exports (one atomic write; the durable export's parts and their join) and the load into SQL run with
``execute()`` against the in-process sandbox, writing ``s3://aws_default@...`` through the proxy while a seeded
share of every S3 request fails as S3 fails. What must hold: the final object is byte for byte the export of the
same window to a local file without faults; nothing else is ever visible at the final key; no part, temporary
object or unfinished multipart upload is left after a success; and a failure the client stack cannot absorb fails
the task loudly and the next attempt repairs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import uuid
from collections import Counter
from typing import Any

import pytest

pytestmark = pytest.mark.integration  # starts moto and the proxy as processes of their own

BUCKET = "exports"
DAY = ("2025-03-10T00:00:00Z", "2025-03-11T00:00:00Z")
ORDERS_PER_DAY = 2_000  # a day is a few MB; issue #24 scale (10,000) costs minutes of sandbox time per export
EXPORTS = 12
KINDS = ("slowdown", "internal", "reset", "reset_after", "slow")


def every_kind(share: float, delay: float = 0.2) -> list[dict[str, Any]]:
    """``share`` of all requests fail, split evenly over the kinds, on every operation."""
    return [{"kind": kind, "probability": share / len(KINDS), "delay": delay} for kind in KINDS]


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory):
    from harness.services import S3FaultProxy, S3Server

    logs = tmp_path_factory.mktemp("s3-write-fault-logs")
    with S3Server(logs) as s3, S3FaultProxy(logs, s3) as proxy:
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3, proxy


@pytest.fixture
def proxy(s3_stack, monkeypatch):
    """The proxy, no faults yet, zeroed counters; ``aws_default`` (what ``s3://aws_default@`` uses) points at it."""
    _, proxy = s3_stack
    proxy.clear_faults()
    proxy.reset_stats()
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", proxy.airflow_connection())
    yield proxy
    proxy.clear_faults()


@pytest.fixture
def moto(s3_stack):
    """A client straight to moto, past the proxy: what is really in the store."""
    s3, _ = s3_stack
    return s3.client()


def keys(moto, prefix: str) -> list[str]:
    pages = moto.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def unfinished_uploads(moto, prefix: str) -> list[str]:
    return [upload["Key"] for upload in moto.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])]


class FinalKeyWatch:
    """Reads the final key straight from moto every few milliseconds while a write runs: every version seen."""

    def __init__(self, moto: Any, key: str):
        self.moto, self.key = moto, key
        self.seen: Counter[bytes] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(self.moto.exceptions.NoSuchKey):
                self.seen[self.moto.get_object(Bucket=BUCKET, Key=self.key)["Body"].read()] += 1

    def __enter__(self) -> FinalKeyWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)


# --- the atomic writer ---------------------------------------------------------------------------------------


def test_a_failed_multipart_part_leaves_nothing_at_the_final_key(proxy, moto):
    """Above 100 MB the upload is multipart. Every UploadPart fails (500, past botocore's retries): the write must
    fail and the final key must stay as it was: no truncated object, no unfinished upload. (Before the writer used
    put_file, an s3fs file's close() on the way out of the failed block left the multipart upload unfinished, and
    committed a truncated object when its own retry of the part got through.)"""
    from airflow_provider_consentio.errors import ConsentioStorageError
    from airflow_provider_consentio.operators.base.storage import atomic_writer

    prefix = f"big-{uuid.uuid4().hex[:8]}/"
    proxy.set_faults(1, [{"kind": "internal", "probability": 1.0, "operations": ["UploadPart"]}])
    expected = rf"Writing 105906176 bytes to s3://aws_default@{BUCKET}/{prefix}data.bin failed .*: UploadPart -> "
    with (
        pytest.raises(ConsentioStorageError, match=expected + "HTTP 500: InternalError"),
        atomic_writer(f"s3://aws_default@{BUCKET}/{prefix}data.bin") as out,
    ):
        for _ in range(101):
            out.write(os.urandom(2**20))

    assert keys(moto, prefix) == []
    assert unfinished_uploads(moto, prefix) == []
    assert proxy.stats()["faults_by_operation"]["UploadPart"]["internal"] >= 5  # botocore's 5 attempts at least


@pytest.mark.parametrize("seed", [3, 4])
def test_a_part_that_fails_then_gets_through_never_leaves_a_truncated_object(proxy, moto, seed):
    """The regression of issue #24's first find. The writer used to open an s3fs file and copy into it: at 50 MB
    its first part went up, and when that UploadPart failed past botocore's retries, the file's close() (fsspec's
    __exit__) sent the buffered 50 MB again and committed them: a 50 MB object of 60 at the final key, replacing
    the good one. With these seeds (75% of UploadParts fail) the old writer did exactly that."""
    from airflow_provider_consentio.operators.base.storage import atomic_writer

    key = f"big-{uuid.uuid4().hex[:8]}/data.bin"
    data = os.urandom(60 * 2**20)
    proxy.set_faults(seed, [{"kind": "internal", "probability": 0.75, "operations": ["UploadPart"]}])
    with atomic_writer(f"s3://aws_default@{BUCKET}/{key}") as out:
        for offset in range(0, len(data), 2**20):
            out.write(data[offset : offset + 2**20])

    assert moto.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    assert unfinished_uploads(moto, key) == []


def test_a_multipart_write_through_faults_is_exact(proxy, moto):
    from airflow_provider_consentio.operators.base.storage import atomic_writer

    prefix = f"big-{uuid.uuid4().hex[:8]}/"
    data = os.urandom(101 * 2**20)  # above 100 MB: s3fs' put_file goes multipart
    proxy.set_faults(3, every_kind(0.25, delay=0.5))
    with atomic_writer(f"s3://aws_default@{BUCKET}/{prefix}data.bin") as out:
        out.write(data)

    assert moto.get_object(Bucket=BUCKET, Key=f"{prefix}data.bin")["Body"].read() == data
    assert keys(moto, prefix) == [f"{prefix}data.bin"] and unfinished_uploads(moto, prefix) == []


def test_a_lost_answer_to_complete_multipart_upload_fails_loudly_with_the_whole_object_in_place(proxy, moto):
    """CompleteMultipartUpload reaches the store but its answer is lost: botocore sends it again, and the upload is
    gone by then (moto answers NoSuchUpload). The object at the final key is whole (the first Complete did it);
    the write fails loudly, naming the operation, and a rerun writes the same bytes again."""
    from airflow_provider_consentio.errors import ConsentioStorageError
    from airflow_provider_consentio.operators.base.storage import atomic_writer

    key = f"big-{uuid.uuid4().hex[:8]}/data.bin"
    data = os.urandom(101 * 2**20)
    proxy.set_faults(1, [{"kind": "reset_after", "probability": 1.0, "operations": ["CompleteMultipartUpload"]}])
    with (
        pytest.raises(ConsentioStorageError, match=r"CompleteMultipartUpload|NoSuchUpload"),
        atomic_writer(f"s3://aws_default@{BUCKET}/{key}") as out,
    ):
        out.write(data)

    assert moto.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    assert unfinished_uploads(moto, key) == []
    assert proxy.stats()["faults_by_operation"]["CompleteMultipartUpload"]["reset_after"] >= 1


# --- the operators -------------------------------------------------------------------------------------------


class TaskStateStore:
    """Airflow 3.3's task state store as the durable export uses it (get/set/delete), kept across attempts."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))  # stored as JSON, as Airflow's is

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def run(operator: Any, try_number: int = 1, store: TaskStateStore | None = None) -> Any:
    """``operator.execute()`` as a worker runs it (see the ``execute`` fixture), with a task state store."""
    from types import SimpleNamespace

    import pendulum
    from airflow.sdk.execution_time.context import OutletEventAccessors

    start, end = (pendulum.parse(value) for value in DAY)
    context = {
        "data_interval_start": start,
        "data_interval_end": end,
        "logical_date": end,
        "ti": SimpleNamespace(try_number=try_number),
        "outlet_events": OutletEventAccessors(),
        **({"task_state_store": store} if store is not None else {}),
    }
    return operator.execute(context)


def attempts_until_success(make_operator: Any, attempts: int, store: TaskStateStore | None = None) -> list[str]:
    """Run attempts of one task until one succeeds, as Airflow's retries would; the failed attempts' errors."""
    failures: list[str] = []
    for try_number in range(1, attempts + 1):
        try:
            run(make_operator(), try_number, store)
            return failures
        except Exception as error:  # what fails an attempt fails the task instance's try: Airflow retries it
            failures.append(f"{type(error).__name__}: {error}")
    raise AssertionError(f"{attempts} attempts failed: {failures}")


@pytest.fixture(scope="module")
def day_of_orders(sandbox_server):
    """The session's sandbox with ORDERS_PER_DAY orders a day (generating them is the slow part: once a module)."""
    from airflow_provider_consentio.sandbox import SandboxConfig

    sandbox_server.sandbox.reset(SandboxConfig(seed=42, orders_per_day=ORDERS_PER_DAY))
    yield sandbox_server
    sandbox_server.sandbox.reset(SandboxConfig(seed=42))


@pytest.fixture
def consentio(day_of_orders, consentio_connection_to):
    """``consentio_default`` pointed at that sandbox (not the ``sandbox`` fixture: it would reset the orders)."""
    consentio_connection_to(day_of_orders)
    return day_of_orders


@pytest.fixture(scope="module")
def truth(day_of_orders, tmp_path_factory):
    """The day's export to a local file, no faults anywhere: what every S3 export must equal byte for byte."""
    from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator

    out = tmp_path_factory.mktemp("truth") / "orders.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIRFLOW_CONN_CONSENTIO_DEFAULT",
            json.dumps(
                {
                    "conn_type": "consentio",
                    "login": str(day_of_orders.workspace_id),
                    "password": day_of_orders.api_key,
                    "host": day_of_orders.base_url,
                }
            ),
        )
        run(ConsentioExportOrdersOperator(task_id="truth", output_path=str(out), durable=False))
    data = out.read_bytes()
    assert data.count(b"\n") > ORDERS_PER_DAY * 0.8
    return data


def test_the_atomic_export_through_faults_is_exact_and_never_partial(consentio, proxy, moto, truth, capsys):
    from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator

    prefix = f"atomic-{uuid.uuid4().hex[:8]}/"
    proxy.set_faults(52, every_kind(0.3))  # this seed: each kind at least once over these puts
    failures: list[str] = []
    for n in range(EXPORTS):  # one put each (and its retries): a handful of tasks for a handful of faults
        key = f"{prefix}orders-{n}.jsonl"
        with FinalKeyWatch(moto, key) as watch:
            failures += attempts_until_success(
                lambda key=key: ConsentioExportOrdersOperator(
                    task_id="export", output_path=f"s3://aws_default@{BUCKET}/{key}", durable=False
                ),
                attempts=3,
            )
        assert moto.get_object(Bucket=BUCKET, Key=key)["Body"].read() == truth
        assert set(watch.seen) <= {truth}, "something else than the whole file was visible at the final key"

    assert keys(moto, prefix) == sorted(f"{prefix}orders-{n}.jsonl" for n in range(EXPORTS))
    assert unfinished_uploads(moto, prefix) == []
    stats = proxy.stats()
    with capsys.disabled():
        print(f"\natomic export: {stats} failed attempts: {failures}")
    assert set(stats["faults"]) == set(KINDS), stats


def durable_export(key: str) -> Any:
    from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator

    # A checkpoint after every sub-window: one part object each, the most S3 writes an export can make.
    return ConsentioExportOrdersOperator(
        task_id="export", output_path=f"s3://aws_default@{BUCKET}/{key}", retries=2, checkpoint_interval=0
    )


def test_the_durable_export_through_faults_is_exact_and_leaves_no_part(consentio, proxy, moto, truth, capsys):
    prefix = f"durable-{uuid.uuid4().hex[:8]}/"
    key, store = f"{prefix}orders.jsonl", TaskStateStore()
    proxy.set_faults(7, every_kind(0.25))
    with FinalKeyWatch(moto, key) as watch:
        failures = attempts_until_success(lambda: durable_export(key), attempts=3, store=store)

    assert moto.get_object(Bucket=BUCKET, Key=key)["Body"].read() == truth
    assert set(watch.seen) <= {truth}, "something else than the whole file was visible at the final key"
    assert keys(moto, prefix) == [key], "a part or a temporary object was left behind"
    assert unfinished_uploads(moto, prefix) == [] and store.values == {}
    stats = proxy.stats()
    with capsys.disabled():
        print(f"\ndurable export: {stats} failed attempts: {failures}")
    assert stats["by_operation"]["PutObject"] > 20 and set(stats["faults"]) == set(KINDS), stats


def test_a_durable_export_failing_for_good_on_s3_fails_loudly_and_the_retry_resumes(consentio, proxy, moto, truth):
    """Most part writes fail (500 past botocore's retries): the first attempt fails, naming S3's error, with its
    completed parts checkpointed; the retry, S3 healthy again, resumes after them and writes the exact file."""
    from airflow_provider_consentio.errors import ConsentioStorageError

    prefix = f"durable-{uuid.uuid4().hex[:8]}/"
    key, store = f"{prefix}orders.jsonl", TaskStateStore()
    proxy.set_faults(1, [{"kind": "internal", "probability": 0.45, "operations": ["PutObject"]}])
    with pytest.raises(ConsentioStorageError, match=r"Writing \d+ bytes to s3://.*PutObject -> HTTP 500: Internal"):
        run(durable_export(key), try_number=1, store=store)
    checkpoint = store.values["consentio_export_checkpoint"]
    assert checkpoint["parts"] >= 1 and keys(moto, prefix)  # the completed parts are kept for the retry
    assert not any(k == key for k in keys(moto, prefix))

    proxy.clear_faults()
    summary = run(durable_export(key), try_number=2, store=store)
    assert summary["resumed_from"] == checkpoint["done_until"]
    assert moto.get_object(Bucket=BUCKET, Key=key)["Body"].read() == truth
    assert keys(moto, prefix) == [key] and store.values == {}


def test_a_deletion_failing_for_good_fails_loudly_and_the_retry_repairs(consentio, proxy, moto, truth):
    """Every DeleteObjects fails (500 past botocore's retries): the removal of the export's last, empty part, or of
    the parts after the join. The attempt fails, naming it (not a silent success with parts left behind); the
    final key holds nothing or the whole file; the retry, S3 healthy again, leaves the exact file and nothing else."""
    from airflow_provider_consentio.errors import ConsentioStorageError

    prefix = f"durable-{uuid.uuid4().hex[:8]}/"
    key, store = f"{prefix}orders.jsonl", TaskStateStore()
    proxy.set_faults(1, [{"kind": "internal", "probability": 1.0, "operations": ["DeleteObjects"]}])
    with FinalKeyWatch(moto, key) as watch, pytest.raises(ConsentioStorageError, match="DeleteObjects -> HTTP 500"):
        run(durable_export(key), try_number=1, store=store)
    assert set(watch.seen) <= {truth}

    proxy.clear_faults()
    run(durable_export(key), try_number=2, store=store)
    assert moto.get_object(Bucket=BUCKET, Key=key)["Body"].read() == truth
    assert keys(moto, prefix) == [key] and store.values == {}


def sqlite_tables(path: Any) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        names = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        return {name: sorted(db.execute(f'SELECT * FROM "{name}"'), key=repr) for name in names}


def test_the_load_into_sql_reads_through_faults_exactly(consentio, proxy, moto, truth, tmp_path, monkeypatch, capsys):
    """Eight copies of the day's file on S3 (read through faults) load into the same tables as the local file."""
    from airflow_provider_consentio.transfers.consentio_to_sql import ConsentioToSqlOperator

    prefix = f"load-{uuid.uuid4().hex[:8]}/"
    sources = [f"s3://aws_default@{BUCKET}/{prefix}{n}.jsonl" for n in range(8)]
    for n in range(8):
        moto.put_object(Bucket=BUCKET, Key=f"{prefix}{n}.jsonl", Body=truth)
    local = tmp_path / "orders.jsonl"
    local.write_bytes(truth)

    def load_into(database: str, source: Any) -> Any:
        monkeypatch.setenv(
            "AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / database)})
        )
        return lambda: ConsentioToSqlOperator(task_id="load", input_path=source, sql_conn_id="warehouse")

    run(load_into("expected.db", str(local))())
    proxy.set_faults(5, every_kind(0.3))
    failures = attempts_until_success(load_into("loaded.db", sources), attempts=3)

    expected = sqlite_tables(tmp_path / "expected.db")
    assert len(expected["orders"]) == truth.count(b"\n")
    assert sqlite_tables(tmp_path / "loaded.db") == expected
    stats = proxy.stats()
    with capsys.disabled():
        print(f"\nload into SQL: {stats} failed attempts: {failures}")
    assert stats["by_operation"]["GetObject"] >= 8 and stats["faults"], stats
