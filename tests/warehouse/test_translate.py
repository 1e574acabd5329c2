"""The Redshift -> PostgreSQL translation rules, and the shim functions on a real PostgreSQL."""

import psycopg
import pytest

from flu_monitor.warehouse import postgres, sqlscript, translate
from flu_monitor.warehouse.translate import TranslationError, to_postgres
from tests.fixtures.postgres import worker_unique

from .conftest import TRANSLATION, translated_objects


@pytest.fixture(scope="module")
def objects():
    return translated_objects()  # the translator's own output, not the translation cache's


# --- expression rules (no database) ------------------------------------------------------------


def test_super_navigation_becomes_jsonb_path():
    sql = to_postgres("SELECT payload.case_id, t.x FROM t", {"payload"})
    assert sql == "SELECT JSONB_EXTRACT_PATH(payload, 'case_id'), t.x FROM t"


def test_super_cast_to_text_reads_the_string_unquoted():
    sql = to_postgres("SELECT payload.gender::VARCHAR(16) FROM t", {"payload"})
    assert sql == "SELECT CAST(JSONB_EXTRACT_PATH_TEXT(payload, 'gender') AS VARCHAR(16)) FROM t"


def test_super_array_index_stays_zero_based():
    # sqlglot alone would write payload.symptoms[1] (PostgreSQL arrays are 1-based)
    sql = to_postgres("SELECT payload.symptoms[0] FROM t", {"payload"})
    assert sql == "SELECT JSONB_EXTRACT_PATH(payload, 'symptoms', '0') FROM t"


def test_a_column_of_another_table_is_not_navigated():
    assert to_postgres("SELECT s.value_bytes FROM s", {"payload"}) == (
        "SELECT s.value_bytes FROM s"
    )


def test_varbyte_and_super_functions_call_the_shims():
    sql = to_postgres(
        "SELECT JSON_PARSE(v), CAN_JSON_PARSE(v), JSON_SERIALIZE(p), JSON_TYPEOF(p), TO_HEX(v) "
        "FROM t"
    )
    assert sql == (
        "SELECT JSON_PARSE(v), CAN_JSON_PARSE(v), JSON_SERIALIZE(p), JSON_TYPEOF(p), TO_HEX(v) "
        "FROM t"
    )  # sqlglot alone: CAST(v AS JSON) and LOWER(HEX(v))


@TRANSLATION
def test_redshift_table_attributes_are_dropped_and_sort_keys_become_indexes(objects):
    counties = objects["counties"]
    assert "DISTSTYLE" not in counties.create[0] and "SORTKEY" not in counties.create[0]
    assert "CREATE INDEX counties_fips ON counties (fips)" in counties.create
    stream = objects["flu_cases_stream"]
    assert not any("AUTO REFRESH" in sql.upper() for sql in stream.create)


@TRANSLATION
def test_external_schema_becomes_a_schema_with_the_topic_stand_in(objects):
    assert objects["msk"].create == ["CREATE SCHEMA IF NOT EXISTS msk"]
    stand_in = objects["flu_cases_stream"].create[0]
    assert 'CREATE TABLE IF NOT EXISTS "msk"."flu_cases"' in stand_in
    for column in ("kafka_partition", "kafka_offset", "kafka_timestamp_type", "kafka_timestamp",
                   "kafka_key", "kafka_value", "kafka_headers", "refresh_time"):  # fmt: skip
        assert f"{column} " in stand_in
    assert "kafka_value BYTEA" in stand_in


def test_redshift_dialect_functions_keep_their_meaning():
    assert to_postgres("SELECT DATEADD(day, -6, d) FROM t") == (
        "SELECT CAST(d AS TIMESTAMP) + INTERVAL '-6 DAY' FROM t"
    )
    assert to_postgres("SELECT BTRIM(x, '\"'), NVL(a, b) FROM t") == (
        "SELECT TRIM('\"' FROM x), COALESCE(a, b) FROM t"
    )


# --- how each view is refreshed locally ---------------------------------------------------------


