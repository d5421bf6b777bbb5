"""HTTP client for the Consentio Partner API: plain httpx, no Airflow import.

:class:`ConsentioClient` (sync, used by operators) and :class:`AsyncConsentioClient` (used by triggers) share one
endpoint layer, one retry policy and one process-wide token cache; they differ only in how they wait for I/O.

* ``settings.py``: where the API is, timeouts, body limits; unsafe URLs refused.
* ``auth.py``: tokens (reused until shortly before their ``exp``), the token cache, secret redaction.
* ``rate_budget.py``: the workspace's request budget (rate and burst), shared by every client of a process and,
  through Redis, across processes; a 429's Retry-After pauses every sharer (the ``rate-limit`` extra).
* ``retry.py``: which failures are transient (429, 408, 5xx, timeouts, dropped connections), backoff with jitter
  bounded in count and time, and the exception each HTTP answer maps to.
* ``endpoints.py``: every path, parameter, body and answer shape of the Partner API (the wire assumptions).
* ``observer.py``: what the clients report of each request, retry and wait (no-op by default; the hook's goes to
  Airflow's metrics).
* ``sync_client.py`` / ``async_client.py``: the two clients, I/O only.

Error messages name the endpoint and HTTP status and never contain the API key or a token.
"""

from airflow_provider_consentio.client.async_client import AsyncConsentioClient
from airflow_provider_consentio.client.auth import PROCESS_TOKEN_CACHE, TokenCache
from airflow_provider_consentio.client.observer import ClientObserver
from airflow_provider_consentio.client.rate_budget import RateBudget, RateLimit, shared_budget
from airflow_provider_consentio.client.retry import RetryPolicy
from airflow_provider_consentio.client.settings import ENVIRONMENTS, ConsentioSettings, resolve_base_url
from airflow_provider_consentio.client.sync_client import ConsentioClient

__all__ = [
    "ENVIRONMENTS",
    "PROCESS_TOKEN_CACHE",
    "AsyncConsentioClient",
    "ClientObserver",
    "ConsentioClient",
    "ConsentioSettings",
    "RateBudget",
    "RateLimit",
    "RetryPolicy",
    "TokenCache",
    "resolve_base_url",
    "shared_budget",
]
