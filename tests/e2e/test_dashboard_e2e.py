"""End to end: `flu-monitor up` on the real broker and PostgreSQL, an outbreak planted in Tompkins
County, NY (scenarios/county_outbreak.yaml), and headless Chromium reading the dashboard.

The figures on the page must equal what SQL written here (independently of the dashboard's query
builder) returns, and the page must not request anything beyond 127.0.0.1.
"""

from decimal import Decimal, InvalidOperation
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import expect

from flu_monitor.paths import SCENARIO_DIR
from tests.e2e.conftest import UpProcess, alive, free_port, save_artifact
from tests.fixtures.postgres import worker_unique
from tests.local.conftest import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.browser]

OUTBREAK_FIPS = "36109"  # Tompkins County, NY: the county scenarios/county_outbreak.yaml plants

# Independent SQL for what the page shows (the spec's defaults: all states, the last 60 days).
KPI_SQL = {
    "cases_today": "SELECT SUM(cases_today) FROM v_dashboard_kpis",
    "admissions_today": "SELECT SUM(admissions_today) FROM v_dashboard_kpis",
    "hospitalization_rate": """
        SELECT ROUND(100.0 * SUM(admissions) / SUM(cases), 1) FROM mv_daily_state_cases
        WHERE day BETWEEN (SELECT MAX(day) - 59 FROM mv_daily_state_cases)
                      AND (SELECT MAX(day) FROM mv_daily_state_cases)""",
    "active_alerts": "SELECT COUNT(DISTINCT county_fips) FROM v_current_alerts",
}
ALERT_SQL = """
    SELECT county_name, state_code, county_fips, day::text, alert, ROUND(observed::numeric),
           ROUND(expected::numeric, 1), ROUND(ratio::numeric, 2), ROUND(statistic::numeric, 2),
           ROUND(strength::numeric, 2)
    FROM v_current_alerts WHERE county_fips = %s"""
ALERT_COLUMNS = [
    "county_name",
    "state_code",
    "county_fips",
    "day",
    "alert",
    "max_observed",
    "max_expected",
    "max_ratio",
    "max_statistic",
    "max_strength",
]


BAD_CALLBACK = """async () => {
  const response = await fetch('/_dash-update-component', {
    method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({
      output: 'visual-daily_cases_by_state.children',
      outputs: {id: 'visual-daily_cases_by_state', property: 'children'},
      inputs: [{id: 'resolved-filters', property: 'data',
                value: {state: ['NY'], dates: ['the day before', 'yesterday']}}],
      changedPropIds: ['resolved-filters.data'],
      state: [],
    }),
  });
  return [response.status, await response.text()];
}"""


