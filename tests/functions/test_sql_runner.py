"""Custom::WarehouseSql through botocore Stubbers: every Redshift Data API call (and crhelper's
EventBridge/Lambda polling calls) is checked against the service model and the expected
parameters, in order; answers are read from the real local ResponseURL server. A small sql/ of
three files keeps the expected statement lists readable (the real sql/ runs on PostgreSQL in
test_sql_runner_postgres.py)."""

import copy
import uuid
from datetime import UTC, datetime

import pytest
from botocore.stub import ANY

from flu_monitor.warehouse import sqlscript
from tests.functions.conftest import ACCOUNT, REGION, FakeContext, load_function

SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:redshift!flu-ns-admin-AbC123"
PLACEHOLDERS = {
    "iam_role_arn": f"arn:aws:iam::{ACCOUNT}:role/flu-redshift-msk",
    "bootstrap_servers": f"b-1.flu.abc123.c2.kafka.{REGION}.amazonaws.com:9098,"
    f"b-2.flu.abc123.c2.kafka.{REGION}.amazonaws.com:9098",
    "topic": "flu_cases",
    "stream_schema": "flu_stream",
    "auto_refresh": "YES",
}
SQL_FILES = {
    "010_stream_schema.sql": """CREATE EXTERNAL SCHEMA IF NOT EXISTS {{stream_schema}}
FROM KAFKA IAM_ROLE '{{iam_role_arn}}' AUTHENTICATION iam URI '{{bootstrap_servers}}';
""",
    "020_reference.sql": """CREATE TABLE IF NOT EXISTS counties (fips CHAR(5), county_name VARCHAR);
-- @load counties data/counties.csv
""",
    "030_stream.sql": """CREATE MATERIALIZED VIEW flu_cases_stream AUTO REFRESH {{auto_refresh}} AS
SELECT kafka_partition, kafka_offset, JSON_PARSE(kafka_value) AS payload
FROM {{stream_schema}}."{{topic}}";
""",
    "040_cases.sql": """CREATE MATERIALIZED VIEW flu_cases AUTO REFRESH NO AS
SELECT kafka_partition, kafka_offset FROM flu_cases_stream;
""",
}
PHYSICAL_ID = "redshift-sql:WorkgroupName/flu-wg/dev"


@pytest.fixture
def sql_dir(tmp_path):
    (tmp_path / "sql").mkdir()
    (tmp_path / "data").mkdir()
    for name, text in SQL_FILES.items():
        (tmp_path / "sql" / name).write_text(text)
    (tmp_path / "data" / "counties.csv").write_text("fips,county_name\n36001,Albany County\n")
    return tmp_path / "sql"


class Clock:
    """Virtual time for the Lambda context and the function's sleeps (no real waiting)."""

    def __init__(self, remaining_s):
        self.remaining_s = remaining_s

    def sleep(self, seconds):
        self.remaining_s -= seconds

    def context(self):
        clock = self

        class Context(FakeContext):
            def get_remaining_time_in_millis(self):
                return int(clock.remaining_s * 1000)

        return Context()


@pytest.fixture
def fn(stubbed, sql_dir, monkeypatch):
    module = load_function("sql_runner")
    module.clients.clear()
    data, module.data_api = stubbed("redshift-data")
    module.clients.put("redshift-data", data)
    events, module.events = stubbed("events")
    lambda_, module.lambda_ = stubbed("lambda")
    monkeypatch.setattr(module.helper, "_events_client", events)
    monkeypatch.setattr(module.helper, "_lambda_client", lambda_)
    monkeypatch.setattr(module, "SQL_DIR", sql_dir)
    monkeypatch.setattr(module, "SAFETY_MARGIN_S", 5)
    # Under 15 s left crhelper skips its delete sleep; the margin leaves the runner 9 s.
    module.clock = Clock(remaining_s=14)
    monkeypatch.setattr(module.time, "sleep", module.clock.sleep)
    return module


def props(**overrides):
    return {
        "WorkgroupName": "flu-wg",
        "ClusterIdentifier": "",
        "Database": "dev",
        "SecretArn": SECRET,
        "Placeholders": PLACEHOLDERS,
        "RetainData": "false",
        "CodeVersion": "1",
        **overrides,
    }


