"""The Consentio connection's fields, declared once: the connection form (get_provider_info), the hook's reader and
the README's table are built from, or checked against, this table; the client's own defaults are checked against it
(tests/hook/test_connection_fields.py).

Standard library only: get_provider_info imports it in every Airflow process, and the client may not be imported
there (too heavy) nor import this module (it sits below the hooks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Airflow's own labels of the standard fields: a field relabelled to the same text needs no relabeling entry.
_AIRFLOW_LABELS = {"host": "Host", "schema": "Schema", "login": "Login", "password": "Password", "port": "Port"}


@dataclass(frozen=True)
class StandardField:
    """One of Airflow's own connection attributes (login, password, host, port), relabelled for Consentio."""

    attribute: str
    label: str
    meaning: str
    placeholder: str | None = None


@dataclass(frozen=True)
class ExtraField:
    """A key of the connection's extras, with its form field.

    :param kind: the JSON schema type ("string", "number", "integer"); every field may also be left empty (null).
    :param description: shown under the field in the form, and the README's meaning (with the default).
    :param links_docs: the form shows the description as Markdown, followed by a link to the connection's docs.
    """

    key: str
    label: str
    kind: str
    description: str
    default: Any = None
    minimum: float | None = None
    choices: tuple[str, ...] = ()
    links_docs: bool = False

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": [self.kind, "null"]}
        if self.default is not None:
            schema["default"] = self.default
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        return schema


STANDARD_FIELDS = (
    StandardField("login", "Workspace ID", "the numeric workspace ID", placeholder="12345"),
    StandardField(
        "password",
        "API key",
        "the workspace's Partner API key (masked everywhere)",
        placeholder="the workspace's Partner API key",
    ),
    StandardField(
        "host",
        "Base URL",
        "optional; overrides Environment, e.g. `http://127.0.0.1:8765` for the sandbox",
        placeholder="empty: use the environment; e.g. http://127.0.0.1:8765 for the local sandbox",
    ),
    StandardField(
        "port",
        "Port",
        "optional; the URL's port (443 changes nothing for https; see *Test button* below)",
        # Airflow 3.3.1-3.3.2's Test button fails on connections without a port (README).
        placeholder="optional; 443 changes nothing for https",
    ),
)
HIDDEN_FIELDS = ("schema", "extra")

ENVIRONMENT = ExtraField(
    "environment",
    "Environment",
    "string",
    "Used when Base URL is empty.",
    default="production",
    choices=("production", "staging", "sandbox"),
    links_docs=True,
)
TIMEOUT = ExtraField("timeout", "Timeout (seconds)", "number", "Per request.", default=30, minimum=1)
MAX_RETRIES = ExtraField(
    "max_retries",
    "Max retries",
    "integer",
    "Retries of a call on 429, 5xx, timeouts and dropped connections.",
    default=5,
    minimum=0,
)
RETRY_BACKOFF = ExtraField(
    "retry_backoff",
    "First retry wait (seconds)",
    "number",
    "Doubles on each retry (with jitter); a Retry-After header takes precedence.",
    default=0.5,
    minimum=0,
)
CA_BUNDLE = ExtraField(
    "ca_bundle",
    "CA bundle path",
    "string",
    "Optional CA file to verify the server with (TLS is always verified).",
)
RATE_LIMIT = ExtraField(
    "rate_limit",
    "Rate limit (requests/s)",
    "number",
    "The workspace's request budget, drawn from by every task, trigger and worker using this connection; empty or 0: "
    "no budget. Needs the `rate-limit` extra.",
    minimum=0,
)
RATE_BURST = ExtraField(
    "rate_burst",
    "Rate burst (requests)",
    "integer",
    "Requests that may go at once after a quiet spell; empty: one second's worth of the rate limit.",
    minimum=1,
)
RATE_STORE = ExtraField(
    "rate_store_conn_id",
    "Rate budget store (connection ID)",
    "string",
    "An Airflow connection to a Redis that shares the budget across processes and machines; empty: each process "
    "keeps to the budget on its own.",
)
EXTRA_FIELDS = (ENVIRONMENT, TIMEOUT, MAX_RETRIES, RETRY_BACKOFF, CA_BUNDLE, RATE_LIMIT, RATE_BURST, RATE_STORE)


def conn_fields(docs_url: str) -> dict[str, Any]:
    """The form's extra fields, as Airflow 3.2+ reads them from ``conn-fields`` in the provider info."""
    fields: dict[str, Any] = {}
    for field in EXTRA_FIELDS:
        if field.links_docs:
            # The form renders description_md as Markdown when there is no plain description: the only place a
            # provider can link to its documentation from the form.
            markdown = f"{field.description} [How to set up this connection]({docs_url})"
            fields[field.key] = {"label": field.label, "schema": {"description_md": markdown, **field.schema()}}
        else:
            fields[field.key] = {"label": field.label, "description": field.description, "schema": field.schema()}
    return fields


def extra_value(extras: Mapping[str, Any], conn_type: str, key: str) -> Any:
    """An extra's value, None when unset. The form stores plain keys, older tooling prefixes them with
    ``extra__<conn type>__``, and an emptied form field is stored as ""."""
    value = extras.get(key, extras.get(f"extra__{conn_type}__{key}"))
    return None if value == "" else value


def read_extras(extras: Mapping[str, Any], conn_type: str) -> dict[str, Any]:
    """Every declared extra's value, its default when unset."""
    values = {}
    for field in EXTRA_FIELDS:
        value = extra_value(extras, conn_type, field.key)
        values[field.key] = field.default if value is None else value
    return values


def ui_field_behaviour() -> dict[str, Any]:
    """Which standard fields the form hides, relabels and fills with a hint."""
    return {
        "hidden-fields": list(HIDDEN_FIELDS),
        "relabeling": {
            field.attribute: field.label for field in STANDARD_FIELDS if field.label != _AIRFLOW_LABELS[field.attribute]
        },
        "placeholders": {field.attribute: field.placeholder for field in STANDARD_FIELDS if field.placeholder},
    }
