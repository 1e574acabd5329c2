"""The dashboard's callbacks over HTTP, as the browser calls them (POST /_dash-update-component),
on a real database: bad values answer 200 with a message and an empty panel, never a 500; and
the figures say what they show (the clock and its zone, the partial day, vaccination by age)."""

import datetime as dt
import json

import pytest

from flu_monitor import dashboard_spec
from tests.fixtures.postgres import worker_unique
from tests.warehouse.conftest import applied_copy, event, ingest

# One xdist worker runs the dashboard's tests (test_dashboard_queries.py): only it imports dash.
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("dashboard")]
SPEC = dashboard_spec.load()
DATABASE = worker_unique("dashboard_callbacks")
RESOLVE = "..resolved-filters.data...updated.children...filter-dates-resolved.children.."


@pytest.fixture(scope="module")
def dashboard(postgres_copies):
    """A dashboard on a database holding three days, the last one up to 10:30 UTC."""
    url = applied_copy(postgres_copies, DATABASE)
    events = []
    for day, hours in ((1, 24), (2, 24), (3, 11)):
        for hour in range(hours):
            for band_age, vaccinated in ((8, "vaccinated"), (70, "unvaccinated")):
                events.append(
                    event(
                        event_time=f"2026-11-0{day}T{hour:02d}:30:00Z",
                        age=band_age,
                        vaccination_status=vaccinated,
                        admitted=hour % 3 == 0,
                        n=f"{day}-{hour}-{band_age}",
                    )
                )
    ingest(url, events)
    from flu_monitor.dashboard.app import create_app

    app = create_app(url)
    return app.server.test_client()


def call(client, output: str, inputs: list[tuple[str, str, object]]):
    body = {
        "output": output,
        "outputs": _outputs(output),
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "changedPropIds": [f"{i}.{p}" for i, p, _ in inputs],
        "state": [],
    }
    response = client.post("/_dash-update-component", json=body)
    return response.status_code, json.loads(response.data or b"null")


def _outputs(output: str):
    if output.startswith(".."):
        parts = [p for p in output.strip(".").split("...")]
        return [dict(zip(("id", "property"), p.rsplit(".", 1), strict=True)) for p in parts]
    component, prop = output.rsplit(".", 1)
    return {"id": component, "property": prop}


def resolve(client, states, start, end):
    inputs = [
        ("filter-state", "value", states),
        ("filter-dates", "start_date", start),
        ("filter-dates", "end_date", end),
        ("refresh", "n_intervals", 1),
    ]
    return call(client, RESOLVE, inputs)


def visual(client, name, store):
    return call(client, f"visual-{name}.children", [("resolved-filters", "data", store)])


def text_of(component) -> str:
    """All the text in a rendered component tree (JSON as Dash sends it)."""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list):
        return " ".join(text_of(c) for c in component)
    if isinstance(component, dict):
        return text_of(component.get("props", {}).get("children", ""))
    return ""


def test_the_header_states_the_clock_and_its_time_zone(dashboard):
    status, body = resolve(dashboard, ["NY", "NJ", "PA"], None, None)
    assert status == 200
    store = body["response"]["resolved-filters"]["data"]
    assert store["_clock"] == "2026-11-03T10:30:00"
    assert store["dates"] == ["2026-09-05", "2026-11-03"]  # 60 days ending on the latest day
    header = text_of(body["response"]["updated"]["children"])
    assert "Data through 2026-11-03 10:30 UTC (the simulated clock" in header
    assert "report days are UTC dates, 2026-11-03 is still filling" in header


BAD_FILTERS = [
    (["NY", "XX", 3, None], "2026-11-01", "2026-11-03", "State: ignored values"),
    ("NY", None, None, "State: ignored values"),
    (["NY"], "not a date", None, "'not a date' is not a date"),
    (["NY"], "2026-02-30", "2026-11-03", "'2026-02-30' is not a date"),
    (["NY"], {"$gt": 1}, [1], "is not a date"),
    (["NY"], "2026-11-03", "2026-11-01", "the start was after the end; turned round"),
]


