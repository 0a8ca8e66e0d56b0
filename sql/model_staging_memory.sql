-- A row trigger on the model's staging tables must not keep memory per row
-- until the end of the statement. PostgreSQL 15 keeps a copy of every row
-- that a partitioned table's BEFORE ROW trigger hands back unchanged unless
-- the partitions' row layout differs from the parent's (clickstream.sql
-- gives the parents a dropped column for that); measured here by reading
-- the statement's executor memory from an AFTER STATEMENT trigger, which
-- runs before that memory is freed. 50,000 rows held 16 MB that way, and
-- as much in a user's own partitioned table with validate_row() before the
-- trigger handed back rows of its own (64 kB now).
SET client_min_messages = warning;
SELECT camperso.create_clickstream_ruleset() IS NOT NULL AS ok;
SELECT camperso.create_clickstream_model('memtest') IS NOT NULL AS ok;
UPDATE camperso.jobs SET enabled = false WHERE name = 'load_model:memtest';
SELECT count(*) AS validate_triggers FROM pg_trigger
 WHERE tgrelid = 'memtest.events'::regclass AND tgfoid = 'camperso.validate_row'::regproc;

CREATE TABLE memtest_probe (tbl text, executor_bytes bigint);
CREATE FUNCTION memtest_probe() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO memtest_probe
	SELECT TG_TABLE_NAME, max(total_bytes) FROM pg_backend_memory_contexts WHERE name = 'ExecutorState';
	RETURN NULL;
END $$;
CREATE TRIGGER probe AFTER INSERT ON memtest.events FOR EACH STATEMENT EXECUTE FUNCTION memtest_probe();
CREATE TRIGGER probe AFTER INSERT ON memtest.user_updates FOR EACH STATEMENT EXECUTE FUNCTION memtest_probe();

-- from tables, not generate_series (whose tuplestore is executor memory)
CREATE TABLE memtest_rows AS SELECT g FROM generate_series(1, 50000) g;
INSERT INTO memtest.events (event_id, user_id, session_id, app_id, event_type, page_url, ts, props)
SELECT gen_random_uuid(), 'u' || g % 1000, 's' || g % 5000, 'web', 'page_view',
	   'https://shop.example/p/' || g, now() - interval '1 minute', '{"k": 1}'
  FROM memtest_rows;
CREATE FUNCTION memtest_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER noop BEFORE INSERT ON memtest.user_updates FOR EACH ROW EXECUTE FUNCTION memtest_noop();
INSERT INTO memtest.user_updates (user_id, country, plan, updated_at)
SELECT 'u' || g, 'DE', 'free', now() FROM memtest_rows;

-- A user's own partitioned table, its partitions of the same row layout
-- (no dropped column): validate_row() hands back a row of its own, so
-- PostgreSQL frees its copy at once (an empty PL/pgSQL trigger does the
-- same, returning a new tuple).
CREATE TABLE memtest_user (LIKE memtest.events INCLUDING DEFAULTS) PARTITION BY LIST (app_id);
CREATE TABLE memtest_user_web PARTITION OF memtest_user FOR VALUES IN ('web');
CREATE TRIGGER validate BEFORE INSERT ON memtest_user
	FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('clickstream');
CREATE TRIGGER probe AFTER INSERT ON memtest_user FOR EACH STATEMENT EXECUTE FUNCTION memtest_probe();
INSERT INTO memtest_user (event_id, user_id, session_id, app_id, event_type, page_url, ts, props)
SELECT gen_random_uuid(), 'u' || g % 1000, 's' || g % 5000, 'web', 'page_view',
	   'https://shop.example/p/' || g, now() - interval '1 minute', '{"k": 1}'
  FROM memtest_rows;
SELECT count(*) AS user_table_rows FROM memtest_user;

SELECT (SELECT count(*) FROM memtest.events) + (SELECT count(*) FROM camperso.quarantine WHERE target = 'memtest.events') AS events_received;
SELECT tbl, executor_bytes < 4 * 1024 * 1024 AS under_4mb FROM memtest_probe ORDER BY tbl;

DROP TABLE memtest_probe, memtest_rows, memtest_user;
SELECT camperso.drop_clickstream_model('memtest') IS NOT NULL AS dropped;
DROP FUNCTION memtest_probe(), memtest_noop();
