"""nested/alerts.yaml and its wiring: on by default, an optional e-mail subscription, the topic ARN
as a root output; the notifier runs on the refresh's own FINISHED event (AlertDelivery=each) or
once a day in digest mode (daily-digest), may publish to the one topic and run statements on the
one workgroup or cluster, and fails into a dead-letter queue."""

import pytest
from cfn_template import Template

EACH_ONLY = {"AfterRefreshRule", "AfterRefreshPermission"}
DIGEST_ONLY = {"DigestSchedulerRole", "DigestSchedule"}


@pytest.fixture(scope="module")
def alerts(templates):
    return templates["nested/alerts.yaml"]


def test_alerts_are_on_by_default_and_the_topic_is_a_root_output(root):
    assert root.parameters["EnableAlerts"]["Default"] == "true"
    assert root.body["Conditions"]["HasAlerts"] == {"Fn::Equals": [{"Ref": "EnableAlerts"}, "true"]}
    stack = root.resources["AlertsStack"]
    assert stack["Condition"] == "HasAlerts"
    output = root.body["Outputs"]["AlertTopicArn"]["Value"]["Fn::If"]
    assert output[:2] == ["HasAlerts", {"Fn::GetAtt": ["AlertsStack", "Outputs.AlertTopicArn"]}]


def test_the_email_subscription_exists_only_with_an_address(alerts):
    subscription = alerts.resources["AlertEmailSubscription"]
    assert subscription["Condition"] == "HasAlertEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlertTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlertEmail"},
    }
    assert alerts.parameters["AlertEmail"]["Default"] == ""


def test_the_warehouse_passes_what_the_notifier_is_scoped_to(root, templates):
    passed = root.resources["AlertsStack"]["Properties"]["Parameters"]
    for name in ("WarehouseArn", "WarehouseName", "AdminSecretArn", "RefreshStatementName"):
        assert passed[name] == {"Fn::GetAtt": ["WarehouseStack", f"Outputs.{name}"]}
    warehouse = templates["nested/warehouse.yaml"]
    arn = warehouse.body["Outputs"]["WarehouseArn"]["Value"]
    # the same resource the SQL runner's ExecuteStatement is scoped to
    sql_runner = warehouse.resources["SqlRunnerRole"]["Properties"]["Policies"][0]
    execute = next(
        s for s in sql_runner["PolicyDocument"]["Statement"]
        if "redshift-data:ExecuteStatement" in s["Action"]
    )  # fmt: skip
    assert arn == execute["Resource"]


def test_notifier_role_has_exactly_what_it_uses(alerts):
    (policy,) = alerts.resources["NotifierRole"]["Properties"]["Policies"]
    statements = {
        tuple(sorted([s["Action"]] if isinstance(s["Action"], str) else s["Action"])): s["Resource"]
        for s in policy["PolicyDocument"]["Statement"]
    }
    assert statements == {
        ("logs:CreateLogStream", "logs:PutLogEvents"): {"Fn::GetAtt": ["NotifierLogGroup", "Arn"]},
        ("redshift-data:BatchExecuteStatement", "redshift-data:ExecuteStatement"): {
            "Ref": "WarehouseArn"
        },
        ("redshift-data:DescribeStatement", "redshift-data:GetStatementResult"): "*",
        ("secretsmanager:GetSecretValue",): {"Ref": "AdminSecretArn"},
        ("sns:Publish",): {"Ref": "AlertTopic"},
        ("sqs:SendMessage",): {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
    }


def _delivery(alerts, value) -> Template:
    return Template(alerts.path, alerts.body, {"AlertDelivery": value})


def test_the_notifier_runs_after_each_refresh_by_default_and_fails_into_a_queue(alerts):
    assert alerts.parameters["AlertDelivery"]["Default"] == "each"
    each = _delivery(alerts, "each")
    assert {name for name in EACH_ONLY | DIGEST_ONLY if each.exists(name)} == EACH_ONLY
    rule = alerts.resources["AfterRefreshRule"]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.redshift-data"],
        "detail-type": ["Redshift Data Statement Status Change"],
        "detail": {"statementName": [{"Ref": "RefreshStatementName"}], "state": ["FINISHED"]},
    }
    assert rule["Targets"] == [{"Id": "alert-notifier", "Arn": {"Ref": "NotifierFunction.Alias"}}]
    permission = alerts.resources["AfterRefreshPermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "NotifierFunction.Alias"}
    assert permission["SourceArn"] == {"Fn::GetAtt": ["AfterRefreshRule", "Arn"]}
    function = alerts.resources["NotifierFunction"]["Properties"]
    assert "Events" not in function  # only the resources above, under their conditions
    on_failure = function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    assert function["CodeUri"] == "../functions/alert_notifier"
    assert function["Environment"]["Variables"]["TOPIC_ARN"] == {"Ref": "AlertTopic"}
    assert each.evaluate(function["Environment"]["Variables"]["DELIVERY"]) == "each"


def test_the_daily_digest_runs_once_a_day_and_never_after_a_refresh(alerts):
    digest = _delivery(alerts, "daily-digest")
    assert {name for name in EACH_ONLY | DIGEST_ONLY if digest.exists(name)} == DIGEST_ONLY
    schedule = alerts.resources["DigestSchedule"]["Properties"]
    assert schedule["ScheduleExpression"] == "cron(0 8 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "America/New_York"
    assert schedule["Target"] == {
        "Arn": {"Ref": "NotifierFunction.Alias"},
        "RoleArn": {"Fn::GetAtt": ["DigestSchedulerRole", "Arn"]},
    }
    variables = alerts.resources["NotifierFunction"]["Properties"]["Environment"]["Variables"]
    assert digest.evaluate(variables["DELIVERY"]) == "daily-digest"
    # the scheduler may invoke this function and nothing else
    role = alerts.resources["DigestSchedulerRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": {"Ref": "NotifierFunction.Alias"},
        }
    ]


def test_the_root_offers_the_delivery_with_the_other_alert_parameters(root, alerts):
    assert root.parameters["AlertDelivery"]["AllowedValues"] == ["each", "daily-digest"]
    assert root.parameters["AlertDelivery"]["Default"] == "each"
    assert alerts.parameters["AlertDelivery"]["AllowedValues"] == ["each", "daily-digest"]
    passed = root.resources["AlertsStack"]["Properties"]["Parameters"]["AlertDelivery"]
    assert passed == {"Ref": "AlertDelivery"}
    interface = root.body["Metadata"]["AWS::CloudFormation::Interface"]
    (group,) = [g for g in interface["ParameterGroups"] if "EnableAlerts" in g["Parameters"]]
    assert group["Parameters"] == ["EnableAlerts", "AlertEmail", "AlertDelivery"]
    assert "AlertDelivery" in interface["ParameterLabels"]


def test_alerts_link_the_quicksight_dashboard_when_there_is_one(root, alerts):
    passed = root.resources["AlertsStack"]["Properties"]["Parameters"]["DashboardUrl"]
    assert passed == {
        "Fn::If": ["HasDashboards", {"Fn::GetAtt": ["DashboardsStack", "Outputs.DashboardUrl"]}, ""]
    }
    env = alerts.resources["NotifierFunction"]["Properties"]["Environment"]["Variables"]
    assert env["DASHBOARD_URL"] == {"Ref": "DashboardUrl"}
