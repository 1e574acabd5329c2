"""One generic renderer per visual type of the dashboard spec: rows in, figure or component out.

Rows arrive as `queries.build` returns them: the visual's dimension columns, then its measures.
Titles, orders and formats all come from the spec. Maps use the county boundaries shipped in
data/counties.geojson on a geo subplot with every base layer off, so nothing is fetched from the
web (the one topojson request plotly.js still makes is answered by the dashboard itself, see app).
"""

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html
from plotly.colors import sample_colorscale

from flu_monitor.dashboard.queries import column_label, measure_label
from flu_monitor.dashboard_spec import Measure, MeasureKind, Visual, VisualType
from flu_monitor.paths import DATA_DIR

# Where plotly.js fetches base-layer topojson from: the dashboard's own server (see app).
TOPOJSON_PATH = "/topojson/"
# Colours: a qualitative palette for series, a sequential scale for rates and sizes.
SERIES_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
RATE_SCALE = "YlOrRd"
DIVERGING_SCALE = "RdBu_r"  # blue below the middle, white at it, red above
_BASE_LAYOUT = dict(
    margin=dict(l=48, r=16, t=8, b=40),
    height=300,
    paper_bgcolor="white",
    plot_bgcolor="white",
    font=dict(family="system-ui, sans-serif", size=12),
    legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    # Keep zoom and legend choices across the periodic refresh.
    uirevision="keep",
)


@cache
def counties_geojson() -> dict:
    """The shipped county boundaries, rings wound the way plotly's d3-geo expects."""
    with open(DATA_DIR / "counties.geojson", encoding="utf-8") as f:
        geojson = json.load(f)
    for feature in geojson["features"]:
        geometry = feature["geometry"]
        polygons = [geometry["coordinates"]]
        if geometry["type"] == "MultiPolygon":
            polygons = geometry["coordinates"]
        for polygon in polygons:
            for i, ring in enumerate(polygon):
                # d3-geo is spherical: an exterior ring must run clockwise, a hole anticlockwise
                # (the reverse of RFC 7946), or it draws the rest of the world instead.
                if (_signed_area(ring) > 0) == (i == 0):
                    ring.reverse()
    return geojson


def _signed_area(ring: list) -> float:
    """Shoelace area in lon/lat: positive when the ring runs anticlockwise."""
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False)) / 2


def plain(value):
    """Database values as JSON-friendly numbers (Decimal -> float)."""
    return float(value) if isinstance(value, Decimal) else value


def format_value(value: Any, measure: Measure) -> str:
    """How a measure's value reads on the page: thousands separators, decimals, percent sign."""
    if value is None:
        return "–"
    decimals = measure.decimals or 0
    text = f"{float(value):,.{decimals}f}"
    return f"{text} %" if measure.percent else text


def rounded(value: Any, measure: Measure) -> float | int | None:
    """The value shown, as a number (what tests compare against SQL)."""
    if value is None:
        return None
    decimals = measure.decimals or 0
    return round(float(value), decimals) if decimals else round(float(value))


def _ordered(values: Sequence, order: Sequence[str] | None) -> list:
    """Distinct values in the spec's order first, then any others sorted."""
    present = list(dict.fromkeys(values))
    order = [str(o) for o in order or []]
    return [o for o in order if o in present] + sorted(v for v in present if v not in order)


def data_attributes(**attributes: str) -> dict[str, Any]:
    """HTML data-* attributes for a Dash component (which takes them as keyword arguments)."""
    return {f"data-{name}": value for name, value in attributes.items()}


def _layout(fig: go.Figure, **extra: Any) -> go.Figure:
    fig.update_layout(**{**_BASE_LAYOUT, **extra})
    return fig


def kpi(name: str, visual: Visual, rows: list) -> html.Div:
    measure = visual.value
    assert measure is not None  # a kpi has a value (dashboard_spec.parse)
    value = rows[0][0] if rows else None
    return html.Div(
        [
            html.Div(visual.title, className="kpi-title"),
            html.Div(
                format_value(value, measure),
                className="kpi-value",
                id=f"kpi-{name}",
                **data_attributes(value="" if value is None else str(rounded(value, measure))),
            ),
        ],
        className="kpi",
    )


PARTIAL_DAY = "partial day"


