"""The Redshift -> PostgreSQL translation, kept on disk: a process whose inputs are unchanged
neither imports sqlglot nor translates.

Every process that applies the warehouse (`flu-monitor up`, `db apply`, each pytest-xdist worker)
translated sql/ again (sqlglot: about 0.1-0.45 CPU-s to import, 0.75 CPU-s to translate), and
every `flu-monitor notify` translated its three statements (0.15 CPU-s); the results only change
when what they are made from changes. So each result is a JSON file named by the SHA-256 of
everything it depends on:

- the input: every field of every statement of the loaded sql/ (placeholders substituted), or
  the statements (and SUPER columns) given to `to_postgres`;
- the translator's own source: every module of the warehouse package (the translator's stages,
  sqlscript.py and objects.py, which it imports, and this module, which writes and reads the
  result) and flu_monitor/__init__.py. Editing any of them misses;
- sqlglot's installed version (importlib.metadata reads it from the package's metadata, without
  importing sqlglot, which is the import this cache avoids), and the Python version (sqlglot's
  output, the str and dict behaviour it relies on, and this module's JSON all come from it).

A stale cache can therefore not make a command or a test pass that a fresh translation would
fail: anything a result is made from is in its file name, and a different input is a different
file. The test suite uses the user's cache like any other run (a developer's second
`make test-fast` reads it); tests/warehouse/test_translation_cache.py proves a cached load equal,
field for field, to a fresh translation of the real sql/, and the tests of what the translator
makes (test_translate, test_speed_rules, test_day_refresh: marked TRANSLATION) translate afresh,
so they test the translator and not this cache.

The cache can never change a result or fail a command: a directory that cannot be made or
written, a file that cannot be read, is not JSON, or has the wrong shape is ignored and the
translation is computed (and a bad file replaced). Files are written whole to a temporary file
and renamed over (os.replace: atomic on POSIX), so processes starting together (three xdist
workers) or a kill -9 never leave a half-written file under a name that is read. Only the newest
KEEP files of each kind are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import os
import sys
import tempfile
import time
import types
import typing
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from flu_monitor.warehouse.objects import LocalObject
from flu_monitor.warehouse.sqlscript import Script

FORMAT = 1  # bump when the files' layout changes (this module's source is in the key anyway)
KEEP = 16  # files kept per kind: a few checkouts or branches, not every edit ever made
STALE_TEMP_S = 3600.0  # a temporary file this old was left by a killed writer


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/flu-monitor, or ~/.cache/flu-monitor.

    The XDG Base Directory Specification's place for "user-specific non-essential (cached) data",
    "$HOME/.cache" when XDG_CACHE_HOME is unset or empty; it also says the paths "must be
    absolute", so a relative one is ignored. Not the checkout: one translation serves every
    checkout and worktree with the same sources, and a deployed copy needs no writable tree."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flu-monitor"


def translator_sources() -> list[Path]:
    """The files the translation is made by: every module of the warehouse package (translate.py,
    the stages it imports, sqlscript.py, objects.py and this one; postgres.py too, whose edits
    then cost one translation) and the package's __init__.py, which runs on import.
    tests/warehouse/test_translation_cache.py checks that the translator loads nothing else."""
    package = Path(__file__).resolve().parent
    return sorted([*package.glob("*.py"), package.parent / "__init__.py"])


@cache
def _environment() -> dict[str, str]:
    from importlib import metadata  # already imported by psycopg and click in practice

    sources = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in translator_sources():
        sources.update(path.relative_to(root).as_posix().encode() + b"\0")
        sources.update(path.read_bytes() + b"\0")
    return {
        "format": str(FORMAT),
        "translator": sources.hexdigest(),
        # PackageNotFoundError (an ImportError) without the package's metadata, e.g. a copy on
        # sys.path: no version to key by, so no cache (_cached)
        "sqlglot": metadata.version("sqlglot"),
        "python": sys.version,
    }


def key(kind: str, inputs: Any) -> str:
    """The SHA-256 naming a `kind` result made from `inputs` (JSON-able) in this environment."""
    text = json.dumps([kind, _environment(), inputs], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _cached(
    kind: str,
    inputs: Any,
    compute: Callable[[], Any],
    valid: Callable[[Any], bool],
) -> Any:
    """The JSON value `compute()` returns, read from the cache when there; `valid` checks a value
    read back has the shape compute() gives."""
    directory = cache_dir()
    if not directory.is_absolute():  # no home directory to put it in: never the working one
        return compute()
    try:
        digest = key(kind, inputs)
    except (OSError, ValueError, ImportError):  # a source unreadable, no sqlglot version: no key
        return compute()
    path = directory / f"{kind}-{digest}.json"
    value = _read(path, digest, valid)
    if value is None:
        value = compute()
        _write(path, digest, value)
    return value


def _read(path: Path, digest: str, valid: Callable[[Any], bool]) -> Any:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):  # absent, unreadable, not UTF-8, not JSON (e.g. truncated)
        return None
    if not isinstance(document, dict) or document.get("key") != digest:
        return None
    value = document.get("value")
    return value if valid(value) else None


def _write(path: Path, digest: str, value: Any) -> None:
    text = json.dumps({"key": digest, "value": value}, separators=(",", ":"))
    temp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # No fsync: kill -9 cannot lose what was written; a crash of the machine that leaves an
        # empty file is a file that does not parse, ignored and rewritten.
        os.replace(temp, path)
        temp = None
        _prune(path.parent, path.name.split("-", 1)[0])
    except OSError:
        pass  # a cache that cannot be written is no cache: the result is still returned
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _prune(directory: Path, kind: str) -> None:
    """Only the newest KEEP results of `kind`; temporary files left by killed writers."""
    now = time.time()
    entries: list[tuple[float, Path]] = []
    for path in directory.iterdir():
        try:
            mtime = path.stat().st_mtime
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                if now - mtime > STALE_TEMP_S:
                    path.unlink()
            elif path.name.startswith(f"{kind}-") and path.suffix == ".json":
                entries.append((mtime, path))
        except OSError:
            continue  # removed meanwhile by another process
    for _, path in sorted(entries, reverse=True)[KEEP:]:
        with contextlib.suppress(OSError):
            path.unlink()


# --- the results cached -----------------------------------------------------------------------


def plan_script(script: Script) -> dict[str, LocalObject]:
    """translate.translate_script(script), from the cache when sql/ and the translator are the
    ones it was made from."""

    def compute() -> list[dict[str, Any]]:
        from flu_monitor.warehouse import translate

        return [dataclasses.asdict(o) for o in translate.translate_script(script).values()]

    inputs = {
        "statements": [dataclasses.asdict(s) for s in script.statements],
        "placeholders": script.placeholders,
    }
    rows = _cached("plan", inputs, compute, _objects_valid)
    enums = {n: h for n, h in _object_fields().items() if _is_enum(h)}
    objects = [LocalObject(**{**row, **{n: e(row[n]) for n, e in enums.items()}}) for row in rows]
    return {o.name: o for o in objects}


def to_postgres(statements: Sequence[str], super_columns: set[str] | None = None) -> list[str]:
    """[translate.to_postgres(s, super_columns) for s in statements], from the cache when the
    statements and the translator are the ones they were made from."""
    columns = sorted(super_columns or ())

    def compute() -> list[str]:
        from flu_monitor.warehouse import translate

        return [translate.to_postgres(s, set(columns)) for s in statements]

    def valid(value: Any) -> bool:
        return _is(value, list[str]) and len(value) == len(statements)

    inputs = {"statements": list(statements), "super_columns": columns}
    result: list[str] = _cached("sql", inputs, compute, valid)
    return result


@cache
def _object_fields() -> dict[str, Any]:
    return typing.get_type_hints(LocalObject)


def _objects_valid(value: Any) -> bool:
    """A list of LocalObject fields, each of its declared type, and unique names."""
    fields = _object_fields()
    return (
        isinstance(value, list)
        and all(
            isinstance(row, dict)
            and row.keys() == fields.keys()
            and all(_is(row[name], hint) for name, hint in fields.items())
            for row in value
        )
        and len({row["name"] for row in value}) == len(value)
    )


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.Enum)


def _is(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a LocalObject field's hint (str, int, enum, list[X], X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is(value, option) for option in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_is(v, item) for v in value)
    if hint is type(None):
        return value is None
    if _is_enum(hint):
        return value in {member.value for member in hint}
    return type(value) is hint  # exact: True is not an int here, 1 is not a str
