"""Compile the dashboard spec (quicksight/dashboard.yaml) into Amazon QuickSight API input.

- `template_definition(spec)`: the `Definition` of CreateTemplate/UpdateTemplate: one sheet, one
  visual per spec visual on a 36-column grid, filter controls, calculated fields for ratios and
  custom sort orders. Data sets are referenced by placeholder = the spec's dataset name.
- `data_set_tables(name, spec, ...)`: PhysicalTableMap/LogicalTableMap/ColumnGroups of the
  CreateDataSet/UpdateDataSet request for one spec dataset (an analytics view in Redshift).

Pure data in, pure data out (no boto3), so tests check the output against botocore's service
model, and the local dashboard and QuickSight read the same spec. Mapping choices:
- a measure {sum|max|min: col} is an aggregated field; {count_distinct: col} counts distinct values;
  {ratio: [num, den]} is the calculated field sum({num}) / sum({den}), recomputed per group;
- `order`/`color_order` become a calculated rank field the chart sorts by;
- a table's `limit` is a top-N filter on its first group_by column by its sort measure;
- filters become cross-data-set filter groups (one control each) scoped to the visuals of the
  data sets they list; the date range defaults to the last N days up to today: the rolling dates
  count from now() (the local dashboard counts back from the latest day with data instead);
- `geo` roles tag data set columns; place-name roles (state, county, ...) form a US geospatial
  hierarchy, which is how QuickSight tells same-named counties of different states apart, and
  latitude/longitude form a coordinate group;
- a point map's `label` is a tooltip showing the column's unique value per point; a county map's
  `tooltip` measures are column tooltip items (its `legend` the legend title; its `range`, a
  diverging colour scale, is drawn by the local dashboard only: QuickSight keeps its gradient);
- a visual's `note` is its subtitle; `palette` is left to QuickSight's default colours;
- `partial_latest_day` leaves the day still filling out of that line chart (a filter scoped to
  it: report days up to yesterday): QuickSight cannot draw one point of a line differently;
- `clock` (the data's clock) is a KPI beside the title: the latest value of its column.
Doc pages behind each construct, and what stays unverified without an account:
functions/README.md, "QuickSight compatibility".
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any, TypeVar

from flu_monitor.dashboard_spec import (
    Dataset,
    Measure,
    MeasureKind,
    Sort,
    Spec,
    Visual,
    VisualType,
)

SHEET_ID = "overview"
GRID_COLUMNS = 36  # QuickSight's grid; the spec's widths are twelfths
KPI_ROW_SPAN, CHART_ROW_SPAN, TITLE_ROW_SPAN = 5, 12, 3
TIMEZONE = "America/New_York"

INPUT_TYPES = {"date": "DATETIME", "string": "STRING", "integer": "INTEGER", "decimal": "DECIMAL"}
GEO_ORDER = ["country", "state", "county", "city", "postcode", "latitude", "longitude"]
COORDINATES = {"latitude", "longitude"}
SIMPLE_AGGREGATIONS = {
    MeasureKind.SUM: "SUM",
    MeasureKind.MAX: "MAX",
    MeasureKind.MIN: "MIN",
}
T = TypeVar("T")


class DefinitionError(ValueError):
    """The spec uses something this compiler cannot express in QuickSight."""


def _ident(dataset: str, column: str) -> dict:
    return {"DataSetIdentifier": dataset, "ColumnName": column}


def _title(text: str) -> dict:
    return {"Visibility": "VISIBLE", "FormatText": {"PlainText": text}}


CLOCK_VISUAL = "clock"
CLOCK_COLUMN_SPAN = 9  # of the title row's 36 columns


def _number_format(measure: Measure) -> dict | None:
    decimals = measure.decimals
    places = (
        {"DecimalPlacesConfiguration": {"DecimalPlaces": decimals}} if decimals is not None else {}
    )
    if measure.percent:
        return {"FormatConfiguration": {"PercentageDisplayFormatConfiguration": places}}
    if places:
        return {"FormatConfiguration": {"NumberDisplayFormatConfiguration": places}}
    return None


def _ratio_name(measure: Measure) -> str:
    num, den = measure.columns
    return measure.label or f"{num} per {den}"


def _order_name(column: str) -> str:
    return f"{column} order"


class _Compiler:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.datasets = spec.datasets
        self.calculated: dict[tuple[str, str], str] = {}  # (dataset, name) -> expression
        self.filter_groups: list[dict] = []

    # -- fields ---------------------------------------------------------------------------
    def column_type(self, dataset: str, column: str) -> str:
        return self.datasets[dataset].columns[column]

    def dimension(self, dataset: str, column: str, field_id: str) -> dict:
        kind = self.column_type(dataset, column)
        field = {"FieldId": field_id, "Column": _ident(dataset, column)}
        if kind == "date":
            return {"DateDimensionField": {**field, "DateGranularity": "DAY"}}
        if kind == "string":
            return {"CategoricalDimensionField": field}
        return {"NumericalDimensionField": field}

    def measure(self, dataset: str, measure: Measure, field_id: str) -> dict:
        kind = measure.kind
        fmt = _number_format(measure)
        extra = {"FormatConfiguration": fmt} if fmt else {}
        if kind is MeasureKind.RATIO:
            num, den = measure.columns
            name = _ratio_name(measure)
            self.calculated[(dataset, name)] = f"sum({{{num}}}) / sum({{{den}}})"
            # An aggregated calculated field: no second aggregation on top.
            field = {"FieldId": field_id, "Column": _ident(dataset, name), **extra}
            return {"NumericalMeasureField": field}
        column = measure.columns[0]
        field = {"FieldId": field_id, "Column": _ident(dataset, column)}
        if kind is MeasureKind.COUNT_DISTINCT:
            if self.column_type(dataset, column) in ("string", "date"):
                return {
                    "CategoricalMeasureField": {**field, "AggregationFunction": "DISTINCT_COUNT"}
                }
            aggregation = "DISTINCT_COUNT"
        else:
            aggregation = SIMPLE_AGGREGATIONS[kind]
        return {
            "NumericalMeasureField": {
                **field,
                "AggregationFunction": {"SimpleNumericalAggregation": aggregation},
                **extra,
            }
        }

    def order_sort(self, dataset: str, column: str, values: Sequence[str]) -> list[dict]:
        """Sort by the given value order: a calculated rank (unlisted values last)."""
        name = _order_name(column)
        branches = ", ".join(
            f"{{{column}}} = '{str(v).replace(chr(39), chr(39) * 2)}', {i}"
            for i, v in enumerate(values, 1)
        )
        self.calculated[(dataset, name)] = f"ifelse({branches}, {len(values) + 1})"
        return [
            {
                "ColumnSort": {
                    "SortBy": _ident(dataset, name),
                    "Direction": "ASC",
                    "AggregationFunction": {
                        "NumericalAggregationFunction": {"SimpleNumericalAggregation": "MIN"}
                    },
                }
            }
        ]

    # -- visuals --------------------------------------------------------------------------
    def visual(self, name: str, v: Visual) -> dict:
        build = getattr(self, f"_visual_{v.type}")
        compiled: dict = build(name, v, v.dataset)
        if v.note:
            body = next(iter(compiled.values()))
            body["Subtitle"] = {"Visibility": "VISIBLE", "FormatText": {"PlainText": v.note}}
        if v.partial_latest_day:
            self._up_to_yesterday(name, v)
        return compiled

    def _up_to_yesterday(self, name: str, v: Visual) -> None:
        """The day still filling is left out of this visual (QuickSight cannot mark it)."""
        self.filter_groups.append(
            {
                "FilterGroupId": f"{name}-complete-days",
                "Filters": [
                    {
                        "TimeRangeFilter": {
                            "FilterId": f"{name}-complete-days",
                            "Column": _ident(v.dataset, _required(v.x)),
                            "IncludeMaximum": True,
                            "RangeMaximumValue": {
                                "RollingDate": {
                                    "Expression": "addDateTime(-1, 'DD', truncDate('DD', now()))"
                                }
                            },
                            "NullOption": "NON_NULLS_ONLY",
                            "TimeGranularity": "DAY",
                        }
                    }
                ],
                "ScopeConfiguration": _scope([name]),
                "CrossDataset": "SINGLE_DATASET",
                "Status": "ENABLED",
            }
        )

    def clock(self) -> dict:
        """The data's clock (spec `clock`) as a KPI: the latest value of its date column."""
        clock = self.spec.clock
        assert clock is not None  # called only when the spec has one
        field = {
            "FieldId": f"{CLOCK_VISUAL}-value",
            "Column": _ident(clock.dataset, clock.column),
            "AggregationFunction": "MAX",
            "FormatConfiguration": {"DateTimeFormat": "YYYY-MM-DD HH:mm"},
        }
        return {
            "KPIVisual": {
                "VisualId": CLOCK_VISUAL,
                "Title": _title(f"{clock.label} ({clock.timezone})"),
                "ChartConfiguration": {"FieldWells": {"Values": [{"DateMeasureField": field}]}},
            }
        }

    def _visual_kpi(self, name: str, v: Visual, ds: str) -> dict:
        return {
            "KPIVisual": {
                "VisualId": name,
                "Title": _title(v.title),
                "ChartConfiguration": {
                    "FieldWells": {
                        "Values": [self.measure(ds, _required(v.value), f"{name}-value")]
                    }
                },
            }
        }

    def _visual_line(self, name: str, v: Visual, ds: str) -> dict:
        wells = {
            "Category": [self.dimension(ds, _required(v.x), f"{name}-x")],
            "Values": [self.measure(ds, v.y[0], f"{name}-y")],
        }
        if v.color:
            wells["Colors"] = [self.dimension(ds, v.color, f"{name}-color")]
        return {
            "LineChartVisual": {
                "VisualId": name,
                "Title": _title(v.title),
                "ChartConfiguration": {
                    "FieldWells": {"LineChartAggregatedFieldWells": wells},
                    "SortConfiguration": {
                        "CategorySort": [
                            {"FieldSort": {"FieldId": f"{name}-x", "Direction": "ASC"}}
                        ]
                    },
                    "Type": "LINE",
                },
            }
        }

    def _bars(self, name: str, v: Visual, ds: str, arrangement: str) -> dict:
        x = _required(v.x)
        wells = {
            "Category": [self.dimension(ds, x, f"{name}-x")],
            "Values": [self.measure(ds, y, f"{name}-y{i}") for i, y in enumerate(v.y)],
        }
        sort: dict = {}
        if v.order:
            sort["CategorySort"] = self.order_sort(ds, x, v.order)
        else:
            sort["CategorySort"] = [{"FieldSort": {"FieldId": f"{name}-x", "Direction": "ASC"}}]
        if v.color:
            wells["Colors"] = [self.dimension(ds, v.color, f"{name}-color")]
            if v.color_order:
                sort["ColorSort"] = self.order_sort(ds, v.color, v.color_order)
        return {
            "BarChartVisual": {
                "VisualId": name,
                "Title": _title(v.title),
                "ChartConfiguration": {
                    "FieldWells": {"BarChartAggregatedFieldWells": wells},
                    "SortConfiguration": sort,
                    "Orientation": "VERTICAL",
                    "BarsArrangement": arrangement,
                },
            }
        }

    def _visual_bar(self, name: str, v: Visual, ds: str) -> dict:
        return self._bars(name, v, ds, "CLUSTERED")

    def _visual_grouped_bar(self, name: str, v: Visual, ds: str) -> dict:
        return self._bars(name, v, ds, "CLUSTERED")

    def _visual_stacked_bar(self, name: str, v: Visual, ds: str) -> dict:
        return self._bars(name, v, ds, "STACKED")

    def _geo_column(self, ds: str, role: str) -> str:
        for column, column_role in self.datasets[ds].geo.items():
            if column_role == role:
                return column
        raise DefinitionError(f"dataset {ds}: a map needs a column with geo role {role}")

    def _visual_county_map(self, name: str, v: Visual, ds: str) -> dict:
        county = self._geo_column(ds, "county")
        # A county name alone is ambiguous (Warren County is in NY, NJ and PA); QuickSight
        # geocodes it within the data set's geospatial hierarchy, which must hold the state.
        self._geo_column(ds, "state")
        wells = {
            "Geospatial": [self.dimension(ds, county, f"{name}-county")],
            "Values": [self.measure(ds, _required(v.value), f"{name}-value")],
        }
        config: dict = {"FieldWells": {"FilledMapAggregatedFieldWells": wells}}
        if v.tooltip:
            config["Tooltip"] = _measure_tooltip(ds, v.tooltip, f"{name}-value")
        if v.legend:
            config["Legend"] = {
                "Visibility": "VISIBLE",
                "Title": {"Visibility": "VISIBLE", "CustomLabel": v.legend},
            }
        return {
            "FilledMapVisual": {
                "VisualId": name,
                "Title": _title(v.title),
                "ChartConfiguration": config,
            }
        }

    def _visual_point_map(self, name: str, v: Visual, ds: str) -> dict:
        wells = {
            "Geospatial": [
                self.dimension(ds, _required(v.latitude), f"{name}-latitude"),
                self.dimension(ds, _required(v.longitude), f"{name}-longitude"),
            ],
            "Values": [self.measure(ds, _required(v.size), f"{name}-size")],
        }
        config: dict = {"FieldWells": {"GeospatialMapAggregatedFieldWells": wells}}
        if v.label:
            config["Tooltip"] = _label_tooltip(ds, v.label, f"{name}-size")
        return {
            "GeospatialMapVisual": {
                "VisualId": name,
                "Title": _title(v.title),
                "ChartConfiguration": config,
            }
        }

    def _visual_table(self, name: str, v: Visual, ds: str) -> dict:
        group_by = [self.dimension(ds, c, f"{name}-by-{c}") for c in v.group_by]
        values = [self.measure(ds, m, f"{name}-col{i}") for i, m in enumerate(v.columns)]
        config: dict = {
            "FieldWells": {"TableAggregatedFieldWells": {"GroupBy": group_by, "Values": values}}
        }
        if v.sort:
            sort = v.sort
            index = self._same_measure_index(name, sort, v.columns)
            direction = "DESC" if sort.descending else "ASC"
            config["SortConfiguration"] = {
                "RowSort": [
                    {"FieldSort": {"FieldId": f"{name}-col{index}", "Direction": direction}}
                ]
            }
            if v.limit:
                self._top_n(name, v, ds, sort, direction)
        return {
            "TableVisual": {
                "VisualId": name,
                "Title": _title(v.title),
                "ChartConfiguration": config,
            }
        }

    @staticmethod
    def _same_measure_index(name: str, sort: Sort, columns: Sequence[Measure]) -> int:
        for i, column in enumerate(columns):
            if column.same_value(sort.measure):
                return i
        raise DefinitionError(f"visual {name}: sort {sort.measure.key} is not one of its columns")

    def _top_n(self, name: str, v: Visual, ds: str, sort: Sort, direction: str) -> None:
        kind = sort.measure.kind
        if kind not in SIMPLE_AGGREGATIONS:
            raise DefinitionError(f"visual {name}: a top-N sort must be sum, max or min")
        self.filter_groups.append(
            {
                "FilterGroupId": f"{name}-top",
                "Filters": [
                    {
                        "TopBottomFilter": {
                            "FilterId": f"{name}-top",
                            "Column": _ident(ds, v.group_by[0]),
                            "Limit": v.limit,
                            "AggregationSortConfigurations": [
                                {
                                    "Column": _ident(ds, sort.measure.columns[0]),
                                    "SortDirection": direction,
                                    "AggregationFunction": {
                                        "NumericalAggregationFunction": {
                                            "SimpleNumericalAggregation": SIMPLE_AGGREGATIONS[kind]
                                        }
                                    },
                                }
                            ],
                        }
                    }
                ],
                "ScopeConfiguration": _scope([name]),
                "CrossDataset": "SINGLE_DATASET",
                "Status": "ENABLED",
            }
        )

    # -- filters --------------------------------------------------------------------------
    def filters(self) -> tuple[list[dict], list[dict]]:
        """(filter groups, filter controls) for the spec's filters."""
        controls = []
        visuals = self.spec.visuals
        for f in self.spec.filters:
            datasets = f.datasets
            in_scope = [n for n, v in visuals.items() if v.dataset in datasets]
            all_visuals = len(in_scope) == len(visuals)
            column = _ident(datasets[0], f.column)
            filter_id = f"filter-{f.id}"
            if f.type == "multi_select":
                flt: dict[str, Any] = {
                    "CategoryFilter": {
                        "FilterId": filter_id,
                        "Column": column,
                        "Configuration": {
                            "FilterListConfiguration": {
                                "MatchOperator": "EQUALS",
                                "SelectAllOptions": "FILTER_ALL_VALUES",
                            }
                        },
                    }
                }
                control: dict[str, Any] = {
                    "Dropdown": {
                        "FilterControlId": f"control-{f.id}",
                        "Title": f.label,
                        "SourceFilterId": filter_id,
                        "Type": "MULTI_SELECT",
                        "SelectableValues": {"Values": list(f.values or ())},
                    }
                }
                if not f.values:
                    del control["Dropdown"]["SelectableValues"]
            else:  # date_range
                days = f.default_last_days
                flt = {
                    "TimeRangeFilter": {
                        "FilterId": filter_id,
                        "Column": column,
                        "IncludeMinimum": True,
                        "IncludeMaximum": True,
                        "RangeMinimumValue": {
                            "RollingDate": {
                                "Expression": f"addDateTime(-{days}, 'DD', truncDate('DD', now()))"
                            }
                        },
                        "RangeMaximumValue": {
                            "RollingDate": {"Expression": "truncDate('DD', now())"}
                        },
                        "NullOption": "NON_NULLS_ONLY",
                        "TimeGranularity": "DAY",
                    }
                }
                control = {
                    "DateTimePicker": {
                        "FilterControlId": f"control-{f.id}",
                        "Title": f.label,
                        "SourceFilterId": filter_id,
                        "Type": "DATE_RANGE",
                    }
                }
            self.filter_groups.append(
                {
                    "FilterGroupId": filter_id,
                    "Filters": [flt],
                    "ScopeConfiguration": _scope(None if all_visuals else in_scope),
                    # One filter over every listed data set that has a column of this name.
                    "CrossDataset": "ALL_DATASETS",
                    "Status": "ENABLED",
                }
            )
            controls.append(control)
        return self.filter_groups, controls


