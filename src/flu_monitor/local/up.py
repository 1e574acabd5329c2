"""`flu-monitor up`: the whole pipeline on this machine, one command, nothing left behind.

Steps: Kafka (a KRaft broker from Maven jars) and a private PostgreSQL cluster under .state/ on
free localhost ports (or existing ones given by --bootstrap-servers / --database-url), the topic,
the warehouse SQL, then four processes — simulator (history first, then live), ingester,
refresher, dashboard — and the dashboard URL once the history is visible. Ctrl-C (or SIGTERM)
stops the processes in order (producer first, so the ingester stores what was produced), then the
services it started. Process logs go to .state/logs/.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import click

from flu_monitor.paths import SCENARIO_DIR, STATE_DIR

TOPIC_PARTITIONS = 3
DATABASE = "flu_monitor"
HISTORY_DAYS = 28
REFRESH_SECONDS = 1.0  # an idle refresh costs ~8 ms (bench/results/refresh.md)
LIVE_SPEED = 60.0
DASHBOARD_PORT = 8050
_PR_SET_PDEATHSIG = 1


class UpError(click.ClickException):
    """A step failed; the message names it and what to do."""


def _die_with_parent() -> None:
    """In a child: get SIGTERM if `up` itself dies (even by SIGKILL), so nothing is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])


class Pipeline:
    """Starts the services and processes in order; stop() undoes exactly what was started."""

    def __init__(self, state_dir: Path, echo=click.echo):
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.echo = echo
        self.kafka = None  # KafkaServer, when this pipeline started it
        self.postgres = None  # PostgresServer, when this pipeline started it
        self.children: list[Child] = []
        self._step = 0

    def step(self, text: str) -> float:
        self._step += 1
        self.echo(f"[{self._step}] {text}")
        return time.monotonic()

    # -- services ----------------------------------------------------------------------------

    def start_kafka(self, bootstrap_servers: str | None) -> str:
        from flu_monitor import kafka_client
        from flu_monitor.local.kafka_server import KafkaError, KafkaServer

        if bootstrap_servers:
            started = self.step(f"Kafka: using {bootstrap_servers}")
            if not kafka_client.broker_ready(bootstrap_servers, timeout_s=10):
                raise UpError(f"no Kafka broker answers at {bootstrap_servers}")
            return bootstrap_servers
        started = self.step("Kafka: starting a local KRaft broker (first run fetches its jars)")
        self.kafka = KafkaServer(self.state_dir / "kafka")
        try:
            self.kafka.start()
        except KafkaError as exc:
            self.kafka = None
            raise UpError(str(exc)) from exc
        took = time.monotonic() - started
        self.echo(f"    ready at {self.kafka.bootstrap_servers} ({took:.0f} s)")
        return self.kafka.bootstrap_servers

    def start_postgres(self, database_url: str | None) -> str:
        from flu_monitor.local.postgres_server import (
            PostgresError,
            PostgresServer,
            wait_until_ready,
        )

        if database_url:
            self.step("PostgreSQL: using the database given")
            try:
                wait_until_ready(database_url, timeout=15)
            except Exception as exc:
                raise UpError(f"cannot connect to --database-url: {exc}") from exc
            return database_url
        started = self.step("PostgreSQL: starting a private cluster")
        try:
            self.postgres = PostgresServer(self.state_dir / "postgres").start()
        except PostgresError as exc:
            self.postgres = None
            raise UpError(str(exc)) from exc
        url = self.postgres.url_for(DATABASE)
        _create_database(self.postgres.url, DATABASE)
        self.echo(f"    ready at {url} ({time.monotonic() - started:.0f} s)")
        return url

    def prepare(self, bootstrap_servers: str, database_url: str, topic: str) -> int:
        """Create the topic and apply the SQL; the number of records already in the topic."""
        from flu_monitor import kafka_client
        from flu_monitor.warehouse import local as warehouse

        self.step(f"Kafka topic {topic} ({TOPIC_PARTITIONS} partitions)")
        kafka_client.ensure_topic(bootstrap_servers, topic, TOPIC_PARTITIONS)
        started = self.step("Warehouse SQL: applying sql/ (translated for PostgreSQL)")
        warehouse.apply(database_url)
        self.echo(f"    done ({time.monotonic() - started:.1f} s)")
        return topic_records(bootstrap_servers, topic)

    # -- processes ---------------------------------------------------------------------------

    def spawn(self, name: str, *args: str) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "flu_monitor", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches `up` only; it stops children in order
                preexec_fn=_die_with_parent,
            )
        child = Child(name, process, log)
        self.children.append(child)
        return child

    def failed_child(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self) -> None:
        """Stop children in start order (simulator first), then the services we started."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
                try:
                    child.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
        self.children = []
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


def _create_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def topic_records(bootstrap_servers: str, topic: str) -> int:
    """Records in the topic now (sum of end offsets minus start offsets)."""
    from kafka import TopicPartition

    from flu_monitor import kafka_client

    consumer = kafka_client.make_consumer(bootstrap_servers, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends, starts = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        consumer.close()


def ingested_records(database_url: str, topic: str) -> int:
    """Records the ingester has stored so far (from its offsets table)."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        exists = conn.execute("SELECT to_regclass('flu_ingest_offsets')").fetchone()[0]
        if exists is None:
            return 0
        row = conn.execute(
            "SELECT COALESCE(SUM(next_offset), 0) FROM flu_ingest_offsets WHERE topic = %s",
            (topic,),
        ).fetchone()
        return int(row[0])


