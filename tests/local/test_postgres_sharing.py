"""The tests' PostgreSQL shared by xdist workers (tests/fixtures/postgres.py, postgres_shared.py):
a database copied from is filled once for all the processes asking, never copied half-filled, and
the controller's cluster dies with the controller.

Two `Copies` on their own connections stand for two workers: PostgreSQL's advisory lock and
catalog know sessions, not processes, so threads prove here what processes would."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.fixtures.postgres import Copies

ROOT = Path(__file__).resolve().parents[2]


def _databases(server, like: str) -> list[str]:
    with psycopg.connect(server.url) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", [like]
        ).fetchall()
    return [name for (name,) in rows]


def _rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT note FROM filled ORDER BY 1").fetchall()


def _drop(server, names) -> None:
    with psycopg.connect(server.url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_processes_asking_for_one_template_fill_it_once(postgres_server):
    fills = []
    both_asking = threading.Barrier(2)

    def fill(url):
        fills.append(url)
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE filled (note text)")
            conn.execute("INSERT INTO filled VALUES ('complete')")
        time.sleep(0.5)  # the other one asks meanwhile

    urls, errors = [], []

    def worker():
        copies = Copies(postgres_server)
        both_asking.wait()
        try:
            urls.append(copies.copy("sharing_once", fill))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = [conninfo_to_dict(url)["dbname"] for url in urls]
    try:
        assert errors == []
        assert len(fills) == 1, fills
        assert len(set(urls)) == 2  # a copy each, both of the complete fill
        assert all(_rows(url) == [("complete",)] for url in urls)
        assert _databases(postgres_server, "sharing_once%") == ["sharing_once"]
    finally:
        _drop(postgres_server, ["sharing_once", *names])


def test_a_failed_fill_is_never_copied(postgres_server):
    def failing(url):
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE filled (note text)")
            conn.execute("INSERT INTO filled VALUES ('half')")
        raise RuntimeError("fill failed")

    def complete(url):
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE filled (note text)")
            conn.execute("INSERT INTO filled VALUES ('complete')")

    try:
        with pytest.raises(RuntimeError, match="fill failed"):
            Copies(postgres_server).copy("sharing_failed", failing)
        assert "sharing_failed" not in _databases(postgres_server, "sharing_failed%")
        # another process asking next fills it afresh (over the failed fill's leftover)
        url = Copies(postgres_server).copy(
            "sharing_failed", complete, as_name="sharing_failed_copy"
        )
        assert _rows(url) == [("complete",)]
    finally:
        _drop(postgres_server, _databases(postgres_server, "sharing_failed%"))


CONTROLLER = """
import sys, time
from tests.fixtures.postgres_shared import SharedCluster, attach
cluster = SharedCluster()
time.sleep(0.3)
print(int((cluster.state_dir / "data" / "postmaster.pid").exists()), flush=True)
server = attach(cluster.state_dir)
print(cluster.state_dir, (cluster.state_dir / "data" / "postmaster.pid").read_text().split()[0],
      flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.postgres
@pytest.mark.slow  # a cluster of its own (initdb): `make test`, not `make test-fast`
def test_the_shared_cluster_starts_when_wanted_and_dies_with_its_controller():
    controller = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert controller.stdout.readline().strip() == "0"  # nobody asked: not started
        state_dir, pid = controller.stdout.readline().split()
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    deadline = time.monotonic() + 60
    while _running(int(pid)):
        assert time.monotonic() < deadline, "the postmaster outlived the controller"
        time.sleep(0.05)
    # left for the next session's _remove_left_behind (tests/unit/test_postgres_fixture.py)
    assert Path(state_dir, "data").exists()
    subprocess.run(["rm", "-rf", state_dir], check=True)
