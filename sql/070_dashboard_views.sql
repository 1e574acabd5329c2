-- Plain views the dashboards read (quicksight/dashboard.yaml `datasets`). "Now" is the latest
-- report day present in the data, never the clock: the simulator backfills history and may run
-- simulated time faster than real time.

-- Cases and admissions per state on the latest report day (all three states, zeros included).
CREATE VIEW v_dashboard_kpis AS
SELECT
    l.day,
    s.state_code,
    COALESCE(d.cases, 0) AS cases_today,
    COALESCE(d.admissions, 0) AS admissions_today
FROM (SELECT DISTINCT state_code FROM counties) AS s
CROSS JOIN (SELECT MAX(day) AS day FROM mv_daily_state_cases) AS l
LEFT JOIN mv_daily_state_cases AS d ON d.state_code = s.state_code AND d.day = l.day
WHERE l.day IS NOT NULL;

-- Every county: cases in the 7 days ending on the latest report day, and the rate per 100,000.
CREATE VIEW v_county_latest AS
SELECT
    l.day,
    c.fips AS county_fips,
    c.county_name,
    c.state_code,
    COALESCE(SUM(m.cases), 0) AS cases_7day,
    ROUND(COALESCE(SUM(m.cases), 0) * 100000.0 / c.population_2020, 2) AS rate_7day_per_100k
FROM counties AS c
CROSS JOIN (SELECT MAX(day) AS day FROM mv_daily_county_cases) AS l
LEFT JOIN mv_daily_county_cases AS m
    ON m.county_fips = c.fips
    AND m.day BETWEEN CAST(DATEADD(day, -6, l.day) AS DATE) AND l.day
WHERE l.day IS NOT NULL
GROUP BY l.day, c.fips, c.county_name, c.state_code, c.population_2020;

-- What the outbreak detector flags on the latest complete day (the day before the latest report
-- day, which is still filling up): counties, and whole states (county_fips = the state's FIPS
-- code, county_name = the state), with the window that fired, observed and expected cases over it,
-- their ratio, the statistic and its strength (statistic / threshold: > 1 fires), strongest first
-- when sorted by strength. See docs/warehouse.md, "Outbreak detection".
CREATE VIEW v_current_alerts AS
SELECT
    a.day,
    a.unit AS county_fips,
    COALESCE(
        c.county_name,
        CASE a.unit WHEN 'NJ' THEN 'New Jersey' WHEN 'NY' THEN 'New York' WHEN 'PA' THEN 'Pennsylvania' END
        || ' (whole state)'
    ) AS county_name,
    a.state_code,
    a.alert,
    a.window_days,
    a.observed,
    a.expected,
    a.ratio,
    a.statistic,
    a.strength
FROM mv_outbreak_statistics AS a
INNER JOIN (SELECT CAST(DATEADD(day, -1, MAX(day)) AS DATE) AS day FROM mv_daily_county_cases) AS l
    ON a.day = l.day
LEFT JOIN counties AS c ON c.fips = a.unit
WHERE a.alert IS NOT NULL;

-- Every county on the latest complete day: cases over the last 7 days against what the state's
-- trend predicts (the detector's 7-day window) and how unusual that is (its statistic, which
-- unlike the ratio allows for small numbers), for the map of unusual counties.
CREATE VIEW v_county_expected AS
SELECT
    a.day,
    a.county_fips,
    c.county_name,
    a.state_code,
    a.observed_7d AS observed_7day,
    a.expected_7d AS expected_7day,
    a.observed_7d / NULLIF(a.expected_7d, 0.0) AS ratio_7day,
    a.statistic_7d AS statistic_7day,
    a.alert
FROM mv_county_alerts AS a
INNER JOIN counties AS c ON c.fips = a.county_fips
INNER JOIN (SELECT CAST(DATEADD(day, -1, MAX(day)) AS DATE) AS day FROM mv_daily_county_cases) AS l
    ON a.day = l.day;
