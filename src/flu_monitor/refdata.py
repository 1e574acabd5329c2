"""Reference data for the three states: counties (with 2020 population) and facilities."""

import bisect
import csv
import itertools
from dataclasses import dataclass
from functools import cache

from flu_monitor.paths import DATA_DIR


@dataclass(frozen=True)
class County:
    fips: str
    state_code: str
    name: str
    population: int
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Facility:
    facility_id: int
    name: str
    state_code: str
    county_fips: str
    zipcode: str
    latitude: float
    longitude: float


@cache
def counties() -> dict[str, County]:
    """All 150 counties keyed by FIPS, in FIPS order."""
    with open(DATA_DIR / "counties.csv", newline="", encoding="utf-8") as f:
        return {
            r["fips"]: County(
                r["fips"],
                r["state_code"],
                r["county_name"],
                int(r["population_2020"]),
                float(r["latitude"]),
                float(r["longitude"]),
            )
            for r in csv.DictReader(f)
        }


@cache
def _resident_ends() -> tuple[int, ...]:
    """Cumulative populations in FIPS order: county i holds resident numbers below ends[i]."""
    ordered = sorted(counties().values(), key=lambda c: c.fips)
    return tuple(itertools.accumulate(c.population for c in ordered))


def residents() -> int:
    """Residents of the three states: the datagen connector's resident numbers are 0..this-1."""
    return _resident_ends()[-1]


def resident_county(number: int) -> County:
    """The county of resident `number`, the residents numbered county by county in FIPS order
    (what the warehouse's county_keys table does with a datagen record's resident_number)."""
    if not 0 <= number < residents():
        raise ValueError(f"resident number {number} outside 0..{residents() - 1}")
    ordered = sorted(counties())
    return counties()[ordered[bisect.bisect_right(_resident_ends(), number)]]


@cache
def facilities() -> dict[int, Facility]:
    """All acute-care hospitals with an emergency department, keyed by facility_id."""
    with open(DATA_DIR / "facilities.csv", newline="", encoding="utf-8") as f:
        return {
            int(r["facility_id"]): Facility(
                int(r["facility_id"]),
                r["facility_name"],
                r["state_code"],
                r["county_fips"],
                r["zipcode"],
                float(r["latitude"]),
                float(r["longitude"]),
            )
            for r in csv.DictReader(f)
        }
