"""Seller order operators: export, external reference sync, edited orders + mark seen, prepare.

The export's loop is ``base/export_loop.py`` (its operator base: ``base/window_export.py``), the writes' path is
``base/write_path.py``; the export by period (``partitioned_export.py``) is a subclass of the export.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_provider_consentio.assets import resource_asset
from airflow_provider_consentio.errors import ConsentioConfigError, ConsentioError, ConsentioNotFoundError
from airflow_provider_consentio.operators.base.common import (
    SUMMARY_LISTS_AT_MOST,
    ConsentioOperator,
    as_list,
    listing,
    plural,
)
from airflow_provider_consentio.operators.base.export_loop import export_file
from airflow_provider_consentio.operators.base.lineage import storage_dataset
from airflow_provider_consentio.operators.base.window_export import ConsentioWindowExportOperator
from airflow_provider_consentio.operators.base.windows import parse_instant
from airflow_provider_consentio.operators.base.write_operator import ConsentioWriteOperator, InputNamed, WriteRun
from airflow_provider_consentio.resources import EDITED_ORDERS, EXTERNAL_REFERENCES, ORDERS

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.sdk import Context

    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.models import RawRecord, SeenOrder
    from airflow_provider_consentio.operators.base.window_export import Fetch
    from airflow_provider_consentio.operators.base.write_path import WriteResult


def orders_asset(consentio_conn_id: str = "consentio_default", kind: str = "sale") -> Asset:
    """The Asset an order export updates; schedule a downstream DAG on it to run when new orders land."""
    assert ORDERS.read is not None and ORDERS.read.asset is not None
    return resource_asset(ORDERS.read.asset, consentio_conn_id, kind=kind)


def edited_orders_asset(consentio_conn_id: str = "consentio_default") -> Asset:
    assert EDITED_ORDERS.read is not None and EDITED_ORDERS.read.asset is not None
    return resource_asset(EDITED_ORDERS.read.asset, consentio_conn_id)


class ConsentioExportOrdersOperator(ConsentioWindowExportOperator):
    """Export the orders created in [start, end) to a JSONL file, each exactly as the API returned it.

    The window defaults to the run's data interval (a backfill of March exports each day exactly once), it is
    fetched in sub-windows sized to the data (memory stays flat), the file appears only once complete, and a rerun
    rewrites the same bytes, and a retry resumes a long export after its last checkpoint: see its base,
    :class:`ConsentioWindowExportOperator` (operators/base/window_export.py), for how, and for ``output_path``,
    ``start``, ``end``, ``window_size``, ``empty_interval``, ``lookback``, ``durable`` and ``checkpoint_interval``. The
    summary adds ``kind`` and ``statuses``; an export that finds no order says so in a warning naming the window
    and the workspace.

    :param kind: ``sale`` (seller) or ``purchase`` (buyer).
    :param statuses: only orders in these statuses (accepted, pending, canceled, incomplete); default all.
    :param max_orders_per_request: (default 2000) a sizing target, not a cap: sub-windows shrink after an answer held
        more orders than this and grow while answers hold under half of it, so most answers hold about this many. One
        answer can hold more (a burst of orders in one second cannot be split).
    :param consentio_conn_id: the Consentio connection.
    """

    template_fields: Sequence[str] = ("output_path", "start", "end", "statuses")
    ui_color = "#e8f1ee"
    resource = ORDERS

    def __init__(
        self,
        *,
        kind: str = "sale",
        statuses: str | Sequence[str] | None = None,
        max_orders_per_request: int | None = None,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [orders_asset(consentio_conn_id, kind)])
        super().__init__(records_per_request=max_orders_per_request, consentio_conn_id=consentio_conn_id, **kwargs)
        self.kind = kind
        self.statuses = statuses

    @property
    def max_orders_per_request(self) -> int:
        return self.records_per_request

    @property
    def status_list(self) -> list[str]:
        """``statuses`` as a list (empty: all)."""
        return as_list(self.statuses, "statuses")

    def read_params(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def fetcher(self, client: ConsentioClient) -> Fetch:
        # Several statuses take one request each (the API filters on one at a time): the client merges them.
        statuses = self.status_list
        return lambda lower, upper: client.get_raw_orders(lower, upper, kind=self.kind, statuses=statuses)

    def orders_named(self) -> str:
        """``sale orders with status accepted``: the orders this task exports, for log lines."""
        statuses = self.status_list
        return f"{self.kind} orders" + (f" with status {', '.join(statuses)}" if statuses else "")

    def selection(self) -> str:
        return f"{self.orders_named()} created"

    def summary_fields(self) -> dict[str, Any]:
        return {"kind": self.kind, "statuses": self.status_list}

    def report_nothing_found(self, client: ConsentioClient, start: datetime, end: datetime) -> None:
        # Said loudly: an empty export is how a wrong logical date or a wrong workspace shows.
        self.log.warning(
            "No %s in workspace %s created in [%s, %s). A run with logical date D covers [D - 1 day, D): "
            "check the run's date and the connection's workspace.",
            self.orders_named(),
            client.settings.workspace_id,
            start.isoformat(),
            end.isoformat(),
        )


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
    writes = EXTERNAL_REFERENCES
    references = InputNamed()

    def __init__(self, *, references: Any = None, batch_size: int = 500, concurrency: int = 2, **kwargs: Any) -> None:
        super().__init__(records=references, batch_size=batch_size, concurrency=concurrency, **kwargs)

    def summarize(self, result: WriteResult) -> dict[str, Any]:
        return {
            **result.counts(),
            "updated": len(result.saved),
            "rejected": [str(error) for error in result.rejected[:SUMMARY_LISTS_AT_MOST]],
            "invalid": result.invalid[:SUMMARY_LISTS_AT_MOST],
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
        from airflow_provider_consentio.hooks.metrics import RECORDS_READ
        from airflow_provider_consentio.operators.base.storage import as_storage_path

        since = self.resolve_since(context)
        path = as_storage_path(self.output_path)
        client = self.hook.get_conn()
        versions: list[dict[str, Any]] = []
        export_file(path, _remember_versions(client.get_raw_edited_orders(since), versions), dedupe=True)
        self.count_records(RECORDS_READ, len(versions), "edited_orders")
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


class ConsentioMarkOrdersSeenOperator(ConsentioWriteOperator):
    """Acknowledge edited orders so they are not delivered again. Give it only what was actually processed.

    ``orders`` is a list of hash IDs, or of ``{"hash_id", "updated_at"}`` objects as handed on by
    :class:`ConsentioEditedOrdersOperator`. With versions, an order edited AGAIN after it was fetched is left
    unseen (its newer edit was not processed), so it is delivered again on the next run instead of being lost.

    :param orders: the processed orders (templated; typically an upstream task's XCom).
    :param batch_size: hash IDs per request.
    """

    template_fields: Sequence[str] = ("orders",)
    ui_color = "#e8f1ee"
    writes = EDITED_ORDERS
    orders = InputNamed()

    def __init__(self, *, orders: Any, batch_size: int = 500, **kwargs: Any) -> None:
        super().__init__(records=orders, batch_size=batch_size, concurrency=1, **kwargs)

    @property
    def what(self) -> str:
        return "edited orders to mark seen"

    def load(self) -> tuple[list[Any], str]:
        processed = _processed_orders(self.orders)
        if not processed:
            self.log.info("Nothing to mark seen")
        return processed, "orders"

    def write_run(self, client: ConsentioClient) -> WriteRun:
        return MarkingSeen(self, client)


class MarkingSeen(WriteRun):
    """Marks the processed versions seen, except the orders edited again since: their newer edit is still due."""

    def __init__(self, operator: ConsentioWriteOperator, client: ConsentioClient) -> None:
        super().__init__(operator, client)
        self.left_unseen: list[str] = []

    def hold_back(self, valid: list[Any]) -> list[Any]:
        self.left_unseen.extend(_edited_again(self.client, valid))
        if self.left_unseen:
            self.operator.log.warning(
                "%s edited again after they were fetched; leaving them unseen so the newer edit is delivered "
                "next run: %s",
                plural(len(self.left_unseen), "order was", "orders were"),
                ", ".join(self.left_unseen[:50]),
            )
        left_unseen = set(self.left_unseen)
        return [version for version in valid if version.hash_id not in left_unseen]

    def finish(self, result: WriteResult) -> None:
        self.operator.log.info("Marked %s seen", plural(len(result.saved), "edited order"))

    def summary(self, result: WriteResult) -> dict[str, Any]:
        return {"seen": len(result.saved), "left_unseen": self.left_unseen, "errors": []}


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
