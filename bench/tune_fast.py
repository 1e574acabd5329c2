"""flu_monitor.evaluation.tune for per-window thresholds, every candidate at once.

ev.tune scores the 17^3 candidates of bench_detection.DETECTOR_GRID one by one (4-7 minutes
over 48 seasons). Here each county-day gets, per window, its level: how many of the grid's
thresholds its statistic exceeds (0 when it has fewer than MIN_CASES cases in the window or no
statistic). A county-day stays silent under the candidate (i, j, k) (grid indices of the 1-,
3- and 7-day thresholds) exactly when its levels are at most (i, j, k), so the silent
county-days of every candidate are one 3-D cumulative histogram of the levels; an outbreak is
missed exactly when the largest levels over its 7 days are at most (i, j, k). The false-alert
rates, the worst day and the shares found are then ev.false_alerts' and ev.detection's figures
(same rounding), and the chosen candidate is ev.tune's (the first best score in grid order):
`report` prints it through ev's own functions, and `--check` compares with ev.tune.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from flu_monitor import evaluation as ev
from flu_monitor import refdata


def _levels(season: ev.Season, grid: dict) -> np.ndarray:
    """window x county x day: how many of the window's thresholds the statistic exceeds."""
    out = []
    for w, values in grid.items():
        stat = np.nan_to_num(season.statistic[w], nan=-np.inf)
        count = (stat[..., None] > np.asarray(values)[None, None, :]).sum(axis=-1)
        out.append(np.where(season.window_cases(w) >= ev.MIN_CASES, count, 0))
    return np.array(out)


def _cumulative(levels: np.ndarray, size: int, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """group x size^3: per group, how many items have levels <= (i, j, k). `levels` is 3 x items,
    `groups` the item's group."""
    hist = np.zeros((n_groups, size, size, size), dtype=np.int64)
    np.add.at(hist, (groups, levels[0], levels[1], levels[2]), 1)
    return hist.cumsum(axis=1).cumsum(axis=2).cumsum(axis=3)


_round = np.vectorize(round)


def tune(null: list[ev.Season], outbreaks: list[ev.Season], grid: dict, budget: dict):
    """ev.tune(null, outbreaks, ev.thresholds, grid, budget), the same candidate."""
    assert list(grid) == list(ev.WINDOWS) and len({len(v) for v in grid.values()}) == 1
    size = max(len(v) for v in grid.values()) + 1
    classes = np.array([ev.size_class(c.population) for c in refdata.counties().values()])
    index = {f: i for i, f in enumerate(refdata.counties())}
    # false alerts: items are the unmasked county-days of the null seasons
    groups_phase, groups_size, groups_day, all_levels = [], [], [], []
    day_offset = 0
    for season in null:
        lv = _levels(season, grid)
        mask = ev._outbreak_days(season)
        phase = np.array([ev.PHASES.index(ev.phase(d)) for d in season.days])
        keep = ~mask
        all_levels.append(lv[:, keep])
        groups_phase.append(np.broadcast_to(phase[None, :], keep.shape)[keep])
        size_index = np.array([ev.CLASSES.index(c) for c in classes])
        groups_size.append(np.broadcast_to(size_index[:, None], keep.shape)[keep])
        day = day_offset + np.arange(len(season.days))
        groups_day.append(np.broadcast_to(day[None, :], keep.shape)[keep])
        day_offset += len(season.days)
    levels = np.concatenate(all_levels, axis=1)
    by_phase = _cumulative(levels, size, np.concatenate(groups_phase), len(ev.PHASES))
    by_size = _cumulative(levels, size, np.concatenate(groups_size), len(ev.CLASSES))
    by_day = _cumulative(levels, size, np.concatenate(groups_day), day_offset)
    n_phase = by_phase[:, -1, -1, -1][:, None, None, None]
    n_size = by_size[:, -1, -1, -1][:, None, None, None]
    n_day = by_day[:, -1, -1, -1][:, None, None, None]
    g = len(grid[1])
    cut = (slice(None), slice(0, g), slice(0, g), slice(0, g))
    alerts_phase, alerts_size = (n_phase - by_phase)[cut], (n_size - by_size)[cut]
    alerts_day = (n_day - by_day)[cut]
    total_alerts, total = alerts_phase.sum(axis=0), n_phase.sum()
    per_100 = _round(100.0 * total_alerts / total, 2)
    worst_group = np.maximum(
        _round(100.0 * alerts_phase / n_phase, 2).max(axis=0),
        _round(100.0 * alerts_size / n_size, 2).max(axis=0),
    )
    worst_day = _round(100.0 * alerts_day.max(axis=0) / len(classes), 1)
    ok = (
        (per_100 <= budget["per_100_county_days"])
        & (worst_group <= budget["phase_or_size"])
        & (worst_day <= budget["worst_day_percent"])
    )
    # detection: items are outbreaks, grouped by (size, class)
    cells, out_levels = [], []
    for season in outbreaks:
        lv = _levels(season, grid)
        for outbreak in season.plan:
            fips = outbreak["counties"][0]
            start = season.days.index(dt.date.fromisoformat(outbreak["start"]))
            out_levels.append(lv[:, index[fips], start : start + ev.OUTBREAK_DAYS].max(axis=1))
            cells.append(
                ev.SIZES.index(outbreak["relative_increase"]) * 3
                + ev.CLASSES.index(ev.size_class(refdata.counties()[fips].population))
            )
    missed = _cumulative(np.array(out_levels).T, size, np.array(cells), 3 * len(ev.SIZES))[cut]
    n_cell = np.bincount(cells, minlength=3 * len(ev.SIZES))[:, None, None, None]
    hits = n_cell - missed

    def pct(h, n):
        return _round(100.0 * h / n, 1)

    def share(size_index: int, klass: str | None):
        if klass is None:
            rows = slice(3 * size_index, 3 * size_index + 3)
            return pct(hits[rows].sum(axis=0), n_cell[rows].sum())
        cell = 3 * size_index + ev.CLASSES.index(klass)
        return pct(hits[cell], n_cell[cell])

    score = share(1, None) + share(2, None) + share(0, "large") + 0.5 * share(0, None)
    if not ok.any():
        return None
    flat = np.where(ok, score, -np.inf).ravel()
    i, j, k = np.unravel_index(int(np.argmax(flat)), ok.shape)
    chosen = {1: grid[1][i], 3: grid[3][j], 7: grid[7][k]}
    rule = ev.thresholds(chosen)
    return chosen, ev.false_alerts(null, rule), ev.detection(outbreaks, rule)


def tuner(null, outbreaks, make_rule, grid, budget):
    """Drop-in for ev.tune when make_rule is ev.thresholds."""
    assert make_rule is ev.thresholds
    return tune(null, outbreaks, grid, budget)
