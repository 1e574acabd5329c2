-- Typed layer: one row per Kafka record (deduplicated on kafka_partition, kafka_offset), every
-- contract field extracted with its type, and `reject_reason` for records that break the contract
-- in ways a single row shows. Reference checks (county, facility) follow in flu_cases.
--
-- Field text: JSON_SERIALIZE then strip the quotes, so "42" and 42, "true" and true read alike
-- (the MSK datagen connector writes numbers and booleans as strings); JSON null counts as absent.
-- Values are cast only after their text has matched the contract's pattern, so a bad record can
-- never make a refresh fail.
--
-- Reasons, first match wins: oversized, invalid_json (not JSON, or not UTF-8), not_an_object,
-- missing_field:<field>, invalid_value:<field>. Optional fields (schema_version, event_time,
-- gender, age_band, state_code, zipcode, symptoms) are checked only when present: a missing
-- event_time falls back to the Kafka record timestamp; a missing age_band is derived from age and
-- a missing state_code from the county; a legacy age_group is read as the age when age is absent.
-- A case that was not admitted has no facility and 0 days, whatever those fields say (the
-- datagen connector always sends both). See docs/contract.md for what the datagen sends.
CREATE MATERIALIZED VIEW flu_case_records
AUTO REFRESH {{auto_refresh}}
AS
SELECT
    kafka_partition,
    kafka_offset,
    MIN(kafka_timestamp) AS kafka_timestamp,
    MAX(reject_reason) AS reject_reason,
    MAX(case_id) AS case_id,
    MAX(event_time) AS event_time,
    MAX(CAST(event_time AS DATE)) AS report_date,
    MAX(gender) AS gender,
    MAX(age) AS age,
    MAX(age_band) AS age_band,
    MAX(state_code) AS state_code,
    MAX(county_fips) AS county_fips,
    MAX(zipcode) AS zipcode,
    MAX(symptoms) AS symptoms,
    MAX(symptom_severity) AS symptom_severity,
    MAX(vaccination_status) AS vaccination_status,
    MAX(admitted) AS admitted,
    MAX(facility_id) AS facility_id,
    MAX(facility_ref) AS facility_ref,
    MAX(days_admitted) AS days_admitted,
    COUNT(*) AS copies
