"""Custom::QuickSightDashboard: every QuickSight call goes through a botocore Stubber (checked
against the service model and the expected parameters, in order), and the answer is read from the
real local ResponseURL server."""

import json

import pytest

from flu_monitor import dashboard_spec
from flu_monitor.quicksight_definition import data_set_tables, template_definition
from tests.functions.conftest import ACCOUNT, REGION, load_function

PRINCIPAL = f"arn:aws:quicksight:{REGION}:{ACCOUNT}:user/default/analyst"
OTHER_PRINCIPAL = f"arn:aws:quicksight:{REGION}:{ACCOUNT}:group/default/epidemiologists"
PREFIX = "flu-monitor"
ARN = f"arn:aws:quicksight:{REGION}:{ACCOUNT}"
SOURCE_ARN = f"{ARN}:datasource/{PREFIX}-redshift"
TEMPLATE_ARN = f"{ARN}:template/{PREFIX}-template"
DASHBOARD_ARN = f"{ARN}:dashboard/{PREFIX}-dashboard"
VPC_CONNECTION = f"{ARN}:vpcConnection/flu-monitor-vpc"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:redshift!flu-admin-AbCdEf"
ADMIN = {"username": "fluadmin", "password": "not-a-real-password-0123456789ab"}

SPEC = dashboard_spec.load()
USED = SPEC.used_datasets()
NOT_FOUND = "ResourceNotFoundException"


def props(**overrides):
    return {
        "AwsAccountId": ACCOUNT,
        "PrincipalArn": PRINCIPAL,
        "ResourcePrefix": PREFIX,
        "VpcConnectionArn": VPC_CONNECTION,
        "RedshiftHost": "wg.123.us-east-1.redshift-serverless.amazonaws.com",
        "RedshiftPort": "5439",
        "Database": "dev",
        "WorkgroupName": "flu-wg",
        "ClusterIdentifier": "",
        "SecretArn": SECRET,
        "RetainData": "false",
        "CodeVersion": "1",
        **overrides,
    }


@pytest.fixture
def fn(stubbed, monkeypatch):
    module = load_function("quicksight_publisher")
    module.clients.clear()
    identity, module.identity = stubbed("quicksight", REGION)
    assets, module.qs = stubbed("quicksight", REGION)
    secrets, module.secrets = stubbed("secretsmanager", REGION)
    module.clients.put("quicksight", identity, REGION)  # identity region, from PrincipalArn
    module.clients.put("quicksight", assets)  # the stack's region
    module.clients.put("secretsmanager", secrets)
    monkeypatch.setattr(module, "POLL_S", 0)
    monkeypatch.setattr(module, "SAFETY_MARGIN_S", 1)  # the test context has 14 s left
    return module


def expect_account_ok(fn, principal=PRINCIPAL):
    fn.identity.add_response(
        "describe_account_subscription",
        {"AccountInfo": {"Edition": "ENTERPRISE", "AccountSubscriptionStatus": "ACCOUNT_CREATED"}},
        {"AwsAccountId": ACCOUNT},
    )
    kind, namespace, name = principal.split(":")[-1].split("/", 2)
    key, operation = (
        ("UserName", "describe_user") if kind == "user" else ("GroupName", "describe_group")
    )
    fn.identity.add_response(
        operation, {"Status": 200}, {key: name, "AwsAccountId": ACCOUNT, "Namespace": namespace}
    )


def expect_secret_read(fn, secret=ADMIN):
    response = {"ARN": SECRET, "SecretString": json.dumps(secret)}
    fn.secrets.add_response("get_secret_value", response, {"SecretId": SECRET})


def _owner(fn, kind, principal=PRINCIPAL):
    return [{"Principal": principal, "Actions": fn.OWNER_ACTIONS[kind]}]


def _permissions(fn, kind, revoke_from=None, principal=PRINCIPAL):
    grant = {"GrantPermissions": _owner(fn, kind, principal)}
    if revoke_from:
        grant["RevokePermissions"] = _owner(fn, kind, revoke_from)
    return grant


