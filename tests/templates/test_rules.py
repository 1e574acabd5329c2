"""What AWS would refuse, the template refuses first, at parameter time (docs/deploy.md, "What
AWS refuses"): every parameter combination a Rule or pattern guards is enumerated here and
evaluated the way CloudFormation evaluates Rules, before it creates anything."""

import itertools
import re

import cfn_template
import pytest

KRAFT = {"3.9.x.kraft", "4.0.x.kraft", "4.1.x.kraft"}
# MSK CreateCluster on a KRaft version: "Unsupported InstanceType specified. Valid values:
# [express.m7g.*, kafka.m5.*, kafka.m7g.*]" (reports from real accounts, 3.9.x.kraft and
# 4.1.x.kraft). M7g brokers need Kafka 2.8.2/3.3.2 or later (MSK broker sizes), which every
# offered version is.


def _allowed(version: str, instance: str) -> bool:
    return not (version in KRAFT and instance.startswith("kafka.t3."))


def _with(root, **values):
    return cfn_template.Template(root.path, root.body, {k: str(v) for k, v in values.items()})


def test_every_offered_version_is_known_to_the_pair_table(root):
    versions = set(root.parameters["KafkaVersion"]["AllowedValues"])
    assert versions - KRAFT == {"3.9.x"}  # the one ZooKeeper version, for kafka.t3.small


def test_kafka_version_and_broker_type_pairs_are_refused_exactly_when_msk_refuses_them(root):
    versions = root.parameters["KafkaVersion"]["AllowedValues"]
    instances = root.parameters["BrokerInstanceType"]["AllowedValues"]
    allowed_with_kraft = [i for i in instances if _allowed("4.1.x.kraft", i)]
    for version, instance in itertools.product(versions, instances):
        refused = _with(root, KafkaVersion=version, BrokerInstanceType=instance).refusals()
        if _allowed(version, instance):
            assert refused == [], (version, instance, refused)
        else:
            assert len(refused) == 1, (version, instance)
            for name in allowed_with_kraft + ["3.9.x"]:  # the message names every way out
                assert name in refused[0], (name, refused[0])


def test_serverless_msk_ignores_the_broker_pair(root):
    template = _with(
        root,
        ClusterType="serverless",
        KafkaVersion="4.1.x.kraft",
        BrokerInstanceType="kafka.t3.small",
    )
    assert template.refusals() == []


def test_the_default_pair_is_one_msk_accepts(root):
    defaults = {n: root.parameters[n]["Default"] for n in ("KafkaVersion", "BrokerInstanceType")}
    assert defaults == {"KafkaVersion": "3.9.x", "BrokerInstanceType": "kafka.t3.small"}
    assert _with(root, **defaults).refusals() == []


def test_serverless_max_capacity_is_never_below_base(root):
    bases = root.parameters["BaseCapacityRpu"]["AllowedValues"]
    maxima = root.parameters["MaxCapacityRpu"]["AllowedValues"]
    for base, maximum in itertools.product(bases, maxima):
        refused = _with(root, BaseCapacityRpu=base, MaxCapacityRpu=maximum).refusals()
        assert bool(refused) == (int(maximum) < int(base)), (base, maximum, refused)
        provisioned = _with(
            root, WarehouseType="provisioned", BaseCapacityRpu=base, MaxCapacityRpu=maximum
        )
        assert provisioned.refusals() == []


def test_base_capacity_values_are_ones_redshift_serverless_takes():
    """Management Guide, compute capacity: 4 RPUs, or multiples of 8 from 8 to 512."""
    for template in cfn_template.all_templates():
        for name in ("BaseCapacityRpu", "MaxCapacityRpu"):
            for value in template.parameters.get(name, {}).get("AllowedValues", []):
                assert value == 4 or (value % 8 == 0 and 8 <= value <= 512), (name, value)


def test_max_capacity_caps_the_workgroup(templates):
    warehouse = templates["nested/warehouse.yaml"]
    workgroup = warehouse.resources["Workgroup"]["Properties"]
    assert workgroup["MaxCapacity"] == {"Ref": "MaxCapacityRpu"}


def test_single_node_redshift_only_with_node_types_that_offer_it(templates):
    """Management Guide node table: single-node is offered for ra3.large and ra3.xlplus only;
    ra3.4xlarge starts at two nodes."""
    for template in templates.values():
        if "NodeType" in template.parameters:
            assert template.parameters["NodeType"]["AllowedValues"] == ["ra3.large", "ra3.xlplus"]
    cluster = templates["nested/warehouse.yaml"].resources["Cluster"]["Properties"]
    assert cluster["ClusterType"] == "single-node" and "NumberOfNodes" not in cluster


def test_msk_connect_capacity_values_are_the_documented_ones(templates):
    """AWS::KafkaConnect::Connector ProvisionedCapacity: McuCount 1|2|4|8, WorkerCount 1-10."""
    for template in templates.values():
        if "ConnectorMcuCount" in template.parameters:
            assert template.parameters["ConnectorMcuCount"]["AllowedValues"] == [1, 2, 4, 8]
            workers = template.parameters["ConnectorWorkerCount"]
            assert (workers["MinValue"], workers["MaxValue"]) == (1, 10)


@pytest.mark.parametrize(
    ("dashboards", "principal", "accepted"),
    [
        ("false", "", True),
        ("true", "", False),  # DashboardsNeedAnOwner
        ("true", "arn:aws:quicksight:us-east-1:111122223333:user/default/CHANGE-ME", False),
        ("true", "arn:aws:quicksight:us-east-1:111122223333:group/default/CHANGE-ME", False),
        ("true", "arn:aws:quicksight:us-east-1:111122223333:user/default/alice", True),
        ("true", "arn:aws:quicksight:us-east-1:111122223333:user/default/CHANGE-ME-later", True),
    ],
)
def test_dashboards_need_a_real_owner(root, dashboards, principal, accepted):
    pattern = root.parameters["QuickSightPrincipalArn"]["AllowedPattern"]
    refused = _with(root, EnableDashboards=dashboards, QuickSightPrincipalArn=principal).refusals()
    ok = bool(re.fullmatch(pattern, principal)) and not refused
    assert ok is accepted, refused


@pytest.mark.parametrize(
    ("zones", "accepted"),
    [
        ("", True),  # the Region's first three, as before
        ("us-east-1a,us-east-1b,us-east-1d", True),
        ("ap-southeast-5a,ap-southeast-5b,ap-southeast-5c", True),
        ("us-east-1a,us-east-1b", False),  # MSK spreads brokers over exactly the three subnets
        ("us-east-1a,us-east-1b,us-east-1c,us-east-1d", False),
        ("use1-az1,use1-az2,use1-az4", False),  # names, not IDs
        ("us-east-1a, us-east-1b, us-east-1d", False),
    ],
)
def test_availability_zones_are_three_names_or_empty(root, zones, accepted):
    pattern = root.parameters["AvailabilityZones"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, zones)) is accepted


def test_empty_availability_zones_keep_the_first_three(root):
    network = root.resources["NetworkStack"]["Properties"]["Parameters"]["AvailabilityZones"]
    assert _with(root, AvailabilityZones="").evaluate(network) == "us-east-1a,us-east-1b,us-east-1c"
    chosen = _with(root, AvailabilityZones="us-east-1a,us-east-1b,us-east-1d").evaluate(network)
    assert chosen == "us-east-1a,us-east-1b,us-east-1d"
