"""`flu-monitor notify`: flu_monitor.alerts.notifier's Notifier until stopped (or one round)."""

import logging
import signal
import sys

import click

from flu_monitor.cli import options
from flu_monitor.cli.errors import Command
from flu_monitor.messages import one_line


def _echo_now(text: str) -> None:
    """Print and flush: `up` shows these lines from the log while they are news."""
    click.echo(text)
    sys.stdout.flush()


@click.command("notify", cls=Command)
@options.database_url_option()
@options.alert_webhook_option("webhook")
@click.option("--dashboard-url", default=None, help="Link the alerts to this dashboard.")
@click.option(
    "--every",
    "every_s",
    default=5.0,
    show_default=True,
    type=options.FiniteFloat(min=0.1, max=3600),
    help="Seconds between rounds.",
)
@click.option(
    "--retry-after",
    "retry_after_s",
    default=0.5,
    show_default=True,
    type=options.FiniteFloat(min=0, max=60),
    help="Seconds before a failed webhook POST is retried within a round; each of the 4 retries "
    "waits twice as long as the one before.",
)
@click.option("--once", is_flag=True, help="One round, then exit (1 if delivery failed).")
@click.option(
    "--digest",
    is_flag=True,
    help="One message per round listing every new alert (with --every 86400: a daily digest).",
)
def command(database_url, webhook, dashboard_url, every_s, retry_after_s, once, digest) -> None:
    """Push each new outbreak alert once: to the console, and to --alert-webhook if given.

    Runs until stopped (SIGINT/SIGTERM); stopped at any moment, even by kill -9, the next run
    loses no alert and repeats at most the one it was delivering (same notification_id)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s notify: %(message)s")
    from flu_monitor.alerts.notifier import Notifier
    from flu_monitor.alerts.webhook import retry_delays

    notifier = Notifier(
        database_url, webhook, dashboard_url, _echo_now, digest, retry_delays(retry_after_s)
    )
    signal.signal(signal.SIGTERM, notifier.stop)
    signal.signal(signal.SIGINT, notifier.stop)
    try:
        notifier.run(every_s, once)
    except Exception as exc:  # noqa: BLE001 - --once: one line, exit 1
        hint = " (run `flu-monitor db apply` first)" if "does not exist" in str(exc) else ""
        raise click.ClickException(f"{type(exc).__name__}: {one_line(exc)}{hint}") from None
    if not once:
        click.echo("notify: stopped", err=True)
