"""The shared SQL core: reads sql/ and says what to run, on Redshift and (translated) on PostgreSQL.

STANDARD LIBRARY ONLY and self-contained (no other flu_monitor import): the sql_runner Lambda
bundles this file with sql/ and data/ and runs the statements through the Redshift Data API; the
local pipeline runs the same plan on PostgreSQL after translation (flu_monitor.warehouse.translate).
This module never talks to a database: callers run the SQL it returns, one statement at a time,
in order (some Redshift statements, e.g. CREATE EXTERNAL SCHEMA, refuse to run in a transaction
block, so do not batch them into one transaction). Every statement stays under the Redshift Data
API's 100 KB statement limit (load_script checks it; reference data is split to fit).

    script = load_script(sql_dir, placeholders)      # parse + substitute + check placeholders
    for sql in ledger_setup_sql(): run(sql)          # the ledger table (idempotent)
    applied = ledger_from_rows(run(LEDGER_QUERY))    # (object_name, statement_hash, auto_refresh)
    for step in plan_apply(script, applied): run(step.sql)
    refresh_sql(script)   # "REFRESH MATERIALIZED VIEW <the one top view> CASCADE": the whole tree
    drop_sql(script)      # everything, dependents first (stack Delete), ledger table last

Placeholders are written `{{name}}` in sql/; the names and their rules are PLACEHOLDERS below. A
missing or unknown placeholder, or a value that breaks its rule, raises ScriptError naming it.

Idempotency (re-run and stack Update): the ledger table records, per object, the hash of the
statement that created it. plan_apply() skips an object whose statement is unchanged, and
recreates (drop + create) one that changed plus every later object that names a recreated one.
Reference data (`-- @load TABLE PATH` lines) is reloaded only when its CSV or its table changes.
The AUTO REFRESH choice is kept out of the hash: flipping it becomes `ALTER MATERIALIZED VIEW ...
AUTO REFRESH YES|NO`, so the streaming view (whose loss would re-read the topic from offset 0,
losing what retention already deleted) keeps its data. Only the streaming view takes the
`auto_refresh` placeholder: Redshift refuses AUTO REFRESH YES on a materialized view defined on
another materialized view (CREATE MATERIALIZED VIEW, "Limitations"), so every other one must say
AUTO REFRESH NO and is refreshed by refresh_sql(), which load_script checks.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEDGER_TABLE = "flu_monitor_sql_ledger"
# Redshift Data API: "The maximum query statement size is 100 KB" (Management Guide, Using the
# Amazon Redshift Data API). Reference-data INSERTs are cut well below it.
MAX_STATEMENT_BYTES = 100_000
LOAD_STATEMENT_BYTES = 64_000

# name -> (regex the value must match, what it is)
PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "iam_role_arn": (
        r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+",
        "IAM role Redshift assumes to read MSK (kafka-cluster:Connect/DescribeTopic/ReadData)",
    ),
    "bootstrap_servers": (
        r"[A-Za-z0-9.-]+:\d{1,5}(,[A-Za-z0-9.-]+:\d{1,5})*",
        "the cluster's IAM bootstrap brokers, host:port[,host:port...] (port 9098 on MSK)",
    ),
    "topic": (
        r"[a-z0-9._-]{1,128}",
        "Kafka topic of flu case events; Redshift streaming takes at most 128 characters, and "
        "an upper-case name needs enable_case_sensitive_identifier, so lower case only",
    ),
    "stream_schema": (r"[a-z_][a-z0-9_]{0,126}", "external schema that maps the MSK cluster"),
    "auto_refresh": (r"YES|NO", "YES: Redshift refreshes the views itself; NO: scheduled refresh"),
}

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_LOAD = re.compile(r"^--\s*@load\s+([A-Za-z_][A-Za-z0-9_]*)\s+(\S+)\s*$", re.MULTILINE)
_CREATE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?"
    r"(?P<kind>EXTERNAL\s+SCHEMA|MATERIALIZED\s+VIEW|TABLE|VIEW)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)",
    re.IGNORECASE,
)
_AUTO_REFRESH = re.compile(r"\bAUTO\s+REFRESH\s+(YES|NO)\b", re.IGNORECASE)
_AUTO_REFRESH_PLACEHOLDER = re.compile(r"\bAUTO\s+REFRESH\s+\{\{\s*auto_refresh\s*\}\}", re.I)


class ScriptError(ValueError):
    """sql/ or its placeholders are wrong; the message names the file, statement or placeholder."""


@dataclass(frozen=True)
class Statement:
    """One object of sql/: a CREATE statement, or a `-- @load` of reference data."""

    file: str
    kind: str  # external_schema | materialized_view | table | view | load
    name: str  # the object (for a load: the table it fills)
    sql: str  # substituted SQL (for a load: the INSERT statements, see load_sql)
    template: str  # the statement as written, placeholders unsubstituted
    streaming: bool = False  # the materialized view that reads the topic
    auto_refresh: str | None = None  # YES | NO for materialized views
    load_sql: tuple[str, ...] = ()
    digest: str = ""

    @property
    def key(self) -> str:
        """Ledger key: the object name, or load:<table> for reference data."""
        return f"load:{self.name}" if self.kind == "load" else self.name


@dataclass(frozen=True)
class Step:
    """One statement to run. `action`: create | drop | alter | load | ledger."""

    sql: str
    action: str
    object_name: str


@dataclass
class Script:
    statements: list[Statement] = field(default_factory=list)
    placeholders: dict[str, str] = field(default_factory=dict)

    def objects(self, kind: str | None = None) -> list[Statement]:
        return [s for s in self.statements if s.kind != "load" and kind in (None, s.kind)]

    @property
    def files(self) -> list[str]:
        return sorted({s.file for s in self.statements})


def default_sql_dir() -> Path:
    """sql/ of the checkout (or of FLU_MONITOR_HOME, e.g. inside a Lambda bundle)."""
    home = os.environ.get("FLU_MONITOR_HOME")
    return Path(home) / "sql" if home else Path(__file__).resolve().parents[3] / "sql"


def sql_files(sql_dir: Path) -> list[Path]:
    """The ordered files of sql/: NNN_name.sql, applied in name order."""
    files = sorted(Path(sql_dir).glob("[0-9][0-9][0-9]_*.sql"))
    if not files:
        raise ScriptError(f"no NNN_*.sql files in {sql_dir}")
    return files


def substitute(text: str, placeholders: dict[str, str], where: str = "sql") -> str:
    """Replace every {{name}}; raise ScriptError on an unknown or missing placeholder."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            raise ScriptError(f"{where}: unknown placeholder {{{{{name}}}}}")
        if name not in placeholders:
            raise ScriptError(f"{where}: placeholder {name!r} has no value")
        return placeholders[name]

    return _PLACEHOLDER.sub(replace, text)


