"""Stage 4 of the translation: what each object of sql/ becomes on PostgreSQL, and its refresh.

A Redshift materialized view becomes a TABLE maintained by `flu_monitor.warehouse.postgres`'s
refresh() with the view's own SELECT, applied the way Redshift would refresh it (see
docs/warehouse.md), or, for a row-by-row projection of one stored view, a plain VIEW:

- stream:    the view over the topic. Refresh moves the stand-in's rows into it (DELETE ...
             RETURNING feeds the SELECT), one row per (kafka_partition, kafka_offset), and stamps
             them with the refresh's time (`refresh_time`, strictly later at every refresh).
- append:    no aggregate (or GROUP BY a unique key of its source), one growing source plus
             reference tables and settled aggregates of that source (below). Refresh runs the
             SELECT over the source rows added since the last refresh (a watermark on the hidden
             `_seq` column) and appends.
- projection: an append view that reads one source row by row (no join, no aggregate, no sort
             key): a plain VIEW passing on the source's `_seq`; nothing to refresh.
- aggregate: GROUP BY with COUNT/SUM/MIN/MAX over one append-only source. Refresh aggregates the
             new source rows and merges them into the existing groups (INSERT ... ON CONFLICT DO
             UPDATE adding counts); columns computed from aggregates are recomputed from the merged
             counts.
- days:      a view whose every row of a day is computed from the days before it, at most
             `reach` days back (window functions ordered by day with bounded frames, over
             day-keyed relations: aggregates grouped by day and other days views), and whose
             range of days is bounded by MIN/MAX(day) of a day-keyed relation. Refresh deletes and
             recomputes only the days the changed days of what it reads can reach (each changed
             day and the `reach` days after it, the days the range gained or lost at either end),
             its inputs read from `reach` days before them (_days_steps); in full
             when it is new, when what it reads changed whole, or when a changed day lies before
             its first day (its first day may be the anchor of day counts: history_days).
- full:      anything else (window functions, outer joins, aggregates of aggregates). Refresh
             recomputes it (DELETE + INSERT in the refresh transaction) when a relation it reads
             changed. sql/ keeps these small (they read daily aggregates, not cases).

A *settled* aggregate is one whose rows never change after the refresh that makes them: it is
grouped by the refresh stamp, or it only takes MIN of the stamp (a later record has a later
stamp). An append view may join one over its own source when the join binds the aggregate's
stamp to the source row's: a source row of an earlier refresh then matches exactly the rows it
matched then, so joining only the new source rows to the aggregate's current state is exact.

CREATE EXTERNAL SCHEMA ... FROM KAFKA becomes CREATE SCHEMA: its topic relation becomes the
stand-in table the local ingester fills (same kafka_* columns, kafka_value as bytea).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from flu_monitor.warehouse import speed
from flu_monitor.warehouse.dialect import Dialect
from flu_monitor.warehouse.objects import (
    DAY,
    DAYS,
    FRESH_SINCE,
    FROM_DAY,
    HI,
    LO,
    REFRESH_STAMP,
    SEQ,
    STAMP,
    TO_DAY,
    Kind,
    LocalObject,
    TranslationError,
)
from flu_monitor.warehouse.parse import aggregates, names, parse, tables
from flu_monitor.warehouse.speed import UNIQUE_KEY
from flu_monitor.warehouse.sqlscript import Script, Statement

STAND_IN_COLUMNS = (
    ("kafka_partition", "INTEGER NOT NULL"),
    ("kafka_offset", "BIGINT NOT NULL"),
    ("kafka_timestamp_type", "CHAR(1) NOT NULL DEFAULT 'C'"),
    ("kafka_timestamp", "TIMESTAMP NOT NULL"),
    ("kafka_key", "BYTEA"),
    ("kafka_value", "BYTEA"),
    ("kafka_headers", "JSONB"),
    # When it was ingested; the streaming view's refresh_time is the refresh's time (REFRESH_STAMP).
    ("refresh_time", "TIMESTAMP NOT NULL DEFAULT clock_timestamp()"),
)
MERGEABLE = {"count": "sum", "sum": "sum", "max": "greatest", "min": "least"}


@dataclass
class Catalog:
    """What the plan knows of the relations made so far (sql/ is in dependency order)."""

    dialect: Dialect = field(default_factory=Dialect)
    external_schemas: set[str] = field(default_factory=set)
    append_only: set[str] = field(default_factory=set)  # local tables only ever appended to
    keyed: set[str] = field(default_factory=set)  # tables unique on (partition, offset)
    static: set[str] = field(default_factory=set)  # reference tables (change only on apply)
    stamped: set[str] = field(default_factory=set)  # REFRESH_STAMP is the stream's, unchanged
    settled: dict[str, Settled] = field(default_factory=dict)
    day_keyed: dict[str, int] = field(default_factory=dict)  # relation -> reach (LocalObject)
    day_tables: set[str] = field(default_factory=set)  # reference tables with a DAY column


@dataclass(frozen=True)
class Settled:
    """A settled aggregate (see the module doc): its source and its stamp column."""

    source: str
    stamp_column: str


def plan_script(script: Script) -> dict[str, LocalObject]:
    """Every object of sql/ as PostgreSQL, keyed by object name, in order."""
    catalog = Catalog()
    planners: dict[str, Callable[[Statement, Catalog], LocalObject]] = {
        "external_schema": _external_schema,
        "materialized_view": _materialized_view,
        "table": _table,
        "view": _view,
    }
    objects = {}
    for st in script.objects():
        try:
            objects[st.name] = planners[st.kind](st, catalog)
        except sqlglot.errors.SqlglotError as exc:
            raise TranslationError(f"{st.file}: {st.name}: {exc}") from exc
    return objects


# --- tables, views, schemas -------------------------------------------------------------------


def _table(st: Statement, catalog: Catalog) -> LocalObject:
    parsed = parse(st.sql)
    create = [speed.expression(parsed.tree, catalog.dialect).sql("postgres")]
    create += [f"CREATE INDEX {st.name}_{c} ON {st.name} ({c})" for c in parsed.sort_columns]
    catalog.static.add(st.name)
    made = parsed.tree.expression
    if isinstance(made, exp.Select):  # CREATE TABLE ... AS SELECT
        columns = [p.alias_or_name.lower() for p in made.expressions]
    else:
        columns = [c.name.lower() for c in parsed.tree.find_all(exp.ColumnDef)]
    if DAY in columns:
        catalog.day_tables.add(st.name)
    return LocalObject(st.name, Kind.TABLE, create, [f"DROP TABLE IF EXISTS {st.name} CASCADE"])


def _view(st: Statement, catalog: Catalog) -> LocalObject:
    create = [speed.expression(parse(st.sql).tree, catalog.dialect).sql("postgres")]
    return LocalObject(st.name, Kind.VIEW, create, [f"DROP VIEW IF EXISTS {st.name} CASCADE"])


def _external_schema(st: Statement, catalog: Catalog) -> LocalObject:
    catalog.external_schemas.add(st.name)
    return LocalObject(
        st.name,
        Kind.SCHEMA,
        create=[f"CREATE SCHEMA IF NOT EXISTS {st.name}"],
        drop=[f"DROP SCHEMA IF EXISTS {st.name} CASCADE"],
    )


def _stand_in(table: exp.Table) -> list[str]:
    columns = ",\n    ".join(f"{n} {t}" for n, t in STAND_IN_COLUMNS)
    name = exp.table_(table.name, db=table.db, quoted=True).sql("postgres")
    return [
        f"CREATE TABLE IF NOT EXISTS {name} (\n    {columns}\n)",
        f"CREATE INDEX IF NOT EXISTS {table.name}_stand_in_offset "
        f"ON {name} (kafka_partition, kafka_offset)",
    ]


def _drop_table_or_view(name: str) -> str:
    """Drop a materialized view's local form, whichever it is now (a table or, for a
    projection, a view), so a change of form is an ordinary re-create."""
    return (
        f'DO $$ DECLARE kind "char" := (SELECT relkind FROM pg_class '
        f"WHERE oid = to_regclass('{name}')); BEGIN "
        f"IF kind = 'v' THEN DROP VIEW {name} CASCADE; "
        f"ELSIF kind IS NOT NULL THEN DROP TABLE {name} CASCADE; END IF; END $$"
    )


# --- materialized views -----------------------------------------------------------------------


def _materialized_view(st: Statement, catalog: Catalog) -> LocalObject:
    parsed = parse(st.sql)
    select = parsed.tree.expression
    if not isinstance(select, exp.Select):
        raise TranslationError(f"{st.name}: a materialized view must be one SELECT")
    # SUPER columns made here (JSON_PARSE aliases) are navigated with -> from now on.
    for projection in select.expressions:
        if projection.find(exp.ParseJSON):
            catalog.dialect.super_columns.add(projection.alias_or_name.lower())
    columns = [p.alias_or_name.lower() for p in select.expressions]
    reads = names(select)
    growing = [
        t
        for t in tables(select)
        if t.name.lower() in catalog.append_only or (t.db or "").lower() in catalog.external_schemas
    ]
    kind, reason = _classify(st, select, growing, reads, catalog)
    reach = None
    if kind is Kind.FULL and DAY in columns:
        reach, why_not = _day_reach(select, reads, catalog)
        if reach is not None:
            kind, reason = Kind.DAYS, None
        else:
            reason = f"{reason}; not by day: {why_not}"
    source = growing[0] if growing else None
    pg_select = speed.select(select.copy(), catalog.dialect)
    if (
        kind is Kind.APPEND
        and source is not None
        and not parsed.sort_columns
        and _is_projection(select)
    ):
        return _projection(st, pg_select, source, columns, reads, catalog)
    create = []
    if kind is Kind.STREAM and source is not None:
        create += _stand_in(source)
    create.append(f"CREATE TABLE {st.name} AS {pg_select.sql('postgres')} WITH NO DATA")
    create.append(f"ALTER TABLE {st.name} ADD COLUMN {SEQ} BIGINT GENERATED ALWAYS AS IDENTITY")
    create.append(f"CREATE INDEX {st.name}{SEQ} ON {st.name} ({SEQ})")
    for column in parsed.sort_columns:
        create.append(f"CREATE INDEX {st.name}_{column} ON {st.name} ({column})")
    keyed = set(UNIQUE_KEY) <= set(columns) and kind in (Kind.STREAM, Kind.APPEND)
    if keyed:
        create.append(
            f"CREATE UNIQUE INDEX {st.name}_record ON {st.name} ({', '.join(UNIQUE_KEY)})"
        )
    view = _View(st.name, kind, select, source, columns)
    steps, indexes = _refresh_steps(view, catalog)
    create += indexes
    _note_stamp(view, catalog)
    day_steps = None
    if kind is Kind.DAYS:
        day_steps = _days_steps(view, catalog)
    elif kind is Kind.AGGREGATE and DAY in _group_columns(view) and len(steps) == 1:
        reach = 0  # its rows of a day are that day's only: report the days it wrote
        steps = [_per_day(steps[0])]
    if reach is not None:
        catalog.day_keyed[st.name] = reach
    if kind in (Kind.STREAM, Kind.APPEND):
        catalog.append_only.add(st.name)
    if keyed:
        catalog.keyed.add(st.name)
    return LocalObject(
        st.name,
        kind,
        create=create,
        drop=[_drop_table_or_view(st.name)],
        refresh_steps=steps,
        source=(source.name.lower() if source is not None and kind is not Kind.STREAM else None),
        reads=reads,
        columns=columns,
        note=reason,
        query=pg_select.sql("postgres"),
        reach=reach,
        day_steps=day_steps,
    )


@dataclass(frozen=True)
class _View:
    """A materialized view being planned: its Redshift SELECT and what it was classified as."""

    name: str
    kind: Kind
    select: exp.Select
    source: exp.Table | None  # its growing relation (the topic for the stream)
    columns: list[str]


def _is_projection(select: exp.Select) -> bool:
    """Row by row over one source, nothing aggregated or joined: what a plain view can be."""
    return (
        not select.args.get("group") and not aggregates(select) and speed.one_row_per_record(select)
    )


def _projection(
    st: Statement,
    pg_select: exp.Expr,
    source: exp.Table,
    columns: list[str],
    reads: list[str],
    catalog: Catalog,
) -> LocalObject:
    """A materialized view that computes each record of one stored view by itself (no join,
    no aggregate) becomes a plain VIEW: at every refresh it shows exactly the rows a stored copy
    would hold (its source only changes in the refresh transaction), and computing them while
    the next view refreshes costs less than storing them (flu_case_fields: 3 us a record). It
    passes on its source's _seq, so the views reading it refresh incrementally as before."""
    assert isinstance(pg_select, exp.Select)
    alias = source.alias_or_name
    with_seq = pg_select.copy().select(exp.column(SEQ, table=alias), append=True)
    _note_stamp(_View(st.name, Kind.PROJECTION, pg_select, source, columns), catalog)
    catalog.append_only.add(st.name)
    catalog.keyed.add(st.name)
    return LocalObject(
        st.name,
        Kind.PROJECTION,
        create=[f"CREATE VIEW {st.name} AS {with_seq.sql('postgres')}"],
        drop=[_drop_table_or_view(st.name)],
        refresh_steps=[],  # nothing to store; refresh() passes on whether its source changed
        source=source.name.lower(),
        reads=reads,
        columns=columns,
        note=f"a view: each record of {source.name.lower()} computed when read",
        query=pg_select.sql("postgres"),
    )


