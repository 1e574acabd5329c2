"""The surveillance views refreshed by day (plan.py, "days") on real PostgreSQL: after refreshes
by day each of them equals its SELECT run whole, row for row; only the days new records can
reach are rewritten (the other rows keep their tuple and transaction); the window slides a day
at a time; late records for old days, for days before the window and before the first day are
handled; and over a season longer than the window and its lead-in, every published figure
equals the plain-Python detector run on the whole season. The two cases recomputed whole (a
late record before the window, one before the first day) follow the by-day ones in a test marked
slow: `make test` runs it, `make test-fast` not."""

import datetime as dt
import math
import random

import psycopg
import pytest

from flu_monitor import refdata
from flu_monitor.warehouse import postgres, sqlscript, translate
from flu_monitor.warehouse.objects import Kind

from . import detector_reference
from .conftest import (
    TRANSLATION,
    differences,
    event,
    ingest,
    local_objects,
    query,
    translated_objects,
)

START = dt.date(2026, 5, 1)
SEASON = 169  # days 0..168 at first: longer than the window (120) and its lead-in (36)
WINDOW = 120
LEAD_IN = 36
# The day-keyed views and how many days back a row of a day reaches (read off their SQL)
REACH = {
    "flu_county_days": 0,
    "mv_daily_county_cases": 6,  # the 7-day average
    "mv_outbreak_series": 36,  # the 7-day window's older baseline half: days t-36 .. t-23
    "mv_outbreak_statistics": 0,  # row by row over the series
    "mv_county_alerts": 11,  # EARS C3: C2 (t-9 .. t-3) over t-2 .. t
}
# Each county's mean cases a day: low, so there are zero days (about 90 county-days of the
# window) and alerts of all three windows (the reference below has 15); a third of the cases of
# levels 6, 3, 20, 12, 15, 9 (5,000 against 14,800), which had no 7-day alert: 1 CPU-s less.
LEVELS = {"36001": 2, "36109": 1, "36047": 7, "34003": 4, "42101": 5, "42003": 3}


@pytest.fixture(scope="module")
def objects():
    return local_objects()  # what apply() ran


@TRANSLATION
def test_the_surveillance_views_are_refreshed_by_day_with_the_reach_of_their_sql():
    objects = translated_objects()  # the translator's own output, not the translation cache's
    days = {o.name: o.reach for o in objects.values() if o.kind is Kind.DAYS}
    assert days == REACH
    # the grid's lead-in covers the furthest reach, so a window day never reads a missing day
    assert max(REACH.values()) == LEAD_IN
    assert objects["flu_daily_county_counts"].reach == 0  # it reports the days it wrote
    assert objects["flu_refresh_status"].kind is Kind.FULL


def test_a_view_reaching_without_bound_is_recomputed_in_full(tmp_path):
    (tmp_path / "001_x.sql").write_text(
        "CREATE EXTERNAL SCHEMA {{stream_schema}} FROM KAFKA IAM_ROLE '{{iam_role_arn}}' "
        "AUTHENTICATION iam URI '{{bootstrap_servers}}';\n"
        "CREATE MATERIALIZED VIEW s AUTO REFRESH {{auto_refresh}} AS "
        "SELECT kafka_partition, kafka_offset, kafka_timestamp "
        'FROM {{stream_schema}}."{{topic}}";\n'
        "CREATE MATERIALIZED VIEW d AUTO REFRESH NO AS SELECT CAST(kafka_timestamp AS DATE) AS "
        "day, COUNT(*) AS n FROM s GROUP BY CAST(kafka_timestamp AS DATE);\n"
        "CREATE MATERIALIZED VIEW w AUTO REFRESH NO AS SELECT day, SUM(n) OVER (ORDER BY day "
        "ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS n4 FROM d;\n"
        "CREATE MATERIALIZED VIEW u AUTO REFRESH NO AS SELECT day, SUM(n) OVER (ORDER BY day "
        "ROWS UNBOUNDED PRECEDING) AS total FROM d;\n"
        "CREATE MATERIALIZED VIEW r AUTO REFRESH NO AS SELECT day, ROW_NUMBER() OVER "
        "(ORDER BY day) AS nth FROM d;\n"
        "CREATE MATERIALIZED VIEW a AUTO REFRESH NO AS SELECT day, LEAD(n) OVER "
        "(ORDER BY day) AS next_n FROM d;\n"
        "CREATE MATERIALIZED VIEW q AUTO REFRESH NO AS SELECT day, n - (SELECT MAX(n) FROM d) "
        "AS below_max FROM d;\n"
        "CREATE MATERIALIZED VIEW t AUTO REFRESH NO AS SELECT e.day, e.n * 1.0 / a.n AS share "
        "FROM d AS e CROSS JOIN (SELECT SUM(n) AS n FROM d) AS a;\n"
    )
    objects = translate.translate_script(
        sqlscript.load_script(tmp_path, postgres.LOCAL_PLACEHOLDERS)
    )
    assert (objects["w"].kind, objects["w"].reach) == (Kind.DAYS, 3)
    for name in ("u", "r", "a"):
        assert objects[name].kind is Kind.FULL, name
        assert "not by day: a window reaching unboundedly or ahead" in (objects[name].note or "")
    assert "not by day: a query outside FROM" in (objects["q"].note or "")
    assert "not by day: SUM(n) over all days" in (objects["t"].note or "")
    assert objects["q"].kind is objects["t"].kind is Kind.FULL


