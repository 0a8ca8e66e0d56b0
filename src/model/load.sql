-- model: camperso.load_model(), the incremental load of a clickstream model
-- from its staging tables into its dimensions and facts.
--
-- One call is one transaction (the caller's) and one run in camperso.runs:
--  1. The batch: staging rows whose inserting transaction is at or above
--     the previous load's snapshot xmin and not one that load already read
--     (so each committed row is read by exactly one load, in any commit
--     order, see watermark.c), bounded by arrival time for partition
--     pruning. Rows the model cannot use are quarantined with their
--     reason: missing or oversized keys, events further in the future than
--     future_tolerance, events older than the lateness window (counted back
--     from the latest event time loaded).
--  2. dim_user: the batch of user_updates, e-mails pseudonymised, merged by
--     camperso.scd2_merge; then facts and sessions of the users it touched
--     are re-keyed (the unknown -1 of early-arriving facts, and any version
--     a late change split).
--  3. dim_page, dim_device, dim_date: new members added.
--  4. fact_clicks: the partitions of the batch's days made if missing, then
--     one row per new event, keys resolved as of the event time; an event
--     already loaded (same id and time) is skipped.
--  5. fact_sessions: the new events and the stored sessions they can touch
--     (ending less than the session timeout before the first new event of
--     the user, or starting less than it after the last) are regrouped:
--     a gap of at least the timeout starts a session. The touched sessions
--     are replaced by the regrouped ones. Adding events never splits a
--     session, so a stored session's summary (start, end, counts, entry and
--     exit) stands for all its events and nothing else is re-read.
--  6. Watermarks and the model's state advance; the run is recorded.
-- Concurrent loads of one model serialise on its camperso.models row.

CREATE FUNCTION camperso.load_model(schema name) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog
SET intervalstyle = 'postgres'
AS $fn$
DECLARE
	s				text := $1;
	m				camperso.models;
	w_ev			camperso.model_watermarks;
	w_us			camperso.model_watermarks;
	snap_xmin		xid8;
	ev_above		xid8[];
	us_above		xid8[];
	next_floor		timestamptz;
	late_before		timestamptz;
	future_after	timestamptz;
	run				uuid;
	mr				record;
	merged			boolean := false;
	n_events		bigint := 0;
	n_users			bigint := 0;
	n_rejected		bigint := 0;
	n_users_rej		bigint := 0;
	n_users_dup		bigint := 0;
	n_valid			bigint := 0;
	n_facts			bigint := 0;
	n_repaired		bigint := 0;
	n_sess_repaired	bigint := 0;
	n_pages			bigint := 0;
	n_devices		bigint := 0;
	n_days			bigint := 0;
	n_parts			bigint := 0;
	n_sess_old		bigint := 0;
	n_sess_new		bigint := 0;
	max_ts			timestamptz;
	min_new			timestamptz;
	max_dur			interval;
	details			jsonb;
	d_grown			text;