def script(sql_dir, placeholders=PLACEHOLDERS):
    return sqlscript.load_script(sql_dir, placeholders)


def ledger_records(script_):
    """The ledger's rows after a complete apply, as the Data API returns them."""
    records = []
    for st in script_.statements:
        auto = {"stringValue": st.auto_refresh} if st.auto_refresh else {"isNull": True}
        records.append([{"stringValue": st.key}, {"stringValue": st.digest}, auto])
    return records


class DataApiScript:
    """Queues the Data API exchanges of one invocation and remembers the statements named."""

    def __init__(self, fn, request_id, target=None):
        self.stub = fn.data_api
        self.base = f"flu-monitor-sql-{request_id}"
        self.connection = target or {"WorkgroupName": "flu-wg"}
        self.listed = []

    def statement(self, sql, action, object_name, statuses=("FINISHED",), error=None, rows=None):
        statement_id = str(uuid.uuid4())
        name = f"{self.base}/{action}/{object_name}"
        params = {
            "Sql": sql,
            "StatementName": name,
            **self.connection,
            "Database": "dev",
            "SecretArn": SECRET,
        }
        self.stub.add_response("execute_statement", {"Id": statement_id}, params)
        for status in statuses:
            described = {"Id": statement_id, "Status": status}
            if error and status == "FAILED":
                described["Error"] = error
            if rows is not None and status == "FINISHED":
                described["HasResultSet"] = True
            self.stub.add_response("describe_statement", described, {"Id": statement_id})
        if rows is not None and statuses[-1] == "FINISHED":
            self.stub.add_response(
                "get_statement_result",
                {"Records": rows, "TotalNumRows": len(rows)},
                {"Id": statement_id},
            )
        self.listed.append(
            {
                "Id": statement_id,
                "StatementName": name,
                "Status": statuses[-1],
                "QueryString": sql,
                "CreatedAt": datetime.now(UTC),
            }
        )
        return statement_id

    def ledger(self, rows):
        for sql in sqlscript.ledger_setup_sql():
            self.statement(sql, "ledger", "setup")
        self.statement(sqlscript.LEDGER_QUERY, "ledger", "query", rows=rows)

    def steps(self, steps):
        for step in steps:
            self.statement(step.sql, step.action, step.object_name)

    def list_statements(self, statements):
        self.stub.add_response(
            "list_statements",
            {"Statements": statements},
            {"StatementName": f"{self.base}/", "Status": "ALL"},
        )


RULE_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ResourceAB12CD34"


def expect_polling_started(fn):
    fn.events.add_response(
        "put_rule",
        {"RuleArn": RULE_ARN},
        {"Name": ANY, "ScheduleExpression": "rate(1 minute)", "State": "ENABLED"},
    )
    fn.lambda_.add_response(
        "add_permission",
        {"Statement": "{}"},
        {
            "FunctionName": FakeContext.function_name,
            "StatementId": ANY,
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "SourceArn": RULE_ARN,
        },
    )
    fn.events.add_response(
        "put_targets", {"FailedEntryCount": 0}, {"Rule": "ResourceAB12CD34", "Targets": ANY}
    )


def expect_polling_stopped(fn):
    fn.events.add_response(
        "remove_targets", {"FailedEntryCount": 0}, {"Rule": "ResourceAB12CD34", "Ids": ["1"]}
    )
    fn.lambda_.add_response(
        "remove_permission", {}, {"FunctionName": FakeContext.function_name, "StatementId": ANY}
    )
    fn.events.add_response("delete_rule", {}, {"Name": "ResourceAB12CD34"})


EXPECTED_DATA = {
    "StreamSchema": "flu_stream",
    "AppliedFiles": "4",
    # the view on top, so that CASCADE refreshes the stream first, then it, in one transaction
    "RefreshCascadeSql": "REFRESH MATERIALIZED VIEW flu_cases CASCADE",
}


