"""Kafka client settings from plain options, shared by the simulator, the ingester and the
topic-creating Lambda. Only kafka-python (and, for MSK IAM, aws-msk-iam-sasl-signer-python) is
imported, and only when a client is built.

    conf = client_config("b-1.msk...:9098", msk_iam=True, region="us-east-1")
    producer = make_producer(conf)           # acks=all, batching, idempotent
    consumer = make_consumer(conf, group_id="ingester", topics=["flu_cases"])
    ensure_topic(conf, "flu_cases", partitions=6)

Security: `security_protocol` PLAINTEXT (local broker) or SSL (MSK TLS listener, port 9094); with
`msk_iam=True` it is SASL_SSL + OAUTHBEARER with a token signed by the AWS credentials in the
environment (MSK IAM listener, port 9098). `ssl_cafile` is only needed for a private CA; MSK's
certificates are signed by a public CA the system trust store knows.
"""

from __future__ import annotations

import time
from typing import Any

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")

# Producer tuning measured in bench/bench_simulator.py: large batches and a short linger keep
# kafka-python's per-record Python cost low; acks=all + idempotence so a retried batch is
# never written twice.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "max_request_size": 4 * 1024 * 1024,
}


class KafkaUnavailable(RuntimeError):
    """No broker answered at the bootstrap servers within the timeout."""


