"""Alert notifications on real PostgreSQL (sql/075_alert_notifications.sql and
flu_monitor.alerts.notifications): a planted outbreak is one notification carrying the
detector's figures; a county that stays in alert is still one; a claim is never repeated; old
episodes are not news; the body a webhook receives; the SQL is Redshift's."""

import datetime as dt
import json

import pytest
import sqlglot

from flu_monitor.alerts import notifications
from flu_monitor.alerts.postgres import PostgresAlerts

from .conftest import ON_APPLIED, ingest, query
from .test_detector import (
    DAYS,
    PLANTED_GROUP,
    START,
    _events,
    _load,
    planted_counts,
    planted_outbreak,
)

pytestmark = pytest.mark.postgres

TOMPKINS = "36109"
OTHERS = ("36001", "36047", "36061", "36103", "34003", "42101")


def _flat(extra: dict[int, int]) -> dict[str, list[int]]:
    """20 cases a day in six counties, 5 in Tompkins County, NY plus `extra` {day: cases}."""
    counts = {fips: [20] * DAYS for fips in OTHERS}
    counts[TOMPKINS] = [5 + extra.get(t, 0) for t in range(DAYS)]
    return counts


def _alert_days(url: str) -> list[tuple]:
    return query(
        url,
        "SELECT county_fips, day, alert, window_days, observed, expected, ratio, statistic "
        "FROM mv_county_alerts WHERE alert IS NOT NULL ORDER BY day",
    )


@pytest.fixture
def store():
    opened = []

    def make(url):
        opened.append(PostgresAlerts(url))
        return opened[-1]

    yield make
    for s in opened:
        s.close()


@PLANTED_GROUP
def test_a_planted_outbreak_is_one_notification_with_the_detectors_figures(postgres_copy, store):
    outbreak_day = DAYS - 2  # the latest complete day
    assert planted_counts() == _flat({outbreak_day: 14})
    url = planted_outbreak(postgres_copy)
    day = START + dt.timedelta(days=outbreak_day)
    fired = _alert_days(url)
    # that day, and the partial latest day (3-day window), which episodes leave out
    assert [(r[0], r[1]) for r in fired] == [(TOMPKINS, day), (TOMPKINS, day + dt.timedelta(1))]

    alerts = store(url)
    assert alerts.claim() == 1
    (pending,) = alerts.pending()
    _, _, alert, window, observed, expected, ratio, statistic = fired[0]
    assert pending == notifications.Notification(
        notification_id=f"{TOMPKINS}:{day.isoformat()}",
        county_fips=TOMPKINS,
        county_name="Tompkins County",
        state_code="NY",
        episode_start=day,
        alert=alert,
        window_days=window,
        observed=observed,
        expected=expected,
        ratio=ratio,
        statistic=statistic,
    )
    assert pending.observed == 19.0  # 5 + 14 planted, in the 1-day window
    # claimed once: a second claim, before or after delivery, finds nothing new
    assert alerts.claim() == 0
    alerts.mark_sent(pending.notification_id)
    assert alerts.pending() == []
    assert alerts.claim() == 0
    assert query(url, "SELECT status, sent_at IS NOT NULL FROM flu_alert_notifications") == [
        ("sent", True)
    ]


def test_a_county_that_stays_in_alert_is_notified_once(warehouse, store):
    """Claimed after every refresh: the outbreak (days 30-38) keeps the county in alert for days
    (30-41), and there is one notification, from its first day. The history to day 30 in one
    batch (day 30, the latest day, is not complete: not claimed yet), then one day at a time, so
    that each alert day becomes the latest complete day on its own refresh (days 31-42), then
    the last two days in one batch, after the alert. (A day costs a refresh, about 0.2 CPU-s:
    the quiet days have nothing to claim, and one claim after each of their batches shows it.)"""
    counts = _flat({t: 14 + 3 * (t - 30) for t in range(30, 39)})
    events = _events(counts)
    batches: dict[str, list[dict]] = {}
    history_end = (START + dt.timedelta(days=30)).isoformat()
    last_batch = START + dt.timedelta(days=43)
    for e in events:
        day = min(max(e["event_time"][:10], history_end), last_batch.isoformat())
        batches.setdefault(day, []).append(e)
    assert len(batches) == 1 + 12 + 1  # days 0 to 30, days 31 to 42, days 43 and 44
    alerts, offset, claimed = store(warehouse), 0, []
    for day in sorted(batches):
        ingest(warehouse, batches[day], first_offset=offset)
        offset += len(batches[day])
        claimed.append(alerts.claim())
    assert claimed[:2] == [0, 1]  # nothing before the outbreak's first day is complete
    alert_days = [r[1] for r in _alert_days(warehouse) if r[0] == TOMPKINS]
    assert len(alert_days) >= 5, alert_days  # the test means something: in alert for days
    first = START + dt.timedelta(days=30)
    assert alert_days[0] == first
    # every alert day was the latest complete day of a refresh of its own
    assert alert_days[-1] < last_batch - dt.timedelta(days=1)
    assert sum(claimed) == 1
    assert [(n.notification_id, n.episode_start) for n in alerts.pending()] == [
        (f"{TOMPKINS}:{first.isoformat()}", first)
    ]


