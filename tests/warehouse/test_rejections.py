"""Records that break the contract are counted by reason and kept; tolerated variants land."""

import datetime as dt
import json
import re

import pytest

from flu_monitor import contract, refdata
from flu_monitor.warehouse import sqlscript

from .conftest import KAFKA_TIME, event, ingest, query, read_only_warehouse


def without(field: str, **fields) -> dict:
    e = event(**fields)
    del e[field]
    return e


# (raw record, reason) — one per reason the SQL can give
REJECTED = [
    (b'\xff\xfe{"case_id": 1}', "invalid_json"),  # not UTF-8
    (b'{"case_id": ', "invalid_json"),
    (json.dumps({**event(), "zipcode": "x" * 70_000}).encode(), "oversized"),
    (b"[1, 2, 3]", "not_an_object"),
    (event(schema_version="2.0"), "invalid_value:schema_version"),
    (without("case_id"), "missing_field:case_id"),
    (event(case_id="ABC"), "invalid_value:case_id"),
    (event(event_time="2026-02-29T10:00:00Z"), "invalid_value:event_time"),  # not a leap year
    (event(event_time="2026-11-01 10:00:00"), "invalid_value:event_time"),
    (event(gender="f"), "invalid_value:gender"),
    (without("age"), "missing_field:age"),
    (event(age=111, age_band="65+"), "invalid_value:age"),
    (event(age=-1, age_band="0-4"), "invalid_value:age"),
    (event(age=30, age_band="50-64"), "invalid_value:age_band"),
    (event(state_code="CT"), "invalid_value:state_code"),
    (without("county_fips"), "missing_field:county_fips"),
    (event(county_fips="3604"), "invalid_value:county_fips"),
    (event(zipcode="1120"), "invalid_value:zipcode"),
    (event(symptoms=["fever", "flu"]), "invalid_value:symptoms"),
    (event(symptoms=[]), "invalid_value:symptoms"),
    (without("symptom_severity"), "missing_field:symptom_severity"),
    (event(symptom_severity="critical"), "invalid_value:symptom_severity"),
    (without("vaccination_status"), "missing_field:vaccination_status"),
    (event(vaccination_status="partial"), "invalid_value:vaccination_status"),
    (without("admitted"), "missing_field:admitted"),
    (event(admitted="yes"), "invalid_value:admitted"),
    (event(admitted=True, facility_id=None), "missing_field:facility_id"),
    (event(admitted=True, facility_id=0), "invalid_value:facility_id"),
    (without("days_admitted", admitted=True), "missing_field:days_admitted"),
    (event(admitted=True, days_admitted=61), "invalid_value:days_admitted"),
    (event(county_fips="36047", state_code="NJ"), "county_state_mismatch"),
    ({**event(), "county_fips": "36999"}, "unknown_county"),
    # A datagen record names a resident instead of a county (county_keys, sql/030_reference.sql).
    (without("county_fips", resident_number="12a"), "invalid_value:resident_number"),
    (without("county_fips", resident_number="99999999"), "unknown_county"),  # past 42,492,942
    # Resident 40,000,000 lives in Philadelphia, PA: a record that says NY is inconsistent.
    (without("county_fips", resident_number="40000000", state_code="NY"), "county_state_mismatch"),
    (event(admitted=True, facility_id=9999), "unknown_facility"),
    # The same case as FIRST_COPY, stored by an earlier refresh (the fixture ingests it first).
    (event(case_id="0b7c1a52-3e1f-4c6a-9d2e-5f8a7b6c4d3e", age=71), "duplicate_case_id"),
]
FIRST_COPY = event(case_id="0b7c1a52-3e1f-4c6a-9d2e-5f8a7b6c4d3e", age=70)

# A record as the MSK datagen connector writes it (docs/contract.md): every value a string, no
# event_time, age_band, state_code or county_fips (a resident number instead: resident 40,000,000
# lives in Philadelphia County, PA), codes for one symptom, the severity and the vaccination
# status, facility and days even when not admitted.
DATAGEN = {
    "schema_version": "1.0",
    "case_id": "5f0c8a4e-1f7b-4c1e-9b7a-2b6c3d4e5f60",
    "gender": "other",
    "age": "42",
    "resident_number": "40000000",
    "zipcode": "17011",
    "symptom_code": "1",  # the index in the contract's list: cough
    "severity_code": "1",  # moderate
    "vaccination_code": "2",  # unknown
    "admitted": "false",
    "facility_id": "17",
    "days_admitted": "5",
}
DATAGEN_EXPECTED = {
    "report_date": KAFKA_TIME.date(),
    "state_code": "PA",
    "county_fips": "42101",
    "age": 42,
    "age_band": "18-49",
    "symptoms": "cough",
    "symptom_severity": "moderate",
    "vaccination_status": "unknown",
    "admitted": 0,
    "facility_id": None,
    "days_admitted": 0,
}

