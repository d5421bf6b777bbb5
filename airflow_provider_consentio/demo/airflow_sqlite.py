"""SQLite as the metadata database of the demo's, `make airflow`'s and the end-to-end tests' Airflow.

Airflow opens some write transactions with a SAVEPOINT (``session.begin_nested()``; creating a backfill's runs does,
one per run). Python's sqlite3 sends no BEGIN before a SAVEPOINT, so SQLite starts a *deferred* transaction there:
it reads first and asks for the write lock only at the first INSERT. In WAL mode, which Airflow switches on, that
upgrade fails at once with SQLITE_BUSY_SNAPSHOT ("database is locked") whenever the scheduler, dag-processor or
api-server committed in between: the reader's snapshot is stale, so no busy timeout can help. With three services
committing every few seconds, `airflow backfill create` failed about one time in three.

The fix is SQLite's own: start such a transaction with BEGIN IMMEDIATE, which takes the write lock before reading,
so it queues behind the other writers for up to the busy timeout instead of failing. RELEASE then no longer commits
on its own either; the session's commit does, as SQLAlchemy intends.
"""

from __future__ import annotations

from typing import Any

# How long a writer waits for another's lock (SQLite's busy timeout). Python's default is 5 s, less than the
# scheduler can hold its lock on a busy two-core machine.
BUSY_TIMEOUT_SECONDS = 60.0

# For AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS, which names a dict by import path.
CONNECT_ARGS: dict[str, Any] = {"timeout": BUSY_TIMEOUT_SECONDS}

# Written to $AIRFLOW_HOME/config/airflow_local_settings.py, which every Airflow process imports before it opens the
# metadata database (the config folder is on sys.path).
LOCAL_SETTINGS = (
    "from airflow_provider_consentio.demo.airflow_sqlite import begin_savepoints_immediately\n"
    "\n"
    "__all__: list[str] = []  # no cluster policies here\n"
    "begin_savepoints_immediately()\n"
)


def begin_savepoints_immediately(engine: Any = None) -> None:
    """Make a SQLite SAVEPOINT opened outside a transaction start it with BEGIN IMMEDIATE (default: every engine)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    target = Engine if engine is None else engine
    if not event.contains(target, "savepoint", _begin_immediately):
        event.listen(target, "savepoint", _begin_immediately)


def _begin_immediately(connection: Any, name: str) -> None:
    if connection.dialect.name != "sqlite" or connection.dialect.driver != "pysqlite":
        return
    dbapi_connection = connection.connection.dbapi_connection
    if not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN IMMEDIATE")
