"""Turn a visual of the dashboard spec into one parameterized SQL query against its view.

Nothing here knows a view or a column by name: the dataset, the filters and the measures in
quicksight/dashboard.yaml say what to read. Identifiers are composed with psycopg.sql (quoted),
values travel as parameters.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from psycopg import sql

from flu_monitor.dashboard_spec import FilterType, Measure, MeasureKind, Spec

_AGGREGATE_SQL = {
    MeasureKind.SUM: "SUM({})",
    MeasureKind.MAX: "MAX({})",
    MeasureKind.MIN: "MIN({})",
    MeasureKind.COUNT_DISTINCT: "COUNT(DISTINCT {})",
}


def measure_sql(measure: Measure) -> sql.Composable:
    """The SQL expression of a measure; a ratio is recomputed from summed counts, never averaged."""
    columns = [sql.Identifier(c) for c in measure.columns]
    if measure.kind is MeasureKind.RATIO:
        scale = "100.0 * " if measure.percent else "1.0 * "
        return sql.SQL(scale + "SUM({}) / NULLIF(SUM({}), 0)").format(*columns)
    return sql.SQL(_AGGREGATE_SQL[measure.kind]).format(columns[0])


def measure_label(measure: Measure) -> str:
    """Heading of a measure: its `label`, else its column(s) in words."""
    if measure.label is not None:
        return measure.label
    columns = measure.columns
    if measure.kind is MeasureKind.RATIO:
        return f"{column_label(columns[0])} / {column_label(columns[1])}"
    return column_label(columns[0])


def column_label(column: str) -> str:
    """`county_fips` -> `County FIPS`: column names read as headings."""
    words = [w.upper() if w in {"fips", "id"} or w[1:].isdigit() else w for w in column.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Query:
    text: sql.Composable
    params: tuple


def filter_clause(spec: Spec, dataset: str, values: dict) -> tuple[sql.Composable, list]:
    """WHERE clause of the spec filters that apply to `dataset`, given resolved filter values.

    values: {filter id: list of selected values (multi_select) | (start, end) dates (date_range)}.
    A multi_select with nothing chosen selects nothing, as in QuickSight.
    """
    conditions: list[sql.Composable] = []
    params: list = []
    for f in spec.filters:
        if dataset not in f.datasets or f.id not in values:
            continue
        column = sql.Identifier(f.column)
        value = values[f.id]
        if f.type is FilterType.MULTI_SELECT:
            conditions.append(sql.SQL("{} = ANY(%s)").format(column))
            params.append(list(value))
        else:
            conditions.append(sql.SQL("{} BETWEEN %s AND %s").format(column))
            params.extend(value)
    if not conditions:
        return sql.SQL(""), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions), params


def build(spec: Spec, name: str, values: dict) -> Query:
    """SELECT dimensions, measures FROM view [WHERE filters] GROUP BY dimensions [ORDER, LIMIT]."""
    visual = spec.visuals[name]
    view = spec.datasets[visual.dataset].view
    dimensions: list[sql.Composable] = [sql.Identifier(c) for c in visual.dimensions]
    measures = [measure_sql(m) for m in visual.measures]
    where, params = filter_clause(spec, visual.dataset, values)
    query: sql.Composable = sql.SQL("SELECT {} FROM {}{}").format(
        sql.SQL(", ").join(dimensions + measures), sql.Identifier(view), where
    )
    if dimensions:
        query += sql.SQL(" GROUP BY {}").format(sql.SQL(", ").join(dimensions))
    if visual.sort:
        direction = "DESC" if visual.sort.descending else "ASC"
        query += sql.SQL(" ORDER BY {} {} NULLS LAST").format(
            measure_sql(visual.sort.measure), sql.SQL(direction)
        )
        # Ties in the sort measure keep a stable order between refreshes.
        query += (
            sql.SQL(", {}").format(sql.SQL(", ").join(dimensions)) if dimensions else sql.SQL("")
        )
    elif dimensions:
        query += sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(dimensions))
    if visual.limit is not None:
        query += sql.SQL(" LIMIT %s")
        params.append(visual.limit)
    return Query(query, tuple(params))


def latest_day_query(spec: Spec, filter_id: str) -> sql.Composable:
    """Latest day with data over every dataset a date_range filter applies to."""
    f = next(f for f in spec.filters if f.id == filter_id)
    views = sorted({spec.datasets[d].view for d in f.datasets})
    parts = [
        sql.SQL("SELECT MAX({}) AS d FROM {}").format(sql.Identifier(f.column), sql.Identifier(v))
        for v in views
    ]
    return sql.SQL("SELECT MAX(d) FROM ({}) AS latest").format(sql.SQL(" UNION ALL ").join(parts))


def clock_query(spec: Spec) -> sql.Composable:
    """The data's clock (spec `clock`): the latest value of its column, whatever the filters."""
    clock = spec.clock
    assert clock is not None, "the spec has no clock"
    view = spec.datasets[clock.dataset].view
    return sql.SQL("SELECT MAX({}) FROM {}").format(
        sql.Identifier(clock.column), sql.Identifier(view)
    )


def typed_values(spec: Spec, resolved: dict) -> dict:
    """Filter values as stored in the page (JSON: ISO date strings) -> query parameters; only
    the spec's filters, each well formed (ValueError otherwise: the page was tampered with)."""
    values: dict[str, Any] = {}
    for f in spec.filters:
        if f.id not in resolved:
            continue
        value = resolved[f.id]
        if f.type is FilterType.DATE_RANGE:
            start, end = (parse_day(d) for d in value)
            if start is None or end is None:
                raise ValueError(f"{f.label}: not a date range: {value!r}")
            values[f.id] = (start, end)
        else:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{f.label}: not a list of values: {value!r}")
            values[f.id] = value
    return values


def parse_day(value: object) -> date | None:
    """A day from what a date picker sends ('YYYY-MM-DD', maybe with a time); None otherwise."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def clean_filters(spec: Spec, raw: dict) -> tuple[dict, list[str]]:
    """The filter values a page sent, cleaned: (usable values, a message per value dropped).
    A multi_select keeps the listed values it knows; a date that is not a date means 'default';
    a range whose start is after its end is turned round."""
    cleaned: dict[str, Any] = {}
    problems: list[str] = []
    for f in spec.filters:
        value = raw.get(f.id)
        if f.type is FilterType.MULTI_SELECT:
            chosen = value if isinstance(value, list) else []
            listed = None if f.values is None else list(f.values)
            known = [
                v
                for v in chosen
                if isinstance(v, str) and v in (listed if listed is not None else [v])
            ]
            if len(known) != len(chosen) or not (value is None or isinstance(value, list)):
                problems.append(f"{f.label}: ignored values not in {listed}")
            cleaned[f.id] = known
            continue
        start, end = value if isinstance(value, list | tuple) and len(value) == 2 else (None, None)
        days = [parse_day(d) for d in (start, end)]
        for given, day in zip((start, end), days, strict=True):
            if given is not None and day is None:
                problems.append(f"{f.label}: {str(given)[:40]!r} is not a date (YYYY-MM-DD)")
        if days[0] and days[1] and days[0] > days[1]:
            problems.append(f"{f.label}: the start was after the end; turned round")
            days.reverse()
        cleaned[f.id] = tuple(days)
    return cleaned, problems


def default_range(latest: date | None, last_days: int) -> tuple[date, date] | None:
    """The rolling window of a date_range filter: `last_days` days ending on the latest day."""
    if latest is None:
        return None
    return latest - timedelta(days=last_days - 1), latest
