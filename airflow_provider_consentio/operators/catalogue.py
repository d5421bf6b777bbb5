"""The seller's catalogue: products (upsert, JSON or CSV import; export of the changed ones), base prices and price
groups. Every write is a ConsentioWriteOperator on the common write path; clients and addresses are in
catalogue_clients.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_provider_consentio.assets import resource_asset
from airflow_provider_consentio.operators.base.common import check_choice
from airflow_provider_consentio.operators.base.window_export import ConsentioWindowExportOperator
from airflow_provider_consentio.operators.base.write_operator import ConsentioWriteOperator, WriteRun
from airflow_provider_consentio.resources import BASE_PRICES, PRICE_GROUPS, PRODUCTS
from airflow_provider_consentio.resources.catalogue import CATALOGUE_ASSET

if TYPE_CHECKING:
    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.models import BatchResult

SEND_AS = ("json", "csv")


def catalogue_asset(consentio_conn_id: str = "consentio_default") -> Asset:
    """Updated by every catalogue write; schedule what depends on an up-to-date catalogue on it."""
    return resource_asset(CATALOGUE_ASSET, consentio_conn_id)


def products_asset(consentio_conn_id: str = "consentio_default") -> Asset:
    """Updated by the export of changed products."""
    assert PRODUCTS.read is not None and PRODUCTS.read.asset is not None
    return resource_asset(PRODUCTS.read.asset, consentio_conn_id)


class ConsentioCatalogueUpsertOperator(ConsentioWriteOperator):
    """Base of the catalogue writes: each updates the catalogue Asset unless ``outlets`` is given (their resources
    declare it). Inputs and policies: :class:`.ConsentioWriteOperator`."""

    ui_color = "#eef0f7"


class ConsentioUpsertProductsOperator(ConsentioCatalogueUpsertOperator):
    """Create or update products, matched by ``sku`` (POST /product), from a list, a JSONL/CSV file or a query.

    Give natural types: numbers (``base_price``) as numbers or decimal texts, multi-value fields (``sale_units``,
    ``tags``) as lists or comma-separated texts; the wire layer writes them as the API wants (strings). Fields the
    model does not know are kept and sent as they are.

    :param send_as: ``json`` (default) or ``csv``: the same records through the API's CSV import (Content-Type
        text/csv), read by the API with ``csv_separator``, ``decimal_separator`` and ``language``.
    :param decimal_separator: the decimal separator of numbers in a CSV input (``,`` reads ``2,50`` as 2.50),
        and of the CSV sent with ``send_as="csv"``.
    """

    writes = PRODUCTS

    def __init__(
        self,
        *,
        send_as: str = "json",
        csv_separator: str = ",",
        decimal_separator: str = ".",
        language: str = "en",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_choice("send_as", send_as, SEND_AS)
        check_choice("decimal_separator", decimal_separator, (".", ","))
        self.send_as = send_as
        self.csv_separator = csv_separator
        self.decimal_separator = decimal_separator
        self.language = language

    def prepare(self, records: list[Any]) -> list[Any]:
        if self.decimal_separator == ".":
            return records
        return [_decimal_point(record, ("base_price",)) for record in records]

    def write_run(self, client: ConsentioClient) -> WriteRun:
        return ProductsCsvImport(self, client) if self.send_as == "csv" else super().write_run(client)


class ProductsCsvImport(WriteRun):
    """Products sent through the API's CSV import, read with the operator's separators and language."""

    operator: ConsentioUpsertProductsOperator

    def send(self, batch: Sequence[Any]) -> BatchResult:
        options = self.operator
        return self.client.upsert_products_csv(
            batch,
            separator=options.csv_separator,
            decimal_separator=options.decimal_separator,
            language=options.language,
        )


def _decimal_point(record: Any, fields: Sequence[str]) -> Any:
    """``2,50`` -> ``2.50`` in the given fields of a record read with a decimal comma; a value that already holds a
    point is left for validation (``1.234,50`` is not a number it can read)."""
    if not isinstance(record, dict):
        return record
    fixed = dict(record)
    for name in fields:
        value = fixed.get(name)
        if isinstance(value, str) and "." not in value:
            fixed[name] = value.replace(",", ".")
    return fixed


class ConsentioSetBasePricesOperator(ConsentioCatalogueUpsertOperator):
    """Set products' base prices (PUT /products/baseprice), each matched by ``sku`` or else ``ean_code``.

    Records: ``sku`` or ``ean_code``, ``base_price`` (exact decimal), optional ``price_unit``. A price for a product
    Consentio does not know comes back as a rejection naming it.
    """

    writes = BASE_PRICES


class ConsentioSyncPriceGroupsOperator(ConsentioCatalogueUpsertOperator):
    """Set products' prices in price groups (POST /pricegroups/sync): one record per group and product.

    Records: ``pricegroup_id``, ``pricegroup_name``, ``sku`` or ``ean_code``, ``price`` (exact decimal), optional
    ``price_unit``. Records are keyed ``<pricegroup_id>/<sku or ean_code>`` (that is how they are named in errors).
    Products must exist first: run this after the products upsert. Clients join a group through ``rate_id``.
    """

    writes = PRICE_GROUPS

    def prepare(self, records: list[Any]) -> list[Any]:
        from airflow_provider_consentio.models.catalogue import price_group_line

        return [price_group_line(record) for record in records]


class ConsentioExportProductsOperator(ConsentioWindowExportOperator):
    """Export the products changed in [start, end) to a JSONL file, each exactly as the API returned it.

    Works as the order export does (the same base, :class:`ConsentioWindowExportOperator` in
    operators/base/window_export.py, which describes the parameters it takes): the window defaults to the run's data
    interval (backfills export each day once), memory stays flat, the file appears only once complete, a rerun
    rewrites the same bytes, and the summary goes on the Asset ``consentio://<conn_id>/products``.

    :param window_size: the longest sub-window fetched in one request (default 6 hours).
    :param max_products_per_request: (default 5000) the sizing target of the sub-windows: about this many products
        per answer.
    """

    ui_color = "#eef0f7"
    resource = PRODUCTS

    def __init__(
        self,
        *,
        max_products_per_request: int | None = None,
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(records_per_request=max_products_per_request, consentio_conn_id=consentio_conn_id, **kwargs)

    @property
    def max_products_per_request(self) -> int:
        return self.records_per_request

    def selection(self) -> str:
        return "products changed"
