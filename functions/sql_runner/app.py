"""Custom::WarehouseSql — apply sql/ to Redshift through the Redshift Data API.

What to run comes from the shared SQL core (flu_monitor.warehouse.sqlscript, the same code the
local pipeline runs on PostgreSQL): placeholders substituted from the resource's properties, a
ledger table of what was applied, and a plan that skips unchanged objects, rebuilds changed ones
and reloads reference data when its CSV changed. This function only runs that plan, one
statement at a time (CREATE EXTERNAL SCHEMA refuses transaction blocks), waiting for each.

Create/Update: run the plan while the Lambda has time; crhelper's poll_* invocations (every
minute) pick up where the last one stopped — statements still running are waited for (found by
their StatementName, which is unique to the CloudFormation request), then the plan is computed
again from the ledger, so nothing runs twice and a statement longer than 15 minutes is fine.
Delete: drop everything sql/ created unless RetainData; never fails (a gone warehouse is fine).
Returns the statement the stack's schedule runs to refresh every view (RefreshCascadeSql).
Properties, returned data and messages: functions/README.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flu_monitor import custom_resource as cr
from flu_monitor import redshift_data

log = logging.getLogger(__name__)
helper = cr.make_helper(polling=True)
clients = cr.Clients()

with helper.initialising():
    cr.use_bundle_home(__file__)
    from flu_monitor.warehouse import sqlscript  # after FLU_MONITOR_HOME is set

    # A bundle without sql/ fails every request at once, naming the folder.
    sqlscript.sql_files(sqlscript.default_sql_dir())

SQL_DIR = None  # None: sql/ under FLU_MONITOR_HOME (the bundle) or the checkout
# Stop submitting or waiting when less than this is left, so the invocation ends on our terms.
SAFETY_MARGIN_S = 60.0
WAIT_STEPS_S = (0.1, 0.25, 0.5, 1.0, 2.0)  # DescribeStatement back-off; most DDL takes < 1 s
RUNNING = ("SUBMITTED", "PICKED", "STARTED")
MAX_REASON = 250


class StatementFailed(RuntimeError):
    """A statement FAILED or was ABORTED; the message names it and ends with Redshift's error."""


class OutOfTime(Exception):
    """This invocation is nearly over; a later poll invocation goes on."""


def handler(event, context):
    helper(event, context)


@dataclass(frozen=True)
class Settings:
    target: dict  # WorkgroupName | ClusterIdentifier
    database: str
    secret_arn: str
    placeholders: dict
    retain: bool

    @property
    def physical_id(self) -> str:
        ((kind, value),) = self.target.items()
        return f"redshift-sql:{kind}/{value}/{self.database}"


def settings(properties: dict) -> Settings:
    kind, value = cr.one_of(properties, "WorkgroupName", "ClusterIdentifier")
    placeholders = properties.get("Placeholders") or {}
    if not isinstance(placeholders, dict):
        raise cr.PropertyError("property Placeholders must be a map of placeholder name to value")
    return Settings(
        target={kind: value},
        database=cr.required(properties, "Database"),
        secret_arn=cr.required(properties, "SecretArn"),
        placeholders={k: str(v) for k, v in placeholders.items()},
        retain=cr.flag(properties, "RetainData"),
    )


def _short(label: str, error: str) -> str:
    """`label: error`, cut so CloudFormation shows both (crhelper keeps only the tail)."""
    room = MAX_REASON - len(label) - 2
    error = " ".join(error.split())
    return f"{label}: {error if len(error) <= room else error[: room - 1] + '…'}"