def line(visual: Visual, rows: list, clock: datetime | None = None) -> go.Figure:
    """One line per series. With `partial_latest_day`, the day the clock is in (still filling)
    is not part of the line: a hollow marker apart, named as the partial day with the clock's
    time, so a half-counted day never reads as a drop."""
    fig = go.Figure()
    (measure,) = visual.y
    has_colour = bool(visual.color)
    series = _ordered([r[1] for r in rows], visual.color_order) if has_colour else [None]
    partial = clock.date() if clock is not None and visual.partial_latest_day else None
    for i, name in enumerate(series):
        points = [r for r in rows if not has_colour or r[1] == name]
        whole = [r for r in points if r[0] != partial]
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        fig.add_scatter(
            x=[r[0] for r in whole],
            y=[plain(r[-1]) for r in whole],
            mode="lines",
            name=name or measure_label(measure),
            line=dict(color=colour, width=2),
        )
        latest = [r for r in points if r[0] == partial]
        if latest:
            fig.add_scatter(
                x=[r[0] for r in latest],
                y=[plain(r[-1]) for r in latest],
                mode="markers",
                name=f"{partial} so far ({PARTIAL_DAY}, to {clock:%H:%M} UTC)",
                legendgroup=PARTIAL_DAY,
                legendrank=2000,  # after the series
                showlegend=i == 0,
                marker=dict(symbol="circle-open", size=9, color=colour, line=dict(width=2)),
                hovertemplate=f"%{{y}} so far ({PARTIAL_DAY})<extra>{name or ''}</extra>",
            )
    return _layout(fig, yaxis_title=axis_title(measure), hovermode="x unified")


def bar(visual: Visual, rows: list) -> go.Figure:
    """bar: one measure; stacked_bar: one measure split by colour; grouped_bar: several measures."""
    measures = visual.measures
    categories = _ordered([r[0] for r in rows], visual.order)
    fig = go.Figure()
    traces: list[tuple[str, list]]
    if visual.color:
        by_colour = {(r[0], r[1]): r[2] for r in rows}
        colours = _ordered([r[1] for r in rows], visual.color_order)
        traces = [(c, [by_colour.get((x, c)) for x in categories]) for c in colours]
    else:
        cells = {r[0]: r[1:] for r in rows}
        traces = [
            (measure_label(m), [cells.get(x, [None] * len(measures))[i] for x in categories])
            for i, m in enumerate(measures)
        ]
    ordered = visual.color_order is not None and visual.palette != "categorical"
    colours = _colours(len(traces), ordered=ordered)
    for i, (name, values) in enumerate(traces):
        measure = measures[0] if visual.color else measures[i]
        fig.add_bar(
            x=categories,
            y=[plain(v) for v in values],
            name=name,
            marker_color=colours[i],
            text=[format_value(v, measure) if v is not None else "" for v in values],
            textposition="auto",
        )
    barmode = "stack" if visual.type is VisualType.STACKED_BAR else "group"
    return _layout(
        fig,
        barmode=barmode,
        showlegend=len(traces) > 1,
        xaxis=dict(type="category", title=column_label(visual.x or "")),
        yaxis_title=axis_title(measures[0]) if len(measures) == 1 else None,
    )


def _colours(count: int, ordered: bool) -> list[str]:
    """Series colours: a light-to-dark ramp when the categories have an order (e.g. severity)."""
    if ordered and count > 1:
        return sample_colorscale(RATE_SCALE, [0.25 + 0.7 * i / (count - 1) for i in range(count)])
    return [SERIES_COLOURS[i % len(SERIES_COLOURS)] for i in range(count)]


def axis_title(measure: Measure) -> str | None:
    """A ratio without a label is explained by the visual's title, not by its axis."""
    if measure.label is None and measure.kind is MeasureKind.RATIO:
        return None
    return measure_label(measure)


def _geo_layout(fig: go.Figure) -> go.Figure:
    # No base layers (land, coastlines, lakes...): the county polygons are the whole map.
    fig.update_geos(visible=False, fitbounds="locations", projection_type="mercator")
    return _layout(fig, margin=dict(l=0, r=0, t=0, b=0), height=340)


def _county_outlines(colour: str) -> go.Choropleth:
    geojson = counties_geojson()
    return go.Choropleth(
        geojson=geojson,
        locations=[f["id"] for f in geojson["features"]],
        z=[0] * len(geojson["features"]),
        colorscale=[[0, colour], [1, colour]],
        showscale=False,
        marker_line=dict(color="#9aa5b1", width=0.5),
        hoverinfo="skip",
    )


