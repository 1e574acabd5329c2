"""Custom::DatagenPlugin: the jar is fetched from a real local HTTP server, S3 calls are stubbed
against botocore's model, and the answer is read from the real local ResponseURL server."""

import base64
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.functions.conftest import load_function

JAR = b"PK\x03\x04 a stand-in for msk-data-generator-0.4-jar-with-dependencies.jar " * 2000
JAR_SHA256 = hashlib.sha256(JAR).hexdigest()
BUCKET, KEY = "flu-stack-bucket", "plugins/msk-data-generator-0.4.0.jar"


class _JarHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.server.paths.append(self.path)
        if self.path == "/releases/plugin.jar":
            self.send_response(200)
            self.send_header("content-length", str(len(JAR)))
            self.end_headers()
            self.wfile.write(JAR)
        else:
            self.send_error(404, "Not Found")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def release_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JarHandler)
    server.paths = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def fn(stubbed):
    module = load_function("plugin_stager")
    module.clients.clear()
    s3, stub = stubbed("s3")
    module.clients.put("s3", s3)
    module.stub = stub
    return module


def _url(server, path="/releases/plugin.jar"):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _props(server, **overrides):
    return {
        "Bucket": BUCKET,
        "Key": KEY,
        "SourceUrl": _url(server),
        "Sha256": JAR_SHA256,
        "UserS3Uri": "",
        "CodeVersion": "1",
        **overrides,
    }


def _expect_put(fn, version_id=None):
    response = {"ETag": '"e"', **({"VersionId": version_id} if version_id else {})}
    fn.stub.add_response(
        "put_object",
        response,
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "Body": JAR,
            "ContentType": "application/java-archive",
            "ChecksumSHA256": base64.b64encode(hashlib.sha256(JAR).digest()).decode(),
        },
    )


def test_create_downloads_verifies_and_stages(fn, cfn, release_server):
    _expect_put(fn, version_id="v1")
    body = cfn.invoke(fn, cfn.request("Create", _props(release_server)))
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"s3://{BUCKET}/{KEY}"
    assert body["Data"] == {
        "BucketArn": f"arn:aws:s3:::{BUCKET}",
        "FileKey": KEY,
        "ObjectVersion": "v1",
    }


def test_update_same_or_new_release_keeps_the_physical_id(fn, cfn, release_server):
    old = _props(release_server)
    _expect_put(fn)  # unversioned bucket: ObjectVersion ""
    same = cfn.invoke(fn, cfn.request("Update", old, old, physical_id=f"s3://{BUCKET}/{KEY}"))
    assert same["Status"] == "SUCCESS", same["Reason"]
    assert same["PhysicalResourceId"] == f"s3://{BUCKET}/{KEY}"
    assert same["Data"]["ObjectVersion"] == ""

    _expect_put(fn, version_id="v2")
    new = _props(release_server, CodeVersion="2")
    changed = cfn.invoke(fn, cfn.request("Update", new, old, physical_id=f"s3://{BUCKET}/{KEY}"))
    assert changed["Status"] == "SUCCESS", changed["Reason"]
    assert changed["PhysicalResourceId"] == f"s3://{BUCKET}/{KEY}"
    assert changed["Data"]["ObjectVersion"] == "v2"


def test_user_s3_uri_skips_the_download(fn, cfn, release_server):
    requests_before = len(release_server.paths)
    props = _props(release_server, UserS3Uri="s3://my-artifacts/plugins/datagen.jar")
    body = cfn.invoke(fn, cfn.request("Create", props))
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == "s3://my-artifacts/plugins/datagen.jar"
    assert body["Data"] == {
        "BucketArn": "arn:aws:s3:::my-artifacts",
        "FileKey": "plugins/datagen.jar",
        "ObjectVersion": "",
    }
    assert len(release_server.paths) == requests_before  # nothing fetched


def test_malformed_user_s3_uri_is_named(fn, cfn, release_server):
    body = cfn.invoke(fn, cfn.request("Create", _props(release_server, UserS3Uri="bucket/key")))
    assert body["Status"] == "FAILED"
    assert (
        body["Reason"] == "property UserS3Uri must look like s3://bucket/key.jar, not 'bucket/key'"
    )


def test_404_fails_naming_the_parameter_to_use_instead(fn, cfn, release_server):
    url = _url(release_server, "/releases/missing.jar")
    body = cfn.invoke(fn, cfn.request("Create", _props(release_server, SourceUrl=url)))
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        "Plugin download failed; without internet egress set parameter PluginS3Uri to an s3:// "
        f"copy of the jar. GET {url}: HTTP 404 Not Found"
    )


def test_unreachable_release_host_fails_naming_the_parameter(fn, cfn, release_server):
    with socket.socket() as s:  # a port nobody listens on: connection refused, like no egress
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/plugin.jar"
    props = _props(release_server, SourceUrl=url, UserS3UriParameterName="DatagenPluginS3Uri")
    body = cfn.invoke(fn, cfn.request("Create", props))
    assert body["Status"] == "FAILED"
    assert "set parameter DatagenPluginS3Uri to an s3:// copy" in body["Reason"]
    assert body["Reason"].endswith("Connection refused")


def test_hash_mismatch_shows_both_hashes(fn, cfn, release_server):
    wrong = "7bc7784e87abef769059aca82017473baa95a9dd28313c04d20baf6beecf3bcb"
    body = cfn.invoke(fn, cfn.request("Create", _props(release_server, Sha256=wrong.upper())))
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        f"Downloaded plugin fails the Sha256 check: expected {wrong}, downloaded {JAR_SHA256}"
    )


