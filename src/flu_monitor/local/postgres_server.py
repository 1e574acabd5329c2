"""A private PostgreSQL 15 cluster on 127.0.0.1, started from the Debian server binaries.

Used by the tests (tests/fixtures/postgres.py), the local pipeline and the benchmark:

    with PostgresServer(STATE_DIR / "postgres") as pg:   # initdb on first start, then pg_ctl start
        psycopg.connect(pg.url)                         # postgresql://postgres@127.0.0.1:PORT/postgres
    # stop() is a fast shutdown; the data directory stays for the next start

initdb refuses to run as root, so as root every server command runs as the `postgres` system user
(runuser) and the state directory is handed to it — or, when `postgres` cannot enter a directory
above it (a checkout under /root), a fixed per-checkout directory in the temp dir. Locale
C.UTF-8, encoding UTF8, trust authentication for local and 127.0.0.1 connections only, fsync off
(state is disposable).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin")]
DEBIAN_PACKAGE = "postgresql-15"


class PostgresError(RuntimeError):
    """The cluster could not be created, started or stopped; the message says why."""


def _bin_dir() -> Path:
    env = os.environ.get("FLU_MONITOR_PG_BIN")
    candidates = [Path(env)] if env else PG_BIN_DIRS
    for directory in candidates:
        if (directory / "pg_ctl").exists() and (directory / "initdb").exists():
            return directory
    raise PostgresError(
        f"PostgreSQL 15 server binaries not found in {', '.join(map(str, candidates))}: install "
        f"the Debian package {DEBIAN_PACKAGE} (`make system-deps`, or "
        f"`apt-get install -y {DEBIAN_PACKAGE}`), or set FLU_MONITOR_PG_BIN"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One cluster in `state_dir` (data/, postgres.log, port); `.url` is the admin URL."""

    def __init__(self, state_dir: Path | str, port: int | None = None):
        self._as_postgres = os.geteuid() == 0
        self.state_dir = Path(state_dir).resolve()
        if self._as_postgres:
            self.state_dir = _reachable_by_postgres(self.state_dir)
        self.data_dir = self.state_dir / "data"
        self.log_file = self.state_dir / "postgres.log"
        self._port_file = self.state_dir / "port"
        if port is None and self._port_file.exists():
            port = int(self._port_file.read_text())  # same port across restarts when still free
            if not _port_is_free(port):
                port = None
        self.port = port or free_port()
        self.bin = _bin_dir()

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> PostgresServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.state_dir, pw.pw_uid, pw.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        elif self.is_running():  # left running by an earlier process: reuse it, on its port
            self.port = int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
            return self
        self._port_file.write_text(str(self.port))
        opts = f"-p {self.port} -k {self.state_dir} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-o", opts, "-w", "-t", "60",
            "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop", check=False)

    def is_running(self) -> bool:
        result = self._run("pg_ctl", "-D", self.data_dir, "status", check=False)
        return result.returncode == 0

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def create_database(self, name: str) -> str:
        """Create an empty database (dropping one of that name) and return its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    # --- internals -------------------------------------------------------------------------
    def _initdb(self) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made data dir from an interrupted initdb
        self.data_dir.mkdir()
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        self._run(
            "initdb", "-D", self.data_dir, "-U", "postgres", "--auth=trust", "--no-sync",
            "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            # Disposable local state: durability settings off, a little more memory for refresh.
            conf.write(
                "\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 256MB\nwork_mem = 32MB\nmaintenance_work_mem = 256MB\n"
                "max_wal_size = 2GB\n"
            )

    def _run(self, tool: str, *args, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / tool), *map(str, args)]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            log_tail = ""
            if self.log_file.exists():
                log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise PostgresError(
                f"{tool} failed (exit {result.returncode}) for {self.data_dir}:\n"
                f"{result.stderr.strip() or result.stdout.strip()}\n{log_tail}".rstrip()
            )
        return result


def _port_is_free(port: int) -> bool:
    with contextlib.closing(socket.socket()) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _reachable_by_postgres(state_dir: Path) -> Path:
    """Where the cluster can live when root runs it as the `postgres` user.

    `postgres` must enter every directory above its data. When one is closed to others (a
    checkout under /root, mode 0700, say) the cluster moves to a fixed per-checkout directory in
    the system temp dir, rather than loosening the permissions of the user's own directories."""
    existing = [p for p in state_dir.parents if p.exists()]
    if all(p.stat().st_mode & 0o001 for p in existing):
        return state_dir
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"flu-monitor-postgres-{digest}"


def wait_until_ready(url: str, timeout: float = 30.0) -> None:
    """Block until a connection to `url` succeeds (for servers started elsewhere)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
