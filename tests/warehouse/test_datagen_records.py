"""What the warehouse makes of the datagen connector's draws (docs/contract.md): a resident_number
lands in the county that resident lives in (county_keys, sql/030_reference.sql), so uniform
numbers make population-weighted counties, exactly; an event that names its county_fips keeps it.
A symptom, severity or vaccination code is the index of the value in the contract's list."""

import collections
import uuid

import pytest

from flu_monitor import contract, refdata

from .conftest import ingest, query

SLOT = 1000  # resident numbers per county_keys row


def datagen(number: int, **fields) -> dict:
    """A record as connector/connector.json writes it, for resident `number`."""
    return {
        "schema_version": "1.0",
        "case_id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"resident {number}")),
        "gender": "female",
        "age": "40",
        "resident_number": str(number),
        "zipcode": "10001",
        "symptom_code": "0",
        "severity_code": "0",
        "vaccination_code": "2",
        "admitted": "false",
        "facility_id": "1",
        "days_admitted": "1",
        **fields,
    }


def boundary_residents() -> list[int]:
    """The first and last resident of every county, in FIPS order."""
    numbers, first = [], 0
    for county in sorted(refdata.counties().values(), key=lambda c: c.fips):
        numbers += [first, first + county.population - 1]
        first += county.population
    return numbers


def test_a_resident_number_lands_in_its_county(warehouse):
    numbers = boundary_residents()
    ingest(warehouse, [datagen(n) for n in numbers])
    got = query(warehouse, "SELECT county_fips, state_code FROM flu_cases ORDER BY kafka_offset")
    expected = [(refdata.resident_county(n).fips, refdata.resident_county(n).state_code)
                for n in numbers]  # fmt: skip
    assert got == expected
    # Figures from data/counties.csv (2020 Census, FIPS order): Atlantic County NJ holds
    # residents 0..274,533, Bergen County from 274,534; Kings County 13,643,173..16,379,246;
    # York County PA, the last, ends at 42,492,942.
    assert got[:3] == [("34001", "NJ"), ("34001", "NJ"), ("34003", "NJ")]
    assert refdata.resident_county(13_643_173).fips == "36047"
    assert refdata.resident_county(16_379_246).fips == "36047"
    assert refdata.resident_county(16_379_247).fips != "36047"
    assert got[-1] == ("42133", "PA") and numbers[-1] == 42_492_942 == refdata.residents() - 1


def test_every_county_gets_exactly_its_population(warehouse):
    residents = collections.Counter()
    slots = set()
    rows = query(
        warehouse,
        "SELECT county_key, state_key, split_at, lower_fips, fips FROM county_keys "
        "WHERE county_key LIKE 'r%'",
    )
    for key, state_key, split_at, lower_fips, fips in rows:
        slot = int(key[1:])
        low, high = slot * SLOT, min(slot * SLOT + SLOT, refdata.residents())
        assert state_key == "" and low < high
        if split_at > low:  # two counties share the slot
            assert low < split_at < high and lower_fips != fips
            residents[lower_fips] += split_at - low
            residents[fips] += high - split_at
        else:
            assert lower_fips == fips
            residents[fips] += high - low
        slots.add(slot)
    assert slots == set(range((refdata.residents() - 1) // SLOT + 1))  # 0..42,492
    assert residents == {c.fips: c.population for c in refdata.counties().values()}
    # No slot meets three counties: every county has more residents than a slot.
    assert min(c.population for c in refdata.counties().values()) > SLOT


def test_a_county_named_by_fips_keys_to_itself(warehouse):
    rows = query(
        warehouse,
        "SELECT county_key, state_key, split_at, fips, state_code FROM county_keys "
        "WHERE county_key NOT LIKE 'r%'",
    )
    assert sorted(rows) == sorted(
        (c.fips, c.state_code, 0, c.fips, c.state_code) for c in refdata.counties().values()
    )


CODED = [
    ("symptom_code", "symptoms", contract.SYMPTOMS),
    ("severity_code", "symptom_severity", contract.SEVERITIES),
    ("vaccination_code", "vaccination_status", contract.VACCINATION_STATUSES),
]


@pytest.mark.parametrize(("code", "column", "values"), CODED)
def test_a_code_reads_as_its_value_in_the_contract(warehouse, code, column, values):
    records = [datagen(i, **{code: str(i)}) for i in range(len(values))]
    records += [datagen(len(values), **{code: str(len(values))})]  # one past the list
    records += [datagen(99, **{code: "x"})]
    ingest(warehouse, records)
    got = query(warehouse, f"SELECT {column} FROM flu_cases ORDER BY kafka_offset")
    assert got == [(v,) for v in values]
    rejected = query(warehouse, "SELECT reason FROM flu_rejected_record_detail ORDER BY 1")
    assert rejected == [(f"invalid_value:{column}",)] * 2


def test_a_named_value_wins_over_a_code(warehouse):
    ingest(warehouse, [datagen(0, symptom_severity="severe", severity_code="0")])
    assert query(warehouse, "SELECT symptom_severity FROM flu_cases") == [("severe",)]


def test_a_named_county_wins_over_a_resident_number(warehouse):
    ingest(warehouse, [datagen(0, county_fips="36047")])  # resident 0 lives in 34001
    assert query(warehouse, "SELECT county_fips, state_code FROM flu_cases") == [("36047", "NY")]
