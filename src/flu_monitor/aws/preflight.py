"""`flu-monitor aws preflight --region R`: what a deploy of template.yaml would hit, checked first.

Read-only calls with the user's credentials (Describe/List/Get/Head only), one check per line:
the Region is one the templates are linted for, three usable Availability Zones (MSK refuses
AZ ID use1-az3: Kafka API, BrokerNodeGroupInfo.ClientSubnets), the Kafka version MSK offers in the
Region (ListKafkaVersions), MSK Connect and the chosen warehouse answer there (a provisioned node
type is orderable: DescribeOrderableClusterOptions), QuickSight Enterprise and the dashboard owner
when dashboards are on, and the datagen plugin reachable (the S3 object, or the release URL from
this machine). Parameters are the template's defaults, then a samconfig.toml profile, then
--parameter-overrides, as `sam deploy` resolves them.

Each check prints PASS or FAIL with how to fix it; exit 0 when all pass, 1 when one fails (the
account or Region, not the command, is the problem), 2 for a usage error.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flu_monitor import paths
from flu_monitor.messages import BadInput, Failure

TEMPLATE = paths.ROOT / "template.yaml"
SAMCONFIG = paths.ROOT / "samconfig.toml"
MAKEFILE = paths.ROOT / "Makefile"
# The Kafka API reference (BrokerNodeGroupInfo): "Client subnets can't occupy the Availability
# Zone with ID use1-az3."
MSK_REFUSED_ZONE_IDS = {"use1-az3"}
ENTERPRISE = ("ENTERPRISE", "ENTERPRISE_AND_Q")
HTTP_TIMEOUT_S = 10


@dataclass(frozen=True)
class Result:
    check: str
    ok: bool
    detail: str  # what was found; for a failure, the problem and then how to fix it

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'} {self.check}: {self.detail}"


# -- parameters -------------------------------------------------------------------------------
class _TolerantLoader(yaml.SafeLoader):
    """Reads a CloudFormation template's plain parts; intrinsic tags (!Ref ...) become None."""


_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template_defaults(template: Path = TEMPLATE) -> dict[str, str]:
    body = yaml.load(template.read_text(encoding="utf-8"), Loader=_TolerantLoader)
    return {name: str(spec.get("Default", "")) for name, spec in body["Parameters"].items()}


def parse_overrides(text: str) -> dict[str, str]:
    """`Key=Value Key2="a b"`, the form sam's --parameter-overrides takes."""
    values = {}
    for pair in shlex.split(text or ""):
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9]+", key):
            raise BadInput(f"--parameter-overrides: expected Key=Value, got {pair!r}")
        values[key] = value
    return values


def resolve_parameters(config_env: str | None, overrides: str | None) -> dict[str, str]:
    values = template_defaults()
    if config_env:
        config = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))
        deploy = config.get(config_env, {}).get("deploy", {}).get("parameters")
        if deploy is None:
            profiles = sorted(k for k, v in config.items() if isinstance(v, dict) and "deploy" in v)
            raise BadInput(f"--config-env {config_env!r} is not in samconfig.toml {profiles}")
        values.update(parse_overrides(deploy.get("parameter_overrides", "")))
    extra = parse_overrides(overrides or "")
    unknown = sorted(set(extra) - set(values))
    if unknown:
        raise BadInput(f"--parameter-overrides: template.yaml has no parameter {unknown}")
    values.update(extra)
    return values


def linted_regions(makefile: Path = MAKEFILE) -> list[str]:
    text = makefile.read_text(encoding="utf-8").replace("\\\n", " ")
    regions = re.search(r"^AWS_REGIONS := (.+)$", text, re.M)
    if regions is None:
        raise ValueError(f"{makefile}: no AWS_REGIONS line")
    return regions.group(1).split()


# -- checks -----------------------------------------------------------------------------------
Clients = Callable[..., Any]  # clients(service, region=None) -> boto3 client (untyped)


def check_region(region: str, regions: list[str]) -> Result:
    if region in regions:
        return Result("region", True, f"{region} is one of the {len(regions)} linted Regions")
    return Result(
        "region",
        False,
        f"{region} is not one the templates are linted for (some resource type is missing "
        f"there): deploy to one of {', '.join(regions)}",
    )


