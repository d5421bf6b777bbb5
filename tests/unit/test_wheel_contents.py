"""The wheel holds the product: the provider, the sandbox, the demo and the example DAGs it runs; never the tooling
that only the tests, the benchmarks and the docs use (tests/harness/), nor the tests."""

from __future__ import annotations

import ast
import email
import importlib.metadata
import re
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "airflow_provider_consentio"
HARNESS = REPO / "tests" / "harness"
# Imported by the demo but installed by Airflow itself, which the demo drives: its metadata database's engine.
AIRFLOWS_OWN = {"sqlalchemy"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # The build backend itself, in process: the same wheel `pip wheel` or `uv build` would make, without an
    # isolated build environment to download.
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("wheel")
    (built,) = WheelBuilder(str(REPO)).build(directory=str(out), versions=["standard"])
    return zipfile.ZipFile(built)


@pytest.fixture(scope="module")
def files(wheel: zipfile.ZipFile) -> list[PurePosixPath]:
    return [PurePosixPath(name) for name in wheel.namelist()]


@pytest.fixture(scope="module")
def metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (name,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def test_the_wheel_holds_only_the_package_and_its_metadata(files):
    strays = [str(f) for f in files if f.parts[0] != PACKAGE and not f.parts[0].endswith(".dist-info")]
    assert not strays


def test_no_harness_module_and_no_test_is_in_the_wheel(files):
    harness = {path.stem for path in HARNESS.glob("*.py") if path.stem != "__init__"}
    assert harness >= {"production", "services", "browser", "screenshots"}
    shipped = [f for f in files if f.suffix == ".py"]
    assert not [str(f) for f in shipped if f.stem in harness]
    assert not [str(f) for f in shipped if f.name == "conftest.py" or f.name.startswith("test_")]
    assert not [str(f) for f in files if {"tests", "harness", "benchmarks", "__pycache__"} & set(f.parts)]


def test_every_module_of_the_package_is_in_the_wheel(files):
    source = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert source - {str(f) for f in files} == set()


def test_the_demo_runs_from_the_wheel_with_the_example_dags_beside_it(files):
    names = {str(f) for f in files}
    assert f"{PACKAGE}/demo/__main__.py" in names
    assert f"{PACKAGE}/sandbox/__main__.py" in names
    examples = {path.name for path in (REPO / "dags").glob("*.py")}
    assert examples and {f"{PACKAGE}/example_dags/{name}" for name in examples} <= names


def test_the_sandbox_extra_declares_what_the_sandbox_and_the_demo_import(metadata):
    """Every third-party module the sandbox and the demo import comes from a core or a ``sandbox`` requirement."""
    declared = set()
    for requirement in metadata.get_all("Requires-Dist") or []:
        name, _, marker = requirement.partition(";")
        if not marker or re.search(r"""extra\s*==\s*["']sandbox["']""", marker):
            declared.add(canonical(re.match(r"[A-Za-z0-9._-]+", name.strip()).group()))
    assert "sandbox" in (metadata.get_all("Provides-Extra") or [])
    assert {"fastapi", "uvicorn", "apache-airflow-providers-sqlite"} <= declared

    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for folder in ("sandbox", "demo"):
        for path in (REPO / PACKAGE / folder).glob("*.py"):
            for root in imported_roots(path) - AIRFLOWS_OWN:
                owners = {canonical(d) for d in distributions.get(root, [])}
                if not owners & declared:
                    undeclared[f"{folder}/{path.name}: {root}"] = sorted(owners)
    assert not undeclared


def imported_roots(path: Path) -> set[str]:
    """The top-level names of the third-party modules a file imports, anywhere in it."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots - set(sys.stdlib_module_names) - {PACKAGE, "__future__"}
