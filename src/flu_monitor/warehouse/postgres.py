"""The warehouse on PostgreSQL: apply sql/, ingest raw Kafka records, refresh the views.

Interfaces used by the local pipeline (the ingester and refresher of `flu-monitor up`):

    apply(url)                        # create/upgrade everything from sql/ (idempotent)
    with psycopg.connect(url) as conn:  # the ingester's own transaction ...
        insert_raw(conn, rows)        # ... rows = (partition, offset, timestamp, key, value)
        store_offsets(conn)           # ... its consumer offsets, same transaction, then commit
    refresh(url_or_conn)              # every few seconds; readers are never blocked

The raw records land in the stand-in for the MSK topic (`msk."flu_cases"`, the same kafka_*
columns as Redshift's topic relation). refresh() moves them into the streaming view's table and
brings every view up to date in ONE transaction (dashboards see the old state until it commits;
nothing takes a lock readers wait for), then VACUUMs the emptied stand-in. Concurrent refresh()
calls serialize on an advisory lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import psycopg

from flu_monitor import pgconnect
from flu_monitor.warehouse import sqlscript, translation_cache
from flu_monitor.warehouse.objects import (
    DAY,
    DAYS,
    FRESH_SINCE,
    FROM_DAY,
    HI,
    LO,
    REFRESH_STAMP,
    SEQ,
    STAMP,
    TO_DAY,
    Kind,
    LocalObject,
)

SHIMS = Path(__file__).with_name("shims.sql")
PLAN_TABLE = "flu_monitor_refresh_plan"
STATE_TABLE = "flu_monitor_refresh_state"
LOCK_KEY = 0x666C75  # pg advisory lock serializing apply() and refresh()
# A server that never answers fails the connection, not hangs it (unless the URL or
# PGCONNECT_TIMEOUT says how long to wait: pgconnect.py)
CONNECT_TIMEOUT_S = 10

# Values for sql/ placeholders on PostgreSQL: the role and brokers only appear in the external
# schema statement, which becomes CREATE SCHEMA here, so any well-formed value does.
LOCAL_PLACEHOLDERS = {
    "iam_role_arn": "arn:aws:iam::000000000000:role/local",
    "bootstrap_servers": "127.0.0.1:9092",
    "topic": "flu_cases",
    "stream_schema": "msk",
    "auto_refresh": "NO",
}


def stand_in_table(placeholders: dict[str, str] | None = None) -> str:
    """The stand-in for the topic relation, e.g. msk."flu_cases"."""
    p = placeholders or LOCAL_PLACEHOLDERS
    return f'{p["stream_schema"]}."{p["topic"]}"'


def _compiled(sql_dir: str | None = None) -> tuple[sqlscript.Script, dict[str, LocalObject]]:
    """sql/ (or sql_dir) and its translation, made once per process: `_compiled()` and
    `_compiled(None)` are one cache entry (functools.cache keys them apart)."""
    return _translated(sql_dir)


@cache
def _translated(sql_dir: str | None) -> tuple[sqlscript.Script, dict[str, LocalObject]]:
    # Only apply() translates (sqlglot: 0.45 CPU-s to import): ingest and refresh read the plan
    # apply() stored, so `flu-monitor ingest`, `refresh` and `notify` start without it. And apply()
    # reads the translation from the on-disk cache when sql/ and the translator are unchanged
    # (translation_cache): loading the script is 0.03 CPU-s of the standard library, so only the
    # translation is cached and plan_apply gets the Script as before.
    script = sqlscript.load_script(sql_dir, LOCAL_PLACEHOLDERS)
    return script, translation_cache.plan_script(script)


@cache
def _ledger_setup() -> list[str]:
    return translation_cache.to_postgres(sqlscript.ledger_setup_sql())


# A caller's open connection (its transaction), or a URL to connect to.
ConnOrUrl = psycopg.Connection[Any] | str


@contextlib.contextmanager
def _connection(conn_or_url: ConnOrUrl) -> Iterator[psycopg.Connection[Any]]:
    if isinstance(conn_or_url, psycopg.Connection):
        yield conn_or_url
    else:
        with pgconnect.connect(conn_or_url, CONNECT_TIMEOUT_S) as conn:
            yield conn


def _run(cur: psycopg.Cursor[Any], statements: Iterable[str]) -> None:
    for sql in statements:
        cur.execute(sql)


# --- apply ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _hash_joins(cur: psycopg.Cursor[Any]) -> Iterator[None]:
    """Nested loops off for a refresh's delta and day statements. The statistics of the tables they
    read predate the rows this refresh just wrote, so the planner takes a range for a few rows and
    joins it by nested loop: a delta to the reference tables (150 counties x every row: seconds);
    the days of mv_county_alerts to mv_outbreak_statistics on a database grown by refreshes
    (issue 15, bench/results/refresh.md: 0.2-0.6 s a refresh instead of 0.02-0.04 s once ANALYZE
    had run; a late record 50 days back, 48 days in 9 s instead of 0.15 s). A hash join is right
    for any size. SET LOCAL ends with the transaction anyway; the reset keeps it to these."""
    cur.execute("SET LOCAL enable_nestloop = off")
    yield
    cur.execute("SET LOCAL enable_nestloop TO DEFAULT")


def apply(
    conn_or_url: ConnOrUrl, sql_dir: Path | str | None = None, refresh_after: bool = True
) -> list[sqlscript.Step]:
    """Create or upgrade the warehouse from sql/ in one transaction; return the steps run.

    Unchanged objects are left alone (sqlscript's ledger), so re-applying is harmless. A view
    whose SQL changed is rebuilt from the views it reads on the next refresh."""
    steps_run: list[sqlscript.Step] = []
    with _connection(conn_or_url) as conn:
        # Translated once connected: a server that is not there fails the command at once, not
        # after a second of sqlglot (import and translation).
        script, objects = _compiled(str(sql_dir) if sql_dir else None)
        with conn.transaction(), conn.cursor() as cur:
            _apply(cur, script, objects, steps_run)
    if refresh_after:
        refresh(conn_or_url)
    return steps_run


def _apply(
    cur: psycopg.Cursor[Any],
    script: sqlscript.Script,
    objects: dict[str, LocalObject],
    steps_run: list[sqlscript.Step],
) -> None:
    """apply()'s transaction: the steps it runs are appended to steps_run."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    cur.execute(SHIMS.read_text(encoding="utf-8"))
    _run(cur, _ledger_setup())
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (mv_name TEXT PRIMARY KEY, "
        "watermark BIGINT NOT NULL DEFAULT 0, refreshed_at TIMESTAMPTZ)"
    )
    cur.execute(sqlscript.LEDGER_QUERY)
    applied = sqlscript.ledger_from_rows(cur.fetchall())
    for name in _local_form_changed(cur, objects, applied):
        applied[name] = ("local form changed", applied[name][1])  # re-create it
    for step in sqlscript.plan_apply(script, applied):
        if step.action == "create":
            _run(cur, objects[step.object_name].create)
            cur.execute(f"DELETE FROM {STATE_TABLE} WHERE mv_name = %s", (step.object_name,))
        elif step.action == "drop":
            _run(cur, objects[step.object_name].drop)
        elif step.action == "alter":
            continue  # AUTO REFRESH: the local refresher decides when to refresh
        else:  # load, ledger: portable SQL
            cur.execute(step.sql)
        steps_run.append(step)
    _write_plan(cur, objects)


def _local_form_changed(
    cur: psycopg.Cursor[Any],
    objects: dict[str, LocalObject],
    applied: dict[str, tuple[str, str | None]],
) -> list[str]:
    """Applied materialized views whose local form (table, or view for a projection) is not
    the one this translation makes: the ledger hashes the Redshift SQL, which did not change."""
    expected = {
        o.name: "v" if o.kind is Kind.PROJECTION else "r"
        for o in objects.values()
        if o.refresh_steps is not None and o.name in applied
    }
    cur.execute(
        "SELECT relname, relkind FROM pg_class WHERE oid = ANY(ARRAY("
        "SELECT to_regclass(n) FROM unnest(%s::text[]) AS n))",
        (list(expected),),
    )
    return [name for name, kind in cur.fetchall() if expected.get(name) != kind]


def _write_plan(cur: psycopg.Cursor[Any], objects: dict[str, LocalObject]) -> None:
    """The refresh plan, in order, for refresh() (which may run in another process)."""
    # Made anew at every apply: its columns follow this code (an earlier one held one SQL text).
    cur.execute(f"DROP TABLE IF EXISTS {PLAN_TABLE}")
    cur.execute(
        f"CREATE TABLE {PLAN_TABLE} (position INTEGER PRIMARY KEY, "
        "mv_name TEXT NOT NULL, kind TEXT NOT NULL, source TEXT, reads TEXT[] NOT NULL, "
        "refresh_steps TEXT[] NOT NULL, note TEXT, reach INTEGER, day_steps TEXT[])"
    )
    views = [o for o in objects.values() if o.refresh_steps is not None]
    for position, o in enumerate(views):
        cur.execute(
            f"INSERT INTO {PLAN_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (position, o.name, str(o.kind), o.source, o.reads, o.refresh_steps, o.note, o.reach,
             o.day_steps),
        )  # fmt: skip


