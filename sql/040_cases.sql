-- The typed layer, in two flat materialized views over the stream, then the cases.
--
-- Redshift refreshes a materialized view incrementally only when its query has no subquery, outer
-- join, window function or set operation (REFRESH MATERIALIZED VIEW, "Limitations for
-- incremental refresh"); otherwise every refresh recomputes it from ALL of its input. So each view
-- here is ONE flat SELECT: flu_case_fields reads every field's text once, flu_case_records checks
-- the texts, flu_cases types the fields of the valid records (and keeps one record per case_id).
-- Each refresh then only processes the records that arrived since the last.
--
-- Field text: JSON_SERIALIZE then strip the quotes, so "42" and 42, "true" and true read alike
-- (the MSK datagen connector writes numbers and booleans as strings); JSON null counts as absent
-- (JSON_SERIALIZE of a missing member is 'null'). JSON_SERIALIZE writes RFC 8259 JSON, so a text
-- never holds a raw newline and the ^...$ patterns below anchor the whole value.
--
-- Nested materialized views cannot AUTO REFRESH (CREATE MATERIALIZED VIEW, "Limitations"): every
-- view but the streaming one says AUTO REFRESH NO and is refreshed by REFRESH ... CASCADE.
CREATE MATERIALIZED VIEW flu_case_fields
AUTO REFRESH NO
AS
SELECT
    kafka_partition,
    kafka_offset,
    kafka_timestamp,
    refresh_time,
    -- What is wrong with the record as a whole, before any field is read.
    CASE
        WHEN value_bytes > 65535 THEN 'oversized'
        WHEN payload IS NULL THEN 'invalid_json'
        WHEN JSON_TYPEOF(payload) <> 'object' THEN 'not_an_object'
    END AS record_reason,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.schema_version), '"'), 'null') AS schema_version_text,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.case_id), '"'), 'null') AS case_id_text,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.event_time), '"'), 'null') AS event_time_text,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.gender), '"'), 'null') AS gender_text,
    -- A legacy age_group is read as the age when age is absent.
    COALESCE(
        NULLIF(BTRIM(JSON_SERIALIZE(payload.age), '"'), 'null'),
        NULLIF(BTRIM(JSON_SERIALIZE(payload.age_group), '"'), 'null')
    ) AS age_text,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.age_band), '"'), 'null') AS age_band_text,
    -- Absent (the datagen connector cannot draw it consistently): the county's state, from the
    -- FIPS state prefix of the contract (NJ 34, NY 36, PA 42).
    COALESCE(
        NULLIF(BTRIM(JSON_SERIALIZE(payload.state_code), '"'), 'null'),
        CASE SUBSTRING(NULLIF(BTRIM(JSON_SERIALIZE(payload.county_fips), '"'), 'null'), 1, 2)
            WHEN '34' THEN 'NJ'
            WHEN '36' THEN 'NY'
            WHEN '42' THEN 'PA'
        END
    ) AS state_code_text,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.county_fips), '"'), 'null') AS county_fips_text,
    -- The datagen connector names a resident of the three states instead of a county
    -- (county_keys in 030_reference.sql, docs/contract.md).
    NULLIF(BTRIM(JSON_SERIALIZE(payload.resident_number), '"'), 'null') AS resident_number_text,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.zipcode), '"'), 'null') AS zipcode_text,
    -- An array ["fever","cough"] or a string "fever,cough" both read as fever,cough. The datagen
    -- connector sends a code instead of symptoms, symptom_severity and vaccination_status: a
    -- uniform draw, the index of the value in the contract's list (docs/contract.md); any other
    -- code reads as '<code field> <code>', which the checks below reject.
    COALESCE(
        NULLIF(
            REPLACE(REPLACE(REPLACE(REPLACE(JSON_SERIALIZE(payload.symptoms), '[', ''), ']', ''), '"', ''), ' ', ''),
            'null'
        ),
        CASE NULLIF(BTRIM(JSON_SERIALIZE(payload.symptom_code), '"'), 'null')
            WHEN '0' THEN 'fever'
            WHEN '1' THEN 'cough'
            WHEN '2' THEN 'sore_throat'
            WHEN '3' THEN 'runny_nose'
            WHEN '4' THEN 'muscle_aches'
            WHEN '5' THEN 'headache'
            WHEN '6' THEN 'fatigue'
            WHEN '7' THEN 'chills'
            WHEN '8' THEN 'vomiting'
            WHEN '9' THEN 'diarrhea'
            WHEN '10' THEN 'shortness_of_breath'
            ELSE 'symptom_code ' || NULLIF(BTRIM(JSON_SERIALIZE(payload.symptom_code), '"'), 'null')
        END
    ) AS symptoms_text,
    COALESCE(
        NULLIF(BTRIM(JSON_SERIALIZE(payload.symptom_severity), '"'), 'null'),
        CASE NULLIF(BTRIM(JSON_SERIALIZE(payload.severity_code), '"'), 'null')
            WHEN '0' THEN 'mild'
            WHEN '1' THEN 'moderate'
            WHEN '2' THEN 'severe'
            ELSE 'severity_code ' || NULLIF(BTRIM(JSON_SERIALIZE(payload.severity_code), '"'), 'null')
        END
    ) AS symptom_severity_text,
    COALESCE(
        NULLIF(BTRIM(JSON_SERIALIZE(payload.vaccination_status), '"'), 'null'),
        CASE NULLIF(BTRIM(JSON_SERIALIZE(payload.vaccination_code), '"'), 'null')
            WHEN '0' THEN 'vaccinated'
            WHEN '1' THEN 'unvaccinated'
            WHEN '2' THEN 'unknown'
            ELSE 'vaccination_code ' || NULLIF(BTRIM(JSON_SERIALIZE(payload.vaccination_code), '"'), 'null')
        END
    ) AS vaccination_status_text,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.admitted), '"'), 'null') AS admitted_text,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.facility_id), '"'), 'null') AS facility_id_text,
    NULLIF(BTRIM(JSON_SERIALIZE(payload.days_admitted), '"'), 'null') AS days_admitted_text
