"""Kafka clients from plain options: one set of settings, built into whichever client a caller
needs. Client libraries are imported only when a client is built.

    conf = client_config("b-1.msk...:9098", msk_iam=True, region="us-east-1")
    producer = make_producer(conf)               # acks=all, idempotent, batched
    reader = PartitionReader(conf, "flu_cases")  # explicit partitions and offsets, no group
    ensure_topic(conf, "flu_cases", partitions=6)

Two client libraries, each where it serves best:

* confluent-kafka (librdkafka) on the hot paths — the producer (simulator, tests, benchmarks),
  the ingester's reader and topic administration on this machine: its per-record path is native
  (kafka-python spent ~15 us of Python per produced record; bench/results/simulator.md).
* kafka-python for `make_admin` / `partition_count` (the topic-creating Lambda, whose bundle
  stays small and pure Python) and `make_consumer` (record inspection in tests and `up`).

Security: `security_protocol` PLAINTEXT (local broker) or SSL (MSK TLS listener, port 9094); with
`msk_iam=True` it is SASL_SSL + OAUTHBEARER with a token signed by the AWS credentials in the
environment (MSK IAM listener, port 9098). `ssl_cafile` is only needed for a private CA; MSK's
certificates are signed by a public CA the system trust store knows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")

# acks=all + idempotence: a retried batch is never written twice, and a record counts as sent
# only once every in-sync replica has it. murmur2_random is the Java client's (and kafka-python's)
# key hash, so a county keeps the partition other producers (Kafka Connect datagen) give it;
# librdkafka's default (consistent_random, CRC32) would place keys elsewhere. The linger lets
# batches fill at high rates; librdkafka's default batch size (1 MB) is kept.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 20,
    "partitioner": "murmur2_random",
    "allow.auto.create.topics": False,  # a producer never creates a topic by writing to it
}
POLL_EVERY = 1024  # sends between serving callbacks (failed deliveries, token refresh, logs)

# librdkafka's own log lines (connection refused, ...) go through this logger: shown where the
# program configured logging (the ingester), silent in a CLI that prints one-line errors.
librdkafka_log = logging.getLogger("flu_monitor.kafka")
librdkafka_log.addHandler(logging.NullHandler())


class KafkaUnavailable(RuntimeError):
    """No broker answered at the bootstrap servers within the timeout."""


class KafkaTimeout(RuntimeError):
    """Records were not taken or not confirmed within the allowed time."""


def client_config(
    bootstrap_servers: str | list[str],
    security_protocol: str = "PLAINTEXT",
    msk_iam: bool = False,
    region: str | None = None,
    ssl_cafile: str | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Client-neutral settings, checked; every make_* / reader takes them.

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
    if msk_iam and not region:
        raise ValueError("region: required with MSK IAM authentication (e.g. us-east-1)")
    return {
        "bootstrap_servers": servers,
        "security_protocol": protocol,
        "ssl_cafile": ssl_cafile or None,
        "msk_iam_region": region if msk_iam else None,
        "timeout_s": float(timeout_s),
    }


def _settings(conf_or_servers: dict | str) -> dict[str, Any]:
    if isinstance(conf_or_servers, dict):
        return conf_or_servers
    return client_config(conf_or_servers)


def request_timeout_ms(settings: dict) -> int:
    return max(int(settings["timeout_s"] * 1000), 5000)


# -- confluent-kafka (librdkafka) ------------------------------------------------------------


def librdkafka_config(conf_or_servers: dict | str) -> dict[str, Any]:
    """librdkafka properties for the settings (https://docs.confluent.io/platform/current/
    clients/librdkafka/html/md_CONFIGURATION.html)."""
    settings = _settings(conf_or_servers)
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(settings["bootstrap_servers"]),
        "security.protocol": settings["security_protocol"],
        "socket.timeout.ms": request_timeout_ms(settings),
        "reconnect.backoff.max.ms": 1000,
        "logger": librdkafka_log,
    }
    if settings["ssl_cafile"]:
        conf["ssl.ca.location"] = settings["ssl_cafile"]
    if settings["msk_iam_region"]:
        conf["sasl.mechanism"] = "OAUTHBEARER"
        conf["oauth_cb"] = MskIamOAuthCallback(settings["msk_iam_region"])
    return conf


class MskIamOAuthCallback:
    """confluent-kafka's oauth_cb for MSK IAM: called with sasl.oauthbearer.config, it returns
    (token, expiry in seconds since the epoch); librdkafka asks again before the token expires
    (tokens last 15 minutes). The signer returns the expiry in milliseconds. librdkafka reports
    only "token not set" when the call fails, so the cause is kept in `failure`."""

    def __init__(self, region: str) -> None:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        self.sign = MSKAuthTokenProvider.generate_auth_token
        self.region = region
        self.failure: str | None = None

    def __call__(self, _oauthbearer_config: str | None) -> tuple[str, float]:
        try:
            token, expiry_ms = self.sign(self.region)
        except Exception as exc:
            self.failure = (
                f"MSK IAM token not signed (are AWS credentials set?): {type(exc).__name__}: {exc}"
            )
            raise
        self.failure = None
        return token, expiry_ms / 1000


def _native(client_class, conf: dict, settings: dict):
    """A confluent-kafka client; KafkaUnavailable when it cannot start (with MSK IAM, librdkafka
    waits for the first token when the client is created and fails without one)."""
    from confluent_kafka import KafkaException

    oauth_cb = conf.get("oauth_cb")
    if oauth_cb is not None:
        # Sign one token first: without credentials this fails now, where the client would wait
        # up to 10 s for a token it can never get (confluent-kafka >= 2.13 waits in its
        # constructor, confluent-kafka-python issue 2164).
        try:
            oauth_cb(None)
        except Exception:
            raise _unauthenticated(settings, oauth_cb.failure) from None
    try:
        return client_class(conf)
    except KafkaException as exc:
        failure = getattr(oauth_cb, "failure", None)
        if failure:
            raise _unauthenticated(settings, failure) from None
        raise _unavailable(settings, exc) from None


def _unauthenticated(settings: dict, failure: str) -> KafkaUnavailable:
    servers = ",".join(settings["bootstrap_servers"])
    return KafkaUnavailable(f"cannot authenticate to Kafka at {servers}: {failure}")


def _unavailable(settings: dict, exc: Exception) -> KafkaUnavailable:
    servers = ",".join(settings["bootstrap_servers"])
    return KafkaUnavailable(
        f"no Kafka broker answered at {servers} ({settings['security_protocol']}) within "
        f"{settings['timeout_s']:g} s ({exc})"
    )


def _topic_partitions(client, settings: dict, topic: str) -> set[int] | None:
    """Partitions of a topic from cluster metadata, or None when it does not exist; raises
    KafkaUnavailable when no broker answers within the settings' timeout."""
    from confluent_kafka import KafkaError, KafkaException

    try:
        metadata = client.list_topics(topic, timeout=settings["timeout_s"])
    except KafkaException as exc:
        raise _unavailable(settings, exc) from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        if found is not None and found.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise _unavailable(settings, KafkaException(found.error))
        return None
    return set(found.partitions)


