"""`flu-monitor simulate`: write synthetic flu case events to a JSONL file, stdout or Kafka.

Only click is imported at module level; numpy, kafka-python and the model load when it runs.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import click

SINKS = ("stdout", "jsonl", "kafka")
PROGRESS_EVERY_S = 5.0


class Progress:
    """A line on stderr every few seconds on long runs: total, events/s, simulated time."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.count = 0
        self.started = self.last = time.monotonic()

    def tick(self, event: dict) -> None:
        self.count += 1
        if self.count & 0x3FF or not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = self.count / (now - self.started)
            click.echo(
                f"simulate: {self.count:,} events, {rate:,.0f} events/s, "
                f"simulated time {event['event_time']}",
                err=True,
            )

    def done(self, where: str) -> None:
        if self.enabled:
            seconds = time.monotonic() - self.started
            rate = self.count / seconds if seconds > 0 else 0.0
            click.echo(
                f"simulate: wrote {self.count:,} events to {where} in {seconds:.1f} s "
                f"({rate:,.0f} events/s)",
                err=True,
            )


@click.command("simulate")
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Outbreak scenario YAML (see docs/simulator.md). [default: scenarios/default.yaml]",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same events."
)
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=None,
    help="Stop after exactly this many events.",
)
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
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
    type=click.IntRange(min=0),
    default=None,
    metavar="DAYS",
    help="Start DAYS whole days before today (UTC) and write that history as fast as possible; "
    "stop at the current time unless --speed continues live.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Run live after the history: simulated time advances SPEED times faster than real "
    "time (1 = real time, 1440 = a day per minute, 86400 = a day per second). Without "
    "--backfill or --start, live from the current time. [default: no pacing]",
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
@click.option("--bootstrap-servers", help="Kafka brokers host:port[,host:port] for --sink kafka.")
@click.option("--topic", default="flu_cases", show_default=True, help="Kafka topic.")
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
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
    type=click.FloatRange(min=1, max=60),
    default=10.0,
    show_default=True,
    help="Seconds to wait for a Kafka broker to answer before failing.",
)
@click.option("--quiet", is_flag=True, help="No progress or summary lines on stderr.")
def simulate(
    scenario_path,
    seed,
    count,
    days,
    start,
    backfill,
    speed,
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
    try:
        scenario = load(scenario_path or DEFAULT_SCENARIO)
    except ScenarioError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from None

    from flu_monitor.simulator.model import Simulator

    live_from_now = speed is not None and backfill is None and start is None
    if backfill is not None or live_from_now:
        sim = Simulator.backfilled(scenario, seed, backfill or 0)
    else:
        sim = Simulator(scenario, seed, start=start.date() if start else None)
    until = None
    if days is not None:
        until = dt.datetime.combine(sim.start, dt.time(), dt.UTC) + dt.timedelta(days=days)
    if backfill is not None and speed is None:
        until = min(until, sim.now) if until else sim.now

    target = _open_sink(
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
    )
    progress = Progress(enabled=not quiet)
    stream = sim.run(speed, history=not live_from_now) if speed else sim.events(until=until)
    until_text = until.isoformat().replace("+00:00", "Z") if until else None
    try:
        for event in stream:
            if count is not None and progress.count >= count:
                break
            if until_text and speed and event["event_time"] >= until_text:
                break
            target.write(event)
            progress.tick(event)
    except BrokenPipeError:  # e.g. `| head`: the reader has gone, nothing more to say
        sys.stderr.close()
        return
    except KeyboardInterrupt:
        click.echo("simulate: interrupted", err=True)
    finally:
        _close_sink(target)
    progress.done(out if sink == "jsonl" else sink if sink == "stdout" else f"kafka {topic}")


def _open_sink(
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
):
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
            bootstrap_servers,
            security_protocol=security_protocol,
            msk_iam=msk_iam,
            region=region,
            ssl_cafile=ssl_cafile,
            timeout_s=timeout,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bootstrap-servers") from None
    try:
        return sinks.KafkaSink(conf, topic, partitions)
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
