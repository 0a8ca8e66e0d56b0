-- model: the clickstream star schema, made by create_clickstream_model()
-- and loaded by load_model() (load.sql).
--
-- Partitioning: the staging tables are partitioned by _received_at (arrival)
-- and the facts by event time. Arrival time is what capture stamps, so the
-- partition a landing row needs always exists (made ahead), a wrong or
-- hostile client clock cannot scatter raw rows over far-away days, raw
-- retention counts from arrival (how long raw data is kept for replay), and
-- the incremental load scans only the recent arrivals (partition pruning
-- plus BRIN on _received_at). Facts are partitioned by event time because
-- that is what every query filters on; a late or early event day gets its
-- partition from the load in the same transaction.

CREATE FUNCTION camperso.create_clickstream_model(schema name DEFAULT 'clickstream',
												  lateness interval DEFAULT '1 day',
												  load_every interval DEFAULT '5 seconds',
												  staging_retention interval DEFAULT '7 days',
												  fact_retention interval DEFAULT NULL,
												  premake integer DEFAULT 3,
												  validate boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
DECLARE
	s		text := $1;
	lt		interval := $2;
	every	interval := $3;
	d		text;
BEGIN
	IF s IS NULL OR s = '' THEN
		RAISE EXCEPTION 'schema must be given' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF lt IS NULL OR lt <= interval '0' THEN
		RAISE EXCEPTION 'lateness must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF every IS NULL OR every < interval '100 milliseconds' THEN
		RAISE EXCEPTION 'load_every must be at least 100 milliseconds' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT 1 FROM camperso.models WHERE schema_name = s) THEN
		RAISE EXCEPTION 'a clickstream model already exists in schema "%"', s
			USING ERRCODE = 'duplicate_object', HINT = 'Drop it first with camperso.drop_clickstream_model().';
	END IF;

	EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', s);
	EXECUTE format('COMMENT ON SCHEMA %I IS %L', s,
				   'camperso clickstream model: staging events and user_updates, dim_user (SCD2), dim_page, dim_device, dim_date, fact_clicks, fact_sessions');

	-- ---- staging: what the sources land into ------------------------------
	EXECUTE format($q$
		CREATE TABLE %1$I.events (
			event_id		uuid,
			user_id			text,
			session_id		text,
			app_id			text,
			event_type		text,
			page_url		text,
			referrer		text,
			user_agent		text,
			ip				text,
			country			text,
			ts				timestamptz,
			props			jsonb,
			_partition		integer,
			_offset			bigint,
			_key			text,
			_received_at	timestamptz NOT NULL DEFAULT now(),
			_raw			bytea,
			_routing_gap	integer
		) PARTITION BY RANGE (_received_at)$q$, s);
	-- The dropped column is deliberate. PostgreSQL 15 runs a partitioned
	-- table's BEFORE ROW triggers on a copy of each row that it only frees
	-- at the end of the statement when the trigger hands the row back
	-- unchanged (ExecBRInsertTriggers materialises the root's virtual slot):
	-- about 500 bytes kept per row, and a third more time per row, for every
	-- row trigger, validate_row() included. A parent with a dropped column
	-- and partitions made without it (persist's CREATE TABLE ... LIKE) have
	-- different tuple layouts, so each row is converted into the partition's
	-- own slot and the trigger works on that, which is freed per row.
	EXECUTE format('ALTER TABLE %1$I.events DROP COLUMN _routing_gap', s);
	EXECUTE format($q$COMMENT ON TABLE %1$I.events IS 'Staging: clickstream events as landed by the clicks source (one row per message), partitioned by arrival day; read incrementally by camperso.load_model'$q$, s);
	EXECUTE format($q$COMMENT ON COLUMN %1$I.events._received_at IS 'When the message arrived; the partition key'$q$, s);
	EXECUTE format($q$COMMENT ON COLUMN %1$I.events._raw IS 'The message exactly as received (or as the source''s pii/raw options keep it)'$q$, s);

	EXECUTE format($q$
		CREATE TABLE %1$I.user_updates (
			user_id			text,
			country			text,
			plan			text,
			email			text,
			updated_at		timestamptz,
			_partition		integer,
			_offset			bigint,
			_key			text,
			_received_at	timestamptz NOT NULL DEFAULT now(),
			_raw			bytea,
			_routing_gap	integer
		) PARTITION BY RANGE (_received_at)$q$, s);
	-- dropped at once, as on events (see there)
	EXECUTE format('ALTER TABLE %1$I.user_updates DROP COLUMN _routing_gap', s);
	EXECUTE format($q$COMMENT ON TABLE %1$I.user_updates IS 'Staging: user profile changes as landed by the users source, partitioned by arrival day; merged into dim_user'$q$, s);

	-- ---- dimensions -----------------------------------------------------------
	EXECUTE format($q$
		CREATE TABLE %1$I.dim_user (
			dim_user_sk		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			user_id			text,
			country			text,
			plan			text,
			email			text,
			valid_from		timestamptz NOT NULL,
			valid_to		timestamptz NOT NULL,
			is_current		boolean NOT NULL,
			UNIQUE (user_id, valid_from),
			CHECK (valid_to > valid_from)
		)$q$, s);
	EXECUTE format('CREATE INDEX ON %1$I.dim_user (user_id) WHERE is_current', s);
	EXECUTE format($q$COMMENT ON TABLE %1$I.dim_user IS 'Users, SCD Type 2 on country and plan: one row per version valid over [valid_from, valid_to); dim_user_sk -1 is the unknown user'$q$, s);
	EXECUTE format($q$COMMENT ON COLUMN %1$I.dim_user.email IS 'Pseudonymised e-mail (camperso.pseudonymize, keyed HMAC), type 1: the latest value on every version'$q$, s);
	EXECUTE format($q$COMMENT ON COLUMN %1$I.dim_user.valid_to IS 'End of the version, exclusive; infinity while current'$q$, s);

	EXECUTE format($q$
		CREATE TABLE %1$I.dim_page (
			dim_page_sk		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			page_url		text,
			host			text,
			path			text,
			first_seen_at	timestamptz NOT NULL DEFAULT now()
		)$q$, s);
	-- hash: URLs of any length (btree entries are capped near 2.7 kB)
	EXECUTE format('CREATE INDEX ON %1$I.dim_page USING hash (page_url)', s);
	EXECUTE format($q$COMMENT ON TABLE %1$I.dim_page IS 'Pages by URL, with host and path; dim_page_sk -1 is the unknown page'$q$, s);

	EXECUTE format($q$
		CREATE TABLE %1$I.dim_device (
			dim_device_sk	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			user_agent		text,
			browser			text,
			browser_version	text,
			os				text,
			device_class	text,
			first_seen_at	timestamptz NOT NULL DEFAULT now()
		)$q$, s);
	EXECUTE format('CREATE INDEX ON %1$I.dim_device USING hash (user_agent)', s);
	EXECUTE format($q$COMMENT ON TABLE %1$I.dim_device IS 'Devices by User-Agent: browser, major version, OS, device class (desktop, mobile, tablet, tv, bot, unknown); dim_device_sk -1 is the unknown device'$q$, s);

	EXECUTE format($q$
		CREATE TABLE %1$I.dim_date (
			date_key		integer PRIMARY KEY,
			date			date UNIQUE,
			year			smallint,
			quarter			smallint,
			month			smallint,
			month_name		text,
			day				smallint,
			day_of_week		smallint,
			day_name		text,
			iso_week		smallint,
			is_weekend		boolean
		)$q$, s);
	EXECUTE format($q$COMMENT ON TABLE %1$I.dim_date IS 'Calendar days (UTC), date_key YYYYMMDD; -1 is the unknown day'$q$, s);

	-- The unknown members: early-arriving facts point here until repaired.
	EXECUTE format($q$INSERT INTO %1$I.dim_user OVERRIDING SYSTEM VALUE
		VALUES (-1, NULL, NULL, NULL, NULL, '-infinity', 'infinity', true)$q$, s);
	EXECUTE format($q$INSERT INTO %1$I.dim_page OVERRIDING SYSTEM VALUE VALUES (-1, NULL, '(unknown)', '(unknown)', '-infinity')$q$, s);
	EXECUTE format($q$INSERT INTO %1$I.dim_device OVERRIDING SYSTEM VALUE
		VALUES (-1, NULL, 'Unknown', NULL, 'Unknown', 'unknown', '-infinity')$q$, s);
	EXECUTE format($q$INSERT INTO %1$I.dim_date VALUES (-1, NULL, NULL, NULL, NULL, '(unknown)', NULL, NULL, '(unknown)', NULL, NULL)$q$, s);
	EXECUTE format($q$SELECT camperso._fill_dim_date(%2$L::regclass, (date_trunc('year', now(), 'UTC') - interval '1 year')::date,
											  (date_trunc('year', now(), 'UTC') + interval '2 years' - interval '1 day')::date)$q$,
				   s, format('%I.dim_date', s));

	-- ---- facts ----------------------------------------------------------------
	EXECUTE format($q$
		CREATE TABLE %1$I.fact_clicks (
			event_id		uuid NOT NULL,
			event_ts		timestamptz NOT NULL,
			date_key		integer NOT NULL REFERENCES %1$I.dim_date (date_key),
			user_sk			bigint NOT NULL REFERENCES %1$I.dim_user (dim_user_sk),
			page_sk			bigint NOT NULL REFERENCES %1$I.dim_page (dim_page_sk),
			device_sk		bigint NOT NULL REFERENCES %1$I.dim_device (dim_device_sk),
			user_id			text NOT NULL,
			session_id		text,
			app_id			text,
			event_type		text NOT NULL,
			referrer		text,
			country			text,
			props			jsonb,
			loaded_at		timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (event_id, event_ts)
		) PARTITION BY RANGE (event_ts)$q$, s);
	EXECUTE format('CREATE INDEX ON %1$I.fact_clicks (user_id, event_ts)', s);
	EXECUTE format('CREATE INDEX ON %1$I.fact_clicks (user_id) WHERE user_sk = -1', s);
	EXECUTE format($q$COMMENT ON TABLE %1$I.fact_clicks IS 'One row per event, surrogate keys resolved as of the event time, partitioned by event day (UTC)'$q$, s);
	EXECUTE format($q$COMMENT ON COLUMN %1$I.fact_clicks.user_sk IS 'dim_user version valid at event_ts; -1 while the user is unknown (repaired when the user arrives)'$q$, s);
	EXECUTE format($q$COMMENT ON COLUMN %1$I.fact_clicks.session_id IS 'Session id sent by the client; fact_sessions holds the sessions camperso computes'$q$, s);

	EXECUTE format($q$
		CREATE TABLE %1$I.fact_sessions (
			session_key			uuid NOT NULL,
			session_start		timestamptz NOT NULL,
			session_end			timestamptz NOT NULL,
			duration_seconds	double precision NOT NULL,
			date_key			integer NOT NULL REFERENCES %1$I.dim_date (date_key),
			user_sk				bigint NOT NULL REFERENCES %1$I.dim_user (dim_user_sk),
			device_sk			bigint NOT NULL REFERENCES %1$I.dim_device (dim_device_sk),
			entry_page_sk		bigint NOT NULL REFERENCES %1$I.dim_page (dim_page_sk),
			exit_page_sk		bigint NOT NULL REFERENCES %1$I.dim_page (dim_page_sk),
			user_id				text NOT NULL,
			app_id				text,
			entry_event_id		uuid NOT NULL,
			exit_event_id		uuid NOT NULL,
			event_count			integer NOT NULL CHECK (event_count > 0),
			page_count			integer NOT NULL CHECK (page_count >= 0),
			is_bounce			boolean NOT NULL,
			loaded_at			timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (session_key, session_start),
			CHECK (session_end >= session_start)
		) PARTITION BY RANGE (session_start)$q$, s);
	EXECUTE format('CREATE INDEX ON %1$I.fact_sessions (user_id, session_end)', s);
	EXECUTE format($q$COMMENT ON TABLE %1$I.fact_sessions IS 'Sessions: a user''s events with gaps shorter than the session timeout (30 minutes); rebuilt when late events join or merge them; partitioned by start day (UTC)'$q$, s);
	EXECUTE format($q$COMMENT ON COLUMN %1$I.fact_sessions.session_key IS 'md5 of user_id and start time: stable while the session only grows forward'$q$, s);
	EXECUTE format($q$COMMENT ON COLUMN %1$I.fact_sessions.page_count IS 'Number of page_view events'$q$, s);
	EXECUTE format($q$COMMENT ON COLUMN %1$I.fact_sessions.is_bounce IS 'The session has a single event'$q$, s);

	-- ---- the load's work tables (unlogged scratch, emptied by every load) ----
	EXECUTE format($q$CREATE UNLOGGED TABLE %1$I._load_events (LIKE %1$I.events, reject text, _xmin xid8)$q$, s);
	EXECUTE format($q$CREATE UNLOGGED TABLE %1$I._load_users (LIKE %1$I.user_updates, reject text, _xmin xid8)$q$, s);
	EXECUTE format($q$CREATE UNLOGGED TABLE %1$I._load_new (event_id uuid, event_ts timestamptz, user_id text,
					  page_sk bigint, device_sk bigint, app_id text, is_page_view boolean)$q$, s);
	EXECUTE format($q$CREATE UNLOGGED TABLE %1$I._load_sessions (session_key uuid, session_start timestamptz,
					  session_end timestamptz, user_id text, app_id text, device_sk bigint, entry_page_sk bigint,
					  exit_page_sk bigint, entry_event_id uuid, exit_event_id uuid, event_count integer,
					  page_count integer)$q$, s);
	FOREACH d IN ARRAY ARRAY['_load_events', '_load_users', '_load_new', '_load_sessions'] LOOP
		EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', s, d);
		EXECUTE format('COMMENT ON TABLE %I.%I IS %L', s, d, 'Scratch table of camperso.load_model, emptied by every load');
	END LOOP;

	-- ---- partitions -------------------------------------------------------------
	PERFORM camperso.partition_table(format('%I.events', s)::regclass, '_received_at', '1 day', premake, staging_retention);
	PERFORM camperso.partition_table(format('%I.user_updates', s)::regclass, '_received_at', '1 day', premake, staging_retention);
	PERFORM camperso.partition_table(format('%I.fact_clicks', s)::regclass, 'event_ts', '1 day', premake, fact_retention, 'user_id');
	PERFORM camperso.partition_table(format('%I.fact_sessions', s)::regclass, 'session_start', '1 day', premake, fact_retention, 'user_id');

	-- ---- catalog: dimensions, the model, watermarks, its load job -------------
	INSERT INTO camperso.dimensions AS x (dim, natural_key, scd2, tracked, type1, effective_column)
	VALUES (format('%I.dim_user', s)::regclass, '{user_id}', true, '{country,plan}', '{email}', 'updated_at'),
		   (format('%I.dim_page', s)::regclass, '{page_url}', false, '{}', '{}', NULL),
		   (format('%I.dim_device', s)::regclass, '{user_agent}', false, '{}', '{}', NULL),
		   (format('%I.dim_date', s)::regclass, '{date}', false, '{}', '{}', NULL)
	ON CONFLICT (dim) DO UPDATE SET natural_key = EXCLUDED.natural_key, scd2 = EXCLUDED.scd2,
		tracked = EXCLUDED.tracked, type1 = EXCLUDED.type1, effective_column = EXCLUDED.effective_column;
	INSERT INTO camperso.models (schema_name, lateness) VALUES (s, lt);
	INSERT INTO camperso.model_watermarks (schema_name, staging) VALUES (s, 'events'), (s, 'user_updates');
	INSERT INTO camperso.jobs AS j (name, command, run_every)
	VALUES ('load_model:' || s, format('SELECT camperso.load_model(%L)', s), every)
	ON CONFLICT ON CONSTRAINT jobs_pkey DO UPDATE SET command = EXCLUDED.command, run_every = EXCLUDED.run_every,
		enabled = true, failures = 0, next_run_at = now();

	-- The validation ruleset, when the validate stage made it: rows inserted
	-- into events by SQL (not through a source, which validates as it lands)
	-- are checked by a trigger.
	IF validate AND to_regprocedure('camperso.validate_row()') IS NOT NULL AND to_regclass('camperso.rulesets') IS NOT NULL THEN
		EXECUTE 'SELECT EXISTS (SELECT 1 FROM camperso.rulesets WHERE name = $1)' INTO STRICT d USING 'clickstream';
		IF d::boolean THEN
			EXECUTE format('CREATE TRIGGER events_validate BEFORE INSERT ON %I.events FOR EACH ROW EXECUTE FUNCTION camperso.validate_row(%L)',
						   s, 'clickstream');
		END IF;
	END IF;

	-- Rollups and BI views (src/expose/), before securing so that they are
	-- secured with the rest.
	PERFORM camperso.create_expose(s);

	-- Privileges per role, row-level security by app_id, masked views
	-- (security stage). dim_user.email is already a pseudonym: kept as is.
	INSERT INTO camperso.masks (relation, column_name, mask)
	VALUES (format('%I.dim_user', s)::regclass, 'email', 'keep') ON CONFLICT DO NOTHING;
	PERFORM camperso.secure_schema(s, ARRAY['events', 'user_updates']);
	RETURN s;
END
$fn$;
COMMENT ON FUNCTION camperso.create_clickstream_model(name, interval, interval, interval, interval, integer, boolean) IS
'Creates the clickstream star schema in a schema: staging events and user_updates (source targets, partitioned by arrival day), dim_user (SCD2), dim_page, dim_device, dim_date, fact_clicks and fact_sessions (partitioned by event day), and schedules its incremental load (camperso.load_model) every load_every; validate attaches the clickstream ruleset to events as a trigger when it exists';

CREATE FUNCTION camperso._fill_dim_date(dim regclass, first date, last date) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
		INSERT INTO %s (date_key, date, year, quarter, month, month_name, day, day_of_week, day_name, iso_week, is_weekend)
		SELECT to_char(d, 'YYYYMMDD')::integer, d, extract(year FROM d), extract(quarter FROM d), extract(month FROM d),
			   to_char(d, 'FMMonth'), extract(day FROM d), extract(isodow FROM d), to_char(d, 'FMDay'),
			   extract(week FROM d), extract(isodow FROM d) IN (6, 7)
		  FROM generate_series($1::timestamp, $2::timestamp, interval '1 day') g, LATERAL (SELECT g::date AS d) x
		ON CONFLICT DO NOTHING$q$, dim) USING first, last;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION camperso._fill_dim_date(regclass, date, date) IS 'Internal: adds the days first..last missing from a dim_date';

CREATE FUNCTION camperso.drop_clickstream_model(schema name) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
	s	text := $1;
	t	text;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM camperso.models WHERE schema_name = s) THEN
		RAISE EXCEPTION 'no clickstream model in schema "%"', s USING ERRCODE = 'undefined_object';
	END IF;
	DELETE FROM camperso.jobs WHERE name = 'load_model:' || s;
	PERFORM camperso.drop_expose(s);
	DELETE FROM camperso.models WHERE schema_name = s;
	FOREACH t IN ARRAY ARRAY['fact_clicks', 'fact_sessions', 'events', 'user_updates', 'dim_user', 'dim_page',
							 'dim_device', 'dim_date', '_load_events', '_load_users', '_load_new', '_load_sessions'] LOOP
		IF to_regclass(format('%I.%I', s, t)) IS NOT NULL THEN
			DELETE FROM camperso.dimensions WHERE dim = format('%I.%I', s, t)::regclass;
			DELETE FROM camperso.partition_config WHERE parent = format('%I.%I', s, t)::regclass;
			EXECUTE format('DROP TABLE %I.%I CASCADE', s, t);
		END IF;
	END LOOP;
	-- The schema goes too when nothing else lives in it.
	BEGIN
		EXECUTE format('DROP SCHEMA %I', s);
	EXCEPTION WHEN dependent_objects_still_exist THEN
		NULL;
	END;
END
$$;
COMMENT ON FUNCTION camperso.drop_clickstream_model(name) IS 'Drops a clickstream model: its tables (and what depends on them), its load job and catalog entries, and its schema when left empty';
