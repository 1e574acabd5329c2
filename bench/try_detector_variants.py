"""Try variants of the outbreak detector on the tuning seeds, against the shipped rule.

Each variant changes the plain-Python reference (tests/warehouse/detector_reference.py) for one
run, not sql/060; the seasons are bench/tune_detector.py's (the simulator's counts, scored
without the warehouse), the simulated counts cached in --cache so later variants skip the
simulator. For each variant it prints the thresholds that find the most outbreaks within
bench_detection.py's false-alert budget, as tune_detector.py does.

    nice -n 10 .venv/bin/python bench/try_detector_variants.py --variant guard1 --seeds 1-24

Variants: shipped; guard0 / guard1 (days between baseline and window, shipped 2);
halves_by_size (a longer baseline where counts are few: halves of 28 days in small counties, 21
in medium, 14 in large); short_halves_large (7 days in large counties, 14 elsewhere); neighbours
(a county's share change shrunk towards that of its NEIGHBOURS nearest counties of the same
state, in place of towards no change); neighbours_half (half their change); cusum (the shipped
statistics, and also a one-sided CUSUM across days of the 1-day statistic); narrow_band (the
band without the expected count's uncertainty); oracle (the ceiling: the true expected counts,
its thresholds tuned the same way); error (the shipped 7-day expected count against the
simulator's true one, by size class and phase); error_ls28, error_shift, error_shift_search,
error_blend (the same for other estimates of that count, screened before a variant is worth a
detector: see ESTIMATES); shift / shift56 (each county's expected count from its share's line
on the state's growth, fitted on up to 120 days once 28 / 56 are there: shift_statistics).
Round 5: pooled / pooled56 / pooled_t05 / pooled_noscatter (the line's slope shrunk towards a
plane over the county centroids of its state: pooled_lines), true_slope (the ceiling of any
pooling: the slope of the line through the true expected counts); their screens error_pooled*,
error_true_slope.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from flu_monitor import evaluation as ev
from flu_monitor import refdata
from flu_monitor.paths import ROOT
from flu_monitor.simulator.model import Simulator
from flu_monitor.simulator.scenario import from_dict

sys.path.insert(0, str(ROOT))
from bench import tune_detector  # noqa: E402
from tests.warehouse import detector_reference as ref  # noqa: E402

NEIGHBOURS = 5
_shipped_window = ref._window
CUSUM_K = 0.5  # the CUSUM's allowance, in SDs of the 1-day statistic
HALVES = {
    "halves_by_size": {"small": 28, "medium": 21, "large": 14},
    "short_halves_large": {"small": 14, "medium": 14, "large": 7},
}


def statistics(counts: dict[str, list[int]], variant: str, seed: int = 0) -> dict:
    """ref.statistics for counties and states, with the variant's change applied (`seed`: the
    season's, for the true_slope ceiling, which reads the simulator's true expected counts)."""
    counties = refdata.counties()
    if variant in ("guard0", "guard1"):
        ref.GUARD_DAYS = int(variant[-1])
    if variant == "neighbours_half":
        ref._window = _half_prior
    if variant == "narrow_band":
        ref._window = _narrow_band
        variant = "shipped"
    if variant in ("shift", "shift56"):
        return shift_statistics(counts, 56 if variant == "shift56" else ev.FULL_HISTORY - 8)
    if variant.startswith("pooled"):  # round 5: pooled, pooled_t05, pooled56
        return shift_statistics(
            counts, 56 if variant.endswith("56") else ev.FULL_HISTORY - 8,
            pooled=0.5 if "_t05" in variant else True, level_scatter="noscatter" not in variant,
        )  # fmt: skip
    if variant == "true_slope":  # the ceiling of any pooling: the slope from the true counts
        return shift_statistics(counts, ev.FULL_HISTORY - 8, pooled=True, truth=_truth(seed))
    if variant not in (*HALVES, "neighbours", "neighbours_half"):
        return ref.statistics(counts, {f: c.state_code for f, c in counties.items()})
    days = len(next(iter(counts.values())))
    state, everyone = ref.state_totals(counts, {f: c.state_code for f, c in counties.items()})
    out = {}
    for s in ev.STATES:
        ref.HALF_DAYS = 14
        out.update(_rows(s, ref.unit_statistics(state[s], everyone)))
    for f, series in counts.items():
        group = state[counties[f].state_code]
        if variant in HALVES:
            ref.HALF_DAYS = HALVES[variant][ev.size_class(counties[f].population)]
            out.update(_rows(f, ref.unit_statistics(series, group)))
        else:
            near = _nearest(f, counties)
            nb = [sum(counts[n][t] for n in near) for t in range(days)]
            out.update(_rows(f, ref.unit_statistics(series, group, nb)))
    ref.HALF_DAYS = 14
    return out


def shift_statistics(
    counts: dict[str, list[int]],
    fewest: int,
    pooled: bool | float = False,
    level_scatter: bool = True,
    truth: np.ndarray | None = None,
) -> dict:
    """ref.statistics with each county's expected count of a window from its share line (see
    shift_estimate: fitted on up to 120 days ending at the window's baseline end, once that
    holds `fewest` days; before, the shipped statistic). The band: the line's prediction
    variance (its weights count each case 7 times; scaled by its residual scatter, at least 1)
    in place of the two halves', the shipped dispersion of the last 28 days around each half's
    share, the same floor and statistic."""
    counties = refdata.counties()
    rows = ref.statistics(counts, {f: c.state_code for f, c in counties.items()})
    fips = list(counts)
    states = np.array([counties[f].state_code for f in fips])
    series = np.array([counts[f] for f in fips], dtype=np.float64)
    rest = _rest(series, states)
    if truth is not None:  # the slope of the line through the true counts, known exactly
        line = dict(_share_lines(series, rest, fewest))
        line["b"] = _share_lines(truth, _rest(truth, states), fewest)["b"]
        line["var_b"] = np.zeros(series.shape)
    elif pooled is False:
        line = _share_lines(series, rest, fewest)
    else:
        line = pooled_lines(series, states, fewest, None if pooled is True else float(pooled))
    square = np.where(rest > 0, series * series / np.where(rest > 0, rest, 1.0), 0.0)
    for w, *_ in ref.WINDOWS:
        observed, rest_w = _sums(series, w), _sums(rest, w)
        for i, f in enumerate(fips):
            for t in range(2 * ref.HALF_DAYS + w + ref.GUARD_DAYS, series.shape[1]):
                e = t - w - ref.GUARD_DAYS
                if not np.isfinite(line["a"][i, e]):
                    continue
                u = line["growth"][i, t]
                centred = u - line["mean_u"][i, e]
                share = math.exp(line["a"][i, e] + line["b"][i, e] * centred)
                expected = share * rest_w[i, t]
                if pooled is False:
                    log_variance = (
                        7.0
                        * line["scatter"][i, e]
                        * (1.0 / line["sw"][i, e] + centred * centred / line["suu"][i, e])
                    )
                else:
                    log_variance = (
                        7.0 * (line["scatter"][i, e] if level_scatter else 1.0) / line["sw"][i, e]
                        + centred * centred * line["var_b"][i, e]
                    )
                dispersion = _dispersion(series[i], rest[i], square[i], e)
                root = math.sqrt(
                    dispersion * (expected + expected * expected * log_variance)
                    + ref.EXPECTED_CV**2 * expected * expected
                )
                cube = math.cbrt(expected)
                z = 1.5 * (math.cbrt(observed[i, t] ** 2) - cube * cube) * cube / root
                row = dict(rows[(f, t)])
                row[f"statistic_{w}d"] = z
                rows[(f, t)] = row
    for (unit, _), row in rows.items():  # the alert at the shipped thresholds
        if unit in counts:
            fires = [
                row[f"statistic_{w}d"] is not None and row[f"statistic_{w}d"] > k
                for w, k, _ in ref.WINDOWS
            ]
            row["alert"] = "shift" if any(fires) else None
    return rows


def _truth(seed: int) -> np.ndarray:
    """The realistic season's true expected counts (outbreaks left out), county x day."""
    sim = Simulator(from_dict(ev.scenario_dict("realistic")), seed=seed, start=ev.FIRST_DAY)
    span = (ev.LAST_DAY - ev.FIRST_DAY).days + 1
    return np.array([sim.expected_cases(ev.FIRST_DAY + t * ev.DAY)[0] for t in range(span)]).T


