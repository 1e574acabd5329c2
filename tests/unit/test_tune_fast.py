"""bench/tune_fast.py picks exactly evaluation.tune's thresholds (and reports its figures) on
made-up seasons whose statistics put some candidates inside the budget and some outside."""

import datetime as dt

import numpy as np

from bench import tune_fast
from flu_monitor import evaluation, refdata

GRID = {w: [2.4, 3.0, 3.6, 99.0] for w in evaluation.WINDOWS}
BUDGET = {"per_100_county_days": 0.9, "phase_or_size": 1.3, "worst_day_percent": 4.0}


def season(seed: int, outbreaks: bool) -> evaluation.Season:
    rng = np.random.default_rng(seed)
    days = evaluation._evaluated_days()
    shape = (len(refdata.counties()), len(days))
    plan = evaluation.outbreak_plan(seed) if outbreaks else []
    statistic = {w: rng.standard_t(6, shape) for w in evaluation.WINDOWS}
    statistic[7][rng.random(shape) < 0.01] = np.nan
    for k, outbreak in enumerate(plan):  # every other outbreak raises its statistics
        if k % 2:
            i = list(refdata.counties()).index(outbreak["counties"][0])
            start = days.index(dt.date.fromisoformat(outbreak["start"]))
            statistic[3][i, start : start + 3] += 2.5
    return evaluation.Season(
        kind="realistic", seed=seed, plan=plan, days=days,
        cases=rng.poisson(1.5, (shape[0], evaluation.LOOKBACK + shape[1])),
        alert=np.zeros(shape, dtype=bool), statistic=statistic, ears={},
        state_alert=np.zeros((3, shape[1]), dtype=bool), seconds=0.0,
    )  # fmt: skip


def test_the_fast_search_chooses_what_evaluation_tune_chooses():
    null = [season(s, False) for s in (1, 2)]
    found = [season(s, True) for s in (3, 4)]
    slow = evaluation.tune(null, found, evaluation.thresholds, GRID, BUDGET)
    fast = tune_fast.tuner(null, found, evaluation.thresholds, GRID, BUDGET)
    assert slow is not None and fast == slow
    assert slow[0] == {1: 3.0, 3: 3.6, 7: 99.0}  # neither the lowest nor "off" everywhere
    # a budget exactly at the chosen candidate's figures: "at most" must keep it in
    fa = slow[1]
    edge = {
        "per_100_county_days": fa["per_100_county_days"],
        "phase_or_size": max([*fa["by_phase"].values(), *fa["by_size"].values()]),
        "worst_day_percent": fa["worst_day_percent"],
    }
    slow_edge = evaluation.tune(null, found, evaluation.thresholds, GRID, edge)
    assert slow_edge is not None and slow_edge[0] == slow[0]
    assert tune_fast.tuner(null, found, evaluation.thresholds, GRID, edge) == slow_edge
    nothing = {**BUDGET, "worst_day_percent": -1.0}
    assert tune_fast.tuner(null, found, evaluation.thresholds, GRID, nothing) is None
