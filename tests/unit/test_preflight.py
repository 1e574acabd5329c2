"""`flu-monitor aws preflight`: every AWS call goes through a botocore Stubber (parameters and
responses checked against the service models), the plugin URL through a real local HTTP server.
No AWS account is involved."""

import functools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from flu_monitor.aws import preflight
from flu_monitor.cli import main

REGION = "us-east-1"
ACCOUNT = "111122223333"
OWNER = f"arn:aws:quicksight:{REGION}:{ACCOUNT}:user/default/alice"
ZONES = [
    ("us-east-1a", "use1-az6"),
    ("us-east-1b", "use1-az1"),
    ("us-east-1c", "use1-az2"),
    ("us-east-1d", "use1-az4"),
    ("us-east-1e", "use1-az3"),
]


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@functools.cache
def _client(service, region):
    """One boto3 client per service and Region for the module (making one loads its service
    model: ~10 ms); each test stubs it with a Stubber of its own."""
    return boto3.client(service, region_name=region)


class Stubs:
    """clients(service, region) for run_checks, each a Stubber'd boto3 client."""

    def __init__(self):
        self.made = {}

    def __call__(self, service, region=None):
        key = (service, region or REGION)
        if key not in self.made:
            client = _client(*key)
            stubber = Stubber(client)
            stubber.activate()
            self.made[key] = (client, stubber)
        return self.made[key][0]

    def stub(self, service, region=None):
        self(service, region)
        return self.made[(service, region or REGION)][1]

    def assert_all_used(self):
        for _, stubber in self.made.values():
            stubber.assert_no_pending_responses()

    def deactivate(self):
        for _, stubber in self.made.values():
            stubber.deactivate()


@pytest.fixture
def stubs():
    made = Stubs()
    yield made
    made.deactivate()  # the next test's Stubber alone answers for the shared client
    made.assert_all_used()


