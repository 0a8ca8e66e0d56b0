-- pgTAP: the core objects exist with the expected shape.
BEGIN;
CREATE EXTENSION IF NOT EXISTS camperso;
SELECT plan(6);

SELECT has_schema('camperso');
SELECT has_function('camperso', 'version', ARRAY[]::name[]);
SELECT function_returns('camperso', 'version', ARRAY[]::name[], 'text');
SELECT has_function('camperso', 'launcher_pid', ARRAY[]::name[]);
SELECT is(camperso.version(), (SELECT extversion FROM pg_extension WHERE extname = 'camperso'),
          'camperso.version() matches the installed extension version');
SELECT isnt(camperso.launcher_pid(), NULL, 'the launcher is running in the preloaded test cluster');

SELECT * FROM finish();
ROLLBACK;
