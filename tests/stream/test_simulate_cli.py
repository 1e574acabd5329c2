"""`flu-monitor simulate`: the interface other tooling relies on, bad input, real Kafka."""

import collections
import json
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from flu_monitor import contract, kafka_client
from flu_monitor.cli import main
from flu_monitor.local.kafka_server import free_port
from flu_monitor.simulator import delivery

# The console script of the interpreter running the tests (the project's .venv).
FLU_MONITOR = str(Path(sys.executable).with_name("flu-monitor"))


def simulate(*args):
    return CliRunner().invoke(main, ["simulate", *args], catch_exceptions=False)


def test_count_to_jsonl_is_exact_and_byte_identical_run_to_run(tmp_path):
    """Two runs, two processes: the console script, then this test process (its own hash seed
    and warm caches; a second script would add only a start-up)."""
    args = ["--seed", "42", "--count", "2500", "--sink", "jsonl", "--out"]
    done = subprocess.run(
        [FLU_MONITOR, "simulate", *args, str(tmp_path / "a.jsonl")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    again = simulate(*args, str(tmp_path / "b.jsonl"))
    assert again.exit_code == 0, again.output
    for stderr in (done.stderr, again.stderr):
        assert "wrote 2,500 events" in stderr
    outputs = [(tmp_path / name).read_bytes() for name in ("a.jsonl", "b.jsonl")]
    assert outputs[0] == outputs[1]
    lines = outputs[0].splitlines()
    assert len(lines) == 2500
    assert all(contract.violations(json.loads(line)) == [] for line in lines)
    other = simulate("--seed", "43", "--count", "5", "--quiet")
    assert other.stdout.splitlines()[0] != lines[0].decode()


def test_stdout_sink_writes_json_lines():
    result = simulate("--seed", "1", "--count", "3", "--quiet")
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 3 and all(contract.violations(e) == [] for e in events)
    assert result.stderr == ""


def test_backfill_stops_at_now_and_days_bounds_a_batch(tmp_path):
    result = simulate("--scenario", "scenarios/county_outbreak.yaml", "--backfill", "2", "--quiet")
    days = {json.loads(line)["event_time"][:10] for line in result.stdout.splitlines()}
    assert len(days) == 3  # two whole days and today so far
    last = max(json.loads(line)["event_time"] for line in result.stdout.splitlines())
    assert last <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    batch = simulate("--start", "2026-03-02", "--days", "1", "--quiet", "--seed", "9")
    stamps = [json.loads(line)["event_time"] for line in batch.stdout.splitlines()]
    assert stamps[0].startswith("2026-03-02") and stamps[-1].startswith("2026-03-02")


def test_live_without_backfill_starts_at_the_current_time():
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    result = simulate("--speed", "86400", "--count", "50", "--quiet")
    stamps = [json.loads(line)["event_time"] for line in result.stdout.splitlines()]
    assert len(stamps) == 50 and min(stamps) >= before
    assert stamps == sorted(stamps)


def test_progress_line_on_long_runs(monkeypatch):
    monkeypatch.setattr(delivery, "PROGRESS_EVERY_S", 0.0)
    result = simulate("--count", "5000", "--sink", "stdout")
    assert "events/s, simulated time 2026-01-05T" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("simulate: wrote 5,000 events")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--count", "-1"], "'--count'"),
        (["--speed", "0"], "'--speed'"),
        (["--backfill", "-3"], "'--backfill'"),
        (["--sink", "jsonl"], "--out"),
        (["--sink", "kafka"], "--bootstrap-servers"),
        (["--sink", "kafka", "--bootstrap-servers", "x:1", "--msk-iam"], "--region"),
        (["--start", "2026-13-01"], "'--start'"),
        (["--start", "2026-01-01", "--backfill", "3"], "--backfill"),
        (["--scenario", "does/not/exist.yaml"], "cannot read"),
        (["--sink", "jsonl", "--out", "/no/such/dir/x.jsonl"], "--out: /no/such/dir"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args, names):
    result = simulate(*args)
    assert result.exit_code == 2, result.output
    assert names in result.stderr


def test_state_continues_where_the_last_run_stopped(tmp_path):
    """A run cut short (--count) and continued with --state writes exactly the events of one
    uninterrupted run: nothing replayed, nothing skipped."""
    whole = simulate("--backfill", "3", "--days", "2", "--quiet").stdout
    state = str(tmp_path / "state.json")
    first = simulate("--backfill", "3", "--days", "2", "--count", "1000", "--state", state)
    saved = json.loads(Path(state).read_text())
    # The position: the day of the 1000th event, and how many of that day's events came before.
    days = [json.loads(line)["event_time"][:10] for line in whole.splitlines()[:1000]]
    assert (saved["day"], saved["index"]) == (days[-1], days.count(days[-1]))
    assert (saved["events"], saved["live"]) == (1000, False)
    rest = simulate("--backfill", "3", "--days", "2", "--state", state, "--quiet")
    assert rest.exit_code == 0, rest.output
    assert first.stdout + rest.stdout == whole
    assert json.loads(Path(state).read_text())["events"] == len(whole.splitlines())
    again = simulate("--backfill", "3", "--days", "2", "--state", state, "--quiet")
    assert again.stdout == ""  # all delivered: nothing is written twice


def test_sigterm_flushes_and_saves_then_a_restart_goes_on_live(tmp_path):
    state = tmp_path / "state.json"
    runs, saved = [], 0

    def live_and_past(events: int) -> bool:
        data = json.loads(state.read_text()) if state.exists() else {}
        return data.get("live", False) and data["events"] > events

    for name in ("a.jsonl", "b.jsonl"):
        out = tmp_path / name
        cmd = [FLU_MONITOR, "simulate", "--backfill", "1", "--speed", "3600", "--quiet"]
        process = subprocess.Popen([*cmd, "--state", str(state), "--sink", "jsonl", "--out", out])
        deadline = time.monotonic() + 120
        while not live_and_past(saved):  # this run saved a live position of its own
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.terminate()
        assert process.wait(timeout=60) == 0
        runs.append([json.loads(line) for line in out.read_bytes().splitlines()])
        saved = json.loads(state.read_text())["events"]
        assert json.loads(state.read_text())["clock"] == runs[-1][-1]["event_time"]
    assert saved == len(runs[0]) + len(runs[1])
    ids = [e["case_id"] for run in runs for e in run]
    assert len(ids) == len(set(ids))  # the second run replayed nothing
    assert runs[1][0]["event_time"] >= runs[0][-1]["event_time"]  # and carried on from there


def test_state_of_another_run_is_refused(tmp_path):
    state = tmp_path / "state.json"
    assert simulate("--backfill", "1", "--count", "5", "--state", str(state)).exit_code == 0
    result = simulate("--backfill", "1", "--state", str(state), "--seed", "3")
    assert result.exit_code == 2
    assert "was made with --seed 0, not 3" in result.stderr
    state.write_text('{"version": 1, "seed": "x"}')
    result = simulate("--state", str(state))
    assert result.exit_code == 1
    assert "is not a simulator state file" in result.stderr and "Traceback" not in result.output


OUTBREAK = dict(
    name="a",
    counties=["36047"],
    start="-1d",
    initial_daily_cases=1,
    doubling_days=1,
    duration_days=1,
)


def outbreak_yaml(**changes) -> str:
    return json.dumps({"name": "x", "outbreaks": [{**OUTBREAK, **changes}]})  # JSON is YAML


@pytest.mark.parametrize(
    ("yaml_text", "names"),
    [
        ("name: x\nbaseline: {peak_daily_cases_per_100k: -3}\n", "baseline.peak_daily_cases"),
        ("name: x\nbaseline: {peak_rate: 3}\n", "'peak_rate' was unexpected"),
        ("name: [x\n", "malformed YAML at line 2"),
        (outbreak_yaml(counties=["36999"]), "outbreaks[0].counties[0]: unknown county '36999'"),
        (outbreak_yaml(counties=["36047", "Kings, CT"]), "[1]: unknown county 'Kings, CT'"),
        (outbreak_yaml(start="soon"), "outbreaks[0].start"),
        (outbreak_yaml(start="2026-02-30"), "outbreaks[0].start"),
        (outbreak_yaml(initial_daily_cases=0), "outbreaks[0].initial_daily_cases"),
        (outbreak_yaml(doubling_days=-2), "outbreaks[0].doubling_days"),
        (outbreak_yaml(age_skew={"kids": 2}), "outbreaks[0].age_skew"),
        (outbreak_yaml(counties=[]), "outbreaks[0].counties"),
        ("name: x\nbaseline: {season_peak: '02-30'}\n", "baseline.season_peak"),
        ("- just a list\n", "(scenario)"),
    ],
)
def test_bad_scenarios_exit_2_naming_the_field(tmp_path, yaml_text, names):
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml_text)
    result = simulate("--scenario", str(path), "--count", "1")
    assert result.exit_code == 2, result.output
    assert "--scenario" in result.stderr and names in result.stderr, result.stderr


def test_scenario_counties_by_name_or_fips(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: x\noutbreaks:\n  - {name: a, counties: ['St. Lawrence County, NY', 'Kings, ny', "
        "'42101'], start: '0d', initial_daily_cases: 5, doubling_days: 1, duration_days: 2}\n"
    )
    from flu_monitor.simulator import load_scenario

    assert load_scenario(path).outbreaks[0].counties == ("36089", "36047", "42101")


def test_unreachable_broker_fails_clearly_within_its_timeout():
    port = free_port()  # nothing listens there
    done = subprocess.run(
        [FLU_MONITOR, "simulate", "--count", "10", "--sink", "kafka", "--timeout", "1"]
        + ["--bootstrap-servers", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=120,  # bounded: a hang fails here
    )
    assert done.returncode == 1
    assert f"no Kafka broker answered at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.kafka
def test_a_broker_that_goes_away_ends_a_live_run_with_a_message(kafka_server_factory):
    """Producing live into a broker that stops: the events are not confirmed, and the run ends
    (exit 1, one line) within 3 x --timeout instead of buffering or flushing forever."""
    broker = kafka_server_factory()
    broker.create_topic("flu_cases", partitions=1)
    process = subprocess.Popen(
        [FLU_MONITOR, "simulate", "--speed", "3600", "--sink", "kafka", "--timeout", "2"]
        + ["--bootstrap-servers", broker.bootstrap_servers, "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    assert process.poll() is None
    broker.stop()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and str(broker.port) in lines[-1], stderr


def test_kafka_sink_keys_by_county_and_delivers_every_event_once(kafka_broker, kafka_topic):
    result = simulate(
        "--seed", "8", "--count", "4000", "--sink", "kafka",
        "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", kafka_topic,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    consumer = kafka_client.make_consumer(
        kafka_broker.bootstrap_servers, group_id=None, topics=[kafka_topic]
    )
    records = []
    while len(records) < 4000:
        batch = consumer.poll(timeout_ms=10_000)
        if not batch:
            break
        records += [r for rs in batch.values() for r in rs]
    assert consumer.poll(timeout_ms=500) == {}  # nothing beyond the 4000
    consumer.close()
    assert len(records) == 4000
    events = [orjson.loads(r.value) for r in records]
    assert len({e["case_id"] for e in events}) == 4000
    assert all(r.key.decode() == e["county_fips"] for r, e in zip(records, events, strict=True))
    partitions = collections.defaultdict(set)
    for r in records:
        partitions[r.key].add(r.partition)
    assert all(len(p) == 1 for p in partitions.values())  # a county stays on one partition
    assert len({r.partition for r in records}) == 3
    # Same events as the file sink with the same seed, in per-partition order.
    expected = [
        json.loads(line)
        for line in simulate("--seed", "8", "--count", "4000", "--quiet").stdout.splitlines()
    ]
    assert sorted(e["case_id"] for e in events) == sorted(e["case_id"] for e in expected)
    assert all(contract.violations(e) == [] for e in events[:500])


def test_kafka_sink_refuses_a_missing_topic_or_creates_it_when_asked(kafka_broker):
    servers = kafka_broker.bootstrap_servers
    missing = simulate(
        "--count", "1", "--sink", "kafka", "--bootstrap-servers", servers, "--topic", "nope"
    )
    assert missing.exit_code == 1
    assert "topic 'nope' does not exist" in missing.stderr
    made = simulate(
        "--count", "10", "--sink", "kafka", "--bootstrap-servers", servers,
        "--topic", "made-by-simulate", "--partitions", "2", "--quiet",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    admin = kafka_client.make_admin(servers)
    assert kafka_client.partition_count(admin, "made-by-simulate") == 2
    admin.close()
