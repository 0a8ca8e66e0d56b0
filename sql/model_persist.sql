-- The clickstream model's partitions (persist stage): staging and facts
-- keep different retention windows, and a closed fact partition is
-- rewritten by the maintenance so that every session's events sit together
-- (rows in user, then event time order), even when the loads that brought
-- them interleaved them.
SET TimeZone = 'UTC';
SET client_min_messages = warning;
CREATE TEMP TABLE runs_before AS SELECT coalesce(max(started_at), '-infinity') AS t FROM camperso.runs;
SELECT camperso.create_clickstream_model('mp', validate => false, staging_retention => '3 days',
										 fact_retention => '10 days') AS model;
SELECT parent, retention, cluster_by FROM camperso.partition_config
 WHERE parent::text LIKE 'mp.%' ORDER BY parent::text;
-- The day three days ago (closed), 10:00 UTC, taken once.
CREATE TEMP TABLE t0 AS SELECT date_trunc('day', now() - interval '3 days', 'UTC') + interval '10 hours' AS t;
CREATE FUNCTION pg_temp.ev(n int, usr text, minutes int) RETURNS void LANGUAGE sql AS $$
	INSERT INTO mp.events (event_id, user_id, event_type, page_url, ts)
	VALUES (('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid, usr, 'page_view',
			'https://shop.example/p' || n, (SELECT t FROM t0) + minutes * interval '1 minute')
$$;
-- Load 1: users a and b, one session each so far.
SELECT pg_temp.ev(1, 'a', 0), pg_temp.ev(2, 'b', 1), pg_temp.ev(3, 'a', 2), pg_temp.ev(4, 'b', 3), pg_temp.ev(5, 'c', 5);
SELECT camperso.load_model('mp')->>'facts_inserted' AS facts;
-- Load 2: a late event joins a's session, b starts a second session.
SELECT pg_temp.ev(6, 'a', 4), pg_temp.ev(7, 'b', 200), pg_temp.ev(8, 'c', 6);
SELECT camperso.load_model('mp')->>'facts_inserted' AS facts;
SELECT user_id, event_count FROM mp.fact_sessions ORDER BY user_id, session_start;

-- Whether each session's events are neighbours in the partition's physical
-- order, and whether the partition is in (user, time) order.
CREATE FUNCTION pg_temp.locality(OUT sessions_together bigint, OUT sessions bigint, OUT in_user_time_order boolean)
LANGUAGE sql AS $$
	WITH phys AS (
		SELECT f.user_id, f.event_ts, row_number() OVER (ORDER BY f.ctid) AS pos,
			   lag(f.user_id) OVER (ORDER BY f.ctid) AS prev_user, lag(f.event_ts) OVER (ORDER BY f.ctid) AS prev_ts
		  FROM mp.fact_clicks f WHERE f.event_ts >= (SELECT t FROM t0) AND f.event_ts < (SELECT t FROM t0) + interval '14 hours'),
	per AS (
		SELECT s.session_key, s.event_count, max(p.pos) - min(p.pos) + 1 AS span
		  FROM mp.fact_sessions s JOIN phys p ON p.user_id = s.user_id AND p.event_ts BETWEEN s.session_start AND s.session_end
		 GROUP BY s.session_key, s.event_count)
	SELECT count(*) FILTER (WHERE span = event_count), count(*),
		   (SELECT bool_and(prev_user IS NULL OR (prev_user, prev_ts) <= (user_id, event_ts)) FROM phys)
	  FROM per
$$;
-- The loads left a's session split (load 2's event behind load 1's rows).
SELECT * FROM pg_temp.locality();

-- Retention: staging keeps 3 days, facts 10. A staging partition of 5 days
-- ago and fact partitions of 5 and 20 days ago.
SELECT camperso.ensure_partition('mp.events', (now() - interval '5 days')::text) IS NOT NULL AS staging_old,
	   camperso.ensure_partition('mp.fact_clicks', (now() - interval '5 days')::text) IS NOT NULL AS facts_5_days,
	   camperso.ensure_partition('mp.fact_clicks', (now() - interval '20 days')::text) IS NOT NULL AS facts_20_days;
INSERT INTO mp.events (event_id, user_id, event_type, ts, _received_at)
VALUES ('00000000-0000-0000-0000-000000000099', 'z', 'click', now() - interval '5 days', now() - interval '5 days');
SELECT parent, dropped, clustered, skipped FROM camperso.run_maintenance()
 WHERE parent::text LIKE 'mp.%' ORDER BY parent::text;
SELECT count(*) FILTER (WHERE range_end <= now() - interval '3 days') AS staging_older_than_3_days,
	   (SELECT count(*) FROM mp.events WHERE user_id = 'z') AS old_staged_rows
  FROM camperso.partitions('mp.events');
SELECT count(*) FILTER (WHERE range_start < now() - interval '10 days') AS facts_older_than_10_days,
	   count(*) FILTER (WHERE range_start >= now() - interval '6 days' AND range_end <= now() - interval '4 days') AS facts_of_5_days_ago
  FROM camperso.partitions('mp.fact_clicks');

-- Clustered: every session's events together, rows in user and time order,
-- nothing lost; each closed partition is rewritten once.
SELECT * FROM pg_temp.locality();
SELECT count(*) AS facts FROM mp.fact_clicks WHERE user_id <> 'z';
SELECT i.indexrelid::regclass IS NOT NULL AS clustered_on, pg_get_indexdef(i.indexrelid) ~ '\(user_id, event_ts\)' AS by_user_and_time
  FROM camperso.partitions('mp.fact_clicks') p JOIN pg_index i ON i.indrelid = p.partition AND i.indisclustered
 WHERE p.range_start = (SELECT date_trunc('day', t, 'UTC') FROM t0);
SELECT parent, clustered FROM camperso.run_maintenance() WHERE parent::text LIKE 'mp.%' ORDER BY parent::text;

SELECT camperso.drop_clickstream_model('mp');
-- The runs of this test go: later tests count theirs.
DELETE FROM camperso.runs WHERE started_at > (SELECT t FROM runs_before);
