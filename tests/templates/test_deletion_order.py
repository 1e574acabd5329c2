"""Deletion order and data retention (reasoning in docs/deploy.md, "Clean deletion").

CloudFormation deletes a resource only after every resource that depends on it. So everything
that puts network interfaces into the subnets (brokers, connector workers, the VPC Lambdas,
Redshift, QuickSight) must depend on the network stack, custom resources must depend on the
function and the service they act on (their Delete runs while both still exist), and nothing
attached to the VPC may be retained (it would pin the subnets and fail the network's deletion).

Interfaces can outlive the resource CloudFormation reports deleted (QuickSight, MSK Connect), so
every security group has a Custom::NetworkInterfacesReleased deleted after everything that puts
interfaces into the group and before the group (and, in the network stack, the subnets) goes.
Every interface is in one of these groups, so once they are all empty the subnets are too.
"""

import cfn_template
import pytest

from tests.templates.conftest import source_of

VPC_ATTACHED = {
    "nested/streaming.yaml": {"ProvisionedCluster", "ServerlessCluster", "KafkaTopicFunction"},
    "nested/events.yaml": {"SimulatorFunction"},
    "nested/connect.yaml": {"Connector"},
    "nested/warehouse.yaml": {"Workgroup", "Cluster"},
    "nested/dashboards.yaml": {"VpcConnection"},
}
# Where CloudFormation resources name the security groups and subnets of their interfaces.
GROUP_KEYS = {"SecurityGroups", "SecurityGroupIds", "VpcSecurityGroupIds"}
SUBNET_KEYS = {"SubnetIds", "ClientSubnets", "Subnets"}
WAITER = "Custom::NetworkInterfacesReleased"