def test_create_applies_the_plan_then_the_first_poll_answers(fn, cfn, sql_dir):
    s = script(sql_dir)
    event = cfn.request("Create", props(), logical_id="Resource")
    first = DataApiScript(fn, event["RequestId"])
    first.ledger(rows=[])
    steps = sqlscript.plan_apply(s, {})
    first.steps(steps)
    expect_polling_started(fn)
    assert cfn.invoke(fn, event, fn.clock.context()) is None  # crhelper polls for the answer

    # The statements really sent, in order: the substituted SQL of the four files.
    sent = [step.sql for step in steps if step.action == "create"]
    assert sent[0] == (
        "CREATE EXTERNAL SCHEMA IF NOT EXISTS flu_stream\nFROM KAFKA IAM_ROLE "
        f"'arn:aws:iam::{ACCOUNT}:role/flu-redshift-msk' AUTHENTICATION iam URI "
        f"'{PLACEHOLDERS['bootstrap_servers']}'"
    )
    loads = [step.sql for step in steps if step.action == "load"]
    assert loads == [
        "DELETE FROM counties",
        "INSERT INTO counties (fips, county_name) VALUES\n('36001', 'Albany County')",
    ]
    assert sent[2].endswith('FROM flu_stream."flu_cases"')

    poll = copy.deepcopy(event)  # what crhelper put in the EventBridge target's input
    assert poll["CrHelperPoll"] is True
    second = DataApiScript(fn, event["RequestId"])
    second.list_statements(first.listed)
    second.ledger(rows=ledger_records(s))  # everything applied: nothing left to run
    expect_polling_stopped(fn)
    body = cfn.invoke(fn, poll, fn.clock.context())
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == PHYSICAL_ID
    assert body["Data"] == EXPECTED_DATA
    assert body["Data"]["RefreshCascadeSql"] == sqlscript.refresh_sql(s)


def test_failed_statement_and_redshift_error_reach_the_stack_event(fn, cfn, sql_dir):
    event = cfn.request("Create", props())
    api = DataApiScript(fn, event["RequestId"])
    api.ledger(rows=[])
    steps = sqlscript.plan_apply(script(sql_dir), {})
    api.steps(steps[:3])  # external schema created and recorded
    api.statement(steps[3].sql, "drop", "counties")
    api.statement(
        steps[4].sql,
        "create",
        "counties",
        statuses=("STARTED", "FAILED"),
        error="ERROR: permission denied for schema public",
    )
    body = cfn.invoke(fn, event, fn.clock.context())  # no polling set up for a failure
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        "sql/020_reference.sql: create counties FAILED: ERROR: permission denied for schema public"
    )


def test_a_long_error_keeps_the_statement_and_the_start_of_the_cause(fn, cfn, sql_dir):
    event = cfn.request("Create", props())
    api = DataApiScript(fn, event["RequestId"])
    api.ledger(rows=[])
    steps = sqlscript.plan_apply(script(sql_dir), {})
    error = 'ERROR: syntax error at or near "FROM" ' + "x" * 400
    api.statement(steps[0].sql, "create", "flu_stream", statuses=("FAILED",), error=error)
    body = cfn.invoke(fn, event, fn.clock.context())
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith(
        'sql/010_stream_schema.sql: create flu_stream FAILED: ERROR: syntax error at or near "FROM"'
    )
    assert len(body["Reason"]) == 250 and body["Reason"].endswith("x…")


