"""The refresh loop: the analytics views refreshed every N seconds (the AUTO REFRESH stand-in).

On Redshift the streaming view refreshes itself and the analytics views follow; locally a process
calls the warehouse's refresh() in this loop (`flu-monitor refresh`, and `flu-monitor db refresh
--every`). The refresh itself is the warehouse's design (flu_monitor.warehouse): it must not
block readers, so the dashboard keeps answering while it runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flu_monitor.messages import Failure, one_line

if TYPE_CHECKING:
    import psycopg  # imported when first used (the CLI starts without it)

    from flu_monitor.warehouse.postgres import RefreshResult

log = logging.getLogger("flu_monitor.refresher")
PROGRESS_SECONDS = 30
GIVE_UP_SECONDS = 120.0  # refreshes failing this long in a row: exit 1 (`up` restarts it)


class RefreshError(Failure):
    """Refreshes kept failing; the message gives the last reason."""


class Refresher:
    """Starts a refresh every `every_s` seconds, or right after the previous one if that ran
    longer. `on_refresh` is called with each refresh's result."""

    def __init__(
        self,
        database_url: str,
        every_s: float,
        on_refresh: Callable[[RefreshResult], None] | None = None,
    ):
        self.database_url = database_url
        self.every_s = every_s
        self.on_refresh = on_refresh
        self.refreshes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None

    def stop(self, *_signal_args) -> None:
        self._stop.set()

    def refresh_once(self) -> RefreshResult:
        """One refresh on a (re)opened connection."""
        from flu_monitor import pgconnect
        from flu_monitor.warehouse.postgres import refresh

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = pgconnect.connect(
                self.database_url,
                10,
                autocommit=True,
                application_name="flu-monitor refresh",  # who is who in pg_stat_activity
            )
        result = refresh(self._conn)
        self.refreshes += 1
        if self.on_refresh is not None:
            self.on_refresh(result)
        return result

    def run(self) -> None:
        import psycopg

        last_report, durations = time.monotonic(), []
        failing_since = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                durations.append(self.refresh_once().seconds)
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
