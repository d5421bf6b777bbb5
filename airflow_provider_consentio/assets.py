"""The Assets the operators update: all in the group ``consentio``, each saying which connection and resource it is.

The workspace stays out of the Asset itself (DAG files are parsed without reading connections); every Asset event
the operators record names it (``workspace_id``), next to the path, count and window.
"""

from __future__ import annotations

from airflow.sdk import Asset

ASSET_GROUP = "consentio"


def consentio_asset(name: str, consentio_conn_id: str, resource: str) -> Asset:
    return Asset(
        name=name,
        uri=f"consentio://{consentio_conn_id}/{resource}",
        group=ASSET_GROUP,
        extra={"connection": consentio_conn_id, "resource": resource},
    )