def expect_publish(
    fn, exists, version, revoke_from=None, cluster=False, principal=PRINCIPAL, template_errors=None
):
    """Every call of a Create (exists=False) or an Update of existing assets, in order; with
    template_errors the template version fails and nothing after it is called."""
    qs = fn.qs

    def owner(kind):
        return _owner(fn, kind, principal)

    def permissions(kind):
        return _permissions(fn, kind, revoke_from, principal)

    ids = {"AwsAccountId": ACCOUNT, "DataSourceId": f"{PREFIX}-redshift"}
    redshift = {"Host": props()["RedshiftHost"], "Port": 5439, "Database": "dev"}
    if cluster:
        redshift["ClusterId"] = "flu-cluster"
    source = {
        **ids,
        "Name": f"{PREFIX} Redshift",
        "DataSourceParameters": {"RedshiftParameters": redshift},
        # QuickSight keeps the pair itself: nothing reads the secret when a dashboard is viewed.
        "Credentials": {"CredentialPair": {"Username": "fluadmin", "Password": ADMIN["password"]}},
        "VpcConnectionProperties": {"VpcConnectionArn": VPC_CONNECTION},
        "SslProperties": {"DisableSsl": False},
    }
    expect_secret_read(fn)
    if exists:
        qs.add_response("describe_data_source", {"DataSource": {"Arn": SOURCE_ARN}}, ids)
        qs.add_response("update_data_source", {"Arn": SOURCE_ARN}, source)
        qs.add_response("update_data_source_permissions", {}, {**ids, **permissions("data_source")})
        done = "UPDATE_SUCCESSFUL"
    else:
        qs.add_client_error("describe_data_source", NOT_FOUND, expected_params=ids)
        qs.add_response(
            "create_data_source",
            {"Arn": SOURCE_ARN},
            {**source, "Type": "REDSHIFT", "Permissions": owner("data_source")},
        )
        done = "CREATION_SUCCESSFUL"
    in_progress = done.replace("SUCCESSFUL", "IN_PROGRESS")
    qs.add_response(
        "describe_data_source", {"DataSource": {"Arn": SOURCE_ARN, "Status": in_progress}}, ids
    )
    qs.add_response(
        "describe_data_source", {"DataSource": {"Arn": SOURCE_ARN, "Status": done}}, ids
    )

    for name in USED:
        data_set_id = f"{PREFIX}-{name.replace('_', '-')}"
        ids = {"AwsAccountId": ACCOUNT, "DataSetId": data_set_id}
        # The data set reads the data source just created, from the default schema.
        request = {
            **ids,
            "Name": f"{PREFIX} {name}",
            "ImportMode": "DIRECT_QUERY",
            **data_set_tables(name, SPEC, SOURCE_ARN, "public"),
        }
        arn = {"Arn": f"{ARN}:dataset/{data_set_id}"}
        if exists:
            qs.add_response("describe_data_set", {"DataSet": {"Arn": arn["Arn"]}}, ids)
            qs.add_response("update_data_set", arn, request)
            qs.add_response("update_data_set_permissions", {}, {**ids, **permissions("data_set")})
        else:
            qs.add_client_error("describe_data_set", NOT_FOUND, expected_params=ids)
            qs.add_response("create_data_set", arn, {**request, "Permissions": owner("data_set")})

    ids = {"AwsAccountId": ACCOUNT, "TemplateId": f"{PREFIX}-template"}
    note = f"flu-monitor CodeVersion {version}"
    template = {
        **ids,
        "Name": f"{PREFIX} flu monitor",
        "Definition": template_definition(SPEC),
        "VersionDescription": note,
    }
    created = {"Arn": TEMPLATE_ARN, "VersionArn": f"{TEMPLATE_ARN}/version/{version}"}
    if exists:
        qs.add_response("describe_template", {"Template": {"Arn": TEMPLATE_ARN}}, ids)
        qs.add_response("update_template", created, template)
        qs.add_response("update_template_permissions", {}, {**ids, **permissions("template")})
    else:
        qs.add_client_error("describe_template", NOT_FOUND, expected_params=ids)
        qs.add_response("create_template", created, {**template, "Permissions": owner("template")})
    version_state = {"Status": "CREATION_SUCCESSFUL", "VersionNumber": version}
    if template_errors:
        version_state = {"Status": "CREATION_FAILED", "Errors": template_errors}
    qs.add_response(
        "describe_template",
        {"Template": {"Version": version_state}},
        {**ids, "VersionNumber": version},
    )
    if template_errors:
        return

    ids = {"AwsAccountId": ACCOUNT, "DashboardId": f"{PREFIX}-dashboard"}
    references = [
        {"DataSetPlaceholder": n, "DataSetArn": f"{ARN}:dataset/{PREFIX}-{n.replace('_', '-')}"}
        for n in USED
    ]
    dashboard = {
        **ids,
        "Name": SPEC.title,
        "SourceEntity": {"SourceTemplate": {"DataSetReferences": references, "Arn": TEMPLATE_ARN}},
        "VersionDescription": note,
        "DashboardPublishOptions": {
            "AdHocFilteringOption": {"AvailabilityStatus": "DISABLED"},
            "ExportToCSVOption": {"AvailabilityStatus": "ENABLED"},
            "SheetControlsOption": {"VisibilityState": "EXPANDED"},
        },
    }
    created = {"Arn": DASHBOARD_ARN, "VersionArn": f"{DASHBOARD_ARN}/version/{version}"}
    if exists:
        qs.add_response("describe_dashboard", {"Dashboard": {"Arn": DASHBOARD_ARN}}, ids)
        qs.add_response("update_dashboard", created, dashboard)
    else:
        qs.add_client_error("describe_dashboard", NOT_FOUND, expected_params=ids)
        qs.add_response(
            "create_dashboard", created, {**dashboard, "Permissions": owner("dashboard")}
        )
    qs.add_response(
        "describe_dashboard",
        {"Dashboard": {"Arn": DASHBOARD_ARN, "Version": {"Status": "CREATION_SUCCESSFUL"}}},
        {**ids, "VersionNumber": version},
    )
    if exists:
        qs.add_response("update_dashboard_published_version", {}, {**ids, "VersionNumber": version})
        qs.add_response("update_dashboard_permissions", {}, {**ids, **permissions("dashboard")})


