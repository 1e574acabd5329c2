"""The dashboard's query builder and renderers, driven by the shipped spec (no database here;
tests/local/test_dashboard_data.py runs every query against the real views)."""

from datetime import date

import pytest

from flu_monitor import dashboard_spec
from flu_monitor.dashboard import queries

SPEC = dashboard_spec.load()
ALL_STATES = {"state": ["NY", "NJ", "PA"]}
# One xdist worker runs the dashboard's tests: only it imports dash and plotly (0.6 CPU-s).
pytestmark = pytest.mark.xdist_group("dashboard")


@pytest.fixture(scope="module")
def figures():
    from flu_monitor.dashboard import figures

    return figures


def text(query: queries.Query) -> str:
    return query.text.as_string(None)


def test_kpi_sums_its_measure_over_the_selected_states():
    q = queries.build(SPEC, "cases_today", {"state": ["NY"], "dates": (date(2026, 1, 1),) * 2})
    # the date filter does not apply to the kpis dataset in the spec: only the state filter does
    assert (
        text(q) == 'SELECT SUM("cases_today") FROM "v_dashboard_kpis" WHERE "state_code" = ANY(%s)'
    )
    assert q.params == (["NY"],)


def test_ratio_is_recomputed_from_sums_as_a_percentage():
    q = queries.build(SPEC, "hospitalization_rate", ALL_STATES)
    assert (
        'SELECT 100.0 * SUM("admissions") / NULLIF(SUM("cases"), 0) FROM "mv_daily_state_cases"'
        in text(q)
    )


def test_date_range_filter_applies_where_the_spec_says():
    dates = (date(2026, 1, 1), date(2026, 2, 1))
    q = queries.build(SPEC, "daily_cases_by_state", {**ALL_STATES, "dates": dates})
    assert text(q) == (
        'SELECT "day", "state_code", SUM("cases") FROM "mv_daily_state_cases" '
        'WHERE "state_code" = ANY(%s) AND "day" BETWEEN %s AND %s '
        'GROUP BY "day", "state_code" ORDER BY "day", "state_code"'
    )
    assert q.params == (["NY", "NJ", "PA"], *dates)


def test_table_sorts_by_its_sort_measure_and_limits():
    q = queries.build(SPEC, "top_facilities_table", ALL_STATES)
    assert text(q).endswith(
        'GROUP BY "facility_name", "state_code", "county_fips" ORDER BY SUM("admissions") DESC '
        'NULLS LAST, "facility_name", "state_code", "county_fips" LIMIT %s'
    )
    assert q.params[-1] == 15


def _points(trace) -> int:
    for data in ("x", "locations", "lat"):  # bar/scatter, choropleth, scattergeo
        if data in trace:
            return len(trace[data] or ())
    raise AssertionError(f"no data column in {trace.type}")


@pytest.mark.parametrize("name", sorted(SPEC.visuals))
def test_every_visual_reads_its_view_and_shows_no_data_as_empty(name, figures):
    visual = SPEC.visuals[name]
    q = queries.build(SPEC, name, ALL_STATES)
    assert f'FROM "{SPEC.datasets[visual.dataset].view}" WHERE ' in text(q)
    shown = figures.render(name, visual, [])
    if visual.type == "kpi":
        value = shown.children[1]
        assert (value.children, getattr(value, "data-value")) == ("–", "")
    elif visual.type == "table":
        assert getattr(shown, "data-rows") == "0"
        assert [row.children.children for row in shown.children[1].children] == ["No rows"]
    else:  # no bar, line or marker; a map keeps only its county outlines
        assert shown.id == f"graph-{name}"
        data = [t for t in shown.figure.data if t.hoverinfo != "skip"]
        assert [_points(t) for t in data] == [0] * len(data)
        outlines = [t for t in shown.figure.data if t.hoverinfo == "skip"]
        counties = len(figures.counties_geojson()["features"])
        assert [len(t.locations) for t in outlines] == ([counties] if "map" in visual.type else [])


