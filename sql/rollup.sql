-- Live rollups and BI views of a clickstream model: kept equal to a
-- from-scratch aggregate of the facts through random loads, late events,
-- duplicates, re-keying, erasures and direct changes; hours roll up from
-- minutes; analysts read them through row-level security; every BI column
-- is described.
SET client_min_messages = warning;
\set SHOW_CONTEXT never

SELECT camperso.create_clickstream_model('ru', validate => false);
SELECT camperso.secure_schema('ru');
SELECT c.relname, c.relkind FROM pg_class c
 WHERE c.relnamespace = 'ru'::regnamespace AND (c.relname LIKE 'rollup%' OR c.relname LIKE '%traffic%'
	   OR c.relname IN ('clicks_wide', 'sessions'))
 ORDER BY 1;
SELECT tgrelid::regclass AS fact, tgname FROM pg_trigger
 WHERE tgrelid IN ('ru.fact_clicks'::regclass, 'ru.fact_sessions'::regclass) AND tgname LIKE 'rollup%' ORDER BY 1, 2;
SELECT schema_name, hll_schema IS NOT NULL AS has_hll FROM camperso.rollups WHERE schema_name = 'ru';

-- Random events: users u0..u79 on apps a0..a2 (and no app), 30 pages, four
-- event types, times spread over the last hours.
CREATE FUNCTION pg_temp.events(n int, max_age interval, min_age interval DEFAULT '0') RETURNS void LANGUAGE sql AS $$
	INSERT INTO ru.events (event_id, user_id, session_id, app_id, event_type, page_url, user_agent, country, ts, props)
	SELECT gen_random_uuid(), 'u' || floor(random() * 80)::int, 's',
		   (ARRAY['a0', 'a1', 'a2', NULL])[1 + floor(random() * 4)::int],
		   (ARRAY['page_view', 'page_view', 'click', 'scroll', 'purchase'])[1 + floor(random() * 5)::int],
		   'https://shop.example/p' || floor(random() * 30)::int, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0', 'FR',
		   now() - min_age - random() * (max_age - min_age), '{}'
	  FROM generate_series(1, n)
$$;
CREATE FUNCTION pg_temp.check(what text) RETURNS TABLE (step text, mismatches bigint, facts_match boolean, sessions_match boolean)
LANGUAGE sql AS $$
	SELECT what, (SELECT count(*) FROM camperso.rollup_check('ru')),
		   (SELECT coalesce(sum(events), 0) FROM ru.rollup_page_hour) = (SELECT count(*) FROM ru.fact_clicks)
		   AND (SELECT coalesce(sum(events), 0) FROM ru.rollup_event_minute) = (SELECT count(*) FROM ru.fact_clicks)
		   AND (SELECT coalesce(sum(events), 0) FROM ru.rollup_page_day) = (SELECT count(*) FROM ru.fact_clicks),
		   (SELECT coalesce(sum(sessions), 0) FROM ru.rollup_session_minute) = (SELECT count(*) FROM ru.fact_sessions)
		   AND (SELECT coalesce(sum(sessions), 0) FROM ru.rollup_session_day) = (SELECT count(*) FROM ru.fact_sessions)
$$;
SELECT setseed(0.42);

-- loads of fresh events
SELECT pg_temp.events(1500, '3 hours');
SELECT (camperso.load_model('ru') ->> 'facts_inserted')::int > 0 AS loaded;
SELECT * FROM pg_temp.check('first load');
SELECT pg_temp.events(700, '20 minutes');
SELECT (camperso.load_model('ru') ->> 'facts_inserted')::int > 0 AS loaded;
SELECT * FROM pg_temp.check('second load');
-- late events (hours behind, within the lateness window) rebuild sessions
SELECT pg_temp.events(400, '9 hours', '5 hours');
SELECT (camperso.load_model('ru') ->> 'facts_inserted')::int AS late_facts;
SELECT * FROM pg_temp.check('late events');
-- the same events again are skipped by the load
INSERT INTO ru.events SELECT * FROM ru.events WHERE ts > now() - interval '20 minutes';
SELECT (camperso.load_model('ru') ->> 'facts_inserted')::int AS duplicate_facts;
SELECT * FROM pg_temp.check('duplicates');
-- user changes re-key facts and sessions (UPDATE of user_sk only)
INSERT INTO ru.user_updates (user_id, country, plan, email, updated_at)
SELECT 'u' || i, 'DE', 'pro', 'u' || i || '@example.com', now() - interval '12 hours' FROM generate_series(0, 79) i;
INSERT INTO ru.user_updates (user_id, country, plan, email, updated_at)
SELECT 'u' || i, 'DE', 'enterprise', 'u' || i || '@example.com', now() - interval '1 hour' FROM generate_series(0, 9) i;
SELECT (camperso.load_model('ru') ->> 'facts_rekeyed')::int > 0 AS rekeyed;
SELECT * FROM pg_temp.check('re-keyed');
-- erasure of two users removes their events, sessions and their part of
-- the unique users
SELECT count(*) FILTER (WHERE user_id IN ('u3', 'u4')) > 0 AS present FROM ru.fact_clicks;
SELECT relation, removed > 0 AS removed FROM camperso.forget_user('u3')
 WHERE relation IN ('ru.fact_clicks', 'ru.fact_sessions') ORDER BY 1;
