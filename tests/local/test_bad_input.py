"""Every command, given wrong input, ends with a one-line error naming the problem — exit 2 for
usage, 1 for the environment — and never a traceback or a hang (each run is bounded here).

The rows that reach the environment (exit 1: files, sockets, PostgreSQL, Kafka, AWS), every `up`
row (the command that starts services: none may be left behind) and a few usage rows run the real
`flu-monitor` console script in its own process, as a user would — all of them at once, so their
clients' timeouts overlap. The other usage rows are refused by option checks before any I/O: they
run in this process through click's CliRunner, where a real process would add only its start-up."""

import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from tests.fixtures.postgres import worker_unique

FLU_MONITOR = str(Path(sys.executable).with_name("flu-monitor"))
LONGEST_S = 120  # a row still running after this is a hang

# One worker runs the whole table under `pytest -n --dist loadgroup` (make test-fast), so the real
# processes start once and their waits overlap.
pytestmark = pytest.mark.xdist_group("bad_input")


@pytest.fixture(scope="module")
def silent_port():
    """A port that accepts TCP connections and never answers: only a client's own timeout ends
    the wait (a hung server, a firewall that swallows packets)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def files():
    home = Path(tempfile.mkdtemp(prefix="flu-monitor-bad-input-"))
    (home / "latin1.jsonl").write_bytes(b'{"case_id": "caf\xe9"}\n')
    (home / "broken.jsonl").write_text('{"case_id": \n')
    (home / "bad.yaml").write_text("name: x\nbaseline: {peak_daily_cases_per_100k: -3}\n")
    (home / "state.json").write_text("{not json")
    yield home
    import shutil

    shutil.rmtree(home, ignore_errors=True)


# (arguments, exit status, text the error line must contain). {silent}, {closed}, {busy}, {dir}
# {db} (a database without sql/ applied) and {missing_db} (one that does not exist) are filled in
# per row.
ROWS = [
    # validate
    (["validate", "{dir}/latin1.jsonl"], 2, "latin1.jsonl:1: not UTF-8"),
    (["validate", "{dir}/broken.jsonl"], 2, "broken.jsonl:1:"),
    (["validate", "{dir}/missing.jsonl"], 2, "No such file or directory"),
    # simulate: numbers, names, places
    (["simulate", "--days", "nan"], 2, "'nan' is not a finite number"),
    (["simulate", "--days", "inf"], 2, "'--days'"),
    (["simulate", "--days", "1e9"], 2, "'--days'"),
    (["simulate", "--backfill", "100000000"], 2, "'--backfill'"),
    (["simulate", "--speed", "nan"], 2, "'nan' is not a finite number"),
    (["simulate", "--speed", "inf"], 2, "'--speed'"),
    (["simulate", "--speed", "1e9"], 2, "'--speed'"),
    (["simulate", "--timeout", "nan"], 2, "'--timeout'"),
    (["simulate", "--seed", "-1"], 2, "'--seed'"),
    (["simulate", "--start", "9999-12-30"], 2, "--start"),
    (["simulate", "--count", "200000", "--sink", "jsonl", "--out", "/dev/full"], 1,
     "cannot write to /dev/full: No space left on device"),
    (["simulate", "--sink", "kafka", "--bootstrap-servers", "127.0.0.1:9092", "--topic",
      "no spaces"], 2, "is not a Kafka topic name"),
    (["simulate", "--sink", "kafka", "--bootstrap-servers", "nohost"], 2, "is not host:port"),
    (["simulate", "--sink", "kafka", "--bootstrap-servers", "127.0.0.1:{silent}", "--timeout",
      "2", "--count", "5"], 1, "no Kafka broker answered"),
    (["simulate", "--sink", "kafka", "--bootstrap-servers", "127.0.0.1:{closed}", "--partitions",
      "100000"], 2, "'--partitions'"),
    (["simulate", "--state", "{dir}/state.json"], 1, "is not a simulator state file"),
    (["simulate", "--scenario", "{dir}/bad.yaml"], 2, "baseline.peak_daily_cases"),
    # db
    (["db", "apply", "--database-url", "nonsense"], 2, "not a PostgreSQL connection URL"),
    (["db", "apply", "--database-url", "postgresql://x@127.0.0.1:99999/d"], 2, "port '99999'"),
    # the URL's connect_timeout (libpq's own setting) bounds the wait: 2 s, not the default 10
    (["db", "apply", "--database-url", "postgresql://x@127.0.0.1:{silent}/d?connect_timeout=2"],
     1, "database: connection"),
    (["db", "load-jsonl", "{dir}/broken.jsonl", "--database-url",
      "postgresql://x@127.0.0.1:{closed}/d"], 1, "Connection refused"),
    (["db", "load-jsonl", "{dir}/broken.jsonl", "--partition", "-1", "--database-url", "{db}"],
     2, "'--partition'"),
    (["db", "refresh", "--database-url", "postgresql://x@127.0.0.1:{closed}/d"], 1,
     "Connection refused"),
    (["db", "refresh", "--every", "nan", "--database-url", "{db}"], 2, "'--every'"),
    (["db", "rejected", "--database-url", "{db}"], 1, "run `flu-monitor db apply` first"),
    (["db", "rejected", "--database-url", "{missing_db}"], 1, "does not exist"),
    # ingest, refresh, dashboard
    (["ingest", "--bootstrap-servers", "127.0.0.1:{closed}", "--database-url",
      "postgresql://x@127.0.0.1:{closed}/d"], 1, "Connection refused"),
    (["ingest", "--bootstrap-servers", "127.0.0.1:{closed}", "--database-url", "{db}",
      "--topic", "../x"], 2, "'--topic'"),
    (["ingest", "--bootstrap-servers", "127.0.0.1:0", "--database-url", "{db}"], 2,
     "'127.0.0.1:0' is not host:port"),
    (["ingest", "--bootstrap-servers", "127.0.0.1:{closed}", "--database-url", "{db}",
      "--batch-size", "0"], 2, "'--batch-size'"),
    (["refresh", "--database-url", "postgres://::bad"], 2, "port ':bad'"),
    (["refresh", "--database-url", "{db}", "--every", "inf"], 2, "'--every'"),
    (["dashboard", "--database-url", "{db}", "--port", "{busy}"], 1, "cannot listen on"),
    (["dashboard", "--database-url", "{db}", "--port", "0"], 2, "'--port'"),
    # notify
    (["notify", "--database-url", "{db}", "--alert-webhook", "ftp://x/"], 2,
     "'ftp://x/' is not an http(s) URL"),
    (["notify", "--database-url", "{db}", "--every", "nan"], 2, "'--every'"),
    (["notify", "--database-url", "{db}", "--retry-after", "-1"], 2, "'--retry-after'"),
    (["notify", "--once", "--database-url", "postgresql://x@127.0.0.1:{closed}/d"], 1,
     "Connection refused"),
    (["notify", "--once", "--database-url", "{db}"], 1, "run `flu-monitor db apply` first"),
    # aws preflight: usage before any AWS call, then the caller's credentials
    (["aws", "preflight", "--region", "nowhere-1"], 2, "is not a Region name"),
    (["aws", "preflight", "--region", "us-east-1", "--config-env", "nosuch"], 2,
     "is not in samconfig.toml"),
    (["aws", "preflight", "--region", "us-east-1", "--parameter-overrides", "ClusterType"], 2,
     "expected Key=Value"),
    (["aws", "preflight", "--region", "us-east-1"], 1, "cannot call AWS as you"),
    # up: checked before anything starts
    (["up", "--scenario", "{dir}/missing.yaml"], 2, "does not exist"),
    (["up", "--scenario", "{dir}/bad.yaml"], 2, "baseline.peak_daily_cases"),
    (["up", "--speed", "nan"], 2, "'nan' is not a finite number"),
    (["up", "--speed", "1e9"], 2, "'--speed'"),
    (["up", "--history-days", "100000000"], 2, "'--history-days'"),
    (["up", "--seed", "-5"], 2, "'--seed'"),
    (["up", "--topic", "a/b"], 2, "'--topic'"),
    (["up", "--database-url", "nonsense"], 2, "not a PostgreSQL connection URL"),
    # up retries a server that may be starting for 15 s, or the URL's connect_timeout
    (["up", "--database-url", "postgresql://x@127.0.0.1:{closed}/d?connect_timeout=2"], 1,
     "cannot connect to --database-url"),
    (["up", "--kafka-timeout", "0"], 2, "'--kafka-timeout'"),
    # a broker given is waited for 10 s by default, or --kafka-timeout
    (["up", "--bootstrap-servers", "127.0.0.1:{closed}", "--kafka-timeout", "1"], 1,
     "no Kafka broker answers at --bootstrap-servers 127.0.0.1:{closed} within 1 s"),
    (["up", "--port", "{busy}"], 1, "is in use"),
    (["up", "--alert-webhook", "hooks.example.org"], 2, "is not an http(s) URL"),
]  # fmt: skip


def _ids(row):
    return " ".join(row[0])[:60]


# Usage rows run as real processes too: exit status 2 and the usage lines end to end.
END_TO_END_USAGE = (["simulate", "--days", "nan"], ["db", "apply", "--database-url", "nonsense"])


def _real_process(row) -> bool:
    args, status, _ = row
    return status == 1 or args[0] == "up" or args in END_TO_END_USAGE


@pytest.fixture(scope="module")
def values(silent_port, closed_port, busy_port, files, postgres_server):
    """What the rows' placeholders stand for; {db} is a database without sql/ applied, which no
    row changes."""
    name = worker_unique("bad_input")
    db = postgres_server.create_database(name)
    yield {
        "silent": silent_port,
        "closed": closed_port,
        "busy": busy_port,
        "dir": files,
        "db": db,
        "missing_db": db.replace(f"/{name}?", "/no_such_database?"),
    }
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _argv(row, values) -> list[str]:
    return [a.format(**values) for a in row[0]]


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # No AWS identity whatever the machine has: the preflight row must find no credentials.
    env |= {"FLU_MONITOR_STATE": str(state), "AWS_EC2_METADATA_DISABLED": "true"}
    return env | {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


@pytest.fixture(scope="module")
def processes(request, values):
    """The real-process rows this session runs, all started at once (output to files: no pipe can
    fill up); each with its own state directory."""
    selected = {
        item.callspec.params["index"]
        for item in request.session.items
        if item.path == request.path and hasattr(item, "callspec")
    }
    started = {}
    for i, row in enumerate(ROWS):
        if i in selected and _real_process(row):
            home = values["dir"] / f"row-{i}"
            home.mkdir()
            out, err = (open(home / name, "w+") for name in ("stdout", "stderr"))  # noqa: SIM115
            process = subprocess.Popen(
                [FLU_MONITOR, *_argv(row, values)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                env=_env(home / "state"),
            )  # fmt: skip
            started[i] = (process, out, err, home / "state")
    yield started
    for process, out, err, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()
        out.close()
        err.close()


def _run(index, row, values, processes) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a row: its real process, or an in-process run."""
    if index in processes:
        process, out, err, state = processes[index]
        status = process.wait(timeout=LONGEST_S)
        out.seek(0)
        err.seek(0)
        if row[0][0] == "up":  # nothing was started for a bad option
            started = [p for p in ("kafka", "postgres") if (state / p).exists()]
            assert not started, started
        return status, out.read(), err.read()
    from flu_monitor.cli import main

    result = CliRunner().invoke(
        main, _argv(row, values), prog_name="flu-monitor", env=_env(values["dir"] / "unused")
    )
    # An exception other than the SystemExit click ends with is a traceback in a real process.
    assert isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("index", "row"), list(enumerate(ROWS)), ids=[_ids(r) for r in ROWS]
)  # fmt: skip
def test_bad_input(index, row, values, processes):
    status, stdout, stderr = _run(index, row, values, processes)
    output = stdout + stderr
    assert status == row[1], output
    assert "Traceback" not in output, output
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    assert row[2].format(**values) in errors[0], output
    assert len(stderr.strip().splitlines()) <= 4, output  # usage, hint, blank, the error


def test_every_command_has_a_row():
    from flu_monitor.cli import main

    groups = {name for name, command in main.commands.items() if hasattr(command, "commands")}
    commands = {name for name in main.commands if name not in groups}
    commands |= {f"{g} {name}" for g in groups for name in main.commands[g].commands}
    covered = {" ".join(r[0][:2]) if r[0][0] in groups else r[0][0] for r in ROWS}
    assert commands == covered
    assert all(re.fullmatch(r"[^{}]*(\{\w+\}[^{}]*)*", " ".join(r[0])) for r in ROWS)
