"""The QuickSight Definition compiled from quicksight/dashboard.yaml: valid against botocore's
QuickSight model (members, required, types — and enums, lengths, patterns, sizes by walking the
shape), and faithful to the spec (visuals, layout, measures, filters, geo roles)."""

import copy

import botocore.session
import pytest
from botocore.validate import ParamValidator

from flu_monitor import dashboard_spec
from flu_monitor.quicksight_definition import (
    DefinitionError,
    data_set_tables,
    template_definition,
)
from tests.functions.shape_check import violations

MODEL = botocore.session.get_session().get_service_model("quicksight")
SOURCE_ARN = "arn:aws:quicksight:us-east-1:123456789012:datasource/flu-redshift"


@pytest.fixture(scope="module")
def spec():
    return dashboard_spec.load()


@pytest.fixture(scope="module")
def definition(spec):
    return template_definition(spec)


def _validate(operation: str, params: dict) -> list[str]:
    shape = MODEL.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()
    return violations(params, shape)


def test_template_request_satisfies_the_model(definition):
    params = {
        "AwsAccountId": "123456789012",
        "TemplateId": "flu-template",
        "Name": "Flu",
        "Definition": definition,
        "VersionDescription": "v1",
    }
    assert _validate("CreateTemplate", params) == []
    assert _validate("UpdateTemplate", params) == []


def test_data_set_requests_satisfy_the_model(spec):
    for name in spec.datasets:
        params = {
            "AwsAccountId": "123456789012",
            "DataSetId": f"flu-{name}".replace("_", "-"),
            "Name": name,
            "ImportMode": "DIRECT_QUERY",
            **data_set_tables(name, spec, SOURCE_ARN, "public"),
        }
        assert _validate("CreateDataSet", params) == [], name


def test_the_shape_walker_catches_what_botocore_lets_through(definition):
    broken = copy.deepcopy(definition)
    sheet = broken["Sheets"][0]
    sheet["Visuals"][0]["KPIVisual"]["VisualId"] = "has spaces!"  # pattern [\w\-]+ still matches
    sheet["Visuals"][1]["KPIVisual"]["VisualId"] = "!!"  # no word character: pattern fails
    sheet["Layouts"][0]["Configuration"]["GridLayout"]["Elements"][0]["ColumnSpan"] = 37
    broken["FilterGroups"][0]["CrossDataset"] = "SOME_DATASETS"
    sheet["Name"] = "x" * 2049  # botocore checks minimums only
    params = {"AwsAccountId": "123456789012", "TemplateId": "t", "Definition": broken}
    shape = MODEL.operation_model("CreateTemplate").input_shape
    assert not ParamValidator().validate(params, shape).has_errors()  # botocore sees no problem
    found = violations(params, shape)
    assert any("'!!' does not match pattern" in v for v in found)
    assert any("ColumnSpan: 37 > max 36" in v for v in found)
    assert any("'SOME_DATASETS' not in enum" in v for v in found)
    assert any("Sheets[0].Name: string length 2049 > max 2048" in v for v in found)
    assert len(found) == 4, found


def _visuals(definition) -> dict:
    return {next(iter(v.values()))["VisualId"]: v for v in definition["Sheets"][0]["Visuals"]}


def test_every_spec_visual_is_compiled_once_with_its_kind(spec, definition):
    kinds = {
        "kpi": "KPIVisual",
        "line": "LineChartVisual",
        "bar": "BarChartVisual",
        "stacked_bar": "BarChartVisual",
        "grouped_bar": "BarChartVisual",
        "county_map": "FilledMapVisual",
        "point_map": "GeospatialMapVisual",
        "table": "TableVisual",
    }
    compiled = _visuals(definition)
    assert set(compiled) == set(spec.visuals) | {"clock"}
    for name, visual in spec.visuals.items():
        assert list(compiled[name]) == [kinds[visual.type]], name
        assert compiled[name][kinds[visual.type]]["Title"]["FormatText"]["PlainText"] == (
            visual.title
        )


