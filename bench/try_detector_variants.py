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
simulator's true one, by size class and phase).
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


def statistics(counts: dict[str, list[int]], variant: str) -> dict:
    """ref.statistics for counties and states, with the variant's change applied."""
    counties = refdata.counties()
    if variant in ("guard0", "guard1"):
        ref.GUARD_DAYS = int(variant[-1])
    if variant == "neighbours_half":
        ref._window = _half_prior
    if variant == "narrow_band":
        ref._window = _narrow_band
        variant = "shipped"
    if variant not in (*HALVES, "neighbours", "neighbours_half"):
        return ref.statistics(counts, {f: c.state_code for f, c in counties.items()})
    days = len(next(iter(counts.values())))
    state = {s: [0] * days for s in ev.STATES}
    for f, series in counts.items():
        for t, y in enumerate(series):
            state[counties[f].state_code][t] += y
    everyone = [sum(state[s][t] for s in ev.STATES) for t in range(days)]
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
    started = time.perf_counter()
    null, found = (
        [
            tune_detector.season(
                "realistic", s, outbreaks, lambda c: statistics(c, args.variant), args.cache
            )
            for s in args.seeds
        ]
        for outbreaks in (False, True)
    )
    null, found = list(null), list(found)
    print(
        f"{args.variant}: {len(null) + len(found)} seasons in {time.perf_counter() - started:.0f} s"
    )
    if args.variant == "error":
        expected_error(args.seeds, args.cache)
        return
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


def expected_error(seeds: list[int], cache: Path) -> None:
    """How far the shipped 7-day expected count is from the simulator's true one on the null
    seasons: log(estimate / truth) by size class and phase (mean = bias, SD = scatter)."""
    counties = refdata.counties()
    classes = [ev.size_class(c.population) for c in counties.values()]
    state_of = {f: c.state_code for f, c in counties.items()}
    first = (ev.FIRST_EVALUATED - ev.FIRST_DAY).days
    errors: dict = {}
    for seed in seeds:
        saved = cache / f"realistic-{seed}-0.npy"
        if not saved.exists():
            tune_detector.season("realistic", seed, False, cache=cache)
        series = np.load(saved)
        rows = ref.statistics({f: series[i].tolist() for i, f in enumerate(counties)}, state_of)
        sim = Simulator(from_dict(ev.scenario_dict("realistic")), seed=seed, start=ev.FIRST_DAY)
        mean = np.array(
            [sim.expected_cases(ev.FIRST_DAY + t * ev.DAY)[0] for t in range(series.shape[1])]
        ).T
        for i, f in enumerate(counties):
            for t in range(first, series.shape[1]):
                estimate, truth = rows[(f, t)]["expected_7d"], mean[i, t - 6 : t + 1].sum()
                if estimate and truth > 0:
                    key = (classes[i], ev.phase(ev.FIRST_DAY + t * ev.DAY))
                    errors.setdefault(key, []).append((math.log(estimate / truth), truth))
    for size in ev.CLASSES:
        for phase in ev.PHASES:
            e = np.array(errors[(size, phase)])
            print(
                f"{size:6} {phase:8} log(estimate/truth): mean {e[:, 0].mean():+.3f}, SD "
                f"{e[:, 0].std():.3f}; true 7-day count median {np.median(e[:, 1]):.0f}"
            )


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
