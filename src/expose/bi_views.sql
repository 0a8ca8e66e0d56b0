-- expose/bi_views.sql: the BI views of a clickstream model, made by
-- camperso.create_bi_views(schema): clicks_wide (every event with its page,
-- device, day, and its user's attributes both as of the event and now) and
-- sessions. Every column carries a comment, which BI tools show as its
-- description. Once the schema is secured (camperso.secure_schema) they are
-- security_invoker views: readers see the rows of their apps only.

CREATE FUNCTION camperso.create_bi_views(schema name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
DECLARE
	s text := $1;
	c record;
BEGIN
	IF to_regclass(format('%I.fact_clicks', s)) IS NULL OR to_regclass(format('%I.fact_sessions', s)) IS NULL THEN
		RAISE EXCEPTION 'no clickstream model in schema "%"', s
			USING ERRCODE = 'undefined_object', HINT = 'Create it with camperso.create_clickstream_model().';
	END IF;

	EXECUTE format($q$
		CREATE VIEW %1$I.clicks_wide AS
		SELECT f.event_id, f.event_ts, d.date AS event_date, f.app_id, f.event_type,
			   f.user_id, f.session_id,
			   p.page_url, p.host AS page_host, p.path AS page_path, f.referrer,
			   v.browser, v.browser_version, v.os, v.device_class,
			   f.country AS event_country,
			   u.country AS user_country_at_event, u.plan AS user_plan_at_event,
			   cu.country AS user_country_current, cu.plan AS user_plan_current,
			   f.props, f.loaded_at
		  FROM %1$I.fact_clicks f
		  JOIN %1$I.dim_date d ON d.date_key = f.date_key
		  JOIN %1$I.dim_page p ON p.dim_page_sk = f.page_sk
		  JOIN %1$I.dim_device v ON v.dim_device_sk = f.device_sk
		  JOIN %1$I.dim_user u ON u.dim_user_sk = f.user_sk
		  LEFT JOIN %1$I.dim_user cu ON cu.user_id = f.user_id AND cu.is_current$q$, s);
	EXECUTE format($q$COMMENT ON VIEW %1$I.clicks_wide IS 'Every event with its page, device and day, and its user''s attributes as of the event (SCD2 version) and as they are now; one row per fact_clicks row'$q$, s);

	EXECUTE format($q$
		CREATE VIEW %1$I.sessions AS
		SELECT fs.session_key, fs.user_id, fs.app_id, fs.session_start, fs.session_end,
			   d.date AS session_date, fs.duration_seconds, fs.event_count, fs.page_count, fs.is_bounce,
			   ep.page_url AS entry_page_url, ep.path AS entry_page_path,
			   xp.page_url AS exit_page_url, xp.path AS exit_page_path,
			   v.browser, v.os, v.device_class,
			   u.country AS user_country_at_start, u.plan AS user_plan_at_start,
			   cu.country AS user_country_current, cu.plan AS user_plan_current
		  FROM %1$I.fact_sessions fs
		  JOIN %1$I.dim_date d ON d.date_key = fs.date_key
		  JOIN %1$I.dim_page ep ON ep.dim_page_sk = fs.entry_page_sk
		  JOIN %1$I.dim_page xp ON xp.dim_page_sk = fs.exit_page_sk
		  JOIN %1$I.dim_device v ON v.dim_device_sk = fs.device_sk
		  JOIN %1$I.dim_user u ON u.dim_user_sk = fs.user_sk
		  LEFT JOIN %1$I.dim_user cu ON cu.user_id = fs.user_id AND cu.is_current$q$, s);
	EXECUTE format($q$COMMENT ON VIEW %1$I.sessions IS 'Sessions (events of a user with gaps shorter than the session timeout) with entry and exit pages, device, and the user''s attributes as of the session start and now; one row per fact_sessions row'$q$, s);

	FOR c IN
		SELECT x.view, x.col, x.comment
		  FROM (VALUES
			('clicks_wide', 'event_id', 'Event identifier sent by the client (UUID)'),
			('clicks_wide', 'event_ts', 'Event time as sent by the client'),
			('clicks_wide', 'event_date', 'UTC day of the event time'),
			('clicks_wide', 'app_id', 'Application that sent the event'),
			('clicks_wide', 'event_type', 'page_view, click, scroll, add_to_cart, purchase, signup, login or search'),
			('clicks_wide', 'user_id', 'User identifier as landed (pseudonymised when the source says so)'),
			('clicks_wide', 'session_id', 'Session id sent by the client; the sessions view holds the sessions camperso computes'),
			('clicks_wide', 'page_url', 'URL of the page'),
			('clicks_wide', 'page_host', 'Host of the page URL'),
			('clicks_wide', 'page_path', 'Path of the page URL, without query or fragment'),
			('clicks_wide', 'referrer', 'Referrer URL sent with the event'),
			('clicks_wide', 'browser', 'Browser parsed from the User-Agent'),
			('clicks_wide', 'browser_version', 'Major browser version'),
			('clicks_wide', 'os', 'Operating system parsed from the User-Agent'),
			('clicks_wide', 'device_class', 'desktop, mobile, tablet, tv, bot or unknown'),
			('clicks_wide', 'event_country', 'Country sent with the event (ISO 3166 alpha-2)'),
			('clicks_wide', 'user_country_at_event', 'Country of the user''s profile when the event happened (SCD2 as of)'),
			('clicks_wide', 'user_plan_at_event', 'Plan (free, pro, enterprise) of the user when the event happened (SCD2 as of)'),
			('clicks_wide', 'user_country_current', 'Country of the user''s profile now'),
			('clicks_wide', 'user_plan_current', 'Plan of the user now'),
			('clicks_wide', 'props', 'Event properties (JSON object)'),
			('clicks_wide', 'loaded_at', 'When the event was loaded into the facts'),
			('sessions', 'session_key', 'Session identifier: md5 of user and start time'),
			('sessions', 'user_id', 'User identifier as landed'),
			('sessions', 'app_id', 'Application of the session''s first event'),
			('sessions', 'session_start', 'Time of the first event'),
			('sessions', 'session_end', 'Time of the last event'),
			('sessions', 'session_date', 'UTC day of the session start'),
			('sessions', 'duration_seconds', 'Seconds from the first to the last event'),
			('sessions', 'event_count', 'Events in the session'),
			('sessions', 'page_count', 'page_view events in the session'),
			('sessions', 'is_bounce', 'The session has a single event'),
			('sessions', 'entry_page_url', 'URL of the first page'),
			('sessions', 'entry_page_path', 'Path of the first page'),
			('sessions', 'exit_page_url', 'URL of the last page'),
			('sessions', 'exit_page_path', 'Path of the last page'),
			('sessions', 'browser', 'Browser of the session''s first event'),
			('sessions', 'os', 'Operating system of the session''s first event'),
			('sessions', 'device_class', 'desktop, mobile, tablet, tv, bot or unknown'),
			('sessions', 'user_country_at_start', 'Country of the user''s profile when the session started (SCD2 as of)'),
			('sessions', 'user_plan_at_start', 'Plan of the user when the session started (SCD2 as of)'),
			('sessions', 'user_country_current', 'Country of the user''s profile now'),
			('sessions', 'user_plan_current', 'Plan of the user now')) AS x(view, col, comment)
	LOOP
		EXECUTE format('COMMENT ON COLUMN %I.%I.%I IS %L', s, c.view, c.col, c.comment);
	END LOOP;
END
$fn$;
COMMENT ON FUNCTION camperso.create_bi_views(name) IS 'Creates the BI views of a clickstream model: clicks_wide (events with page, device, day and user attributes as of the event and now) and sessions, every column commented';

CREATE FUNCTION camperso.drop_bi_views(schema name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
BEGIN
	EXECUTE format('DROP VIEW IF EXISTS %1$I.clicks_wide, %1$I.sessions', $1);
END
$fn$;
COMMENT ON FUNCTION camperso.drop_bi_views(name) IS 'Drops the BI views of a clickstream model';

-- camperso.create_expose / drop_expose: what create_clickstream_model and
-- drop_clickstream_model call. Rollups need the hll extension: without it
-- (and without the right to install it) the model gets its BI views and a
-- notice saying how to add the rollups later.
CREATE FUNCTION camperso.create_expose(schema name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
BEGIN
	PERFORM camperso.create_bi_views($1);
	IF camperso.hll_schema() IS NOT NULL OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		PERFORM camperso.create_rollups($1);
	ELSE
		RAISE NOTICE 'rollups of schema "%" not created: the hll extension is not installed', $1
			USING HINT = format('A superuser runs CREATE EXTENSION hll, then SELECT camperso.create_rollups(%L).', $1);
	END IF;
END
$fn$;
COMMENT ON FUNCTION camperso.create_expose(name) IS 'The Expose stage of a clickstream model: BI views and live rollups (called by camperso.create_clickstream_model)';

CREATE FUNCTION camperso.drop_expose(schema name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $fn$
BEGIN
	PERFORM camperso.drop_rollups($1);
	PERFORM camperso.drop_bi_views($1);
END
$fn$;
COMMENT ON FUNCTION camperso.drop_expose(name) IS 'Drops the rollups and BI views of a clickstream model (called by camperso.drop_clickstream_model)';

REVOKE ALL ON FUNCTION camperso.create_bi_views(name), camperso.drop_bi_views(name),
	camperso.create_expose(name), camperso.drop_expose(name) FROM PUBLIC;