FROM flu_cases_stream;

-- One row per Kafka record (deduplicated on kafka_partition, kafka_offset) with `reject_reason`
-- for a record that breaks the contract in a way a single record shows (reference checks, county
-- and facility, follow in flu_cases). A value is cast only in a CASE branch reached after its text
-- matched the contract's pattern, so no record can make a refresh fail.
--
-- Reasons, first match wins: oversized, invalid_json (not JSON, or not UTF-8), not_an_object,
-- missing_field:<field>, invalid_value:<field>. Optional fields (schema_version, event_time,
-- gender, age_band, state_code, zipcode, symptoms) are checked only when present: a missing
-- event_time falls back to the Kafka record timestamp; a missing age_band is derived from age and
-- a missing state_code from the county. A record without county_fips may name a resident_number
-- instead (the datagen connector; its county and state come from county_keys). A case that was not
-- admitted has no facility and 0 days, whatever those fields say (the datagen connector always
-- sends both). See docs/contract.md.
CREATE MATERIALIZED VIEW flu_case_records
AUTO REFRESH NO
AS
SELECT
    kafka_partition,
    kafka_offset,
    MIN(kafka_timestamp) AS kafka_timestamp,
    -- When the streaming view read the record (every copy of one Kafka record: the first time).
    MIN(refresh_time) AS refresh_time,
    MAX(
        CASE
            WHEN record_reason IS NOT NULL THEN record_reason
            WHEN schema_version_text IS NOT NULL AND NOT schema_version_text ~ '^1[.][0-9]+$'
                THEN 'invalid_value:schema_version'
            WHEN case_id_text IS NULL THEN 'missing_field:case_id'
            WHEN NOT case_id_text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN 'invalid_value:case_id'
            WHEN event_time_text IS NOT NULL
                AND NOT event_time_text ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,6})?Z$'
                THEN 'invalid_value:event_time'
            -- The pattern matched (or the text is NULL), so the day casts: is it in its month?
            WHEN CAST(SUBSTRING(event_time_text, 9, 2) AS INTEGER) > CASE
                    WHEN SUBSTRING(event_time_text, 6, 2) IN ('04', '06', '09', '11') THEN 30
                    WHEN SUBSTRING(event_time_text, 6, 2) <> '02' THEN 31
                    WHEN MOD(CAST(SUBSTRING(event_time_text, 1, 4) AS INTEGER), 400) = 0 THEN 29
                    WHEN MOD(CAST(SUBSTRING(event_time_text, 1, 4) AS INTEGER), 100) = 0 THEN 28
                    WHEN MOD(CAST(SUBSTRING(event_time_text, 1, 4) AS INTEGER), 4) = 0 THEN 29
                    ELSE 28
                END
                THEN 'invalid_value:event_time'
            WHEN gender_text IS NOT NULL AND gender_text NOT IN ('female', 'male', 'other', 'unknown')
                THEN 'invalid_value:gender'
            WHEN age_text IS NULL THEN 'missing_field:age'
            WHEN NOT age_text ~ '^[0-9]{1,3}$' THEN 'invalid_value:age'
            WHEN CAST(age_text AS INTEGER) > 110 THEN 'invalid_value:age'
            WHEN age_band_text IS NOT NULL AND age_band_text <> CASE
                    WHEN CAST(age_text AS INTEGER) <= 4 THEN '0-4'
                    WHEN CAST(age_text AS INTEGER) <= 17 THEN '5-17'
                    WHEN CAST(age_text AS INTEGER) <= 49 THEN '18-49'
                    WHEN CAST(age_text AS INTEGER) <= 64 THEN '50-64'
                    ELSE '65+'
                END
                THEN 'invalid_value:age_band'
            WHEN county_fips_text IS NULL AND resident_number_text IS NULL
                THEN 'missing_field:county_fips'
            WHEN NOT county_fips_text ~ '^[0-9]{5}$' THEN 'invalid_value:county_fips'
            WHEN county_fips_text IS NULL AND NOT resident_number_text ~ '^[0-9]{1,9}$'
                THEN 'invalid_value:resident_number'
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
            WHEN admitted_text NOT IN ('true', 'false') THEN 'invalid_value:admitted'
            WHEN admitted_text = 'true' AND facility_id_text IS NULL THEN 'missing_field:facility_id'
            WHEN admitted_text = 'true' AND NOT facility_id_text ~ '^[1-9][0-9]{0,8}$'
                THEN 'invalid_value:facility_id'
            WHEN admitted_text = 'true' AND days_admitted_text IS NULL THEN 'missing_field:days_admitted'
            WHEN admitted_text = 'true' AND NOT days_admitted_text ~ '^([1-9]|[1-5][0-9]|60)$'
                THEN 'invalid_value:days_admitted'
        END
    ) AS reject_reason,
    -- Each field as read; flu_cases types them. Only the two that joins need are typed here:
    -- 1 = admitted, 0 = not (a number, so daily aggregates can SUM it), and the facility key
    -- joined to facility_refs: the hospital, or 0 when not admitted.
    MAX(case_id_text) AS case_id,
    MAX(event_time_text) AS event_time_text,
    MAX(gender_text) AS gender,
    MAX(age_text) AS age_text,
    -- The county_keys row of the record's county (030_reference.sql): its FIPS and state, or for
    -- a datagen record its resident number's slot of 1,000 and no state. The number itself picks
    -- the county within the slot (flu_cases).
    MAX(CASE WHEN county_fips_text IS NOT NULL THEN county_fips_text
        WHEN resident_number_text ~ '^[0-9]{1,9}$'
            THEN 'r' || CAST(CAST(resident_number_text AS INTEGER) / 1000 AS VARCHAR)
    END) AS county_key,
    MAX(COALESCE(state_code_text, '')) AS state_key,
    MAX(
        CASE
            WHEN county_fips_text IS NULL AND resident_number_text ~ '^[0-9]{1,9}$'
                THEN CAST(resident_number_text AS INTEGER)
        END
    ) AS resident_number,
    MAX(zipcode_text) AS zipcode,
    MAX(symptoms_text) AS symptoms,
    MAX(symptom_severity_text) AS symptom_severity,
    MAX(vaccination_status_text) AS vaccination_status,
    MAX(CASE admitted_text WHEN 'true' THEN 1 WHEN 'false' THEN 0 END) AS admitted,
    MAX(
        CASE
            WHEN admitted_text = 'false' THEN 0
            WHEN admitted_text = 'true' AND facility_id_text ~ '^[1-9][0-9]{0,8}$'
                THEN CAST(facility_id_text AS INTEGER)
        END
    ) AS facility_ref,
    MAX(days_admitted_text) AS days_admitted_text,
    COUNT(*) AS copies
