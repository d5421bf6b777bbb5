"""OpenLineage: what each Consentio task read and wrote, named per the OpenLineage naming spec.

The openlineage provider is optional: nothing here imports it at module level, and the operators' hook
(:meth:`LineageMixin.get_openlineage_facets_on_complete`) imports it only when the provider's listener calls it.

Names (documented in the README, "Lineage"):

* Files: namespace ``file``, name the absolute path. Object stores: namespace ``<scheme>://<bucket>``, name the key
  (``s3://bucket`` + ``orders/2025-03-10.jsonl``), as OpenLineage's ``spec/naming.md`` says.
* The Partner API has no naming in the spec, so: namespace ``consentio://<host>[:<port>]/<workspace id>`` (the
  API's host, never its credentials), name the resource: ``orders/sale``, ``orders/purchase``, ``orders/edited``,
  ``purchase-needs``, ``catalogue/<resource>``.

Row counts travel as the ``inputStatistics`` / ``outputStatistics`` facets where the task knows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow_provider_consentio.client.settings import ConsentioSettings


@dataclass(frozen=True)
class LineageDataset:
    namespace: str
    name: str
    rows: int | None = None


@dataclass
class RunLineage:
    inputs: list[LineageDataset] = field(default_factory=list)
    outputs: list[LineageDataset] = field(default_factory=list)


def api_namespace(settings: ConsentioSettings) -> str:
    """``consentio://<host>[:<port>]/<workspace id>``: the host only, so no user:password part can slip in."""
    url = urlsplit(settings.base_url)
    host = url.hostname or "unknown-host"
    return f"consentio://{host}{f':{url.port}' if url.port else ''}/{settings.workspace_id}"


def api_dataset(settings: ConsentioSettings, resource: str, rows: int | None = None) -> LineageDataset:
    return LineageDataset(api_namespace(settings), resource, rows)


def storage_dataset(path: Any, rows: int | None = None) -> LineageDataset:
    """A file (namespace ``file``, absolute path) or an object (``s3://bucket``, key) as OpenLineage names it."""
    from airflow_provider_consentio.operators.base.storage import as_storage_path, is_local

    path = as_storage_path(path)
    if is_local(path):
        return LineageDataset("file", str(path.path), rows)
    return LineageDataset(path.namespace, path.key, rows)


def sql_table_dataset(hook: Any, schema: str | None, table: str, rows: int | None = None) -> LineageDataset:
    """A table as OpenLineage names it: namespace ``<scheme>://<host>:<port>`` (the hook's, when it says), name
    ``<database>.<schema>.<table>``; a SQLite table: namespace ``sqlite://<file>``, name the table."""
    try:
        info = hook.get_openlineage_database_info(hook.connection)
    except Exception:  # the openlineage provider is optional and hooks answer this differently; fall back below
        info = None
    if info is not None and getattr(info, "scheme", None):
        database = info.database or hook.connection.schema or ""
        default_schema = getattr(hook, "get_openlineage_default_schema", lambda: None)()
        qualified = ".".join(part for part in (database, schema or default_schema or "", table) if part)
        return LineageDataset(f"{info.scheme}://{info.authority or ''}", qualified, rows)
    connection = hook.connection
    if getattr(hook, "dialect_name", None) == "sqlite":
        return LineageDataset(f"sqlite://{connection.host}", table if not schema else f"{schema}.{table}", rows)
    authority = f"{connection.host}:{connection.port}" if connection.port else str(connection.host)
    return LineageDataset(f"{connection.conn_type}://{authority}", f"{schema}.{table}" if schema else table, rows)


def input_file_datasets(input_path: Any) -> list[LineageDataset]:
    """A write operator's input file as a lineage input; none when its records came as a list or from a query."""
    return [storage_dataset(input_path)] if input_path else []


class LineageMixin:
    """Gives an operator ``get_openlineage_facets_on_complete``; its ``execute`` calls :meth:`record_lineage`."""

    def record_lineage(self, inputs: list[LineageDataset], outputs: list[LineageDataset]) -> None:
        self._run_lineage = RunLineage(inputs, outputs)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Called by the openlineage provider's listener after a successful ``execute`` on this same object."""
        from airflow.providers.common.compat.openlineage.facet import InputDataset, OutputDataset
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet
        from openlineage.client.generated.output_statistics_output_dataset import (
            OutputStatisticsOutputDatasetFacet,
        )

        lineage: RunLineage = getattr(self, "_run_lineage", None) or RunLineage()

        def statistics(dataset: LineageDataset, facet: Any, name: str) -> dict[str, Any]:
            return {} if dataset.rows is None else {name: facet(rowCount=dataset.rows)}

        return OperatorLineage(
            inputs=[
                InputDataset(
                    namespace=dataset.namespace,
                    name=dataset.name,
                    inputFacets=statistics(dataset, InputStatisticsInputDatasetFacet, "inputStatistics"),
                )
                for dataset in lineage.inputs
            ],
            outputs=[
                OutputDataset(
                    namespace=dataset.namespace,
                    name=dataset.name,
                    outputFacets=statistics(dataset, OutputStatisticsOutputDatasetFacet, "outputStatistics"),
                )
                for dataset in lineage.outputs
            ],
        )
