"""Custom::NetworkInterfacesReleased — on Delete, wait until a security group holds no network
interface, so that CloudFormation deletes the group (and then the subnets) only after the service
that used it has let its interfaces go.

Each template places one of these between a security group and everything that puts interfaces
into it: CloudFormation deletes those first, then this resource, then the group. Services that
release their interfaces after CloudFormation reports them deleted (the QuickSight VPC connection,
MSK Connect: docs/deploy.md, "Clean deletion") would otherwise fail the group's deletion with
DependencyViolation.

Create/Update: check SecurityGroupId; nothing is created.
Delete: list the group's interfaces (ec2:DescribeNetworkInterfaces, filter group-id, paginated)
every POLL_S seconds until there are none or the function must answer. It never fails: if
interfaces remain, the group's own deletion reports DependencyViolation, and docs/deploy.md says
what to do then.
Properties and messages: functions/README.md.
"""

import logging
import re
import time

from flu_monitor import custom_resource as cr

log = logging.getLogger(__name__)
helper = cr.make_helper()
clients = cr.Clients()

with helper.initialising():
    from botocore.exceptions import BotoCoreError, ClientError

    clients("ec2")  # made once per cold start: a runtime without boto3 or a Region fails here

POLL_S = 15.0
# Stop polling this long before the Lambda timeout, so that the answer is ours.
SAFETY_MARGIN_S = 20.0
PAGE_SIZE = 100  # DescribeNetworkInterfaces: "We strongly recommend using only paginated requests"
GROUP_ID = re.compile(r"sg-[0-9a-f]{8,17}")


def handler(event, context):
    helper(event, context)


def security_group(event: dict) -> str:
    group = cr.required(cr.props(event), "SecurityGroupId")
    if not GROUP_ID.fullmatch(group):
        raise cr.PropertyError(
            f"property SecurityGroupId must be a security group ID, not {group!r}"
        )
    return group


def interfaces_in(group: str) -> list[str]:
    """IDs of the network interfaces in the group, whatever their status: each one keeps EC2 from
    deleting the group."""
    pages = (
        clients("ec2")
        .get_paginator("describe_network_interfaces")
        .paginate(
            Filters=[{"Name": "group-id", "Values": [group]}],
            PaginationConfig={"PageSize": PAGE_SIZE},
        )
    )
    return [i["NetworkInterfaceId"] for page in pages for i in page["NetworkInterfaces"]]


@helper.create
@helper.update
def check(event, _context):
    return f"interfaces-released:{security_group(event)}"


@helper.delete
def wait_until_released(event, context):
    try:
        group = security_group(event)
    except cr.PropertyError as exc:
        log.info("properties were never valid, so no group was guarded: %s", exc)
        return None
    while True:
        try:
            left = interfaces_in(group)
        except (BotoCoreError, ClientError) as exc:  # e.g. UnauthorizedOperation: never block
            log.warning("cannot list the interfaces of %s, not waiting: %s", group, exc)
            return None
        if not left:
            log.info("no network interface left in %s", group)
            return None
        if context.get_remaining_time_in_millis() / 1000 < SAFETY_MARGIN_S + POLL_S:
            log.warning(
                "%s still holds %s; deleting the group may fail with DependencyViolation: wait "
                "until they are gone, then delete the stack again",
                group,
                left,
            )
            return None
        log.info("%s still holds %s; checking again in %.0f s", group, left, POLL_S)
        time.sleep(POLL_S)
