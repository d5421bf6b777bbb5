"""python -m airflow_provider_consentio.sandbox --port 8765 --seed 42: serve the sandbox until SIGTERM/Ctrl-C."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from airflow_provider_consentio.sandbox.app import Sandbox
from airflow_provider_consentio.sandbox.config import SandboxConfig
from airflow_provider_consentio.sandbox.drift import DRIFT_MODES
from airflow_provider_consentio.sandbox.server import bind, uvicorn_server


def main(argv: list[str] | None = None) -> int:
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_consentio.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--start", type=date.fromisoformat, default=defaults.start, help="first day of orders")
    parser.add_argument("--days", type=int, default=defaults.days, help="days of orders")
    parser.add_argument("--orders-per-day", type=int, default=defaults.orders_per_day)
    parser.add_argument("--token-ttl", type=int, default=defaults.token_ttl, help="access token lifetime (s)")
    parser.add_argument(
        "--drift",
        action="append",
        choices=DRIFT_MODES,
        default=[],
        help="answer the listings with an assumption changed (repeatable; see sandbox/drift.py)",
    )
    parser.add_argument("--drift-cap", type=int, default=defaults.drift_cap, help="records per answer when capped")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=defaults.rate_limit,
        help="requests/s the API admits (a leaky bucket; 0: off)",
    )
    parser.add_argument(
        "--rate-burst", type=int, default=defaults.rate_burst, help="the bucket's capacity (0: one second's worth)"
    )
    parser.add_argument("--ready-file", type=Path, help="write the base URL here once listening")
    args = parser.parse_args(argv)

    config = SandboxConfig(
        seed=args.seed,
        start=args.start,
        days=args.days,
        orders_per_day=args.orders_per_day,
        token_ttl=args.token_ttl,
        drift=tuple(args.drift),
        drift_cap=args.drift_cap,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
    )
    sandbox = Sandbox(config)
    notes = f" (drift: {', '.join(config.drift)})" if config.drift else ""
    if config.rate_limit:
        notes += f" (rate limit {config.rate_limit:g}/s, burst {config.rate_capacity})"
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    base_url = f"http://{host}:{port}"
    connection = {
        "conn_type": "consentio",
        "login": str(config.workspace_id),
        "password": config.api_key,
        "host": base_url,
    }
    print(
        f"Consentio sandbox on {base_url}: {len(sandbox.state.orders)} orders from {config.start}{notes}\n"
        f"  workspace ID  {config.workspace_id}\n"
        f"  API key       {config.api_key}\n"
        f"  OpenAPI       {base_url}/openapi.json\n"
        f"  admin API     {base_url}/_sandbox/info\n"
        f"AIRFLOW_CONN_CONSENTIO_DEFAULT='{json.dumps(connection)}'",
        flush=True,
    )
    if args.ready_file:
        args.ready_file.write_text(base_url)
    uvicorn_server(sandbox).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
