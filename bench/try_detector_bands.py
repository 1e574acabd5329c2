"""Round 6: which part of the detector's statistic loses the power — its expected count or its band?

The shipped county statistic (tests/warehouse/detector_reference.py, sql/060) is
1.5 (O^(2/3) - E^(2/3)) E^(1/3) / sqrt(V) with V = D (E + E^2 L) + 0.05^2 E^2: E the expected
count of the window (the share of the 28-day baseline, trend carried), L the log variance of E
(its own uncertainty), D the county's Pearson dispersion over its baseline (at least 1) and 0.05
the floor on E's relative SD. This restates it in numpy (checked against the reference on one
season: `--check`) and swaps its parts for the oracle's (the simulator's true expected count
and its true variance, Poisson plus the gamma day factor) or for pooled dispersions, each set of
statistics tuned to bench_detection.py's false-alert budget as bench/tune_detector.py does.

    nice -n 10 .venv/bin/python bench/try_detector_bands.py --seeds 1-24 [--kind idealised]
        [--variants shipped,b_true_var,...]

Variants (E, V):
  shipped           shipped E, shipped V (restated)
  oracle_cube       true E, true V, the shipped cube-root form (the oracle's z is (O - E)/sqrt(V))
  a_true_e          true E, the shipped band recipe around it: D (E + E^2 L) + 0.05^2 E^2
  a_true_e_disp     true E, D E only (the shipped dispersion, no L, no floor)
  b_true_var        shipped E, the true count variance only (no term for E's error)
  b_true_var_l      shipped E, true count variance + E^2 L + 0.05^2 E^2 (true D in place of D)
  c_no_floor        shipped without the floor
  c_no_disp         shipped with D = 1 (Poisson + L + floor)
  c_no_disp_floor   D = 1, no floor: E + E^2 L
  pooled_state      D = 1 + phi E / w, phi one negative-binomial dispersion per state and day
                    by moments from all its counties' baseline Pearson scatter
  pooled_size       the same, phi per size class (all three states) and day
  pooled_state_f0   pooled_state without the floor
  fixed_phi         D = 1 + 0.1^2 E / w: the simulator's true day-to-day CV as a fixed parameter
  shrunk_state      the county's own D shrunk towards pooled_state's 1 + phi E / w (weights: its
                    26 degrees of freedom against PRIOR_DOF)
"""

from __future__ import annotations

import argparse
import dataclasses
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
from bench import tune_detector, tune_fast  # noqa: E402
from tests.warehouse import detector_reference as ref  # noqa: E402

HALF = ref.HALF_DAYS
GUARD = ref.GUARD_DAYS
CV = ref.EXPECTED_CV
PRIOR_DOF = 26.0
VARIANTS = ("shipped", "oracle_cube", "a_true_e", "a_true_e_disp", "b_true_var", "b_true_var_l",
            "c_no_floor", "c_no_disp", "c_no_disp_floor", "pooled_state", "pooled_size",
            "pooled_state_f0", "shrunk_state", "fixed_phi")  # fmt: skip


def truth(kind: str, seed: int, cache: Path) -> tuple[np.ndarray, float]:
    """The season's true expected counts (outbreaks left out), county x day from FIRST_DAY, and
    the simulator's day-to-day CV."""
    sim = Simulator(from_dict(ev.scenario_dict(kind)), seed=seed, start=ev.FIRST_DAY)
    saved = cache / f"truth-{kind}-{seed}.npy"
    if saved.exists():
        mean = np.load(saved)
    else:
        span = (ev.LAST_DAY - ev.FIRST_DAY).days + 1
        mean = np.array([sim.expected_cases(ev.FIRST_DAY + t * ev.DAY)[0] for t in range(span)]).T
        np.save(saved, mean)
    return mean, float(sim.scenario.baseline.daily_noise_cv)


def _cum(a: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1)


