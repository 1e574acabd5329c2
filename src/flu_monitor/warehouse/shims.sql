-- PostgreSQL stand-ins for the Redshift functions sql/ uses that PostgreSQL lacks (or has only
-- for json, not jsonb). Redshift SUPER maps to jsonb and VARBYTE to bytea. Idempotent.

-- CAN_JSON_PARSE(varbyte): true when the bytes are UTF-8 text holding one JSON value.
CREATE OR REPLACE FUNCTION can_json_parse(value bytea) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM convert_from(value, 'UTF8')::jsonb;
    RETURN true;
EXCEPTION WHEN others THEN  -- invalid UTF-8 or invalid JSON
    RETURN false;
END $$;

CREATE OR REPLACE FUNCTION can_json_parse(value text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM value::jsonb;
    RETURN true;
EXCEPTION WHEN others THEN
    RETURN false;
END $$;

-- JSON_PARSE(varbyte | varchar) -> SUPER
CREATE OR REPLACE FUNCTION json_parse(value bytea) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT convert_from(value, 'UTF8')::jsonb $$;

CREATE OR REPLACE FUNCTION json_parse(value text) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT value::jsonb $$;

-- JSON_SERIALIZE(SUPER) -> varchar
CREATE OR REPLACE FUNCTION json_serialize(value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT value::text $$;

-- JSON_TYPEOF(SUPER): object, array, string, number, boolean or null
CREATE OR REPLACE FUNCTION json_typeof(value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT jsonb_typeof(value) $$;

-- TO_HEX(varbyte) (PostgreSQL's to_hex takes integers only)
CREATE OR REPLACE FUNCTION to_hex(value bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT encode(value, 'hex') $$;
