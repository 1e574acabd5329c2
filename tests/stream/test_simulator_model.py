"""The outbreak model: contract, statistics, facilities, determinism, relative days, pacing.

Statistical assertions compare observed counts with the model's own expectations (or the CDC
ratios they come from) within a few standard deviations, on fixed seeds.
"""

import collections
import datetime as dt
import math

import numpy as np
import pytest

from flu_monitor import contract, refdata
from flu_monitor.simulator import Scenario, Simulator, load_scenario, parameters
from flu_monitor.simulator.places import zip_codes
from flu_monitor.simulator.scenario import DEFAULT_SCENARIO, ScenarioError, from_dict
from tests.warehouse import detector_reference

FLAT = from_dict(
    {
        "name": "flat",
        "baseline": {"peak_daily_cases_per_100k": 30, "seasonal": False, "weekend_factor": 1.0},
    }
)
MONDAY = dt.date(2026, 1, 12)


@pytest.fixture(scope="module")
def flat_events():
    """About 127,000 baseline events: 10 days at 30 per 100,000 per day, no outbreak."""
    sim = Simulator(FLAT, seed=11, start=MONDAY)
    return [e for i in range(10) for e in sim.day_batch(MONDAY + dt.timedelta(days=i)).events()]


def within(observed, expected, sds=4.0):
    """Poisson/binomial-style check: |observed - expected| <= sds * sqrt(expected)."""
    return abs(observed - expected) <= sds * math.sqrt(max(expected, 1.0))


def test_every_event_follows_the_contract():
    sim = Simulator(load_scenario(), seed=5)  # default scenario: season and both outbreaks
    events = sim.day_batch(sim.start).events()
    assert len(events) > 4000
    bad = [(e, contract.violations(e)) for e in events[:6000] if contract.violations(e)]
    assert bad == []
    assert [e["event_time"] for e in events] == sorted(e["event_time"] for e in events)
    assert len({e["case_id"] for e in events}) == len(events)


def test_counties_in_proportion_to_population(flat_events):
    counties = refdata.counties()
    observed = collections.Counter(e["county_fips"] for e in flat_events)
    assert set(observed) == set(counties)  # every one of the 150 counties has cases
    per_day = 30 / 1e5
    for fips, county in counties.items():
        expected = county.population * per_day * 10
        assert within(observed[fips], expected), (fips, observed[fips], expected)
    by_state = collections.Counter(e["state_code"] for e in flat_events)
    total = sum(c.population for c in counties.values())
    for state in ("NY", "NJ", "PA"):
        share = sum(c.population for c in counties.values() if c.state_code == state) / total
        assert abs(by_state[state] / len(flat_events) - share) < 0.005


def test_age_mix_and_admission_gradient_follow_cdc_ratios(flat_events):
    n = len(flat_events)
    by_band = collections.Counter(e["age_band"] for e in flat_events)
    admitted = collections.Counter(e["age_band"] for e in flat_events if e["admitted"])
    for band in contract.AGE_BANDS:
        assert within(by_band[band], n * parameters.AGE_BAND_SHARE[band])
        expected = by_band[band] * parameters.ADMISSION_PROBABILITY[band]
        assert within(admitted[band], expected), (band, admitted[band], expected)
    rate = {b: admitted[b] / by_band[b] for b in contract.AGE_BANDS}
    assert rate["65+"] > rate["50-64"] > rate["18-49"] > rate["0-4"] > rate["5-17"]
    assert 0.14 < rate["65+"] < 0.19  # CDC 2023-24: 237,289 / 1,461,701 = 16.2 %


