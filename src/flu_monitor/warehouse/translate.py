"""Redshift -> PostgreSQL: the mechanical translation of sql/, in four stages, one module each.

1. parse    (parse.py):   the statement as a sqlglot tree, Redshift's table attributes split off
2. dialect  (dialect.py): Redshift expressions rewritten as PostgreSQL ones (SUPER, VARBYTE, shims)
3. speed    (speed.py):   rewrites that give the same results faster on PostgreSQL
4. plan     (plan.py):    what each object becomes locally, and how each view is refreshed

This module is the front: one expression or statement (`to_postgres`), or the whole script
(`translate_script`, the plan the PostgreSQL runtime warehouse/postgres.py applies and refreshes).
"""

from __future__ import annotations

from flu_monitor.warehouse import speed
from flu_monitor.warehouse.dialect import Dialect
from flu_monitor.warehouse.objects import Kind, LocalObject, TranslationError
from flu_monitor.warehouse.parse import parse
from flu_monitor.warehouse.plan import plan_script

__all__ = ["Kind", "LocalObject", "TranslationError", "to_postgres", "translate_script"]

translate_script = plan_script


def to_postgres(sql: str, super_columns: set[str] | None = None) -> str:
    """Translate one Redshift statement or expression (tables and views; no materialized view)."""
    dialect = Dialect(super_columns=set(super_columns or ()))
    return speed.expression(parse(sql).tree, dialect).sql("postgres")
