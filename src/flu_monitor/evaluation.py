"""How well the outbreak detector works: simulated flu seasons run through the real warehouse.

A season is simulated (flu_monitor.simulator, the default scenario's baseline: "realistic", or
the same without its realism options: "idealised"), loaded as raw records into a fresh PostgreSQL
database with sql/ applied (warehouse.postgres: the same path as `flu-monitor db load-jsonl`), and
refreshed; the alerts are read back from mv_county_alerts and mv_outbreak_statistics. The 120-day
window is read twice (after 120 days of data, and at the end), each time only the days whose
28-day baselines are inside it; the overlap must agree.

Null seasons have no outbreak: every alert is a false alert. Outbreak seasons (same seed, so the
same baseline counts) plant OUTBREAKS_PER_CLASS outbreaks in distinct counties of each size
class, +25/50/100/200 % of the county's expected count for 7 days, starting on random days of
the season's active months; an outbreak is found if its county alerts on one of its 7 days.

Besides the detector as shipped (its `alert`), the same seasons score CDC EARS C1-C3 (the
reference columns: at CDC thresholds, and re-thresholded to the false-alert goal) and an oracle
that knows every county's true expected count and variance (the best any detector could do).
bench/bench_detection.py runs the evaluation set; tests/warehouse/test_detection_goals.py a
one-season smoke version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import psycopg
import yaml

from flu_monitor import refdata
from flu_monitor.paths import ROOT
from flu_monitor.simulator.model import Simulator
from flu_monitor.simulator.scenario import DEFAULT_SCENARIO, from_dict
from flu_monitor.warehouse import postgres

DAY = dt.timedelta(days=1)
FIRST_DAY = dt.date(2025, 10, 10)  # data from here: 36 days before the first evaluated day
FIRST_EVALUATED = dt.date(2025, 11, 15)
LAST_DAY = dt.date(2026, 4, 15)
PEAK = dt.date(2026, 2, 1)  # the default scenario's season peak
OUTBREAK_STARTS = (dt.date(2025, 12, 1), dt.date(2026, 3, 31))  # the season's active months
OUTBREAK_DAYS = 7
SIZES = (0.25, 0.5, 1.0, 2.0)  # +25 % .. +200 % of the expected count
OUTBREAKS_PER_CLASS = 16  # 48 per season: each size 4 times in each size class
WINDOW_DAYS = 120  # mv_daily_county_cases
FULL_HISTORY = 36  # days of data before a day for every window's 28-day baseline
REALISM = ("weekday_factors", "county_timing_sd_days", "county_level_cv", "daily_noise_cv",
           "report_delay")  # fmt: skip
CDC_EARS = {"c1": 3.09, "c2": 3.09, "c3": 1.96}
WINDOWS = (1, 3, 7)
# The detector's parameters, as in mv_outbreak_statistics (sql/060_surveillance.sql): a threshold
# per window, and the fewest cases in a window for an alert. Every evaluated season checks that
# the shipped `alert` is exactly these applied to its statistics.
THRESHOLDS = {1: 3.8, 3: 2.6, 7: 4.4}
MIN_CASES = 3

# Issue 9's goals, on the realistic season (false alerts per 100 county-days; percentages).
GOALS = {
    "false_alerts": 0.67,
    "false_alerts_phase_or_size": 1.0,
    "worst_day_percent": 5.0,
    "found_50": 75.0,
    "found_100": 95.0,
    "found_25_large": 80.0,
    "median_delay_days": 2.0,
}


def size_class(population: float) -> str:
    return "small" if population < 60_000 else "large" if population >= 200_000 else "medium"


def phase(day: dt.date) -> str:
    """The season's phase by days from the peak (the state curve; counties vary around it)."""
    k = (day - PEAK).days
    if k < -45:
        return "early"
    if k < -15:
        return "rising"
    if k <= 15:
        return "peak"
    return "falling" if k <= 45 else "late"


PHASES = ("early", "rising", "peak", "falling", "late")
CLASSES = ("small", "medium", "large")


def scenario_dict(kind: str, outbreaks: Sequence[dict] = ()) -> dict:
    """The default scenario's baseline ("realistic"), or without its realism keys ("idealised")."""
    with open(DEFAULT_SCENARIO, encoding="utf-8") as f:
        baseline = dict(yaml.safe_load(f)["baseline"])
    if kind == "idealised":
        baseline = {k: v for k, v in baseline.items() if k not in REALISM}
    elif kind != "realistic":
        raise ValueError(f"unknown simulator kind {kind!r}")
    return {"name": f"{kind} season", "baseline": baseline, "outbreaks": list(outbreaks)}