def _counts(seed: int) -> dict[str, list[int]]:
    """A season of daily counts per county (a slow rise and fall, day-to-day noise)."""
    rng = random.Random(seed)
    return {
        fips: [
            max(0, round(level * (1 + math.sin(t / 40)) + rng.gauss(0, math.sqrt(level))))
            for t in range(SEASON)
        ]
        for fips, level in LEVELS.items()
    }


class Season:
    """The cases loaded so far (by county and day index from START) and the next offset."""

    def __init__(self, url: str):
        self.url = url
        self.cases: dict[tuple[str, int], int] = {}
        self.offset = 0

    def add(self, added: dict[tuple[str, int], int]) -> postgres.RefreshResult:
        """Ingest `added[(county, day)]` more cases and refresh."""
        events = []
        for (fips, t), n in sorted(added.items()):
            before = self.cases.get((fips, t), 0)
            day = START + dt.timedelta(days=t)
            for i in range(before, before + n):
                time = f"{day.isoformat()}T{i % 24:02d}:{i % 60:02d}:{i // 60 % 60:02d}Z"
                events.append(event(county_fips=fips, event_time=time, n=i))
            self.cases[(fips, t)] = before + n
        events = [{k: v for k, v in e.items() if k != "n"} for e in events]
        result = ingest(self.url, events, first_offset=self.offset)
        self.offset += len(events)
        assert result is not None
        return result

    def series(self) -> tuple[int, dict[str, list[int]]]:
        """(first day index, every county's zero-filled series from it to the last day)."""
        first = min(t for _, t in self.cases)
        last = max(t for _, t in self.cases)
        out = {fips: [0] * (last - first + 1) for fips in refdata.counties()}
        for (fips, t), n in self.cases.items():
            out[fips][t - first] += n
        return first, out


def _day(t: int) -> dt.date:
    return START + dt.timedelta(days=t)


def _equal_a_recompute(url: str, objects) -> None:
    with psycopg.connect(url) as conn:
        for name in REACH:  # row for row, duplicates counted
            diff = differences(conn, name, objects[name].columns, objects[name].query)
            assert diff == [], (name, diff[:3])


def _keep_tuples(url: str) -> None:
    """Keep every row of each view as (day, its tuple's place, the transaction that wrote it),
    in table tuples_<view> of the same database: compared there by _untouched, not fetched.
    The place is kept as a tid, not text: _untouched joins on it in half the time."""
    with psycopg.connect(url) as conn:
        for name in REACH:
            conn.execute(f"DROP TABLE IF EXISTS tuples_{name}")
            conn.execute(
                f"CREATE UNLOGGED TABLE tuples_{name} AS SELECT day, ctid AS place, "
                f"xmin AS xact FROM {name}"
            )


