"""Outbreak scenarios: YAML files (scenarios/*.yaml) checked against SCHEMA and reference data.

A scenario sets the baseline (a seasonal curve of reported cases per 100,000 per day, and
optionally what makes real county series untidy: season timing and level that differ by county,
weekday reporting, reporting delays and day-to-day overdispersion) and plants outbreaks:
counties, a start day, and either an initial number of extra cases per day and county with a
doubling time and a growth duration (after its growth the outbreak fades, halving at the same
pace), or a relative increase (+50 %: `relative_increase: 0.5`) over the county's expected count
for `duration_days`; an optional age skew.

Days are UTC calendar days. A day is written either as a date ("2026-01-12") or relative to the
simulation's anchor day ("-3d", "+1d", "0d"): the anchor is the day of "now" (the end of the
backfill) for a backfilled or live run, and the start day for a batch run. Relative days make a
scenario work on any date, e.g. a test that backfills 21 days and expects an alert yesterday.

Every problem raises ScenarioError naming the field, e.g. "outbreaks[1].counties[0]: unknown
county '36999'".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from flu_monitor import contract, refdata
from flu_monitor.paths import SCENARIO_DIR

DEFAULT_SCENARIO = SCENARIO_DIR / "default.yaml"

_DAY = r"^([+-]?[0-9]+d|[0-9]{4}-[0-9]{2}-[0-9]{2})$"
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "start": {"type": "string", "pattern": _DAY},
        "baseline": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "peak_daily_cases_per_100k": {"type": "number", "minimum": 0},
                "seasonal": {"type": "boolean"},
                "season_peak": {"type": "string", "pattern": r"^[0-9]{2}-[0-9]{2}$"},
                "season_width_days": {"type": "number", "exclusiveMinimum": 0},
                "offseason_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                "weekend_factor": {"type": "number", "minimum": 0, "maximum": 2},
                "weekday_factors": {
                    "type": "array",
                    "minItems": 7,
                    "maxItems": 7,
                    "items": {"type": "number", "minimum": 0, "maximum": 2},
                },
                "county_timing_sd_days": {"type": "number", "minimum": 0, "maximum": 60},
                "county_level_cv": {"type": "number", "minimum": 0, "maximum": 2},
                "daily_noise_cv": {"type": "number", "minimum": 0, "maximum": 2},
                "report_delay": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 15,
                    "items": {"type": "number", "minimum": 0},
                },
            },
        },
        "outbreaks": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                # initial_daily_cases + doubling_days, or relative_increase: checked in from_dict.
                "required": ["name", "counties", "start", "duration_days"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "counties": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "start": {"type": "string", "pattern": _DAY},
                    "initial_daily_cases": {"type": "number", "exclusiveMinimum": 0},
                    "doubling_days": {"type": "number", "exclusiveMinimum": 0},
                    "relative_increase": {"type": "number", "exclusiveMinimum": 0},
                    "duration_days": {"type": "integer", "minimum": 1},
                    "age_skew": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            band: {"type": "number", "minimum": 0} for band in contract.AGE_BANDS
                        },
                    },
                },
            },
        },
    },
}


class ScenarioError(ValueError):
    """The scenario is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Day:
    """A UTC day, absolute (date) or relative to the anchor day (offset)."""

    date: dt.date | None = None
    offset: int = 0

    @classmethod
    def parse(cls, text: str) -> Day:
        if text.endswith("d"):
            return cls(offset=int(text[:-1]))
        return cls(date=dt.date.fromisoformat(text))

    def resolve(self, anchor: dt.date) -> dt.date:
        return self.date or anchor + dt.timedelta(days=self.offset)


@dataclass(frozen=True)
class Baseline:
    peak_daily_cases_per_100k: float = 20.0
    seasonal: bool = True
    season_peak: str = "02-01"
    season_width_days: float = 30.0
    offseason_fraction: float = 0.05
    weekend_factor: float = 0.8
    # Realism (all off unless the scenario sets them; docs/simulator.md gives the sources):
    weekday_factors: tuple[float, ...] | None = None  # Monday..Sunday; replaces weekend_factor
    county_timing_sd_days: float = 0.0  # spread of the counties' season timing
    county_level_cv: float = 0.0  # spread of the counties' season level
    daily_noise_cv: float = 0.0  # day-to-day overdispersion (gamma-Poisson)
    report_delay: tuple[float, ...] = (1.0,)  # share reported 0, 1, 2, ... days after onset

    def weekday_factor(self, day: dt.date) -> float:
        if self.weekday_factors is not None:
            return self.weekday_factors[day.weekday()]
        return self.weekend_factor if day.weekday() >= 5 else 1.0


