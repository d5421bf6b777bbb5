"""Parse cost of each example DAG file against a DAG of the same shape made only of EmptyOperators.

    .venv/bin/python tests/benchmarks/bench_dag_parse.py [--rounds 3] [--forks 10] [--reparse 20] [--no-bytecode]

For every file in dags/ the script writes a twin with the same dag_id, schedule, task ids and dependencies but only
EmptyOperators, and parses both the way the dag-processor does: a fresh interpreter imports airflow.sdk and the
DagBag, pre-imports the ``airflow.*`` modules the file names (``[dag_processor] parsing_pre_import_modules``), then
forks one child per parse; the child runs DagBag.process_file() on the file, so every module the parent did not
import (ours included) is imported cold. The child then re-parses the file ``--reparse`` times (modules cached:
the cost of a re-parse in a long-lived process). Target: example / empty-shape <= 1.2.

Two more twins locate the cost: "+ours" is the empty-shape twin plus the example's imports from
airflow_provider_consentio, "+imports" the twin plus every module-level import of the example. So
+ours - empty = what our modules cost, +imports - +ours = Airflow modules the example pulls in (TaskFlow's @task),
example - +imports = building the real tasks.

By default the interpreters may write bytecode into a private cache (PYTHONPYCACHEPREFIX), as an installed wheel
has .pyc files; ``--no-bytecode`` keeps this machine's PYTHONDONTWRITEBYTECODE=1, so each parse compiles our modules.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
TARGET_RATIO = 1.2
VARIANTS = ("example", "empty", "+ours", "+imports")

# One interpreter per (file, variant, round): pre-imports are per file in the real processor, so variants must not
# share a parent. The clock runs in the forked child only, so interpreter start-up is not measured.
SERVER = r"""
import json, os, statistics, sys, time
import airflow.sdk  # noqa: F401
import structlog
from airflow.dag_processing.dagbag import DagBag
from airflow.dag_processing.processor import _pre_import_airflow_modules

path, forks, reparse = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
_pre_import_airflow_modules(path, structlog.get_logger())
for _ in range(forks):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        bag = DagBag(dag_folder=path, collect_dags=False)
        start = time.perf_counter()
        bag.process_file(path, only_if_updated=False)
        cold = time.perf_counter() - start
        again = []
        for _ in range(reparse):
            start = time.perf_counter()
            bag.process_file(path, only_if_updated=False)
            again.append(time.perf_counter() - start)
        ok = bool(bag.dags) and not bag.import_errors
        result = {"cold": cold, "reparse": statistics.median(again) if again else 0.0, "ok": ok,
                  "errors": bag.import_errors}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        line = pipe.read().decode()
    os.waitpid(pid, 0)
    print(line, flush=True)
"""


def _schedule_source(dag: Any) -> tuple[str, list[str]]:
    """Python source for the DAG's schedule, and the airflow.sdk names it needs."""
    from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable

    timetable = dag.timetable
    name = type(timetable).__name__
    if isinstance(timetable, (CronDataIntervalTimetable, CronTriggerTimetable)):
        tz = getattr(timetable.timezone, "name", str(timetable.timezone))
        return f"{name}({timetable.expression!r}, timezone={tz!r})", [name]
    condition: Any = getattr(timetable, "asset_condition", None)
    if name == "AssetTriggeredTimetable" and type(condition).__name__ == "AssetAll":
        # A list schedule; nested any/all conditions are not needed by the examples.
        assets = [f"Asset(name={asset.name!r}, uri={asset.uri!r})" for asset in condition.objects]
        return f"[{', '.join(assets)}]", ["Asset"]
    if name == "NullTimetable":
        return "None", []
    raise NotImplementedError(f"{dag.dag_id}: no empty twin for a {name} schedule")


def empty_twin(dag: Any) -> str:
    """A DAG with ``dag``'s id, schedule, task ids and dependencies, every task an EmptyOperator."""
    schedule, names = _schedule_source(dag)
    lines = [
        "import pendulum",
        f"from airflow.sdk import {', '.join(sorted({'DAG', *names}))}",
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "",
        f"with DAG({dag.dag_id!r}, schedule={schedule}, start_date=pendulum.datetime(2025, 1, 1, tz='UTC'),"
        " catchup=False):",
    ]
    ids = {task.task_id: f"t{number}" for number, task in enumerate(dag.tasks)}
    lines += [f"    {var} = EmptyOperator(task_id={task_id!r})" for task_id, var in ids.items()]
    edges = [(upstream, task.task_id) for task in dag.tasks for upstream in sorted(task.upstream_task_ids)]
    lines += [f"    {ids[upstream]} >> {ids[downstream]}" for upstream, downstream in edges]
    return "\n".join(lines) + "\n"


