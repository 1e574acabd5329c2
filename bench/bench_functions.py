"""Package figures of the custom-resource Lambdas: zipped size and cold import time.

Each function is built with the same recipe `sam build` runs (functions/<name>/Makefile, wheels
for python3.13/arm64, boto3 left to the runtime), zipped like a Lambda deployment package, and
imported in fresh interpreters laid out like Lambda's: the standard library, the bundle (no
bytecode cache: /var/task is read-only) and a byte-compiled copy of boto3 and its dependencies
(the runtime's own), nothing else (`python -S`). The time is that of `import app`, which includes
crhelper creating its three boto3 clients.

Goals (issue 5): < 5 MB zipped without boto3, < 300 ms import. The simulator (issue 11) bundles
numpy for arm64 and imports it on its first run, not in `import app`: its size is also given
unzipped (Lambda's limits: 50 MB zipped for a direct upload, 250 MB unzipped) and its first run
(`import app`, then one minute of events at the default scenario's busiest hour) is timed with
the same package versions built for this machine's Python, since arm64 wheels cannot run here.
Writes bench/results/functions.json and bench/results/functions.md.
"""

from __future__ import annotations

import compileall
import datetime as dt
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = [
    "sql_runner", "kafka_topic", "plugin_stager", "quicksight_publisher", "simulator",
    "alert_notifier",
]  # fmt: skip
RESULTS = REPO / "bench" / "results"
IMPORT_RUNS = 7
GOAL_ZIP_BYTES = 5 * 1024 * 1024
GOAL_IMPORT_MS = 300

# boto3's own import is the runtime's cost, paid by every Python Lambda that uses it; what the
# bundle adds is the import of app after boto3. Both are recorded.
# Measured as CPU time of the interpreter (time.process_time): on a shared machine the wall time
# also counts waiting for a core; the wall time is recorded beside it.
IMPORT_PROBE = (
    "import time; w0, c0 = time.perf_counter(), time.process_time(); import boto3; "
    "w1, c1 = time.perf_counter(), time.process_time(); import app; "
    "w2, c2 = time.perf_counter(), time.process_time(); "
    "print((c2 - c0) * 1000, (c2 - c1) * 1000, (w2 - w1) * 1000)"
)


# The simulator's first run: the function's imports plus one minute (speed 60: an hour of the
# default scenario on 2026-02-02, near the season's peak) computed, not produced.
FIRST_RUN_PROBE = (
    "import time, datetime as dt; c0 = time.process_time(); w0 = time.perf_counter(); "
    "import app; from flu_monitor.simulator.window import events_between, LiveClock; "
    "start, end = LiveClock(dt.datetime(2026, 2, 2, tzinfo=dt.UTC), 60).window("
    "dt.datetime(2026, 2, 2, 0, 16, tzinfo=dt.UTC)); "
    "sim = app.simulator('default', 1, dt.date(2026, 2, 2)); "
    "n = sum(map(len, events_between(sim, start, end))); "
    "print((time.process_time() - c0) * 1000, (time.perf_counter() - w0) * 1000, n)"
)


def build(name: str, out: Path, for_this_machine: bool = False) -> Path:
    target = out / (f"{name}-host" if for_this_machine else name)
    host = ["PIP_FOR_LAMBDA=--no-deps --no-compile"] if for_this_machine else []
    subprocess.run(
        [
            "make",
            "-s",
            "--makefile",
            str(REPO / "functions" / name / "Makefile"),
            f"build-{name}",
            f"ARTIFACTS_DIR={target}",
            *host,
        ],
        check=True,
        cwd=out,
        stdout=subprocess.DEVNULL,
    )
    return target