def client_config(
    bootstrap_servers: str | list[str],
    security_protocol: str = "PLAINTEXT",
    msk_iam: bool = False,
    region: str | None = None,
    ssl_cafile: str | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """kafka-python keyword arguments common to producers, consumers and admin clients.

    timeout_s bounds how long a client waits for the first broker answer (an unreachable broker
    fails within it) and each request.
    """
    servers = (
        bootstrap_servers.split(",") if isinstance(bootstrap_servers, str) else bootstrap_servers
    )
    servers = [s.strip() for s in servers if s.strip()]
    if not servers:
        raise ValueError("bootstrap_servers: empty")
    protocol = "SASL_SSL" if msk_iam else security_protocol.upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ValueError(f"security_protocol: {security_protocol!r} not in {SECURITY_PROTOCOLS}")
    timeout_ms = int(timeout_s * 1000)
    conf: dict[str, Any] = {
        "bootstrap_servers": servers,
        "security_protocol": protocol,
        "bootstrap_timeout_ms": timeout_ms,
        "request_timeout_ms": max(timeout_ms, 5000),
        "reconnect_backoff_max_ms": 1000,
    }
    if ssl_cafile:
        conf["ssl_cafile"] = ssl_cafile
    if msk_iam:
        if not region:
            raise ValueError("region: required with MSK IAM authentication (e.g. us-east-1)")
        conf["sasl_mechanism"] = "OAUTHBEARER"
        conf["sasl_oauth_token_provider"] = msk_iam_token_provider(region)
    return conf


def msk_iam_token_provider(region: str):
    """An OAUTHBEARER token provider signing MSK IAM tokens with the default AWS credentials."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class MskIamTokenProvider(AbstractTokenProvider):
        """Reuses a signed token until a minute before it expires (tokens last 15 minutes)."""

        def __init__(self):
            self._token, self._expires_ms = None, 0

        def token(self) -> str:
            if self._token is None or time.time() * 1000 > self._expires_ms - 60_000:
                self._token, self._expires_ms = MSKAuthTokenProvider.generate_auth_token(region)
            return self._token

    return MskIamTokenProvider()


def _conf(conf_or_servers: dict | str) -> dict[str, Any]:
    if isinstance(conf_or_servers, dict):
        return dict(conf_or_servers)
    return client_config(conf_or_servers)


def _unavailable(conf: dict, exc: Exception) -> KafkaUnavailable:
    servers = ",".join(conf["bootstrap_servers"])
    return KafkaUnavailable(
        f"no Kafka broker answered at {servers} ({conf['security_protocol']}) within "
        f"{conf['bootstrap_timeout_ms'] / 1000:.0f} s ({exc})"
    )


def make_producer(conf_or_servers: dict | str, **overrides):
    """A KafkaProducer with PRODUCER_DEFAULTS; bytes keys and values (serialize before send).
    Raises KafkaUnavailable when no broker answers within the config's timeout."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    conf = _conf(conf_or_servers)
    settings = {**PRODUCER_DEFAULTS, "partitioner": caching_key_partitioner(), **overrides}
    try:
        return KafkaProducer(**{**conf, **settings})
    except KafkaError as exc:
        raise _unavailable(conf, exc) from exc


def caching_key_partitioner():
    """kafka-python's default (Java-compatible murmur2) key partitioning, computed once per
    (topic, key, partition count): the simulator has 150 keys, and the pure-Python murmur2 took
    about a sixth of the producer's time per record."""
    from kafka.partitioner.default import DefaultPartitioner

    class CachingKeyPartitioner(DefaultPartitioner):
        def __init__(self):
            self._cache: dict = {}

        def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
            partitions = cluster.partitions_for_topic(topic) if serialized_key is not None else None
            if not partitions:  # no key, or unknown topic: the default behaviour
                return super().partition(
                    topic, key, serialized_key, value, serialized_value, cluster
                )
            cache_key = (topic, serialized_key, len(partitions))
            found = self._cache.get(cache_key)
            if found is None:
                if len(self._cache) > 100_000:
                    self._cache.clear()
                found = super().partition(
                    topic, key, serialized_key, value, serialized_value, cluster
                )
                self._cache[cache_key] = found
            return found

    return CachingKeyPartitioner()


def make_consumer(conf_or_servers: dict | str, group_id: str | None, topics=(), **overrides):
    """A KafkaConsumer reading from the earliest offset, committing only when told to
    (enable_auto_commit=False) so the caller decides when a record counts as processed."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    conf = _conf(conf_or_servers)
    settings = {"group_id": group_id, "auto_offset_reset": "earliest", "enable_auto_commit": False}
    try:
        return KafkaConsumer(*topics, **{**conf, **settings, **overrides})
    except KafkaError as exc:
        raise _unavailable(conf, exc) from exc


def make_admin(conf_or_servers: dict | str, **overrides):
    """A KafkaAdminClient; raises KafkaUnavailable when no broker answers in time."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    conf = _conf(conf_or_servers)
    try:
        return KafkaAdminClient(**{**conf, **overrides})
    except KafkaError as exc:
        raise _unavailable(conf, exc) from exc


def ensure_topic(
    conf_or_servers: dict | str,
    name: str,
    partitions: int,
    replication_factor: int = 1,
    config: dict | None = None,
) -> bool:
    """Create the topic unless it exists; True if it was created. A topic that exists with a
    different partition count is an error (keys would map to other partitions)."""
    from kafka.errors import TopicAlreadyExistsError

    admin = make_admin(conf_or_servers)
    try:
        spec = {
            "num_partitions": partitions,
            "replication_factor": replication_factor,
            "configs": {k: str(v) for k, v in (config or {}).items()},
        }
        try:
            admin.create_topics({name: spec}, wait_for_metadata=True)
            return True
        except TopicAlreadyExistsError:
            existing = partition_count(admin, name)
            if existing != partitions:
                raise ValueError(
                    f"topic {name} exists with {existing} partitions, not {partitions}"
                ) from None
            return False
    finally:
        admin.close()


def partition_count(admin, topic: str) -> int | None:
    """Partitions of a topic, or None when it does not exist."""
    described = admin.describe_topics([topic])
    if not described or described[0].get("error_code", 0) != 0:
        return None
    return len(described[0]["partitions"])


def broker_ready(bootstrap_servers: str, timeout_s: float = 2.0) -> bool:
    """True when a broker answers a cluster description with at least one live broker."""
    from kafka.errors import KafkaError

    try:
        admin = make_admin(client_config(bootstrap_servers, timeout_s=timeout_s))
    except KafkaUnavailable:
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except KafkaError:
        return False
    finally:
        admin.close()
