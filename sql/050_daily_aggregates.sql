-- Daily aggregates over flu_cases: one row per report day x state x dimension, so the dashboard's
-- state and date filters apply to every visual and rates are recomputed from summed counts. Only
-- GROUP BY with COUNT/SUM and inner joins: Redshift refreshes each incrementally. The per-row
-- rates (percent) are for SQL users; dashboards recompute them from the summed counts.
CREATE MATERIALIZED VIEW mv_daily_state_cases
SORTKEY (day, state_code)
AUTO REFRESH NO
AS
SELECT
    report_date AS day,
    state_code,
    COUNT(*) AS cases,
    SUM(admitted) AS admissions,
    SUM(severe) AS severe_cases,
    -- The data's own clock: the last event time stored. A day whose clock has not reached its
    -- end is partial (dashboards say so, and say in which time zone: UTC).
    MAX(event_time) AS latest_event_time
FROM flu_cases
GROUP BY report_date, state_code;

-- Counts per county and day for the days that have cases; mv_daily_county_cases zero-fills them.
CREATE MATERIALIZED VIEW flu_daily_county_counts
SORTKEY (day, county_fips)
AUTO REFRESH NO
AS
SELECT
    report_date AS day,
    county_fips,
    COUNT(*) AS cases,
    SUM(admitted) AS admissions,
    SUM(severe) AS severe_cases
FROM flu_cases
GROUP BY report_date, county_fips;

CREATE MATERIALIZED VIEW mv_hospitalization_by_age_band
SORTKEY (day, state_code)
AUTO REFRESH NO
AS
SELECT
    report_date AS day,
    state_code,
    age_band,
    COUNT(*) AS total_cases,
    SUM(admitted) AS hospitalized_cases,
    ROUND(100.0 * SUM(admitted) / COUNT(*), 2) AS hospitalization_rate
FROM flu_cases
GROUP BY report_date, state_code, age_band;

CREATE MATERIALIZED VIEW mv_severity_by_age_band
SORTKEY (day, state_code)
AUTO REFRESH NO
AS
SELECT
    report_date AS day,
    state_code,
    age_band,
    symptom_severity,
    COUNT(*) AS cases
FROM flu_cases
GROUP BY report_date, state_code, age_band, symptom_severity;

-- Split by age band too: vaccination coverage and the risk of admission both rise with age, so
-- the crude rate of all ages mixes an older vaccinated group with a younger unvaccinated one and
-- hides the vaccine's effect. Compare within a band (or standardize over bands); summing over
-- age_band gives the crude figures back.
CREATE MATERIALIZED VIEW mv_vaccination_outcomes
SORTKEY (day, state_code)
AUTO REFRESH NO
AS
SELECT
    report_date AS day,
    state_code,
    vaccination_status,
    age_band,
    COUNT(*) AS cases,
    SUM(severe) AS severe_cases,
    SUM(admitted) AS admissions,
    ROUND(100.0 * SUM(severe) / COUNT(*), 2) AS severe_rate,
    ROUND(100.0 * SUM(admitted) / COUNT(*), 2) AS admission_rate
FROM flu_cases
GROUP BY report_date, state_code, vaccination_status, age_band;

-- Admissions per facility and day, with the facility's own state, county and location.
CREATE MATERIALIZED VIEW mv_top_facilities
SORTKEY (day, state_code)
AUTO REFRESH NO
AS
SELECT
    c.report_date AS day,
    f.facility_id,
    f.facility_name,
    f.state_code,
    f.county_fips,
    f.latitude,
    f.longitude,
    COUNT(*) AS admissions
FROM flu_cases AS c
INNER JOIN facilities AS f ON f.facility_id = c.facility_id
WHERE c.admitted = 1
GROUP BY c.report_date, f.facility_id, f.facility_name, f.state_code, f.county_fips, f.latitude, f.longitude;
