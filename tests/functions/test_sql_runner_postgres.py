"""Custom::WarehouseSql end to end against a REAL PostgreSQL: the Lambda handler runs the real
sql/ through a Data-API-shaped client (tests/functions/postgres_data_api.py) that executes each
statement on PostgreSQL after the warehouse's own translation. Proves the runner + shared core:
first apply, idempotent re-run, changed SQL applied alone, reference data loaded once, SQL errors
reported with PostgreSQL's message, and Delete dropping everything."""

import copy
import csv
import shutil
from pathlib import Path

import psycopg
import pytest

from flu_monitor.warehouse import postgres, sqlscript
from tests.functions.conftest import ACCOUNT, REGION, load_function
from tests.functions.postgres_data_api import PostgresDataApi
from tests.functions.test_sql_runner import (
    Clock,
    expect_polling_started,
    expect_polling_stopped,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:redshift-admin-AbC123"
PHYSICAL_ID = "redshift-sql:WorkgroupName/flu-wg/dev"


def _rows(name: str) -> int:
    with open(REPO / "data" / name, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.DictReader(f))


@pytest.fixture
def home(tmp_path):
    """A copy of sql/ and the reference data, so a test can change the SQL."""
    shutil.copytree(REPO / "sql", tmp_path / "sql")
    (tmp_path / "data").mkdir()
    for name in ("counties.csv", "facilities.csv"):
        shutil.copy(REPO / "data" / name, tmp_path / "data" / name)
    return tmp_path


@pytest.fixture
def warehouse(postgres_db, home):
    api = PostgresDataApi(
        postgres_db, sqlscript.load_script(home / "sql", postgres.LOCAL_PLACEHOLDERS)
    )
    yield api
    api.close()


@pytest.fixture
def fn(stubbed, warehouse, home, monkeypatch):
    module = load_function("sql_runner")
    module.clients.clear()
    module.clients.put("redshift-data", warehouse)
    events, module.events = stubbed("events")
    lambda_, module.lambda_ = stubbed("lambda")
    monkeypatch.setattr(module.helper, "_events_client", events)
    monkeypatch.setattr(module.helper, "_lambda_client", lambda_)
    monkeypatch.setattr(module, "SQL_DIR", home / "sql")
    monkeypatch.setattr(module, "SAFETY_MARGIN_S", 5)
    module.clock = Clock(remaining_s=120)
    return module


def props(**overrides):
    return {
        "WorkgroupName": "flu-wg",
        "Database": "dev",
        "SecretArn": SECRET,
        "Placeholders": postgres.LOCAL_PLACEHOLDERS,
        "RetainData": "false",
        "CodeVersion": "1",
        **overrides,
    }


def run_to_completion(fn, cfn, event) -> dict:
    """First invocation, then crhelper's poll invocation: the answer CloudFormation gets."""
    expect_polling_started(fn)
    assert cfn.invoke(fn, event, fn.clock.context()) is None
    expect_polling_stopped(fn)
    return cfn.invoke(fn, copy.deepcopy(event), fn.clock.context())


def relations(url) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {name for (name,) in rows}


def count(url, table) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_create_update_and_delete_on_postgresql(fn, cfn, warehouse, postgres_db, home):
    script = sqlscript.load_script(home / "sql", postgres.LOCAL_PLACEHOLDERS)

    body = run_to_completion(fn, cfn, cfn.request("Create", props()))
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == PHYSICAL_ID
    assert body["Data"] == {
        "StreamSchema": "msk",
        "AppliedFiles": str(len(list((home / "sql").glob("*.sql")))),
        "RefreshCascadeSql": "REFRESH MATERIALIZED VIEW flu_refresh_status CASCADE",
    }
    names = {st.name for st in script.objects() if st.kind != "external_schema"}
    assert names <= relations(postgres_db)  # every table, view and materialized view exists
    assert count(postgres_db, "counties") == _rows("counties.csv") == 150
    assert count(postgres_db, "facilities") == _rows("facilities.csv")
    assert count(postgres_db, sqlscript.LEDGER_TABLE) == len(script.statements)
    creates = [sql for sql in warehouse.executed if sql.startswith("CREATE ")]
    assert len(creates) == len(script.objects()) + 2  # + the ledger table, per invocation

    # Update, same SQL: the ledger says everything is applied; no DDL, no reload.
    warehouse.executed.clear()
    event = cfn.request("Update", props(CodeVersion="2"), props(), physical_id=PHYSICAL_ID)
    body = run_to_completion(fn, cfn, event)
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", PHYSICAL_ID)
    assert {sql.split()[0] for sql in warehouse.executed} == {"CREATE", "SELECT"}
    assert all(
        "IF NOT EXISTS flu_monitor_sql_ledger" in sql
        for sql in warehouse.executed
        if sql.startswith("CREATE")
    )

    # Update, one view changed: only that view is rebuilt; data and other objects stay.
    views = home / "sql" / "070_dashboard_views.sql"
    views.write_text(
        views.read_text().replace(
            "CREATE VIEW v_current_alerts AS", "CREATE VIEW v_current_alerts AS\n-- v2\n", 1
        )
    )
    changed = sqlscript.load_script(home / "sql", postgres.LOCAL_PLACEHOLDERS)
    assert changed != script
    warehouse.use(changed)
    warehouse.executed.clear()
    event = cfn.request("Update", props(CodeVersion="3"), props(), physical_id=PHYSICAL_ID)
    body = run_to_completion(fn, cfn, event)
    assert body["Status"] == "SUCCESS", body["Reason"]
    ddl = [sql.split("\n")[0] for sql in warehouse.executed if sql.startswith(("CREATE", "DROP"))]
    assert [line for line in ddl if "flu_monitor_sql_ledger" not in line] == [
        "DROP VIEW IF EXISTS v_current_alerts CASCADE",
        "CREATE VIEW v_current_alerts AS",
    ]
    assert count(postgres_db, "counties") == 150

    # Delete: everything sql/ created, and the ledger, is gone.
    body = cfn.invoke(
        fn, cfn.request("Delete", props(), physical_id=PHYSICAL_ID), Clock(14).context()
    )
    assert (body["Status"], body["Reason"]) == ("SUCCESS", "")
    assert not (names | {sqlscript.LEDGER_TABLE}) & relations(postgres_db)


def test_a_sql_error_reaches_the_stack_event_with_the_database_message(fn, cfn, home, warehouse):
    (home / "sql" / "080_broken.sql").write_text(
        "CREATE VIEW v_broken AS SELECT no_such_column FROM counties;\n"
    )
    warehouse.use(sqlscript.load_script(home / "sql", postgres.LOCAL_PLACEHOLDERS))
    body = cfn.invoke(fn, cfn.request("Create", props()), fn.clock.context())
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        'sql/080_broken.sql: create v_broken FAILED: ERROR: column "no_such_column" does not exist'
    )
