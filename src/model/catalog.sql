-- model: the catalog of clickstream models, their load watermarks, and the
-- small parsers the model uses for its dimensions.

CREATE TABLE camperso.models (
	schema_name				text PRIMARY KEY,
	lateness				interval NOT NULL DEFAULT '1 day' CHECK (lateness > interval '0'),
	session_timeout			interval NOT NULL DEFAULT '30 minutes' CHECK (session_timeout > interval '0'),
	future_tolerance		interval NOT NULL DEFAULT '1 hour' CHECK (future_tolerance >= interval '0'),
	scan_slack				interval NOT NULL DEFAULT '5 minutes' CHECK (scan_slack >= interval '0'),
	event_watermark			timestamptz,
	max_session_duration	interval NOT NULL DEFAULT '0',
	last_load_at			timestamptz,
	last_load_rows			bigint,
	owner					name NOT NULL DEFAULT current_user,
	created_at				timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE camperso.models IS 'Clickstream models made by create_clickstream_model, with the settings and state of their incremental load';
COMMENT ON COLUMN camperso.models.lateness IS 'How far behind the latest loaded event time an event may be and still be loaded (its sessions rebuilt); older ones are quarantined as late_event';
COMMENT ON COLUMN camperso.models.session_timeout IS 'Inactivity that ends a session: a gap of at least this long between two events of a user starts a new session';
COMMENT ON COLUMN camperso.models.future_tolerance IS 'How far ahead of now() an event time may be; later ones are quarantined as future_event';
COMMENT ON COLUMN camperso.models.scan_slack IS 'Longest time between a row''s _received_at stamp and the start of the transaction that lands it (capture batching); bounds the staging scan';
COMMENT ON COLUMN camperso.models.event_watermark IS 'Latest event time loaded; the lateness window counts back from it';
COMMENT ON COLUMN camperso.models.max_session_duration IS 'Longest session built so far; bounds the search for sessions a late event may join';
REVOKE ALL ON camperso.models FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('camperso.models', '');

CREATE TABLE camperso.model_watermarks (
	schema_name	text NOT NULL REFERENCES camperso.models (schema_name) ON DELETE CASCADE,
	staging		text NOT NULL,
	next_xid	xid8 NOT NULL DEFAULT '0',
	loaded_above xid8[] NOT NULL DEFAULT '{}',
	scan_from	timestamptz NOT NULL DEFAULT '-infinity',
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (schema_name, staging)
);
COMMENT ON TABLE camperso.model_watermarks IS 'Per model and staging table, where the next load starts: rows whose inserting transaction is at or above next_xid and not in loaded_above, received at or after scan_from';
COMMENT ON COLUMN camperso.model_watermarks.next_xid IS 'xmin of the previous load''s snapshot: every transaction below it had ended, and its rows were loaded';
COMMENT ON COLUMN camperso.model_watermarks.loaded_above IS 'Transactions at or above next_xid whose rows were already loaded (committed while an older one was still open)';
REVOKE ALL ON camperso.model_watermarks FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('camperso.model_watermarks', '');

CREATE FUNCTION camperso._xid_full(xid) RETURNS xid8
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_xid_full';
COMMENT ON FUNCTION camperso._xid_full(xid) IS 'Internal: the 64-bit transaction id of a recent 32-bit one (row xmin), for load watermarks';

CREATE FUNCTION camperso._oldest_write_xact_start() RETURNS timestamptz
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_oldest_write_xact_start';
COMMENT ON FUNCTION camperso._oldest_write_xact_start() IS 'Internal: start of the oldest other transaction holding a transaction id, NULL if none; bounds the load''s staging scan';

-- ---------------------------------------------------------------------------
-- Parsers for dim_page and dim_device. Plain SQL, immutable: a URL or user
-- agent always maps to the same attributes.
-- ---------------------------------------------------------------------------
-- The URL parsers carry no SET clause so that the planner inlines them into
-- the load's query (a SET clause makes every call a function call of its
-- own, which costs more than the regular expressions); every function and
-- operator in them is schema-qualified instead, so no search_path steers
-- them.
CREATE FUNCTION camperso.url_host(url text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.lower(pg_catalog."substring"(url, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?(\[[^]/?#]*\]|[^/?#:]*)'))
$$;
COMMENT ON FUNCTION camperso.url_host(text) IS 'Host of an absolute URL, lower case, without user info or port; NULL when the text is not an absolute URL';

CREATE FUNCTION camperso.url_path(url text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT CASE WHEN url OPERATOR(pg_catalog.~) '^[A-Za-z][A-Za-z0-9+.-]*://'
				THEN coalesce(pg_catalog."substring"(url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*(/[^?#]*)'), '/')
		   END
$$;
COMMENT ON FUNCTION camperso.url_path(text) IS 'Path of an absolute URL without query or fragment, "/" when empty; NULL when the text is not an absolute URL';

CREATE FUNCTION camperso.parse_user_agent(user_agent text,
										  OUT browser text, OUT browser_version text, OUT os text, OUT device_class text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
	SELECT
		CASE
			WHEN ua IS NULL OR ua = '' THEN 'Unknown'
			WHEN bot THEN 'Bot'
			WHEN ua ~ 'Edg(e|A|iOS)?/' THEN 'Edge'
			WHEN ua ~ '(OPR|Opera)/' THEN 'Opera'
			WHEN ua ~ 'SamsungBrowser/' THEN 'Samsung Internet'
			WHEN ua ~ '(Firefox|FxiOS)/' THEN 'Firefox'
			WHEN ua ~ '(Chrome|CriOS|Chromium)/' THEN 'Chrome'
			WHEN ua ~ '(MSIE |Trident/)' THEN 'Internet Explorer'
			WHEN ua ~ 'Safari/' THEN 'Safari'
			ELSE 'Other'
		END,
		CASE
			WHEN ua IS NULL OR bot THEN NULL
			WHEN ua ~ 'Edg(e|A|iOS)?/' THEN substring(ua FROM 'Edg(?:e|A|iOS)?/([0-9]+)')
			WHEN ua ~ '(OPR|Opera)/' THEN substring(ua FROM '(?:OPR|Opera)/([0-9]+)')
			WHEN ua ~ 'SamsungBrowser/' THEN substring(ua FROM 'SamsungBrowser/([0-9]+)')
			WHEN ua ~ '(Firefox|FxiOS)/' THEN substring(ua FROM '(?:Firefox|FxiOS)/([0-9]+)')
			WHEN ua ~ '(Chrome|CriOS|Chromium)/' THEN substring(ua FROM '(?:Chrome|CriOS|Chromium)/([0-9]+)')
			WHEN ua ~ 'MSIE ' THEN substring(ua FROM 'MSIE ([0-9]+)')
			WHEN ua ~ 'Trident/' THEN substring(ua FROM 'rv:([0-9]+)')
			WHEN ua ~ 'Safari/' THEN substring(ua FROM 'Version/([0-9]+)')
		END,
		CASE
			WHEN ua IS NULL OR ua = '' THEN 'Unknown'
			WHEN ua ~ 'Windows Phone' THEN 'Windows Phone'
			WHEN ua ~ 'Windows' THEN 'Windows'
			WHEN ua ~ '(iPhone|iPad|iPod)' THEN 'iOS'
			WHEN ua ~ 'Android' THEN 'Android'
			WHEN ua ~ 'CrOS' THEN 'ChromeOS'
			WHEN ua ~ '(Mac OS X|Macintosh)' THEN 'macOS'
			WHEN ua ~ 'Linux' THEN 'Linux'
			ELSE 'Other'
		END,
		CASE
			WHEN ua IS NULL OR ua = '' THEN 'unknown'
			WHEN bot THEN 'bot'
			WHEN ua ~* '(ipad|tablet|kindle|silk/|playbook)' OR (ua ~* 'android' AND ua !~* 'mobile') THEN 'tablet'
			WHEN ua ~* '(mobi|iphone|ipod|windows phone|blackberry|opera mini)' THEN 'mobile'
			WHEN ua ~* '(smart-?tv|hbbtv|appletv|googletv|roku|playstation|xbox|nintendo)' THEN 'tv'
			ELSE 'desktop'
		END
	  FROM (SELECT user_agent AS ua,
				   coalesce(user_agent ~* '(bot|crawler|spider|slurp|bingpreview|facebookexternalhit|curl/|wget/|python-requests|headless)', false) AS bot) x
$$;
COMMENT ON FUNCTION camperso.parse_user_agent(text) IS 'Browser, major browser version, operating system and device class (desktop, mobile, tablet, tv, bot, unknown) of a User-Agent string';

-- camperso.model_relations: the relations of every clickstream model whose
-- freshness observe watches (stat_freshness, alerts), with the column that
-- holds their event time and when the model was made: an empty relation of
-- a new model is breached only once its SLA has passed since then.
CREATE FUNCTION camperso.model_relations(OUT relation text, OUT time_column name, OUT watched_since timestamptz)
RETURNS SETOF record
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT format('%s.%s', m.schema_name, r.rel), r.col, m.created_at
	  FROM camperso.models m,
		   (VALUES ('events', 'ts'::name), ('user_updates', 'updated_at'),
				   ('fact_clicks', 'event_ts'), ('fact_sessions', 'session_end')) AS r(rel, col)
	 WHERE to_regclass(format('%I.%I', m.schema_name, r.rel)) IS NOT NULL
$$;
COMMENT ON FUNCTION camperso.model_relations() IS 'Relations of the clickstream models watched for freshness: staging events and user_updates, fact_clicks and fact_sessions, with their event-time column and the model''s creation time';
REVOKE ALL ON FUNCTION camperso.model_relations() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.model_relations() TO camperso_admin, pg_monitor;