def comparable(value):
    """A figure as a Decimal when it is a number (page attributes are text), else as text."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return str(value)


def sql_figures(database_url: str) -> dict:
    with psycopg.connect(database_url, autocommit=True) as conn:
        kpis = {k: conn.execute(q).fetchone()[0] for k, q in KPI_SQL.items()}
        alert = conn.execute(ALERT_SQL, (OUTBREAK_FIPS,)).fetchone()
    return {"kpis": kpis, "alert": alert}


def page_figures(page) -> dict:
    kpis = {k: page.get_attribute(f"#kpi-{k}", "data-value") for k in KPI_SQL}
    row = page.locator(
        f'#table-current_alerts tr:has(td[data-column="county_fips"][data-value="{OUTBREAK_FIPS}"])'
    )
    alert = [
        row.locator(f'td[data-column="{c}"]').get_attribute("data-value") for c in ALERT_COLUMNS
    ]
    return {"kpis": kpis, "alert": alert}


def same(page_values: dict, sql_values: dict) -> bool:
    page = [page_values["kpis"][k] for k in KPI_SQL] + list(page_values["alert"])
    sql = [sql_values["kpis"][k] for k in KPI_SQL] + list(sql_values["alert"] or [])
    return [comparable(v) for v in page] == [comparable(v) for v in sql]


def test_planted_outbreak_reaches_the_dashboard(
    kafka_broker, postgres_server, browser_page, tmp_path
):
    database_url = postgres_server.create_database(worker_unique("e2e_dashboard"))
    port = free_port()
    up = UpProcess(
        tmp_path,
        "--bootstrap-servers", kafka_broker.bootstrap_servers,
        "--database-url", database_url,
        "--topic", "e2e_flu_cases",
        "--scenario", str(SCENARIO_DIR / "county_outbreak.yaml"),
        "--history-days", "28",  # flu-monitor up's default: 14 days of baseline before yesterday
        "--speed", "1",
        "--seed", "4",
        "--port", str(port),
    )  # fmt: skip
    try:
        up.wait_for_output("Dashboard: http://127.0.0.1", timeout_s=180)
        children = up.descendants()
        assert len(children) >= 4, up.text()

        def alert_in_sql():
            with psycopg.connect(database_url, autocommit=True) as conn:
                sql = "SELECT 1 FROM v_current_alerts WHERE county_fips = %s"
                return conn.execute(sql, (OUTBREAK_FIPS,)).fetchone()

        wait_until(alert_in_sql, 120, f"county {OUTBREAK_FIPS} in v_current_alerts", 1)

        url = f"http://127.0.0.1:{port}/"
        for _attempt in range(5):  # live data: compare one consistent snapshot
            before = sql_figures(database_url)
            browser_page.goto(url)
            browser_page.wait_for_selector(
                f'#table-current_alerts td[data-value="{OUTBREAK_FIPS}"]', timeout=60_000
            )
            browser_page.wait_for_selector('#kpi-active_alerts[data-value]:not([data-value=""])')
            shown = page_figures(browser_page)
            if before == sql_figures(database_url) and same(shown, before):
                break
        assert same(shown, before), f"page {shown} != SQL {before}"
        assert before["alert"] is not None and before["kpis"]["active_alerts"] >= 1

        # Honest charts: the clock and its zone, the partial day apart, the vaccination notes.
        with psycopg.connect(database_url, autocommit=True) as conn:
            clock = conn.execute("SELECT MAX(latest_event_time) FROM mv_daily_state_cases")
            clock = clock.fetchone()[0]
        expect(browser_page.locator("#clock")).to_contain_text(
            f"Data through {clock:%Y-%m-%d} ", timeout=15_000
        )
        expect(browser_page.locator("#clock")).to_contain_text("UTC (the simulated clock")
        partial = browser_page.locator("#graph-daily_cases_by_state .legendtext")
        expect(partial.filter(has_text="partial day")).to_have_count(1)
        expect(browser_page.locator("#note-vaccination_outcomes")).to_contain_text("age bands")
        expect(browser_page.locator("#graph-vaccination_by_age")).to_be_visible()
        # A request no page would send, from the browser: answered with an empty panel and why.
        status, body = browser_page.evaluate(BAD_CALLBACK)
        assert status == 200, body
        assert "Cannot draw this with the values given" in body

        browser_page.wait_for_timeout(1500)  # let the maps finish drawing for the screenshot
        artifact = save_artifact(browser_page, "dashboard.png")
        assert artifact.stat().st_size > 50_000
        # The state filter: NY only. The KPI follows (live data: compare with SQL right after).
        for state in ("NJ", "PA"):
            browser_page.locator(f'#filter-state input[value="{state}"]').uncheck()
        with psycopg.connect(database_url, autocommit=True) as conn:
            ny_cases = conn.execute(
                "SELECT SUM(cases_today) FROM v_dashboard_kpis WHERE state_code = 'NY'"
            ).fetchone()[0]
        expect(browser_page.locator("#kpi-cases_today")).to_have_attribute(
            "data-value", str(ny_cases), timeout=15_000
        )
        row = browser_page.locator(f'#table-current_alerts td[data-value="{OUTBREAK_FIPS}"]')
        expect(row).to_have_count(1)  # Tompkins is in NY: still listed

        outside = [u for u in browser_page.requests if not u.startswith(url)]
        assert not outside, f"the page fetched from outside 127.0.0.1:{port}: {outside}"

        assert up.interrupt() == 0, up.text()
        assert "stopped: no process left running" in up.text()
        left = [pid for pid in children if alive(pid)]
        assert not left, f"processes left running after Ctrl-C: {left}"
    finally:
        up.kill()
        (Path(tmp_path) / "up.out").exists() and print(up.text())
