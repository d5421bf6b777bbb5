"""Sensor that waits for new or edited Consentio orders, in the triggerer when deferrable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator

from airflow_provider_consentio.errors import ConsentioError
from airflow_provider_consentio.hooks.owner import ConsentioHookOwner
from airflow_provider_consentio.operators.base.lineage import LineageMixin, api_dataset
from airflow_provider_consentio.triggers.watches import OrdersWatch, watch_type

if TYPE_CHECKING:
    from airflow.sdk import Context


class ConsentioOrdersSensor(ConsentioHookOwner, LineageMixin, BaseSensorOperator):
    """Wait until Consentio has at least ``min_count`` orders to process.

    * ``watch="new_orders"`` (default): orders of ``kind`` with ``status`` (default accepted) created in the
      window [start, end), by default the run's data interval (see ConsentioExportOrdersOperator for
      ``empty_interval``).
    * ``watch="edited_orders"``: orders edited at or after ``since`` (default: the data interval start) whose
      edit is not marked seen yet.

    With ``deferrable=True`` it checks once, then waits in the triggerer, not in a worker slot, polling every
    ``poke_interval`` seconds until ``timeout``. ``deferrable`` defaults to ``[operators] default_deferrable``, as
    Airflow's own providers do. Returns the count found.

    :param max_retries: overrides the connection's retry count, here and in the triggerer.
    :param request_timeout: overrides the connection's per-request timeout (seconds), here and in the triggerer.
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
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_retries: int | None = None,
        request_timeout: float | None = None,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        watch_type(watch)  # refuses an unknown watch when the DAG is parsed, not when it runs
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
        self.request_timeout = request_timeout
        self.consentio_conn_id = consentio_conn_id

    def hook_options(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "timeout": self.request_timeout}

    def _watch_of(self, context: Mapping[str, Any]) -> OrdersWatch:
        return watch_type(self.watch).for_run(
            context,
            start=self.start,
            end=self.end,
            since=self.since,
            kind=self.kind,
            status=self.status,
            empty_interval=self.empty_interval,
            lookback=self.lookback,
            task=self.task_id,
        )

    def _count_now(self, watch: OrdersWatch) -> int:
        count = len(watch.fetch(self.hook.get_conn()))
        self._record_watch_lineage(count)
        return count

    def _record_watch_lineage(self, count: int) -> None:
        resource = watch_type(self.watch).lineage_resource(self.kind)
        self.record_lineage([api_dataset(self.hook.get_conn().settings, resource, count)], [])

    def poke(self, context: Context) -> bool:
        count = self._count_now(self._watch_of(context))
        self.log.info("%s: %d found, %d wanted", self.watch, count, self.min_count)
        return count >= self.min_count

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_consentio.triggers.orders import ConsentioOrdersTrigger

        watch = self._watch_of(context)
        count = self._count_now(watch)
        if count >= self.min_count:
            self.log.info("%s: %d found, no need to wait", self.watch, count)
            return count
        self.log.info("%s: %d of %d found; deferring to the triggerer", self.watch, count, self.min_count)
        self.defer(
            trigger=ConsentioOrdersTrigger(
                consentio_conn_id=self.consentio_conn_id,
                min_count=self.min_count,
                poll_interval=self.poke_interval,
                max_retries=self.max_retries,
                request_timeout=self.request_timeout,
                **watch.as_kwargs(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> int:
        if event.get("status") != "success":
            raise ConsentioError(f"{self.task_id}: waiting for {self.watch} failed: {event.get('message')}")
        self.log.info("%s: %d found", self.watch, event["count"])
        self._record_watch_lineage(int(event["count"]))
        return int(event["count"])
