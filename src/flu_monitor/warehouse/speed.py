"""Stage 3 of the translation: speed rules, same results.

PostgreSQL has no common-subexpression elimination, and some Redshift idioms are slow there; each
rule has an equivalence test on a real PostgreSQL in tests/warehouse:

- `x ~ '^(a|b|...)(,(a|b|...))*$'` (a delimited list of literal words) -> REPLACE calls that
  remove every listed word between delimiters, compared with ''; PostgreSQL's regex engine builds
  its automaton anew for every row (15 us for the symptoms list).
- CAN_JSON_PARSE(x) and JSON_PARSE(x) of the same x in one materialized view's SELECT: x is parsed
  once per row (try_json_parse), not once per call (each CAN_JSON_PARSE is a parse in a
  subtransaction).
- Every derived table is fenced with OFFSET 0, so a column computed in it is computed once a row.
- An incremental refresh that groups a keyed source by its key (one row per group) runs without
  GROUP BY: MIN/MAX/SUM(x) of one row is x, COUNT(*) is 1; its rows need no ON CONFLICT.
"""

from __future__ import annotations

import re

from sqlglot import exp

from flu_monitor.warehouse.dialect import Dialect, rewrite
from flu_monitor.warehouse.parse import aggregates

UNIQUE_KEY = ("kafka_partition", "kafka_offset")  # one stream record

# A regex matching a delimited list of literal words: ^(w1|w2|...)(D(w1|w2|...))*$
_WORD_LIST = re.compile(
    r"\^\((?P<words>[A-Za-z0-9_]+(?:\|[A-Za-z0-9_]+)*)\)\((?P<sep>[,;:/])\((?P=words)\)\)\*\$"
)


def expression(tree: exp.Expr, dialect: Dialect) -> exp.Expr:
    """Any Redshift expression or statement in PostgreSQL, with the expression-level rules."""
    return replace_word_lists(rewrite(tree, dialect))


def select(tree: exp.Expr, dialect: Dialect) -> exp.Expr:
    """A materialized view's SELECT (or refresh body) in PostgreSQL, with every speed rule."""
    return fence_derived_tables(parse_json_once(expression(tree, dialect)))


def replace_word_lists(tree: exp.Expr) -> exp.Expr:
    """Every word-list regex match of the tree (copied) as REPLACE calls (`_word_list_match`)."""

    def rule(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.RegexpLike):  # (a replaced node's children are not visited)
            return _word_list_match(node) or node
        return node

    return tree.transform(rule)


def _word_list_match(node: exp.RegexpLike) -> exp.Expr | None:
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

    def replace(text: exp.Expr, old: str, new: str) -> exp.Expr:
        args = [text, exp.Literal.string(old), exp.Literal.string(new)]
        return exp.Anonymous(this="REPLACE", expressions=args)

    blocks: exp.Expr = exp.DPipe(
        this=exp.DPipe(
            this=exp.Literal.string(sep),
            expression=replace(replace_word_lists(node.this), sep, sep * 2),
        ),
        expression=exp.Literal.string(sep),
    )
    for word in match["words"].split("|"):
        blocks = replace(blocks, f"{sep}{word}{sep}", "")
    return exp.paren(exp.EQ(this=blocks, expression=exp.Literal.string("")))


def parse_json_once(tree: exp.Expr) -> exp.Expr:
    """CAN_JSON_PARSE(x) and JSON_PARSE(x) of one x in one SELECT: parse x once per row.

    The streaming view guards JSON_PARSE(kafka_value) with CAN_JSON_PARSE twice, and each
    CAN_JSON_PARSE is a parse caught in a subtransaction. The SELECT's single source is wrapped to
    add try_json_parse(x) (NULL when x is not JSON); CAN_JSON_PARSE(x) becomes `that IS NOT NULL`
    (NULL for a NULL x, as before) and JSON_PARSE(x) takes it, falling back to json_parse(x) when
    it is NULL so that an unguarded JSON_PARSE of bad input still raises."""
    for level in list(tree.find_all(exp.Select)):
        source = level.args.get("from_")
        if source is None or level.args.get("joins") or level.args.get("laterals"):
            continue
        calls: dict[str, list[exp.Anonymous]] = {}
        for call in level.find_all(exp.Anonymous):
            if (
                call.name.lower() in ("can_json_parse", "json_parse")
                and len(call.expressions) == 1
                and call.find_ancestor(exp.Select) is level
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


def fence_derived_tables(tree: exp.Expr) -> exp.Expr:
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


def one_row_per_record(query: exp.Expr) -> bool:
    """Whether the SELECT makes at most one row per record of its keyed source, keyed the same.

    True when the source is read through plain single-source SELECTs (no join, aggregate,
    DISTINCT, LIMIT, window or set operation anywhere), each level passes kafka_partition and
    kafka_offset on unchanged, and the top level either groups by them or aggregates nothing."""
    if not isinstance(query, exp.Select):
        return False
    if query.find(exp.Join, exp.Lateral, exp.Unnest, exp.Explode, exp.Window, exp.Union):
        return False
    if query.args.get("distinct") or query.args.get("having"):
        return False
    group = query.args.get("group")
    if group:
        keys = {g.name.lower() for g in group.expressions if isinstance(g, exp.Column)}
        if not set(UNIQUE_KEY) <= keys:
            return False
    elif aggregates(query):
        return False
    for level in query.find_all(exp.Select):
        if level is query:
            continue
        in_from = isinstance(level.parent, exp.Subquery) and isinstance(
            level.parent.parent, exp.From
        )
        plain = not any(level.args.get(k) for k in ("group", "having", "distinct", "limit"))
        if not (in_from and plain and not aggregates(level)):
            return False
    return all(_passes_on(level, key) for level in query.find_all(exp.Select) for key in UNIQUE_KEY)


def without_group_by(query: exp.Select) -> exp.Select | None:
    """A SELECT grouped by its key, one record per group (one_row_per_record), without the GROUP
    BY: over one row MIN/MAX/SUM(x) is x, COUNT(*) is 1 and COUNT(x) is 1 or 0. None for any
    other aggregate. Saves hashing every record and evaluating its aggregates."""
    ungrouped = query.copy()
    ungrouped.set("group", None)
    for aggregate in list(aggregates(ungrouped)):
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
