"""Every resource of the Partner API the provider reads or writes, each declared once (see :class:`Resource`).

A new resource is one declaration in a module here (and its model in models/), added to ``ALL``; the generic
client calls (``read_raw``, ``write``), the export and upsert operators, the SQL transfer, ``consentio check`` and
the lineage all read it from there.
"""

from __future__ import annotations

from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.resources._declaration import (
    AssetName,
    ChildRows,
    Choices,
    Read,
    Resource,
    TableSpec,
    Write,
    resolve,
)
from airflow_provider_consentio.resources.catalogue import ADDRESSES, BASE_PRICES, CLIENTS, PRICE_GROUPS, PRODUCTS
from airflow_provider_consentio.resources.orders import EDITED_ORDERS, EXTERNAL_REFERENCES, ORDERS, PROMOTED_ORDERS
from airflow_provider_consentio.resources.purchase_needs import PURCHASE_NEEDS

ALL: tuple[Resource, ...] = (
    ORDERS,
    EDITED_ORDERS,
    EXTERNAL_REFERENCES,
    PROMOTED_ORDERS,
    PURCHASE_NEEDS,
    PRODUCTS,
    BASE_PRICES,
    PRICE_GROUPS,
    CLIENTS,
    ADDRESSES,
)
_BY_NAME = {resource.name: resource for resource in ALL}


def by_name(name: str) -> Resource:
    """The resource registered as ``name`` (``"products"``), or an error listing the names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConsentioConfigError(f"no Consentio resource {name!r}; one of {', '.join(_BY_NAME)}") from None


__all__ = [
    "ADDRESSES",
    "ALL",
    "BASE_PRICES",
    "CLIENTS",
    "EDITED_ORDERS",
    "EXTERNAL_REFERENCES",
    "ORDERS",
    "PRICE_GROUPS",
    "PRODUCTS",
    "PROMOTED_ORDERS",
    "PURCHASE_NEEDS",
    "AssetName",
    "ChildRows",
    "Choices",
    "Read",
    "Resource",
    "TableSpec",
    "Write",
    "by_name",
    "resolve",
]
