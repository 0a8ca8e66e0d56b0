-- The clickstream model: create_clickstream_model, load_model (idempotent,
-- unknown members repaired, late changes re-keying facts, sessions at the
-- 30-minute edge, late events rebuilding sessions, partitions on demand in
-- the loading transaction, quarantine of what cannot be used), hostile
-- schema names, drop_clickstream_model.
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
-- ---- the schema -------------------------------------------------------------
SELECT camperso.create_clickstream_model('cs', validate => false);
-- Deterministic event ids: 00000000-0000-0000-0000-<n>.
CREATE FUNCTION pg_temp.eid(n int) RETURNS uuid LANGUAGE sql IMMUTABLE
AS $$ SELECT ('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION pg_temp.ev(n int, usr text, ts timestamptz, kind text DEFAULT 'page_view', page text DEFAULT '/home')
RETURNS void LANGUAGE sql AS $$
	INSERT INTO cs.events (event_id, user_id, session_id, app_id, event_type, page_url, user_agent, country, ts, props)
	VALUES (pg_temp.eid(n), usr, 's-' || usr, 'shop', kind, 'https://shop.example.com' || page,
			'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1',
			'FR', ts, '{}')
$$;
CREATE FUNCTION pg_temp.load(sch text DEFAULT 'cs') RETURNS TABLE (k text, v text) LANGUAGE sql AS $$
	SELECT key, value::text FROM jsonb_each(camperso.load_model(sch))
	 WHERE key IN ('events_read', 'events_rejected', 'events_duplicate', 'facts_inserted', 'facts_rekeyed',
				   'user_updates_read', 'sessions_replaced', 'sessions_written', 'sessions_rekeyed')
	 ORDER BY key
$$;
CREATE VIEW pg_temp.clicks AS
	SELECT right(f.event_id::text, 3) AS ev, f.event_ts, f.user_id, f.user_sk, u.plan, p.path, f.date_key
	  FROM cs.fact_clicks f JOIN cs.dim_user u ON u.dim_user_sk = f.user_sk JOIN cs.dim_page p ON p.dim_page_sk = f.page_sk
	 ORDER BY f.event_ts, f.event_id;
CREATE VIEW pg_temp.sessions AS
	SELECT s.user_id, s.session_start, s.session_end, s.duration_seconds, s.event_count, s.page_count, s.is_bounce,
		   s.user_sk, pe.path AS entry, px.path AS exit, right(s.entry_event_id::text, 3) AS entry_ev,
		   right(s.exit_event_id::text, 3) AS exit_ev,
		   s.session_key = md5(s.user_id || '|' || (extract(epoch FROM s.session_start) * 1000000)::bigint::text)::uuid AS key_ok
	  FROM cs.fact_sessions s JOIN cs.dim_page pe ON pe.dim_page_sk = s.entry_page_sk
	  JOIN cs.dim_page px ON px.dim_page_sk = s.exit_page_sk
	 ORDER BY s.user_id, s.session_start;

SELECT c.relname, c.relkind, c.relpersistence
  FROM pg_class c WHERE c.relnamespace = 'cs'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
 ORDER BY c.relname;
SELECT conrelid::regclass AS rel, contype, pg_get_constraintdef(oid) AS def
  FROM pg_constraint WHERE connamespace = 'cs'::regnamespace AND contype IN ('p', 'f', 'u')
   AND conrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'cs'::regnamespace AND NOT relispartition)
 ORDER BY 1, 2, 3;
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) AS def FROM pg_index
 WHERE indrelid IN ('cs.fact_clicks'::regclass, 'cs.fact_sessions'::regclass, 'cs.events'::regclass,
					'cs.dim_page'::regclass, 'cs.dim_device'::regclass, 'cs.dim_user'::regclass)
   AND NOT indisprimary ORDER BY 1;
SELECT parent, part_column, part_interval, premake, retention, cluster_by FROM camperso.partition_config ORDER BY parent::text;
SELECT parent::text, count(*) >= 4 AS premade FROM camperso.partition_config pc, camperso.partitions(pc.parent) GROUP BY 1 ORDER BY 1;
SELECT dim, natural_key, scd2 FROM camperso.dimensions ORDER BY dim::text;
SELECT name, command, run_every, enabled FROM camperso.jobs WHERE name LIKE 'load_model:%';
SELECT dim_user_sk, user_id, valid_from, valid_to, is_current FROM cs.dim_user;
SELECT dim_page_sk, page_url, host, path FROM cs.dim_page;
SELECT count(*) > 700 AS calendar_filled, min(date_key) AS unknown_day FROM cs.dim_date;
-- One model per schema; bad arguments.
SELECT pg_temp.err($$SELECT camperso.create_clickstream_model('cs')$$);
SELECT pg_temp.err($$SELECT camperso.create_clickstream_model('cs2', lateness => '-1 day')$$);
SELECT pg_temp.err($$SELECT camperso.load_model('no_such_model')$$);
-- Nothing staged: nothing loaded, no run recorded.
SELECT * FROM pg_temp.load();
SELECT count(*) AS runs FROM camperso.runs WHERE job = 'load_model:cs';

