"""The refresher process and the non-blocking refresh, with the dashboard's own queries."""

import functools
import re
import signal
import subprocess
import sys
import threading

import psycopg
import pytest

from flu_monitor import dashboard_spec
from flu_monitor.dashboard import queries
from flu_monitor.warehouse import postgres as warehouse
from tests.local.conftest import simulated_events, wait_until

SPEC = dashboard_spec.load()
# One worker runs the module under `pytest -n --dist loadgroup`: _seven_hundred() runs the
# simulator once for both refresh loops.
pytestmark = pytest.mark.xdist_group("refresher")


def load(database_url, events, tmp_path, name) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(b"\n".join(events) + b"\n")
    warehouse.load_jsonl(database_url, path)


def total_cases(database_url) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT COALESCE(SUM(cases), 0) FROM mv_daily_state_cases").fetchone()[
            0
        ]


@functools.cache
def _seven_hundred() -> list[bytes]:
    """The simulator's 700 events (its CLI run once for both refresh loops below)."""
    return simulated_events(700, seed=9)


def refresh_700_then_stop(database_url, tmp_path, *command: str) -> subprocess.CompletedProcess:
    """Run `command` (a refresh loop every 0.5 s) while 500 then 200 more events arrive; SIGTERM
    once the views count all 700."""
    events = _seven_hundred()
    load(database_url, events[:500], tmp_path, "first")
    argv = [sys.executable, "-m", "flu_monitor", *command, "--database-url", database_url]
    process = subprocess.Popen(
        [*argv, "--every", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # polled every 0.05 s (a query of one small view): the refresh is seen when it commits
        first, later = "the first refresh", "a later refresh"
        wait_until(lambda: total_cases(database_url) == 500, 60, first, interval_s=0.05)
        load(database_url, events[500:], tmp_path, "second")
        wait_until(lambda: total_cases(database_url) == 700, 30, later, interval_s=0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def test_refresher_keeps_the_views_current_until_stopped(warehouse_db, tmp_path):
    done = refresh_700_then_stop(warehouse_db, tmp_path, "refresh")
    assert done.returncode == 0, done.stderr
    assert "refresh: stopped after" in done.stderr


def test_db_refresh_every_runs_the_same_loop_with_a_line_per_refresh(warehouse_db, tmp_path):
    """`db refresh --every` is the refresher's loop (stopped cleanly by SIGTERM), printing each
    refresh's new records: every record counted once across the lines."""
    done = refresh_700_then_stop(warehouse_db, tmp_path, "db", "refresh")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    line = r"^refreshed in [0-9.]+ s \((\d+) new records\)$"
    new = [int(n) for n in re.findall(line, out, re.M)]
    assert len(new) == len(out.splitlines()) >= 2, out
    assert sorted(n for n in new if n) == [200, 500], out


def dashboard_results(database_url) -> dict:
    """Every visual's query, run the way the dashboard runs it, with a short lock timeout."""
    values = {"state": ["NY", "NJ", "PA"]}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '2s'")
        latest = conn.execute(queries.latest_day_query(SPEC, "dates")).fetchone()[0]
        values["dates"] = queries.default_range(latest, 60)
        results = {}
        for name in SPEC.visuals:
            query = queries.build(SPEC, name, values)
            results[name] = conn.execute(query.text, query.params).fetchall()
    return results


def test_readers_are_not_blocked_while_a_refresh_is_in_progress(warehouse_db, tmp_path):
    events = simulated_events(1_200, seed=10)
    load(warehouse_db, events[:800], tmp_path, "first")
    warehouse.refresh(warehouse_db)
    before = dashboard_results(warehouse_db)
    assert sum(r[0] or 0 for r in before["cases_today"]) > 0
    load(warehouse_db, events[800:], tmp_path, "second")

    refreshed, release = threading.Event(), threading.Event()

    def refresh_and_hold():  # every refresh statement has run; its transaction stays open
        with psycopg.connect(warehouse_db) as conn, conn.transaction():
            warehouse.refresh(conn)
            refreshed.set()
            release.wait(60)

    holder = threading.Thread(target=refresh_and_hold)
    holder.start()
    try:
        assert refreshed.wait(60)
        during = dashboard_results(warehouse_db)  # fails on lock_timeout if a reader waits
    finally:
        release.set()
        holder.join()
    after = dashboard_results(warehouse_db)
    assert during == before, "readers saw a refresh before it committed"
    assert after != before
    assert total_cases(warehouse_db) == 1_200