def _classify(
    st: Statement, select: exp.Select, growing: list[exp.Table], reads: list[str], c: Catalog
) -> tuple[Kind, str | None]:
    """stream | append | aggregate | full, and why not incremental (None when it is)."""
    if growing and (growing[0].db or "").lower() in c.external_schemas:
        if len(tables(select)) != 1:
            raise TranslationError(f"{st.name}: the streaming view must read only its topic")
        return Kind.STREAM, None
    if len(growing) != 1:
        return Kind.FULL, "does not read exactly one growing relation"
    others = [n for n in reads if n != growing[0].name.lower()]
    if any(n not in c.static and not _joins_settled(select, growing[0], n, c) for n in others):
        return Kind.FULL, "joins another growing relation"
    for node in select.find_all(exp.Window, exp.Distinct, exp.Union, exp.Join):
        if isinstance(node, exp.Join) and not node.side:
            continue  # inner and cross joins with reference tables apply row by row
        return Kind.FULL, f"uses {node.key.upper()}"
    top_aggregates = aggregates(select)
    subquery_aggs = [a for a in select.find_all(exp.AggFunc) if a not in top_aggregates]
    group = select.args.get("group")
    if not group and not top_aggregates:
        return Kind.APPEND, None
    group_cols = {g.name.lower() for g in (group.expressions if group else []) if g.name}
    # GROUP BY a unique key of an append-only source: every group is new, never updated.
    if growing[0].name.lower() in c.keyed and set(UNIQUE_KEY) <= group_cols:
        return Kind.APPEND, None
    if subquery_aggs or not group:
        return Kind.FULL, "aggregates below the top level"
    if any(type(a).__name__.lower() not in MERGEABLE for a in top_aggregates):
        return Kind.FULL, "an aggregate that cannot be merged"
    return Kind.AGGREGATE, None


