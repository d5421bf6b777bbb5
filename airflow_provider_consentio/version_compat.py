"""Every difference between the Airflow minors this provider supports (``apache-airflow>=3.1``), in one place.

As in the apache providers' ``version_compat.py``: code elsewhere imports the name from here instead of testing the
version itself, so dropping a minor means deleting its branch here. DAG files import this module (through
``airflow_provider_consentio.timetables``) at parse time: nothing heavy at module level.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    from airflow import __version__
    from packaging.version import Version

    airflow_version = Version(__version__)
    return airflow_version.major, airflow_version.minor, airflow_version.micro


AIRFLOW_V_3_2_PLUS = get_base_airflow_version_tuple() >= (3, 2, 0)
# The task state store (durable exports) and the asset state store (the event trigger's watermark) are new in 3.3.
AIRFLOW_V_3_3_PLUS = get_base_airflow_version_tuple() >= (3, 3, 0)

# The task SDK gained its own timetables in 3.2; 3.1 has only the scheduler's, which its DAGs accept as they are.
if AIRFLOW_V_3_2_PLUS:
    from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable
else:
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[assignment]

# The exception that fails a task without its retries moved to the task SDK; 3.1 has only airflow.exceptions'.
try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]  # noqa: F401 (3.1)

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

# Names for tests and tools, not DAG files: each import pulls in half of Airflow's core, so it happens on first use.
# name -> (module on 3.2+, module and name on 3.1)
_LAZY: dict[str, tuple[str, str, str]] = {
    "DagBag": ("airflow.dag_processing.dagbag", "airflow.models.dagbag", "DagBag"),
    "DagSerialization": (
        "airflow.serialization.serialized_objects",
        "airflow.serialization.serialized_objects",
        "SerializedDAG",
    ),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, old_module, old_name = _LAZY[name]
    if AIRFLOW_V_3_2_PLUS:
        return getattr(importlib.import_module(module), name)
    return getattr(importlib.import_module(old_module), old_name)


def airflow_stats() -> Any:
    """Airflow's metrics facade (``Stats.incr``, ``Stats.timing``): the task SDK's where it has one (3.3); 3.1 has
    only ``airflow.stats``, which 3.3 keeps as a shim that warns on import."""
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:
        from airflow.stats import Stats  # 3.1
    return Stats


def starlette_deprecation_warning() -> str | None:
    """Starlette's deprecation warning class, by its dotted name; None in the older starlette Airflow 3.1 installs."""
    import starlette.exceptions

    name = "StarletteDeprecationWarning"
    return f"starlette.exceptions.{name}" if hasattr(starlette.exceptions, name) else None


__all__ = [
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DagBag",
    "DagSerialization",
    "airflow_stats",
    "starlette_deprecation_warning",
]
