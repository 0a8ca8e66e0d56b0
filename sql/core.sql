-- GUCs are defined with their defaults and the prefix is reserved.
SHOW camperso.database;
SHOW camperso.max_workers;
SHOW camperso.batch_size;
SHOW camperso.batch_ms;
SELECT name, context, vartype, unit FROM pg_settings WHERE name LIKE 'camperso.%' ORDER BY name;
-- Behaviour GUCs come from postgresql.conf (reload), sizes need a restart:
-- neither can be changed by a session.
SET camperso.batch_size = 5;
SET camperso.max_workers = 3;
-- Unknown names under the reserved prefix are rejected.
SET camperso.no_such_setting = 1;
