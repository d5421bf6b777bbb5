"""Suite-wide set-up: an isolated Airflow home, hypothesis settings, and clients wired to the sandbox.

The Airflow environment variables are set at import, before any test module imports airflow; the modules
imported here (the client and its models) do not import airflow.
"""

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from airflow_provider_consentio.client import ConsentioClient, ConsentioSettings, RetryPolicy, TokenCache

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="consentio-tests-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__PARALLELISM", "4")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parents[1] / "dags"))

# Shared CI machines are noisy: hypothesis' per-example deadline would make timing, not logic, fail tests.
settings.register_profile("consentio", deadline=None, max_examples=100)
settings.load_profile("consentio")

# Quick retries keep fault-injection tests fast; the policy is the same code as in production.
QUICK_RETRIES = RetryPolicy(max_retries=4, initial_backoff=0.01, max_backoff=0.05)


@pytest.fixture
def make_settings(sandbox):
    def make(**overrides):
        values = {
            "workspace_id": sandbox.workspace_id,
            "base_url": sandbox.base_url,
            "api_key": sandbox.api_key,
            "timeout": 10.0,
            "retry": QUICK_RETRIES,
        }
        return ConsentioSettings(**{**values, **overrides})

    return make


@pytest.fixture
def make_client(make_settings):
    """Clients with a private token cache (so each test counts its own logins), closed after the test."""
    clients = []

    def make(token_cache=None, on_secret=None, **overrides):
        client = ConsentioClient(
            make_settings(**overrides), token_cache=token_cache or TokenCache(), on_secret=on_secret
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
