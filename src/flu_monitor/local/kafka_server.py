"""A real single-node Apache Kafka broker (KRaft: broker + controller in one JVM) on 127.0.0.1.

The jars come from Maven Central through kafka/pom.xml (resolved once into ~/.m2; the classpath
is cached under .state/kafka-lib/). Used by the tests (tests/fixtures/kafka.py), by the local
pipeline (`flu-monitor up`) and by the benchmark.

    with KafkaServer(state_dir) as kafka:          # formats storage on first start
        kafka.create_topic("flu_cases", partitions=6)
        produce_to(kafka.bootstrap_servers)
    # stop() is clean: no process is left behind

The broker never outlives the process that started it: it gets SIGTERM (a clean stop) when that
process dies, even by SIGKILL (local/processes.py); a broker still running on the state dir from
an earlier crash is killed by its pid file at the next start.

`stop()` then `start()` (or `restart()`, or a new KafkaServer on the same state_dir) comes back on
the SAME port with the same data: topics and records survive, so a pipeline can be killed
(`kill()`, SIGKILL) and restarted in fault tests. Everything the broker writes lives in state_dir:
`server.properties`, `data/` (the log dirs), `kafka.log` (the broker's log4j log) and
`kafka.out` (JVM stdout/stderr).
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from flu_monitor.local.processes import spawn, stop_stale, terminate
from flu_monitor.paths import ROOT, STATE_DIR

POM = ROOT / "kafka" / "pom.xml"
LIB_CACHE = STATE_DIR / "kafka-lib"
_VERSION = re.search(r"<kafka.version>([^<]+)<", POM.read_text())
if _VERSION is None:
    raise RuntimeError(f"{POM}: no <kafka.version>")
KAFKA_VERSION = _VERSION.group(1)

# Small heap: the broker shares 2 cores with PostgreSQL, Chromium and the tests. G1 with a short
# pause goal; the JVM exits on OOM instead of limping on.
JVM_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

# Broker settings for one node on a small machine: replication factors of 1, few threads, a small
# log-cleaner buffer (its 128 MB default would take a quarter of the heap), no group-join delay,
# no topic auto-creation (as on Amazon MSK: topics are created explicitly) and keep records
# forever (the local warehouse may replay the topic from offset 0, like Redshift's first refresh).
SERVER_DEFAULTS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "background.threads": "4",
    "log.cleaner.threads": "1",
    "log.cleaner.dedupe.buffer.size": "16777216",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "5",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    "log.retention.hours": "-1",
    # After a crash (SIGKILL) the controller keeps the dead broker's registration until its
    # session expires (9 s by default) before the restarted broker may register: keep it short.
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
}

LOG4J2 = """\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaError(RuntimeError):
    """The broker could not be set up, started or reached; the message says why (log tail)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def kafka_classpath(quiet: bool = False, pom: Path = POM, properties: dict | None = None) -> str:
    """The broker's Java classpath, resolving kafka/pom.xml with Maven on first use (or another
    pom, e.g. kafka/connect/pom.xml, with -Dname=value `properties`).

    Maven downloads the jars into ~/.m2 once (about 70 MB); the resulting classpath is cached in
    .state/kafka-lib/ keyed by the pom's hash, so later starts need neither Maven nor network.
    A file lock makes concurrent first starts (several test sessions) resolve only once.
    """
    defines = [f"-D{k}={v}" for k, v in sorted((properties or {}).items())]
    digest = hashlib.sha256(pom.read_bytes() + repr(defines).encode()).hexdigest()[:16]
    cache = LIB_CACHE / f"classpath-{digest}.txt"
    LIB_CACHE.mkdir(parents=True, exist_ok=True)
    with open(LIB_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cache.exists():
            classpath = cache.read_text().strip()
            if classpath and all(Path(j).exists() for j in classpath.split(os.pathsep)):
                return classpath
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaError(
                "Maven (mvn) is not on PATH: it fetches the Kafka jars. Install maven."
            )
        if not quiet:
            print(
                f"kafka: resolving {pom.relative_to(ROOT)} {' '.join(defines)} jars from "
                "Maven Central (first use only)...",
                file=sys.stderr,
                flush=True,
            )
        started = time.monotonic()
        tmp = cache.with_suffix(".tmp")
        cmd = [mvn, "-B", "-q", "-ntp", "-f", str(pom), "dependency:build-classpath", *defines]
        cmd += [f"-Dmdep.outputFile={tmp}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not tmp.exists():
            tail = (done.stdout + done.stderr)[-3000:]
            raise KafkaError(f"mvn could not resolve {pom} (exit {done.returncode}):\n{tail}")
        tmp.replace(cache)
        if not quiet:
            print(f"kafka: jars ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
        return cache.read_text().strip()


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise KafkaError("java is not on PATH (Kafka 4.1 needs Java 17+): install a JDK")
    return str(java)


class KafkaServer:
    """One KRaft broker+controller process with its data under state_dir (see module doc).

    port: the client (PLAINTEXT) port; by default the port a previous start in the same state_dir
    used, else a free one. heap: the JVM's -Xmx, e.g. "512m".
    tls: optional (certificate chain PEM, PKCS#8 private key PEM) paths; adds a TLS listener
    (ssl_bootstrap_servers) next to the PLAINTEXT one, e.g. to test SSL clients as on MSK.
    """

    def __init__(
        self,
        state_dir: str | Path,
        port: int | None = None,
        heap: str = "512m",
        tls: tuple[str | Path, str | Path] | None = None,
    ):
        self.state_dir = Path(state_dir).resolve()
        self.data_dir = self.state_dir / "data"
        self.config_file = self.state_dir / "server.properties"
        self.log_file = self.state_dir / "kafka.log"
        self.out_file = self.state_dir / "kafka.out"
        self.pid_file = self.state_dir / "kafka.pid"
        self.heap = heap
        previous = self._previous_ports()
        # Ports picked here (not given, not recorded by an earlier start) may be picked again if
        # another process takes one between the pick and the broker's bind.
        self._ports_picked_here = port is None and not previous
        self.port = port or previous.get("PLAINTEXT") or free_port()
        self.controller_port = previous.get("CONTROLLER") or free_port()
        self.tls = tls
        self.ssl_port = (previous.get("SSL") or free_port()) if tls else None
        self._separate_ports()
        self._process: subprocess.Popen | None = None

    # -- public API -------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ssl_bootstrap_servers(self) -> str | None:
        return f"127.0.0.1:{self.ssl_port}" if self.ssl_port else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 120.0) -> KafkaServer:
        """Start the broker and wait until it answers metadata requests; idempotent."""
        if self.running:
            return self
        classpath = kafka_classpath()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._kill_stale_process()
        for attempt in range(3):
            try:
                self._launch(classpath, timeout)
                self._ports_picked_here = False  # from now on: the same ports, or an error
                return self
            except KafkaError as exc:
                if attempt == 2 or not self._ports_picked_here or "already in use" not in str(exc):
                    raise
                self.port, self.controller_port = free_port(), free_port()
                self.ssl_port = free_port() if self.tls else None
                self._separate_ports()
        return self

    def _separate_ports(self) -> None:
        while len({self.port, self.controller_port, self.ssl_port} - {None}) < (
            3 if self.tls else 2
        ):
            self.controller_port, self.ssl_port = free_port(), free_port() if self.tls else None

    def _launch(self, classpath: str, timeout: float) -> None:
        for port in (self.port, self.controller_port, self.ssl_port):
            if port and _port_in_use(port):
                raise KafkaError(f"port {port} on 127.0.0.1 is already in use; pick another")
        self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(classpath)
        log4j = self.state_dir / "log4j2.properties"
        log4j.write_text(LOG4J2.format(log=self.log_file))
        cmd = [_java(), *JVM_OPTS, f"-Xmx{self.heap}", f"-Dlog4j2.configurationFile={log4j}"]
        cmd += [self._class_data_sharing(classpath), "-cp", classpath, "kafka.Kafka"]
        cmd.append(str(self.config_file))
        # SIGTERM is a clean stop: on `stop()`, or from the kernel if our process dies.
        self._process = spawn(cmd, self.out_file, signal.SIGTERM, cwd=self.state_dir)
        self.pid_file.write_text(str(self._process.pid))
        atexit.register(self.stop)  # no broker outlives the Python process that started it
        self._wait_ready(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown (SIGTERM, the broker flushes and closes its logs); SIGKILL after
        `timeout` seconds. Leaves no process behind."""
        atexit.unregister(self.stop)
        if self._process is None:
            return
        terminate(self._process, signal.SIGTERM, timeout)
        self._process = None
        self.pid_file.unlink(missing_ok=True)
        self._keep_class_data_archive()

    def kill(self) -> None:
        """Crash the broker (SIGKILL), as a fault test would; start() recovers its logs."""
        atexit.unregister(self.stop)
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
            self.pid_file.unlink(missing_ok=True)

    def restart(self, timeout: float = 120.0) -> KafkaServer:
        """Clean stop, then start again on the same port with the same data."""
        self.stop()
        return self.start(timeout)

    def create_topic(self, name: str, partitions: int = 1, config: dict | None = None) -> None:
        """Create a topic (replication factor 1); no error if it already exists with that many
        partitions, KafkaError if it exists with another count."""
        from flu_monitor import kafka_client

        kafka_client.ensure_topic(self.bootstrap_servers, name, partitions, config=config)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the broker's log and JVM output, for error messages."""
        text = []
        for path in (self.out_file, self.log_file):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                text.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(text) or "(no log written)"

    def __enter__(self) -> KafkaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"KafkaServer({self.bootstrap_servers}, {self.state_dir}, {state})"

    # -- internals --------------------------------------------------------------------------

    def _previous_ports(self) -> dict[str, int]:
        if not self.config_file.exists():
            return {}
        match = re.search(r"^listeners=(.*)$", self.config_file.read_text(), re.MULTILINE)
        found = re.findall(r"(\w+)://[^:,]+:(\d+)", match.group(1)) if match else []
        return {name: int(port) for name, port in found}

    def _write_config(self) -> None:
        settings = dict(SERVER_DEFAULTS)
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        if self.tls:
            listeners.append(f"SSL://127.0.0.1:{self.ssl_port}")
            chain, key = (Path(p).read_text().strip() for p in self.tls)
            settings["listener.security.protocol.map"] += ",SSL:SSL"
            settings["ssl.keystore.type"] = "PEM"
            # PEM inline (KIP-651); the key must be unencrypted PKCS#8 (BEGIN PRIVATE KEY).
            settings["ssl.keystore.certificate.chain"] = chain.replace("\n", "\\n")
            settings["ssl.keystore.key"] = key.replace("\n", "\\n")
        settings.update(
            {
                "listeners": ",".join(
                    [*listeners, f"CONTROLLER://127.0.0.1:{self.controller_port}"]
                ),
                "advertised.listeners": ",".join(listeners),
                "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
                "log.dirs": str(self.data_dir),
            }
        )
        body = "".join(f"{key}={value}\n" for key, value in settings.items())
        self.config_file.write_text(f"# written by flu_monitor.local.kafka_server\n{body}")

    def _format_storage(self, classpath: str) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cmd = [_java(), "-Xmx256m", "-cp", classpath, "kafka.tools.StorageTool", "format"]
        # `=` form: a random id may start with "-", which would otherwise read as an option.
        cmd += [f"--cluster-id={cluster_id}", "-c", str(self.config_file), "--ignore-formatted"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            out = (done.stdout + done.stderr)[-3000:]
            raise KafkaError(f"formatting KRaft storage in {self.data_dir} failed:\n{out}")

    def _class_data_sharing(self, classpath: str) -> str:
        """JVM flag for a class-data-sharing archive of the broker's classes: the first clean
        stop writes it (into .state/kafka-lib/), later starts map it and come up about 30 %
        faster. A stale or foreign archive is ignored by the JVM (-Xshare:auto)."""
        key = hashlib.sha256(f"{_java()}\0{classpath}".encode()).hexdigest()[:16]
        self._cds_archive = LIB_CACHE / f"cds-{key}.jsa"
        if self._cds_archive.exists():
            self._cds_dump = None
            return f"-XX:SharedArchiveFile={self._cds_archive}"
        self._cds_dump = self._cds_archive.with_suffix(f".{os.getpid()}.{id(self)}.tmp")
        return f"-XX:ArchiveClassesAtExit={self._cds_dump}"

    def _keep_class_data_archive(self) -> None:
        dump = getattr(self, "_cds_dump", None)
        if dump is not None and dump.exists():
            dump.replace(self._cds_archive)  # atomic; concurrent writers: the last one wins
        self._cds_dump = None

    def _kill_stale_process(self) -> None:
        """A broker left running by a crashed run on this state_dir would hold its ports."""
        stop_stale(self.pid_file, str(self.config_file), signal.SIGKILL, 5)
        self.pid_file.unlink(missing_ok=True)

    def _wait_ready(self, timeout: float) -> None:
        from flu_monitor import kafka_client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None  # started by start(), cleared only here
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise KafkaError(
                    f"Kafka exited with code {code} while starting:\n{self.log_tail()}"
                )
            if _port_in_use(self.port) and kafka_client.broker_ready(self.bootstrap_servers):
                return
            time.sleep(0.2)
        self.stop()
        raise KafkaError(f"Kafka did not become ready within {timeout:.0f} s:\n{self.log_tail()}")
