"""Where simulated events go: a JSONL file, stdout, or a Kafka topic.

Every sink takes contract dicts through write(event); flush() returns once everything written so
far is delivered (or raises SinkError); close() flushes and releases it; abandon() releases it
without waiting. Lines and record values are compact UTF-8 JSON; the Kafka record key is the
county FIPS code so a county's events stay in one partition, in order.
"""

from __future__ import annotations

import contextlib
import sys
from typing import BinaryIO

import orjson


class SinkError(RuntimeError):
    """Events could not be delivered; the message says where and why."""


class JsonlSink:
    """One JSON object per line into a binary stream (a file or stdout)."""

    def __init__(self, stream: BinaryIO, close_stream: bool = True):
        self._stream = stream
        self._close_stream = close_stream

    @classmethod
    def to_path(cls, path: str) -> JsonlSink:
        return cls(open(path, "wb", buffering=1 << 20))  # noqa: SIM115 - closed by close()

    @classmethod
    def to_stdout(cls) -> JsonlSink:
        return cls(sys.stdout.buffer, close_stream=False)

    def write(self, event: dict) -> None:
        self._stream.write(orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE))

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
        if self._close_stream:
            self._stream.close()

    def abandon(self) -> None:
        if self._close_stream:
            with contextlib.suppress(OSError):
                self._stream.close()


class KafkaSink:
    """Produce to a topic with confluent-kafka (acks=all, idempotent, batched; see kafka_client).

    The topic must exist (as on MSK, where a custom resource creates it) unless `partitions` is
    given, in which case a missing topic is created with that many partitions. An event the
    broker has not confirmed within `confirm_timeout_s` fails the next write or flush: a broker
    that went away ends the run with a message instead of buffering forever.
    """

    def __init__(
        self,
        conf: dict,
        topic: str,
        partitions: int | None = None,
        confirm_timeout_s: float = 30.0,
    ):
        from flu_monitor import kafka_client

        self.topic = topic
        self.confirm_timeout_s = confirm_timeout_s
        self._servers = ",".join(conf["bootstrap_servers"])
        if partitions:
            kafka_client.ensure_topic(conf, topic, partitions)
        elif kafka_client.topic_partitions(conf, topic) is None:
            raise SinkError(
                f"topic {topic!r} does not exist at {self._servers}: create it first "
                "(or pass --partitions N to create it)"
            )
        timeout_ms = int(confirm_timeout_s * 1000)
        self._producer = kafka_client.make_producer(
            conf,
            max_block_s=confirm_timeout_s,
            # An unconfirmed record fails (into failures) after this; librdkafka retries within it.
            **{"message.timeout.ms": max(timeout_ms, kafka_client.request_timeout_ms(conf) + 1000)},
        )
        self._failures = self._producer.failures
        self._send = self._producer.send

    def write(self, event: dict) -> None:
        from flu_monitor.kafka_client import KafkaTimeout

        if self._failures:
            raise self._failed()
        try:
            self._send(self.topic, orjson.dumps(event), event["county_fips"].encode())
        except KafkaTimeout as exc:  # the local queue stayed full
            raise SinkError(
                f"Kafka at {self._servers} took no more events for {self.confirm_timeout_s:.0f} s "
                f"({exc})"
            ) from None

    def flush(self) -> None:
        from flu_monitor.kafka_client import KafkaTimeout

        try:
            self._producer.flush(self.confirm_timeout_s)
        except KafkaTimeout:
            raise SinkError(
                f"Kafka at {self._servers} did not confirm the events sent within "
                f"{self.confirm_timeout_s:.0f} s (is the broker running?)"
            ) from None
        if self._failures:
            raise self._failed()

    def close(self) -> None:
        try:
            self.flush()
        except SinkError:
            self.abandon()
            raise
        self._producer.close(timeout=5)  # flushed: nothing is pending

    def abandon(self) -> None:
        self._producer.abandon()

    def _failed(self) -> SinkError:
        first, count = self._failures[0], len(self._failures)
        return SinkError(
            f"{count} event{'s' if count != 1 else ''} not delivered to {self.topic} at "
            f"{self._servers}: {type(first).__name__}: {first}"
        )
