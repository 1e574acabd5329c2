"""Where cases live and where they are admitted, as arrays indexed by county (FIPS order).

- ZIP codes: a case's ZIP is drawn uniformly among its county's residential ZIPs
  (data/zip_counties.csv, built by scripts/build_zip_counties.py from the `zipcodes` package).
- Facilities: an admitted case goes to a hospital of its county (uniformly among them) or, when
  the county has none, to the hospital nearest to the county's point (haversine distance).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from flu_monitor import refdata
from flu_monitor.paths import DATA_DIR

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def admitting_facilities(fips: str) -> list[int]:
    """Facility ids an admitted case of this county can go to (the contract's facility rule)."""
    county = refdata.counties()[fips]
    facilities = refdata.facilities().values()
    own = [f.facility_id for f in facilities if f.county_fips == fips]
    if own:
        return own
    nearest = min(
        facilities,
        key=lambda f: haversine_km(county.latitude, county.longitude, f.latitude, f.longitude),
    )
    return [nearest.facility_id]


@cache
def zip_codes() -> dict[str, list[str]]:
    """Residential ZIP codes by county FIPS."""
    by_county: dict[str, list[str]] = {}
    with open(DATA_DIR / "zip_counties.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_county.setdefault(row["county_fips"], []).append(row["zipcode"])
    return by_county


@dataclass(frozen=True)
class Places:
    """Per-county arrays (index i = i-th county in FIPS order) and flat choice tables: county
    i's ZIPs are zips[zip_start[i] : zip_start[i] + zip_count[i]], likewise its facilities."""

    fips: list[str]
    state: list[str]
    fips_objects: np.ndarray  # the same strings as object arrays, for vectorized lookups
    state_objects: np.ndarray
    population: np.ndarray
    latitude: np.ndarray  # the county's point (degrees)
    longitude: np.ndarray
    zips: list[str]
    zip_start: np.ndarray
    zip_count: np.ndarray
    facilities: np.ndarray
    facility_start: np.ndarray
    facility_count: np.ndarray


@cache
def places() -> Places:
    counties = list(refdata.counties().values())
    zips_by_county = zip_codes()
    zips: list[str] = []
    zip_start: list[int] = []
    zip_count: list[int] = []
    facilities: list[int] = []
    facility_start: list[int] = []
    facility_count: list[int] = []
    for county in counties:
        own_zips = zips_by_county[county.fips]
        zip_start.append(len(zips))
        zip_count.append(len(own_zips))
        zips += own_zips
        ids = admitting_facilities(county.fips)
        facility_start.append(len(facilities))
        facility_count.append(len(ids))
        facilities += ids
    return Places(
        fips=[c.fips for c in counties],
        state=[c.state_code for c in counties],
        fips_objects=np.array([c.fips for c in counties], dtype=object),
        state_objects=np.array([c.state_code for c in counties], dtype=object),
        population=np.array([c.population for c in counties], dtype=np.float64),
        latitude=np.array([c.latitude for c in counties], dtype=np.float64),
        longitude=np.array([c.longitude for c in counties], dtype=np.float64),
        zips=zips,
        zip_start=np.array(zip_start),
        zip_count=np.array(zip_count),
        facilities=np.array(facilities),
        facility_start=np.array(facility_start),
        facility_count=np.array(facility_count),
    )
