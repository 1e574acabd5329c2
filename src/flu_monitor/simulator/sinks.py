"""Where simulated events go: a JSONL file, stdout, or a Kafka topic.

Every sink takes contract dicts through write(event) and is closed with close() (flush, report
delivery failures). Lines and record values are compact UTF-8 JSON; the Kafka record key is the
county FIPS code so a county's events stay in one partition, in order.
"""

from __future__ import annotations

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

    def close(self) -> None:
        self._stream.flush()
        if self._close_stream:
            self._stream.close()


class KafkaSink:
    """Produce to a topic with kafka-python (acks=all, idempotent, batched; see kafka_client).

    The topic must exist (as on MSK, where a custom resource creates it) unless `partitions` is
    given, in which case a missing topic is created with that many partitions.
    """

    def __init__(self, conf: dict, topic: str, partitions: int | None = None):
        from flu_monitor import kafka_client

        self.topic = topic
        self._failures: list[Exception] = []
        servers = ",".join(conf["bootstrap_servers"])
        if partitions:
            kafka_client.ensure_topic(conf, topic, partitions)
        else:
            admin = kafka_client.make_admin(conf)
            try:
                if kafka_client.partition_count(admin, topic) is None:
                    raise SinkError(
                        f"topic {topic!r} does not exist at {servers}: create it first "
                        "(or pass --partitions N to create it)"
                    )
            finally:
                admin.close()
        self._producer = kafka_client.make_producer(conf)
        self._send = self._producer.send
        self._on_error = self._failures.append

    def write(self, event: dict) -> None:
        future = self._send(
            self.topic, key=event["county_fips"].encode(), value=orjson.dumps(event)
        )
        future.add_errback(self._on_error)

    def close(self) -> None:
        try:
            self._producer.flush()
        finally:
            self._producer.close()
        if self._failures:
            first = self._failures[0]
            raise SinkError(
                f"{len(self._failures)} events were not delivered to {self.topic}: "
                f"{type(first).__name__}: {first}"
            )