# --- the refresh stamp: stamped views and settled aggregates -----------------------------------


def _stamp_projection(select: exp.Select) -> exp.Expr | None:
    """The expression a SELECT outputs as REFRESH_STAMP, if any."""
    for projection in select.expressions:
        if projection.alias_or_name.lower() == REFRESH_STAMP:
            value: exp.Expr = projection.unalias()
            return value
    return None


def _is_stamp(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Column) and node.name.lower() == REFRESH_STAMP


def _note_stamp(view: _View, catalog: Catalog) -> None:
    """Record whether the view carries the refresh stamp unchanged (stamped), or is an aggregate
    whose rows are final once made (settled, see the module doc)."""
    name, kind, select = view.name, view.kind, view.select
    if kind is Kind.STREAM:
        catalog.stamped.add(name)
        return
    if view.source is None or view.source.name.lower() not in catalog.stamped:
        return
    source_name = view.source.name.lower()
    stamp = _stamp_projection(select)
    if kind is Kind.PROJECTION and _is_stamp(stamp):
        catalog.stamped.add(name)
    elif (
        kind is Kind.APPEND
        and speed.one_row_per_record(select)
        and (_is_stamp(stamp) or (isinstance(stamp, exp.Min | exp.Max) and _is_stamp(stamp.this)))
    ):
        catalog.stamped.add(name)  # one row per record: MIN/MAX of one stamp is the stamp
    elif kind is Kind.AGGREGATE:
        by_stamp = _grouped_by_stamp(view, catalog)
        top_aggregates = aggregates(select)
        if by_stamp:
            catalog.settled[name] = Settled(source_name, by_stamp)
        elif top_aggregates and all(
            isinstance(a, exp.Min) and _is_stamp(a.this) for a in top_aggregates
        ):
            held = next(p for p in select.expressions if isinstance(p.unalias(), exp.Min))
            catalog.settled[name] = Settled(source_name, held.alias_or_name.lower())