def parts(counts: np.ndarray, states: np.ndarray, w: int, first: int) -> dict[str, np.ndarray]:
    """The shipped statistic's parts for window w, county x day (days first..end), as in
    detector_reference._window with the full 28-day baseline (every evaluated day has it)."""
    rest = np.zeros_like(counts)
    for s in set(states):
        rest[states == s] = counts[states == s].sum(axis=0)
    rest = rest - counts
    square = np.where(rest > 0, counts * counts / np.where(rest > 0, rest, 1.0), 0.0)
    cy, cr, cs = _cum(counts), _cum(rest), _cum(square)
    t = np.arange(first, counts.shape[1])

    def run(c: np.ndarray, a: int, b: int) -> np.ndarray:  # days t - a .. t - b
        return c[:, t - b + 1] - c[:, t - a]

    recent_end, older_end = w + GUARD, w + GUARD + HALF
    start = older_end + HALF - 1
    assert first >= start
    observed, rest_window = run(cy, w - 1, 0), run(cr, w - 1, 0)
    recent, rest_recent = run(cy, older_end - 1, recent_end), run(cr, older_end - 1, recent_end)
    older, rest_older = run(cy, start, older_end), run(cr, start, older_end)
    sq_recent, sq_older = run(cs, older_end - 1, recent_end), run(cs, start, older_end)
    baseline, rest_baseline = older + recent, rest_older + rest_recent
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (older > 0) & (recent > 0) & (rest_older > 0) & (rest_recent > 0)
        carried = (2 * HALF + 2 * GUARD + w) / (2 * HALF)
        trend = np.where(
            ok, carried * ref.TREND_SD**2 / (ref.TREND_SD**2 + 1 / older + 1 / recent), 0.0
        )
        log_growth = np.log(
            np.maximum(recent, 1) * np.maximum(rest_older, 1)
            / (np.maximum(older, 1) * np.maximum(rest_recent, 1))
        )  # fmt: skip
        expected = np.where(
            rest_baseline != 0,
            baseline * rest_window / rest_baseline * np.exp(trend * log_growth),
            np.nan,
        )
        a, b = 1 / baseline - trend / older, 1 / baseline + trend / recent
        log_variance = np.where(
            trend > 0,
            older * a * a + recent * b * b,
            np.where(baseline != 0, 1 / baseline, np.nan),
        )
        scatter = np.where(recent > 0, rest_recent / recent * sq_recent - recent, 0.0)
        scatter += np.where(older > 0, rest_older / older * sq_older - older, 0.0)
    return {
        "observed": observed,
        "expected": expected,
        "log_variance": log_variance,
        "scatter": scatter,  # Pearson chi-square of the 28 baseline days, 26 degrees of freedom
        "baseline": baseline,
        "rest_window": rest_window,
        "rest_baseline": rest_baseline,
        "halves": (older, recent, rest_older, rest_recent),
    }


