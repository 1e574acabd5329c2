"""Template tests read the templates through scripts/cfn_template.py (the same reader the IAM lint
uses) and the tools the Makefile installs under .tools/ (`make tools`)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import cfn_template  # noqa: E402


@pytest.fixture(scope="session")
def templates() -> dict[str, cfn_template.Template]:
    """Every template by its repository path: template.yaml, nested/<name>.yaml."""
    return {t.name: t for t in cfn_template.all_templates()}


@pytest.fixture(scope="session")
def root(templates) -> cfn_template.Template:
    return templates["template.yaml"]


@pytest.fixture(scope="session")
def nested(templates) -> dict[str, cfn_template.Template]:
    return {name: t for name, t in templates.items() if name.startswith("nested/")}
