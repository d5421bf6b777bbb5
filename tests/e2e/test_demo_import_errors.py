"""`make demo` with an example DAG that cannot be imported: it names the file, the line and the error, no traceback.

The way a user meets a DAG written for another Airflow minor (3.1's airflow.sdk lacked CronDataIntervalTimetable).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_names_a_dag_file_that_fails_to_import(tmp_path):
    dags = tmp_path / "dags"
    shutil.copytree(REPO / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    seller = dags / "consentio_seller_daily.py"
    source = seller.read_text(encoding="utf-8").splitlines()
    source.append("from airflow.sdk import NoSuchTimetable  # noqa: E402")
    seller.write_text("\n".join(source) + "\n", encoding="utf-8")

    demo = [sys.executable, "-m", "airflow_provider_consentio.demo", "--workdir", str(tmp_path / "demo")]
    done = subprocess.run(
        [*demo, "--dags-folder", str(dags)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-4000:]
    assert f"DAG import error in {seller} (line {len(source)}):" in done.stderr, done.stderr
    assert "ImportError: cannot import name 'NoSuchTimetable' from 'airflow.sdk'" in done.stderr, done.stderr
    assert "DEMO FAILED: consentio_seller_daily could not be imported" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
