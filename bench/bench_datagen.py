"""The real datagen plugin on a real Kafka Connect worker: what it costs and what it draws.

Runs the plugin (../shared/vendor/, see tests/fixtures/connect.py) with the project's connector
and worker configuration in the worker version MSK Connect runs, against a local broker, and
measures:

1. at the configured throttle: records/s and the worker's CPU, as a share of one core and as
   CPU-seconds per hour (an MSK Connect unit is 1 vCPU);
2. the plugin's generator threads (frames of TopicSequenceGenerator in `jcmd Thread.print`, so a
   JDK is needed) and the CPU they take, after each of three task restarts and after deleting
   the connector - the threads the plugin starts and never stops;
3. with the throttle lifted, each field's measured distribution against the one
   docs/contract.md states (chi-square p-value, share of the rarest and commonest value).

Writes bench/results/datagen.json and bench/results/datagen.md.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_functions import machine  # noqa: E402
from flu_monitor import contract, kafka_client  # noqa: E402
from flu_monitor.local.kafka_server import KafkaServer  # noqa: E402
from tests.fixtures.connect import ConnectWorker, connector_config, msk_connect_version  # noqa: E402
from tests.stream.test_connector_config import check_config  # noqa: E402
from tests.stream.test_datagen_plugin import (  # noqa: E402
    checked_parts,
    chi_square_p_value,
)

RESULTS = REPO / "bench" / "results"
FRAME = "TopicSequenceGenerator"
STEADY_S = 120
AFTER_RESTART_S = 60
DISTRIBUTION_RECORDS = 4000


def end_offset(broker) -> int:
    from kafka import TopicPartition

    consumer = kafka_client.make_consumer(broker.bootstrap_servers, None)
    try:
        partitions = [TopicPartition(contract.TOPIC, p) for p in range(3)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def window(worker, broker, seconds: float) -> dict:
    """Records written, records/s and the worker's CPU over `seconds`."""
    records0, cpu0, t0 = end_offset(broker), worker.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    records, cpu = end_offset(broker) - records0, worker.cpu_seconds() - cpu0
    return {
        "seconds": round(elapsed),
        "records_per_s": round(records / elapsed, 2),
        "cpu_share_of_one_core": round(cpu / elapsed, 3),
        "cpu_seconds_per_hour": round(cpu / elapsed * 3600),
        "generator_threads": worker.threads_in(FRAME),
    }


def leak(tmp: Path) -> dict:
    """The configured connector: steady state, three task restarts, then the connector deleted."""
    phases = {}
    with KafkaServer(tmp / "kafka-leak") as broker:
        broker.create_topic(contract.TOPIC, partitions=3)
        (tmp / "leak").mkdir()
        version = msk_connect_version()
        with ConnectWorker(tmp / "leak", broker.bootstrap_servers, version) as worker:
            worker.wait_running()
            time.sleep(20)  # past the worker's start-up
            phases["configured throttle, 1 task"] = window(worker, broker, STEADY_S)
            for restart in (1, 2, 3):
                worker.restart_task()
                worker.wait_running()
                phases[f"after task restart {restart}"] = window(worker, broker, AFTER_RESTART_S)
            worker.delete_connector()
            phases["connector deleted"] = window(worker, broker, AFTER_RESTART_S)
    return phases