def outbreak_plan(seed: int) -> list[dict]:
    """OUTBREAKS_PER_CLASS distinct counties per size class, sizes in turn, random start days."""
    counties = refdata.counties()
    rng = np.random.default_rng([seed, 9])
    span = (OUTBREAK_STARTS[1] - OUTBREAK_STARTS[0]).days + 1
    plan = []
    for cls in CLASSES:
        members = sorted(f for f, c in counties.items() if size_class(c.population) == cls)
        for k, fips in enumerate(rng.choice(members, OUTBREAKS_PER_CLASS, replace=False)):
            start = OUTBREAK_STARTS[0] + int(rng.integers(0, span)) * DAY
            plan.append(
                {
                    "name": f"{cls} {k + 1}",
                    "counties": [str(fips)],
                    "start": start.isoformat(),
                    "relative_increase": SIZES[k % len(SIZES)],
                    "duration_days": OUTBREAK_DAYS,
                }
            )
    return plan


# -- one season through the warehouse --------------------------------------------------------

COUNTY_QUERY = """
    SELECT day, county_fips, alert, statistic_1d, statistic_3d, statistic_7d, c1, c2, c3
    FROM mv_county_alerts WHERE day BETWEEN %s AND %s"""
STATE_QUERY = """
    SELECT day, unit, alert FROM mv_outbreak_statistics
    WHERE unit_level = 'state' AND day BETWEEN %s AND %s"""
CASES_QUERY = (
    "SELECT day, county_fips, cases FROM mv_daily_county_cases WHERE day BETWEEN %s AND %s"
)
STATES = ("NJ", "NY", "PA")
LOOKBACK = max(WINDOWS) - 1  # days of cases kept before the first evaluated day


def season_key(kind: str, seed: int, outbreaks: bool) -> str:
    """Names a season's result by what was simulated and by the SQL and code that judged it."""
    digest = hashlib.sha256()
    # sql/ up to the detector (060; 070 and later read it): its statements, comments aside
    for path in sorted(p for p in (ROOT / "sql").glob("*.sql") if p.name < "070"):
        statements = [line.split("--")[0].strip() for line in path.read_text().splitlines()]
        digest.update(" ".join(filter(None, statements)).encode())
    for path in sorted((ROOT / "src" / "flu_monitor" / "simulator").glob("*.py")):
        digest.update(path.read_bytes())
    plan = outbreak_plan(seed) if outbreaks else []
    digest.update(orjson.dumps(scenario_dict(kind, plan)))
    digest.update(orjson.dumps([FIRST_DAY, FIRST_EVALUATED, LAST_DAY, WINDOW_DAYS]))
    return f"{kind}-{seed}-{'outbreaks' if outbreaks else 'null'}-{digest.hexdigest()[:12]}"


def run_season(server, kind: str, seed: int, outbreaks: bool, cache: Path | None = None) -> Season:
    """Simulate, load, refresh and read one season in a fresh database of `server` (a
    PostgresServer), or take it from `cache` (a directory of earlier results)."""
    key = season_key(kind, seed, outbreaks)
    cached = cache / f"{key}.json" if cache else None
    if cached and cached.exists():
        season = Season.from_json(json.loads(cached.read_text()))
        season.cached = True
        return season
    plan = outbreak_plan(seed) if outbreaks else []
    sim = Simulator(from_dict(scenario_dict(kind, plan)), seed=seed, start=FIRST_DAY)
    # this process's own: two processes evaluating one season on one server (xdist workers
    # sharing the tests' cluster) must not drop each other's database
    name = f"eval_{hashlib.sha256(key.encode()).hexdigest()[:16]}_{os.getpid()}"
    url = server.create_database(name)
    started = time.perf_counter()
    reads: dict = {"county": {}, "state": {}, "cases": {}}
    try:
        postgres.apply(url, refresh_after=False)
        middle = FIRST_DAY + (WINDOW_DAYS - 1) * DAY
        for first, last in ((FIRST_DAY, middle), (middle + DAY, LAST_DAY)):
            _load_days(url, sim, first, last)
            postgres.refresh(url)
            window_start = max(FIRST_DAY, last - (WINDOW_DAYS - 1) * DAY)
            _read(url, window_start + FULL_HISTORY * DAY, last, reads)
    finally:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    season = Season.from_reads(kind, seed, plan, reads, time.perf_counter() - started)
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(season.to_json()))
    return season


