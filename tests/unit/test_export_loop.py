"""The one export loop (operators/export_loop.py) and its sinks, without Airflow or the API: a fake listing."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from airflow_provider_consentio.operators.base.checkpoints import Checkpoint, CheckpointedFile, ExportCheckpoints
from airflow_provider_consentio.operators.base.export_loop import (
    ExportListener,
    ExportSink,
    SpanWritten,
    StartAt,
    WindowWritten,
    export_spans,
    write_jsonl,
)
from airflow_provider_consentio.resources import ORDERS

MARCH_1 = datetime(2025, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def record(record_id: str) -> SimpleNamespace:
    return SimpleNamespace(keys=SimpleNamespace(id=record_id), raw=f'{{"id":"{record_id}"}}'.encode())


def listing(at: dict[str, timedelta]):
    """A listing of records at instants (after March 1st) that also returns those exactly at a window's end: the
    edge duplicates the loop must drop."""

    def fetch(lower: datetime, upper: datetime) -> list[SimpleNamespace]:
        return [record(name) for name, offset in at.items() if lower <= MARCH_1 + offset <= upper]

    return fetch


class Collecting(ExportSink):
    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.events: list[object] = []

    def write(self, data: bytes) -> None:
        self.out.write(data)

    def span_started(self, lower: datetime, upper: datetime) -> None:
        self.events.append(("span", lower, upper))

    def window_written(self, event: WindowWritten) -> None:
        self.events.append(event)

    def span_written(self, event: SpanWritten) -> None:
        self.events.append(event)


def test_the_one_jsonl_writer_dedupes_only_when_asked():
    records = [record("a"), record("b"), record("a")]
    plain, deduped = io.BytesIO(), io.BytesIO()
    assert write_jsonl(records, plain).count == 3
    written = write_jsonl(records, deduped, dedupe=True, seen_before={"b"})
    assert (written.count, set(written.ids)) == (1, {"a"})
    assert plain.getvalue() == b'{"id":"a"}\n{"id":"b"}\n{"id":"a"}\n'
    assert deduped.getvalue() == b'{"id":"a"}\n'


def test_a_record_at_a_sub_window_edge_is_written_once_and_each_span_starts_afresh():
    # "edge" is where two sub-windows meet; "next" is where the two spans meet, so both spans get it, as two
    # separate daily exports would.
    fetch = listing({"a": HOUR / 2, "edge": HOUR, "next": 2 * HOUR})
    sink = Collecting()
    spans = [(MARCH_1, MARCH_1 + 2 * HOUR), (MARCH_1 + 2 * HOUR, MARCH_1 + 3 * HOUR)]
    result = export_spans(fetch, spans, sink, max_size=HOUR, target_records=100, start_at=StartAt(window_size=HOUR))

    assert sink.out.getvalue().splitlines() == [b'{"id":"a"}', b'{"id":"edge"}', b'{"id":"next"}', b'{"id":"next"}']
    assert (result.exported, result.sub_windows) == (4, 3)
    spans_written = [event for event in sink.events if isinstance(event, SpanWritten)]
    assert [(event.count, event.exported) for event in spans_written] == [(3, 3), (1, 4)]
    windows = [event for event in sink.events if isinstance(event, WindowWritten)]
    assert [(event.number, event.exported) for event in windows] == [(1, 2), (2, 3), (3, 4)]
    assert sink.events[0] == ("span", *spans[0])


def test_listeners_hear_each_window_before_the_sink_and_each_span_after_it():
    heard: list[str] = []

    class Listener(ExportListener):
        def window_written(self, event: WindowWritten) -> None:
            heard.append("listener window")

        def span_written(self, event: SpanWritten) -> None:
            heard.append("listener span")

    class Sink(Collecting):
        def window_written(self, event: WindowWritten) -> None:
            heard.append("sink window")

        def span_written(self, event: SpanWritten) -> None:
            heard.append("sink span")

    export_spans(
        listing({}),
        [(MARCH_1, MARCH_1 + HOUR)],
        Sink(),
        max_size=HOUR,
        target_records=1,
        start_at=StartAt(window_size=HOUR),
        listeners=[Listener()],
    )
    assert heard == ["listener window", "sink window", "sink span", "listener span"]


class Store(dict):
    def set(self, key, value):
        self[key] = value

    def delete(self, key):
        self.pop(key, None)


def test_a_checkpointed_file_cuts_parts_on_window_events_and_a_resume_writes_the_same_bytes(tmp_path):
    fetch = listing({f"o{n}": n * timedelta(minutes=20) for n in range(18)})
    window = (MARCH_1, MARCH_1 + 6 * HOUR)
    log = logging.getLogger("test")

    def export(store: Store, path, fail_after: int | None = None) -> tuple[CheckpointedFile, object]:
        checkpoints = ExportCheckpoints(store, path, {"job": 1}, 0.0, log)  # interval 0: a part per window
        target = CheckpointedFile(checkpoints, ORDERS, HOUR, retry_follows=True)
        spans, start_at = target.plan(*window, fetch)

        def failing(lower, upper):
            if fail_after is not None and lower >= MARCH_1 + fail_after * HOUR:
                raise RuntimeError("worker died")
            return fetch(lower, upper)

        with target:
            result = export_spans(failing, spans, target, max_size=HOUR, target_records=100, start_at=start_at)
        return target, result

    reference = tmp_path / "reference.jsonl"
    export(Store(), reference)

    store, resumed = Store(), tmp_path / "resumed.jsonl"
    with pytest.raises(RuntimeError):
        export(store, resumed, fail_after=3)
    assert not resumed.exists()
    done_until = datetime.fromisoformat(Checkpoint(**store["consentio_export_checkpoint"]).done_until)
    assert MARCH_1 + 2 * HOUR < done_until <= MARCH_1 + 3 * HOUR + timedelta(minutes=15)
    target, result = export(store, resumed)

    assert resumed.read_bytes() == reference.read_bytes()
    assert target.resumed is not None and result.exported == 18
    assert store == {}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["reference.jsonl", "resumed.jsonl"]
