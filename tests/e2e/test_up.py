"""`flu-monitor up` on its own, the way `make demo` runs it: it starts its own Kafka and
PostgreSQL under the state directory, serves the dashboard, and Ctrl-C leaves nothing running."""

import re
import shutil
import tempfile
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import UpProcess, alive

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def processes_using(path: Path) -> list[int]:
    """Live processes whose command line mentions `path` (the broker, postgres, our children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(path) in cmdline and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


@pytest.fixture
def state_home():
    """A directory for up's state outside pytest's tmp root: pytest re-closes that root (0700)
    whenever another pytest session starts, and the `postgres` user must reach its data dir."""
    home = Path(tempfile.mkdtemp(prefix="flu-monitor-up-test-"))
    home.chmod(0o711)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_up_starts_everything_and_ctrl_c_stops_everything(state_home):
    up = UpProcess(state_home, "--history-days", "2", "--seed", "2")  # default port (or a free one)
    try:
        up.wait_for_output("Dashboard: http://127.0.0.1", timeout_s=240)
        state = state_home / "state"
        assert processes_using(state / "kafka"), "no broker running from the state directory"
        assert processes_using(state / "postgres"), "no PostgreSQL running from the state dir"
        children = up.descendants()
        url = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+/)", up.text()).group(1)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert b"_dash-config" in response.read()
        text = up.text()
        for step in ("Kafka: starting", "PostgreSQL: starting", "Warehouse SQL", "History"):
            assert step in text, text

        assert up.interrupt() == 0, up.text()
        assert "stopped: no process left running" in up.text()
        assert not [pid for pid in children if alive(pid)], up.text()
        assert not processes_using(state), up.text()
    finally:
        up.kill()