def _sums(a: np.ndarray, w: int) -> np.ndarray:
    """Sums of the w days ending on each day (NaN for the first w - 1)."""
    total = np.cumsum(np.pad(a, ((0, 0), (1, 0))), axis=1)
    out = np.full(a.shape, np.nan)
    out[:, w - 1 :] = total[:, w:] - total[:, :-w]
    return out


def _dispersion(y, rest, square, e) -> float:
    """The shipped Pearson dispersion of the two 14-day halves ending at day e."""
    total = 0.0
    for lo in (e - 13, e - 27):
        half, rest_half = y[lo : lo + 14].sum(), rest[lo : lo + 14].sum()
        if half > 0:
            total += rest_half / half * square[lo : lo + 14].sum() - half
    return max(total / 26.0, 1.0)


def _share_lines(series: np.ndarray, rest: np.ndarray, fewest: int, history: int = 120) -> dict:
    """Per county and last day e: the weighted least-squares line of the 7-day log share on
    the rest's 7-day log growth over the (up to) `history` days ending at e (NaN where fewer
    than `fewest`): a at the weighted mean growth, slope b, that mean, sum of weights, and the
    weighted sum of squared centred growths; and the growth itself."""
    county7, rest7 = _sums(series, 7), _sums(rest, 7)
    x = np.log((county7 + 0.5) / rest7)
    growth = np.full(series.shape, np.nan)
    growth[:, 7:] = np.log(rest7[:, 7:] / rest7[:, :-7])
    weight = rest7 * (series.sum(1) / rest.sum(1))[:, None]
    ok = np.isfinite(x) & np.isfinite(growth)
    w, x, u = np.where(ok, weight, 0.0), np.where(ok, x, 0.0), np.where(ok, growth, 0.0)
    n = ok.astype(np.float64)
    totals = {}
    for name, v in (("n", n), ("w", w), ("wu", w * u), ("wx", w * x), ("wuu", w * u * u),
                    ("wux", w * u * x), ("wxx", w * x * x)):  # fmt: skip
        c = np.cumsum(np.pad(v, ((0, 0), (1, 0))), axis=1)
        lo = np.maximum(np.arange(v.shape[1]) - history + 1, 0)
        totals[name] = c[:, 1:] - c[:, lo]
    sw = totals["w"]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_u = totals["wu"] / sw
        mean_x = totals["wx"] / sw
        suu = totals["wuu"] - sw * mean_u * mean_u
        sux = totals["wux"] - sw * mean_u * mean_x
        b = np.where(suu > 0, sux / suu, 0.0)
        # the line's residual scatter per unit weight (1 for Poisson counts on the line; more
        # with overdispersion or where the line misses): scales its prediction variance
        scatter = np.maximum(
            (totals["wxx"] - sw * mean_x * mean_x - b * sux) / np.maximum(totals["n"] - 2, 1), 1.0
        )
    enough = totals["n"] >= fewest
    return {
        "a": np.where(enough, mean_x, np.nan),
        "b": b,
        "mean_u": mean_u,
        "sw": sw,
        "suu": np.where(suu > 0, suu, np.inf),
        "growth": growth,
        "scatter": scatter,
    }