EXPECTED_DATA = {
    "DashboardId": f"{PREFIX}-dashboard",
    "DashboardArn": DASHBOARD_ARN,
    "DashboardUrl": f"https://{REGION}.quicksight.aws.amazon.com/sn/dashboards/{PREFIX}-dashboard",
}


def test_create_publishes_everything_and_answers_the_dashboard(fn, cfn):
    expect_account_ok(fn)
    expect_publish(fn, exists=False, version=1)
    body = cfn.invoke(fn, cfn.request("Create", props()))
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"{PREFIX}-dashboard"
    assert body["Data"] == EXPECTED_DATA


def test_update_with_same_properties_updates_in_place_and_publishes(fn, cfn):
    expect_account_ok(fn)
    expect_publish(fn, exists=True, version=2)
    event = cfn.request(
        "Update", props(CodeVersion="2"), props(), physical_id=f"{PREFIX}-dashboard"
    )
    body = cfn.invoke(fn, event)
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"{PREFIX}-dashboard"
    assert body["Data"] == EXPECTED_DATA


def test_update_to_a_new_owner_and_cluster_revokes_the_old_owner(fn, cfn):
    expect_account_ok(fn, principal=OTHER_PRINCIPAL)
    expect_publish(
        fn, exists=True, version=3, revoke_from=PRINCIPAL, cluster=True, principal=OTHER_PRINCIPAL
    )
    new = props(
        PrincipalArn=OTHER_PRINCIPAL,
        WorkgroupName="",
        ClusterIdentifier="flu-cluster",
        CodeVersion="3",
    )
    body = cfn.invoke(fn, cfn.request("Update", new, props(), physical_id=f"{PREFIX}-dashboard"))
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"{PREFIX}-dashboard"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            ("ResourceNotFoundException", "Account not found"),
            f"QuickSight is not set up in account {ACCOUNT}: subscribe to QuickSight Enterprise "
            "edition first, or deploy with dashboards turned off",
        ),
        (
            (
                "AccessDeniedException",
                "Operation is being called from endpoint us-east-1, but your identity region is "
                "eu-west-1. Please use the eu-west-1 endpoint.",
            ),
            "PrincipalArn is in us-east-1, but this account's QuickSight identity region is "
            "eu-west-1: use the principal's ARN from eu-west-1",
        ),
    ],
)
def test_account_problems_fail_fast_in_plain_words(fn, cfn, error, reason):
    code, message = error
    fn.identity.add_client_error(
        "describe_account_subscription", code, message, expected_params={"AwsAccountId": ACCOUNT}
    )
    body = cfn.invoke(fn, cfn.request("Create", props()))
    assert body["Status"] == "FAILED"
    assert body["Reason"] == reason