def check_zones(ec2, chosen: str) -> Result:
    zones = ec2.describe_availability_zones(
        Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}]
    )["AvailabilityZones"]
    usable = {z["ZoneName"]: z["ZoneId"] for z in zones if z["State"] == "available"}
    # Fn::GetAZs lists the Region's zones alphabetically; an empty parameter takes the first three.
    names = chosen.split(",") if chosen else sorted(usable)[:3]
    where = "AvailabilityZones" if chosen else "the Region's first three zones"
    if len(set(names)) != 3:
        return Result(
            "availability zones",
            False,
            f"{where} gives {names}: the network needs three different zones; set "
            "AvailabilityZones to three zone names",
        )
    missing = [n for n in names if n not in usable]
    if missing:
        return Result(
            "availability zones",
            False,
            f"{missing} not available here (available: {sorted(usable)}): set AvailabilityZones",
        )
    refused = [f"{n} ({usable[n]})" for n in names if usable[n] in MSK_REFUSED_ZONE_IDS]
    if refused:
        others = [n for n in sorted(usable) if usable[n] not in MSK_REFUSED_ZONE_IDS][:3]
        return Result(
            "availability zones",
            False,
            f"MSK refuses subnets in {', '.join(refused)}: "
            f"set AvailabilityZones={','.join(others)}",
        )
    listed = ", ".join(f"{n} ({usable[n]})" for n in names)
    return Result("availability zones", True, f"{where}: {listed}")


def check_kafka(kafka, params: dict[str, str]) -> Result:
    versions = {
        v["Version"]: v.get("Status", "")
        for page in _pages(kafka, "list_kafka_versions", "KafkaVersions")
        for v in page
    }
    if params["ClusterType"] == "serverless":
        return Result("msk", True, "MSK answers here; ClusterType=serverless has no version")
    wanted = params["KafkaVersion"]
    if versions.get(wanted) == "ACTIVE":
        return Result("msk", True, f"Kafka {wanted} is offered here")
    active = sorted(v for v, status in versions.items() if status == "ACTIVE")
    return Result(
        "msk",
        False,
        f"Kafka {wanted} is not offered here ({versions.get(wanted, 'absent')}): choose "
        f"KafkaVersion among {active}, or ClusterType=serverless",
    )


def _pages(client, operation: str, key: str):
    kwargs: dict[str, str] = {}
    while True:
        response = getattr(client, operation)(**kwargs)
        yield response.get(key, [])
        if not response.get("NextToken"):
            return
        kwargs = {"NextToken": response["NextToken"]}


def check_connect(kafkaconnect) -> Result:
    kafkaconnect.list_connectors(maxResults=1)
    return Result("msk connect", True, "MSK Connect answers here")


def check_warehouse(redshift, serverless, params: dict[str, str]) -> Result:
    if params["WarehouseType"] == "serverless":
        serverless.list_workgroups(maxResults=1)
        return Result("redshift", True, "Redshift Serverless answers here")
    node = params["NodeType"]
    options = redshift.describe_orderable_cluster_options(NodeType=node, MaxRecords=20)
    if options["OrderableClusterOptions"]:
        return Result("redshift", True, f"{node} can be ordered here")
    return Result(
        "redshift",
        False,
        f"{node} cannot be ordered here: choose the other NodeType or WarehouseType=serverless",
    )


PRINCIPAL = re.compile(
    r"arn:[\w-]+:quicksight:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<kind>user|group)/(?P<namespace>[\w.-]+)/(?P<name>.+)"
)