def _half_prior(*args):
    """ref._window with half the neighbours' share change as the prior mean (about the share of
    a county's timing that the simulator draws as a wave common to its area)."""
    *first, prior = args
    return _shipped_window(*first, None if prior is None else 0.5 * prior)


def _narrow_band(*args):
    """ref._window's expected count with a band that leaves out its estimate's uncertainty, the
    estimated dispersion and the floor: Poisson plus the simulator's day-to-day CV (0.1) alone.
    How much of the missing detection is the band rather than the expected count's error."""
    row = _shipped_window(*args)
    observed, expected, w = row["observed"], row["expected"], args[7]
    if row["statistic"] is not None:
        cube = math.cbrt(expected)
        root = math.sqrt(expected + 0.01 * expected * expected / w)
        row["statistic"] = 1.5 * (math.cbrt(observed * observed) - cube * cube) * cube / root
    return row


def _rows(unit: str, rows: list) -> dict:
    return {(unit, t): row for t, row in enumerate(rows) if row is not None}


def _nearest(fips: str, counties: dict) -> list[str]:
    me = counties[fips]
    peers = [f for f, c in counties.items() if c.state_code == me.state_code and f != fips]
    scale = math.cos(math.radians(me.latitude))

    def distance(f: str) -> float:
        c = counties[f]
        return (c.latitude - me.latitude) ** 2 + ((c.longitude - me.longitude) * scale) ** 2

    return sorted(peers, key=distance)[:NEIGHBOURS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seeds", type=tune_detector.seeds, default=tune_detector.seeds("1-24"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/detector_variant_counts"))
    args = parser.parse_args()
    tune_detector.reject_report_seeds(parser, args.seeds)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.variant.startswith("error"):  # the estimate alone, on the null seasons
        expected_error(args.seeds, args.cache, ESTIMATES[args.variant])
        return
    started = time.perf_counter()
    null, found = (
        [
            tune_detector.season(
                "realistic",
                s,
                outbreaks,
                lambda c, s=s: statistics(c, args.variant, s),
                args.cache,
            )
            for s in args.seeds
        ]
        for outbreaks in (False, True)
    )
    null, found = list(null), list(found)
    print(
        f"{args.variant}: {len(null) + len(found)} seasons in {time.perf_counter() - started:.0f} s"
    )
    if args.variant == "oracle":  # the ceiling: the true expected counts, thresholds tuned
        tune_detector.report(null, found, ev.oracle, shipped=None)
    elif args.variant == "cusum":
        grid = {w: [2.4, 2.8, 3.2, 3.6, 4.0, 4.4, 99.0] for w in ev.WINDOWS}
        tune_detector.report(
            null, found, cusum, {**grid, "h": [3.0, 4.0, 5.0, 6.0, 8.0, 99.0]},
            {**ev.THRESHOLDS, "h": 99.0},
        )  # fmt: skip
    else:
        tune_detector.report(null, found)


