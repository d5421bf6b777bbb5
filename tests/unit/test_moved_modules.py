"""Modules that moved keep their old import path for DAGs already written against it; Airflow is pointed at the
new ones."""

from __future__ import annotations

import importlib
import inspect
import sys

import pytest

from airflow_provider_consentio.get_provider_info import get_provider_info

MOVED = {
    "airflow_provider_consentio.records": "airflow_provider_consentio.operators.inputs",
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
