"""Modules that moved keep their old import path for DAGs already written against it; Airflow is pointed at the
new ones."""

from __future__ import annotations

import importlib
import inspect
import sys

import pytest

from airflow_provider_consentio.get_provider_info import get_provider_info

MOVED = {
    "airflow_provider_consentio.records": "airflow_provider_consentio.operators.base.inputs",
    "airflow_provider_consentio.operators.clients": "airflow_provider_consentio.operators.catalogue_clients",
}


@pytest.mark.parametrize(("old", "new"), MOVED.items())
def test_an_old_path_still_imports_the_same_objects_and_says_where_they_went(old, new):
    sys.modules.pop(old, None)  # the warning comes once per process, at the first import
    with pytest.warns(DeprecationWarning, match=new):
        shim = importlib.import_module(old)
    target = importlib.import_module(new)
    assert shim.__all__
    for name in shim.__all__:
        assert getattr(shim, name) is getattr(target, name)


def test_airflow_registers_the_modules_that_define_the_classes_not_the_old_paths():
    info = get_provider_info()
    modules = [
        module
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for module in entry["python-modules"]
    ]
    assert not set(modules) & set(MOVED)
    for name in modules:
        module = importlib.import_module(name)
        defined_here = [obj for _, obj in inspect.getmembers(module, inspect.isclass) if obj.__module__ == name]
        assert defined_here, f"{name} defines no class of its own"


def test_every_operator_module_is_registered_and_defines_operators():
    """operators/ holds operator modules only (their shared machinery is in operators/base): the provider info lists
    each without naming it, so a new resource's operator module needs no line there."""
    from airflow.sdk import BaseOperator

    import airflow_provider_consentio.operators.base as base

    [entry] = get_provider_info()["operators"]
    registered = entry["python-modules"]
    assert "airflow_provider_consentio.operators.orders" in registered
    assert not [name for name in registered if name.startswith(base.__name__)]
    for name in registered:
        module = importlib.import_module(name)
        operators_here = [
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if obj.__module__ == name and issubclass(obj, BaseOperator)
        ]
        assert operators_here, f"{name} is in operators/ but defines no operator: move it to operators/base"
