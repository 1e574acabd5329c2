"""Reference data for the three states: counties (with 2020 population) and facilities."""

import csv
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
