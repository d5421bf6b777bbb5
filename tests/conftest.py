"""Suite-wide set-up: an isolated Airflow home (before anything imports airflow) and hypothesis settings."""

import os
import tempfile
from pathlib import Path

from hypothesis import settings

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="consentio-tests-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__PARALLELISM", "4")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parents[1] / "dags"))

# Shared CI machines are noisy: hypothesis' per-example deadline would make timing, not logic, fail tests.
settings.register_profile("consentio", deadline=None, max_examples=100)
settings.load_profile("consentio")
