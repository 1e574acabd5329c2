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


def source_of(templates, template, value):
    """(template, value) where a property's value is written: a parameter of a nested template is
    followed through the root to the output of the stack that passes it (one hop)."""
    name = value.get("Ref") if isinstance(value, dict) else None
    if name not in template.parameters:
        return template, value
    root = templates["template.yaml"]
    stack = next(
        r for _, r in root.resources_of("AWS::CloudFormation::Stack")
        if r["Properties"]["TemplateURL"] == template.name
    )  # fmt: skip
    source_stack, output = stack["Properties"]["Parameters"][name]["Fn::GetAtt"]
    source = templates[root.resources[source_stack]["Properties"]["TemplateURL"]]
    return source, source.body["Outputs"][output.removeprefix("Outputs.")]["Value"]
