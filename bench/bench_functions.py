"""Package figures of the custom-resource Lambdas: zipped size and cold import time.

Each function is built with the same recipe `sam build` runs (functions/<name>/Makefile, wheels
for python3.13/arm64, boto3 left to the runtime), zipped like a Lambda deployment package, and
imported in fresh interpreters laid out like Lambda's: the standard library, the bundle (no
bytecode cache: /var/task is read-only) and a byte-compiled copy of boto3 and its dependencies
(the runtime's own), nothing else (`python -S`). The time is that of `import app`, which includes
crhelper creating its three boto3 clients.

Goals (issue 5): < 5 MB zipped without boto3, < 300 ms import.
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
FUNCTIONS = ["sql_runner", "kafka_topic", "plugin_stager", "quicksight_publisher"]
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


def build(name: str, out: Path) -> Path:
    target = out / name
    subprocess.run(
        [
            "make",
            "-s",
            "--makefile",
            str(REPO / "functions" / name / "Makefile"),
            f"build-{name}",
            f"ARTIFACTS_DIR={target}",
        ],
        check=True,
        cwd=out,
        stdout=subprocess.DEVNULL,
    )
    return target


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
            rows.append(
                {
                    "function": name,
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
        "notes": "Built for python3.13/arm64, measured with this machine's Python (the wheels are "
        "pure Python except PyYAML's optional C extension, which falls back here); boto3 "
        "byte-compiled beside the bundle as in the Lambda runtime; the bundle itself without "
        f"bytecode; {IMPORT_RUNS} cold interpreters (python -S) per function. The import includes "
        "crhelper creating three boto3 clients (lambda, events, logs) at module load. Times are "
        "CPU time of the interpreter (the machine is shared; wall time also counts waiting for a "
        "core), wall time beside them.",
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
    (RESULTS / "functions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["zip_goal_met"] and r["import_goal_met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
