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

-- Every day from 1970-01-01 for 100,000 days: the zero-filled county x day grid is cut from it.
CREATE TABLE calendar_days
DISTSTYLE ALL
SORTKEY (day)
AS
SELECT CAST(DATEADD(day, d4.d * 10000 + d3.d * 1000 + d2.d * 100 + d1.d * 10 + d0.d, '1970-01-01') AS DATE) AS day
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