def test_vaccination_lowers_admission_and_severity(flat_events):
    def share(events, predicate):
        return sum(map(predicate, events)) / len(events)

    for band in ("18-49", "65+"):
        group = {
            status: [
                e
                for e in flat_events
                if e["age_band"] == band and e["vaccination_status"] == status
            ]
            for status in ("vaccinated", "unvaccinated")
        }
        admit = {s: share(g, lambda e: e["admitted"]) for s, g in group.items()}
        outpatients = {s: [e for e in g if not e["admitted"]] for s, g in group.items()}
        severe = {
            s: share(g, lambda e: e["symptom_severity"] == "severe") for s, g in outpatients.items()
        }
        assert admit["vaccinated"] < admit["unvaccinated"]
        assert severe["vaccinated"] < severe["unvaccinated"]
        if band == "65+":  # enough admissions to check the factor itself
            ratio = admit["vaccinated"] / admit["unvaccinated"]
            assert ratio == pytest.approx(parameters.VACCINATED_ADMISSION_FACTOR, abs=0.12)
    # Fewer vaccinated people fall ill: vaccinated cases are rarer than coverage.
    old = [
        e for e in flat_events if e["age_band"] == "65+" and e["vaccination_status"] != "unknown"
    ]
    assert share(old, lambda e: e["vaccination_status"] == "vaccinated") < 0.6 < 0.70
    unknown = sum(e["vaccination_status"] == "unknown" for e in flat_events)
    assert within(unknown, len(flat_events) * parameters.VACCINATION_UNKNOWN)


def _haversine(a, b):
    (lat1, lon1), (lat2, lon2) = a, b
    h = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(math.radians(lat1))
        * math.cos(math.radians(lat2))
        * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371 * math.asin(math.sqrt(h))


def test_admitted_cases_go_to_a_hospital_of_their_county_or_the_nearest(flat_events):
    counties, facilities = refdata.counties(), refdata.facilities()
    with_hospital = {f.county_fips for f in facilities.values()}
    admitted = [e for e in flat_events if e["admitted"]]
    assert len(admitted) > 2000
    used_outside = 0
    for e in admitted:
        facility = facilities[e["facility_id"]]
        if e["county_fips"] in with_hospital:
            assert facility.county_fips == e["county_fips"], e
        else:
            c = counties[e["county_fips"]]
            nearest = min(
                facilities.values(),
                key=lambda f: _haversine((c.latitude, c.longitude), (f.latitude, f.longitude)),
            )
            assert facility.facility_id == nearest.facility_id, e
            used_outside += 1
    assert used_outside > 0  # some counties (e.g. Hamilton NY) have no hospital
    stays = collections.defaultdict(list)
    for e in admitted:
        stays[e["age_band"]].append(e["days_admitted"])
    assert all(1 <= d <= 60 for v in stays.values() for d in v)
    assert np.median(stays["5-17"]) == 2 and np.median(stays["65+"]) == 5


def test_zip_codes_belong_to_the_case_county(flat_events):
    zips = {f: set(z) for f, z in zip_codes().items()}
    assert all(e["zipcode"] in zips[e["county_fips"]] for e in flat_events)
    kings = {e["zipcode"] for e in flat_events if e["county_fips"] == "36047"}
    assert len(kings) > 30  # drawn across the county's ZIPs, not one


def test_reports_follow_clinic_hours(flat_events):
    hours = collections.Counter(int(e["event_time"][11:13]) for e in flat_events)
    # 10:00 Eastern (15 UTC) is busy, 03:00 Eastern (08 UTC) quiet.
    assert hours[15] > 10 * hours[8]


def test_hotspots_of_the_default_scenario_stand_out():
    scenario = load_scenario(DEFAULT_SCENARIO)
    assert {refdata.counties()[f].state_code for o in scenario.outbreaks for f in o.counties} >= {
        "NY",
        "PA",
    }
    sim = Simulator(scenario, seed=3)
    day = sim.anchor  # both outbreaks are growing on the anchor day
    events = sim.day_batch(day).events()
    expected_base, _ = sim.expected_cases(day)
    fips_index = {f: i for i, f in enumerate(refdata.counties())}
    counts = collections.Counter(e["county_fips"] for e in events)
    for outbreak in scenario.outbreaks:
        for fips in outbreak.counties:
            mu = expected_base[fips_index[fips]]
            assert counts[fips] > mu + 6 * math.sqrt(mu), (outbreak.name, counts[fips], mu)
    # Outbreak cases carry the age skew: school age in Brooklyn, older adults in Lancaster.
    batch = sim.day_batch(day)
    bands = np.array(contract.AGE_BANDS)[batch.band]
    brooklyn = bands[batch.outbreak == 0]
    lancaster = bands[batch.outbreak == 1]
    for cases, outbreak, band in ((brooklyn, 0, "5-17"), (lancaster, 1, "65+")):
        skew = scenario.outbreaks[outbreak].age_skew
        weights = {b: parameters.AGE_BAND_SHARE[b] * skew.get(b, 1.0) for b in contract.AGE_BANDS}
        expected = weights[band] / sum(weights.values())
        assert expected > 1.8 * parameters.AGE_BAND_SHARE[band]
        assert (cases == band).mean() == pytest.approx(
            expected, abs=4 * math.sqrt(0.25 / len(cases))
        )


