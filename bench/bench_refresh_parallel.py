"""One refresh session against independent views refreshed in parallel sessions (issue 15).

    nice -n 10 .venv/bin/python bench/bench_refresh_parallel.py          # 10,000 on 1M, ~8 min
    .venv/bin/python bench/bench_refresh_parallel.py --base 200000 --rounds 2 --no-write

A bench-only driver, not the refresher: it measures whether refreshing the views of one
dependency level in separate PostgreSQL sessions, concurrently, beats postgres.refresh()'s one
session and one transaction, on a private cluster with the pipeline's settings:

1. stores a base of BASE records (bench_refresh's setup: the warehouse benchmark's events,
   insert_raw + refresh(), VACUUM ANALYZE);
2. reads the refresh plan apply() stored and derives each relation's inputs (its source and the
   relations it reads) and dependency level (0: the stream; a relation one above its highest
   input);
3. for each round, for each mode (rotated between rounds, so load that comes and goes falls on
   every mode), stores a batch of new records and times the refresh:
   - one:   postgres.refresh() (one session, one transaction), the per-relation seconds kept;
   - levels: the relations of a level in sessions of their own, concurrently (a thread per
            session), each in its own transaction committed when the whole level is done; the
            next level starts after (a session sees another's rows only once committed);
   - levels-2pc: the same, each session ending with PREPARE TRANSACTION and the coordinator
            committing the level with COMMIT PREPARED (atomic on a crash per level, not for
            readers: each COMMIT PREPARED is a commit of its own);
   - dag:   each relation starts as soon as its inputs committed, on a pool of sessions (the
            most parallel schedule; a commit per relation);
   wall time, and the CPU of every backend the mode used (from /proc: the load of other
   processes barely moves it), and, for the parallel modes, how long readers could see a
   half-refreshed cascade (first commit to last);
4. checks the result: every aggregate, days and full view equals its SELECT recomputed, and
   `flu_cases` holds one row per `case_id` seen;
5. reports the critical path: per relation, the median seconds of its step in the one-session
   rounds, the longest chain of dependent steps against the sum of all steps — what any number
   of sessions could save at most.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from bench_refresh import CHUNK, RESULTS, cpu_seconds, machine
from bench_warehouse import Feed, events_file, ingest

from flu_monitor.local.postgres_server import PostgresServer
from flu_monitor.warehouse import postgres
from flu_monitor.warehouse.objects import Kind

MODES = ("one", "levels", "levels-2pc", "dag")
Plan = list[postgres.PlannedView]


def read_plan(conn: psycopg.Connection[Any]) -> tuple[Plan, dict[str, set[str]]]:
    """The refresh plan in order, and each relation's inputs among the plan's relations."""
    rows = conn.execute(
        "SELECT mv_name, kind, source, reads, refresh_steps, reach, day_steps "
        f"FROM {postgres.PLAN_TABLE} ORDER BY position"
    ).fetchall()
    plan = [postgres.PlannedView(n, Kind(k), s, r, st, re, d) for n, k, s, r, st, re, d in rows]
    names = {v.name for v in plan}
    # The stream reads the topic (its stand-in `msk.flu_cases`), none of the plan's relations.
    inputs = {
        v.name: set() if v.kind is Kind.STREAM else ({v.source} | set(v.reads)) & names
        for v in plan
    }
    return plan, inputs


def levels_of(plan: Plan, inputs: dict[str, set[str]]) -> dict[str, int]:
    level: dict[str, int] = {}
    for v in plan:  # the plan is in dependency order
        level[v.name] = 1 + max((level[i] for i in inputs[v.name]), default=-1)
    return level


def critical_path(plan: Plan, inputs: dict[str, set[str]], seconds: dict[str, float]) -> dict:
    """The longest chain of dependent steps (by their seconds) against the sum of all."""
    finish: dict[str, float] = {}
    before: dict[str, str | None] = {}
    for v in plan:
        prior = max(inputs[v.name], key=lambda i: finish[i], default=None)
        before[v.name] = prior
        finish[v.name] = (finish[prior] if prior else 0.0) + seconds.get(v.name, 0.0)
    end: str | None = max(finish, key=lambda n: finish[n])
    chain = []
    while end is not None:
        chain.append(end)
        end = before[end]
    total = sum(seconds.get(v.name, 0.0) for v in plan)
    return {
        "chain": chain[::-1],
        "chain_s": round(max(finish.values()), 3),
        "all_steps_s": round(total, 3),
        "off_the_chain_s": round(total - max(finish.values()), 3),
    }


class Sessions:
    """A coordinator connection and `width` worker sessions (autocommit: explicit BEGIN)."""

    def __init__(self, url: str, width: int):
        self.coordinator = psycopg.connect(url, autocommit=True)
        self.workers = [psycopg.connect(url, autocommit=True) for _ in range(width)]
        self.free = list(self.workers)
        self.lock = threading.Lock()

    def backends(self) -> list[int]:
        return [c.info.backend_pid for c in [self.coordinator, *self.workers]]

    def take(self) -> psycopg.Connection[Any]:
        with self.lock:
            return self.free.pop()

    def give(self, conn: psycopg.Connection[Any]) -> None:
        with self.lock:
            self.free.append(conn)

    def close(self) -> None:
        for c in [self.coordinator, *self.workers]:
            c.close()


class Run:
    """One parallel refresh: the shared state postgres._refresh_one reads and writes."""

    def __init__(self, sessions: Sessions, plan: Plan, two_phase: bool, tag: str):
        self.sessions, self.plan, self.two_phase, self.tag = sessions, plan, two_phase, tag
        self.progress = postgres._Progress()
        rows = sessions.coordinator.execute(
            f"SELECT mv_name, watermark FROM {postgres.STATE_TABLE}"
        ).fetchall()
        self.state: dict[str, int] = dict(rows)
        self.seconds: dict[str, float] = {}
        self.commits: list[float] = []  # when each transaction became visible

    def step(self, view: postgres.PlannedView, conn: psycopg.Connection[Any]) -> str | None:
        """Refresh one relation in `conn`'s own transaction, left open (or prepared: its gid)."""
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SET LOCAL jit = off")  # as refresh() does
            written = postgres._refresh_one(cur, view, self.state, self.progress)
            gid = None
            if self.two_phase:
                gid = f"{self.tag}-{view.name}"
                cur.execute(f"PREPARE TRANSACTION '{gid}'")
        self.seconds[view.name] = time.perf_counter() - t0
        if written:
            self.progress.changed.add(view.name)
        return gid

    def finish(self, conn: psycopg.Connection[Any], gid: str | None) -> None:
        if gid is None:
            conn.execute("COMMIT")
        else:
            self.sessions.coordinator.execute(f"COMMIT PREPARED '{gid}'")
        self.commits.append(time.perf_counter())


