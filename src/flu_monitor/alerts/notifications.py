"""What an alert notification is, and the SQL that keeps each one to a single push.

STANDARD LIBRARY ONLY and self-contained (no other flu_monitor import): the alert_notifier Lambda
bundles this file and runs the SQL through the Redshift Data API; `flu-monitor notify` runs the
same SQL on PostgreSQL after the warehouse's translation. The SQL is Redshift's; parameters are
written `:name` (the Data API's form; the translation turns them into psycopg's).

One notification per alert *episode* of a county (sql/075_alert_notifications.sql,
v_alert_episodes): a county that stays in alert for five days is one notification. The notified
set is the table flu_alert_notifications, and delivery goes in three steps:

    CLAIM (one transaction: LOCK, then INSERT the new episodes as 'claimed')
    deliver every 'claimed' row (console, webhook, SNS), its notification_id in the body
    MARK_SENT (UPDATE ... 'sent')

A notifier killed after CLAIM delivers the claimed rows on its next run: none is lost. Killed
between a delivery and its MARK_SENT, it delivers that one again on the next run: delivery is
AT LEAST ONCE at the receiver, with the same notification_id each time, so a receiver that
keeps the ids it has seen shows each alert exactly once. (At most once — mark before delivering
— would lose an alert on such a kill; for outbreak alerts a repeat is the lesser harm.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass

TABLE = "flu_alert_notifications"
# Episodes whose last alert day is within this many days of the latest complete day are still
# news; older ones (e.g. the history of a first run) are never pushed.
LOOKBACK_DAYS = 7

COLUMNS = (
    "notification_id",
    "county_fips",
    "county_name",
    "state_code",
    "episode_start",
    "alert",
    "window_days",
    "observed",
    "expected",
    "ratio",
    "statistic",
)

# Redshift LOCK: "obtains a table-level lock in ACCESS EXCLUSIVE mode, waiting if necessary for
# any conflicting locks to be released ... only meaningful when it is run inside a transaction
# block". Both statements run in one transaction (locally one psycopg transaction; on AWS one
# BatchExecuteStatement, whose Sqls "are run as a single transaction"), so concurrent claims
# queue and never claim one episode twice (Redshift does not enforce the PRIMARY KEY).
LOCK_SQL = f"LOCK {TABLE}"
CLAIM_SQL = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}, status, claimed_at)\n"
    f"SELECT {', '.join('e.' + c for c in COLUMNS)}, 'claimed', GETDATE()\n"
    "FROM v_alert_episodes AS e\n"
    f"LEFT JOIN {TABLE} AS n\n"
    "    ON n.county_fips = e.county_fips\n"
    "    AND n.episode_start BETWEEN e.episode_start AND e.last_day\n"
    "WHERE n.notification_id IS NULL\n"
    f"    AND e.last_day >= CAST(DATEADD(day, -{LOOKBACK_DAYS - 1}, e.latest_day) AS DATE)"
)
PENDING_SQL = (
    f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE status = 'claimed' "
    "ORDER BY episode_start, county_fips"
)
MARK_SENT_SQL = (
    f"UPDATE {TABLE} SET status = 'sent', sent_at = GETDATE() "
    "WHERE notification_id = :notification_id AND status = 'claimed'"
)


@dataclass(frozen=True)
class Notification:
    """One county alert episode, as pushed: what fired on its first day and how strongly."""

    notification_id: str  # county:first day, the idempotency key
    county_fips: str
    county_name: str
    state_code: str
    episode_start: dt.date  # the first alert day of the episode
    alert: str  # the detector's window that fired, e.g. 'trend 3d'
    window_days: int
    observed: float  # cases in the window
    expected: float | None  # cases the state's trend predicts for it
    ratio: float | None
    statistic: float | None

    @classmethod
    def from_row(cls, row) -> Notification:
        """From a PENDING_SQL row (dates may come as ISO text, numbers as text: Data API)."""
        values = dict(zip(COLUMNS, row, strict=True))
        day = values["episode_start"]
        values["episode_start"] = day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
        values["window_days"] = int(values["window_days"])
        for name in ("observed", "expected", "ratio", "statistic"):
            if values[name] is not None:
                values[name] = float(values[name])
        return cls(**values)

    @property
    def place(self) -> str:
        return f"{self.county_name}, {self.state_code}"

    def subject(self) -> str:
        """A one-line title (SNS: "Subjects must be UTF-8 text with no line breaks or control
        characters, and less than 100 characters long")."""
        return f"Flu outbreak alert: {self.place} ({self.episode_start.isoformat()})"[:99]

    def text(self, dashboard_url: str | None = None) -> str:
        """What a person reads: place, day, what fired, observed against expected."""
        days = "1 day" if self.window_days == 1 else f"{self.window_days} days"
        expected = "" if self.expected is None else f" against {self.expected:.1f} expected"
        ratio = "" if self.ratio is None else f" ({self.ratio:.1f}x)"
        statistic = "" if self.statistic is None else f", statistic {self.statistic:.1f}"
        lines = [
            f"Flu outbreak alert: {self.place} (county {self.county_fips}) from "
            f"{self.episode_start.isoformat()}",
            f"{self.observed:.0f} cases in {days}{expected}{ratio}; detector {self.alert}"
            f"{statistic}.",
        ]
        if dashboard_url:
            lines.append(f"Dashboard: {dashboard_url}")
        lines.append(f"Alert id {self.notification_id} (sent once per episode)")
        return "\n".join(lines)

    def body(self, dashboard_url: str | None = None) -> dict:
        """The webhook JSON body: Slack-compatible `text`, plus the figures and the id."""
        alert = asdict(self)
        alert["episode_start"] = self.episode_start.isoformat()
        return {
            "text": self.text(dashboard_url),
            "notification_id": self.notification_id,
            "alert": alert,
            "dashboard_url": dashboard_url,
        }


def deliver_pending(store, deliver) -> list[Notification]:
    """Claim the new episodes, then deliver every claimed one in order and mark it sent.

    `store` has claim(), pending() -> [Notification] and mark_sent(id); `deliver(notification)`
    raises when it could not deliver. The first failure ends the round (the receiver is likely
    down; the next round retries it, nothing is skipped) and is raised after the sent ones are
    marked. Returns the notifications delivered this round."""
    store.claim()
    sent = []
    for notification in store.pending():
        deliver(notification)
        store.mark_sent(notification.notification_id)
        sent.append(notification)
    return sent


def digest_body(notifications: list[Notification], dashboard_url: str | None = None) -> dict:
    """One message for several new alerts (the digest option): a Slack-compatible `text` with a
    line per alert, every alert's figures, and an id derived from the alerts' ids (the same
    alerts, the same id, however often the digest is delivered)."""
    ids = sorted(n.notification_id for n in notifications)
    lines = [f"Flu outbreak alerts: {len(notifications)} new"]
    for n in notifications:
        lines.append(
            f"- {n.place} (county {n.county_fips}) from {n.episode_start.isoformat()}: "
            f"{n.observed:.0f} cases in {n.window_days} d"
            + ("" if n.expected is None else f" against {n.expected:.1f} expected")
            + f"; {n.alert} [{n.notification_id}]"
        )
    if dashboard_url:
        lines.append(f"Dashboard: {dashboard_url}")
    return {
        "text": "\n".join(lines),
        "notification_id": "digest:" + hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16],
        "notification_ids": ids,
        "alerts": [n.body()["alert"] for n in notifications],
        "dashboard_url": dashboard_url,
    }


def deliver_pending_as_digest(store, deliver_digest) -> list[Notification]:
    """As deliver_pending, but every claimed alert in one `deliver_digest(notifications)` call,
    then all marked sent: a run killed in between delivers the same digest again."""
    store.claim()
    pending = store.pending()
    if pending:
        deliver_digest(pending)
        for notification in pending:
            store.mark_sent(notification.notification_id)
    return pending
