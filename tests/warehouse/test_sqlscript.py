"""The shared SQL core (sqlscript): placeholders, splitting, the apply plan, refresh and drop lists,
and sql/ itself parsed by sqlglot's Redshift dialect (sqlfluff's: scripts/lint_sql.py in lint)."""

import re
import shutil

import pytest
import sqlglot

from flu_monitor.warehouse import sqlscript
from flu_monitor.warehouse.sqlscript import ScriptError

AWS = {
    "iam_role_arn": "arn:aws:iam::123456789012:role/flu-redshift-msk",
    "bootstrap_servers": "b-1.flu.abc123.c2.kafka.us-east-1.amazonaws.com:9098,"
    "b-2.flu.abc123.c2.kafka.us-east-1.amazonaws.com:9098",
    "topic": "flu_cases",
    "stream_schema": "flu_stream",
    "auto_refresh": "YES",
}


@pytest.fixture(scope="module")
def script():
    return sqlscript.load_script(None, AWS)


def _copy_repo(tmp_path):
    """sql/ and data/ in a scratch directory, to change them."""
    root = sqlscript.default_sql_dir().parent
    shutil.copytree(root / "sql", tmp_path / "sql")
    shutil.copytree(root / "data", tmp_path / "data")
    return tmp_path / "sql"


def _applied(script):
    """The ledger as it stands after applying `script`."""
    return {st.key: (st.digest, st.auto_refresh) for st in script.statements}


# --- placeholders -----------------------------------------------------------------------------


def test_every_placeholder_in_sql_is_documented_and_used(script):
    used = set()
    for path in sqlscript.sql_files(sqlscript.default_sql_dir()):
        used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", path.read_text()))
    assert used == set(sqlscript.PLACEHOLDERS)
    docs = (sqlscript.default_sql_dir().parent / "docs" / "warehouse.md").read_text()
    for name in sqlscript.PLACEHOLDERS:
        assert f"`{name}`" in docs


def test_placeholders_are_substituted(script):
    external = script.objects("external_schema")[0]
    assert "{{" not in "".join(st.sql for st in script.statements)
    assert f"IAM_ROLE '{AWS['iam_role_arn']}'" in external.sql
    stream = [st for st in script.statements if st.streaming]
    assert [st.name for st in stream] == ["flu_cases_stream"]
    assert 'FROM flu_stream."flu_cases"' in stream[0].sql


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"topic": None}, r"without a value: \['topic'\]"),
        ({"database": "dev"}, r"unknown placeholders \['database'\]"),
        ({"auto_refresh": "maybe"}, r"auto_refresh='MAYBE' is not valid"),
        ({"iam_role_arn": "arn:aws:iam::1:role/x' --"}, "iam_role_arn="),
        ({"stream_schema": "Stream; DROP"}, "stream_schema="),
        ({"bootstrap_servers": "b-1:9098' --"}, "bootstrap_servers="),
        ({"bootstrap_servers": "b-1.flu.kafka.amazonaws.com"}, "bootstrap_servers="),  # no port
        ({"topic": "t" * 129}, "at most 128 characters"),  # Redshift's topic name limit
        ({"topic": "Flu_Cases"}, "lower case only"),
    ],
)
def test_bad_placeholders_fail_naming_them(change, message):
    values = {**AWS, **change}
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(ScriptError, match=message):
        sqlscript.load_script(None, values)


def test_lower_case_auto_refresh_is_accepted():
    script = sqlscript.load_script(None, {**AWS, "auto_refresh": "no"})
    assert {st.auto_refresh for st in script.objects("materialized_view")} == {"NO"}


def test_substitute_rejects_unknown_placeholder_in_text():
    with pytest.raises(ScriptError, match=r"unknown placeholder \{\{schema\}\}"):
        sqlscript.substitute("SELECT 1 FROM {{schema}}.t", AWS, "x.sql")


# --- splitting --------------------------------------------------------------------------------


