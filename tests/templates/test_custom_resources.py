"""Custom resources and their functions, as agreed with the functions (issue 5) in
/work/team/cr-interface.md and functions/README.md: properties, timeouts, log groups, runtime."""

import json
import re
from pathlib import Path

import pytest

from tests.templates.conftest import source_of

ROOT = Path(__file__).resolve().parents[2]

# Custom resource type -> (function folder, properties the template must always pass).
CONTRACT = {
    "Custom::WarehouseSql": (
        "sql_runner",
        {"ServiceToken", "CodeVersion", "WorkgroupName", "ClusterIdentifier", "Database",
         "SecretArn", "Placeholders", "RetainData"},
    ),
    "Custom::KafkaBootstrapBrokers": ("kafka_topic", {"ServiceToken", "CodeVersion", "ClusterArn"}),
    "Custom::KafkaTopic": (
        "kafka_topic",
        {"ServiceToken", "CodeVersion", "ClusterArn", "BootstrapServers", "Topic", "Partitions",
         "RetainData"},
    ),
    "Custom::DatagenPlugin": (
        "plugin_stager",
        {"ServiceToken", "CodeVersion", "Bucket", "Key", "SourceUrl", "Sha256", "UserS3Uri",
         "UserS3UriParameterName"},
    ),
    "Custom::SimulatorBackfill": (
        "simulator",
        {"ServiceToken", "CodeVersion", "Scenario", "Seed", "Speed", "BackfillDays"},
    ),
    "Custom::QuickSightDashboard": (
        "quicksight_publisher",
        {"ServiceToken", "CodeVersion", "AwsAccountId", "PrincipalArn", "ResourcePrefix",
         "VpcConnectionArn", "RedshiftHost", "RedshiftPort", "Database", "WorkgroupName",
         "ClusterIdentifier", "SecretArn", "RetainData"},
    ),
    "Custom::QuickSightAccountCheck": (
        "quicksight_publisher", {"ServiceToken", "CodeVersion", "AwsAccountId", "PrincipalArn"},
    ),
    "Custom::NetworkInterfacesReleased": (
        "interfaces_released", {"ServiceToken", "CodeVersion", "SecurityGroupId"},
    ),
}  # fmt: skip
# sql/ placeholders (sql/*.sql: {{name}}) the warehouse template must fill.
SQL_PLACEHOLDERS = {"iam_role_arn", "bootstrap_servers", "topic", "stream_schema", "auto_refresh"}


def _validate_against_botocore(service, operation, params):
    """The universal target's Input is the API's request: check it against botocore's model."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model(service)
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def _custom_resources(templates):
    for template in templates.values():
        for name, resource in template.resources.items():
            if resource["Type"].startswith("Custom::"):
                yield template, name, resource


def _function_of(templates, template, resource):
    """(name, resource, template) of the function behind a custom resource's ServiceToken; the
    network stack's interfaces_released function serves other stacks through a parameter."""
    home, token = source_of(templates, template, resource["Properties"]["ServiceToken"])
    function_name = token["Fn::GetAtt"][0]
    return function_name, home.resources[function_name], home


def test_every_custom_resource_type_is_in_the_contract(templates):
    types = {resource["Type"] for _, _, resource in _custom_resources(templates)}
    assert types == set(CONTRACT)


@pytest.mark.parametrize("custom_type", sorted(CONTRACT))
def test_custom_resource_passes_the_contract_properties(templates, custom_type):
    folder, required = CONTRACT[custom_type]
    found = [(t, n, r) for t, n, r in _custom_resources(templates) if r["Type"] == custom_type]
    assert found, custom_type
    for template, name, resource in found:
        assert set(resource["Properties"]) - {"ServiceTimeout"} == required, (
            f"{template.name}:{name}"
        )
        _, function, _ = _function_of(templates, template, resource)
        assert function["Properties"]["CodeUri"] == f"../functions/{folder}"
        assert (ROOT / "functions" / folder / "app.py").is_file(), f"functions/{folder} is missing"


def test_code_version_follows_the_published_function_version(templates):
    for template, name, resource in _custom_resources(templates):
        function_name, function, home = _function_of(templates, template, resource)
        assert function["Properties"].get("AutoPublishAlias"), function_name
        version = source_of(templates, template, resource["Properties"]["CodeVersion"])
        assert version == (home, {"Ref": f"{function_name}.Version"}), name


