"""The on-disk translation cache (flu_monitor.warehouse.translation_cache): a cached result is the
translator's, field for field; a warm start imports no sqlglot; anything the result is made from
misses; a bad file or an unusable directory is ignored and never changes a result."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
from importlib import metadata

import pytest

from flu_monitor.alerts import notifications
from flu_monitor.alerts import postgres as alerts_postgres
from flu_monitor.warehouse import postgres, sqlscript, translate, translation_cache

from .conftest import TRANSLATION, translated_objects

pytestmark = TRANSLATION  # `fresh` is translated_objects(): in the worker that made it

ALERT_SQL = [notifications.CLAIM_SQL, notifications.PENDING_SQL, notifications.MARK_SENT_SQL]


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """An empty cache of its own (XDG_CACHE_HOME), and the key's environment read afresh."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    translation_cache._environment.cache_clear()
    yield tmp_path / "cache" / "flu-monitor"
    translation_cache._environment.cache_clear()


@pytest.fixture(scope="module")
def script():
    return sqlscript.load_script(None, postgres.LOCAL_PLACEHOLDERS)


@pytest.fixture(scope="module")
def fresh():
    """sql/ translated afresh (before `translations` counts)."""
    return translated_objects()


@pytest.fixture(scope="module")
def warm(tmp_path_factory, fresh):
    """A cache warmed with sql/ and the notifier's SQL through the very functions apply() and
    the notifier call (their functools caches bypassed): (XDG_CACHE_HOME, what they returned).
    The translator's plan of sql/ is the one `fresh` made (a second would cost a CPU-second)."""
    home = tmp_path_factory.mktemp("warm")
    script = sqlscript.load_script(None, postgres.LOCAL_PLACEHOLDERS)

    def translated(asked):
        assert asked == script
        return fresh

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(home))
        mp.setattr(translate, "translate_script", translated)
        translation_cache._environment.cache_clear()
        made = {
            "compiled": postgres._translated.__wrapped__(None),
            "ledger": postgres._ledger_setup.__wrapped__(),
            "alerts": alerts_postgres._translations.__wrapped__(),
        }
    translation_cache._environment.cache_clear()
    return home, made


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small sql/ of each kind of object the plan makes: milliseconds to translate."""
    sql_dir = tmp_path_factory.mktemp("sql")
    (sql_dir / "001_x.sql").write_text(
        "CREATE EXTERNAL SCHEMA {{stream_schema}} FROM KAFKA IAM_ROLE '{{iam_role_arn}}' "
        "AUTHENTICATION iam URI '{{bootstrap_servers}}';\n"
        "CREATE TABLE c (fips CHAR(5), state_code CHAR(2));\n"
        "CREATE MATERIALIZED VIEW s AUTO REFRESH {{auto_refresh}} AS "
        "SELECT kafka_partition, kafka_offset, kafka_timestamp, "
        'JSON_PARSE(kafka_value) AS payload FROM {{stream_schema}}."{{topic}}";\n'
        "CREATE MATERIALIZED VIEW m AUTO REFRESH NO AS SELECT CAST(kafka_timestamp AS DATE) "
        "AS day, COUNT(*) AS n FROM s GROUP BY CAST(kafka_timestamp AS DATE);\n"
        "CREATE VIEW v AS SELECT day, NVL(n, 0) AS n FROM m;\n"
    )
    return sqlscript.load_script(sql_dir, postgres.LOCAL_PLACEHOLDERS)


@pytest.fixture(scope="module")
def small_fresh(small):
    return translate.translate_script(small)


@pytest.fixture
def translations(monkeypatch):
    """Counts the translator's runs (the real translator runs)."""
    calls = {"script": 0, "sql": 0}
    translate_script, to_postgres = translate.translate_script, translate.to_postgres

    def counted_script(script):
        calls["script"] += 1
        return translate_script(script)

    def counted_sql(sql, super_columns=None):
        calls["sql"] += 1
        return to_postgres(sql, super_columns)

    monkeypatch.setattr(translate, "translate_script", counted_script)
    monkeypatch.setattr(translate, "to_postgres", counted_sql)
    return calls