def test_split_keeps_semicolons_in_literals_comments_and_load_lines():
    text = """-- a comment; with a semicolon
CREATE VIEW a AS SELECT ';' AS s, "x;y" AS t /* ; */;
-- @load counties data/counties.csv
CREATE VIEW b AS SELECT 'it''s' AS s;
"""
    assert sqlscript.split_statements(text) == [
        "CREATE VIEW a AS SELECT ';' AS s, \"x;y\" AS t /* ; */",
        "-- @load counties data/counties.csv",
        "CREATE VIEW b AS SELECT 'it''s' AS s",
    ]


def test_only_create_statements_are_allowed(tmp_path):
    (tmp_path / "001_x.sql").write_text("DELETE FROM counties;")
    with pytest.raises(ScriptError, match="001_x.sql: .*only CREATE statements"):
        sqlscript.load_script(tmp_path, AWS)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("CREATE MATERIALIZED VIEW m AS SELECT 1 AS a", "must say AUTO REFRESH NO"),
        # Redshift refuses AUTO REFRESH YES on a view defined on another materialized view
        ("CREATE MATERIALIZED VIEW m AUTO REFRESH YES AS SELECT a FROM t", "AUTO REFRESH NO"),
        ("CREATE MATERIALIZED VIEW m AUTO REFRESH {{auto_refresh}} AS SELECT a FROM t", "NO"),
        (
            "CREATE MATERIALIZED VIEW s AUTO REFRESH NO AS SELECT 1 AS a "
            'FROM {{stream_schema}}."x"',
            r"streaming view must say AUTO REFRESH \{\{auto_refresh\}\}",
        ),
    ],
)
def test_auto_refresh_rules_are_enforced(tmp_path, sql, message):
    (tmp_path / "001_x.sql").write_text(sql + ";")
    with pytest.raises(ScriptError, match=message):
        sqlscript.load_script(tmp_path, AWS)


def test_only_the_streaming_view_takes_the_auto_refresh_placeholder(script):
    auto = {st.name: st.auto_refresh for st in script.objects("materialized_view")}
    assert auto.pop("flu_cases_stream") == "YES"
    assert set(auto.values()) == {"NO"}


def test_a_statement_over_the_data_api_limit_is_refused(tmp_path):
    columns = ", ".join(f"{i} AS column_{i:06d}" for i in range(5000))
    (tmp_path / "001_x.sql").write_text(f"CREATE VIEW v AS SELECT {columns};")
    with pytest.raises(ScriptError, match="001_x.sql: .*longer than the Data API's 100000 bytes"):
        sqlscript.load_script(tmp_path, AWS)


def test_load_statements_insert_every_csv_row(script):
    load = next(st for st in script.statements if st.key == "load:facilities")
    assert load.load_sql[0] == "DELETE FROM facilities"
    values = "".join(load.load_sql[1:])
    assert values.count("\n(") == 299  # one VALUES tuple per hospital
    assert "(facility_id, facility_name, state_code, county_fips, zipcode" in values
    assert all(len(sql.encode()) < 100_000 for sql in load.load_sql)  # Data API statement limit


def test_reference_data_is_split_into_statements_that_fit(tmp_path):
    csv = tmp_path / "big.csv"
    csv.write_text("id,name\n" + "".join(f"{i},name {i} {'x' * 80}\n" for i in range(3000)))
    statements = sqlscript.load_statements("big", csv, max_bytes=20_000)
    assert statements[0] == "DELETE FROM big"
    assert len(statements) > 10
    assert all(len(sql.encode()) <= 20_000 for sql in statements)
    rows = re.findall(r"\('(\d+)', 'name ", "".join(statements))
    assert rows == [str(i) for i in range(3000)]  # every row once, in order
    csv.write_text("id,name\n1," + "y" * 30_000 + "\n")
    with pytest.raises(ScriptError, match="one row is larger than 20000 bytes"):
        sqlscript.load_statements("big", csv, max_bytes=20_000)


# --- apply plan (idempotency) -------------------------------------------------------------------


def test_first_apply_creates_everything_in_order(script):
    steps = sqlscript.plan_apply(script, {})
    created = [s.object_name for s in steps if s.action == "create"]
    assert created == [st.name for st in script.objects()]
    assert [s.object_name for s in steps if s.action == "load"][:2] == ["counties", "counties"]
    # the external schema is never dropped on a first apply (IF NOT EXISTS)
    assert not any(s.action == "drop" and s.object_name == "flu_stream" for s in steps)


