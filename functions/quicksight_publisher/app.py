"""Custom::QuickSightDashboard — publish the dashboard spec (quicksight/) to Amazon QuickSight.

Custom::QuickSightAccountCheck (Create/Update): only step 1 below, so that the stack stops before it
creates the VPC connection when QuickSight is not ready; Delete does nothing.

Custom::QuickSightDashboard Create/Update (same code: each asset is created if missing, else
updated):
  1. check the account: DescribeAccountSubscription in the QuickSight identity region (the region
     of PrincipalArn) must show an Enterprise subscription, and the principal must exist;
  2. data source: Redshift through the VPC connection, with the user name and password read from
     the stack's Secrets Manager secret and handed to QuickSight as a credential pair (a data
     source naming the secret would be read at view time by QuickSight's own service role,
     which a stack cannot grant);
  3. one DIRECT_QUERY data set per analytics view the spec uses;
  4. a template whose Definition is compiled from the spec; 5. the dashboard from the template,
     its new version published (UpdateDashboardPublishedVersion) on Update.
Each asset grants PrincipalArn the owner actions QuickSight documents for its type.
Delete: removes dashboard, template, data sets and data source (unless RetainData), tolerating
assets that are already gone or were never created.
Properties and messages: functions/README.md.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass

from flu_monitor import custom_resource as cr

log = logging.getLogger(__name__)
helper = cr.make_helper()
clients = cr.Clients()

with helper.initialising():
    cr.use_bundle_home(__file__)
    from flu_monitor import dashboard_spec, quicksight_definition  # after FLU_MONITOR_HOME

    dashboard_spec.load()  # read and checked once (cached); a bad or missing spec fails at once

POLL_S = 3.0
# Stop waiting this long before the Lambda timeout, so the failure is ours and readable.
SAFETY_MARGIN_S = 20.0
ENTERPRISE_EDITIONS = ("ENTERPRISE", "ENTERPRISE_AND_Q")
ACCOUNT_CHECK_TYPE = "Custom::QuickSightAccountCheck"

# Owner ("co-owner") action lists from the QuickSight API documentation, per asset type.
OWNER_ACTIONS = {
    "data_source": [
        "quicksight:DescribeDataSource",
        "quicksight:DescribeDataSourcePermissions",
        "quicksight:PassDataSource",
        "quicksight:UpdateDataSource",
        "quicksight:DeleteDataSource",
        "quicksight:UpdateDataSourcePermissions",
    ],
    "data_set": [
        "quicksight:DescribeDataSet",
        "quicksight:DescribeDataSetPermissions",
        "quicksight:PassDataSet",
        "quicksight:DescribeIngestion",
        "quicksight:ListIngestions",
        "quicksight:UpdateDataSet",
        "quicksight:DeleteDataSet",
        "quicksight:CreateIngestion",
        "quicksight:CancelIngestion",
        "quicksight:UpdateDataSetPermissions",
    ],
    "template": [
        "quicksight:DescribeTemplate",
        "quicksight:DescribeTemplateAlias",
        "quicksight:ListTemplateAliases",
        "quicksight:ListTemplateVersions",
        "quicksight:UpdateTemplate",
        "quicksight:DeleteTemplate",
        "quicksight:CreateTemplateAlias",
        "quicksight:DeleteTemplateAlias",
        "quicksight:UpdateTemplateAlias",
        "quicksight:UpdateTemplatePermissions",
        "quicksight:DescribeTemplatePermissions",
    ],
    "dashboard": [
        "quicksight:DescribeDashboard",
        "quicksight:ListDashboardVersions",
        "quicksight:UpdateDashboardPermissions",
        "quicksight:QueryDashboard",
        "quicksight:UpdateDashboard",
        "quicksight:DeleteDashboard",
        "quicksight:DescribeDashboardPermissions",
        "quicksight:UpdateDashboardPublishedVersion",
    ],
}

# The ID parameter of each asset kind; the API calls are named after the kind: describe_<kind>,
# create_<kind>, update_<kind>, update_<kind>_permissions, delete_<kind>.
ID_PARAMETER = {
    "data_source": "DataSourceId",
    "data_set": "DataSetId",
    "template": "TemplateId",
    "dashboard": "DashboardId",
}

PRINCIPAL_ARN = re.compile(
    r"arn:(?P<partition>[\w-]+):quicksight:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<kind>user|group)/(?P<namespace>[\w.-]+)/(?P<name>.+)"
)


class QuickSightError(RuntimeError):
    """Publishing cannot go on; the message says why in plain words, cause last."""


def handler(event, context):
    helper(event, context)


@dataclass(frozen=True)
class Account:
    """The account and the dashboard owner: what check_account() needs."""

    account: str
    principal: str
    principal_kind: str
    principal_namespace: str
    principal_name: str
    identity_region: str


@dataclass(frozen=True)
class Settings(Account):
    prefix: str
    vpc_connection_arn: str
    host: str
    port: int
    database: str
    cluster_id: str
    secret_arn: str
    schema: str
    retain: bool

    @property
    def data_source_id(self) -> str:
        return f"{self.prefix}-redshift"

    def data_set_id(self, name: str) -> str:
        return f"{self.prefix}-{name.replace('_', '-')}"

    @property
    def template_id(self) -> str:
        return f"{self.prefix}-template"

    @property
    def dashboard_id(self) -> str:
        return f"{self.prefix}-dashboard"


def account_settings(properties: dict) -> Account:
    principal = cr.required(properties, "PrincipalArn")
    match = PRINCIPAL_ARN.fullmatch(principal)
    if not match:
        raise cr.PropertyError(
            "property PrincipalArn must be a QuickSight user or group ARN (arn:aws:quicksight:"
            f"<identity-region>:<account>:user/default/<name>), not {principal!r}"
        )
    account = cr.required(properties, "AwsAccountId")
    if not re.fullmatch(r"\d{12}", account):
        raise cr.PropertyError(f"property AwsAccountId must be 12 digits, not {account!r}")
    return Account(
        account=account,
        principal=principal,
        principal_kind=match["kind"],
        principal_namespace=match["namespace"],
        principal_name=match["name"],
        identity_region=match["region"],
    )


def settings(properties: dict) -> Settings:
    owner = account_settings(properties)
    prefix = cr.required(properties, "ResourcePrefix")
    if not re.fullmatch(r"[A-Za-z0-9][\w-]{0,62}", prefix):
        raise cr.PropertyError(
            f"property ResourcePrefix must match [A-Za-z0-9][\\w-]{{0,62}}, not {prefix!r}"
        )
    target, value = cr.one_of(properties, "WorkgroupName", "ClusterIdentifier")
    return Settings(
        **vars(owner),
        prefix=prefix,
        vpc_connection_arn=cr.required(properties, "VpcConnectionArn"),
        host=cr.required(properties, "RedshiftHost"),
        port=cr.integer(properties, "RedshiftPort", minimum=1),
        database=cr.required(properties, "Database"),
        cluster_id=value if target == "ClusterIdentifier" else "",
        secret_arn=cr.required(properties, "SecretArn"),
        schema=cr.optional(properties, "Schema", "public"),
        retain=cr.flag(properties, "RetainData"),
    )


# -- account checks ---------------------------------------------------------------------------
def _wrong_identity_region(s: Account, exc: Exception) -> None:
    """User-management calls outside the identity region are refused with AccessDenied naming
    the right region; say which region the principal ARN should name instead."""
    region = re.search(r"identity region is ([a-z0-9-]+)", cr.error_message(exc))
    if cr.error_code(exc) == "AccessDeniedException" and region:
        raise QuickSightError(
            f"PrincipalArn is in {s.identity_region}, but this account's QuickSight identity "
            f"region is {region.group(1)}: use the principal's ARN from {region.group(1)}"
        ) from None


def check_account(s: Account) -> None:
    """Enterprise subscription, right identity region, existing principal — or a plain error."""
    identity = clients("quicksight", s.identity_region)
    try:
        info = identity.describe_account_subscription(AwsAccountId=s.account)["AccountInfo"]
    except Exception as exc:
        if cr.error_code(exc) == "ResourceNotFoundException":
            raise QuickSightError(
                f"QuickSight is not set up in account {s.account}: subscribe to QuickSight "
                "Enterprise edition first, or deploy with dashboards turned off"
            ) from None
        _wrong_identity_region(s, exc)
        raise
    edition = info.get("Edition", "")
    status = info.get("AccountSubscriptionStatus", "")
    if status.upper() == "UNSUBSCRIBED":
        raise QuickSightError(f"QuickSight subscription of account {s.account} is {status}")
    if edition not in ENTERPRISE_EDITIONS:
        raise QuickSightError(
            f"QuickSight account {s.account} is {edition or 'of unknown edition'}: "
            "dashboards over Redshift in a VPC need Enterprise edition"
        )
    describe = identity.describe_user if s.principal_kind == "user" else identity.describe_group
    key = "UserName" if s.principal_kind == "user" else "GroupName"
    try:
        describe(
            **{key: s.principal_name, "AwsAccountId": s.account, "Namespace": s.principal_namespace}
        )
    except Exception as exc:
        if cr.error_code(exc) == "ResourceNotFoundException":
            raise QuickSightError(
                f"PrincipalArn names no QuickSight {s.principal_kind}: {s.principal_kind} "
                f"{s.principal_name} not found in namespace {s.principal_namespace}"
            ) from None
        _wrong_identity_region(s, exc)
        raise


# -- waiting ----------------------------------------------------------------------------------
def wait_until(what: str, poll, context) -> dict:
    """Poll until poll() returns (status, errors, result) with a final status."""
    while True:
        status, errors, result = poll()
        if status.endswith("_SUCCESSFUL"):
            return result
        if status.endswith("_FAILED"):
            raise QuickSightError(f"{what} {status}: {errors}")
        if context.get_remaining_time_in_millis() / 1000 < SAFETY_MARGIN_S + POLL_S:
            raise QuickSightError(f"{what} still {status} when the function ran out of time")
        time.sleep(POLL_S)


def _version(version_arn: str) -> int:
    return int(version_arn.rsplit("/", 1)[1])


def _errors(errors: list) -> str:
    return "; ".join(f"{e.get('Type', '')} {e.get('Message', '')}".strip() for e in errors or [])


def _exists(describe, **kwargs) -> bool:
    try:
        describe(**kwargs)
        return True
    except Exception as exc:
        if cr.error_code(exc) == "ResourceNotFoundException":
            return False
        raise


def _owner(principal: str, kind: str) -> list[dict]:
    return [{"Principal": principal, "Actions": OWNER_ACTIONS[kind]}]


def asset_ids(s: Settings, kind: str, asset_id: str) -> dict:
    return {"AwsAccountId": s.account, ID_PARAMETER[kind]: asset_id}


def grant_owner(qs, s: Settings, kind: str, asset_id: str, old_principal: str) -> None:
    """Give the principal the owner actions (taking them from a replaced principal)."""
    revoke = {"RevokePermissions": _owner(old_principal, kind)} if old_principal else {}
    getattr(qs, f"update_{kind}_permissions")(
        **asset_ids(s, kind, asset_id), GrantPermissions=_owner(s.principal, kind), **revoke
    )


def upsert(
    qs,
    s: Settings,
    kind: str,
    asset_id: str,
    fields: dict,
    old_principal: str,
    *,
    create_only: dict | None = None,
    grant: bool = True,
) -> tuple[dict, bool]:
    """Update the asset if it exists (and, with `grant`, give the owner its actions), else create
    it owned by the principal. Returns (the Create/Update response, whether it existed)."""
    ids = asset_ids(s, kind, asset_id)
    if _exists(getattr(qs, f"describe_{kind}"), **ids):
        response = getattr(qs, f"update_{kind}")(**ids, **fields)
        if grant:
            grant_owner(qs, s, kind, asset_id, old_principal)
        return response, True
    create = getattr(qs, f"create_{kind}")
    return create(
        **ids, **fields, **(create_only or {}), Permissions=_owner(s.principal, kind)
    ), False


# -- assets -----------------------------------------------------------------------------------
def credential_pair(secret_arn: str) -> dict:
    """The warehouse user name and password from the stack's secret, as QuickSight stores them.

    A data source with Credentials.SecretArn is authorised against the caller's policy when it
    is created, but read with QuickSight's account-wide service role when a dashboard is viewed
    (QuickSight user guide, secrets-manager-integration-api.html); the stack cannot grant that
    role, so QuickSight keeps its own copy of the pair instead. Never logged."""
    response = clients("secretsmanager").get_secret_value(SecretId=secret_arn)
    try:
        secret = json.loads(response["SecretString"])
        return {"Username": secret["username"], "Password": secret["password"]}
    except (KeyError, TypeError, ValueError):
        raise QuickSightError(
            f"secret {secret_arn} must hold JSON with username and password"
        ) from None


def ensure_data_source(qs, s: Settings, old_principal: str, context) -> str:
    redshift = {"Host": s.host, "Port": s.port, "Database": s.database}
    if s.cluster_id:
        redshift["ClusterId"] = s.cluster_id
    fields = {
        "Name": f"{s.prefix} Redshift",
        "DataSourceParameters": {"RedshiftParameters": redshift},
        "Credentials": {"CredentialPair": credential_pair(s.secret_arn)},
        "VpcConnectionProperties": {"VpcConnectionArn": s.vpc_connection_arn},
        "SslProperties": {"DisableSsl": False},
    }
    upsert(
        qs,
        s,
        "data_source",
        s.data_source_id,
        fields,
        old_principal,
        create_only={"Type": "REDSHIFT"},
    )
    ids = asset_ids(s, "data_source", s.data_source_id)

    def poll():
        source = qs.describe_data_source(**ids)["DataSource"]
        error = source.get("ErrorInfo") or {}
        return (
            source["Status"],
            f"{error.get('Type', '')} {error.get('Message', '')}",
            source["Arn"],
        )

    return wait_until(f"data source {s.data_source_id}", poll, context)


def ensure_data_set(qs, s: Settings, name: str, spec, source_arn: str, old_principal: str):
    fields = {
        "Name": f"{s.prefix} {name}",
        # DIRECT_QUERY: the analytics views are already small daily aggregates kept fresh by the
        # warehouse; SPICE would add a second refresh schedule and its own staleness.
        "ImportMode": "DIRECT_QUERY",
        **quicksight_definition.data_set_tables(name, spec, source_arn, s.schema),
    }
    response, _ = upsert(qs, s, "data_set", s.data_set_id(name), fields, old_principal)
    return response["Arn"]


def ensure_template(qs, s: Settings, definition: dict, version_note: str, old_principal, context):
    fields = {
        "Name": f"{s.prefix} flu monitor",
        "Definition": definition,
        "VersionDescription": version_note,
    }
    response, _ = upsert(qs, s, "template", s.template_id, fields, old_principal)
    ids = asset_ids(s, "template", s.template_id)
    number = _version(response["VersionArn"])

    def poll():
        version = qs.describe_template(**ids, VersionNumber=number)["Template"]["Version"]
        return version["Status"], _errors(version.get("Errors")), response["Arn"]

    return wait_until(f"template {s.template_id} version {number}", poll, context)


def ensure_dashboard(qs, s, spec, template_arn, data_set_arns, version_note, old_principal, ctx):
    fields = {
        "Name": spec.title,
        "SourceEntity": {
            "SourceTemplate": {
                "DataSetReferences": [
                    {"DataSetPlaceholder": name, "DataSetArn": arn}
                    for name, arn in sorted(data_set_arns.items())
                ],
                "Arn": template_arn,
            }
        },
        "VersionDescription": version_note,
        "DashboardPublishOptions": {
            "AdHocFilteringOption": {"AvailabilityStatus": "DISABLED"},
            "ExportToCSVOption": {"AvailabilityStatus": "ENABLED"},
            "SheetControlsOption": {"VisibilityState": "EXPANDED"},
        },
    }
    # An existing dashboard's owner is granted its actions once the new version is published.
    response, existed = upsert(
        qs, s, "dashboard", s.dashboard_id, fields, old_principal, grant=False
    )
    ids = asset_ids(s, "dashboard", s.dashboard_id)
    number = _version(response["VersionArn"])

    def poll():
        dashboard = qs.describe_dashboard(**ids, VersionNumber=number)["Dashboard"]
        version = dashboard["Version"]
        return version["Status"], _errors(version.get("Errors")), dashboard["Arn"]

    arn = wait_until(f"dashboard {s.dashboard_id} version {number}", poll, ctx)
    if existed:
        # UpdateDashboard makes a new version but leaves the old one published.
        qs.update_dashboard_published_version(**ids, VersionNumber=number)
        grant_owner(qs, s, "dashboard", s.dashboard_id, old_principal)
    return arn


# -- handlers ---------------------------------------------------------------------------------
@helper.create
@helper.update
def publish(event, context):
    if event.get("ResourceType") == ACCOUNT_CHECK_TYPE:
        owner = account_settings(cr.props(event))
        check_account(owner)
        return f"quicksight-account:{owner.account}"
    s = settings(cr.props(event))
    old = cr.old_props(event).get("PrincipalArn", "")
    old_principal = old if old and old != s.principal else ""
    check_account(s)
    spec = dashboard_spec.load()
    qs = clients("quicksight")
    note = f"flu-monitor CodeVersion {cr.optional(cr.props(event), 'CodeVersion', 'unset')}"[:512]
    source_arn = ensure_data_source(qs, s, old_principal, context)
    used = spec.used_datasets()
    data_set_arns = {
        name: ensure_data_set(qs, s, name, spec, source_arn, old_principal) for name in used
    }
    definition = quicksight_definition.template_definition(spec)
    template_arn = ensure_template(qs, s, definition, note, old_principal, context)
    dashboard_arn = ensure_dashboard(
        qs, s, spec, template_arn, data_set_arns, note, old_principal, context
    )
    region = qs.meta.region_name
    helper.Data.update(
        DashboardId=s.dashboard_id,
        DashboardArn=dashboard_arn,
        DashboardUrl=f"https://{region}.quicksight.aws.amazon.com/sn/dashboards/{s.dashboard_id}",
    )
    return s.dashboard_id


@helper.delete
def remove(event, context):
    if event.get("ResourceType") == ACCOUNT_CHECK_TYPE:
        return None  # a check creates nothing
    try:
        s = settings(cr.props(event))
    except cr.PropertyError as exc:
        log.info("properties were never valid, so nothing was created: %s", exc)
        return None
    if s.retain:
        log.info("RetainData=true: QuickSight assets of %s kept", s.prefix)
        return None
    try:
        clients("quicksight", s.identity_region).describe_account_subscription(
            AwsAccountId=s.account
        )
    except Exception as exc:
        if cr.error_code(exc) == "ResourceNotFoundException":
            log.info("no QuickSight subscription: nothing was created")
            return None
        raise
    qs = clients("quicksight")
    spec = dashboard_spec.load()
    used = spec.used_datasets()
    steps = [
        ("dashboard", s.dashboard_id),
        ("template", s.template_id),
        *[("data_set", s.data_set_id(name)) for name in used],
        ("data_source", s.data_source_id),
    ]
    for kind, asset_id in steps:
        try:
            getattr(qs, f"delete_{kind}")(**asset_ids(s, kind, asset_id))
            log.info("deleted %s %s", kind, asset_id)
        except Exception as exc:
            if cr.error_code(exc) != "ResourceNotFoundException":
                raise
            log.info("already gone: %s %s", kind, asset_id)
    return None