class DataApi:
    """Runs statements one at a time through the Redshift Data API and waits for each."""

    def __init__(self, s: Settings, request_id: str, context):
        self.client = clients("redshift-data")
        self.connection = {**s.target, "Database": s.database, "SecretArn": s.secret_arn}
        # Every statement of one CloudFormation request is named <base>/<action>/<object>, so a
        # later invocation finds the ones still running (ListStatements matches name prefixes).
        self.base = f"flu-monitor-sql-{request_id}"
        self.context = context

    def _time_left(self) -> float:
        return self.context.get_remaining_time_in_millis() / 1000

    def run(self, sql: str, action: str, object_name: str, label: str) -> dict:
        if self._time_left() < SAFETY_MARGIN_S:
            raise OutOfTime(label)
        name = f"{self.base}/{action}/{object_name}"
        response = self.client.execute_statement(Sql=sql, StatementName=name, **self.connection)
        return self.wait(response["Id"], label)

    def wait(self, statement_id: str, label: str) -> dict:
        for attempt in range(10**9):
            described = self.client.describe_statement(Id=statement_id)
            status = described["Status"]
            if status == "FINISHED":
                return described
            if status in ("FAILED", "ABORTED"):
                log.error(
                    "%s %s: %s\n%s",
                    label,
                    status,
                    described.get("Error"),
                    described.get("QueryString", "")[:2000],
                )
                raise StatementFailed(_short(f"{label} {status}", described.get("Error", "")))
            if self._time_left() < SAFETY_MARGIN_S:
                raise OutOfTime(label)
            time.sleep(WAIT_STEPS_S[min(attempt, len(WAIT_STEPS_S) - 1)])
        raise AssertionError("unreachable")

    def query(self, sql: str, action: str, object_name: str, label: str) -> list[tuple]:
        return redshift_data.result_rows(self.client, self.run(sql, action, object_name, label))

    def finish_earlier_statements(self) -> tuple[str, str] | None:
        """Wait for this request's statements a previous invocation left running (and report
        one that failed after it stopped watching). Returns (action, object) of the last one
        awaited, so the plan can resume after it."""
        statements, token = [], None
        while True:
            page = self.client.list_statements(
                StatementName=f"{self.base}/",
                Status="ALL",
                **({"NextToken": token} if token else {}),
            )
            statements += [
                s for s in page["Statements"] if s.get("StatementName", "").startswith(self.base)
            ]
            token = page.get("NextToken")
            if not token:
                break
        resumed = None
        for statement in sorted(statements, key=lambda s: s["CreatedAt"]):
            action, _, object_name = statement["StatementName"][len(self.base) + 1 :].partition("/")
            if statement["Status"] in RUNNING + ("FAILED", "ABORTED"):
                self.wait(statement["Id"], f"{action} {object_name} (earlier invocation)")
                resumed = (action, object_name)
        return resumed


def _label(script: sqlscript.Script, step: sqlscript.Step) -> str:
    files = {st.name: st.file for st in script.statements}
    return f"sql/{files.get(step.object_name, '?')}: {step.action} {step.object_name}"


def _resume(steps: list[sqlscript.Step], resumed: tuple[str, str] | None) -> list[sqlscript.Step]:
    """Skip what an awaited CREATE already did: the ledger lacks it, so the plan starts with
    its drop and create again; everything else in the plan is harmless to repeat."""
    if not resumed or resumed[0] != "create":
        return steps
    for i, step in enumerate(steps):
        if (step.action, step.object_name) == resumed:
            if all(earlier.object_name == step.object_name for earlier in steps[:i]):
                return steps[i + 1 :]
            break
    return steps


def _load(s: Settings) -> sqlscript.Script:
    try:
        return sqlscript.load_script(SQL_DIR, s.placeholders)
    except sqlscript.ScriptError as exc:
        raise cr.PropertyError(f"Placeholders: {exc}") from None


@helper.create
@helper.update
@helper.poll_create
@helper.poll_update
def apply(event, context):
    """Run the plan; the physical id when everything is applied, None to be polled again."""
    s = settings(cr.props(event))
    script = _load(s)
    api = DataApi(s, event["RequestId"], context)
    try:
        resumed = api.finish_earlier_statements() if event.get("CrHelperPoll") else None
        for sql in sqlscript.ledger_setup_sql():
            api.run(sql, "ledger", "setup", "ledger setup")
        rows = api.query(sqlscript.LEDGER_QUERY, "ledger", "query", "ledger query")
        applied = sqlscript.ledger_from_rows(rows)
        steps = _resume(sqlscript.plan_apply(script, applied), resumed)
        log.info("%d steps to run (%d objects up to date)", len(steps), len(applied))
        for step in steps:
            api.run(step.sql, step.action, step.object_name, _label(script, step))
    except OutOfTime as exc:
        log.info("time is nearly up while at %s; the next poll goes on", exc)
        return None
    helper.Data.update(
        StreamSchema=script.placeholders["stream_schema"],
        AppliedFiles=str(len(script.files)),
        # The scheduled refresh: one statement, one transaction (see sqlscript.refresh_sql).
        RefreshCascadeSql=sqlscript.refresh_sql(script),
    )
    return s.physical_id


@helper.delete
def drop(event, context):
    try:
        s = settings(cr.props(event))
        script = _load(s)
    except cr.PropertyError as exc:
        log.info("properties were never valid, so nothing was applied: %s", exc)
        return None
    if s.retain:
        log.info("RetainData=true: warehouse objects kept")
        return None
    if event.get("PhysicalResourceId") != s.physical_id:
        log.info("nothing was applied by this resource (%s)", event.get("PhysicalResourceId"))
        return None
    api = DataApi(s, event["RequestId"], context)
    try:
        for sql in sqlscript.drop_sql(script):
            api.run(sql, "drop", sql.split("IF EXISTS ")[1].split()[0], sql)
    except Exception as exc:  # warehouse gone, out of time, ...: never block the stack
        log.warning("warehouse objects may be left in place: %s", exc)
        helper.Reason = _short("Not all warehouse objects were dropped", str(exc))
    return None