def expected_error(seeds: list[int], cache: Path, estimate) -> None:
    """How far an estimate of the 7-day expected count (`estimate`: county x day counts, their
    states -> county x day, NaN where none) is from the simulator's true one on the null
    seasons: log(estimate / truth) by size class and phase (mean = bias, SD = scatter)."""
    counties = refdata.counties()
    classes = np.array([ev.size_class(c.population) for c in counties.values()])
    states = np.array([c.state_code for c in counties.values()])
    first = (ev.FIRST_EVALUATED - ev.FIRST_DAY).days
    errors: dict = {}
    for seed in seeds:
        saved = cache / f"realistic-{seed}-0.npy"
        if not saved.exists():
            tune_detector.season("realistic", seed, False, cache=cache)
        series = np.load(saved).astype(np.float64)
        sim = Simulator(from_dict(ev.scenario_dict("realistic")), seed=seed, start=ev.FIRST_DAY)
        mean = np.array(
            [sim.expected_cases(ev.FIRST_DAY + t * ev.DAY)[0] for t in range(series.shape[1])]
        ).T
        truth = _sums(mean, 7)
        if estimate is true_slope_estimate:  # a ceiling: needs the truth
            guess = true_slope_estimate(series, states, mean)
        else:
            guess = estimate(series, states)
        for t in range(first, series.shape[1]):
            key = ev.phase(ev.FIRST_DAY + t * ev.DAY)
            log_error = np.log(guess[:, t] / truth[:, t])
            for size in ev.CLASSES:
                e = log_error[(classes == size) & np.isfinite(log_error)]
                errors.setdefault((size, key), []).append((e, truth[classes == size, t]))
    for size in ev.CLASSES:
        for phase in ev.PHASES:
            e = np.concatenate([e for e, _ in errors[(size, phase)]])
            true_counts = np.concatenate([t for _, t in errors[(size, phase)]])
            print(
                f"{size:6} {phase:8} log(estimate/truth): mean {e.mean():+.3f}, SD "
                f"{e.std():.3f}; true 7-day count median {np.median(true_counts):.0f}"
            )


