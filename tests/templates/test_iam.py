"""IAM: every statement as narrow as the template can know it, under every combination of
conditions. `Resource: "*"` is allowed only for actions that IAM cannot scope (no resource type in
the service authorization reference, as shipped in parliament's iam_definition.json)."""

import json
import warnings
from functools import cache
from pathlib import Path

import cfn_template
import pytest

SAMPLE_ACCOUNT = cfn_template.ACCOUNT
# Where a wildcard Region is right: QuickSight identity calls go to the identity Region,
# which the template cannot know.
ANY_REGION_ALLOWED = {
    "quicksight:DescribeAccountSubscription",
    "quicksight:DescribeUser",
    "quicksight:DescribeGroup",
}


@cache
def _resource_types() -> dict[str, list[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import parliament
    data = json.loads((Path(parliament.__file__).parent / "iam_definition.json").read_text())
    return {
        f"{service['prefix']}:{p['privilege']}".lower(): [
            r["resource_type"] for r in p["resource_types"]
        ]
        for service in data
        for p in service["privileges"]
    }


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _granted(statements) -> set[tuple[str, str]]:
    """(action, resource) pairs of evaluated statements."""
    return {
        (action, resource)
        for s in statements
        for action in _as_list(s["Action"])
        for resource in _as_list(s["Resource"])
    }


def _statements(templates, kind):
    for template in templates.values():
        for case in template.condition_cases():
            for policy in cfn_template.policies(case):
                if policy.kind != kind or not case.exists(policy.resource):
                    continue
                for statement in _as_list(case.evaluate(policy.document)["Statement"]):
                    yield policy, statement


def test_policies_are_found(templates):
    assert len(list(_statements(templates, "identity"))) > 40


def test_actions_are_named_never_wildcarded(templates):
    for policy, statement in _statements(templates, "identity"):
        for action in _as_list(statement["Action"]):
            assert "*" not in action, f"{policy.where()}: wildcard action {action}"
            assert action.lower() in _resource_types(), f"{policy.where()}: unknown {action}"


def test_star_resources_only_for_actions_iam_cannot_scope(templates):
    for policy, statement in _statements(templates, "identity"):
        if "*" not in _as_list(statement["Resource"]):
            continue
        for action in _as_list(statement["Action"]):
            types = [t for t in _resource_types()[action.lower()] if t]
            assert not types, f"{policy.where()}: {action} can be scoped to {types}, not '*'"


def test_resources_name_this_account_and_region(templates):
    for policy, statement in _statements(templates, "identity"):
        for resource in _as_list(statement["Resource"]):
            if resource == "*":
                continue
            _, partition, service, region, account, rest = resource.split(":", 5)
            where = f"{policy.where()}: {resource}"
            assert partition == "aws" and rest, where
            if service not in ("s3", "iam"):
                assert account == SAMPLE_ACCOUNT, where
                wildcard_ok = set(_as_list(statement["Action"])) <= ANY_REGION_ALLOWED
                assert region == cfn_template.REGION or (region == "*" and wildcard_ok), where


def test_trust_policies_name_one_service_and_this_account(templates):
    for policy, statement in _statements(templates, "trust"):
        principal = statement["Principal"]
        assert set(principal) == {"Service"}, f"{policy.where()}: {principal}"
        assert statement["Action"] == "sts:AssumeRole", policy.where()
        service = principal["Service"]
        if service != "lambda.amazonaws.com":  # Lambda passes no source account to AssumeRole
            condition = statement.get("Condition", {}).get("StringEquals", {})
            assert condition.get("aws:SourceAccount") == SAMPLE_ACCOUNT, (
                f"{policy.where()}: {service} may assume the role for any account"
            )


def _role_grants(template, role_name):
    """(action, resource) pairs of a role's first inline policy, with sample values."""
    role = template.resources[role_name]["Properties"]
    return _granted(template.evaluate(role["Policies"][0]["PolicyDocument"])["Statement"])


def test_streaming_ingestion_role_has_exactly_the_msk_read_permissions(templates):
    """The policy the Redshift streaming-ingestion guide gives for AUTHENTICATION IAM: read the
    topic, and the consumer groups of the cluster. No kafka:GetBootstrapBrokers: the external
    schema names the brokers (URI), so Redshift makes no MSK API call."""
    granted = _role_grants(templates["nested/warehouse.yaml"], "StreamingIngestionRole")
    cluster = cfn_template.PARAMETER_SAMPLES["ClusterArn"]
    topic = cfn_template.PARAMETER_SAMPLES["TopicArn"]
    group = cluster.replace(":cluster/", ":group/") + "/*"
    assert granted == {
        ("kafka-cluster:Connect", cluster),
        ("kafka-cluster:DescribeTopic", topic),
        ("kafka-cluster:ReadData", topic),
        ("kafka-cluster:AlterGroup", group),
        ("kafka-cluster:DescribeGroup", group),
    }


def test_simulator_role_has_exactly_what_producing_idempotently_needs(templates):
    """MSK's "Produce data idempotently" use case (Connect, DescribeTopic, WriteData,
    WriteDataIdempotently) on this cluster and topic only, plus logs, its dead-letter queue and
    the ENIs of a VPC function."""
    template = templates["nested/events.yaml"]
    role = template.resources["SimulatorRole"]["Properties"]
    statements = template.evaluate(role["Policies"][0]["PolicyDocument"])["Statement"]
    kafka = {(a, r) for a, r in _granted(statements) if a.startswith("kafka")}
    cluster = cfn_template.PARAMETER_SAMPLES["ClusterArn"]
    topic = cluster.replace(":cluster/", ":topic/") + "/" + template.parameter_value("TopicName")
    assert kafka == {
        ("kafka-cluster:Connect", cluster),
        ("kafka-cluster:DescribeCluster", cluster),
        ("kafka-cluster:WriteDataIdempotently", cluster),
        ("kafka-cluster:DescribeTopic", topic),
        ("kafka-cluster:WriteData", topic),
    }
    scheduler = template.evaluate(template.resources["SchedulerRole"]["Properties"]["Policies"])
    assert {s["Action"] for s in scheduler[0]["PolicyDocument"]["Statement"]} == {
        "lambda:InvokeFunction",
        "sqs:SendMessage",
    }


def test_topic_arns_are_derived_from_the_cluster_arn(templates):
    streaming = templates["nested/streaming.yaml"]
    for case in streaming.condition_cases():
        role = case.evaluate(case.resources["KafkaTopicRole"]["Properties"])
        topic_statement = role["Policies"][0]["PolicyDocument"]["Statement"][2]
        cluster = case.evaluate({"Fn::If": ["IsServerless", {"Ref": "ServerlessCluster"},
                                            {"Ref": "ProvisionedCluster"}]})  # fmt: skip
        expected = cluster.replace(":cluster/", ":topic/") + "/flu_cases"
        assert topic_statement["Resource"] == expected


@pytest.mark.parametrize(
    ("name", "role"),
    [("nested/streaming.yaml", "KafkaTopicRole"), ("nested/events.yaml", "SimulatorRole")],
)
def test_vpc_lambda_may_create_interfaces_only_in_its_subnets_and_group(templates, name, role):
    template = templates[name]
    statements = template.evaluate(template.resources[role]["Properties"])["Policies"][0]
    create = [
        s for s in statements["PolicyDocument"]["Statement"]
        if "ec2:CreateNetworkInterface" in _as_list(s["Action"])
    ]  # fmt: skip
    resources = create[0]["Resource"]
    subnets = [r for r in resources if ":subnet/" in r]
    assert [r.rsplit("/", 1)[1] for r in subnets] == cfn_template.PARAMETER_SAMPLES[
        "PrivateSubnetIds"
    ]
    assert sum(":security-group/" in r for r in resources) == 1


def _enables_idempotence(properties: dict[str, str], prefix: str) -> bool:
    """Kafka producers are idempotent by default since Kafka 3.0 (KIP-679); only an explicit
    false (or acks other than all, which forbids it) turns it off."""
    explicit = properties.get(f"{prefix}enable.idempotence")
    if explicit is not None:
        return explicit.strip().lower() == "true"
    return properties.get(f"{prefix}acks", "all") in ("all", "-1")


def test_idempotent_producers_may_write_idempotently(templates):
    """MSK IAM access control: "It isn't possible to WriteDataIdempotently to a topic by only
    providing WriteData access to that topic" - a role whose producer is idempotent needs
    kafka-cluster:WriteDataIdempotently on the cluster, or the connector runs and writes nothing.
    The client configurations are connector/'s worker and connector settings."""
    import render_connector

    connector = render_connector.load_connector()
    worker = render_connector.parse_properties(connector.worker_properties)
    idempotent = _enables_idempotence(worker, "producer.") or _enables_idempotence(
        connector.config, "producer.override."
    )
    granted = _role_grants(templates["nested/connect.yaml"], "ConnectorRole")
    cluster = cfn_template.PARAMETER_SAMPLES["ClusterArn"]
    assert any(action == "kafka-cluster:WriteData" for action, _ in granted)
    assert idempotent  # the worker settings say so; if that changes, revisit this grant
    assert ("kafka-cluster:WriteDataIdempotently", cluster) in granted


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({}, True),  # the Kafka 3.x default
        ({"producer.enable.idempotence": "true"}, True),
        ({"producer.enable.idempotence": "false"}, False),
        ({"producer.acks": "1"}, False),
    ],
)
def test_idempotence_is_read_the_way_kafka_reads_it(properties, expected):
    assert _enables_idempotence(properties, "producer.") is expected