-- ---- 1. a first load: a known user, an unknown one; sessions at the edge ----
INSERT INTO cs.user_updates (user_id, country, plan, email, updated_at)
VALUES ('u1', 'FR', 'free', 'u1@example.com', '2024-03-01 00:00');
-- u1: 10:00, 10:10, then 10:39:59.999999 (a gap of 29:59.999999: same
-- session), then 11:09:59.999999 (a gap of exactly 30 minutes: a new session).
SELECT pg_temp.ev(1, 'u1', '2024-03-10 10:00', 'page_view', '/home');
SELECT pg_temp.ev(2, 'u1', '2024-03-10 10:10', 'click', '/home');
SELECT pg_temp.ev(3, 'u1', '2024-03-10 10:39:59.999999', 'page_view', '/cart');
SELECT pg_temp.ev(4, 'u1', '2024-03-10 11:09:59.999999', 'page_view', '/checkout');
-- u2 is not known yet: an early-arriving fact.
SELECT pg_temp.ev(5, 'u2', '2024-03-10 12:00', 'page_view', '/promo');
SELECT * FROM pg_temp.load();
SELECT * FROM pg_temp.clicks;
SELECT * FROM pg_temp.sessions;
SELECT user_id, country, plan, email ~ '^[0-9a-f]{64}$' AS email_pseudonymised, email = camperso.pseudonymize('u1@example.com') AS same_pseudonym
  FROM cs.dim_user WHERE user_id IS NOT NULL;
SELECT browser, browser_version, os, device_class FROM cs.dim_device WHERE dim_device_sk > 0;
-- The days of the events join the calendar.
SELECT * FROM cs.dim_date WHERE date = '2024-03-10';
SELECT page_url, host, path FROM cs.dim_page WHERE dim_page_sk > 0 ORDER BY dim_page_sk;
SELECT camperso.lookup_sk('cs.dim_page', 'https://shop.example.com/cart', NULL) = (SELECT dim_page_sk FROM cs.dim_page WHERE path = '/cart') AS page_lookup,
	   camperso.lookup_sk('cs.dim_page', 'https://elsewhere.example.com/', NULL) AS unknown_page,
	   camperso.lookup_sk('cs.dim_user', 'u1', '2024-03-10 10:00') AS user_lookup;

-- ---- 2. idempotent: loading again loads nothing; a redelivered event is
-- skipped; a late redelivery too --------------------------------------------
SELECT * FROM pg_temp.load();
SELECT pg_temp.ev(2, 'u1', '2024-03-10 10:10', 'click', '/home');
SELECT pg_temp.ev(2, 'u1', '2024-03-10 10:10', 'click', '/home');
SELECT * FROM pg_temp.load();
SELECT count(*) AS facts, count(DISTINCT event_id) AS distinct_events FROM cs.fact_clicks;
SELECT count(*) AS sessions FROM cs.fact_sessions;

-- ---- 3. the unknown user arrives: its facts and sessions are repaired ------
INSERT INTO cs.user_updates (user_id, country, plan, email, updated_at)
VALUES ('u2', 'DE', 'pro', 'u2@example.com', '2024-03-11 00:00');
SELECT * FROM pg_temp.load();
SELECT * FROM pg_temp.clicks WHERE user_id = 'u2';
SELECT user_id, user_sk FROM pg_temp.sessions WHERE user_id = 'u2';

-- ---- 4. a late change of u1 (plan 'pro' from 10:30) splits its version: the
-- facts after 10:30 move to the new version, the earlier ones stay -----------
INSERT INTO cs.user_updates (user_id, country, plan, email, updated_at)
VALUES ('u1', 'FR', 'pro', 'u1@example.com', '2024-03-10 10:30');
SELECT * FROM pg_temp.load();
SELECT dim_user_sk, user_id, plan, valid_from, valid_to, is_current FROM cs.dim_user WHERE user_id = 'u1' ORDER BY valid_from;
SELECT * FROM pg_temp.clicks WHERE user_id = 'u1';
SELECT user_id, session_start, user_sk FROM pg_temp.sessions WHERE user_id = 'u1';