def _probe(client, settings: dict) -> None:
    """One metadata request; KafkaUnavailable when no broker answers within the timeout."""
    from confluent_kafka import KafkaException

    try:
        client.list_topics(timeout=settings["timeout_s"])
    except KafkaException as exc:
        raise _unavailable(settings, exc) from None


class Producer:
    """A confluent-kafka producer with PRODUCER_DEFAULTS; bytes keys and values.

    send() queues a record; flush() returns once every queued record is acknowledged or raises
    KafkaTimeout. Failed deliveries (after librdkafka's retries, within message.timeout.ms) are
    appended to `failures` — only failures are reported (delivery.report.only.error), so a
    successful record costs no Python callback. A full local queue blocks send() up to
    `max_block_s`, then KafkaTimeout.
    """

    def __init__(self, conf_or_servers: dict | str, max_block_s: float | None = None, **overrides):
        from confluent_kafka import Producer as NativeProducer

        self.settings = _settings(conf_or_servers)
        self.failures: list[Exception] = []
        self.max_block_s = self.settings["timeout_s"] if max_block_s is None else max_block_s
        conf = {
            **librdkafka_config(self.settings),
            **PRODUCER_DEFAULTS,
            "delivery.report.only.error": True,
            "on_delivery": self._delivered,
            **overrides,
        }
        self.native = _native(NativeProducer, conf, self.settings)
        self._produce = self.native.produce
        self._until_poll = POLL_EVERY
        _probe(self.native, self.settings)  # fail now when no broker answers

    def _delivered(self, err, _msg) -> None:
        if err is not None:
            from confluent_kafka import KafkaException

            self.failures.append(KafkaException(err))

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> None:
        try:
            self._produce(topic, value, key)
        except BufferError:  # the local queue is full: wait for acknowledgements to free it
            self._send_when_room(topic, value, key)
        self._until_poll -= 1
        if not self._until_poll:
            self._until_poll = POLL_EVERY
            self.native.poll(0)

    def _send_when_room(self, topic: str, value, key) -> None:
        deadline = time.monotonic() + self.max_block_s
        while True:
            self.native.poll(0.05)
            try:
                self._produce(topic, value, key)
                return
            except BufferError:
                if time.monotonic() > deadline:
                    raise KafkaTimeout(
                        f"the producer's queue stayed full for {self.max_block_s:.0f} s"
                    ) from None

    def flush(self, timeout: float | None = None) -> None:
        waiting = self.native.flush(self.max_block_s if timeout is None else timeout)
        if waiting:
            raise KafkaTimeout(f"{waiting} records not confirmed")

    def close(self, timeout: float = 5.0) -> None:
        """Flush (KafkaTimeout if records stay unconfirmed) and release the client."""
        try:
            self.flush(timeout)
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Release the client without waiting: queued and in-flight records fail."""
        if self.native is None:
            return
        self.native.purge()
        self.native.flush(0)  # serve the purged records' reports
        self.native.close()
        self.native = None


def make_producer(conf_or_servers: dict | str, **overrides) -> Producer:
    """A Producer (see there); raises KafkaUnavailable when no broker answers in time."""
    return Producer(conf_or_servers, **overrides)


class PartitionReader:
    """Reads one topic's partitions from offsets the caller gives, with no consumer group and no
    offset commits (the caller stores its offsets itself). Records come back in batches of
    (partition, offset, timestamp in epoch ms, key, value)."""

    def __init__(self, conf_or_servers: dict | str, topic: str, fetch_wait_ms: int = 100):
        from confluent_kafka import Consumer

        self.settings = _settings(conf_or_servers)
        self.topic = topic
        self.native = _native(
            Consumer,
            {
                **librdkafka_config(self.settings),
                # librdkafka requires a group id; with assign() and no commits it is never used.
                "group.id": "flu-monitor-partition-reader",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "fetch.wait.max.ms": fetch_wait_ms,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
            },
            self.settings,
        )

    def partitions(self) -> set[int]:
        """The topic's partitions (empty while it does not exist)."""
        return _topic_partitions(self.native, self.settings, self.topic) or set()

    def earliest_offsets(self, partitions) -> dict[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            return {
                p: self.native.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=self.settings["timeout_s"]
                )[0]
                for p in partitions
            }
        except KafkaException as exc:
            raise _unavailable(self.settings, exc) from None

    def end_offsets_seen(self) -> dict[int, int]:
        """Each assigned partition's end offset as of the last fetch (no request)."""
        from confluent_kafka import TopicPartition

        ends = {}
        for tp in self.native.assignment():
            high = self.native.get_watermark_offsets(
                TopicPartition(self.topic, tp.partition), cached=True
            )[1]
            if high >= 0:
                ends[tp.partition] = high
        return ends

    def assign(self, offsets: dict[int, int]) -> None:
        """Read exactly these partitions, each from its offset; records fetched before for an
        earlier assignment are discarded."""
        from confluent_kafka import TopicPartition

        self.native.assign([TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())])

    def read(self, max_records: int, timeout_s: float) -> tuple[list[tuple], list[str]]:
        """Up to max_records records that arrived within timeout_s, and the errors reported."""
        rows, errors = [], []
        for m in self.native.consume(max_records, timeout_s):
            err = m.error()
            if err is None:
                rows.append((m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value()))
            else:
                errors.append(str(err))
        return rows, errors

    def close(self) -> None:
        self.native.close()


