"""`flu-monitor up`: its options, checked before anything starts (a bad one: exit 2, or 1 for a
server given that does not answer), then flu_monitor.local.up.run."""

from pathlib import Path

import click

from flu_monitor.cli import options
from flu_monitor.cli.errors import Command
from flu_monitor.local import up
from flu_monitor.messages import one_line
from flu_monitor.paths import SCENARIO_DIR

KAFKA_TIMEOUT_S = 10.0  # a broker given may be starting alongside `up`


def _check_inputs(scenario, seed, topic, database_url, bootstrap_servers, kafka_timeout):
    """Everything that can be checked before a service starts; returns the seed to use."""
    from flu_monitor.simulator import state as sim_state
    from flu_monitor.simulator.scenario import ScenarioError, load

    try:
        load(scenario)
    except ScenarioError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from None
    state_path = up.simulator_state_path(topic)
    try:
        saved = sim_state.load(state_path)
    except sim_state.StateError as exc:
        raise up.UpError(str(exc)) from None
    if seed is None:
        seed = saved.seed if saved is not None else 0
    if saved is not None:
        try:
            sim_state.check_same_run(saved, state_path, scenario, seed)
        except sim_state.StateError as exc:
            raise click.UsageError(str(exc)) from None
    if database_url:
        from flu_monitor import pgconnect
        from flu_monitor.local.postgres_server import wait_until_ready

        # A server starting alongside `up` gets 15 s, or the URL's (PGCONNECT_TIMEOUT's)
        # connect_timeout when the user set one.
        try:
            wait_until_ready(database_url, timeout=pgconnect.wait_s(database_url, 15))
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the same message
            raise up.UpError(f"cannot connect to --database-url: {one_line(exc)}") from None
    if bootstrap_servers:
        from flu_monitor import kafka_client

        if not kafka_client.broker_ready(bootstrap_servers, timeout_s=kafka_timeout):
            raise up.UpError(
                f"no Kafka broker answers at --bootstrap-servers {bootstrap_servers} within "
                f"{kafka_timeout:g} s (--kafka-timeout)"
            )
    return seed


@click.command("up", cls=Command)
@options.bootstrap_servers_option(
    required=False,
    help="Use this Kafka (host:port[,host:port]) instead of starting one.",
)
@click.option(
    "--kafka-timeout",
    metavar="SECONDS",
    type=options.FiniteFloat(min=1, max=600),
    default=KAFKA_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for the Kafka broker given by --bootstrap-servers to answer before "
    "starting anything (it may be starting alongside `up`).",
)
@options.database_url_option(
    required=False,
    help="Use this PostgreSQL database instead of starting a private cluster (waited for 15 s, or "
    "its URL's ?connect_timeout=N).",
)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=SCENARIO_DIR / "default.yaml",
    show_default=True,
    help="Outbreak scenario YAML for the simulator.",
)
@click.option(
    "--speed",
    type=options.FiniteFloat(min=0, min_open=True, max=up.MAX_LIVE_SPEED),
    default=up.LIVE_SPEED,
    show_default=True,
    help="Live simulated time runs SPEED times faster than real time (60: an hour a minute; "
    f"at most {up.MAX_LIVE_SPEED:.0f}).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help=f"Dashboard port [default: {up.DASHBOARD_PORT}, or a free one if that is taken].",
)
@click.option(
    "--history-days",
    type=click.IntRange(0, 3_650),
    default=up.HISTORY_DAYS,
    show_default=True,
    help="Days of history the first run backfills, so the charts are not empty.",
)
@click.option(
    "--seed",
    type=options.SEED,
    default=None,
    help="Simulator seed (reproducible events) [default: the saved run's, else 0].",
)
@options.topic_option()
@options.alert_webhook_option(
    help="Also POST each new outbreak alert here (JSON, Slack-compatible; docs/alerts.md)."
)
def command(kafka_timeout, **given):
    """Run the whole pipeline locally: Kafka, PostgreSQL, simulator, ingester, refresher and the
    dashboard. Ctrl-C stops everything it started; the next run continues the same history."""
    # the other options are up.Settings' fields, by name; the seed becomes the one to use
    given["seed"] = _check_inputs(
        given["scenario"],
        given["seed"],
        given["topic"],
        given["database_url"],
        given["bootstrap_servers"],
        kafka_timeout,
    )
    up.run(up.Settings(**given), click.echo)