def _grouped_by_stamp(view: _View, catalog: Catalog) -> str | None:
    """The output column of an aggregate of a stamped source grouped by the stamp (None if it
    is not one): its groups of a refresh are all new, later than every group made before."""
    if view.source is None or view.source.name.lower() not in catalog.stamped:
        return None
    if not any(_is_stamp(g) for g in view.select.args["group"].expressions):
        return None
    by_stamp = [p for p in view.select.expressions if _is_stamp(p.unalias())]
    return by_stamp[0].alias_or_name.lower() if by_stamp else None


def _joins_settled(select: exp.Select, source: exp.Table, name: str, catalog: Catalog) -> bool:
    """Whether `select` joins `name`, a settled aggregate of `source`, binding the aggregate's
    stamp column to the source row's stamp (so old source rows never match new groups)."""
    settled = catalog.settled.get(name)
    if settled is None or settled.source != source.name.lower():
        return False
    source_alias = source.alias_or_name.lower()
    for join in select.args.get("joins") or []:
        table = join.this
        if not isinstance(table, exp.Table) or table.name.lower() != name or join.side:
            continue
        alias = table.alias_or_name.lower()
        for eq in (join.args.get("on") or exp.true()).find_all(exp.EQ):
            sides = {(c.table.lower(), c.name.lower()) for c in (eq.this, eq.expression)
                     if isinstance(c, exp.Column)}  # fmt: skip
            if sides == {(alias, settled.stamp_column), (source_alias, REFRESH_STAMP)}:
                return True
    return False


