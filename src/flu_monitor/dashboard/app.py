"""The local dashboard: a Dash app drawn entirely from quicksight/dashboard.yaml.

The page is the spec's layout (rows of visuals, widths in twelfths), its filters and its refresh
period. One callback resolves the filters (the rolling date window follows the latest day with
data) into a store; one callback per visual queries its view and renders it. Every asset is
served by this process: Dash's own bundles, the CSS in assets/, and the empty topojson below.
"""

import logging
import threading
from datetime import datetime
from pathlib import Path

import psycopg
from dash import Dash, Input, Output, dcc, html

from flu_monitor import dashboard_spec
from flu_monitor.dashboard import figures, queries

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
        conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
        conn.execute("SET statement_timeout = '20s'")
        return conn

    def rows(self, query, params=()) -> list[tuple]:
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


def _filter_controls(spec: dict) -> list:
    controls = []
    for f in spec.get("filters", []):
        if f["type"] == "multi_select":
            control = dcc.Checklist(
                id=f"filter-{f['id']}",
                options=[{"label": v, "value": v} for v in f["values"]],
                value=list(f["values"]),
                inline=True,
                className="checklist",
            )
        else:
            days = f.get("default_last_days", 30)
            control = html.Div(
                [
                    dcc.DatePickerRange(
                        id=f"filter-{f['id']}",
                        clearable=True,
                        display_format="YYYY-MM-DD",
                        start_date_placeholder_text=f"last {days} days",
                        end_date_placeholder_text="latest day",
                    ),
                    html.Span(id=f"filter-{f['id']}-resolved", className="resolved"),
                ],
                className="date-filter",
            )
        controls.append(html.Label([html.Span(f["label"], className="filter-label"), control]))
    return controls


def _card(name: str, visual: dict) -> html.Section:
    children = [] if visual["type"] == "kpi" else [html.H2(visual["title"])]
    children.append(
        html.Div(
            html.Div("Loading…", className="placeholder"),
            id=f"visual-{name}",
            className="visual",
            **{"data-visual-type": visual["type"]},
        )
    )
    card_class = "card kpi-card" if visual["type"] == "kpi" else "card"
    return html.Section(
        children, className=card_class, style={"gridColumn": f"span {visual.get('width', 12)}"}
    )


def page(spec: dict) -> html.Div:
    return html.Div(
        [
            html.Header(
                [
                    html.Div(
                        [html.H1(spec["title"]), html.P(spec.get("subtitle", ""), className="sub")]
                    ),
                    html.Div(_filter_controls(spec), className="filters"),
                    html.Div(id="updated", className="updated"),
                ]
            ),
            html.Main(
                [
                    html.Div([_card(n, spec["visuals"][n]) for n in row], className="grid")
                    for row in spec["layout"]
                ]
            ),
            dcc.Store(id="resolved-filters"),
            dcc.Interval(id="refresh", interval=int(spec.get("refresh_seconds", 30)) * 1000),
        ],
        className="page",
    )


def resolve_filters(spec: dict, reader: Reader, raw: dict) -> dict:
    """Filter values the queries use: dates default to the rolling window ending on the latest day.

    raw: {filter id: selected list | (start, end) with None for 'default'}.
    """
    resolved = {}
    for f in spec.get("filters", []):
        value = raw.get(f["id"])
        if f["type"] == "multi_select":
            resolved[f["id"]] = list(value or [])
            continue
        start, end = value or (None, None)
        if start is None or end is None:
            latest = reader.rows(queries.latest_day_query(spec, f["id"]))[0][0]
            window = queries.default_range(latest, f.get("default_last_days", 30))
            if window is None:
                continue  # no data yet: leave the dates unfiltered
            start, end = start or window[0], end or window[1]
        resolved[f["id"]] = [str(start)[:10], str(end)[:10]]
    return resolved


def visual_element(spec: dict, reader: Reader, name: str, resolved: dict):
    """Query and render one visual; a failing query shows its error in place of the visual."""
    query = queries.build(spec, name, queries.typed_values(spec, resolved))
    try:
        rows = reader.rows(query.text, query.params)
    except psycopg.Error as exc:
        log.warning("visual %s: %s", name, exc)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return html.Div(f"Data not available: {message}", className="visual-error")
    return figures.render(name, spec["visuals"][name], rows)


def create_app(database_url: str, spec: dict | None = None) -> Dash:
    spec = spec or dashboard_spec.load()
    reader = Reader(database_url)
    app = Dash(
        __name__,
        title=spec["title"],
        update_title=None,
        serve_locally=True,
        assets_folder=str(Path(__file__).parent / "assets"),
    )
    app.layout = lambda: page(spec)  # a function: every page load starts from the spec defaults

    @app.server.route(figures.TOPOJSON_PATH + "<name>.json")
    def _topojson(name):
        return EMPTY_TOPOLOGY

    filters = spec.get("filters", [])
    inputs = []
    for f in filters:
        if f["type"] == "multi_select":
            inputs.append(Input(f"filter-{f['id']}", "value"))
        else:
            inputs += [
                Input(f"filter-{f['id']}", "start_date"),
                Input(f"filter-{f['id']}", "end_date"),
            ]
    range_outputs = [
        Output(f"filter-{f['id']}-resolved", "children")
        for f in filters
        if f["type"] == "date_range"
    ]

    @app.callback(
        [Output("resolved-filters", "data"), Output("updated", "children"), *range_outputs],
        [*inputs, Input("refresh", "n_intervals")],
    )
    def _resolve(*args):
        raw, position = {}, 0
        for f in filters:
            width = 1 if f["type"] == "multi_select" else 2
            chosen = args[position : position + width]
            raw[f["id"]] = chosen[0] if width == 1 else tuple(chosen)
            position += width
        now = datetime.now().strftime("%H:%M:%S")
        try:
            resolved = resolve_filters(spec, reader, raw)
            status = html.Span(f"Updated {now}", **{"data-status": "ok"})
        except psycopg.Error as exc:
            log.warning("filters: %s", exc)
            resolved = {f["id"]: raw[f["id"]] for f in filters if f["type"] == "multi_select"}
            status = html.Span(f"Database unavailable at {now}", **{"data-status": "error"})
        shown = [
            "–".join(resolved[f["id"]]) if f["id"] in resolved else "no data yet"
            for f in filters
            if f["type"] == "date_range"
        ]
        return [resolved, status, *shown]

    for name in spec["visuals"]:
        app.callback(Output(f"visual-{name}", "children"), Input("resolved-filters", "data"))(
            lambda resolved, name=name: visual_element(spec, reader, name, resolved or {})
        )

    return app
