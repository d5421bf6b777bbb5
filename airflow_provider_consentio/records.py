"""Moved to :mod:`airflow_provider_consentio.operators.base.inputs`; kept so that DAGs copied from the 0.1 examples,
which imported ``load_records`` from here, keep working."""

import warnings

from airflow_provider_consentio.operators.base.inputs import load_records

warnings.warn(
    "airflow_provider_consentio.records moved to airflow_provider_consentio.operators.base.inputs",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["load_records"]
