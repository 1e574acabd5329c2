"""The outbreak model: flu case events for NY, NJ and PA, day by day, in simulated-time order.

For each UTC day the expected number of reported cases in county c is

    baseline(day) * population(c) / 100,000 * weekday factor  +  sum of outbreak extras(c, day)

and the day's count is a Poisson draw of it. A scenario may make the counties untidier, as real
ones are (docs/simulator.md): each county's season shifted and scaled (a per-seed draw), cases
reported 0..k days after onset, and a gamma day-to-day factor on the baseline (negative-binomial
counts); a relative outbreak adds a fraction of the county's expected reported count.

Each case then gets an age band (the CDC case mix,
skewed for outbreak cases when the scenario says so), an age, gender, vaccination status,
admission and severity (age-dependent, lowered by vaccination), an admitting facility and
length of stay, symptoms, a ZIP code of its county and a report time (clinic-hours profile).
Parameters and sources: flu_monitor.simulator.parameters and docs/simulator.md.

Every draw is vectorized with numpy (about 1 microsecond per event) and seeded per day from
(seed, day), so the same seed and scenario give the same events for a day however the run is
cut (batch, backfill, live, or a different start).

    sim = Simulator(load_scenario(), seed=7, start=dt.date(2026, 1, 5))
    for event in itertools.islice(sim.events(), 1000): ...          # flat out, batch mode

    sim = Simulator.backfilled(load_scenario(path), seed=7, days=21)  # anchor = today
    for event in sim.run(speed=1440): ...   # 21 days + today so far at once, then live:
                                            # one simulated day per real minute
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import orjson

from flu_monitor import contract
from flu_monitor.simulator import parameters as p
from flu_monitor.simulator.places import places
from flu_monitor.simulator.scenario import Scenario

BANDS = contract.AGE_BANDS
SYMPTOMS = contract.SYMPTOMS
GENDERS = tuple(p.GENDER_SHARE)
VACCINATION_STATUSES = ("vaccinated", "unvaccinated", "unknown")  # codes 0, 1, 2
DAY = dt.timedelta(days=1)
_UTC = dt.UTC


def _objects(values: Any) -> np.ndarray:
    """A 1-d object array of the given Python values (kept as they are, lists included)."""
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def _cdf(weights: Any) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return np.cumsum(w / w.sum())


@cache
def _tables() -> dict[str, Any]:
    """Per-band probability tables, computed once from parameters.py."""
    coverage = np.array([p.VACCINATION_COVERAGE[b] for b in BANDS])
    protected = coverage * (1 - p.VACCINE_EFFECTIVENESS)
    vaccinated_given_case = protected / (protected + 1 - coverage)
    admit = np.array([p.ADMISSION_PROBABILITY[b] for b in BANDS])
    outpatient_severe = np.array([p.OUTPATIENT_SEVERE[b] for b in BANDS])
    # Rows: vaccinated, unvaccinated, unknown (the case mix of the band). Calibrated so the
    # band's overall admission probability stays the CDC ratio.
    unvacc_admit = admit / (
        vaccinated_given_case * p.VACCINATED_ADMISSION_FACTOR + 1 - vaccinated_given_case
    )
    admit_by_status = np.stack([unvacc_admit * p.VACCINATED_ADMISSION_FACTOR, unvacc_admit, admit])
    unvacc_sev = outpatient_severe / (
        vaccinated_given_case * p.VACCINATED_SEVERE_FACTOR + 1 - vaccinated_given_case
    )
    severe_by_status = np.stack(
        [unvacc_sev * p.VACCINATED_SEVERE_FACTOR, unvacc_sev, outpatient_severe]
    )
    ages_65 = np.arange(p.AGE_RANGES["65+"][0], p.AGE_RANGES["65+"][1] + 1)
    symptoms = np.array([[p.SYMPTOM_PROBABILITY[s][k] for s in SYMPTOMS] for k in (0, 1)])
    sob = SYMPTOMS.index("shortness_of_breath")
    combos = [
        [s for i, s in enumerate(SYMPTOMS) if code >> i & 1] for code in range(1 << len(SYMPTOMS))
    ]
    hourly = np.roll(np.array(p.HOURLY_WEIGHT_EASTERN), p.UTC_OFFSET_HOURS)
    # "THH:MM:" of each minute joined with "SSZ" of each second: 1,440 + 60 strings formatted,
    # not 86,400 (a tenth of a second at every start).
    minutes = np.array([f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60)])
    seconds = np.array([f"{s:02d}Z" for s in range(60)])
    return {
        "vaccinated_given_case": vaccinated_given_case,
        "admit": admit_by_status,
        "outpatient_severe": severe_by_status,
        "age_lo": np.array([p.AGE_RANGES[b][0] for b in BANDS]),
        "age_width": np.array([p.AGE_RANGES[b][1] - p.AGE_RANGES[b][0] + 1 for b in BANDS]),
        "ages_65": ages_65,
        "ages_65_cdf": _cdf(p.OLDEST_AGE_DECAY_PER_YEAR ** (ages_65 - ages_65[0])),
        "gender_cdf": _cdf(list(p.GENDER_SHARE.values())),
        "los_mu": np.log([p.LENGTH_OF_STAY_MEDIAN[b] for b in BANDS]),
        "symptoms": symptoms,
        "sob": sob,
        "symptom_bits": 1 << np.arange(len(SYMPTOMS)),
        "hour_cdf": _cdf(hourly),
        "clock": np.strings.add(minutes[:, None], seconds).ravel(),  # "THH:MM:SSZ", each second
        "combo_objects": _objects(combos),
        "gender_objects": _objects(GENDERS),
        "band_objects": _objects(BANDS),
        "severity_objects": _objects(contract.SEVERITIES),
        "vaccination_objects": _objects(VACCINATION_STATUSES),
    }


@dataclass
class DayBatch:
    """One simulated day's events as columns, sorted by report time."""

    day: dt.date
    seconds: np.ndarray  # report time, seconds after midnight UTC
    county: np.ndarray  # index into places().fips
    outbreak: np.ndarray  # -1 for baseline cases, else the scenario's outbreak index
    case_id: list[str]
    gender: np.ndarray
    age: np.ndarray
    band: np.ndarray
    zipcode: list[str]
    symptoms: np.ndarray  # bit set over contract.SYMPTOMS
    severity: np.ndarray  # 0 mild, 1 moderate, 2 severe
    vaccination: np.ndarray  # 0 vaccinated, 1 unvaccinated, 2 unknown
    admitted: np.ndarray
    facility: np.ndarray  # 0 when not admitted
    days_admitted: np.ndarray

    def __len__(self) -> int:
        return len(self.seconds)

    def events(self) -> list[dict[str, Any]]:
        """The day's events as contract dicts (keys in schema order).

        Each column becomes a list of ready Python values by numpy indexing into object arrays
        (shared, immutable strings), so the per-event Python work is only building the dict."""
        t = _tables()
        pl = places()
        times = np.strings.add(self.day.isoformat(), t["clock"][self.seconds]).tolist()
        facility = np.where(self.admitted, self.facility, np.array(None, dtype=object))
        symptoms = map(list, t["combo_objects"][self.symptoms])
        version = contract.SCHEMA_VERSION
        return [
            {
                "schema_version": version,
                "case_id": case_id,
                "event_time": event_time,
                "gender": gender,
                "age": age,
                "age_band": band,
                "state_code": state,
                "county_fips": fips,
                "zipcode": zipcode,
                "symptoms": sym,
                "symptom_severity": severity,
                "vaccination_status": vaccination,
                "admitted": admitted,
                "facility_id": fac,
                "days_admitted": los,
            }
            for (
                case_id, event_time, gender, age, band, state, fips, zipcode, sym, severity,
                vaccination, admitted, fac, los,
            ) in zip(
                self.case_id,
                times,
                t["gender_objects"][self.gender].tolist(),
                self.age.tolist(),
                t["band_objects"][self.band].tolist(),
                pl.state_objects[self.county].tolist(),
                pl.fips_objects[self.county].tolist(),
                self.zipcode,
                symptoms,
                t["severity_objects"][self.severity].tolist(),
                t["vaccination_objects"][self.vaccination].tolist(),
                self.admitted.tolist(),
                facility.tolist(),
                self.days_admitted.tolist(),
                strict=True,
            )
        ]  # fmt: skip


