"""Refresh cost per record on PostgreSQL: what bounds the local pipeline's end-to-end rate.

    .venv/bin/python bench/bench_refresh.py                 # ~3 min; writes bench/results/refresh.*
    .venv/bin/python bench/bench_refresh.py --rounds 2 --no-write   # a quick look
    nice -n 10 .venv/bin/python bench/bench_refresh.py --base 1000000 --batches 10000 \
        --note "..."                                        # issue 15's case: 10,000 on ~1M

On a private PostgreSQL cluster (flu_monitor.local.postgres_server, the pipeline's settings):
1. applies sql/ (translated) and stores a base of BASE (--base) simulator events (the warehouse
   benchmark's events and raw records) with insert_raw + refresh(), as the ingester and
   refresher do;
2. for each batch size (the records a refresh finds when the refresher runs every 0.5 s at 20k
   and 100k events/s, and a 200k backlog): ROUNDS times, stores a batch and times refresh();
3. reports, per batch size, the median refresh: wall seconds, the PostgreSQL backend's CPU
   seconds (from /proc, so other load on the machine barely moves it), microseconds of backend CPU
   per record, and the seconds of each view.

The microseconds per record are the refresh's ceiling: one backend (refresh() is one transaction)
cannot refresh more than 1e6 / us_per_record records per second, whatever else runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from bench_warehouse import Feed, events_file, ingest  # same events, same raw records

from flu_monitor.local.postgres_server import PostgresServer
from flu_monitor.paths import ROOT
from flu_monitor.warehouse import postgres

BASE = 200_000
CHUNK = 100_000
BATCHES = (10_000, 50_000, 200_000)
RESULTS = ROOT / "bench" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def timed_refresh(conn: psycopg.Connection) -> dict:
    pid = conn.info.backend_pid
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    outcome = postgres.refresh(conn)
    return {
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": cpu_seconds(pid) - cpu0,
        "views": outcome.timings,
        "rows": outcome.rows,
    }


def measure(url: str, feed: Feed, batch: int, rounds: int) -> dict:
    runs = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(rounds):
            ingest(url, feed.take(batch))
            runs.append(timed_refresh(conn))
    median = sorted(runs, key=lambda r: r["cpu_s"])[len(runs) // 2]
    cpu = statistics.median(r["cpu_s"] for r in runs)
    return {
        "batch_records": batch,
        "rounds": rounds,
        "refresh_wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
        "refresh_cpu_s": round(cpu, 3),
        "cpu_us_per_record": round(cpu * 1e6 / batch, 1),
        "records_per_cpu_s": round(batch / cpu) if cpu else None,
        "view_s_of_median_round": {k: round(v, 3) for k, v in median["views"].items()},
        "view_rows_of_median_round": median["rows"],  # rows written (full views: all of them)
    }


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": next((x.split(":", 1)[1].strip() for x in cpuinfo if "model name" in x), "?"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", type=int, default=BASE, help="records stored before timing")
    parser.add_argument(
        "--batches", type=int, nargs="+", default=BATCHES, help="records per timed refresh"
    )
    parser.add_argument("--note", default="", help="the note column of refresh.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    path = events_file(args.base + args.rounds * sum(args.batches))
    results = {"machine": machine(), "base_records": args.base, "batches": [], "note": args.note}
    state = tempfile.mkdtemp(prefix="flu-monitor-bench-refresh-")
    try:
        with PostgresServer(state) as pg, psycopg.connect(pg.url, autocommit=True) as admin:
            results["machine"]["postgres"] = admin.execute("SHOW server_version").fetchone()[0]
            url = pg.create_database("bench")
            postgres.apply(url)
            feed = Feed(path)
            for _ in range(0, args.base, CHUNK):  # COPY in chunks: bounded client memory
                ingest(url, feed.take(min(CHUNK, args.base - feed.sent)))
            with psycopg.connect(url, autocommit=True) as conn:
                first = timed_refresh(conn)
                conn.execute("VACUUM ANALYZE")  # what autovacuum does soon after such a load
            results["first_refresh_of_base"] = {
                "wall_s": round(first["wall_s"], 2),
                "cpu_s": round(first["cpu_s"], 2),
                "views": {k: round(v, 3) for k, v in first["views"].items()},
            }
            print(f"base of {args.base:,}: first refresh {first['wall_s']:.1f} s", flush=True)
            for batch in args.batches:
                entry = measure(url, feed, batch, args.rounds)
                results["batches"].append(entry)
                print(json.dumps(entry), flush=True)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "refresh.json").write_text(json.dumps(results, indent=2) + "\n")
        _append_markdown(results)
        print(f"results: {RESULTS / 'refresh.md'}")


def _append_markdown(results: dict) -> None:
    table = RESULTS / "refresh.md"
    if not table.exists():
        table.write_text(
            "# Refresh cost per record (bench/bench_refresh.py)\n\n"
            "One `refresh()` after a batch of new raw records, on a base of records "
            "(200,000 unless the note says; median of the rounds). CPU = the PostgreSQL "
            "backend's CPU time; us/record = CPU per "
            "record, the refresh's ceiling is 1e6 / that records per second. Details in "
            "refresh.json.\n\n"
            "| date | machine (load before/after) | batch | wall | CPU | us/record "
            "| slowest views (s) | note |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |\n"
        )
    m = results["machine"]
    load = "/".join(str(x) for x in (m["load_before"][0], m["load_after"][0]))
    note = results["note"] or ""
    if results["base_records"] != BASE:
        note = f"base {results['base_records']:,}; {note}".rstrip("; ")
    lines = []
    for b in results["batches"]:
        views = sorted(b["view_s_of_median_round"].items(), key=lambda kv: -kv[1])[:3]
        lines.append(
            f"| {m['date']} | {m['cores']} cores {m['cpu']}, PostgreSQL {m.get('postgres')} "
            f"({load}) | {b['batch_records']:,} "
            f"| {b['refresh_wall_s']:.2f} s | {b['refresh_cpu_s']:.2f} s "
            f"| {b['cpu_us_per_record']:.1f} "
            f"| {', '.join(f'{k} {v:.2f}' for k, v in views)} | {note} |\n"
        )
    with open(table, "a", encoding="utf-8") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
