"""Stage 2 of the translation: Redshift expressions rewritten as PostgreSQL ones.

sqlglot writes the tree for PostgreSQL (read="redshift", write="postgres") after these AST rules
for what sqlglot cannot know or gets wrong (each has its own test in tests/warehouse):

- SUPER navigation `payload.field` (read by sqlglot as table.column) -> `payload -> 'field'`
  (jsonb); `CAST(payload.field AS VARCHAR)` -> `payload ->> 'field'`; an array index
  `payload.list[0]` stays 0-based (`-> 0`; sqlglot would shift it to 1-based).
  The SUPER columns are the aliases of JSON_PARSE(...) in the views.
- JSON_PARSE / CAN_JSON_PARSE / JSON_SERIALIZE / JSON_TYPEOF / TO_HEX on VARBYTE: kept as function
  calls answered by the PostgreSQL shim functions in shims.sql (sqlglot would emit CAST(x AS JSON)
  and HEX(), which do not exist for bytea there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

SHIMMED = {"CAN_JSON_PARSE", "JSON_SERIALIZE", "JSON_TYPEOF"}


@dataclass
class Dialect:
    """What the rules must know of the script so far: the SUPER columns (lower case)."""

    super_columns: set[str] = field(default_factory=set)


def _is_super_path(node: exp.Expr, dialect: Dialect) -> bool:
    return (
        isinstance(node, exp.Column)
        and bool(node.table)
        and node.table.lower() in dialect.super_columns
        and not node.args.get("db")
    )


def _json_path(column: exp.Column, *path: exp.Expr, text: bool = False) -> exp.Expr:
    """payload.a[0] -> jsonb_extract_path(payload, 'a', '0'): PostgreSQL's path elements index
    arrays from 0, like Redshift (sqlglot's own rewrite would shift them to 1-based)."""
    elements: list[exp.Expr] = [exp.Literal.string(column.name)]
    for index in path:
        elements.append(
            exp.Literal.string(index.name)
            if isinstance(index, exp.Literal)
            else exp.Cast(this=index, to=exp.DataType.build("text"))
        )
    fn = "jsonb_extract_path_text" if text else "jsonb_extract_path"
    return exp.Anonymous(this=fn, expressions=[exp.column(column.table), *elements])


def rewrite(tree: exp.Expr, dialect: Dialect) -> exp.Expr:
    """The tree (copied) with the Redshift -> PostgreSQL rules applied (see the module doc)."""

    def rule(node: exp.Expr) -> exp.Expr:
        if (
            isinstance(node, exp.Cast)
            and _is_super_path(node.this, dialect)
            and node.to.is_type(*exp.DataType.TEXT_TYPES)
        ):
            return exp.Cast(this=_json_path(node.this, text=True), to=node.to)
        if isinstance(node, exp.Bracket) and _is_super_path(node.this, dialect):
            return _json_path(node.this, *node.expressions)
        if isinstance(node, exp.Column) and _is_super_path(node, dialect):
            return _json_path(node)
        if isinstance(node, exp.ParseJSON):
            return exp.Anonymous(this="json_parse", expressions=[node.this])
        if isinstance(node, exp.LowerHex | exp.Hex):
            return exp.Anonymous(this="to_hex", expressions=[node.this])
        if isinstance(node, exp.Anonymous) and node.name.upper() in SHIMMED:
            node.set("this", node.name.lower())
        return node

    return tree.transform(rule)
