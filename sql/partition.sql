-- Managed partitions: partition_table, ensure_partition, partitions,
-- run_maintenance (premake, retention, clustering), privileges, hostile names.
SET TimeZone = 'UTC';
SET DateStyle = ISO;
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE pt_events (id int, ts timestamptz NOT NULL, sess text, note text DEFAULT 'n/a')
	PARTITION BY RANGE (ts);

-- Not managed yet: a clear error, not a partition.
SELECT pg_temp.err($$SELECT camperso.ensure_partition('pt_events', '2024-03-01')$$);

-- Registration checks its arguments.
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_events', 'sess')$$);
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_events', 'ts', '1 month 1 day')$$);
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_events', 'ts', '-1 day')$$);
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_events', 'ts', '1 day', -1)$$);
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_events', 'ts', '1 day', 1, '-1 day')$$);
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_events', 'ts', '1 day', 1, NULL, 'no_such')$$);
CREATE TABLE pt_plain (ts timestamptz);
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_plain', 'ts')$$);
CREATE TABLE pt_list (k int) PARTITION BY LIST (k);
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_list', 'k')$$);
CREATE TABLE pt_int (k int) PARTITION BY RANGE (k);
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_int', 'k')$$);
CREATE TABLE pt_def (ts timestamptz) PARTITION BY RANGE (ts);
CREATE TABLE pt_def_default PARTITION OF pt_def DEFAULT;
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_def', 'ts')$$);

-- Registered: today's partition and 3 ahead are made (UTC days), plus a
-- BRIN index on the time column and the index clustering uses.
SELECT camperso.partition_table('pt_events', 'ts', '1 day', 3, '30 days', 'sess') AS created;
SELECT count(*) AS premade,
	   min(range_start) = date_trunc('day', now(), 'UTC') AS starts_today,
	   bool_and(range_end - range_start = interval '1 day') AS whole_days
  FROM camperso.partitions('pt_events');
SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'pt_events'::regclass ORDER BY 1;
-- Registering again updates the settings and makes nothing twice.
SELECT camperso.partition_table('pt_events', 'ts', '1 day', 3, '30 days', 'sess') AS created_again;

-- On demand: the partition holding a value, at the UTC day's edges.
SELECT camperso.ensure_partition('pt_events', '2024-03-01 00:00:00+00');
SELECT camperso.ensure_partition('pt_events', '2024-03-01 23:59:59.999999+00');
SELECT camperso.ensure_partition('pt_events', '2024-03-01 18:00:00-08');   -- 2024-03-02 02:00 UTC
SELECT camperso.ensure_partition('pt_events', '2024-03-01 00:00:00+00') = 'pt_events_p20240301'::regclass AS same_again;
SELECT partition, lower_bound, upper_bound FROM camperso.partitions('pt_events') WHERE range_start < '2025-01-01';
-- The partition is a real one: rows route into it, defaults come from the parent.
INSERT INTO pt_events (id, ts, sess) VALUES (1, '2024-03-01 10:00+00', 's1');
SELECT tableoid::regclass, id, note FROM pt_events WHERE ts < '2025-01-01';
-- Bad values.
SELECT pg_temp.err($$SELECT camperso.ensure_partition('pt_events', NULL)$$);
SELECT pg_temp.err($$SELECT camperso.ensure_partition('pt_events', 'infinity')$$);
SELECT pg_temp.err($$SELECT camperso.ensure_partition('pt_events', 'not a time')$$);
SELECT pg_temp.err($$SELECT camperso.ensure_partition(NULL, '2024-01-01')$$);

-- Made in the current transaction: gone again on rollback.
BEGIN;
SELECT camperso.ensure_partition('pt_events', '2023-07-14 12:00+00');
INSERT INTO pt_events VALUES (2, '2023-07-14 12:00+00', 's2');
ROLLBACK;
SELECT count(*) AS after_rollback FROM camperso.partitions('pt_events') WHERE range_start < '2024-01-01';

-- A hand-made partition that does not fit the grid: the new one is clipped
-- to the free range instead of overlapping it.
CREATE TABLE pt_events_odd PARTITION OF pt_events FOR VALUES FROM ('2024-03-05 12:00+00') TO ('2024-03-06 06:00+00');
SELECT camperso.ensure_partition('pt_events', '2024-03-05 01:00+00');
SELECT camperso.ensure_partition('pt_events', '2024-03-06 07:00+00');
SELECT camperso.ensure_partition('pt_events', '2024-03-05 13:00+00');
SELECT partition, lower_bound, upper_bound FROM camperso.partitions('pt_events') WHERE range_start BETWEEN '2024-03-04' AND '2024-03-07';

-- Maintenance: rows of a closed day are clustered by session once, the
-- partitions past 30 days are dropped, the ones ahead kept.
SELECT camperso.ensure_partition('pt_events', (now() - interval '2 days')::text) AS closed_day \gset
INSERT INTO pt_events (id, ts, sess)
SELECT g, date_trunc('day', now(), 'UTC') - interval '2 days' + g * interval '1 second', 's' || (g % 5)
  FROM generate_series(1, 50) g;