@pytest.fixture
def plugin_server():
    """A real HTTP server standing in for the release URL: /ok answers 200, anything else 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 (http.server naming)
            self.send_response(200 if self.path == "/ok.jar" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@functools.cache
def _defaults() -> dict[str, str]:
    return preflight.template_defaults()  # template.yaml's, parsed once (60 ms a parse)


def params(**overrides):
    return {**_defaults(), **overrides}


def expect_identity(stubs):
    stubs.stub("sts").add_response(
        "get_caller_identity",
        {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/me", "UserId": "AIDA"},
        {},
    )


def expect_zones(stubs, zones=ZONES):
    stubs.stub("ec2").add_response(
        "describe_availability_zones",
        {
            "AvailabilityZones": [
                {"ZoneName": name, "ZoneId": zone_id, "State": "available"}
                for name, zone_id in zones
            ]
        },
        {"Filters": [{"Name": "zone-type", "Values": ["availability-zone"]}]},
    )


def expect_kafka_versions(stubs, versions=("3.9.x", "3.9.x.kraft", "4.1.x.kraft")):
    stubs.stub("kafka").add_response(
        "list_kafka_versions",
        {"KafkaVersions": [{"Version": v, "Status": "ACTIVE"} for v in versions]},
        {},
    )


def expect_connect(stubs):
    stubs.stub("kafkaconnect").add_response(
        "list_connectors", {"connectors": []}, {"maxResults": 1}
    )


def expect_serverless(stubs):
    stubs.stub("redshift-serverless").add_response(
        "list_workgroups", {"workgroups": []}, {"maxResults": 1}
    )


def expect_defaults_pass(stubs):
    expect_identity(stubs)
    expect_zones(stubs)
    expect_kafka_versions(stubs)
    expect_connect(stubs)
    expect_serverless(stubs)


def by_check(results):
    return {r.check: r for r in results}


def run(stubs, plugin_server, path="/ok.jar", **overrides):
    url = f"{plugin_server}{path}"
    results = preflight.run_checks(REGION, params(**overrides), stubs, plugin=url)
    return by_check(results)


def test_default_settings_pass(stubs, plugin_server):
    expect_defaults_pass(stubs)
    checks = run(stubs, plugin_server)
    assert [c.ok for c in checks.values()] == [True] * 7
    assert checks["availability zones"].detail == (
        "the Region's first three zones: us-east-1a (use1-az6), us-east-1b (use1-az1), "
        "us-east-1c (use1-az2)"
    )
    assert checks["msk"].detail == "Kafka 3.9.x is offered here"
    assert checks["datagen plugin"].detail.startswith(f"{plugin_server}/ok.jar answers HTTP 200")


def test_a_zone_msk_refuses_is_named_with_zones_to_use_instead(stubs, plugin_server):
    expect_defaults_pass(stubs)
    checks = run(stubs, plugin_server, AvailabilityZones="us-east-1a,us-east-1b,us-east-1e")
    assert not checks["availability zones"].ok
    assert checks["availability zones"].detail == (
        "MSK refuses subnets in us-east-1e (use1-az3): "
        "set AvailabilityZones=us-east-1a,us-east-1b,us-east-1c"
    )


def test_a_region_with_two_zones_fails(stubs, plugin_server):
    expect_identity(stubs)
    expect_zones(stubs, ZONES[:2])
    expect_kafka_versions(stubs)
    expect_connect(stubs)
    expect_serverless(stubs)
    checks = run(stubs, plugin_server)
    assert checks["availability zones"].detail.startswith(
        "the Region's first three zones gives ['us-east-1a', 'us-east-1b']: the network needs "
        "three different zones"
    )


def test_a_kafka_version_the_region_lacks_names_the_ones_it_has(stubs, plugin_server):
    expect_identity(stubs)
    expect_zones(stubs)
    expect_kafka_versions(stubs, ("3.9.x", "3.8.x"))
    expect_connect(stubs)
    expect_serverless(stubs)
    checks = run(
        stubs, plugin_server, KafkaVersion="4.1.x.kraft", BrokerInstanceType="kafka.m7g.large"
    )
    assert checks["msk"].detail == (
        "Kafka 4.1.x.kraft is not offered here (absent): choose KafkaVersion among "
        "['3.8.x', '3.9.x'], or ClusterType=serverless"
    )


def test_provisioned_node_type_must_be_orderable(stubs, plugin_server):
    expect_identity(stubs)
    expect_zones(stubs)
    expect_kafka_versions(stubs)
    expect_connect(stubs)
    stubs.stub("redshift").add_response(
        "describe_orderable_cluster_options",
        {"OrderableClusterOptions": []},
        {"NodeType": "ra3.large", "MaxRecords": 20},
    )
    checks = run(stubs, plugin_server, WarehouseType="provisioned", NodeType="ra3.large")
    assert checks["redshift"].detail == (
        "ra3.large cannot be ordered here: choose the other NodeType or WarehouseType=serverless"
    )


def test_access_denied_fails_that_check_only_in_one_line(stubs, plugin_server):
    expect_identity(stubs)
    expect_zones(stubs)
    expect_kafka_versions(stubs)
    stubs.stub("kafkaconnect").add_client_error(
        "list_connectors", "AccessDeniedException", "not authorized to perform: kafkaconnect:List"
    )
    expect_serverless(stubs)
    checks = run(stubs, plugin_server)
    assert checks["msk connect"].line() == (
        "FAIL msk connect: AccessDeniedException: An error occurred (AccessDeniedException) when "
        "calling the ListConnectors operation: not authorized to perform: kafkaconnect:List"
    )
    assert checks["redshift"].ok


def _dashboards(stubs, edition="ENTERPRISE", user_exists=True):
    expect_defaults_pass(stubs)
    identity = stubs.stub("quicksight", REGION)
    identity.add_response(
        "describe_account_subscription",
        {"AccountInfo": {"Edition": edition, "AccountSubscriptionStatus": "ACCOUNT_CREATED"}},
        {"AwsAccountId": ACCOUNT},
    )
    if edition == "ENTERPRISE":
        user = {"UserName": "alice", "AwsAccountId": ACCOUNT, "Namespace": "default"}
        if user_exists:
            identity.add_response("describe_user", {"Status": 200}, user)
        else:
            identity.add_client_error(
                "describe_user", "ResourceNotFoundException", expected_params=user
            )


def test_dashboards_with_enterprise_and_an_existing_owner_pass(stubs, plugin_server):
    _dashboards(stubs)
    checks = run(stubs, plugin_server, EnableDashboards="true", QuickSightPrincipalArn=OWNER)
    assert checks["quicksight"].line() == "PASS quicksight: Enterprise; owner user alice exists"


def test_standard_edition_is_refused_with_the_way_out(stubs, plugin_server):
    _dashboards(stubs, edition="STANDARD")
    checks = run(stubs, plugin_server, EnableDashboards="true", QuickSightPrincipalArn=OWNER)
    assert checks["quicksight"].detail.startswith("QuickSight is STANDARD: a VPC connection")


def test_a_missing_owner_is_named(stubs, plugin_server):
    _dashboards(stubs, user_exists=False)
    checks = run(stubs, plugin_server, EnableDashboards="true", QuickSightPrincipalArn=OWNER)
    assert checks["quicksight"].detail.startswith("no QuickSight user alice in namespace default")


def test_no_subscription_is_named(stubs, plugin_server):
    expect_defaults_pass(stubs)
    stubs.stub("quicksight", REGION).add_client_error(
        "describe_account_subscription",
        "ResourceNotFoundException",
        expected_params={"AwsAccountId": ACCOUNT},
    )
    checks = run(stubs, plugin_server, EnableDashboards="true", QuickSightPrincipalArn=OWNER)
    assert checks["quicksight"].detail.startswith(f"account {ACCOUNT} has no QuickSight")


def test_the_placeholder_owner_is_refused_without_a_call(stubs, plugin_server):
    expect_defaults_pass(stubs)
    placeholder = OWNER.replace("alice", "CHANGE-ME")
    checks = run(stubs, plugin_server, EnableDashboards="true", QuickSightPrincipalArn=placeholder)
    assert not checks["quicksight"].ok


def test_user_plugin_object_is_looked_up_in_s3(stubs, plugin_server):
    expect_defaults_pass(stubs)
    stubs.stub("s3").add_client_error(
        "head_object",
        "404",
        expected_params={"Bucket": "my-assets", "Key": "plugins/datagen.jar"},
    )
    checks = run(stubs, plugin_server, DatagenPluginS3Uri="s3://my-assets/plugins/datagen.jar")
    assert checks["datagen plugin"].detail.startswith(
        "cannot read s3://my-assets/plugins/datagen.jar (404)"
    )


def test_an_unreachable_release_url_suggests_the_s3_copy(stubs, plugin_server):
    expect_defaults_pass(stubs)
    checks = run(stubs, plugin_server, path="/missing.jar")
    assert checks["datagen plugin"].detail.endswith(
        "upload the jar to S3 and set DatagenPluginS3Uri"
    )


def test_a_region_outside_the_linted_list_fails():
    regions = preflight.linted_regions()
    assert "us-east-1" in regions and "us-west-1" not in regions  # the Makefile's AWS_REGIONS
    result = preflight.check_region("us-west-1", regions)
    assert not result.ok
    assert result.detail.startswith("us-west-1 is not one the templates are linted for")


def test_parameters_resolve_like_sam_deploy():
    values = preflight.resolve_parameters("production", "NodeType=ra3.large")
    assert values["KafkaVersion"] == "4.1.x.kraft"  # from the profile
    assert values["NodeType"] == "ra3.large"  # the override wins
    assert values["ConnectorWorkerCount"] == "1"  # the template default


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region", "us-east-1", "--config-env", "nope"], "--config-env 'nope' is not in"),
        (["--region", "us-east-1", "--parameter-overrides", "NodeType"], "expected Key=Value"),
        (["--region", "us-east-1", "--parameter-overrides", "Nope=1"], "has no parameter"),
        (["--region", "US East"], "is not a Region name"),
    ],
)
def test_usage_errors_exit_2_in_one_line(args, message):
    result = CliRunner().invoke(main, ["aws", "preflight", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_failures_exit_1_and_print_every_check(monkeypatch, stubs, plugin_server):
    _dashboards(stubs, edition="STANDARD")
    monkeypatch.setattr(preflight, "boto3_clients", lambda region: stubs)
    monkeypatch.setattr(preflight, "plugin_url", lambda: f"{plugin_server}/ok.jar")
    result = CliRunner().invoke(
        main,
        ["aws", "preflight", "--region", REGION, "--parameter-overrides",
         f"EnableDashboards=true QuickSightPrincipalArn={OWNER}"],
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert [line.split(" ", 1)[0] for line in lines[:7]] == ["PASS"] * 5 + ["FAIL", "PASS"]
    assert lines[-1] == "1 of 7 checks failed"