def test_malformed_hash_is_rejected_before_downloading(fn, cfn, release_server):
    before = len(release_server.paths)
    body = cfn.invoke(fn, cfn.request("Create", _props(release_server, Sha256="abc")))
    assert body["Status"] == "FAILED"
    assert body["Reason"] == "property Sha256 must be 64 hex digits, not 'abc'"
    assert len(release_server.paths) == before


def test_delete_removes_every_version_of_the_staged_object(fn, cfn, release_server):
    fn.stub.add_response(
        "list_object_versions",
        {
            "Versions": [
                {"Key": KEY, "VersionId": "v2"},
                {"Key": KEY, "VersionId": "v1"},
                {"Key": KEY + ".bak", "VersionId": "x"},  # same prefix, other object: kept
            ],
            "DeleteMarkers": [{"Key": KEY, "VersionId": "m1"}],
        },
        {"Bucket": BUCKET, "Prefix": KEY},
    )
    objects = [{"Key": KEY, "VersionId": v} for v in ("v2", "v1", "m1")]
    fn.stub.add_response(
        "delete_objects",
        {"Deleted": objects},
        {"Bucket": BUCKET, "Delete": {"Objects": objects, "Quiet": True}},
    )
    event = cfn.request("Delete", _props(release_server), physical_id=f"s3://{BUCKET}/{KEY}")
    body = cfn.invoke(fn, event)
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"s3://{BUCKET}/{KEY}"


def test_delete_when_already_gone_succeeds(fn, cfn, release_server):
    fn.stub.add_response("list_object_versions", {}, {"Bucket": BUCKET, "Prefix": KEY})
    event = cfn.request("Delete", _props(release_server), physical_id=f"s3://{BUCKET}/{KEY}")
    assert cfn.invoke(fn, event)["Status"] == "SUCCESS"

    fn.stub.add_client_error(
        "list_object_versions", "NoSuchBucket", expected_params={"Bucket": BUCKET, "Prefix": KEY}
    )
    event = cfn.request("Delete", _props(release_server), physical_id=f"s3://{BUCKET}/{KEY}")
    assert cfn.invoke(fn, event)["Status"] == "SUCCESS"


def test_delete_of_a_never_created_resource_touches_nothing(fn, cfn, release_server):
    # After a failed Create, crhelper answered with a generated id; the rollback Delete carries it.
    event = cfn.request(
        "Delete", _props(release_server), physical_id="flu-monitor_Resource_ABCD1234"
    )
    body = cfn.invoke(fn, event)
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "flu-monitor_Resource_ABCD1234"


def test_delete_never_touches_a_user_supplied_plugin(fn, cfn, release_server):
    props = _props(release_server, UserS3Uri=f"s3://{BUCKET}/{KEY}")
    body = cfn.invoke(fn, cfn.request("Delete", props, physical_id=f"s3://{BUCKET}/{KEY}"))
    assert body["Status"] == "SUCCESS"


def test_failed_delete_reports_s3_error(fn, cfn, release_server):
    fn.stub.add_response(
        "list_object_versions",
        {"Versions": [{"Key": KEY, "VersionId": "v1"}]},
        {"Bucket": BUCKET, "Prefix": KEY},
    )
    fn.stub.add_response(
        "delete_objects",
        {"Errors": [{"Key": KEY, "VersionId": "v1", "Code": "AccessDenied", "Message": "Denied"}]},
        {"Bucket": BUCKET, "Delete": {"Objects": [{"Key": KEY, "VersionId": "v1"}], "Quiet": True}},
    )
    event = cfn.request("Delete", _props(release_server), physical_id=f"s3://{BUCKET}/{KEY}")
    body = cfn.invoke(fn, event)
    assert body["Status"] == "FAILED"
    assert body["Reason"] == f"deleting s3://{BUCKET}/{KEY} failed: AccessDenied Denied"


def test_update_to_a_new_key_or_a_user_plugin_replaces_the_resource(fn, cfn, release_server):
    old = _props(release_server, Key="plugins/old.jar")
    new = _props(release_server)
    _expect_put(fn)
    moved = cfn.invoke(
        fn, cfn.request("Update", new, old, physical_id=f"s3://{BUCKET}/plugins/old.jar")
    )
    # A new physical id: CloudFormation then sends Delete for s3://BUCKET/plugins/old.jar.
    assert (moved["Status"], moved["PhysicalResourceId"]) == ("SUCCESS", f"s3://{BUCKET}/{KEY}")

    user = _props(release_server, UserS3Uri="s3://my-artifacts/datagen.jar")
    switched = cfn.invoke(fn, cfn.request("Update", user, new, physical_id=f"s3://{BUCKET}/{KEY}"))
    assert switched["PhysicalResourceId"] == "s3://my-artifacts/datagen.jar"
    # ...and the Delete of the replaced staged object removes it (old properties, old id).
    fn.stub.add_response(
        "list_object_versions",
        {"Versions": [{"Key": KEY, "VersionId": "null"}]},
        {"Bucket": BUCKET, "Prefix": KEY},
    )
    fn.stub.add_response(
        "delete_objects",
        {},
        {
            "Bucket": BUCKET,
            "Delete": {"Objects": [{"Key": KEY, "VersionId": "null"}], "Quiet": True},
        },
    )
    gone = cfn.invoke(fn, cfn.request("Delete", new, physical_id=f"s3://{BUCKET}/{KEY}"))
    assert gone["Status"] == "SUCCESS"