-- ---- 5. late events rebuild sessions: one at 10:55 bridges u1's two
-- sessions (gaps of 15 minutes and 14:59.999999); one at 09:45 moves the
-- start, the entry page and the key --------------------------------------------
SELECT pg_temp.ev(6, 'u1', '2024-03-10 10:55', 'scroll', '/cart');
SELECT * FROM pg_temp.load();
SELECT * FROM pg_temp.sessions WHERE user_id = 'u1';
SELECT pg_temp.ev(7, 'u1', '2024-03-10 09:45', 'page_view', '/landing');
SELECT * FROM pg_temp.load();
SELECT * FROM pg_temp.sessions WHERE user_id = 'u1';
-- A late event that starts a session of its own leaves the others alone.
SELECT pg_temp.ev(8, 'u1', '2024-03-10 08:00', 'page_view', '/early');
SELECT * FROM pg_temp.load();
SELECT * FROM pg_temp.sessions WHERE user_id = 'u1';
-- The sessions agree with the facts: every event in exactly one session.
SELECT count(*) AS events_outside_one_session FROM cs.fact_clicks f
 WHERE (SELECT count(*) FROM cs.fact_sessions s
		 WHERE s.user_id = f.user_id AND f.event_ts BETWEEN s.session_start AND s.session_end) <> 1;
SELECT sum(event_count) = (SELECT count(*) FROM cs.fact_clicks) AS counts_agree FROM cs.fact_sessions;

-- ---- 6. a partition for an unexpected day, made by the load in its own
-- transaction: rolled back with it, made again by the next load ---------------
SELECT pg_temp.ev(9, 'u3', '2024-03-11 23:30', 'page_view', '/night');
SELECT pg_temp.ev(10, 'u3', '2024-03-12 00:10', 'page_view', '/night');
SELECT count(*) AS partitions_before FROM camperso.partitions('cs.fact_clicks') WHERE range_start = '2024-03-12';
BEGIN;
SELECT * FROM pg_temp.load();
SELECT partition, lower_bound, upper_bound FROM camperso.partitions('cs.fact_clicks') WHERE range_start BETWEEN '2024-03-11' AND '2024-03-12';
SELECT tableoid::regclass, right(event_id::text, 3) AS ev FROM cs.fact_clicks WHERE user_id = 'u3' ORDER BY event_ts;
ROLLBACK;
SELECT count(*) AS partitions_after_rollback FROM camperso.partitions('cs.fact_clicks') WHERE range_start = '2024-03-12';
SELECT * FROM pg_temp.load();
SELECT tableoid::regclass, right(event_id::text, 3) AS ev FROM cs.fact_clicks WHERE user_id = 'u3' ORDER BY event_ts;
-- A session across midnight belongs to its start day.
SELECT user_id, session_start, session_end, event_count, tableoid::regclass FROM cs.fact_sessions WHERE user_id = 'u3';

-- ---- 7. what the model cannot use is quarantined with its reason ------------
-- The latest event loaded is 2024-03-12 00:10: with a lateness of 1 day, an
-- event of 2024-03-10 23:00 is too late; 2024-03-11 01:00 is not.
SELECT event_watermark FROM camperso.models WHERE schema_name = 'cs';
SELECT pg_temp.ev(11, 'u4', '2024-03-10 23:00');
SELECT pg_temp.ev(12, 'u4', '2024-03-11 01:00');
SELECT pg_temp.ev(13, repeat('x', 300), '2024-03-11 02:00');
INSERT INTO cs.events (event_id, user_id, event_type, ts) VALUES
	(NULL, 'u4', 'click', '2024-03-11 02:00'), (pg_temp.eid(14), NULL, 'click', '2024-03-11 02:00'),
	(pg_temp.eid(15), 'u4', 'click', NULL), (pg_temp.eid(16), 'u4', NULL, '2024-03-11 02:00'),
	(pg_temp.eid(17), 'u4', 'click', now() + interval '1 day'), (pg_temp.eid(18), 'u4', 'click', 'infinity');
INSERT INTO cs.user_updates (user_id, country, plan, updated_at) VALUES ('u4', 'IT', 'free', NULL), (NULL, 'IT', 'free', '2024-03-01');
SELECT * FROM pg_temp.load();
SELECT target, rule, field, reason, payload IS NOT NULL AS has_payload FROM camperso.quarantine WHERE target LIKE 'cs.%' ORDER BY id;
SELECT right(event_id::text, 3) AS ev FROM cs.fact_clicks WHERE user_id = 'u4';
-- Rows the model could not use stay in staging (the raw log).
SELECT count(*) AS staged_events FROM cs.events;

