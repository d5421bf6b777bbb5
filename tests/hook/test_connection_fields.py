"""The connection's fields are declared once (hooks/connection_fields.py): the form, the hook's reader, the client's
defaults and the README's table must say what the declaration says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_consentio.client import ENVIRONMENTS, ConsentioSettings, RetryPolicy, resolve_base_url
from airflow_provider_consentio.get_provider_info import get_provider_info
from airflow_provider_consentio.hooks.connection_fields import (
    CA_BUNDLE,
    ENVIRONMENT,
    EXTRA_FIELDS,
    MAX_RETRIES,
    RETRY_BACKOFF,
    STANDARD_FIELDS,
    TIMEOUT,
    ExtraField,
)
from airflow_provider_consentio.hooks.consentio import ConsentioHook

REPO = Path(__file__).resolve().parents[2]


def readme_meaning(field: ExtraField) -> str:
    parts = [field.description]
    if field.choices:
        parts.append(f"One of {', '.join(f'`{choice}`' for choice in field.choices)}.")
    if field.default is not None:
        parts.append(f"Default `{field.default}`.")
    return " ".join(parts)


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    return text[start : text.index("\n## ", start + 1)]


def table_rows(section: str) -> list[list[str]]:
    rows = [line.strip().strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # without the header row


def test_the_readmes_table_is_the_declaration():
    expected = [[field.label, f"`{field.attribute}`", field.meaning] for field in STANDARD_FIELDS]
    expected += [[field.label, f"extra `{field.key}`", readme_meaning(field)] for field in EXTRA_FIELDS]
    assert table_rows(readme_section("The connection")) == expected


def test_the_readmes_tuning_table_quotes_the_declared_defaults():
    text = (REPO / "README.md").read_text()
    [row] = re.findall(r"^\| `max_retries`, `retry_backoff`, `timeout` \|.*$", text, re.MULTILINE)
    defaults = row.strip("|").split(" | ")[2].strip()
    assert defaults == f"{MAX_RETRIES.default}, {RETRY_BACKOFF.default} s, {TIMEOUT.default} s"


def test_the_form_shows_every_declared_field_and_hides_the_rest():
    [connection_type] = get_provider_info()["connection-types"]
    form = connection_type["conn-fields"]
    assert list(form) == [field.key for field in EXTRA_FIELDS]
    for field in EXTRA_FIELDS:
        assert form[field.key]["label"] == field.label
        assert form[field.key]["schema"].get("default") == field.default
        assert field.description in form[field.key].get("description", form[field.key]["schema"].get("description_md"))
    behaviour = connection_type["ui-field-behaviour"]
    shown = {field.attribute for field in STANDARD_FIELDS}
    assert shown.isdisjoint(behaviour["hidden-fields"])
    assert {"host", "schema", "login", "password", "port", "extra"} == shown | set(behaviour["hidden-fields"])
    assert behaviour["relabeling"] == {"login": "Workspace ID", "password": "API key", "host": "Base URL"}


def test_the_clients_defaults_are_the_declared_ones():
    settings = ConsentioSettings(workspace_id=1)
    assert settings.timeout == TIMEOUT.default
    assert (RetryPolicy().max_retries, RetryPolicy().initial_backoff) == (MAX_RETRIES.default, RETRY_BACKOFF.default)
    assert settings.ca_bundle == CA_BUNDLE.default
    assert tuple(ENVIRONMENTS) == ENVIRONMENT.choices
    assert settings.base_url == resolve_base_url() == ENVIRONMENTS[ENVIRONMENT.default]


def test_the_hook_reads_the_declared_defaults_from_an_empty_connection(monkeypatch):
    connection = {"conn_type": "consentio", "login": "1", "password": "p-12345", "extra": {"timeout": ""}}
    monkeypatch.setenv("AIRFLOW_CONN_CONSENTIO_DEFAULT", json.dumps(connection))
    settings = ConsentioHook().get_settings()
    assert settings.base_url == ENVIRONMENTS[ENVIRONMENT.default]
    assert settings.timeout == TIMEOUT.default
    assert (settings.retry.max_retries, settings.retry.initial_backoff) == (MAX_RETRIES.default, RETRY_BACKOFF.default)
    assert settings.ca_bundle == CA_BUNDLE.default


@pytest.mark.parametrize("field", EXTRA_FIELDS, ids=lambda field: field.key)
def test_the_hooks_docstring_names_every_extra(field):
    assert f"``{field.key}``" in (ConsentioHook.__doc__ or "")


def test_the_declaration_imports_neither_airflow_nor_the_client():
    """get_provider_info imports it in every Airflow process; the client is too heavy to come along."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, airflow_provider_consentio.get_provider_info; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow' or '.client' in m))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert loaded.stdout.strip() == "[]"
