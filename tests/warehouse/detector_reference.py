"""The trend-adjusted outbreak detector of sql/060_surveillance.sql in plain Python.

Written from its description (docs/warehouse.md, "Outbreak detection"), step by step in the same
floating-point operations and order as the SQL, so that on PostgreSQL (same libm) every figure of
mv_outbreak_statistics equals this to the last bit.
"""

import math

# (window days, threshold on the statistic, fewest cases in the window), as in the SQL
WINDOWS = ((1, 3.8, 3), (3, 2.6, 3), (7, 4.4, 3))
TREND_SD = 0.1  # prior SD of a share's log change over 14 days (shrinks a noisy trend)
EXPECTED_CV = 0.05  # floor on the expected count's relative uncertainty
# The columns of mv_outbreak_statistics besides unit, unit_level, state_code and day.
WINDOW_COLUMNS = ("statistic_1d", "statistic_3d", "statistic_7d", "window_days", "observed",
                  "expected", "ratio", "statistic", "strength", "alert", "observed_7d",
                  "expected_7d")  # fmt: skip
HALF_DAYS = 14  # the baseline: two halves of 14 days, ending 2 days before the window
GUARD_DAYS = 2


def _run(series: list[int], t: int, first: int, last: int) -> int:
    """Sum of series[t - first .. t - last] (days before t), over the days that exist."""
    return sum(series[max(0, t - first) : max(0, t - last + 1)])


def _float_run(values: list[float], t: int, first: int, last: int) -> float:
    """The same run of floats, added in day order (as PostgreSQL sums a window frame)."""
    total = None
    for value in values[max(0, t - first) : max(0, t - last + 1)]:
        total = value if total is None else total + value
    return total


def unit_statistics(
    cases: list[int], group: list[int], neighbours: list[int] | None = None
) -> list[dict | None]:
    """One entry per day of a unit's zero-filled daily series (`group`: its group's cases, the
    unit's included): None before any window has a baseline, else the row of
    mv_outbreak_statistics (without the key columns). A baseline is 28 days, or the recent 14
    while the series is too short for the older half. `neighbours` (an experiment of
    bench/try_detector_variants.py, not in the SQL): nearby counties' cases, whose share change
    becomes the prior mean of the unit's own in place of no change."""
    square = [float(y) * y / (g - y) if g > y else 0.0 for y, g in zip(cases, group, strict=True)]
    rows: list[dict | None] = []
    for t in range(len(cases)):
        windows = {}
        for w, threshold, min_cases in WINDOWS:
            recent_end, older_end = w + GUARD_DAYS, w + GUARD_DAYS + HALF_DAYS
            start = older_end + HALF_DAYS - 1  # the baseline's first day, counted back from t
            if t >= start:
                days = 2 * HALF_DAYS
            elif t >= older_end - 1:  # short series: the recent half only, no trend
                days, start = HALF_DAYS, older_end - 1
            else:
                continue
            observed = float(_run(cases, t, w - 1, 0))
            rest_window = float(_run(group, t, w - 1, 0) - _run(cases, t, w - 1, 0))
            recent = float(_run(cases, t, older_end - 1, recent_end))
            rest_recent = float(_run(group, t, older_end - 1, recent_end) - recent)
            older = rest_older = 0.0
            if days == 2 * HALF_DAYS:
                older = float(_run(cases, t, start, older_end))
                rest_older = float(_run(group, t, start, older_end) - older)
            squares = (_float_run(square, t, older_end - 1, recent_end), 0.0)
            if days == 2 * HALF_DAYS:
                squares = (squares[0], _float_run(square, t, start, older_end))
            prior = None
            if neighbours is not None and days == 2 * HALF_DAYS:
                prior = math.log(
                    max(float(_run(neighbours, t, older_end - 1, recent_end)), 1.0)
                    * max(rest_older, 1.0)
                    / (
                        max(float(_run(neighbours, t, start, older_end)), 1.0)
                        * max(rest_recent, 1.0)
                    )
                )
            windows[w] = _window(
                observed, rest_window, recent, older, rest_recent, rest_older, squares, w, days,
                prior,
            )  # fmt: skip
            windows[w]["threshold"] = threshold
            windows[w]["fires"] = int(
                windows[w]["statistic"] is not None
                and windows[w]["statistic"] > threshold
                and observed >= min_cases
            )
        rows.append(_strongest(windows) if windows else None)
    return rows