def test_reapplying_the_same_sql_does_nothing(script):
    assert sqlscript.plan_apply(script, _applied(script)) == []


def test_auto_refresh_change_is_an_alter_not_a_rebuild(script):
    manual = sqlscript.load_script(None, {**AWS, "auto_refresh": "NO"})
    steps = sqlscript.plan_apply(manual, _applied(script))
    assert {s.action for s in steps} == {"alter", "ledger"}
    alters = [s.sql for s in steps if s.action == "alter"]
    assert alters == ["ALTER MATERIALIZED VIEW flu_cases_stream AUTO REFRESH NO"]


def test_changing_a_view_rebuilds_it_and_its_dependents_only(tmp_path, script):
    sql_dir = _copy_repo(tmp_path)
    path = sql_dir / "050_daily_aggregates.sql"
    text = path.read_text()
    old = "AS severe_cases\nFROM flu_cases\nGROUP BY report_date, county_fips"
    assert old in text
    path.write_text(text.replace(old, old.replace("severe_cases", "severe_count")))
    changed = sqlscript.load_script(sql_dir, AWS)
    steps = sqlscript.plan_apply(changed, _applied(script))
    rebuilt = [s.object_name for s in steps if s.action == "create"]
    assert rebuilt == [
        "flu_daily_county_counts",
        "flu_county_days",
        "mv_daily_county_cases",
        "mv_outbreak_series",
        "mv_outbreak_statistics",
        "mv_county_alerts",
        "v_county_latest",
        "v_current_alerts",
        "v_county_expected",
        "v_alert_episodes",
        "flu_refresh_status",
    ]
    # nor the notified set: rebuilding it would push the last week's alerts again
    kept = ("flu_cases_stream", "counties", "flu_alert_notifications")
    assert not any(s.object_name in kept for s in steps)


def test_new_reference_data_reloads_and_rebuilds_what_reads_it_but_not_the_stream(tmp_path, script):
    sql_dir = _copy_repo(tmp_path)
    csv = tmp_path / "data" / "facilities.csv"
    csv.write_text(csv.read_text().replace("MOUNT SINAI WEST", "MOUNT SINAI WEST HOSPITAL"))
    steps = sqlscript.plan_apply(sqlscript.load_script(sql_dir, AWS), _applied(script))
    touched = {s.object_name for s in steps if s.action in ("create", "load", "drop")}
    assert "facilities" in touched and "facility_refs" in touched and "flu_cases" in touched
    assert "mv_top_facilities" in touched
    assert "flu_cases_stream" not in touched and "counties" not in touched
    assert "flu_stream" not in touched


def _reads(st):
    """Relations a statement reads, by sqlglot (independent of sqlscript's own matching)."""
    tree = sqlglot.parse_one(st.sql, read="redshift")
    return {table.name.lower() for table in tree.expression.find_all(sqlglot.exp.Table)}


def test_refresh_is_one_cascade_from_the_view_that_reads_every_other(script):
    assert sqlscript.refresh_sql(script) == "REFRESH MATERIALIZED VIEW flu_refresh_status CASCADE"
    views = {st.name: st for st in script.objects("materialized_view")}
    below, todo = set(), ["flu_refresh_status"]
    while todo:  # what CASCADE refreshes: every materialized view the top one is built on
        for name in _reads(views[todo.pop()]) & set(views):
            if name not in below:
                below.add(name)
                todo.append(name)
    assert below | {"flu_refresh_status"} == set(views)


def test_a_second_top_view_is_refused(tmp_path):
    sql_dir = _copy_repo(tmp_path)
    (sql_dir / "090_extra.sql").write_text(
        "CREATE MATERIALIZED VIEW mv_extra AUTO REFRESH NO AS\n"
        "-- flu_refresh_status in a comment is not a read\n"
        "SELECT day, COUNT(*) AS n FROM mv_daily_state_cases GROUP BY day;"
    )
    script = sqlscript.load_script(sql_dir, AWS)
    assert sqlscript.top_views(script) == ["flu_refresh_status", "mv_extra"]
    with pytest.raises(
        ScriptError, match=r"exactly one .* found \['flu_refresh_status', 'mv_extra'\]"
    ):
        sqlscript.refresh_sql(script)