def _fresh_settled(select: exp.Select, catalog: Catalog) -> exp.Select | None:
    """Joins to settled aggregates over only the rows their refresh made in this transaction:
    `JOIN a ON cond` -> `JOIN (SELECT * FROM a WHERE _seq > FRESH_SINCE(a)) AS a ON cond`; None
    when the SELECT joins none.

    Exact when every new source row carries this refresh's stamp (postgres.refresh checks it,
    and otherwise — a view rebuilt from its source's history — joins the aggregates whole, as
    the rebuild reads the whole history anyway): the join binds the
    aggregate's stamp column to the row's, and a group holding this refresh's stamp was made by
    this refresh (grouped by the stamp: a new group; MIN of the stamp: a group the earlier
    refreshes did not have, or its minimum would be older) so it is a new row, a _seq above the
    aggregate's highest before the refresh. Then the join is a hash join over this refresh's
    rows, not over the history nor an index lookup per record into it (those were two thirds of
    flu_cases' refresh: bench/results/refresh.md)."""
    fresh = select.copy()
    joined = False
    for join in fresh.args.get("joins") or []:
        table = join.this
        if not (isinstance(table, exp.Table) and table.name.lower() in catalog.settled):
            continue
        since = FRESH_SINCE.format(table.name.lower())
        rows = sqlglot.parse_one(
            f"SELECT * FROM {table.name} WHERE {SEQ} > {since}", read="postgres"
        )
        alias = exp.TableAlias(this=exp.to_identifier(table.alias_or_name))
        join.set("this", exp.Subquery(this=rows, alias=alias))
        joined = True
    return fresh if joined else None


# --- refresh statements -----------------------------------------------------------------------


def _replace_source(select: exp.Select, source: exp.Table, replacement: str) -> exp.Select:
    """The SELECT with the growing table replaced by a subquery (same alias)."""
    tree = select.copy()
    for table in tables(tree):
        if table.name == source.name and (table.db or "") == (source.db or ""):
            alias = table.alias or table.name
            sub = sqlglot.parse_one(f"SELECT * FROM ({replacement}) AS {alias}", read="postgres")
            table.replace(sub.find(exp.Subquery))
    return tree


