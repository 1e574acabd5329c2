"""End-to-end benchmark of the local pipeline: producer -> Kafka -> ingester -> PostgreSQL ->
refresh -> analytics views, with the same processes `flu-monitor up` runs.

Measures, on a private broker and cluster under .state/bench-pipeline/:
  1. freshness at 1,000 events/s: for every event, the time from the producer's send() to the
     first moment the analytics view mv_daily_state_cases counts it (p50, p95, max);
  2. a rate ramp (1k, 2k, 4k, ... events/s, 20 s each, then two steps halving the gap between
     the last rate sustained and the first not): the highest rate the pipeline sustains (keeps
     up with: end-to-end rate >= 95 % of the offered rate, and p95 freshness <= 5 s), and the
     highest end-to-end rate any phase reached (the pipeline's capacity);
  3. a burst: 100,000 events produced as fast as possible, events/s until all are visible;
  4. components alone: the ingester draining a backlog (no refresh), and one refresh of the
     200,000 records it stored, with the time of each view.
Each phase also records where the CPU went (cores used by the producer, broker, ingester,
refresher, PostgreSQL, and anything else on the machine): on 2 cores, what limits the rate.

    .venv/bin/python bench/bench_pipeline.py [--quick]

Writes bench/results/pipeline.json (latest run) and appends a row to bench/results/pipeline.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from flu_monitor import kafka_client
from flu_monitor.local.kafka_server import KafkaServer
from flu_monitor.local.postgres_server import PostgresServer
from flu_monitor.paths import ROOT, STATE_DIR
from flu_monitor.warehouse import postgres as warehouse

RESULTS = ROOT / "bench" / "results"
STATE = STATE_DIR / "bench-pipeline"
TOPIC = "flu_cases"
POOL = 200_000  # distinct simulator events, sent round-robin with a new case_id on every lap
REFRESH_EVERY = 0.5  # refresher cadence (seconds between refresh starts) for the runs below
VISIBLE_SQL = "SELECT COALESCE(SUM(cases), 0) FROM mv_daily_state_cases"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- producer (own process, so its CPU and GIL do not disturb the measurements) -----------------


def unique_event(events: list[bytes], i: int) -> bytes:
    """The i-th event sent: the pool round-robin, from the second lap on with the lap number
    added to its case_id's first 4 hex digits (the warehouse rejects a repeated case_id; an
    addition, unlike a replacement, never gives an event back its own id)."""
    event = events[i % len(events)]
    lap = i // len(events)
    if not lap:
        return event
    at = event.index(b'"case_id":"') + 11
    digits = (int(event[at : at + 4], 16) + lap) % 0x10000
    return b"%b%04x%b" % (event[:at], digits, event[at + 4 :])


def _produce(bootstrap, events_file, first, rate, seconds, total, out):
    """Send events at `rate`/s for `seconds` (or `total` as fast as possible when rate is None),
    the `first`-th event of the run first; report (count, wall time) checkpoints every 10 ms of
    sending."""
    events = Path(events_file).read_bytes().splitlines()
    producer = kafka_client.make_producer(bootstrap)
    checkpoints, sent = [], 0
    start = time.time()
    goal = total if rate is None else int(rate * seconds)
    while sent < goal:
        if rate is not None:
            due = min(goal, int((time.time() - start) * rate) + 1)
            if due <= sent:
                time.sleep(0.002)
                continue
        else:
            due = min(goal, sent + 1000)
        for i in range(first + sent, first + due):
            producer.send(TOPIC, unique_event(events, i))
        sent = due
        checkpoints.append((sent, time.time()))
    producer.flush()
    producer.close()
    out.send((checkpoints, sum(os.times()[:2])))  # and the producer's own CPU seconds
    out.close()


_sent_before = [0]  # events every earlier phase sent: each phase sends new case_ids


def produce(bootstrap, events_file, rate=None, seconds=0.0, total=0):
    receive, send = multiprocessing.Pipe(duplex=False)
    first = _sent_before[0]
    _sent_before[0] += total if rate is None else int(rate * seconds)
    process = multiprocessing.Process(
        target=_produce, args=(bootstrap, events_file, first, rate, seconds, total, send)
    )
    process.start()
    return process, receive


# -- observing the views ----------------------------------------------------------------------


class Watcher(threading.Thread):
    """Polls the number of cases the analytics view shows, every 50 ms, with the wall time."""

    def __init__(self, database_url):
        super().__init__(daemon=True)
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.samples: list[tuple[int, float]] = []
        self.stop = threading.Event()

    def visible(self) -> int:
        return int(self.conn.execute(VISIBLE_SQL).fetchone()[0])

    def run(self):
        while not self.stop.is_set():
            self.samples.append((self.visible(), time.time()))
            time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def freshness(checkpoints, samples, base: int) -> list[float]:
    """Per produced checkpoint (a group of events sent together): seconds until visible."""
    out, j = [], 0
    for count, sent_at in checkpoints:
        while j < len(samples) and samples[j][0] - base < count:
            j += 1
        if j == len(samples):
            break
        out.append(max(0.0, samples[j][1] - sent_at))
    return out


def run_phase(pipeline, label, rate=None, seconds=0.0, total=0, settle_s=60.0) -> dict:
    watcher = Watcher(pipeline.database_url)
    base = watcher.visible()
    watcher.start()
    cpu_before = pipeline.cpu_seconds()
    process, receive = produce(pipeline.bootstrap, pipeline.events_file, rate, seconds, total)
    checkpoints, producer_cpu = receive.recv()
    process.join()
    produced = checkpoints[-1][0]
    stopped_at = checkpoints[-1][1]
    deadline = time.time() + settle_s
    while watcher.samples[-1][0] - base < produced and time.time() < deadline:
        time.sleep(0.1)
    cpu = pipeline.cpu_seconds()
    watcher.stop.set()
    watcher.join()
    visible = watcher.samples[-1][0] - base
    all_visible_at = next((t for n, t in watcher.samples if n - base >= produced), None)
    ages = freshness(checkpoints, watcher.samples, base)
    first = checkpoints[0][1]
    result = {
        "phase": label,
        "target_events_per_s": rate,
        "produced": produced,
        "visible": visible,
        "producer_events_per_s": round(produced / max(stopped_at - first, 1e-9)),
        "end_to_end_events_per_s": (
            round(produced / (all_visible_at - first)) if all_visible_at else None
        ),
        "lag_after_producer_stopped_s": (
            round(all_visible_at - stopped_at, 2) if all_visible_at else None
        ),
        "freshness_p50_s": round(percentile(ages, 0.50), 3) if ages else None,
        "freshness_p95_s": round(percentile(ages, 0.95), 3) if ages else None,
        "freshness_max_s": round(max(ages), 3) if ages else None,
    }
    # Where the CPU went, in cores (CPU seconds per second) from the first send until all was
    # visible (or the settle timeout): what limits the rate on a 2-core machine.
    wall = time.time() - first
    used = {k: (cpu[k] - cpu_before[k]) / wall for k in cpu}
    used["producer"] = producer_cpu / wall
    used["other processes"] = used.pop("machine") - sum(
        v
        for k, v in used.items()
        if not k.startswith("postgresql:")  # parts of postgresql
    )
    result["cpu_cores"] = {k: round(v, 2) for k, v in used.items()}
    log(f"{label}: {json.dumps(result)}")
    return result


# -- the pipeline under test -------------------------------------------------------------------


class Pipeline:
    def __init__(self):
        shutil.rmtree(STATE, ignore_errors=True)
        STATE.mkdir(parents=True)
        self.kafka = KafkaServer(STATE / "kafka").start()
        self.postgres = PostgresServer(STATE / "postgres").start()
        self.bootstrap = self.kafka.bootstrap_servers
        self.database_url = self.postgres.url
        self.kafka.create_topic(TOPIC, partitions=3)
        warehouse.apply(self.database_url)
        self.events_file = STATE / "events.jsonl"
        subprocess.run(
            [sys.executable, "-m", "flu_monitor", "simulate", "--seed", "1", "--count", str(POOL)]
            + ["--sink", "jsonl", "--out", str(self.events_file), "--quiet"],
            check=True,
        )
        self.children: dict[str, subprocess.Popen] = {}

    def spawn(self, name, *args):
        log_file = open(STATE / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "flu_monitor", *args], stdout=log_file, stderr=log_file
        )

    def start_ingester(self):
        self.spawn("ingest", "ingest", "--bootstrap-servers", self.bootstrap, "--database-url",
                   self.database_url, "--topic", TOPIC)  # fmt: skip

    def start_refresher(self):
        self.spawn("refresh", "refresh", "--database-url", self.database_url, "--every",
                   str(REFRESH_EVERY))  # fmt: skip

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far of the broker, ingester, refresher, PostgreSQL (every server
        process, exited backends included; and the refresh and ingest backends alone) and the
        whole machine."""
        postmaster = int((self.postgres.data_dir / "postmaster.pid").read_text().split()[0])
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            backends = dict(
                conn.execute(
                    "SELECT application_name, pid FROM pg_stat_activity "
                    "WHERE application_name IN ('flu-monitor refresh', 'flu-monitor ingest')"
                ).fetchall()
            )
        return {
            "postgresql: refresh backend": _cpu(backends.get("flu-monitor refresh")),
            "postgresql: ingest backend": _cpu(backends.get("flu-monitor ingest")),
            "kafka broker": _cpu(self.kafka.pid),
            "ingester": _cpu(self.children["ingest"].pid) if "ingest" in self.children else 0.0,
            "refresher": _cpu(self.children["refresh"].pid) if "refresh" in self.children else 0.0,
            "postgresql": _cpu(postmaster, children=True)
            + sum(_cpu(pid) for pid in _descendants(postmaster)),
            "machine": _machine_cpu(),
        }

    def stop_child(self, name):
        process = self.children.pop(name)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    def close(self):
        for name in list(self.children):
            self.stop_child(name)
        self.kafka.stop()
        self.postgres.stop()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int | None, children: bool = False) -> float:
    """User + system CPU seconds of a live process (+ of its exited, reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def _descendants(root: int) -> list[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
        except OSError:
            continue
        parents[int(pid)] = int(rest.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _machine_cpu() -> float:
    """Busy CPU seconds of the whole machine (all cores; /proc/stat minus idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS


def raw_count(database_url) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        table = warehouse.stand_in_table()
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def ingester_alone(pipeline, total) -> dict:
    """Backlog of `total` records in Kafka, refresher off: how fast the ingester stores them."""
    pipeline.stop_child("refresh")
    pipeline.stop_child("ingest")
    warehouse.refresh(pipeline.database_url)  # empty the stand-in
    process, receive = produce(pipeline.bootstrap, pipeline.events_file, total=total)
    receive.recv()
    process.join()
    launched = time.time()
    pipeline.start_ingester()
    first = 0
    while first == 0:  # the clock starts at the first stored batch (process start excluded)
        first = raw_count(pipeline.database_url)
        start = time.time()
        time.sleep(0.01)
    while raw_count(pipeline.database_url) < total:
        time.sleep(0.05)
    seconds = time.time() - start
    result = {"records": total - first, "seconds": round(seconds, 2)}
    result["records_per_s"] = round((total - first) / seconds)
    result["process_start_to_first_batch_s"] = round(start - launched, 2)
    log(f"ingester alone: {result}")
    return result


def refresh_profile(pipeline) -> dict:
    """One refresh of the records already in the stand-in, view by view."""
    pending = raw_count(pipeline.database_url)
    outcome = warehouse.refresh(pipeline.database_url)
    timings = {k: round(v, 3) for k, v in sorted(outcome.timings.items(), key=lambda kv: -kv[1])}
    result = {
        "new_records": pending,
        "seconds": round(outcome.seconds, 2),
        "records_per_s": round(pending / outcome.seconds) if outcome.seconds else None,
        "seconds_by_view": timings,
    }
    log(f"refresh profile: {result}")
    return result


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_1min_before": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases (smoke run)")
    args = parser.parse_args()
    seconds = 10 if args.quick else 30
    ramp_seconds = 10 if args.quick else 20

    log("starting Kafka and PostgreSQL, generating events")
    pipeline = Pipeline()
    results: dict = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": {
            "partitions": 3,
            "refresh_every_s": REFRESH_EVERY,
            "ingest_batch_size": 20_000,
            "ingest_poll_ms": 100,
            "visible_in": "mv_daily_state_cases (SUM of cases)",
        },
    }
    try:
        pipeline.start_ingester()
        pipeline.start_refresher()
        results["at_1000_per_s"] = run_phase(pipeline, "1,000/s", rate=1000, seconds=seconds)
        ramp = []

        def ramp_step(rate: int) -> bool:
            step = run_phase(pipeline, f"{rate:,}/s", rate=rate, seconds=ramp_seconds)
            # Keeping up: a backlog that grows during the phase is not a sustained rate.
            step["sustained"] = bool(
                step["end_to_end_events_per_s"] is not None
                and step["end_to_end_events_per_s"] >= 0.95 * rate
                and step["freshness_p95_s"] is not None
                and step["freshness_p95_s"] <= 5
            )
            ramp.append(step)
            return step["sustained"]

        low, high = 1000, None
        for rate in (2000, 4000, 8000, 16000, 32000, 50000):
            if not ramp_step(rate):
                high = rate
                break
            low = rate
        for _ in range(0 if args.quick else 2):  # narrow the gap between the last two steps
            if high is None or high - low <= 1000:
                break
            middle = (low + high) // 2000 * 1000
            low, high = (middle, high) if ramp_step(middle) else (low, middle)
        results["ramp"] = ramp
        sustained = [s["target_events_per_s"] for s in ramp if s["sustained"]]
        if results["at_1000_per_s"]["freshness_p95_s"] is not None:
            sustained = [1000, *sustained]
        results["highest_sustained_events_per_s"] = max(sustained, default=None)
        burst = 20_000 if args.quick else 100_000
        results["burst"] = run_phase(pipeline, "burst", total=burst, settle_s=600)
        results["highest_end_to_end_events_per_s"] = max(
            s["end_to_end_events_per_s"] or 0 for s in [*ramp, results["burst"]]
        )
        results["ingester_alone"] = ingester_alone(pipeline, 50_000 if args.quick else 200_000)
        results["refresh_profile"] = refresh_profile(pipeline)
    finally:
        pipeline.close()
    write(results, quick=args.quick)


