"""`flu-monitor up`: the whole pipeline on this machine, one command, nothing left behind.

Steps: check every option (nothing is started for a bad one), then Kafka (a KRaft broker from
Maven jars) and a private PostgreSQL cluster under .state/ (or existing ones given by
--bootstrap-servers / --database-url), the topic, the warehouse SQL, then four processes —
simulator, ingester, refresher, dashboard — and the dashboard URL once the history is visible.

Restart is a continuation: the simulator keeps its position in .state/simulate-<topic>.json and
resumes after the last delivered event (a first run backfills --history-days; an interrupted
backfill is completed), and the warehouse counts each case_id once whatever is replayed.

Supervision: every process and service here dies with `up`, however `up` dies (PR_SET_PDEATHSIG,
local/processes.py). A child or service that exits is restarted after 1, 2, 4, 8, 16 s, with one
line saying so; `up` gives up (and stops everything) after MAX_RESTARTS failures in a row, a run
of STABLE_SECONDS resetting the count. SIGINT and SIGTERM stop it cleanly, even when SIGINT was
ignored at launch: simulator first (it flushes and saves its position), then the ingester once it
has stored what was produced, the refresher, the dashboard, the broker, the cluster. Process
logs go to .state/logs/.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flu_monitor.alerts import notifier
from flu_monitor.local import ingest
from flu_monitor.messages import Failure, one_line
from flu_monitor.paths import STATE_DIR

if TYPE_CHECKING:
    import subprocess

    from flu_monitor.local.kafka_server import KafkaServer
    from flu_monitor.local.postgres_server import PostgresServer

TOPIC_PARTITIONS = 3
DATABASE = "flu_monitor"
HISTORY_DAYS = 28
REFRESH_SECONDS = 1.0  # an idle refresh costs ~8 ms (bench/results/refresh.md)
LIVE_SPEED = 60.0
MAX_LIVE_SPEED = 3_600.0  # an hour a second: ~250 events/s at the season's peak
DASHBOARD_PORT = 8050
MAX_RESTARTS = 5
BACKOFF_SECONDS = (1, 2, 4, 8, 16)
STABLE_SECONDS = 60.0  # a run this long resets a process's failure count
STOP_SECONDS = {"simulate": 45.0}  # its last flush may wait up to 3 x its 10 s Kafka timeout
DRAIN_SECONDS = 30.0  # at stop, how long the ingester may take to store what was produced


class UpError(Failure):
    """A step failed; the message names it and what to do (exit 1)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM."""


@dataclass
class Supervised:
    """A process or service `up` keeps running: restarted with back-off when it exits."""

    name: str
    failures: int = 0
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None
    log: Path | None = None

    def alive(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def last_line(self) -> str:
        raise NotImplementedError

    def exit_text(self) -> str:
        raise NotImplementedError


@dataclass
class Child(Supervised):
    args: tuple = ()
    process: subprocess.Popen | None = None

    def start(self) -> None:
        from flu_monitor.local.processes import spawn

        cmd = [sys.executable, "-m", "flu_monitor", *self.args]
        assert self.log is not None, "a child always has a log file"
        self.process = spawn(cmd, self.log, signal.SIGTERM)
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_text(self) -> str:
        code = self.process.returncode if self.process is not None else None
        return f"exited with code {code}"

    def last_line(self) -> str:
        return _last_line(self.log)

    def stop(self, timeout: float = 15.0) -> None:
        from flu_monitor.local.processes import terminate

        if self.process is not None:
            terminate(self.process, signal.SIGTERM, timeout)


@dataclass
class Service(Supervised):
    server: KafkaServer | PostgresServer | None = None

    def start(self) -> None:
        assert self.server is not None, "a service is created with its server"
        self.server.start()
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.server is not None and self.server.running

    def exit_text(self) -> str:
        return "stopped"

    def last_line(self) -> str:
        return _last_line(self.log)


def _last_line(log: Path | None) -> str:
    if log is None or not log.exists():
        return "(no log)"
    with open(log, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines()]
    return next((line for line in reversed(lines) if line), "(empty log)")[:300]


class Pipeline:
    """Starts the services and processes in order, keeps them running, and stop() undoes exactly
    what was started."""

    def __init__(self, state_dir: Path, echo: Callable[[str], None]):
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.echo = echo
        self.services: list[Service] = []
        self.children: dict[str, Child] = {}
        self.kafka: KafkaServer | None = None  # when this pipeline started it
        self.postgres: PostgresServer | None = None  # when this pipeline started it
        self._step = 0

    def status(self, line: str) -> None:
        """A progress line, rewritten in place."""
        sys.stdout.write(line + " " * 8 + "\r")
        sys.stdout.flush()

    def step(self, text: str) -> float:
        self._step += 1
        self.echo(f"[{self._step}] {text}")
        return time.monotonic()

    # -- services ----------------------------------------------------------------------------

    def start_kafka(self, bootstrap_servers: str | None) -> str:
        from flu_monitor.local.kafka_server import KafkaError, KafkaServer

        if bootstrap_servers:
            self.step(f"Kafka: using {bootstrap_servers}")
            return bootstrap_servers
        started = self.step("Kafka: starting a local KRaft broker (first run fetches its jars)")
        self.kafka = KafkaServer(self.state_dir / "kafka")
        try:
            self.kafka.start()
        except KafkaError as exc:
            self.kafka = None
            raise UpError(f"{one_line(exc)} (details: {self.state_dir / 'kafka'})") from None
        self.services.append(Service("kafka", server=self.kafka, log=self.kafka.log_file))
        took = time.monotonic() - started
        self.echo(f"    ready at {self.kafka.bootstrap_servers} ({took:.0f} s)")
        return self.kafka.bootstrap_servers

    def start_postgres(self, database_url: str | None) -> str:
        from flu_monitor.local.postgres_server import PostgresError, PostgresServer

        if database_url:
            self.step("PostgreSQL: using the database given")
            return database_url
        started = self.step("PostgreSQL: starting a private cluster")
        try:
            self.postgres = PostgresServer(self.state_dir / "postgres").start()
        except PostgresError as exc:
            self.postgres = None
            raise UpError(f"{one_line(exc)} (details: {self.state_dir / 'postgres'})") from None
        self.services.append(Service("postgres", server=self.postgres, log=self.postgres.log_file))
        url = self.postgres.url_for(DATABASE)
        _create_database(self.postgres.url, DATABASE)
        self.echo(f"    ready on port {self.postgres.port} ({time.monotonic() - started:.0f} s)")
        return url

    def prepare(self, bootstrap_servers: str, database_url: str, topic: str) -> None:
        """Create the topic and apply the SQL."""
        from flu_monitor import kafka_client
        from flu_monitor.warehouse import postgres as warehouse

        self.step(f"Kafka topic {topic} ({TOPIC_PARTITIONS} partitions)")
        try:
            kafka_client.ensure_topic(bootstrap_servers, topic, TOPIC_PARTITIONS)
        except (ValueError, kafka_client.KafkaUnavailable) as exc:
            raise UpError(f"Kafka topic {topic}: {exc}") from None
        started = self.step("Warehouse SQL: applying sql/ (translated for PostgreSQL)")
        warehouse.apply(database_url)
        self.echo(f"    done ({time.monotonic() - started:.1f} s)")

    # -- processes ---------------------------------------------------------------------------

    def spawn(self, name: str, *args: str) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = Child(name, args=args, log=self.log_dir / f"{name}.log")
        child.start()
        self.children[name] = child
        return child

    def supervise(self) -> None:
        """Restart what exited, after its back-off; UpError after too many failures in a row."""
        now = time.monotonic()
        for unit in [*self.services, *self.children.values()]:
            if unit.alive():
                if unit.failures and now - unit.started_at >= STABLE_SECONDS:
                    unit.failures = 0
                continue
            if unit.restart_at is None:
                unit.failures += 1
                if unit.failures > MAX_RESTARTS:
                    raise UpError(
                        f"{unit.name} {unit.exit_text()} {unit.failures} times in a row, giving "
                        f"up: {unit.last_line()} (log: {unit.log})"
                    )
                delay = BACKOFF_SECONDS[min(unit.failures, len(BACKOFF_SECONDS)) - 1]
                self.echo(
                    f"! {unit.name} {unit.exit_text()}: {unit.last_line()} — restarting in "
                    f"{delay} s ({unit.failures} of {MAX_RESTARTS})"
                )
                unit.restart_at = now + delay
            elif now >= unit.restart_at:
                unit.restart_at = None
                try:
                    unit.start()
                except Exception as exc:  # noqa: BLE001 - a failed start is one more failure
                    self.echo(f"! {unit.name} did not start: {one_line(exc)}")
                    unit.started_at = now

    def stop(self, bootstrap_servers=None, database_url=None, topic=None) -> None:
        """Stop in dependency order (see the module doc); bounded at every step."""
        simulate = self.children.pop("simulate", None)
        if simulate is not None:
            simulate.stop(STOP_SECONDS["simulate"])
        ingest = self.children.get("ingest")
        if ingest is not None and ingest.alive() and bootstrap_servers and database_url:
            with contextlib.suppress(Exception):  # best effort: all of it is stored next time
                _drain(bootstrap_servers, database_url, topic, DRAIN_SECONDS)
        for name in ("ingest", "refresh", "dashboard"):
            child = self.children.pop(name, None)
            if child is not None:
                child.stop(STOP_SECONDS.get(name, 15.0))
        for child in self.children.values():
            child.stop()
        self.children = {}
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        self.services = []


def _create_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def topic_records(bootstrap_servers: str, topic: str) -> int:
    """Records in the topic now (sum of end offsets minus start offsets)."""
    from kafka import TopicPartition

    from flu_monitor import kafka_client

    consumer = kafka_client.make_consumer(bootstrap_servers, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends, starts = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        consumer.close()


def _drain(bootstrap_servers: str, database_url: str, topic: str, timeout_s: float) -> None:
    """Wait (bounded) until the ingester has stored everything in the topic."""
    deadline = time.monotonic() + timeout_s
    produced = topic_records(bootstrap_servers, topic)
    while ingest.records_stored(database_url, topic) < produced and time.monotonic() < deadline:
        time.sleep(0.2)


def wait_for_dashboard(url: str, pipeline: Pipeline, timeout_s: float = 120) -> None:
    import urllib.request  # here: every `flu-monitor` command imports this module (~20 ms)

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pipeline.supervise()
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.3)
    raise UpError(f"the dashboard did not answer at {url} within {timeout_s:.0f} s")


def wait_for_history(pipeline: Pipeline, bootstrap_servers, database_url, topic, state_path):
    """Show ingestion progress until the simulator is live (its history delivered) and the
    ingester is within one poll of the topic's end."""
    from flu_monitor.simulator import state as sim_state

    last_line = ""
    while True:
        pipeline.supervise()
        try:
            produced = topic_records(bootstrap_servers, topic)
            stored = ingest.records_stored(database_url, topic)
        except _environment_errors():  # a service restarting: supervise() reports it
            time.sleep(1)
            continue
        line = f"    {stored:,} of {produced:,} records stored"
        if line != last_line:
            pipeline.status(line)
            last_line = line
        with contextlib.suppress(sim_state.StateError):
            saved = sim_state.load(state_path)
            if saved is not None and saved.live and produced - stored < 2_000:
                pipeline.echo("")
                return
        time.sleep(1)