def pooled_phi(scatter: np.ndarray, baseline: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """A negative-binomial dispersion phi per group and day by moments: a day's Pearson residual
    squared has mean 1 + phi mu, so the 28 baseline days' scatter (26 degrees of freedom) has
    about 26 + phi x baseline; phi = sum(scatter - 26) / sum(baseline) over the group's counties,
    at least 0. Returned per county (its group's value)."""
    phi = np.zeros_like(scatter)
    for g in set(groups):
        m = groups == g
        phi[m] = np.maximum(
            (scatter[m] - 26.0).sum(axis=0) / np.maximum(baseline[m].sum(axis=0), 1.0), 0.0
        )
    return phi


def z(observed, expected, variance) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        cube = np.cbrt(expected)
        out = 1.5 * (np.cbrt(observed * observed) - cube * cube) * cube / np.sqrt(variance)
    return np.where(np.isfinite(out), out, np.nan)


def variant_statistic(name: str, p: dict, true_e, true_v, w: int, states, classes) -> np.ndarray:
    e, lv, o = p["expected"], p["log_variance"], p["observed"]
    own = np.maximum(p["scatter"] / 26.0, 1.0)
    floor = CV * CV * e * e
    if name == "shipped":
        return z(o, e, own * (e + e * e * lv) + floor)
    if name == "oracle_cube":
        return z(o, true_e, true_v)
    if name == "a_true_e":
        return z(o, true_e, own * (true_e + true_e * true_e * lv) + CV * CV * true_e * true_e)
    if name == "a_true_e_disp":
        return z(o, true_e, own * true_e)
    if name == "b_true_var":
        return z(o, e, true_v)
    if name == "b_true_var_l":
        return z(o, e, true_v + e * e * lv + floor)
    if name == "c_no_floor":
        return z(o, e, own * (e + e * e * lv))
    if name == "c_no_disp":
        return z(o, e, e + e * e * lv + floor)
    if name == "c_no_disp_floor":
        return z(o, e, e + e * e * lv)
    if name == "fixed_phi":  # D = 1 + 0.01 E / w: the realistic simulator's own day CV (0.1)^2
        return z(o, e, (1.0 + 0.01 * e / w) * (e + e * e * lv) + floor)
    groups = classes if name == "pooled_size" else states
    pooled = 1.0 + pooled_phi(p["scatter"], p["baseline"], groups) * e / w
    if name == "shrunk_state":
        d = (p["scatter"] + PRIOR_DOF * pooled) / (26.0 + PRIOR_DOF)
        return z(o, e, np.maximum(d, 1.0) * (e + e * e * lv) + floor)
    if name in ("pooled_state", "pooled_size"):
        return z(o, e, pooled * (e + e * e * lv) + floor)
    if name == "pooled_state_f0":
        return z(o, e, pooled * (e + e * e * lv))
    raise SystemExit(f"unknown variant {name!r}")


def seasons(kind: str, seed: int, outbreaks: bool, cache: Path, names: list[str]) -> dict:
    """{variant: Season}: the shipped reference's Season (states' alerts, cases) with the county
    statistics swapped for each variant's."""
    base = tune_detector.season(kind, seed, outbreaks, _states_only, cache)
    counts = np.load(cache / f"{kind}-{seed}-{int(outbreaks)}.npy").astype(np.float64)
    counties = refdata.counties()
    states = np.array([c.state_code for c in counties.values()])
    classes = np.array([ev.size_class(c.population) for c in counties.values()])
    mean, cv = truth(kind, seed, cache)
    first = (ev.FIRST_EVALUATED - ev.FIRST_DAY).days
    cm, cv2 = _cum(mean), _cum(mean + cv * cv * mean * mean)
    t = np.arange(first, counts.shape[1])
    out = {}
    per_window = {}
    for w in ev.WINDOWS:
        p = parts(counts, states, w, first)
        per_window[w] = (p, cm[:, t + 1] - cm[:, t + 1 - w], cv2[:, t + 1] - cv2[:, t + 1 - w])
    for name in names:
        stat = {
            w: variant_statistic(name, p, te, tv, w, states, classes)
            for w, (p, te, tv) in per_window.items()
        }
        out[name] = dataclasses.replace(base, statistic=stat)
    return out


def _states_only(series: dict[str, list[int]]) -> dict:
    """The reference's rows for the three states; empty county rows (the statistics come from
    `parts`)."""
    days = len(next(iter(series.values())))
    state_of = {f: c.state_code for f, c in refdata.counties().items()}
    state, everyone = ref.state_totals(series, state_of)
    blank = {"alert": None, **{f"statistic_{w}d": None for w in ev.WINDOWS}}
    rows = {(f, t): blank for f in series for t in range(days)}
    for s in ev.STATES:
        for t, row in enumerate(ref.unit_statistics(state[s], everyone)):
            rows[(s, t)] = row if row is not None else blank
    return rows


def check(kind: str, seed: int, cache: Path) -> None:
    """The numpy restatement against the reference on one null season."""
    full = tune_detector.season(kind, seed, False, cache=cache)
    mine = seasons(kind, seed, False, cache, ["shipped"])["shipped"]
    for w in ev.WINDOWS:
        a, b = full.statistic[w], mine.statistic[w]
        both = np.isfinite(a) & np.isfinite(b)
        mismatches = (np.isfinite(a) != np.isfinite(b)).sum()
        largest = np.abs(a[both] - b[both]).max()
        print(
            f"window {w}: {both.sum()} values, NaN mismatches {mismatches}, largest {largest:.2e}"
        )


def arguments(description: str, variants: tuple[str, ...]) -> argparse.ArgumentParser:
    """The options of the try_detector_* scripts: seeds, kind, variants, counts cache."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=tune_detector.seeds, default=tune_detector.seeds("1-24"))
    parser.add_argument("--kind", choices=("realistic", "idealised"), default="realistic")
    parser.add_argument("--variants", default=",".join(variants))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/detector_variant_counts"))
    return parser


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], VARIANTS)
    parser.add_argument("--check", action="store_true", help="the restatement vs the reference")
    args = parser.parse_args()
    tune_detector.reject_report_seeds(parser, args.seeds)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.check:
        check(args.kind, args.seeds[0], args.cache)
        return
    names = args.variants.split(",")
    unknown = set(names) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    started = time.perf_counter()
    null = [seasons(args.kind, s, False, args.cache, names) for s in args.seeds]
    found = [seasons(args.kind, s, True, args.cache, names) for s in args.seeds]
    print(f"{2 * len(args.seeds)} {args.kind} seasons in {time.perf_counter() - started:.0f} s")
    for name in names:
        print(f"== {name}", flush=True)
        tune_detector.report(
            [s[name] for s in null], [s[name] for s in found], tuner=tune_fast.tuner
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
