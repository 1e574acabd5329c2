"""Each function's Makefile bundles what its code reads: built the way `sam build` builds it (in a
scratch copy of the folder, ARTIFACTS_DIR elsewhere) and imported in a fresh interpreter, the
handler must find the bundled flu_monitor modules and sql/, data/, quicksight/ files — not the
checkout's. The pip step is skipped here (PYTHON=true): the wheels come from this environment."""

import json
import subprocess
import sys

import pytest

from flu_monitor.dashboard_spec import load as load_spec
from flu_monitor.warehouse import sqlscript
from tests.functions.conftest import build_bundle, bundle_env

PLACEHOLDERS = {
    "iam_role_arn": "arn:aws:iam::123456789012:role/r",
    "bootstrap_servers": "b-1.flu.c2.kafka.us-east-1.amazonaws.com:9098",
    "topic": "flu_cases",
    "stream_schema": "flu_stream",
    "auto_refresh": "NO",
}
PROBES = {
    "sql_runner": "from flu_monitor.warehouse import sqlscript; "
    f"s = sqlscript.load_script(app.SQL_DIR, {PLACEHOLDERS!r}); "
    "out['sql'] = str(sqlscript.default_sql_dir()); out['loads'] = len(s.objects('table'))",
    "quicksight_publisher": "from flu_monitor import dashboard_spec, quicksight_definition as q; "
    "out['spec'] = str(dashboard_spec.SPEC_FILE); "
    "out['visuals'] = len(q.template_definition(dashboard_spec.load())['Sheets'][0]['Visuals'])",
    "kafka_topic": "from flu_monitor import kafka_client; out['kafka'] = kafka_client.__file__",
    "plugin_stager": "out['stager'] = app.DEFAULT_PARAMETER_NAME",
    "interfaces_released": "out['ec2'] = app.clients('ec2').meta.service_model.service_name",
    "alert_notifier": "out['claim'] = app.notifications.CLAIM_SQL.split()[2]",
}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_bundle_is_self_contained(name, tmp_path):
    bundle = build_bundle(name, tmp_path)
    probe = (
        "import json, os; import app; import flu_monitor; "
        "out = {'package': flu_monitor.__file__, 'home': os.environ.get('FLU_MONITOR_HOME')}; "
        f"{PROBES[name]}; print(json.dumps(out))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-B", "-c", probe],
        cwd=bundle,
        env=bundle_env(bundle),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["package"].startswith(str(bundle)), out
    if name in ("sql_runner", "quicksight_publisher"):  # the handler points paths at its bundle
        assert out["home"] == str(bundle)
    if name == "sql_runner":  # the reference tables the checkout's sql/ loads, from the bundle
        assert out["sql"] == str(bundle / "sql")
        assert out["loads"] == len(sqlscript.load_script(None, PLACEHOLDERS).objects("table"))
    if name == "quicksight_publisher":
        spec = load_spec()  # every visual of the spec, and the clock's KPI
        assert out["spec"] == str(bundle / "quicksight" / "dashboard.yaml")
        assert out["visuals"] == len(spec.visuals) + (spec.clock is not None)
    if name == "kafka_topic":
        assert out["kafka"].startswith(str(bundle))
    if name == "interfaces_released":  # its client, made when the bundle was imported
        assert out["ec2"] == "ec2"
