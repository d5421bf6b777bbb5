"""Clients (the API's counterparts) and their addresses: upsert from the ERP, export to JSONL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_provider_consentio.assets import resource_asset
from airflow_provider_consentio.operators.base.common import ConsentioOperator, check_choice, plural
from airflow_provider_consentio.operators.base.export_loop import export_file
from airflow_provider_consentio.operators.base.lineage import storage_dataset
from airflow_provider_consentio.operators.catalogue import ConsentioCatalogueUpsertOperator
from airflow_provider_consentio.resources import ADDRESSES, CLIENTS

if TYPE_CHECKING:
    from airflow.sdk import Context


CLIENT_RESOURCES = ("clients", "addresses")


def clients_asset(consentio_conn_id: str = "consentio_default", resource: str = "clients") -> Asset:
    check_choice("resource", resource, CLIENT_RESOURCES)
    read = {CLIENTS.name: CLIENTS, ADDRESSES.name: ADDRESSES}[resource].read
    assert read is not None and read.asset is not None
    return resource_asset(read.asset, consentio_conn_id)


class ConsentioUpsertClientsOperator(ConsentioCatalogueUpsertOperator):
    """Create or update clients, matched by ``client_external_id`` (POST /client).

    Records: ``client_external_id``, ``client_name``, optional ``phones`` and ``rates`` (lists, or comma-separated
    texts in a CSV or a query), ``rate_id`` (the price group the client buys at). Read-only fields of an exported
    file (``consentio_client_id``, ``workspace_id``, ``created_at``, ``updated_at``) are accepted and not sent.
    See :class:`.ConsentioWriteOperator` for inputs and policies.
    """

    writes = CLIENTS


class ConsentioUpsertClientAddressesOperator(ConsentioCatalogueUpsertOperator):
    """Create or update clients' addresses (POST /client/address), keyed by the address's ``external_id`` and
    linked to its client by ``client_external_id``: run it after the clients upsert.

    Records: ``external_id``, ``client_external_id``, ``street``, ``city``, ``postal_code``, ``country`` (ISO
    3166-1 alpha-2), optional ``region``, ``latitude``, ``longitude`` (exact decimals).
    """

    writes = ADDRESSES


class ConsentioExportClientsOperator(ConsentioOperator):
    """Export every client (``resource="clients"``) or every address (``"addresses"``) to a JSONL file, each exactly
    as the API returned it (atomic write, summary, Asset ``consentio://<conn_id>/<resource>``).

    :param output_path: JSONL file to write (templated).
    :param resource: ``clients`` or ``addresses``.
    :param client_external_id: with ``addresses``, only this client's (templated).
    """

    template_fields: Sequence[str] = ("output_path", "client_external_id")
    ui_color = "#eef0f7"

    def __init__(
        self,
        *,
        output_path: Any,
        resource: str = "clients",
        client_external_id: str | None = None,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        check_choice("resource", resource, CLIENT_RESOURCES)
        kwargs.setdefault("outlets", [clients_asset(consentio_conn_id, resource)])
        super().__init__(consentio_conn_id=consentio_conn_id, **kwargs)
        self.output_path = output_path
        self.resource = resource
        self.client_external_id = client_external_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.hooks.metrics import RECORDS_READ
        from airflow_provider_consentio.operators.base.storage import as_storage_path

        client = self.hook.get_conn()
        if self.resource == "clients":
            records = client.get_raw_clients()
        else:
            records = client.get_raw_addresses(self.client_external_id or None)
        path = as_storage_path(self.output_path)
        export_file(path, records)
        self.count_records(RECORDS_READ, len(records), self.resource)
        summary = {"path": str(path), "count": len(records), "resource": self.resource}
        self.log.info("Exported %s to %s", plural(len(records), self.resource[:-1], self.resource), path)
        self.record_lineage(
            [self.api_dataset(f"catalogue/{self.resource}", len(records))], [storage_dataset(path, len(records))]
        )
        self.record_asset_event(context, summary)
        return summary