FROM flu_case_fields
GROUP BY kafka_partition, kafka_offset;

-- One case_id, one case. A producer may send the same event twice at different Kafka positions
-- (a restarted simulator, a retried batch without idempotence, a replayed topic). The case keeps
-- the copy the streaming view read FIRST: the earliest refresh_time (the time of the refresh that
-- read it, so a copy read by a later refresh is always later), and among the copies one refresh
-- read at once, the lowest (partition, offset). Every other copy is a duplicate: rejected with
-- reason duplicate_case_id. Only well-formed records of a known county and facility count, so a
-- broken first copy does not hide a good later one.
--
-- Two flat views choose that copy, because "the first" needs an order over two columns and an
-- incremental view may not use a window function or a subquery: flu_case_first_seen keeps each
-- case_id's earliest refresh_time (MIN, GROUP BY), flu_case_first_copy each (case_id,
-- refresh_time)'s lowest position (partition * 2^40 + offset: offsets stay below 2^40). Neither
-- row ever changes once its refresh is done (a later copy has a later refresh_time), so flu_cases
-- joins them like reference tables. GROUP BY with MIN and inner joins: incremental on Redshift.
CREATE MATERIALIZED VIEW flu_case_first_seen
AUTO REFRESH NO
AS
SELECT
    r.case_id,
    MIN(r.refresh_time) AS first_refresh_time