def _refresh_steps(view: _View, catalog: Catalog) -> tuple[list[str], list[str]]:
    """The view's refresh statements, and the indexes they need (added to its create)."""
    name, kind, select, source = view.name, view.kind, view.select, view.source
    cols = ", ".join(view.columns)
    if kind in (Kind.FULL, Kind.DAYS):
        recompute = speed.select(select.copy(), catalog.dialect).sql("postgres")
        return [f"DELETE FROM {name}", f"INSERT INTO {name} ({cols}) {recompute}"], []
    assert source is not None  # stream, append and aggregate views have one growing source
    if kind is Kind.STREAM:
        stand_in = exp.table_(source.name, db=source.db, quoted=True).sql("postgres")
        moved = _replace_source(select, source, "SELECT * FROM moved")
        body_sql = speed.select(moved, catalog.dialect).sql("postgres")
        returned = [n for n, _ in STAND_IN_COLUMNS if n != REFRESH_STAMP]
        returning = ", ".join([*returned, f"{STAMP} AS {REFRESH_STAMP}"])
        step = (
            f"WITH moved AS (DELETE FROM {stand_in} RETURNING {returning})\n"
            f"INSERT INTO {name} ({cols}) {body_sql}\n"
            f"ON CONFLICT ({', '.join(UNIQUE_KEY)}) DO NOTHING"
        )
        return [step], []
    delta = f"SELECT * FROM {source.name} WHERE {SEQ} > {LO} AND {SEQ} <= {HI}"
    over_delta = _replace_source(select, source, delta)
    body = over_delta.copy()
    one_per_record = kind is Kind.APPEND and speed.one_row_per_record(body)
    if one_per_record and body.args.get("group"):
        body = speed.without_group_by(body) or body
    body_sql = speed.select(body, catalog.dialect).sql("postgres")
    if kind is Kind.APPEND:
        # One row per source record: the rows are new by construction (a duplicate would fail on
        # the unique index, loudly). Otherwise (joins) a row seen before is skipped.
        conflict = (
            f"\nON CONFLICT ({', '.join(UNIQUE_KEY)}) DO NOTHING"
            if set(UNIQUE_KEY) <= set(view.columns) and not one_per_record
            else ""
        )
        steps = [f"INSERT INTO {name} ({cols}) {body_sql}{conflict}"]
        fresh = _fresh_settled(over_delta, catalog)
        if fresh is not None:
            fresh_sql = speed.select(fresh, catalog.dialect).sql("postgres")
            steps.append(f"INSERT INTO {name} ({cols}) {fresh_sql}{conflict}")
        return steps, []
    return _merge(view, body_sql, catalog)


def _merge(view: _View, body_sql: str, catalog: Catalog) -> tuple[list[str], list[str]]:
    """INSERT the delta's groups; existing groups add (or GREATEST/LEAST) their aggregates."""
    name, select, columns = view.name, view.select, view.columns
    group_sql = {g.sql("redshift") for g in select.args["group"].expressions}
    keys: list[str] = []
    merged: dict[str, str] = {}
    derived: dict[str, exp.Expr] = {}
    agg_columns: dict[str, str] = {}  # aggregate SQL -> output column holding exactly it
    for projection, column in zip(select.expressions, columns, strict=True):
        expression = projection.this if isinstance(projection, exp.Alias) else projection
        if expression.sql("redshift") in group_sql:
            keys.append(column)
        elif isinstance(expression, exp.AggFunc):
            fn = MERGEABLE[type(expression).__name__.lower()]
            agg_columns[expression.sql("redshift")] = column
            merged[column] = (
                f"COALESCE(t.{column} + EXCLUDED.{column}, t.{column}, EXCLUDED.{column})"
                if fn == "sum"
                else f"{fn}(t.{column}, EXCLUDED.{column})"
            )
        else:
            derived[column] = expression
    sets = [f"{c} = {merged[c]}" for c in merged]
    for column, expression in derived.items():

        def use_merged(node: exp.Expr, column: str = column) -> exp.Expr:
            if isinstance(node, exp.AggFunc):
                held_by = agg_columns.get(node.sql("redshift"))
                if held_by is None:
                    raise TranslationError(
                        f"{name}.{column}: {node.sql('redshift')} must also be a column of its "
                        "own so the merged value can be recomputed"
                    )
                return sqlglot.parse_one(f"({merged[held_by]})", read="postgres")
            return node

        recomputed = speed.expression(expression.copy().transform(use_merged), catalog.dialect)
        sets.append(f"{column} = {recomputed.sql('postgres')}")
    index = f"CREATE UNIQUE INDEX {name}_group ON {name} ({', '.join(keys)}) NULLS NOT DISTINCT"
    if _grouped_by_stamp(view, catalog):
        # Grouped by the refresh stamp: every group of the new rows is new (the rows of earlier
        # refreshes hold older stamps), so nothing to merge, and no index on the groups either
        # (no conflict to find; readers join this refresh's rows by _seq, a rebuild all rows):
        # a plain INSERT, without a random index insert per group into the history.
        return [f"INSERT INTO {name} ({', '.join(columns)}) {body_sql}"], []
    # MIN/MAX only (no count to add): leave a group's row alone when nothing in it changes (a
    # duplicate arriving), rather than writing a new version of it.
    unchanged = ""
    if not derived and all(not m.startswith("COALESCE") for m in merged.values()):
        changes = [f"{m} IS DISTINCT FROM t.{c}" for c, m in merged.items()]
        unchanged = " WHERE " + " OR ".join(changes)
    step = (
        f"INSERT INTO {name} AS t ({', '.join(columns)}) {body_sql}\n"
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}{unchanged}"
    )
    return [step], [index]