def _window(
    observed, rest_window, recent, older, rest_recent, rest_older, squares, w, days, prior=None
):
    baseline = older + recent
    rest_baseline = rest_older + rest_recent
    trend = 0.0
    if older > 0.0 and recent > 0.0 and rest_older > 0.0 and rest_recent > 0.0:
        # the share's change, carried to the window's middle, shrunk by its noise
        # the window's middle from the baseline's, in half-lengths: (32 + w) / 28 as shipped
        carried = float(2 * HALF_DAYS + 2 * GUARD_DAYS + w) / float(2 * HALF_DAYS)
        trend = carried * TREND_SD * TREND_SD / (TREND_SD * TREND_SD + 1.0 / older + 1.0 / recent)
    log_growth = math.log(
        max(recent, 1.0) * max(rest_older, 1.0) / (max(older, 1.0) * max(rest_recent, 1.0))
    )
    exponent = trend * log_growth
    if prior is not None and trend > 0.0:  # shrunk towards the neighbours' change, not to none
        exponent += (carried - trend) * prior
    expected = None
    if rest_baseline != 0.0:
        expected = baseline * rest_window / rest_baseline * math.exp(exponent)
    if trend > 0.0:
        a, b = 1.0 / baseline - trend / older, 1.0 / baseline + trend / recent
        log_variance = older * a * a + recent * b * b
    else:
        log_variance = 1.0 / baseline if baseline != 0.0 else None
    # Pearson dispersion around each half's own share (a trend does not count as scatter)
    squares_recent, squares_older = squares
    scatter = rest_recent / recent * squares_recent - recent if recent > 0.0 else 0.0
    scatter_older = rest_older / older * squares_older - older if older > 0.0 else 0.0
    dispersion = max((scatter + scatter_older) / float(days - days // HALF_DAYS), 1.0)
    statistic = None
    if expected is not None and log_variance is not None:
        root = math.sqrt(
            dispersion * (expected + expected * expected * log_variance)
            + EXPECTED_CV * EXPECTED_CV * expected * expected
        )
        if root != 0.0:
            cube = math.cbrt(expected)
            statistic = 1.5 * (math.cbrt(observed * observed) - cube * cube) * cube / root
    return {"observed": observed, "expected": expected, "statistic": statistic}


def _strongest(windows: dict) -> dict:
    def rank(w):
        if w not in windows or windows[w]["statistic"] is None:
            return -1000000.0
        return windows[w]["fires"] * 1000000.0 + windows[w]["statistic"] / windows[w]["threshold"]

    chosen = 1 if rank(1) >= rank(3) and rank(1) >= rank(7) else 3 if rank(3) >= rank(7) else 7
    pick = windows.get(chosen, {})
    expected, statistic = pick.get("expected"), pick.get("statistic")
    seven = windows.get(7, {})
    return {
        "statistic_1d": windows.get(1, {}).get("statistic"),
        "statistic_3d": windows.get(3, {}).get("statistic"),
        "statistic_7d": seven.get("statistic"),
        "window_days": chosen,
        "observed": pick.get("observed"),
        "expected": expected,
        "ratio": pick["observed"] / expected if expected else None,
        "statistic": statistic,
        "strength": statistic / pick["threshold"] if statistic is not None else None,
        "alert": f"trend {chosen}d" if pick.get("fires") == 1 else None,
        "observed_7d": seven.get("observed"),
        "expected_7d": seven.get("expected"),
    }


def state_totals(
    cases_by_county: dict[str, list[int]], state_of: dict[str, str]
) -> tuple[dict[str, list[int]], list[int]]:
    """({state: its daily cases}, the three states' daily cases) from the county series."""
    days = len(next(iter(cases_by_county.values())))
    states = sorted(set(state_of.values()))
    state_cases = {s: [0] * days for s in states}
    for fips, series in cases_by_county.items():
        for t, y in enumerate(series):
            state_cases[state_of[fips]][t] += y
    return state_cases, [sum(state_cases[s][t] for s in states) for t in range(days)]


def statistics(cases_by_county: dict[str, list[int]], state_of: dict[str, str]) -> dict:
    """{(unit, day index): row} for every county (vs the rest of its state) and state (vs the
    other two), from zero-filled daily county series of equal length."""
    states = sorted(set(state_of.values()))
    state_cases, everyone = state_totals(cases_by_county, state_of)
    units = [(f, series, state_cases[state_of[f]]) for f, series in cases_by_county.items()]
    units += [(s, state_cases[s], everyone) for s in states]
    out = {}
    # A unit's rows depend on its series and its group's only: units with the same two (the
    # counties of a state without a case: 144 of 150 in test_day_refresh's season) are computed
    # once, for a seventh of the time there (0.09 against 0.68 CPU-s)
    computed: dict[tuple[tuple[int, ...], tuple[int, ...]], list[dict | None]] = {}
    for unit, series, group in units:
        key = (tuple(series), tuple(group))
        if key not in computed:
            computed[key] = unit_statistics(series, group)
        for t, row in enumerate(computed[key]):
            if row is not None:
                out[(unit, t)] = dict(row)
    return out