def _load_days(url: str, sim: Simulator, first: dt.date, last: dt.date) -> None:
    """The days' events as raw records, as `flu-monitor db load-jsonl` loads them."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        day = first
        while day <= last:
            f.write(b"".join(orjson.dumps(e) + b"\n" for e in sim.day_batch(day).events()))
            day += DAY
        f.flush()
        postgres.load_jsonl(url, f.name)


def _read(url: str, first: dt.date, last: dt.date, reads: dict) -> None:
    """The rows of days first..last; a day read in both windows must read the same."""
    first = max(first, FIRST_EVALUATED)
    queries = (
        ("county", COUNTY_QUERY, first),
        ("state", STATE_QUERY, first),
        ("cases", CASES_QUERY, max(first - LOOKBACK * DAY, FIRST_EVALUATED - LOOKBACK * DAY)),
    )
    with psycopg.connect(url) as conn:
        for part, query, since in queries:
            for row in conn.execute(query, (since, last)).fetchall():
                key, value = (row[0], row[1]), row[2:]
                if reads[part].get(key, value) != value:
                    raise AssertionError(f"{part} {key}: the two refreshes disagree")
                reads[part][key] = value


@dataclass
class Season:
    """One season's figures as arrays: county x evaluated day (counties in refdata order)."""

    kind: str
    seed: int
    plan: list[dict]
    days: list[dt.date]
    cases: np.ndarray  # county x (LOOKBACK + evaluated days)
    alert: np.ndarray  # the detector's alert, as shipped
    statistic: dict[int, np.ndarray]  # per window; NaN when none
    ears: dict[str, np.ndarray]  # c1, c2, c3; NaN when none
    state_alert: np.ndarray  # state x day
    seconds: float
    oracle: dict[int, np.ndarray] | None = field(default=None, repr=False)  # oracle_z, once
    cached: bool = False  # read from an earlier run's result, not run now

    @classmethod
    def from_reads(cls, kind, seed, plan, reads, seconds) -> Season:
        days = _evaluated_days()
        counties = list(refdata.counties())
        missing = [(d, f) for d in days for f in counties if (d, f) not in reads["county"]]
        if missing:
            raise AssertionError(f"no row for {len(missing)} county-days, e.g. {missing[:3]}")

        def grid(column: int) -> np.ndarray:
            return np.array(
                [[_number(reads["county"][(d, f)][column]) for d in days] for f in counties]
            )

        every_day = [days[0] - k * DAY for k in range(LOOKBACK, 0, -1)] + days
        return cls(
            kind=kind,
            seed=seed,
            plan=plan,
            days=days,
            cases=np.array([[reads["cases"][(d, f)][0] for d in every_day] for f in counties]),
            alert=np.array(
                [[reads["county"][(d, f)][0] is not None for d in days] for f in counties]
            ),
            statistic={w: grid(i) for i, w in enumerate(WINDOWS, 1)},
            ears={c: grid(i) for i, c in enumerate(CDC_EARS, 4)},
            state_alert=np.array(
                [[reads["state"].get((d, s), (None,))[0] is not None for d in days] for s in STATES]
            ),
            seconds=round(seconds, 1),
        )

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "plan": self.plan,
            "days": [d.isoformat() for d in self.days],
            "cases": self.cases.tolist(),
            "alert": self.alert.tolist(),
            "statistic": {str(w): _nulls(a) for w, a in self.statistic.items()},
            "ears": {c: _nulls(a) for c, a in self.ears.items()},
            "state_alert": self.state_alert.tolist(),
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: dict) -> Season:
        def floats(rows):
            return np.array([[np.nan if v is None else v for v in row] for row in rows])

        return cls(
            kind=data["kind"],
            seed=data["seed"],
            plan=data["plan"],
            days=[dt.date.fromisoformat(d) for d in data["days"]],
            cases=np.array(data["cases"]),
            alert=np.array(data["alert"], dtype=bool),
            statistic={int(w): floats(a) for w, a in data["statistic"].items()},
            ears={c: floats(a) for c, a in data["ears"].items()},
            state_alert=np.array(data["state_alert"], dtype=bool),
            seconds=data["seconds"],
        )

    def window_cases(self, w: int) -> np.ndarray:
        """Cases in the w days ending on each evaluated day."""
        return _window_sums(self.cases, w)


def _window_sums(daily: np.ndarray, w: int) -> np.ndarray:
    """Sums over the w days ending on each evaluated day, from county x (LOOKBACK + evaluated
    days) daily values."""
    total = np.concatenate([np.zeros((daily.shape[0], 1)), np.cumsum(daily, axis=1)], axis=1)
    return total[:, LOOKBACK + 1 :] - total[:, LOOKBACK + 1 - w : total.shape[1] - w]


def _number(value) -> float:
    return np.nan if value is None else float(value)