def _port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now. SO_REUSEADDR, as the dashboard's
    server uses: a port whose last connections are in TIME-WAIT (a quick restart) is free."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _dashboard_port(port: int | None) -> int:
    """--port when free (UpError otherwise), else DASHBOARD_PORT when free, else any free port."""
    from flu_monitor.local.kafka_server import free_port

    if port is not None:
        if not _port_free(port):
            raise UpError(f"--port {port}: 127.0.0.1:{port} is in use; pick another")
        return port
    return DASHBOARD_PORT if _port_free(DASHBOARD_PORT) else free_port()


def _lock_state_dir(state_dir: Path):
    """One `up` per state directory: a second one would start a second broker on the same
    data. The lock goes with the process, however it ends."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "up.lock", "a+")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        raise UpError(
            f"another flu-monitor up (pid {holder}) is running with the state in {state_dir}"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def simulator_state_path(topic: str) -> Path:
    return STATE_DIR / f"simulate-{topic}.json"


def _environment_errors() -> tuple:
    import psycopg
    from kafka.errors import KafkaError

    from flu_monitor import kafka_client

    return (psycopg.Error, KafkaError, kafka_client.KafkaUnavailable, OSError)


def _raise_interrupted(*_args) -> None:
    raise Interrupted


def _say_stopping(*_args) -> None:
    print("still stopping (each step is bounded)...", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Settings:
    """What `up` runs, its options checked: a URL or broker given is used instead of starting
    one; the seed is the one to use (the saved run's when none was given)."""

    bootstrap_servers: str | None
    database_url: str | None
    scenario: Path
    speed: float
    port: int | None
    history_days: int
    seed: int
    topic: str
    alert_webhook: str | None


def run(settings: Settings, echo: Callable[[str], None]) -> None:
    """The whole pipeline until SIGINT/SIGTERM; stops everything it started whatever happens
    (UpError when a step fails)."""
    bootstrap_servers, database_url = settings.bootstrap_servers, settings.database_url
    topic = settings.topic
    lock = _lock_state_dir(STATE_DIR)
    port = _dashboard_port(settings.port)
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: it may be ignored at launch
        signal.signal(signum, _raise_interrupted)
    pipeline = Pipeline(STATE_DIR, echo)
    state_path = simulator_state_path(topic)
    try:
        bootstrap_servers = pipeline.start_kafka(bootstrap_servers)
        database_url = pipeline.start_postgres(database_url)
        pipeline.prepare(bootstrap_servers, database_url, topic)

        pipeline.step("Processes: simulator, ingester, refresher, dashboard, alert notifier")
        kafka = ["--bootstrap-servers", bootstrap_servers]
        db = ["--database-url", database_url]
        simulate = ["simulate", "--sink", "kafka", *kafka, "--topic", topic, "--quiet"]
        simulate += ["--scenario", str(settings.scenario), "--seed", str(settings.seed)]
        simulate += ["--speed", str(settings.speed), "--state", str(state_path)]
        simulate += ["--backfill", str(settings.history_days)]
        if state_path.exists():
            pipeline.echo(f"    continuing the simulated history in {state_path}")
        pipeline.spawn("simulate", *simulate)
        pipeline.spawn("ingest", "ingest", *kafka, *db, "--topic", topic)
        pipeline.spawn("refresh", "refresh", *db, "--every", str(REFRESH_SECONDS))
        url = f"http://127.0.0.1:{port}/"
        pipeline.spawn("dashboard", "dashboard", *db, "--port", str(port))
        webhook = (
            [] if settings.alert_webhook is None else ["--alert-webhook", settings.alert_webhook]
        )
        alerts_log = pipeline.log_dir / "notify.log"  # its ALERT lines are shown here
        alerts_seen = notifier.log_end(alerts_log)
        pipeline.spawn("notify", "notify", *db, "--dashboard-url", url, *webhook)

        started = pipeline.step("History: waiting for the ingester to catch up")
        wait_for_history(pipeline, bootstrap_servers, database_url, topic, state_path)
        wait_for_dashboard(url, pipeline)
        pipeline.echo(f"    done ({time.monotonic() - started:.0f} s)")
        pipeline.echo(f"\nDashboard: {url}\nLogs: {pipeline.log_dir}\nCtrl-C stops everything.")
        while True:
            pipeline.supervise()
            alerts_seen = notifier.follow(alerts_log, echo, alerts_seen)
            time.sleep(0.5)
    except (Interrupted, KeyboardInterrupt):
        echo("\nstopping...")
    except _environment_errors() as exc:  # a service went away in a step that does not retry
        raise UpError(f"{type(exc).__name__}: {one_line(exc)}") from None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _say_stopping)
        pipeline.stop(bootstrap_servers, database_url, topic)
        lock.close()
        print("stopped: no process left running", file=sys.stderr, flush=True)
