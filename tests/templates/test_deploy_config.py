"""samconfig.toml profiles and the taskcat scenarios set only root parameters, to values the
template accepts: AllowedValues, AllowedPattern and the root template's Rules, all evaluated the way
CloudFormation does before it creates anything. The profiles that need the user's own QuickSight
principal carry a placeholder the template refuses, so they cannot be deployed unedited."""

import re
import shlex
import tomllib
from pathlib import Path

import cfn_template
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Profiles and scenarios whose QuickSightPrincipalArn is a placeholder the user must replace.
NEEDS_A_REAL_OWNER = {"samconfig production", "taskcat dashboards"}


def _refusals(root, overrides, where):
    """What CloudFormation would refuse for these parameter values (empty: accepted)."""
    refused = []
    for name, value in overrides.items():
        assert name in root.parameters, f"{where}: unknown parameter {name}"
        spec = root.parameters[name]
        if "AllowedValues" in spec and str(value) not in [str(v) for v in spec["AllowedValues"]]:
            refused.append(f"{name}={value} not allowed")
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], str(value)):
            refused.append(f"{name}: {spec['ConstraintDescription']}")
    values = {n: str(v) for n, v in overrides.items()}
    return refused + cfn_template.Template(root.path, root.body, values).refusals()


def _samconfig():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for profile, sections in config.items():
        if isinstance(sections, dict) and "deploy" in sections:
            yield profile, sections["deploy"]["parameters"]


def _taskcat():
    config = yaml.safe_load((ROOT / ".taskcat.yml").read_text())
    for name, test in config["tests"].items():
        if test["template"] == "template.yaml":
            yield name, {**config["project"].get("parameters", {}), **test.get("parameters", {})}


def _check(where, refused):
    if where in NEEDS_A_REAL_OWNER:
        assert refused and all("QuickSightPrincipalArn" in r for r in refused), (where, refused)
    else:
        assert refused == [], (where, refused)


def test_samconfig_profiles(root):
    profiles = dict(_samconfig())
    assert {"default", "fastest", "production"} <= set(profiles)
    for profile, deploy in profiles.items():
        assert "CAPABILITY_AUTO_EXPAND" in deploy["capabilities"], profile
        pairs = shlex.split(deploy.get("parameter_overrides", ""))
        overrides = dict(p.split("=", 1) for p in pairs)
        _check(f"samconfig {profile}", _refusals(root, overrides, profile))


def test_taskcat_scenarios(root):
    for name, parameters in _taskcat():
        _check(f"taskcat {name}", _refusals(root, parameters, name))
