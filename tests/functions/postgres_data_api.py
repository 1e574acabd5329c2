"""A Redshift Data API client that runs statements on a REAL PostgreSQL.

It answers execute_statement / describe_statement / get_statement_result / list_statements in the
Data API's shapes (statuses, Error text, typed result fields), validates every call's parameters
against botocore's redshift-data model, and runs each Redshift statement after the warehouse's
own Redshift -> PostgreSQL translation (flu_monitor.warehouse.translate, the code the local
pipeline uses, read through its on-disk cache as apply() and the notifier read it). So the
sql_runner Lambda's handler, with the shared SQL core, is exercised end to end against a
database: idempotent re-runs, changed SQL, reference data, drops, SQL errors.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime

import botocore.session
import psycopg
from botocore.validate import validate_parameters

from flu_monitor.alerts import notifications
from flu_monitor.alerts import postgres as alerts_postgres
from flu_monitor.warehouse import postgres, sqlscript, translation_cache

_MODEL = botocore.session.get_session().get_service_model("redshift-data")


@functools.cache
def _translation(
    statements: tuple[sqlscript.Statement, ...], placeholders: tuple[tuple[str, str], ...]
) -> dict[str, list[str]]:
    """Redshift statement -> its PostgreSQL statements, for one version of sql/: the same for
    every test that uses that version, so translated once (a second each)."""
    script = sqlscript.Script(list(statements), dict(placeholders))
    objects = translation_cache.plan_script(script)  # as apply() translates (the on-disk cache)
    translation = {st.sql: objects[st.name].create for st in script.objects()}
    drops = zip(reversed(script.objects()), sqlscript.drop_sql(script), strict=False)
    translation.update({sql: objects[st.name].drop for st, sql in drops})
    ledger = sqlscript.ledger_setup_sql()
    translation.update(
        zip(ledger, ([s] for s in translation_cache.to_postgres(ledger)), strict=True)
    )
    return translation


class PostgresDataApi:
    def __init__(self, url: str, script: sqlscript.Script):
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(postgres.SHIMS.read_text(encoding="utf-8"))
        self.statements: dict[str, dict] = {}
        self.executed: list[str] = []  # the Redshift SQL received, in order
        self.use(script)

    def use(self, script: sqlscript.Script) -> None:
        """Translate this version of sql/ (an Update may bring a new one)."""
        self.translation = _translation(
            tuple(script.statements), tuple(sorted(script.placeholders.items()))
        )

    def close(self) -> None:
        self.conn.close()

    def _check(self, operation: str, params: dict) -> None:
        validate_parameters(params, _MODEL.operation_model(operation).input_shape)

    def _postgres(self, sql: str) -> list[str]:
        if sql in self.translation:
            return self.translation[sql]
        if sql in ALERTS_SQL:  # the alert notifier's DML, Redshift SQL like sql/
            return [alerts_postgres._sql(sql)]  # as the local notifier translates it
        if sql.startswith("ALTER MATERIALIZED VIEW"):
            return []  # AUTO REFRESH: the local refresher decides when to refresh
        return [sql]  # ledger DML, reference-data loads, the ledger query: portable SQL

    def execute_statement(self, **params) -> dict:
        self._check("ExecuteStatement", params)
        return self._execute([params["Sql"]], params)

    def batch_execute_statement(self, **params) -> dict:
        """The Sqls "are run as a single transaction" (BatchExecuteStatement)."""
        self._check("BatchExecuteStatement", params)
        return self._execute(params["Sqls"], params)

    def _execute(self, sqls: list[str], params: dict) -> dict:
        statement_id = str(uuid.uuid4())
        sql = ";\n".join(sqls)
        self.executed.extend(sqls)
        # Data API parameters (name, value) -> psycopg's %(name)s, which the translation wrote
        values = {p["name"]: p["value"] for p in params.get("Parameters", [])}
        record = {
            "Id": statement_id,
            "StatementName": params.get("StatementName", ""),
            "QueryString": sql,
            "CreatedAt": datetime.now(UTC),
            "Status": "FINISHED",
            "rows": None,
        }
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                for statement in (pg for one in sqls for pg in self._postgres(one)):
                    cur.execute(statement, values or None)
                if cur.description is not None:
                    record["rows"] = cur.fetchall()
        except psycopg.Error as exc:
            record.update(Status="FAILED", Error=f"ERROR: {exc.diag.message_primary}")
        self.statements[statement_id] = record
        return {"Id": statement_id}

    def describe_statement(self, **params) -> dict:
        self._check("DescribeStatement", params)
        record = self.statements[params["Id"]]
        described = {
            "Id": record["Id"],
            "Status": record["Status"],
            "QueryString": record["QueryString"],
            "HasResultSet": record["rows"] is not None,
        }
        if "Error" in record:
            described["Error"] = record["Error"]
        return described

    def get_statement_result(self, **params) -> dict:
        self._check("GetStatementResult", params)
        rows = self.statements[params["Id"]]["rows"] or []
        return {"Records": [[_field(v) for v in row] for row in rows], "TotalNumRows": len(rows)}

    def list_statements(self, **params) -> dict:
        self._check("ListStatements", params)
        prefix = params.get("StatementName", "")
        keep = ("Id", "StatementName", "QueryString", "CreatedAt", "Status")
        return {
            "Statements": [
                {k: r[k] for k in keep}
                for r in self.statements.values()
                if r["StatementName"].startswith(prefix)
            ]
        }


ALERTS_SQL = {notifications.CLAIM_SQL, notifications.PENDING_SQL, notifications.MARK_SENT_SQL}


def _field(value) -> dict:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}
