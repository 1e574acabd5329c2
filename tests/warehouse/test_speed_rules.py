"""The translation's speed rules give the same results as the SQL they replace, on PostgreSQL."""

import random
import re

import psycopg
import pytest
import sqlglot

from flu_monitor.warehouse import postgres, speed
from flu_monitor.warehouse.dialect import Dialect
from flu_monitor.warehouse.translate import to_postgres

from .conftest import TRANSLATION, event, ingest, local_objects, query, translated_objects

SYMPTOMS = (
    "fever|cough|sore_throat|runny_nose|muscle_aches|headache|fatigue|chills|vomiting|diarrhea"
    "|shortness_of_breath"
)
SYMPTOMS_LIST = f"^({SYMPTOMS})(,({SYMPTOMS}))*$"  # the pattern sql/040_cases.sql checks


@pytest.fixture
def db(warehouse):
    """A connection to a database with sql/ applied (and so the shims)."""
    with psycopg.connect(warehouse, autocommit=True) as conn:
        yield conn


def _texts(seed: int = 7, count: int = 3000) -> list[str | None]:
    """Edge cases, then random lists of listed words, near misses and junk."""
    words = SYMPTOMS.split("|")
    fixed = ["fever", "fever,cough", "fever,fever", "", ",", ",,", "fever,", ",fever",
             "fever,,cough", "feverfever", "Fever", "fever cough", "fever;cough", "fe,ver",
             "shortness_of_breath", "shortness", "of_breath", "fever,coughs", "xfever",
             "fever\n", "cough,fever,chills,fatigue,headache", None]  # fmt: skip
    pieces = [*words, "", "feve", "coughcough", "x", "fever,", "COUGH", " ", "_", "%", "fe ver"]
    rng = random.Random(seed)
    drawn = [
        rng.choice([",", ",", ",", ";", ",,", ""]).join(
            rng.choice(pieces) for _ in range(rng.randint(1, 5))
        )
        for _ in range(count)
    ]
    return fixed + drawn


def test_a_word_list_regex_becomes_replace_calls():
    sql = to_postgres("SELECT x ~ '^(ab|c)(,(ab|c))*$' FROM t")
    assert sql == (
        "SELECT (REPLACE(REPLACE(',' || REPLACE(x, ',', ',,') || ',', ',ab,', ''), ',c,', '') "
        "= '') FROM t"
    )


@pytest.mark.parametrize(
    "pattern",
    [
        "^(a|b)(,(a|c))*$",  # the two lists differ
        "^(a|b)(,(a|b))+$",  # + instead of *
        "^(a.|b)(,(a.|b))*$",  # a metacharacter in a word
        "^(a|b)(.(a|b))*$",  # a metacharacter as the delimiter
        "(a|b)(,(a|b))*$",  # not anchored
    ],
)
def test_other_regexes_stay_regexes(pattern):
    assert f"x ~ '{pattern}'" in to_postgres(f"SELECT x ~ '{pattern}' FROM t")


def test_word_list_rule_equals_the_regex_on_postgresql(db):
    texts = _texts()
    translated = to_postgres(f"SELECT x ~ '{SYMPTOMS_LIST}' FROM t").removeprefix("SELECT ")
    translated = translated.removesuffix(" FROM t")
    assert "~" not in translated
    rows = db.execute(
        f"SELECT x, x ~ '{SYMPTOMS_LIST}', {translated} FROM unnest(%s::text[]) AS u(x)",
        (texts,),
    ).fetchall()
    differ = [(x, regex, rule) for x, regex, rule in rows if regex is not rule]
    assert differ == []
    python = re.compile(SYMPTOMS_LIST)  # and both agree with an independent regex engine
    assert all(
        (regex is None) if x is None else regex is bool(python.fullmatch(x)) for x, regex, _ in rows
    )
    assert sum(1 for _, regex, _ in rows if regex) > 300  # the sample has matches too


# --- CAN_JSON_PARSE + JSON_PARSE parse once ---------------------------------------------------