def module_imports(source: str, only_ours: bool) -> str:
    """The module-level import statements of a DAG file (``from __future__`` first, as Python requires)."""
    statements = [node for node in ast.parse(source).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    if only_ours:
        statements = [
            node
            for node in statements
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airflow_provider_consentio")
        ]
    return "".join(ast.unparse(node) + "\n" for node in statements)


def _shape(dag: Any) -> tuple[Any, ...]:
    return (dag.dag_id, repr(dag.timetable), sorted((t.task_id, tuple(sorted(t.upstream_task_ids))) for t in dag.tasks))


def _parse(path: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path), collect_dags=False)
    bag.process_file(str(path), only_if_updated=False)
    if bag.import_errors or not bag.dags:
        raise SystemExit(f"{path} did not parse: {bag.import_errors}")
    return bag


def build_variants(workdir: Path) -> dict[str, dict[str, Path]]:
    """file name -> variant -> path; every twin is checked to have the example's shape."""
    files = {}
    for example in sorted(DAGS.glob("*.py")):
        dags = _parse(example).dags.values()
        twin = "\n\n".join(empty_twin(dag) for dag in dags)
        source = example.read_text(encoding="utf-8")
        texts = {
            "empty": twin,
            "+ours": module_imports(source, only_ours=True) + twin,
            "+imports": module_imports(source, only_ours=False) + twin,
        }
        variants = {"example": example}
        for variant, text in texts.items():
            folder = workdir / f"{example.stem}{variant.replace('+', '_')}"
            folder.mkdir()
            variants[variant] = folder / example.name
            variants[variant].write_text(text, encoding="utf-8")
            shapes = sorted(_shape(dag) for dag in _parse(variants[variant]).dags.values())
            if shapes != sorted(_shape(dag) for dag in dags):
                raise SystemExit(f"the {variant} twin of {example.name} has another shape")
        files[example.name] = variants
    return files


def run_server(path: Path, forks: int, reparse: int, env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-c", SERVER, str(path), str(forks), str(reparse)],
        env=env,
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or len(results) != forks or not all(result["ok"] for result in results):
        raise SystemExit(f"parsing {path} failed: {[r.get('errors') for r in results]}\n{done.stderr[-3000:]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="fresh interpreters per file and variant")
    parser.add_argument("--forks", type=int, default=10, help="forked parses per interpreter")
    parser.add_argument("--reparse", type=int, default=20, help="in-process re-parses per forked child")
    parser.add_argument("--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE (compile each time)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="consentio-bench-parse-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    os.environ["AIRFLOW_HOME"] = str(workdir / "airflow")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # Parsing must not need a connection: none is defined for the children.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    if not args.no_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    files = build_variants(workdir)

    medians: dict[tuple[str, str, str], float] = {}
    for name, variants in files.items():
        for path in variants.values():
            run_server(path, 1, 0, env)  # warm-up: bytecode and OS page caches; not measured
        samples: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
        for _ in range(args.rounds):
            # Interleaved rounds spread machine noise evenly over the variants.
            for variant in VARIANTS:
                samples[variant] += run_server(variants[variant], args.forks, args.reparse, env)
        for variant, results in samples.items():
            for kind in ("cold", "reparse"):
                medians[name, variant, kind] = statistics.median(result[kind] for result in results) * 1000

    mode = "no bytecode cache" if args.no_bytecode else "bytecode cached"
    print(
        f"DAG parse ms, median of {args.rounds * args.forks} forked parses ({mode});"
        f" re-parse: median of {args.reparse} in each child"
    )
    print(f"{'file':<28} {'parse':<8} {'example':>8} {'empty-shape':>12} {'ratio':>7} {'+ours':>7} {'+imports':>9}")
    worst = 0.0
    for name in files:
        for kind, label in (("cold", "cold"), ("reparse", "re-parse")):
            example, empty, ours, imports = (medians[name, variant, kind] for variant in VARIANTS)
            ratio = example / empty
            worst = max(worst, ratio)
            print(
                f"{name:<28} {label:<8} {example:>8.1f} {empty:>12.1f} {ratio:>6.2f}x {ours:>7.1f} {imports:>9.1f}"
                + ("" if ratio <= TARGET_RATIO else f"  > {TARGET_RATIO}x")
            )
    print(f"worst ratio {worst:.2f}x (target <= {TARGET_RATIO}x)")


if __name__ == "__main__":
    main()
