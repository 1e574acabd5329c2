"""The outbreak detector (sql/060_surveillance.sql) on real PostgreSQL: every figure of every unit
and day equals the plain-Python reference (detector_reference.py) to the last bit; a flat series
raises nothing; a planted outbreak is flagged on its day and only there; a rise of a whole state
is a state alert, not county alerts; the EARS reference columns equal CDC EARS."""

import datetime as dt
import math
import random
import statistics

import psycopg
import pytest

from flu_monitor import refdata

from . import detector_reference
from .conftest import (
    ON_APPLIED,
    differences,
    event,
    ingest,
    local_objects,
    query,
    read_only_warehouse,
)

pytestmark = pytest.mark.postgres

START = dt.date(2026, 10, 1)
DAYS = 45  # the last day is the latest report day; the day before it, the latest complete day
COLUMNS = list(detector_reference.WINDOW_COLUMNS)


def _events(counts: dict[str, list[int]], after: dict[str, list[int]] | None = None) -> list[dict]:
    """One event per case: county, day (cases spread over the hours of the day); `after`: the
    counts of the events made before, whose cases these follow (other case ids)."""
    events = []
    for fips, series in counts.items():
        for day, n in enumerate(series):
            when = START + dt.timedelta(days=day)
            before = after[fips][day] if after and fips in after else 0
            for i in range(before, before + n):
                time = f"{when.isoformat()}T{i % 24:02d}:{i % 60:02d}:00Z"
                events.append(event(county_fips=fips, event_time=time, n=i))
                del events[-1]["n"]  # it only made the case_id distinct
    return events


def _load(warehouse: str, counts: dict[str, list[int]]) -> str:
    """Ingest the counts' events in one batch and refresh. (The refresh of a second batch, by
    day over every day, is what the seasonal fixture loads and test_refreshed_views_equal_a_
    recompute compares with a recompute; the other tests read what the figures are, and a
    second refresh costs them 0.6 CPU-s each.)"""
    ingest(warehouse, _events(counts))
    return warehouse


def _load_in_two(warehouse: str, counts: dict[str, list[int]]) -> str:
    """Ingest the counts' events in two batches, each refreshed: the second by day."""
    events = _events(counts)
    half = len(events) // 2
    ingest(warehouse, events[:half], first_offset=0)
    ingest(warehouse, events[half:], first_offset=half)  # a second, incremental refresh
    return warehouse


# every test that loads it, on one worker: no second worker waits while the first fills it
PLANTED_GROUP = pytest.mark.xdist_group("planted_outbreak")


def planted_counts() -> dict[str, list[int]]:
    """20 cases a day in six counties, 5 in Tompkins County, NY, and 14 more there on the latest
    complete day: the planted outbreak, flagged here, notified in test_alert_notifications.py
    and published by the alert notifier (tests/functions/test_alert_notifier.py)."""
    counts = {fips: [20] * DAYS for fips in ("36001", "36047", "36061", "36103", "34003", "42101")}
    counts["36109"] = [5] * DAYS  # Tompkins County, NY
    counts["36109"][DAYS - 2] += 14
    return counts


def planted_outbreak(postgres_copy) -> str:
    """URL of a new copy of the planted outbreak's warehouse, which is loaded (_load) once per
    session, for all its xdist workers (postgres_copy)."""
    return postgres_copy(
        "planted_outbreak", lambda url: _load(url, planted_counts()), base=ON_APPLIED
    )


def _zero_filled(counts: dict[str, list[int]]) -> dict[str, list[int]]:
    series = {fips: [0] * DAYS for fips in refdata.counties()}
    series.update(counts)
    return series


def _seasonal(seed: int) -> dict[str, list[int]]:
    """Counties of all three states on a rising season with day-to-day noise (and zeros in a
    small county), and an outbreak in Tompkins County, NY on days 40-43."""
    rng = random.Random(seed)
    # The larger counties at half their levels of before (40, 30, 25, 18, 35, 28): 10,800
    # cases, not 19,300, for 1 CPU-s less; the same alerts, windows and short baselines, and
    # 24 mutations of the reference detector change its figures on both or on neither
    base = {"36001": 9, "36109": 4, "36047": 20, "36061": 15, "36041": 0.4, "34003": 12,
            "34013": 9, "42101": 18, "42003": 14, "42071": 12}  # fmt: skip
    counts = {}
    for fips, level in base.items():
        lag = rng.uniform(-5, 5)  # each county's season a little earlier or later
        counts[fips] = [
            max(0, round(level * math.exp((t + lag) / 30) + rng.gauss(0, math.sqrt(level) + 1)))
            for t in range(DAYS)
        ]
    for t in range(40, 44):
        counts["36109"][t] += 15
    return counts