def test_a_statement_outlasting_the_invocation_is_awaited_not_rerun(fn, cfn, sql_dir, monkeypatch):
    monkeypatch.setattr(fn, "WAIT_STEPS_S", (30.0,))
    monkeypatch.setattr(fn, "SAFETY_MARGIN_S", 60)
    fn.clock.remaining_s = 100
    s = script(sql_dir)
    steps = sqlscript.plan_apply(s, {})
    stream = [
        i
        for i, st in enumerate(steps)
        if (st.action, st.object_name) == ("create", "flu_cases_stream")
    ][0]
    event = cfn.request("Create", props())
    first = DataApiScript(fn, event["RequestId"])
    first.ledger(rows=[])
    first.steps(steps[:stream])
    # 100 s left: STARTED, wait 30 s; 70 s left: STARTED, wait; 40 s < 60 s margin: stop.
    long_id = first.statement(
        steps[stream].sql, "create", "flu_cases_stream", statuses=("STARTED", "STARTED", "STARTED")
    )
    expect_polling_started(fn)
    assert cfn.invoke(fn, event, fn.clock.context()) is None

    fn.clock.remaining_s = 900  # the next poll invocation
    poll = copy.deepcopy(event)
    second = DataApiScript(fn, event["RequestId"])
    second.list_statements(first.listed)
    fn.data_api.add_response(
        "describe_statement", {"Id": long_id, "Status": "FINISHED"}, {"Id": long_id}
    )
    done_before = {st.key: st for st in s.statements if st.name != "flu_cases_stream"}
    second.ledger(rows=ledger_records(type(s)(list(done_before.values()), s.placeholders)))
    # The ledger lacks the view, so the plan drops and creates it again; the runner resumes
    # after the CREATE it awaited and only records it.
    second.steps([st for st in steps[stream + 1 :]])
    expect_polling_stopped(fn)
    body = cfn.invoke(fn, poll, fn.clock.context())
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["Data"] == EXPECTED_DATA


def test_update_with_unchanged_sql_runs_nothing_and_keeps_the_physical_id(fn, cfn, sql_dir):
    s = script(sql_dir)
    event = cfn.request("Update", props(CodeVersion="2"), props(), physical_id=PHYSICAL_ID)
    DataApiScript(fn, event["RequestId"]).ledger(rows=ledger_records(s))
    expect_polling_started(fn)
    assert cfn.invoke(fn, event, fn.clock.context()) is None
    poll = copy.deepcopy(event)
    second = DataApiScript(fn, event["RequestId"])
    second.list_statements([])
    second.ledger(rows=ledger_records(s))
    expect_polling_stopped(fn)
    body = cfn.invoke(fn, poll, fn.clock.context())
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", PHYSICAL_ID)
    assert body["Data"] == EXPECTED_DATA


def test_update_to_manual_refresh_alters_only_the_view(fn, cfn, sql_dir):
    old = script(sql_dir)
    new_placeholders = {**PLACEHOLDERS, "auto_refresh": "NO"}
    event = cfn.request(
        "Update", props(Placeholders=new_placeholders), props(), physical_id=PHYSICAL_ID
    )
    applied = {st.key: (st.digest, st.auto_refresh) for st in old.statements}
    plan = sqlscript.plan_apply(script(sql_dir, new_placeholders), applied)
    assert plan[0].sql == "ALTER MATERIALIZED VIEW flu_cases_stream AUTO REFRESH NO"
    assert {step.action for step in plan} == {"alter", "ledger"}  # no drop, no data loss
    api = DataApiScript(fn, event["RequestId"])
    api.ledger(rows=ledger_records(old))
    api.steps(plan)
    expect_polling_started(fn)
    assert cfn.invoke(fn, event, fn.clock.context()) is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"WorkgroupName": "", "ClusterIdentifier": ""},
            "exactly one of WorkgroupName | ClusterIdentifier must be set, got 0",
        ),
        (
            {"Placeholders": {**PLACEHOLDERS, "topic": "flu cases"}},
            "Placeholders: placeholder topic='flu cases' is not valid",
        ),
        (
            {"Placeholders": {**PLACEHOLDERS, "extra": "1"}},
            "Placeholders: unknown placeholders ['extra']",
        ),
    ],
)
def test_bad_properties_fail_before_any_call(fn, cfn, overrides, reason):
    body = cfn.invoke(fn, cfn.request("Create", props(**overrides)), fn.clock.context())
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith(reason)


def test_provisioned_cluster_target(fn, cfn, sql_dir):
    event = cfn.request("Create", props(WorkgroupName="", ClusterIdentifier="flu-cluster"))
    api = DataApiScript(fn, event["RequestId"], target={"ClusterIdentifier": "flu-cluster"})
    api.ledger(rows=ledger_records(script(sql_dir)))
    expect_polling_started(fn)
    assert cfn.invoke(fn, event, fn.clock.context()) is None


