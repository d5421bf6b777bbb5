"""Moved to :mod:`airflow_provider_consentio.operators.catalogue_clients` (a name that no longer reads as the API
client's); kept so that DAGs importing the clients' operators from here keep working."""

import warnings

from airflow_provider_consentio.operators.catalogue_clients import (
    CLIENT_RESOURCES,
    ConsentioExportClientsOperator,
    ConsentioUpsertClientAddressesOperator,
    ConsentioUpsertClientsOperator,
    clients_asset,
)

warnings.warn(
    "airflow_provider_consentio.operators.clients moved to airflow_provider_consentio.operators.catalogue_clients",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "CLIENT_RESOURCES",
    "ConsentioExportClientsOperator",
    "ConsentioUpsertClientAddressesOperator",
    "ConsentioUpsertClientsOperator",
    "clients_asset",
]
