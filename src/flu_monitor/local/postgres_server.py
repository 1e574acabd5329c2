"""A private PostgreSQL 15 cluster on 127.0.0.1, started from the Debian server binaries.

Used by the tests (tests/fixtures/postgres.py), the local pipeline and the benchmark:

    with PostgresServer(STATE_DIR / "postgres") as pg:   # initdb on first start, then the server
        psycopg.connect(pg.url)     # postgresql://postgres@127.0.0.1:PORT/postgres?passfile=...
    # stop() is a fast shutdown; the data directory stays for the next start

**Nothing outlives its starter.** The postmaster runs in the foreground as a child of this
process (not detached by pg_ctl) with PR_SET_PDEATHSIG: if the process that started it dies, even
by SIGKILL, the kernel sends the postmaster SIGINT (a fast shutdown). A postmaster left by an
earlier start that could not be told (a crashed kernel thread, say) is shut down before the next
start, from its postmaster.pid.

**Only its own user gets in.** One role, `postgres`, with a password generated on first start
and kept in `pgpass` in the state directory (mode 0600, libpq's password-file format); every
connection, TCP on 127.0.0.1 or the Unix socket in the state directory (mode 0700), needs it
(scram-sha-256). URLs name the file (`?passfile=`), never the password, so command lines and logs
show no secret.

initdb refuses to run as root, so as root every server command runs as the `postgres` system user
and the state directory is handed to it — or, when `postgres` cannot enter a directory above it
(a checkout under /root), a fixed per-checkout directory in the temp dir. Locale C.UTF-8,
encoding UTF8, fsync off (state is disposable).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from flu_monitor.local.processes import spawn, stop_stale, terminate

PG_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin")]
DEBIAN_PACKAGE = "postgresql-15"
USER = "postgres"
PG_HBA = (
    "# written by flu_monitor.local.postgres_server at every start: its own user, by password\n"
    f"local all {USER} scram-sha-256\n"
    f"host all {USER} 127.0.0.1/32 scram-sha-256\n"
)


class PostgresError(RuntimeError):
    """The cluster could not be created, started or stopped; the message says why."""


def _bin_dir() -> Path:
    env = os.environ.get("FLU_MONITOR_PG_BIN")
    candidates = [Path(env)] if env else PG_BIN_DIRS
    for directory in candidates:
        if (directory / "postgres").exists() and (directory / "initdb").exists():
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
    """One cluster in `state_dir` (data/, postgres.log, port, pgpass); `.url` is the admin URL."""

    def __init__(self, state_dir: Path | str, port: int | None = None):
        self._as_postgres = os.geteuid() == 0
        self.state_dir = Path(state_dir).resolve()
        if self._as_postgres:
            self.state_dir = _reachable_by_postgres(self.state_dir)
        self.data_dir = self.state_dir / "data"
        self.log_file = self.state_dir / "postgres.log"
        self.passfile = self.state_dir / "pgpass"
        self._port_file = self.state_dir / "port"
        if port is None and self._port_file.exists():
            port = int(self._port_file.read_text())  # same port across restarts when still free
            if not _port_is_free(port):
                port = None
        self.port = port or free_port()
        self.bin = _bin_dir()
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}?passfile={self.passfile}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self.running else None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> PostgresServer:
        """initdb on first use, set the password, start the postmaster and wait until it
        accepts connections; idempotent."""
        if self.running:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        if self._as_postgres:
            pw = pwd.getpwnam(USER)
            os.chown(self.state_dir, pw.pw_uid, pw.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._stop_stale_postmaster()
        (self.data_dir / "pg_hba.conf").write_text(PG_HBA)
        self._ensure_password()
        self._port_file.write_text(str(self.port))
        self._launch(timeout)
        return self

    def _launch(self, timeout: float) -> None:
        cmd = [str(self.bin / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        cmd += ["-k", str(self.state_dir), "-c", "listen_addresses=127.0.0.1"]
        cmd += ["-c", "unix_socket_permissions=0700"]
        # No JIT in any session (dashboard reads, refresh, notifier, tests): our queries are
        # short, and PostgreSQL 15's docs (32.2 "When to JIT?") say "For short queries the added
        # overhead of performing JIT compilation will often be higher than the time it can
        # save"; measured: JIT compiling a day-keyed view's recompute took 0.37 of its 0.43 s.
        # refresh() keeps its own SET LOCAL jit = off for a user's PostgreSQL (--database-url).
        cmd += ["-c", "jit=off"]
        # SIGINT is a fast shutdown; a Ctrl-C in the terminal reaches our caller only.
        self._process = spawn(
            cmd, self.log_file, signal.SIGINT, cwd="/", **self._as_postgres_user()
        )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None  # started by start(), cleared only here
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                raise PostgresError(
                    f"postgres exited with code {code} while starting:\n{self.log_tail()}"
                )
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostgresError(
                        f"postgres did not accept connections within {timeout:.0f} s ({exc}):\n"
                        f"{self.log_tail()}"
                    ) from None
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, the cluster stays consistent);
        SIGKILL after `timeout` seconds. Leaves no process behind."""
        if self._process is not None:
            terminate(self._process, signal.SIGINT, timeout)
        self._process = None

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

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_file.exists():
            return "(no log written)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    # --- internals -------------------------------------------------------------------------
    def _as_postgres_user(self) -> dict:
        """Popen arguments that run a server command as `postgres` when we are root (and with
        none of root's supplementary groups)."""
        if not self._as_postgres:
            return {}
        return {"user": USER, "group": USER, "extra_groups": []}

    def _initdb(self) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made data dir from an interrupted initdb
        self.data_dir.mkdir()
        if self._as_postgres:
            pw = pwd.getpwnam(USER)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        self.passfile.unlink(missing_ok=True)  # a new cluster gets a new password
        pwfile = self.state_dir / "initdb-password"  # read by initdb (as `postgres`), then gone
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._password() + "\n")
        if self._as_postgres:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        try:
            self._run(
                "initdb", "-D", self.data_dir, "-U", USER, "--auth=scram-sha-256", "--no-sync",
                "-E", "UTF8", "--locale=C.UTF-8", f"--pwfile={pwfile}",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            # Disposable local state: durability settings off, a little more memory for refresh.
            conf.write(
                "\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = 256MB\nwork_mem = 32MB\nmaintenance_work_mem = 256MB\n"
                "max_wal_size = 2GB\n"
            )

    def _password(self) -> str:
        """The role's password from `pgpass`, made (random, 192 bits) if there is none yet."""
        if self.passfile.exists():
            return self.passfile.read_text().strip().rsplit(":", 1)[1]
        password = secrets.token_urlsafe(24)  # letters, digits, - and _: no pgpass escaping
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"*:*:*:{USER}:{password}\n")
        return password

    def _ensure_password(self) -> None:
        """A cluster made before passwords (trust authentication) gets one: set in single-user
        mode, which needs no connection and so no authentication."""
        if self.passfile.exists():
            return
        statement = f"ALTER ROLE {USER} PASSWORD '{self._password()}';\n"
        self._run("postgres", "--single", "-D", self.data_dir, "postgres", stdin=statement)

    def _stop_stale_postmaster(self) -> None:
        """A postmaster still running on this data dir (started before this code, or by a
        process that could not pass on its death): fast shutdown, so we start our own."""
        stop_stale(self.data_dir / "postmaster.pid", str(self.data_dir), signal.SIGINT, 30)

    def _run(self, tool: str, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / tool), *map(str, args)]
        result = subprocess.run(
            cmd,
            input=stdin,
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
            **self._as_postgres_user(),
        )
        if result.returncode != 0:
            raise PostgresError(
                f"{tool} failed (exit {result.returncode}) for {self.data_dir}:\n"
                f"{result.stderr.strip() or result.stdout.strip()}\n{self.log_tail()}".rstrip()
            )
        return result


def _port_is_free(port: int) -> bool:
    with contextlib.closing(socket.socket()) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    """Block until a connection to `url` succeeds (for servers started elsewhere); each attempt
    waits the URL's connect_timeout, 2 s when it sets none."""
    import psycopg

    from flu_monitor import pgconnect

    deadline = time.monotonic() + timeout
    while True:
        try:
            pgconnect.connect(url, 2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