# --- days views -------------------------------------------------------------------------------


class _NotByDay(Exception):
    """Why a SELECT's rows of a day are not computed from a bounded run of days before it."""


def _group_columns(view: _View) -> list[str]:
    """The output columns of an aggregate that are its GROUP BY expressions."""
    group_sql = {g.sql("redshift") for g in view.select.args["group"].expressions}
    return [
        column
        for projection, column in zip(view.select.expressions, view.columns, strict=True)
        if projection.unalias().sql("redshift") in group_sql
    ]


def _plain_aggregates(select: exp.Select) -> list[exp.AggFunc]:
    """The aggregates of this SELECT level that are not window functions."""
    return [a for a in aggregates(select) if not isinstance(a.parent, exp.Window)]


def _is_bounds(select: exp.Select) -> bool:
    """An aggregate over a whole relation, no GROUP BY: MIN/MAX(day), the bounds of a range."""
    return bool(_plain_aggregates(select)) and not select.args.get("group")


def _day_reach(select: exp.Select, reads: list[str], catalog: Catalog) -> tuple[int | None, str]:
    """How many days back a row of a day is computed from, at most (the view's reach), if every
    row of a day is computed from that day and a bounded run of days before it only; else None
    and why not. Derived from the SQL: a window function ordered by day reaches its frame's
    first row back (ROWS BETWEEN n PRECEDING ..., LAG(x, n)) plus what its arguments reach;
    anything else reaches what its columns reach; a relation read reaches 0."""
    for name in reads:
        if name not in catalog.static and name not in catalog.day_keyed:
            return None, f"reads {name}, which is not keyed by day"
    try:
        reach = _scope_reach(select)
    except _NotByDay as exc:
        return None, str(exc)
    return max((days for _, days in reach), default=0), ""


def _scope_reach(node: exp.Expr) -> list[tuple[str, int]]:
    """Each output column of a query, in order: (name, how many days back it reaches)."""
    if isinstance(node, exp.Subquery):
        return _scope_reach(node.this)
    if isinstance(node, exp.Table):
        return []  # a relation: its own rows of the day
    if isinstance(node, exp.Union):
        left, right = _scope_reach(node.this), _scope_reach(node.expression)
        return [(name, max(a, b)) for (name, a), (_, b) in zip(left, right, strict=True)]
    if not isinstance(node, exp.Select):
        raise _NotByDay(f"reads a {node.key.upper()}")
    from_ = node.args.get("from_") or node.args.get("from")
    joins = node.args.get("joins") or []
    sources = [from_.this] if from_ is not None else []
    sources += [j.this for j in joins]
    # A query anywhere else (a scalar subquery, IN (SELECT ...)) may read any day: not followed.
    conditions = [node.args.get(k) for k in ("where", "having")] + [j.args.get("on") for j in joins]
    for part in [*node.expressions, *conditions]:
        if part is not None and part.find(exp.Select):
            raise _NotByDay(f"a query outside FROM: {part.sql('redshift')[:80]}")
    reaches: dict[str, dict[str, int]] = {}
    for source in sources:
        columns = reaches.setdefault(source.alias_or_name.lower(), {})
        for name, days in _scope_reach(source):
            columns[name] = max(columns.get(name, 0), days)
    if _is_bounds(node):
        for a in _plain_aggregates(node):
            if not (isinstance(a, exp.Min | exp.Max) and _is_day(a.this)):
                raise _NotByDay(f"{a.sql('redshift')} over all days")
        return [(p.alias_or_name.lower(), 0) for p in node.expressions]
    group = node.args.get("group")
    if group and not any(_is_day(g) for g in group.expressions):
        raise _NotByDay("GROUP BY without day")

    def column(c: exp.Column) -> int:
        if c.table:
            return reaches.get(c.table.lower(), {}).get(c.name.lower(), 0)
        return max((r.get(c.name.lower(), 0) for r in reaches.values()), default=0)

    out: list[tuple[str, int]] = []
    for projection in node.expressions:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            out += [item for r in reaches.values() for item in r.items()]
            continue
        reach = max((column(c) for c in projection.find_all(exp.Column)), default=0)
        for window in projection.find_all(exp.Window):
            inner = max((column(c) for c in window.find_all(exp.Column)), default=0)
            reach = max(reach, _frame_reach(window) + inner)
        out.append((projection.alias_or_name.lower(), reach))
    return out