OLD = _flat({20: 14})  # an outbreak 20 days before the latest complete day
OLD_OUTBREAK = pytest.mark.xdist_group("old_outbreak")  # the tests that copy its warehouse


def _old_outbreak(postgres_copy) -> str:
    """URL of a new copy of OLD's warehouse, loaded once (the tests are in OLD_OUTBREAK)."""
    return postgres_copy("old_outbreak", lambda url: _load(url, OLD), base=ON_APPLIED)


@OLD_OUTBREAK
def test_episodes_older_than_the_lookback_are_not_news(postgres_copy, store):
    """A first run over history: an outbreak 20 days before the latest complete day is not
    pushed (its episode ended more than LOOKBACK_DAYS ago); the view still shows it."""
    url = _old_outbreak(postgres_copy)
    fired = _alert_days(url)
    assert fired and {r[0] for r in fired} == {TOMPKINS}
    assert max(r[1] for r in fired) < START + dt.timedelta(days=DAYS - 2 - 7)
    assert len(query(url, "SELECT * FROM v_alert_episodes")) == 1
    assert store(url).claim() == 0


@OLD_OUTBREAK
def test_two_outbreaks_a_month_apart_are_two_notifications(postgres_copy, store):
    """The old outbreak's warehouse, then 30 more cases on the latest complete day (the cases of
    _flat({20: 14, DAYS - 2: 30})): two episodes, and only the recent one is news."""
    url = _old_outbreak(postgres_copy)
    alerts = store(url)
    assert alerts.claim() == 0  # the old one alone is not news (above)
    more = {TOMPKINS: [30 if t == DAYS - 2 else 0 for t in range(DAYS)]}
    ingest(url, _events(more, after=OLD), first_offset=sum(map(sum, OLD.values())))
    episodes = query(url, "SELECT notification_id FROM v_alert_episodes ORDER BY episode_start")
    days = [START + dt.timedelta(days=t) for t in (20, DAYS - 2)]
    assert episodes == [(f"{TOMPKINS}:{d.isoformat()}",) for d in days]
    # only the recent one is news; the older one is not claimed later either
    assert alerts.claim() == 1
    assert [n.episode_start for n in alerts.pending()] == [days[1]]


def test_the_webhook_body_is_slack_compatible_and_carries_the_id():
    n = notifications.Notification(
        "36109:2026-11-20", "36109", "Tompkins County", "NY", dt.date(2026, 11, 20),
        "trend 1d", 1, 19.0, 5.0, 3.8, 4.9,
    )  # fmt: skip
    body = json.loads(json.dumps(n.body("http://127.0.0.1:8050/")))
    assert body["notification_id"] == "36109:2026-11-20"
    assert body["text"].splitlines() == [
        "Flu outbreak alert: Tompkins County, NY (county 36109) from 2026-11-20",
        "19 cases in 1 day against 5.0 expected (3.8x); detector trend 1d, statistic 4.9.",
        "Dashboard: http://127.0.0.1:8050/",
        "Alert id 36109:2026-11-20 (sent once per episode)",
    ]
    assert body["alert"]["episode_start"] == "2026-11-20"
    assert body["alert"]["observed"] == 19.0
    assert n.subject() == "Flu outbreak alert: Tompkins County, NY (2026-11-20)"
    long = notifications.Notification(**{**n.__dict__, "county_name": "X" * 120})
    assert len(long.subject()) < 100 and "\n" not in long.subject()


def test_a_data_api_row_becomes_the_same_notification():
    """The Data API returns dates and numbers as text or typed fields."""
    row = ["36109:2026-11-20", "36109", "Tompkins County", "NY", "2026-11-20", "trend 1d", 1,
           19.0, "5.0", None, None]  # fmt: skip
    n = notifications.Notification.from_row(row)
    assert (n.episode_start, n.expected, n.ratio) == (dt.date(2026, 11, 20), 5.0, None)


@pytest.mark.parametrize(
    "sql",
    [
        notifications.LOCK_SQL,
        notifications.CLAIM_SQL,
        notifications.PENDING_SQL,
        notifications.MARK_SENT_SQL,
    ],
)
def test_the_notifier_sql_is_redshift(sql):
    tree = sqlglot.parse_one(sql, read="redshift", error_level=sqlglot.ErrorLevel.RAISE)
    assert tree is not None
