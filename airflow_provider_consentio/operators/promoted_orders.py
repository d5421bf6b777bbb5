"""Promoted orders: orders placed on behalf of buyers (POST /promoted-order), at most once each.

Creating an order is not idempotent and the API documents no idempotency key: a retry after a dropped connection
or a 5xx may create a second order, since the first request may have been applied. So each order carries the
caller's ``reference`` (e.g. the ERP's order number), which comes back on the order, and:

1. before anything is sent, the orders created in the last ``lookback`` are read back, and every reference found
   there is not sent again (this covers a rerun of the task, or an Airflow retry after a crash);
2. the create call itself is never repeated by the client once the request may have reached the server;
3. after a failure that leaves the outcome unknown (a dropped connection, a timeout, a 5xx), the orders are read
   back again before any re-send: if the reference is there the order exists, else it is sent again.

So each reference becomes exactly one order, whatever fails in between. What it cannot cover: two runs sending
the same reference at the same moment (the DAG runs one at a time: ``max_active_tis_per_dag=1`` is the default
here), and an API whose list lags behind its writes by more than the wait before a re-send.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_consentio.errors import ConsentioAPIError, ConsentioError, ConsentioTransientError
from airflow_provider_consentio.lineage import input_file_datasets
from airflow_provider_consentio.operators._common import (
    SUMMARY_LISTS_AT_MOST,
    ConsentioWriteOperator,
    plural,
    write_records,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_consentio.catalogue_models import PromotedOrder
    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.models import BatchResult

# Orders created this long after "now" are still searched: the server's clock may run ahead of the worker's.
CLOCK_SKEW = timedelta(minutes=10)
# Answers that refuse this one order (its content); they count against max_rejected.
REFUSED_ORDER_STATUSES = (400, 409, 422)


class ConsentioCreatePromotedOrdersOperator(ConsentioWriteOperator):
    """Place orders on behalf of buyers, each exactly once (see the module's description of how).

    Each record: ``reference`` (your ID of the order, 1..256 characters, unique), ``buyer_email``, ``items`` (each
    ``sku`` or ``ean_code``, ``amount``, optional ``unit``), optional ``delivery_method`` (delivery, pickup) and
    ``delivery_date``. An unknown e-mail creates an unregistered buyer.

    Returns ``{"created", "already_existed", "orders": [{"reference", "hash_id", "new"}], "rejected", ...}``.

    :param orders: the records (templated), or ``input_path``: a .jsonl file of them.
    :param lookback: how far back the read-back looks for orders already created with a reference.
    :param max_attempts: sends of one order whose outcome stayed unknown (each after a read-back found nothing).
    :param max_rejected: orders the API refuses (HTTP 4xx, e.g. an unknown product) tolerated before failing.
    """

    template_fields: Sequence[str] = ("orders", "input_path")
    ui_color = "#f7eee8"

    def __init__(
        self,
        *,
        orders: Any = None,
        input_path: Any = None,
        lookback: timedelta = timedelta(days=2),
        max_attempts: int = 4,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_active_tis_per_dag", 1)
        # One order per request, one at a time: each create is followed, after an unknown outcome, by a read-back.
        super().__init__(batch_size=1, concurrency=1, **kwargs)
        self.orders = orders
        self.input_path = input_path
        self.lookback = lookback
        self.max_attempts = max_attempts

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_consentio.catalogue_models import PromotedOrder
        from airflow_provider_consentio.records import load_records

        raw, source = load_records(records=self.orders, input_path=self.input_path)
        client = self.hook.get_conn()
        already_there: dict[str, str] = {}  # reference -> hash ID, for the input's orders found by the read-back

        def not_created_yet(orders: list[PromotedOrder]) -> list[PromotedOrder]:
            if not orders:
                return orders
            found = self._read_back(client)
            already_there.update(
                {order.reference: found[order.reference] for order in orders if order.reference in found}
            )
            if already_there:
                self.log.info(
                    "%s already in Consentio (created before, e.g. by an earlier attempt); not sent again: %s",
                    plural(len(already_there), "order is", "orders are"),
                    ", ".join(list(already_there)[:50]),
                )
            return [order for order in orders if order.reference not in already_there]

        result = write_records(
            raw,
            source=source,
            what="promoted orders",
            model=PromotedOrder,
            key_field="reference",
            send=lambda batch: self._send(client, batch),
            policy=self.write_policy,
            log=self.log,
            hold_back=not_created_yet,
        )
        self.record_lineage(
            input_file_datasets(self.input_path), [self.api_dataset("orders/promoted", len(result.saved))]
        )
        orders = [{"reference": saved["reference"], "hash_id": saved["hash_id"], "new": True} for saved in result.saved]
        orders += [{"reference": ref, "hash_id": hash_id, "new": False} for ref, hash_id in already_there.items()]
        return {
            **result.counts(),
            "created": len(result.saved),
            "already_existed": len(already_there),
            "orders": orders[:SUMMARY_LISTS_AT_MOST],
            "rejected": [
                {"reference": error.key, "reason": error.reason} for error in result.rejected[:SUMMARY_LISTS_AT_MOST]
            ],
            "invalid": result.invalid[:SUMMARY_LISTS_AT_MOST],
        }

    def _read_back(self, client: ConsentioClient) -> dict[str, str]:
        now = datetime.now(UTC)
        return client.find_orders_by_reference(now - self.lookback, now + CLOCK_SKEW)

    def _send(self, client: ConsentioClient, batch: Sequence[PromotedOrder]) -> BatchResult:
        from airflow_provider_consentio.models import BatchResult, RecordError

        saved, errors = [], []
        for order in batch:
            try:
                saved.append({"reference": order.reference, "hash_id": self._create_once(client, order)})
            except ConsentioAPIError as exc:
                if exc.status not in REFUSED_ORDER_STATUSES:  # e.g. 401/403: not about this order
                    raise
                errors.append(RecordError(order.reference, exc.detail))
        return BatchResult(saved=saved, errors=errors)

    def _create_once(self, client: ConsentioClient, order: PromotedOrder) -> str:
        """Create ``order`` and return its hash ID; after an unknown outcome, read back before sending again."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                created = client.create_promoted_order(order)
                return str(created.get("hash_id"))
            except ConsentioTransientError as exc:
                found = self._read_back(client).get(order.reference)
                if found:
                    self.log.warning(
                        "Order %s: %s, but the read-back found it created (%s): not sent again",
                        order.reference,
                        exc,
                        found,
                    )
                    return found
                if attempt == self.max_attempts:
                    raise ConsentioError(
                        f"order {order.reference}: not created after {attempt} attempts ({exc}); the read-back "
                        "found no order with this reference, so re-running is safe"
                    ) from exc
                delay = client.settings.retry.delay(attempt, exc.retry_after)
                self.log.warning(
                    "Order %s: %s; the read-back found no such order: sending it again in %.1fs",
                    order.reference,
                    exc,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")