def unzipped_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def first_run_ms(directory: Path, runtime: Path) -> dict:
    """The simulator's imports and one minute computed, in cold interpreters (CPU and wall)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLU_MONITOR"))}
    env.update(AWS_REGION="us-east-1", PYTHONPATH=f"{directory}{os.pathsep}{runtime}")
    cpu, wall, events = [], [], 0
    for _ in range(IMPORT_RUNS):
        result = subprocess.run(
            [sys.executable, "-S", "-B", "-c", FIRST_RUN_PROBE],
            cwd=directory, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        c, w, events = result.stdout.strip().splitlines()[-1].split()
        cpu.append(float(c))
        wall.append(float(w))
    return {
        "first_run_cpu_ms_median": round(statistics.median(cpu), 1),
        "first_run_wall_ms_median": round(statistics.median(wall), 1),
        "first_run_events": int(events),
    }


def zipped_size(directory: Path, out: Path) -> tuple[int, int]:
    archive = out / f"{directory.name}.zip"
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in files:
            z.write(path, path.relative_to(directory))
    return archive.stat().st_size, len(files)


# What the python3.13 Lambda runtime provides besides the standard library.
RUNTIME_PACKAGES = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"]


def runtime_copy(out: Path) -> Path:
    """boto3 and its dependencies from this environment, byte-compiled, in their own folder."""
    runtime = out / "runtime"
    for name in RUNTIME_PACKAGES:
        origin = Path(importlib.util.find_spec(name).origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, runtime / name)
        else:
            runtime.mkdir(exist_ok=True)
            shutil.copy(origin, runtime / origin.name)
    compileall.compile_dir(runtime, quiet=1)
    return runtime


def import_times_ms(directory: Path, runtime: Path) -> tuple[list, list, list]:
    """CPU ms incl. boto3, CPU ms of the bundle's own import after boto3, and its wall ms."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLU_MONITOR"))}
    env.update(
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONPATH=f"{directory}{os.pathsep}{runtime}",
    )
    totals, own, wall = [], [], []
    for _ in range(IMPORT_RUNS):
        result = subprocess.run(
            [sys.executable, "-S", "-B", "-c", IMPORT_PROBE],
            cwd=directory,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        total, after_boto3, after_boto3_wall = result.stdout.strip().splitlines()[-1].split()
        totals.append(float(total))
        own.append(float(after_boto3))
        wall.append(float(after_boto3_wall))
    return totals, own, wall


def machine() -> dict:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "load_average_1min": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        runtime = runtime_copy(out)
        for name in FUNCTIONS:
            directory = build(name, out)
            size, files = zipped_size(directory, out)
            totals, own, wall = import_times_ms(directory, runtime)
            if name == "simulator":
                rows_extra = {"unzipped_bytes": unzipped_size(directory)}
                rows_extra |= first_run_ms(build(name, out, for_this_machine=True), runtime)
            else:
                rows_extra = {}
            rows.append(
                {
                    "function": name,
                    **rows_extra,
                    "zipped_bytes": size,
                    "files": files,
                    "import_ms_median": round(statistics.median(own), 1),
                    "import_ms_max": round(max(own), 1),
                    "import_wall_ms_median": round(statistics.median(wall), 1),
                    "import_with_boto3_ms_median": round(statistics.median(totals), 1),
                    "zip_goal_met": size < GOAL_ZIP_BYTES,
                    "import_goal_met": statistics.median(own) < GOAL_IMPORT_MS,
                }
            )
    result = {
        "benchmark": "custom-resource function packages (bench/bench_functions.py)",
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "notes": "Built for python3.13/arm64, measured with this machine's Python (the "
        "custom-resource wheels are pure Python except PyYAML's optional C extension, which "
        "falls back here); boto3 byte-compiled beside the bundle as in the Lambda runtime; the "
        f"bundle itself without bytecode; {IMPORT_RUNS} cold interpreters (python -S) per "
        "function. The import includes crhelper creating three boto3 clients (lambda, events, "
        "logs) at module load. Times are CPU time of the interpreter (the machine is shared; "
        "wall time also counts waiting for a core), wall time beside them.",
        "goals": {"zipped_bytes_below": GOAL_ZIP_BYTES, "import_ms_below": GOAL_IMPORT_MS},
        "functions": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "functions.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Custom-resource function packages",
        "",
        f"Measured {result['date']} on {result['machine']['cpu']} ({result['machine']['cores']} "
        f"cores, load average {result['machine']['load_average_1min']} while measuring), "
        f"Python {result['machine']['python']}, by `bench/bench_functions.py`.",
        "",
        result["notes"],
        "",
        "| function | zipped | files | cold `import app` after boto3, CPU (median / max) "
        "| same, wall (median) | incl. `import boto3`, CPU (median) | goals met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        met = "yes" if r["zip_goal_met"] and r["import_goal_met"] else "NO"
        lines.append(
            f"| {r['function']} | {r['zipped_bytes'] / 1024:.0f} KiB | {r['files']} | "
            f"{r['import_ms_median']:.0f} / {r['import_ms_max']:.0f} ms | "
            f"{r['import_wall_ms_median']:.0f} ms | "
            f"{r['import_with_boto3_ms_median']:.0f} ms | {met} |"
        )
    lines += [
        "",
        f"Goals: < {GOAL_ZIP_BYTES // (1024 * 1024)} MB zipped (without boto3), "
        f"< {GOAL_IMPORT_MS} ms import.",
    ]
    for r in rows:
        if "unzipped_bytes" in r:
            lines += [
                "",
                f"`{r['function']}` bundles numpy: {r['unzipped_bytes'] / 2**20:.1f} MiB "
                "unzipped (Lambda's limit: 250 MB). Its first run - `import app`, numpy, the "
                "simulator and one scheduled minute at speed 60 "
                f"({r['first_run_events']} events computed) - took "
                f"{r['first_run_cpu_ms_median']:.0f} ms CPU "
                f"({r['first_run_wall_ms_median']:.0f} ms wall, median), built with the same "
                "versions for this machine's Python.",
            ]
    (RESULTS / "functions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["zip_goal_met"] and r["import_goal_met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
