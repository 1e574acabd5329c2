"""Each function's Makefile bundles what its code reads: built the way `sam build` builds it (in a
scratch copy of the folder, ARTIFACTS_DIR elsewhere) and imported in a fresh interpreter, the
handler must find the bundled flu_monitor modules and sql/, data/, quicksight/ files — not the
checkout's. The pip step is skipped here (PYTHON=true): the wheels come from this environment."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flu_monitor.dashboard_spec import load as load_spec

REPO = Path(__file__).resolve().parents[2]

PROBES = {
    "sql_runner": "from flu_monitor.warehouse import sqlscript; "
    "s = sqlscript.load_script(app.SQL_DIR, {'iam_role_arn': 'arn:aws:iam::123456789012:role/r', "
    "'msk_cluster_arn': 'arn:aws:kafka:us-east-1:123456789012:cluster/c/u-1', "
    "'topic': 'flu_cases', 'stream_schema': 'flu_stream', 'auto_refresh': 'NO'}); "
    "out['sql'] = str(sqlscript.default_sql_dir()); out['loads'] = len(s.objects('table'))",
    "quicksight_publisher": "from flu_monitor import dashboard_spec, quicksight_definition as q; "
    "out['spec'] = str(dashboard_spec.SPEC_FILE); "
    "out['visuals'] = len(q.template_definition(dashboard_spec.load())['Sheets'][0]['Visuals'])",
    "kafka_topic": "from flu_monitor import kafka_client; out['kafka'] = kafka_client.__file__",
    "plugin_stager": "out['stager'] = app.DEFAULT_PARAMETER_NAME",
}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_bundle_is_self_contained(name, tmp_path):
    scratch = tmp_path / "scratch"  # what SAM copies the folder to before running make
    shutil.copytree(REPO / "functions" / name, scratch)
    bundle = tmp_path / "bundle"
    subprocess.run(
        [
            "make",
            "-s",
            "--makefile",
            str(REPO / "functions" / name / "Makefile"),
            f"build-{name.title().replace('_', '')}Function",
            f"ARTIFACTS_DIR={bundle}",
            "PYTHON=true",
        ],
        cwd=scratch,
        check=True,
        capture_output=True,
    )
    probe = (
        "import json, os; import app; import flu_monitor; "
        "out = {'package': flu_monitor.__file__, 'home': os.environ.get('FLU_MONITOR_HOME')}; "
        f"{PROBES[name]}; print(json.dumps(out))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLU_MONITOR")}
    # The bundle first, then this environment's site-packages for crhelper/PyYAML/boto3 — but
    # not the editable install of the checkout, which would hide a missing bundled module.
    site = [p for p in sys.path if p.endswith("site-packages")]
    env.update(PYTHONPATH=os.pathsep.join([str(bundle), *site]), AWS_REGION="us-east-1")
    result = subprocess.run(
        [sys.executable, "-S", "-B", "-c", probe],
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["package"].startswith(str(bundle)), out
    if name in ("sql_runner", "quicksight_publisher"):  # the handler points paths at its bundle
        assert out["home"] == str(bundle)
    if name == "sql_runner":
        assert out["sql"] == str(bundle / "sql") and out["loads"] >= 2
    if name == "quicksight_publisher":
        spec = load_spec()  # every visual of the spec, and the clock's KPI
        assert out["spec"] == str(bundle / "quicksight" / "dashboard.yaml")
        assert out["visuals"] == len(spec["visuals"]) + ("clock" in spec)
    if name == "kafka_topic":
        assert out["kafka"].startswith(str(bundle))