def _untouched(url: str, days) -> None:
    """The rows of every day but `days[view]` are the very tuples _keep_tuples kept."""
    with psycopg.connect(url) as conn:
        for name in REACH:
            kept, changed = conn.execute(  # a tuple's place is unique: joined on it
                f"SELECT COUNT(b.place), COUNT(*) FILTER (WHERE a.place IS NULL OR b.place IS NULL "
                "OR (a.day, a.xact::text) IS DISTINCT FROM (b.day, b.xact::text)) "
                f"FROM (SELECT * FROM tuples_{name} WHERE NOT day = ANY(%(days)s)) AS b "
                f"FULL JOIN (SELECT day, ctid AS place, xmin AS xact FROM {name} "
                "WHERE NOT day = ANY(%(days)s)) AS a ON a.place = b.place",
                {"days": sorted(days[name])},
            ).fetchone()
            assert changed == 0, (name, changed)
            assert kept, name


def _span(first: int, reach: int, last: int) -> list[dt.date]:
    return [_day(t) for t in range(first, min(first + reach, last) + 1)]


def _matches_the_reference(season: Season) -> None:
    """Every figure of mv_outbreak_statistics, on every day of the window, is the reference's
    on the whole season (not only the window's days): the lead-in gives each day its past."""
    first, series = season.series()
    state_of = {fips: county.state_code for fips, county in refdata.counties().items()}
    last = first + len(next(iter(series.values()))) - 1
    window = range(max(first, last - WINDOW + 1), last + 1)
    want = {
        (unit, first + t): row
        for (unit, t), row in detector_reference.statistics(series, state_of).items()
        if first + t in window
    }
    columns = list(detector_reference.WINDOW_COLUMNS)
    rows = query(season.url, f"SELECT unit, day, {', '.join(columns)} FROM mv_outbreak_statistics")
    got = {(r[0], (r[1] - START).days): dict(zip(columns, r[2:], strict=True)) for r in rows}
    assert set(got) == set(want)
    if len(window) == WINDOW:  # every county and state, every day of the full window
        assert len(got) == 153 * WINDOW
    for key, row in want.items():
        assert got[key] == row, key


def _by_day(warehouse: str, objects) -> Season:
    """A season longer than the window and its lead-in, then the three ways a refresh goes by
    day: more cases on the latest day, a new day (the window slides), a late record 50 days
    back. After each, only the days reached were rewritten; after the last, every view equals
    a recompute, which catches a wrong row written by any of the three (see the comment there)."""
    season = Season(warehouse)
    counts = _counts(seed=5)
    first = season.add({(f, t): n for f, daily in counts.items() for t, n in enumerate(daily) if n})
    # every view new: each recomputed whole (DELETE, then INSERT its own SELECT), so there is no
    # recompute to compare it with yet; the reference below checks the figures
    assert first.days == {}
    _matches_the_reference(season)
    assert query(warehouse, "SELECT MIN(day), COUNT(DISTINCT day) FROM mv_county_alerts") == [
        (_day(SEASON - WINDOW), WINDOW)
    ]
    assert query(warehouse, "SELECT MIN(day) FROM flu_county_days") == [
        (_day(SEASON - WINDOW - LEAD_IN),)
    ]

    # more cases on the latest day: that day is recomputed, nothing else is written
    last = SEASON - 1
    _keep_tuples(warehouse)
    result = season.add({("36109", last): 4, ("42101", last): 2})
    assert result.days == {name: [_day(last)] for name in REACH}
    assert result.rows["mv_outbreak_series"] == 2 * 153  # that day's rows deleted and inserted
    _untouched(warehouse, {name: {_day(last)} for name in REACH})

    # a new day: the window slides by one, its first day leaves every view
    _keep_tuples(warehouse)
    result = season.add({("36047", last + 1): 7})
    assert result.days == {name: [_day(last + 1)] for name in REACH}
    assert query(warehouse, "SELECT MIN(day), COUNT(DISTINCT day) FROM mv_county_alerts") == [
        (_day(SEASON + 1 - WINDOW), WINDOW)
    ]
    assert query(warehouse, "SELECT MIN(day), COUNT(DISTINCT day) FROM flu_county_days") == [
        (_day(SEASON + 1 - WINDOW - LEAD_IN), WINDOW + LEAD_IN)
    ]
    gone = {"flu_county_days": {_day(SEASON - WINDOW - LEAD_IN)}}
    gone.update({n: {_day(SEASON - WINDOW)} for n in REACH if n != "flu_county_days"})
    _untouched(warehouse, {n: gone[n] | {_day(last + 1)} for n in REACH})

    # a late record 50 days back: that day and the days each view reaches from it
    late = last + 1 - 50
    _keep_tuples(warehouse)
    result = season.add({("34003", late): 3})
    recomputed = {"flu_county_days": 0, "mv_daily_county_cases": 6, "mv_outbreak_series": 36}
    recomputed["mv_outbreak_statistics"] = 36  # the series' days
    recomputed["mv_county_alerts"] = 36 + 11  # the statistics' days and its own reach
    expected = {name: _span(late, reach, last + 1) for name, reach in recomputed.items()}
    assert result.days == expected
    _untouched(warehouse, {n: set(d) for n, d in expected.items()})
    # One recompute, after the last step, checks the rows all three wrote: the steps rewrite
    # disjoint days (result.days: the latest day 168; day 169 and the days the slide deleted, 13
    # and 49; days 119 .. 166), and _untouched shows that each step left every other day's rows
    # as the step before wrote them. So a wrong row a step wrote on its days (or a row its slide
    # left) is still there at the end, and it is still wrong: no later step changes the cases
    # its day reaches back over (day 168 reaches back to day 121, past the late record's day
    # 119), nor the window the slid-off days are out of. A view computed from a wrong row
    # equals its recompute, but the first wrong view in the plan's order differs from its own.
    _equal_a_recompute(warehouse, objects)
    return season


