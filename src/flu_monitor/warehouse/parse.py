"""Stage 1 of the translation: a Redshift statement of sql/ as a sqlglot tree.

Redshift's table attributes (AUTO REFRESH, DISTSTYLE, DISTKEY, SORTKEY) are split off here:
sqlglot crashes writing some of them and PostgreSQL has none; SORTKEY columns are kept, the plan
makes them btree indexes. The other helpers answer questions the later stages ask of a tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp


@dataclass(frozen=True)
class Parsed:
    tree: exp.Expr  # the statement without Redshift's table attributes
    sort_columns: list[str]  # its SORTKEY columns


def parse(sql: str) -> Parsed:
    """One Redshift statement or expression, its Redshift-only table attributes dropped."""
    tree = sqlglot.parse_one(sql, read="redshift")
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
    return Parsed(tree, sort_columns)


def tables(select: exp.Expr) -> list[exp.Table]:
    """Every named table the tree reads (CTE names included)."""
    return [t for t in select.find_all(exp.Table) if t.name]


def names(select: exp.Expr) -> list[str]:
    """The relations the tree reads, lower case, sorted (CTEs excluded)."""
    ctes = {c.alias for c in select.find_all(exp.CTE)}
    return sorted({t.name.lower() for t in tables(select) if t.name not in ctes})


def aggregates(select: exp.Select) -> list[exp.AggFunc]:
    """The aggregate calls of this SELECT level (not of its subqueries)."""
    return [a for a in select.find_all(exp.AggFunc) if a.find_ancestor(exp.Select) is select]