def wait_for_dashboard(url: str, pipeline: Pipeline, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_children(pipeline)
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.3)
    raise UpError(f"the dashboard did not answer at {url} within {timeout_s:.0f} s")


def _check_children(pipeline: Pipeline) -> None:
    child = pipeline.failed_child()
    if child is not None:
        raise UpError(
            f"{child.name} exited with code {child.process.returncode}; "
            f"last lines of {child.log}:\n{child.tail()}"
        )


def _dashboard_port() -> int:
    """DASHBOARD_PORT when it is free on 127.0.0.1, else any free port."""
    from flu_monitor.local.kafka_server import free_port

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", DASHBOARD_PORT))
            return DASHBOARD_PORT
        except OSError:
            return free_port()


def _raise_interrupt(*_args) -> None:
    raise KeyboardInterrupt


@click.command("up")
@click.option(
    "--bootstrap-servers",
    default=None,
    help="Use this Kafka instead of starting one (host:port[,host:port]).",
)
@click.option(
    "--database-url",
    default=None,
    help="Use this PostgreSQL database instead of starting a private cluster.",
)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=SCENARIO_DIR / "default.yaml",
    show_default=True,
    help="Outbreak scenario YAML for the simulator.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=LIVE_SPEED,
    show_default=True,
    help="Live simulated time runs SPEED times faster than real time (60: an hour a minute).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help=f"Dashboard port [default: {DASHBOARD_PORT}, or a free one if that is taken].",
)
@click.option(
    "--history-days",
    type=click.IntRange(0),
    default=HISTORY_DAYS,
    show_default=True,
    help="Days of history to backfill into an empty topic so the charts are not empty.",
)
@click.option("--seed", type=int, default=None, help="Simulator seed (reproducible events).")
@click.option("--topic", default=None, help="Kafka topic (default: the contract's, flu_cases).")
def command(bootstrap_servers, database_url, scenario, speed, port, history_days, seed, topic):
    """Run the whole pipeline locally: Kafka, PostgreSQL, simulator, ingester, refresher and the
    dashboard. Ctrl-C stops everything it started."""
    from flu_monitor import contract

    signal.signal(signal.SIGTERM, _raise_interrupt)
    pipeline = Pipeline(STATE_DIR)
    topic = topic or contract.TOPIC
    try:
        bootstrap_servers = pipeline.start_kafka(bootstrap_servers)
        database_url = pipeline.start_postgres(database_url)
        already = pipeline.prepare(bootstrap_servers, database_url, topic)

        pipeline.step("Processes: ingester, refresher, simulator, dashboard")
        kafka = ["--bootstrap-servers", bootstrap_servers]
        db = ["--database-url", database_url]
        pipeline.spawn("ingest", "ingest", *kafka, *db, "--topic", topic)
        pipeline.spawn("refresh", "refresh", *db, "--every", str(REFRESH_SECONDS))
        simulate = ["simulate", "--sink", "kafka", *kafka, "--topic", topic]
        simulate += ["--scenario", str(scenario)]
        simulate += ["--speed", str(speed)]
        if seed is not None:
            simulate += ["--seed", str(seed)]
        if already == 0 and history_days:
            simulate += ["--backfill", str(history_days)]
        else:
            pipeline.echo(f"    the topic already holds {already:,} records: no backfill")
        pipeline.spawn("simulate", *simulate)
        port = port or _dashboard_port()
        url = f"http://127.0.0.1:{port}/"
        pipeline.spawn("dashboard", "dashboard", *db, "--port", str(port))

        started = pipeline.step("History: waiting for the ingester to catch up")
        wait_for_history(pipeline, bootstrap_servers, database_url, topic)
        wait_for_dashboard(url, pipeline)
        pipeline.echo(f"    done ({time.monotonic() - started:.0f} s)")
        pipeline.echo(f"\nDashboard: {url}\nLogs: {pipeline.log_dir}\nCtrl-C stops everything.")
        while True:
            _check_children(pipeline)
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        pipeline.stop()
        click.echo("stopped: no process left running", err=True)


def wait_for_history(pipeline: Pipeline, bootstrap_servers, database_url, topic) -> None:
    """Show ingestion progress until the ingester is within one poll of the topic's end."""
    last_line = ""
    while True:
        _check_children(pipeline)
        produced = topic_records(bootstrap_servers, topic)
        stored = ingested_records(database_url, topic)
        line = f"    {stored:,} of {produced:,} records stored"
        if line != last_line:
            click.echo(line + " " * 8 + "\r", nl=False)
            last_line = line
        if produced and produced - stored < 2_000:
            click.echo("")
            return
        time.sleep(1)
