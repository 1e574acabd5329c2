"""The ingester on a real broker and a real PostgreSQL: exactly once through kill -9 and broker
restarts, and malformed records kept and counted without stopping anything."""

import itertools
import json
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from flu_monitor import kafka_client
from flu_monitor.local.postgres_server import PostgresServer
from flu_monitor.warehouse import postgres as warehouse
from tests.local.conftest import (
    produce,
    raw_records,
    simulated_events,
    topic_offsets,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def assert_exactly_once(database_url, bootstrap_servers, topic, produced: list[bytes]):
    """The raw table holds every produced record once: same count, every (partition, offset) of
    the topic exactly once, and the same values (as a multiset)."""
    rows = raw_records(database_url)
    positions = Counter((p, o) for p, o, _ in rows)
    duplicated = [pos for pos, n in positions.items() if n > 1]
    assert not duplicated, f"{len(duplicated)} records stored twice, e.g. {duplicated[:3]}"
    expected = {
        (p, o) for p, end in topic_offsets(bootstrap_servers, topic).items() for o in range(end)
    }
    missing = expected - set(positions)
    assert not missing, f"{len(missing)} records lost, e.g. {sorted(missing)[:3]}"
    assert set(positions) == expected
    assert sorted(bytes(v) for _, _, v in rows) == sorted(produced)


def stored_count(database_url) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {warehouse.stand_in_table()}").fetchone()[0]


def test_kill9_at_random_moments_loses_and_duplicates_nothing(
    kafka_broker, kafka_topic, warehouse_db, ingester
):
    pool = simulated_events(30_000)
    rng = random.Random(20261129)
    bs = kafka_broker.bootstrap_servers
    kills_done = threading.Event()
    events: list[bytes] = []  # what the producer sent

    def steady_producer():  # ~2,000 events/s until the kills are done (a loaded machine is slow)
        producer = kafka_client.make_producer(bs)
        for i, event in enumerate(itertools.cycle(pool)):  # raw records: repeats are fine here
            if kills_done.is_set() and len(events) >= len(pool):
                break
            producer.send(kafka_topic, event)
            events.append(event)
            if i % 300 == 299:
                time.sleep(0.15)
        producer.flush()
        producer.close()

    flow = threading.Thread(target=steady_producer)
    flow.start()
    # Small batches and short polls: many transactions per second, so kills land mid-batch.
    options = ("--batch-size", "250", "--poll-ms", "20")
    stored_at_kill, flowing_at_kill = [], []
    try:
        for _ in range(5):
            before = stored_count(warehouse_db)
            process = ingester(bs, warehouse_db, kafka_topic, *options).start()
            wait_until(lambda b=before: stored_count(warehouse_db) > b, 120, "the ingester")
            time.sleep(rng.uniform(0.0, 0.6))  # a random instant while it is storing batches
            assert process.alive(), process.log()
            process.kill9()
            flowing_at_kill.append(flow.is_alive())
            stored_at_kill.append(stored_count(warehouse_db))
    finally:
        kills_done.set()
        flow.join()
    assert stored_at_kill == sorted(stored_at_kill), stored_at_kill
    assert all(flowing_at_kill), f"events stopped flowing before a kill: {flowing_at_kill}"

    final = ingester(bs, warehouse_db, kafka_topic, *options).start()
    wait_until(lambda: stored_count(warehouse_db) >= len(events), 120, "the last ingester")
    time.sleep(0.5)  # anything extra (a duplicate) would show up now
    final.stop()
    assert_exactly_once(warehouse_db, bs, kafka_topic, events)


def test_broker_restart_resumes_without_loss(kafka_server_factory, warehouse_db, ingester):
    broker = kafka_server_factory()
    bs = broker.bootstrap_servers
    broker.create_topic("flu_cases", partitions=3)
    events = simulated_events(6_000, seed=11)
    process = ingester(bs, warehouse_db, "flu_cases").start()

    produce(bs, "flu_cases", events[:3_000])
    wait_until(lambda: stored_count(warehouse_db) == 3_000, 60, "the first half")
    broker.stop()
    time.sleep(3)  # the ingester keeps polling a dead broker
    assert process.alive(), process.log()
    broker.start()
    produce(bs, "flu_cases", events[3_000:])
    wait_until(lambda: stored_count(warehouse_db) == 6_000, 90, "ingestion to resume")
    assert process.alive(), process.log()
    process.stop()
    assert_exactly_once(warehouse_db, bs, "flu_cases", events)


def _edited(event: bytes, **changes) -> bytes:
    data = json.loads(event)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data).encode()


