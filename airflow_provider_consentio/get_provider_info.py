"""Declarative provider metadata, read by Airflow without importing hooks or operators."""

from __future__ import annotations

import pkgutil
from typing import Any

from airflow_provider_consentio import __version__, operators
from airflow_provider_consentio.hooks.connection_fields import conn_fields, ui_field_behaviour

INTEGRATION = "Consentio"
CONNECTION_DOCS = "https://github.com/consentio/airflow-provider-consentio#the-connection"
# Modules of operators/ that only re-export from where their operators moved (Airflow is pointed at the new ones).
MOVED_OPERATOR_MODULES = frozenset({"clients"})


def operator_modules() -> list[str]:
    """Every module of operators/: each defines operators (what they share lives in the package operators/base), so
    a new resource's operator module is registered by being there. Listed without importing any of them."""
    return sorted(
        f"{operators.__name__}.{module.name}"
        for module in pkgutil.iter_modules(operators.__path__)
        if not module.ispkg and module.name not in MOVED_OPERATOR_MODULES
    )


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-consentio",
        "name": "Consentio",
        # Plain text: the Providers page strips RST markup, which ran a link's URL into the sentence.
        "description": "Consentio Partner API: export orders, sync external references, track edited orders, "
        "prepare orders, upsert buyer purchase needs, and load exports into typed SQL tables.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://partner.docs.consentio.co",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_consentio.hooks.consentio"]},
        ],
        "operators": [{"integration-name": INTEGRATION, "python-modules": operator_modules()}],
        # A transfer names its source and target integrations; "Common SQL" is the common.sql provider's, so the
        # Providers page links the load to every database that provider serves.
        "transfers": [
            {
                "source-integration-name": INTEGRATION,
                "target-integration-name": "Common SQL",
                "python-module": "airflow_provider_consentio.transfers.consentio_to_sql",
            }
        ],
        "sensors": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_provider_consentio.sensors.orders"]},
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_provider_consentio.triggers.orders",
                    "airflow_provider_consentio.triggers.events",
                ],
            },
        ],
        # The Assets the operators update (assets.py): consentio://<connection id>/<resource>.
        "asset-uris": [
            {
                "schemes": ["consentio"],
                "handler": "airflow_provider_consentio.assets.sanitize_uri",
                "factory": "airflow_provider_consentio.assets.create_asset",
                "to_openlineage_converter": "airflow_provider_consentio.assets.convert_asset_to_openlineage",
            }
        ],
        # `airflow consentio check` (Airflow 3.3+; `python -m airflow_provider_consentio check` on every minor).
        "cli": ["airflow_provider_consentio.cli.get_cli_commands"],
        "connection-types": [
            {
                "connection-type": "consentio",
                "hook-class-name": "airflow_provider_consentio.hooks.consentio.ConsentioHook",
                "hook-name": "Consentio",
                "conn-fields": conn_fields(CONNECTION_DOCS),
                "ui-field-behaviour": ui_field_behaviour(),
            }
        ],
    }
