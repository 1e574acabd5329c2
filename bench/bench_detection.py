"""Outbreak-detection benchmark: false alerts and outbreaks found, through the real warehouse.

    .venv/bin/python bench/bench_detection.py          # writes bench/results/detection.{md,json}
    .venv/bin/python bench/bench_detection.py --report-seeds 101   # a quicker look

What it does (flu_monitor.evaluation has the details), on a private PostgreSQL cluster:
1. Simulates seasons (10 Oct 2025 - 15 Apr 2026; evaluated from 15 Nov) with the default
   scenario's baseline, realistic (its realism options) and idealised (without them): null
   seasons, and the same seeds with 48 planted outbreaks (+25/50/100/200 % for 7 days, 16 in each
   county size class); each is loaded as raw records into a fresh database with sql/ applied,
   refreshed, and read back (mv_county_alerts, mv_outbreak_statistics). Results are cached under
   .state/bench/detection/ by a hash of sql/, the simulator and the season.
2. On the tuning seeds (realistic) it tunes what has thresholds to tune to the false-alert goal,
   on the seeds the shipped thresholds were tuned on: the oracle's per-window thresholds on
   bench/tune_detector.py's seeds 1-24 (simulated and scored without the warehouse, as those
   were; it reports what the shipped thresholds reach there beside), and one scale for EARS's
   thresholds on warehouse seeds 1-3 (EARS's statistics come from the warehouse only).
3. On the report seeds (never used for tuning) it scores the detector as shipped (its `alert`),
   EARS at CDC thresholds and re-thresholded, and the oracle, on both simulators, against the
   goals of issue 9.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from flu_monitor import evaluation as ev
from flu_monitor.local.postgres_server import PostgresServer
from flu_monitor.paths import ROOT, STATE_DIR

RESULTS = ROOT / "bench" / "results"
TRIED = RESULTS / "detection-tried.md"  # hand-written: bench/try_detector_variants.py runs
CACHE = STATE_DIR / "bench" / "detection"
TUNE_SEEDS = (1, 2, 3)  # through the warehouse: EARS's scale
SIMULATED_TUNE_SEEDS = tuple(range(1, 25))  # without it: the shipped and the oracle's thresholds
REPORT_SEEDS = (301, 302, 303, 304)  # never looked at while the method was chosen
BUDGET = {"per_100_county_days": 0.55, "phase_or_size": 0.85, "worst_day_percent": 4.5}
DETECTOR_GRID = {w: [round(2.0 + 0.2 * i, 1) for i in range(16)] + [99.0] for w in ev.WINDOWS}
# bench/tune_detector.py's grid for the detector's thresholds
ORACLE_GRID = {w: [round(2.4 + 0.2 * i, 1) for i in range(11)] + [99.0] for w in ev.WINDOWS}
EARS_GRID = {"scale": [round(1.0 + 0.1 * i, 1) for i in range(41)]}
SHIPPED = ev.THRESHOLDS  # as in sql/060_surveillance.sql (checked on every season)


def seasons(server, kinds, seeds, log) -> dict:
    out = {}
    for kind in kinds:
        for seed in seeds:
            for outbreaks in (False, True):
                t0 = time.perf_counter()
                season = ev.run_season(server, kind, seed, outbreaks, cache=CACHE)
                log(
                    f"  {kind} seed {seed} {'outbreaks' if outbreaks else 'null'}: "
                    f"{season.cases[:, ev.LOOKBACK :].sum():,} cases, "
                    + ("cached" if season.cached else f"{time.perf_counter() - t0:.0f} s")
                )
                out[(kind, seed, outbreaks)] = season
    return out


def pick(all_seasons: dict, kind: str, seeds, outbreaks: bool) -> list:
    return [all_seasons[(kind, s, outbreaks)] for s in seeds]


def tuning(all_seasons: dict, seeds, simulated: tuple[list, list]) -> dict:
    """EARS's scale on the warehouse seasons, the oracle's thresholds on the `simulated` (null,
    outbreak) seasons of bench/tune_detector.py."""
    warehouse = tuple(pick(all_seasons, "realistic", seeds, o) for o in (False, True))
    out = {}
    for name, make_rule, grid, (null, found) in (
        ("ears", lambda k: ev.ears(k["scale"]), EARS_GRID, warehouse),
        ("oracle", ev.oracle, ORACLE_GRID, simulated),
    ):
        best = ev.tune(null, found, make_rule, grid, BUDGET)
        if best is None:
            out[name] = None
            continue
        k, fa, detected = best
        out[name] = {"candidate": {str(x): y for x, y in k.items()}, "false_alerts": fa,
                     "detection": detected}  # fmt: skip
    return out


def score(all_seasons: dict, tuned: dict, kinds, seeds) -> dict:
    def parse(name):
        return {int(w): v for w, v in tuned[name]["candidate"].items()} if tuned[name] else None

    rules = {
        "trend-adjusted (shipped)": ev.shipped,
        "EARS, CDC thresholds": ev.ears(),
    }
    if tuned["ears"]:
        rules["EARS, thresholds x {:.1f}".format(tuned["ears"]["candidate"]["scale"])] = ev.ears(
            tuned["ears"]["candidate"]["scale"]
        )
    if tuned["oracle"]:
        rules["oracle (knows the true expected counts)"] = ev.oracle(parse("oracle"))
    out = {}
    for kind in kinds:
        null = pick(all_seasons, kind, seeds, False)
        found = pick(all_seasons, kind, seeds, True)
        out[kind] = {
            name: {
                "false_alerts": ev.false_alerts(null, rule),
                "detection": ev.detection(found, rule),
            }
            for name, rule in rules.items()
        }
    return out


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in cpuinfo if "model name" in x), "unknown")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem = next(x.split()[1] for x in meminfo if x.startswith("MemTotal"))
    load = os.getloadavg()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(mem) / 2**20, 1),
        "load_average_1_5_15": [round(x, 1) for x in load],
        "python": platform.python_version(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Outbreak detection: false alerts and outbreaks found",
        "",
        f"Run {m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB (load average "
        f"{m['load_average_1_5_15'][0]} at the end), Python {m['python']}, commit {m['commit']}; "
        f"{result['seconds'] / 60:.0f} min ({result['seasons_cached']} of "
        f"{result['seasons']} seasons from the cache; a season takes "
        f"{result['season_seconds']:.0f} s when run). Produced by `bench/bench_detection.py` "
        "(`make bench`); raw figures in `detection.json`; method and parameters: "
        "[docs/warehouse.md](../../docs/warehouse.md#outbreak-detection).",
        "",
        f"Seasons 10 Oct 2025 - 15 Apr 2026 of the default scenario, evaluated 15 Nov - 15 Apr "
        f"(152 days x 150 counties), each simulated, loaded as raw records into PostgreSQL with "
        f"sql/ applied, refreshed and read back. **Realistic**: the default scenario's baseline "
        f"(county season timing SD 7 days, level CV 0.25, day-to-day CV 0.1, weekday factors, "
        f"reporting delay); **idealised**: the same without those. Null seasons have no outbreak; "
        f"outbreak seasons (same seeds, same baseline counts) plant 48 outbreaks each: +25/50/100/"
        f"200 % of the county's expected count for 7 days, 16 per county size class (small < 60k, "
        f"medium, large >= 200k residents), starting 1 Dec - 31 Mar. Found = the county alerts on "
        f"one of the outbreak's 7 days; delay = days from its start to that alert. Tuning seeds "
        f"{_seed_range(result['simulated_tune_seeds'])} (realistic, simulated and scored without "
        f"the warehouse: the shipped and the oracle's thresholds) and "
        f"{', '.join(map(str, result['tune_seeds']))} (through it: EARS's scale); report seeds "
        f"{', '.join(map(str, result['report_seeds']))}: "
        f"{len(result['report_seeds']) * 48} outbreaks per simulator.",
        "",
    ]
    goals = result["goals"]
    lines += [
        "## Goals (realistic seasons, report seeds)",
        "",
        "| goal | target | trend-adjusted (shipped) | met | oracle ceiling |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    names = {
        "false_alerts": "false alerts per 100 county-days",
        "false_alerts_phase_or_size": "... in the worst season phase or size class",
        "worst_day_percent": "worst day: % of counties alerting",
        "found_50": "+50 % outbreaks found within 7 days (%)",
        "found_100": "+100 % outbreaks found within 7 days (%)",
        "found_25_large": "+25 % outbreaks in large counties found (%)",
        "median_delay_days": "median days to the first alert",
    }
    for goal, (value, target, met) in goals["shipped"].items():
        ceiling = goals["oracle"][goal][0] if goals.get("oracle") else None
        sign = "<=" if goal in ("false_alerts", "false_alerts_phase_or_size", "worst_day_percent",
                                "median_delay_days") else ">="  # fmt: skip
        lines.append(
            f"| {names[goal]} | {sign} {target:g} | {_fmt(value)} | {'yes' if met else '**no**'} "
            f"| {_fmt(ceiling)} |"
        )
    for kind, methods in result["scores"].items():
        lines += [
            "",
            f"## False alerts, {kind} null seasons (per 100 county-days)",
            "",
            "| method | all | " + " | ".join(ev.PHASES) + " | small | medium | large | "
            "worst day % | state alerts / 100 state-days | alerts a day: median, max |",
            "| --- |" + " ---: |" * 12,
        ]
        for name, s in methods.items():
            fa = s["false_alerts"]
            lines.append(
                f"| {name} | {fa['per_100_county_days']} | "
                + " | ".join(str(fa["by_phase"][p]) for p in ev.PHASES)
                + " | "
                + " | ".join(str(fa["by_size"][c]) for c in ev.CLASSES)
                + f" | {fa['worst_day_percent']} | "
                + (str(fa["state_alerts_per_100_state_days"]) if "shipped" in name else "–")
                + f" | {fa['alerts_a_day_median']:g}, {fa['alerts_a_day_max']} |"
            )
        lines += [
            "",
            f"## Outbreaks found within 7 days, {kind} outbreak seasons (%: small / medium / "
            "large / all)",
            "",
            "| method | " + " | ".join(ev._label(s) for s in ev.SIZES) + " | median delay (days) |",
            "| --- |" + " ---: |" * (len(ev.SIZES) + 1),
        ]
        for name, s in methods.items():
            found = s["detection"]["found_percent"]
            cells = [
                " / ".join(_fmt(found[ev._label(size)][c]) for c in (*ev.CLASSES, "all"))
                for size in ev.SIZES
            ]
            lines.append(
                f"| {name} | "
                + " | ".join(cells)
                + f" | {_fmt(s['detection']['median_delay_days'])} |"
            )
    tuned = result["tuning"]
    simulated = _seed_range(result["simulated_tune_seeds"])
    seeds = {"ears": ", ".join(map(str, result["tune_seeds"])), "oracle": simulated}
    lines += [
        "",
        "## Tuning (realistic, tuning seeds)",
        "",
        f"Budget on the null seasons: false alerts <= {BUDGET['per_100_county_days']} per 100 "
        f"county-days, <= {BUDGET['phase_or_size']} in every phase and size class, worst day <= "
        f"{BUDGET['worst_day_percent']} % of counties; the most outbreaks found within it "
        "(+50 % and +100 % pooled, +25 % in large counties, half-weighted +25 % pooled).",
        "",
        "| what | seeds | thresholds found | false alerts | found +25 / +50 / +100 / +200 % |",
        "| --- | --- | --- | ---: | --- |",
        f"| detector as shipped (sql/060; bench/tune_detector.py) | {simulated} | "
        f"{_thresholds(SHIPPED)} | "
        f"{result['shipped_on_tuning']['false_alerts']['per_100_county_days']} | "
        + " / ".join(
            _fmt(result["shipped_on_tuning"]["detection"]["found_percent"][ev._label(s)]["all"])
            for s in ev.SIZES
        )
        + " |",
    ]
    for name, t in tuned.items():
        if t is None:
            lines.append(f"| {name} | {seeds[name]} | none within the budget | | |")
            continue
        rate = t["false_alerts"]["per_100_county_days"]
        lines.append(
            f"| {name} | {seeds[name]} | {_thresholds(t['candidate'])} | {rate} | "
            + " / ".join(
                _fmt(t["detection"]["found_percent"][ev._label(s)]["all"]) for s in ev.SIZES
            )
            + " |"
        )
    if TRIED.exists():  # variants measured on the tuning seeds and not kept, kept in view
        lines += ["", TRIED.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def _seed_range(seeds: list[int]) -> str:
    return (
        f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else str(seeds)
    )


def _thresholds(k: dict) -> str:
    if "scale" in k:
        return f"CDC x {k['scale']}"
    return ", ".join(f"{w} d: {'off' if v >= 99 else v}" for w, v in k.items())


def _fmt(value) -> str:
    return "–" if value is None else f"{value:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=list(TUNE_SEEDS))
    parser.add_argument("--report-seeds", type=int, nargs="+", default=list(REPORT_SEEDS))
    parser.add_argument("--kinds", nargs="+", default=["realistic", "idealised"])
    args = parser.parse_args()
    started = time.perf_counter()
    log = lambda text: print(text, flush=True)  # noqa: E731
    with PostgresServer(STATE_DIR / "bench" / "detection-postgres") as server:
        log("tuning seasons (realistic):")
        tuning_seasons = seasons(server, ["realistic"], args.tune_seeds, log)
        log("report seasons:")
        report_seasons = seasons(server, args.kinds, args.report_seeds, log)
    everything = [*tuning_seasons.values(), *report_seasons.values()]
    log(f"simulated tuning seasons (seeds {SIMULATED_TUNE_SEEDS[0]}-{SIMULATED_TUNE_SEEDS[-1]}):")
    sys.path.insert(0, str(ROOT))
    from bench import tune_detector  # imports this module: not at the top

    null, found = (
        [tune_detector.season("realistic", s, outbreaks) for s in SIMULATED_TUNE_SEEDS]
        for outbreaks in (False, True)
    )
    null, found = list(null), list(found)
    tuned = tuning(tuning_seasons, args.tune_seeds, (null, found))
    shipped_on_tuning = {
        "false_alerts": ev.false_alerts(null, ev.shipped),
        "detection": ev.detection(found, ev.shipped),
    }
    scores = score(report_seasons, tuned, args.kinds, args.report_seeds)
    realistic = scores.get("realistic", {})
    goals = {}
    for key, name in (("shipped", "trend-adjusted (shipped)"),
                      ("oracle", "oracle (knows the true expected counts)")):  # fmt: skip
        if name in realistic:
            goals[key] = ev.goals_met(realistic[name]["false_alerts"], realistic[name]["detection"])
    result = {
        "machine": machine(),
        "seconds": round(time.perf_counter() - started),
        "tune_seeds": args.tune_seeds,
        "simulated_tune_seeds": list(SIMULATED_TUNE_SEEDS),
        "report_seeds": args.report_seeds,
        "shipped_thresholds": SHIPPED,
        "budget": BUDGET,
        "tuning": tuned,
        "shipped_on_tuning": shipped_on_tuning,
        "scores": scores,
        "goals": goals,
        "season_seconds": float(np.median([s.seconds for s in everything])),
        "seasons": len(everything),
        "seasons_cached": sum(s.cached for s in everything),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detection.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / "detection.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
