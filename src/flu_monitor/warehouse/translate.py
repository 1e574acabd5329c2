"""Redshift -> PostgreSQL: the mechanical translation of sql/ and the local refresh plan.

Expressions go through sqlglot (read="redshift", write="postgres") after a few AST rewrites for
what sqlglot cannot know or gets wrong (each rule has its own test in tests/warehouse):

- SUPER navigation `payload.field` (read by sqlglot as table.column) -> `payload -> 'field'`
  (jsonb); `CAST(payload.field AS VARCHAR)` -> `payload ->> 'field'`; an array index
  `payload.list[0]` stays 0-based (`-> 0`; sqlglot would shift it to 1-based).
  The SUPER columns are the aliases of JSON_PARSE(...) in the views.
- JSON_PARSE / CAN_JSON_PARSE / JSON_SERIALIZE / JSON_TYPEOF / TO_HEX on VARBYTE: kept as function
  calls answered by the PostgreSQL shim functions in shims.sql (sqlglot would emit CAST(x AS JSON)
  and HEX(), which do not exist for bytea there).
- AUTO REFRESH, DISTSTYLE, DISTKEY, SORTKEY are dropped (sqlglot crashes on some); SORTKEY
  columns become btree indexes.
- CREATE EXTERNAL SCHEMA ... FROM KAFKA -> CREATE SCHEMA: its topic relation becomes the stand-in
  table the local ingester fills (same kafka_* columns, kafka_value as bytea).

Speed rules, same results (PostgreSQL has no common-subexpression elimination, and some
Redshift idioms are slow there; each rule has an equivalence test in tests/warehouse):

- `x ~ '^(a|b|...)(,(a|b|...))*$'` (a delimited list of literal words) -> REPLACE calls that
  remove every listed word between delimiters, compared with ''; PostgreSQL's regex engine builds
  its automaton anew for every row (15 us for the symptoms list).
- CAN_JSON_PARSE(x) and JSON_PARSE(x) of the same x in one materialized view's SELECT: x is parsed
  once per row (try_json_parse), not once per call (each CAN_JSON_PARSE is a parse in a
  subtransaction).
- An incremental refresh that groups a keyed source by its key (one row per group) runs without
  GROUP BY: MIN/MAX/SUM(x) of one row is x, COUNT(*) is 1; its rows need no ON CONFLICT.

A Redshift materialized view becomes a TABLE maintained by `flu_monitor.warehouse.local.refresh`
with the view's own SELECT, applied the way Redshift would refresh it (see docs/warehouse.md),
or, for a row-by-row projection of one stored view, a plain VIEW:

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

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
SEQ = "_seq"  # hidden, increasing row number of every local materialized-view table
# The stream's refresh time (Redshift: when the refresh read the record); locally the refresh's
# own time, strictly later at every refresh, so it orders records by when they were read.
REFRESH_STAMP = "refresh_time"
STAMP = "__refresh_stamp__"  # marker in the stream's refresh statement, replaced by refresh()
UNIQUE_KEY = ("kafka_partition", "kafka_offset")
# Watermark markers in refresh statements (replaced by integers; the SQL may contain % itself).
LO, HI = "__watermark_lo__", "__watermark_hi__"
MERGEABLE = {"count": "sum", "sum": "sum", "max": "greatest", "min": "least"}


class TranslationError(ValueError):
    """A statement of sql/ uses something the translation does not handle; names the object."""


@dataclass
class LocalObject:
    """What one sql/ statement becomes on PostgreSQL."""

    name: str
    kind: str  # schema | table | view | stream | append | aggregate | full
    create: list[str]
    drop: list[str]
    refresh: str | None = None  # the refresh statements (append/aggregate: with LO, HI)
    source: str | None = None  # the growing relation an incremental view reads
    reads: list[str] = field(default_factory=list)  # relations named (for full recompute)
    columns: list[str] = field(default_factory=list)
    note: str | None = None  # why a view is recomputed in full
    query: str | None = None  # the view's SELECT in PostgreSQL (what a full recompute runs)


@dataclass
class _Context:
    super_columns: set[str] = field(default_factory=set)
    external_schemas: set[str] = field(default_factory=set)
    append_only: set[str] = field(default_factory=set)  # local tables only ever appended to
    keyed: set[str] = field(default_factory=set)  # tables unique on (partition, offset)
    materialized: set[str] = field(default_factory=set)
    static: set[str] = field(default_factory=set)  # reference tables (change only on apply)
    stamped: set[str] = field(default_factory=set)  # REFRESH_STAMP is the stream's, unchanged
    settled: dict[str, tuple[str, str]] = field(default_factory=dict)  # name: (source, stamp col)


# --- expression rules -------------------------------------------------------------------------


def _is_super_path(node: exp.Expression, ctx: _Context) -> bool:
    return (
        isinstance(node, exp.Column)
        and bool(node.table)
        and node.table.lower() in ctx.super_columns
        and not node.args.get("db")
    )


def _json_path(column: exp.Column, *path: exp.Expression, text: bool = False) -> exp.Expression:
    """payload.a[0] -> jsonb_extract_path(payload, 'a', '0'): PostgreSQL's path elements index
    arrays from 0, like Redshift (sqlglot's own rewrite would shift them to 1-based)."""
    elements = [exp.Literal.string(column.name)]
    for index in path:
        elements.append(
            exp.Literal.string(index.name)
            if isinstance(index, exp.Literal)
            else exp.Cast(this=index, to=exp.DataType.build("text"))
        )
    fn = "jsonb_extract_path_text" if text else "jsonb_extract_path"
    return exp.Anonymous(this=fn, expressions=[exp.column(column.table), *elements])


SHIMMED = {"CAN_JSON_PARSE", "JSON_SERIALIZE", "JSON_TYPEOF"}


def rewrite(tree: exp.Expression, ctx: _Context) -> exp.Expression:
    """Apply the Redshift -> PostgreSQL AST rules (see the module docstring)."""

    def rule(node: exp.Expression) -> exp.Expression:
        if (
            isinstance(node, exp.Cast)
            and _is_super_path(node.this, ctx)
            and node.to.is_type(*exp.DataType.TEXT_TYPES)
        ):
            return exp.Cast(this=_json_path(node.this, text=True), to=node.to)
        if isinstance(node, exp.Bracket) and _is_super_path(node.this, ctx):
            return _json_path(node.this, *node.expressions)
        if _is_super_path(node, ctx):
            return _json_path(node)
        if isinstance(node, exp.ParseJSON):
            return exp.Anonymous(this="json_parse", expressions=[node.this])
        if isinstance(node, exp.LowerHex | exp.Hex):
            return exp.Anonymous(this="to_hex", expressions=[node.this])
        if isinstance(node, exp.Anonymous) and node.name.upper() in SHIMMED:
            node.set("this", node.name.lower())
        if isinstance(node, exp.RegexpLike):  # (a replaced node's children are not visited)
            return _word_list_match(node, lambda text: rewrite(text, ctx)) or node
        return node

    return tree.transform(rule)


# A regex matching a delimited list of literal words: ^(w1|w2|...)(D(w1|w2|...))*$
_WORD_LIST = re.compile(
    r"\^\((?P<words>[A-Za-z0-9_]+(?:\|[A-Za-z0-9_]+)*)\)\((?P<sep>[,;:/])\((?P=words)\)\)\*\$"
)


def _word_list_match(node: exp.RegexpLike, translate_text) -> exp.Expression | None:
    """`x ~ '^(w1|...)(D(w1|...))*$'` -> `REPLACE(..(D || REPLACE(x, D, DD) || D, Dw1D, '')..) = ''`

    Doubling each delimiter makes x the concatenation of blocks D token D, one per token; a
    word's REPLACE removes exactly the blocks whose token is that word (an occurrence of DwD can
    only start at a block's first D: the D ending a block is followed by D or nothing). So the
    result is '' exactly when every token is a listed word and x is not empty, which is what the
    regex says; NULL stays NULL. Same result, without a regex per row."""
    pattern = node.expression
    if node.args.get("flag") or not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return None
    match = _WORD_LIST.fullmatch(pattern.this)
    if not match:
        return None
    sep = match["sep"]

    def replace(text, old, new):
        args = [text, exp.Literal.string(old), exp.Literal.string(new)]
        return exp.Anonymous(this="REPLACE", expressions=args)

    blocks = exp.DPipe(
        this=exp.DPipe(
            this=exp.Literal.string(sep),
            expression=replace(translate_text(node.this), sep, sep * 2),
        ),
        expression=exp.Literal.string(sep),
    )
    for word in match["words"].split("|"):
        blocks = replace(blocks, f"{sep}{word}{sep}", "")
    return exp.paren(exp.EQ(this=blocks, expression=exp.Literal.string("")))


def parse_json_once(tree: exp.Expression) -> exp.Expression:
    """CAN_JSON_PARSE(x) and JSON_PARSE(x) of one x in one SELECT: parse x once per row.

    The streaming view guards JSON_PARSE(kafka_value) with CAN_JSON_PARSE twice, and each
    CAN_JSON_PARSE is a parse caught in a subtransaction. The SELECT's single source is wrapped to
    add try_json_parse(x) (NULL when x is not JSON); CAN_JSON_PARSE(x) becomes `that IS NOT NULL`
    (NULL for a NULL x, as before) and JSON_PARSE(x) takes it, falling back to json_parse(x) when
    it is NULL so that an unguarded JSON_PARSE of bad input still raises."""
    for select in list(tree.find_all(exp.Select)):
        source = select.args.get("from_")
        if source is None or select.args.get("joins") or select.args.get("laterals"):
            continue
        calls: dict[str, list[exp.Anonymous]] = {}
        for call in select.find_all(exp.Anonymous):
            if (
                call.name.lower() in ("can_json_parse", "json_parse")
                and len(call.expressions) == 1
                and call.find_ancestor(exp.Select) is select
            ):
                calls.setdefault(call.expressions[0].sql("postgres"), []).append(call)
        shared = [
            group
            for group in calls.values()
            if len(group) > 1 and any(c.name.lower() == "can_json_parse" for c in group)
        ]
        if not shared:
            continue
        added = []
        for number, group in enumerate(shared, 1):
            name = f"_parsed_json_{number}"
            argument = group[0].expressions[0]
            added.append(
                exp.alias_(
                    exp.Anonymous(this="try_json_parse", expressions=[argument.copy()]), name
                )
            )
            parsed = exp.column(name)
            for call in group:
                value = call.expressions[0]
                if call.name.lower() == "can_json_parse":
                    call.replace(
                        exp.Case().when(
                            exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                            exp.Not(this=exp.Is(this=parsed.copy(), expression=exp.Null())),
                        )
                    )
                else:
                    fallback = exp.Anonymous(this="json_parse", expressions=[value.copy()])
                    call.replace(exp.Coalesce(this=parsed.copy(), expressions=[fallback]))
        inner = source.this
        alias = inner.args.get("alias")
        alias = alias.this.copy() if alias else inner.this.copy()
        wrapped = exp.select(exp.Star(), *added).from_(inner.copy())
        source.set("this", exp.Subquery(this=wrapped, alias=exp.TableAlias(this=alias)))
    return tree


def fence_derived_tables(tree: exp.Expression) -> exp.Expression:
    """Add OFFSET 0 to every derived table (subquery in FROM/JOIN).

    PostgreSQL flattens such subqueries and has no common-subexpression elimination, so a column
    computed in an inner level and used N times above is recomputed N times per row (the typed
    layer's reject_reason is used by every typed column: 20x slower). OFFSET 0 keeps each level
    computed once per row; it changes no result."""
    for subquery in tree.find_all(exp.Subquery):
        inner = subquery.this
        if isinstance(inner, exp.Select) and not (
            inner.args.get("offset") or inner.args.get("limit")
        ):
            inner.set("offset", exp.Offset(expression=exp.Literal.number(0)))
    return tree


def _postgres(select: exp.Expression, ctx: _Context) -> exp.Expression:
    """A materialized view's SELECT (or refresh body) in PostgreSQL, with the speed rules."""
    return fence_derived_tables(parse_json_once(rewrite(select, ctx)))


def to_postgres(sql: str, super_columns: set[str] | None = None) -> str:
    """Translate one Redshift statement or expression (tables and views; no materialized view)."""
    ctx = _Context(super_columns=set(super_columns or ()))
    tree = _strip_properties(sqlglot.parse_one(sql, read="redshift"))[0]
    return rewrite(tree, ctx).sql("postgres")


def _strip_properties(tree: exp.Expression) -> tuple[exp.Expression, list[str]]:
    """Drop AUTO REFRESH / DISTSTYLE / DISTKEY / SORTKEY; return the SORTKEY columns."""
    sort_columns: list[str] = []
    props = tree.args.get("properties")
    if props:
        keep = []
        for prop in props.expressions:
            if isinstance(prop, exp.SortKeyProperty):
                sort_columns += [c.name for c in prop.this]
            elif not isinstance(
                prop, exp.AutoRefreshProperty | exp.DistKeyProperty | exp.DistStyleProperty
            ):
                keep.append(prop)
        props.set("expressions", keep)
        if not keep:
            tree.set("properties", None)
    return tree, sort_columns


# --- statements -------------------------------------------------------------------------------


def _tables(select: exp.Expression) -> list[exp.Table]:
    return [t for t in select.find_all(exp.Table) if t.name]


def _names(select: exp.Expression) -> list[str]:
    ctes = {c.alias for c in select.find_all(exp.CTE)}
    return sorted({t.name.lower() for t in _tables(select) if t.name not in ctes})


def _aggregates(select: exp.Select) -> list[exp.AggFunc]:
    return [a for a in select.find_all(exp.AggFunc) if a.find_ancestor(exp.Select) is select]


def _external_schema(st: Statement, ctx: _Context) -> LocalObject:
    ctx.external_schemas.add(st.name)
    return LocalObject(
        st.name,
        "schema",
        create=[f"CREATE SCHEMA IF NOT EXISTS {st.name}"],
        drop=[f"DROP SCHEMA IF EXISTS {st.name} CASCADE"],
    )


def _stand_in(table: exp.Table) -> str:
    columns = ",\n    ".join(f"{n} {t}" for n, t in STAND_IN_COLUMNS)
    name = exp.table_(table.name, db=table.db, quoted=True).sql("postgres")
    return (
        f"CREATE TABLE IF NOT EXISTS {name} (\n    {columns}\n);\n"
        f"CREATE INDEX IF NOT EXISTS {table.name}_stand_in_offset "
        f"ON {name} (kafka_partition, kafka_offset)"
    )


def _materialized_view(st: Statement, ctx: _Context) -> LocalObject:
    tree, sort_columns = _strip_properties(sqlglot.parse_one(st.sql, read="redshift"))
    select = tree.expression
    if not isinstance(select, exp.Select):
        raise TranslationError(f"{st.name}: a materialized view must be one SELECT")
    # SUPER columns made here (JSON_PARSE aliases) are navigated with -> from now on.
    for projection in select.expressions:
        if projection.find(exp.ParseJSON):
            ctx.super_columns.add(projection.alias_or_name.lower())
    columns = [p.alias_or_name.lower() for p in select.expressions]
    reads = _names(select)
    growing = [
        t
        for t in _tables(select)
        if t.name.lower() in ctx.append_only or (t.db or "").lower() in ctx.external_schemas
    ]
    kind, reason = _classify_view(st, select, growing, reads, ctx)
    source = growing[0] if growing else None
    pg_select = _postgres(select.copy(), ctx)
    if kind == "append" and not sort_columns and _is_projection(select):
        return _projection(st, pg_select, source, columns, reads, ctx)
    create = []
    if kind == "stream":
        create.append(_stand_in(source))
    create.append(f"CREATE TABLE {st.name} AS {pg_select.sql('postgres')} WITH NO DATA")
    create.append(f"ALTER TABLE {st.name} ADD COLUMN {SEQ} BIGINT GENERATED ALWAYS AS IDENTITY")
    create.append(f"CREATE INDEX {st.name}{SEQ} ON {st.name} ({SEQ})")
    for column in sort_columns:
        create.append(f"CREATE INDEX {st.name}_{column} ON {st.name} ({column})")
    keyed = set(UNIQUE_KEY) <= set(columns) and kind in ("stream", "append")
    if keyed:
        create.append(
            f"CREATE UNIQUE INDEX {st.name}_record ON {st.name} ({', '.join(UNIQUE_KEY)})"
        )
    refresh = _refresh_sql(st.name, kind, select, source, columns, ctx, create)
    _note_stamp(st.name, kind, select, source, ctx)
    if kind in ("stream", "append"):
        ctx.append_only.add(st.name)
    if keyed:
        ctx.keyed.add(st.name)
    ctx.materialized.add(st.name)
    return LocalObject(
        st.name,
        kind,
        create=create,
        drop=[_drop_table_or_view(st.name)],
        refresh=refresh,
        source=(source.name.lower() if source is not None and kind != "stream" else None),
        reads=reads,
        columns=columns,
        note=reason,
        query=pg_select.sql("postgres"),
    )


def _is_projection(select: exp.Select) -> bool:
    """Row by row over one source, nothing aggregated or joined: what a plain view can be."""
    return not select.args.get("group") and not _aggregates(select) and _one_row_per_record(select)


def _projection(st, pg_select, source, columns, reads, ctx) -> LocalObject:
    """A materialized view that computes each record of one stored view by itself (no join,
    no aggregate) becomes a plain VIEW: at every refresh it shows exactly the rows a stored copy
    would hold (its source only changes in the refresh transaction), and computing them while
    the next view refreshes costs less than storing them (flu_case_fields: 3 us a record). It
    passes on its source's _seq, so the views reading it refresh incrementally as before."""
    alias = source.alias_or_name
    with_seq = pg_select.copy().select(exp.column(SEQ, table=alias), append=True)
    _note_stamp(st.name, "projection", pg_select, source, ctx)
    ctx.append_only.add(st.name)
    ctx.keyed.add(st.name)
    ctx.materialized.add(st.name)
    return LocalObject(
        st.name,
        "projection",
        create=[f"CREATE VIEW {st.name} AS {with_seq.sql('postgres')}"],
        drop=[_drop_table_or_view(st.name)],
        refresh="",  # nothing to store; refresh() passes on whether its source changed
        source=source.name.lower(),
        reads=reads,
        columns=columns,
        note=f"a view: each record of {source.name.lower()} computed when read",
        query=pg_select.sql("postgres"),
    )


def _drop_table_or_view(name: str) -> str:
    """Drop a materialized view's local form, whichever it is now (a table or, for a
    projection, a view), so a change of form is an ordinary re-create."""
    return (
        f'DO $$ DECLARE kind "char" := (SELECT relkind FROM pg_class '
        f"WHERE oid = to_regclass('{name}')); BEGIN "
        f"IF kind = 'v' THEN DROP VIEW {name} CASCADE; "
        f"ELSIF kind IS NOT NULL THEN DROP TABLE {name} CASCADE; END IF; END $$"
    )


def _classify_view(st, select, growing, reads, ctx) -> tuple[str, str | None]:
    """stream | append | aggregate | full, and why not incremental (None when it is)."""
    if growing and (growing[0].db or "").lower() in ctx.external_schemas:
        if len(_tables(select)) != 1:
            raise TranslationError(f"{st.name}: the streaming view must read only its topic")
        return "stream", None
    if len(growing) != 1:
        return "full", "does not read exactly one growing relation"
    others = [n for n in reads if n != growing[0].name.lower()]
    if any(n not in ctx.static and not _joins_settled(select, growing[0], n, ctx) for n in others):
        return "full", "joins another growing relation"
    for node in select.find_all(exp.Window, exp.Distinct, exp.Union, exp.Join):
        if isinstance(node, exp.Join) and not node.side:
            continue  # inner and cross joins with reference tables apply row by row
        return "full", f"uses {node.key.upper()}"
    aggregates = _aggregates(select)
    subquery_aggs = [a for a in select.find_all(exp.AggFunc) if a not in aggregates]
    group = select.args.get("group")
    if not group and not aggregates:
        return "append", None
    group_cols = {g.name.lower() for g in (group.expressions if group else []) if g.name}
    # GROUP BY a unique key of an append-only source: every group is new, never updated.
    if growing[0].name.lower() in ctx.keyed and set(UNIQUE_KEY) <= group_cols:
        return "append", None
    if subquery_aggs or not group:
        return "full", "aggregates below the top level"
    if any(type(a).__name__.lower() not in MERGEABLE for a in aggregates):
        return "full", "an aggregate that cannot be merged"
    return "aggregate", None


def _stamp_projection(select: exp.Select) -> exp.Expression | None:
    """The expression a SELECT outputs as REFRESH_STAMP, if any."""
    for projection in select.expressions:
        if projection.alias_or_name.lower() == REFRESH_STAMP:
            return projection.unalias()
    return None


def _is_stamp(node: exp.Expression | None) -> bool:
    return isinstance(node, exp.Column) and node.name.lower() == REFRESH_STAMP


def _note_stamp(name: str, kind: str, select: exp.Select, source, ctx: _Context) -> None:
    """Record whether `name` carries the refresh stamp unchanged (stamped), or is an aggregate
    whose rows are final once made (settled, see the module doc)."""
    source_name = source.name.lower() if source is not None else None
    if kind == "stream":
        ctx.stamped.add(name)
        return
    if source_name not in ctx.stamped:
        return
    stamp = _stamp_projection(select)
    if kind == "projection" and _is_stamp(stamp):
        ctx.stamped.add(name)
    elif (
        kind == "append"
        and _one_row_per_record(select)
        and (_is_stamp(stamp) or (isinstance(stamp, exp.Min | exp.Max) and _is_stamp(stamp.this)))
    ):
        ctx.stamped.add(name)  # one row per record: MIN/MAX of one stamp is the stamp
    elif kind == "aggregate":
        group = select.args["group"].expressions
        by_stamp = [p for p in select.expressions if _is_stamp(p.unalias())]
        aggregates = _aggregates(select)
        if any(_is_stamp(g) for g in group) and by_stamp:
            ctx.settled[name] = (source_name, by_stamp[0].alias_or_name.lower())
        elif aggregates and all(isinstance(a, exp.Min) and _is_stamp(a.this) for a in aggregates):
            held = next(p for p in select.expressions if isinstance(p.unalias(), exp.Min))
            ctx.settled[name] = (source_name, held.alias_or_name.lower())


def _joins_settled(select: exp.Select, source: exp.Table, name: str, ctx: _Context) -> bool:
    """Whether `select` joins `name`, a settled aggregate of `source`, binding the aggregate's
    stamp column to the source row's stamp (so old source rows never match new groups)."""
    settled = ctx.settled.get(name)
    if settled is None or settled[0] != source.name.lower():
        return False
    stamp_column = settled[1]
    source_alias = source.alias_or_name.lower()
    for join in select.args.get("joins") or []:
        table = join.this
        if not isinstance(table, exp.Table) or table.name.lower() != name or join.side:
            continue
        alias = table.alias_or_name.lower()
        for eq in (join.args.get("on") or exp.true()).find_all(exp.EQ):
            sides = {(c.table.lower(), c.name.lower()) for c in (eq.this, eq.expression)
                     if isinstance(c, exp.Column)}  # fmt: skip
            if sides == {(alias, stamp_column), (source_alias, REFRESH_STAMP)}:
                return True
    return False


def _lookup_settled(select: exp.Select, ctx: _Context) -> exp.Select:
    """Joins to settled aggregates as LATERAL lookups: `JOIN a ON cond` -> `JOIN LATERAL
    (SELECT * FROM a WHERE cond) AS a ON TRUE`, the same rows. The refresh runs without nested
    loops (see local.refresh), which would otherwise hash the whole aggregate — history — for a
    delta of a few rows; a LATERAL subquery can only be a nested loop, so each new record is
    an index lookup whatever the history's size."""
    for join in select.args.get("joins") or []:
        table = join.this
        if not (isinstance(table, exp.Table) and table.name.lower() in ctx.settled):
            continue
        lookup = exp.select("*").from_(table.copy()).where(join.args["on"].copy())
        alias = exp.TableAlias(this=exp.to_identifier(table.alias_or_name))
        join.set("this", exp.Lateral(this=exp.Subquery(this=lookup), alias=alias))
        join.set("on", exp.true())
    return select


def _replace_source(select: exp.Select, source: exp.Table, replacement: str) -> exp.Select:
    """The SELECT with the growing table replaced by a subquery (same alias)."""
    tree = select.copy()
    for table in _tables(tree):
        if table.name == source.name and (table.db or "") == (source.db or ""):
            alias = table.alias or table.name
            sub = sqlglot.parse_one(f"SELECT * FROM ({replacement}) AS {alias}", read="postgres")
            table.replace(sub.find(exp.Subquery))
    return tree


def _refresh_sql(name, kind, select, source, columns, ctx, create) -> str | None:
    cols = ", ".join(columns)
    if kind == "full":
        body = _postgres(select.copy(), ctx).sql("postgres")
        return f"DELETE FROM {name};\nINSERT INTO {name} ({cols}) {body}"
    if kind == "stream":
        stand_in = exp.table_(source.name, db=source.db, quoted=True).sql("postgres")
        body = _replace_source(select, source, "SELECT * FROM moved")
        body_sql = _postgres(body, ctx).sql("postgres")
        returned = [n for n, _ in STAND_IN_COLUMNS if n != REFRESH_STAMP]
        returning = ", ".join([*returned, f"{STAMP} AS {REFRESH_STAMP}"])
        return (
            f"WITH moved AS (DELETE FROM {stand_in} RETURNING {returning})\n"
            f"INSERT INTO {name} ({cols}) {body_sql}\n"
            f"ON CONFLICT ({', '.join(UNIQUE_KEY)}) DO NOTHING"
        )
    delta = f"SELECT * FROM {source.name} WHERE {SEQ} > {LO} AND {SEQ} <= {HI}"
    body = _lookup_settled(_replace_source(select, source, delta), ctx)
    one_per_record = kind == "append" and _one_row_per_record(body)
    if one_per_record and body.args.get("group"):
        body = _without_group_by(body) or body
    body_sql = _postgres(body, ctx).sql("postgres")
    if kind == "append":
        # One row per source record: the rows are new by construction (a duplicate would fail on
        # the unique index, loudly). Otherwise (joins) a row seen before is skipped.
        conflict = (
            f"\nON CONFLICT ({', '.join(UNIQUE_KEY)}) DO NOTHING"
            if set(UNIQUE_KEY) <= set(columns) and not one_per_record
            else ""
        )
        return f"INSERT INTO {name} ({cols}) {body_sql}{conflict}"
    return _merge_sql(name, select, columns, body_sql, ctx, create)


def _one_row_per_record(select: exp.Select) -> bool:
    """Whether the SELECT makes at most one row per record of its keyed source, keyed the same.

    True when the source is read through plain single-source SELECTs (no join, aggregate,
    DISTINCT, LIMIT, window or set operation anywhere), each level passes kafka_partition and
    kafka_offset on unchanged, and the top level either groups by them or aggregates nothing."""
    if select.find(exp.Join, exp.Lateral, exp.Unnest, exp.Explode, exp.Window, exp.Union):
        return False
    if select.args.get("distinct") or select.args.get("having"):
        return False
    group = select.args.get("group")
    if group:
        keys = {g.name.lower() for g in group.expressions if isinstance(g, exp.Column)}
        if not set(UNIQUE_KEY) <= keys:
            return False
    elif _aggregates(select):
        return False
    for level in select.find_all(exp.Select):
        if level is select:
            continue
        in_from = isinstance(level.parent, exp.Subquery) and isinstance(
            level.parent.parent, exp.From
        )
        plain = not any(level.args.get(k) for k in ("group", "having", "distinct", "limit"))
        if not (in_from and plain and not _aggregates(level)):
            return False
    return all(
        _passes_on(level, key) for level in select.find_all(exp.Select) for key in UNIQUE_KEY
    )


def _without_group_by(select: exp.Select) -> exp.Select | None:
    """A SELECT grouped by its key, one record per group (_one_row_per_record), without the GROUP
    BY: over one row MIN/MAX/SUM(x) is x, COUNT(*) is 1 and COUNT(x) is 1 or 0. None for any
    other aggregate. Saves hashing every record and evaluating its aggregates."""
    ungrouped = select.copy()
    ungrouped.set("group", None)
    for aggregate in list(_aggregates(ungrouped)):
        argument = aggregate.this
        if isinstance(argument, exp.Distinct):
            return None
        if isinstance(aggregate, exp.Min | exp.Max | exp.Sum):
            aggregate.replace(argument.copy())
        elif isinstance(aggregate, exp.Count) and isinstance(argument, exp.Star):
            aggregate.replace(exp.Literal.number(1))
        elif isinstance(aggregate, exp.Count):
            present = exp.Not(this=exp.Is(this=argument.copy(), expression=exp.Null()))
            one_or_zero = exp.Case().when(present, exp.Literal.number(1))
            aggregate.replace(one_or_zero.else_(exp.Literal.number(0)))
        else:
            return None
    return ungrouped


def _passes_on(level: exp.Select, column: str) -> bool:
    """Whether a SELECT level outputs `column` as the same column of its source."""
    star = False
    for projection in level.expressions:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            star = True
        elif projection.alias_or_name.lower() == column:
            value = projection.unalias()
            return isinstance(value, exp.Column) and value.name.lower() == column
    return star


def _merge_sql(name, select, columns, body_sql, ctx, create) -> str:
    """INSERT the delta's groups; existing groups add (or GREATEST/LEAST) their aggregates."""
    group_sql = {g.sql("redshift") for g in select.args["group"].expressions}
    keys, merged, derived = [], {}, {}
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

        def use_merged(node, column=column):
            if isinstance(node, exp.AggFunc):
                held_by = agg_columns.get(node.sql("redshift"))
                if held_by is None:
                    raise TranslationError(
                        f"{name}.{column}: {node.sql('redshift')} must also be a column of its "
                        "own so the merged value can be recomputed"
                    )
                return sqlglot.parse_one(f"({merged[held_by]})", read="postgres")
            return node

        recomputed = rewrite(expression.copy().transform(use_merged), ctx).sql("postgres")
        sets.append(f"{column} = {recomputed}")
    create.append(
        f"CREATE UNIQUE INDEX {name}_group ON {name} ({', '.join(keys)}) NULLS NOT DISTINCT"
    )
    # MIN/MAX only (no count to add): leave a group's row alone when nothing in it changes (a
    # duplicate arriving), rather than writing a new version of it.
    unchanged = ""
    if not derived and all(not m.startswith("COALESCE") for m in merged.values()):
        changes = [f"{m} IS DISTINCT FROM t.{c}" for c, m in merged.items()]
        unchanged = " WHERE " + " OR ".join(changes)
    return (
        f"INSERT INTO {name} AS t ({', '.join(columns)}) {body_sql}\n"
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}{unchanged}"
    )


