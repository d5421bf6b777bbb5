"""Seller order operators: export, external reference sync, edited orders + mark seen, prepare.

Over 400 lines on purpose: five operators of one resource, each about 80 lines of which most is its docstring, and
the write path they share lives in ``_common.py``. The export by period reuses the export's loop from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_provider_consentio.assets import consentio_asset
from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioError, ConsentioNotFoundError
from airflow_provider_consentio.lineage import storage_dataset
from airflow_provider_consentio.operators._common import (
    ConsentioOperator,
    ConsentioWriteOperator,
    ProgressLog,
    WritePolicy,
    as_list,
    listing,
    plural,
    write_records,
)
from airflow_provider_consentio.operators.durable import Checkpoint, ExportCheckpoints, SwitchableStream
from airflow_provider_consentio.windows import AdaptiveWindows, parse_instant, resolve_window

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.sdk import Context

    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.models import RawRecord, SeenOrder


def orders_asset(consentio_conn_id: str = "consentio_default", kind: str = "sale") -> Asset:
    """The Asset an order export updates; schedule a downstream DAG on it to run when new orders land."""
    return consentio_asset(f"consentio_{kind}_orders__{consentio_conn_id}", consentio_conn_id, f"orders/{kind}")


def edited_orders_asset(consentio_conn_id: str = "consentio_default") -> Asset:
    return consentio_asset(f"consentio_edited_orders__{consentio_conn_id}", consentio_conn_id, "orders/edited")


def _write_jsonl(records: Iterable[RawRecord], out: IO[bytes], seen_before: set[Any]) -> set[Any]:
    """Write each record's exact source bytes as one JSONL line, skipping IDs in ``seen_before`` or repeated.

    Returns the IDs written.
    """
    written: set[Any] = set()
    lines = []
    for record in records:
        order_id = record.keys.id
        if order_id not in seen_before and order_id not in written:
            written.add(order_id)
            lines.append(record.raw)
    if lines:
        out.write(b"\n".join(lines))
        out.write(b"\n")
    return written


def export_sub_windows(
    client: ConsentioClient,
    windows: AdaptiveWindows,
    out: IO[bytes],
    *,
    kind: str,
    statuses: Sequence[str],
    written_last_window: set[Any] | None = None,
    exported: int = 0,
) -> Iterator[tuple[datetime, datetime, int]]:
    """Write the orders of each sub-window to ``out``, exact source bytes; yields (lower, upper, written so far).

    Shared by the daily export and the export by period, so that both write the same bytes for the same window.
    A resumed export passes the IDs of the window written last and the count so far.
    """
    # Only the IDs of the window just written can repeat in the next: windows are consecutive, and an order
    # returned at both edges is the only duplicate the API can produce.
    written_last_window = written_last_window or set()
    for lower, upper in windows:
        records = client.get_raw_orders(lower, upper, kind=kind, statuses=statuses)
        windows.observed(len(records))
        written_last_window = _write_jsonl(records, out, written_last_window)
        exported += len(written_last_window)
        yield lower, upper, exported


class ConsentioExportOrdersOperator(ConsentioOperator):
    """Export the orders created in [start, end) to a JSONL file, each exactly as the API returned it.

    * The window defaults to the run's data interval, so a backfill of March exports each day exactly once. A
      zero-length interval (CronTriggerTimetable, manual runs) fails with an explanation, unless
      ``empty_interval="lookback"``: then [end - lookback, end) is exported.
    * The window is fetched in consecutive sub-windows sized to the data: they grow (up to ``window_size``) while
      answers are small and shrink when one holds more than ``max_orders_per_request``, so memory stays flat
      whatever the range and the order volume. Orders are de-duplicated by ID across sub-window edges.
    * The file is written atomically: it appears at ``output_path`` only once complete, so a retry or a crash
      never leaves a partial or doubled file; a rerun of the same window rewrites the same file.
    * Returns a small summary (path, count, window, sub-windows) and records it on the output Asset's event.

    :param output_path: where to write, local or any ObjectStoragePath scheme (templated), e.g.
        ``"/data/consentio/orders/{{ ds }}.jsonl"`` or ``"s3://bucket/orders/{{ ds }}.jsonl"`` with a conn_id.
    :param start: window start (templated; ISO 8601 or datetime); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param kind: ``sale`` (seller) or ``purchase`` (buyer).
    :param statuses: only orders in these statuses (accepted, pending, canceled, incomplete); default all.
    :param window_size: the longest sub-window fetched in one request.
    :param max_orders_per_request: a sizing target, not a cap: sub-windows shrink after an answer held more orders
        than this and grow while answers hold under half of it, so most answers hold about this many. One answer
        can hold more (a burst of orders in one second cannot be split).
    :param empty_interval: ``fail`` (default) or ``lookback`` for zero-length data intervals.
    :param lookback: the window used by ``empty_interval="lookback"``.
    :param durable: with ``retries`` and Airflow 3.3+, checkpoint the completed sub-windows (in parts beside the
        final file and the task state store) every ``checkpoint_interval`` seconds: a retry after a dead worker
        resumes after the last checkpoint instead of starting over. The final file is still written in one atomic
        step, byte for byte what an uninterrupted export writes. See :mod:`.durable`.
    :param checkpoint_interval: seconds between checkpoints (0: after every sub-window).
    :param consentio_conn_id: the Consentio connection.
    """

    template_fields: Sequence[str] = ("output_path", "start", "end", "statuses")
    ui_color = "#e8f1ee"

    def __init__(
        self,
        *,
        output_path: Any,
        start: Any = None,
        end: Any = None,
        kind: str = "sale",
        statuses: str | Sequence[str] | None = None,
        window_size: timedelta = timedelta(hours=1),
        max_orders_per_request: int = 2000,
        empty_interval: str = "fail",
        lookback: timedelta = timedelta(days=1),
        durable: bool = True,
        checkpoint_interval: float = 30.0,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [orders_asset(consentio_conn_id, kind)])
        super().__init__(consentio_conn_id=consentio_conn_id, **kwargs)
        self.durable = durable
        self.checkpoint_interval = checkpoint_interval
        self.output_path = output_path
        self.start = start
        self.end = end
        self.kind = kind
        self.statuses = statuses
        self.window_size = window_size
        self.max_orders_per_request = max_orders_per_request
        self.empty_interval = empty_interval
        self.lookback = lookback

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.storage import as_storage_path, atomic_writer

        start, end = resolve_window(
            context, self.start, self.end, empty_interval=self.empty_interval, lookback=self.lookback, task=self.task_id
        )
        statuses = as_list(self.statuses, "statuses")
        path = as_storage_path(self.output_path)
        client = self.hook.get_conn()
        windows = AdaptiveWindows(start, end, max_size=self.window_size, target_records=self.max_orders_per_request)
        self.log.info(
            "Exporting %s orders%s created in [%s, %s) to %s (sub-windows of at most %s)",
            self.kind,
            f" with status {', '.join(statuses)}" if statuses else "",
            start.isoformat(),
            end.isoformat(),
            path,
            self.window_size,
        )
        exported = 0
        progress = ProgressLog()
        checkpoints = self._checkpoints(context, path, start, end, statuses)
        resumed = checkpoints.resume() if checkpoints else None
        if resumed:
            windows = AdaptiveWindows(
                parse_instant(resumed.done_until, "checkpoint"),
                end,
                max_size=self.window_size,
                target_records=self.max_orders_per_request,
                initial=timedelta(seconds=resumed.window_seconds),
            )
        try:
            with contextlib.ExitStack() as stack:
                if checkpoints:
                    out: Any = SwitchableStream()
                else:
                    out = stack.enter_context(atomic_writer(path))
                sub_windows = export_sub_windows(
                    client,
                    windows,
                    out,
                    kind=self.kind,
                    statuses=statuses,
                    written_last_window=self._last_window_ids(client, resumed, statuses),
                    exported=resumed.exported if resumed else 0,
                )
                if checkpoints:
                    window_seconds = lambda: windows.size.total_seconds()  # noqa: E731
                    sub_windows = checkpoints.write_parts(sub_windows, out, resumed, window_seconds)
                for lower, upper, exported in sub_windows:
                    share = (upper - start) / (end - start)
                    if progress.due(share):
                        self.log.info(
                            "Sub-window %d [%s, %s): %s so far (%.0f%% of the window, %.0f orders/s)",
                            windows.count,
                            lower.isoformat(),
                            upper.isoformat(),
                            plural(exported, "order"),
                            100 * share,
                            progress.rate(exported),
                        )
            if checkpoints:
                checkpoints.finish()
        except BaseException:
            if checkpoints and not self._retry_follows(context):
                checkpoints.abandon()  # the last attempt: no retry will resume from its parts
            raise
        exported = exported if windows.count or not resumed else resumed.exported
        if not exported:
            # Said loudly: an empty export is how a wrong logical date or a wrong workspace shows.
            self.log.warning(
                "No %s orders%s in workspace %s created in [%s, %s). A run with logical date D covers [D - 1 day, D): "
                "check the run's date and the connection's workspace.",
                self.kind,
                f" with status {', '.join(statuses)}" if statuses else "",
                client.settings.workspace_id,
                start.isoformat(),
                end.isoformat(),
            )
        summary = {
            "path": str(path),
            "count": exported,
            "kind": self.kind,
            "statuses": statuses,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "sub_windows": windows.count,
        }
        self.log.info(
            "Exported %s to %s in %.1fs (%s)",
            plural(exported, "order"),
            path,
            progress.elapsed(),
            plural(windows.count, "sub-window"),
        )
        if resumed:
            summary["resumed_from"] = resumed.done_until
        self.record_lineage([self.api_dataset(f"orders/{self.kind}", exported)], [storage_dataset(path, exported)])
        self.record_asset_event(context, summary)
        return summary

    def _checkpoints(
        self, context: Context, path: Any, start: datetime, end: datetime, statuses: Sequence[str]
    ) -> ExportCheckpoints | None:
        if not self.durable or not self.retries:  # only a retry resumes from checkpoints
            return None
        job = {"path": str(path), "start": start, "end": end, "kind": self.kind, "statuses": statuses}
        return ExportCheckpoints.for_task(context, path, job, self.checkpoint_interval, self.log)

    def _retry_follows(self, context: Context) -> bool:
        """Whether Airflow will retry this task if this attempt fails (try numbers start at 1)."""
        return context["ti"].try_number <= (self.retries or 0)

    def _last_window_ids(
        self, client: ConsentioClient, resumed: Checkpoint | None, statuses: Sequence[str]
    ) -> set[Any] | None:
        """The IDs the previous attempt wrote in its last sub-window (asked again: one request), to skip at its edge."""
        if resumed is None:
            return None
        lower, upper = parse_instant(resumed.last_lower, "checkpoint"), parse_instant(resumed.done_until, "checkpoint")
        return {record.keys.id for record in client.get_raw_orders(lower, upper, kind=self.kind, statuses=statuses)}


class ConsentioSyncExternalOrdersOperator(ConsentioWriteOperator):
    """Push ERP order references back to Consentio (external_id, external_status) and cancel orders.

    Input: ``references`` (a list of objects, e.g. an upstream task's XCom) or ``input_path`` (a .jsonl or .csv
    ObjectStoragePath). Each record has ``hash_id`` and at least one of ``external_id``, ``external_status``,
    ``cancel`` (true/false). Every record is validated before anything is sent, and every bad one is reported by
    hash ID. A hash ID given twice: the last record wins (logged).

    :param references: the records (templated).
    :param input_path: or a file of them (templated).
    :param column_map: field name -> source column/key, e.g. ``{"external_id": "erp_order_no"}``.
    :param batch_size: records per request.
    :param concurrency: requests in flight at once.
    :param on_invalid: ``fail`` (default: nothing is sent if any record is invalid) or ``skip`` (send the valid
        ones and report the rest in the summary).
    :param max_rejected: how many per-order failures reported by the API are tolerated before the task fails.
    """

    template_fields: Sequence[str] = ("references", "input_path", "column_map")
    ui_color = "#e8f1ee"

    def __init__(
        self,
        *,
        references: Any = None,
        input_path: Any = None,
        column_map: Mapping[str, str] | None = None,
        batch_size: int = 500,
        concurrency: int = 2,
        on_invalid: str = "fail",
        max_rejected: int = 0,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            concurrency=concurrency,
            on_invalid=on_invalid,
            max_rejected=max_rejected,
            consentio_conn_id=consentio_conn_id,
            **kwargs,
        )
        self.references = references
        self.input_path = input_path
        self.column_map = column_map

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.models import ExternalReference
        from airflow_provider_consentio.records import load_records

        raw, source = load_records(
            records=self.references,
            input_path=self.input_path,
            column_map=self.column_map,
            required_fields=("hash_id",),
        )
        result = write_records(
            raw,
            source=source,
            what="external references",
            model=ExternalReference,
            key_field="hash_id",
            send=self.hook.get_conn().update_external_references,
            policy=self.write_policy,
            log=self.log,
        )
        self.record_lineage(
            [storage_dataset(self.input_path)] if self.input_path else [],
            [self.api_dataset("orders/sale", len(result.saved))],
        )
        return {
            **result.counts(),
            "updated": len(result.saved),
            "rejected": [str(error) for error in result.rejected[:1000]],
            "invalid": result.invalid[:1000],
            "canceled": sum(1 for reference in result.sent if reference.cancel),
        }


class ConsentioEditedOrdersOperator(ConsentioOperator):
    """Fetch the orders edited after acceptance and not yet marked seen; write them like the export does.

    Hands on, in its XCom summary, each order's ``hash_id`` and ``updated_at`` (the version fetched). Give the
    ones a downstream task actually processed to :class:`ConsentioMarkOrdersSeenOperator`: an edit is marked seen
    only after it was applied, so a failure in between re-delivers it on the next run (at-least-once).

    :param output_path: JSONL file to write (templated).
    :param since: edits at or after this instant (templated); default: the data interval start minus
        ``lookback``. Unseen edits stay listed until marked seen, so the lookback only bounds how far back an
        edit that was never acknowledged is still picked up.
    :param lookback: see ``since``.
    """

    template_fields: Sequence[str] = ("output_path", "since")
    ui_color = "#e8f1ee"

    def __init__(
        self,
        *,
        output_path: Any,
        since: Any = None,
        lookback: timedelta = timedelta(days=7),
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [edited_orders_asset(consentio_conn_id)])
        super().__init__(consentio_conn_id=consentio_conn_id, **kwargs)
        self.output_path = output_path
        self.since = since
        self.lookback = lookback

    def resolve_since(self, context: Mapping[str, Any]) -> datetime:
        if self.since is not None:
            return parse_instant(self.since, "since")
        anchor = context.get("data_interval_start") or context.get("logical_date")
        if anchor is None:
            raise ConsentioConfigError(
                f"{self.task_id}: this run has no data interval or logical date; pass since explicitly"
            )
        return parse_instant(anchor, "data_interval_start") - self.lookback

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.storage import as_storage_path, atomic_writer

        since = self.resolve_since(context)
        path = as_storage_path(self.output_path)
        client = self.hook.get_conn()
        versions: list[dict[str, Any]] = []
        with atomic_writer(path) as out:
            records = _remember_versions(client.get_raw_edited_orders(since), versions)
            _write_jsonl(records, out, set())
        summary = {
            "path": str(path),
            "count": len(versions),
            "since": since.isoformat(),
            "orders": versions,
        }
        self.log.info("%s since %s written to %s", plural(len(versions), "edited order"), since.isoformat(), path)
        self.record_lineage([self.api_dataset("orders/edited", len(versions))], [storage_dataset(path, len(versions))])
        self.record_asset_event(context, {k: v for k, v in summary.items() if k != "orders"})
        return summary


def _remember_versions(records: Iterable[RawRecord], versions: list[dict[str, Any]]) -> Iterator[RawRecord]:
    for record in records:
        versions.append({"hash_id": record.keys.hash_id, "updated_at": record.keys.updated_at})
        yield record


class ConsentioMarkOrdersSeenOperator(ConsentioOperator):
    """Acknowledge edited orders so they are not delivered again. Give it only what was actually processed.

    ``orders`` is a list of hash IDs, or of ``{"hash_id", "updated_at"}`` objects as handed on by
    :class:`ConsentioEditedOrdersOperator`. With versions, an order edited AGAIN after it was fetched is left
    unseen (its newer edit was not processed), so it is delivered again on the next run instead of being lost.

    :param orders: the processed orders (templated; typically an upstream task's XCom).
    :param batch_size: hash IDs per request.
    """

    template_fields: Sequence[str] = ("orders",)
    ui_color = "#e8f1ee"

    def __init__(
        self,
        *,
        orders: Any,
        batch_size: int = 500,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(consentio_conn_id=consentio_conn_id, **kwargs)
        self.orders = orders
        self.batch_size = batch_size

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.models import SeenOrder

        processed = _processed_orders(self.orders)
        if not processed:
            self.log.info("Nothing to mark seen")
            return {"seen": 0, "left_unseen": [], "errors": []}
        client = self.hook.get_conn()
        left_unseen: list[str] = []

        def leave_edited_again_unseen(versions: list[SeenOrder]) -> list[SeenOrder]:
            left_unseen.extend(_edited_again(client, versions))
            if left_unseen:
                self.log.warning(
                    "%s edited again after they were fetched; leaving them unseen so the newer edit is delivered "
                    "next run: %s",
                    plural(len(left_unseen), "order was", "orders were"),
                    ", ".join(left_unseen[:50]),
                )
            return [version for version in versions if version.hash_id not in set(left_unseen)]

        result = write_records(
            processed,
            source="orders",
            what="edited orders to mark seen",
            model=SeenOrder,
            key_field="hash_id",
            send=lambda versions: client.mark_orders_seen([version.hash_id for version in versions]),
            policy=WritePolicy(self.batch_size),
            log=self.log,
            hold_back=leave_edited_again_unseen,
        )
        self.log.info("Marked %s seen", plural(len(result.saved), "edited order"))
        self.record_lineage([], [self.api_dataset("orders/edited", len(result.saved))])
        return {"seen": len(result.saved), "left_unseen": left_unseen, "errors": []}


def _processed_orders(orders: Any) -> list[Any]:
    """The processed orders as records for the write path: a hash ID becomes ``{"hash_id": ...}``."""
    if isinstance(orders, Mapping) and "orders" in orders:
        orders = orders["orders"]  # the summary of ConsentioEditedOrdersOperator, passed whole
    return [{"hash_id": item} if isinstance(item, str) else item for item in as_list(orders, "orders")]


def _edited_again(client: ConsentioClient, processed: Sequence[SeenOrder]) -> list[str]:
    """Hash IDs whose pending edit is newer than the version that was processed."""
    known = [order.updated_at for order in processed if order.updated_at]
    if not known:
        return []
    since = min(parse_instant(version, "updated_at") for version in known)
    current = {record.keys.hash_id: record.keys.updated_at for record in client.get_raw_edited_orders(since)}
    return [
        order.hash_id
        for order in processed
        if order.updated_at and order.hash_id in current and current[order.hash_id] != order.updated_at
    ]


class ConsentioPrepareOrderOperator(ConsentioOperator):
    """Mark every item of one or more orders prepared (the public endpoint: no API key needed).

    Works with dynamic task mapping: ``ConsentioPrepareOrderOperator.partial(task_id="prepare")
    .expand(hash_ids=upstream.output)``. Every order is attempted; unknown hash IDs are reported together.

    :param hash_ids: one hash ID or a list (templated).
    """

    template_fields: Sequence[str] = ("hash_ids",)
    ui_color = "#e8f1ee"

    def __init__(
        self,
        *,
        hash_ids: str | Sequence[str],
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(consentio_conn_id=consentio_conn_id, **kwargs)
        self.hash_ids = hash_ids

    def execute(self, context: Context) -> dict[str, Any]:
        hash_ids = as_list(self.hash_ids, "hash_ids")
        client = self.hook.get_conn()
        prepared: list[str] = []
        missing: list[str] = []
        for hash_id in hash_ids:
            try:
                client.prepare_order(hash_id)
            except ConsentioNotFoundError:
                missing.append(hash_id)
            else:
                prepared.append(hash_id)
        if missing:
            raise ConsentioError(
                f"{len(missing)} of {len(hash_ids)} orders to prepare do not exist in workspace "
                f"{client.settings.workspace_id}:\n{listing(missing, 'orders')}"
            )
        self.log.info("Marked %s prepared", plural(len(prepared), "order"))
        self.record_lineage([], [self.api_dataset("orders/sale", len(prepared))])
        return {"prepared": prepared, "count": len(prepared)}
