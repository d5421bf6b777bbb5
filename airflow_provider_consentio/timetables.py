"""The timetable the example DAGs use, importable with one line on every Airflow minor this provider supports.

``CronDataIntervalTimetable`` gives every run a real ``[start, end)`` interval (a day for ``"@daily"``), which an
export needs. It is ``airflow.sdk.CronDataIntervalTimetable`` on Airflow 3.2 and later, and
``airflow.timetables.interval.CronDataIntervalTimetable`` on 3.1, whose ``airflow.sdk`` lacks it.
"""

from airflow_provider_consentio.version_compat import CronDataIntervalTimetable

__all__ = ["CronDataIntervalTimetable"]
