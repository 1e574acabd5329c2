-- Surveillance series over a bounded window: the 120 days ending on the latest report day. Both
-- views need a complete county x day grid (a county with no case on a day is a zero) and window
-- functions, so Redshift recomputes them in full on refresh; bounding the window and reading only
-- flu_daily_county_counts (never the cases) keeps that cost flat as history grows. The full
-- history per county and day is flu_daily_county_counts.

-- Every county, every day of the window (from the first report day if later), zero-filled, with
-- the rate per 100,000 residents and the trailing 7-day average (days before the window count 0).
CREATE MATERIALIZED VIEW mv_daily_county_cases
SORTKEY (day, county_fips)
AUTO REFRESH NO
AS
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
FROM (
    SELECT
        d.day,
        c.fips AS county_fips,
        c.state_code,
        c.population_2020,
        COALESCE(n.cases, 0) AS cases,
        COALESCE(n.admissions, 0) AS admissions
    FROM calendar_days AS d
    INNER JOIN (SELECT MIN(day) AS first_day, MAX(day) AS last_day FROM flu_daily_county_counts) AS r
        ON d.day BETWEEN GREATEST(r.first_day, CAST(DATEADD(day, -119, r.last_day) AS DATE)) AND r.last_day
    CROSS JOIN counties AS c
    LEFT JOIN flu_daily_county_counts AS n ON n.day = d.day AND n.county_fips = c.fips
) AS grid;

-- EARS aberration detection (CDC C1, C2, C3) on the zero-filled daily county counts.
--   C1: baseline days t-7..t-1;  C2: baseline t-9..t-3 (2-day guard band);
--   Cn = (cases_t - baseline mean) / max(baseline sample SD, 0.5)   (the floor keeps sparse
--   counties from dividing by ~0);  C3 = sum over t, t-1, t-2 of max(0, C2 - 1).
-- Thresholds (CDC defaults): C1 > 3.09, C2 > 3.09 (alpha 0.001), C3 > 1.96 (alpha 0.025).
-- A statistic (and the baseline mean/SD, those of C1's 7 days) is NULL until its baseline is
-- complete. `alert` lists what fired, e.g. 'C2,C3'; NULL when nothing did.
CREATE MATERIALIZED VIEW mv_county_alerts
SORTKEY (day, county_fips)
AUTO REFRESH NO
AS
SELECT
    day,
    county_fips,
    state_code,
    cases,
    cases_last_7_days,
    baseline_mean,
    baseline_sd,
    c1,
    c2,
    c3,
    NULLIF(
        SUBSTRING(
            CASE WHEN c1 > 3.09 THEN ',C1' ELSE '' END
            || CASE WHEN c2 > 3.09 THEN ',C2' ELSE '' END
            || CASE WHEN c3 > 1.96 THEN ',C3' ELSE '' END,
            2
        ),
        ''
    ) AS alert
FROM (
    SELECT
        day,
        county_fips,
        state_code,
        cases,
        cases_last_7_days,
        baseline_mean,
        baseline_sd,
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
            CASE WHEN c1_days = 7 THEN c1_mean END AS baseline_mean,
            CASE WHEN c1_days = 7 THEN c1_sd END AS baseline_sd,
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
            FROM mv_daily_county_cases
        ) AS windows
    ) AS statistics
) AS ears;
