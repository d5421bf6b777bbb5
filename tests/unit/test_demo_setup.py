"""What the demo checks before it starts anything: where the example DAGs are, and that the sandbox extra is in."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_consentio.demo import __main__ as demo

REPO = Path(__file__).resolve().parents[2]


def test_in_a_source_checkout_the_demo_runs_the_repositorys_example_dags():
    assert demo.example_dags() == REPO / "dags"


def test_only_the_sandbox_extras_missing_distributions_are_named(monkeypatch):
    requirements = [
        "httpx>=0.27",
        'fastapi>=0.116; extra == "sandbox"',
        'no-such-distribution-for-the-demo>=1; extra == "sandbox"',
        'another-missing-distribution; extra == "test"',
    ]
    monkeypatch.setattr(demo.importlib.metadata, "requires", lambda name: requirements)
    assert demo.missing_sandbox_extra() == ["no-such-distribution-for-the-demo"]


def test_without_the_sandbox_extra_the_demo_says_what_to_install_and_starts_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(demo, "missing_sandbox_extra", lambda: ["apache-airflow-providers-sqlite"])
    monkeypatch.setattr(demo, "run_demo", lambda *args: pytest.fail("the demo started"))
    with pytest.raises(SystemExit) as stopped:
        demo.main(["--workdir", str(tmp_path)])
    assert stopped.value.code == 2
    assert "pip install 'airflow-provider-consentio[sandbox]'" in capsys.readouterr().err
