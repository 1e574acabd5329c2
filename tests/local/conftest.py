"""Local-pipeline test helpers: a warehouse database, real ingester processes, a producer."""

import subprocess
import sys
import time

import psycopg
import pytest

from flu_monitor import kafka_client
from flu_monitor.warehouse import postgres as warehouse
from tests.warehouse.conftest import ON_APPLIED


@pytest.fixture
def warehouse_db(postgres_copy):
    """A fresh database with sql/ applied (translated for PostgreSQL) and refreshed once, as
    `flu-monitor db apply` leaves it: a copy of one made so once per session (see the warehouse
    fixture in tests/warehouse/conftest.py), itself made by `apply` on a copy of the applied one."""
    return postgres_copy("warehouse_applied_refreshed", warehouse.apply, base=ON_APPLIED)


class IngesterProcess:
    """`flu-monitor ingest` as its own process, the way `flu-monitor up` runs it."""

    def __init__(self, bootstrap_servers, database_url, topic, log_path, *extra):
        self.args = [sys.executable, "-m", "flu_monitor", "ingest"]
        self.args += ["--bootstrap-servers", bootstrap_servers, "--database-url", database_url]
        self.args += ["--topic", topic, *extra]
        self.log_path = log_path
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill9(self):
        self.process.kill()
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def ingester(tmp_path):
    started = []

    def make(bootstrap_servers, database_url, topic, *extra) -> IngesterProcess:
        log = tmp_path / f"ingest-{len(started)}.log"
        process = IngesterProcess(bootstrap_servers, database_url, topic, log, *extra)
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


def produce(bootstrap_servers, topic, values, keys=None) -> None:
    producer = kafka_client.make_producer(bootstrap_servers)
    for i, value in enumerate(values):
        producer.send(topic, key=keys[i] if keys else None, value=value)
    producer.flush()
    producer.close()


def topic_offsets(bootstrap_servers, topic) -> dict[int, int]:
    """End offset of every partition of the topic."""
    from kafka import TopicPartition

    consumer = kafka_client.make_consumer(bootstrap_servers, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def raw_records(database_url) -> list[tuple]:
    """(partition, offset, value) of every row in the raw stand-in, duplicates included."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            f"SELECT kafka_partition, kafka_offset, kafka_value FROM {warehouse.stand_in_table()} "
            "ORDER BY kafka_partition, kafka_offset"
        ).fetchall()


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def simulated_events(count: int, seed: int = 7) -> list[bytes]:
    """`count` contract-valid events from the simulator's documented CLI interface."""
    done = subprocess.run(
        [sys.executable, "-m", "flu_monitor", "simulate", "--seed", str(seed)]
        + ["--count", str(count), "--sink", "stdout", "--quiet"],
        capture_output=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == count
    return lines
