"""Custom::KafkaTopic — make sure the flu_cases topic exists on the MSK cluster; and
Custom::KafkaBootstrapBrokers — read the cluster's IAM bootstrap brokers (same code, one function
deployed twice: in the VPC for the topic, outside it for the MSK API when the VPC has no route).

MSK Serverless has no topic auto-creation and provisioned MSK has it off by default, so the stack
creates the topic itself, over IAM authentication (the Lambda runs in the cluster's VPC).
Create/Update: create the topic if missing, add partitions if more are asked for; fewer is an
error (Kafka cannot remove partitions). Delete: delete the topic unless RetainData; a cluster
that is unreachable or already gone never blocks the stack's deletion.
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
    from flu_monitor import kafka_client

CONNECT_TIMEOUT_S = 20.0
# After CreatePartitions the controller commits the change, then each broker learns it; until
# then metadata answers the old count. Wait for the count asked for, this long at most.
PARTITIONS_TIMEOUT_S = 60.0
BOOTSTRAP_TYPE = "Custom::KafkaBootstrapBrokers"
CLUSTER_ARN = re.compile(r"arn:[\w-]+:kafka:(?P<region>[a-z0-9-]+):\d{12}:cluster/[\w-]+/[\w-]+")


class TopicError(RuntimeError):
    """The topic cannot be brought to the asked state; the message says why, cause last."""


def handler(event, context):
    helper(event, context)


def topic_arn(cluster_arn: str, topic: str) -> str:
    """arn:…:cluster/<name>/<uuid> -> arn:…:topic/<name>/<uuid>/<topic> (as IAM policies use)."""
    return cluster_arn.replace(":cluster/", ":topic/", 1) + f"/{topic}"


def iam_bootstrap_servers(cluster_arn: str) -> str:
    """The cluster's IAM-authenticated bootstrap brokers (port 9098), from the MSK API."""
    brokers = clients("kafka").get_bootstrap_brokers(ClusterArn=cluster_arn)
    servers = brokers.get("BootstrapBrokerStringSaslIam")
    if not servers:
        raise TopicError(
            "the MSK cluster has no IAM-authenticated listener: turn on IAM client authentication"
        )
    return servers


def msk_iam_config(cluster_arn: str, bootstrap_servers: str = "") -> dict:
    """kafka-python settings for the cluster's IAM listener; the brokers come from the
    BootstrapServers property or, when it is empty, from the MSK API."""
    region = CLUSTER_ARN.fullmatch(cluster_arn)["region"]
    servers = bootstrap_servers or iam_bootstrap_servers(cluster_arn)
    return kafka_client.client_config(
        servers, msk_iam=True, region=region, timeout_s=CONNECT_TIMEOUT_S
    )


# How the function reaches the cluster; tests point it at a local PLAINTEXT broker instead.
connection_config = msk_iam_config


def cluster(properties: dict) -> str:
    cluster_arn = cr.required(properties, "ClusterArn")
    if not CLUSTER_ARN.fullmatch(cluster_arn):
        raise cr.PropertyError(f"property ClusterArn is not an MSK cluster ARN: {cluster_arn!r}")
    return cluster_arn


def settings(properties: dict) -> tuple[str, str, int, int, bool]:
    cluster_arn = cluster(properties)
    topic = cr.required(properties, "Topic")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic) or topic in (".", ".."):
        raise cr.PropertyError(f"property Topic is not a legal Kafka topic name: {topic!r}")
    partitions = cr.integer(properties, "Partitions", minimum=1)
    # -1: the cluster's default.replication.factor (MSK Serverless fixes replication itself).
    replication = cr.integer(properties, "ReplicationFactor", default=-1, minimum=-1)
    if replication == 0:
        raise cr.PropertyError("property ReplicationFactor must be -1 (cluster default) or >= 1")
    return cluster_arn, topic, partitions, replication, cr.flag(properties, "RetainData")


@helper.create
@helper.update
def create_or_update(event, _context):
    if event.get("ResourceType") == BOOTSTRAP_TYPE:
        cluster_arn = cluster(cr.props(event))
        helper.Data.update(BootstrapServers=iam_bootstrap_servers(cluster_arn))
        return f"{cluster_arn}/bootstrap-brokers"
    return ensure(event)


def ensure(event) -> str:
    cluster_arn, topic, partitions, replication, _ = settings(cr.props(event))
    servers = cr.optional(cr.props(event), "BootstrapServers")
    admin = kafka_client.make_admin(connection_config(cluster_arn, servers))
    try:
        existing = kafka_client.partition_count(admin, topic)
        if existing is None:
            admin.create_topics(
                {topic: {"num_partitions": partitions, "replication_factor": replication}},
                wait_for_metadata=True,
            )
            log.info("created topic %s with %d partitions", topic, partitions)
        elif existing < partitions:
            admin.create_partitions({topic: partitions})
            log.info("topic %s: partitions %d -> %d", topic, existing, partitions)
        elif existing > partitions:
            raise TopicError(
                f"topic {topic} has {existing} partitions and Kafka cannot remove partitions: "
                f"keep Partitions >= {existing} or use a new topic name"
            )
        actual = wait_for_partitions(admin, topic, partitions)
    finally:
        admin.close()
    helper.Data.update(Topic=topic, Partitions=str(actual), TopicArn=topic_arn(cluster_arn, topic))
    return topic_arn(cluster_arn, topic)


def wait_for_partitions(admin, topic: str, partitions: int, timeout_s: float | None = None) -> int:
    """The topic's partition count once metadata reports at least `partitions` (a new topic or
    new partitions show up there a moment after the request succeeded); TopicError after
    `timeout_s` (PARTITIONS_TIMEOUT_S) naming the count still reported."""
    deadline = time.monotonic() + (PARTITIONS_TIMEOUT_S if timeout_s is None else timeout_s)
    delay = 0.1
    while True:
        actual = kafka_client.partition_count(admin, topic)
        if actual is not None and actual >= partitions:
            return actual
        if time.monotonic() >= deadline:
            raise TopicError(
                f"topic {topic}: the cluster still reports {actual} partitions, not {partitions}, "
                f"{PARTITIONS_TIMEOUT_S if timeout_s is None else timeout_s:.0f} s after the "
                "request; retry the stack operation"
            )
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


@helper.delete
def remove(event, _context):
    if event.get("ResourceType") == BOOTSTRAP_TYPE:
        return None  # reads only; nothing to delete
    try:
        cluster_arn, topic, _, _, retain = settings(cr.props(event))
    except cr.PropertyError as exc:
        log.info("properties were never valid, so no topic was created: %s", exc)
        return None
    if retain:
        log.info("RetainData=true: topic %s kept", topic)
        return None
    if event.get("PhysicalResourceId") != topic_arn(cluster_arn, topic):
        log.info("no topic was created by this resource (%s)", event.get("PhysicalResourceId"))
        return None
    from kafka.errors import UnknownTopicOrPartitionError

    try:
        servers = cr.optional(cr.props(event), "BootstrapServers")
        admin = kafka_client.make_admin(connection_config(cluster_arn, servers))
        try:
            admin.delete_topics([topic])
            log.info("deleted topic %s", topic)
        finally:
            admin.close()
    except UnknownTopicOrPartitionError:
        log.info("topic %s is already gone", topic)
    except Exception as exc:  # cluster deleted, unreachable, ...: never block the stack
        log.warning("topic %s left in place, cluster not reachable: %s", topic, exc)
    return None
