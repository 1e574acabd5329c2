"""A function whose module cannot initialise answers every request at once, FAILED with the cause
as Reason, instead of leaving CloudFormation waiting for the resource's ServiceTimeout.

Each function is built the way `sam build` builds it, one part of its bundle is taken away, and a
fresh interpreter imports the bundle as Lambda does and calls the handler with simulated
CloudFormation events; the answers arrive at the real local ResponseURL server. Any AWS call
(crhelper scheduling its polling, say) would go to a closed port and change the Reason."""

import json
import shutil
import subprocess
import sys

import pytest

from flu_monitor.custom_resource import NOT_CREATED_PREFIX
from tests.functions.conftest import build_bundle, bundle_env


def _remove(*parts):
    def remove(bundle):
        path = bundle.joinpath(*parts)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        return ""

    return remove


def _refuse_import(module):
    """For a bundle with nothing of its own to lose (app.py, the answering machinery, stdlib):
    refuse a module that only its guarded code still imports once crhelper (and so boto3) is
    loaded."""

    def refuse(_bundle):
        return f"import crhelper; sys.modules[{module!r}] = None"

    return refuse


# function: (what breaks it: a change to the bundle, returning code run before `import app`;
#            the cause the Reason must end with)
BROKEN = {
    "sql_runner": (
        _remove("sql"),
        lambda bundle: f"ScriptError: no NNN_*.sql files in {bundle / 'sql'}",
    ),
    "quicksight_publisher": (
        _remove("quicksight", "dashboard.yaml"),
        lambda bundle: (
            "FileNotFoundError: [Errno 2] No such file or directory: "
            f"'{bundle / 'quicksight' / 'dashboard.yaml'}'"
        ),
    ),
    "kafka_topic": (
        _remove("flu_monitor", "kafka_client.py"),
        lambda bundle: (
            "ImportError: cannot import name 'kafka_client' from 'flu_monitor' "
            f"({bundle / 'flu_monitor' / '__init__.py'})"
        ),
    ),
    "simulator": (
        _remove("flu_monitor", "kafka_client.py"),
        lambda bundle: (
            "ImportError: cannot import name 'kafka_client' from 'flu_monitor' "
            f"({bundle / 'flu_monitor' / '__init__.py'})"
        ),
    ),
    "interfaces_released": (
        _refuse_import("boto3"),  # its EC2 client is made at cold start
        lambda _bundle: "ModuleNotFoundError: import of boto3 halted; None in sys.modules",
    ),
    "plugin_stager": (
        _refuse_import("urllib.request"),
        lambda _bundle: "ModuleNotFoundError: import of urllib.request halted; None in sys.modules",
    ),
}

LAMBDA = """
import json, sys
{prelude}
import app

class Context:
    function_name = "flu-monitor-test-function"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self):
        return 14_000  # under crhelper's 15 s reserve: no sleep before answering a Delete

for event in json.loads(sys.argv[1]):
    app.handler(event, Context())
"""


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_function_that_cannot_initialise_fails_every_request_at_once(name, cfn, tmp_path):
    breaks, cause = BROKEN[name]
    bundle = build_bundle(name, tmp_path)
    prelude = breaks(bundle)
    create = cfn.request("Create", {"AnyProperty": "x"})
    update = cfn.request("Update", {"AnyProperty": "y"}, {"AnyProperty": "x"}, physical_id="p-1")
    # The rollback after the failed Create carries the id it was answered with.
    rollback = cfn.request("Delete", {"AnyProperty": "x"}, physical_id=NOT_CREATED_PREFIX)
    rollback["PhysicalResourceId"] += create["RequestId"]
    delete = cfn.request("Delete", {"AnyProperty": "y"}, physical_id="p-1")

    env = bundle_env(bundle) | {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    result = subprocess.run(
        [sys.executable, "-S", "-B", "-c", LAMBDA.format(prelude=prelude)]
        + [json.dumps([create, update, rollback, delete])],
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]

    reason = f"the function cannot initialise: {cause(bundle)}"
    answers = {
        kind: cfn.answer_to(event)
        for kind, event in [
            ("create", create),
            ("update", update),
            ("rollback", rollback),
            ("delete", delete),
        ]
    }
    assert answers["create"]["Status"] == "FAILED"
    assert answers["create"]["Reason"] == reason
    # A non-empty id CloudFormation accepts, which tells the rollback nothing was created.
    assert answers["create"]["PhysicalResourceId"] == rollback["PhysicalResourceId"]
    assert answers["update"]["Status"] == "FAILED"
    assert answers["update"]["Reason"] == reason
    assert answers["update"]["PhysicalResourceId"] == "p-1"
    assert answers["rollback"]["Status"] == "SUCCESS", answers["rollback"]["Reason"]
    assert answers["rollback"]["PhysicalResourceId"] == rollback["PhysicalResourceId"]
    # Something may exist and this code cannot remove it: say so rather than orphan it.
    assert answers["delete"]["Status"] == "FAILED"
    assert answers["delete"]["Reason"] == reason
    assert answers["delete"]["PhysicalResourceId"] == "p-1"
