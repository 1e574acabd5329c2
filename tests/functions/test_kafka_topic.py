"""Custom::KafkaTopic against the REAL local Kafka broker (PLAINTEXT; MSK uses the same admin
calls over IAM), plus the MSK IAM configuration path as far as it can be checked offline."""

import base64
import itertools
import socket
from urllib.parse import parse_qs, urlparse

import pytest

from flu_monitor import kafka_client
from tests.functions.conftest import ACCOUNT, REGION, load_function

CLUSTER_ID = "flu-msk/0a1b2c3d-4e5f-6789-abcd-ef0123456789-s1"
CLUSTER = f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/{CLUSTER_ID}"
_names = itertools.count(1)


@pytest.fixture
def topic():
    return f"flu_cases_cr{next(_names)}"


@pytest.fixture
def fn(kafka_broker, monkeypatch):
    module = load_function("kafka_topic")
    module.clients.clear()
    local = kafka_client.client_config(kafka_broker.bootstrap_servers, timeout_s=5)
    monkeypatch.setattr(module, "connection_config", lambda *args: local)
    return module


@pytest.fixture
def admin(kafka_broker):
    client = kafka_client.make_admin(kafka_broker.bootstrap_servers)
    yield client
    client.close()


def props(topic, **overrides):
    return {
        "ClusterArn": CLUSTER,
        "Topic": topic,
        "Partitions": "3",
        "CodeVersion": "1",
        **overrides,
    }


def arn(topic):
    return f"arn:aws:kafka:{REGION}:{ACCOUNT}:topic/{CLUSTER_ID}/{topic}"


def test_create_makes_the_topic_and_reports_its_arn(fn, cfn, admin, topic):
    body = cfn.invoke(fn, cfn.request("Create", props(topic)))
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == arn(topic)
    assert body["Data"] == {"Topic": topic, "Partitions": "3", "TopicArn": arn(topic)}
    assert kafka_client.partition_count(admin, topic) == 3


def test_create_over_an_existing_topic_is_harmless(fn, cfn, admin, topic, kafka_broker):
    kafka_broker.create_topic(topic, partitions=3)
    body = cfn.invoke(fn, cfn.request("Create", props(topic)))
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert kafka_client.partition_count(admin, topic) == 3


def test_update_same_then_more_partitions_keeps_the_physical_id(fn, cfn, admin, topic):
    cfn.invoke(fn, cfn.request("Create", props(topic)))
    same = cfn.invoke(fn, cfn.request("Update", props(topic), props(topic), physical_id=arn(topic)))
    assert (same["Status"], same["PhysicalResourceId"]) == ("SUCCESS", arn(topic))
    grown = cfn.invoke(
        fn,
        cfn.request("Update", props(topic, Partitions="5"), props(topic), physical_id=arn(topic)),
    )
    assert grown["Status"] == "SUCCESS", grown["Reason"]
    assert grown["PhysicalResourceId"] == arn(topic)
    assert grown["Data"]["Partitions"] == "5"
    assert kafka_client.partition_count(admin, topic) == 5


def test_new_partitions_are_waited_for_and_the_wait_is_bounded(fn, admin, topic, kafka_broker):
    """Metadata shows new partitions a moment after CreatePartitions returns (under load, long
    enough for a single read to report the old count): the function polls for the count asked
    for, and gives up with the count it still sees."""
    kafka_broker.create_topic(topic, partitions=3)
    admin.create_partitions({topic: 6})
    assert fn.wait_for_partitions(admin, topic, 6) == 6
    with pytest.raises(fn.TopicError, match=f"topic {topic}: the cluster still reports 6 "):
        fn.wait_for_partitions(admin, topic, 7, timeout_s=0.5)
    with pytest.raises(fn.TopicError, match="reports None partitions, not 1"):
        fn.wait_for_partitions(admin, f"{topic}-absent", 1, timeout_s=0.3)


def test_fewer_partitions_fail_with_the_reason(fn, cfn, admin, topic):
    cfn.invoke(fn, cfn.request("Create", props(topic, Partitions="4")))
    event = cfn.request(
        "Update", props(topic, Partitions="2"), props(topic), physical_id=arn(topic)
    )
    body = cfn.invoke(fn, event)
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        f"topic {topic} has 4 partitions and Kafka cannot remove partitions: keep Partitions >= 4 "
        "or use a new topic name"
    )
    assert kafka_client.partition_count(admin, topic) == 4


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"Topic": "flu cases"}, "property Topic is not a legal Kafka topic name: 'flu cases'"),
        ({"Partitions": "0"}, "property Partitions must be at least 1, not 0"),
        ({"ClusterArn": "arn:aws:kafka:us-east-1:1:x"}, "property ClusterArn is not an MSK"),
    ],
)
def test_bad_properties_are_named(fn, cfn, topic, overrides, reason):
    body = cfn.invoke(fn, cfn.request("Create", props(topic, **overrides)))
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith(reason)