def test_latest_day_query_covers_every_dataset_of_the_filter():
    sql = queries.latest_day_query(SPEC, "dates").as_string(None)
    for dataset in next(f for f in SPEC.filters if f.id == "dates").datasets:
        assert f'FROM "{SPEC.datasets[dataset].view}"' in sql


def test_default_range_is_the_last_n_days_ending_on_the_latest_day():
    assert queries.default_range(date(2026, 3, 1), 60) == (date(2026, 1, 1), date(2026, 3, 1))
    assert queries.default_range(None, 60) is None


@pytest.mark.parametrize(
    ("value", "measure", "shown"),
    [
        (1234567, {"sum": "x"}, "1,234,567"),
        (12.345, {"ratio": ["a", "b"], "percent": True, "decimals": 1}, "12.3 %"),
        (None, {"sum": "x"}, "–"),
    ],
)
def test_values_read_as_the_spec_formats_them(value, measure, shown, figures):
    assert figures.format_value(value, dashboard_spec.parse_measure(measure)) == shown


def test_labels_come_from_column_names():
    assert queries.column_label("county_fips") == "County FIPS"
    assert queries.measure_label(dashboard_spec.parse_measure({"max": "c1"})) == "C1"
    severe = dashboard_spec.parse_measure({"label": "Severe", "ratio": ["a", "b"]})
    assert queries.measure_label(severe) == "Severe"


def test_kpi_tile_exposes_its_exact_value(figures):
    tile = figures.kpi("cases_today", SPEC.visuals["cases_today"], [(4321,)])
    value = tile.children[1]
    assert value.id == "kpi-cases_today"
    assert value.children == "4,321"
    assert getattr(value, "data-value") == "4321"


def test_county_rings_are_wound_for_d3(figures):
    """d3-geo draws an anticlockwise exterior ring as the whole globe minus the county."""
    for feature in figures.counties_geojson()["features"]:
        geometry = feature["geometry"]
        polygons = geometry["coordinates"]
        if geometry["type"] == "Polygon":
            polygons = [polygons]
        for polygon in polygons:
            assert figures._signed_area(polygon[0]) < 0, feature["id"]
            assert all(figures._signed_area(hole) > 0 for hole in polygon[1:]), feature["id"]


def test_alerts_rank_by_strength_and_the_map_shows_observed_and_expected(figures):
    table = text(queries.build(SPEC, "current_alerts", ALL_STATES))
    assert 'ORDER BY MAX("strength") DESC NULLS LAST' in table
    assert 'MAX("observed"), MAX("expected"), MAX("ratio"), MAX("statistic")' in table
    visual = SPEC.visuals["county_expected_map"]
    assert text(queries.build(SPEC, "county_expected_map", ALL_STATES)).startswith(
        'SELECT "county_fips", "county_name", MAX("statistic_7day"), MAX("observed_7day"), '
        'MAX("expected_7day"), MAX("ratio_7day") FROM "v_county_expected"'
    )
    rows = [
        ("36109", "Tompkins County", 9.77, 70.0, 10.7, 6.54),
        ("36001", "Albany County", -0.4, 45.0, 50.0, 0.9),
    ]
    trace = figures.county_map(visual, rows).data[1]
    assert trace.hovertemplate == (
        "%{text}<br>Statistic (7 days): %{customdata[0]}<br>Observed: %{customdata[1]}"
        "<br>Expected: %{customdata[2]}<br>Observed / expected: %{customdata[3]}<extra></extra>"
    )
    assert [list(c) for c in trace.customdata] == [
        ["9.8", "70", "10.7", "6.54"],
        ["-0.4", "45", "50.0", "0.90"],
    ]
    # 0 = as expected sits mid-scale: blue below, red above, 4 and more the darkest red
    assert (trace.zmin, trace.zmax) == (-4, 4) and trace.colorbar.title.text == "above expected"
