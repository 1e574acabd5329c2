"""PostgresServer as root: the cluster runs as `postgres`, which must reach its directory."""

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from flu_monitor.local.postgres_server import PostgresServer

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to `postgres`"),
]


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


def test_state_dir_others_can_reach_stays_where_asked():
    parent = Path(tempfile.mkdtemp(prefix="flu-monitor-open-"))
    try:
        parent.chmod(0o755)
        assert PostgresServer(parent / "postgres").state_dir == parent / "postgres"
    finally:
        shutil.rmtree(parent, ignore_errors=True)