@pytest.mark.postgres
def test_refreshes_by_day_equal_a_recompute(warehouse, objects):
    _by_day(warehouse, objects)


@pytest.mark.postgres
@pytest.mark.slow  # _by_day again, then 2 refreshes, recomputes and reference runs (make test)
def test_late_records_before_the_window_or_the_first_day_recompute_whole(warehouse, objects):
    """After _by_day: a late record in the lead-in, then one before the first report day; the
    figures still equal a recompute and the plain-Python detector on the whole season."""
    season = _by_day(warehouse, objects)

    # a late record in the lead-in, before the window: the grid by day, the rest whole (a
    # changed day before a view's first day)
    lead = SEASON + 1 - WINDOW - 10
    result = season.add({("42003", lead): 5})
    assert result.days == {"flu_county_days": [_day(lead)]}
    _equal_a_recompute(warehouse, objects)
    _matches_the_reference(season)

    # a record before the first report day: history_days counts from it now, all recomputed
    result = season.add({("36001", -1): 1})
    assert result.days == {}
    assert result.rows["flu_county_days"] == 156 * 150
    _equal_a_recompute(warehouse, objects)
    _matches_the_reference(season)


@pytest.mark.postgres
def test_a_short_season_grows_by_day(warehouse, objects):
    """Before the window is full, a new day adds a day and drops none (its first day is
    rewritten as it was: where a full window would slide off)."""
    season = Season(warehouse)
    counts = _counts(seed=8)
    season.add({(f, t): n for f, daily in counts.items() for t, n in enumerate(daily[:30]) if n})
    result = season.add({("36109", 30): 2})
    assert result.days == {name: [_day(30)] for name in REACH}
    assert result.rows["mv_outbreak_series"] == 153 * 3  # day 0 deleted and inserted, day 30 new
    assert query(warehouse, "SELECT MIN(day), COUNT(DISTINCT day) FROM mv_outbreak_series") == [
        (_day(0), 31)
    ]
    _equal_a_recompute(warehouse, objects)
    _matches_the_reference(season)
    with psycopg.connect(warehouse) as conn:  # the rows carry their days since the first day
        assert conn.execute("SELECT MAX(history_days) FROM flu_county_days").fetchone() == (30,)