FROM flu_case_records AS r
INNER JOIN county_keys AS c ON c.county_key = r.county_key AND c.state_key = r.state_key
INNER JOIN facility_refs AS f ON f.facility_ref = r.facility_ref
WHERE r.reject_reason IS NULL
GROUP BY r.case_id;

CREATE MATERIALIZED VIEW flu_case_first_copy
AUTO REFRESH NO
AS
SELECT
    r.case_id,
    r.refresh_time,
    MIN(r.kafka_partition * 1099511627776 + r.kafka_offset) AS first_position
FROM flu_case_records AS r
INNER JOIN county_keys AS c ON c.county_key = r.county_key AND c.state_key = r.state_key
INNER JOIN facility_refs AS f ON f.facility_ref = r.facility_ref
WHERE r.reject_reason IS NULL
GROUP BY r.case_id, r.refresh_time;

-- The cases the analytics count, every field typed: well-formed records whose county exists in
-- their state and whose facility (when admitted) exists, the first copy of each case_id (above).
-- Inner joins only, so Redshift refreshes it incrementally. Each cast sits in a CASE branch
-- reached only when reject_reason is NULL, i.e. after flu_case_records checked the text.
CREATE MATERIALIZED VIEW flu_cases
SORTKEY (report_date)
AUTO REFRESH NO
AS
SELECT
    r.kafka_partition,
    r.kafka_offset,
    r.case_id,
    -- A missing event_time falls back to the Kafka record timestamp.
    CASE
        WHEN r.reject_reason IS NOT NULL THEN NULL
        WHEN r.event_time_text IS NULL THEN r.kafka_timestamp
        ELSE CAST(REPLACE(REPLACE(r.event_time_text, 'T', ' '), 'Z', '') AS TIMESTAMP)
    END AS event_time,
    -- The report day: the UTC date of event_time (DATE(timestamp) keeps incremental refresh).
    CASE
        WHEN r.reject_reason IS NOT NULL THEN NULL
        WHEN r.event_time_text IS NULL THEN DATE(r.kafka_timestamp)
        ELSE CAST(SUBSTRING(r.event_time_text, 1, 10) AS DATE)
    END AS report_date,
    r.gender,
    CASE WHEN r.reject_reason IS NULL THEN CAST(r.age_text AS INTEGER) END AS age,
    -- The band of the age (a present age_band equals it: checked in flu_case_records).
    CASE
        WHEN r.reject_reason IS NOT NULL THEN NULL
        WHEN CAST(r.age_text AS INTEGER) <= 4 THEN '0-4'
        WHEN CAST(r.age_text AS INTEGER) <= 17 THEN '5-17'
        WHEN CAST(r.age_text AS INTEGER) <= 49 THEN '18-49'
        WHEN CAST(r.age_text AS INTEGER) <= 64 THEN '50-64'
        ELSE '65+'
    END AS age_band,
    -- The county: named by the record, or the one its resident number lives in (county_keys).
    CASE WHEN r.resident_number < c.split_at THEN c.lower_state_code ELSE c.state_code END AS state_code,
    CASE WHEN r.resident_number < c.split_at THEN c.lower_fips ELSE c.fips END AS county_fips,
    r.zipcode,
    r.symptoms,
    r.symptom_severity,
    CASE WHEN r.symptom_severity = 'severe' THEN 1 ELSE 0 END AS severe,
    r.vaccination_status,
    r.admitted,
    -- A case that was not admitted has no facility and 0 days, whatever the record says.
    NULLIF(r.facility_ref, 0) AS facility_id,
    CASE
        WHEN r.reject_reason IS NOT NULL THEN NULL
        WHEN r.admitted = 1 THEN CAST(r.days_admitted_text AS INTEGER)
        ELSE 0
    END AS days_admitted