@dataclass(frozen=True)
class Outbreak:
    name: str
    counties: tuple[str, ...]  # FIPS codes
    start: Day
    duration_days: int
    initial_daily_cases: float | None = None
    doubling_days: float | None = None
    relative_increase: float | None = None
    age_skew: dict = field(default_factory=dict)

    def extra_cases(self, day: dt.date, anchor: dt.date) -> float:
        """Expected extra cases per county on `day` (cases at onset, before reporting delays):
        doubling while it grows, then halving at the same pace; nothing before the start or
        once below 0.05 case per day. 0 for a relative outbreak (see relative_extra)."""
        k = (day - self.start.resolve(anchor)).days
        if k < 0 or self.relative_increase is not None:
            return 0.0
        assert self.initial_daily_cases is not None and self.doubling_days is not None  # from_dict
        peak_k = self.duration_days - 1
        exponent = k if k <= peak_k else 2 * peak_k - k
        cases = self.initial_daily_cases * 2.0 ** (exponent / self.doubling_days)
        return cases if k <= peak_k or cases >= 0.05 else 0.0

    def relative_extra(self, day: dt.date, anchor: dt.date) -> float:
        """The fraction added to each county's expected reported count on `day`: the relative
        increase on each of the `duration_days` days from the start, else 0."""
        if self.relative_increase is None:
            return 0.0
        k = (day - self.start.resolve(anchor)).days
        return self.relative_increase if 0 <= k < self.duration_days else 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    start: Day | None = None
    baseline: Baseline = Baseline()
    outbreaks: tuple[Outbreak, ...] = ()
    source: str = "<dict>"


def _county_fips(name: str) -> str | None:
    """A county by FIPS ("36047") or name with state ("Kings County, NY" or "Kings, NY")."""
    counties = refdata.counties()
    if name in counties:
        return name
    match = re.fullmatch(r"\s*(.+?)(?: County)?\s*,\s*([A-Za-z]{2})\s*", name)
    if match:
        wanted = (match.group(1).lower().replace(".", ""), match.group(2).upper())
        for county in counties.values():
            short = county.name.removesuffix(" County").lower().replace(".", "")
            if (short, county.state_code) == wanted:
                return county.fips
    return None


def _path(error) -> str:
    parts = ""
    for p in error.absolute_path:
        parts += f"[{p}]" if isinstance(p, int) else f".{p}"
    return parts.lstrip(".") or "(scenario)"


def from_dict(data: object, source: str = "<dict>") -> Scenario:
    """Check a parsed scenario and build it; ScenarioError names the first bad field."""
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: e.path)
    if errors:
        e = errors[0]
        raise ScenarioError(f"{source}: {_path(e)}: {e.message}")
    assert isinstance(data, dict)  # the schema's top level is an object
    try:
        start = Day.parse(data["start"]) if "start" in data else None
    except ValueError as exc:
        raise ScenarioError(f"{source}: start: {exc}") from None
    baseline_fields: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in data.get("baseline", {}).items()
    }
    baseline = Baseline(**baseline_fields)
    if sum(baseline.report_delay) <= 0:
        raise ScenarioError(f"{source}: baseline.report_delay: the shares must not all be 0")
    try:
        dt.date.fromisoformat(f"2001-{baseline.season_peak}")
    except ValueError:
        raise ScenarioError(f"{source}: baseline.season_peak: not a MM-DD day") from None
    outbreaks = []
    for i, item in enumerate(data.get("outbreaks", [])):
        fips = []
        for j, name in enumerate(item["counties"]):
            code = _county_fips(name)
            if code is None:
                raise ScenarioError(
                    f"{source}: outbreaks[{i}].counties[{j}]: unknown county {name!r}"
                )
            fips.append(code)
        try:
            day = Day.parse(item["start"])
        except ValueError as exc:
            raise ScenarioError(f"{source}: outbreaks[{i}].start: {exc}") from None
        growth = [k for k in ("initial_daily_cases", "doubling_days") if k in item]
        if ("relative_increase" in item) == bool(growth) or len(growth) == 1:
            raise ScenarioError(
                f"{source}: outbreaks[{i}]: give either initial_daily_cases and doubling_days, "
                "or relative_increase"
            )
        outbreaks.append(Outbreak(**{**item, "counties": tuple(fips), "start": day}))
    return Scenario(
        name=data["name"],
        description=data.get("description", ""),
        start=start,
        baseline=baseline,
        outbreaks=tuple(outbreaks),
        source=source,
    )


def load(path: str | Path = DEFAULT_SCENARIO) -> Scenario:
    """Read and check a scenario YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ScenarioError(f"{path}: malformed YAML{at}: {getattr(exc, 'problem', exc)}") from None
    return from_dict(data, source=str(path))
