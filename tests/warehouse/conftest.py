"""Helpers for the warehouse tests: a database with sql/ applied, events, raw inserts."""

import datetime as dt
import functools
import json
import uuid
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest

from flu_monitor import contract, refdata
from flu_monitor.warehouse import postgres
from flu_monitor.warehouse.objects import LocalObject
from tests.fixtures.postgres import worker_unique

KAFKA_TIME = dt.datetime(2026, 11, 20, 12, 0, 0)


APPLIED = "warehouse_applied"  # the database the tests' warehouses are copied from


def _apply(url: str) -> None:
    postgres.apply(url, refresh_after=False)


# The applied warehouse as (name, fill): what the warehouse fixture copies, and the base= of a
# copy whose fill loads data (the fill gets a copy of it)
ON_APPLIED = (APPLIED, _apply)


@pytest.fixture
def warehouse(postgres_copy):
    """URL of a fresh database with sql/ applied (translated), nothing ingested yet: a copy
    (CREATE DATABASE ... TEMPLATE) of the one apply() made on an empty database once per session,
    so every test starts from the files apply() writes, for about a tenth of the CPU (0.07 against
    0.6 CPU-s of PostgreSQL). Re-applying is tested on these copies (test_views.py,
    test_speed_rules.py)."""
    return postgres_copy(*ON_APPLIED)


def local_objects() -> dict[str, LocalObject]:
    """sql/ translated for PostgreSQL: the very plan apply() runs in this process (postgres.
    _compiled: read from the on-disk translation cache when sql/ and the translator are unchanged,
    so a worker neither imports sqlglot nor translates for it). For tests that run the plan on
    PostgreSQL; tests of what the translator makes use translated_objects(). Read it, never
    change it."""
    return postgres._compiled()[1]


# The tests of what the translator makes of sql/ (translated_objects): in one xdist group, so one
# worker translates it afresh (0.75 CPU-s) and the others read the cache.
TRANSLATION = pytest.mark.xdist_group("translation")


@functools.cache
def translated_objects() -> dict[str, LocalObject]:
    """sql/ translated afresh by the translator (never read from the on-disk cache), once per
    worker: for the tests of what the translation makes (marked TRANSLATION). Read it, never
    change it."""
    from flu_monitor.warehouse import sqlscript, translate

    return translate.translate_script(sqlscript.load_script(None, postgres.LOCAL_PLACEHOLDERS))


def applied_copy(copies, name: str) -> str:
    """For a module-scoped fixture (copies: postgres_copies): the URL of database `name`, a copy of
    the one the warehouse fixture copies; the caller drops it."""
    return copies.copy(*ON_APPLIED, as_name=name)


def read_only_warehouse(copies, name: str, fill):
    """For a module-scoped fixture (copies: postgres_copies): a database with sql/ applied,
    loaded by `fill(url)` once for the tests that only read it, then made read-only, so a test
    that writes fails instead of changing what the next one reads. Yields (url, what `fill`
    returned)."""
    name = worker_unique(name)
    url = applied_copy(copies, name)
    filled = fill(url)
    with psycopg.connect(copies.server.url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    yield url, filled
    with psycopg.connect(copies.server.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@functools.cache
def _first_hospital(fips: str) -> int:
    """The county's first facility, or its state's first: looked up once per county (event()
    makes tens of thousands of events per test session; scanning the facilities for each was
    0.7 of its 3 CPU-s)."""
    county = refdata.counties()[fips]
    facilities = refdata.facilities().values()
    in_state = next(f.facility_id for f in facilities if f.state_code == county.state_code)
    return next((f.facility_id for f in facilities if f.county_fips == fips), in_state)


def event(**fields) -> dict:
    """A valid event (admitted at the county's first hospital when `admitted`); override freely."""
    counties = refdata.counties()
    county = counties.get(fields.get("county_fips"), counties["36047"])
    age = fields.get("age", 34)
    admitted = fields.get("admitted", False)
    facility = _first_hospital(county.fips)
    base = {
        "schema_version": "1.0",
        "case_id": str(uuid.uuid5(uuid.NAMESPACE_OID, json.dumps(fields, sort_keys=True))),
        "event_time": "2026-11-01T14:03:22Z",
        "gender": "female",
        "age": age,
        "age_band": contract.age_band(age) if isinstance(age, int) and 0 <= age <= 110 else "0-4",
        "state_code": county.state_code,
        "county_fips": county.fips,
        "zipcode": "11201",
        "symptoms": ["fever", "cough"],
        "symptom_severity": "mild",
        "vaccination_status": "unvaccinated",
        "admitted": admitted,
        "facility_id": facility if admitted else None,
        "days_admitted": 3 if admitted else 0,
    }
    return {**base, **fields}


def raw(value) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def ingest(url: str, values, partition: int = 0, first_offset: int = 0, refresh=True):
    """Insert raw records (dicts are JSON-encoded, bytes stored as is) and refresh."""
    rows = [(partition, first_offset + i, KAFKA_TIME, None, raw(v)) for i, v in enumerate(values)]
    with psycopg.connect(url) as conn:
        postgres.insert_raw(conn, rows)
    if refresh:
        return postgres.refresh(url)


def query(url: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def differences(conn: psycopg.Connection, name: str, columns, select: str) -> list[tuple]:
    """The rows where relation `name` and `select` run now differ, duplicates counted: each
    with how many more times `name` has it than `select` (negative: fewer). Empty exactly when
    both hold the same rows as many times each, which is what `(A EXCEPT ALL B) UNION ALL
    (B EXCEPT ALL A)` checks; one hash aggregate over both sides instead of two set operations
    over both (0.81 against 0.97 s for the five day-keyed views of a season)."""
    cols = ", ".join(columns)
    return conn.execute(
        f"SELECT {cols}, SUM(side_) FROM (SELECT {cols}, 1 AS side_ FROM {name} UNION ALL "
        f"SELECT {cols}, -1 FROM ({select}) AS q) AS both_sides GROUP BY {cols} "
        "HAVING SUM(side_) <> 0"
    ).fetchall()


def round2(numerator: int, denominator: int) -> Decimal:
    """SQL ROUND(x, 2) of an exact quotient (half away from zero)."""
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)