def test_delete_removes_the_topic_then_tolerates_its_absence(fn, cfn, admin, topic):
    cfn.invoke(fn, cfn.request("Create", props(topic)))
    body = cfn.invoke(fn, cfn.request("Delete", props(topic), physical_id=arn(topic)))
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", arn(topic))
    assert topic not in admin.list_topics()
    again = cfn.invoke(fn, cfn.request("Delete", props(topic), physical_id=arn(topic)))
    assert again["Status"] == "SUCCESS", again["Reason"]


def test_delete_keeps_the_topic_with_retain_data(fn, cfn, admin, topic):
    cfn.invoke(fn, cfn.request("Create", props(topic)))
    event = cfn.request("Delete", props(topic, RetainData="true"), physical_id=arn(topic))
    assert cfn.invoke(fn, event)["Status"] == "SUCCESS"
    assert kafka_client.partition_count(admin, topic) == 3


def test_delete_of_a_never_created_topic_touches_nothing(fn, cfn, topic, monkeypatch):
    monkeypatch.setattr(fn, "connection_config", lambda *a: pytest.fail("must not connect"))
    event = cfn.request("Delete", props(topic), physical_id="flu-monitor_Topic_QWERTY12")
    assert cfn.invoke(fn, event)["Status"] == "SUCCESS"


def test_delete_never_blocks_when_the_cluster_is_gone(fn, cfn, topic, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(
        fn, "connection_config", lambda *a: kafka_client.client_config(dead, timeout_s=1)
    )
    body = cfn.invoke(fn, cfn.request("Delete", props(topic), physical_id=arn(topic)))
    assert body["Status"] == "SUCCESS", body["Reason"]


# -- the MSK IAM path, offline ---------------------------------------------------------------
IAM_BROKERS = ",".join(f"b-{i}.flumsk.abc.c2.kafka.{REGION}.amazonaws.com:9098" for i in (1, 2))


def test_iam_config_uses_the_sasl_iam_brokers_and_signs_tokens(stubbed):
    module = load_function("kafka_topic")
    module.clients.clear()
    kafka, stub = stubbed("kafka")
    module.clients.put("kafka", kafka)
    stub.add_response(
        "get_bootstrap_brokers",
        {"BootstrapBrokerStringSaslIam": IAM_BROKERS},
        {"ClusterArn": CLUSTER},
    )
    conf = kafka_client.kafka_python_config(module.msk_iam_config(CLUSTER))  # the admin client's
    assert conf["bootstrap_servers"] == IAM_BROKERS.split(",")
    assert (conf["security_protocol"], conf["sasl_mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    # The token is a SigV4-presigned kafka-cluster:Connect URL, signed locally (no network).
    token = conf["sasl_oauth_token_provider"].token()
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert url.netloc == f"kafka.{REGION}.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("testing/")
    assert f"/{REGION}/kafka-cluster/aws4_request" in query["X-Amz-Credential"][0]


def test_iam_config_without_an_iam_listener_is_explained(stubbed):
    module = load_function("kafka_topic")
    module.clients.clear()
    kafka, stub = stubbed("kafka")
    module.clients.put("kafka", kafka)
    stub.add_response(
        "get_bootstrap_brokers", {"BootstrapBrokerStringTls": "b-1:9094"}, {"ClusterArn": CLUSTER}
    )
    with pytest.raises(module.TopicError, match="no IAM-authenticated listener"):
        module.msk_iam_config(CLUSTER)


def test_iam_config_with_given_brokers_needs_no_msk_api(stubbed):
    module = load_function("kafka_topic")
    module.clients.clear()
    kafka, _ = stubbed("kafka")  # no response queued: any MSK API call would fail the test
    module.clients.put("kafka", kafka)
    conf = module.msk_iam_config(CLUSTER, IAM_BROKERS)
    assert conf["bootstrap_servers"] == IAM_BROKERS.split(",")
    assert conf["security_protocol"] == "SASL_SSL"


def test_bootstrap_brokers_resource_answers_the_iam_brokers(stubbed, cfn):
    module = load_function("kafka_topic")
    module.clients.clear()
    kafka, stub = stubbed("kafka")
    module.clients.put("kafka", kafka)
    stub.add_response(
        "get_bootstrap_brokers",
        {"BootstrapBrokerStringSaslIam": IAM_BROKERS, "BootstrapBrokerStringTls": "b-1:9094"},
        {"ClusterArn": CLUSTER},
    )
    event = cfn.request(
        "Create",
        {"ClusterArn": CLUSTER, "CodeVersion": "1"},
        resource_type="Custom::KafkaBootstrapBrokers",
    )
    body = cfn.invoke(module, event)
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == f"{CLUSTER}/bootstrap-brokers"
    assert body["Data"] == {"BootstrapServers": IAM_BROKERS}
    event = cfn.request(
        "Delete",
        {"ClusterArn": CLUSTER},
        physical_id=f"{CLUSTER}/bootstrap-brokers",
        resource_type="Custom::KafkaBootstrapBrokers",
    )
    assert cfn.invoke(module, event)["Status"] == "SUCCESS"  # nothing to delete, no call made