def _label_tooltip(dataset: str, label: str, value_field_id: str) -> dict:
    """A tooltip listing the label column's value for the point (UNIQUE_VALUE; '*' when a point
    has several), then the value field. A column tooltip item need not be in a field well."""
    return {
        "TooltipVisibility": "VISIBLE",
        "SelectedTooltipType": "DETAILED",
        "FieldBasedTooltip": {
            "AggregationVisibility": "HIDDEN",
            "TooltipTitleType": "NONE",
            "TooltipFields": [
                {
                    "ColumnTooltipItem": {
                        "Column": _ident(dataset, label),
                        "Visibility": "VISIBLE",
                        "Aggregation": {
                            "AttributeAggregationFunction": {
                                "SimpleAttributeAggregation": "UNIQUE_VALUE"
                            }
                        },
                    }
                },
                {"FieldTooltipItem": {"FieldId": value_field_id, "Visibility": "VISIBLE"}},
            ],
        },
    }


def _measure_tooltip(dataset: str, measures: Sequence[Measure], value_field_id: str) -> dict:
    """A tooltip listing the value field, then each extra measure as a column aggregated the
    spec's way (sum, max or min), labelled as the spec says; a column tooltip item need not be in
    a field well."""
    items = [{"FieldTooltipItem": {"FieldId": value_field_id, "Visibility": "VISIBLE"}}]
    for measure in measures:
        kind = measure.kind
        if kind not in SIMPLE_AGGREGATIONS:
            raise DefinitionError(f"tooltip {measure.key}: only sum, max or min can be compiled")
        item: dict[str, Any] = {
            "Column": _ident(dataset, measure.columns[0]),
            "Visibility": "VISIBLE",
            "Aggregation": {
                "NumericalAggregationFunction": {
                    "SimpleNumericalAggregation": SIMPLE_AGGREGATIONS[kind]
                }
            },
        }
        if measure.label:
            item["Label"] = measure.label
        items.append({"ColumnTooltipItem": item})
    return {
        "TooltipVisibility": "VISIBLE",
        "SelectedTooltipType": "DETAILED",
        "FieldBasedTooltip": {
            "AggregationVisibility": "HIDDEN",
            "TooltipTitleType": "PRIMARY_VALUE",
            "TooltipFields": items,
        },
    }