def _files(directory, kind="plan"):
    return sorted(directory.glob(f"{kind}-*.json"))


def _same_objects(cached, fresh):
    """Equal field for field, and of the same types (a Kind, not its string)."""
    assert list(cached) == list(fresh)  # the same objects in the same order
    for name, obj in fresh.items():
        for f in dataclasses.fields(obj):
            got, want = getattr(cached[name], f.name), getattr(obj, f.name)
            assert (type(got), got) == (type(want), want), (name, f.name)


def test_a_cached_load_equals_a_fresh_translation_of_sql(
    script, fresh, warm, monkeypatch, translations
):
    home, made = warm
    _same_objects(made["compiled"][1], fresh)  # as made (and written)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    _same_objects(translation_cache.plan_script(script), fresh)  # as read back
    assert translation_cache.to_postgres(sqlscript.ledger_setup_sql()) == made["ledger"]
    assert translation_cache.to_postgres(ALERT_SQL) == list(made["alerts"].values())
    assert translations == {"script": 0, "sql": 0}  # all three read, none translated
    assert made["ledger"] == [translate.to_postgres(s) for s in sqlscript.ledger_setup_sql()]
    assert list(made["alerts"].values()) == [translate.to_postgres(s) for s in ALERT_SQL]
    statements, columns = ["SELECT payload.case_id, payload.symptoms[0] FROM t"], {"payload"}
    want = [translate.to_postgres(s, columns) for s in statements]
    calls = translations["sql"]
    for _ in range(2):  # made, then read back
        assert translation_cache.to_postgres(statements, columns) == want
    assert translations["sql"] == calls + 1