def test_delete_drops_everything_dependents_first(fn, cfn, sql_dir):
    event = cfn.request("Delete", props(), physical_id=PHYSICAL_ID)
    api = DataApiScript(fn, event["RequestId"])
    drops = sqlscript.drop_sql(script(sql_dir))
    assert drops == [
        "DROP MATERIALIZED VIEW IF EXISTS flu_cases CASCADE",
        "DROP MATERIALIZED VIEW IF EXISTS flu_cases_stream CASCADE",
        "DROP TABLE IF EXISTS counties CASCADE",
        "DROP SCHEMA IF EXISTS flu_stream CASCADE",
        "DROP TABLE IF EXISTS flu_monitor_sql_ledger",
    ]
    for sql, name in zip(
        drops,
        ["flu_cases", "flu_cases_stream", "counties", "flu_stream", "flu_monitor_sql_ledger"],
        strict=True,
    ):
        api.statement(sql, "drop", name)
    body = cfn.invoke(fn, event, fn.clock.context())
    assert (body["Status"], body["PhysicalResourceId"], body["Reason"]) == (
        "SUCCESS",
        PHYSICAL_ID,
        "",
    )


def test_delete_never_blocks_when_the_warehouse_is_gone(fn, cfn):
    event = cfn.request("Delete", props(), physical_id=PHYSICAL_ID)
    fn.data_api.add_client_error(
        "execute_statement",
        "ValidationException",
        "Workgroup flu-wg not found.",
        expected_params=ANY_STATEMENT,
    )
    body = cfn.invoke(fn, event, fn.clock.context())
    assert body["Status"] == "SUCCESS"
    assert body["Reason"].startswith("Not all warehouse objects were dropped: ")
    assert body["Reason"].endswith("Workgroup flu-wg not found.")


ANY_STATEMENT = {
    "Sql": ANY,
    "StatementName": ANY,
    "WorkgroupName": "flu-wg",
    "Database": "dev",
    "SecretArn": SECRET,
}


def test_delete_of_a_never_created_resource_or_with_retain_data_runs_nothing(fn, cfn):
    never = cfn.request("Delete", props(), physical_id="flu-monitor_Sql_ABCD1234")
    assert cfn.invoke(fn, never, fn.clock.context())["Status"] == "SUCCESS"
    retain = cfn.request("Delete", props(RetainData="true"), physical_id=PHYSICAL_ID)
    assert cfn.invoke(fn, retain, fn.clock.context())["Status"] == "SUCCESS"
    invalid = cfn.request("Delete", props(Placeholders={}), physical_id="x")
    assert cfn.invoke(fn, invalid, fn.clock.context())["Status"] == "SUCCESS"


def test_a_statement_failing_after_its_invocation_ended_fails_the_poll(
    fn, cfn, sql_dir, monkeypatch
):
    monkeypatch.setattr(fn, "WAIT_STEPS_S", (30.0,))
    monkeypatch.setattr(fn, "SAFETY_MARGIN_S", 60)
    fn.clock.remaining_s = 70
    steps = sqlscript.plan_apply(script(sql_dir), {})
    event = cfn.request("Create", props())
    first = DataApiScript(fn, event["RequestId"])
    first.ledger(rows=[])
    # 70 s left: STARTED, wait 30 s; STARTED, 40 s < 60 s margin: stop, the poll goes on.
    long_id = first.statement(steps[0].sql, "create", "flu_stream", statuses=("STARTED", "STARTED"))
    expect_polling_started(fn)
    assert cfn.invoke(fn, event, fn.clock.context()) is None

    fn.clock.remaining_s = 900
    second = DataApiScript(fn, event["RequestId"])
    second.list_statements(first.listed)
    fn.data_api.add_response(
        "describe_statement",
        {
            "Id": long_id,
            "Status": "FAILED",
            "Error": "ERROR: Not authorized to get credentials of role",
        },
        {"Id": long_id},
    )
    expect_polling_stopped(fn)
    body = cfn.invoke(fn, copy.deepcopy(event), fn.clock.context())
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        "create flu_stream (earlier invocation) FAILED: "
        "ERROR: Not authorized to get credentials of role"
    )