def ensure_topic(
    conf_or_servers: dict | str,
    name: str,
    partitions: int,
    replication_factor: int = 1,
    config: dict | None = None,
) -> bool:
    """Create the topic unless it exists; True if it was created. A topic that exists with a
    different partition count is an error (keys would map to other partitions)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    settings = _settings(conf_or_servers)
    admin = _native(AdminClient, librdkafka_config(settings), settings)
    spec = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config={k: str(v) for k, v in (config or {}).items()},
    )
    try:
        admin.create_topics([spec], request_timeout=settings["timeout_s"])[name].result()
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise _unavailable(settings, exc) from None
        existing = len(_topic_partitions(admin, settings, name) or ())
        if existing != partitions:
            raise ValueError(
                f"topic {name} exists with {existing} partitions, not {partitions}"
            ) from None
        return False
    _wait_for_metadata(admin, settings, name, partitions)
    return True


def _wait_for_metadata(admin, settings: dict, name: str, partitions: int) -> None:
    """A created topic shows in metadata a moment after the request succeeded."""
    deadline = time.monotonic() + settings["timeout_s"]
    while len(_topic_partitions(admin, settings, name) or ()) < partitions:
        if time.monotonic() > deadline:
            raise KafkaUnavailable(f"topic {name} was created but its metadata never showed")
        time.sleep(0.1)


def topic_partitions(conf_or_servers: dict | str, topic: str) -> set[int] | None:
    """Partitions of a topic, or None when it does not exist (KafkaUnavailable: no broker)."""
    from confluent_kafka.admin import AdminClient

    settings = _settings(conf_or_servers)
    admin = _native(AdminClient, librdkafka_config(settings), settings)
    return _topic_partitions(admin, settings, topic)


def broker_ready(bootstrap_servers: str, timeout_s: float = 2.0) -> bool:
    """True when a broker answers a metadata request with at least one live broker."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    settings = client_config(bootstrap_servers)
    try:
        admin = _native(AdminClient, librdkafka_config(settings), settings)
        return bool(admin.list_topics(timeout=timeout_s).brokers)
    except (KafkaException, KafkaUnavailable):
        return False


