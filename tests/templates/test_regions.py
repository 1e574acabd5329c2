"""The Region list `make lint` lints against (AWS_REGIONS in the Makefile) is exactly the commercial
Regions where CloudFormation offers every resource type the templates use (cfn-lint's registry
data), and the taskcat matrix stays inside it."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# cfn-lint's data, found without importing cfn-lint (seconds: sympy)
CFN_LINT = Path(importlib.util.find_spec("cfnlint").origin).parent
PROVIDERS = CFN_LINT / "data" / "schemas" / "providers"
COMMERCIAL = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-[0-9]$")


def _makefile_regions():
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return re.search(r"^AWS_REGIONS := (.+)$", text, re.M).group(1).split()


def _resource_types(templates):
    types = {r["Type"] for t in templates.values() for r in t.resources.values()}
    # What the SAM transform produces from AWS::Serverless::Function (+ AutoPublishAlias).
    types -= {"AWS::Serverless::Function"}
    types |= {"AWS::Lambda::Function", "AWS::Lambda::Version", "AWS::Lambda::Alias"}
    return {t for t in types if not t.startswith("Custom::")}


def test_makefile_regions_are_where_every_resource_type_exists(templates):
    needed = _resource_types(templates)
    offered = []
    for path in sorted(PROVIDERS.glob("*.json")):
        region = path.stem
        if COMMERCIAL.match(region) and needed <= set(json.loads(path.read_text())):
            offered.append(region)
    assert sorted(_makefile_regions()) == offered


@pytest.mark.parametrize("region", ["us-west-1", "me-central-1"])
def test_regions_without_a_resource_type_are_left_out(region):
    assert region not in _makefile_regions()


def test_taskcat_matrix_has_three_scenarios_over_four_regions_inside_the_list():
    config = yaml.safe_load((ROOT / ".taskcat.yml").read_text())
    scenarios = {n: t for n, t in config["tests"].items() if t["template"] == "template.yaml"}
    assert len(scenarios) >= 3
    regions = {r for t in scenarios.values() for r in t["regions"]}
    assert len(regions) >= 4
    assert regions <= set(_makefile_regions())
    nested = {t["template"] for t in config["tests"].values()} - {"template.yaml"}
    assert nested == {str(p.relative_to(ROOT)) for p in (ROOT / "nested").glob("*.yaml")}
