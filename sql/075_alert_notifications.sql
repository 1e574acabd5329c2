-- Alert notifications (docs/alerts.md): the alert episodes the detector
-- found, and the notified set the notifier keeps so that each episode is pushed once. Read and
-- written only by flu_monitor.alerts (locally `flu-monitor notify`, on AWS
-- functions/alert_notifier); the SQL they run is in src/flu_monitor/alerts/notifications.py.

-- One row per county alert episode on complete days: a county's alert days (mv_county_alerts)
-- less than 8 days apart are one episode, so a county that stays in alert, or flickers in and
-- out of it, is one episode; a week without alert ends it. The row carries the episode's first
-- alert day and that day's figures (what fired, observed against expected), its last alert day
-- so far and the latest complete day. notification_id (county:first day) is the idempotency key
-- receivers see. Recomputed on every read from the 120-day window: a few thousand rows at most.
CREATE VIEW v_alert_episodes AS
SELECT
    county_fips || ':' || CAST(day AS VARCHAR) AS notification_id,
    county_fips,
    county_name,
    state_code,
    day AS episode_start,
    last_day,
    latest_day,
    alert,
    window_days,
    observed,
    expected,
    ratio,
    statistic
FROM (
    SELECT
        *,
        ROW_NUMBER() OVER (PARTITION BY county_fips, episode ORDER BY day) AS nth_day,
        MAX(day) OVER (PARTITION BY county_fips, episode) AS last_day
    FROM (
        SELECT
            *,
            SUM(starts) OVER (PARTITION BY county_fips ORDER BY day ROWS UNBOUNDED PRECEDING) AS episode
        FROM (
            SELECT
                a.county_fips,
                c.county_name,
                a.state_code,
                a.day,
                l.latest_day,
                a.alert,
                a.window_days,
                a.observed,
                a.expected,
                a.ratio,
                a.statistic,
                CASE
                    WHEN LAG(a.day) OVER (PARTITION BY a.county_fips ORDER BY a.day)
                        >= CAST(DATEADD(day, -7, a.day) AS DATE)
                        THEN 0
                    ELSE 1
                END AS starts
            FROM mv_county_alerts AS a
            INNER JOIN (SELECT CAST(DATEADD(day, -1, MAX(day)) AS DATE) AS latest_day FROM mv_daily_county_cases) AS l
                ON a.day <= l.latest_day
            INNER JOIN counties AS c ON c.fips = a.county_fips
            WHERE a.alert IS NOT NULL
        ) AS alert_days
    ) AS numbered
) AS episodes
WHERE nth_day = 1;

-- The notified set: one row per episode the notifier has claimed. status 'claimed' = recorded,
-- not yet delivered (a notifier stopped there delivers it on its next run); 'sent' = delivered.
-- An episode is notified when a row of the same county has its episode_start inside the
-- episode's days. Redshift does not enforce PRIMARY KEY ("Uniqueness, primary key, and foreign
-- key constraints are informational only", Table constraints): the notifier claims under
-- LOCK in one transaction, so two runs never claim the same episode. Changing this statement
-- re-creates the table and forgets the notified set: episodes of the last week are sent again.
CREATE TABLE IF NOT EXISTS flu_alert_notifications (
    notification_id VARCHAR(16) NOT NULL,
    county_fips VARCHAR(5) NOT NULL,
    county_name VARCHAR(64) NOT NULL,
    state_code VARCHAR(2) NOT NULL,
    episode_start DATE NOT NULL,
    alert VARCHAR(16) NOT NULL,
    window_days INTEGER NOT NULL,
    observed DOUBLE PRECISION NOT NULL,
    expected DOUBLE PRECISION,
    ratio DOUBLE PRECISION,
    statistic DOUBLE PRECISION,
    status VARCHAR(8) NOT NULL,
    claimed_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    PRIMARY KEY (notification_id)
)
DISTSTYLE ALL
SORTKEY (county_fips, episode_start);
