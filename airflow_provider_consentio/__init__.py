"""Apache Airflow provider for the Consentio Partner API.

DAG files import this package at parse time, so nothing heavy is imported here.
"""

__version__ = "0.1.0"