@pytest.fixture(scope="module")
def seasonal(postgres_copies):
    """The seasonal series loaded once, in two batches; the tests only read it."""
    counts = _seasonal(seed=3)
    loaded = read_only_warehouse(
        postgres_copies, "detector_seasonal", lambda u: _load_in_two(u, counts)
    )
    for url, _ in loaded:
        yield url, _zero_filled(counts)


def test_every_unit_day_matches_the_reference(seasonal):
    url, series = seasonal
    state_of = {fips: county.state_code for fips, county in refdata.counties().items()}
    want = detector_reference.statistics(series, state_of)
    rows = query(
        url, f"SELECT unit, unit_level, day, {', '.join(COLUMNS)} FROM mv_outbreak_statistics"
    )
    got = {(r[0], (r[2] - START).days): dict(zip(COLUMNS, r[3:], strict=True)) for r in rows}
    assert set(got) == set(want)  # every county and state, from its first complete baseline
    assert {r[1] for r in rows} == {"county", "state"}
    assert min(t for _, t in got) == 16  # the 1-day window's first baseline: 14 days + 2 guard
    for key, row in want.items():
        assert got[key] == row, key  # exactly: same operations, same libm
    # the reference is not vacuous: trend, short baselines, every window, alerts
    assert {r["window_days"] for r in want.values()} == {1, 3, 7}
    assert any(r["statistic_7d"] is not None for (u, t), r in want.items() if t < 36)
    alerts = {(u, t) for (u, t), r in want.items() if r["alert"]}
    assert {t for u, t in alerts if u == "36109"} == {41, 42, 43, 44}  # the outbreak, from day 40


def test_refreshed_views_equal_a_recompute(seasonal):
    """Refreshed after each of two batches, the surveillance views equal their SELECT run now."""
    url, _ = seasonal
    objects = local_objects()
    with psycopg.connect(url) as conn:
        for name in ("mv_outbreak_series", "mv_outbreak_statistics", "mv_county_alerts"):
            diff = differences(conn, name, objects[name].columns, objects[name].query)
            assert diff == [], (name, diff[:3])
            assert conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0] > 0, name


def test_county_alerts_carry_the_detector_and_ears_figures(seasonal):
    url, series = seasonal
    rows = query(
        url,
        "SELECT county_fips, day, cases, cases_last_7_days, alert, statistic, expected, c1, c2, c3 "
        "FROM mv_county_alerts",
    )
    assert len(rows) == 150 * DAYS  # every county, every day: zero-filled
    stats = {
        (r[0], r[1]): r[2:]
        for r in query(
            url, "SELECT unit, day, alert, statistic, expected FROM mv_outbreak_statistics"
        )
    }
    by_series: dict[tuple[int, ...], list[dict]] = {}  # once per series: 11 for 150 counties
    for daily in series.values():
        if tuple(daily) not in by_series:
            by_series[tuple(daily)] = ears_reference(daily)
    ears = {fips: by_series[tuple(daily)] for fips, daily in series.items()}
    for fips, day, cases, last7, alert, statistic, expected, c1, c2, c3 in rows:
        t = (day - START).days
        assert cases == series[fips][t] and last7 == sum(series[fips][max(0, t - 6) : t + 1])
        assert (alert, statistic, expected) == stats.get((fips, day), (None, None, None))
        want = ears[fips][t]
        for value, key in zip((c1, c2, c3), ("c1", "c2", "c3"), strict=True):
            assert _close(value, want[key]), (fips, t, key, value, want[key])


def test_a_flat_series_raises_nothing(warehouse):
    flat = {
        fips: [12] * DAYS
        for fips in ("36001", "36109", "36047", "34003", "34013", "42101", "42003")
    }
    url = _load(warehouse, flat)
    rows = query(
        url,
        "SELECT unit, statistic_1d, statistic_3d, statistic_7d, alert FROM mv_outbreak_statistics "
        "WHERE day = (SELECT MAX(day) FROM mv_outbreak_statistics)",
    )
    assert not [r for r in rows if r[4] is not None]
    assert not query(url, "SELECT * FROM mv_outbreak_statistics WHERE alert IS NOT NULL")
    # as expected everywhere: the statistic of a county with cases is 0 (to rounding)
    assert all(abs(z) < 1e-9 for r in rows if r[0] in flat for z in r[1:4]), rows
    assert query(url, "SELECT COUNT(*) FROM v_current_alerts") == [(0,)]
    ears = query(url, "SELECT MAX(c1), MAX(c2), MAX(c3) FROM mv_county_alerts")
    assert ears == [(0.0, 0.0, 0.0)]


