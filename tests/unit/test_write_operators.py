"""Every write operator takes the one write path: it names the resource it writes, and the rest is the base's."""

from __future__ import annotations

import pytest

from airflow_provider_consentio.assets import resource_asset
from airflow_provider_consentio.operators.base.write_operator import ConsentioWriteOperator
from airflow_provider_consentio.operators.catalogue import (
    ConsentioSetBasePricesOperator,
    ConsentioSyncPriceGroupsOperator,
    ConsentioUpsertProductsOperator,
)
from airflow_provider_consentio.operators.catalogue_clients import (
    ConsentioUpsertClientAddressesOperator,
    ConsentioUpsertClientsOperator,
)
from airflow_provider_consentio.operators.orders import (
    ConsentioMarkOrdersSeenOperator,
    ConsentioSyncExternalOrdersOperator,
)
from airflow_provider_consentio.operators.promoted_orders import ConsentioCreatePromotedOrdersOperator
from airflow_provider_consentio.operators.purchase_needs import ConsentioUpsertPurchaseNeedsOperator

WRITE_OPERATORS = [
    (ConsentioUpsertPurchaseNeedsOperator, "needs"),
    (ConsentioUpsertProductsOperator, "records"),
    (ConsentioSetBasePricesOperator, "records"),
    (ConsentioSyncPriceGroupsOperator, "records"),
    (ConsentioUpsertClientsOperator, "records"),
    (ConsentioUpsertClientAddressesOperator, "records"),
    (ConsentioSyncExternalOrdersOperator, "references"),
    (ConsentioCreatePromotedOrdersOperator, "orders"),
    (ConsentioMarkOrdersSeenOperator, "orders"),
]


@pytest.mark.parametrize(("operator", "input_name"), WRITE_OPERATORS)
def test_each_write_operator_declares_a_written_resource_and_keeps_its_own_execute_out(operator, input_name):
    assert issubclass(operator, ConsentioWriteOperator)
    assert operator.writes.write is not None
    assert "execute" not in vars(operator)
    task = operator(task_id="t", consentio_conn_id="erp", **{input_name: [{"a": 1}]})
    assert getattr(task, input_name) == [{"a": 1}] == task.records
    assert input_name in task.template_fields


@pytest.mark.parametrize(("operator", "input_name"), WRITE_OPERATORS)
def test_default_outlets_are_the_declared_asset_and_given_outlets_win(operator, input_name):
    asset = operator.writes.write.asset
    expected = [resource_asset(asset, "erp")] if asset else []
    assert operator(task_id="t", consentio_conn_id="erp", **{input_name: []}).outlets == expected
    assert operator(task_id="t", consentio_conn_id="erp", outlets=[], **{input_name: []}).outlets == []