def county_map(visual: Visual, rows: list) -> go.Figure:
    """Rows: county FIPS, label, value, then the `tooltip` measures (shown in the hover). With a
    `range` the colours diverge from its low to its high end, white in the middle; else they
    rise from 0."""
    measure = visual.value
    assert measure is not None  # a county_map has a value (dashboard_spec.parse)
    tooltips = visual.tooltip
    hover = "%{text}<br>" + measure_label(measure) + ": %{customdata[0]}"
    for i, tip in enumerate(tooltips, 1):
        hover += f"<br>{measure_label(tip)}: %{{customdata[{i}]}}"
    scale = (
        dict(colorscale=DIVERGING_SCALE, zmin=visual.range[0], zmax=visual.range[1])
        if visual.range is not None
        else dict(colorscale=RATE_SCALE, zmin=0)
    )
    fig = go.Figure(_county_outlines("#f2f4f7"))  # counties without data stay visible
    fig.add_choropleth(
        geojson=counties_geojson(),
        locations=[r[0] for r in rows],
        z=[plain(r[2]) for r in rows],
        text=[r[1] for r in rows],
        customdata=[
            [format_value(v, m) for v, m in zip(r[2:], [measure, *tooltips], strict=True)]
            for r in rows
        ],
        hovertemplate=hover + "<extra></extra>",
        marker_line=dict(color="#6b7785", width=0.5),
        colorbar=dict(thickness=12, len=0.8, title=dict(text=visual.legend, side="right")),
        **scale,
    )
    return _geo_layout(fig)


def point_map(visual: Visual, rows: list) -> go.Figure:
    measure = visual.size
    assert measure is not None  # a point_map has a size (dashboard_spec.parse)
    sizes = [plain(r[-1]) or 0 for r in rows]
    biggest = max(sizes, default=0) or 1
    fig = go.Figure(_county_outlines("#f7f8fa"))
    fig.add_scattergeo(
        lat=[plain(r[1]) for r in rows],
        lon=[plain(r[2]) for r in rows],
        text=[r[0] for r in rows],
        customdata=[format_value(r[-1], measure) for r in rows],
        hovertemplate="%{text}<br>" + measure_label(measure) + ": %{customdata}<extra></extra>",
        marker=dict(
            size=[4 + 26 * (s / biggest) ** 0.5 for s in sizes],
            color=sizes,
            colorscale=RATE_SCALE,
            line=dict(color="#444", width=0.5),
            opacity=0.85,
        ),
    )
    return _geo_layout(fig)


def table(name: str, visual: Visual, rows: list) -> html.Table:
    """An HTML table; every cell carries data-column/data-value so tests read exact figures."""
    dimensions, measures = visual.dimensions, visual.measures
    headings = [html.Th(column_label(c)) for c in dimensions]
    headings += [html.Th(measure_label(m), className="num") for m in measures]
    keys = dimensions + [m.key for m in measures]
    body = []
    for row in rows:
        cells = [
            html.Td(str(v), **data_attributes(column=k, value=str(v)))
            for k, v in zip(keys, row[: len(dimensions)], strict=False)
        ]
        cells += [
            html.Td(
                format_value(v, m),
                className="num",
                **data_attributes(column=k, value="" if v is None else str(rounded(v, m))),
            )
            for k, v, m in zip(
                keys[len(dimensions) :], row[len(dimensions) :], measures, strict=True
            )
        ]
        body.append(html.Tr(cells))
    if not body:
        body = [html.Tr(html.Td("No rows", colSpan=len(headings), className="empty"))]
    return html.Table(
        [html.Thead(html.Tr(headings)), html.Tbody(body)],
        id=f"table-{name}",
        className="data-table",
        **data_attributes(rows=str(len(rows))),
    )


GRAPH_RENDERERS = {
    VisualType.BAR: bar,
    VisualType.STACKED_BAR: bar,
    VisualType.GROUPED_BAR: bar,
    VisualType.COUNTY_MAP: county_map,
    VisualType.POINT_MAP: point_map,
}


def render(name: str, visual: Visual, rows: list, clock: datetime | None = None) -> Any:
    """The page element of one visual: a component for kpi/table, a Graph for everything else.
    `clock` is the data's clock (the latest event stored), for charts that mark the partial day."""
    if visual.type is VisualType.KPI:
        return kpi(name, visual, rows)
    if visual.type is VisualType.TABLE:
        return table(name, visual, rows)
    if visual.type is VisualType.LINE:
        figure = line(visual, rows, clock)
    else:
        figure = GRAPH_RENDERERS[visual.type](visual, rows)
    return dcc.Graph(
        figure=figure,
        config={"displaylogo": False, "responsive": True, "topojsonURL": TOPOJSON_PATH},
        id=f"graph-{name}",
    )
