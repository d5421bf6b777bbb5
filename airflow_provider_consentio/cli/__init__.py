"""The provider's commands: ``airflow consentio check`` (Airflow 3.3+, through the provider info's ``cli`` list)
and ``python -m airflow_provider_consentio check`` (every supported minor).

Airflow imports this module to build its command line, for every ``airflow`` command: it imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_consentio.cli.command import CHECK_ARGS, CHECK_HELP


def get_cli_commands() -> list[Any]:
    """The ``consentio`` command group, in the shape ``ProvidersManager.cli_command_functions`` expects."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    return [
        GroupCommand(
            name="consentio",
            help="Consentio Partner API: check a connection against what the provider assumes",
            subcommands=(
                ActionCommand(
                    name="check",
                    help=CHECK_HELP,
                    func=lazy_load_command("airflow_provider_consentio.cli.command.run_check"),
                    args=tuple(Arg(flags, **options) for flags, options in CHECK_ARGS),
                ),
            ),
        )
    ]