@TRANSLATION
def test_each_view_gets_the_refresh_redshift_would_use(objects):
    kinds = {o.name: o.kind for o in objects.values() if o.refresh is not None}
    assert kinds == {
        "flu_cases_stream": "stream",
        "flu_case_fields": "projection",  # row by row, no join: a plain view locally
        "flu_case_records": "append",  # GROUP BY (partition, offset): each group arrives once
        "flu_case_first_seen": "aggregate",  # settled: MIN of the refresh stamp
        "flu_case_first_copy": "aggregate",  # settled: grouped by the refresh stamp
        "flu_cases": "append",  # inner joins to reference tables and the two settled aggregates
        "mv_daily_state_cases": "aggregate",
        "flu_daily_county_counts": "aggregate",
        "mv_hospitalization_by_age_band": "aggregate",
        "mv_severity_by_age_band": "aggregate",
        "mv_vaccination_outcomes": "aggregate",
        "mv_top_facilities": "aggregate",
        # recomputed by day: each row of a day from the days at most `reach` before it
        "flu_county_days": "days",  # outer join: the zero-filled grid
        "mv_daily_county_cases": "days",  # window function over the grid
        "mv_outbreak_series": "days",  # window functions over the grid
        "mv_outbreak_statistics": "days",
        "mv_county_alerts": "days",
        "flu_refresh_status": "full",  # reads seven small views
    }
    assert objects["flu_cases"].source == "flu_case_records"
    # the records by delta; the settled aggregates whole (a rebuild from history) ...
    whole, fresh = objects["flu_cases"].refresh_steps
    assert "FROM flu_case_records WHERE _seq > " in whole and "FROM flu_case_records" in fresh
    assert "INNER JOIN flu_case_first_seen AS s ON" in whole
    # ... or only the rows this refresh made in them: never the history for a few new records
    assert "INNER JOIN (SELECT * FROM flu_case_first_seen WHERE _seq > __fresh_since_" in fresh
    # grouped by the refresh stamp: every group a refresh makes is new, nothing to merge
    assert "ON CONFLICT" not in objects["flu_case_first_copy"].refresh
    assert not any("_group" in c for c in objects["flu_case_first_copy"].create)
    assert "ON CONFLICT (case_id) DO UPDATE" in objects["flu_case_first_seen"].refresh
    assert objects["mv_top_facilities"].source == "flu_cases"


@TRANSLATION
def test_merged_rates_are_recomputed_from_merged_counts(objects):
    merge = objects["mv_hospitalization_by_age_band"].refresh
    assert "ON CONFLICT (day, state_code, age_band) DO UPDATE SET" in merge
    assert (
        "hospitalization_rate = ROUND(100.0 * (COALESCE(t.hospitalized_cases + "
        "EXCLUDED.hospitalized_cases, t.hospitalized_cases, EXCLUDED.hospitalized_cases)) / "
        "(COALESCE(t.total_cases + EXCLUDED.total_cases, t.total_cases, EXCLUDED.total_cases)), 2)"
    ) in merge


def test_a_rate_over_an_aggregate_that_is_not_a_column_is_refused(tmp_path):
    (tmp_path / "001_x.sql").write_text(
        "CREATE EXTERNAL SCHEMA {{stream_schema}} FROM KAFKA IAM_ROLE '{{iam_role_arn}}' "
        "AUTHENTICATION iam URI '{{bootstrap_servers}}';\n"
        "CREATE MATERIALIZED VIEW s AUTO REFRESH {{auto_refresh}} AS "
        'SELECT kafka_partition, kafka_offset FROM {{stream_schema}}."{{topic}}";\n'
        "CREATE MATERIALIZED VIEW m AUTO REFRESH {{auto_refresh}} AS "
        "SELECT kafka_partition AS p, COUNT(*) AS n, 1.0 * SUM(kafka_offset) / COUNT(*) AS r "
        "FROM s GROUP BY kafka_partition;\n"
    )
    script = sqlscript.load_script(tmp_path, postgres.LOCAL_PLACEHOLDERS)
    with pytest.raises(TranslationError, match=r"m\.r: SUM\(kafka_offset\) must also be a column"):
        translate.translate_script(script)


# --- shims on PostgreSQL ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shim_db(postgres_server):
    url = postgres_server.create_database(worker_unique("shims"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(postgres.SHIMS.read_text())
        yield conn


@pytest.mark.parametrize(
    ("value", "parses"),
    [
        (b'{"a": 1}', True),
        (b"[1, 2]", True),
        (b"42", True),
        (b'{"a": ', False),
        (b"\xff\xfe{}", False),  # not UTF-8
        (b"", False),
    ],
)
def test_can_json_parse_on_bytes(shim_db, value, parses):
    assert shim_db.execute("SELECT can_json_parse(%s::bytea)", (value,)).fetchone()[0] is parses


def test_super_functions_on_jsonb(shim_db):
    row = shim_db.execute(
        'SELECT json_typeof(json_parse(\'{"a": ["x", "y"]}\'::bytea)), '
        "json_serialize(json_parse('{\"a\": 1}'::text)), to_hex('\\xff00'::bytea), "
        + to_postgres("SELECT payload.a[1]", {"payload"}).removeprefix("SELECT ")
        + ' FROM (SELECT json_parse(\'{"a": ["x", "y"]}\'::text) AS payload) AS t'
    ).fetchone()
    assert row == ("object", '{"a": 1}', "ff00", "y")  # index 1 is the SECOND element
