-- Source admin functions: bad arguments get a clear error with an SQLSTATE
-- and change nothing; only camperso_admin (and superusers) may call them.
-- The launcher watches database postgres, so nothing here starts a worker.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE TABLE src_target (user_id text, n int, _partition int, _offset bigint);

-- a good source: stopped until started, owned by its creator
SELECT camperso.create_source('clicks', '127.0.0.1:9092', 'clicks', 'src_target',
	options => '{"batch_size": 500, "batch_ms": 20, "group_id": "g1", "start": "latest",
	             "workers": 2, "pii": {"user_id": "pseudonymize"}, "mapping": {"n": "$.count"},
	             "dlq_topic": "clicks.dlq", "max_message_bytes": 4096,
	             "kafka.fetch.wait.max.ms": 50, "kafka.check.crcs": true,
	             "kafka.client.rack": "r1"}');
SELECT name, brokers, topic, target, format, ruleset, options->'batch_size' AS batch_size,
       enabled, owner = current_user AS owned_by_caller
FROM camperso.sources;

-- every bad argument: SQLSTATE and message
SELECT pg_temp.try(sql) FROM (VALUES
	($$SELECT camperso.create_source('clicks', '127.0.0.1:9092', 'clicks', 'src_target')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'no_such_table')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'pg_class')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'pg_stat_activity')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', format => 'avro')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"batchsize": 5}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '[1]')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"batch_size": 0}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"batch_size": "100"}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"batch_ms": 1.5}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"workers": 65}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"max_message_bytes": 1e12}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"start": "middle"}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"group_id": ""}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"dlq_topic": "bad topic"}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"dlq_topic": "clicks"}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"pii": "user_id"}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"pii": {"user_id": "shred"}}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"raw": "sometimes"}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"mapping": {"nope": "$.a"}}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"mapping": {"n": 1}}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"kafka.fetch.wait.max.msec": 5}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"kafka.fetch.wait.max.ms": "soon"}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"kafka.enable.auto.commit": true}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"kafka.group.id": "g"}')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"kafka.debug": {"a": 1}}')$$),
	($$SELECT camperso.create_source('bad name!', '127.0.0.1:9092', 'clicks', 'src_target')$$),
	($$SELECT camperso.create_source(repeat('n', 64), '127.0.0.1:9092', 'clicks', 'src_target')$$),
	($$SELECT camperso.create_source('x', ' ', 'clicks', 'src_target')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'a/b', 'src_target')$$),
	($$SELECT camperso.create_source(NULL, '127.0.0.1:9092', 'clicks', 'src_target')$$),
	($$SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', NULL)$$),
	($$SELECT camperso.start_source('nope')$$),
	($$SELECT camperso.stop_source('nope')$$),
	($$SELECT camperso.drop_source('nope')$$),
	($$SELECT camperso.reset_offsets('nope')$$),
	($$SELECT camperso.reset_offsets('clicks', -1, '5')$$),
	($$SELECT camperso.reset_offsets('clicks', 0, 'soon')$$),
	($$SELECT camperso.reset_offsets('clicks', 0, '-5')$$)
) AS t(sql);

-- errors come with a detail or hint where one helps
\set VERBOSITY default
SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"kafka.fetch.wait.max.ms": "soon"}');
SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"batchsize": 5}');
SELECT camperso.create_source('x', '127.0.0.1:9092', 'clicks', 'src_target', options => '{"kafka.enable.auto.commit": true}');

-- nothing changed
SELECT count(*) AS sources FROM camperso.sources;
SELECT count(*) AS offsets FROM camperso.source_offsets;

-- a numeric offset for one partition needs no broker
SELECT camperso.reset_offsets('clicks', 3, '1234');
SELECT camperso.reset_offsets('clicks', 3, '99');
SELECT partition, next_offset FROM camperso.source_offsets WHERE source = 'clicks';

-- start/stop flip enabled; a rolled-back start changes nothing
SELECT camperso.start_source('clicks');
SELECT enabled FROM camperso.sources WHERE name = 'clicks';
BEGIN;
SELECT camperso.stop_source('clicks');
ROLLBACK;
SELECT enabled FROM camperso.sources WHERE name = 'clicks';
SELECT camperso.stop_source('clicks');
SELECT enabled FROM camperso.sources WHERE name = 'clicks';

-- privileges: PUBLIC may not manage sources; camperso_admin may, for
-- targets it may insert into, and owns what it creates
CREATE ROLE src_nobody;
GRANT USAGE ON SCHEMA camperso TO src_nobody;
CREATE ROLE src_admin IN ROLE camperso_admin;
GRANT INSERT ON src_target TO src_admin;
CREATE TABLE src_other (n int);
SET ROLE src_nobody;
SELECT pg_temp.try($$SELECT camperso.create_source('y', 'b:1', 't', 'src_target')$$);
SELECT pg_temp.try($$SELECT camperso.stop_source('clicks')$$);
SELECT pg_temp.try($$SELECT camperso.drop_source('clicks')$$);
SELECT pg_temp.try($$SELECT camperso.reset_offsets('clicks', 0, '1')$$);
SELECT pg_temp.try($$SELECT * FROM camperso.sources$$);
SELECT pg_temp.try($$SELECT * FROM camperso.stat_sources$$);
SELECT pg_temp.try($$SELECT camperso.stat_reset()$$);
RESET ROLE;
SET ROLE src_admin;
SELECT pg_temp.try($$SELECT camperso.create_source('y', 'b:1', 't', 'src_other')$$);
-- whatever the grants on the catalog, a source written directly is owned by
-- its writer, so no admin can make a worker act as another role
SELECT pg_temp.try($$INSERT INTO camperso.sources (name, brokers, topic, target, owner) VALUES ('z', 'b:1', 't', 'src_other', 'postgres')$$);
SELECT pg_temp.try($$UPDATE camperso.sources SET owner = 'postgres' WHERE name = 'z'$$);
SELECT name, owner FROM camperso.sources WHERE name = 'z';
SELECT pg_temp.try($$DELETE FROM camperso.sources WHERE name = 'z'$$);
SELECT camperso.create_source('y', 'b:1', 't', 'src_target');
SELECT camperso.start_source('clicks');
SELECT camperso.stop_source('clicks');
SELECT name, owner FROM camperso.sources ORDER BY name;
SELECT count(*) >= 0 AS can_read_stats FROM camperso.stat_sources;
SELECT camperso.drop_source('y');
RESET ROLE;

-- drop removes the source and its offsets, not the target's rows
INSERT INTO src_target VALUES ('u', 1, 0, 0);
SELECT camperso.drop_source('clicks');
SELECT count(*) AS sources FROM camperso.sources;
SELECT count(*) AS offsets FROM camperso.source_offsets;
SELECT count(*) AS rows_kept FROM src_target;

DROP TABLE src_target, src_other;
REVOKE USAGE ON SCHEMA camperso FROM src_nobody;
DROP ROLE src_nobody;
DROP ROLE src_admin;
