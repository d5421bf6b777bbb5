"""The seller's catalogue: products (upsert, JSON or CSV import; export of the changed ones), base prices and price
groups. Every write is a ConsentioUpsertOperator on the common write path; clients and addresses are in clients.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_provider_consentio.assets import consentio_asset
from airflow_provider_consentio.operators._common import ConsentioOperator, ProgressLog, check_choice, plural
from airflow_provider_consentio.operators._upsert import ConsentioUpsertOperator
from airflow_provider_consentio.windows import AdaptiveWindows, resolve_window

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pydantic import BaseModel

    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.models import BatchResult

SEND_AS = ("json", "csv")


def catalogue_asset(consentio_conn_id: str = "consentio_default") -> Asset:
    """Updated by every catalogue write; schedule what depends on an up-to-date catalogue on it."""
    return consentio_asset(f"consentio_catalogue__{consentio_conn_id}", consentio_conn_id, "catalogue")


def products_asset(consentio_conn_id: str = "consentio_default") -> Asset:
    """Updated by the export of changed products."""
    return consentio_asset(f"consentio_products__{consentio_conn_id}", consentio_conn_id, "products")


class ConsentioCatalogueUpsertOperator(ConsentioUpsertOperator):
    """Base of the catalogue writes: each updates the catalogue Asset unless ``outlets`` is given. Inputs and
    policies: :class:`~airflow_provider_consentio.operators._upsert.ConsentioUpsertOperator`."""

    ui_color = "#eef0f7"

    def default_outlets(self, consentio_conn_id: str) -> list[Asset]:
        return [catalogue_asset(consentio_conn_id)]


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

    what = "products"
    key_field = "sku"

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

    def record_model(self) -> type[BaseModel]:
        from airflow_provider_consentio.catalogue_models import Product

        return Product

    def prepare(self, records: list[Any]) -> list[Any]:
        if self.decimal_separator == ".":
            return records
        return [_decimal_point(record, ("base_price",)) for record in records]

    def sender(self, client: ConsentioClient) -> Callable[[Sequence[Any]], BatchResult]:
        if self.send_as == "json":
            return client.upsert_products
        return lambda products: client.upsert_products_csv(
            products, separator=self.csv_separator, decimal_separator=self.decimal_separator, language=self.language
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

    what = "base prices"
    key_field = "sku"

    def record_model(self) -> type[BaseModel]:
        from airflow_provider_consentio.catalogue_models import BasePrice

        return BasePrice

    def sender(self, client: ConsentioClient) -> Callable[[Sequence[Any]], BatchResult]:
        return client.set_base_prices


class ConsentioSyncPriceGroupsOperator(ConsentioCatalogueUpsertOperator):
    """Set products' prices in price groups (POST /pricegroups/sync): one record per group and product.

    Records: ``pricegroup_id``, ``pricegroup_name``, ``sku`` or ``ean_code``, ``price`` (exact decimal), optional
    ``price_unit``. Records are keyed ``<pricegroup_id>/<sku or ean_code>`` (that is how they are named in errors).
    Products must exist first: run this after the products upsert. Clients join a group through ``rate_id``.
    """

    what = "price group prices"
    key_field = "line"

    def record_model(self) -> type[BaseModel]:
        from airflow_provider_consentio.catalogue_models import PriceGroupPrice

        return PriceGroupPrice

    def prepare(self, records: list[Any]) -> list[Any]:
        from airflow_provider_consentio.catalogue_models import price_group_line

        return [price_group_line(record) for record in records]

    def sender(self, client: ConsentioClient) -> Callable[[Sequence[Any]], BatchResult]:
        return client.sync_price_groups


class ConsentioExportProductsOperator(ConsentioOperator):
    """Export the products changed in [start, end) to a JSONL file, each exactly as the API returned it.

    Works as :class:`~airflow_provider_consentio.operators.orders.ConsentioExportOrdersOperator` does (the same
    sub-window loop): the window defaults to the run's data interval (backfills export each day once), memory stays
    flat, the file appears only once complete, a rerun rewrites the same bytes, and the summary goes on the Asset
    ``consentio://<conn_id>/products``.

    :param output_path: JSONL file to write (templated).
    :param start: window start (templated); default: the data interval start.
    :param end: window end, exclusive (templated); default: the data interval end.
    :param window_size: the longest sub-window fetched in one request.
    :param max_products_per_request: sub-windows shrink when an answer holds more products than this.
    :param empty_interval: ``fail`` (default) or ``lookback`` for zero-length data intervals.
    """

    template_fields: Sequence[str] = ("output_path", "start", "end")
    ui_color = "#eef0f7"

    def __init__(
        self,
        *,
        output_path: Any,
        start: Any = None,
        end: Any = None,
        window_size: timedelta = timedelta(hours=6),
        max_products_per_request: int = 5000,
        empty_interval: str = "fail",
        lookback: timedelta = timedelta(days=1),
        consentio_conn_id: str = "consentio_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [products_asset(consentio_conn_id)])
        super().__init__(consentio_conn_id=consentio_conn_id, **kwargs)
        self.output_path = output_path
        self.start = start
        self.end = end
        self.window_size = window_size
        self.max_products_per_request = max_products_per_request
        self.empty_interval = empty_interval
        self.lookback = lookback

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.operators.orders import write_sub_windows
        from airflow_provider_consentio.storage import as_storage_path, atomic_writer

        start, end = resolve_window(
            context, self.start, self.end, empty_interval=self.empty_interval, lookback=self.lookback, task=self.task_id
        )
        path = as_storage_path(self.output_path)
        client = self.hook.get_conn()
        windows = AdaptiveWindows(start, end, max_size=self.window_size, target_records=self.max_products_per_request)
        self.log.info("Exporting the products changed in [%s, %s) to %s", start.isoformat(), end.isoformat(), path)
        exported = 0
        progress = ProgressLog()
        with atomic_writer(path) as out:
            for _, upper, exported in write_sub_windows(client.get_raw_changed_products, windows, out):
                if progress.due(windows.progress(upper)):
                    self.log.info(
                        "%s so far (%.0f%% of the window)", plural(exported, "product"), 100 * windows.progress(upper)
                    )
        summary = {
            "path": str(path),
            "count": exported,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "sub_windows": windows.count,
        }
        self.log.info("Exported %s to %s in %.1fs", plural(exported, "changed product"), path, progress.elapsed())
        self.record_asset_event(context, summary)
        return summary