def test_malformed_records_are_counted_by_reason_and_never_stop_ingestion(
    kafka_broker, kafka_topic, warehouse_db, ingester
):
    valid = simulated_events(300, seed=3)
    admitted = next(e for e in valid if json.loads(e)["admitted"])
    bad = {
        "invalid_json": [b"\xff\xfe\x00 not UTF-8", b"{not json", b"", None],
        "not_an_object": [b"[1, 2, 3]", b'"just a string"'],
        "oversized": [json.dumps({"padding": "x" * 70_000}).encode()],
        "missing_field:case_id": [_edited(valid[0], case_id=...)],
        "invalid_value:age": [_edited(valid[1], age=200)],
        "invalid_value:state_code": [_edited(valid[2], state_code="CA")],
        "unknown_county": [_edited(valid[3], state_code="NY", county_fips="36999")],
        "unknown_facility": [_edited(admitted, facility_id=999_999)],
    }
    records = list(valid)
    rng = random.Random(5)
    for reason_records in bad.values():
        for record in reason_records:
            records.insert(rng.randrange(len(records)), record)
    process = ingester(kafka_broker.bootstrap_servers, warehouse_db, kafka_topic).start()
    keys = [b"36001"] * len(records)  # a key lets the None value (a tombstone) be sent
    produce(kafka_broker.bootstrap_servers, kafka_topic, records, keys)
    wait_until(lambda: stored_count(warehouse_db) == len(records), 60, "every record stored")
    assert process.alive(), process.log()

    warehouse.refresh(warehouse_db)
    with psycopg.connect(warehouse_db) as conn:
        rejected = dict(conn.execute("SELECT reason, records FROM flu_rejected_records").fetchall())
        cases = conn.execute("SELECT count(*) FROM flu_cases").fetchone()[0]
        daily = conn.execute("SELECT sum(cases) FROM mv_daily_state_cases").fetchone()[0]
    assert rejected == {reason: len(items) for reason, items in bad.items()}
    assert cases == daily == len(valid)


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own (it is restarted), outside pytest's tmp root
    (which pytest closes to 0700 whenever another session starts)."""
    home = Path(tempfile.mkdtemp(prefix="flu-monitor-ingest-test-"))
    home.chmod(0o711)
    server = PostgresServer(home / "postgres").start()
    yield server
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


def test_database_restart_resumes_without_loss(kafka_broker, kafka_topic, own_postgres, ingester):
    database_url = own_postgres.url
    warehouse.apply(database_url)
    events = simulated_events(4_000, seed=12)
    bs = kafka_broker.bootstrap_servers
    process = ingester(bs, database_url, kafka_topic, "--batch-size", "500").start()
    produce(bs, kafka_topic, events[:2_000])
    wait_until(lambda: stored_count(database_url) == 2_000, 60, "the first half")

    own_postgres.stop()
    produce(bs, kafka_topic, events[2_000:3_000])  # arrives while the database is down
    time.sleep(2)
    assert process.alive(), process.log()
    own_postgres.start()
    produce(bs, kafka_topic, events[3_000:])
    wait_until(lambda: stored_count(database_url) == 4_000, 90, "ingestion to resume")
    time.sleep(0.5)
    assert process.alive(), process.log()
    process.stop()
    assert "resuming from the stored offsets" in process.log()
    assert_exactly_once(database_url, bs, kafka_topic, events)
