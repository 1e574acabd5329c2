"""The flu case event contract: schemas/flu_case.schema.json plus its reference-data checks.

The JSON Schema is the single source of truth; constants here are read from it, never restated.
"""

import datetime as dt
import json
from functools import cache
from typing import TYPE_CHECKING, Any

from flu_monitor import refdata
from flu_monitor.paths import SCHEMA_FILE

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


@cache
def schema() -> dict[str, Any]:
    with open(SCHEMA_FILE, encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


def _enum(field: str) -> tuple[str, ...]:
    prop = schema()["properties"][field]
    return tuple(prop["items"]["enum"] if prop["type"] == "array" else prop["enum"])


SCHEMA_VERSION: str = schema()["properties"]["schema_version"]["const"]
TOPIC: str = schema()["x-topic"]
FIELDS: tuple[str, ...] = tuple(schema()["properties"])
AGE_BANDS = _enum("age_band")
GENDERS = _enum("gender")
STATES = _enum("state_code")
SYMPTOMS = _enum("symptoms")
SEVERITIES = _enum("symptom_severity")
VACCINATION_STATUSES = _enum("vaccination_status")
MAX_AGE: int = schema()["properties"]["age"]["maximum"]

# Lower age bound of each CDC band, in band order.
_BAND_FLOORS = tuple(int(band.rstrip("+").split("-")[0]) for band in AGE_BANDS)


def age_band(age: int) -> str:
    """CDC band for an age in years (0-4, 5-17, 18-49, 50-64, 65+)."""
    if not 0 <= age <= MAX_AGE:
        raise ValueError(f"age {age} outside 0..{MAX_AGE}")
    return [band for band, floor in zip(AGE_BANDS, _BAND_FLOORS, strict=True) if age >= floor][-1]


@cache
def _validator() -> "Draft202012Validator":
    # jsonschema loads here, not with the constants above: the commands that only read them
    # (ingest, notify, the --topic default) start without it.
    from jsonschema import Draft202012Validator, FormatChecker

    return Draft202012Validator(schema(), format_checker=FormatChecker())


def violations(event: object) -> list[str]:
    """Every way an event breaks the contract, as 'field: problem' strings; empty when valid."""
    problems = [
        f"{'.'.join(map(str, e.absolute_path)) or '(event)'}: {e.message}"
        for e in sorted(_validator().iter_errors(event), key=lambda e: str(e.absolute_path))
    ]
    if isinstance(event, dict):
        fips = event.get("county_fips")
        county = refdata.counties().get(fips) if isinstance(fips, str) else None
        if isinstance(fips, str) and county is None:
            problems.append(f"county_fips: unknown county {event['county_fips']!r}")
        elif county is not None and county.state_code != event.get("state_code"):
            state = event.get("state_code")
            problems.append(f"county_fips: {county.fips} is in {county.state_code}, not {state}")
        facility_id = event.get("facility_id")
        if isinstance(facility_id, int) and facility_id not in refdata.facilities():
            problems.append(f"facility_id: unknown facility {facility_id}")
        # The schema's date-time format is only checked when rfc3339-validator is installed;
        # the pattern alone lets 2026-02-30 or 24:00 through.
        event_time = event.get("event_time")
        if isinstance(event_time, str) and not any(p.startswith("event_time:") for p in problems):
            try:
                dt.datetime.fromisoformat(event_time)
            except ValueError as exc:
                problems.append(f"event_time: {event_time!r} is not a real time ({exc})")
    return problems


def validate(event: object) -> None:
    """Raise ValueError naming every broken field when the event breaks the contract."""
    problems = violations(event)
    if problems:
        raise ValueError("; ".join(problems))
