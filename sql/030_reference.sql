-- Reference data: the 150 counties of NY, NJ and PA (2020 Census population) and the 299 acute-care
-- hospitals. Column names equal the CSV headers; `-- @load` lines make sqlscript insert the CSV
-- rows (and reload them only when the file changes).
CREATE TABLE IF NOT EXISTS counties (
    fips VARCHAR(5) NOT NULL,
    state_code VARCHAR(2) NOT NULL,
    county_name VARCHAR(64) NOT NULL,
    population_2020 INTEGER NOT NULL,
    latitude DOUBLE PRECISION NOT NULL,
    longitude DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (fips)
)
DISTSTYLE ALL
SORTKEY (fips);

-- @load counties data/counties.csv

CREATE TABLE IF NOT EXISTS facilities (
    facility_id INTEGER NOT NULL,
    facility_name VARCHAR(128) NOT NULL,
    state_code VARCHAR(2) NOT NULL,
    county_fips VARCHAR(5) NOT NULL,
    zipcode VARCHAR(5) NOT NULL,
    latitude DOUBLE PRECISION NOT NULL,
    longitude DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (facility_id)
)
DISTSTYLE ALL
SORTKEY (facility_id);

-- @load facilities data/facilities.csv

-- What an event's facility may be: a hospital, or 0 for "not admitted". Joining to it with an
-- INNER JOIN keeps flu_cases incrementally refreshable (an outer join would not).
CREATE TABLE facility_refs
DISTSTYLE ALL
SORTKEY (facility_ref)
AS
SELECT facility_id AS facility_ref FROM facilities
UNION ALL
SELECT 0 AS facility_ref;

-- The whole numbers 0..99,999, to generate rows from (days, county slots).
CREATE TABLE whole_numbers
DISTSTYLE ALL
SORTKEY (n)
AS
SELECT d4.d * 10000 + d3.d * 1000 + d2.d * 100 + d1.d * 10 + d0.d AS n
FROM
    (
        SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
        UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9
    ) AS d0
    CROSS JOIN (
        SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
        UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9
    ) AS d1
    CROSS JOIN (
        SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
        UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9
    ) AS d2
    CROSS JOIN (
        SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
        UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9
    ) AS d3
    CROSS JOIN (
        SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
        UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9
    ) AS d4;

-- Every day from 1970-01-01 for 100,000 days: the zero-filled county x day grid is cut from it.
CREATE TABLE calendar_days
DISTSTYLE ALL
SORTKEY (day)
AS
SELECT CAST(DATEADD(day, n, '1970-01-01') AS DATE) AS day
FROM whole_numbers;

-- The residents of the three states (2020 Census), numbered county by county in FIPS order: county
-- number `position` (1..150) holds resident numbers first_resident .. first_resident + population
-- - 1. The datagen connector draws a resident number instead of a county (docs/contract.md).
-- Redshift: "If an ORDER BY clause is used for an aggregate function, an explicit frame clause is
-- required" (SUM window function), hence ROWS UNBOUNDED PRECEDING.
CREATE TABLE county_residents
DISTSTYLE ALL
SORTKEY (position)
AS
SELECT
    fips,
    state_code,
    ROW_NUMBER() OVER (ORDER BY fips) AS position,
    SUM(population_2020) OVER (ORDER BY fips ROWS UNBOUNDED PRECEDING) - population_2020 AS first_resident
FROM counties;

-- Where an event's county comes from. An event that names its county_fips is keyed by that FIPS,
-- with its state as state_key (the record's state_code, or the one its FIPS prefix implies). A
-- datagen record names a resident_number instead, keyed by its slot of 1,000 numbers,
-- 'r' || resident_number / 1000, with an empty state_key. A slot that straddles two counties holds
-- both: numbers below split_at are residents of lower_fips, the others of fips (every county has
-- over 1,000 residents, so no slot meets three; tests check it). flu_cases joins this table with an
-- INNER equi-join (so Redshift refreshes it incrementally) and picks the county with a CASE on
-- split_at: every resident number lands in its own county, exactly, and a uniform number is a
-- population-weighted county. A number past the last resident but inside the last slot (under
-- 1,000 numbers) reads as the last county; one past that slot matches no row: unknown_county.
CREATE TABLE county_keys
DISTSTYLE ALL
SORTKEY (county_key)
AS
SELECT
    CAST(fips AS VARCHAR(8)) AS county_key,
    CAST(state_code AS VARCHAR(2)) AS state_key,
    CAST(0 AS BIGINT) AS split_at,
    fips AS lower_fips,
    state_code AS lower_state_code,
    fips,
    state_code
FROM counties
UNION ALL
SELECT
    CAST('r' || CAST(s.slot AS VARCHAR) AS VARCHAR(8)) AS county_key,
    CAST('' AS VARCHAR(2)) AS state_key,
    s.split_at,
    lower_county.fips AS lower_fips,
    lower_county.state_code AS lower_state_code,
    upper_county.fips,
    upper_county.state_code
FROM (
    -- Every slot up to the last resident's; the resident where a county starts inside it (0 when
    -- none does); the last county started by the slot's end (a running MAX: equi-joins only).
    SELECT
        w.n AS slot,
        CASE WHEN c.first_resident > w.n * 1000 THEN c.first_resident ELSE 0 END AS split_at,
        MAX(c.position) OVER (ORDER BY w.n ROWS UNBOUNDED PRECEDING) AS upper_position
    FROM whole_numbers AS w
    LEFT JOIN county_residents AS c ON c.first_resident / 1000 = w.n
    WHERE w.n <= (SELECT (SUM(population_2020) - 1) / 1000 FROM counties)
) AS s
INNER JOIN county_residents AS upper_county ON upper_county.position = s.upper_position
INNER JOIN county_residents AS lower_county
    ON lower_county.position = s.upper_position - CASE WHEN s.split_at > 0 THEN 1 ELSE 0 END;
