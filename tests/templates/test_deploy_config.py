"""samconfig.toml profiles and the taskcat scenarios set only root parameters, to allowed values."""

import re
import shlex
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _check(root, overrides, where):
    for name, value in overrides.items():
        assert name in root.parameters, f"{where}: unknown parameter {name}"
        spec = root.parameters[name]
        if "AllowedValues" in spec:
            assert str(value) in [str(v) for v in spec["AllowedValues"]], f"{where}: {name}={value}"
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], str(value)), f"{where}: {name}={value}"


def test_samconfig_profiles(root):
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert {"default", "fastest", "production"} <= set(config)
    for profile, sections in config.items():
        if not isinstance(sections, dict) or "deploy" not in sections:
            continue
        deploy = sections["deploy"]["parameters"]
        assert "CAPABILITY_AUTO_EXPAND" in deploy["capabilities"], profile
        pairs = shlex.split(deploy.get("parameter_overrides", ""))
        _check(root, dict(p.split("=", 1) for p in pairs), f"samconfig {profile}")


def test_taskcat_scenarios(root):
    config = yaml.safe_load((ROOT / ".taskcat.yml").read_text())
    for name, test in config["tests"].items():
        if test["template"] == "template.yaml":
            parameters = {**config["project"].get("parameters", {}), **test.get("parameters", {})}
            _check(root, parameters, f"taskcat {name}")