FROM (
    SELECT
        kafka_partition,
        kafka_offset,
        kafka_timestamp,
        reject_reason,
        CASE WHEN reject_reason IS NULL THEN case_id_text END AS case_id,
        CASE
            WHEN reject_reason IS NOT NULL THEN NULL
            WHEN event_time_text IS NULL THEN kafka_timestamp
            ELSE CAST(REPLACE(REPLACE(event_time_text, 'T', ' '), 'Z', '') AS TIMESTAMP)
        END AS event_time,
        CASE WHEN reject_reason IS NULL THEN gender_text END AS gender,
        CASE WHEN reject_reason IS NULL THEN age_years END AS age,
        CASE WHEN reject_reason IS NULL THEN derived_age_band END AS age_band,
        CASE WHEN reject_reason IS NULL THEN state_code_text END AS state_code,
        CASE WHEN reject_reason IS NULL THEN county_fips_text END AS county_fips,
        CASE WHEN reject_reason IS NULL THEN zipcode_text END AS zipcode,
        CASE WHEN reject_reason IS NULL THEN symptoms_text END AS symptoms,
        CASE WHEN reject_reason IS NULL THEN symptom_severity_text END AS symptom_severity,
        CASE WHEN reject_reason IS NULL THEN vaccination_status_text END AS vaccination_status,
        -- 1 = admitted, 0 = not: a number, so daily aggregates can SUM it.
        CASE WHEN reject_reason IS NULL THEN CASE WHEN is_admitted THEN 1 ELSE 0 END END AS admitted,
        CASE
            WHEN reject_reason IS NULL AND is_admitted THEN CAST(facility_id_text AS INTEGER)
        END AS facility_id,
        -- The facility key joined to facility_refs: the hospital, or 0 when not admitted.
        CASE
            WHEN reject_reason IS NULL AND is_admitted THEN CAST(facility_id_text AS INTEGER)
            WHEN reject_reason IS NULL THEN 0
        END AS facility_ref,
        CASE
            WHEN reject_reason IS NULL AND is_admitted THEN CAST(days_admitted_text AS INTEGER)
            WHEN reject_reason IS NULL THEN 0
        END AS days_admitted
    FROM (
        SELECT
            derived.*,
            CASE
                WHEN value_bytes > 65535 THEN 'oversized'
                WHEN payload IS NULL THEN 'invalid_json'
                WHEN JSON_TYPEOF(payload) <> 'object' THEN 'not_an_object'
                WHEN schema_version_text IS NOT NULL AND NOT schema_version_text ~ '^1[.][0-9]+$'
                    THEN 'invalid_value:schema_version'
                WHEN case_id_text IS NULL THEN 'missing_field:case_id'
                WHEN NOT case_id_text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                    THEN 'invalid_value:case_id'
                WHEN event_time_text IS NOT NULL AND NOT (
                    event_time_text ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,6})?Z$'
                    AND CAST(SUBSTRING(event_time_text, 9, 2) AS INTEGER) <= days_in_month
                ) THEN 'invalid_value:event_time'
                WHEN gender_text IS NOT NULL AND gender_text NOT IN ('female', 'male', 'other', 'unknown')
                    THEN 'invalid_value:gender'
                WHEN age_text IS NULL THEN 'missing_field:age'
                WHEN age_years IS NULL OR age_years > 110 THEN 'invalid_value:age'
                WHEN age_band_text IS NOT NULL AND age_band_text <> derived_age_band
                    THEN 'invalid_value:age_band'
                WHEN county_fips_text IS NULL THEN 'missing_field:county_fips'
                WHEN NOT county_fips_text ~ '^[0-9]{5}$' THEN 'invalid_value:county_fips'
                WHEN state_code_text NOT IN ('NY', 'NJ', 'PA') THEN 'invalid_value:state_code'
                WHEN zipcode_text IS NOT NULL AND NOT zipcode_text ~ '^[0-9]{5}$'
                    THEN 'invalid_value:zipcode'
                WHEN symptoms_text IS NOT NULL
                    AND NOT symptoms_text ~ '^(fever|cough|sore_throat|runny_nose|muscle_aches|headache|fatigue|chills|vomiting|diarrhea|shortness_of_breath)(,(fever|cough|sore_throat|runny_nose|muscle_aches|headache|fatigue|chills|vomiting|diarrhea|shortness_of_breath))*$'
                    THEN 'invalid_value:symptoms'
                WHEN symptom_severity_text IS NULL THEN 'missing_field:symptom_severity'
                WHEN symptom_severity_text NOT IN ('mild', 'moderate', 'severe')
                    THEN 'invalid_value:symptom_severity'
                WHEN vaccination_status_text IS NULL THEN 'missing_field:vaccination_status'
                WHEN vaccination_status_text NOT IN ('vaccinated', 'unvaccinated', 'unknown')
                    THEN 'invalid_value:vaccination_status'
                WHEN admitted_text IS NULL THEN 'missing_field:admitted'
                WHEN is_admitted IS NULL THEN 'invalid_value:admitted'
                WHEN is_admitted AND facility_id_text IS NULL THEN 'missing_field:facility_id'
                WHEN is_admitted AND NOT facility_id_text ~ '^[1-9][0-9]{0,8}$'
                    THEN 'invalid_value:facility_id'
                WHEN is_admitted AND days_admitted_text IS NULL THEN 'missing_field:days_admitted'
                WHEN is_admitted AND NOT days_admitted_text ~ '^([1-9]|[1-5][0-9]|60)$'
                    THEN 'invalid_value:days_admitted'
            END AS reject_reason
        FROM (
            SELECT
                fields.*,
                CASE WHEN age_text ~ '^[0-9]{1,3}$' THEN CAST(age_text AS INTEGER) END AS age_years,
                CASE
                    WHEN NOT age_text ~ '^[0-9]{1,3}$' THEN NULL
                    WHEN CAST(age_text AS INTEGER) <= 4 THEN '0-4'
                    WHEN CAST(age_text AS INTEGER) <= 17 THEN '5-17'
                    WHEN CAST(age_text AS INTEGER) <= 49 THEN '18-49'
                    WHEN CAST(age_text AS INTEGER) <= 64 THEN '50-64'
                    ELSE '65+'
                END AS derived_age_band,
                CASE admitted_text WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END AS is_admitted,
                CASE
                    WHEN NOT event_time_text ~ '^[0-9]{4}-[0-9]{2}-' THEN NULL
                    WHEN SUBSTRING(event_time_text, 6, 2) IN ('04', '06', '09', '11') THEN 30
                    WHEN SUBSTRING(event_time_text, 6, 2) <> '02' THEN 31
                    WHEN MOD(CAST(SUBSTRING(event_time_text, 1, 4) AS INTEGER), 400) = 0 THEN 29
                    WHEN MOD(CAST(SUBSTRING(event_time_text, 1, 4) AS INTEGER), 100) = 0 THEN 28
                    WHEN MOD(CAST(SUBSTRING(event_time_text, 1, 4) AS INTEGER), 4) = 0 THEN 29
                    ELSE 28
                END AS days_in_month
            FROM (
                SELECT
                    kafka_partition,
                    kafka_offset,
                    kafka_timestamp,
                    value_bytes,
                    payload,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.schema_version), '"'), 'null') AS schema_version_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.case_id), '"'), 'null') AS case_id_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.event_time), '"'), 'null') AS event_time_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.gender), '"'), 'null') AS gender_text,
                    COALESCE(
                        NULLIF(BTRIM(JSON_SERIALIZE(payload.age), '"'), 'null'),
                        NULLIF(BTRIM(JSON_SERIALIZE(payload.age_group), '"'), 'null')
                    ) AS age_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.age_band), '"'), 'null') AS age_band_text,
                    -- Absent (the datagen connector cannot draw it consistently): the county's
                    -- state, from the FIPS state prefix of the contract (NJ 34, NY 36, PA 42).
                    COALESCE(
                        NULLIF(BTRIM(JSON_SERIALIZE(payload.state_code), '"'), 'null'),
                        CASE SUBSTRING(NULLIF(BTRIM(JSON_SERIALIZE(payload.county_fips), '"'), 'null'), 1, 2)
                            WHEN '34' THEN 'NJ'
                            WHEN '36' THEN 'NY'
                            WHEN '42' THEN 'PA'
                        END
                    ) AS state_code_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.county_fips), '"'), 'null') AS county_fips_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.zipcode), '"'), 'null') AS zipcode_text,
                    -- An array ["fever","cough"] or a string "fever,cough" both read as fever,cough.
                    NULLIF(
                        REPLACE(REPLACE(REPLACE(REPLACE(JSON_SERIALIZE(payload.symptoms), '[', ''), ']', ''), '"', ''), ' ', ''),
                        'null'
                    ) AS symptoms_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.symptom_severity), '"'), 'null') AS symptom_severity_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.vaccination_status), '"'), 'null') AS vaccination_status_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.admitted), '"'), 'null') AS admitted_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.facility_id), '"'), 'null') AS facility_id_text,
                    NULLIF(BTRIM(JSON_SERIALIZE(payload.days_admitted), '"'), 'null') AS days_admitted_text
                FROM flu_cases_stream
            ) AS fields
        ) AS derived
    ) AS checked
) AS typed
GROUP BY kafka_partition, kafka_offset;

