"""The notified set on PostgreSQL: the alerts module's SQL, translated like the rest of sql/."""

from __future__ import annotations

from functools import cache

from flu_monitor import pgconnect
from flu_monitor.alerts import notifications as n

CONNECT_TIMEOUT_S = 10


def _sql(statement: str) -> str:
    return _translations()[statement]


@cache
def _translations() -> dict[str, str]:
    """The three statements translated together, once there is SQL to run: one file of the
    on-disk cache (translation_cache), so a notifier whose SQL and translator are unchanged
    starts without sqlglot."""
    from flu_monitor.warehouse import translation_cache

    statements = [n.CLAIM_SQL, n.PENDING_SQL, n.MARK_SENT_SQL]
    return dict(zip(statements, translation_cache.to_postgres(statements), strict=True))


class PostgresAlerts:
    """claim / pending / mark_sent on one autocommit connection; each claim is one transaction."""

    def __init__(self, database_url: str):
        self.conn = pgconnect.connect(
            database_url,
            CONNECT_TIMEOUT_S,
            autocommit=True,
            application_name="flu-monitor notify",  # who is who in pg_stat_activity
        )

    def close(self) -> None:
        self.conn.close()

    def claim(self) -> int:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(n.LOCK_SQL)  # the same statement as on Redshift: ACCESS EXCLUSIVE
            cur.execute(_sql(n.CLAIM_SQL))
            return cur.rowcount

    def pending(self) -> list[n.Notification]:
        rows = self.conn.execute(_sql(n.PENDING_SQL)).fetchall()
        return [n.Notification.from_row(row) for row in rows]

    def mark_sent(self, notification_id: str) -> None:
        self.conn.execute(_sql(n.MARK_SENT_SQL), {"notification_id": notification_id})
