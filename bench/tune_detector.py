"""Tune the outbreak detector's thresholds on many simulated seasons, in minutes.

bench/bench_detection.py runs each season through the real warehouse (about two minutes a
season), so it tunes on three seeds only. This scores the same seasons without the warehouse: the
county x day counts are the simulator's own day batches counted per county (exactly what the
warehouse's daily counts hold), and the statistics come from the plain-Python restatement of the
detector, tests/warehouse/detector_reference.py, which equals sql/060_surveillance.sql to the last
bit on PostgreSQL (tests/warehouse/test_detector.py). It prints, for the realistic default
season, the thresholds that find the most outbreaks within bench_detection.py's false-alert
budget (flu_monitor.evaluation.tune), and what the shipped thresholds reach on the same seeds.
Set the chosen ones in the `p` subquery of mv_outbreak_statistics, in detector_reference.WINDOWS
and in evaluation.THRESHOLDS; never tune on bench_detection.py's report seeds.

    .venv/bin/python bench/tune_detector.py --seeds 1-24     # about 3 minutes (2 cores, loaded)

The search over the thresholds is bench/tune_fast.py's (the same candidate as evaluation.tune,
tests/unit/test_tune_fast.py; `--slow` runs evaluation.tune itself).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flu_monitor import evaluation as ev
from flu_monitor import refdata
from flu_monitor.paths import ROOT
from flu_monitor.simulator.model import Simulator
from flu_monitor.simulator.scenario import from_dict

sys.path.insert(0, str(ROOT))
from bench import tune_fast  # noqa: E402
from bench.bench_detection import (  # noqa: E402
    BUDGET,
    DETECTOR_GRID,
    REPORT_SEEDS,
    SIMULATED_TUNE_SEEDS,
)
from tests.warehouse import detector_reference  # noqa: E402


def season(
    kind: str,
    seed: int,
    outbreaks: bool,
    statistics: Callable[[dict[str, list[int]]], dict] | None = None,
    cache: Path | None = None,
) -> ev.Season:
    """One season's counts and the reference detector's statistics (or `statistics`' of the
    county series), as a Season; the counts kept in and read back from `cache` if given."""
    plan = ev.outbreak_plan(seed) if outbreaks else []
    counties = refdata.counties()
    span = (ev.LAST_DAY - ev.FIRST_DAY).days + 1
    saved = cache / f"{kind}-{seed}-{int(outbreaks)}.npy" if cache else None
    if saved and saved.exists():
        counts = np.load(saved)
    else:
        sim = Simulator(from_dict(ev.scenario_dict(kind, plan)), seed=seed, start=ev.FIRST_DAY)
        counts = np.array(
            [
                np.bincount(
                    sim.day_batch(ev.FIRST_DAY + k * ev.DAY).county, minlength=len(counties)
                )
                for k in range(span)
            ]
        ).T  # county x day, places() order = refdata order
        if saved:
            np.save(saved, counts)
    series = {f: counts[i].tolist() for i, f in enumerate(counties)}
    if statistics is None:
        state_of = {f: c.state_code for f, c in counties.items()}
        rows = detector_reference.statistics(series, state_of)
    else:
        rows = statistics(series)
    first = (ev.FIRST_EVALUATED - ev.FIRST_DAY).days
    days = list(range(first, span))

    def grid(unit_rows, column):
        return np.array(
            [
                [np.nan if (v := rows[(u, t)][column]) is None else v for t in days]
                for u in unit_rows
            ]
        )

    nothing = np.full((len(counties), len(days)), np.nan)
    return ev.Season(
        kind=kind,
        seed=seed,
        plan=plan,
        days=[ev.FIRST_DAY + t * ev.DAY for t in days],
        cases=counts[:, first - ev.LOOKBACK :],
        alert=np.array([[rows[(f, t)]["alert"] is not None for t in days] for f in counties]),
        statistic={w: grid(counties, f"statistic_{w}d") for w in ev.WINDOWS},
        ears={c: nothing for c in ev.CDC_EARS},
        state_alert=np.array(
            [[rows[(s, t)]["alert"] is not None for t in days] for s in ev.STATES]
        ),
        seconds=0.0,
    )


def seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def reject_report_seeds(parser: argparse.ArgumentParser, chosen: list[int]) -> None:
    if set(chosen) & set(REPORT_SEEDS):
        parser.error(f"seeds {sorted(set(chosen) & set(REPORT_SEEDS))} are report seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=seeds, default=list(SIMULATED_TUNE_SEEDS), help="e.g. 1-24")
    parser.add_argument("--slow", action="store_true", help="search with evaluation.tune itself")
    args = parser.parse_args()
    reject_report_seeds(parser, args.seeds)
    started = time.perf_counter()
    null = [season("realistic", s, False) for s in args.seeds]
    found = [season("realistic", s, True) for s in args.seeds]
    print(f"{len(null) + len(found)} seasons in {time.perf_counter() - started:.0f} s")
    report(null, found, tuner=ev.tune if args.slow else tune_fast.tuner)


def report(
    null: list[ev.Season],
    found: list[ev.Season],
    make_rule: Callable[[dict], ev.AlertRule] = ev.thresholds,
    grid: dict | None = None,
    shipped: dict | None = ev.THRESHOLDS,
    tuner: Callable = ev.tune,
) -> None:
    """The shipped thresholds' figures on these seasons, and the best thresholds of `grid` in
    budget (by default the detector's per-window thresholds)."""
    for name, k in (("shipped", shipped), ("tuned", None)):
        if name == "shipped" and k is None:
            continue
        if k is None:
            best = tuner(null, found, make_rule, grid or DETECTOR_GRID, BUDGET)
            if best is None:
                print("tuned: no thresholds within the budget")
                continue
            k = best[0]
        fa = ev.false_alerts(null, make_rule(k))
        share = ev.detection(found, make_rule(k))["found_percent"]
        worst = max([*fa["by_phase"].values(), *fa["by_size"].values()])
        print(
            f"{name}: thresholds {k}; false alerts {fa['per_100_county_days']} per 100 "
            f"county-days (worst phase or size {worst}, worst day {fa['worst_day_percent']} %); "
            f"found +25 % {share['+25%']['all']} (large {share['+25%']['large']}), "
            f"+50 % {share['+50%']['all']}, +100 % {share['+100%']['all']}, "
            f"+200 % {share['+200%']['all']}; small / medium / large: "
            + ", ".join(
                f"{size} " + " / ".join(str(share[size][c]) for c in ev.CLASSES)
                for size in ("+50%", "+100%")
            )
        )


if __name__ == "__main__":
    main()