-- The cases the analytics count: well-formed records whose county exists in their state and whose
-- facility (when admitted) exists. Inner joins only, so Redshift refreshes it incrementally.
CREATE MATERIALIZED VIEW flu_cases
SORTKEY (report_date)
AUTO REFRESH {{auto_refresh}}
AS
SELECT
    r.kafka_partition,
    r.kafka_offset,
    r.case_id,
    r.event_time,
    r.report_date,
    r.gender,
    r.age,
    r.age_band,
    r.state_code,
    r.county_fips,
    r.zipcode,
    r.symptoms,
    r.symptom_severity,
    CASE WHEN r.symptom_severity = 'severe' THEN 1 ELSE 0 END AS severe,
    r.vaccination_status,
    r.admitted,
    r.facility_id,
    r.days_admitted
FROM flu_case_records AS r
INNER JOIN counties AS c ON c.fips = r.county_fips AND c.state_code = r.state_code
INNER JOIN facility_refs AS f ON f.facility_ref = r.facility_ref
WHERE r.reject_reason IS NULL;

-- Every record that is not a case, with its reason and its content, kept aside for inspection.
CREATE VIEW flu_rejected_record_detail AS
SELECT
    r.kafka_partition,
    r.kafka_offset,
    r.kafka_timestamp,
    COALESCE(
        r.reject_reason,
        CASE
            WHEN c.fips IS NULL THEN 'unknown_county'
            WHEN c.state_code <> r.state_code THEN 'county_state_mismatch'
            ELSE 'unknown_facility'
        END
    ) AS reason,
    s.value_bytes,
    CASE
        WHEN s.payload IS NOT NULL THEN JSON_SERIALIZE(s.payload)
        ELSE 'hex:' || TO_HEX(s.unparsed_value)
    END AS value_text
FROM flu_case_records AS r
INNER JOIN flu_cases_stream AS s ON s.kafka_partition = r.kafka_partition AND s.kafka_offset = r.kafka_offset
LEFT JOIN counties AS c ON c.fips = r.county_fips
LEFT JOIN facility_refs AS f ON f.facility_ref = r.facility_ref
WHERE r.reject_reason IS NOT NULL
    OR c.fips IS NULL
    OR c.state_code <> r.state_code
    OR f.facility_ref IS NULL;

-- Rejected records counted by reason (duplicated deliveries of one Kafka record count once).
CREATE VIEW flu_rejected_records AS
SELECT
    reason,
    COUNT(*) AS records,
    MIN(kafka_timestamp) AS first_seen,
    MAX(kafka_timestamp) AS last_seen
FROM flu_rejected_record_detail
GROUP BY reason;