def test_seasonal_baseline_peaks_in_winter():
    sim = Simulator(load_scenario(), seed=0)
    peak, summer = sim.baseline_rate(dt.date(2026, 2, 1)), sim.baseline_rate(dt.date(2026, 8, 1))
    assert peak == pytest.approx(20.0)
    assert summer == pytest.approx(20.0 * 0.05, rel=0.01)
    assert sim.baseline_rate(dt.date(2026, 1, 2)) == pytest.approx(
        20 * (0.05 + 0.95 * math.exp(-0.5)), rel=1e-6
    )


def test_same_seed_same_day_whatever_the_start():
    one = Simulator(FLAT, seed=4, start=MONDAY).day_batch(MONDAY + dt.timedelta(days=3)).events()
    two = Simulator(FLAT, seed=4, start=MONDAY + dt.timedelta(days=3)).day_batch(
        MONDAY + dt.timedelta(days=3)
    )
    assert one == two.events()
    other = Simulator(FLAT, seed=5, start=MONDAY).day_batch(MONDAY + dt.timedelta(days=3))
    assert one[0]["case_id"] != other.events()[0]["case_id"]


def test_relative_outbreak_days_count_from_the_backfill_end():
    scenario = load_scenario("scenarios/county_outbreak.yaml")
    now = dt.datetime(2031, 7, 9, 15, 30, tzinfo=dt.UTC)
    sim = Simulator.backfilled(scenario, seed=1, days=21, now=now)
    assert sim.start == dt.date(2031, 6, 18) and sim.anchor == dt.date(2031, 7, 9)
    outbreak = scenario.outbreaks[0]
    extras = [outbreak.extra_cases(now.date() - dt.timedelta(days=k), sim.anchor) for k in range(4)]
    assert extras == [80, 40, 20, 0]  # today, yesterday, the day before, three days ago
    # After the growth the outbreak fades at the same pace.
    assert outbreak.extra_cases(now.date() + dt.timedelta(days=1), sim.anchor) == 40


def test_outbreak_scenario_is_flagged_on_any_date():
    """scenarios/county_outbreak.yaml backfilled as `flu-monitor up` does (28 days): the detector
    (its plain-Python reference) flags Tompkins County the day before yesterday and yesterday,
    not before; other counties only by chance, rarely."""
    scenario = load_scenario("scenarios/county_outbreak.yaml")
    state_of = {f: c.state_code for f, c in refdata.counties().items()}
    for now in (
        dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC),
        dt.datetime(2027, 11, 20, 23, 0, tzinfo=dt.UTC),
    ):
        sim = Simulator.backfilled(scenario, seed=1, days=28, now=now)
        daily = collections.defaultdict(collections.Counter)
        for e in sim.events(until=now):
            daily[e["event_time"][:10]][e["county_fips"]] += 1
        days = sorted(daily)[:-1]  # whole days only
        assert sum(sum(c.values()) for c in daily.values()) < 45_000  # small enough for an e2e test
        series = {f: [daily[d][f] for d in days] for f in state_of}
        found = detector_reference.statistics(series, state_of)
        alerts = {(u, t) for (u, t), row in found.items() if row["alert"]}
        last = len(days) - 1  # yesterday
        assert {("36109", last - 1), ("36109", last)} <= alerts
        assert not {t for u, t in alerts if u == "36109" and t < last - 1}
        others = {(u, t) for u, t in alerts if u != "36109"}
        assert len(others) <= 0.01 * len(found), others  # chance alerts stay rare


