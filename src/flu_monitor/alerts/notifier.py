"""The notifier (`flu-monitor notify`): push each new outbreak alert once — to the console
always, and to a webhook when given (`flu-monitor up --alert-webhook URL` runs it).

Every few seconds: claim the new alert episodes in the warehouse, deliver every claimed one,
mark it sent (flu_monitor.alerts.notifications explains why that order loses none). A webhook
that fails is retried with back-off (within a round, then between rounds up to a minute apart);
meanwhile the alerts wait in the warehouse, claimed. The notifier only reads the views and
writes its own table, so it never holds up ingestion or refresh.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from flu_monitor.messages import one_line

if TYPE_CHECKING:
    from flu_monitor.alerts.postgres import PostgresAlerts

log = logging.getLogger("flu_monitor.notify")
CONSOLE_PREFIX = "ALERT "  # the lines `up` echoes from this command's log
ROUND_BACKOFF_S = (2.0, 4.0, 8.0, 16.0, 32.0, 60.0)  # between rounds after a failed one


class Notifier:
    def __init__(
        self,
        database_url,
        webhook: str | None,
        dashboard_url: str | None,
        echo,
        digest=False,
        retry_delays: tuple[float, ...] | None = None,
    ):
        from flu_monitor.alerts.webhook import RETRY_DELAYS_S

        self.retry_delays = RETRY_DELAYS_S if retry_delays is None else retry_delays
        self.digest = digest
        self.database_url = database_url
        self.webhook = webhook
        self.dashboard_url = dashboard_url
        self.echo = echo
        self.store: PostgresAlerts | None = None
        self.printed: set[str] = set()  # this process prints an alert once, however often retried
        self.failures = 0
        self._stop = threading.Event()

    def stop(self, *_signal_args) -> None:
        self._stop.set()

    def deliver(self, notification) -> None:
        from flu_monitor.alerts import webhook

        if notification.notification_id not in self.printed:
            text = notification.text(self.dashboard_url).replace("\n", " | ")
            self.echo(CONSOLE_PREFIX + text)
            self.printed.add(notification.notification_id)
        if self.webhook:
            webhook.post(
                self.webhook,
                notification.body(self.dashboard_url),
                notification.notification_id,
                delays=self.retry_delays,
            )

    def deliver_digest(self, pending) -> None:
        from flu_monitor.alerts import notifications, webhook

        body = notifications.digest_body(pending, self.dashboard_url)
        if body["notification_id"] not in self.printed:
            self.echo(CONSOLE_PREFIX + body["text"].replace("\n", " | "))
            self.printed.add(body["notification_id"])
        if self.webhook:
            webhook.post(self.webhook, body, body["notification_id"], delays=self.retry_delays)

    def round(self) -> int:
        """One claim-and-deliver round; the number of alerts delivered."""
        from flu_monitor.alerts import notifications
        from flu_monitor.alerts.postgres import PostgresAlerts

        if self.store is None:
            self.store = PostgresAlerts(self.database_url)
        if self.digest:
            return len(notifications.deliver_pending_as_digest(self.store, self.deliver_digest))
        return len(notifications.deliver_pending(self.store, self.deliver))

    def run(self, every_s: float, once: bool = False) -> None:
        import psycopg

        from flu_monitor.alerts.webhook import DeliveryError

        while not self._stop.is_set():
            try:
                self.round()
                self.failures = 0
            except (psycopg.Error, DeliveryError) as exc:
                if once:
                    raise
                self.failures += 1
                log.warning("notify round failed: %s", one_line(exc))
                if isinstance(exc, psycopg.Error) and self.store is not None:
                    self.store.close()
                    self.store = None
            if once:
                break
            delay = every_s
            if self.failures:
                delay = ROUND_BACKOFF_S[min(self.failures, len(ROUND_BACKOFF_S)) - 1]
            self._stop.wait(delay)
        if self.store is not None:
            self.store.close()


def log_end(log_path) -> int:
    """Where `follow` starts: after what earlier runs wrote to the log."""
    try:
        return log_path.stat().st_size
    except FileNotFoundError:
        return 0


def follow(log_path, echo, position: int = 0) -> int:
    """Echo the ALERT lines `notify` appended to its log since `position`; the new position.
    (`up` runs notify as a child whose output goes to its log, and shows these on its console.)"""
    try:
        with open(log_path, "rb") as f:
            f.seek(position)
            chunk = f.read()
    except FileNotFoundError:
        return position
    complete = chunk[: chunk.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        if line.startswith(CONSOLE_PREFIX):
            echo(line)
    return position + len(complete)
