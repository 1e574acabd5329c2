-- The one streaming materialized view over the topic (case-sensitive name, hence quoted).
-- Every record lands here, good or bad: parseable JSON up to 65,535 bytes (the VARCHAR limit that
-- JSON_SERIALIZE downstream must fit) becomes SUPER `payload`; anything else keeps its first
-- 1,024 raw bytes in `unparsed_value` so the typed layer can count it as rejected and show it.
-- Redshift skips only records too large for VARBYTE; an error in the view's own expressions stops
-- ingestion, hence CAN_JSON_PARSE guards JSON_PARSE. No join here (streaming views allow none).
-- The only view that may AUTO REFRESH: Redshift refuses it on a view defined on another view.
-- Dropping this view re-reads the topic from offset 0, which loses whatever the topic's
-- retention has already deleted: sqlscript never drops it needlessly.
CREATE MATERIALIZED VIEW flu_cases_stream
AUTO REFRESH {{auto_refresh}}
AS
SELECT
    kafka_partition,
    kafka_offset,
    kafka_timestamp,
    kafka_key,
    refresh_time,
    OCTET_LENGTH(kafka_value) AS value_bytes,
    CASE
        WHEN OCTET_LENGTH(kafka_value) <= 65535 AND CAN_JSON_PARSE(kafka_value)
            THEN JSON_PARSE(kafka_value)
    END AS payload,
    CASE
        WHEN OCTET_LENGTH(kafka_value) > 65535 OR NOT CAN_JSON_PARSE(kafka_value)
            THEN SUBSTRING(kafka_value, 1, 1024)
    END AS unparsed_value
FROM {{stream_schema}}."{{topic}}";
