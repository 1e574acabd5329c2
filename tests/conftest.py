"""Shared pytest wiring. Real services come from fixture plugins, one per service:
tests/fixtures/kafka.py (a real KRaft broker) and tests/fixtures/postgres.py (a real PostgreSQL).

Markers are derived from the fixtures a test uses (FIXTURE_MARKERS); only a test that starts a
service itself (KafkaServer(...), `flu-monitor up`) is marked by hand. Before a marked test runs,
what its markers need on this machine is looked up (NEEDS): when something is missing the test is
skipped with a reason naming it and how to get it — or fails, when FLU_MONITOR_REQUIRE_ALL=1 says
everything must be present (`make test`, CI).
"""

import os
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.postgres_shared",  # under pytest-xdist: one cluster for the workers
    "tests.fixtures.postgres",
    "tests.fixtures.xdist_loadgroup",  # --dist loadgroup on pytest 9.2 (xdist 3.8)
]

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_ALL = "FLU_MONITOR_REQUIRE_ALL"

FIXTURE_MARKERS = {
    "kafka_broker": "kafka",
    "kafka_topic": "kafka",
    "kafka_server_factory": "kafka",
    "postgres_server": "postgres",
    "postgres_db": "postgres",
    "browser_page": "browser",  # tests/e2e/conftest.py
    "build_dir": "tools",  # sam build, tests/templates/test_build_and_publish.py
    "architecture": "graphviz",  # docs/architecture.py, tests/templates/test_diagram.py
}


@dataclass(frozen=True)
class Need:
    what: str
    how: str  # how to get it
    found: object  # () -> bool


def _executable(path: str | Path) -> bool:
    return os.access(path, os.X_OK)


def _java() -> bool:
    home = os.environ.get("JAVA_HOME")
    return _executable(Path(home, "bin", "java")) if home else bool(shutil.which("java"))


def _postgres() -> bool:
    bin_dir = Path(os.environ.get("FLU_MONITOR_PG_BIN", "/usr/lib/postgresql/15/bin"))
    return _executable(bin_dir / "initdb") and _executable(bin_dir / "pg_ctl")


SYSTEM_DEPS = "Debian package {}: make system-deps"
NEEDS = {
    "kafka": [
        Need("java (17+)", SYSTEM_DEPS.format("openjdk-17-jre-headless"), _java),
        Need(
            "mvn (fetches the Kafka jars)", SYSTEM_DEPS.format("maven"), lambda: shutil.which("mvn")
        ),
    ],
    "postgres": [Need("PostgreSQL 15 server", SYSTEM_DEPS.format("postgresql-15"), _postgres)],
    "browser": [
        Need(
            "/usr/bin/chromium",
            SYSTEM_DEPS.format("chromium"),
            lambda: _executable("/usr/bin/chromium"),
        )
    ],
    "graphviz": [Need("graphviz dot", SYSTEM_DEPS.format("graphviz"), lambda: shutil.which("dot"))],
    "tools": [
        Need(
            "sam-cli (.tools/sam-cli)",
            "make tools",
            lambda: _executable(ROOT / ".tools/sam-cli/bin/sam"),
        )
    ],
}


@cache
def _missing(marker: str) -> tuple[Need, ...]:
    return tuple(need for need in NEEDS.get(marker, ()) if not need.found())


# Under `pytest -n --dist loadgroup` (make test-fast) one worker runs the template tests: only it
# imports cfn-lint (seconds) and parses the templates.
TEMPLATE_TESTS = ROOT / "tests" / "templates"


def _module_scoped(item) -> bool:
    """Whether the test uses a module-scoped fixture: every worker running one of the module's
    tests would build it (a loaded season, a planted outbreak: seconds each)."""
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(
        defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values()
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker, and before xdist's groups
def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.is_relative_to(TEMPLATE_TESTS):
            item.add_marker(pytest.mark.xdist_group("templates"))
        elif _module_scoped(item) and item.get_closest_marker("xdist_group") is None:
            # one worker runs the module, so its module-scoped fixtures are built once
            item.add_marker(pytest.mark.xdist_group(item.path.relative_to(ROOT).as_posix()))
        for marker in sorted(
            {FIXTURE_MARKERS[f] for f in item.fixturenames if f in FIXTURE_MARKERS}
        ):
            item.add_marker(marker)


@pytest.hookimpl(tryfirst=True)  # before any fixture starts
def pytest_runtest_setup(item):
    markers = sorted({m.name for m in item.iter_markers()})
    missing = [need for marker in markers for need in _missing(marker)]
    if not missing:
        return
    reason = "missing " + "; ".join(f"{need.what} ({need.how})" for need in missing)
    if os.environ.get(REQUIRE_ALL) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ALL}=1 requires everything", pytrace=False)
    pytest.skip(reason)