def test_standard_edition_is_refused(fn, cfn):
    fn.identity.add_response(
        "describe_account_subscription",
        {"AccountInfo": {"Edition": "STANDARD", "AccountSubscriptionStatus": "ACCOUNT_CREATED"}},
        {"AwsAccountId": ACCOUNT},
    )
    body = cfn.invoke(fn, cfn.request("Create", props()))
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        f"QuickSight account {ACCOUNT} is STANDARD: dashboards over Redshift in a VPC need "
        "Enterprise edition"
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            (NOT_FOUND, "User not found"),
            "PrincipalArn names no QuickSight user: user analyst not found in namespace default",
        ),
        (
            # The subscription was readable from this region; the user call is not.
            (
                "AccessDeniedException",
                "Operation is being called from endpoint us-east-1, but your identity region is "
                "us-west-2. Please use the us-west-2 endpoint.",
            ),
            "PrincipalArn is in us-east-1, but this account's QuickSight identity region is "
            "us-west-2: use the principal's ARN from us-west-2",
        ),
    ],
)
def test_principal_problems_are_named(fn, cfn, error, reason):
    fn.identity.add_response(
        "describe_account_subscription",
        {"AccountInfo": {"Edition": "ENTERPRISE_AND_Q", "AccountSubscriptionStatus": "OK"}},
        {"AwsAccountId": ACCOUNT},
    )
    code, message = error
    fn.identity.add_client_error(
        "describe_user",
        code,
        message,
        expected_params={"UserName": "analyst", "AwsAccountId": ACCOUNT, "Namespace": "default"},
    )
    body = cfn.invoke(fn, cfn.request("Create", props()))
    assert body["Status"] == "FAILED"
    assert body["Reason"] == reason


def test_bad_principal_arn_fails_before_any_call(fn, cfn):
    body = cfn.invoke(fn, cfn.request("Create", props(PrincipalArn="arn:aws:iam::1:user/x")))
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith("property PrincipalArn must be a QuickSight user or group ARN")


def test_template_errors_reach_the_stack_event(fn, cfn):
    expect_account_ok(fn)
    errors = [{"Type": "COLUMN_TYPE_MISMATCH", "Message": "Column day is STRING in data set kpis"}]
    expect_publish(fn, exists=True, version=4, template_errors=errors)
    event = cfn.request(
        "Update", props(CodeVersion="4"), props(), physical_id=f"{PREFIX}-dashboard"
    )
    body = cfn.invoke(fn, event)
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        f"template {PREFIX}-template version 4 CREATION_FAILED: "
        "COLUMN_TYPE_MISMATCH Column day is STRING in data set kpis"
    )


def test_an_asset_stuck_in_progress_fails_before_the_lambda_times_out(fn, cfn, monkeypatch):
    monkeypatch.setattr(fn, "SAFETY_MARGIN_S", 60)  # more than the 14 s the context has left
    expect_account_ok(fn)
    ids = {"AwsAccountId": ACCOUNT, "DataSourceId": f"{PREFIX}-redshift"}
    expect_secret_read(fn)
    fn.qs.add_client_error("describe_data_source", NOT_FOUND, expected_params=ids)
    fn.qs.add_response("create_data_source", {"Arn": SOURCE_ARN}, None)
    fn.qs.add_response(
        "describe_data_source",
        {"DataSource": {"Status": "CREATION_IN_PROGRESS", "Arn": SOURCE_ARN}},
        ids,
    )
    body = cfn.invoke(fn, cfn.request("Create", props()))
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        f"data source {PREFIX}-redshift still CREATION_IN_PROGRESS "
        "when the function ran out of time"
    )


def _expect_deletes(fn, error=None):
    account = {"AwsAccountId": ACCOUNT}
    steps = [
        ("delete_dashboard", {"DashboardId": f"{PREFIX}-dashboard"}),
        ("delete_template", {"TemplateId": f"{PREFIX}-template"}),
    ]
    steps += [("delete_data_set", {"DataSetId": f"{PREFIX}-{n.replace('_', '-')}"}) for n in USED]
    steps.append(("delete_data_source", {"DataSourceId": f"{PREFIX}-redshift"}))
    for operation, ids in steps:
        if error:
            fn.qs.add_client_error(operation, error, expected_params={**account, **ids})
        else:
            fn.qs.add_response(operation, {}, {**account, **ids})


