-- pgTAP: security over the real clickstream model. create_clickstream_model
-- secures its schema; sources pseudonymise ids at ingest; after load_model
-- analysts see their apps' facts and sessions only, never staging, the
-- load's scratch tables or partitions; forget_user erases a user from
-- staging, quarantine, every dim_user version, facts and sessions.
BEGIN;
CREATE EXTENSION IF NOT EXISTS camperso;
SET LOCAL TimeZone = 'UTC';
SELECT plan(23);

CREATE FUNCTION pg_temp.as_role(role name, sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', role);
	BEGIN
		EXECUTE sql INTO result;
	EXCEPTION WHEN OTHERS THEN
		result := SQLSTATE;
	END;
	RESET ROLE;
	RETURN result;
END
$$;

SELECT lives_ok($$SELECT camperso.create_clickstream_model('sec_cs', validate => false)$$, 'the model is created, and secured');
INSERT INTO camperso.sources (name, brokers, topic, target, options) VALUES
	('sec_cs_clicks', 'x:1', 'clicks', 'sec_cs.events', '{"pii": {"user_id": "pseudonymize", "ip": "truncate"}}'),
	('sec_cs_users', 'x:1', 'users', 'sec_cs.user_updates', '{"pii": {"user_id": "pseudonymize", "email": "pseudonymize"}}');

CREATE FUNCTION pg_temp.click(n int, usr text, app text, ts text) RETURNS bytea LANGUAGE sql AS $$
	SELECT convert_to(json_build_object('event_id', '00000000-0000-0000-0000-' || lpad(n::text, 12, '0'), 'user_id', usr,
		'session_id', 's-' || usr, 'app_id', app, 'event_type', 'page_view', 'page_url', 'https://' || app || '.example.com/p' || n,
		'user_agent', 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0', 'ip', '198.51.100.' || n, 'country', 'FR',
		'ts', ts, 'props', json_build_object('n', n))::text, 'UTF8')
$$;
SELECT ok((camperso.ingest_batch('sec_cs_users', ARRAY[
	convert_to('{"user_id":"u-alice","country":"FR","plan":"free","email":"alice@example.com","updated_at":"2024-03-01T00:00:00Z"}', 'UTF8'),
	convert_to('{"user_id":"u-alice","country":"FR","plan":"pro","email":"alice@example.com","updated_at":"2024-03-02T12:00:00Z"}', 'UTF8'),
	convert_to('{"user_id":"u-bob","country":"DE","plan":"free","email":"bob@example.com","updated_at":"2024-03-01T00:00:00Z"}', 'UTF8')])).landed = 3,
		  'three user updates landed');
SELECT ok((camperso.ingest_batch('sec_cs_clicks', ARRAY[
	pg_temp.click(1, 'u-alice', 'shop', '2024-03-02T10:00:00Z'),
	pg_temp.click(2, 'u-alice', 'shop', '2024-03-02T10:05:00Z'),
	pg_temp.click(3, 'u-alice', 'blog', '2024-03-03T09:00:00Z'),
	pg_temp.click(4, 'u-bob', 'shop', '2024-03-02T11:00:00Z'),
	pg_temp.click(5, 'u-bob', 'blog', '2024-03-03T11:00:00Z'),
	convert_to('{"event_id":"x","user_id":"u-alice","app_id":"shop"', 'UTF8')])).quarantined = 1,
		  'five clicks landed, a broken one quarantined');
SELECT lives_ok($$SELECT camperso.load_model('sec_cs')$$, 'the model loads');

SELECT is((SELECT count(*) FROM sec_cs.fact_clicks), 5::bigint, 'five facts loaded');
SELECT is((SELECT count(*) FROM sec_cs.dim_user WHERE user_id = camperso.pseudonymize('u-alice')), 2::bigint,
		  'u-alice has two SCD2 versions, under her pseudonym');

CREATE ROLE sec_cs_an IN ROLE camperso_analyst;
CREATE ROLE sec_cs_pii IN ROLE camperso_pii_reader;
SELECT camperso.grant_app('sec_cs_an', 'shop');
SELECT camperso.grant_app('sec_cs_pii', 'shop');

SELECT is(pg_temp.as_role('sec_cs_an', $$SELECT string_agg(DISTINCT app_id, ',') || ':' || count(*) FROM sec_cs.fact_clicks$$),
		  'shop:3', 'analyst: facts of its app only');
SELECT is(pg_temp.as_role('sec_cs_an', $$SELECT string_agg(DISTINCT app_id, ',') FROM sec_cs.fact_sessions$$),
		  'shop', 'analyst: sessions of its app only');
SELECT is(pg_temp.as_role('sec_cs_an', $$SELECT count(*)::text FROM sec_cs.fact_clicks f JOIN sec_cs.dim_user u ON u.dim_user_sk = f.user_sk
												 JOIN sec_cs.dim_page p ON p.dim_page_sk = f.page_sk WHERE u.plan IS NOT NULL$$),
		  '3', 'analyst: joins facts to dimensions');
SELECT is(pg_temp.as_role('sec_cs_an', $$SELECT count(*)::text FROM sec_cs.dim_user WHERE email ~ '^[0-9a-f]{64}$'$$),
		  '3', 'analyst: dim_user emails are pseudonyms (kept, not masked again)');
SELECT is(pg_temp.as_role('sec_cs_an', 'SELECT count(*)::text FROM sec_cs.events'), '42501', 'analyst: no staging events');
SELECT is(pg_temp.as_role('sec_cs_an', 'SELECT count(*)::text FROM sec_cs.user_updates'), '42501', 'analyst: no staging user updates');
SELECT is(pg_temp.as_role('sec_cs_an', 'SELECT count(*)::text FROM sec_cs._load_events'), '42501', 'analyst: no load scratch tables');
SELECT is(pg_temp.as_role('sec_cs_pii', 'SELECT count(*)::text FROM sec_cs._load_new'), '42501', 'pii reader: no load scratch tables either');
SELECT is(pg_temp.as_role('sec_cs_an',
		  format('SELECT count(*)::text FROM %s', (SELECT partition FROM camperso.partitions('sec_cs.fact_clicks') LIMIT 1))),
		  '42501', 'analyst: no fact partition directly');
SELECT is(pg_temp.as_role('sec_cs_pii', $$SELECT string_agg(DISTINCT app_id, ',') FROM sec_cs.events$$), 'shop', 'pii reader: staging of its app');

-- Erasure across the model.
CREATE TEMP TABLE erased AS SELECT * FROM camperso.forget_user('u-alice');
SELECT results_eq($$SELECT relation, removed FROM erased WHERE removed > 0 ORDER BY relation$$,
				  $$VALUES ('camperso.quarantine', 1::bigint), ('sec_cs._load_events', 3::bigint), ('sec_cs._load_new', 3::bigint),
						   ('sec_cs._load_sessions', 2::bigint), ('sec_cs._load_users', 2::bigint), ('sec_cs.dim_user', 2::bigint),
						   ('sec_cs.events', 3::bigint), ('sec_cs.fact_clicks', 3::bigint), ('sec_cs.fact_sessions', 2::bigint),
						   ('sec_cs.user_updates', 2::bigint)$$,
				  'forget_user removes the user from staging, the load''s scratch copies, quarantine, every dim_user version, facts and sessions');
SELECT is_empty($$
	SELECT t.table_schema || '.' || t.table_name
	  FROM information_schema.tables t
	 WHERE t.table_schema IN ('sec_cs', 'camperso') AND t.table_type = 'BASE TABLE' AND t.table_name <> 'keys'
	   AND (xpath('/row/c/text()', query_to_xml(format(
			'SELECT count(*) AS c FROM %I.%I x WHERE strpos(row_to_json(x)::text, %L) > 0 OR strpos(row_to_json(x)::text, %L) > 0
			 OR strpos(row_to_json(x)::text, %L) > 0', t.table_schema, t.table_name, 'u-alice', camperso.pseudonymize('u-alice'),
			camperso.pseudonymize('alice@example.com')), false, true, '')))[1]::text::int > 0
$$, 'no row of the model or of camperso holds u-alice, her pseudonym or her email''s');
SELECT is((SELECT count(*) FROM camperso.quarantine q
			WHERE camperso.payload_mentions(q.payload, coalesce(q.payload_encrypted, false), camperso.pseudonyms('u-alice') || '{u-alice}')),
		  0::bigint, 'nor does any quarantined payload, decrypted');
SELECT is((SELECT count(*) FROM sec_cs.fact_clicks), 2::bigint, 'u-bob''s facts stay');
SELECT is((SELECT count(*) FROM sec_cs.dim_user WHERE dim_user_sk = -1), 1::bigint, 'the unknown member stays');
SELECT is((SELECT sum(removed) FROM camperso.forget_user('u-alice')), 0::numeric, 'a second erasure removes nothing');
SELECT lives_ok($$SELECT camperso.load_model('sec_cs')$$, 'the model loads on after an erasure');

SELECT * FROM finish();
ROLLBACK;
