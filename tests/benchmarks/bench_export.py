"""Export benchmark: 200,000 orders from the sandbox, over 60 days and within 1 day (equal volume).

For each range it measures, each in a fresh child process (so peak RSS is that run's alone):
* export: ConsentioExportOrdersOperator.execute() (hook -> client -> parse -> atomic JSONL write); it records the
  sub-windows it requested;
* floor: a plain httpx loop that logs in and streams exactly those responses into a local file (download + write,
  the least any export can do);
* hand-written: what a user would otherwise write in a PythonOperator: the same requests, ``.json()`` per window
  and ``json.dumps`` per order into a JSONL file.
It prints throughput, the export/floor time ratio (target <= 1.5x), the hand-written/export ratio and peak memory,
and the 1-day/60-day peak-memory ratio (target <= 1.3x). Runs are interleaved and each is repeated; the best of the
repeats counts.

    .venv/bin/python tests/benchmarks/bench_export.py [--orders 200000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from airflow_provider_consentio.demo.stack import SandboxProcess  # noqa: E402

START = date(2025, 1, 1)
WINDOW = timedelta(hours=1)


def _replay(args: argparse.Namespace, write_response: Any) -> dict[str, Any]:
    """Log in and send exactly the export's requests; ``write_response(response, out)`` writes each answer."""
    import httpx

    started = time.perf_counter()
    with httpx.Client(base_url=f"{args.base_url}/v2/partner/{args.ws}", timeout=120) as http:
        token = http.post("/login", json={"api_key": args.key}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        windows = json.loads(Path(args.output + ".windows.json").read_text())
        target = Path(f"{args.output}.{args.child}")
        with target.open("wb") as out:
            for lower, upper in windows:
                params = {"from": lower, "to": upper, "kind": "sale"}
                with http.stream("GET", "/order", params=params, headers=headers) as response:
                    response.raise_for_status()
                    write_response(response, out)
    result = {"seconds": time.perf_counter() - started, "bytes": target.stat().st_size}
    target.unlink()
    return result


def child_floor(args: argparse.Namespace) -> dict[str, Any]:
    def stream_to_file(response: Any, out: Any) -> None:
        for chunk in response.iter_bytes():
            out.write(chunk)

    return _replay(args, stream_to_file)


def child_hand_written(args: argparse.Namespace) -> dict[str, Any]:
    def parse_and_dump(response: Any, out: Any) -> None:
        response.read()
        for order in response.json():
            out.write(json.dumps(order).encode() + b"\n")

    return _replay(args, parse_and_dump)


def child_export(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["AIRFLOW_CONN_CONSENTIO_DEFAULT"] = json.dumps(
        {"conn_type": "consentio", "login": args.ws, "password": args.key, "host": args.base_url}
    )
    from airflow_provider_consentio.operators.orders import ConsentioExportOrdersOperator

    output = Path(args.output)
    output.unlink(missing_ok=True)  # replacing the previous run's file would time the unlink, not the export
    operator = ConsentioExportOrdersOperator(
        task_id="bench_export", output_path=str(output), start=args.start, end=args.end, window_size=WINDOW, outlets=[]
    )
    client = operator.hook.get_conn()
    requested: list[tuple[str, str]] = []
    get_raw_orders = client.get_raw_orders

    def recording_get_raw_orders(lower: datetime, upper: datetime, **options: Any) -> Any:
        requested.append((lower.isoformat(), upper.isoformat()))
        return get_raw_orders(lower, upper, **options)

    client.get_raw_orders = recording_get_raw_orders  # type: ignore[method-assign]
    started = time.perf_counter()
    summary = operator.execute({})  # the window is explicit; no Asset outlets, so no run context is needed
    seconds = time.perf_counter() - started
    Path(args.output + ".windows.json").write_text(json.dumps(requested))
    return {"seconds": seconds, "count": summary["count"], "bytes": output.stat().st_size, "requests": len(requested)}


MODES = {"floor": child_floor, "export": child_export, "hand-written": child_hand_written}


def run_child(mode: str, target: dict[str, str], output: Path) -> dict[str, Any]:
    """Run one measurement in a fresh process; its peak RSS comes from wait4() for that process alone."""
    command = [sys.executable, str(HERE), "--child", mode, "--output", str(output)]
    command += [f"--{key}={value}" for key, value in target.items()]
    env = {
        **os.environ,
        "AIRFLOW_HOME": tempfile.mkdtemp(prefix="airflow-", dir=output.parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    stdout = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{mode} child failed with status {status}: {stdout}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def measure(orders: int, days: int, repeats: int, workdir: Path) -> dict[str, Any]:
    per_day = orders // days
    args = ("--start", START.isoformat(), "--days", str(days), "--orders-per-day", str(per_day))
    with SandboxProcess(workdir / f"sandbox-{days}d", extra_args=args, start_timeout=600) as sandbox:
        info = sandbox.info
        end = datetime(START.year, START.month, START.day, tzinfo=UTC) + timedelta(days=days)
        target = {
            "base-url": sandbox.base_url,
            "ws": str(info["workspace_id"]),
            "key": info["api_key"],
            "start": datetime(START.year, START.month, START.day, tzinfo=UTC).isoformat(),
            "end": end.isoformat(),
        }
        output = workdir / f"export-{days}d.jsonl"
        run_child("export", target, output)  # warm-up, and the sub-windows the floor and hand-written runs replay
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for _ in range(repeats):
            for mode in MODES:
                runs[mode].append(run_child(mode, target, output))
        best = {mode: min(results, key=lambda r: r["seconds"]) for mode, results in runs.items()}
        exported = sum(1 for _ in output.open("rb"))
        return {"days": days, "orders": best["export"]["count"], "lines": exported, **best}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=list(MODES))
    for name in ("output", "base-url", "ws", "key", "start", "end"):
        parser.add_argument(f"--{name}")
    args = parser.parse_args()
    if args.child:
        result = MODES[args.child](args)
        print(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        results = [measure(args.orders, days, args.repeats, Path(tmp)) for days in (60, 1)]
    print(f"\nExport benchmark: {args.orders:,} orders requested, 1-hour sub-windows, best of {args.repeats} runs")
    print(
        f"{'range':>7} {'orders':>8} {'MB':>7} {'floor s':>8} {'export s':>9} {'hand s':>7} {'export/floor':>12}"
        f" {'hand/export':>11} {'orders/s':>9} {'RSS floor MB':>12} {'RSS export MB':>13} {'RSS hand MB':>11}"
    )
    for r in results:
        floor, export, hand = r["floor"], r["export"], r["hand-written"]
        print(
            f"{r['days']:>6}d {r['orders']:>8,} {export['bytes'] / 1e6:>7.1f} {floor['seconds']:>8.2f}"
            f" {export['seconds']:>9.2f} {hand['seconds']:>7.2f} {export['seconds'] / floor['seconds']:>11.2f}x"
            f" {hand['seconds'] / export['seconds']:>10.2f}x {r['orders'] / export['seconds']:>9,.0f}"
            f" {floor['peak_rss_mb']:>12.1f} {export['peak_rss_mb']:>13.1f} {hand['peak_rss_mb']:>11.1f}"
        )
    memory_ratio = results[1]["export"]["peak_rss_mb"] / results[0]["export"]["peak_rss_mb"]
    worst_speed = max(r["export"]["seconds"] / r["floor"]["seconds"] for r in results)
    print(f"peak memory 1-day / 60-day export: {memory_ratio:.2f}x (target <= 1.3x)")
    print(f"slowest export / floor: {worst_speed:.2f}x (target <= 1.5x)")
    print("every exported file has one line per order:", all(r["lines"] == r["orders"] for r in results))
    return 0 if memory_ratio <= 1.3 and worst_speed <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