def check_placeholders(placeholders: dict[str, str]) -> dict[str, str]:
    """Every placeholder present, no unknown one, each value matching its rule."""
    values = {k: str(v).strip() for k, v in placeholders.items()}
    if "auto_refresh" in values:
        values["auto_refresh"] = values["auto_refresh"].upper()
    unknown = sorted(set(values) - set(PLACEHOLDERS))
    if unknown:
        raise ScriptError(f"unknown placeholders {unknown}; known: {sorted(PLACEHOLDERS)}")
    missing = sorted(set(PLACEHOLDERS) - {k for k, v in values.items() if v})
    if missing:
        raise ScriptError(f"placeholders without a value: {missing}")
    for name, (pattern, meaning) in PLACEHOLDERS.items():
        if not re.fullmatch(pattern, values[name]):
            raise ScriptError(
                f"placeholder {name}={values[name]!r} is not valid ({meaning}; must match "
                f"{pattern})"
            )
    return values


def split_statements(text: str) -> list[str]:
    """Split SQL text on semicolons outside quotes and comments; keep `-- @load` lines as items."""
    items: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            line = text[i:end]
            if _LOAD.match(line.strip()) and not "".join(buf).strip():
                items.append(line.strip())
            else:
                buf.append(line)
            i = end
            continue
        if ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
            buf.append(text[i:end])
            i = end
            continue
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if text[end] == ch:
                    if end + 1 < n and text[end + 1] == ch:  # doubled quote inside the literal
                        end += 2
                        continue
                    break
                end += 1
            buf.append(text[i : end + 1])
            i = end + 1
            continue
        if ch == ";":
            items.append("".join(buf))
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    items.append("".join(buf))
    return [s for s in (_strip_comments(item) for item in items) if s]