SELECT relation, removed > 0 AS removed FROM camperso.forget_user('u4')
 WHERE relation IN ('ru.fact_clicks', 'ru.fact_sessions') ORDER BY 1;
SELECT * FROM pg_temp.check('erasures');
-- direct changes: events moved to another app and minute, some deleted
UPDATE ru.fact_clicks SET app_id = 'a9', event_ts = event_ts + interval '90 seconds'
 WHERE user_id IN ('u10', 'u11') AND event_ts < now() - interval '1 hour';
DELETE FROM ru.fact_clicks WHERE user_id = 'u12' AND event_type = 'click';
UPDATE ru.fact_sessions SET is_bounce = NOT is_bounce WHERE user_id = 'u13';
SELECT * FROM pg_temp.check('direct changes');
-- more random loads
SELECT pg_temp.events(300, '2 hours'), pg_temp.events(100, '7 hours', '6 hours');
SELECT (camperso.load_model('ru') ->> 'facts_inserted')::int > 0 AS loaded;
SELECT * FROM pg_temp.check('mixed load');

-- Each load is a lineage run: START and COMPLETE, with rows written per
-- output (details.output_rows) and read per input.
SELECT count(*) FILTER (WHERE e ->> 'eventType' = 'START') AS starts,
	   count(*) FILTER (WHERE e ->> 'eventType' = 'COMPLETE') AS completes,
	   bool_and(e ->> 'eventType' = 'START'
				OR (SELECT (o #>> '{outputFacets,outputStatistics,rowCount}')::bigint
					  FROM jsonb_array_elements(e -> 'outputs') o WHERE o ->> 'name' LIKE '%.ru.fact_clicks')
				   = (r.details ->> 'facts_inserted')::bigint) AS fact_rows_match,
	   bool_and(e ->> 'eventType' = 'START'
				OR (SELECT (i #>> '{inputFacets,inputStatistics,rowCount}')::bigint
					  FROM jsonb_array_elements(e -> 'inputs') i WHERE i ->> 'name' LIKE '%.ru.events')
				   = (r.details ->> 'events_read')::bigint) AS input_rows_match,
	   bool_and(jsonb_array_length(e #> '{outputs,0,facets,schema,fields}') > 0) AS schema_facets
  FROM camperso.openlineage_events() e
  JOIN camperso.runs r ON r.run_id = (e #>> '{run,runId}')::uuid
 WHERE r.job = 'load_model:ru';

-- Hours are the union of their minutes.
SELECT count(*) > 0 AS has_hours,
	   count(*) = count(*) FILTER (WHERE h.events = m.events AND hll_cardinality(h.users) = hll_cardinality(m.users)) AS all_equal_to_minutes
  FROM ru.rollup_page_hour h
  JOIN (SELECT date_trunc('hour', bucket, 'UTC') AS bucket, app_id, page_sk, sum(events) AS events, hll_union_agg(users) AS users
		  FROM ru.rollup_page_minute GROUP BY 1, 2, 3) m
	ON m.bucket = h.bucket AND m.app_id IS NOT DISTINCT FROM h.app_id AND m.page_sk = h.page_sk;
-- Days are the union of their hours.
SELECT count(*) > 0 AS has_days,
	   count(*) = count(*) FILTER (WHERE d.events = h.events AND hll_cardinality(d.users) = hll_cardinality(h.users)) AS all_equal_to_hours
  FROM ru.rollup_event_day d
  JOIN (SELECT date_trunc('day', bucket, 'UTC') AS bucket, app_id, event_type, sum(events) AS events, hll_union_agg(users) AS users
		  FROM ru.rollup_event_hour GROUP BY 1, 2, 3) h
	ON h.bucket = d.bucket AND h.app_id IS NOT DISTINCT FROM d.app_id AND h.event_type = d.event_type;
-- Exact for small sets: unique users per hour and app equal count(DISTINCT).
SELECT bool_and(v.unique_users = f.users) AS users_exact
  FROM ru.app_traffic_hour v
  JOIN (SELECT date_trunc('hour', event_ts, 'UTC') AS bucket, app_id, count(DISTINCT user_id) AS users
		  FROM ru.fact_clicks GROUP BY 1, 2) f ON f.bucket = v.bucket AND f.app_id IS NOT DISTINCT FROM v.app_id;
SELECT bool_and(v.bounce_rate = round(f.b::numeric / f.n, 4)) AS bounce_rate_ok
  FROM ru.app_traffic_hour v
  JOIN (SELECT date_trunc('hour', session_start, 'UTC') AS bucket, app_id, count(*) AS n, count(*) FILTER (WHERE is_bounce) AS b
		  FROM ru.fact_sessions GROUP BY 1, 2) f ON f.bucket = v.bucket AND f.app_id IS NOT DISTINCT FROM v.app_id;

-- A damaged rollup is found and repaired.
UPDATE ru.rollup_event_hour SET events = events + 1 WHERE bucket = (SELECT max(bucket) FROM ru.rollup_event_hour) AND app_id = 'a1';
SELECT rollup, bool_and(stored ->> 'events' = ((expected ->> 'events')::int + 1)::text) AS off_by_one
  FROM camperso.rollup_check('ru') GROUP BY rollup;
SELECT camperso.rebuild_rollups('ru') > 0 AS rebuilt;
SELECT * FROM pg_temp.check('rebuilt');

-- Analysts read the rollups and BI views of their apps only.
CREATE ROLE regress_rollup_analyst IN ROLE camperso_analyst;
SELECT camperso.grant_app('regress_rollup_analyst', 'a1');
SET ROLE regress_rollup_analyst;
SELECT array_agg(DISTINCT app_id) AS apps_seen, sum(events) > 0 AS has_events FROM ru.app_traffic_hour;
SELECT array_agg(DISTINCT app_id) AS apps_seen FROM ru.page_traffic_minute;
SELECT array_agg(DISTINCT app_id) AS apps_seen FROM ru.clicks_wide;
SELECT array_agg(DISTINCT app_id) AS apps_seen FROM ru.sessions;
SELECT count(*) FROM ru.rollup_page_hour WHERE app_id <> 'a1';
UPDATE ru.rollup_page_hour SET events = 0;
RESET ROLE;
SELECT camperso.revoke_app('regress_rollup_analyst', 'a1');
DROP ROLE regress_rollup_analyst;

-- BI views: every row of the facts, with as-of and current attributes;
-- every column described.
SELECT (SELECT count(*) FROM ru.clicks_wide) = (SELECT count(*) FROM ru.fact_clicks) AS clicks_wide_complete,
	   (SELECT count(*) FROM ru.sessions) = (SELECT count(*) FROM ru.fact_sessions) AS sessions_complete;
SELECT user_plan_at_event, user_plan_current, count(*) > 0 AS seen
  FROM ru.clicks_wide WHERE user_id = 'u1' GROUP BY 1, 2 ORDER BY 1;
SELECT c.relname AS view, count(*) AS columns, count(col_description(c.oid, a.attnum)) AS described
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE c.relnamespace = 'ru'::regnamespace AND c.relkind = 'v' AND c.relname NOT LIKE '%\_masked'
 GROUP BY c.relname ORDER BY 1;
SELECT count(*) AS undescribed_views FROM pg_class c
 WHERE c.relnamespace = 'ru'::regnamespace AND c.relkind = 'v' AND obj_description(c.oid, 'pg_class') IS NULL
   AND c.relname NOT LIKE '%\_masked';

-- Errors and cleanup.
SELECT camperso.create_rollups('ru');
SELECT camperso.create_rollups('no_such_schema');
SELECT camperso.rollup_check('no_such_schema');
SELECT camperso.drop_clickstream_model('ru');
SELECT count(*) AS rollups_left FROM camperso.rollups WHERE schema_name = 'ru';
SELECT count(*) AS schema_left FROM pg_namespace WHERE nspname = 'ru';