def write(results: dict, quick: bool) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pipeline.json").write_text(json.dumps(results, indent=2) + "\n")
    table = RESULTS / "pipeline.md"
    if not table.exists():
        table.write_text(
            "# Local pipeline benchmark (bench/bench_pipeline.py)\n\n"
            "Producer -> Kafka -> ingester -> PostgreSQL -> refresh -> mv_daily_state_cases.\n"
            "Freshness: producer send() to first visible in the view. Details: pipeline.json.\n\n"
            "| date | machine | fresh p50 / p95 at 1k/s (s) | highest sustained (ev/s) "
            "| highest end-to-end (ev/s) | burst end-to-end (ev/s) | ingester alone (rec/s) "
            "| refresh (rec/s) | run |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        )
    m = results["machine"]
    at1k = results["at_1000_per_s"]
    row = (
        f"| {results['date']} | {m['cores']} cores, {m['cpu']}, load "
        f"{m['load_average_1min_before']} | "
        f"{at1k['freshness_p50_s']} / {at1k['freshness_p95_s']} | "
        f"{results['highest_sustained_events_per_s']} | "
        f"{results['highest_end_to_end_events_per_s']} | "
        f"{results['burst']['end_to_end_events_per_s']} | "
        f"{results['ingester_alone']['records_per_s']} | "
        f"{results['refresh_profile']['records_per_s']} | {'quick' if quick else 'full'} |\n"
    )
    with open(table, "a", encoding="utf-8") as f:
        f.write(row)
    log(f"results: {RESULTS / 'pipeline.json'}")


if __name__ == "__main__":
    main()