STREAM_SELECT = (
    "SELECT k, OCTET_LENGTH(v) AS n, "
    "CASE WHEN OCTET_LENGTH(v) <= 65535 AND CAN_JSON_PARSE(v) THEN JSON_PARSE(v) END AS payload, "
    "CASE WHEN OCTET_LENGTH(v) > 65535 OR NOT CAN_JSON_PARSE(v) THEN SUBSTRING(v, 1, 8) END AS raw "
    "FROM t"
)  # the shape of sql/020_stream.sql
VALUES = [
    b'{"a": 1}', b"[1, 2]", b"42", b"null", b'"text"', b'{"a": ', b"\xff\xfe{}", b"", b"  ",
    b'{"a": "\\u00e9"}', b'{"a": 1} x', b'{"big": "' + b"x" * 70_000 + b'"}', None,
]  # fmt: skip


def _parse_once(sql: str) -> str:
    tree = speed.expression(sqlglot.parse_one(sql, read="redshift"), Dialect())
    return speed.parse_json_once(tree).sql("postgres")


def test_parse_once_wraps_the_source_and_parses_each_value_once():
    sql = _parse_once(STREAM_SELECT)
    assert sql.count("TRY_JSON_PARSE(v)") == 1
    assert "CAN_JSON_PARSE" not in sql
    assert "FROM (SELECT *, TRY_JSON_PARSE(v) AS _parsed_json_1 FROM t) AS t" in sql


@TRANSLATION
def test_the_streaming_view_parses_each_record_once(objects):
    stream = objects["flu_cases_stream"].refresh
    assert stream.count("TRY_JSON_PARSE(") == 1 and "CAN_JSON_PARSE" not in stream
    # fenced, or PostgreSQL would inline the column and call TRY_JSON_PARSE once per use again
    assert (
        "TRY_JSON_PARSE(kafka_value) AS _parsed_json_1 FROM (SELECT * FROM moved OFFSET 0) AS "
        "flu_cases OFFSET 0) AS flu_cases"
    ) in stream


def test_parse_once_gives_what_the_guarded_calls_give(db):
    table = "(SELECT k, v FROM unnest(%s::bytea[]) WITH ORDINALITY AS u(v, k)) AS t"
    plain = to_postgres(STREAM_SELECT).replace("FROM t", f"FROM {table}")
    once = _parse_once(STREAM_SELECT).replace("FROM t)", f"FROM {table})")
    assert "TRY_JSON_PARSE" in once and "CAN_JSON_PARSE" in plain
    expected = db.execute(plain + " ORDER BY k", (VALUES,)).fetchall()
    assert db.execute(once + " ORDER BY k", (VALUES,)).fetchall() == expected
    payloads = [row[2] for row in expected]
    assert payloads[:5] == [{"a": 1}, [1, 2], 42, None, "text"]  # JSON null -> SQL NULL (psycopg)
    assert [row[3] for row in expected][5:9] == [b'{"a": ', b"\xff\xfe{}", b"", b"  "]
    assert expected[11][2] is None and expected[11][3] == b'{"big": '  # oversized
    assert expected[12][1:] == (None, None, None)


def test_an_unguarded_json_parse_of_bad_input_still_fails(db):
    once = _parse_once("SELECT CAN_JSON_PARSE(v), JSON_PARSE(v) FROM t")
    assert "TRY_JSON_PARSE" in once
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        db.execute(once.replace("FROM t)", "FROM (SELECT '{x'::bytea AS v) AS t)")).fetchall()


# --- one row per record: no GROUP BY, no ON CONFLICT --------------------------------------------


@pytest.fixture(scope="module")
def objects():
    return translated_objects()  # the translator's own output, not the translation cache's


@TRANSLATION
def test_records_grouped_by_their_key_refresh_without_grouping(objects):
    records = objects["flu_case_records"]
    assert "GROUP BY" in records.query  # the view itself (what a full recompute runs)
    assert "GROUP BY" not in records.refresh and "MAX(" not in records.refresh
    assert "ON CONFLICT" not in records.refresh  # new by construction; the unique index guards
    assert "1 AS copies" in records.refresh
    assert "ON CONFLICT (kafka_partition, kafka_offset) DO NOTHING" in objects["flu_cases"].refresh


