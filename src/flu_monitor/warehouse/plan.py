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
    FRESH_SINCE,
    HI,
    LO,
    REFRESH_STAMP,
    SEQ,
    STAMP,
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
    if kind is Kind.FULL:
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
