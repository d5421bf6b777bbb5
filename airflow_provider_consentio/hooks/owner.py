"""ConsentioHookOwner: what every Consentio operator and sensor has, a connection ID and its hook made on first use.

Nothing heavy is imported here: DAG files import the operator and sensor modules at parse time.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_consentio.hooks.consentio import ConsentioHook


class ConsentioHookOwner:
    """Mixed into an operator or sensor, before the Airflow base class."""

    consentio_conn_id: str

    @cached_property
    def hook(self) -> ConsentioHook:
        from airflow_provider_consentio.hooks.consentio import ConsentioHook

        return ConsentioHook(self.consentio_conn_id, metric_tags=self.metric_tags(), **self.hook_options())

    def metric_tags(self) -> dict[str, str]:
        """The tags of this task's metrics: its connection, DAG and task."""
        tags = {"conn_id": self.consentio_conn_id}
        for name in ("dag_id", "task_id"):
            value = getattr(self, name, None)
            if value:
                tags[name] = str(value)
        return tags

    def hook_options(self) -> dict[str, Any]:
        """Keyword arguments for the hook beyond the connection ID (timeout, retries, pool size)."""
        return {}