def test_honest_charts_note_the_partial_day_and_the_clock(spec, definition):
    """Notes are subtitles; the day still filling is left out of the daily line (QuickSight
    cannot style one point); the data's clock is a KPI beside the title, in its time zone."""
    visuals = _visuals(definition)
    for name, visual in spec.visuals.items():
        body = next(iter(visuals[name].values()))
        if visual.note:
            assert body["Subtitle"]["FormatText"]["PlainText"] == visual.note, name
        else:
            assert "Subtitle" not in body, name
    (partial,) = [g for g in definition["FilterGroups"] if g["FilterGroupId"].endswith("-days")]
    flt = partial["Filters"][0]["TimeRangeFilter"]
    assert partial["ScopeConfiguration"]["SelectedSheets"]["SheetVisualScopingConfigurations"] == [
        {"SheetId": "overview", "Scope": "SELECTED_VISUALS", "VisualIds": ["daily_cases_by_state"]}
    ]
    assert flt["RangeMaximumValue"]["RollingDate"]["Expression"] == (
        "addDateTime(-1, 'DD', truncDate('DD', now()))"
    )
    assert "RangeMinimumValue" not in flt  # the date control still sets the start
    clock = visuals["clock"]["KPIVisual"]
    assert clock["Title"]["FormatText"]["PlainText"] == "Data through (UTC)"
    (value,) = clock["ChartConfiguration"]["FieldWells"]["Values"]
    assert value["DateMeasureField"]["Column"] == {
        "DataSetIdentifier": "state_daily",
        "ColumnName": "latest_event_time",
    }
    assert value["DateMeasureField"]["AggregationFunction"] == "MAX"
    elements = definition["Sheets"][0]["Layouts"][0]["Configuration"]["GridLayout"]["Elements"]
    top = [
        (e["ElementId"], e["ColumnIndex"], e["ColumnSpan"]) for e in elements if e["RowIndex"] == 0
    ]
    assert top == [("title", 0, 27), ("clock", 27, 9)]


def test_layout_follows_the_spec_rows_and_widths(spec, definition):
    elements = definition["Sheets"][0]["Layouts"][0]["Configuration"]["GridLayout"]["Elements"]
    placed = {e["ElementId"]: e for e in elements}
    assert placed["title"]["ElementType"] == "TEXT_BOX"
    assert placed["cases_today"] == {
        "ElementId": "cases_today",
        "ElementType": "VISUAL",
        "ColumnIndex": 0,
        "ColumnSpan": 9,
        "RowIndex": 3,
        "RowSpan": 5,
    }
    assert placed["active_alerts"]["ColumnIndex"] == 27
    assert placed["county_rate_map"] == {
        "ElementId": "county_rate_map",
        "ElementType": "VISUAL",
        "ColumnIndex": 18,
        "ColumnSpan": 18,
        "RowIndex": 8,
        "RowSpan": 12,
    }
    assert (
        placed["current_alerts"]["ColumnSpan"],
        placed["county_expected_map"]["ColumnIndex"],
    ) == (
        21,
        21,
    )
    for row in spec.layout:  # each row fills the 36 columns exactly
        assert sum(placed[v]["ColumnSpan"] for v in row) == 36, row


def test_measures_ratios_and_custom_orders(definition):
    visuals = _visuals(definition)
    kpi = visuals["cases_today"]["KPIVisual"]["ChartConfiguration"]["FieldWells"]["Values"][0]
    assert kpi["NumericalMeasureField"]["AggregationFunction"] == {
        "SimpleNumericalAggregation": "SUM"
    }
    alerts = visuals["active_alerts"]["KPIVisual"]["ChartConfiguration"]["FieldWells"]["Values"][0]
    assert alerts["CategoricalMeasureField"]["AggregationFunction"] == "DISTINCT_COUNT"
    calculated = {
        (c["DataSetIdentifier"], c["Name"]): c["Expression"] for c in definition["CalculatedFields"]
    }
    assert calculated[("state_daily", "admissions per cases")] == "sum({admissions}) / sum({cases})"
    assert calculated[("vaccination", "Severe")] == "sum({severe_cases}) / sum({cases})"
    assert calculated[("age_hospitalization", "age_band order")] == (
        "ifelse({age_band} = '0-4', 1, {age_band} = '5-17', 2, {age_band} = '18-49', 3, "
        "{age_band} = '50-64', 4, {age_band} = '65+', 5, 6)"
    )
    rate = visuals["hospitalization_rate"]["KPIVisual"]["ChartConfiguration"]["FieldWells"]
    fmt = rate["Values"][0]["NumericalMeasureField"]["FormatConfiguration"]["FormatConfiguration"]
    assert fmt == {
        "PercentageDisplayFormatConfiguration": {"DecimalPlacesConfiguration": {"DecimalPlaces": 1}}
    }
    stacked = visuals["severity_by_age"]["BarChartVisual"]["ChartConfiguration"]
    assert stacked["BarsArrangement"] == "STACKED"
    color_sort = stacked["SortConfiguration"]["ColorSort"][0]["ColumnSort"]["SortBy"]
    assert color_sort == {
        "DataSetIdentifier": "age_severity",
        "ColumnName": "symptom_severity order",
    }
    grouped = visuals["vaccination_outcomes"]["BarChartVisual"]["ChartConfiguration"]
    assert len(grouped["FieldWells"]["BarChartAggregatedFieldWells"]["Values"]) == 2


