"""The local dashboard: a Dash app drawn entirely from quicksight/dashboard.yaml.

The page is the spec's layout (rows of visuals, widths in twelfths), its filters and its refresh
period. One callback resolves the filters (the rolling date window follows the latest day with
data) and the data's clock (spec `clock`, shown in the header with its time zone) into a store;
one callback per visual queries its view and renders it. A value the page sends that makes no
sense (a crafted request, say) is dropped with a message; a visual that cannot be drawn shows an
empty panel and why, never an HTTP error. Every asset is served by this process: Dash's own
bundles, the CSS in assets/, and the empty topojson below.
"""

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from dash import Dash, Input, Output, dcc, html
from dash.development.base_component import Component

from flu_monitor import dashboard_spec, pgconnect
from flu_monitor.dashboard import figures, queries
from flu_monitor.dashboard_spec import FilterType, Spec, Visual, VisualType
from flu_monitor.messages import one_line

log = logging.getLogger(__name__)

# plotly.js asks for base-layer topojson (land, coastlines...) whenever a geo trace has a
# locationmode, even with every base layer hidden. Answer from here with an empty topology: the
# maps draw only the shipped county polygons, and no request leaves the machine.
EMPTY_TOPOLOGY = {"type": "Topology", "objects": {}, "arcs": []}


class Reader:
    """Runs dashboard queries on a few reused autocommit connections.

    The development server answers each request on a new thread, so connections are pooled, not
    per thread. Autocommit: every query sees the latest refresh and no reader holds a transaction
    open. A connection that failed is closed, not returned to the pool.
    """

    def __init__(self, database_url: str, keep: int = 4):
        self.database_url = database_url
        self.keep = keep
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def _take(self) -> psycopg.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = pgconnect.connect(self.database_url, 5, autocommit=True)
        conn.execute("SET statement_timeout = '20s'")
        return conn

    def rows(self, query: Any, params: Any = ()) -> list[tuple]:
        conn = self._take()
        try:
            result = conn.execute(query, params).fetchall()
        except psycopg.Error:
            conn.close()
            raise
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(conn)
                return result
        conn.close()
        return result


def _filter_controls(spec: Spec) -> list:
    controls = []
    for f in spec.filters:
        control: Any
        if f.type is FilterType.MULTI_SELECT:
            control = dcc.Checklist(
                id=f"filter-{f.id}",
                options=[{"label": v, "value": v} for v in f.values or ()],
                value=list(f.values or ()),
                inline=True,
                className="checklist",
            )
        else:
            days = f.default_last_days
            control = html.Div(
                [
                    dcc.DatePickerRange(
                        id=f"filter-{f.id}",
                        clearable=True,
                        display_format="YYYY-MM-DD",
                        start_date_placeholder_text=f"last {days} days",
                        end_date_placeholder_text="latest day",
                    ),
                    html.Span(id=f"filter-{f.id}-resolved", className="resolved"),
                ],
                className="date-filter",
            )
        controls.append(html.Label([html.Span(f.label, className="filter-label"), control]))
    return controls


def _card(name: str, visual: Visual) -> html.Section:
    children: list[Component] = [] if visual.type is VisualType.KPI else [html.H2(visual.title)]
    children.append(
        html.Div(
            html.Div("Loading…", className="placeholder"),
            id=f"visual-{name}",
            className="visual",
            **figures.data_attributes(**{"visual-type": str(visual.type)}),
        )
    )
    if visual.note:
        children.append(html.P(visual.note, className="note", id=f"note-{name}"))
    card_class = "card kpi-card" if visual.type is VisualType.KPI else "card"
    width = visual.width if visual.width is not None else 12
    return html.Section(children, className=card_class, style={"gridColumn": f"span {width}"})


def page(spec: Spec) -> html.Div:
    return html.Div(
        [
            html.Header(
                [
                    html.Div([html.H1(spec.title), html.P(spec.subtitle or "", className="sub")]),
                    html.Div(_filter_controls(spec), className="filters"),
                    html.Div(id="updated", className="updated"),
                ]
            ),
            html.Main(
                [
                    html.Div([_card(n, spec.visuals[n]) for n in row], className="grid")
                    for row in spec.layout
                ]
            ),
            dcc.Store(id="resolved-filters"),
            dcc.Interval(id="refresh", interval=spec.refresh_seconds * 1000),
        ],
        className="page",
    )


def resolve_filters(spec: Spec, reader: Reader, raw: dict) -> tuple[dict, list[str]]:
    """Filter values the queries use, and a message per value the page sent that was dropped.
    Dates default to the rolling window ending on the latest day.

    raw: {filter id: selected list | (start, end) with None for 'default'}.
    """
    cleaned, problems = queries.clean_filters(spec, raw)
    resolved: dict[str, Any] = {}
    for f in spec.filters:
        value = cleaned[f.id]
        if f.type is FilterType.MULTI_SELECT:
            resolved[f.id] = value
            continue
        start, end = value
        if start is None or end is None:
            latest = reader.rows(queries.latest_day_query(spec, f.id))[0][0]
            window = queries.default_range(latest, f.default_last_days)
            if window is None:
                continue  # no data yet: leave the dates unfiltered
            start, end = start or window[0], end or window[1]
            start, end = min(start, end), max(start, end)
        resolved[f.id] = [start.isoformat(), end.isoformat()]
    return resolved, problems