def test_drop_list_drops_dependents_first_and_the_ledger_last(script):
    drops = sqlscript.drop_sql(script)
    assert drops[0] == "DROP MATERIALIZED VIEW IF EXISTS flu_refresh_status CASCADE"
    assert drops[-3:] == [
        "DROP MATERIALIZED VIEW IF EXISTS flu_cases_stream CASCADE",
        "DROP SCHEMA IF EXISTS flu_stream CASCADE",
        f"DROP TABLE IF EXISTS {sqlscript.LEDGER_TABLE}",
    ]


# --- sql/ parses as Redshift SQL ----------------------------------------------------------------


def _statements_except_external_schema(script):
    return [st for st in script.objects() if st.kind != "external_schema"]


def test_every_statement_parses_with_sqlglot_redshift(script):
    for st in _statements_except_external_schema(script):
        tree = sqlglot.parse_one(st.sql, read="redshift", error_level=sqlglot.ErrorLevel.RAISE)
        assert isinstance(tree, sqlglot.exp.Create), st.name
        assert tree.find(sqlglot.exp.Table).name.lower() == st.name


def test_external_schema_statement(script):
    """sqlglot and sqlfluff (scripts/lint_sql.py, run by make lint) cannot parse CREATE EXTERNAL
    SCHEMA ... FROM KAFKA: check its form against the syntax in the Redshift docs instead
    (CREATE EXTERNAL SCHEMA: FROM KAFKA, IAM_ROLE, AUTHENTICATION iam, URI 'Kafka bootstrap
    URL'). The brokers come from the stack: no CLUSTER_ARN, so Redshift never calls
    kafka:GetBootstrapBrokers from the VPC."""
    (external,) = script.objects("external_schema")
    words = " ".join(external.sql.split())
    assert re.fullmatch(
        r"CREATE EXTERNAL SCHEMA IF NOT EXISTS flu_stream FROM KAFKA "
        r"IAM_ROLE '(arn:aws:iam::\d{12}:role/[\w+=,.@/-]+)' AUTHENTICATION iam "
        r"URI '([a-z0-9.-]+:9098)(,[a-z0-9.-]+:9098)*'",
        words,
    ), words
    assert "CLUSTER_ARN" not in words
    assert external.file == "010_stream_schema.sql"
    assert sqlscript.plan_apply(script, {})[0].sql == external.sql  # first, before the stream


def test_a_run_stopped_inside_a_ledger_write_never_loses_the_object(postgres_db, script):
    """The Data API runs one statement at a time, and sql_runner may stop between any two. After
    the INSERT of a ledger write and before its DELETE, the object still has a row (the newer
    one wins), so the next plan does not drop and re-create it: for the streaming view, a
    re-read of the topic from offset 0."""
    import psycopg

    from flu_monitor.warehouse.translate import to_postgres

    manual = sqlscript.load_script(None, {**AWS, "auto_refresh": "NO"})
    steps = sqlscript.plan_apply(manual, _applied(script))
    ledger = [s.sql for s in steps if s.action == "ledger"]
    assert [sql.split()[0] for sql in ledger] == ["INSERT", "DELETE"]
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        for sql in sqlscript.ledger_setup_sql():
            conn.execute(to_postgres(sql))
        stream = next(st for st in script.statements if st.name == "flu_cases_stream")
        conn.execute(sqlscript._ledger_write(stream)[0].sql)  # as applied before: YES
        conn.execute(ledger[0])  # the run stops after the INSERT of the flip to NO
        rows = conn.execute(sqlscript.LEDGER_QUERY).fetchall()
        assert len(rows) == 2
        applied = {**_applied(manual), **sqlscript.ledger_from_rows(rows)}
        assert sqlscript.plan_apply(manual, applied) == []  # nothing dropped, nothing redone
        conn.execute(ledger[1])
        assert conn.execute(sqlscript.LEDGER_QUERY).fetchall() == [
            ("flu_cases_stream", stream.digest, "NO")
        ]