def _is_day(node: exp.Expr) -> bool:
    return isinstance(node, exp.Column) and node.name.lower() == DAY


def _frame_reach(window: exp.Window) -> int:
    """How many rows back a window function ordered by day reads (a day each: the grid)."""
    order = window.args.get("order")
    keys = order.expressions if order else []
    if len(keys) != 1 or not _is_day(keys[0].this) or keys[0].args.get("desc"):
        raise _NotByDay(f"a window not ordered by day: {window.sql('redshift')}")
    function, spec = window.this, window.args.get("spec")
    if isinstance(function, exp.Lag):
        offset = function.args.get("offset")
        if offset is None:
            return 1
        if isinstance(offset, exp.Literal) and not offset.is_string:
            return int(offset.name)
    elif spec is not None and str(spec.args.get("kind", "")).upper() == "ROWS":
        start, side = spec.args.get("start"), str(spec.args.get("start_side") or "").upper()
        end, end_side = spec.args.get("end"), str(spec.args.get("end_side") or "").upper()
        ends_before = end_side == "PRECEDING" or str(end).upper() == "CURRENT ROW"
        if isinstance(start, exp.Literal) and side == "PRECEDING" and ends_before:
            return int(start.name)
    raise _NotByDay(f"a window reaching unboundedly or ahead: {window.sql('redshift')}")


def _days_steps(view: _View, catalog: Catalog) -> list[str]:
    """A days view's refresh of some days (DAYS): delete them, insert them recomputed from its
    inputs' rows of FROM_DAY .. TO_DAY (the first day recomputed less the view's reach .. the
    last day recomputed). The bounds (MIN/MAX(day) over a whole relation) are read whole."""
    restricted = view.select.copy()
    for table in tables(restricted):
        name = table.name.lower()
        scope = table.find_ancestor(exp.Select)
        if name not in catalog.day_keyed and name not in catalog.day_tables:
            continue
        if isinstance(scope, exp.Select) and _is_bounds(scope):
            continue
        rows = f"SELECT * FROM {table.name} WHERE {DAY} BETWEEN {FROM_DAY} AND {TO_DAY}"
        sub = sqlglot.parse_one(
            f"SELECT * FROM ({rows}) AS {table.alias_or_name}", read="postgres"
        ).find(exp.Subquery)
        assert sub is not None
        table.replace(sub)
    body = speed.select(restricted, catalog.dialect).sql("postgres")
    cols = ", ".join(view.columns)
    return [
        f"DELETE FROM {view.name} WHERE {DAY} = ANY({DAYS})",
        _per_day(
            f"INSERT INTO {view.name} ({cols}) SELECT {cols} FROM ({body}) AS q "
            f"WHERE q.{DAY} = ANY({DAYS})"
        ),
    ]


def _per_day(insert: str) -> str:
    """An INSERT returning (day, rows written) for each day it wrote rows of."""
    return (
        f"WITH written AS ({insert}\nRETURNING {DAY})\n"
        f"SELECT {DAY}, COUNT(*) FROM written GROUP BY {DAY}"
    )
