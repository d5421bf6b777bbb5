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


# --- what Airflow 3.3 reads of the provider info, each through its own ProvidersManager ---------------------------


def test_the_whole_provider_info_validates_against_airflows_installed_schema():
    """Every section, those added by other modules (transfers...) included: the schema Airflow itself checks with."""
    from pathlib import Path

    import airflow
    import jsonschema

    from airflow_provider_consentio.get_provider_info import get_provider_info

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    # The schema allows any other key, so a misspelt section ("asset-uri") would pass unseen: name each one.
    # "versions" is read by `airflow providers list`; an older minor's schema may lack a newer section (3.1: "cli").
    undeclared = set(info) - set(schema["properties"])
    assert undeclared <= {"versions", "cli"}, undeclared


@pytest.fixture(scope="module")
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


@pytest.fixture(scope="module")
def asset_registry(providers_manager):
    """Where Airflow looks asset schemes up: the task SDK's runtime manager since 3.3, the ProvidersManager before."""
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:
        return providers_manager
    return ProvidersManagerTaskRuntime()


def test_the_consentio_asset_scheme_is_registered(asset_registry):
    from airflow_provider_consentio import assets

    assert asset_registry.asset_uri_handlers["consentio"] is assets.sanitize_uri
    assert asset_registry.asset_factories["consentio"] is assets.create_asset
    assert asset_registry.asset_to_openlineage_converters["consentio"] is assets.convert_asset_to_openlineage


def test_airflow_normalizes_consentio_asset_uris_with_the_providers_handler():
    from airflow.sdk import Asset

    from airflow_provider_consentio.operators.orders import orders_asset

    assert Asset(uri="CONSENTIO://consentio_default/orders/sale/").uri == "consentio://consentio_default/orders/sale"
    assert orders_asset().uri == "consentio://consentio_default/orders/sale"
    with pytest.raises(ValueError, match="must name the connection"):
        Asset(uri="consentio:///orders/sale")
    with pytest.raises(ValueError, match="must name the resource"):
        Asset(uri="consentio://consentio_default")


def test_the_registered_factory_builds_the_operators_asset(asset_registry):
    from airflow_provider_consentio.operators.purchase_needs import purchase_needs_asset

    made = asset_registry.asset_factories["consentio"](consentio_conn_id="erp", resource="purchase-needs")
    assert made.uri == purchase_needs_asset("erp").uri == "consentio://erp/purchase-needs"
    assert made.extra == {"connection": "erp", "resource": "purchase-needs"}


def test_openlineage_names_a_consentio_asset_as_the_operators_lineage_does(consentio_connection, sandbox):
    """Through the openlineage provider's own translation (which looks the converter up in the ProvidersManager)."""
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    from airflow_provider_consentio.operators.orders import orders_asset

    dataset = translate_airflow_asset(orders_asset(), None)
    assert (dataset.namespace, dataset.name) == (f"consentio://127.0.0.1:{sandbox.port}/1001", "orders/sale")


def test_the_consentio_command_group_is_registered(providers_manager):
    from airflow_provider_consentio.cli import get_cli_commands

    if not hasattr(providers_manager, "cli_command_functions"):
        pytest.skip("this Airflow minor loads no provider CLI commands (python -m airflow_provider_consentio check)")
    assert get_cli_commands in providers_manager.cli_command_functions
    [group] = get_cli_commands()
    assert group.name == "consentio"
    [check] = group.subcommands
    assert check.name == "check"
    assert [arg.flags for arg in check.args] == [("--conn-id",), ("--since",)]


def test_both_trigger_modules_are_registered(providers_manager):
    ours = {t.trigger_class_name for t in providers_manager.trigger if t.package_name == "airflow-provider-consentio"}
    assert ours == {"airflow_provider_consentio.triggers.orders", "airflow_provider_consentio.triggers.events"}


def test_airflow_providers_get_lists_the_new_entries():
    [ours] = airflow_cli("providers", "get", "airflow-provider-consentio", "--full")
    assert ours["cli"] == ["airflow_provider_consentio.cli.get_cli_commands"]
    assert [entry["schemes"] for entry in ours["asset-uris"]] == [["consentio"]]
    [triggers] = ours["triggers"]
    assert "airflow_provider_consentio.triggers.events" in triggers["python-modules"]
    print(json.dumps({key: ours[key] for key in ("asset-uris", "cli", "triggers")}, indent=2))
