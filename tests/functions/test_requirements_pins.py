"""The packages a function bundles are the ones the tests ran: every line of
functions/*/requirements.txt pins one version (`sam build` installs them --no-deps), and a package
requirements/dev.lock also lists has the same version there."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.parent.name for p in (REPO / "functions").glob("*/requirements.txt"))
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def _name(package: str) -> str:
    return re.sub(r"[-_.]+", "-", package).lower()  # PEP 503 normalised name


def _pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (comments and `# via` lines skipped)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.fullmatch(line)
        assert match, f"{path.relative_to(REPO)}: {line!r} is not an exact name==version pin"
        pins[_name(match[1])] = match[2]
    return pins


# Functions that back no custom resource (only an EventBridge rule invokes them): no crhelper.
NOT_CUSTOM_RESOURCES = {"alert_notifier"}
LOCK = _pins(REPO / "requirements" / "dev.lock")


def test_every_function_has_requirements():
    assert sorted(p.parent.name for p in (REPO / "functions").glob("*/app.py")) == FUNCTIONS


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bundled_pins_equal_the_lock(function):
    pins = _pins(REPO / "functions" / function / "requirements.txt")
    if function not in NOT_CUSTOM_RESOURCES:
        assert "crhelper" in pins, f"functions/{function}: a custom resource answers via crhelper"
    differ = {
        name: f"{version} in requirements.txt, {LOCK[name]} in dev.lock"
        for name, version in pins.items()
        if name in LOCK and LOCK[name] != version
    }
    assert differ == {}, f"functions/{function}: {differ}"