def clock_text(spec: Spec, clock: datetime | None) -> str:
    """The header's statement of the clock the figures follow."""
    spec_clock = spec.clock
    assert spec_clock is not None, "the spec has no clock"
    if clock is None:
        return f"{spec_clock.label}: no data yet"
    zone = spec_clock.timezone
    return (
        f"{spec_clock.label} {clock:%Y-%m-%d %H:%M} {zone} (the simulated clock; report days "
        f"are {zone} dates, {clock:%Y-%m-%d} is still filling)"
    )


def _parse_clock(value: object) -> datetime | None:
    """The clock the store carries; anything else means no clock (no partial day is marked)."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _message(text: str) -> html.Div:
    """An empty panel saying why it is empty."""
    return html.Div(text, className="visual-error", **figures.data_attributes(status="error"))


def visual_element(spec: Spec, reader: Reader, name: str, resolved: Any) -> Any:
    """Query and render one visual; whatever fails (the query, a value the page sent) shows as
    an empty panel with the reason, never as an error of the page."""
    try:
        resolved = resolved if isinstance(resolved, dict) else {}
        query = queries.build(spec, name, queries.typed_values(spec, resolved))
        rows = reader.rows(query.text, query.params)
        clock = _parse_clock(resolved.get("_clock"))
        return figures.render(name, spec.visuals[name], rows, clock=clock)
    except psycopg.Error as exc:
        log.warning("visual %s: %s", name, exc)
        return _message(f"Data not available: {one_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - a bad value must not become an HTTP 500
        log.warning("visual %s: %s: %s", name, type(exc).__name__, exc)
        return _message(f"Cannot draw this with the values given: {one_line(exc)}")


def create_app(database_url: str, spec: Spec | None = None) -> Dash:
    spec = spec or dashboard_spec.load()
    reader = Reader(database_url)
    app = Dash(
        __name__,
        title=spec.title,
        update_title="",  # the tab title stays put during callbacks ("" and None alike: dash.py)
        serve_locally=True,
        assets_folder=str(Path(__file__).parent / "assets"),
    )
    app.layout = lambda: page(spec)  # a function: every page load starts from the spec defaults

    @app.server.route(figures.TOPOJSON_PATH + "<name>.json")
    def _topojson(name: str) -> dict:
        return EMPTY_TOPOLOGY

    filters = spec.filters
    inputs = []
    for f in filters:
        if f.type is FilterType.MULTI_SELECT:
            inputs.append(Input(f"filter-{f.id}", "value"))
        else:
            inputs += [
                Input(f"filter-{f.id}", "start_date"),
                Input(f"filter-{f.id}", "end_date"),
            ]
    range_outputs = [
        Output(f"filter-{f.id}-resolved", "children")
        for f in filters
        if f.type is FilterType.DATE_RANGE
    ]

    @app.callback(
        [Output("resolved-filters", "data"), Output("updated", "children"), *range_outputs],
        [*inputs, Input("refresh", "n_intervals")],
    )
    def _resolve(*args: Any) -> list:
        raw: dict[str, Any] = {}
        position = 0
        for f in filters:
            width = 1 if f.type is FilterType.MULTI_SELECT else 2
            chosen = args[position : position + width]
            raw[f.id] = chosen[0] if width == 1 else tuple(chosen)
            position += width
        now = datetime.now(UTC).strftime("%H:%M:%S UTC")
        try:
            resolved, problems = resolve_filters(spec, reader, raw)
            clock = reader.rows(queries.clock_query(spec))[0][0] if spec.clock else None
            resolved["_clock"] = clock.isoformat() if clock else None
            text = clock_text(spec, clock) if spec.clock else ""
            parts: list[Component | str] = [html.Span(text, id="clock"), f" · page updated {now}"]
            parts += [html.Span(f" · {p}", className="problem") for p in problems]
            status = html.Span(
                parts,
                **figures.data_attributes(status="warning" if problems else "ok"),
                **figures.data_attributes(
                    **({"clock": resolved["_clock"]} if resolved["_clock"] else {})
                ),
            )
        except Exception as exc:  # noqa: BLE001 - the database, or values no one could send
            log.warning("filters: %s: %s", type(exc).__name__, exc)
            resolved, _ = queries.clean_filters(spec, raw)
            resolved = {f.id: resolved[f.id] for f in filters if f.type is FilterType.MULTI_SELECT}
            reason = "Database unavailable" if isinstance(exc, psycopg.Error) else one_line(exc)
            status = html.Span(f"{reason} at {now}", **figures.data_attributes(status="error"))
        shown = [
            "–".join(resolved[f.id]) if f.id in resolved else "no data yet"
            for f in filters
            if f.type is FilterType.DATE_RANGE
        ]
        return [resolved, status, *shown]

    for name in spec.visuals:
        app.callback(Output(f"visual-{name}", "children"), Input("resolved-filters", "data"))(
            lambda resolved, name=name: visual_element(spec, reader, name, resolved or {})
        )

    return app