def test_run_writes_history_at_once_then_paces_live():
    now = dt.datetime(2026, 1, 12, 12, 0, tzinfo=dt.UTC)
    sim = Simulator.backfilled(FLAT, seed=2, days=1, now=now)
    fake = {"t": 100.0, "slept": 0.0}

    def clock():
        return fake["t"]

    def sleep(seconds):
        fake["slept"] += seconds
        fake["t"] += seconds

    stream = sim.run(speed=3600.0, clock=clock, sleep=sleep)
    history = 0
    for event in stream:
        if event["event_time"] >= "2026-01-12T12:00:00Z":
            break
        history += 1
    # The backfill does not wait; the first live event waits for its own simulated seconds.
    first_live = dt.datetime.fromisoformat(event["event_time"])
    assert history > 10_000
    assert fake["slept"] == pytest.approx((first_live - now).total_seconds() / 3600.0)
    for event in stream:
        if event["event_time"] >= "2026-01-12T14:00:00Z":
            break
    # Two simulated hours at 3600x take two real seconds.
    assert fake["slept"] == pytest.approx(2.0, abs=0.01)


# -- the realism options (docs/simulator.md, "Realistic county series") ------------------------

REALISM = {
    "weekday_factors": [1.2, 1.05, 1.0, 1.0, 0.95, 0.75, 0.7],
    "county_timing_sd_days": 7,
    "county_level_cv": 0.25,
    "daily_noise_cv": 0.1,
    "report_delay": [0.55, 0.25, 0.12, 0.08],
}
SEASON = {"peak_daily_cases_per_100k": 20, "seasonal": True, "season_peak": "02-01"}


def _scenario(**baseline) -> Scenario:
    return from_dict({"name": "t", "baseline": {**SEASON, **baseline}})


def test_neutral_realism_options_change_nothing():
    """A scenario without the options draws exactly what it drew before they existed."""
    plain = Simulator(_scenario(weekend_factor=0.8), seed=9, start=MONDAY)
    neutral = Simulator(
        _scenario(
            weekday_factors=[1, 1, 1, 1, 1, 0.8, 0.8],
            county_timing_sd_days=0,
            county_level_cv=0,
            daily_noise_cv=0,
            report_delay=[1],
        ),
        seed=9,
        start=MONDAY,
    )
    for k in (0, 5):
        day = MONDAY + dt.timedelta(days=k)
        assert plain.day_batch(day).events() == neutral.day_batch(day).events()


def test_counties_get_their_own_season_timing_and_level_per_seed():
    sim = Simulator(_scenario(**REALISM), seed=4, start=MONDAY)
    timing, level = sim._county_seasons()
    assert np.std(timing) == pytest.approx(7, rel=0.25)
    assert np.mean(level) == pytest.approx(1, abs=0.06) and np.std(level) == pytest.approx(
        0.25, rel=0.3
    )
    again = Simulator(_scenario(**REALISM), seed=4, start=MONDAY + dt.timedelta(days=40))
    assert np.array_equal(again._county_seasons()[0], timing)  # a property of the seed
    other = Simulator(_scenario(**REALISM), seed=5, start=MONDAY)
    assert not np.array_equal(other._county_seasons()[0], timing)
    # a county whose season comes 10 days late peaks 10 days late
    base = Simulator(_scenario(), seed=4)
    peak = dt.date(2026, 2, 1)
    late = [base.baseline_rate(peak + dt.timedelta(days=k), np.array([10.0])) for k in (5, 10, 15)]
    assert late[1] > late[0] and late[1] > late[2] and late[1] == pytest.approx(20.0)


