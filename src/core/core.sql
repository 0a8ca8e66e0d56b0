-- core: the schema-wide pieces every stage uses.

-- The schema is created here rather than named in the control file, so it
-- belongs to the extension and DROP EXTENSION removes it.
CREATE SCHEMA camperso;

COMMENT ON SCHEMA camperso IS 'camperso: a clickstream warehouse inside PostgreSQL';

CREATE FUNCTION camperso.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '0.1.0'::text $$;
COMMENT ON FUNCTION camperso.version() IS 'Version of the installed camperso SQL objects';

CREATE FUNCTION camperso.launcher_pid() RETURNS integer
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'camperso_launcher_pid';
COMMENT ON FUNCTION camperso.launcher_pid() IS 'Process id of the camperso launcher background worker, NULL while it is not running; raises an error when camperso is not in shared_preload_libraries';