def check_quicksight(clients: Clients, account: str, params: dict[str, str]) -> Result:
    if params["EnableDashboards"] != "true":
        return Result("quicksight", True, "dashboards off (EnableDashboards=false)")
    match = PRINCIPAL.fullmatch(params["QuickSightPrincipalArn"])
    if not match or match["name"] == "CHANGE-ME":
        return Result(
            "quicksight",
            False,
            "QuickSightPrincipalArn must name the dashboard owner, e.g. "
            f"arn:aws:quicksight:<identity-region>:{account}:user/default/<name>",
        )
    identity = clients("quicksight", match["region"])
    try:
        info = identity.describe_account_subscription(AwsAccountId=account)["AccountInfo"]
    except Exception as exc:  # botocore ClientError; the code names the cause
        if _code(exc) == "ResourceNotFoundException":
            return Result(
                "quicksight",
                False,
                f"account {account} has no QuickSight subscription: subscribe to Enterprise "
                "edition, or deploy with EnableDashboards=false",
            )
        raise
    if info.get("Edition") not in ENTERPRISE:
        return Result(
            "quicksight",
            False,
            f"QuickSight is {info.get('Edition')}: a VPC connection to Redshift needs "
            "Enterprise edition (upgrade in QuickSight's account settings)",
        )
    kind, name, namespace = match["kind"], match["name"], match["namespace"]
    describe = identity.describe_user if kind == "user" else identity.describe_group
    key = "UserName" if kind == "user" else "GroupName"
    try:
        describe(**{key: name, "AwsAccountId": account, "Namespace": namespace})
    except Exception as exc:
        if _code(exc) == "ResourceNotFoundException":
            return Result(
                "quicksight",
                False,
                f"no QuickSight {kind} {name} in namespace {namespace} ({match['region']}): "
                "set QuickSightPrincipalArn to an existing user or group",
            )
        raise
    return Result("quicksight", True, f"Enterprise; owner {kind} {name} exists")


def check_plugin(s3, params: dict[str, str], url: str) -> Result:
    uri = params["DatagenPluginS3Uri"]
    if uri:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            return Result(
                "datagen plugin",
                False,
                f"cannot read {uri} ({_code(exc) or exc}): upload the jar there or fix "
                "DatagenPluginS3Uri",
            )
        return Result("datagen plugin", True, f"{uri} exists")
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        return Result(
            "datagen plugin",
            False,
            f"{url} is not reachable from here ({getattr(exc, 'reason', exc)}): if Lambda "
            "cannot reach it either, upload the jar to S3 and set DatagenPluginS3Uri",
        )
    return Result(
        "datagen plugin",
        True,
        f"{url} answers HTTP {status} here (the stack's Lambda downloads it; without its own "
        "internet egress set DatagenPluginS3Uri)",
    )


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def plugin_url() -> str:
    return json.loads((paths.CONNECTOR_DIR / "plugin.json").read_text(encoding="utf-8"))["url"]


def run_checks(
    region: str, params: dict[str, str], clients: Clients, plugin: str | None = None
) -> list[Result]:
    """Every check, in deploy order; an AWS error in one check is that check's failure."""
    account = clients("sts").get_caller_identity()["Account"]
    warehouse = (clients("redshift"), clients("redshift-serverless"))
    steps = [
        ("region", lambda: check_region(region, linted_regions())),
        ("availability zones", lambda: check_zones(clients("ec2"), params["AvailabilityZones"])),
        ("msk", lambda: check_kafka(clients("kafka"), params)),
        ("msk connect", lambda: check_connect(clients("kafkaconnect"))),
        ("redshift", lambda: check_warehouse(*warehouse, params)),
        ("quicksight", lambda: check_quicksight(clients, account, params)),
        ("datagen plugin", lambda: check_plugin(clients("s3"), params, plugin or plugin_url())),
    ]
    results = []
    for name, step in steps:
        try:
            results.append(step())
        except Exception as exc:  # AccessDenied, no endpoint, throttling: one line, named
            cause = _code(exc) or type(exc).__name__
            results.append(Result(name, False, f"{cause}: {_first_line(exc)}"))
    return results


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def boto3_clients(region: str) -> Clients:
    try:
        import boto3
    except ImportError:
        raise Failure("boto3 is needed: pip install boto3") from None
    session = boto3.Session(region_name=region)
    made: dict[tuple[str, str], object] = {}

    def clients(service: str, service_region: str | None = None):
        key = (service, service_region or region)
        if key not in made:
            made[key] = session.client(service, region_name=key[1])
        return made[key]

    return clients
