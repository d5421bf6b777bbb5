"""The Assets the operators update: all in the group ``consentio``, each saying which connection and resource it is.

The workspace stays out of the Asset itself (DAG files are parsed without reading connections); every Asset event
the operators record names it (``workspace_id``), next to the path, count and window.

URIs are ``consentio://<connection id>/<resource>`` (``orders/sale``, ``purchase-needs``, ``clients``...). The
provider info registers the scheme (``asset-uris``) with :func:`sanitize_uri`, :func:`create_asset` and
:func:`convert_asset_to_openlineage`, as the apache providers do for theirs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from airflow_provider_consentio.resources import AssetName

ASSET_GROUP = "consentio"


def consentio_asset(name: str, consentio_conn_id: str, resource: str) -> Asset:
    return Asset(
        name=name,
        uri=f"consentio://{consentio_conn_id}/{resource}",
        group=ASSET_GROUP,
        extra={"connection": consentio_conn_id, "resource": resource},
    )


def resource_asset(name: AssetName, consentio_conn_id: str, **params: Any) -> Asset:
    """The Asset a resource's declaration names (``Read.asset``, ``Write.asset``), for one connection; ``params``
    fill the name's placeholders (``kind="sale"``: ``consentio_sale_orders__<conn>``, ``orders/sale``)."""
    return consentio_asset(
        f"{name.stem.format(**params)}__{consentio_conn_id}", consentio_conn_id, name.path.format(**params)
    )


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Airflow's normalizer for ``consentio://`` URIs (already lower-cased in scheme, trailing slashes dropped)."""
    if not uri.netloc:
        raise ValueError("A consentio:// Asset URI must name the connection: consentio://<connection id>/<resource>")
    if uri.path in ("", "/"):
        raise ValueError(
            f"A consentio:// Asset URI must name the resource after the connection: consentio://{uri.netloc}/orders/sale"
        )
    if uri.query:
        raise ValueError(f"A consentio:// Asset URI takes no query, got ?{uri.query}")
    return uri


def create_asset(*, consentio_conn_id: str, resource: str, extra: dict[str, Any] | None = None) -> Asset:
    """The Asset of ``resource`` read through connection ``consentio_conn_id`` (the factory Airflow registers)."""
    return Asset(
        uri=f"consentio://{consentio_conn_id}/{resource.strip('/')}",
        group=ASSET_GROUP,
        extra={"connection": consentio_conn_id, "resource": resource.strip("/"), **(extra or {})},
    )


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any = None) -> Any:
    """The OpenLineage dataset of an Asset, named as the operators' own lineage names the API
    (operators/base/lineage.py): namespace ``consentio://<host>[:<port>]/<workspace id>``, name the resource.
    Where the connection cannot be read, the namespace is ``consentio://<connection id>``."""
    from urllib.parse import urlsplit

    from airflow.providers.common.compat.openlineage.facet import Dataset

    from airflow_provider_consentio.hooks.consentio import ConsentioHook
    from airflow_provider_consentio.operators.base.lineage import api_namespace

    parts = urlsplit(asset.uri)
    resource = parts.path.strip("/")
    try:
        namespace = api_namespace(ConsentioHook(parts.netloc).get_settings())
    except Exception:  # a connection that is missing or unusable here: Airflow's error type differs by minor
        namespace = f"consentio://{parts.netloc}"
    return Dataset(namespace=namespace, name=resource)