SELECT parent, created, dropped, clustered, skipped FROM camperso.run_maintenance();
SELECT count(*) AS kept, min(range_start) > now() - interval '30 days' AS none_older_than_retention
  FROM camperso.partitions('pt_events');
SELECT bool_and(sess <= next_sess) AS clustered_by_session
  FROM (SELECT sess, lead(sess) OVER (ORDER BY ctid) AS next_sess FROM ONLY :"closed_day") x
 WHERE next_sess IS NOT NULL;
SELECT i.indisclustered FROM pg_index i WHERE i.indrelid = :'closed_day'::regclass AND i.indisclustered;
-- The second run has nothing to do.
SELECT parent, created, dropped, clustered, skipped FROM camperso.run_maintenance();
SELECT job, status, rows_out, details->'tables'->0->>'dropped' AS dropped FROM camperso.runs
 WHERE job = 'maintenance' ORDER BY started_at;

-- Date columns and month intervals; hostile names all the way through.
CREATE SCHEMA "pt; DROP TABLE pt_events; --";
CREATE TABLE "pt; DROP TABLE pt_events; --"."Tab ""1"" 'x'" ("day col" date, v int) PARTITION BY RANGE ("day col");
SELECT camperso.partition_table('"pt; DROP TABLE pt_events; --"."Tab ""1"" ''x''"', 'day col', '1 month', 0);
SELECT camperso.ensure_partition('"pt; DROP TABLE pt_events; --"."Tab ""1"" ''x''"', '1999-12-31');
SELECT camperso.ensure_partition('"pt; DROP TABLE pt_events; --"."Tab ""1"" ''x''"', '2000-01-01');
SELECT pg_temp.err($$SELECT camperso.partition_table('"pt; DROP TABLE pt_events; --"."Tab ""1"" ''x''"', 'day col', '12 hours')$$);
SELECT lower_bound, upper_bound FROM camperso.partitions('"pt; DROP TABLE pt_events; --"."Tab ""1"" ''x''"') WHERE range_start < '2001-01-01';
SELECT count(*) AS pt_events_still_there FROM pt_events;
-- A long parent name still gives distinct partition names within NAMEDATALEN.
CREATE TABLE "a_very_long_table_name_that_fills_almost_all_of_namedatalen_xyz" (ts timestamp) PARTITION BY RANGE (ts);
SELECT camperso.partition_table('"a_very_long_table_name_that_fills_almost_all_of_namedatalen_xyz"', 'ts', '6 hours', 0);
SELECT camperso.ensure_partition('"a_very_long_table_name_that_fills_almost_all_of_namedatalen_xyz"', '2024-05-05 13:00');
SELECT camperso.ensure_partition('"a_very_long_table_name_that_fills_almost_all_of_namedatalen_xyz"', '2024-05-05 19:00');

-- Privileges: a writer (INSERT on the parent) gets its partition made, owned
-- by the table owner; a reader does not; only the owner registers a table.
CREATE ROLE pt_writer;
CREATE ROLE pt_reader;
GRANT USAGE ON SCHEMA camperso TO pt_writer, pt_reader;
-- PUBLIC may execute no camperso function (security stage): grant what is tested.
GRANT EXECUTE ON FUNCTION camperso.ensure_partition(regclass, text), camperso.partition_table(regclass, text, interval, integer, interval, text) TO pt_writer, pt_reader;
GRANT INSERT ON pt_events TO pt_writer;
GRANT SELECT ON pt_events TO pt_reader;
SET ROLE pt_writer;
SELECT camperso.ensure_partition('pt_events', '2024-04-01');
SELECT pg_temp.err($$SELECT camperso.partition_table('pt_events', 'ts')$$);
RESET ROLE;
SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = 'pt_events_p20240401'::regclass;
SET ROLE pt_reader;
SELECT pg_temp.err($$SELECT camperso.ensure_partition('pt_events', '2024-04-02')$$);
RESET ROLE;
CREATE ROLE pt_admin IN ROLE camperso_admin;
CREATE TABLE pt_other (ts timestamptz) PARTITION BY RANGE (ts);
SET ROLE pt_admin;
SELECT pg_temp.err($$INSERT INTO camperso.partition_config (parent, part_column, part_interval, premake, retention)
					 VALUES ('pt_other', 'ts', '1 day', 0, '1 day')$$);
RESET ROLE;

DROP TABLE pt_events, pt_plain, pt_list, pt_int, pt_def, pt_other,
	"a_very_long_table_name_that_fills_almost_all_of_namedatalen_xyz";
DROP SCHEMA "pt; DROP TABLE pt_events; --" CASCADE;
-- Dropped tables leave the configuration at the next maintenance.
SELECT count(*) AS registered_before FROM camperso.partition_config;
SELECT count(*) AS maintained FROM camperso.run_maintenance();
SELECT count(*) AS registered_after FROM camperso.partition_config;
REVOKE USAGE ON SCHEMA camperso FROM pt_writer, pt_reader;
REVOKE EXECUTE ON FUNCTION camperso.ensure_partition(regclass, text), camperso.partition_table(regclass, text, interval, integer, interval, text) FROM pt_writer, pt_reader;
DROP ROLE pt_writer;
DROP ROLE pt_reader;
DROP ROLE pt_admin;