def test_every_function_has_timeout_log_group_with_retention_and_own_role(templates):
    functions = [
        (template, name, resource)
        for template in templates.values()
        for name, resource in template.resources_of("AWS::Serverless::Function")
    ]
    assert len(functions) == 8
    for template, name, resource in functions:
        props = resource["Properties"]
        where = f"{template.name}:{name}"
        assert 30 <= props["Timeout"] <= 900, where
        log_group = template.resources[props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Type"] == "AWS::Logs::LogGroup", where
        assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, where
        assert "LogGroupName" not in log_group["Properties"], where
        role = template.resources[props["Role"]["Fn::GetAtt"][0]]
        assert role["Type"] == "AWS::IAM::Role", where
        assert props["Runtime"] == "python3.13" and props["Architectures"] == ["arm64"], where
        assert props["Handler"] == "app.handler", where
        assert resource["Metadata"]["BuildMethod"] == "makefile", where


def test_custom_resource_timeout_covers_its_function(templates):
    for template, name, resource in _custom_resources(templates):
        _, function, _ = _function_of(templates, template, resource)
        service_timeout = resource["Properties"]["ServiceTimeout"]
        assert function["Properties"]["Timeout"] < service_timeout <= 3600, name
    sql = templates["nested/warehouse.yaml"].resources["WarehouseSql"]["Properties"]
    assert sql["ServiceTimeout"] == 3600  # sql_runner polls past one Lambda run


def test_only_the_functions_that_speak_kafka_are_attached_to_the_vpc(templates):
    attached = {
        name
        for template in templates.values()
        for name, resource in template.resources_of("AWS::Serverless::Function")
        if "VpcConfig" in resource["Properties"]
    }
    assert attached == {"KafkaTopicFunction", "SimulatorFunction"}


def test_warehouse_sql_fills_every_placeholder_the_sql_uses():
    used = set()
    for path in sorted((ROOT / "sql").glob("*.sql")):
        used |= set(re.findall(r"\{\{(\w+)\}\}", path.read_text(encoding="utf-8")))
    assert used == SQL_PLACEHOLDERS


def test_warehouse_sql_placeholders(templates):
    warehouse = templates["nested/warehouse.yaml"]
    props = warehouse.resources["WarehouseSql"]["Properties"]
    assert set(props["Placeholders"]) == SQL_PLACEHOLDERS
    for case in warehouse.condition_cases():
        placeholders = case.evaluate(props["Placeholders"])
        expected = "YES" if case.condition("HasAutoRefresh") else "NO"
        assert placeholders["auto_refresh"] == expected
        identity = case.evaluate({k: props[k] for k in ("WorkgroupName", "ClusterIdentifier")})
        assert sum(bool(v) for v in identity.values()) == 1, "exactly one warehouse identity"


def _refresh_cascade_sql() -> str:
    """What sql_runner returns as RefreshCascadeSql for the repository's sql/."""
    from flu_monitor.warehouse import sqlscript

    placeholders = {
        "iam_role_arn": "arn:aws:iam::111122223333:role/r",
        "bootstrap_servers": "b-1.flu.c2.kafka.us-east-1.amazonaws.com:9098",
        "topic": "flu_cases",
        "stream_schema": "flu_stream",
        "auto_refresh": "NO",
    }
    return sqlscript.refresh_sql(sqlscript.load_script(None, placeholders))


def test_scheduled_refresh_runs_the_one_cascade_statement(templates):
    """Nested materialized views cannot AUTO REFRESH, so the schedule is always there; it sends
    sql_runner's single REFRESH ... CASCADE (one statement, one transaction) to ExecuteStatement."""
    warehouse = templates["nested/warehouse.yaml"]
    schedule = warehouse.resources["RefreshSchedule"]
    assert "Condition" not in schedule
    assert "Condition" not in warehouse.resources["RefreshSchedulerRole"]
    cascade = _refresh_cascade_sql()
    assert cascade == "REFRESH MATERIALIZED VIEW flu_refresh_status CASCADE"
    for case in warehouse.condition_cases():
        target = case.evaluate(schedule["Properties"]["Target"])
        assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:redshiftdata:executeStatement"
        body = json.loads(target["Input"].replace("WarehouseSql.RefreshCascadeSql", cascade))
        _validate_against_botocore("redshift-data", "ExecuteStatement", body)
        identity = "WorkgroupName" if case.condition("IsServerless") else "ClusterIdentifier"
        assert set(body) == {identity, "Database", "SecretArn", "StatementName", "WithEvent", "Sql"}
        assert body["Sql"] == cascade
        # its FINISHED event, under a name unique to the stack, runs the alert notifier
        assert body["WithEvent"] is True
        assert body["StatementName"] == case.evaluate(
            warehouse.body["Outputs"]["RefreshStatementName"]["Value"]
        )
        expression = case.evaluate(schedule["Properties"]["ScheduleExpression"])
        minutes = case.parameter_value("RefreshIntervalMinutes")
        assert expression == ("rate(1 minute)" if int(minutes) == 0 else f"rate({minutes} minutes)")