def test_filters_are_cross_data_set_and_scoped_to_the_listed_data_sets(spec, definition):
    groups = {g["FilterGroupId"]: g for g in definition["FilterGroups"]}
    state = groups["filter-state"]
    assert state["CrossDataset"] == "ALL_DATASETS"
    scoping = state["ScopeConfiguration"]["SelectedSheets"]["SheetVisualScopingConfigurations"]
    assert scoping == [{"SheetId": "overview", "Scope": "ALL_VISUALS"}]
    dates = groups["filter-dates"]
    scoping = dates["ScopeConfiguration"]["SelectedSheets"]["SheetVisualScopingConfigurations"][0]
    date_datasets = {
        "state_daily",
        "age_hospitalization",
        "age_severity",
        "vaccination",
        "facilities",
    }
    expected = sorted(n for n, v in spec.visuals.items() if v.dataset in date_datasets)
    assert scoping["Scope"] == "SELECTED_VISUALS"
    assert sorted(scoping["VisualIds"]) == expected
    assert "cases_today" not in scoping["VisualIds"]  # "today" figures ignore the date range
    window = dates["Filters"][0]["TimeRangeFilter"]["RangeMinimumValue"]["RollingDate"]
    assert window["Expression"] == "addDateTime(-60, 'DD', truncDate('DD', now()))"
    controls = definition["Sheets"][0]["FilterControls"]
    assert controls[0]["Dropdown"]["SelectableValues"] == {"Values": ["NY", "NJ", "PA"]}
    assert controls[1]["DateTimePicker"]["Type"] == "DATE_RANGE"
    top = groups["top_facilities_table-top"]["Filters"][0]["TopBottomFilter"]
    assert top["Limit"] == 15
    assert top["Column"] == {"DataSetIdentifier": "facilities", "ColumnName": "facility_name"}
    assert top["AggregationSortConfigurations"][0]["SortDirection"] == "DESC"


def test_every_referenced_column_exists(spec, definition):
    """Each ColumnIdentifier names a column of its data set or one of its calculated fields."""
    calculated = {(c["DataSetIdentifier"], c["Name"]) for c in definition["CalculatedFields"]}
    known = {(ds, c) for ds, d in spec.datasets.items() for c in d.columns} | calculated
    seen = []

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"DataSetIdentifier", "ColumnName"}:
                seen.append((node["DataSetIdentifier"], node["ColumnName"]))
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(definition["Sheets"] + definition["FilterGroups"])
    assert seen and set(seen) <= known, set(seen) - known
    assert {name for _, name in calculated} <= {name for _, name in seen}  # none unused


def test_template_schema_matches_the_data_sets(spec, definition):
    """The template's placeholders declare exactly the columns the data sets expose."""
    for configuration in definition["DataSetConfigurations"]:
        name = configuration["Placeholder"]
        tables = data_set_tables(name, spec, SOURCE_ARN, "analytics")
        (table,) = tables["PhysicalTableMap"].values()
        inputs = [(c["Name"], c["Type"]) for c in table["RelationalTable"]["InputColumns"]]
        schema = [
            (c["Name"], c["DataType"]) for c in configuration["DataSetSchema"]["ColumnSchemaList"]
        ]
        assert inputs == schema, name
        assert table["RelationalTable"]["Name"] == spec.datasets[name].view
        assert table["RelationalTable"]["Schema"] == "analytics"


def test_geo_roles_tag_columns_and_form_a_us_hierarchy(spec, definition):
    tables = data_set_tables("county_latest", spec, SOURCE_ARN, "public")
    (logical,) = tables["LogicalTableMap"].values()
    tags = {
        t["TagColumnOperation"]["ColumnName"]: t["TagColumnOperation"]["Tags"][0]
        for t in logical["DataTransforms"]
    }
    assert tags == {
        "state_code": {"ColumnGeographicRole": "STATE"},
        "county_name": {"ColumnGeographicRole": "COUNTY"},
    }
    group = tables["ColumnGroups"][0]["GeoSpatialColumnGroup"]
    assert group == {
        "Name": "county_latest_geo",
        "CountryCode": "US",
        "Columns": ["state_code", "county_name"],
    }
    assert "ColumnGroups" not in data_set_tables("kpis", spec, SOURCE_ARN, "public")
    county_map = _visuals(definition)["county_rate_map"]["FilledMapVisual"]
    geo = county_map["ChartConfiguration"]["FieldWells"]["FilledMapAggregatedFieldWells"]
    assert (
        geo["Geospatial"][0]["CategoricalDimensionField"]["Column"]["ColumnName"] == "county_name"
    )


