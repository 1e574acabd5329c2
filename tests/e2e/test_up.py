"""`flu-monitor up` on its own, the way `make demo` runs it: it starts its own Kafka and
PostgreSQL under the state directory, serves the dashboard, and Ctrl-C leaves nothing running."""

import datetime as dt
import json
import os
import re
import shutil
import signal
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from flu_monitor.local.postgres_server import PostgresServer
from flu_monitor.paths import ROOT
from flu_monitor.warehouse import postgres as warehouse
from tests.e2e.conftest import UpProcess, alive, free_port

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


def ctrl_c_stops_everything(up: UpProcess, children: set[int], state: Path) -> None:
    assert up.interrupt() == 0, up.text()
    assert "stopped: no process left running" in up.text()
    assert not [pid for pid in children if alive(pid)], up.text()
    assert not processes_using(state), up.text()


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

        ctrl_c_stops_everything(up, children, state)
    finally:
        up.kill()


def child_pid(up: UpProcess, command: str) -> int | None:
    """The pid of up's `python -m flu_monitor <command>` child, None when there is none."""
    for pid in up.descendants():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[1:4] == [b"-m", b"flu_monitor", command.encode()]:
            return pid
    return None


def saved_position(state: Path) -> dict:
    path = state / "simulate-flu_cases.json"
    return json.loads(path.read_text()) if path.exists() else {}


def wait_for(predicate, timeout_s: float, what: str, up: UpProcess | None = None):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if up is not None and up.process.poll() is not None:
            raise AssertionError(f"up exited with {up.process.returncode}:\n{up.text()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def expected_case_ids(state: Path) -> Counter:
    """Case ids per report day of ONE uninterrupted run up to the saved position: the model's
    events for the saved seed, scenario and calendar (each day is drawn from (seed, day))."""
    from flu_monitor.simulator import state as sim_state
    from flu_monitor.simulator.model import Simulator
    from flu_monitor.simulator.scenario import load

    saved = sim_state.load(state / "simulate-flu_cases.json")
    sim = Simulator(load(saved.scenario), saved.seed, start=saved.start, anchor=saved.anchor)
    ids = Counter()
    for batch in sim.batches():
        if batch.day > saved.day:
            break
        taken = batch.case_id if batch.day < saved.day else batch.case_id[: saved.index]
        ids.update((batch.day, case_id) for case_id in taken)
    return ids


def test_restarts_continue_the_history_without_gap_or_duplicate(state_home):
    """Stopped every way — kill -9 of the simulator and of `up` during the backfill, a crashed
    child, Ctrl-C after the backfill, a launch with SIGINT ignored — and started again, `up`
    leaves exactly the cases one uninterrupted run of the same simulated length makes."""
    state = state_home / "state"
    # The default season ten times as intense: a 60-day backfill of about 300,000 events, saved
    # every 20,000 (CHECKPOINT_EVERY_EVENTS), lasts long enough on any machine to be cut.
    scenario = state_home / "intense.yaml"
    default = (ROOT / "scenarios" / "default.yaml").read_text()
    assert "peak_daily_cases_per_100k: 20\n" in default
    scenario.write_text(
        default.replace("peak_daily_cases_per_100k: 20\n", "peak_daily_cases_per_100k: 200\n")
    )
    args = ("--history-days", "60", "--seed", "5", "--scenario", str(scenario))
    args += ("--port", str(free_port()))

    # 1. During the backfill: the simulator crashes (its saved position lags what it sent),
    #    then `up` itself is killed. Nothing may outlive it.
    up = UpProcess(state_home, *args, name="up-1.out")
    try:
        wait_for(lambda: saved_position(state).get("events", 0) > 0, 240, "a saved position", up)
        os.kill(child_pid(up, "simulate"), signal.SIGKILL)
        assert saved_position(state)["live"] is False, "the backfill finished before the kill"
        up.kill()
        wait_for(lambda: not processes_using(state), 60, "every process of up to end")
    finally:
        up.kill()

    # 2. Again: the backfill is completed, then a crashed child is restarted, then Ctrl-C.
    up = UpProcess(state_home, *args, name="up-2.out")
    try:
        up.wait_for_output("Dashboard: http://127.0.0.1", timeout_s=240)
        assert "continuing the simulated history" in up.text()
        crashed = child_pid(up, "ingest")
        os.kill(crashed, signal.SIGKILL)
        up.wait_for_output("! ingest exited with code -9", timeout_s=30)
        up.wait_for_output("restarting in 1 s (1 of 5)", timeout_s=5)
        wait_for(lambda: child_pid(up, "ingest") not in (None, crashed), 60, "a new ingester", up)
        before = saved_position(state)["events"]
        wait_for(lambda: saved_position(state)["events"] > before, 120, "live events", up)
        assert up.interrupt() == 0, up.text()
    finally:
        up.kill()

    # 3. Launched with SIGINT ignored (nohup, `cmd &`): Ctrl-C still stops it cleanly.
    up = UpProcess(state_home, *args, ignore_sigint=True, name="up-3.out")
    try:
        up.wait_for_output("Dashboard: http://127.0.0.1", timeout_s=240)
        children = up.descendants()
        ctrl_c_stops_everything(up, children, state)
    finally:
        up.kill()

    expected = expected_case_ids(state)
    with PostgresServer(state / "postgres") as pg:
        url = pg.url_for("flu_monitor")
        warehouse.refresh(url)
        with psycopg.connect(url) as conn:
            stored = Counter(conn.execute("SELECT report_date, case_id FROM flu_cases").fetchall())
            rejected = dict(
                conn.execute("SELECT reason, records FROM flu_rejected_records").fetchall()
            )
            per_day = dict(
                conn.execute("SELECT day, SUM(cases) FROM mv_daily_state_cases GROUP BY day")
            )
    assert stored == expected  # every case once: no gap, no duplicate
    assert len(expected) > 250_000 and max(expected.values()) == 1
    assert set(rejected) <= {"duplicate_case_id"}, rejected  # replays of the crashed simulator
    days = Counter(day for day, _ in expected.elements())
    assert per_day == dict(days)
    assert sorted(days) == [min(days) + dt.timedelta(n) for n in range(len(days))]  # gapless