@pytest.mark.parametrize(("states", "start", "end", "message"), BAD_FILTERS)
def test_bad_filter_values_are_dropped_with_a_message(dashboard, states, start, end, message):
    status, body = resolve(dashboard, states, start, end)
    assert status == 200
    header = text_of(body["response"]["updated"]["children"])
    assert message in header, header
    store = body["response"]["resolved-filters"]["data"]
    assert set(store["state"]) <= {"NY", "NJ", "PA"}
    status, body = visual(dashboard, "daily_cases_by_state", store)
    assert status == 200 and "visual-error" not in json.dumps(body)  # still drawn


TAMPERED_STORES = [
    {"state": "NY"},
    {"state": [["NY"]]},
    {"dates": ["2026-11-01"]},
    {"dates": ["yesterday", "today"]},
    {"dates": None},
    {"_clock": "half past ten"},
    ["not", "a", "dict"],
    None,
]


@pytest.mark.parametrize("store", TAMPERED_STORES, ids=[json.dumps(s) for s in TAMPERED_STORES])
@pytest.mark.parametrize("name", ["cases_today", "daily_cases_by_state", "top_facilities_table"])
def test_a_tampered_store_shows_an_empty_panel_and_why(dashboard, name, store):
    status, body = visual(dashboard, name, store)
    assert status == 200, body
    panel = body["response"][f"visual-{name}"]["children"]
    if not isinstance(store, dict) or "_clock" in store:
        assert "visual-error" not in json.dumps(panel)  # ignored: drawn without filters/clock
        return
    assert panel["props"]["className"] == "visual-error"
    assert text_of(panel).startswith("Cannot draw this with the values given:")


def test_the_partial_day_is_drawn_apart_from_the_trend(dashboard):
    from flu_monitor.dashboard.figures import PARTIAL_DAY

    _, body = resolve(dashboard, ["NY", "NJ", "PA"], None, None)
    store = body["response"]["resolved-filters"]["data"]
    _, body = visual(dashboard, "daily_cases_by_state", store)
    figure = body["response"]["visual-daily_cases_by_state"]["children"]["props"]["figure"]
    traces = figure["data"]
    whole = [t for t in traces if t.get("legendgroup") != PARTIAL_DAY]
    partial = [t for t in traces if t.get("legendgroup") == PARTIAL_DAY]
    assert [t["x"] for t in whole] == [["2026-11-01", "2026-11-02"]]  # the trend ends at day 2
    assert [(t["x"], t["y"], t["mode"]) for t in partial] == [(["2026-11-03"], [22], "markers")]
    assert partial[0]["name"] == "2026-11-03 so far (partial day, to 10:30 UTC)"
    assert whole[0]["y"] == [48, 48]  # 22 so far is a marker apart, not a fall from 48


def test_vaccination_is_shown_within_age_bands_beside_the_crude_rates(dashboard):
    _, body = resolve(dashboard, ["NY", "NJ", "PA"], None, None)
    store = body["response"]["resolved-filters"]["data"]
    _, body = visual(dashboard, "vaccination_by_age", store)
    figure = body["response"]["visual-vaccination_by_age"]["children"]["props"]["figure"]
    by_status = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in figure["data"]}
    # every event of the 5-17 band is vaccinated, every one of 65+ unvaccinated (fixture)
    assert set(by_status) == {"vaccinated", "unvaccinated"}
    assert by_status["vaccinated"]["5-17"] == pytest.approx(100 * 20 / 59)
    assert by_status["vaccinated"]["65+"] is None
    assert by_status["unvaccinated"]["65+"] == pytest.approx(100 * 20 / 59)


def test_every_note_of_the_spec_is_on_the_page(dashboard):
    page = dashboard.get("/").data.decode()
    assert page  # the layout is served as JSON by Dash
    layout = json.dumps(json.loads(dashboard.get("/_dash-layout").data))
    for name, v in SPEC.visuals.items():
        if v.note:
            assert v.note in layout, name


def test_clock_follows_new_data(dashboard, postgres_server):
    url = postgres_server.url_for(DATABASE)
    ingest(url, [event(event_time="2026-11-03T11:45:00Z", n="late")], first_offset=1000)
    _, body = resolve(dashboard, ["NY"], None, None)
    assert (
        body["response"]["resolved-filters"]["data"]["_clock"]
        == dt.datetime(2026, 11, 3, 11, 45).isoformat()
    )
