"""PostgresServer: only its own user gets in, it dies with its starter, and as root the cluster
runs as `postgres`, which must reach its directory."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from flu_monitor.local.postgres_server import PG_HBA, PostgresServer
from tests.fixtures.postgres_dir import in_memory

pytestmark = pytest.mark.postgres
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to `postgres`")


def _home() -> Path:
    """A state home outside pytest's tmp root (0700 when another session starts), in memory
    where the session's own cluster is (a cluster is ~40 MB written by initdb or a copy: 0.7 s of
    kernel time on this VM's ext4, 0.08 s in memory)."""
    path = Path(tempfile.mkdtemp(prefix="flu-monitor-pg-test-", dir=in_memory()))
    path.chmod(0o711)
    return path


@pytest.fixture(scope="module")
def made_cluster():
    """The state directory of a cluster made by a first start (initdb, the generated password,
    its pg_hba.conf) and stopped: made once (initdb is most of a first start's second), copied
    for each test that wants one."""
    path = _home()
    PostgresServer(path / "postgres").start().stop()
    yield path / "postgres"
    shutil.rmtree(path, ignore_errors=True)


def copy_cluster(made: Path, to: Path) -> None:
    """A copy of the stopped cluster, as it is on disk: owners (`postgres` when we are root) and
    modes kept."""
    subprocess.run(["cp", "-a", str(made), str(to)], check=True)


@pytest.fixture
def home(made_cluster):
    """A state home holding a copy of the made cluster in postgres/."""
    path = _home()
    copy_cluster(made_cluster, path / "postgres")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def refused(url: str) -> str:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(url, connect_timeout=10).close()
    return str(caught.value)


def test_only_its_own_user_with_the_generated_password_gets_in(home):
    server = PostgresServer(home / "postgres").start()
    try:
        assert "passfile=" in server.url and ":" not in server.url.split("@")[0][13:]
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        assert (server.passfile.stat().st_mode & 0o777) == 0o600
        assert (server.state_dir.stat().st_mode & 0o777) == 0o700  # and the socket's directory
        tcp = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        assert "no password supplied" in refused(tcp)
        assert "password authentication failed" in refused(tcp.replace("@", ":guess@"))
        assert "no pg_hba.conf entry" in refused(tcp.replace("postgres@", "admin:x@"))
        socket_url = f"postgresql://postgres@/postgres?host={server.state_dir}&port={server.port}"
        assert "no password supplied" in refused(socket_url)
        with psycopg.connect(f"{socket_url}&passfile={server.passfile}") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def test_a_cluster_made_before_passwords_gets_one(home):
    """Clusters made by earlier versions trusted every local connection: the next start sets a
    password (single-user mode) and puts its own pg_hba.conf back."""
    server = PostgresServer(home / "postgres").start()
    server.stop()
    server.passfile.unlink()
    (server.data_dir / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    server.start()
    try:
        assert (server.data_dir / "pg_hba.conf").read_text() == PG_HBA
        assert "no password supplied" in refused(
            f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        )
        psycopg.connect(server.url).close()
    finally:
        server.stop()


STARTER = """
import sys, time
from flu_monitor.local.postgres_server import PostgresServer
server = PostgresServer(sys.argv[1]).start()
print(server.pid, flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """Whether the process runs: it exists and is not a zombie (an orphan that exited is one
    until PID 1 reaps it, which in a container may take seconds)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_cluster_stops_when_its_starter_is_killed(home):
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(home / "postgres")], stdout=subprocess.PIPE, text=True
    )
    postmaster = int(starter.stdout.readline())
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 60
    while _running(postmaster):
        assert time.monotonic() < deadline, "the postmaster outlived the process that started it"
        time.sleep(0.05)
    server = PostgresServer(home / "postgres").start()  # and the next start is clean
    server.stop()


@as_root
def test_state_dir_under_a_closed_directory_moves_to_the_temp_dir():
    closed = Path(tempfile.mkdtemp(prefix="flu-monitor-closed-"))  # mode 0700, like /root
    wanted = closed / "checkout" / ".state" / "postgres"
    server = PostgresServer(wanted)
    try:
        assert server.state_dir.parent == Path(tempfile.gettempdir())
        assert PostgresServer(wanted).state_dir == server.state_dir  # same place every run
        server.start()
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        assert (closed.stat().st_mode & 0o777) == 0o700  # the user's directory is left alone
    finally:
        server.stop()
        shutil.rmtree(server.state_dir, ignore_errors=True)
        shutil.rmtree(closed, ignore_errors=True)


@as_root
def test_state_dir_others_can_reach_stays_where_asked():
    parent = Path(tempfile.mkdtemp(prefix="flu-monitor-open-"))
    try:
        parent.chmod(0o755)
        assert PostgresServer(parent / "postgres").state_dir == parent / "postgres"
    finally:
        shutil.rmtree(parent, ignore_errors=True)
