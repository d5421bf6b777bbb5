"""The installed package registers with Airflow: the providers list shows it, the hooks list has `consentio`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Each test runs an `airflow` command.
pytestmark = pytest.mark.integration


def airflow_cli(*args: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    start = done.stdout.index("[")  # anything printed before the JSON document is not ours to parse
    return json.loads(done.stdout[start:])


@pytest.fixture(scope="module")
def providers():
    return airflow_cli("providers", "list")


def test_airflow_providers_list_shows_the_package(providers):
    from airflow_provider_consentio import __version__

    [ours] = [p for p in providers if p["package_name"] == "airflow-provider-consentio"]
    assert ours["version"] == __version__
    assert "Consentio" in ours["description"]


def test_airflow_providers_hooks_lists_the_consentio_connection_type():
    hooks = airflow_cli("providers", "hooks")
    [consentio] = [h for h in hooks if h["connection_type"] == "consentio"]
    assert consentio["class"] == "airflow_provider_consentio.hooks.consentio.ConsentioHook"
    assert consentio["package_name"] == "airflow-provider-consentio"
    assert consentio["hook_name"] == "Consentio"
    assert consentio["conn_id_attribute_name"] == "consentio_conn_id"