def refresh_by_levels(run: Run, level: dict[str, int], pool: concurrent.futures.Executor) -> None:
    """Each level's relations concurrently, one session each; the level commits, then the next."""
    for n in sorted(set(level.values())):
        views = [v for v in run.plan if level[v.name] == n]
        conns = [run.sessions.workers[i] for i in range(len(views))]
        gids = list(pool.map(run.step, views, conns))
        for conn, gid in zip(conns, gids, strict=True):
            run.finish(conn, gid)


def refresh_as_dag(
    run: Run, inputs: dict[str, set[str]], pool: concurrent.futures.Executor
) -> None:
    """Each relation as soon as its inputs committed, on a free session; commits when done."""
    done: set[str] = set()
    running: dict[concurrent.futures.Future[None], str] = {}
    waiting = list(run.plan)

    def one(view: postgres.PlannedView) -> None:
        conn = run.sessions.take()
        try:
            run.finish(conn, run.step(view, conn))
        finally:
            run.sessions.give(conn)

    while waiting or running:
        for v in [v for v in waiting if inputs[v.name] <= done]:
            waiting.remove(v)
            running[pool.submit(one, v)] = v.name
        finished, _ = concurrent.futures.wait(running, return_when="FIRST_COMPLETED")
        for f in finished:
            f.result()
            done.add(running.pop(f))


def timed(sessions: Sessions, action: Callable[[], dict[str, float] | None]) -> dict[str, Any]:
    pids = sessions.backends()
    cpu0, wall0 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
    seconds = action()
    wall = time.perf_counter() - wall0
    return {"wall_s": wall, "cpu_s": sum(cpu_seconds(p) for p in pids) - cpu0, "steps": seconds}


def one_round(
    mode: str,
    sessions: Sessions,
    plan: Plan,
    inputs: dict[str, set[str]],
    level: dict[str, int],
    pool: concurrent.futures.Executor,
    tag: str,
) -> dict[str, Any]:
    window: list[float] = []

    def action() -> dict[str, float]:
        if mode == "one":
            return postgres.refresh(sessions.coordinator).timings  # VACUUMs the stand-in too
        sessions.coordinator.execute("SELECT pg_advisory_lock(%s)", (postgres.LOCK_KEY,))
        try:
            run = Run(sessions, plan, two_phase=mode == "levels-2pc", tag=tag)
            if mode == "dag":
                refresh_as_dag(run, inputs, pool)
            else:
                refresh_by_levels(run, level, pool)
        finally:
            sessions.coordinator.execute("SELECT pg_advisory_unlock(%s)", (postgres.LOCK_KEY,))
        window.append(max(run.commits) - min(run.commits))
        t0 = time.perf_counter()
        sessions.coordinator.execute(f"VACUUM {postgres.stand_in_table()}")  # as refresh()
        return {**run.seconds, "stand-in vacuum": time.perf_counter() - t0}

    out = timed(sessions, action)
    if window:
        out["half_refreshed_s"] = window[0]
    return out


