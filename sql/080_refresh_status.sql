-- The top of the view tree, and what the scheduled refresh names: the latest report day each
-- analytics view holds. It reads every materialized view nothing else reads, so
-- `REFRESH MATERIALIZED VIEW flu_refresh_status CASCADE` refreshes the whole tree, bases before
-- the views on them, in ONE transaction (REFRESH MATERIALIZED VIEW, "Cascading refresh"): every
-- view then reflects the same stream position, and nothing lags a refresh behind its base.
-- sqlscript.refresh_sql() checks that this is the only such view. One row, recomputed in full on
-- each refresh from seven small views.
CREATE MATERIALIZED VIEW flu_refresh_status
AUTO REFRESH NO
AS
SELECT
    s.latest_day AS state_cases_day,
    h.latest_day AS hospitalization_day,
    a.latest_day AS severity_day,
    v.latest_day AS vaccination_day,
    f.latest_day AS facilities_day,
    e.latest_day AS alerts_day,
    c.latest_day AS county_cases_day
FROM (SELECT MAX(day) AS latest_day FROM mv_daily_state_cases) AS s
CROSS JOIN (SELECT MAX(day) AS latest_day FROM mv_hospitalization_by_age_band) AS h
CROSS JOIN (SELECT MAX(day) AS latest_day FROM mv_severity_by_age_band) AS a
CROSS JOIN (SELECT MAX(day) AS latest_day FROM mv_vaccination_outcomes) AS v
CROSS JOIN (SELECT MAX(day) AS latest_day FROM mv_top_facilities) AS f
CROSS JOIN (SELECT MAX(day) AS latest_day FROM mv_county_alerts) AS e
CROSS JOIN (SELECT MAX(day) AS latest_day FROM mv_daily_county_cases) AS c;