def test_coordinates_form_their_own_group_without_a_country(spec):
    tables = data_set_tables("facilities", spec, SOURCE_ARN, "public")
    assert tables["ColumnGroups"] == [
        {"GeoSpatialColumnGroup": {"Name": "facilities_geo", "Columns": ["latitude", "longitude"]}}
    ]
    document = dashboard_spec.load_document()
    document["datasets"]["facilities"]["geo"] = {
        "state_code": "state",
        "latitude": "latitude",
        "longitude": "longitude",
    }
    both = dashboard_spec.parse(document)
    groups = [
        g["GeoSpatialColumnGroup"]
        for g in data_set_tables("facilities", both, "a", "s")["ColumnGroups"]
    ]
    assert groups == [
        {"Name": "facilities_geo", "CountryCode": "US", "Columns": ["state_code"]},
        {"Name": "facilities_coordinates", "Columns": ["latitude", "longitude"]},
    ]
    (configuration,) = [
        c
        for c in template_definition(both)["DataSetConfigurations"]
        if c["Placeholder"] == "facilities"
    ]
    assert [g["Name"] for g in configuration["ColumnGroupSchemaList"]] == [
        "facilities_geo",
        "facilities_coordinates",
    ]


def test_point_map_wells_hold_latitude_then_longitude_and_the_label_is_a_tooltip(definition):
    chart = _visuals(definition)["top_facilities_map"]["GeospatialMapVisual"]["ChartConfiguration"]
    wells = chart["FieldWells"]["GeospatialMapAggregatedFieldWells"]
    assert [
        (next(iter(f)), f[next(iter(f))]["Column"]["ColumnName"]) for f in wells["Geospatial"]
    ] == [("NumericalDimensionField", "latitude"), ("NumericalDimensionField", "longitude")]
    size_id = wells["Values"][0]["NumericalMeasureField"]["FieldId"]
    items = chart["Tooltip"]["FieldBasedTooltip"]["TooltipFields"]
    assert items[0]["ColumnTooltipItem"]["Column"]["ColumnName"] == "facility_name"
    assert items[0]["ColumnTooltipItem"]["Aggregation"] == {
        "AttributeAggregationFunction": {"SimpleAttributeAggregation": "UNIQUE_VALUE"}
    }
    assert items[1] == {"FieldTooltipItem": {"FieldId": size_id, "Visibility": "VISIBLE"}}


def test_alert_map_shows_observed_and_expected_and_the_table_ranks_by_strength(definition):
    visuals = _visuals(definition)
    chart = visuals["county_expected_map"]["FilledMapVisual"]["ChartConfiguration"]
    value = chart["FieldWells"]["FilledMapAggregatedFieldWells"]["Values"][0]
    assert value["NumericalMeasureField"]["Column"]["ColumnName"] == "statistic_7day"
    items = chart["Tooltip"]["FieldBasedTooltip"]["TooltipFields"]
    assert items[0] == {
        "FieldTooltipItem": {"FieldId": "county_expected_map-value", "Visibility": "VISIBLE"}
    }
    assert [
        (i["ColumnTooltipItem"]["Column"]["ColumnName"], i["ColumnTooltipItem"]["Label"])
        for i in items[1:]
    ] == [
        ("observed_7day", "Observed"),
        ("expected_7day", "Expected"),
        ("ratio_7day", "Observed / expected"),
    ]
    assert items[1]["ColumnTooltipItem"]["Aggregation"] == {
        "NumericalAggregationFunction": {"SimpleNumericalAggregation": "MAX"}
    }
    assert chart["Legend"]["Title"]["CustomLabel"] == "above expected"
    table = visuals["current_alerts"]["TableVisual"]["ChartConfiguration"]
    columns = table["FieldWells"]["TableAggregatedFieldWells"]["Values"]
    names = [c["NumericalMeasureField"]["Column"]["ColumnName"] for c in columns]
    assert names == ["observed", "expected", "ratio", "statistic", "strength"]
    assert table["SortConfiguration"]["RowSort"] == [
        {"FieldSort": {"FieldId": "current_alerts-col4", "Direction": "DESC"}}
    ]


def test_a_ratio_cannot_be_a_map_tooltip(spec):
    broken = dashboard_spec.load_document()
    broken["visuals"]["county_expected_map"]["tooltip"] = [
        {"ratio": ["observed_7day", "expected_7day"]}
    ]
    with pytest.raises(DefinitionError, match="only sum, max or min"):
        template_definition(dashboard_spec.parse(broken))


def test_county_map_needs_the_state_in_its_geospatial_hierarchy(spec):
    broken = dashboard_spec.load_document()
    broken["datasets"]["county_latest"]["geo"] = {"county_name": "county"}
    with pytest.raises(
        DefinitionError, match="county_latest: a map needs a column with geo role state"
    ):
        template_definition(dashboard_spec.parse(broken))
