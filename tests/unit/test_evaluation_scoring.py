"""The evaluation's scoring (flu_monitor.evaluation) on hand-made seasons with known alerts: the
figures bench_detection.py and the slow season run report, checked exactly without a warehouse."""

import datetime as dt

import numpy as np
import pytest

from flu_monitor import evaluation, refdata

COUNTIES = list(refdata.counties())
DAYS = evaluation._evaluated_days()
KINGS, HAMILTON_NY = "36047", "36041"  # large (2.7M) and small (5k)


def season(alerts: dict[tuple[str, dt.date], bool], plan=(), state_alerts=0) -> evaluation.Season:
    alert = np.zeros((len(COUNTIES), len(DAYS)), dtype=bool)
    for (fips, day), on in alerts.items():
        alert[COUNTIES.index(fips), DAYS.index(day)] = on
    state_alert = np.zeros((len(evaluation.STATES), len(DAYS)), dtype=bool)
    state_alert[0, :state_alerts] = True
    return evaluation.Season(
        kind="realistic", seed=0, plan=list(plan), days=DAYS,
        cases=np.zeros((len(COUNTIES), evaluation.LOOKBACK + len(DAYS))),
        alert=alert, statistic={}, ears={}, state_alert=state_alert, seconds=0.0,
    )  # fmt: skip


def as_given(s: evaluation.Season) -> np.ndarray:
    return s.alert


def test_the_sizes_of_the_named_counties():
    counties = refdata.counties()
    assert evaluation.size_class(counties[KINGS].population) == "large"
    assert evaluation.size_class(counties[HAMILTON_NY].population) == "small"
    assert len(COUNTIES) == 150 and len(DAYS) == 152


def test_false_alerts_per_100_county_days_by_phase_size_and_worst_day():
    peak = evaluation.PEAK
    s = season(
        {(KINGS, peak): True, (HAMILTON_NY, peak): True, (KINGS, peak + dt.timedelta(1)): True},
        state_alerts=2,
    )
    fa = evaluation.false_alerts([s], as_given)
    assert fa["per_100_county_days"] == round(100 * 3 / (150 * 152), 2) == 0.01
    peak_days = sum(evaluation.phase(d) == "peak" for d in DAYS)
    assert peak_days == 31
    assert fa["by_phase"] == {
        "early": 0.0, "rising": 0.0, "peak": round(100 * 3 / (150 * 31), 2), "falling": 0.0,
        "late": 0.0,
    }  # fmt: skip
    large = sum(evaluation.size_class(c.population) == "large" for c in refdata.counties().values())
    assert fa["by_size"]["large"] == round(100 * 2 / (large * 152), 2)
    assert fa["worst_day_percent"] == round(100 * 2 / 150, 1) == 1.3
    assert fa["state_alerts_per_100_state_days"] == round(100 * 2 / (3 * 152), 2)
    assert fa["alerts_a_day_max"] == 2  # the peak day's two counties (the state's: days 1 and 2)
    assert fa["alerts_a_day_median"] == 0.0


def test_alerts_in_an_outbreak_county_while_its_windows_hold_it_are_not_false():
    start = dt.date(2026, 1, 5)
    plan = [{"counties": [KINGS], "start": start.isoformat(), "relative_increase": 0.5}]
    last_held = start + dt.timedelta(2 * evaluation.OUTBREAK_DAYS - 2)  # 6 days after its end
    after = last_held + dt.timedelta(1)
    s = season({(KINGS, start): True, (KINGS, last_held): True, (KINGS, after): True}, plan)
    fa = evaluation.false_alerts([s], as_given)
    # one false alert, over the county-days left once the 13 held days are taken out
    assert fa["per_100_county_days"] == round(100 * 1 / (150 * 152 - 13), 2)
    assert fa["worst_day_percent"] == round(100 / 150, 1)


@pytest.mark.parametrize(
    ("alert_day", "found", "delay"),
    [
        (None, False, None),
        (0, True, 0),
        (3, True, 3),
        (6, True, 6),
        (7, False, None),
        (-1, False, None),
    ],
)
def test_an_outbreak_is_found_only_by_an_alert_on_one_of_its_7_days(alert_day, found, delay):
    start = dt.date(2026, 1, 5)
    plan = [{"counties": [KINGS], "start": start.isoformat(), "relative_increase": 0.25}]
    alerts = {} if alert_day is None else {(KINGS, start + dt.timedelta(alert_day)): True}
    result = evaluation.detection([season(alerts, plan)], as_given)
    assert result["found_percent"]["+25%"]["large"] == (100.0 if found else 0.0)
    assert result["found_percent"]["+25%"]["all"] == (100.0 if found else 0.0)
    assert result["found_percent"]["+25%"]["outbreaks"] == 1
    assert result["found_percent"]["+50%"] == {
        "small": None,
        "medium": None,
        "large": None,
        "all": None,
        "outbreaks": 0,
    }
    assert result["median_delay_days"] == delay


def test_goals_are_met_only_on_the_right_side_of_each_target():
    fa = {"per_100_county_days": 0.67, "by_phase": {"peak": 1.0}, "by_size": {"large": 0.2},
          "worst_day_percent": 5.1}  # fmt: skip
    found = {
        "found_percent": {"+50%": {"all": 75.0}, "+100%": {"all": 94.9}, "+25%": {"large": 80.0}},
        "median_delay_days": None,
    }
    met = {goal: ok for goal, (_, _, ok) in evaluation.goals_met(fa, found).items()}
    assert met == {
        "false_alerts": True, "false_alerts_phase_or_size": True, "worst_day_percent": False,
        "found_50": True, "found_100": False, "found_25_large": True, "median_delay_days": False,
    }  # fmt: skip