def to_json(event: dict[str, Any]) -> bytes:
    """One event as compact UTF-8 JSON (no newline)."""
    return orjson.dumps(event)


class Simulator:
    """Flu case events for a scenario, a seed and a calendar.

    start: first simulated UTC day (default: the scenario's start, else today).
    anchor: the day relative scenario days ("-3d") count from (default: start).
    now: the instant that separates history from the live part in run() (default: start of the
    start day, i.e. everything is future; Simulator.backfilled sets it to the current time).
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int = 0,
        start: dt.date | None = None,
        anchor: dt.date | None = None,
        now: dt.datetime | None = None,
    ):
        today = dt.datetime.now(_UTC).date()
        if start is None:
            start = scenario.start.resolve(today) if scenario.start else today
        self.scenario = scenario
        self.seed = seed
        self.start = start
        self.anchor = anchor or start
        self.now = now or dt.datetime.combine(start, dt.time(), _UTC)
        self._places = places()
        self._county_index = {f: i for i, f in enumerate(self._places.fips)}
        self._band_cdfs = self._age_band_cdfs()
        self._timing_days, self._level = self._county_seasons()

    @classmethod
    def backfilled(
        cls, scenario: Scenario, seed: int, days: int, now: dt.datetime | None = None
    ) -> Simulator:
        """Start `days` whole days before today (UTC); relative scenario days count from today;
        run() writes the history up to `now` at once, then continues live."""
        if days < 0:
            raise ValueError(f"backfill days must be >= 0, not {days}")
        now = now or dt.datetime.now(_UTC)
        today = now.date()
        return cls(scenario, seed, start=today - days * DAY, anchor=today, now=now)

    # -- expected counts --------------------------------------------------------------------

    def baseline_rate(
        self, day: dt.date, shift_days: np.ndarray | float = 0.0
    ) -> np.ndarray | float:
        """Expected reported cases per 100,000 people on this day, before the weekday factor;
        with `shift_days` (an array: per county), for seasons that many days later."""
        b = self.scenario.baseline
        shift = np.asarray(shift_days, dtype=np.float64)
        if not b.seasonal:
            rate = np.full(shift.shape, float(b.peak_daily_cases_per_100k))
        else:
            month, dom = map(int, b.season_peak.split("-"))
            dom = min(dom, 28 if month == 2 else dom)
            peaks = [dt.date(year, month, dom) for year in (day.year - 1, day.year, day.year + 1)]
            distance = np.min([np.abs((day - peak).days - shift) for peak in peaks], axis=0)
            z = distance / b.season_width_days
            shape = b.offseason_fraction + (1 - b.offseason_fraction) * np.exp(-0.5 * z * z)
            rate = b.peak_daily_cases_per_100k * shape
        return float(rate) if rate.ndim == 0 else rate

    def _county_seasons(self) -> tuple[np.ndarray, np.ndarray]:
        """Each county's season shift (days) and level (mean 1), drawn once per seed (stream 0:
        no day's generator uses it, days count from 1).

        The shift is half a wave (a linear gradient across the three states in a random
        direction, as seasons spread from place to place) and half the county's own, together
        with standard deviation county_timing_sd_days; the level is log-normal with coefficient
        of variation county_level_cv. Both are zero / one when the scenario does not ask."""
        b = self.scenario.baseline
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0])))
        angle, local, level_z = (
            rng.uniform(0, 2 * np.pi),
            rng.standard_normal(len(self._places.fips)),
            rng.standard_normal(len(self._places.fips)),
        )
        lat, lon = self._places.latitude, self._places.longitude
        wave = np.cos(angle) * (lon - lon.mean()) * np.cos(np.radians(lat.mean())) + np.sin(
            angle
        ) * (lat - lat.mean())
        wave = (wave - wave.mean()) / wave.std()
        timing = b.county_timing_sd_days * (wave + local) / np.sqrt(2.0)
        sigma = np.sqrt(np.log1p(b.county_level_cv**2))
        level = np.exp(sigma * level_z - sigma**2 / 2)
        return timing, level

    def _onset_cases(self, day: dt.date) -> tuple[np.ndarray, list[float]]:
        """(baseline cases per county by day of onset, each outbreak's extra per county)."""
        rate = self.baseline_rate(day, self._timing_days)
        base = self._places.population / 1e5 * rate * self._level
        return base, [o.extra_cases(day, self.anchor) for o in self.scenario.outbreaks]

    def expected_cases(self, day: dt.date) -> tuple[np.ndarray, list[np.ndarray]]:
        """(baseline expected cases per county, [per-county extras of each outbreak]), as
        reported on `day`: onsets spread over the reporting delay, times the weekday factor
        (which, like the delay, leaves absolute outbreak extras' totals alone: weekday only
        scales the baseline, as before)."""
        b = self.scenario.baseline
        delay = np.asarray(b.report_delay, dtype=np.float64)
        delay = delay / delay.sum()
        base = np.zeros(len(self._places.fips))
        cases = np.zeros(len(self.scenario.outbreaks))
        for lag, share in enumerate(delay):
            if share:
                onset, extra = self._onset_cases(day - lag * DAY)
                base += share * onset
                cases += share * np.asarray(extra, dtype=np.float64)
        base = base * b.weekday_factor(day)
        extras: list[np.ndarray] = []
        for outbreak, outbreak_cases in zip(self.scenario.outbreaks, cases, strict=True):
            per_county = outbreak_cases + outbreak.relative_extra(day, self.anchor) * base
            county_extra = np.zeros(len(base))
            for fips in outbreak.counties:
                i = self._county_index[fips]
                county_extra[i] = per_county if np.ndim(per_county) == 0 else per_county[i]
            extras.append(county_extra)
        return base, extras

    def _age_band_cdfs(self) -> np.ndarray:
        """Row 0: the CDC case mix; row 1+o: outbreak o's mix after its age skew."""
        share = np.array([p.AGE_BAND_SHARE[b] for b in BANDS])
        rows = [share]
        for outbreak in self.scenario.outbreaks:
            rows.append(share * np.array([outbreak.age_skew.get(b, 1.0) for b in BANDS]))
        return np.stack([_cdf(r) for r in rows])

    # -- one day ----------------------------------------------------------------------------

    def day_batch(self, day: dt.date) -> DayBatch:
        """All events of one UTC day, sorted by time; identical for the same seed and day."""
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([self.seed, day.toordinal()]))
        )
        t = _tables()
        pl = self._places
        base, extras = self.expected_cases(day)
        noise_cv = self.scenario.baseline.daily_noise_cv
        if noise_cv:  # gamma-Poisson: a county's day varies more than Poisson says
            base = base * rng.gamma(1 / noise_cv**2, noise_cv**2, len(base))
        counts = [rng.poisson(base)] + [rng.poisson(e) for e in extras]
        n_counties = len(base)
        county = np.concatenate([np.repeat(np.arange(n_counties), c) for c in counts])
        source = np.concatenate([np.full(c.sum(), i) for i, c in enumerate(counts)]).astype(
            np.int64
        )
        n = len(county)

        seconds = np.searchsorted(t["hour_cdf"], rng.random(n), side="right") * 3600
        seconds += rng.integers(0, 3600, n)
        order = np.argsort(seconds, kind="stable")
        seconds, county, source = seconds[order], county[order], source[order]

        cdfs = self._band_cdfs[source]
        band = (rng.random(n)[:, None] > cdfs[:, :-1]).sum(axis=1)
        age = t["age_lo"][band] + (rng.random(n) * t["age_width"][band]).astype(np.int64)
        old = band == len(BANDS) - 1
        age[old] = t["ages_65"][
            np.searchsorted(t["ages_65_cdf"], rng.random(old.sum()), side="right")
        ]
        gender = np.searchsorted(t["gender_cdf"], rng.random(n), side="right")

        known = rng.random(n) >= p.VACCINATION_UNKNOWN
        vaccinated = rng.random(n) < t["vaccinated_given_case"][band]
        vaccination = np.where(known, np.where(vaccinated, 0, 1), 2)

        admitted = rng.random(n) < t["admit"][vaccination, band]
        u = rng.random(n)
        outpatient = np.where(
            u < t["outpatient_severe"][vaccination, band],
            2,
            np.where(u < t["outpatient_severe"][vaccination, band] + p.OUTPATIENT_MODERATE, 1, 0),
        )
        severity = np.where(
            admitted, np.where(rng.random(n) < p.ADMITTED_SEVERE_SHARE, 2, 1), outpatient
        )

        pick = pl.facility_start[county] + (rng.random(n) * pl.facility_count[county]).astype(
            np.int64
        )
        facility = np.where(admitted, pl.facilities[pick], 0)
        stay = np.exp(t["los_mu"][band] + p.LENGTH_OF_STAY_SIGMA * rng.standard_normal(n))
        days_admitted = np.where(admitted, np.clip(np.rint(stay), 1, 60), 0).astype(np.int64)

        adult = (age >= 18).astype(np.int64)
        probs = t["symptoms"][adult]
        probs[:, t["sob"]] = np.where(
            severity == 2, p.SEVERE_SHORTNESS_OF_BREATH, probs[:, t["sob"]]
        )
        bits = (rng.random((n, len(SYMPTOMS))) < probs) @ t["symptom_bits"]
        bits[bits == 0] = 1  # at least one symptom: fever
        zpick = pl.zip_start[county] + (rng.random(n) * pl.zip_count[county]).astype(np.int64)
        zips = pl.zips
        return DayBatch(
            day=day,
            seconds=seconds,
            county=county,
            outbreak=source - 1,
            case_id=_uuid4s(rng, n),
            gender=gender,
            age=age,
            band=band,
            zipcode=[zips[i] for i in zpick.tolist()],
            symptoms=bits,
            severity=severity,
            vaccination=vaccination,
            admitted=admitted,
            facility=facility,
            days_admitted=days_admitted,
        )

    # -- streams ----------------------------------------------------------------------------

    def batches(self, first: dt.date | None = None) -> Iterator[DayBatch]:
        """Day batches from `first` (default: start) on, forever."""
        day = first or self.start
        while True:
            yield self.day_batch(day)
            day += DAY

    def events(self, until: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
        """Events from the start day on, as fast as they can be made; stops before `until`."""
        for batch in self.batches():
            events = batch.events()
            if until is not None and dt.datetime.combine(batch.day, dt.time(), _UTC) + DAY > until:
                cut = until.isoformat().replace("+00:00", "Z")
                yield from (e for e in events if e["event_time"] < cut)
                return
            yield from events

    def run(
        self,
        speed: float | None = None,
        history: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[dict[str, Any]]:
        """Events before self.now at once (the backfill; skipped when history is False), then
        paced: simulated time runs `speed` times faster than real time from self.now on (1440: a
        day per minute). Without speed, everything flat out (same as events()). Infinite: stop
        by leaving the loop."""
        if not speed:
            yield from self.events()
            return
        if speed < 0:
            raise ValueError(f"speed must be > 0, not {speed}")
        origin = clock()
        now_s = self.now.timestamp()
        for event in self.events():
            sim_s = _epoch_seconds(event["event_time"])
            if sim_s < now_s and not history:
                continue
            if sim_s > now_s:
                wait = origin + (sim_s - now_s) / speed - clock()
                if wait > 0:
                    sleep(wait)
            yield event


def _epoch_seconds(event_time: str) -> float:
    return dt.datetime.fromisoformat(event_time).timestamp()


def _uuid4s(rng: np.random.Generator, n: int) -> list[str]:
    """n random (version 4) UUID strings from the seeded generator, built as one ASCII array
    (no per-event uuid.UUID call)."""
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGIT_COLUMNS[0::2]] = digits[raw >> 4]
    text[:, _UUID_DIGIT_COLUMNS[1::2]] = digits[raw & 0x0F]
    return text.view("S36").ravel().astype("U36").tolist()


# Columns of the 32 hex digits in the 36-character form 8-4-4-4-12.
_UUID_DIGIT_COLUMNS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])