def _nulls(array: np.ndarray) -> list:
    return [[None if math.isnan(v) else v for v in row] for row in array.tolist()]


def _evaluated_days() -> list[dt.date]:
    return [FIRST_EVALUATED + k * DAY for k in range((LAST_DAY - FIRST_EVALUATED).days + 1)]


# -- alert rules: the detector as shipped, EARS, candidate thresholds, the oracle --------------

AlertRule = Callable[[Season], np.ndarray]  # season -> county x day booleans


def shipped(season: Season) -> np.ndarray:
    """The detector's `alert`, as the warehouse computed it (and as THRESHOLDS say it should)."""
    by_thresholds = thresholds(THRESHOLDS)(season)
    if not np.array_equal(season.alert, by_thresholds):
        raise AssertionError(
            f"{season.kind} seed {season.seed}: the warehouse's alert differs from THRESHOLDS on "
            f"{int((season.alert != by_thresholds).sum())} county-days: out of sync with sql/060?"
        )
    return season.alert


def ears(scale: float = 1.0) -> AlertRule:
    """EARS C1, C2 or C3 above its CDC threshold times `scale`."""

    def rule(season: Season) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.any([season.ears[c] > t * scale for c, t in CDC_EARS.items()], axis=0)

    return rule


def thresholds(k: dict[int, float]) -> AlertRule:
    """The detector's per-window statistics against other thresholds (for tuning them)."""

    def rule(season: Season) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.any(
                [
                    (season.statistic[w] > k[w]) & (season.window_cases(w) >= MIN_CASES)
                    for w in WINDOWS
                ],
                axis=0,
            )

    return rule


def oracle_z(season: Season) -> dict[int, np.ndarray]:
    """The oracle's z per window: it knows each county's true expected count (the simulator's,
    outbreaks excluded) and variance (Poisson plus the gamma day-to-day factor)."""
    sim = Simulator(from_dict(scenario_dict(season.kind)), seed=season.seed, start=FIRST_DAY)
    cv = sim.scenario.baseline.daily_noise_cv
    every_day = [season.days[0] - k * DAY for k in range(LOOKBACK, 0, -1)] + season.days
    mean = np.array([sim.expected_cases(d)[0] for d in every_day]).T  # county x day
    variance = mean + cv * cv * mean * mean
    return {
        w: (season.window_cases(w) - _window_sums(mean, w)) / np.sqrt(_window_sums(variance, w))
        for w in WINDOWS
    }


def oracle(k: dict[int, float]) -> AlertRule:
    """Alerts when the oracle's z in a window exceeds k[w] (and MIN_CASES are seen)."""

    def rule(season: Season) -> np.ndarray:
        if season.oracle is None:
            season.oracle = oracle_z(season)
        z = season.oracle
        return np.any(
            [(z[w] > k[w]) & (season.window_cases(w) >= MIN_CASES) for w in WINDOWS], axis=0
        )

    return rule


# -- figures ---------------------------------------------------------------------------------


def false_alerts(seasons: list[Season], rule: AlertRule) -> dict:
    """Alerts per 100 county-days, by phase and by size class; the worst day's share of counties;
    state alerts per 100 state-days; alerts a day (counties and states). Every alert of a null
    season is false; in an outbreak season the county-days of a planted outbreak's county from
    its start to 6 days after its end (while its windows still hold it) are left out."""
    classes = np.array([size_class(c.population) for c in refdata.counties().values()])
    alerts = [np.ma.masked_array(rule(s), mask=_outbreak_days(s)) for s in seasons]
    phases = [np.array([phase(d) for d in s.days]) for s in seasons]

    def rate(pairs) -> float:
        n, d = map(sum, zip(*pairs, strict=True))
        return round(100.0 * n / d, 2)

    per_day = np.concatenate(
        [
            a.sum(axis=0).filled(0) + s.state_alert.sum(axis=0)
            for a, s in zip(alerts, seasons, strict=True)
        ]
    )
    return {
        "per_100_county_days": rate([(a.sum(), a.count()) for a in alerts]),
        "by_phase": {
            p: rate(
                [
                    (a[:, ph == p].sum(), a[:, ph == p].count())
                    for a, ph in zip(alerts, phases, strict=True)
                ]
            )
            for p in PHASES
        },
        "by_size": {
            c: rate([(a[classes == c].sum(), a[classes == c].count()) for a in alerts])
            for c in CLASSES
        },
        "worst_day_percent": round(
            100.0 * max(a.sum(axis=0).filled(0).max() for a in alerts) / len(classes), 1
        ),
        "state_alerts_per_100_state_days": rate(
            [(s.state_alert.sum(), s.state_alert.size) for s in seasons]
        ),
        "alerts_a_day_median": float(np.median(per_day)),
        "alerts_a_day_max": int(per_day.max()),
    }