# Variants the MSK datagen connector or old producers send, which the warehouse accepts.
ACCEPTED = [
    (DATAGEN, DATAGEN_EXPECTED),
    (
        {**DATAGEN, "case_id": "5f0c8a4e-1f7b-4c1e-9b7a-2b6c3d4e5f61", "admitted": "true"},
        {"admitted": 1, "facility_id": 17, "days_admitted": 5},
    ),
    (
        event(admitted=False, facility_id=12, days_admitted=2),
        {"facility_id": None, "days_admitted": 0},
    ),
    (
        event(age="34", age_band="18-49", admitted="true", facility_id="120", days_admitted="3"),
        {"age": 34},
    ),
    (event(symptoms="fever, cough"), {"symptoms": "fever,cough"}),
    (
        without("event_time", case_id="7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
        {"report_date": KAFKA_TIME.date()},
    ),  # Kafka timestamp instead
    (
        {k: v for k, v in event(age=70).items() if k not in ("age", "age_band")}
        | {"age_group": 70},
        {"age": 70, "age_band": "65+"},
    ),  # legacy age_group, no age_band
    (
        {
            k: v
            for k, v in event().items()
            if k
            not in (
                "schema_version",
                "gender",
                "zipcode",
                "symptoms",
                "facility_id",
                "days_admitted",
            )
        },
        {"days_admitted": 0},
    ),
]
# A newer minor version, at the end of a leap day: accepted, a case of that day. Ingested by a
# test of its own: in the classified batch, a day 15 months after the others would stretch every
# surveillance view over the 156 days of the window and its lead-in (0.8 CPU-s of refresh).
LEAP_DAY = (
    event(schema_version="1.3", event_time="2028-02-29T23:59:59.123456Z"),
    {"report_date": dt.date(2028, 2, 29)},
)


def _classify(url: str) -> None:
    ingest(url, [FIRST_COPY], partition=1)  # a case the main batch repeats
    ingest(url, [r for r, _ in REJECTED] + [r for r, _ in ACCEPTED])


@pytest.fixture(scope="module")
def classified(postgres_copies):
    """The records classified once; the tests only read the result."""
    for url, _ in read_only_warehouse(postgres_copies, "rejections_read_only", _classify):
        yield url


def test_every_rejected_record_has_its_reason(classified):
    rows = query(
        classified,
        "SELECT kafka_offset, reason FROM flu_rejected_record_detail WHERE kafka_partition = 0",
    )
    assert sorted(rows) == [(i, reason) for i, (_, reason) in enumerate(REJECTED)]


def test_rejected_records_are_counted_by_reason(classified):
    counts = dict(query(classified, "SELECT reason, records FROM flu_rejected_records"))
    expected = {}
    for _, reason in REJECTED:
        expected[reason] = expected.get(reason, 0) + 1
    assert counts == expected


def test_rejected_records_keep_their_content(classified):
    rows = dict(
        query(classified, "SELECT kafka_offset, value_text FROM flu_rejected_record_detail")
    )
    assert rows[0] == "hex:" + b'\xff\xfe{"case_id": 1}'.hex()  # raw bytes of non-UTF-8 input
    assert rows[1] == "hex:" + b'{"case_id": '.hex()
    assert rows[2].startswith("hex:") and len(rows[2]) == 4 + 2 * 1024  # first 1 KB kept
    assert json.loads(rows[4])["schema_version"] == "2.0"  # parsed records show as JSON
    assert query(
        classified, "SELECT value_bytes FROM flu_rejected_record_detail WHERE kafka_offset = 2"
    ) == [(len(REJECTED[2][0]),)]


def test_tolerated_variants_are_cases(classified):
    first = len(REJECTED)
    for i, (_, expected) in enumerate(ACCEPTED):
        columns = ", ".join(expected)
        got = query(
            classified, f"SELECT {columns} FROM flu_cases WHERE kafka_offset = %s", (first + i,)
        )
        assert got == [tuple(expected.values())], i
    assert query(classified, "SELECT count(*) FROM flu_cases WHERE kafka_partition = 0") == [
        (len(ACCEPTED),)
    ]
    first = query(
        classified,
        "SELECT kafka_partition, age FROM flu_cases WHERE case_id = %s",
        (FIRST_COPY["case_id"],),
    )
    assert first == [(1, 70)]  # the duplicate (age 71) is rejected, the first copy counts


def test_a_newer_minor_version_on_a_leap_day_is_a_case(warehouse):
    record, expected = LEAP_DAY
    ingest(warehouse, [record])
    columns = ", ".join(expected)
    assert query(warehouse, f"SELECT {columns} FROM flu_cases") == [tuple(expected.values())]
    assert query(warehouse, "SELECT reason, records FROM flu_rejected_records") == []


def test_every_reason_in_the_sql_is_tested():
    sql = "".join(p.read_text() for p in sqlscript.sql_files(sqlscript.default_sql_dir()))
    in_sql = set(re.findall(r"'((?:missing_field|invalid_value):\w+)'", sql))
    in_sql |= set(
        re.findall(
            r"'(oversized|invalid_json|not_an_object|unknown_county|"
            r"unknown_facility|county_state_mismatch|duplicate_case_id)'",
            sql,
        )
    )
    assert in_sql == {reason for _, reason in REJECTED}


def test_every_contract_value_is_accepted(warehouse):
    """The SQL's vocabularies and age bands agree with schemas/flu_case.schema.json."""
    events = [event(age=age, age_band=contract.age_band(age), n=age) for age in range(111)]
    events += [event(gender=g, n=g) for g in contract.GENDERS]
    events += [
        event(state_code=c.state_code, county_fips=c.fips, n=c.fips)
        for c in refdata.counties().values()
    ]
    events += [event(symptoms=list(contract.SYMPTOMS), n="all")]
    events += [event(symptom_severity=s, n=s) for s in contract.SEVERITIES]
    events += [event(vaccination_status=v, n=v) for v in contract.VACCINATION_STATUSES]
    for e in events:
        e.pop("n")
        assert contract.violations(e) == []
    ingest(warehouse, events)
    assert query(warehouse, "SELECT reason, records FROM flu_rejected_records") == []
    bands = query(
        warehouse, "SELECT age, age_band FROM flu_cases WHERE kafka_offset < 111 ORDER BY age"
    )
    assert bands == [(age, contract.age_band(age)) for age in range(111)]