def test_weekday_factors_and_reporting_delay_shape_the_expected_counts():
    flat = {"peak_daily_cases_per_100k": 30, "seasonal": False}
    sunday, monday = dt.date(2026, 1, 11), dt.date(2026, 1, 12)
    weekly = Simulator(
        from_dict(
            {"name": "w", "baseline": {**flat, "weekday_factors": REALISM["weekday_factors"]}}
        )
    )
    assert weekly.expected_cases(monday)[0].sum() / weekly.expected_cases(sunday)[0].sum() == (
        pytest.approx(1.2 / 0.7)
    )
    growth = {
        "name": "g",
        "baseline": {**flat, "weekend_factor": 1.0, "report_delay": [0.5, 0.3, 0.2]},
        "outbreaks": [
            {
                "name": "o",
                "counties": ["36109"],
                "start": "2026-01-12",
                "initial_daily_cases": 10,
                "doubling_days": 1,
                "duration_days": 2,
            }  # fmt: skip
        ],
    }
    sim = Simulator(from_dict(growth), start=sunday)
    extras = [sim.expected_cases(monday + dt.timedelta(days=k))[1][0].max() for k in range(4)]
    # onsets 10 (Monday), 20 (Tuesday), then 10, 5, ... reported over three days
    assert extras[:3] == pytest.approx([5.0, 0.5 * 20 + 0.3 * 10, 0.5 * 10 + 0.3 * 20 + 0.2 * 10])


def test_daily_counts_are_overdispersed_as_asked():
    sim = Simulator(
        from_dict({"name": "n", "baseline": {"peak_daily_cases_per_100k": 20, "seasonal": False,
                                             "weekend_factor": 1.0, "daily_noise_cv": 0.2}}),
        seed=2,
    )  # fmt: skip
    kings = refdata.counties()["36047"].population * 20 / 1e5  # about 547 a day
    days = [MONDAY + dt.timedelta(days=k) for k in range(40)]
    counts = [
        int((sim.day_batch(d).county == list(refdata.counties()).index("36047")).sum())
        for d in days
    ]
    variance = np.var(counts, ddof=1)
    # gamma-Poisson: mean + cv^2 mean^2, about 12,500, against 547 for Poisson
    assert np.mean(counts) == pytest.approx(kings, rel=0.1)
    assert 6_000 < variance < 25_000


def test_a_relative_outbreak_adds_a_share_of_the_expected_count():
    scenario = from_dict(
        {
            "name": "r",
            "baseline": {**SEASON, **REALISM},
            "outbreaks": [
                {
                    "name": "plus half",
                    "counties": ["36109", "42071"],
                    "start": "2026-01-13",
                    "relative_increase": 0.5,
                    "duration_days": 7,
                }  # fmt: skip
            ],
        }
    )
    sim = Simulator(scenario, seed=1, start=MONDAY)
    index = list(refdata.counties())
    for k in range(-1, 9):
        day = dt.date(2026, 1, 13) + dt.timedelta(days=k)
        base, (extra,) = sim.expected_cases(day)
        share = 0.5 if 0 <= k < 7 else 0.0
        for fips in ("36109", "42071"):
            assert extra[index.index(fips)] == pytest.approx(share * base[index.index(fips)])
        assert extra.sum() == pytest.approx(
            extra[index.index("36109")] + extra[index.index("42071")]
        )


@pytest.mark.parametrize(
    ("outbreak", "message"),
    [
        ({"initial_daily_cases": 3, "doubling_days": 2, "relative_increase": 0.5}, "either"),
        ({}, "either"),
        ({"initial_daily_cases": 3}, "either"),
        ({"relative_increase": -1}, "relative_increase: -1 is less than or equal to the minimum"),
    ],
)
def test_an_outbreak_is_either_growing_or_relative(outbreak, message):
    item = {"name": "o", "counties": ["36109"], "start": "0d", "duration_days": 7, **outbreak}
    with pytest.raises(ScenarioError, match=message):
        from_dict({"name": "x", "outbreaks": [item]})


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        ({"weekday_factors": [1, 1, 1]}, "weekday_factors: .* is too short"),
        ({"report_delay": [0, 0]}, "report_delay: the shares must not all be 0"),
        ({"daily_noise_cv": -0.1}, "daily_noise_cv: -0.1 is less than the minimum"),
    ],
)
def test_bad_realism_options_name_the_field(baseline, message):
    with pytest.raises(ScenarioError, match=message):
        from_dict({"name": "x", "baseline": baseline})
