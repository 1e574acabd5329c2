"""Custom::NetworkInterfacesReleased: every EC2 call goes through a botocore Stubber (checked
against the service model and the expected parameters, in order), and the answer is read from the
real local ResponseURL server. A call the test did not expect fails the test."""

import pytest

from tests.functions.conftest import REGION, load_function

RELEASED = "Custom::NetworkInterfacesReleased"
GROUP = "sg-0123456789abcdef0"
LISTING = {"Filters": [{"Name": "group-id", "Values": [GROUP]}], "MaxResults": 100}


@pytest.fixture
def fn(stubbed, monkeypatch):
    module = load_function("interfaces_released")
    module.clients.clear()
    client, module.ec2 = stubbed("ec2", REGION)
    module.clients.put("ec2", client)
    monkeypatch.setattr(module, "POLL_S", 0)
    monkeypatch.setattr(module, "SAFETY_MARGIN_S", 1)  # the test context has 14 s left
    return module


def _interfaces(*ids, next_token=None):
    page = {"NetworkInterfaces": [{"NetworkInterfaceId": i, "Groups": [{"GroupId": GROUP}]}
                                  for i in ids]}  # fmt: skip
    return page | ({"NextToken": next_token} if next_token else {})


def _delete(cfn, properties=None, physical_id=f"interfaces-released:{GROUP}"):
    properties = {"SecurityGroupId": GROUP} if properties is None else properties
    return cfn.request("Delete", properties, physical_id=physical_id, resource_type=RELEASED)


def test_create_checks_the_group_and_makes_no_call(fn, cfn):
    event = cfn.request("Create", {"SecurityGroupId": GROUP}, resource_type=RELEASED)
    body = cfn.invoke(fn, event)
    assert (body["Status"], body["PhysicalResourceId"]) == (
        "SUCCESS",
        f"interfaces-released:{GROUP}",
    )


def test_update_to_another_group_gets_a_new_id(fn, cfn):
    other = "sg-0fedcba9876543210"
    event = cfn.request(
        "Update", {"SecurityGroupId": other}, {"SecurityGroupId": GROUP},
        physical_id=f"interfaces-released:{GROUP}", resource_type=RELEASED,
    )  # fmt: skip
    body = cfn.invoke(fn, event)
    assert (body["Status"], body["PhysicalResourceId"]) == (
        "SUCCESS",
        f"interfaces-released:{other}",
    )


def test_delete_waits_until_the_group_holds_no_interface(fn, cfn, caplog):
    caplog.set_level("INFO")
    fn.ec2.add_response("describe_network_interfaces", _interfaces("eni-0aaa", "eni-0bbb"), LISTING)
    fn.ec2.add_response("describe_network_interfaces", _interfaces("eni-0bbb"), LISTING)
    fn.ec2.add_response("describe_network_interfaces", _interfaces(), LISTING)
    body = cfn.invoke(fn, _delete(cfn))
    # Answered after the third, empty listing (the fixture checks that all three were used).
    assert (body["Status"], body["PhysicalResourceId"]) == (
        "SUCCESS",
        f"interfaces-released:{GROUP}",
    )
    assert f"no network interface left in {GROUP}" in caplog.text


def test_every_page_of_the_listing_counts(fn, cfn, caplog):
    caplog.set_level("INFO")
    fn.ec2.add_response("describe_network_interfaces", _interfaces(next_token="page-2"), LISTING)
    fn.ec2.add_response(
        "describe_network_interfaces", _interfaces("eni-0ccc"), {**LISTING, "NextToken": "page-2"}
    )
    fn.ec2.add_response("describe_network_interfaces", _interfaces(), LISTING)
    assert cfn.invoke(fn, _delete(cfn))["Status"] == "SUCCESS"
    assert f"{GROUP} still holds ['eni-0ccc']" in caplog.text  # found on the second page


def test_delete_never_blocks_on_interfaces_that_stay(fn, cfn, monkeypatch, caplog):
    monkeypatch.setattr(fn, "SAFETY_MARGIN_S", 60)  # more than the 14 s the context has left
    fn.ec2.add_response("describe_network_interfaces", _interfaces("eni-0aaa"), LISTING)
    assert cfn.invoke(fn, _delete(cfn))["Status"] == "SUCCESS"
    assert f"{GROUP} still holds ['eni-0aaa']; deleting the group may fail" in caplog.text


def test_delete_does_not_wait_when_ec2_refuses_the_listing(fn, cfn, caplog):
    fn.ec2.add_client_error(
        "describe_network_interfaces",
        service_error_code="UnauthorizedOperation",
        service_message="You are not authorized to perform this operation.",
        expected_params=LISTING,
    )
    assert cfn.invoke(fn, _delete(cfn))["Status"] == "SUCCESS"
    assert f"cannot list the interfaces of {GROUP}, not waiting" in caplog.text


def test_rollback_of_a_create_with_a_bad_group_makes_no_call(fn, cfn):
    event = _delete(cfn, {"SecurityGroupId": "default"}, physical_id="generated-by-crhelper")
    assert cfn.invoke(fn, event)["Status"] == "SUCCESS"  # the stubs would refuse any call


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"SecurityGroupId": "default"},
         "property SecurityGroupId must be a security group ID, not 'default'"),
        ({}, "property SecurityGroupId is required"),
    ],
)  # fmt: skip
def test_a_bad_security_group_is_named(fn, cfn, properties, reason):
    body = cfn.invoke(fn, cfn.request("Create", properties, resource_type=RELEASED))
    assert (body["Status"], body["Reason"]) == ("FAILED", reason)
