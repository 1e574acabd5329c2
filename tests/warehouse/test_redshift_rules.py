"""sql/ against Redshift's documented materialized-view rules (no Redshift here: the rules are
read off each statement's syntax tree). Sources, Amazon Redshift Database Developer Guide:
REFRESH MATERIALIZED VIEW ("Limitations for incremental refresh", "Cascading refresh"),
CREATE MATERIALIZED VIEW ("Limitations"), Streaming ingestion to a materialized view."""

import pytest
import sqlglot
from sqlglot import exp

from flu_monitor.warehouse import sqlscript

from .test_sqlscript import AWS

# What makes Redshift recompute a materialized view in full at every refresh.
FULL_REFRESH_AGGREGATES = {"median", "percentilecont", "groupconcat", "stddev", "stddevsamp",
                           "stddevpop", "approxdistinct", "approxquantile"}  # fmt: skip
MUTABLE_FUNCTIONS = {"getdate", "sysdate", "currentdate", "currenttimestamp", "random", "rand",
                     "dateadd", "tsordsadd", "datediff", "timestampadd"}  # fmt: skip
# Recomputed in full by design: small, bounded, and none of them reads the cases.
FULL_BY_DESIGN = {
    "flu_county_days",
    "mv_daily_county_cases",
    "mv_outbreak_series",
    "mv_outbreak_statistics",
    "mv_county_alerts",
    "flu_refresh_status",
}


@pytest.fixture(scope="module")
def views():
    script = sqlscript.load_script(None, AWS)
    return {
        st.name: sqlglot.parse_one(st.sql, read="redshift").expression
        for st in script.objects("materialized_view")
    }


def _why_full(select: exp.Select) -> list[str]:
    reasons = []
    if list(select.find_all(exp.Subquery)):
        reasons.append("subquery")
    if any(j.side for j in select.find_all(exp.Join)):
        reasons.append("outer join")
    if list(select.find_all(exp.Window)):
        reasons.append("window function")
    if list(select.find_all(exp.Union, exp.Intersect, exp.Except)):
        reasons.append("set operation")
    if list(select.find_all(exp.Distinct)):
        reasons.append("DISTINCT")
    for fn in select.find_all(exp.Func):
        name = type(fn).__name__.lower() if not isinstance(fn, exp.Anonymous) else fn.name.lower()
        if name in FULL_REFRESH_AGGREGATES:
            reasons.append(f"aggregate {name}")
        if name in MUTABLE_FUNCTIONS:
            reasons.append(f"mutable function {name}")
    return reasons


def test_only_the_bounded_views_are_recomputed_in_full(views):
    full = {name: _why_full(select) for name, select in views.items() if _why_full(select)}
    assert set(full) == FULL_BY_DESIGN, full


def test_the_typed_layer_is_flat(views):
    """Subqueries, even in FROM, make a view recompute all history at every refresh."""
    typed = ("flu_case_fields", "flu_case_records", "flu_case_first_seen", "flu_case_first_copy")
    for name in (*typed, "flu_cases"):
        assert _why_full(views[name]) == [], name


def test_case_id_dedup_uses_only_incremental_constructs(views):
    """The first copy of a case is chosen with GROUP BY + MIN and inner joins (no window
    function, no subquery, no outer join), and flu_cases joins the two choosing views."""
    for name in ("flu_case_first_seen", "flu_case_first_copy"):
        select = views[name]
        assert [type(a).__name__ for a in select.find_all(exp.AggFunc)] == ["Min"], name
        assert all(not j.side for j in select.find_all(exp.Join)), name
    reads = {t.name.lower() for t in views["flu_cases"].find_all(exp.Table)}
    assert {"flu_case_first_seen", "flu_case_first_copy"} <= reads


def test_no_incremental_view_reads_a_view_recomputed_in_full(views):
    for name, select in views.items():
        if name in FULL_BY_DESIGN:
            continue
        reads = {t.name.lower() for t in select.find_all(exp.Table)}
        assert not reads & FULL_BY_DESIGN, name


def test_views_recomputed_in_full_never_read_the_cases(views):
    growing = {"flu_cases_stream", "flu_case_fields", "flu_case_records", "flu_cases",
               "flu_case_first_seen", "flu_case_first_copy"}  # fmt: skip
    for name in FULL_BY_DESIGN:
        reads = {t.name.lower() for t in views[name].find_all(exp.Table)}
        assert not reads & growing, (name, reads & growing)


def test_the_streaming_view_reads_only_its_topic_and_cannot_fail(views):
    stream = views["flu_cases_stream"]
    assert [t.sql("redshift") for t in stream.find_all(exp.Table)] == ['flu_stream."flu_cases"']
    assert not list(stream.find_all(exp.Join))  # streaming views allow no join
    assert not _why_full(stream)  # a streaming view must be incrementally maintainable
    # JSON_PARSE runs only where CAN_JSON_PARSE said yes, inside the size limit
    (parse,) = stream.find_all(exp.ParseJSON)
    guard = parse.find_ancestor(exp.If).args["this"].sql("redshift")
    assert guard == "OCTET_LENGTH(kafka_value) <= 65535 AND CAN_JSON_PARSE(kafka_value)"


def test_every_ordered_window_aggregate_has_a_frame(views):
    """Redshift: "If an ORDER BY clause is used for an aggregate function, an explicit frame
    clause is required" (STDDEV_SAMP and STDDEV_POP window functions; Window functions); LAG and
    ROW_NUMBER take none: "The OVER clause cannot contain a window frame specification" (LAG
    window function)."""
    windows = [w for select in views.values() for w in select.find_all(exp.Window)]
    assert any(isinstance(w.this, exp.Lag) for w in windows)
    for window in windows:
        if isinstance(window.this, exp.Lag | exp.RowNumber):
            assert not window.args.get("spec"), window.sql("redshift")
        elif window.args.get("order"):
            assert window.args.get("spec"), window.sql("redshift")