def test_grouping_stays_when_a_group_can_hold_several_records():
    def one_per_record(sql):
        return speed.one_row_per_record(sqlglot.parse_one(sql, read="redshift"))

    assert one_per_record(
        "SELECT kafka_partition, kafka_offset, MAX(x) FROM (SELECT * FROM s) AS d "
        "GROUP BY kafka_partition, kafka_offset"
    )
    assert not one_per_record(  # a join can repeat a record
        "SELECT kafka_partition, kafka_offset, MAX(x) FROM (SELECT s.* FROM s CROSS JOIN c) AS d "
        "GROUP BY kafka_partition, kafka_offset"
    )
    assert not one_per_record(  # the key is not passed on unchanged
        "SELECT kafka_partition, kafka_offset, MAX(x) FROM "
        "(SELECT kafka_partition, kafka_offset / 2 AS kafka_offset, x FROM s) AS d "
        "GROUP BY kafka_partition, kafka_offset"
    )
    assert not one_per_record("SELECT kafka_partition, MAX(x) FROM s GROUP BY kafka_partition")


def test_aggregates_of_one_row(db):
    grouped = sqlglot.parse_one(
        "SELECT kafka_partition, kafka_offset, MIN(x) AS a, MAX(x) AS b, SUM(x) AS c, "
        "COUNT(*) AS d, COUNT(x) AS e FROM s GROUP BY kafka_partition, kafka_offset",
        read="redshift",
    )
    ungrouped = speed.without_group_by(grouped).sql("postgres")
    source = "(VALUES (0, 1, 5), (0, 2, NULL)) AS s(kafka_partition, kafka_offset, x)"
    run = lambda sql: db.execute(sql.replace("FROM s", f"FROM {source}") + " ORDER BY 2").fetchall()  # noqa: E731
    assert (
        run(ungrouped)
        == run(grouped.sql("postgres"))
        == [(0, 1, 5, 5, 5, 1, 1), (0, 2, None, None, None, 1, 0)]
    )


# --- a row-by-row view over a stored one is a plain view -------------------------------------


@TRANSLATION
def test_a_projection_is_a_view_that_passes_on_its_sources_position(objects):
    fields = objects["flu_case_fields"]
    assert fields.kind == "projection" and fields.source == "flu_cases_stream"
    assert fields.create[0].startswith("CREATE VIEW flu_case_fields AS SELECT")
    assert fields.create[0].endswith(", flu_cases_stream._seq FROM flu_cases_stream")
    assert objects["flu_case_records"].source == "flu_case_fields"  # still incremental


def test_an_older_table_form_is_replaced_by_the_view_and_everything_after_rebuilt(warehouse):
    ingest(warehouse, [event(age=a) for a in range(30)] + [b"not json"])
    before = query(warehouse, "SELECT count(*), sum(age) FROM flu_cases")
    with psycopg.connect(warehouse) as conn:  # flu_case_fields as an earlier version stored it
        conn.execute("DROP VIEW flu_case_fields")
        conn.execute(
            "CREATE TABLE flu_case_fields AS SELECT * FROM ("
            + local_objects()["flu_case_fields"].query
            + ") AS q"
        )
    steps = postgres.apply(warehouse)
    recreated = {s.object_name for s in steps if s.action == "create"}
    assert {"flu_case_fields", "flu_case_records", "flu_cases"} <= recreated
    assert query(warehouse, "SELECT relkind FROM pg_class WHERE relname = 'flu_case_fields'") == [
        ("v",)
    ]
    assert query(warehouse, "SELECT count(*), sum(age) FROM flu_cases") == before == [(30, 435)]
    assert query(warehouse, "SELECT reason, records FROM flu_rejected_records") == [
        ("invalid_json", 1)
    ]
    assert postgres.apply(warehouse) == []  # and the next apply has nothing to do