def _values_under(node, keys) -> list:
    """Every item of the lists found under `keys` anywhere in node."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys:
                found += value if isinstance(value, list) else [value]
            else:
                found += _values_under(value, keys)
    elif isinstance(node, list):
        for item in node:
            found += _values_under(item, keys)
    return found


def _attached(template):
    """resource -> the security-group values of the interfaces it creates."""
    return {
        name: groups
        for name, resource in template.resources.items()
        if (groups := _values_under(resource.get("Properties", {}), GROUP_KEYS))
    }


def _group_named(template, value) -> str | None:
    """The logical ID of the security group of this template that value refers to."""
    if not isinstance(value, dict):
        return None
    target = value.get("Ref") or value.get("Fn::GetAtt", [None])[0]
    resource = template.resources.get(target, {})
    return target if resource.get("Type") == "AWS::EC2::SecurityGroup" else None


def _waiters(template) -> dict[str, str]:
    """security group -> the Custom::NetworkInterfacesReleased that guards it."""
    guards = {}
    for name, resource in template.resources_of(WAITER):
        group = _group_named(template, resource["Properties"]["SecurityGroupId"])
        assert group and group not in guards, f"{template.name}:{name} guards {group}"
        guards[group] = name
    return guards


def _stack_of(templates, template) -> str:
    root = templates["template.yaml"]
    return next(
        name for name, r in root.resources_of("AWS::CloudFormation::Stack")
        if r["Properties"]["TemplateURL"] == template.name
    )  # fmt: skip


@pytest.fixture(scope="module")
def graphs(templates):
    return {name: cfn_template.dependencies(t) for name, t in templates.items()}


def test_the_network_stack_is_deleted_after_every_stack_that_uses_its_subnets(graphs):
    root = graphs["template.yaml"]
    for stack in (
        "StreamingStack",
        "EventsStack",
        "ConnectStack",
        "WarehouseStack",
        "DashboardsStack",
    ):
        assert "NetworkStack" in root[stack], stack


def test_stream_consumers_and_producers_go_before_the_cluster(graphs):
    root = graphs["template.yaml"]
    assert "StreamingStack" in root["ConnectStack"]  # the connector stops before the cluster goes
    assert "StreamingStack" in root["EventsStack"]  # so does the simulator's schedule
    assert "StreamingStack" in root["WarehouseStack"]  # so does streaming ingestion
    assert "WarehouseStack" in root["DashboardsStack"]  # QuickSight lets go of Redshift first


@pytest.mark.parametrize(
    ("template", "custom", "needs"),
    [
        ("nested/streaming.yaml", "Topic", {"KafkaTopicFunction", "ProvisionedCluster"}),
        ("nested/streaming.yaml", "Topic", {"ServerlessCluster", "BootstrapBrokers"}),
        ("nested/warehouse.yaml", "WarehouseSql", {"SqlRunnerFunction", "Workgroup", "Cluster"}),
        ("nested/connect.yaml", "DatagenPlugin", {"PluginStagerFunction", "PluginBucket"}),
        ("nested/events.yaml", "Backfill", {"SimulatorFunction"}),
        ("nested/events.yaml", "Schedule", {"Backfill", "SchedulerRole", "DeadLetterQueue"}),
        ("nested/dashboards.yaml", "Dashboard", {"QuickSightPublisherFunction", "VpcConnection"}),
    ],
)
def test_custom_resources_are_deleted_while_their_function_and_target_exist(
    graphs, template, custom, needs
):
    for target in needs:
        assert cfn_template.depends_on(graphs[template], custom, target), f"{custom} -> {target}"


def test_function_log_groups_outlive_the_function(graphs, templates):
    for name, template in templates.items():
        for function, resource in template.resources_of("AWS::Serverless::Function"):
            log_group = resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            assert log_group in graphs[name][function], f"{name}:{function}"


def test_vpc_lambda_keeps_its_eni_permissions_until_its_enis_are_gone(graphs, templates):
    # CloudFormation waits for Lambda to release the function's network interfaces; Lambda does
    # that with the function's role, so the role (with its inline EC2 permissions) must outlive
    # the function. A separate AWS::IAM::Policy could be deleted first and strand the ENIs.
    for name, function, role in [
        ("nested/streaming.yaml", "KafkaTopicFunction", "KafkaTopicRole"),
        ("nested/events.yaml", "SimulatorFunction", "SimulatorRole"),
    ]:
        assert role in graphs[name][function]
        inline = str(templates[name].resources[role]["Properties"]["Policies"])
        assert "ec2:DeleteNetworkInterface" in inline
    for template in templates.values():
        assert not list(template.resources_of("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"))


def test_quicksight_keeps_its_role_and_group_until_its_interfaces_are_gone(graphs):
    vpc_connection = graphs["nested/dashboards.yaml"]["VpcConnection"]
    assert {"VpcConnectionRole", "QuickSightSecurityGroup"} <= vpc_connection


def test_every_resource_with_interfaces_is_known(templates):
    """What the tests below walk (resources naming security groups) is what this file lists."""
    found = {
        name: set(_attached(template))
        for name, template in templates.items()
        if _attached(template)
    }
    assert found == VPC_ATTACHED


def test_every_security_group_has_one_waiter(templates):
    for template in templates.values():
        groups = {name for name, _ in template.resources_of("AWS::EC2::SecurityGroup")}
        assert set(_waiters(template)) == groups, template.name


def test_interfaces_go_before_the_waiter_of_their_group(templates, graphs):
    """A resource with interfaces in a group of its own stack is deleted before that group's
    waiter; one using a network-stack group is in a stack that is deleted before the network
    stack, whose waiter guards that group."""
    root = graphs["template.yaml"]
    for name, template in templates.items():
        guards = _waiters(template)
        for resource, groups in _attached(template).items():
            for value in groups:
                home, source = source_of(templates, template, value)
                group = _group_named(home, source)
                assert group, f"{name}:{resource} uses a group no template creates: {value}"
                if home is template:
                    waiter = guards[group]
                    assert cfn_template.depends_on(graphs[name], resource, waiter), (
                        f"{name}: {resource} must be deleted before {waiter}"
                    )
                else:
                    assert home.name == "nested/network.yaml", (name, resource)
                    assert "NetworkStack" in root[_stack_of(templates, template)], name


def test_groups_of_a_nested_stack_are_used_only_inside_it(templates):
    """Its waiter can only wait for interfaces its own stack deletes first: such a group is not
    handed to another stack."""
    for name, template in templates.items():
        if name in ("template.yaml", "nested/network.yaml"):
            continue
        for output in template.body.get("Outputs", {}).values():
            assert not _group_named(template, output["Value"]), f"{name} hands out a group"


def test_waiters_go_before_their_group_and_the_subnets(templates, graphs):
    for name, template in templates.items():
        subnets = {s for s, _ in template.resources_of("AWS::EC2::Subnet")}
        for group, waiter in _waiters(template).items():
            assert group in graphs[name][waiter], f"{name}: {waiter} -> {group}"
            assert subnets <= graphs[name][waiter], f"{name}: {waiter} must go before the subnets"
    assert {"PrivateSubnet1", "PrivateSubnet2", "PrivateSubnet3"} <= graphs["nested/network.yaml"][
        "BrokerInterfacesReleased"
    ]


def test_every_subnet_in_use_is_the_network_stacks(templates):
    """The subnets outlive every stack that puts interfaces into them (the network stack is
    deleted last, and its waiters go before its subnets)."""
    for name, template in templates.items():
        for resource_name, resource in template.resources.items():
            for value in _values_under(resource.get("Properties", {}), SUBNET_KEYS):
                home, _ = source_of(templates, template, value)
                assert home.name == "nested/network.yaml", f"{name}:{resource_name}"


def test_the_waiter_function_outlives_every_waiter(templates, graphs):
    network = templates["nested/network.yaml"]
    for name, template in templates.items():
        for waiter, resource in template.resources_of(WAITER):
            home, token = source_of(templates, template, resource["Properties"]["ServiceToken"])
            assert home is network and token == {
                "Fn::GetAtt": ["InterfacesReleasedFunction", "Arn"]
            }
            if template is network:
                assert "InterfacesReleasedFunction" in graphs[name][waiter]


def test_the_connector_has_a_group_of_its_own_that_reaches_only_the_brokers(templates, graphs):
    """Shared with the VPC Lambdas, the group could never be awaited empty (their interfaces stay
    until the streaming stack goes); its own group also gets only what the workers use."""
    connect = templates["nested/connect.yaml"]
    group = {"Fn::GetAtt": ["ConnectorSecurityGroup", "GroupId"]}
    assert _attached(connect)["Connector"] == [group]
    brokers = {"Ref": "BrokerSecurityGroupId"}
    kafka = {"IpProtocol": "tcp", "FromPort": 9098, "ToPort": 9098}
    props = connect.resources["ConnectorSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in props
    egress = [{k: r[k] for k in (*kafka, "DestinationSecurityGroupId")}
              for r in props["SecurityGroupEgress"]]  # fmt: skip
    assert egress == [{**kafka, "DestinationSecurityGroupId": brokers}]
    rule = connect.resources["BrokerFromConnector"]["Properties"]
    assert {k: rule[k] for k in (*kafka, "GroupId", "SourceSecurityGroupId")} == {
        **kafka, "GroupId": brokers, "SourceSecurityGroupId": group,
    }  # fmt: skip
    # Created after the brokers admit it (the rule lives in this stack), deleted before the rule.
    assert "BrokerFromConnector" in graphs["nested/connect.yaml"]["Connector"]


def test_quicksight_is_checked_before_the_vpc_connection_is_created(graphs):
    assert "AccountCheck" in graphs["nested/dashboards.yaml"]["VpcConnection"]


def test_everything_with_interfaces_in_the_subnets_goes_before_the_network(graphs, templates):
    """MSK Connect workers, brokers, Redshift, QuickSight and the topic Lambda leave network
    interfaces in the network stack's subnets and security groups: each stack that creates them
    takes a network output, so the network stack (subnets, groups) is deleted last."""
    root = templates["template.yaml"]
    for name in VPC_ATTACHED:
        stack = next(
            logical
            for logical, resource in root.resources_of("AWS::CloudFormation::Stack")
            if resource["Properties"]["TemplateURL"] == name
        )
        subnets = root.resources[stack]["Properties"]["Parameters"]["PrivateSubnetIds"]
        assert subnets == {"Fn::GetAtt": ["NetworkStack", "Outputs.PrivateSubnetIds"]}, stack


def test_refresh_schedule_stops_before_the_sql_it_runs_is_dropped(graphs):
    assert "WarehouseSql" in graphs["nested/warehouse.yaml"]["RefreshSchedule"]


def test_connector_is_deleted_before_its_plugin_role_and_log_group(graphs):
    connector = graphs["nested/connect.yaml"]["Connector"]
    assert {
        "CustomPlugin",
        "WorkerConfiguration",
        "ConnectorRole",
        "ConnectorLogGroup",
    } <= connector


def _policy(resource, attribute, case):
    value = resource.get(attribute, "Delete")
    return case.evaluate(value)


def test_nothing_attached_to_the_vpc_is_ever_retained(templates):
    for name, resources in VPC_ATTACHED.items():
        template = templates[name]
        for case in template.condition_cases():
            for resource_name in resources:
                resource = template.resources[resource_name]
                for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
                    policy = _policy(resource, attribute, case)
                    assert policy in ("Delete", "Snapshot"), f"{name}:{resource_name} {attribute}"


STATEFUL = {
    ("nested/warehouse.yaml", "Namespace"): "Retain",
    ("nested/warehouse.yaml", "AdminSecret"): "Retain",
    ("nested/warehouse.yaml", "Cluster"): "Snapshot",
}


def test_retain_data_governs_the_stateful_resources(templates):
    stateful = dict(STATEFUL)
    for name, template in templates.items():
        for resource_name, _ in template.resources_of("AWS::Logs::LogGroup"):
            stateful[(name, resource_name)] = "Retain"
    for (name, resource_name), kept in stateful.items():
        template = templates[name]
        resource = template.resources[resource_name]
        for case in template.condition_cases():
            retain = case.condition("ShouldRetainData")
            for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
                assert attribute in resource, f"{name}:{resource_name} lacks {attribute}"
                expected = kept if retain else "Delete"
                assert _policy(resource, attribute, case) == expected, f"{name}:{resource_name}"


def test_retain_data_reaches_every_custom_resource_that_deletes_data(templates):
    for name in ("nested/warehouse.yaml", "nested/streaming.yaml", "nested/dashboards.yaml"):
        template = templates[name]
        for resource_name, resource in template.resources.items():
            if resource["Type"] in (
                "Custom::WarehouseSql",
                "Custom::KafkaTopic",
                "Custom::QuickSightDashboard",
            ):
                assert resource["Properties"]["RetainData"] == {"Ref": "RetainData"}, resource_name
