"""Promoted orders: orders placed on behalf of buyers (POST /promoted-order), at most once each.

Creating an order is not idempotent and the API documents no idempotency key (nor that the create answer echoes
anything of the request): a retry after a dropped connection or a 5xx may create a second order, since the first
request may have been applied. So each order carries the caller's ``reference`` (e.g. the ERP's order number),
which comes back on the order in the listing, and:

1. before anything is sent, the orders created in the last ``lookback`` are read back, and every reference found
   there is not sent again (this covers a rerun of the task, or an Airflow retry after a crash);
2. the create call itself is never repeated by the client once the request may have reached the server;
3. after a failure that leaves the outcome unknown (a dropped connection, a timeout, a 5xx), the orders are read
   back until the reference appears or the ``settle_window`` has passed (a listing may show a new order only
   seconds after creating it); only then is the order sent again, and the read-back repeats after every failure
   (client/retry.py, ``send_at_most_once``);
4. at the end an audit reads the whole window back once more (waiting up to ``audit_wait`` for the listing to show
   every order this run created) and counts the orders of each reference: two or more fail the task, naming each
   reference and its hash IDs so the extra ones can be cancelled.

What the read-backs cannot prevent: two runs sending the same reference at the same moment (the DAG runs one at a
time: ``max_active_tis_per_dag=1`` is the default here), and an API whose listing lags behind its writes by more
than the settle window. The audit reports the second, loudly; it never passes silently.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_consentio.errors import ConsentioAPIError, ConsentioConfigError, ConsentioError
from airflow_provider_consentio.operators.base.common import SUMMARY_LISTS_AT_MOST, listing, plural
from airflow_provider_consentio.operators.base.write_operator import ConsentioWriteOperator, InputNamed, WriteRun
from airflow_provider_consentio.resources import PROMOTED_ORDERS
from airflow_provider_consentio.version_compat import AirflowFailException

if TYPE_CHECKING:
    from airflow_provider_consentio.client import ConsentioClient
    from airflow_provider_consentio.client.retry import SettleWindow
    from airflow_provider_consentio.models import BatchResult
    from airflow_provider_consentio.models.catalogue import PromotedOrder
    from airflow_provider_consentio.operators.base.write_path import WriteResult

# Orders created this long after "now" are still searched: the server's clock may run ahead of the worker's.
CLOCK_SKEW = timedelta(minutes=10)
# Answers that refuse this one order (its content); they count against max_rejected.
REFUSED_ORDER_STATUSES = (400, 409, 422)


class ConsentioDuplicateOrdersError(ConsentioError, AirflowFailException):
    """The audit found references with more than one order. Fails the task without its retries: a retry cannot
    undo an order; someone must cancel the extra ones (``duplicates``: reference -> hash IDs)."""

    def __init__(self, message: str, duplicates: dict[str, list[str]]):
        super().__init__(message)
        self.duplicates = duplicates


class ConsentioCreatePromotedOrdersOperator(ConsentioWriteOperator):
    """Place orders on behalf of buyers, each exactly once (see the module's description of how).

    Each record: ``reference`` (your ID of the order, 1..256 characters, unique), ``buyer_email``, ``items`` (each
    ``sku`` or ``ean_code``, ``amount``, optional ``unit``), optional ``delivery_method`` (delivery, pickup) and
    ``delivery_date``. An unknown e-mail creates an unregistered buyer.

    Returns ``{"created", "found_existing", "duplicates", "orders": [{"reference", "hash_id", "new"}],
    "rejected", ...}``: ``created`` counts the orders this run created (``found_after_lost_answer`` of them were
    found by a read-back after their answer was lost), ``found_existing`` those an earlier run had created (also
    given as ``already_existed``, its former name), ``duplicates`` the references with more than one order (0: a
    duplicate fails the task).

    :param orders: the records (templated), or ``input_path``: a .jsonl file of them.
    :param lookback: how far back the read-back looks for orders already created with a reference.
    :param settle_window: after an unknown outcome, how long the orders are read back (every ``poll_every``) for
        the order before it is sent again (seconds or a timedelta; default 10 s). Set it above the longest delay
        with which the API lists a new order; a Retry-After or the connection's retry backoff lengthens it.
    :param audit_wait: how long the final audit waits for the listing to show every order this run created.
    :param poll_every: seconds between two read-backs while waiting.
    :param max_attempts: sends of one order whose outcome stayed unknown (each after a read-back found nothing).
    :param max_rejected: orders the API refuses (HTTP 4xx, e.g. an unknown product) tolerated before failing.
    """

    template_fields: Sequence[str] = ("orders", "input_path")
    ui_color = "#f7eee8"
    writes = PROMOTED_ORDERS
    orders = InputNamed()

    def __init__(
        self,
        *,
        orders: Any = None,
        lookback: timedelta = timedelta(days=2),
        settle_window: timedelta | float = timedelta(seconds=10),
        audit_wait: timedelta | float = timedelta(minutes=1),
        poll_every: float = 0.5,
        max_attempts: int = 4,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_active_tis_per_dag", 1)
        # One order per request, one at a time: each create is followed, after an unknown outcome, by a read-back.
        super().__init__(records=orders, batch_size=1, concurrency=1, **kwargs)
        self.lookback = lookback
        self.settle_window = _seconds(settle_window, "settle_window")
        self.audit_wait = _seconds(audit_wait, "audit_wait")
        self.poll_every = poll_every
        self.max_attempts = max_attempts

    @property
    def settle(self) -> SettleWindow:
        from airflow_provider_consentio.client.retry import SettleWindow

        return SettleWindow(self.settle_window, self.poll_every)

    def write_run(self, client: ConsentioClient) -> WriteRun:
        return CreatingOnce(self, client)

    def saved_counts(self, saved: list[Any]) -> dict[str, int]:
        return {"created": len(saved)}


class CreatingOnce(WriteRun):
    """The send step of promoted orders: read back what exists, create each of the others at most once, and audit
    the window for duplicates at the end, after a failure too. Holds what this execution found and created."""

    operator: ConsentioCreatePromotedOrdersOperator

    def __init__(self, operator: ConsentioCreatePromotedOrdersOperator, client: ConsentioClient) -> None:
        super().__init__(operator, client)
        self.started = datetime.now(UTC)
        self.already_there: dict[str, str] = {}  # reference -> hash ID, for the input's orders found by the read-back
        self.created: dict[str, str] = {}  # reference -> hash ID, for the orders this run created
        self.found_after_lost_answer: list[str] = []
        self.sent: list[str] = []

    def hold_back(self, valid: list[Any]) -> list[Any]:
        """The orders not created yet (by an earlier run or attempt)."""
        if not valid:
            return valid
        found = self._read_back()
        self.already_there.update(
            {order.reference: found[order.reference] for order in valid if order.reference in found}
        )
        if self.already_there:
            self.operator.log.info(
                "%s already in Consentio (created before, e.g. by an earlier attempt); not sent again: %s",
                plural(len(self.already_there), "order is", "orders are"),
                ", ".join(list(self.already_there)[:50]),
            )
        to_send = [order for order in valid if order.reference not in self.already_there]
        self.sent.extend(order.reference for order in to_send)
        return to_send

    def send(self, batch: Sequence[PromotedOrder]) -> BatchResult:
        from airflow_provider_consentio.models import BatchResult, RecordError

        saved, errors = [], []
        for order in batch:
            try:
                hash_id, found = self._create_once(order)
            except ConsentioAPIError as exc:
                if exc.status not in REFUSED_ORDER_STATUSES:  # e.g. 401/403: not about this order
                    raise
                errors.append(RecordError(order.reference, exc.detail))
                continue
            self.created[order.reference] = hash_id
            if found:
                self.found_after_lost_answer.append(order.reference)
            saved.append({"reference": order.reference, "hash_id": hash_id})
        return BatchResult(saved=saved, errors=errors)

    def failed(self, failure: ConsentioError) -> None:
        # Orders may have been created before the failure: a duplicate among them is the worse news.
        try:
            self._audit(check_listed=False)
        except ConsentioDuplicateOrdersError as worse:
            raise worse from failure
        except ConsentioError as audit_failure:
            self.operator.log.warning("The audit after the failure could not run: %s", audit_failure)

    def finish(self, result: WriteResult) -> None:
        self._audit(check_listed=True)

    def summary(self, result: WriteResult) -> dict[str, Any]:
        orders = [{"reference": saved["reference"], "hash_id": saved["hash_id"], "new": True} for saved in result.saved]
        orders += [{"reference": ref, "hash_id": hash_id, "new": False} for ref, hash_id in self.already_there.items()]
        return {
            **super().summary(result),
            "found_existing": len(self.already_there),
            "already_existed": len(self.already_there),
            "found_after_lost_answer": len(self.found_after_lost_answer),
            "duplicates": 0,  # the audit fails the task on any
            "orders": orders[:SUMMARY_LISTS_AT_MOST],
        }

    def _audit(self, *, check_listed: bool) -> None:
        """Count the orders of every reference of this run in one more read-back of the whole window; raise
        :class:`ConsentioDuplicateOrdersError` for two or more.

        The listing may lag: it is read until it shows every order this run knows of (at most ``audit_wait``), so
        that an order created by an attempt whose answer was lost, which is older, shows too.
        """
        from airflow_provider_consentio.client.retry import poll_until

        operator, client = self.operator, self.client
        known = {**self.already_there, **self.created}
        references = set(self.sent) | set(known)
        if not references:
            return

        def read() -> dict[str, list[str]]:
            return client.orders_per_reference(self.started - operator.lookback, datetime.now(UTC) + CLOCK_SKEW)

        def shows_all(listed: dict[str, list[str]]) -> bool:
            return all(hash_id in listed.get(reference, []) for reference, hash_id in known.items())

        waited = time.monotonic()
        listed = poll_until(read, shows_all, operator.audit_wait, operator.poll_every)
        per_reference = {
            reference: list(
                dict.fromkeys([*listed.get(reference, []), *([known[reference]] if reference in known else [])])
            )
            for reference in references
        }
        duplicates = {reference: ids for reference, ids in sorted(per_reference.items()) if len(ids) > 1}
        if duplicates:
            raise ConsentioDuplicateOrdersError(
                f"{plural(len(duplicates), 'reference has', 'references have')} more than one order in Consentio "
                f"workspace {client.settings.workspace_id}: cancel the extra ones (the API listed new orders later "
                f"than the settle window of {operator.settle_window:.1f}s; raise it):\n"
                + listing([f"{ref}: {', '.join(ids)}" for ref, ids in duplicates.items()], "references"),
                duplicates,
            )
        unlisted = sorted(reference for reference, hash_id in known.items() if hash_id not in listed.get(reference, []))
        if unlisted and check_listed:
            raise ConsentioError(
                f"The audit could not count the orders of {plural(len(unlisted), 'reference')}: the listing did not "
                f"show them within {operator.audit_wait:.0f}s (audit_wait). They were created: once the listing shows "
                "them, a retry of this task finds them and sends nothing again:\n" + listing(unlisted, "references")
            )
        operator.log.info(
            "Audit: no reference of %d has more than one order in Consentio (the listing showed this run's orders "
            "after %.1fs)",
            len(references),
            time.monotonic() - waited,
        )

    def _read_back(self) -> dict[str, str]:
        now = datetime.now(UTC)
        return self.client.find_orders_by_reference(now - self.operator.lookback, now + CLOCK_SKEW)

    def _create_once(self, order: PromotedOrder) -> tuple[str, bool]:
        """Create ``order``: its hash ID, and whether a read-back found it after its answer was lost."""
        from airflow_provider_consentio.client.retry import send_at_most_once

        client = self.client
        first_sent = datetime.now(UTC)

        def find() -> str | None:
            # Only orders created since the first send can be this one: a short window, cheap to poll.
            now = datetime.now(UTC)
            return client.find_orders_by_reference(first_sent - CLOCK_SKEW, now + CLOCK_SKEW).get(order.reference)

        return send_at_most_once(
            lambda: str(client.create_promoted_order(order).get("hash_id")),
            find,
            what=f"Order {order.reference}",
            settle=self.operator.settle,
            policy=client.settings.retry,
            attempts=self.operator.max_attempts,
        )


def _seconds(value: timedelta | float, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ConsentioConfigError(f"{name} must be a timedelta or a number of seconds, 0 or more; got {value!r}")
    return float(seconds)