@PLANTED_GROUP
def test_a_planted_outbreak_is_flagged_on_its_day(postgres_copy):
    outbreak_day = DAYS - 2  # the latest complete day
    url = planted_outbreak(postgres_copy)
    flagged = query(
        url,
        "SELECT unit, day, alert FROM mv_outbreak_statistics WHERE alert IS NOT NULL ORDER BY day",
    )
    day = START + dt.timedelta(days=outbreak_day)
    # that day, that county, its 1-day window; the next day the 3-day window still holds it
    assert flagged == [
        ("36109", day, "trend 1d"),
        ("36109", day + dt.timedelta(days=1), "trend 3d"),
    ]
    current = query(
        url,
        "SELECT day, county_fips, county_name, state_code, alert, window_days, observed, "
        "ROUND(CAST(expected AS NUMERIC), 3) FROM v_current_alerts",
    )
    assert current == [(day, "36109", "Tompkins County", "NY", "trend 1d", 1, 19.0, 5)]
    mapped = query(
        url, "SELECT observed_7day, alert FROM v_county_expected WHERE county_fips = '36109'"
    )
    assert mapped == [(49.0, "trend 1d")]


def test_a_rise_in_every_county_of_a_state_is_a_state_alert(warehouse):
    """The blind spot: a county is compared with the rest of its state, so a state-wide rise moves
    its expected count too. It is surfaced as an alert for the whole state, compared with the
    other two states."""
    counts = {fips: [15] * DAYS for fips in ("36001", "36047", "36061", "42101", "42003")}
    new_jersey = ("34003", "34013", "34017", "34023", "34025")
    for fips in new_jersey:
        counts[fips] = [15] * (DAYS - 4) + [30, 30, 30, 15]
    url = _load(warehouse, counts)
    current = query(url, "SELECT county_fips, county_name, alert FROM v_current_alerts")
    assert [(f, name) for f, name, _ in current] == [("NJ", "New Jersey (whole state)")]
    county_alerts = query(url, "SELECT COUNT(*) FROM mv_county_alerts WHERE alert IS NOT NULL")
    assert county_alerts == [(0,)]


def ears_reference(series: list[int]) -> list[dict]:
    """CDC EARS on a zero-filled daily series: C1 baseline t-7..t-1, C2 baseline t-9..t-3,
    C = (x - mean) / max(sample SD, 0.5), C3 = sum over t-2..t of max(0, C2 - 1)."""

    def statistic(t, nearest, farthest):
        if t - farthest < 0:
            return None
        baseline = series[t - farthest : t - nearest + 1]
        mean, sd = statistics.fmean(baseline), statistics.stdev(baseline)
        return (series[t] - mean) / max(sd, 0.5)

    rows, c2s = [], []
    for t in range(len(series)):
        c2s.append(statistic(t, 3, 9))
        last3 = c2s[-3:] if t >= 2 else [None]
        c3 = sum(max(0.0, c - 1) for c in last3) if None not in last3 else None
        rows.append({"c1": statistic(t, 1, 7), "c2": c2s[-1], "c3": c3})
    return rows


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), b, rel_tol=1e-9, abs_tol=1e-9)


def test_a_share_trend_is_followed_in_proportion_to_its_evidence():
    """A county whose share of its state grew by half between the baseline's halves: with
    thousands of cases the detector carries that growth on to the window (89 % of it);
    with a few dozen the same growth is mostly noise, and the expected count stays near the
    baseline share (the shrinkage by trend_sd, docs/warehouse.md)."""

    def expected(per_day: float) -> tuple[float, float]:
        older, recent = 14 * per_day, 14 * 1.5 * per_day  # the share: 1x, then 1.5x
        rest = 14 * 1000.0  # the rest of the state, each half, and 1000 in the 1-day window
        squares = (recent * recent / 14 / 1000, older * older / 14 / 1000)  # no scatter
        row = detector_reference._window(
            3 * per_day, 1000.0, recent, older, rest, rest, squares, 1, 28
        )
        flat = (older + recent) * 1000.0 / (2 * rest)  # the baseline share, no trend
        return row["expected"] / flat, row["statistic"]

    large, large_statistic = expected(100.0)
    small, small_statistic = expected(1.0)
    full = 1.5 ** (33 / 28)  # the whole trend, carried to the window's middle: 1.613
    assert 0.85 * math.log(full) < math.log(large) < math.log(full)  # 89 %
    assert 1.0 < small < 1.05
    # twice the latest share is an outbreak signal in both, far stronger with more cases
    assert large_statistic > small_statistic > 0
