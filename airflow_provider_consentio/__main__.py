"""``python -m airflow_provider_consentio check [--conn-id ID] [--since DURATION]``: see cli/check.py."""

from airflow_provider_consentio.cli.command import main

if __name__ == "__main__":
    main()
