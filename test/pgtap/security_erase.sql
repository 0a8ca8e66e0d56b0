-- pgTAP: camperso.forget_user erases a user from every layer (staging and
-- its _raw, quarantine, every SCD2 version, facts, sessions, rollups), by
-- clear id and by pseudonym under every key version, leaves no trace, is
-- idempotent, and audits without the id.
BEGIN;
CREATE EXTENSION IF NOT EXISTS camperso;
SELECT plan(18);

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

-- Every row of every user table (and of camperso's) that mentions one of
-- needles: in any column as text, or inside any bytea (decrypted when it is
-- an envelope). Returns "relation: count" lines.
CREATE FUNCTION pg_temp.traces(needles text[]) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
	r record;
	n bigint;
	cond text;
BEGIN
	FOR r IN
		SELECT c.oid::regclass AS rel,
			   (SELECT string_agg(format('OR camperso.payload_mentions(t.%I, NULL, $1) OR position(convert_to($2, ''UTF8'') IN coalesce(t.%I, '''')) > 0',
										 a.attname, a.attname), ' ')
				  FROM pg_attribute a
				 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'bytea'::regtype) AS bytea_cond,
			   (SELECT string_agg(format('OR (t.%I ~ ''^\\x43504501'' AND camperso.payload_mentions(t.%I::bytea, true, $1))',
										 a.attname, a.attname), ' ')
				  FROM pg_attribute a
				 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'text'::regtype) AS text_cond
		  FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
		 WHERE c.relkind IN ('r', 'm') AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
		   AND ns.nspname NOT LIKE 'pg_temp%' AND ns.nspname NOT LIKE 'pg_toast_temp%'
		   AND c.oid <> 'camperso.keys'::regclass
	LOOP
		cond := format('EXISTS (SELECT 1 FROM unnest($1) x WHERE strpos(row_to_json(t)::text, x) > 0) %s %s',
					   coalesce(r.bytea_cond, ''), coalesce(r.text_cond, ''));
		EXECUTE format('SELECT count(*) FROM %s t WHERE %s', r.rel, cond) INTO n USING needles, needles[1];
		IF n > 0 THEN
			RETURN NEXT r.rel::text || ': ' || n;
		END IF;
	END LOOP;
END
$$;

-- The model: staging fed by a source that pseudonymises user_id at ingest,
-- a user dimension with SCD2 history, facts and sessions by surrogate key,
-- a rollup.
CREATE SCHEMA sec_e;
CREATE TABLE sec_e.events (event_id uuid, user_id text, app_id text, ip text, ts timestamptz, _raw bytea);
CREATE TABLE sec_e.user_updates (user_id text, email text, plan text, updated_at timestamptz, _raw bytea);
CREATE TABLE sec_e.dim_user (dim_user_sk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id text, email text,
							 plan text, valid_from timestamptz, valid_to timestamptz, is_current bool);
INSERT INTO sec_e.dim_user (dim_user_sk, user_id, plan, valid_from, valid_to, is_current) OVERRIDING SYSTEM VALUE
	VALUES (-1, NULL, 'unknown', '-infinity', 'infinity', true);		-- the unknown member
CREATE TABLE sec_e.fact_clicks (event_id uuid, dim_user_sk bigint NOT NULL REFERENCES sec_e.dim_user, app_id text,
								ts timestamptz NOT NULL) PARTITION BY RANGE (ts);
CREATE TABLE sec_e.fact_clicks_p1 PARTITION OF sec_e.fact_clicks FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE sec_e.fact_sessions (session_id text, user_sk bigint, app_id text, clicks int);
CREATE MATERIALIZED VIEW sec_e.rollup_users AS
	SELECT app_id, count(DISTINCT dim_user_sk) AS users, count(*) AS clicks FROM sec_e.fact_clicks GROUP BY app_id;
INSERT INTO camperso.sources (name, brokers, topic, target, options) VALUES
	('sec_e_events', 'x:1', 'clicks', 'sec_e.events', '{"pii": {"user_id": "pseudonymize", "ip": "truncate"}}'),
	('sec_e_users', 'x:1', 'users', 'sec_e.user_updates', '{"pii": {"user_id": "pseudonymize", "email": "encrypt"}}');
SELECT camperso.secure_schema('sec_e', ARRAY['events', 'user_updates']);

-- Load two batches under key 1 (the user changes plan: two SCD2 versions),
-- rotate, load a third under key 2 (a third version, under a new pseudonym).
CREATE FUNCTION pg_temp.load(batch int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM camperso.ingest_batch('sec_e_events', ARRAY[
		convert_to(format('{"event_id":"%s","user_id":"user-7","app_id":"shop","ip":"10.0.0.7","ts":"2024-01-0%sT10:00:00Z"}',
						  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd38' || lpad((batch * 10 + 1)::text, 4, '0'), batch), 'UTF8'),
		convert_to(format('{"event_id":"%s","user_id":"user-8","app_id":"shop","ip":"10.0.0.8","ts":"2024-01-0%sT11:00:00Z"}',
						  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd38' || lpad((batch * 10 + 2)::text, 4, '0'), batch), 'UTF8'),
		convert_to('{"user_id":"user-7","note":"no event id, broken', 'UTF8'),
		convert_to(format('{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd38%s","user_id":"user-7","app_id":"shop","ip":"nowhere"}',
						  lpad((batch * 10 + 3)::text, 4, '0')), 'UTF8')]);
	PERFORM camperso.ingest_batch('sec_e_users', ARRAY[
		convert_to(format('{"user_id":"user-7","email":"seven@example.com","plan":"plan-%s","updated_at":"2024-01-0%sT00:00:00Z"}', batch, batch), 'UTF8'),
		convert_to(format('{"user_id":"user-8","email":"eight@example.com","plan":"free","updated_at":"2024-01-0%sT00:00:00Z"}', batch), 'UTF8')]);
	-- the model load: a new dimension version per plan change (this batch's
	-- updates), facts, sessions
	CREATE TEMP TABLE batch_updates ON COMMIT DROP AS
		SELECT * FROM sec_e.user_updates u WHERE u.updated_at = format('2024-01-0%s', batch)::timestamptz;
	UPDATE sec_e.dim_user d SET valid_to = u.updated_at, is_current = false
	  FROM batch_updates u
	 WHERE d.user_id = u.user_id AND d.is_current AND d.plan <> u.plan;
	INSERT INTO sec_e.dim_user (user_id, email, plan, valid_from, valid_to, is_current)
	SELECT u.user_id, camperso.pseudonymize(convert_from(camperso.decrypt(u.email::bytea), 'UTF8')), u.plan, u.updated_at, 'infinity', true
	  FROM batch_updates u
	 WHERE NOT EXISTS (SELECT 1 FROM sec_e.dim_user d WHERE d.user_id = u.user_id AND d.is_current);
	DROP TABLE batch_updates;
	INSERT INTO sec_e.fact_clicks
	SELECT e.event_id, coalesce(d.dim_user_sk, -1), e.app_id, e.ts
	  FROM sec_e.events e LEFT JOIN sec_e.dim_user d ON d.user_id = e.user_id AND d.is_current
	 WHERE NOT EXISTS (SELECT 1 FROM sec_e.fact_clicks f WHERE f.event_id = e.event_id);
	INSERT INTO sec_e.fact_sessions
	SELECT 's' || batch || '-' || left(d.user_id, 8), d.dim_user_sk, 'shop', 1
	  FROM sec_e.dim_user d WHERE d.is_current AND d.user_id IS NOT NULL;
	REFRESH MATERIALIZED VIEW sec_e.rollup_users;
END
$$;
SELECT pg_temp.load(1);
SELECT pg_temp.load(2);
SELECT camperso.rotate_key() AS rotated \gset
SELECT pg_temp.load(3);

CREATE TEMP TABLE needles AS
	SELECT ARRAY['user-7'] || camperso.pseudonyms('user-7') || ARRAY[camperso.pseudonymize('seven@example.com', 1),
																	  camperso.pseudonymize('seven@example.com', 2),
																	  'seven@example.com'] AS n;
SELECT set_eq($$SELECT split_part(t, ':', 1) FROM pg_temp.traces((SELECT n FROM needles)) t$$,
			  ARRAY['camperso.quarantine', 'sec_e.dim_user', 'sec_e.events', 'sec_e.user_updates'],
			  'before: the id or a pseudonym is in staging, the quarantine and the dimension (facts and sessions hold its keys)');
SELECT is(array_length(camperso.pseudonyms('user-7'), 1), 2, 'the user has a pseudonym under each of two key versions');
SELECT is((SELECT count(DISTINCT user_id) FROM sec_e.events WHERE user_id = ANY (camperso.pseudonyms('user-7'))), 2::bigint,
		  'and staging holds both');
SELECT is((SELECT count(*) FROM sec_e.dim_user WHERE user_id = ANY (camperso.pseudonyms('user-7'))), 3::bigint,
		  'the dimension holds three SCD2 versions of the user');
SELECT is((SELECT count(*) FROM camperso.quarantine WHERE source = 'sec_e_events' AND payload_encrypted), 6::bigint,
		  'six quarantined messages, encrypted');

-- Who may erase.
CREATE ROLE sec_e_analyst IN ROLE camperso_analyst;
CREATE ROLE sec_e_admin IN ROLE camperso_admin;
SELECT is(pg_temp.as_role('sec_e_analyst', $$SELECT count(*)::text FROM camperso.forget_user('user-7')$$), '42501', 'analysts cannot erase');
SELECT is(pg_temp.as_role('sec_e_admin', $$SELECT count(*)::text FROM camperso.erasure_log$$), '0', 'admins read the (empty) audit log');

-- Erase, as an admin.
CREATE TEMP TABLE erased AS SELECT * FROM camperso.forget_user('user-7');
SELECT results_eq($$SELECT relation, removed FROM erased ORDER BY relation$$,
				  $$VALUES ('camperso.quarantine', 6::bigint), ('sec_e.dim_user', 3), ('sec_e.events', 3),
						   ('sec_e.fact_clicks', 3), ('sec_e.fact_sessions', 4), ('sec_e.rollup_users', NULL),
						   ('sec_e.user_updates', 3)$$,
				  'forget_user reports rows removed per relation (NULL: recomputed)');
SELECT is_empty($$SELECT * FROM pg_temp.traces((SELECT n FROM needles))$$,
				'after: no table holds the id, its pseudonyms or its email, in any column or decrypted payload');
SELECT is((SELECT clicks FROM sec_e.rollup_users WHERE app_id = 'shop'), 3::bigint, 'the rollup is recomputed without the user');
SELECT is((SELECT count(*) FROM sec_e.dim_user WHERE user_id = camperso.pseudonymize('user-8', 2)), 1::bigint, 'other users stay');
SELECT is((SELECT count(*) FROM sec_e.dim_user WHERE dim_user_sk = -1), 1::bigint, 'the unknown member stays');
SELECT is((SELECT count(*) FROM camperso.quarantine WHERE source = 'sec_e_events'), 0::bigint,
		  'the quarantine had only user-7 messages (found inside envelopes, also malformed ones)');

-- The audit row: who and when, never the id.
SELECT is((SELECT count(*) FROM camperso.erasure_log), 1::bigint, 'one audit row');
SELECT ok((SELECT erased_by = session_user AND rows_removed = 22 FROM camperso.erasure_log), 'it records who and how many rows');
SELECT is_empty($$SELECT 1 FROM camperso.erasure_log l, needles WHERE EXISTS (SELECT 1 FROM unnest(n) x WHERE strpos(row_to_json(l)::text, x) > 0)$$,
				'it does not hold the id or a pseudonym');

-- Idempotent; an admin may erase.
SELECT is(pg_temp.as_role('sec_e_admin', $$SELECT sum(removed)::text FROM camperso.forget_user('user-7')$$), '0',
		  'a second erasure, by an admin, removes nothing');
SELECT is((SELECT erased_as::text FROM camperso.erasure_log ORDER BY id DESC LIMIT 1), 'sec_e_admin', 'the audit names the role that erased');

SELECT * FROM finish();
ROLLBACK;
