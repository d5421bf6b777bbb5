"""The ``check`` command's arguments (declared once, for Airflow's CLI and for ``python -m``) and its action:
the connection through the hook, then the check itself (check.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

CHECK_HELP = (
    "Log in, call every listing the operators read over a short recent window, and compare each answer with what "
    "the provider assumes (read-only). Exits 1 when a difference would break an operator, 2 when it cannot log in."
)
DEFAULT_SINCE = "1d"
CHECK_ARGS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--conn-id",), {"help": "the Consentio connection (default consentio_default)", "default": "consentio_default"}),
    (
        ("--since",),
        {"help": f"how far back the window starts: 2d, 12h, 1d12h (default {DEFAULT_SINCE})", "default": DEFAULT_SINCE},
    ),
)


def run_check(args: argparse.Namespace) -> None:
    """Run the check for ``args.conn_id`` and exit with its code; a bad argument or connection is one line too."""
    from airflow.sdk.log import mask_secret

    from airflow_provider_consentio.cli.check import check, parse_duration
    from airflow_provider_consentio.errors import ConsentioError
    from airflow_provider_consentio.hooks.consentio import ConsentioHook

    try:
        since = parse_duration(args.since)
        settings = ConsentioHook(args.conn_id).get_settings()
    except (ValueError, ConsentioError) as exc:
        print(f"consentio check: FAIL: {exc}", flush=True)
        sys.exit(2)
    except Exception as exc:  # a connection that does not exist: Airflow's own error type differs by minor
        print(f"consentio check: FAIL: cannot read connection {args.conn_id!r}: {exc}", flush=True)
        sys.exit(2)
    sys.exit(check(settings, since, sys.stdout, on_secret=mask_secret))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_consentio")
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help=CHECK_HELP, description=CHECK_HELP)
    for flags, options in CHECK_ARGS:
        check_parser.add_argument(*flags, **options)
    run_check(parser.parse_args(argv))
