"""`flu-monitor refresh`: refresh the analytics views every N seconds (the AUTO REFRESH stand-in).

On Redshift the streaming view refreshes itself and the analytics views follow; locally this
process calls the warehouse's refresh() in a loop. The refresh itself is the warehouse's design
(flu_monitor.warehouse): it must not block readers, so the dashboard keeps answering while it
runs. `flu-monitor db refresh` does the same refresh once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import click

from flu_monitor import options
from flu_monitor.messages import one_line

if TYPE_CHECKING:
    import psycopg  # imported when first used (the CLI starts without it)

log = logging.getLogger("flu_monitor.refresher")
PROGRESS_SECONDS = 30
GIVE_UP_SECONDS = 120.0  # refreshes failing this long in a row: exit 1 (`up` restarts it)


class RefreshError(RuntimeError):
    """Refreshes kept failing; the message gives the last reason."""


class Refresher:
    """Starts a refresh every `every_s` seconds, or right after the previous one if that ran
    longer."""

    def __init__(self, database_url: str, every_s: float):
        self.database_url = database_url
        self.every_s = every_s
        self.refreshes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None

    def stop(self, *_signal_args) -> None:
        self._stop.set()

    def refresh_once(self) -> float:
        """One refresh on a (re)opened connection; seconds it took."""
        import psycopg

        from flu_monitor.warehouse.postgres import refresh

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self.database_url,
                connect_timeout=10,
                autocommit=True,
                application_name="flu-monitor refresh",  # who is who in pg_stat_activity
            )
        started = time.monotonic()
        refresh(self._conn)
        self.refreshes += 1
        return time.monotonic() - started

    def run(self) -> None:
        import psycopg

        last_report, durations = time.monotonic(), []
        failing_since = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                durations.append(self.refresh_once())
                failing_since = None
            except psycopg.Error as exc:
                self.failures += 1
                reason = f"{type(exc).__name__}: {one_line(exc)}"
                log.warning("refresh failed: %s", reason)
                if self._conn is not None:
                    self._conn.close()
                failing_since = failing_since or started
                if started - failing_since >= GIVE_UP_SECONDS:
                    raise RefreshError(
                        f"refreshes failed for {GIVE_UP_SECONDS:.0f} s; the last: {reason}"
                    ) from None
            if time.monotonic() - last_report >= PROGRESS_SECONDS and durations:
                log.info(
                    "%d refreshes, last %.2f s, slowest %.2f s since the previous line",
                    self.refreshes,
                    durations[-1],
                    max(durations),
                )
                last_report, durations = time.monotonic(), []
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))
        if self._conn is not None:
            self._conn.close()


@click.command("refresh")
@options.database_url_option()
@click.option(
    "--every",
    "every_s",
    default=2.0,
    show_default=True,
    type=options.FiniteFloat(min=0.1, max=3600),
    help="Seconds between refresh starts.",
)
def command(database_url: str, every_s: float) -> None:
    """Refresh the analytics views every N seconds until stopped (SIGINT/SIGTERM). Transient
    database errors are retried; failing for 2 minutes in a row ends it (exit 1).

    `flu-monitor db refresh` refreshes once."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s refresh: %(message)s")
    refresher = Refresher(database_url, every_s)
    signal.signal(signal.SIGTERM, refresher.stop)
    signal.signal(signal.SIGINT, refresher.stop)
    try:
        refresher.run()
    except RefreshError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"refresh: stopped after {refresher.refreshes} refreshes", err=True)