# -- kafka-python (the topic Lambda; record inspection) ---------------------------------------


def kafka_python_config(conf_or_servers: dict | str) -> dict[str, Any]:
    """kafka-python keyword arguments common to its consumers and admin clients."""
    settings = _settings(conf_or_servers)
    conf: dict[str, Any] = {
        "bootstrap_servers": settings["bootstrap_servers"],
        "security_protocol": settings["security_protocol"],
        "bootstrap_timeout_ms": int(settings["timeout_s"] * 1000),
        "request_timeout_ms": request_timeout_ms(settings),
        "reconnect_backoff_max_ms": 1000,
    }
    if settings["ssl_cafile"]:
        conf["ssl_cafile"] = settings["ssl_cafile"]
    if settings["msk_iam_region"]:
        conf["sasl_mechanism"] = "OAUTHBEARER"
        conf["sasl_oauth_token_provider"] = msk_iam_token_provider(settings["msk_iam_region"])
    return conf


def msk_iam_token_provider(region: str):
    """kafka-python's OAUTHBEARER token provider signing MSK IAM tokens with the default AWS
    credentials."""
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


def _kafka_python_unavailable(conf: dict, exc: Exception) -> KafkaUnavailable:
    servers = ",".join(conf["bootstrap_servers"])
    return KafkaUnavailable(
        f"no Kafka broker answered at {servers} ({conf['security_protocol']}) within "
        f"{conf['bootstrap_timeout_ms'] / 1000:g} s ({exc})"
    )


def make_consumer(conf_or_servers: dict | str, group_id: str | None, topics=(), **overrides):
    """A kafka-python KafkaConsumer reading from the earliest offset, committing only when told
    to (enable_auto_commit=False), for reading records back in tests and tools."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    conf = kafka_python_config(conf_or_servers)
    settings = {"group_id": group_id, "auto_offset_reset": "earliest", "enable_auto_commit": False}
    try:
        return KafkaConsumer(*topics, **{**conf, **settings, **overrides})
    except KafkaError as exc:
        raise _kafka_python_unavailable(conf, exc) from exc


def make_admin(conf_or_servers: dict | str, **overrides):
    """A kafka-python KafkaAdminClient (the topic Lambda); raises KafkaUnavailable when no
    broker answers in time."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    conf = kafka_python_config(conf_or_servers)
    try:
        return KafkaAdminClient(**{**conf, **overrides})
    except KafkaError as exc:
        raise _kafka_python_unavailable(conf, exc) from exc


def partition_count(admin, topic: str) -> int | None:
    """Partitions of a topic (kafka-python admin), or None when it does not exist."""
    described = admin.describe_topics([topic])
    if not described or described[0].get("error_code", 0) != 0:
        return None
    return len(described[0]["partitions"])