def distributions(tmp: Path) -> dict:
    with KafkaServer(tmp / "kafka-dist") as broker:
        broker.create_topic(contract.TOPIC, partitions=3)
        (tmp / "dist").mkdir()
        consumer = kafka_client.make_consumer(broker.bootstrap_servers, None, [contract.TOPIC])
        records: list = []
        started = time.monotonic()
        with ConnectWorker(
            tmp / "dist", broker.bootstrap_servers, msk_connect_version(),
            overrides={"global.throttle.ms": "0"},
        ) as worker:  # fmt: skip
            worker.wait_running()
            while len(records) < DISTRIBUTION_RECORDS:
                for batch in consumer.poll(timeout_ms=1000).values():
                    records.extend(batch)
        consumer.close()
        elapsed = time.monotonic() - started
    values = [orjson.loads(r.value) for r in records[:DISTRIBUTION_RECORDS]]
    fields = {}
    for field, expression in check_config(connector_config()).items():
        short = expression if len(expression) < 60 else expression[:57] + "..."
        parts = checked_parts(field, expression)
        if not parts:
            distinct = len({v[field] for v in values})
            fields[field] = {"expression": short, "distinct_values": distinct}
            continue
        for name, part, part_expected in parts:
            counts = collections.Counter(part(v[field]) for v in values)
            shares = {k: c / len(values) for k, c in counts.items()}
            fields[name] = {
                "expression": short,
                "distinct_values": len(counts),
                "p_value": round(chi_square_p_value(counts, part_expected), 4),
                "expected_min_share": round(min(part_expected.values()), 5),
                "expected_max_share": round(max(part_expected.values()), 5),
                "measured_min_share": round(min(shares.values()), 5),
                "measured_max_share": round(max(shares.values()), 5),
                "commonest": max(shares, key=shares.get),
            }
    return {"records": len(values), "records_per_s_unthrottled": round(len(values) / elapsed, 1),
            "fields": fields}  # fmt: skip


def main(argv: list[str]) -> int:
    """`--distributions-only` measures the draws again and keeps the recorded leak figures."""
    previous = RESULTS / "datagen.json"
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "benchmark": "datagen plugin on a Kafka Connect worker (bench/bench_datagen.py)",
            "date": dt.date.today().isoformat(),
            "machine": machine(),
            "connect_version": msk_connect_version(),
            "configuration": {k: v for k, v in connector_config().items() if "global" in k},
        }
        if "--distributions-only" in argv:
            result["leak"] = json.loads(previous.read_text())["leak"]
        else:
            result["leak"] = leak(Path(tmp))
        result["distributions"] = distributions(Path(tmp))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "datagen.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        "# Datagen plugin on a real Kafka Connect worker",
        "",
        f"Measured {result['date']} on {m['cpu']} ({m['cores']} cores, load average "
        f"{m['load_average_1min']} at the end), Kafka Connect {result['connect_version']} "
        "standalone, amazon-msk-data-generator 0.4, the project's connector/ configuration "
        f"({', '.join(f'{k}={v}' for k, v in result['configuration'].items())}), by "
        "`bench/bench_datagen.py`.",
        "",
        "## CPU and the generator threads the plugin never stops",
        "",
        "| phase | records/s | worker CPU (share of one core) | CPU-seconds per hour "
        "| TopicSequenceGenerator threads |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for phase, w in result["leak"].items():
        lines.append(
            f"| {phase} ({w['seconds']} s) | {w['records_per_s']} | {w['cpu_share_of_one_core']} "
            f"| {w['cpu_seconds_per_hour']:,} | {w['generator_threads']} |"
        )
    d = result["distributions"]
    lines += [
        "",
        f"## What it draws ({d['records']} records, throttle lifted: "
        f"{d['records_per_s_unthrottled']} records/s)",
        "",
        "Expected: what docs/contract.md states (tests/stream/test_datagen_plugin.py computes it "
        "from the expression; for resident_number, the county and state it gives from the 2020 "
        "populations, counties pooled). p: chi-square test of the measured counts against it.",
        "",
        "| field | expression | distinct | p | expected share min / max | measured min / max "
        "| commonest |",
        "| --- | --- | ---: | ---: | --- | --- | --- |",
    ]
    for field, f in d["fields"].items():
        if "p_value" not in f:
            lines.append(f"| {field} | `{f['expression']}` | {f['distinct_values']} | | | | |")
            continue
        lines.append(
            f"| {field} | `{f['expression']}` | {f['distinct_values']} | {f['p_value']} | "
            f"{f['expected_min_share']:.2%} / {f['expected_max_share']:.2%} | "
            f"{f['measured_min_share']:.2%} / {f['measured_max_share']:.2%} | {f['commonest']} |"
        )
    (RESULTS / "datagen.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