def _scope(visual_ids: list[str] | None) -> dict:
    scoping: dict[str, Any] = {"SheetId": SHEET_ID, "Scope": "ALL_VISUALS"}
    if visual_ids is not None:
        scoping = {"SheetId": SHEET_ID, "Scope": "SELECTED_VISUALS", "VisualIds": visual_ids}
    return {"SelectedSheets": {"SheetVisualScopingConfigurations": [scoping]}}


def _layout(spec: Spec, title_box: str) -> dict:
    title_span = GRID_COLUMNS - (CLOCK_COLUMN_SPAN if spec.clock else 0)
    elements = [
        {
            "ElementId": title_box,
            "ElementType": "TEXT_BOX",
            "ColumnIndex": 0,
            "ColumnSpan": title_span,
            "RowIndex": 0,
            "RowSpan": TITLE_ROW_SPAN,
        }
    ]
    if spec.clock:
        elements.append(
            {
                "ElementId": CLOCK_VISUAL,
                "ElementType": "VISUAL",
                "ColumnIndex": title_span,
                "ColumnSpan": CLOCK_COLUMN_SPAN,
                "RowIndex": 0,
                "RowSpan": TITLE_ROW_SPAN,
            }
        )
    row_index = TITLE_ROW_SPAN
    for row in spec.layout:
        kinds = {spec.visuals[name].type for name in row}
        row_span = KPI_ROW_SPAN if kinds == {VisualType.KPI} else CHART_ROW_SPAN
        column_index = 0
        for name in row:
            width = spec.visuals[name].width
            span = (width if width is not None else 12 // len(row)) * GRID_COLUMNS // 12
            if column_index + span > GRID_COLUMNS:
                raise DefinitionError(f"layout row {row}: wider than 12 twelfths")
            elements.append(
                {
                    "ElementId": name,
                    "ElementType": "VISUAL",
                    "ColumnIndex": column_index,
                    "ColumnSpan": span,
                    "RowIndex": row_index,
                    "RowSpan": row_span,
                }
            )
            column_index += span
        row_index += row_span
    return {"Configuration": {"GridLayout": {"Elements": elements}}}


def _control_layout(controls: list[dict]) -> dict:
    elements = [
        {
            "ElementId": next(iter(c.values()))["FilterControlId"],
            "ElementType": "FILTER_CONTROL",
            "ColumnSpan": 2,
            "RowSpan": 1,
        }
        for c in controls
    ]
    return {"Configuration": {"GridLayout": {"Elements": elements}}}


def _geo_columns(dataset: Dataset) -> list[str]:
    """Columns with a geographic role, coarse to fine (the hierarchy order QuickSight expects)."""
    geo = dataset.geo
    return sorted(geo, key=lambda column: GEO_ORDER.index(geo[column]))


def _geo_groups(name: str, dataset: Dataset) -> list[tuple[str, list[str], bool]]:
    """(group name, columns, is a place-name hierarchy) per geospatial column group: place names
    (country ... postcode) form one US hierarchy, latitude/longitude a coordinate group. A column
    belongs to one group only."""
    geo = dataset.geo
    places = [c for c in _geo_columns(dataset) if geo[c] not in COORDINATES]
    points = [c for c in _geo_columns(dataset) if geo[c] in COORDINATES]
    groups = [(f"{name}_geo", places, True)] if places else []
    if points:
        groups.append((f"{name}_{'coordinates' if places else 'geo'}", points, False))
    return groups


def _clock_datasets(spec: Spec) -> set[str]:
    return {spec.clock.dataset} if spec.clock else set()


def _required(value: T | None) -> T:
    """A visual's entry its type needs (dashboard_spec.parse checked it is there)."""
    assert value is not None
    return value


def template_definition(spec: Spec) -> dict:
    """The TemplateVersionDefinition (CreateTemplate/UpdateTemplate `Definition`) for the spec."""
    compiler = _Compiler(spec)
    visuals = [compiler.visual(name, v) for name, v in spec.visuals.items()]
    if spec.clock:
        if CLOCK_VISUAL in spec.visuals:
            raise DefinitionError(f"visual id {CLOCK_VISUAL!r} is taken by the spec's clock")
        visuals.append(compiler.clock())
    filter_groups, controls = compiler.filters()
    title_box = "title"
    text = escape(spec.title) + (f"<br/>{escape(spec.subtitle)}" if spec.subtitle else "")
    sheet = {
        "SheetId": SHEET_ID,
        "Name": "Overview",
        "Visuals": visuals,
        "TextBoxes": [{"SheetTextBoxId": title_box, "Content": f"<text-box>{text}</text-box>"}],
        "FilterControls": controls,
        "Layouts": [_layout(spec, title_box)],
        "ContentType": "INTERACTIVE",
    }
    if controls:
        sheet["SheetControlLayouts"] = [_control_layout(controls)]
    used = sorted(set(spec.used_datasets()) | _clock_datasets(spec))
    configurations = []
    for name in used:
        dataset = spec.datasets[name]
        geo = dataset.geo
        columns = []
        for column, kind in dataset.columns.items():
            schema = {"Name": column, "DataType": INPUT_TYPES[kind]}
            if column in geo:
                schema["GeographicRole"] = geo[column].upper()
            columns.append(schema)
        configuration: dict[str, Any] = {
            "Placeholder": name,
            "DataSetSchema": {"ColumnSchemaList": columns},
        }
        if geo:
            configuration["ColumnGroupSchemaList"] = [
                {"Name": group, "ColumnGroupColumnSchemaList": [{"Name": c} for c in members]}
                for group, members, _ in _geo_groups(name, dataset)
            ]
        configurations.append(configuration)
    calculated = [
        {"DataSetIdentifier": ds, "Name": name, "Expression": expression}
        for (ds, name), expression in sorted(compiler.calculated.items())
    ]
    return {
        "DataSetConfigurations": configurations,
        "Sheets": [sheet],
        "CalculatedFields": calculated,
        "FilterGroups": filter_groups,
        "Options": {"Timezone": TIMEZONE},
    }


def data_set_tables(name: str, spec: Spec, data_source_arn: str, schema: str) -> dict:
    """PhysicalTableMap, LogicalTableMap (and ColumnGroups for geo roles) of one data set."""
    dataset = spec.datasets[name]
    table_id = name.replace("_", "-")
    physical = {
        table_id: {
            "RelationalTable": {
                "DataSourceArn": data_source_arn,
                "Schema": schema,
                "Name": dataset.view,
                "InputColumns": [
                    {"Name": column, "Type": INPUT_TYPES[kind]}
                    for column, kind in dataset.columns.items()
                ],
            }
        }
    }
    logical: dict = {"Alias": dataset.view, "Source": {"PhysicalTableId": table_id}}
    geo = dataset.geo
    if geo:
        logical["DataTransforms"] = [
            {
                "TagColumnOperation": {
                    "ColumnName": column,
                    "Tags": [{"ColumnGeographicRole": geo[column].upper()}],
                }
            }
            for column in _geo_columns(dataset)
        ]
    tables: dict[str, Any] = {"PhysicalTableMap": physical, "LogicalTableMap": {table_id: logical}}
    if geo:
        # Place names are geocoded as US places; coordinates need no country.
        tables["ColumnGroups"] = [
            {
                "GeoSpatialColumnGroup": {
                    "Name": group,
                    **({"CountryCode": "US"} if places else {}),
                    "Columns": members,
                }
            }
            for group, members, places in _geo_groups(name, dataset)
        ]
    return tables