def _rest(series: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Each county's state's cases minus its own."""
    group = np.zeros_like(series)
    for s in set(states):
        group[states == s] = series[states == s].sum(axis=0)
    return group - series


def shipped_estimate(series: np.ndarray, states: np.ndarray) -> np.ndarray:
    """The reference detector's 7-day expected count."""
    fips = list(refdata.counties())
    rows = ref.statistics(
        {f: series[i].astype(int).tolist() for i, f in enumerate(fips)},
        dict(zip(fips, states, strict=True)),
    )
    out = np.full(series.shape, np.nan)
    for (unit, t), row in rows.items():
        if unit in fips and row["expected_7d"]:
            out[fips.index(unit), t] = row["expected_7d"]
    return out


def ls28_estimate(series: np.ndarray, states: np.ndarray) -> np.ndarray:
    """A log-linear trend of the county's share fitted to the 28 daily counts of the shipped
    baseline by maximum likelihood (Poisson, the rest as offset; Newton), projected over the
    window: the least-squares trend in place of the two half sums."""
    rest = _rest(series, states)
    out = np.full(series.shape, np.nan)
    for t in range(ev.FULL_HISTORY, series.shape[1]):
        days = np.arange(t - 36, t - 8)
        y, r, d = series[:, days], rest[:, days], days - days.mean()
        a, b = np.log(np.maximum(y.sum(1), 0.5) / r.sum(1)), np.zeros(len(y))
        for _ in range(8):
            mu = r * np.exp(a[:, None] + b[:, None] * d)
            g0, g1 = (y - mu).sum(1), ((y - mu) * d).sum(1)
            h00, h01, h11 = mu.sum(1), (mu * d).sum(1), (mu * d * d).sum(1)
            det = h00 * h11 - h01 * h01
            a, b = a + (h11 * g0 - h01 * g1) / det, b + (h00 * g1 - h01 * g0) / det
        window = np.arange(t - 6, t + 1)
        out[:, t] = (
            rest[:, window] * np.exp(a[:, None] + b[:, None] * (window - days.mean()))
        ).sum(1)
    return out


def shift_estimate(
    series: np.ndarray, states: np.ndarray, history: int = 120, fewest: int = 28
) -> np.ndarray:
    """A county whose season runs s days behind its state's has, to first order, a log share
    of a - s x the state's log growth rate: regress the county's 7-day log share on the rest
    of its state's 7-day log growth (week on week) over up to `history` days of the series
    ending at the baseline's last day (weights: the county's expected 7-day count at a constant
    share), and read the share off the line at the window's growth. NaN with < `fewest` days."""
    rest = _rest(series, states)
    county7, rest7 = _sums(series, 7), _sums(rest, 7)
    share = np.log((county7 + 0.5) / rest7)
    growth = np.full(series.shape, np.nan)
    growth[:, 7:] = np.log(rest7[:, 7:] / rest7[:, :-7])
    weight = rest7 * (series.sum(1) / rest.sum(1))[:, None]
    out = np.full(series.shape, np.nan)
    for t in range(series.shape[1]):
        lo, end = max(0, t - 9 - history + 1), t - 9
        if end - lo + 1 < fewest:
            continue
        x, u = share[:, lo : end + 1], growth[:, lo : end + 1]
        ok = np.isfinite(x) & np.isfinite(u)
        w, x, u = np.where(ok, weight[:, lo : end + 1], 0.0), np.where(ok, x, 0), np.where(ok, u, 0)
        sw, su, sx = w.sum(1), (w * u).sum(1), (w * x).sum(1)
        suu, sux = (w * u * u).sum(1), (w * u * x).sum(1)
        det = sw * suu - su * su
        slope = np.where(det > 0, (sw * sux - su * sx) / np.where(det > 0, det, 1.0), 0.0)
        out[:, t] = np.exp((sx - slope * su) / sw + slope * growth[:, t]) * rest7[:, t]
    return out


def shift_search_estimate(
    series: np.ndarray, states: np.ndarray, history: int = 120, fewest: int = 56
) -> np.ndarray:
    """The county's 7-day share as the rest of its state's 7-day curve shifted by s days:
    log share(d) = a + ln rest7(d - s) - ln rest7(d), s on a grid of -20..20 days (linear in
    between; past the last day the curve goes on at its last week's growth), a and s fitted by
    weighted least squares over up to `history` days ending at the baseline's last day."""
    rest = _rest(series, states)
    county7, rest7 = _sums(series, 7), _sums(rest, 7)
    share, log_rest = np.log((county7 + 0.5) / rest7), np.log(rest7)
    weight = rest7 * (series.sum(1) / rest.sum(1))[:, None]
    days = series.shape[1]

    def shifted(last: int, s: float) -> np.ndarray:
        """ln rest7(d - s) for every day d, from days 6..last only."""
        d = np.arange(days) - s
        clipped = np.clip(d, 6, last)
        lo = np.floor(clipped).astype(int)
        hi, f = np.minimum(lo + 1, last), clipped - lo
        out = log_rest[:, lo] * (1 - f) + log_rest[:, hi] * f
        growth = (log_rest[:, last] - log_rest[:, last - 7]) / 7.0
        out = np.where(d > last, log_rest[:, [last]] + (d - last) * growth[:, None], out)
        return np.where(d < 6, np.nan, out)

    out = np.full(series.shape, np.nan)
    for t in range(days):
        end = t - 9
        lo = max(6, end - history + 1)
        if end - lo + 1 < fewest:
            continue
        best_fit, best = np.full(len(series), np.inf), np.full(len(series), np.nan)
        for s in np.arange(-20.0, 20.5, 1.0):
            offset = shifted(end, s)[:, lo : end + 1] - log_rest[:, lo : end + 1]
            ok = np.isfinite(offset)
            w = np.where(ok, weight[:, lo : end + 1], 0.0)
            residual = np.where(ok, share[:, lo : end + 1] - offset, 0.0)
            a = (w * residual).sum(1) / w.sum(1)
            fit = (w * (residual - a[:, None]) ** 2).sum(1)
            better = fit < best_fit
            best_fit = np.where(better, fit, best_fit)
            best = np.where(better, a + shifted(t, s)[:, t] - log_rest[:, t], best)
        out[:, t] = np.exp(best) * rest7[:, t]
    return out


def blend_estimate(series: np.ndarray, states: np.ndarray) -> np.ndarray:
    """exp(0.3 log shipped + 0.7 log shift), the shift fitted once 56 days are in the series."""
    shipped, shift = shipped_estimate(series, states), shift_estimate(series, states, fewest=56)
    return np.where(np.isnan(shift), shipped, np.exp(0.3 * np.log(shipped) + 0.7 * np.log(shift)))


def pooled_lines(
    series: np.ndarray, states: np.ndarray, fewest: int = 28, tau: float | None = None
) -> dict:
    """Round 5: each county's share line (_share_lines: log 7-day share on the rest's week-on-week
    log growth, up to 120 days ending at each day), its slope shrunk (empirical Bayes) towards a
    plane over the county centroids fitted per state and day: the simulator's season timing is
    half a linear wave across the states, so the slopes of a state's counties lie on a plane
    plus each county's own part. Plane by weighted least squares, weights 1 / (var_b + tau^2),
    var_b = the slope's own variance (7 x scatter / suu); tau^2 (the own part's variance) given,
    or estimated per state and day by moments. Returns _share_lines' dict with b shrunk and
    var_b (the shrunk slope's variance)."""
    counties = refdata.counties()
    lat = np.array([c.latitude for c in counties.values()])
    lon = np.array([c.longitude for c in counties.values()])
    lon = (lon - lon.mean()) * math.cos(math.radians(lat.mean()))
    lat = lat - lat.mean()
    rest = _rest(series, states)
    line = _share_lines(series, rest, fewest)
    b = line["b"]
    with np.errstate(invalid="ignore", divide="ignore"):
        var_b = np.where(np.isfinite(line["suu"]), 7.0 * line["scatter"] / line["suu"], np.inf)
    usable = np.isfinite(line["a"]) & np.isfinite(var_b) & np.isfinite(b)
    shrunk, post = np.where(usable, b, 0.0), np.full(b.shape, np.inf)
    for s in set(states):
        rows = states == s
        x = np.stack([np.ones(rows.sum()), lon[rows], lat[rows]], axis=1)  # county x 3
        bs, vs, ok = b[rows], var_b[rows], usable[rows]
        t2 = np.full(b.shape[1], 0.5 if tau is None else tau * tau)
        for _ in range(1 if tau is not None else 4):
            w = np.where(ok, 1.0 / (np.where(ok, vs, 1.0) + t2[None, :]), 0.0)  # county x day
            xtwx = np.einsum("ci,cj,cd->dij", x, x, w) + 1e-9 * np.eye(3)
            xtwb = np.einsum("ci,cd->di", x, w * np.where(ok, bs, 0.0))
            coef = np.linalg.solve(xtwx, xtwb[..., None])[..., 0]  # day x 3
            plane = x @ coef.T  # county x day
            if tau is None:  # moments: mean excess of the squared residual over its own variance
                excess = np.where(ok, (bs - plane) ** 2 - np.where(ok, vs, 0.0), 0.0)
                n = ok.sum(0)
                t2 = np.maximum(
                    (w * excess).sum(0) / np.maximum(w.sum(0), 1e-12) * n / np.maximum(n - 3, 1),
                    0.01,
                )
        weight = t2[None, :] / (t2[None, :] + np.where(ok, vs, np.inf))
        shrunk[rows] = np.where(ok, plane + weight * (bs - plane), 0.0)
        post[rows] = np.where(ok, weight * np.where(ok, vs, 0.0), np.inf)
    line = dict(line)
    line["b"], line["var_b"] = shrunk, post
    return line


def pooled_estimate(
    series: np.ndarray,
    states: np.ndarray,
    tau: float | None = None,
    level28: bool = False,
    own: bool = False,
) -> np.ndarray:
    """The 7-day expected count from pooled_lines (own: the slope unshrunk, for comparison),
    read at the window's growth; the level either the line's (up to 120 days) or the last 28
    baseline days' share moved along the slope from their rest-weighted mean growth."""
    rest = _rest(series, states)
    line = _share_lines(series, rest, 28) if own else pooled_lines(series, states, 28, tau)
    rest7 = _sums(rest, 7)
    out = np.full(series.shape, np.nan)
    for t in range(9 + 28, series.shape[1]):
        e = t - 9
        b = line["b"][:, e]
        if level28:
            days = slice(e - 27, e + 1)
            u = line["growth"][:, days]
            r = rest[:, days]
            u_base = (r * u).sum(1) / r.sum(1)
            share = series[:, days].sum(1) / r.sum(1)
            out[:, t] = share * np.exp(b * (line["growth"][:, t] - u_base)) * rest7[:, t]
        else:
            out[:, t] = (
                np.exp(line["a"][:, e] + b * (line["growth"][:, t] - line["mean_u"][:, e]))
                * rest7[:, t]
            )
    return out


def true_slope_estimate(series: np.ndarray, states: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """A ceiling for any pooling of the slope: the share line's slope fitted to the simulator's
    true expected counts (mean: county x day), its level and the growths from the counts."""
    rest = _rest(series, states)
    line = _share_lines(series, rest, 28)
    true_line = _share_lines(mean, _rest(mean, states), 28)
    rest7 = _sums(rest, 7)
    out = np.full(series.shape, np.nan)
    for t in range(9 + 28, series.shape[1]):
        e = t - 9
        centred = line["growth"][:, t] - line["mean_u"][:, e]
        out[:, t] = np.exp(line["a"][:, e] + true_line["b"][:, e] * centred) * rest7[:, t]
    return out


ESTIMATES = {
    "error_true_slope": true_slope_estimate,
    "error_pooled": pooled_estimate,
    "error_pooled_own": lambda s, st: pooled_estimate(s, st, own=True),
    "error_pooled_t05": lambda s, st: pooled_estimate(s, st, tau=0.5),
    "error_pooled_t07": lambda s, st: pooled_estimate(s, st, tau=0.7),
    "error_pooled28": lambda s, st: pooled_estimate(s, st, level28=True),
    "error_pooled28_own": lambda s, st: pooled_estimate(s, st, level28=True, own=True),
    "error": shipped_estimate,
    "error_ls28": ls28_estimate,
    "error_shift": shift_estimate,
    "error_blend": blend_estimate,
    "error_shift_search": shift_search_estimate,
}


def cusum(k: dict) -> ev.AlertRule:
    """The windows' thresholds k[w], or a one-sided CUSUM of the 1-day statistic (reference
    value CUSUM_K) above k["h"] with at least MIN_CASES in 3 days; no reset after an alarm."""
    windows = ev.thresholds({w: k[w] for w in ev.WINDOWS})

    def rule(season: ev.Season) -> np.ndarray:
        z = np.nan_to_num(season.statistic[1])
        total = np.zeros_like(z)
        for t in range(z.shape[1]):
            before = total[:, t - 1] if t else 0.0
            total[:, t] = np.maximum(0.0, before + z[:, t] - CUSUM_K)
        return windows(season) | ((total > k["h"]) & (season.window_cases(3) >= ev.MIN_CASES))

    return rule


if __name__ == "__main__":
    main()
