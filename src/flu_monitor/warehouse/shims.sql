-- PostgreSQL stand-ins for the Redshift functions sql/ uses that PostgreSQL lacks (or has only
-- for json, not jsonb). Redshift SUPER maps to jsonb and VARBYTE to bytea. Idempotent.

-- The parsed value, or NULL when the bytes are not UTF-8 text holding one JSON value. Not a Redshift
-- function: CAN_JSON_PARSE below, and the translation to parse a value once for both
-- CAN_JSON_PARSE and JSON_PARSE (translate.parse_json_once). PARALLEL UNSAFE: the exception block
-- is a subtransaction, which a parallel worker cannot start.
CREATE OR REPLACE FUNCTION try_json_parse(value bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
BEGIN
    RETURN convert_from(value, 'UTF8')::jsonb;
EXCEPTION WHEN others THEN  -- invalid UTF-8 or invalid JSON
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION try_json_parse(value text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
BEGIN
    RETURN value::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- CAN_JSON_PARSE(varbyte | varchar): true when the value is (UTF-8 text holding) one JSON value.
CREATE OR REPLACE FUNCTION can_json_parse(value bytea) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE AS $$ SELECT try_json_parse(value) IS NOT NULL $$;

CREATE OR REPLACE FUNCTION can_json_parse(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL UNSAFE AS $$ SELECT try_json_parse(value) IS NOT NULL $$;

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
