"""The SQLite lock the scheduler stack hit in `airflow backfill create`, reproduced with two connections, and its fix.

The backfill reads, then writes, inside a SAVEPOINT (as Airflow's backfill creation does); the scheduler commits in
between (as it does every few seconds). Deferred, the backfill's write fails at once whatever the busy timeout;
begun immediately, the scheduler's commit waits for the backfill's and both land.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from airflow_provider_consentio.demo.airflow_sqlite import CONNECT_ARGS, begin_savepoints_immediately


def engines(tmp_path):
    url = f"sqlite:///{tmp_path / 'airflow.db'}"
    backfill, scheduler = (create_engine(url, connect_args=dict(CONNECT_ARGS)) for _ in range(2))
    with backfill.begin() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")  # as Airflow sets it
        connection.exec_driver_sql("CREATE TABLE dag_run (id INTEGER PRIMARY KEY, run_id TEXT)")
        connection.exec_driver_sql("CREATE TABLE job (id INTEGER PRIMARY KEY, heartbeat INTEGER)")
    return backfill, scheduler


def heartbeat(scheduler):
    with scheduler.begin() as connection:
        connection.execute(text("INSERT INTO job (heartbeat) VALUES (1)"))


def create_run(backfill, between_read_and_write):
    with Session(backfill) as session:
        with session.begin_nested():
            session.execute(text("SELECT count(*) FROM dag_run")).scalar()  # does the run exist yet?
            between_read_and_write()
            session.execute(text("INSERT INTO dag_run (run_id) VALUES ('backfill__2025-03-04')"))
        session.commit()


def rows(engine):
    with engine.connect() as connection:
        runs = connection.execute(text("SELECT run_id FROM dag_run")).scalars().all()
        beats = connection.execute(text("SELECT count(*) FROM job")).scalar()
    return runs, beats


def test_a_deferred_savepoint_fails_at_once_when_another_connection_commits_between_its_read_and_write(tmp_path):
    backfill, scheduler = engines(tmp_path)
    started = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked"):
        create_run(backfill, lambda: heartbeat(scheduler))
    assert time.monotonic() - started < CONNECT_ARGS["timeout"] / 2  # no busy timeout would have helped


def test_a_savepoint_begun_immediately_makes_the_other_writer_wait_and_both_commit(tmp_path):
    backfill, scheduler = engines(tmp_path)
    begin_savepoints_immediately(backfill)
    errors: list[BaseException] = []

    def scheduler_heartbeat():
        try:
            heartbeat(scheduler)
        except BaseException as exc:  # reported below; a thread's exception is otherwise lost
            errors.append(exc)

    other_writer = threading.Thread(target=scheduler_heartbeat)

    def commit_meanwhile():
        other_writer.start()
        time.sleep(0.3)  # it is now waiting for the lock the backfill holds
        assert other_writer.is_alive()

    create_run(backfill, commit_meanwhile)
    other_writer.join(30)
    assert not errors
    assert rows(backfill) == (["backfill__2025-03-04"], 1)
