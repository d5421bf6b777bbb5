"""A local emulator of the Consentio Partner API, for tests, benchmarks, the demo and your own DAG development.

    python -m airflow_provider_consentio.sandbox --port 8765 --seed 42

or in-process: ``with SandboxServer(SandboxConfig(seed=42)) as server: server.base_url``.
"""

from airflow_provider_consentio.sandbox.config import SandboxConfig
from airflow_provider_consentio.sandbox.server import SandboxServer

__all__ = ["SandboxConfig", "SandboxServer"]