def test_a_warm_start_plans_apply_and_notifies_without_sqlglot(warm):
    home, made = warm
    script, objects = made["compiled"]
    code = textwrap.dedent(
        """
        import json, sys
        from flu_monitor.alerts import postgres as alerts
        from flu_monitor.warehouse import postgres, sqlscript

        script, objects = postgres._compiled()
        steps = sqlscript.plan_apply(script, {})
        print(json.dumps({
            "steps": len(steps),
            "objects": {n: o.create for n, o in objects.items()},
            "ledger": postgres._ledger_setup(),
            "alerts": [alerts._sql(s) for s in alerts._translations()],
            "sqlglot": sorted(m for m in sys.modules if m.split(".")[0] == "sqlglot"),
            "translator": "flu_monitor.warehouse.translate" in sys.modules,
        }))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CACHE_HOME": str(home)},
        check=True,
    )
    seen = json.loads(run.stdout)
    assert seen["sqlglot"] == [] and seen["translator"] is False
    assert seen["steps"] == len(sqlscript.plan_apply(script, {})) > 0
    assert seen["objects"] == {n: o.create for n, o in objects.items()}
    assert seen["ledger"] == made["ledger"]
    assert seen["alerts"] == list(made["alerts"].values())


def test_the_key_covers_every_module_the_translator_imports():
    """What importing the translator loads of flu_monitor (in a fresh process) is all hashed."""
    code = (
        "import sys, flu_monitor.warehouse.translate\n"
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
        "if n.split('.')[0] == 'flu_monitor'))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = {os.path.realpath(p) for p in run.stdout.split()}
    hashed = {str(p) for p in translation_cache.translator_sources()}
    assert loaded and loaded <= hashed, loaded - hashed
    assert os.path.realpath(translation_cache.__file__) in hashed  # it writes what is read


def test_a_change_of_sql_misses(small, cache_home, translations):
    translation_cache.plan_script(small)
    changed = dataclasses.replace(
        small,
        statements=[
            dataclasses.replace(s, sql=s.sql.replace("COUNT(*)", "COUNT(1)"))
            if s.name == "m"
            else s
            for s in small.statements
        ],
    )
    assert changed.statements != small.statements
    objects = translation_cache.plan_script(changed)
    assert translations["script"] == 2 and len(_files(cache_home)) == 2
    assert "COUNT(1)" in objects["m"].query
    translation_cache.to_postgres(["SELECT NVL(a, b) FROM t"])
    translation_cache.to_postgres(["SELECT NVL(a, c) FROM t"])
    translation_cache.to_postgres(["SELECT NVL(a, c) FROM t"], {"a"})  # SUPER columns too
    assert translations["sql"] == 3


def test_a_change_of_the_translator_source_misses(small, cache_home, translations, monkeypatch):
    translation_cache.plan_script(small)
    plan = next(p for p in translation_cache.translator_sources() if p.name == "plan.py")
    edited = plan.read_bytes() + b"\n# an edit\n"
    read_bytes = pathlib.Path.read_bytes
    monkeypatch.setattr(
        pathlib.Path, "read_bytes", lambda p: edited if p == plan else read_bytes(p)
    )
    translation_cache._environment.cache_clear()
    translation_cache.plan_script(small)
    assert translations["script"] == 2 and len(_files(cache_home)) == 2


def test_a_change_of_the_sqlglot_or_python_version_misses(
    small, cache_home, translations, monkeypatch
):
    translation_cache.plan_script(small)
    version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda d: "0.0.1" if d == "sqlglot" else version(d))
    translation_cache._environment.cache_clear()
    translation_cache.plan_script(small)
    assert translations["script"] == 2
    monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    translation_cache._environment.cache_clear()
    translation_cache.plan_script(small)
    assert translations["script"] == 3 and len(_files(cache_home)) == 3


def test_without_sqlglot_metadata_there_is_no_cache(small, cache_home, translations, monkeypatch):
    def version(distribution):
        raise metadata.PackageNotFoundError(distribution)

    monkeypatch.setattr(metadata, "version", version)
    for _ in range(2):
        translation_cache.plan_script(small)
    assert translations["script"] == 2 and not cache_home.exists()


def _bad_files(good: dict) -> dict[str, bytes]:
    text = json.dumps(good)
    row = good["value"][0]
    wrong = {
        "empty": b"",
        "truncated": text[: len(text) // 2].encode(),
        "not UTF-8": b"\xff\xfe" + text.encode(),
        "not an object": b"[]",
        "another key": {**good, "key": "0" * 64},
        "no value": {"key": good["key"]},
        "a field missing": {**good, "value": [{k: v for k, v in row.items() if k != "reads"}]},
        "a field more": {**good, "value": [{**row, "extra": 1}]},
        "an unknown kind": {**good, "value": [{**row, "kind": "nope"}]},
        "a string for a list": {**good, "value": [{**row, "create": "CREATE TABLE x (a INT)"}]},
        "a number for a string": {**good, "value": [{**row, "name": 1}]},
        "true for an int": {**good, "value": [{**row, "reach": True}]},
        "names repeated": {**good, "value": [row, row]},
    }
    return {k: v if isinstance(v, bytes) else json.dumps(v).encode() for k, v in wrong.items()}


def test_a_bad_file_is_ignored_and_rewritten(small, small_fresh, cache_home, translations):
    translation_cache.plan_script(small)
    (path,) = _files(cache_home)
    good = path.read_bytes()
    for name, content in _bad_files(json.loads(good)).items():
        path.write_bytes(content)
        calls = translations["script"]
        _same_objects(translation_cache.plan_script(small), small_fresh)
        assert translations["script"] == calls + 1, name  # translated, not read
        assert json.loads(path.read_bytes()) == json.loads(good), name  # replaced
    statements = sqlscript.ledger_setup_sql()
    want = translation_cache.to_postgres(statements)
    (sql_path,) = _files(cache_home, "sql")
    for content in ('{"key": "', json.dumps({"key": sql_path.stem[4:], "value": want[:-1]})):
        sql_path.write_text(content)  # truncated; one statement short
        assert translation_cache.to_postgres(statements) == want
        assert json.loads(sql_path.read_text())["value"] == want


def test_an_unusable_cache_still_translates(
    small, small_fresh, tmp_path, monkeypatch, translations
):
    not_a_dir = tmp_path / "a file"
    not_a_dir.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_dir))  # mkdir fails (as root too)
    _same_objects(translation_cache.plan_script(small), small_fresh)
    assert translations["script"] == 1
    # a directory where the file would be: unreadable, and os.replace onto it fails
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    translation_cache.plan_script(small)
    (path,) = _files(tmp_path / "home" / "flu-monitor")
    path.unlink()
    path.mkdir()
    _same_objects(translation_cache.plan_script(small), small_fresh)
    _same_objects(translation_cache.plan_script(small), small_fresh)
    assert translations["script"] == 4
    assert not list(path.parent.glob(".*.tmp"))  # no temporary file left behind


def test_readers_never_see_a_file_being_rewritten(warm, cache_home):
    """Three writers replace a plan file (145 KB) while three readers read it: every read is
    the whole file (a writer that truncated and wrote in place would show readers a part)."""
    home, _ = warm
    (path,) = _files(home / "flu-monitor")
    digest = json.loads(path.read_bytes())["key"]
    value = json.loads(path.read_bytes())["value"]
    cache_home.mkdir(parents=True)
    target = cache_home / path.name
    translation_cache._write(target, digest, value)
    reads = []

    def write():
        for _ in range(30):
            translation_cache._write(target, digest, value)

    def read():
        for _ in range(60):
            reads.append(translation_cache._read(target, digest, lambda v: True) == value)

    threads = [threading.Thread(target=f) for f in (write, read) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == 180 and all(reads)
    assert [p.name for p in cache_home.iterdir()] == [target.name]  # no temporary file left


def test_a_relative_cache_home_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert translation_cache.cache_dir() == tmp_path / ".cache" / "flu-monitor"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert translation_cache.cache_dir() == tmp_path / ".cache" / "flu-monitor"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert translation_cache.cache_dir() == tmp_path / "xdg" / "flu-monitor"


def test_no_home_directory_is_no_cache(small, tmp_path, monkeypatch, translations):
    """Without HOME (and no password entry to find one), "~" stays "~": the working directory
    is never written."""
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(os.path, "expanduser", lambda p: p)  # what it does without a home
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        translation_cache.plan_script(small)
    assert translations["script"] == 2 and list(tmp_path.iterdir()) == []


def test_old_results_and_left_temporary_files_are_pruned(cache_home, monkeypatch, translations):
    monkeypatch.setattr(translation_cache, "KEEP", 2)
    cache_home.mkdir(parents=True)
    left = cache_home / ".sql-x.abc.tmp"
    left.write_text("{")
    os.utime(left, (0, 0))  # a writer killed long ago
    recent = cache_home / ".sql-y.abc.tmp"
    recent.write_text("{")  # a writer at work: kept
    for n in range(3):
        before = set(_files(cache_home, "sql"))
        translation_cache.to_postgres([f"SELECT {n}"])
        (written,) = set(_files(cache_home, "sql")) - before
        os.utime(written, (n + 1, n + 1))  # in the order written
    assert len(_files(cache_home, "sql")) == 2
    assert not left.exists() and recent.exists()
    assert translations["sql"] == 3
    assert translation_cache.to_postgres(["SELECT 2"]) == ["SELECT 2"]
    assert translations["sql"] == 3  # kept: the newest
    assert translation_cache.to_postgres(["SELECT 0"]) == ["SELECT 0"]
    assert translations["sql"] == 4  # pruned: the oldest
