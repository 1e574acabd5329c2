"""Warehouse benchmark: refresh cost and dashboard query latency on PostgreSQL at 100k/1M/5M cases.

    .venv/bin/python bench/bench_warehouse.py            # ~15 min; writes bench/results/warehouse.*
    .venv/bin/python bench/bench_warehouse.py --sizes 100000 --rounds 3   # a quick look

What it does, on a private PostgreSQL cluster (flu_monitor.local.postgres_server):
1. Generates events once with the simulator (`flu-monitor simulate --seed 7`), cached under
   .state/bench/ — more cases means more simulated history, as in a live system.
2. Applies sql/ (translated) and ingests the events through insert_raw + refresh() in 250k-record
   chunks (the ingester's path), growing one database to each size in turn.
3. At each size: ingests a batch of 10,000 new records and times refresh() — ROUNDS times — then
   times an idle refresh; at 1M and 5M runs every dashboard query (built from
   quicksight/dashboard.yaml by flu_monitor.dashboard.queries, exactly as the dashboard does) 50
   times and reports p50/p95.
Goals (issue 3): dashboard p95 <= 100 ms at 1M; refresh at 5M <= 2 x refresh at 1M.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import psycopg

from flu_monitor.dashboard import queries
from flu_monitor.dashboard_spec import load as load_spec
from flu_monitor.local.postgres_server import PostgresServer
from flu_monitor.paths import ROOT, STATE_DIR
from flu_monitor.warehouse import postgres

SEED = 7
CHUNK = 250_000
BATCH = 10_000
RESULTS = ROOT / "bench" / "results"


def events_file(count: int) -> Path:
    path = STATE_DIR / "bench" / f"events-seed{SEED}-{count}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"simulating {count:,} events -> {path}", flush=True)
        subprocess.run(
            [
                str(Path(sys.executable).with_name("flu-monitor")),
                "simulate",
                "--seed",
                str(SEED),
                "--count",
                str(count),
                "--sink",
                "jsonl",
                "--out",
                str(path),
            ],
            check=True,
        )
    return path


class Feed:
    """Raw records from the events file, with Kafka-like partition/offset (6 partitions)."""

    def __init__(self, path: Path):
        self._lines = (line.rstrip(b"\n") for line in open(path, "rb"))  # noqa: SIM115
        self.sent = 0

    def take(self, n: int) -> list[tuple]:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = [
            ((self.sent + i) % 6, (self.sent + i) // 6, now, None, line)
            for i, line in enumerate(islice(self._lines, n))
        ]
        self.sent += len(rows)
        return rows


def ingest(url: str, rows: list[tuple]) -> None:
    with psycopg.connect(url) as conn:
        postgres.insert_raw(conn, rows)


def grow_to(url: str, feed: Feed, target: int) -> float:
    start = time.perf_counter()
    while feed.sent < target:
        ingest(url, feed.take(min(CHUNK, target - feed.sent)))
        postgres.refresh(url)
    return time.perf_counter() - start


def time_refreshes(url: str, feed: Feed, rounds: int) -> dict:
    runs = []
    for _ in range(rounds):
        ingest(url, feed.take(BATCH))
        runs.append(postgres.refresh(url))
    seconds = [r.seconds for r in runs]
    median_run = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    idle = postgres.refresh(url)
    return {
        "batch_records": BATCH,
        "rounds": rounds,
        "refresh_median_s": round(statistics.median(seconds), 4),
        "refresh_max_s": round(max(seconds), 4),
        "refresh_idle_s": round(idle.seconds, 4),
        "per_view_s_of_median_round": {k: round(v, 4) for k, v in median_run.timings.items()},
    }


def dashboard_latency(url: str, repeats: int = 50) -> dict:
    spec = load_spec()
    with psycopg.connect(url, autocommit=True) as conn:
        latest = conn.execute(queries.latest_day_query(spec, "dates")).fetchone()[0]
        values = {"state": ["NY", "NJ", "PA"], "dates": queries.default_range(latest, 60)}
        work = {"latest_day": (queries.latest_day_query(spec, "dates"), ())}
        for name in spec.visuals:
            q = queries.build(spec, name, values)
            work[name] = (q.text, q.params)
        work["flu_rejected_records (ops)"] = ("SELECT * FROM flu_rejected_records", ())
        out = {}
        for name, (text, params) in work.items():
            conn.execute(text, params).fetchall()  # warm
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                conn.execute(text, params).fetchall()
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            out[name] = {
                "p50_ms": round(times[len(times) // 2], 2),
                "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
            }
    return out


def table_sizes(url: str) -> dict:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, n_live_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables "
            "WHERE relname IN ('flu_cases_stream', 'flu_case_records', 'flu_cases', "
            "'flu_daily_county_counts', 'mv_daily_county_cases', 'mv_county_alerts')"
        ).fetchall()
        days = conn.execute("SELECT MIN(day), MAX(day) FROM flu_daily_county_counts").fetchone()
    return {
        "tables": {name: {"rows": n, "mb": round(size / 2**20, 1)} for name, n, size in rows},
        "report_days": [str(days[0]), str(days[1])],
    }


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in cpuinfo if "model name" in x), "unknown")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem = next(x.split()[1] for x in meminfo if x.startswith("MemTotal"))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(mem) / 2**20, 1),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    path = events_file(sizes[-1] + (len(sizes) * args.rounds + 2) * BATCH)
    state = tempfile.mkdtemp(prefix="flu-monitor-bench-")
    results = {"machine": machine(), "goals": {}, "sizes": {}}
    try:
        with PostgresServer(state) as pg:
            url = pg.create_database("bench")
            with psycopg.connect(url) as conn:
                results["machine"]["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
            postgres.apply(url)
            feed = Feed(path)
            for size in sizes:
                took = grow_to(url, feed, size)
                print(f"{size:,} records ingested ({took:.0f} s)", flush=True)
                entry = {"bulk_ingest_s": round(took, 1), "load_before": _load()}
                entry.update(time_refreshes(url, feed, args.rounds))
                entry["load_after"] = _load()  # 1-minute load average: the machine is shared
                entry["cases"] = (
                    psycopg.connect(url).execute("SELECT count(*) FROM flu_cases").fetchone()[0]
                )
                if size >= 1_000_000:
                    entry["dashboard_queries"] = dashboard_latency(url)
                entry.update(table_sizes(url))
                results["sizes"][str(size)] = entry
                print(
                    json.dumps({k: v for k, v in entry.items() if "per_view" not in k}, indent=1),
                    flush=True,
                )
    finally:
        shutil.rmtree(state, ignore_errors=True)
    _goals(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "warehouse.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "warehouse.md").write_text(_markdown(results))
    print(f"results: {args.out / 'warehouse.md'}")


def _goals(results: dict) -> None:
    sizes = results["sizes"]
    if "1000000" in sizes:
        worst = max(
            q["p95_ms"] for n, q in sizes["1000000"]["dashboard_queries"].items() if "ops" not in n
        )
        results["goals"]["dashboard_p95_ms_at_1M"] = {
            "worst": worst,
            "goal": 100,
            "met": worst <= 100,
        }
    if "1000000" in sizes and "5000000" in sizes:
        ratio = sizes["5000000"]["refresh_median_s"] / sizes["1000000"]["refresh_median_s"]
        results["goals"]["refresh_5M_over_1M"] = {
            "ratio": round(ratio, 2),
            "goal": 2.0,
            "met": ratio <= 2.0,
        }


def _markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Warehouse benchmark (PostgreSQL, local refresh)",
        "",
        f"Run {m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, PostgreSQL "
        f"{m.get('postgres')}, Python {m['python']}. Produced by `bench/bench_warehouse.py`; "
        "raw figures in `warehouse.json`.",
        "",
        "Refresh = `flu_monitor.warehouse.postgres.refresh()` after a batch of "
        f"{BATCH:,} new raw records (median of the rounds); idle = nothing new.",
        "",
        "| records | cases | report days | refresh (median) | refresh (max) | idle refresh |"
        " bulk ingest | load (1 min) before / after the refreshes |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for size, e in results["sizes"].items():
        lines.append(
            f"| {int(size):,} | {e['cases']:,} | {e['report_days'][0]} .. {e['report_days'][1]} "
            f"| {e['refresh_median_s']:.3f} s | {e['refresh_max_s']:.3f} s | "
            f"{e['refresh_idle_s']:.3f} s | {e['bulk_ingest_s']:.0f} s "
            f"| {e.get('load_before', '?')} / {e.get('load_after', '?')} |"
        )
    for size, e in results["sizes"].items():
        if "dashboard_queries" in e:
            lines += [
                "",
                f"## Dashboard queries at {int(size):,} records (50 runs each)",
                "",
                "| query | p50 | p95 |",
                "| --- | ---: | ---: |",
            ]
            for name, q in e["dashboard_queries"].items():
                lines.append(f"| {name} | {q['p50_ms']:.1f} ms | {q['p95_ms']:.1f} ms |")
    lines += ["", "## Where a refresh spends its time (median round, seconds)", ""]
    header = list(results["sizes"])
    lines.append("| view | " + " | ".join(f"{int(s):,}" for s in header) + " |")
    lines.append("| --- |" + " ---: |" * len(header))
    views = list(next(iter(results["sizes"].values()))["per_view_s_of_median_round"])
    for view in views:
        cells = [f"{results['sizes'][s]['per_view_s_of_median_round'][view]:.3f}" for s in header]
        lines.append(f"| {view} | " + " | ".join(cells) + " |")
    lines += ["", "## Goals", ""]
    for name, goal in results["goals"].items():
        lines.append(f"- {name}: {json.dumps(goal)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