FROM flu_case_records AS r
INNER JOIN county_keys AS c ON c.county_key = r.county_key AND c.state_key = r.state_key
INNER JOIN facility_refs AS f ON f.facility_ref = r.facility_ref
INNER JOIN flu_case_first_seen AS s ON s.case_id = r.case_id AND s.first_refresh_time = r.refresh_time
INNER JOIN flu_case_first_copy AS p
    ON p.case_id = r.case_id
    AND p.refresh_time = r.refresh_time
    AND p.first_position = r.kafka_partition * 1099511627776 + r.kafka_offset
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
            WHEN c.county_key IS NULL THEN 'unknown_county'
            WHEN c.state_key <> r.state_key THEN 'county_state_mismatch'
            WHEN f.facility_ref IS NULL THEN 'unknown_facility'
            ELSE 'duplicate_case_id'
        END
    ) AS reason,
    s.value_bytes,
    CASE
        WHEN s.payload IS NOT NULL THEN JSON_SERIALIZE(s.payload)
        ELSE 'hex:' || TO_HEX(s.unparsed_value)
    END AS value_text
FROM flu_case_records AS r
INNER JOIN flu_cases_stream AS s ON s.kafka_partition = r.kafka_partition AND s.kafka_offset = r.kafka_offset
LEFT JOIN county_keys AS c ON c.county_key = r.county_key
LEFT JOIN facility_refs AS f ON f.facility_ref = r.facility_ref
LEFT JOIN flu_cases AS k ON k.kafka_partition = r.kafka_partition AND k.kafka_offset = r.kafka_offset
WHERE k.kafka_offset IS NULL;

-- Rejected records counted by reason (duplicated deliveries of one Kafka record count once).
CREATE VIEW flu_rejected_records AS
SELECT
    reason,
    COUNT(*) AS records,
    MIN(kafka_timestamp) AS first_seen,
    MAX(kafka_timestamp) AS last_seen
FROM flu_rejected_record_detail
GROUP BY reason;