def _outbreak_days(season: Season) -> np.ndarray:
    index = {f: i for i, f in enumerate(refdata.counties())}
    mask = np.zeros((len(index), len(season.days)), dtype=bool)
    for outbreak in season.plan:
        start = season.days.index(dt.date.fromisoformat(outbreak["start"]))
        mask[index[outbreak["counties"][0]], start : start + 2 * OUTBREAK_DAYS - 1] = True
    return mask


def detection(seasons: list[Season], rule: AlertRule) -> dict:
    """On outbreak seasons: the share of outbreaks whose county alerted on one of its 7 days, by
    size x class and pooled by size; the median days from its start to that first alert."""
    index = {f: i for i, f in enumerate(refdata.counties())}
    populations = refdata.counties()
    found: dict = {}
    delays = []
    for season in seasons:
        alerts = rule(season)
        days = season.days
        for outbreak in season.plan:
            fips = outbreak["counties"][0]
            start = days.index(dt.date.fromisoformat(outbreak["start"]))
            window = alerts[index[fips], start : start + OUTBREAK_DAYS]
            key = (outbreak["relative_increase"], size_class(populations[fips].population))
            cell = found.setdefault(key, [0, 0])
            cell[0] += bool(window.any())
            cell[1] += 1
            if window.any():
                delays.append(int(np.argmax(window)))

    def pct(hits: int, total: int) -> float | None:
        return round(100.0 * hits / total, 1) if total else None

    by_size = {}
    for size in SIZES:
        cells = [found.get((size, c), [0, 0]) for c in CLASSES]
        by_size[_label(size)] = {
            **{c: pct(*cell) for c, cell in zip(CLASSES, cells, strict=True)},
            "all": pct(sum(a for a, _ in cells), sum(b for _, b in cells)),
            "outbreaks": sum(b for _, b in cells),
        }
    return {
        "found_percent": by_size,
        "median_delay_days": float(statistics.median(delays)) if delays else None,
    }


def _label(size: float) -> str:
    return f"+{round(size * 100)}%"


def goals_met(fa: dict, found: dict) -> dict[str, tuple[float | None, float, bool]]:
    """Each goal of GOALS: (reached, target, met)."""
    reached = {
        "false_alerts": fa["per_100_county_days"],
        "false_alerts_phase_or_size": max([*fa["by_phase"].values(), *fa["by_size"].values()]),
        "worst_day_percent": fa["worst_day_percent"],
        "found_50": found["found_percent"]["+50%"]["all"],
        "found_100": found["found_percent"]["+100%"]["all"],
        "found_25_large": found["found_percent"]["+25%"]["large"],
        "median_delay_days": found["median_delay_days"],
    }
    at_most = {
        "false_alerts",
        "false_alerts_phase_or_size",
        "worst_day_percent",
        "median_delay_days",
    }
    return {
        goal: (
            value,
            GOALS[goal],
            value is not None
            and (value <= GOALS[goal] if goal in at_most else value >= GOALS[goal]),
        )
        for goal, value in reached.items()
    }


def tune(
    null: list[Season],
    outbreaks: list[Season],
    make_rule: Callable[[dict], AlertRule],
    grid: dict,
    budget: dict[str, float],
) -> tuple[dict, dict, dict] | None:
    """The candidate of the grid (per-window thresholds, or one EARS scale) that finds the most
    outbreaks (+50 % and +100 % pooled, +25 % in large counties, +25 % pooled at half weight)
    while the null seasons stay within `budget` (per_100_county_days, phase_or_size,
    worst_day_percent): (candidate, false alerts, detection), or None if none fits."""
    best = None
    for values in itertools.product(*grid.values()):
        k = dict(zip(grid, values, strict=True))
        fa = false_alerts(null, make_rule(k))
        worst_group = max([*fa["by_phase"].values(), *fa["by_size"].values()])
        if (
            fa["per_100_county_days"] > budget["per_100_county_days"]
            or worst_group > budget["phase_or_size"]
            or fa["worst_day_percent"] > budget["worst_day_percent"]
        ):
            continue
        found = detection(outbreaks, make_rule(k))
        share = found["found_percent"]
        score = (
            share["+50%"]["all"] + share["+100%"]["all"] + share["+25%"]["large"]
            + 0.5 * share["+25%"]["all"]
        )  # fmt: skip
        if best is None or score > best[0]:
            best = (score, k, fa, found)
    return None if best is None else best[1:]