# --- ingest -----------------------------------------------------------------------------------


def _timestamp(value: dt.datetime | float) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC).replace(tzinfo=None)  # Kafka ms


def insert_raw(
    conn: psycopg.Connection[Any], rows: Iterable[tuple[Any, ...]], table: str | None = None
) -> int:
    """COPY raw Kafka records into the topic stand-in, inside the CALLER's transaction.

    rows: (partition, offset, timestamp, key, value); timestamp is a datetime (UTC) or Kafka's
    epoch milliseconds; key and value are bytes (or None) and are stored as they are, invalid
    UTF-8 included. Nothing is committed here: the ingester commits together with its offsets.
    A record delivered twice (same partition and offset) counts once after refresh()."""
    count = 0
    columns = "kafka_partition, kafka_offset, kafka_timestamp, kafka_key, kafka_value"
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {table or stand_in_table()} ({columns}) FROM STDIN (FORMAT BINARY)") as cp,
    ):
        cp.set_types(["int4", "int8", "timestamp", "bytea", "bytea"])
        for partition, offset, timestamp, key, value in rows:
            cp.write_row((partition, offset, _timestamp(timestamp), key, value))
            count += 1
    return count


def load_jsonl(
    conn_or_url: ConnOrUrl, path: Path | str, partition: int = 0, first_offset: int | None = None
) -> int:
    """Insert each line of a JSONL file as one raw record (key none, timestamp now), with
    synthetic offsets continuing after the highest offset already used in `partition`."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with _connection(conn_or_url) as conn, conn.transaction():
        if first_offset is None:
            first_offset = next_offset(conn, partition)
        with open(path, "rb") as f:
            lines = (line.rstrip(b"\r\n") for line in f)
            rows = (
                (partition, first_offset + i, now, None, line)
                for i, line in enumerate(x for x in lines if x.strip())
            )
            return insert_raw(conn, rows)


def next_offset(conn: psycopg.Connection[Any], partition: int) -> int:
    (highest,) = conn.execute(
        f"SELECT GREATEST((SELECT MAX(kafka_offset) FROM {stand_in_table()} "
        "WHERE kafka_partition = %(p)s), (SELECT MAX(kafka_offset) FROM flu_cases_stream "
        "WHERE kafka_partition = %(p)s))",
        {"p": partition},
    ).fetchone() or (None,)
    return 0 if highest is None else int(highest) + 1


# --- refresh ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedView:
    """One row of the refresh plan (PLAN_TABLE)."""

    name: str
    kind: Kind
    source: str | None
    reads: list[str]
    steps: list[str]
    reach: int | None = None  # a day-keyed relation's (plan.LocalObject.reach)
    day_steps: list[str] | None = None  # a days view's refresh of some days


@dataclass
class _Progress:
    """What one refresh transaction learnt so far, for the views refreshed after."""

    changed: set[str] = field(default_factory=set)  # views that wrote rows
    stamp_sql: str | None = None  # this refresh's stamp, once the stream moved records
    # Each aggregate's highest _seq before this refresh added its rows (plan._fresh_settled).
    fresh_since: dict[str, int] = field(default_factory=dict)
    whole_joins: list[str] = field(default_factory=list)  # see RefreshResult
    # The days each day-keyed relation wrote this refresh (None: it was recomputed whole).
    changed_days: dict[str, set[dt.date] | None] = field(default_factory=dict)


@dataclass
class RefreshResult:
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)  # rows written per view (0: skipped)
    timings: dict[str, float] = field(default_factory=dict)
    # Append views that joined their settled aggregates whole, not only this refresh's rows of
    # them: a view rebuilt from its source's history (plan._fresh_settled).
    whole_joins: list[str] = field(default_factory=list)
    # Days views: the days each wrote rows of (a view recomputed whole is not here).
    days: dict[str, list[dt.date]] = field(default_factory=dict)


def refresh(conn_or_url: ConnOrUrl) -> RefreshResult:
    """Bring every view up to date from the stand-in, in one transaction (see module doc)."""
    result = RefreshResult()
    start = time.perf_counter()
    with _connection(conn_or_url) as conn:
        if _refresh_views(conn, result):
            t0 = time.perf_counter()
            _vacuum_stand_in(conn, owned=conn is not conn_or_url)
            result.timings["stand-in vacuum"] = time.perf_counter() - t0
    result.seconds = time.perf_counter() - start
    return result


def _vacuum_stand_in(conn: psycopg.Connection[Any], owned: bool) -> None:
    """VACUUM the stand-in after a refresh emptied it. Every refresh DELETEs what it moves and
    scans the dead rows left by earlier ones; between autovacuum runs (a minute apart) that is
    hundreds of MB at 20,000 records/s, and every DELETE pays for it. A caller's connection in
    a transaction cannot VACUUM: then autovacuum does it."""
    if owned:
        conn.autocommit = True
    if conn.autocommit:
        conn.execute(f"VACUUM {stand_in_table()}")


def _refresh_views(conn: psycopg.Connection[Any], result: RefreshResult) -> int:
    """The refresh transaction; returns the records moved out of the stand-in."""
    moved = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        # JIT compiling the refresh statements costs more than it saves at these sizes (measured
        # with bench/bench_refresh.py: 10 % of a refresh of 10,000 to 50,000 records).
        cur.execute("SET LOCAL jit = off")
        cur.execute(
            f"SELECT mv_name, kind, source, reads, refresh_steps, reach, day_steps "
            f"FROM {PLAN_TABLE} ORDER BY position"
        )
        plan = [
            PlannedView(name, Kind(kind), source, reads, steps, reach, day_steps)
            for name, kind, source, reads, steps, reach, day_steps in cur.fetchall()
        ]
        cur.execute(f"SELECT mv_name, watermark FROM {STATE_TABLE}")
        state: dict[str, int] = dict(cur.fetchall())
        progress = _Progress()
        for view in plan:
            t0 = time.perf_counter()
            written = _refresh_one(cur, view, state, progress)
            result.rows[view.name] = written
            result.timings[view.name] = time.perf_counter() - t0
            if written:
                progress.changed.add(view.name)
            if view.kind is Kind.STREAM:
                moved += written
        result.whole_joins = progress.whole_joins
        days_views = {v.name for v in plan if v.kind is Kind.DAYS}
        result.days = {
            name: sorted(days)
            for name, days in progress.changed_days.items()
            if days is not None and name in days_views
        }
    return moved


def _refresh_one(
    cur: psycopg.Cursor, view: PlannedView, state: dict[str, int], progress: _Progress
) -> int:
    """Refresh one view (its kind's way, see plan.py); return the rows it wrote."""
    name, changed = view.name, progress.changed
    if view.kind is Kind.PROJECTION:  # a plain view: nothing stored, it changed when its source did
        return int(view.source in changed)
    if view.kind is Kind.STREAM:
        # The refresh stamp: this refresh's time, and strictly later than the previous one's
        # (kept as the stream's watermark, in microseconds) even if the clock stepped back.
        cur.execute("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint")
        stamp = max(int(_one_value(cur)), state.get(name, 0) + 1)
        stamp_sql = f"(TIMESTAMP 'epoch' + {stamp} * INTERVAL '1 microsecond')"
        (move,) = view.steps
        cur.execute(move.replace(STAMP, stamp_sql))
        moved = cur.rowcount
        if moved:
            _save_watermark(cur, name, stamp)
            progress.stamp_sql = stamp_sql
        return moved
    if view.kind is Kind.DAYS:
        return _refresh_days(cur, view, state, progress)
    if view.kind is Kind.FULL:
        if name in state and not changed.intersection(view.reads):
            return 0
        return _recompute_whole(cur, view, state)
    lo = state.get(name, 0)
    cur.execute(f"SELECT COALESCE(MAX({SEQ}), 0) FROM {view.source}")
    hi = int(_one_value(cur))
    if hi <= lo:
        return 0
    with _hash_joins(cur):
        if view.kind is Kind.AGGREGATE:
            cur.execute(f"SELECT COALESCE(MAX({SEQ}), 0) FROM {name}")
            progress.fresh_since[name] = int(_one_value(cur))
        delta = _delta_statement(cur, view, lo, hi, progress)
        cur.execute(delta.replace(LO, str(int(lo))).replace(HI, str(int(hi))))
        written = cur.rowcount
        if view.reach is not None:  # an aggregate by day: it returned (day, rows written) per day
            per_day = cur.fetchall()
            progress.changed_days[name] = {day for day, _ in per_day}
            written = sum(int(n) for _, n in per_day)
    _save_watermark(cur, name, hi)
    return written


def _delta_statement(
    cur: psycopg.Cursor[Any], view: PlannedView, lo: int, hi: int, progress: _Progress
) -> str:
    """The statement refreshing an append or aggregate view over its source's rows (lo, hi]:
    its only one, or, for an append view joining settled aggregates, the form reading only the
    aggregates' rows of this refresh when that is exact — every new source row carries this
    refresh's stamp (not so when the view is rebuilt from its source's history) — and the
    form joining them whole otherwise (plan._fresh_settled)."""
    if len(view.steps) == 1:
        return view.steps[0]
    whole, fresh = view.steps
    for name, since in progress.fresh_since.items():
        fresh = fresh.replace(FRESH_SINCE.format(name), str(since))
    exact = progress.stamp_sql is not None and FRESH_SINCE.partition("{")[0] not in fresh
    if exact:  # a stamp, and every aggregate it joins refreshed: do the rows carry the stamp?
        cur.execute(
            f"SELECT MIN({REFRESH_STAMP}) = {progress.stamp_sql} FROM {view.source} "
            f"WHERE {SEQ} > %s AND {SEQ} <= %s",
            (lo, hi),
        )
        exact = bool(_one_value(cur))
    if exact:
        return fresh
    progress.whole_joins.append(view.name)
    return whole


def _recompute_whole(cur: psycopg.Cursor[Any], view: PlannedView, state: dict[str, int]) -> int:
    """Run the view's full recompute; the rows its last statement wrote (at least 1 on a first
    refresh, so an empty view still counts as changed for the views reading it)."""
    written = 0
    for statement in view.steps:
        cur.execute(statement)
        written = cur.rowcount
    _save_watermark(cur, view.name, 0)
    return max(written, 1) if view.name not in state else written


def _refresh_days(
    cur: psycopg.Cursor[Any], view: PlannedView, state: dict[str, int], progress: _Progress
) -> int:
    """Refresh a days view (plan.py, "days"): recompute only the days that the days its inputs
    changed can reach, or all of it when that is not known; return the rows it wrote."""
    name, reach = view.name, view.reach or 0
    inputs = [r for r in view.reads if r in progress.changed]
    if name in state and not inputs:
        return 0
    changed: set[dt.date] = set()
    whole = name not in state or view.day_steps is None
    for relation in inputs:
        days = progress.changed_days.get(relation)
        if days is None:
            whole = True
        else:
            changed |= days
    recompute = None if whole else _days_to_recompute(cur, name, changed, reach)
    if recompute is None:
        progress.changed_days[name] = None
        return _recompute_whole(cur, view, state)
    assert view.day_steps is not None
    reached, at_start = recompute
    written, changed_days = 0, set()
    # Apart: the first days read the inputs from the range's start, the days reached near its end.
    with _hash_joins(cur):
        for days in (reached, at_start - reached):
            if not days:
                continue
            listed = "ARRAY[" + ", ".join(_date(d) for d in sorted(days)) + "]::date[]"
            read_from, read_to = _date(min(days) - dt.timedelta(days=reach)), _date(max(days))
            delete, insert = (
                s.replace(DAYS, listed).replace(FROM_DAY, read_from).replace(TO_DAY, read_to)
                for s in view.day_steps
            )
            cur.execute(delete)
            written += cur.rowcount
            cur.execute(insert)
            per_day = cur.fetchall()
            written += sum(int(n) for _, n in per_day)
            changed_days |= {day for day, _ in per_day}
    # Changed for the views reading it: the days reached that have rows now. A day that left the
    # range (deleted, none inserted) is none (their own ranges move with the same bounds), nor a
    # first day still in range, rewritten as it was (nothing it is computed from changed).
    progress.changed_days[name] = changed_days & reached
    return written


def _date(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def _days_to_recompute(
    cur: psycopg.Cursor[Any], name: str, changed: set[dt.date], reach: int
) -> tuple[set[dt.date], set[dt.date]] | None:
    """The days of a days view to recompute (None: all): the days the changed days of its
    inputs reach (each and the `reach` days after it, and the days its range gained at the end:
    new latest days), and as many days at its start as it gained (where a full window slides
    off; recomputed, they are deleted or rewritten as they were). All when it holds no row yet,
    or when a changed day lies before its first day: that day may be a new first day, the
    anchor of day counts (history_days)."""
    cur.execute(f"SELECT MIN({DAY}), MAX({DAY}) FROM {name}")
    first, last = cur.fetchone() or (None, None)
    if first is None or last is None:
        return None
    if not changed:
        return set(), set()
    if min(changed) < first:
        return None
    end = max(max(changed), last)
    reached = {d + dt.timedelta(days=k) for d in changed for k in range(reach + 1)}
    gained = (end - last).days
    reached |= {last + dt.timedelta(days=k) for k in range(1, gained + 1)}
    at_start = {first + dt.timedelta(days=k) for k in range(gained)}
    return {d for d in reached if d <= end}, at_start


def _one_value(cur: psycopg.Cursor[Any]) -> Any:
    """The value a one-row, one-column query returned."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("a query that always returns one row returned none")
    return row[0]


def _save_watermark(cur: psycopg.Cursor[Any], name: str, watermark: int) -> None:
    cur.execute(
        f"INSERT INTO {STATE_TABLE} (mv_name, watermark, refreshed_at) VALUES (%s, %s, now()) "
        "ON CONFLICT (mv_name) DO UPDATE SET watermark = EXCLUDED.watermark, "
        "refreshed_at = EXCLUDED.refreshed_at",
        (name, watermark),
    )
