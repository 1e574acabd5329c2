"""EARS C1/C2/C3 outbreak detection against a plain-Python reference implementation."""

import datetime as dt
import math
import statistics

import pytest

from flu_monitor import refdata

from .conftest import event, ingest, query

pytestmark = pytest.mark.postgres

START = dt.date(2026, 10, 1)
SPIKE_DAY = 19  # the latest complete day: day 20 is the latest day with data
ALBANY = [2, 3] * 9 + [2, 14, 1]  # days 0..20: flat, then the spike, then a partial day
BERGEN = {0: 1, 5: 1, 12: 1}  # sparse: every other day is a zero


def ears_reference(series: list[int]) -> list[dict]:
    """CDC EARS on a zero-filled daily series: C1 baseline t-7..t-1, C2 baseline t-9..t-3,
    C = (x - mean) / max(sample SD, 0.5), C3 = sum over t-2..t of max(0, C2 - 1)."""

    def statistic(t, nearest, farthest):
        if t - farthest < 0:
            return None, None, None
        baseline = series[t - farthest : t - nearest + 1]
        mean, sd = statistics.fmean(baseline), statistics.stdev(baseline)
        return (series[t] - mean) / max(sd, 0.5), mean, sd

    rows, c2s = [], []
    for t in range(len(series)):
        c1, mean, sd = statistic(t, 1, 7)
        c2, _, _ = statistic(t, 3, 9)
        c2s.append(c2)
        last3 = c2s[-3:] if t >= 2 else [None]
        c3 = sum(max(0.0, c - 1) for c in last3) if None not in last3 else None
        fired = [
            n
            for n, v, z in (("C1", c1, 3.09), ("C2", c2, 3.09), ("C3", c3, 1.96))
            if v is not None and v > z
        ]
        rows.append(
            {
                "cases": series[t],
                "cases_last_7_days": sum(series[max(0, t - 6) : t + 1]),
                "baseline_mean": mean,
                "baseline_sd": sd,
                "c1": c1,
                "c2": c2,
                "c3": c3,
                "alert": ",".join(fired) or None,
            }
        )
    return rows


def _events() -> list[dict]:
    events = []
    for day, count in enumerate(ALBANY):
        for i in range(count):
            events.append(_on(day, "36001", i))
    for day, count in BERGEN.items():
        for i in range(count):
            events.append(_on(day, "34003", i))
    return events


def _on(day: int, fips: str, i: int) -> dict:
    when = START + dt.timedelta(days=day)
    return event(county_fips=fips, event_time=f"{when.isoformat()}T{i % 24:02d}:00:00Z", n=i)


@pytest.fixture
def alerts(warehouse):
    events = [{k: v for k, v in e.items() if k != "n"} for e in _events()]
    ingest(warehouse, events[:30], first_offset=0)
    ingest(warehouse, events[30:], first_offset=30)  # incremental daily counts, full EARS
    return warehouse


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), b, rel_tol=1e-9, abs_tol=1e-9)


def test_every_county_day_matches_the_reference(alerts):
    rows = query(
        alerts,
        "SELECT county_fips, day, cases, cases_last_7_days, baseline_mean, "
        "baseline_sd, c1, c2, c3, alert FROM mv_county_alerts",
    )
    got = {(r[0], r[1]): r[2:] for r in rows}
    assert len(got) == 150 * len(ALBANY)  # every county, every day: zero-filled
    series = {fips: [0] * len(ALBANY) for fips in refdata.counties()}
    series["36001"] = ALBANY
    for day, count in BERGEN.items():
        series["34003"][day] = count
    for fips, counts in series.items():
        for t, want in enumerate(ears_reference(counts)):
            row = got[(fips, START + dt.timedelta(days=t))]
            assert row[0] == want["cases"] and row[1] == want["cases_last_7_days"], (fips, t)
            for value, key in zip(
                row[2:7], ("baseline_mean", "baseline_sd", "c1", "c2", "c3"), strict=True
            ):
                assert _close(value, want[key]), (fips, t, key, value, want[key])
            assert row[7] == want["alert"], (fips, t)


def test_the_planted_spike_is_flagged_and_flat_days_are_not(alerts):
    flagged = query(
        alerts,
        "SELECT county_fips, day, alert FROM mv_county_alerts WHERE alert IS NOT NULL ORDER BY day",
    )
    spike = START + dt.timedelta(days=SPIKE_DAY)
    assert flagged[0][:2] == ("36001", spike)
    assert set(flagged[0][2].split(",")) >= {"C1", "C2"}
    assert all(day >= spike for _, day, _ in flagged)  # no flat day, no sparse Bergen day
    assert {fips for fips, _, _ in flagged} == {"36001"}


def test_sparse_county_days_are_zeros_not_gaps(alerts):
    rows = query(
        alerts,
        "SELECT day, cases, c1 FROM mv_county_alerts WHERE county_fips = '34003' ORDER BY day",
    )
    assert [r[1] for r in rows] == [BERGEN.get(t, 0) for t in range(len(ALBANY))]
    day12 = rows[12]  # its C1 baseline (days 5..11) holds day 5's case and six zeros
    assert _close(day12[2], ears_reference([BERGEN.get(t, 0) for t in range(21)])[12]["c1"])


def test_current_alerts_are_the_latest_complete_day(alerts):
    rows = query(
        alerts,
        "SELECT day, county_fips, county_name, state_code, cases, "
        "cases_last_7_days, alert FROM v_current_alerts",
    )
    spike = START + dt.timedelta(days=SPIKE_DAY)
    want = ears_reference(ALBANY)[SPIKE_DAY]
    assert rows == [
        (spike, "36001", "Albany County", "NY", 14, want["cases_last_7_days"], want["alert"])
    ]
    kpis = query(alerts, "SELECT DISTINCT day FROM v_dashboard_kpis")
    assert kpis == [(START + dt.timedelta(days=len(ALBANY) - 1),)]  # "now" is the data's
