"""Round 7: a better expected count E for the county detector — screened, then scored.

Round 6 (bench/try_detector_bands.py) found that the shipped statistic with the TRUE expected
count inside its own band finds 77 % of +50 % outbreaks against the shipped 60 %: the gap is E.
This tries other estimates of E, each with the shipped band recipe around it
(V = D (E + E^2 L) + 0.05^2 E^2: D the county's own Pearson dispersion over its 28 baseline
days, L the variance of ln E that the estimate's counts imply, 0.05 the floor), the states'
statistics as shipped. Nothing on day t uses a day after the baseline's end (t - w - 2).

    # the screen: log(E / true 7-day expected count) on the null seasons, by size class x phase
    nice -n 10 .venv/bin/python bench/try_detector_expected.py --screen --seeds 1-24 \
        [--kind idealised] [--variants shipped,flat28,...]
    # the tails of E's error and of the null statistic, the outbreaks' statistic
    nice -n 10 .venv/bin/python bench/try_detector_expected.py --tails --seeds 1-24 --variants ...
    # the detectors, thresholds tuned to bench_detection.BUDGET over DETECTOR_GRID
    nice -n 10 .venv/bin/python bench/try_detector_expected.py --seeds 1-24 --variants ...

Variants (E; L):
  shipped       the shipped E (28-day share, its trend shrunk and carried), restated
  true          the simulator's true expected count (outbreaks left out); shipped L (round 6 a)
  flat28        the 28-day share without a trend; L = 1 / baseline
  long          the share over every day from the series' start to the baseline's end, no
                trend; L = 1 / its cases
  ewm14, ewm28, ewm56
                the share exponentially weighted back from the baseline's end (half-life 14 /
                28 / 56 days, from the series' start), no trend; L = sum(a^2 y) / sum(a y)^2
  eb_state, eb_size
                empirical Bayes: ln(E / (p rest_window)) of the shipped E, p the county's
                population over the rest of its state's, shrunk towards its group's mean
                (state, or size class across the three states, each day) by tau^2 / (tau^2 +
                D L), tau^2 by DerSimonian-Laird across the group's counties that day; L the
                posterior variance tau^2 D L / (tau^2 + D L) / D
  eb_flat_state the same on flat28's E
  eb_long_state the same on long's E
  cap<x>        the shipped E with its carried trend limited to +-x in logs (0.15 / 0.25 / 0.4)
  min_<a>_<b>   the smaller of variants a's and b's statistics (a consensus)
  mix<lam>      (diagnostic) true^(1 - lam) x shipped^lam: the shipped error scaled by lam, L
                by lam^2 (lam 0.25 / 0.5 / 0.65 / 0.75 / 0.85)
  blend         shipped E and round 5's pooled-slope E (bench/try_detector_variants.py
                pooled_lines), ln E weighted by the inverse of each one's variance D L (the
                shipped E alone where the line has fewer than 28 days)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np

from flu_monitor import evaluation as ev
from flu_monitor import refdata
from flu_monitor.paths import ROOT

sys.path.insert(0, str(ROOT))
from bench import try_detector_bands as bands  # noqa: E402
from bench import tune_detector  # noqa: E402
from tests.warehouse import detector_reference as ref  # noqa: E402

CV = ref.EXPECTED_CV
VARIANTS = ("shipped", "true", "flat28", "long", "ewm14", "ewm28", "ewm56", "eb_state", "eb_size",
            "eb_plane", "eb_flat_state", "eb_long_state", "blend", "blend_2", "blend_4",
            "blend_0.5", "eb_blend_state", "eb_blend_plane", "ebtrend_state", "ebtrend_plane",
            "ebtrend_size", "ebtrend_state_d", "ebtrend_plane_d", "eb_ebtrend_plane", "mix0.25",
            "mix0.5", "mix0.65", "mix0.75", "mix0.85", "cap0.15", "cap0.25", "cap0.4",
            "min_shipped_blend", "min_shipped_eb_state", "min_blend_eb_state")  # fmt: skip


def _counties() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counties = refdata.counties()
    states = np.array([c.state_code for c in counties.values()])
    classes = np.array([ev.size_class(c.population) for c in counties.values()])
    population = np.array([float(c.population) for c in counties.values()])
    return states, classes, population


def _rest(counts: np.ndarray, states: np.ndarray) -> np.ndarray:
    rest = np.zeros_like(counts)
    for s in set(states):
        rest[states == s] = counts[states == s].sum(axis=0)
    return rest - counts


def _share(counts, rest, w: int, first: int, half_life: float | None):
    """(sum of the county's cases, sum of the rest's, sum of squared weights x cases) over every
    day from the series' start to the baseline's end (t - w - 2), weighted a^(days back from the
    end) with a = 2^(-1 / half_life) (1 without a half-life)."""
    a = 1.0 if half_life is None else 2.0 ** (-1.0 / half_life)
    n = counts.shape[1]
    sy, sr, sq = (np.zeros(counts.shape) for _ in range(3))
    y_run = r_run = q_run = np.zeros(counts.shape[0])
    for d in range(n):
        y_run = a * y_run + counts[:, d]
        r_run = a * r_run + rest[:, d]
        q_run = a * a * q_run + counts[:, d]
        sy[:, d], sr[:, d], sq[:, d] = y_run, r_run, q_run
    end = np.arange(first, n) - (w + ref.GUARD_DAYS)
    return sy[:, end], sr[:, end], sq[:, end]


def _eb(log_ratio, variance, groups: np.ndarray, design: np.ndarray | None = None):
    """Each county's log ratio shrunk towards its group's mean (per day), or towards a plane over
    `design` (county x p columns, e.g. 1, east, north) fitted per group and day by weighted
    least squares: (posterior mean, posterior variance). tau^2 by DerSimonian-Laird per group
    and day (2 passes with the plane); counties without a finite ratio get the prior mean with
    variance tau^2."""
    post, post_var = np.full(log_ratio.shape, np.nan), np.full(log_ratio.shape, np.nan)
    ok = np.isfinite(log_ratio) & np.isfinite(variance) & (variance > 0)
    if design is None:
        design = np.ones((log_ratio.shape[0], 1))
    for g in set(groups):
        m = groups == g
        x, k = design[m], ok[m]
        r, v = np.where(k, log_ratio[m], 0.0), np.where(k, variance[m], 1.0)
        tau2 = np.zeros(r.shape[1])
        for _ in range(2):
            wt = np.where(k, 1.0 / (v + tau2), 0.0)
            xtwx = np.einsum("ci,cj,cd->dij", x, x, wt) + 1e-9 * np.eye(x.shape[1])
            coef = np.linalg.solve(xtwx, np.einsum("ci,cd->di", x, wt * r)[..., None])[..., 0]
            prior = x @ coef.T
            w0 = np.where(k, 1.0 / v, 0.0)
            q = (w0 * (r - prior) ** 2).sum(axis=0)
            dof = k.sum(axis=0) - x.shape[1]
            sw = w0.sum(axis=0)
            tau2 = np.maximum((q - dof) / (sw - (w0 * w0).sum(axis=0) / sw), 1e-6)
        shrink = np.where(k, tau2 / (tau2 + v), 0.0)
        post[m] = prior + shrink * (r - prior)
        post_var[m] = np.where(k, shrink * v, tau2)
    return post, post_var


def _plane() -> np.ndarray:
    """county x 3: 1, east and north of the centre (degrees of latitude)."""
    counties = refdata.counties().values()
    lat = np.array([c.latitude for c in counties])
    lon = np.array([c.longitude for c in counties])
    east = (lon - lon.mean()) * np.cos(np.radians(lat.mean()))
    return np.stack([np.ones(len(lat)), east, lat - lat.mean()], axis=1)


def estimate(name: str, ctx: dict, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(E, L) of window w for the counties x evaluated days."""
    p, counts, rest, first = ctx["parts"][w], ctx["counts"], ctx["rest"], ctx["first"]
    own = np.maximum(p["scatter"] / 26.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "shipped":
            return p["expected"], p["log_variance"]
        if name == "true":
            return ctx["true_e"][w], p["log_variance"]
        if name.startswith("cap"):  # cap<x>: the shipped trend's exponent limited to +-x
            cap = float(name[3:])
            e, lv = estimate("shipped", ctx, w)
            flat = p["baseline"] * p["rest_window"] / p["rest_baseline"]
            return flat * np.clip(e / flat, np.exp(-cap), np.exp(cap)), lv
        if name.startswith("mix"):  # mix<lam>: truth^(1 - lam) x shipped^lam, L x lam^2
            lam = float(name[3:])
            e, lv = estimate("shipped", ctx, w)
            return ctx["true_e"][w] ** (1 - lam) * e**lam, lam * lam * lv
        if name == "flat28":
            return p["baseline"] * p["rest_window"] / p["rest_baseline"], 1.0 / p["baseline"]
        if name == "long" or name.startswith("ewm"):
            half_life = None if name == "long" else float(name[3:])
            sy, sr, sq = _share(counts, rest, w, first, half_life)
            return sy * p["rest_window"] / sr, sq / (sy * sy)
        if name.startswith("eb_"):  # eb_[base_]group, group state / size / plane
            *base_parts, group = name[3:].split("_")
            base = "_".join(base_parts) or "shipped"
            base = {"flat": "flat28", "ebtrend": "ebtrend_plane_d"}.get(base, base)
            e, lv = estimate(base, ctx, w)
            prior = ctx["pop_ratio"][:, None] * p["rest_window"]
            groups = ctx["classes"] if group == "size" else ctx["states"]
            design = _plane() if group == "plane" else None
            post, post_var = _eb(np.log(e / prior), own * lv, groups, design)
            return prior * np.exp(post), post_var / own
        if name.startswith("ebtrend_"):  # ebtrend_group[_d]: the trend's prior from the data
            group = name.split("_")[1]
            older, recent, rest_older, rest_recent = p["halves"]
            ok = (older > 0) & (recent > 0) & (rest_older > 0) & (rest_recent > 0)
            growth = np.where(ok, np.log(recent * rest_older / (older * rest_recent)), np.nan)
            v = 1 / older + 1 / recent
            v_tau = own * v if name.endswith("_d") else v
            groups = ctx["classes"] if group == "size" else ctx["states"]
            design = _plane() if group == "plane" else None
            post, post_var = _eb(growth, v_tau, groups, design)
            shrink = np.where(ok, 1.0 - post_var / np.where(ok, v_tau, 1.0), 0.0)  # tau2/(tau2+v)
            carried = (2 * ref.HALF_DAYS + 2 * ref.GUARD_DAYS + w) / (2 * ref.HALF_DAYS)
            trend = carried * shrink
            base = p["baseline"] * p["rest_window"] / p["rest_baseline"]
            exponent = np.where(ok, carried * post, 0.0)
            baseline = p["baseline"]
            a, b = 1 / baseline - trend / older, 1 / baseline + trend / recent
            lv = np.where(ok, older * a * a + recent * b * b, 1 / baseline)
            return base * np.exp(exponent), lv
        if name.startswith("blend"):  # blend[_k]: the line's variance times k (default 1)
            k = float(name[6:]) if name != "blend" else 1.0
            e, lv = estimate("shipped", ctx, w)
            line, line_var = ctx["lines"][w]
            line_var = k * line_var
            weight = np.where(np.isfinite(line) & (line_var > 0), lv / (lv + line_var), 0.0)
            log_e = (1 - weight) * np.log(e) + weight * np.log(np.where(weight > 0, line, 1.0))
            return np.exp(log_e), np.where(weight > 0, lv * line_var / (lv + line_var), lv)
    raise SystemExit(f"unknown variant {name!r}")


def context(kind: str, seed: int, outbreaks: bool, cache: Path, names: list[str]) -> dict:
    counts = np.load(cache / f"{kind}-{seed}-{int(outbreaks)}.npy").astype(np.float64)
    states, classes, population = _counties()
    state_pop = {s: population[states == s].sum() for s in set(states)}
    pop_ratio = population / (np.array([state_pop[s] for s in states]) - population)
    first = (ev.FIRST_EVALUATED - ev.FIRST_DAY).days
    mean, cv = bands.truth(kind, seed, cache)
    cm = bands._cum(mean)
    t = np.arange(first, counts.shape[1])
    ctx = {
        "counts": counts,
        "rest": _rest(counts, states),
        "first": first,
        "states": states,
        "classes": classes,
        "pop_ratio": pop_ratio,
        "parts": {w: bands.parts(counts, states, w, first) for w in ev.WINDOWS},
        "true_e": {w: cm[:, t + 1] - cm[:, t + 1 - w] for w in ev.WINDOWS},
        "true_v": {
            w: (c := bands._cum(mean + cv * cv * mean * mean))[:, t + 1] - c[:, t + 1 - w]
            for w in ev.WINDOWS
        },
    }
    if any("blend" in n for n in names):
        ctx["lines"] = {w: _pooled_line(counts, states, w, first) for w in ev.WINDOWS}
    return ctx


def _pooled_line(counts, states, w: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Round 5's pooled-slope expected count of window w and its log variance, as
    bench/try_detector_variants.py's `pooled` detector computes them (the line fitted on up to
    120 days ending at the baseline's end, its slope shrunk towards the state's plane; NaN
    before the line has 28 days)."""
    from bench import try_detector_variants as tv

    line = tv.pooled_lines(counts, states, 28)
    rest_w = tv._sums(_rest(counts, states), w)
    t = np.arange(first, counts.shape[1])
    e = t - w - ref.GUARD_DAYS
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        centred = line["growth"][:, t] - line["mean_u"][:, e]
        expected = np.exp(line["a"][:, e] + line["b"][:, e] * centred) * rest_w[:, t]
        log_variance = (
            7.0 * line["scatter"][:, e] / line["sw"][:, e] + centred**2 * line["var_b"][:, e]
        )
    return expected, log_variance


def statistic(name: str, ctx: dict) -> dict[int, np.ndarray]:
    """The shipped statistic around the variant's E. `name` may end in ~L<k> (L times k in the
    band) and ~F<cv> (the floor's CV in place of 0.05)."""
    if name.startswith("min_"):  # min_a_b: the smaller of two variants' statistics
        a, b = name[4:].split("_", 1)
        one, two = statistic(a, ctx), statistic(b, ctx)
        return {w: np.fmin(one[w], two[w]) for w in ev.WINDOWS}
    name, *options = name.split("~")
    scale = float(next((o[1:] for o in options if o[0] == "L"), 1.0))
    cv = float(next((o[1:] for o in options if o[0] == "F"), CV))
    out = {}
    for w in ev.WINDOWS:
        p = ctx["parts"][w]
        e, lv = estimate(name, ctx, w)
        own = np.maximum(p["scatter"] / 26.0, 1.0)
        out[w] = bands.z(p["observed"], e, own * (e + scale * e * e * lv) + cv * cv * e * e)
    return out


def screen(kind: str, seeds: list[int], cache: Path, names: list[str]) -> None:
    """SD (and mean) of log(E / truth) of the 7-day window on the null seasons."""
    states, classes, _ = _counties()
    days = [
        ev.FIRST_EVALUATED + k * ev.DAY for k in range((ev.LAST_DAY - ev.FIRST_EVALUATED).days + 1)
    ]
    phases = np.array([ev.phase(d) for d in days])
    errors: dict = {n: {} for n in names}
    for seed in seeds:
        ctx = context(kind, seed, False, cache, names)
        truth = ctx["true_e"][7]
        for n in names:
            e, _ = estimate(n.split("~")[0], ctx, 7)
            with np.errstate(divide="ignore", invalid="ignore"):
                err = np.log(e / truth)
            for c in ev.CLASSES:
                for ph in ev.PHASES:
                    cell = err[np.ix_(classes == c, phases == ph)].ravel()
                    errors[n].setdefault((c, ph), []).append(cell)
    print(
        f"{kind}, seeds {seeds[0]}-{seeds[-1]}: SD of log(E / truth), 7 days "
        "(mean if |mean| > 0.02)"
    )
    for n in names:
        cells = []
        for c in ev.CLASSES:
            parts = []
            for ph in ev.PHASES:
                e = np.concatenate(errors[n][(c, ph)])
                bad = (~np.isfinite(e)).mean()
                e = e[np.isfinite(e)]
                text = f"{e.std():.3f}" + (f" ({e.mean():+.2f})" if abs(e.mean()) > 0.02 else "")
                parts.append(text + (f" [{100 * bad:.0f}% none]" if bad > 0.001 else ""))
            cells.append(" / ".join(parts))
        print(f"| {n} | " + " | ".join(cells) + " |", flush=True)


def tails(kind: str, seeds: list[int], cache: Path, names: list[str]) -> None:
    """Beyond the SD: per size class, the 1st and 99th percentiles of log(E / truth) (7 days) and
    the share of county-days with a 7-day statistic above 3 on the null seasons; the median
    7-day statistic of the +50 % outbreaks on their 7th day."""
    _, classes, _ = _counties()
    index = {f: i for i, f in enumerate(refdata.counties())}
    first_day = ev.FIRST_EVALUATED
    err: dict = {n: [] for n in names}
    null_z: dict = {n: [] for n in names}
    outbreak_z: dict = {n: {c: [] for c in ev.CLASSES} for n in names}
    for seed in seeds:
        ctx = context(kind, seed, False, cache, names)
        for n in names:
            with np.errstate(divide="ignore", invalid="ignore"):
                err[n].append(np.log(estimate(n.split("~")[0], ctx, 7)[0] / ctx["true_e"][7]))
            null_z[n].append(statistic(n, ctx)[7])
        ctx = context(kind, seed, True, cache, names)
        z7 = {n: statistic(n, ctx)[7] for n in names}
        for o in ev.outbreak_plan(seed):
            day = (dt.date.fromisoformat(o["start"]) - first_day).days + ev.OUTBREAK_DAYS - 1
            if o["relative_increase"] != 0.5 or day >= z7[names[0]].shape[1]:
                continue
            i = index[o["counties"][0]]
            for n in names:
                outbreak_z[n][classes[i]].append(z7[n][i, day])
    print(f"{kind}, seeds {seeds[0]}-{seeds[-1]}, by size class (small / medium / large)")
    for n in names:
        e, z = np.concatenate(err[n], axis=1), np.concatenate(null_z[n], axis=1)
        cells = []
        for c in ev.CLASSES:
            ec, zc = e[classes == c], z[classes == c]
            ec, zc = ec[np.isfinite(ec)], zc[np.isfinite(zc)]
            cells.append(
                f"P1 {np.percentile(ec, 1):+.2f} P99 {np.percentile(ec, 99):+.2f}, "
                f"z7 > 3 {100 * (zc > 3).mean():.2f} %, outbreak z7 median "
                f"{np.nanmedian(outbreak_z[n][c]):.2f}"
            )
        print(f"{n}: " + " | ".join(cells), flush=True)


def main() -> None:
    parser = bands.arguments(__doc__.splitlines()[0], VARIANTS)
    parser.add_argument("--screen", action="store_true", help="E's error only, no detector")
    parser.add_argument("--slow", action="store_true", help="tune with ev.tune (to check)")
    parser.add_argument("--tails", action="store_true", help="E's and z's tails, no detector")
    args = parser.parse_args()
    tune_detector.reject_report_seeds(parser, args.seeds)
    names = args.variants.split(",")
    unknown = {n.split("~")[0] for n in names if not n.startswith("min_")} - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    args.cache.mkdir(parents=True, exist_ok=True)
    for s in args.seeds:  # the counts, simulated once
        for outbreaks in (False, True):
            if not (args.cache / f"{args.kind}-{s}-{int(outbreaks)}.npy").exists():
                tune_detector.season(args.kind, s, outbreaks, cache=args.cache)
    if args.screen:
        screen(args.kind, args.seeds, args.cache, names)
        return
    if args.tails:
        tails(args.kind, args.seeds, args.cache, names)
        return
    from bench.tune_fast import tuner

    started = time.perf_counter()
    base = {
        (s, o): tune_detector.season(args.kind, s, o, bands._states_only, args.cache)
        for s in args.seeds
        for o in (False, True)
    }
    stats: dict = {n: {} for n in names}
    for s, o in base:
        ctx = context(args.kind, s, o, args.cache, names)
        for n in names:
            stats[n][(s, o)] = statistic(n, ctx)
    print(f"{2 * len(args.seeds)} {args.kind} seasons in {time.perf_counter() - started:.0f} s")
    for n in names:
        null = [
            dataclasses.replace(base[(s, False)], statistic=stats[n][(s, False)])
            for s in args.seeds
        ]
        found = [
            dataclasses.replace(base[(s, True)], statistic=stats[n][(s, True)]) for s in args.seeds
        ]
        print(f"== {n}", flush=True)
        tune_detector.report(null, found, tuner=ev.tune if args.slow else tuner)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