def _table(st: Statement, ctx: _Context) -> LocalObject:
    tree, sort_columns = _strip_properties(sqlglot.parse_one(st.sql, read="redshift"))
    create = [rewrite(tree, ctx).sql("postgres")]
    create += [f"CREATE INDEX {st.name}_{c} ON {st.name} ({c})" for c in sort_columns]
    ctx.static.add(st.name)
    return LocalObject(st.name, "table", create, [f"DROP TABLE IF EXISTS {st.name} CASCADE"])


def _view(st: Statement, ctx: _Context) -> LocalObject:
    tree = sqlglot.parse_one(st.sql, read="redshift")
    create = [rewrite(tree, ctx).sql("postgres")]
    return LocalObject(st.name, "view", create, [f"DROP VIEW IF EXISTS {st.name} CASCADE"])


def translate_script(script: Script) -> dict[str, LocalObject]:
    """Every object of sql/ as PostgreSQL, keyed by object name, in order."""
    ctx = _Context()
    translators = {
        "external_schema": _external_schema,
        "materialized_view": _materialized_view,
        "table": _table,
        "view": _view,
    }
    objects = {}
    for st in script.objects():
        try:
            objects[st.name] = translators[st.kind](st, ctx)
        except sqlglot.errors.SqlglotError as exc:
            raise TranslationError(f"{st.file}: {st.name}: {exc}") from exc
    return objects


def split_sql(text: str) -> list[str]:
    """Split our own generated multi-statement strings (no semicolons inside literals)."""
    return [s.strip() for s in re.split(r";\s*\n", text) if s.strip()]
