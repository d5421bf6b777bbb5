"""ConsentioHook: the connection, as users define it, becomes a client; Test reports a readable result."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from airflow_provider_consentio.errors import ConsentioConfigError
from airflow_provider_consentio.hooks.consentio import ConsentioHook


def use_connection(monkeypatch, value, conn_id="consentio_default"):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value if isinstance(value, str) else json.dumps(value))


def test_json_connection_with_an_environment(monkeypatch):
    use_connection(
        monkeypatch,
        {
            "conn_type": "consentio",
            "login": "12345",
            "password": "k-123456789",
            "extra": {"environment": "staging", "timeout": 12, "max_retries": 2, "retry_backoff": 0.25},
        },
    )
    settings = ConsentioHook().get_settings()
    assert (settings.workspace_id, settings.base_url, settings.api_key) == (
        12345,
        "https://staging.api.consentio.co",
        "k-123456789",
    )
    assert (settings.timeout, settings.retry.max_retries, settings.retry.initial_backoff) == (12.0, 2, 0.25)


def test_uri_connection_and_prefixed_extras(monkeypatch):
    use_connection(
        monkeypatch,
        f"consentio://777:{quote('key/with+chars', safe='')}@/?extra__consentio__environment=sandbox",
        "mine",
    )
    settings = ConsentioHook("mine").get_settings()
    assert (settings.workspace_id, settings.base_url, settings.api_key) == (
        777,
        "https://sandbox.api.consentio.co",
        "key/with+chars",
    )


def test_base_url_wins_over_the_environment_and_defaults_apply(monkeypatch):
    use_connection(
        monkeypatch,
        {
            "conn_type": "consentio",
            "login": "1",
            "password": "p-12345",
            "host": "api.example.test/v2/partner/",
            "extra": {"environment": "staging"},
        },
    )
    settings = ConsentioHook(timeout=3, max_retries=0).get_settings()
    assert settings.base_url == "https://api.example.test"
    assert (settings.timeout, settings.retry.max_retries) == (3.0, 0)


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [
        ("http://127.0.0.1", 8765, "http://127.0.0.1:8765"),  # how `make airflow` stores the sandbox connection
        ("127.0.0.1", 8765, "https://127.0.0.1:8765"),
        ("http://127.0.0.1:8765", 8765, "http://127.0.0.1:8765"),
        (None, 443, "https://api.consentio.co"),  # 443 on an https environment changes nothing
        ("https://api.example.test/v2/partner", 8443, "https://api.example.test:8443"),
    ],
)
def test_the_port_applies_to_the_url(monkeypatch, host, port, base_url):
    use_connection(monkeypatch, {"conn_type": "consentio", "login": "1", "host": host, "port": port})
    assert ConsentioHook().get_settings().base_url == base_url


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ({"login": "acme"}, "Workspace ID (login) must be a positive number, got 'acme'"),
        ({"login": ""}, "Workspace ID (login) must be a positive number, got 'nothing'"),
        ({"login": "1", "extra": {"environment": "moon"}}, "Unknown Consentio environment 'moon'"),
        ({"login": "1", "host": "http://api.consentio.co"}, "Refusing base URL 'http://api.consentio.co'"),
        ({"login": "1", "extra": {"verify": False}}, "TLS verification cannot be switched off"),
        ({"login": "1", "extra": {"timeout": "soon"}}, "could not convert string to float: 'soon'"),
        ({"login": "1", "extra": {"timeout": 0}}, "timeout must be a positive number of seconds"),
        ({"login": "1", "host": "http://127.0.0.1:8765", "port": 9000}, "the Port (9000) differs from the port"),
    ],
)
def test_unusable_connections_name_the_connection_and_the_field(monkeypatch, connection, message):
    use_connection(monkeypatch, {"conn_type": "consentio", "password": "secret-key-123", **connection}, "broken")
    with pytest.raises(ConsentioConfigError) as excinfo:
        ConsentioHook("broken").get_settings()
    assert str(excinfo.value).startswith("Connection 'broken': ") and message in str(excinfo.value)
    assert "secret-key-123" not in str(excinfo.value)


def test_test_connection_logs_in_and_names_the_workspace(consentio_connection, sandbox):
    ok, message = ConsentioHook().test_connection()
    assert ok, message
    assert (
        message
        == f"Logged in to Consentio workspace {sandbox.workspace_id} (Sandbox Fresh Foods) at {sandbox.base_url}"
    )


def test_test_connection_reports_a_rejected_key_without_it(consentio_connection, monkeypatch):
    use_connection(monkeypatch, {**consentio_connection, "password": "sbx_definitely_wrong_key"})
    ok, message = ConsentioHook().test_connection()
    assert not ok
    assert "Consentio rejected the API key for workspace" in message and "HTTP 401" in message
    assert "sbx_definitely_wrong_key" not in message


def test_test_connection_reports_an_unreachable_server(monkeypatch):
    use_connection(
        monkeypatch,
        {
            "conn_type": "consentio",
            "login": "1",
            "password": "p-12345",
            "host": "http://127.0.0.1:9",
            "extra": {"max_retries": 0},
        },
    )
    ok, message = ConsentioHook().test_connection()
    assert not ok and "POST /v2/partner/1/login failed: ConnectError" in message


def test_the_key_and_tokens_are_registered_with_the_secrets_masker(consentio_connection, sandbox):
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact

    hook = ConsentioHook()
    session = hook.get_conn().login()
    for secret in (sandbox.api_key, session.access_token, session.refresh_token):
        assert redact(f"value={secret}") == "value=***"
    hook.close()
