"""The dashboard spec loads, and its checker names broken references."""

import copy

import pytest

from flu_monitor import dashboard_spec


def test_shipped_spec_is_consistent():
    spec = dashboard_spec.load()
    assert set(spec.visuals) == {v for row in spec.layout for v in row}
    assert {"kpi", "county_map", "point_map", "table", "line"} <= {
        v.type for v in spec.visuals.values()
    }


def broken(edit):
    spec = copy.deepcopy(dashboard_spec.load_document())
    edit(spec)
    return spec


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["visuals"]["cases_today"].update(dataset="nope"), "unknown dataset nope"),
        (lambda s: s["visuals"]["daily_cases_by_state"].update(x="week"), r"no column \['week'\]"),
        (lambda s: s["visuals"]["cases_today"].update(type="pie"), "type must be one of"),
        (lambda s: s["layout"].append(["ghost"]), r"unknown visuals \['ghost'\]"),
        (lambda s: s["layout"].pop(), r"not placed \['county_expected_map', 'current_alerts'\]"),
        (lambda s: s["filters"][0].update(column="county"), "has no column county"),
        (lambda s: s["datasets"]["kpis"]["columns"].update(day="timestamp"), "unknown column"),
        (lambda s: s["visuals"]["cases_today"].update(value={"avg": "x"}), "needs exactly one"),
        (lambda s: s["datasets"]["facilities"]["geo"].update(zip="postcode"), "unknown column zip"),
        (lambda s: s["datasets"]["facilities"]["geo"].update(latitude="lat"), "geo role 'lat'"),
        (lambda s: s["datasets"]["county_latest"].pop("geo"), "county_map needs a column"),
        (
            lambda s: s["datasets"]["facilities"]["geo"].pop("longitude"),
            "column longitude needs geo role longitude",
        ),
        (lambda s: s["clock"].update(column="cases"), "clock: cases is not a date column"),
        (lambda s: s["clock"].pop("timezone"), "clock: needs a label and a timezone"),
        (
            lambda s: s["visuals"]["severity_by_age"].update(partial_latest_day=True),
            "partial_latest_day needs a line over a date x",
        ),
        (lambda s: s["visuals"]["vaccination_by_age"].update(palette="neon"), "palette must"),
        (lambda s: s["visuals"]["vaccination_by_age"].update(note=["x"]), "note must be text"),
        (
            lambda s: s["visuals"]["top_facilities_map"].update(range=[0, 1]),
            "range is for county_map visuals only",
        ),
        (lambda s: s["visuals"]["county_expected_map"].update(range=[4, -4]), "low < high"),
        (
            lambda s: s["visuals"]["county_expected_map"].update(tooltip=[{"max": "nope"}]),
            r"has no column \['nope'\]",
        ),
    ],
)
def test_checker_names_the_problem(edit, message):
    with pytest.raises(dashboard_spec.SpecError, match=message):
        dashboard_spec.parse(broken(edit))