-- ---- 8. every load with input is a run with its row counts -------------------
SELECT status, rows_in, rows_out, inputs, outputs FROM camperso.runs WHERE job = 'load_model:cs' ORDER BY started_at;
SELECT count(*) AS successful_runs_with_details FROM camperso.runs
 WHERE job = 'load_model:cs' AND status = 'success' AND details ? 'facts_inserted';

-- ---- 8b. a new e-mail is type 1: every version of the user takes its
-- pseudonym, no version is opened ---------------------------------------------
SELECT count(*) AS u1_versions_before FROM cs.dim_user WHERE user_id = 'u1';
INSERT INTO cs.user_updates (user_id, country, plan, email, updated_at)
VALUES ('u1', 'FR', 'pro', 'u1.new@example.com', '2024-03-12 00:00');
SELECT k, v FROM pg_temp.load() WHERE k = 'user_updates_read';
SELECT count(*) AS u1_versions_after, bool_and(email = camperso.pseudonymize('u1.new@example.com')) AS all_new_pseudonym,
	   bool_and(email !~ '@') AS none_in_clear
  FROM cs.dim_user WHERE user_id = 'u1';

-- ---- 9. hostile schema names never break the dynamic SQL --------------------
SELECT camperso.create_clickstream_model('cs "x"; DROP SCHEMA cs CASCADE; --', validate => false);
INSERT INTO "cs ""x""; DROP SCHEMA cs CASCADE; --".events (event_id, user_id, event_type, page_url, ts)
VALUES (pg_temp.eid(100), 'o''brien"; --', 'page_view', 'https://x.example/a''b', '2024-03-10 10:00'),
	   (pg_temp.eid(101), 'o''brien"; --', 'click', 'https://x.example/a''b', '2024-03-10 10:20');
INSERT INTO "cs ""x""; DROP SCHEMA cs CASCADE; --".user_updates (user_id, plan, updated_at) VALUES ('o''brien"; --', 'pro', '2024-03-01');
SELECT * FROM pg_temp.load('cs "x"; DROP SCHEMA cs CASCADE; --');
SELECT user_id, event_count, session_start FROM "cs ""x""; DROP SCHEMA cs CASCADE; --".fact_sessions;
SELECT count(*) AS cs_still_there FROM cs.fact_clicks;
SELECT camperso.drop_clickstream_model('cs "x"; DROP SCHEMA cs CASCADE; --');
SELECT count(*) AS hostile_schema_gone FROM pg_namespace WHERE nspname LIKE 'cs "x"%';

-- ---- freshness: a model's relations are watched without registering them;
-- an SLA set on one applies to it, a new empty one is not yet breached
SELECT camperso.set_freshness_sla('cs.fact_sessions', '1 second');
SELECT name, newest_event_at IS NOT NULL AS has_events, last_load_at IS NOT NULL AS loaded,
	   sla, breached
  FROM camperso.stat_freshness WHERE kind = 'relation' AND name LIKE 'cs.%' ORDER BY name;
SELECT camperso.create_clickstream_model('cs_empty', validate => false);
SELECT name, newest_event_at, breached
  FROM camperso.stat_freshness WHERE kind = 'relation' AND name LIKE 'cs\_empty.%' ORDER BY name;
SELECT camperso.drop_clickstream_model('cs_empty');
SELECT count(*) AS cs_empty_watched FROM camperso.stat_freshness WHERE name LIKE 'cs\_empty.%';
DELETE FROM camperso.freshness_slas WHERE name = 'cs.fact_sessions';

-- ---- 10. dropping a model removes its tables, job and catalog entries --------
SELECT camperso.drop_clickstream_model('cs');
SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'cs') AS schemas,
	   (SELECT count(*) FROM camperso.models) AS models,
	   (SELECT count(*) FROM camperso.model_watermarks) AS watermarks,
	   (SELECT count(*) FROM camperso.jobs WHERE name LIKE 'load_model:%') AS jobs,
	   (SELECT count(*) FROM camperso.dimensions) AS dimensions,
	   (SELECT count(*) FROM camperso.partition_config) AS partitioned;
SELECT pg_temp.err($$SELECT camperso.drop_clickstream_model('cs')$$);
DELETE FROM camperso.quarantine WHERE target LIKE 'cs.%';
