-- expose/rollups.sql: live rollups of a clickstream model, Druid style.
--
-- Per model schema, nine rollup tables hold the figures dashboards read:
--   rollup_page_{minute,hour,day}     per bucket, app and page: events,
--                                     page views, unique users
--   rollup_event_{minute,hour,day}    per bucket, app and event type:
--                                     events, unique users
--   rollup_session_{minute,hour,day}  per bucket (session start), app and
--                                     entry page: sessions, bounces,
--                                     events, duration
-- Buckets are UTC minutes, hours and days of the event time: a dashboard
-- reads the coarsest grain that covers its range, so a day per page is
-- one row per app and page, not 24 or 1,440 of them. Unique users are
-- HyperLogLog sketches (the hll extension, log2m 11, about 2% error): a
-- sketch is a set union, so an hour's users are the union of its minutes'
-- and a day's the union of its hours', whatever the overlaps; sketches of
-- up to a few hundred users are kept exactly (explicit mode).
--
-- Maintenance is incremental, in the transaction that changes the facts
-- (SECURITY DEFINER trigger functions, so whoever may change the facts
-- keeps the rollups without privileges on them):
-- statement triggers on fact_clicks and fact_sessions read the rows the
-- statement inserted, deleted or changed (transition tables) and add or
-- subtract their counts. So every model load (new events, late events,
-- sessions rebuilt) and every erasure (camperso.forget_user) keeps the
-- rollups equal to an aggregate of the facts; a sketch cannot forget a
-- user, so the buckets that lost rows have their sketches recomputed, the
-- minutes from the facts of that minute, the hours from their minutes,
-- the days from their hours.
-- Dropping a whole fact partition (retention) fires nothing: rollups keep
-- the history the raw facts no longer hold, as Druid's do. Rows written
-- straight into a partition (not through the parent table) bypass them.

