"""Deletion order and data retention (reasoning in docs/deploy.md, "Clean deletion").

CloudFormation deletes a resource only after every resource that depends on it. So everything
that puts network interfaces into the subnets (brokers, connector workers, the topic Lambda,
Redshift, QuickSight) must depend on the network stack, custom resources must depend on the
function and the service they act on (their Delete runs while both still exist), and nothing
attached to the VPC may be retained (it would pin the subnets and fail the network's deletion).
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


def test_quicksight_security_group_waits_for_the_released_interfaces(graphs, templates):
    """CloudFormation reports the VPC connection deleted before QuickSight has released its
    network interfaces; deleting the group then fails with DependencyViolation. The waiter is
    deleted after the connection and before the group (and its function outlives it)."""
    dashboards = graphs["nested/dashboards.yaml"]
    assert "QuickSightInterfacesReleased" in dashboards["VpcConnection"]
    assert "QuickSightSecurityGroup" in dashboards["QuickSightInterfacesReleased"]
    # Its function is the network stack's, which is deleted after the dashboards stack.
    waiter = templates["nested/dashboards.yaml"].resources["QuickSightInterfacesReleased"]
    home, token = source_of(
        templates, templates["nested/dashboards.yaml"], waiter["Properties"]["ServiceToken"]
    )
    assert (home.name, token) == (
        "nested/network.yaml",
        {"Fn::GetAtt": ["InterfacesReleasedFunction", "Arn"]},
    )


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