def _subscribed(fn):
    fn.identity.add_response(
        "describe_account_subscription",
        {"AccountInfo": {"Edition": "ENTERPRISE"}},
        {"AwsAccountId": ACCOUNT},
    )


def test_delete_removes_every_asset(fn, cfn):
    _subscribed(fn)
    _expect_deletes(fn)
    body = cfn.invoke(fn, cfn.request("Delete", props(), physical_id=f"{PREFIX}-dashboard"))
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"{PREFIX}-dashboard"


def test_delete_when_already_gone_succeeds(fn, cfn):
    _subscribed(fn)
    _expect_deletes(fn, error=NOT_FOUND)
    body = cfn.invoke(fn, cfn.request("Delete", props(), physical_id=f"{PREFIX}-dashboard"))
    assert body["Status"] == "SUCCESS", body["Reason"]


def test_delete_of_never_created_resources_succeeds_without_quicksight(fn, cfn):
    # Create failed because QuickSight was not subscribed; the rollback Delete must not block.
    fn.identity.add_client_error(
        "describe_account_subscription", NOT_FOUND, expected_params={"AwsAccountId": ACCOUNT}
    )
    event = cfn.request("Delete", props(), physical_id="flu-monitor_Resource_ZZZZ9999")
    body = cfn.invoke(fn, event)
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == "flu-monitor_Resource_ZZZZ9999"
    # ...and with properties that never validated, nothing is called at all.
    event = cfn.request("Delete", props(PrincipalArn="nope"), physical_id="flu_Resource_X")
    assert cfn.invoke(fn, event)["Status"] == "SUCCESS"


def test_delete_keeps_everything_with_retain_data(fn, cfn):
    event = cfn.request("Delete", props(RetainData="true"), physical_id=f"{PREFIX}-dashboard")
    assert cfn.invoke(fn, event)["Status"] == "SUCCESS"


def test_a_real_delete_failure_is_reported(fn, cfn):
    _subscribed(fn)
    fn.qs.add_client_error(
        "delete_dashboard",
        "AccessDeniedException",
        "User is not authorized to perform quicksight:DeleteDashboard",
        expected_params={"AwsAccountId": ACCOUNT, "DashboardId": f"{PREFIX}-dashboard"},
    )
    body = cfn.invoke(fn, cfn.request("Delete", props(), physical_id=f"{PREFIX}-dashboard"))
    assert body["Status"] == "FAILED"
    assert body["Reason"].endswith("User is not authorized to perform quicksight:DeleteDashboard")


def test_a_secret_without_a_password_fails_in_plain_words(fn, cfn):
    expect_account_ok(fn)
    expect_secret_read(fn, {"username": "fluadmin"})
    body = cfn.invoke(fn, cfn.request("Create", props()))
    assert body["Status"] == "FAILED"
    assert body["Reason"] == f"secret {SECRET} must hold JSON with username and password"
    assert ADMIN["password"] not in json.dumps(body)


# --- Custom::QuickSightAccountCheck: the same checks, before the VPC connection exists ---------
CHECK = "Custom::QuickSightAccountCheck"


def check_props(**overrides):
    return {"AwsAccountId": ACCOUNT, "PrincipalArn": PRINCIPAL, "CodeVersion": "1", **overrides}


def test_account_check_passes_without_touching_any_asset(fn, cfn):
    expect_account_ok(fn)
    body = cfn.invoke(fn, cfn.request("Create", check_props(), resource_type=CHECK))
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"quicksight-account:{ACCOUNT}"


def test_account_check_refuses_standard_edition_before_the_vpc_connection(fn, cfn):
    fn.identity.add_response(
        "describe_account_subscription",
        {"AccountInfo": {"Edition": "STANDARD", "AccountSubscriptionStatus": "ACCOUNT_CREATED"}},
        {"AwsAccountId": ACCOUNT},
    )
    body = cfn.invoke(fn, cfn.request("Create", check_props(), resource_type=CHECK))
    assert body["Status"] == "FAILED"
    assert body["Reason"].endswith("dashboards over Redshift in a VPC need Enterprise edition")


def test_account_check_delete_makes_no_call(fn, cfn):
    event = cfn.request(
        "Delete", check_props(), physical_id=f"quicksight-account:{ACCOUNT}", resource_type=CHECK
    )
    assert cfn.invoke(fn, event)["Status"] == "SUCCESS"  # the stubs would refuse any call