CREATE TABLE camperso.rollups (
	schema_name	text PRIMARY KEY,
	hll_schema	name NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE camperso.rollups IS 'Clickstream models with live rollups (camperso.create_rollups), and the schema of the hll extension their sketches use';
SELECT pg_catalog.pg_extension_config_dump('camperso.rollups', '');

-- The schema holding the hll extension, NULL when it is not installed.
CREATE FUNCTION camperso.hll_schema()
RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
	SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'hll'
$$;
COMMENT ON FUNCTION camperso.hll_schema() IS 'Schema of the hll extension (HyperLogLog sketches of the rollups), NULL when it is not installed';

-- ---------------------------------------------------------------------------
-- The SQL that applies a delta. d is a relation or subquery with the fact
-- columns; add or subtract it at one grain (minute, hour or day).
-- ---------------------------------------------------------------------------
CREATE FUNCTION camperso._rollup_clicks_sql(s text, h name, grain text, d text, subtract boolean)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog
AS $$
DECLARE
	step interval := ('1 ' || grain)::interval;
	finer text := CASE grain WHEN 'hour' THEN 'minute' WHEN 'day' THEN 'hour' END;
BEGIN
	IF NOT subtract THEN
		RETURN ARRAY[
			format($q$
				INSERT INTO %1$I.rollup_page_%2$s AS r (bucket, app_id, page_sk, events, page_views, users)
				SELECT date_trunc(%2$L, d.event_ts, 'UTC'), d.app_id, d.page_sk, count(*),
					   count(*) FILTER (WHERE d.event_type = 'page_view'),
					   %3$I.hll_add_agg(%3$I.hll_hash_text(d.user_id))
				  FROM %4$s d
				 GROUP BY 1, 2, 3
				ON CONFLICT (bucket, app_id, page_sk) DO UPDATE
				   SET events = r.events + EXCLUDED.events, page_views = r.page_views + EXCLUDED.page_views,
					   users = %3$I.hll_union(r.users, EXCLUDED.users)$q$, s, grain, h, d),
			format($q$
				INSERT INTO %1$I.rollup_event_%2$s AS r (bucket, app_id, event_type, events, users)
				SELECT date_trunc(%2$L, d.event_ts, 'UTC'), d.app_id, d.event_type, count(*),
					   %3$I.hll_add_agg(%3$I.hll_hash_text(d.user_id))
				  FROM %4$s d
				 GROUP BY 1, 2, 3
				ON CONFLICT (bucket, app_id, event_type) DO UPDATE
				   SET events = r.events + EXCLUDED.events, users = %3$I.hll_union(r.users, EXCLUDED.users)$q$,
				   s, grain, h, d)];
	END IF;
	-- Subtract: counts go down; the sketch of each touched bucket is
	-- recomputed (minutes from the facts, hours from their minutes, days
	-- from their hours, each finer grain fixed first); emptied buckets go.
	RETURN ARRAY[
		format($q$
			UPDATE %1$I.rollup_page_%2$s r
			   SET events = r.events - x.n, page_views = r.page_views - x.pv,
				   users = coalesce(%5$s, %3$I.hll_empty())
			  FROM (SELECT date_trunc(%2$L, d.event_ts, 'UTC') AS bucket, d.app_id, d.page_sk, count(*) AS n,
						   count(*) FILTER (WHERE d.event_type = 'page_view') AS pv
					  FROM %4$s d GROUP BY 1, 2, 3) x
			 WHERE r.bucket = x.bucket AND r.app_id IS NOT DISTINCT FROM x.app_id AND r.page_sk = x.page_sk$q$,
			s, grain, h, d,
			CASE grain
				WHEN 'minute' THEN format($e$(SELECT %2$I.hll_add_agg(%2$I.hll_hash_text(f.user_id))
											  FROM %1$I.fact_clicks f
											 WHERE f.event_ts >= x.bucket AND f.event_ts < x.bucket + %3$L::interval
											   AND f.app_id IS NOT DISTINCT FROM x.app_id AND f.page_sk = x.page_sk)$e$,
										  s, h, step)
				ELSE format($e$(SELECT %2$I.hll_union_agg(m.users) FROM %1$I.rollup_page_%4$s m
								 WHERE m.bucket >= x.bucket AND m.bucket < x.bucket + %3$L::interval
								   AND m.app_id IS NOT DISTINCT FROM x.app_id AND m.page_sk = x.page_sk)$e$, s, h, step, finer)
			END),
		format($q$
			UPDATE %1$I.rollup_event_%2$s r
			   SET events = r.events - x.n, users = coalesce(%5$s, %3$I.hll_empty())
			  FROM (SELECT date_trunc(%2$L, d.event_ts, 'UTC') AS bucket, d.app_id, d.event_type, count(*) AS n
					  FROM %4$s d GROUP BY 1, 2, 3) x
			 WHERE r.bucket = x.bucket AND r.app_id IS NOT DISTINCT FROM x.app_id AND r.event_type = x.event_type$q$,
			s, grain, h, d,
			CASE grain
				WHEN 'minute' THEN format($e$(SELECT %2$I.hll_add_agg(%2$I.hll_hash_text(f.user_id))
											  FROM %1$I.fact_clicks f
											 WHERE f.event_ts >= x.bucket AND f.event_ts < x.bucket + %3$L::interval
											   AND f.app_id IS NOT DISTINCT FROM x.app_id AND f.event_type = x.event_type)$e$,
										  s, h, step)
				ELSE format($e$(SELECT %2$I.hll_union_agg(m.users) FROM %1$I.rollup_event_%4$s m
								 WHERE m.bucket >= x.bucket AND m.bucket < x.bucket + %3$L::interval
								   AND m.app_id IS NOT DISTINCT FROM x.app_id AND m.event_type = x.event_type)$e$, s, h, step, finer)
			END),
		format('DELETE FROM %1$I.rollup_page_%2$s r WHERE r.events <= 0 AND r.bucket IN (SELECT date_trunc(%2$L, d.event_ts, ''UTC'') FROM %3$s d)',
			   s, grain, d),
		format('DELETE FROM %1$I.rollup_event_%2$s r WHERE r.events <= 0 AND r.bucket IN (SELECT date_trunc(%2$L, d.event_ts, ''UTC'') FROM %3$s d)',
			   s, grain, d)];
END
$$;
COMMENT ON FUNCTION camperso._rollup_clicks_sql(text, name, text, text, boolean) IS 'Internal: the statements adding or subtracting a delta of fact_clicks rows to the page and event rollups at one grain';

CREATE FUNCTION camperso._rollup_sessions_sql(s text, grain text, d text, sign integer)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog
AS $$
	SELECT ARRAY[
		format($q$
			INSERT INTO %1$I.rollup_session_%2$s AS r (bucket, app_id, entry_page_sk, sessions, bounces, events, duration_seconds)
			SELECT date_trunc(%2$L, d.session_start, 'UTC'), d.app_id, d.entry_page_sk,
				   %4$s * count(*), %4$s * count(*) FILTER (WHERE d.is_bounce),
				   %4$s * sum(d.event_count), %4$s * sum(d.duration_seconds::numeric)
			  FROM %3$s d
			 GROUP BY 1, 2, 3
			ON CONFLICT (bucket, app_id, entry_page_sk) DO UPDATE
			   SET sessions = r.sessions + EXCLUDED.sessions, bounces = r.bounces + EXCLUDED.bounces,
				   events = r.events + EXCLUDED.events, duration_seconds = r.duration_seconds + EXCLUDED.duration_seconds$q$,
			   s, grain, d, sign),
		format('DELETE FROM %1$I.rollup_session_%2$s r WHERE r.sessions <= 0 AND r.bucket IN (SELECT date_trunc(%2$L, d.session_start, ''UTC'') FROM %3$s d)',
			   s, grain, d)]
$$;
COMMENT ON FUNCTION camperso._rollup_sessions_sql(text, text, text, integer) IS 'Internal: the statements adding (sign 1) or subtracting (sign -1) a delta of fact_sessions rows to the session rollups at one grain';

-- ---------------------------------------------------------------------------
-- The triggers.
-- ---------------------------------------------------------------------------

-- Rows of an UPDATE that change what the rollups count: old versions
-- (gone) and new versions (came), other columns (re-keyed surrogate keys)
-- ignored.
CREATE FUNCTION camperso._rollup_changed_sql(cols text, old_rel text, new_rel text, gone boolean)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog
AS $$
	SELECT CASE WHEN gone
		THEN format('(SELECT %1$s FROM %2$s EXCEPT ALL SELECT %1$s FROM %3$s)', cols, old_rel, new_rel)
		ELSE format('(SELECT %1$s FROM %3$s EXCEPT ALL SELECT %1$s FROM %2$s)', cols, old_rel, new_rel)
	END
$$;
COMMENT ON FUNCTION camperso._rollup_changed_sql(text, text, text, boolean) IS 'Internal: the rows of an UPDATE''s transition tables whose counted columns changed';

CREATE FUNCTION camperso._rollup_clicks_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s text := TG_TABLE_SCHEMA;
	h name := (SELECT r.hll_schema FROM camperso.rollups r WHERE r.schema_name = TG_TABLE_SCHEMA);
	cols text := 'event_id, event_ts, app_id, page_sk, event_type, user_id';
	q text;
	g text;
BEGIN
	IF h IS NULL THEN
		RETURN NULL;			-- rollups being dropped
	END IF;
	IF TG_OP = 'TRUNCATE' THEN
		EXECUTE format('TRUNCATE %1$I.rollup_page_minute, %1$I.rollup_page_hour, %1$I.rollup_page_day,
						%1$I.rollup_event_minute, %1$I.rollup_event_hour, %1$I.rollup_event_day', s);
		RETURN NULL;
	END IF;
	FOREACH g IN ARRAY ARRAY['minute', 'hour', 'day'] LOOP
		IF TG_OP IN ('DELETE', 'UPDATE') THEN
			FOREACH q IN ARRAY camperso._rollup_clicks_sql(s, h, g,
					CASE TG_OP WHEN 'DELETE' THEN 'camperso_old'
							   ELSE camperso._rollup_changed_sql(cols, 'camperso_old', 'camperso_new', true) END, true) LOOP
				EXECUTE q;
			END LOOP;
		END IF;
	END LOOP;
	FOREACH g IN ARRAY ARRAY['minute', 'hour', 'day'] LOOP
		IF TG_OP IN ('INSERT', 'UPDATE') THEN
			FOREACH q IN ARRAY camperso._rollup_clicks_sql(s, h, g,
					CASE TG_OP WHEN 'INSERT' THEN 'camperso_new'
							   ELSE camperso._rollup_changed_sql(cols, 'camperso_old', 'camperso_new', false) END, false) LOOP
				EXECUTE q;
			END LOOP;
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION camperso._rollup_clicks_trigger() IS 'Trigger of fact_clicks: applies the rows a statement inserted, deleted or changed to the page and event rollups of its schema';

CREATE FUNCTION camperso._rollup_sessions_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s text := TG_TABLE_SCHEMA;
	cols text := 'session_key, session_start, app_id, entry_page_sk, is_bounce, event_count, duration_seconds';
	q text;
	g text;
BEGIN
	IF NOT EXISTS (SELECT FROM camperso.rollups r WHERE r.schema_name = TG_TABLE_SCHEMA) THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'TRUNCATE' THEN
		EXECUTE format('TRUNCATE %1$I.rollup_session_minute, %1$I.rollup_session_hour, %1$I.rollup_session_day', s);
		RETURN NULL;
	END IF;
	FOREACH g IN ARRAY ARRAY['minute', 'hour', 'day'] LOOP
		IF TG_OP IN ('DELETE', 'UPDATE') THEN
			FOREACH q IN ARRAY camperso._rollup_sessions_sql(s, g,
					CASE TG_OP WHEN 'DELETE' THEN 'camperso_old'
							   ELSE camperso._rollup_changed_sql(cols, 'camperso_old', 'camperso_new', true) END, -1) LOOP
				EXECUTE q;
			END LOOP;
		END IF;
		IF TG_OP IN ('INSERT', 'UPDATE') THEN
			FOREACH q IN ARRAY camperso._rollup_sessions_sql(s, g,
					CASE TG_OP WHEN 'INSERT' THEN 'camperso_new'
							   ELSE camperso._rollup_changed_sql(cols, 'camperso_old', 'camperso_new', false) END, 1) LOOP
				EXECUTE q;
			END LOOP;
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION camperso._rollup_sessions_trigger() IS 'Trigger of fact_sessions: applies the sessions a statement inserted, deleted or changed to the session rollups of its schema';

-- ---------------------------------------------------------------------------
-- Creating, checking, rebuilding and dropping the rollups of a model.
-- ---------------------------------------------------------------------------

-- camperso.create_rollups: the rollup tables, their triggers on the facts,
-- the analyst views over them; filled from the facts already there.
CREATE FUNCTION camperso.create_rollups(schema name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
DECLARE
	s text := $1;
	h name;
	g text;
BEGIN
	IF to_regclass(format('%I.fact_clicks', s)) IS NULL OR to_regclass(format('%I.fact_sessions', s)) IS NULL THEN
		RAISE EXCEPTION 'no clickstream model in schema "%"', s
			USING ERRCODE = 'undefined_object', HINT = 'Create it with camperso.create_clickstream_model().';
	END IF;
	IF EXISTS (SELECT FROM camperso.rollups r WHERE r.schema_name = s) THEN
		RAISE EXCEPTION 'rollups already exist in schema "%"', s USING ERRCODE = 'duplicate_object';
	END IF;
	h := camperso.hll_schema();
	IF h IS NULL THEN
		IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
			RAISE EXCEPTION 'the hll extension is not installed'
				USING ERRCODE = 'feature_not_supported',
					  DETAIL = 'Rollups keep unique users as HyperLogLog sketches of the hll extension.',
					  HINT = 'A superuser runs CREATE EXTENSION hll (Debian package postgresql-15-hll).';
		END IF;
		CREATE EXTENSION hll SCHEMA public;
		h := camperso.hll_schema();
	END IF;

	FOREACH g IN ARRAY ARRAY['minute', 'hour', 'day'] LOOP
		EXECUTE format($q$
			CREATE TABLE %1$I.rollup_page_%2$s (
				bucket		timestamptz NOT NULL,
				app_id		text,
				page_sk		bigint NOT NULL,
				events		bigint NOT NULL,
				page_views	bigint NOT NULL,
				users		%3$I.hll NOT NULL,
				unique_users bigint GENERATED ALWAYS AS (round(%3$I.hll_cardinality(users))::bigint) STORED,
				CONSTRAINT rollup_page_%2$s_key UNIQUE NULLS NOT DISTINCT (bucket, app_id, page_sk)
			)$q$, s, g, h);
		EXECUTE format($q$COMMENT ON TABLE %1$I.rollup_page_%2$s IS %3$L$q$, s, g,
					   format('Rollup per %s (UTC), app and page of fact_clicks, kept by its triggers; read it through page_traffic_%s', g, g));
		EXECUTE format($q$
			CREATE TABLE %1$I.rollup_event_%2$s (
				bucket		timestamptz NOT NULL,
				app_id		text,
				event_type	text NOT NULL,
				events		bigint NOT NULL,
				users		%3$I.hll NOT NULL,
				unique_users bigint GENERATED ALWAYS AS (round(%3$I.hll_cardinality(users))::bigint) STORED,
				CONSTRAINT rollup_event_%2$s_key UNIQUE NULLS NOT DISTINCT (bucket, app_id, event_type)
			)$q$, s, g, h);
		EXECUTE format($q$COMMENT ON TABLE %1$I.rollup_event_%2$s IS %3$L$q$, s, g,
					   format('Rollup per %s (UTC), app and event type of fact_clicks, kept by its triggers; read it through event_traffic_%s', g, g));
		EXECUTE format($q$
			CREATE TABLE %1$I.rollup_session_%2$s (
				bucket				timestamptz NOT NULL,
				app_id				text,
				entry_page_sk		bigint NOT NULL,
				sessions			bigint NOT NULL,
				bounces				bigint NOT NULL,
				events				bigint NOT NULL,
				duration_seconds	numeric NOT NULL,
				CONSTRAINT rollup_session_%2$s_key UNIQUE NULLS NOT DISTINCT (bucket, app_id, entry_page_sk)
			)$q$, s, g);
		EXECUTE format($q$COMMENT ON TABLE %1$I.rollup_session_%2$s IS %3$L$q$, s, g,
					   format('Rollup per %s (UTC) of session start, app and entry page of fact_sessions, kept by its triggers; read it through app_traffic_%s', g, g));
		EXECUTE format($q$COMMENT ON COLUMN %1$I.rollup_page_%2$s.users IS 'HyperLogLog sketch of the users (hll_cardinality for the count; hll_union_agg to combine buckets)'$q$, s, g);
		EXECUTE format($q$COMMENT ON COLUMN %1$I.rollup_event_%2$s.users IS 'HyperLogLog sketch of the users (hll_cardinality for the count; hll_union_agg to combine buckets)'$q$, s, g);
		EXECUTE format($q$COMMENT ON COLUMN %1$I.rollup_page_%2$s.unique_users IS 'Distinct users of the bucket: the sketch''s estimate, stored (generated) so that reading a bucket computes nothing'$q$, s, g);
		EXECUTE format($q$COMMENT ON COLUMN %1$I.rollup_event_%2$s.unique_users IS 'Distinct users of the bucket: the sketch''s estimate, stored (generated) so that reading a bucket computes nothing'$q$, s, g);
	END LOOP;

	INSERT INTO camperso.rollups (schema_name, hll_schema) VALUES (s, h);

	-- Backfill from the facts already there, then keep up with every change.
	PERFORM camperso.rebuild_rollups(s);
	EXECUTE format($q$CREATE TRIGGER rollup_insert AFTER INSERT ON %1$I.fact_clicks REFERENCING NEW TABLE AS camperso_new
					  FOR EACH STATEMENT EXECUTE FUNCTION camperso._rollup_clicks_trigger()$q$, s);
	EXECUTE format($q$CREATE TRIGGER rollup_delete AFTER DELETE ON %1$I.fact_clicks REFERENCING OLD TABLE AS camperso_old
					  FOR EACH STATEMENT EXECUTE FUNCTION camperso._rollup_clicks_trigger()$q$, s);
	EXECUTE format($q$CREATE TRIGGER rollup_update AFTER UPDATE ON %1$I.fact_clicks
					  REFERENCING OLD TABLE AS camperso_old NEW TABLE AS camperso_new
					  FOR EACH STATEMENT EXECUTE FUNCTION camperso._rollup_clicks_trigger()$q$, s);
	EXECUTE format($q$CREATE TRIGGER rollup_truncate AFTER TRUNCATE ON %1$I.fact_clicks
					  FOR EACH STATEMENT EXECUTE FUNCTION camperso._rollup_clicks_trigger()$q$, s);
	EXECUTE format($q$CREATE TRIGGER rollup_insert AFTER INSERT ON %1$I.fact_sessions REFERENCING NEW TABLE AS camperso_new
					  FOR EACH STATEMENT EXECUTE FUNCTION camperso._rollup_sessions_trigger()$q$, s);
	EXECUTE format($q$CREATE TRIGGER rollup_delete AFTER DELETE ON %1$I.fact_sessions REFERENCING OLD TABLE AS camperso_old
					  FOR EACH STATEMENT EXECUTE FUNCTION camperso._rollup_sessions_trigger()$q$, s);
	EXECUTE format($q$CREATE TRIGGER rollup_update AFTER UPDATE ON %1$I.fact_sessions
					  REFERENCING OLD TABLE AS camperso_old NEW TABLE AS camperso_new
					  FOR EACH STATEMENT EXECUTE FUNCTION camperso._rollup_sessions_trigger()$q$, s);
	EXECUTE format($q$CREATE TRIGGER rollup_truncate AFTER TRUNCATE ON %1$I.fact_sessions
					  FOR EACH STATEMENT EXECUTE FUNCTION camperso._rollup_sessions_trigger()$q$, s);

	PERFORM camperso._create_rollup_views(s, h);
END
$fn$;
COMMENT ON FUNCTION camperso.create_rollups(name) IS 'Creates the live rollups of a clickstream model (page, event type and session figures per minute, hour and day, unique users as HyperLogLog sketches) and the analyst views over them; kept incrementally by triggers on the facts, so every load and erasure updates them';

-- camperso.rebuild_rollups: empties the rollups and aggregates the facts
-- again from scratch (a repair; normal operation never needs it).
CREATE FUNCTION camperso.rebuild_rollups(schema name)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
DECLARE
	s text := $1;
	h name := (SELECT r.hll_schema FROM camperso.rollups r WHERE r.schema_name = $1);
	q text;
	g text;
	n bigint := 0;
	k bigint;
BEGIN
	IF h IS NULL THEN
		RAISE EXCEPTION 'no rollups in schema "%"', s
			USING ERRCODE = 'undefined_object', HINT = 'Create them with camperso.create_rollups().';
	END IF;
	EXECUTE format('LOCK TABLE %1$I.fact_clicks, %1$I.fact_sessions IN SHARE MODE', s);
	EXECUTE format('TRUNCATE %1$I.rollup_page_minute, %1$I.rollup_page_hour, %1$I.rollup_page_day,
					%1$I.rollup_event_minute, %1$I.rollup_event_hour, %1$I.rollup_event_day,
					%1$I.rollup_session_minute, %1$I.rollup_session_hour, %1$I.rollup_session_day', s);
	FOREACH g IN ARRAY ARRAY['minute', 'hour', 'day'] LOOP
		FOREACH q IN ARRAY camperso._rollup_clicks_sql(s, h, g, format('%I.fact_clicks', s), false)
						|| camperso._rollup_sessions_sql(s, g, format('%I.fact_sessions', s), 1) LOOP
			EXECUTE q;
			GET DIAGNOSTICS k = ROW_COUNT;
			n := n + k;
		END LOOP;
	END LOOP;
	RETURN n;
END
$fn$;
COMMENT ON FUNCTION camperso.rebuild_rollups(name) IS 'Recomputes the rollups of a model from its facts (a repair: the triggers keep them current); returns the rollup rows written';

-- camperso.rollup_check: where the stored rollups differ from an aggregate
-- of the facts computed now; no rows when they agree.
CREATE FUNCTION camperso.rollup_check(schema name)
RETURNS TABLE (rollup text, bucket timestamptz, key text, stored jsonb, expected jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
DECLARE
	s text := $1;
	h name := (SELECT r.hll_schema FROM camperso.rollups r WHERE r.schema_name = $1);
	g text;
	step interval;
BEGIN
	IF h IS NULL THEN
		RAISE EXCEPTION 'no rollups in schema "%"', s USING ERRCODE = 'undefined_object';
	END IF;
	FOREACH g IN ARRAY ARRAY['minute', 'hour', 'day'] LOOP
		step := ('1 ' || g)::interval;
		RETURN QUERY EXECUTE format($q$
			WITH want AS (
				SELECT date_trunc(%2$L, f.event_ts, 'UTC') AS bucket, f.app_id, f.page_sk,
					   jsonb_build_object('events', count(*), 'page_views', count(*) FILTER (WHERE f.event_type = 'page_view'),
										  'users', %3$I.hll_cardinality(%3$I.hll_add_agg(%3$I.hll_hash_text(f.user_id))),
										  'unique_users', round(%3$I.hll_cardinality(%3$I.hll_add_agg(%3$I.hll_hash_text(f.user_id))))::bigint) AS v
				  FROM %1$I.fact_clicks f GROUP BY 1, 2, 3),
			have AS (
				SELECT r.bucket, r.app_id, r.page_sk,
					   jsonb_build_object('events', r.events, 'page_views', r.page_views,
										  'users', %3$I.hll_cardinality(r.users), 'unique_users', r.unique_users) AS v
				  FROM %1$I.rollup_page_%2$s r)
			SELECT 'rollup_page_' || %2$L, coalesce(w.bucket, x.bucket),
				   concat_ws('/', coalesce(w.app_id, x.app_id), coalesce(w.page_sk, x.page_sk)), x.v, w.v
			  FROM want w FULL JOIN have x
				ON x.bucket = w.bucket AND x.app_id IS NOT DISTINCT FROM w.app_id AND x.page_sk = w.page_sk
			 WHERE x.v IS DISTINCT FROM w.v$q$, s, g, h);
		RETURN QUERY EXECUTE format($q$
			WITH want AS (
				SELECT date_trunc(%2$L, f.event_ts, 'UTC') AS bucket, f.app_id, f.event_type,
					   jsonb_build_object('events', count(*),
										  'users', %3$I.hll_cardinality(%3$I.hll_add_agg(%3$I.hll_hash_text(f.user_id))),
										  'unique_users', round(%3$I.hll_cardinality(%3$I.hll_add_agg(%3$I.hll_hash_text(f.user_id))))::bigint) AS v
				  FROM %1$I.fact_clicks f GROUP BY 1, 2, 3),
			have AS (
				SELECT r.bucket, r.app_id, r.event_type,
					   jsonb_build_object('events', r.events, 'users', %3$I.hll_cardinality(r.users),
										  'unique_users', r.unique_users) AS v
				  FROM %1$I.rollup_event_%2$s r)
			SELECT 'rollup_event_' || %2$L, coalesce(w.bucket, x.bucket),
				   concat_ws('/', coalesce(w.app_id, x.app_id), coalesce(w.event_type, x.event_type)), x.v, w.v
			  FROM want w FULL JOIN have x
				ON x.bucket = w.bucket AND x.app_id IS NOT DISTINCT FROM w.app_id AND x.event_type = w.event_type
			 WHERE x.v IS DISTINCT FROM w.v$q$, s, g, h);
		RETURN QUERY EXECUTE format($q$
			WITH want AS (
				SELECT date_trunc(%2$L, f.session_start, 'UTC') AS bucket, f.app_id, f.entry_page_sk,
					   jsonb_build_object('sessions', count(*), 'bounces', count(*) FILTER (WHERE f.is_bounce),
										  'events', sum(f.event_count), 'duration_seconds', sum(f.duration_seconds::numeric)) AS v
				  FROM %1$I.fact_sessions f GROUP BY 1, 2, 3),
			have AS (
				SELECT r.bucket, r.app_id, r.entry_page_sk,
					   jsonb_build_object('sessions', r.sessions, 'bounces', r.bounces, 'events', r.events,
										  'duration_seconds', r.duration_seconds) AS v
				  FROM %1$I.rollup_session_%2$s r)
			SELECT 'rollup_session_' || %2$L, coalesce(w.bucket, x.bucket),
				   concat_ws('/', coalesce(w.app_id, x.app_id), coalesce(w.entry_page_sk, x.entry_page_sk)), x.v, w.v
			  FROM want w FULL JOIN have x
				ON x.bucket = w.bucket AND x.app_id IS NOT DISTINCT FROM w.app_id AND x.entry_page_sk = w.entry_page_sk
			 WHERE x.v IS DISTINCT FROM w.v$q$, s, g);
	END LOOP;
END
$fn$;
COMMENT ON FUNCTION camperso.rollup_check(name) IS 'Compares the rollups of a model with an aggregate of its facts computed now: one row per bucket and key that differs (stored vs expected), none when they agree';

CREATE FUNCTION camperso.drop_rollups(schema name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
DECLARE
	s text := $1;
	t text;
BEGIN
	DELETE FROM camperso.rollups r WHERE r.schema_name = s;
	FOREACH t IN ARRAY ARRAY['fact_clicks', 'fact_sessions'] LOOP
		IF to_regclass(format('%I.%I', s, t)) IS NOT NULL THEN
			EXECUTE format('DROP TRIGGER IF EXISTS rollup_insert ON %1$I.%2$I; DROP TRIGGER IF EXISTS rollup_delete ON %1$I.%2$I;
							DROP TRIGGER IF EXISTS rollup_update ON %1$I.%2$I; DROP TRIGGER IF EXISTS rollup_truncate ON %1$I.%2$I', s, t);
		END IF;
	END LOOP;
	FOREACH t IN ARRAY ARRAY['app_traffic_minute', 'app_traffic_hour', 'app_traffic_day',
							 'page_traffic_minute', 'page_traffic_hour', 'page_traffic_day',
							 'event_traffic_minute', 'event_traffic_hour', 'event_traffic_day'] LOOP
		EXECUTE format('DROP VIEW IF EXISTS %I.%I', s, t);
	END LOOP;
	FOREACH t IN ARRAY ARRAY['rollup_page_minute', 'rollup_page_hour', 'rollup_page_day',
							 'rollup_event_minute', 'rollup_event_hour', 'rollup_event_day',
							 'rollup_session_minute', 'rollup_session_hour', 'rollup_session_day'] LOOP
		EXECUTE format('DROP TABLE IF EXISTS %I.%I', s, t);
	END LOOP;
END
$fn$;
COMMENT ON FUNCTION camperso.drop_rollups(name) IS 'Drops the rollups of a model: their tables, views and triggers';

-- The analyst views over the rollups: counts instead of sketches, pages by
-- URL, bounce rate per app.
CREATE FUNCTION camperso._create_rollup_views(s text, h name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
DECLARE
	g text;
	c record;
BEGIN
	FOREACH g IN ARRAY ARRAY['minute', 'hour', 'day'] LOOP
		EXECUTE format($q$
			CREATE VIEW %1$I.page_traffic_%2$s AS
			SELECT r.bucket, r.app_id, r.page_sk, p.page_url, p.host, p.path, r.events, r.page_views,
				   r.unique_users
			  FROM %1$I.rollup_page_%2$s r
			  JOIN %1$I.dim_page p ON p.dim_page_sk = r.page_sk$q$, s, g, h);
		EXECUTE format($q$
			CREATE VIEW %1$I.event_traffic_%2$s AS
			SELECT r.bucket, r.app_id, r.event_type, r.events, r.unique_users
			  FROM %1$I.rollup_event_%2$s r$q$, s, g, h);
		EXECUTE format($q$
			CREATE VIEW %1$I.app_traffic_%2$s AS
			WITH e AS (
				SELECT r.bucket, r.app_id, sum(r.events)::bigint AS events,
					   round(%3$I.hll_cardinality(%3$I.hll_union_agg(r.users)))::bigint AS unique_users
				  FROM %1$I.rollup_event_%2$s r GROUP BY r.bucket, r.app_id),
			s AS (
				SELECT r.bucket, r.app_id, sum(r.sessions)::bigint AS sessions, sum(r.bounces)::bigint AS bounces,
					   sum(r.duration_seconds) AS duration_seconds
				  FROM %1$I.rollup_session_%2$s r GROUP BY r.bucket, r.app_id)
			SELECT coalesce(e.bucket, s.bucket) AS bucket, coalesce(e.app_id, s.app_id) AS app_id,
				   coalesce(e.events, 0) AS events, coalesce(e.unique_users, 0) AS unique_users,
				   coalesce(s.sessions, 0) AS sessions, coalesce(s.bounces, 0) AS bounces,
				   round(s.bounces::numeric / nullif(s.sessions, 0), 4) AS bounce_rate,
				   round(s.duration_seconds / nullif(s.sessions, 0), 3) AS avg_session_seconds
			  FROM e FULL JOIN s ON s.bucket = e.bucket AND s.app_id IS NOT DISTINCT FROM e.app_id$q$, s, g, h);
		EXECUTE format('COMMENT ON VIEW %I.%I IS %L', s, 'page_traffic_' || g,
					   format('Traffic per %s (UTC), app and page, from the live rollups', g));
		EXECUTE format('COMMENT ON VIEW %I.%I IS %L', s, 'event_traffic_' || g,
					   format('Traffic per %s (UTC), app and event type, from the live rollups', g));
		EXECUTE format('COMMENT ON VIEW %I.%I IS %L', s, 'app_traffic_' || g,
					   format('Traffic, sessions and bounce rate per %s (UTC) and app, from the live rollups (sessions counted in the %s they start)', g, g));
		FOR c IN
			SELECT v.view, v.col, v.comment
			  FROM (VALUES
				('page_traffic_', 'bucket', 'Start of the ' || g || ' (UTC) of the event time'),
				('page_traffic_', 'app_id', 'Application'),
				('page_traffic_', 'page_sk', 'Page surrogate key (dim_page)'),
				('page_traffic_', 'page_url', 'Page URL'),
				('page_traffic_', 'host', 'Host of the page URL'),
				('page_traffic_', 'path', 'Path of the page URL'),
				('page_traffic_', 'events', 'Events on the page'),
				('page_traffic_', 'page_views', 'page_view events on the page'),
				('page_traffic_', 'unique_users', 'Distinct users (HyperLogLog estimate, exact for small counts)'),
				('event_traffic_', 'bucket', 'Start of the ' || g || ' (UTC) of the event time'),
				('event_traffic_', 'app_id', 'Application'),
				('event_traffic_', 'event_type', 'Event type (page_view, click, scroll, add_to_cart, purchase, signup, login, search)'),
				('event_traffic_', 'events', 'Events of the type'),
				('event_traffic_', 'unique_users', 'Distinct users (HyperLogLog estimate, exact for small counts)'),
				('app_traffic_', 'bucket', 'Start of the ' || g || ' (UTC): of the event time for events, of the session start for sessions'),
				('app_traffic_', 'app_id', 'Application'),
				('app_traffic_', 'events', 'Events'),
				('app_traffic_', 'unique_users', 'Distinct users (HyperLogLog estimate, exact for small counts)'),
				('app_traffic_', 'sessions', 'Sessions starting in the bucket'),
				('app_traffic_', 'bounces', 'Sessions with a single event'),
				('app_traffic_', 'bounce_rate', 'bounces / sessions'),
				('app_traffic_', 'avg_session_seconds', 'Mean session duration in seconds')) AS v(view, col, comment)
		LOOP
			EXECUTE format('COMMENT ON COLUMN %I.%I.%I IS %L', s, c.view || g, c.col, c.comment);
		END LOOP;
	END LOOP;
END
$fn$;
COMMENT ON FUNCTION camperso._create_rollup_views(text, name) IS 'Internal: the analyst views of a model''s rollups, with column comments';

REVOKE ALL ON camperso.rollups FROM PUBLIC;
REVOKE ALL ON FUNCTION camperso.hll_schema(), camperso._rollup_clicks_sql(text, name, text, text, boolean),
	camperso._rollup_sessions_sql(text, text, text, integer), camperso._rollup_changed_sql(text, text, text, boolean),
	camperso._rollup_clicks_trigger(), camperso._rollup_sessions_trigger(), camperso.create_rollups(name),
	camperso.rebuild_rollups(name), camperso.rollup_check(name), camperso.drop_rollups(name),
	camperso._create_rollup_views(text, name) FROM PUBLIC;
