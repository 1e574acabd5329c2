-- Surveillance series and outbreak detection over a bounded window: the 120 days ending on the
-- latest report day. Every view here needs a complete county x day grid (a county with no case on
-- a day is a zero) and window functions, so Redshift recomputes them in full on refresh; bounding
-- the window and reading only flu_daily_county_counts (never the cases) keeps that cost flat as
-- history grows. Each figure of a day is computed from that day's own past (flu_county_days), so
-- it is the same whichever day the window starts on: locally a refresh recomputes only the days
-- new records can change (docs/warehouse.md, "days" views). The full history per county and day
-- is flu_daily_county_counts. The outbreak detector and its parameters are explained for
-- public-health staff in docs/warehouse.md, "Outbreak detection";
-- tests/warehouse/detector_reference.py restates it in plain Python.

-- Every county, every day of the window and of its lead-in (from the first report day if later),
-- zero-filled: the grid the views below compute over. The lead-in is the 36 days before the
-- window that the furthest-reaching figure below looks back over (mv_outbreak_series' older half
-- of the 7-day window's baseline, 36 days before its day), so that every figure of a window day
-- is computed from that day's own past, the same whichever day the window starts on: a figure
-- depends only on the days it reaches back over, and history_days (days since the first report
-- day) on that day's date. Rows of the lead-in are the grid only, never shown. A figure reaching
-- further back than the lead-in would differ at the window's start from the same figure over the
-- whole history: tests/warehouse/test_day_refresh.py compares them over a 170-day season.
CREATE MATERIALIZED VIEW flu_county_days
SORTKEY (day, county_fips)
AUTO REFRESH NO
AS
SELECT
    d.day,
    c.fips AS county_fips,
    c.state_code,
    c.population_2020,
    COALESCE(n.cases, 0) AS cases,
    COALESCE(n.admissions, 0) AS admissions,
    DATEDIFF(day, r.first_day, d.day) AS history_days
FROM calendar_days AS d
INNER JOIN (SELECT MIN(day) AS first_day, MAX(day) AS last_day FROM flu_daily_county_counts) AS r
    ON d.day BETWEEN GREATEST(r.first_day, CAST(DATEADD(day, -119 - 36, r.last_day) AS DATE)) AND r.last_day
CROSS JOIN counties AS c
LEFT JOIN flu_daily_county_counts AS n ON n.day = d.day AND n.county_fips = c.fips;

-- Every county, every day of the window, with the rate per 100,000 residents and the trailing
-- 7-day average (days before the first report day count 0).
CREATE MATERIALIZED VIEW mv_daily_county_cases
SORTKEY (day, county_fips)
AUTO REFRESH NO
AS
SELECT
    g.day,
    g.county_fips,
    g.state_code,
    g.cases,
    g.admissions,
    g.rate_per_100k,
    g.cases_7day_avg
FROM (
    SELECT
        day,
        county_fips,
        state_code,
        cases,
        admissions,
        ROUND(cases * 100000.0 / population_2020, 2) AS rate_per_100k,
        ROUND(
            SUM(cases) OVER (PARTITION BY county_fips ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) / 7.0,
            2
        ) AS cases_7day_avg
    FROM flu_county_days
) AS g
INNER JOIN (
    SELECT GREATEST(MIN(day), CAST(DATEADD(day, -119, MAX(day)) AS DATE)) AS first_day FROM flu_daily_county_counts
) AS w
    ON g.day >= w.first_day;

-- The counts the outbreak detector compares, one row per unit and day. A unit is a county, compared
-- with the rest of its state, or a whole state ("unit" = its code), compared with the other two
-- states. For each window of the last w = 1, 3, 7 days ending on `day`: the unit's cases in the
-- window (cases_wd), in the recent half of its baseline (recent_wd: days day-w-15 .. day-w-2,
-- after a 2-day guard band) and in the older half (older_wd: day-w-29 .. day-w-16); the same for
-- the rest (rest_*: the group's cases minus the unit's); squares_recent/older_wd = the sum of
-- cases^2 / rest over a half, for the day-to-day dispersion. A longer window's halves are the
-- 1-day window's, w-1 days earlier (LAG). Computed over the window and its lead-in, one row per
-- window day. history_days = days of data before `day` (since the first report day): runs that
-- reach before the first report day are partial (mv_outbreak_statistics leaves them out).
CREATE MATERIALIZED VIEW mv_outbreak_series
SORTKEY (day, unit)
AUTO REFRESH NO
AS
SELECT
    s.unit,
    s.unit_level,
    s.state_code,
    s.day,
    s.history_days,
    s.cases_1d,
    s.cases_3d,
    s.cases_7d,
    s.rest_1d,
    s.rest_3d,
    s.rest_7d,
    s.recent_1d,
    s.recent_3d,
    s.recent_7d,
    s.older_1d,
    s.older_3d,
    s.older_7d,
    s.rest_recent_1d,
    s.rest_recent_3d,
    s.rest_recent_7d,
    s.rest_older_1d,
    s.rest_older_3d,
    s.rest_older_7d,
    s.squares_recent_1d,
    s.squares_recent_3d,
    s.squares_recent_7d,
    s.squares_older_1d,
    s.squares_older_3d,
    s.squares_older_7d
FROM (
    SELECT
        unit,
        unit_level,
        state_code,
        day,
        history_days,
        cases AS cases_1d,
        cases_3d,
        cases_7d,
        group_cases - cases AS rest_1d,
        group_cases_3d - cases_3d AS rest_3d,
        group_cases_7d - cases_7d AS rest_7d,
        recent AS recent_1d,
        LAG(recent, 2) OVER (PARTITION BY unit ORDER BY day) AS recent_3d,
        LAG(recent, 6) OVER (PARTITION BY unit ORDER BY day) AS recent_7d,
        older AS older_1d,
        LAG(older, 2) OVER (PARTITION BY unit ORDER BY day) AS older_3d,
        LAG(older, 6) OVER (PARTITION BY unit ORDER BY day) AS older_7d,
        group_recent - recent AS rest_recent_1d,
        group_recent_3d - LAG(recent, 2) OVER (PARTITION BY unit ORDER BY day) AS rest_recent_3d,
        group_recent_7d - LAG(recent, 6) OVER (PARTITION BY unit ORDER BY day) AS rest_recent_7d,
        group_older - older AS rest_older_1d,
        group_older_3d - LAG(older, 2) OVER (PARTITION BY unit ORDER BY day) AS rest_older_3d,
        group_older_7d - LAG(older, 6) OVER (PARTITION BY unit ORDER BY day) AS rest_older_7d,
        squares_recent AS squares_recent_1d,
        LAG(squares_recent, 2) OVER (PARTITION BY unit ORDER BY day) AS squares_recent_3d,
        LAG(squares_recent, 6) OVER (PARTITION BY unit ORDER BY day) AS squares_recent_7d,
        squares_older AS squares_older_1d,
        LAG(squares_older, 2) OVER (PARTITION BY unit ORDER BY day) AS squares_older_3d,
        LAG(squares_older, 6) OVER (PARTITION BY unit ORDER BY day) AS squares_older_7d
    FROM (
        SELECT
            *,
            SUM(cases) OVER (PARTITION BY unit ORDER BY day ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS cases_3d,
            SUM(cases) OVER (PARTITION BY unit ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS cases_7d,
            SUM(cases) OVER (PARTITION BY unit ORDER BY day ROWS BETWEEN 16 PRECEDING AND 3 PRECEDING) AS recent,
            SUM(cases) OVER (PARTITION BY unit ORDER BY day ROWS BETWEEN 30 PRECEDING AND 17 PRECEDING) AS older,
            SUM(square) OVER (PARTITION BY unit ORDER BY day ROWS BETWEEN 16 PRECEDING AND 3 PRECEDING) AS squares_recent,
            SUM(square) OVER (PARTITION BY unit ORDER BY day ROWS BETWEEN 30 PRECEDING AND 17 PRECEDING) AS squares_older
        FROM (
            SELECT
                *,
                CASE
                    WHEN group_cases > cases THEN CAST(cases AS DOUBLE PRECISION) * cases / (group_cases - cases)
                    ELSE 0.0
                END AS square
        FROM (
            SELECT
                u.unit,
                u.unit_level,
                u.state_code,
                u.day,
                u.cases,
                g.history_days,
                g.cases AS group_cases,
                g.cases_3d AS group_cases_3d,
                g.cases_7d AS group_cases_7d,
                g.recent AS group_recent,
                g.recent_3d AS group_recent_3d,
                g.recent_7d AS group_recent_7d,
                g.older AS group_older,
                g.older_3d AS group_older_3d,
                g.older_7d AS group_older_7d
            FROM (
                SELECT county_fips AS unit, 'county' AS unit_level, state_code, state_code AS group_key, day, cases
                FROM flu_county_days
                UNION ALL
                SELECT state_code, 'state', state_code, 'all', day, SUM(cases)
                FROM flu_county_days
                GROUP BY state_code, day
            ) AS u
            INNER JOIN (
                -- the same runs for the groups (each state, and all three): a few hundred rows
                SELECT
                    group_key,
                    day,
                    cases,
                    history_days,
                    SUM(cases) OVER (PARTITION BY group_key ORDER BY day ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS cases_3d,
                    SUM(cases) OVER (PARTITION BY group_key ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS cases_7d,
                    SUM(cases) OVER (PARTITION BY group_key ORDER BY day ROWS BETWEEN 16 PRECEDING AND 3 PRECEDING) AS recent,
                    SUM(cases) OVER (PARTITION BY group_key ORDER BY day ROWS BETWEEN 18 PRECEDING AND 5 PRECEDING) AS recent_3d,
                    SUM(cases) OVER (PARTITION BY group_key ORDER BY day ROWS BETWEEN 22 PRECEDING AND 9 PRECEDING) AS recent_7d,
                    SUM(cases) OVER (PARTITION BY group_key ORDER BY day ROWS BETWEEN 30 PRECEDING AND 17 PRECEDING) AS older,
                    SUM(cases) OVER (PARTITION BY group_key ORDER BY day ROWS BETWEEN 32 PRECEDING AND 19 PRECEDING) AS older_3d,
                    SUM(cases) OVER (PARTITION BY group_key ORDER BY day ROWS BETWEEN 36 PRECEDING AND 23 PRECEDING) AS older_7d
                FROM (
                    SELECT state_code AS group_key, day, SUM(cases) AS cases, MAX(history_days) AS history_days
                    FROM flu_county_days
                    GROUP BY state_code, day
                    UNION ALL
                    SELECT 'all', day, SUM(cases), MAX(history_days)
                    FROM flu_county_days
                    GROUP BY day
                ) AS group_days
            ) AS g
                ON g.group_key = u.group_key AND g.day = u.day
            ) AS daily
        ) AS squared
    ) AS runs
) AS s
INNER JOIN (
    SELECT GREATEST(MIN(day), CAST(DATEADD(day, -119, MAX(day)) AS DATE)) AS first_day FROM flu_daily_county_counts
) AS w
    ON s.day >= w.first_day;

-- Trend-adjusted outbreak detection, one row per unit and day (docs/warehouse.md, "Outbreak
-- detection", explains it for public-health staff). For each window of w = 1, 3, 7 days:
--   expected   = baseline cases x (rest in the window / rest in the baseline), i.e. the unit's share
--                of its group applied to what the rest did in the window, x growth^a: growth = how
--                the unit's share moved from the older to the recent half of the baseline;
--                a = (32 + w) / 28 (the halves' middles are 14 days apart, the window's middle
--                (32 + w) / 2 days after the baseline's) x s^2 / (s^2 + 1/older + 1/recent): the
--                trend shrunk by its own noise (Poisson variance of ln growth) against s = trend_sd,
--                the prior SD of a share's log change over 14 days; none when a half has no case;
--   dispersion = max(1, Pearson dispersion of the unit's daily cases around each half's own share)
--                = max(1, sum over the halves of (rest_half / half x squares_half - half) /
--                (days - halves));
--   variance   = dispersion x (expected + expected^2 x v) + (expected_cv x expected)^2, v = the
--                variance of ln(expected) that the baseline's own counts imply, expected_cv = a
--                floor on the relative uncertainty of the expected count (the share model's error);
--   statistic  = 1.5 x (observed^(2/3) - expected^(2/3)) x expected^(1/3) / sqrt(variance): a z
--                score on Farrington's 2/3-power scale, near normal for small counts too.
-- A window fires when statistic > its threshold and observed >= min_cases (the parameters below,
-- tuned on simulated seasons by bench/bench_detection.py). The row reports the strongest window
-- (a firing one first, then the largest strength = statistic / threshold); `alert` names it
-- ('trend 3d') and is NULL when none fires. observed_7d, expected_7d: the 7-day window's, for the
-- map. The first statistics come once the recent half of a window's baseline is in the series
-- (15 + w days of data, when its baseline is the recent 14 days only); a unit-day without any
-- statistic yet has no row.
CREATE MATERIALIZED VIEW mv_outbreak_statistics
SORTKEY (day, unit)
AUTO REFRESH NO
AS
SELECT
    unit,
    unit_level,
    state_code,
    day,
    statistic_1d,
    statistic_3d,
    statistic_7d,
    window_days,
    CASE window_days WHEN 1 THEN observed_1d WHEN 3 THEN observed_3d ELSE observed_7d END AS observed,
    CASE window_days WHEN 1 THEN expected_1d WHEN 3 THEN expected_3d ELSE expected_7d END AS expected,
    CASE window_days
        WHEN 1 THEN observed_1d / NULLIF(expected_1d, 0.0)
        WHEN 3 THEN observed_3d / NULLIF(expected_3d, 0.0)
        ELSE observed_7d / NULLIF(expected_7d, 0.0)
    END AS ratio,
    CASE window_days WHEN 1 THEN statistic_1d WHEN 3 THEN statistic_3d ELSE statistic_7d END AS statistic,
    CASE window_days WHEN 1 THEN strength_1d WHEN 3 THEN strength_3d ELSE strength_7d END AS strength,
    CASE WHEN (CASE window_days WHEN 1 THEN fires_1d WHEN 3 THEN fires_3d ELSE fires_7d END) = 1
        THEN 'trend ' || CAST(window_days AS VARCHAR) || 'd'
    END AS alert,
    observed_7d,
    expected_7d
FROM (
    SELECT
        *,
        -- the strongest window: a firing one first, then the largest strength
        CASE
            WHEN rank_1d >= rank_3d AND rank_1d >= rank_7d THEN 1
            WHEN rank_3d >= rank_7d THEN 3
            ELSE 7
        END AS window_days
    FROM (
        SELECT
            unit,
            unit_level,
            state_code,
            day,
            MAX(CASE WHEN window_days = 1 THEN observed END) AS observed_1d,
            MAX(CASE WHEN window_days = 3 THEN observed END) AS observed_3d,
            MAX(CASE WHEN window_days = 7 THEN observed END) AS observed_7d,
            MAX(CASE WHEN window_days = 1 THEN expected END) AS expected_1d,
            MAX(CASE WHEN window_days = 3 THEN expected END) AS expected_3d,
            MAX(CASE WHEN window_days = 7 THEN expected END) AS expected_7d,
            MAX(CASE WHEN window_days = 1 THEN statistic END) AS statistic_1d,
            MAX(CASE WHEN window_days = 3 THEN statistic END) AS statistic_3d,
            MAX(CASE WHEN window_days = 7 THEN statistic END) AS statistic_7d,
            MAX(CASE WHEN window_days = 1 THEN statistic / threshold END) AS strength_1d,
            MAX(CASE WHEN window_days = 3 THEN statistic / threshold END) AS strength_3d,
            MAX(CASE WHEN window_days = 7 THEN statistic / threshold END) AS strength_7d,
            MAX(CASE WHEN window_days = 1 THEN fires END) AS fires_1d,
            MAX(CASE WHEN window_days = 3 THEN fires END) AS fires_3d,
            MAX(CASE WHEN window_days = 7 THEN fires END) AS fires_7d,
            COALESCE(MAX(CASE WHEN window_days = 1 THEN rank END), -1000000.0) AS rank_1d,
            COALESCE(MAX(CASE WHEN window_days = 3 THEN rank END), -1000000.0) AS rank_3d,
            COALESCE(MAX(CASE WHEN window_days = 7 THEN rank END), -1000000.0) AS rank_7d
        FROM (
            SELECT
                *,
                CASE WHEN statistic > threshold AND observed >= min_cases THEN 1 ELSE 0 END AS fires,
                (CASE WHEN statistic > threshold AND observed >= min_cases THEN 1000000.0 ELSE 0.0 END)
                + statistic / threshold AS rank
            FROM (
                SELECT
                    *,
                    1.5 * (CBRT(observed * observed) - CBRT(expected) * CBRT(expected)) * CBRT(expected)
                    / NULLIF(
                        SQRT(
                            dispersion * (expected + expected * expected * log_variance)
                            + expected_cv * expected_cv * expected * expected
                        ),
                        0.0
                    ) AS statistic
                FROM (
                    SELECT
                        *,
                        baseline * rest_window / NULLIF(rest_baseline, 0.0) * EXP(trend * log_growth) AS expected,
                        CASE
                            WHEN trend > 0.0
                                THEN older * (1.0 / baseline - trend / older) * (1.0 / baseline - trend / older)
                                + recent * (1.0 / baseline + trend / recent) * (1.0 / baseline + trend / recent)
                            ELSE 1.0 / NULLIF(baseline, 0.0)
                        END AS log_variance,
                        GREATEST(
                            (
                                CASE WHEN recent > 0.0 THEN rest_recent / recent * squares_recent - recent ELSE 0.0 END
                                + CASE WHEN older > 0.0 THEN rest_older / older * squares_older - older ELSE 0.0 END
                            ) / CAST(baseline_days - baseline_days / 14 AS DOUBLE PRECISION),
                            1.0
                        ) AS dispersion
                    FROM (
                        SELECT
                            *,
                            older + recent AS baseline,
                            rest_older + rest_recent AS rest_baseline,
                            CASE
                                WHEN older > 0.0 AND recent > 0.0 AND rest_older > 0.0 AND rest_recent > 0.0
                                    THEN CAST(32 + window_days AS DOUBLE PRECISION) / 28.0 * trend_sd * trend_sd
                                    / (trend_sd * trend_sd + 1.0 / older + 1.0 / recent)
                                ELSE 0.0
                            END AS trend,
                            LN(
                                GREATEST(recent, 1.0) * GREATEST(rest_older, 1.0)
                                / (GREATEST(older, 1.0) * GREATEST(rest_recent, 1.0))
                            ) AS log_growth
                        FROM (
                            -- 28 baseline days; or, while the series is too short for the older
                            -- half, the recent 14 (no trend); none until the recent half is there
                            SELECT
                                unit,
                                unit_level,
                                state_code,
                                day,
                                window_days,
                                threshold,
                                min_cases,
                                trend_sd,
                                expected_cv,
                                observed,
                                rest_window,
                                recent,
                                rest_recent,
                                CASE WHEN history_days >= 29 + window_days THEN 28 ELSE 14 END AS baseline_days,
                                CASE WHEN history_days >= 29 + window_days THEN older ELSE 0.0 END AS older,
                                CASE WHEN history_days >= 29 + window_days THEN rest_older ELSE 0.0 END AS rest_older,
                                squares_recent,
                                CASE WHEN history_days >= 29 + window_days THEN squares_older ELSE 0.0 END AS squares_older
                            FROM (
                                SELECT
                                    s.unit,
                                    s.unit_level,
                                    s.state_code,
                                    s.day,
                                    s.history_days,
                                    p.window_days,
                                    p.threshold,
                                    p.min_cases,
                                    p.trend_sd,
                                    p.expected_cv,
                                    CAST(CASE p.window_days WHEN 1 THEN s.cases_1d WHEN 3 THEN s.cases_3d ELSE s.cases_7d END AS DOUBLE PRECISION) AS observed,
                                    CAST(CASE p.window_days WHEN 1 THEN s.rest_1d WHEN 3 THEN s.rest_3d ELSE s.rest_7d END AS DOUBLE PRECISION) AS rest_window,
                                    CAST(CASE p.window_days WHEN 1 THEN s.recent_1d WHEN 3 THEN s.recent_3d ELSE s.recent_7d END AS DOUBLE PRECISION) AS recent,
                                    CAST(CASE p.window_days WHEN 1 THEN s.older_1d WHEN 3 THEN s.older_3d ELSE s.older_7d END AS DOUBLE PRECISION) AS older,
                                    CAST(CASE p.window_days WHEN 1 THEN s.rest_recent_1d WHEN 3 THEN s.rest_recent_3d ELSE s.rest_recent_7d END AS DOUBLE PRECISION) AS rest_recent,
                                    CAST(CASE p.window_days WHEN 1 THEN s.rest_older_1d WHEN 3 THEN s.rest_older_3d ELSE s.rest_older_7d END AS DOUBLE PRECISION) AS rest_older,
                                    CASE p.window_days WHEN 1 THEN s.squares_recent_1d WHEN 3 THEN s.squares_recent_3d ELSE s.squares_recent_7d END AS squares_recent,
                                    CASE p.window_days WHEN 1 THEN s.squares_older_1d WHEN 3 THEN s.squares_older_3d ELSE s.squares_older_7d END AS squares_older
                                FROM mv_outbreak_series AS s
                                CROSS JOIN (
                                    -- The detector's parameters: window (days), threshold on the
                                    -- statistic, fewest cases in the window for an alert, prior
                                    -- SD of a share's log change over 14 days, floor on the
                                    -- expected count's relative uncertainty.
                                    SELECT
                                        1 AS window_days,
                                        CAST(3.8 AS DOUBLE PRECISION) AS threshold,
                                        3 AS min_cases,
                                        CAST(0.1 AS DOUBLE PRECISION) AS trend_sd,
                                        CAST(0.05 AS DOUBLE PRECISION) AS expected_cv
                                    UNION ALL
                                    SELECT 3, CAST(2.6 AS DOUBLE PRECISION), 3, CAST(0.1 AS DOUBLE PRECISION), CAST(0.05 AS DOUBLE PRECISION)
                                    UNION ALL
                                    SELECT 7, CAST(4.4 AS DOUBLE PRECISION), 3, CAST(0.1 AS DOUBLE PRECISION), CAST(0.05 AS DOUBLE PRECISION)
                                ) AS p
                                WHERE s.history_days >= 15 + p.window_days
                            ) AS windows
                        ) AS baselines
                    ) AS shares
                ) AS model
            ) AS scored
        ) AS firing
        GROUP BY unit, unit_level, state_code, day
    ) AS pivoted
) AS strongest;

-- One row per county and day: the trend-adjusted detector's figures (mv_outbreak_statistics) and,
-- for reference only, CDC EARS C1, C2, C3 on the zero-filled daily counts (they do not drive
-- `alert`: during a season's rise they flag most large counties, docs/warehouse.md):
--   C1: baseline days t-7..t-1;  C2: baseline t-9..t-3 (2-day guard band);
--   Cn = (cases_t - baseline mean) / max(baseline sample SD, 0.5);  C3 = sum over t, t-1, t-2 of
--   max(0, C2 - 1). A statistic is NULL until its baseline is complete. CDC thresholds: C1, C2 >
--   3.09, C3 > 1.96.
CREATE MATERIALIZED VIEW mv_county_alerts
SORTKEY (day, county_fips)
AUTO REFRESH NO
AS
SELECT
    e.day,
    e.county_fips,
    e.state_code,
    e.cases,
    e.cases_last_7_days,
    s.window_days,
    s.observed,
    s.expected,
    s.ratio,
    s.statistic,
    s.strength,
    s.statistic_1d,
    s.statistic_3d,
    s.statistic_7d,
    s.alert,
    s.observed_7d,
    s.expected_7d,
    e.c1,
    e.c2,
    e.c3
FROM (
    SELECT
        day,
        county_fips,
        state_code,
        cases,
        cases_last_7_days,
        c1,
        c2,
        CASE
            WHEN COUNT(c2) OVER (PARTITION BY county_fips ORDER BY day ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) = 3
                THEN SUM(GREATEST(c2 - 1.0, 0.0)) OVER (
                    PARTITION BY county_fips ORDER BY day ROWS BETWEEN 2 PRECEDING AND CURRENT ROW
                )
        END AS c3
    FROM (
        SELECT
            day,
            county_fips,
            state_code,
            cases,
            cases_last_7_days,
            CASE WHEN c1_days = 7 THEN (cases - c1_mean) / GREATEST(c1_sd, 0.5) END AS c1,
            CASE WHEN c2_days = 7 THEN (cases - c2_mean) / GREATEST(c2_sd, 0.5) END AS c2
        FROM (
            SELECT
                day,
                county_fips,
                state_code,
                cases,
                SUM(cases) OVER (
                    PARTITION BY county_fips ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW
                ) AS cases_last_7_days,
                COUNT(*) OVER (
                    PARTITION BY county_fips ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING
                ) AS c1_days,
                AVG(CAST(cases AS DOUBLE PRECISION)) OVER (
                    PARTITION BY county_fips ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING
                ) AS c1_mean,
                STDDEV_SAMP(CAST(cases AS DOUBLE PRECISION)) OVER (
                    PARTITION BY county_fips ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING
                ) AS c1_sd,
                COUNT(*) OVER (
                    PARTITION BY county_fips ORDER BY day ROWS BETWEEN 9 PRECEDING AND 3 PRECEDING
                ) AS c2_days,
                AVG(CAST(cases AS DOUBLE PRECISION)) OVER (
                    PARTITION BY county_fips ORDER BY day ROWS BETWEEN 9 PRECEDING AND 3 PRECEDING
                ) AS c2_mean,
                STDDEV_SAMP(CAST(cases AS DOUBLE PRECISION)) OVER (
                    PARTITION BY county_fips ORDER BY day ROWS BETWEEN 9 PRECEDING AND 3 PRECEDING
                ) AS c2_sd
            FROM flu_county_days
        ) AS windows
    ) AS statistics
) AS e
INNER JOIN (
    SELECT GREATEST(MIN(day), CAST(DATEADD(day, -119, MAX(day)) AS DATE)) AS first_day FROM flu_daily_county_counts
) AS w
    ON e.day >= w.first_day
LEFT JOIN mv_outbreak_statistics AS s
    ON s.unit = e.county_fips AND s.day = e.day AND s.unit_level = 'county';
