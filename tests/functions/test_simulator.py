"""functions/simulator, the AWS event source, against the REAL local broker (PLAINTEXT; on AWS the
same producer speaks SASL_SSL with a locally signed MSK IAM token): the backfill custom resource
through CloudFormation's ResponseURL, the scheduled minute as EventBridge Scheduler sends it, and
the events compared with `flu-monitor simulate` and the simulator library for the same seed."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import socket
import time
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
from click.testing import CliRunner

from flu_monitor import kafka_client
from flu_monitor.cli import main
from flu_monitor.simulator import Simulator, load_scenario
from tests.functions.conftest import ACCOUNT, REGION, load_function

pytestmark = pytest.mark.kafka

CLUSTER = (
    f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/flu-msk/0a1b2c3d-4e5f-6789-abcd-ef0123456789-s1"
)
_names = itertools.count(1)


@pytest.fixture
def topic(kafka_broker, monkeypatch):
    name = f"flu_cases_sim{next(_names)}"
    kafka_broker.create_topic(name, partitions=3)
    monkeypatch.setenv("TOPIC", name)
    return name


@pytest.fixture
def fn(kafka_broker, monkeypatch):
    module = load_function("simulator")
    local = kafka_client.client_config(kafka_broker.bootstrap_servers, timeout_s=5)
    monkeypatch.setattr(module, "connection_config", lambda: local)
    return module


def read_all(broker, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    consumer = kafka_client.make_consumer(broker.bootstrap_servers, None, [topic])
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if len(records) >= expected:
                # wait a little longer: more than expected would be duplicates
                for batch in consumer.poll(timeout_ms=1000).values():
                    records.extend(batch)
                break
    finally:
        consumer.close()
    return records


def as_events(records) -> list[dict]:
    for record in records:
        assert record.key == orjson.loads(record.value)["county_fips"].encode()
    return sorted((orjson.loads(r.value) for r in records), key=lambda e: e["case_id"])


def props(**overrides):
    return {"Scenario": "default", "Seed": "7", "Speed": "1", "BackfillDays": "2",
            "CodeVersion": "1", **overrides}  # fmt: skip


def minute(scheduled: str, **overrides) -> dict:
    """The input EventBridge Scheduler sends (nested/events.yaml, Schedule.Target.Input)."""
    event = {"scheduled_time": scheduled, "scenario": "default", "seed": 7, "speed": 60,
             "anchor": "2026-01-05", "live_from": "2026-01-05T00:00:00Z"}  # fmt: skip
    return {**event, **overrides}


def test_backfill_writes_the_history_up_to_live_from_and_answers_it(fn, cfn, kafka_broker, topic):
    before = dt.datetime.now(dt.UTC)
    body = cfn.invoke(fn, cfn.request("Create", props(), resource_type="Custom::SimulatorBackfill"))
    assert body["Status"] == "SUCCESS", body["Reason"]
    live_from = dt.datetime.fromisoformat(body["Data"]["LiveFrom"].replace("Z", "+00:00"))
    # The next whole minute plus the margin: the schedule exists before the live part starts.
    assert live_from.second == 0 and before < live_from <= before + dt.timedelta(minutes=5)
    assert body["Data"]["Anchor"] == live_from.date().isoformat()
    assert body["PhysicalResourceId"] == f"flu-simulator-live-from-{body['Data']['LiveFrom']}"
    # Exactly what the local pipeline's backfill writes for the same seed and instant.
    sim = Simulator.backfilled(load_scenario(), seed=7, days=2, now=live_from)
    expected = sorted(sim.events(until=live_from), key=lambda e: e["case_id"])
    assert int(body["Data"]["Events"]) == len(expected) > 1000
    assert as_events(read_all(kafka_broker, topic, len(expected))) == expected


def test_a_scheduled_minute_writes_what_flu_monitor_simulate_writes(
    fn, kafka_broker, topic, tmp_path
):
    # speed 60: the run scheduled at 00:16 stands for real [00:15, 00:16) = simulated [15:00, 16:00)
    answer = fn.handler(minute("2026-01-05T00:16:00Z"), None)
    assert answer["window"] == ["2026-01-05T15:00:00Z", "2026-01-05T16:00:00Z"]
    out = tmp_path / "day.jsonl"
    result = CliRunner().invoke(
        main, ["simulate", "--seed", "7", "--start", "2026-01-05", "--days", "1", "--quiet",
               "--sink", "jsonl", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = sorted(
        (e for e in map(orjson.loads, out.read_bytes().splitlines())
         if "2026-01-05T15:00:00Z" <= e["event_time"] < "2026-01-05T16:00:00Z"),
        key=lambda e: e["case_id"],
    )  # fmt: skip
    assert answer["events"] == len(expected) > 50
    assert as_events(read_all(kafka_broker, topic, len(expected))) == expected


def test_consecutive_minutes_tile_simulated_time(fn, kafka_broker, topic):
    first = fn.handler(minute("2026-01-05T00:10:00Z"), None)
    second = fn.handler(minute("2026-01-05T00:11:00Z"), None)
    assert first["window"][1] == second["window"][0]
    both = as_events(read_all(kafka_broker, topic, first["events"] + second["events"]))
    sim = Simulator(load_scenario(), 7, start=dt.date(2026, 1, 5))
    expected = sorted(
        (e for e in sim.events(until=dt.datetime(2026, 1, 5, 11, tzinfo=dt.UTC))
         if e["event_time"] >= "2026-01-05T09:00:00Z"),
        key=lambda e: e["case_id"],
    )  # fmt: skip
    assert both == expected


def test_minutes_before_live_from_write_nothing(fn, kafka_broker, topic):
    answer = fn.handler(minute("2026-01-05T00:00:00Z"), None)
    assert answer == {"events": 0, "window": None}
    assert read_all(kafka_broker, topic, 1, timeout_s=3) == []


def test_a_malformed_schedule_input_is_named(fn):
    with pytest.raises(fn.EventSourceError, match="schedule input is malformed.*'live_from'"):
        fn.handler({"scheduled_time": "2026-01-05T00:10:00Z"}, None)
    with pytest.raises(fn.EventSourceError, match="scheduled_time has no time zone"):
        fn.handler(minute("2026-01-05T00:10:00"), None)
    with pytest.raises(
        fn.EventSourceError, match="scenario 'nope' is not one of county_outbreak, default"
    ):
        fn.handler(minute("2026-01-05T00:10:00Z", scenario="nope"), None)


def test_a_minute_that_cannot_be_written_fails_the_run(fn, monkeypatch, topic):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(
        fn, "connection_config", lambda: kafka_client.client_config(dead, timeout_s=1)
    )
    # Raised, so Lambda retries the run and then sends its input to the dead-letter queue.
    with pytest.raises(kafka_client.KafkaUnavailable, match=f"no Kafka broker answered at {dead}"):
        fn.handler(minute("2026-01-05T00:10:00Z"), None)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"Scenario": "nope"}, "scenario 'nope' is not one of county_outbreak, default"),
        ({"Seed": "-1"}, "property Seed must be at least 0, not -1"),
        ({"Speed": "0"}, "property Speed must be at least 1, not 0"),
        ({"BackfillDays": "x"}, "property BackfillDays must be an integer, not 'x'"),
    ],
)
def test_bad_properties_fail_the_create_with_the_reason(fn, cfn, topic, overrides, reason):
    body = cfn.invoke(fn, cfn.request("Create", props(**overrides)))
    assert (body["Status"], body["Reason"]) == ("FAILED", reason)


def test_update_keeps_live_from_and_refuses_to_rewrite_history(fn, cfn, topic):
    physical = "flu-simulator-live-from-2026-01-05T10:04:00Z"
    same = cfn.invoke(fn, cfn.request("Update", props(CodeVersion="2"), props(), physical))
    assert same["Status"] == "SUCCESS", same["Reason"]
    assert same["PhysicalResourceId"] == physical
    assert same["Data"] == {"LiveFrom": "2026-01-05T10:04:00Z", "Anchor": "2026-01-05"}
    changed = cfn.invoke(fn, cfn.request("Update", props(Seed="8", Speed="60"), props(), physical))
    assert changed["Status"] == "FAILED"
    assert changed["Reason"].startswith("Seed, Speed cannot change on an existing stack")


def test_delete_leaves_the_events_in_the_topic(fn, cfn, monkeypatch, topic):
    monkeypatch.setattr(fn, "connection_config", lambda: pytest.fail("must not connect"))
    event = cfn.request(
        "Delete", props(), physical_id="flu-simulator-live-from-2026-01-05T10:04:00Z"
    )
    assert cfn.invoke(fn, event)["Status"] == "SUCCESS"


def test_on_aws_the_producer_signs_msk_iam_tokens_locally(monkeypatch):
    module = load_function("simulator")
    monkeypatch.setenv("BOOTSTRAP_SERVERS", "b-1.flu.kafka.us-east-1.amazonaws.com:9098")
    monkeypatch.setenv("CLUSTER_ARN", CLUSTER)
    conf = kafka_client.librdkafka_config(module.connection_config())  # the sink's producer
    assert (conf["security.protocol"], conf["sasl.mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    token, _expiry = conf["oauth_cb"]("")  # no network: a presigned URL
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    assert url.netloc == f"kafka.{REGION}.amazonaws.com"
    assert parse_qs(url.query)["Action"] == ["kafka-cluster:Connect"]
    monkeypatch.delenv("CLUSTER_ARN")
    with pytest.raises(module.EventSourceError, match="BOOTSTRAP_SERVERS and CLUSTER_ARN"):
        module.connection_config()


@pytest.mark.postgres
def test_the_backfill_puts_the_planted_outbreaks_on_the_alert_list(fn, cfn, kafka_broker, topic,
                                                                   postgres_db):  # fmt: skip
    """The dashboard's alert list (v_current_alerts: the last whole day) after the backfill the
    stack writes at creation, through the real warehouse SQL, as `make demo` shows it."""
    from flu_monitor.warehouse import postgres
    from tests.warehouse.conftest import ingest, query

    body = cfn.invoke(fn, cfn.request("Create", props(Seed="1", BackfillDays="21")))
    assert body["Status"] == "SUCCESS", body["Reason"]
    records = read_all(kafka_broker, topic, int(body["Data"]["Events"]))
    postgres.apply(postgres_db, refresh_after=False)
    ingest(postgres_db, [r.value for r in records])
    alerted = {
        county for (county,) in query(postgres_db, "SELECT county_fips FROM v_current_alerts")
    }
    # Kings County, NY (Brooklyn schools) and Lancaster County, PA (long-term care).
    assert {"36047", "42071"} <= alerted, alerted
