"""Harness for the custom-resource functions under functions/.

- `cfn`: a real local HTTPS server standing in for CloudFormation's pre-signed ResponseURL
  (crhelper only speaks HTTPS); `cfn.request(...)` builds a CloudFormation event addressed to it
  and `cfn.invoke(module, event)` runs the handler and returns the JSON body the server received.
- `load_function(name)`: imports functions/<name>/app.py under a unique module name.
- `build_bundle(name, dest)` / `bundle_env(bundle)`: a function built the way `sam build` builds
  it, and the environment of a fresh interpreter that imports it as Lambda would.
- `stubbed(service)`: a boto3 client with a botocore Stubber, so every call is checked against the
  service model and against the expected parameters; the test asserts nothing was left unused.
- No AWS account is involved: the environment gets dummy credentials and a region.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import trustme
from botocore.stub import Stubber

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = REPO / "functions"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/flu-monitor/0f0e0d0c-1111-2222-3333"


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch):
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


_loaded: dict[str, object] = {}


def load_function(name: str):
    """functions/<name>/app.py as module fn_<name> (each function's handler file is app.py)."""
    if name not in _loaded:
        spec = importlib.util.spec_from_file_location(f"fn_{name}", FUNCTIONS_DIR / name / "app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


def build_bundle(name: str, dest: Path) -> Path:
    """functions/<name> built into dest/bundle the way `sam build` runs its Makefile (in a scratch
    copy of the folder, ARTIFACTS_DIR elsewhere). The pip step is skipped (PYTHON=true): the
    wheels come from this environment (see bundle_env)."""
    scratch = dest / "scratch"
    shutil.copytree(FUNCTIONS_DIR / name, scratch)
    bundle = dest / "bundle"
    subprocess.run(
        [
            "make",
            "-s",
            "--makefile",
            str(FUNCTIONS_DIR / name / "Makefile"),
            f"build-{name.title().replace('_', '')}Function",
            f"ARTIFACTS_DIR={bundle}",
            "PYTHON=true",
        ],
        cwd=scratch,
        check=True,
        capture_output=True,
    )
    return bundle


def bundle_env(bundle: Path) -> dict[str, str]:
    """For `python -S` in the bundle: the bundle first, then this environment's site-packages for
    crhelper/PyYAML/boto3 — but not the editable install of the checkout, which would hide a
    missing bundled module — and no FLU_MONITOR_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLU_MONITOR")}
    site = [p for p in sys.path if p.endswith("site-packages")]
    env.update(PYTHONPATH=os.pathsep.join([str(bundle), *site]), AWS_REGION=REGION)
    return env


class FakeContext:
    """The part of the Lambda context crhelper and the functions use."""

    function_name = "flu-monitor-test-function"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def __init__(self, remaining_s: float = 14.0):
        # Under 15 s left, crhelper skips its delete sleep (it keeps 15 s in reserve).
        self._deadline = time.monotonic() + remaining_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _Recorder(BaseHTTPRequestHandler):
    def do_PUT(self):  # noqa: N802 (http.server naming)
        length = int(self.headers.get("content-length", 0))
        self.server.received.append((self.path, json.loads(self.rfile.read(length))))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class CloudFormationStandIn:
    def __init__(self, server: ThreadingHTTPServer):
        self.server = server
        self.port = server.server_address[1]

    @property
    def received(self) -> list:
        return self.server.received

    def request(
        self,
        request_type: str,
        properties: dict,
        old_properties: dict | None = None,
        physical_id: str | None = None,
        logical_id: str = "Resource",
        resource_type: str = "Custom::Test",
    ) -> dict:
        request_id = str(uuid.uuid4())
        event = {
            "RequestType": request_type,
            "ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn",
            "ResponseURL": f"https://127.0.0.1:{self.port}/cfn/{request_id}?X-Amz-Signature=x",
            "StackId": STACK_ID,
            "RequestId": request_id,
            "LogicalResourceId": logical_id,
            "ResourceType": resource_type,
            # CloudFormation passes every scalar property as a string.
            "ResourceProperties": {"ServiceToken": "arn:fn", **_stringify(properties)},
        }
        if old_properties is not None:
            event["OldResourceProperties"] = {
                "ServiceToken": "arn:fn",
                **_stringify(old_properties),
            }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        return event

    def invoke(self, module, event: dict, context: FakeContext | None = None) -> dict | None:
        """Run the handler; the response CloudFormation received for this event (None if the
        handler answered nothing, e.g. while crhelper keeps polling)."""
        before = len(self.received)
        module.handler(event, context or FakeContext())
        return self.answer_to(event, self.received[before:])

    def answer_to(self, event: dict, received: list | None = None) -> dict | None:
        """The one response to `event` among `received` (default: all), checked like
        CloudFormation checks it; None if there is none."""
        rid = event["RequestId"]
        answers = [
            (p, b)
            for p, b in (self.received if received is None else received)
            if b.get("RequestId") == rid or p.startswith(f"/cfn/{rid}?")
        ]
        assert len(answers) <= 1, f"more than one response sent: {answers}"
        if not answers:
            return None
        path, body = answers[0]
        assert path.startswith(f"/cfn/{event['RequestId']}?"), path
        assert body["RequestId"] == event["RequestId"]
        assert body["StackId"] == event["StackId"]
        assert body["LogicalResourceId"] == event["LogicalResourceId"]
        assert len(body["Reason"]) <= 256, "CloudFormation rejects a Reason over 256 characters"
        return body


def _stringify(value):
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.fixture(scope="session")
def _tls(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    return ca_file, server_context


@pytest.fixture(scope="session")
def _response_server(_tls):
    _, server_context = _tls
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.received = []
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cfn(_response_server, _tls, monkeypatch):
    ca_file, _ = _tls
    # crhelper verifies the ResponseURL's certificate against the default trust store.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    return CloudFormationStandIn(_response_server)


@pytest.fixture
def stubbed():
    """stubbed(service, region=REGION) -> (client, stubber); all stubs must be used by the end."""
    made = []

    def make(service: str, region: str = REGION):
        client = boto3.client(service, region_name=region)
        stubber = Stubber(client)
        stubber.activate()
        made.append(stubber)
        return client, stubber

    yield make
    for stubber in made:
        stubber.assert_no_pending_responses()