def _strip_comments(statement: str) -> str:
    """The statement without leading comment lines (a `-- @load` line stays as it is)."""
    if _LOAD.match(statement.strip()):
        return statement.strip()
    lines = statement.strip().splitlines()
    while lines and (lines[0].strip().startswith("--") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines).strip()


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_statements(
    table: str, csv_path: Path, max_bytes: int = LOAD_STATEMENT_BYTES
) -> tuple[str, ...]:
    """DELETE then INSERT ... VALUES of every CSV row (values as string literals, cast by the
    column types); columns are the CSV header. Each INSERT holds as many rows as fit in
    `max_bytes` (UTF-8), so every statement stays under the Data API's 100 KB limit."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    for name in header:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ScriptError(f"{csv_path}: column {name!r} is not a plain SQL identifier")
    prefix = f"INSERT INTO {table} ({', '.join(header)}) VALUES\n"
    statements = [f"DELETE FROM {table}"]
    chunk: list[str] = []
    size = len(prefix.encode())
    for row in rows:
        value = "(" + ", ".join(_sql_literal(v) for v in row) + ")"
        grown = size + len(value.encode()) + 2  # ",\n"
        if chunk and grown > max_bytes:
            statements.append(prefix + ",\n".join(chunk))
            chunk, grown = [], len(prefix.encode()) + len(value.encode()) + 2
        if grown > max_bytes:
            raise ScriptError(f"{csv_path}: one row is larger than {max_bytes} bytes: {row[:3]}")
        chunk.append(value)
        size = grown
    if chunk:
        statements.append(prefix + ",\n".join(chunk))
    return tuple(statements)


def load_script(
    sql_dir: Path | str | None = None,
    placeholders: dict[str, str] | None = None,
    data_root: Path | str | None = None,
) -> Script:
    """Read sql/ in order, substitute placeholders, classify every statement.

    `data_root` is where `-- @load` paths are resolved (default: the parent of sql_dir)."""
    sql_dir = Path(sql_dir) if sql_dir else default_sql_dir()
    data_root = Path(data_root) if data_root else sql_dir.parent
    values = check_placeholders(placeholders or {})
    script = Script(placeholders=values)
    seen: set[str] = set()
    for path in sql_files(sql_dir):
        for template in split_statements(path.read_text(encoding="utf-8")):
            statement = _classify(path.name, template, values, data_root)
            if statement.key in seen:
                raise ScriptError(f"{path.name}: {statement.key} is defined twice in sql/")
            seen.add(statement.key)
            script.statements.append(statement)
    return script


def _classify(file: str, template: str, values: dict[str, str], data_root: Path) -> Statement:
    where = f"{file}: {template.splitlines()[0][:80]}"
    load = _LOAD.match(template)
    if load:
        table, rel = load.groups()
        csv_path = data_root / rel
        if not csv_path.exists():
            raise ScriptError(f"{where}: reference data {csv_path} not found")
        loads = load_statements(table, csv_path)
        return Statement(
            file, "load", table, ";\n".join(loads), template, load_sql=loads,
            digest=_digest(template, csv_path.read_text(encoding="utf-8")),
        )  # fmt: skip
    sql = substitute(template, values, where)
    match = _CREATE.match(sql)
    if not match:
        raise ScriptError(f"{where}: sql/ holds only CREATE statements and -- @load lines")
    kind = re.sub(r"\s+", "_", match.group("kind").lower())
    if len(sql.encode()) > MAX_STATEMENT_BYTES:
        raise ScriptError(f"{where}: longer than the Data API's {MAX_STATEMENT_BYTES} bytes")
    auto = _AUTO_REFRESH.search(sql)
    streaming = kind == "materialized_view" and "{{stream_schema}}" in template.replace(" ", "")
    if streaming and not _AUTO_REFRESH_PLACEHOLDER.search(template):
        raise ScriptError(f"{where}: the streaming view must say AUTO REFRESH {{{{auto_refresh}}}}")
    if kind == "materialized_view" and not streaming and (not auto or auto.group(1) != "NO"):
        raise ScriptError(
            f"{where}: a materialized view over other views must say AUTO REFRESH NO (Redshift "
            "refuses AUTO REFRESH YES on it; refresh_sql() refreshes it with CASCADE)"
        )
    return Statement(
        file=file,
        kind=kind,
        name=match.group("name").lower(),
        sql=sql,
        template=template,
        streaming=streaming,
        auto_refresh=auto.group(1).upper() if auto else None,
        # AUTO REFRESH is kept out of the hash: changing it is an ALTER, not a rebuild.
        digest=_digest(_AUTO_REFRESH.sub("AUTO REFRESH", sql)),
    )


# --- ledger ---------------------------------------------------------------------------------

# Oldest first: should a run stop between a ledger write's two statements, the newer row wins
# (within the same second either may; then the next plan at worst repeats that one step).
LEDGER_QUERY = (
    f"SELECT object_name, statement_hash, auto_refresh FROM {LEDGER_TABLE} ORDER BY applied_at"
)


def ledger_setup_sql() -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} ("
        "object_name VARCHAR(256) NOT NULL, "
        "object_kind VARCHAR(32) NOT NULL, "
        "statement_hash VARCHAR(64) NOT NULL, "
        "auto_refresh VARCHAR(3), "
        "applied_at TIMESTAMP NOT NULL DEFAULT GETDATE())"
    ]


def ledger_from_rows(rows: Iterable[Sequence[Any]]) -> dict[str, tuple[str, str | None]]:
    """{object_name: (statement_hash, auto_refresh)} from the rows of LEDGER_QUERY (the last
    row of an object wins)."""
    return {row[0]: (row[1], row[2]) for row in rows}


def _ledger_write(statement: Statement) -> list[Step]:
    """INSERT the new row, then DELETE the object's other rows: each runs on its own (the Data API
    runs one statement at a time), and a run that stops between them leaves the object with a
    row. Deleting first could leave none, and a missing row makes the next plan drop and create
    the object, which for the streaming view means re-reading the topic from offset 0."""
    auto = _sql_literal(statement.auto_refresh) if statement.auto_refresh else "NULL"
    key = _sql_literal(statement.key)
    digest = _sql_literal(statement.digest)
    auto_text = _sql_literal(statement.auto_refresh or "")
    return [
        Step(
            f"INSERT INTO {LEDGER_TABLE} (object_name, object_kind, statement_hash, auto_refresh) "
            f"VALUES ({key}, {_sql_literal(statement.kind)}, {digest}, {auto})",
            "ledger",
            statement.key,
        ),
        Step(
            f"DELETE FROM {LEDGER_TABLE} WHERE object_name = {key} AND (statement_hash <> "
            f"{digest} OR COALESCE(auto_refresh, '') <> {auto_text})",
            "ledger",
            statement.key,
        ),
    ]


def _drop(statement: Statement) -> str:
    kind = {
        "external_schema": "SCHEMA",
        "materialized_view": "MATERIALIZED VIEW",
        "table": "TABLE",
        "view": "VIEW",
    }[statement.kind]
    return f"DROP {kind} IF EXISTS {statement.name} CASCADE"


_COMMENT_OR_QUOTED = re.compile(r"('(?:[^']|'')*'|\"[^\"]*\")|--[^\n]*")


def _without_comments(sql: str) -> str:
    """The SQL with its -- comments removed (quoted text kept as it is)."""
    return _COMMENT_OR_QUOTED.sub(lambda m: m.group(1) or "", sql)


def _mentions(statement: Statement, names: set[str]) -> bool:
    text = _without_comments(statement.sql).lower() if statement.kind != "load" else statement.name
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", text) for n in names)


def plan_apply(script: Script, applied: dict[str, tuple[str, str | None]]) -> list[Step]:
    """The steps that bring the database from `applied` (the ledger) to `script`.

    Unchanged objects are skipped. A changed object is dropped (CASCADE) and created again, and
    so is every later object whose SQL names a recreated one (CASCADE dropped it). A load runs
    when its CSV changed or its table was recreated. Only AUTO REFRESH changed: an ALTER."""
    steps: list[Step] = []
    recreated: set[str] = set()
    for st in script.statements:
        previous = applied.get(st.key)
        if st.kind == "load":
            if previous is None or previous[0] != st.digest or st.name in recreated:
                steps += [Step(sql, "load", st.name) for sql in st.load_sql]
                steps += _ledger_write(st)
                recreated.add(st.name)  # objects built from this table must be rebuilt
            continue
        if previous is not None and previous[0] == st.digest and not _mentions(st, recreated):
            if st.auto_refresh and previous[1] != st.auto_refresh:
                steps.append(
                    Step(
                        f"ALTER MATERIALIZED VIEW {st.name} AUTO REFRESH {st.auto_refresh}",
                        "alter",
                        st.name,
                    )
                )
                steps += _ledger_write(st)
            continue
        # New, changed, or built on something recreated. An external schema is created with
        # IF NOT EXISTS; everything else is dropped first (a leftover without a ledger row too).
        if st.kind != "external_schema" or previous is not None:
            steps.append(Step(_drop(st), "drop", st.name))
        steps.append(Step(st.sql, "create", st.name))
        steps += _ledger_write(st)
        recreated.add(st.name)
    return steps


def apply_sql(script: Script) -> list[str]:
    """Every statement of a first apply on an empty database (no ledger rows), in order."""
    return [step.sql for step in plan_apply(script, {})]


def top_views(script: Script) -> list[str]:
    """The materialized views no other materialized view reads (the leaves of the tree)."""
    views = script.objects("materialized_view")
    return [
        st.name
        for i, st in enumerate(views)
        if not any(_mentions(later, {st.name}) for later in views[i + 1 :])
    ]


def refresh_sql(script: Script) -> str:
    """The one statement that brings every materialized view up to date:
    `REFRESH MATERIALIZED VIEW <top> CASCADE`.

    CASCADE refreshes the views <top> is built on first, bases before the views on them, then
    <top>, in a single transaction (REFRESH MATERIALIZED VIEW, "Cascading refresh"; cascading is
    supported over local and streaming materialized views). Without it a refresh uses the views
    it reads as they are, and an incremental refresh sees only rows committed before its
    transaction, so refreshing each view in one batch would leave every level a refresh behind.
    One statement also keeps the views consistent with each other (one stream position). sql/
    therefore has exactly one top view; a second one raises ScriptError naming both."""
    tops = top_views(script)
    if len(tops) != 1:
        raise ScriptError(
            f"sql/ must have exactly one materialized view that no other one reads (the one the "
            f"scheduled REFRESH ... CASCADE names); found {tops}: make the top view read them"
        )
    return f"REFRESH MATERIALIZED VIEW {tops[0]} CASCADE"


def drop_sql(script: Script) -> list[str]:
    """Drop everything sql/ created (dependents first) and the ledger; for stack Delete."""
    return [_drop(st) for st in reversed(script.objects())] + [
        f"DROP TABLE IF EXISTS {LEDGER_TABLE}"
    ]
