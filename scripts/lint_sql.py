#!/usr/bin/env python3
"""Parse every statement of sql/ with sqlfluff's Redshift dialect (a second parser beside the
sqlglot one the tests use); exit status 1 naming each statement that does not parse.

    python scripts/lint_sql.py [SQL_DIR]     # sql/ of this checkout by default

CREATE EXTERNAL SCHEMA ... FROM KAFKA is skipped: neither parser knows it, and
tests/warehouse/test_sqlscript.py checks its form against the Redshift docs instead.
"""

from __future__ import annotations

import sys

from sqlfluff.api.simple import APIParsingError, get_simple_config, parse

from flu_monitor.warehouse import postgres, sqlscript


def main(sql_dir: str | None) -> int:
    config = get_simple_config(dialect="redshift")  # what sqlfluff.parse(dialect=...) makes
    try:
        script = sqlscript.load_script(sql_dir, postgres.LOCAL_PLACEHOLDERS)
    except sqlscript.ScriptError as exc:  # a directory without sql/'s files, a bad script
        print(f"lint_sql.py: {exc}", file=sys.stderr)
        return 2
    statements = [st for st in script.objects() if st.kind != "external_schema"]
    failed = 0
    for st in statements:
        try:
            parse(st.sql, config=config)
        except APIParsingError as exc:
            failed += 1
            detail = " ".join(str(exc).split("\n")[1:]) or str(exc)  # the line: where and what
            print(f"sql/: {st.name} does not parse as Redshift SQL (sqlfluff): {detail}")
    print(f"sqlfluff (redshift): {len(statements) - failed} of {len(statements)} statements parse")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
