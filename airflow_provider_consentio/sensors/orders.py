"""Sensor that waits for new or edited Consentio orders, deferring to the triggerer by default."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_provider_consentio.errors import ConsentioError
from airflow_provider_consentio.operators._common import check_choice
from airflow_provider_consentio.windows import parse_instant, resolve_window

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_consentio.hooks.consentio import ConsentioHook

WATCHES = ("new_orders", "edited_orders")


class ConsentioOrdersSensor(BaseSensorOperator):
    """Wait until Consentio has at least ``min_count`` orders to process.

    * ``watch="new_orders"`` (default): orders of ``kind`` with ``status`` (default accepted) created in the
      window [start, end), by default the run's data interval (see ConsentioExportOrdersOperator for
      ``empty_interval``).
    * ``watch="edited_orders"``: orders edited at or after ``since`` (default: the data interval start) whose
      edit is not marked seen yet.

    With ``deferrable=True`` (default) it checks once, then waits in the triggerer, not in a worker slot, polling
    every ``poke_interval`` seconds until ``timeout``. Returns the count found.
    """

    template_fields: Sequence[str] = ("start", "end", "since")
    ui_color = "#e8f1ee"

    def __init__(
        self,
        *,
        watch: str = "new_orders",
        start: Any = None,
        end: Any = None,
        since: Any = None,
        kind: str = "sale",
        status: str | None = "accepted",
        min_count: int = 1,
        empty_interval: str = "fail",
        lookback: timedelta = timedelta(days=1),
        deferrable: bool = True,
        max_retries: int | None = None,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_choice("watch", watch, WATCHES)
        self.watch = watch
        self.start = start
        self.end = end
        self.since = since
        self.kind = kind
        self.status = status
        self.min_count = min_count
        self.empty_interval = empty_interval
        self.lookback = lookback
        self.deferrable = deferrable
        self.max_retries = max_retries
        self.consentio_conn_id = consentio_conn_id

    @cached_property
    def hook(self) -> ConsentioHook:
        from airflow_provider_consentio.hooks.consentio import ConsentioHook

        return ConsentioHook(self.consentio_conn_id, max_retries=self.max_retries)

    def _target(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """What to watch, resolved to JSON-safe values (they travel to the triggerer)."""
        if self.watch == "edited_orders":
            since = self.since if self.since is not None else context.get("data_interval_start")
            if since is None:
                raise ConsentioError(f"{self.task_id}: no data interval; pass since explicitly")
            return {"since": parse_instant(since, "since").isoformat()}
        start, end = resolve_window(
            context, self.start, self.end, empty_interval=self.empty_interval, lookback=self.lookback, task=self.task_id
        )
        return {"start": start.isoformat(), "end": end.isoformat()}

    def _count_now(self, target: Mapping[str, Any]) -> int:
        client = self.hook.get_conn()
        if self.watch == "edited_orders":
            return len(client.get_edited_orders(parse_instant(target["since"], "since")))
        start, end = parse_instant(target["start"], "start"), parse_instant(target["end"], "end")
        return len(client.get_orders(start, end, kind=self.kind, status=self.status))

    def poke(self, context: Context) -> bool:
        count = self._count_now(self._target(context))
        self.log.info("%s: %d found, %d wanted", self.watch, count, self.min_count)
        return count >= self.min_count

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_consentio.triggers.orders import ConsentioOrdersTrigger

        target = self._target(context)
        count = self._count_now(target)
        if count >= self.min_count:
            self.log.info("%s: %d found, no need to wait", self.watch, count)
            return count
        self.log.info("%s: %d of %d found; deferring to the triggerer", self.watch, count, self.min_count)
        self.defer(
            trigger=ConsentioOrdersTrigger(
                consentio_conn_id=self.consentio_conn_id,
                watch=self.watch,
                kind=self.kind,
                status=self.status,
                min_count=self.min_count,
                poll_interval=self.poke_interval,
                max_retries=self.max_retries,
                **target,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> int:
        if event.get("status") != "success":
            raise ConsentioError(f"{self.task_id}: waiting for {self.watch} failed: {event.get('message')}")
        self.log.info("%s: %d found", self.watch, event["count"])
        return int(event["count"])
