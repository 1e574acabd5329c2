"""`flu-monitor simulate`: write synthetic flu case events to a JSONL file, stdout or Kafka.

Only click is imported at module level; numpy, kafka-python and the model load when it runs
(the delivery bookkeeping is simulator/delivery.py).
With `--state FILE` a run continues where the previous one stopped (simulator/state.py): the
position of the last delivered event is saved after every confirmed flush (each second or 20,000
events) and when the run stops (SIGINT or SIGTERM: the events in flight are flushed first).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import click

from flu_monitor.cli import options
from flu_monitor.cli.errors import Command
from flu_monitor.simulator import delivery

SINKS = ("stdout", "jsonl", "kafka")
MAX_SPEED = 86_400.0  # a simulated day per second
MAX_DAYS = 3_660  # ten years, for --days and --backfill
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2199, 12, 31)


@click.command("simulate", cls=Command)
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Outbreak scenario YAML (see docs/simulator.md). [default: scenarios/default.yaml]",
)
@click.option(
    "--seed",
    type=options.SEED,
    default=0,
    show_default=True,
    help="Random seed: same seed, same events.",
)
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=None,
    help="Stop after exactly this many events.",
)
@click.option(
    "--days",
    type=options.FiniteFloat(min=0, min_open=True, max=MAX_DAYS),
    default=None,
    help="Stop when simulated time reaches the start day plus this many days.",
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First simulated day (UTC, YYYY-MM-DD) of a batch run. [default: the scenario's start]",
)
@click.option(
    "--backfill",
    type=click.IntRange(min=0, max=MAX_DAYS),
    default=None,
    metavar="DAYS",
    help="Start DAYS whole days before today (UTC) and write that history as fast as possible; "
    "stop at the current time unless --speed continues live.",
)
@click.option(
    "--speed",
    type=options.FiniteFloat(min=0, min_open=True, max=MAX_SPEED),
    default=None,
    help="Run live after the history: simulated time advances SPEED times faster than real "
    "time (1 = real time, 1440 = a day per minute, 86400 = a day per second, the most). Without "
    "--backfill or --start, live from the current time. [default: no pacing]",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Continue the simulated history kept in this file, and keep it there: a first run "
    "(no file yet) starts as --backfill or --start say; later runs resume after the last "
    "delivered event, write what the pause missed at once, then go on live at --speed.",
)
@click.option(
    "--sink",
    type=click.Choice(SINKS),
    default="stdout",
    show_default=True,
    help="stdout and jsonl write one JSON event per line; kafka produces to --topic.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), help="File for --sink jsonl."
)
@options.bootstrap_servers_option(
    required=False, help="Kafka brokers host:port[,host:port] for --sink kafka."
)
@options.topic_option("Kafka topic for --sink kafka.")
@click.option(
    "--partitions",
    type=click.IntRange(min=1, max=10_000),
    default=None,
    help="Create the topic with this many partitions if it does not exist "
    "(otherwise a missing topic is an error, as on MSK).",
)
@click.option(
    "--security-protocol",
    type=click.Choice(["PLAINTEXT", "SSL"], case_sensitive=False),
    default="PLAINTEXT",
    show_default=True,
    help="Kafka transport: PLAINTEXT or SSL (TLS). --msk-iam implies SASL_SSL.",
)
@click.option(
    "--msk-iam",
    is_flag=True,
    help="Authenticate to Amazon MSK with IAM (SASL OAUTHBEARER, aws-msk-iam-sasl-signer-python, "
    "default AWS credentials).",
)
@click.option("--region", help="AWS region of the MSK cluster (required with --msk-iam).")
@click.option(
    "--ssl-cafile", type=click.Path(exists=True, dir_okay=False), help="CA bundle for TLS."
)
@click.option(
    "--timeout",
    type=options.FiniteFloat(min=1, max=60),
    default=10.0,
    show_default=True,
    help="Seconds to wait for a Kafka broker to answer before failing; events not confirmed "
    "within 3 times this fail the run.",
)
@click.option("--quiet", is_flag=True, help="No progress or summary lines on stderr.")
def command(
    scenario_path,
    seed,
    count,
    days,
    start,
    backfill,
    speed,
    state_path,
    sink,
    out,
    bootstrap_servers,
    topic,
    partitions,
    security_protocol,
    msk_iam,
    region,
    ssl_cafile,
    timeout,
    quiet,
) -> None:
    """Generate synthetic flu case events (schemas/flu_case.schema.json) for NY, NJ and PA.

    Cases follow county population on a seasonal baseline, with the scenario's outbreaks on top.
    Examples:

    \b
      flu-monitor simulate --seed 1 --count 1000 --sink jsonl --out events.jsonl
      flu-monitor simulate --backfill 21 --speed 1440 --sink kafka \\
          --bootstrap-servers 127.0.0.1:9092 --partitions 6
    """
    from flu_monitor.simulator.scenario import DEFAULT_SCENARIO, ScenarioError, load

    if sink == "jsonl" and not out:
        raise click.UsageError("--out FILE is required with --sink jsonl")
    if sink == "kafka" and not bootstrap_servers:
        raise click.UsageError("--bootstrap-servers is required with --sink kafka")
    if msk_iam and not region:
        raise click.BadParameter("required with --msk-iam", param_hint="--region")
    if start is not None and backfill is not None:
        raise click.UsageError("--start and --backfill exclude each other")
    if start is not None and not FIRST_DAY <= start.date() <= LAST_DAY:
        raise click.BadParameter(f"must be from {FIRST_DAY} to {LAST_DAY}", param_hint="--start")
    scenario_file = Path(scenario_path or DEFAULT_SCENARIO)
    try:
        scenario = load(scenario_file)
    except ScenarioError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from None
    resume = _resume_state(state_path, scenario_file, seed)
    if state_path and resume is None and backfill is None and start is None:
        raise click.UsageError("a first run with --state needs --backfill or --start")

    # The sink before the model: a broker that does not answer or a file that cannot be opened
    # fails before numpy and the model load.
    kafka = KafkaTarget(bootstrap_servers, topic, partitions, security_protocol)
    kafka = replace(kafka, msk_iam=msk_iam, region=region, ssl_cafile=ssl_cafile, timeout=timeout)
    target = _open_sink(sink, out, kafka)

    sim, skip, first_day = _simulator(scenario, seed, start, backfill, speed, resume)
    live_from_now = speed is not None and backfill is None and start is None and resume is None
    until = None
    if days is not None:
        until = dt.datetime.combine(first_day, dt.time(), dt.UTC) + dt.timedelta(days=days)
    if (backfill is not None or resume is not None) and speed is None:
        until = min(until, sim.now) if until else sim.now
    progress = delivery.Progress(enabled=not quiet)
    stop = delivery.stop_on_signals()
    position = delivery.Position(state_path, resume or _new_state(sim, scenario_file, seed))
    if speed:
        pause = delivery.live_pause(target, position, stop)
        stream = sim.run(speed, history=not live_from_now, sleep=pause)
    else:
        stream = sim.events(until=until)
    if state_path and resume is not None:
        click.echo(f"simulate: continuing {state_path} after {resume.clock}", err=True)
    until_text = until.isoformat().replace("+00:00", "Z") if until else None
    live_text = sim.now.isoformat(timespec="seconds").replace("+00:00", "Z")
    try:
        for event in itertools.islice(stream, skip, None):
            if stop.is_set() or (count is not None and progress.count >= count):
                break
            if until_text and speed and event["event_time"] >= until_text:
                break
            target.write(event)
            position.advance(event, live=event["event_time"] > live_text)
            progress.tick(event)
            if position.due():
                target.flush()
                position.save()
        target.flush()
        position.save()
    except BrokenPipeError:  # e.g. `| head`: the reader has gone, nothing more to say
        sys.stderr.close()
        return
    except OSError as exc:
        _abandon(target)
        raise click.ClickException(f"cannot write to {out or sink}: {exc.strerror}") from None
    except _sink_errors() as exc:
        _abandon(target)
        raise click.ClickException(str(exc)) from None
    _close_sink(target)
    if stop.is_set():
        click.echo("simulate: stopped", err=True)
    progress.done(out if sink == "jsonl" else sink if sink == "stdout" else f"kafka {topic}")


def _resume_state(state_path, scenario_file, seed):
    """The saved state to continue (checked against the settings), or None for a first run."""
    if state_path is None:
        return None
    from flu_monitor.simulator import state

    try:
        saved = state.load(state_path)
    except state.StateError as exc:
        raise click.ClickException(str(exc)) from None
    if saved is not None:
        try:
            state.check_same_run(saved, state_path, scenario_file, seed)
        except state.StateError as exc:
            raise click.UsageError(str(exc)) from None
    return saved


def _simulator(scenario, seed, start, backfill, speed, resume):
    """(Simulator, events of its first day to skip, the history's first day)."""
    from flu_monitor.simulator.model import Simulator

    if resume is not None:
        # Continue on the saved day; history (at once) up to now or the saved clock, whichever
        # is later, then live from there.
        now = dt.datetime.now(dt.UTC)
        if resume.clock:
            now = max(now, dt.datetime.fromisoformat(resume.clock.replace("Z", "+00:00")))
        sim = Simulator(scenario, seed, start=resume.day, anchor=resume.anchor, now=now)
        return sim, resume.index, resume.start
    live_from_now = speed is not None and backfill is None and start is None
    if backfill is not None or live_from_now:
        sim = Simulator.backfilled(scenario, seed, backfill or 0)
    else:
        sim = Simulator(scenario, seed, start=start.date() if start else None)
    return sim, 0, sim.start


def _new_state(sim, scenario_file: Path, seed: int):
    from flu_monitor.simulator import state

    return state.SimState(
        scenario=str(scenario_file.resolve()),
        scenario_sha256=state.scenario_digest(scenario_file),
        seed=seed,
        start=sim.start,
        anchor=sim.anchor,
        day=sim.start,
        index=0,
    )


def _sink_errors() -> tuple:
    from flu_monitor import kafka_client
    from flu_monitor.simulator.sinks import SinkError

    return (SinkError, kafka_client.KafkaUnavailable)


@dataclass(frozen=True)
class KafkaTarget:
    """Where --sink kafka produces, and how it connects (the Kafka options)."""

    bootstrap_servers: str
    topic: str
    partitions: int | None
    security_protocol: str
    msk_iam: bool = False
    region: str | None = None
    ssl_cafile: str | None = None
    timeout: float = 10.0


def _open_sink(sink, out, kafka: KafkaTarget):
    from flu_monitor.simulator import sinks

    if sink == "stdout":
        return sinks.JsonlSink.to_stdout()
    if sink == "jsonl":
        try:
            return sinks.JsonlSink.to_path(out)
        except OSError as exc:
            raise click.BadParameter(f"{out}: {exc.strerror}", param_hint="--out") from None
    from flu_monitor import kafka_client

    try:
        conf = kafka_client.client_config(
            kafka.bootstrap_servers,
            security_protocol=kafka.security_protocol,
            msk_iam=kafka.msk_iam,
            region=kafka.region,
            ssl_cafile=kafka.ssl_cafile,
            timeout_s=kafka.timeout,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bootstrap-servers") from None
    try:
        return sinks.KafkaSink(
            conf, kafka.topic, kafka.partitions, confirm_timeout_s=3 * kafka.timeout
        )
    except (kafka_client.KafkaUnavailable, sinks.SinkError, ValueError) as exc:
        raise click.ClickException(f"Kafka: {exc}") from None


def _close_sink(target) -> None:
    from flu_monitor.simulator.sinks import SinkError

    try:
        target.close()
    except BrokenPipeError:
        pass
    except SinkError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write: {exc.strerror}") from None


def _abandon(target) -> None:
    """Release a sink after a failure, without waiting for anything more."""
    with contextlib.suppress(Exception):  # already failing: the first error is the one to say
        target.abandon()