def check(url: str) -> list[str]:
    """What differs from a recompute: aggregate, days and full views against their SELECT, and
    flu_cases against the case_ids seen (one case each). Empty when all is right."""
    _, objects = postgres._compiled()
    wrong = []
    with psycopg.connect(url, autocommit=True) as conn:
        for o in objects.values():
            if o.kind in (Kind.AGGREGATE, Kind.DAYS, Kind.FULL) and o.query:
                cols = ", ".join(o.columns)
                (n,) = conn.execute(
                    f"SELECT count(*) FROM ((SELECT {cols} FROM {o.name} EXCEPT ALL "
                    f"SELECT {cols} FROM ({o.query}) q) UNION ALL (SELECT {cols} FROM "
                    f"({o.query}) q EXCEPT ALL SELECT {cols} FROM {o.name})) d"
                ).fetchone() or (None,)
                if n:
                    wrong.append(f"{o.name}: {n} rows differ")
        cases, seen = conn.execute(
            "SELECT (SELECT count(*) FROM flu_cases), (SELECT count(*) FROM flu_case_first_seen)"
        ).fetchone() or (None, None)
        if cases != seen:
            wrong.append(f"flu_cases {cases} rows, {seen} case_ids seen")
    return wrong


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    med = statistics.median
    out: dict[str, Any] = {
        "rounds": len(runs),
        "wall_s": round(med(r["wall_s"] for r in runs), 3),
        "cpu_s": round(med(r["cpu_s"] for r in runs), 3),
        "wall_s_each": [round(r["wall_s"], 3) for r in runs],
        "cpu_s_each": [round(r["cpu_s"], 3) for r in runs],
        "step_s": {
            k: round(med(r["steps"].get(k, 0.0) for r in runs), 4) for k in runs[0]["steps"]
        },
    }
    if "half_refreshed_s" in runs[0]:
        out["half_refreshed_s"] = round(med(r["half_refreshed_s"] for r in runs), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=1_000_000, help="records stored before timing")
    parser.add_argument("--batch", type=int, default=10_000, help="records per timed refresh")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every mode")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    path = events_file(args.base + args.rounds * len(args.modes) * args.batch)
    results: dict[str, Any] = {"machine": machine(), "base_records": args.base}
    results["batch_records"] = args.batch
    state = tempfile.mkdtemp(prefix="flu-monitor-bench-parallel-")
    try:
        with PostgresServer(state) as pg:
            with psycopg.connect(pg.url, autocommit=True) as admin:  # for PREPARE TRANSACTION
                admin.execute("ALTER SYSTEM SET max_prepared_transactions = 32")
            pg.stop()
            pg.start()
            with psycopg.connect(pg.url, autocommit=True) as admin:
                results["machine"]["postgres"] = admin.execute("SHOW server_version").fetchone()[0]
            url = pg.create_database("bench")
            postgres.apply(url)
            feed = Feed(path)
            for _ in range(0, args.base, CHUNK):
                ingest(url, feed.take(min(CHUNK, args.base - feed.sent)))
            with psycopg.connect(url, autocommit=True) as conn:
                t0 = time.perf_counter()
                postgres.refresh(conn)
                conn.execute("VACUUM ANALYZE")
                plan, inputs = read_plan(conn)
            print(f"base of {args.base:,} in {time.perf_counter() - t0:.0f} s", flush=True)
            level = levels_of(plan, inputs)
            width = max(sum(1 for v in level.values() if v == n) for n in set(level.values()))
            results["levels"] = [
                [v.name for v in plan if level[v.name] == n] for n in sorted(set(level.values()))
            ]
            sessions = Sessions(url, width)
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.modes}
            results["machine"]["load_before"] = [round(x, 2) for x in os.getloadavg()]
            with concurrent.futures.ThreadPoolExecutor(width) as pool:
                for r in range(args.rounds):
                    order = args.modes[r % len(args.modes) :] + args.modes[: r % len(args.modes)]
                    for mode in order:
                        ingest(url, feed.take(args.batch))
                        got = one_round(mode, sessions, plan, inputs, level, pool, f"r{r}")
                        got["load"] = round(os.getloadavg()[0], 2)
                        runs[mode].append(got)
                        print(
                            f"round {r} {mode}: wall {got['wall_s']:.3f} s, "
                            f"CPU {got['cpu_s']:.3f} s, load {got['load']}",
                            flush=True,
                        )
            results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
            results["loads"] = {m: [r["load"] for r in rs] for m, rs in runs.items()}
            sessions.close()
            results["modes"] = {m: summarize(rs) for m, rs in runs.items()}
            if "one" in runs:
                results["critical_path"] = critical_path(
                    plan, inputs, results["modes"]["one"]["step_s"]
                )
            results["check"] = check(url) or "every view equals its recompute"
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(results, indent=1))
    if not args.no_write:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
        out = RESULTS / "refresh-parallel.json"
        previous = json.loads(out.read_text()) if out.exists() else {}
        previous[stamp] = results
        out.write_text(json.dumps(previous, indent=2) + "\n")
        print(f"results: {out}")


if __name__ == "__main__":
    main()
