"""`sam build` (offline: no AWS, no Docker) and `make publish`'s packaging, as a dry run.

sam build runs here, in `make test`, rather than in `make lint`: it is the first half of what
these tests check (every function builds into a zip the packaged templates point at)."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import publish
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".tools" / "sam-cli" / "bin" / "sam"
FUNCTIONS = {
    "SqlRunnerFunction": "WarehouseStack",
    "KafkaTopicFunction": "StreamingStack",
    "KafkaBootstrapFunction": "StreamingStack",
    "PluginStagerFunction": "ConnectStack",
    "SimulatorFunction": "EventsStack",
    "QuickSightPublisherFunction": "DashboardsStack",
    "InterfacesReleasedFunction": "NetworkStack",
    "NotifierFunction": "AlertsStack",
}


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory):
    target = tmp_path_factory.mktemp("sam") / "build"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    command = [str(SAM), "build", "--template-file", "template.yaml", "--build-dir", str(target)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return target


@pytest.fixture(scope="session")
def packaged(build_dir, tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    layout = publish.Layout("flu-assets", "flu-monitor", "9.9.9")
    files = publish.package(build_dir, layout, dist, ROOT / "template.yaml")
    return dist, layout, files


def test_sam_build_builds_every_function_with_its_dependencies(build_dir):
    for function, stack in FUNCTIONS.items():
        bundle = build_dir / stack / function
        assert (bundle / "app.py").is_file(), function
        if function == "NotifierFunction":  # no custom resource: the alerts module, nothing else
            assert (bundle / "flu_monitor" / "alerts" / "notifications.py").is_file()
            assert not (bundle / "crhelper").exists()
            continue
        assert (bundle / "crhelper").is_dir(), f"{function} lacks crhelper"
        assert (bundle / "flu_monitor" / "custom_resource.py").is_file(), function
    # Each function bundles what it reads at run time, as it is in the checkout.
    sql_runner = build_dir / "WarehouseStack" / "SqlRunnerFunction"
    for path in [*sorted((ROOT / "sql").glob("*.sql")), *(ROOT / "data").glob("[cf]*.csv")]:
        relative = path.relative_to(ROOT)
        assert (sql_runner / relative).read_bytes() == path.read_bytes(), relative
    spec = build_dir / "DashboardsStack" / "QuickSightPublisherFunction" / "quicksight"
    assert (spec / "dashboard.yaml").read_bytes() == (
        ROOT / "quicksight/dashboard.yaml"
    ).read_bytes()
    simulator = build_dir / "EventsStack" / "SimulatorFunction"
    for path in [
        ROOT / "scenarios/default.yaml",
        ROOT / "data/zip_counties.csv",
        *(ROOT / "schemas").glob("*.json"),
    ]:
        relative = path.relative_to(ROOT)
        assert (simulator / relative).read_bytes() == path.read_bytes(), relative
    # numpy for the Lambda runtime (python3.13 on arm64), not for this machine.
    wheel = next(simulator.glob("numpy-*.dist-info")) / "WHEEL"
    assert "cp313-cp313-manylinux_2_28_aarch64" in wheel.read_text()


def test_packaged_tree_holds_root_nested_templates_and_one_zip_per_function(packaged):
    dist, layout, files = packaged
    prefix = "flu-monitor/9.9.9"
    assert f"{prefix}/template.yaml" in files
    nested = sorted(k for k in files if k.startswith(f"{prefix}/nested/"))
    assert [Path(k).name for k in nested] == [
        "alerts.yaml", "connect.yaml", "dashboards.yaml", "events.yaml", "network.yaml",
        "streaming.yaml", "warehouse.yaml",
    ]  # fmt: skip
    zips = sorted(k for k in files if k.endswith(".zip"))
    assert sorted(Path(k).name.split("-")[0] for k in zips) == sorted(FUNCTIONS)


def _load(path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_packaged_templates_point_only_at_the_regional_bucket(packaged):
    dist, layout, files = packaged
    root = _load(dist / "flu-monitor/9.9.9/template.yaml")
    for resource in root["Resources"].values():
        url = resource["Properties"]["TemplateURL"]["Fn::Sub"]
        host = "https://flu-assets-${AWS::Region}.s3.${AWS::Region}.${AWS::URLSuffix}/"
        assert url.startswith(host)
        assert url.removeprefix(host) in files, url
    for key in files:
        if "/nested/" not in key:
            continue
        for name, resource in _load(dist / key)["Resources"].items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            code = resource["Properties"]["CodeUri"]
            assert code["Bucket"] == {"Fn::Sub": "flu-assets-${AWS::Region}"}, name
            assert code["Key"] in files, name
            with zipfile.ZipFile(dist / code["Key"]) as archive:
                assert "app.py" in archive.namelist()
            assert "BuildMethod" not in resource.get("Metadata", {})


def test_packaged_templates_pass_cfn_lint(packaged):
    dist, _, files = packaged
    templates = [str(dist / k) for k in files if k.endswith(".yaml")]
    linter = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(linter), *templates, "--regions", "us-east-1", "eu-west-1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_packaging_again_drops_leftovers_of_an_earlier_build(build_dir, tmp_path):
    layout = publish.Layout("flu-assets", "flu-monitor", "9.9.9")
    stray = tmp_path / "flu-monitor/9.9.9/functions/OldFunction-0000.zip"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"old")
    files = publish.package(build_dir, layout, tmp_path, ROOT / "template.yaml")
    assert not stray.exists()
    assert all("OldFunction" not in key for key in files)


def test_zips_are_reproducible(build_dir, tmp_path):
    bundle = build_dir / "ConnectStack" / "PluginStagerFunction"
    first = publish.zip_directory(bundle, tmp_path / "a.zip")
    second = publish.zip_directory(bundle, tmp_path / "b.zip")
    assert first == second


def test_launch_stack_url_opens_the_regional_root_template():
    layout = publish.Layout("flu-assets", "flu-monitor", "1.2.3")
    url = urlparse(layout.launch_url("eu-west-1"))
    assert url.netloc == "console.aws.amazon.com"
    assert parse_qs(url.query) == {"region": ["eu-west-1"]}
    fragment = parse_qs(url.fragment.split("?", 1)[1])
    assert unquote(fragment["templateURL"][0]) == (
        "https://flu-assets-eu-west-1.s3.eu-west-1.amazonaws.com/flu-monitor/1.2.3/template.yaml"
    )
    assert fragment["stackName"] == ["flu-monitor"]


def test_taskcat_config_runs_the_root_scenarios_in_published_regions(tmp_path):
    target = publish.write_taskcat_config(
        ROOT / ".taskcat.yml", tmp_path, ["us-east-1", "us-west-2"]
    )
    config = yaml.safe_load(target.read_text())
    assert set(config["tests"]) == {"default", "provisioned", "dashboards"}
    assert all(t["template"] == "template.yaml" for t in config["tests"].values())
    assert config["tests"]["default"]["regions"] == ["us-east-1"]
    assert config["project"]["regions"] == ["us-east-1", "us-west-2"]


def test_publish_refuses_a_bucket_prefix_that_cannot_name_a_bucket(capsys):
    with pytest.raises(SystemExit) as raised:
        publish.main(["--bucket", "My_Bucket", "--regions", "us-east-1", "--dry-run"])
    assert raised.value.code == 2
    assert "lower-case letters, digits and hyphens" in capsys.readouterr().err


def test_publish_without_a_build_says_what_to_run(tmp_path, capsys):
    code = publish.main(
        ["--bucket", "flu-assets", "--regions", "us-east-1", "--dry-run",
         "--build-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "dist")]
    )  # fmt: skip
    assert code == 1
    assert "run `make build`" in capsys.readouterr().err


def test_publish_dry_run_prints_a_launch_url_per_region(build_dir, tmp_path, capsys):
    code = publish.main(
        ["--bucket", "flu-assets", "--regions", "us-east-1", "ap-southeast-2", "--dry-run",
         "--build-dir", str(build_dir), "--out", str(tmp_path / "dist")]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "dry run: nothing uploaded" in out
    assert out.count("console.aws.amazon.com/cloudformation/home?region=") == 2
