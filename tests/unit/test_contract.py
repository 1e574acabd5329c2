"""The event contract: schema constraints and reference-data checks."""

import copy

import pytest

from flu_monitor import contract, refdata

VALID = {
    "schema_version": "1.0",
    "case_id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
    "event_time": "2026-11-01T10:00:00Z",
    "gender": "female",
    "age": 71,
    "age_band": "65+",
    "state_code": "NY",
    "county_fips": "36047",
    "zipcode": "11201",
    "symptoms": ["fever", "cough"],
    "symptom_severity": "severe",
    "vaccination_status": "unvaccinated",
    "admitted": True,
    "facility_id": 100,
    "days_admitted": 5,
}


def with_(**changes):
    event = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is ...:
            del event[key]
        else:
            event[key] = value
    return event


def test_reference_data_sizes():
    counties = refdata.counties()
    assert len(counties) == 150
    assert sum(c.population for c in counties.values()) == 42_492_943
    assert len(refdata.facilities()) == 299


def test_valid_event_passes():
    assert refdata.facilities()[VALID["facility_id"]].state_code == "NY"
    assert contract.violations(VALID) == []


def test_not_admitted_event_passes():
    assert contract.violations(with_(admitted=False, facility_id=None, days_admitted=0)) == []


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "0-4"),
        (4, "0-4"),
        (5, "5-17"),
        (17, "5-17"),
        (18, "18-49"),
        (49, "18-49"),
        (50, "50-64"),
        (64, "50-64"),
        (65, "65+"),
        (110, "65+"),
    ],
)
def test_age_band_boundaries(age, band):
    assert contract.age_band(age) == band
    assert contract.violations(with_(age=age, age_band=band)) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"age_band": "18-49"}, "age_band"),
        ({"age": -1}, "age"),
        ({"age": 111}, "age"),
        ({"state_code": "CT"}, "state_code"),
        ({"state_code": "NJ"}, "county_fips"),
        ({"county_fips": "36999"}, "county_fips"),
        ({"county_fips": "3604"}, "county_fips"),
        ({"zipcode": "1120"}, "zipcode"),
        ({"symptoms": []}, "symptoms"),
        ({"symptoms": ["fever", "fever"]}, "symptoms"),
        ({"symptoms": ["sneezing"]}, "symptoms.0"),
        ({"symptom_severity": "critical"}, "symptom_severity"),
        ({"vaccination_status": "yes"}, "vaccination_status"),
        ({"facility_id": None}, "facility_id"),
        ({"facility_id": 300}, "facility_id"),
        ({"days_admitted": 0}, "days_admitted"),
        ({"admitted": False}, "facility_id"),
        ({"event_time": "2026-11-01T10:00:00+01:00"}, "event_time"),
        ({"event_time": "2026-02-30T10:00:00Z"}, "event_time"),
        ({"event_time": "2026-11-01T24:00:00Z"}, "event_time"),
        ({"schema_version": "2.0"}, "schema_version"),
        ({"case_id": ...}, "(event)"),
        ({"extra": 1}, "(event)"),
    ],
)
def test_violations_name_the_field(changes, field):
    problems = contract.violations(with_(**changes))
    assert problems, changes
    assert any(p.startswith(f"{field}:") for p in problems), problems


def test_validate_raises_with_every_problem():
    with pytest.raises(ValueError, match="age_band.*zipcode|zipcode.*age_band"):
        contract.validate(with_(age_band="0-4", zipcode="x"))


def test_constants_come_from_the_schema():
    assert contract.TOPIC == "flu_cases"
    assert contract.AGE_BANDS == ("0-4", "5-17", "18-49", "50-64", "65+")
    assert contract.STATES == ("NY", "NJ", "PA")
    assert contract.SCHEMA_VERSION == "1.0"
