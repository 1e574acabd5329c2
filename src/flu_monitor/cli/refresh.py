"""`flu-monitor refresh`: flu_monitor.local.refresher's loop until stopped; `db refresh --every`
runs the same loop (run_until_stopped)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from flu_monitor.cli import options
from flu_monitor.cli.errors import Command

if TYPE_CHECKING:
    from flu_monitor.local.refresher import Refresher
    from flu_monitor.warehouse.postgres import RefreshResult

EVERY = options.FiniteFloat(min=0.1, max=3600)


def run_until_stopped(
    database_url: str, every_s: float, on_refresh: Callable[[RefreshResult], None] | None = None
) -> Refresher:
    """The refresh loop until SIGINT/SIGTERM; its RefreshError (a Failure: exit 1) passes up."""
    from flu_monitor.local.refresher import Refresher

    refresher = Refresher(database_url, every_s, on_refresh)
    signal.signal(signal.SIGTERM, refresher.stop)
    signal.signal(signal.SIGINT, refresher.stop)
    refresher.run()
    return refresher


@click.command("refresh", cls=Command)
@options.database_url_option()
@click.option(
    "--every",
    "every_s",
    default=2.0,
    show_default=True,
    type=EVERY,
    help="Seconds between refresh starts.",
)
def command(database_url: str, every_s: float) -> None:
    """Refresh the analytics views every N seconds until stopped (SIGINT/SIGTERM). Transient
    database errors are retried; failing for 2 minutes in a row ends it (exit 1).

    `flu-monitor db refresh` refreshes once (with --every, this same loop)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s refresh: %(message)s")
    refresher = run_until_stopped(database_url, every_s)
    click.echo(f"refresh: stopped after {refresher.refreshes} refreshes", err=True)