BEGIN
	SELECT * INTO m FROM camperso.models WHERE schema_name = s FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no clickstream model in schema "%"', s
			USING ERRCODE = 'undefined_object', HINT = 'Create it with camperso.create_clickstream_model().';
	END IF;
	SELECT * INTO STRICT w_ev FROM camperso.model_watermarks WHERE schema_name = s AND staging = 'events';
	SELECT * INTO STRICT w_us FROM camperso.model_watermarks WHERE schema_name = s AND staging = 'user_updates';

	snap_xmin := pg_snapshot_xmin(pg_current_snapshot());
	next_floor := least(now(), coalesce(camperso._oldest_write_xact_start(), now())) - m.scan_slack;
	late_before := m.event_watermark - m.lateness;
	future_after := now() + m.future_tolerance;

	EXECUTE format('TRUNCATE %1$I._load_events, %1$I._load_users, %1$I._load_new, %1$I._load_sessions', s);

	-- ---- 1. the batch ------------------------------------------------------
	EXECUTE format($q$
		INSERT INTO %1$I._load_events
		SELECT e.event_id, e.user_id, e.session_id, e.app_id, e.event_type, e.page_url, e.referrer, e.user_agent,
			   e.ip, e.country, e.ts, e.props, e._partition, e._offset, e._key, e._received_at, NULL,
			   CASE
				 WHEN e.event_id IS NULL THEN 'model_reject|event_id|event_id is missing'
				 WHEN e.ts IS NULL THEN 'model_reject|ts|ts is missing'
				 WHEN NOT isfinite(e.ts) THEN 'model_reject|ts|ts is not a finite time'
				 WHEN e.user_id IS NULL OR e.user_id = '' THEN 'model_reject|user_id|user_id is missing'
				 WHEN e.event_type IS NULL OR e.event_type = '' THEN 'model_reject|event_type|event_type is missing'
				 WHEN octet_length(e.user_id) > 256 THEN 'oversized|user_id|user_id is longer than 256 bytes'
				 WHEN octet_length(e.session_id) > 256 THEN 'oversized|session_id|session_id is longer than 256 bytes'
				 WHEN octet_length(e.app_id) > 256 THEN 'oversized|app_id|app_id is longer than 256 bytes'
				 WHEN octet_length(e.event_type) > 64 THEN 'oversized|event_type|event_type is longer than 64 bytes'
				 WHEN octet_length(e.page_url) > 8192 THEN 'oversized|page_url|page_url is longer than 8192 bytes'
				 WHEN octet_length(e.referrer) > 8192 THEN 'oversized|referrer|referrer is longer than 8192 bytes'
				 WHEN octet_length(e.user_agent) > 4096 THEN 'oversized|user_agent|user_agent is longer than 4096 bytes'
				 WHEN octet_length(e.country) > 64 THEN 'oversized|country|country is longer than 64 bytes'
				 WHEN e.ts > $4 THEN 'future_event|ts|event time is more than ' || $6 || ' ahead of the load'
				 WHEN e.ts < $5 THEN 'late_event|ts|event time is more than ' || $7 || ' before the latest loaded event'
			   END,
			   camperso._xid_full(e.xmin)
		  FROM %1$I.events e
		 WHERE e._received_at >= $1
		   AND camperso._xid_full(e.xmin) >= $2 AND NOT camperso._xid_full(e.xmin) = ANY ($3)$q$, s)
	USING w_ev.scan_from, w_ev.next_xid, w_ev.loaded_above, future_after, late_before,
		  m.future_tolerance::text, m.lateness::text;
	GET DIAGNOSTICS n_events = ROW_COUNT;
	-- A big batch gets statistics: without them the planner takes the
	-- scratch table for a few hundred rows (and "reject IS NULL" for rare)
	-- and sorts and probes where it should hash.
	IF n_events >= 1000 THEN
		EXECUTE format('ANALYZE %1$I._load_events', s);
	END IF;

	EXECUTE format($q$
		INSERT INTO %1$I._load_users
		SELECT u.user_id, u.country, u.plan,
			   CASE WHEN u.email IS NULL OR u.email ~ '^[0-9a-f]{64}$' THEN u.email
					ELSE camperso.pseudonymize(u.email) END,
			   u.updated_at, u._partition, u._offset, u._key, u._received_at, NULL,
			   CASE
				 WHEN u.user_id IS NULL OR u.user_id = '' THEN 'model_reject|user_id|user_id is missing'
				 WHEN u.updated_at IS NULL THEN 'model_reject|updated_at|updated_at is missing'
				 WHEN NOT isfinite(u.updated_at) THEN 'model_reject|updated_at|updated_at is not a finite time'
				 WHEN octet_length(u.user_id) > 256 THEN 'oversized|user_id|user_id is longer than 256 bytes'
				 WHEN octet_length(u.country) > 64 THEN 'oversized|country|country is longer than 64 bytes'
				 WHEN octet_length(u.plan) > 64 THEN 'oversized|plan|plan is longer than 64 bytes'
				 WHEN u.updated_at > $4 THEN 'future_event|updated_at|updated_at is more than ' || $5 || ' ahead of the load'
			   END,
			   camperso._xid_full(u.xmin)
		  FROM %1$I.user_updates u
		 WHERE u._received_at >= $1
		   AND camperso._xid_full(u.xmin) >= $2 AND NOT camperso._xid_full(u.xmin) = ANY ($3)$q$, s)
	USING w_us.scan_from, w_us.next_xid, w_us.loaded_above, future_after, m.future_tolerance::text;
	GET DIAGNOSTICS n_users = ROW_COUNT;

	-- What was read above the new snapshot xmin is remembered, so the next
	-- load (which starts at that xmin) does not read it again.
	EXECUTE format($q$
		SELECT coalesce(array_agg(DISTINCT x ORDER BY x) FILTER (WHERE x >= $2), '{}')
		  FROM (SELECT unnest($1) AS x UNION ALL SELECT _xmin FROM %1$I._load_events) y$q$, s)
	INTO ev_above USING w_ev.loaded_above, snap_xmin;
	EXECUTE format($q$
		SELECT coalesce(array_agg(DISTINCT x ORDER BY x) FILTER (WHERE x >= $2), '{}')
		  FROM (SELECT unnest($1) AS x UNION ALL SELECT _xmin FROM %1$I._load_users) y$q$, s)
	INTO us_above USING w_us.loaded_above, snap_xmin;

	IF n_events + n_users > 0 THEN
		run := camperso.run_begin('load_model:' || s,
								  ARRAY[format('%I.events', s), format('%I.user_updates', s)],
								  ARRAY[format('%I.dim_user', s), format('%I.dim_page', s), format('%I.dim_device', s),
										format('%I.dim_date', s), format('%I.fact_clicks', s), format('%I.fact_sessions', s)]);
	END IF;

	-- What the model cannot use goes to the quarantine with its reason (the
	-- staging row stays where it is: staging is the raw log).
	IF n_events > 0 THEN
		EXECUTE format($q$
			INSERT INTO camperso.quarantine (target, partition, "offset", received_at, payload, rule, field, reason, app_id)
			SELECT %2$L, r._partition, r._offset, r._received_at,
				   convert_to(jsonb_build_object('event_id', r.event_id, 'user_id', r.user_id, 'session_id', r.session_id,
						'app_id', r.app_id, 'event_type', r.event_type, 'page_url', r.page_url, 'referrer', r.referrer,
						'user_agent', r.user_agent, 'ip', r.ip, 'country', r.country, 'ts', r.ts, 'props', r.props)::text, 'UTF8'),
				   split_part(r.reject, '|', 1), split_part(r.reject, '|', 2), substring(r.reject FROM '^[^|]*[|][^|]*[|](.*)$'),
				   r.app_id
			  FROM %1$I._load_events r WHERE r.reject IS NOT NULL$q$, s, format('%I.events', s));
		GET DIAGNOSTICS n_rejected = ROW_COUNT;
		n_valid := n_events - n_rejected;
	END IF;
	IF n_users > 0 THEN
		EXECUTE format($q$
			INSERT INTO camperso.quarantine (target, partition, "offset", received_at, payload, rule, field, reason)
			SELECT %2$L, r._partition, r._offset, r._received_at,
				   convert_to(jsonb_build_object('user_id', r.user_id, 'country', r.country, 'plan', r.plan,
						'email', r.email, 'updated_at', r.updated_at)::text, 'UTF8'),
				   split_part(r.reject, '|', 1), split_part(r.reject, '|', 2), substring(r.reject FROM '^[^|]*[|][^|]*[|](.*)$')
			  FROM %1$I._load_users r WHERE r.reject IS NOT NULL$q$, s, format('%I.user_updates', s));
		GET DIAGNOSTICS n_users_rej = ROW_COUNT;
		EXECUTE format('DELETE FROM %1$I._load_users WHERE reject IS NOT NULL', s);
		-- One change per user and time: the latest to arrive wins.
		EXECUTE format($q$
			DELETE FROM %1$I._load_users a USING %1$I._load_users b
			 WHERE a.user_id = b.user_id AND a.updated_at = b.updated_at
			   AND (a._received_at, a.ctid) < (b._received_at, b.ctid)$q$, s);
		GET DIAGNOSTICS n_users_dup = ROW_COUNT;
	END IF;

	-- ---- 2. dim_user, and the facts of the users it touched ---------------------
	IF n_users - n_users_rej > 0 THEN
		SELECT * INTO mr FROM camperso.scd2_merge(format('%I.dim_user', s)::regclass, format('%I._load_users', s)::regclass,
												  '{user_id}', '{country,plan}', '{email}', 'updated_at');
		merged := true;
		IF mr.inserted + mr.closed + mr.corrected > 0 THEN
			-- Facts whose version may have changed: at or after the earliest
			-- change of their user, before its (possibly new) first version, or
			-- still unknown.
			EXECUTE format($q$
				WITH k AS (
					SELECT u.user_id, min(u.updated_at) AS since,
						   (SELECT min(d.valid_from) FROM %1$I.dim_user d WHERE d.user_id = u.user_id) AS first_from
					  FROM %1$I._load_users u GROUP BY u.user_id),
				x AS (
					SELECT c.event_id, c.event_ts, c.user_sk,
						   COALESCE((SELECT d.dim_user_sk FROM %1$I.dim_user d WHERE d.user_id = c.user_id AND d.valid_from <= c.event_ts
									 ORDER BY d.valid_from DESC LIMIT 1),
									(SELECT d.dim_user_sk FROM %1$I.dim_user d WHERE d.user_id = c.user_id ORDER BY d.valid_from LIMIT 1),
									-1) AS sk
					  FROM %1$I.fact_clicks c JOIN k ON c.user_id = k.user_id
					 WHERE c.event_ts >= k.since OR c.event_ts < k.first_from OR c.user_sk = -1)
				UPDATE %1$I.fact_clicks f SET user_sk = x.sk
				  FROM x WHERE f.event_id = x.event_id AND f.event_ts = x.event_ts AND x.user_sk <> x.sk$q$, s);
			GET DIAGNOSTICS n_repaired = ROW_COUNT;
			EXECUTE format($q$
				WITH k AS (
					SELECT u.user_id, min(u.updated_at) AS since,
						   (SELECT min(d.valid_from) FROM %1$I.dim_user d WHERE d.user_id = u.user_id) AS first_from
					  FROM %1$I._load_users u GROUP BY u.user_id),
				x AS (
					SELECT c.session_key, c.session_start, c.user_sk,
						   COALESCE((SELECT d.dim_user_sk FROM %1$I.dim_user d WHERE d.user_id = c.user_id AND d.valid_from <= c.session_start
									 ORDER BY d.valid_from DESC LIMIT 1),
									(SELECT d.dim_user_sk FROM %1$I.dim_user d WHERE d.user_id = c.user_id ORDER BY d.valid_from LIMIT 1),
									-1) AS sk
					  FROM %1$I.fact_sessions c JOIN k ON c.user_id = k.user_id
					 WHERE c.session_start >= k.since OR c.session_start < k.first_from OR c.user_sk = -1)
				UPDATE %1$I.fact_sessions f SET user_sk = x.sk
				  FROM x WHERE f.session_key = x.session_key AND f.session_start = x.session_start AND x.user_sk <> x.sk$q$, s);
			GET DIAGNOSTICS n_sess_repaired = ROW_COUNT;
		END IF;
	END IF;

	IF n_valid > 0 THEN
		-- ---- 3. the other dimensions ------------------------------------------------
		EXECUTE format($q$
			INSERT INTO %1$I.dim_page (page_url, host, path)
			SELECT x.u, camperso.url_host(x.u), camperso.url_path(x.u)
			  FROM (SELECT DISTINCT page_url AS u FROM %1$I._load_events WHERE reject IS NULL AND page_url IS NOT NULL) x
			 WHERE NOT EXISTS (SELECT 1 FROM %1$I.dim_page p WHERE p.page_url = x.u)$q$, s);
		GET DIAGNOSTICS n_pages = ROW_COUNT;
		EXECUTE format($q$
			INSERT INTO %1$I.dim_device (user_agent, browser, browser_version, os, device_class)
			SELECT x.u, (p).browser, (p).browser_version, (p).os, (p).device_class
			  FROM (SELECT y.u, camperso.parse_user_agent(y.u) AS p
					  FROM (SELECT DISTINCT user_agent AS u FROM %1$I._load_events WHERE reject IS NULL AND user_agent IS NOT NULL) y
					 WHERE NOT EXISTS (SELECT 1 FROM %1$I.dim_device d WHERE d.user_agent = y.u)) x$q$, s);
		GET DIAGNOSTICS n_devices = ROW_COUNT;
		-- Dimensions that just grew by a good part get statistics before the
		-- facts join them (a first load fills them from nothing).
		SELECT string_agg(format('%I.%I', s, c.relname), ', ') INTO d_grown
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = s
		   AND ((c.relname = 'dim_page' AND n_pages >= 1000 AND n_pages * 10 > greatest(c.reltuples, 0))
				OR (c.relname = 'dim_device' AND n_devices >= 1000 AND n_devices * 10 > greatest(c.reltuples, 0)));
		IF d_grown IS NOT NULL THEN
			EXECUTE 'ANALYZE ' || d_grown;
		END IF;
		EXECUTE format($q$
			SELECT coalesce(sum(camperso._fill_dim_date(%2$L::regclass, d, d)), 0), count(*)
			  FROM (SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date AS d FROM %1$I._load_events WHERE reject IS NULL) x
			 WHERE NOT EXISTS (SELECT 1 FROM %1$I.dim_date dd WHERE dd.date = x.d)$q$, s, format('%I.dim_date', s))
		INTO n_days;

		-- ---- 4. fact_clicks -------------------------------------------------------
		EXECUTE format($q$
			SELECT count(DISTINCT camperso.ensure_partition(%2$L::regclass, d::text))
			  FROM (SELECT DISTINCT date_trunc('day', ts, 'UTC') AS d FROM %1$I._load_events WHERE reject IS NULL) x$q$,
					   s, format('%I.fact_clicks', s))
		INTO n_parts;
		EXECUTE format($q$
			WITH ins AS (
				INSERT INTO %1$I.fact_clicks (event_id, event_ts, date_key, user_sk, page_sk, device_sk, user_id,
											  session_id, app_id, event_type, referrer, country, props)
				SELECT e.event_id, e.ts, to_char(e.ts AT TIME ZONE 'UTC', 'YYYYMMDD')::integer,
					   COALESCE(u.dim_user_sk,
								(SELECT d.dim_user_sk FROM %1$I.dim_user d WHERE d.user_id = e.user_id ORDER BY d.valid_from LIMIT 1),
								-1),
					   COALESCE(p.dim_page_sk, -1), COALESCE(v.dim_device_sk, -1), e.user_id,
					   e.session_id, e.app_id, e.event_type, e.referrer, e.country, e.props
				  FROM %1$I._load_events e
				  LEFT JOIN %1$I.dim_user u ON u.user_id = e.user_id AND e.ts >= u.valid_from AND e.ts < u.valid_to
				  LEFT JOIN %1$I.dim_page p ON p.page_url = e.page_url
				  LEFT JOIN %1$I.dim_device v ON v.user_agent = e.user_agent
				 WHERE e.reject IS NULL
				 ORDER BY e.user_id, e.ts
				ON CONFLICT DO NOTHING
				RETURNING event_id, event_ts, user_id, page_sk, device_sk, app_id, event_type)
			INSERT INTO %1$I._load_new SELECT event_id, event_ts, user_id, page_sk, device_sk, app_id, event_type = 'page_view'
			  FROM ins$q$, s);
		GET DIAGNOSTICS n_facts = ROW_COUNT;
		EXECUTE format('SELECT max(ts) FROM %1$I._load_events WHERE reject IS NULL', s) INTO max_ts;
	END IF;

	-- ---- 5. fact_sessions ------------------------------------------------------
	IF n_facts > 0 THEN
		EXECUTE format('ANALYZE %1$I._load_new', s);
		EXECUTE format('SELECT min(event_ts) FROM %1$I._load_new', s) INTO min_new;
		EXECUTE format($q$
			INSERT INTO %1$I._load_sessions
			WITH a AS (
				SELECT user_id, min(event_ts) AS lo, max(event_ts) AS hi FROM %1$I._load_new GROUP BY user_id),
			elems AS (
				SELECT s.user_id, s.session_start AS st, s.session_end AS en, s.event_count AS n, s.page_count AS pv,
					   s.entry_event_id, s.entry_page_sk, s.exit_event_id, s.exit_page_sk, s.app_id, s.device_sk
				  FROM %1$I.fact_sessions s JOIN a ON s.user_id = a.user_id
				 WHERE s.session_end >= a.lo - $1 AND s.session_start <= a.hi + $1 AND s.session_start >= $2
				UNION ALL
				SELECT n.user_id, n.event_ts, n.event_ts, 1, n.is_page_view::integer,
					   n.event_id, n.page_sk, n.event_id, n.page_sk, n.app_id, n.device_sk
				  FROM %1$I._load_new n),
			marked AS (
				SELECT x.*, sum(x.brk) OVER (PARTITION BY x.user_id ORDER BY x.st, x.entry_event_id ROWS UNBOUNDED PRECEDING) AS island
				  FROM (SELECT e.*,
							   CASE WHEN e.st - max(e.en) OVER w < $1 THEN 0 ELSE 1 END AS brk
						  FROM elems e
						WINDOW w AS (PARTITION BY e.user_id ORDER BY e.st, e.entry_event_id
									 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) x),
			-- An island's first element in (st, entry_event_id) order, the one
			-- that opened it (brk = 1), is its entry; its exit is the element
			-- ending last, the greatest event id on ties.
			isl AS (
				SELECT user_id, island, min(st) AS st, max(en) AS en, sum(n)::integer AS n, sum(pv)::integer AS pv,
					   (array_agg(entry_event_id) FILTER (WHERE brk = 1))[1] AS entry_event_id,
					   (array_agg(entry_page_sk) FILTER (WHERE brk = 1))[1] AS entry_page_sk,
					   (array_agg(app_id) FILTER (WHERE brk = 1))[1] AS app_id,
					   (array_agg(device_sk) FILTER (WHERE brk = 1))[1] AS device_sk,
					   (array_agg(exit_event_id ORDER BY en DESC, exit_event_id DESC))[1] AS exit_event_id,
					   (array_agg(exit_page_sk ORDER BY en DESC, exit_event_id DESC))[1] AS exit_page_sk
				  FROM marked GROUP BY user_id, island)
			SELECT md5(i.user_id || '|' || (extract(epoch FROM i.st) * 1000000)::bigint::text)::uuid,
				   i.st, i.en, i.user_id, i.app_id, i.device_sk, i.entry_page_sk, i.exit_page_sk,
				   i.entry_event_id, i.exit_event_id, i.n, i.pv
			  FROM isl i$q$, s)
		USING m.session_timeout, min_new - m.session_timeout - m.max_session_duration;

		EXECUTE format($q$
			DELETE FROM %1$I.fact_sessions s
			 USING (SELECT user_id, min(event_ts) AS lo, max(event_ts) AS hi FROM %1$I._load_new GROUP BY user_id) a
			 WHERE s.user_id = a.user_id AND s.session_end >= a.lo - $1 AND s.session_start <= a.hi + $1
			   AND s.session_start >= $2$q$, s)
		USING m.session_timeout, min_new - m.session_timeout - m.max_session_duration;
		GET DIAGNOSTICS n_sess_old = ROW_COUNT;

		EXECUTE format($q$
			SELECT count(DISTINCT camperso.ensure_partition(%2$L::regclass, d::text))
			  FROM (SELECT DISTINCT date_trunc('day', session_start, 'UTC') AS d FROM %1$I._load_sessions) x$q$,
					   s, format('%I.fact_sessions', s));
		EXECUTE format($q$
			INSERT INTO %1$I.fact_sessions (session_key, session_start, session_end, duration_seconds, date_key, user_sk,
											device_sk, entry_page_sk, exit_page_sk, user_id, app_id, entry_event_id,
											exit_event_id, event_count, page_count, is_bounce)
			SELECT n.session_key, n.session_start, n.session_end, extract(epoch FROM n.session_end - n.session_start)::double precision,
				   to_char(n.session_start AT TIME ZONE 'UTC', 'YYYYMMDD')::integer,
				   COALESCE(u.dim_user_sk,
							(SELECT d.dim_user_sk FROM %1$I.dim_user d WHERE d.user_id = n.user_id ORDER BY d.valid_from LIMIT 1),
							-1),
				   n.device_sk, n.entry_page_sk, n.exit_page_sk, n.user_id, n.app_id, n.entry_event_id, n.exit_event_id,
				   n.event_count, n.page_count, n.event_count = 1
			  FROM %1$I._load_sessions n
			  LEFT JOIN %1$I.dim_user u ON u.user_id = n.user_id AND n.session_start >= u.valid_from AND n.session_start < u.valid_to
			 ORDER BY n.user_id, n.session_start$q$, s);
		GET DIAGNOSTICS n_sess_new = ROW_COUNT;
		EXECUTE format('SELECT max(session_end - session_start) FROM %1$I._load_sessions', s) INTO max_dur;
	END IF;

	-- ---- 6. state and the run ------------------------------------------------------
	UPDATE camperso.model_watermarks
	   SET next_xid = snap_xmin, loaded_above = CASE staging WHEN 'events' THEN ev_above ELSE us_above END,
		   scan_from = next_floor, updated_at = now()
	 WHERE schema_name = s;
	UPDATE camperso.models
	   SET event_watermark = CASE WHEN max_ts IS NULL THEN event_watermark ELSE greatest(event_watermark, max_ts) END,
		   max_session_duration = greatest(max_session_duration, coalesce(max_dur, interval '0')),
		   last_load_at = now(),
		   last_load_rows = n_events + n_users
	 WHERE schema_name = s;

	details := jsonb_build_object(
		'events_read', n_events, 'events_rejected', n_rejected, 'events_duplicate', n_valid - n_facts,
		'facts_inserted', n_facts, 'facts_rekeyed', n_repaired,
		'user_updates_read', n_users, 'user_updates_rejected', n_users_rej, 'user_updates_duplicate', n_users_dup,
		'dim_user', CASE WHEN merged THEN to_jsonb(mr) END,
		'pages_added', n_pages, 'devices_added', n_devices, 'days_added', n_days,
		'fact_days', n_parts, 'sessions_replaced', n_sess_old, 'sessions_written', n_sess_new,
		'sessions_rekeyed', n_sess_repaired);
	-- Rows read and written per relation, for the lineage events
	-- (camperso.openlineage_events).
	details := details || jsonb_build_object(
		'input_rows', jsonb_build_object(format('%I.events', s), n_events, format('%I.user_updates', s), n_users),
		'output_rows', jsonb_build_object(
			format('%I.fact_clicks', s), n_facts, format('%I.fact_sessions', s), n_sess_new,
			format('%I.dim_page', s), n_pages, format('%I.dim_device', s), n_devices, format('%I.dim_date', s), n_days,
			format('%I.dim_user', s), coalesce((details #>> '{dim_user,inserted}')::bigint, 0)
									 + coalesce((details #>> '{dim_user,closed}')::bigint, 0)
									 + coalesce((details #>> '{dim_user,type1_updated}')::bigint, 0)
									 + coalesce((details #>> '{dim_user,corrected}')::bigint, 0)));
	IF run IS NOT NULL THEN
		PERFORM camperso.run_end(run, 'success', n_events + n_users, n_facts, NULL, details);
	END IF;
	RETURN details;
END
$fn$;
COMMENT ON FUNCTION camperso.load_model(name) IS
'Incremental load of a clickstream model from its staging tables into dim_user (SCD2), dim_page, dim_device, dim_date, fact_clicks and fact_sessions, in the caller''s transaction; idempotent; late events within the lateness window rebuild their sessions; recorded in camperso.runs when anything was read; returns the counts';
