-- observe/config.sql: the observability settings (lineage names, alert
-- thresholds and windows) and the per-relation freshness SLAs.
--
-- Settings have built-in defaults (camperso.observe_defaults()); the table
-- camperso.observe_settings holds only what an administrator changed, so a
-- dump carries exactly the overrides and an upgrade may change a default.

CREATE FUNCTION camperso.observe_defaults(
	OUT name text, OUT value text, OUT type text, OUT description text)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
	VALUES
	('lineage_namespace', '', 'text',
	 'OpenLineage namespace of the datasets in this database; empty means postgres://<first listen address>:<port>'),
	('lineage_job_namespace', 'camperso', 'text',
	 'OpenLineage namespace of the camperso jobs'),
	('lineage_producer', 'urn:camperso:' || camperso.version(), 'text',
	 'URI written as the producer of lineage events and facets'),
	('freshness_sla', '15 minutes', 'interval',
	 'Default freshness SLA of a model relation or a source without one of its own (camperso.set_freshness_sla)'),
	('volume_window', '5 minutes', 'interval',
	 'Volume-drop alert: the window whose message count is compared'),
	('volume_history', '1 hour', 'interval',
	 'Volume-drop alert: how far back the moving average of the same window reaches'),
	('volume_fraction', '0.5', 'numeric',
	 'Volume-drop alert: fires when the last window holds fewer messages than this fraction of the moving average'),
	('volume_min_average', '10', 'numeric',
	 'Volume-drop alert: feeds whose moving average per window is below this are too small to judge'),
	('consumer_lag_threshold', '10000', 'bigint',
	 'Consumer-lag alert: messages behind the high watermark, summed over a source''s partitions'),
	('quarantine_window', '5 minutes', 'interval',
	 'Quarantine-spike alert: the window whose quarantined rows are counted'),
	('quarantine_history', '1 hour', 'interval',
	 'Quarantine-spike alert: how far back the moving average reaches'),
	('quarantine_spike_factor', '3', 'numeric',
	 'Quarantine-spike alert: fires when the last window holds more than this many times the moving average'),
	('quarantine_spike_min', '10', 'bigint',
	 'Quarantine-spike alert: fewer quarantined rows than this in the window never fire'),
	('sample_retention', '1 day', 'interval',
	 'How long camperso.check_alerts() keeps the counter samples behind the volume figures')
$$;
COMMENT ON FUNCTION camperso.observe_defaults() IS 'Built-in defaults of the observability settings';

CREATE TABLE camperso.observe_settings (
	name		text PRIMARY KEY,
	value		text NOT NULL,
	changed_at	timestamptz NOT NULL DEFAULT now(),
	changed_by	name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE camperso.observe_settings IS 'Observability settings changed from their defaults; set them with camperso.set_observe_setting()';
SELECT pg_catalog.pg_extension_config_dump('camperso.observe_settings', '');

-- camperso.observe_setting: the current value of one setting.
CREATE FUNCTION camperso.observe_setting(name text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
	SELECT coalesce(s.value, d.value)
	  FROM camperso.observe_defaults() d
	  LEFT JOIN camperso.observe_settings s ON s.name = d.name
	 WHERE d.name = $1
$$;
COMMENT ON FUNCTION camperso.observe_setting(text) IS 'Current value of an observability setting (its override, else its default); NULL for an unknown name';

CREATE FUNCTION camperso.set_observe_setting(name text, value text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
	kind text;
BEGIN
	SELECT d.type INTO kind FROM camperso.observe_defaults() d WHERE d.name = set_observe_setting.name;
	IF kind IS NULL THEN
		RAISE EXCEPTION 'unknown observability setting "%"', name
			USING ERRCODE = 'undefined_object',
				  DETAIL = 'The settings are listed by the view camperso.observe_settings_all.';
	END IF;
	IF value IS NULL THEN
		DELETE FROM camperso.observe_settings s WHERE s.name = set_observe_setting.name;
		RETURN camperso.observe_setting(name);
	END IF;
	-- Reject values that do not convert, and nonsense such as negative windows.
	BEGIN
		CASE kind
			WHEN 'interval' THEN
				IF value::interval <= interval '0' THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value';
				END IF;
			WHEN 'numeric' THEN
				IF value::numeric < 0 OR value::numeric = 'NaN' THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value';
				END IF;
			WHEN 'bigint' THEN
				IF value::bigint < 0 THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value';
				END IF;
			ELSE
				IF length(value) > 1000 THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value';
				END IF;
		END CASE;
	EXCEPTION
		WHEN invalid_parameter_value OR invalid_text_representation OR invalid_datetime_format
			OR datetime_field_overflow OR numeric_value_out_of_range OR interval_field_overflow
			OR syntax_error THEN
			RAISE EXCEPTION 'invalid value for observability setting "%": "%"', name, left(value, 100)
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = format('The setting takes a positive %s.', kind);
	END;
	INSERT INTO camperso.observe_settings AS s (name, value)
	VALUES (set_observe_setting.name, set_observe_setting.value)
	ON CONFLICT ON CONSTRAINT observe_settings_pkey
	DO UPDATE SET value = EXCLUDED.value, changed_at = now(), changed_by = current_user;
	RETURN value;
END
$$;
COMMENT ON FUNCTION camperso.set_observe_setting(text, text) IS 'Changes an observability setting; NULL puts back its default. Returns the value now in force';

CREATE VIEW camperso.observe_settings_all AS
	SELECT d.name, coalesce(s.value, d.value) AS value, d.value AS default_value,
		   d.type, s.name IS NULL AS is_default, d.description
	  FROM camperso.observe_defaults() d
	  LEFT JOIN camperso.observe_settings s ON s.name = d.name;
COMMENT ON VIEW camperso.observe_settings_all IS 'Every observability setting with its value in force, its default and what it means';

-- ---------------------------------------------------------------------------
-- Freshness SLAs, per model relation or per source.
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.freshness_slas (
	kind		text NOT NULL CHECK (kind IN ('relation', 'source')),
	name		text NOT NULL,
	sla			interval CHECK (sla > interval '0'),
	time_column	name,
	PRIMARY KEY (kind, name)
);
COMMENT ON TABLE camperso.freshness_slas IS 'Freshness SLA per relation (qualified name) or per source; a relation listed here is monitored even outside a model; a NULL SLA turns the check off for that object';
COMMENT ON COLUMN camperso.freshness_slas.sla IS 'Longest acceptable age of the newest event; NULL: not monitored';
COMMENT ON COLUMN camperso.freshness_slas.time_column IS 'Relation column holding the event time whose maximum is the newest event (NULL: the model''s own column, or only the last load time counts)';
SELECT pg_catalog.pg_extension_config_dump('camperso.freshness_slas', '');

CREATE FUNCTION camperso.set_freshness_sla(name text, sla interval, kind text DEFAULT 'relation', time_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
-- No pinned search_path: relation names resolve as the caller writes them.
AS $$
DECLARE
	key text := name;
	rel regclass;
	coltype regtype;
BEGIN
	IF kind IS NULL OR kind NOT IN ('relation', 'source') THEN
		RAISE EXCEPTION 'invalid freshness kind "%"', kind
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''relation'' for a relation or ''source'' for a source.';
	END IF;
	IF sla IS NOT NULL AND sla <= interval '0' THEN
		RAISE EXCEPTION 'freshness SLA must be positive'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('The SLA given was %s.', sla);
	END IF;
	IF kind = 'source' THEN
		IF time_column IS NOT NULL THEN
			RAISE EXCEPTION 'a source has no time column'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'The freshness of a source is the arrival of its newest message.';
		END IF;
		IF NOT EXISTS (SELECT FROM camperso.sources s WHERE s.name = key) THEN
			RAISE EXCEPTION 'source "%" does not exist', name USING ERRCODE = 'undefined_object';
		END IF;
	ELSE
		-- Store the qualified name, so that "fact_clicks" and
		-- "clickstream.fact_clicks" name the same row.
		BEGIN
			rel := to_regclass(name);
		EXCEPTION WHEN OTHERS THEN
			rel := NULL;
		END;
		IF rel IS NULL THEN
			RAISE EXCEPTION 'relation "%" does not exist', name USING ERRCODE = 'undefined_table';
		END IF;
		SELECT format('%s.%s', n.nspname, c.relname) INTO key
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.oid = rel;
		IF time_column IS NOT NULL THEN
			SELECT a.atttypid::regtype INTO coltype
			  FROM pg_attribute a
			 WHERE a.attrelid = rel AND a.attname = time_column AND a.attnum > 0 AND NOT a.attisdropped;
			IF coltype IS NULL THEN
				RAISE EXCEPTION 'column "%" of relation "%" does not exist', time_column, key
					USING ERRCODE = 'undefined_column';
			END IF;
			IF coltype NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
				RAISE EXCEPTION 'column "%" of relation "%" is not a time', time_column, key
					USING ERRCODE = 'datatype_mismatch',
						  DETAIL = format('Its type is %s; a time column is timestamptz, timestamp or date.', coltype);
			END IF;
		END IF;
	END IF;
	INSERT INTO camperso.freshness_slas AS f (kind, name, sla, time_column) VALUES (kind, key, sla, time_column)
	ON CONFLICT ON CONSTRAINT freshness_slas_pkey DO UPDATE SET sla = EXCLUDED.sla, time_column = EXCLUDED.time_column;
END
$$;
COMMENT ON FUNCTION camperso.set_freshness_sla(text, interval, text, name) IS 'Sets the freshness SLA of a relation (kind relation, with the column holding its event time) or a source (kind source); a NULL SLA stops monitoring it';

REVOKE ALL ON camperso.observe_settings, camperso.freshness_slas FROM PUBLIC;
REVOKE ALL ON FUNCTION camperso.set_observe_setting(text, text), camperso.set_freshness_sla(text, interval, text, name) FROM PUBLIC;
GRANT SELECT ON camperso.observe_settings, camperso.freshness_slas, camperso.observe_settings_all TO camperso_admin, pg_monitor;
GRANT ALL ON camperso.observe_settings, camperso.freshness_slas TO camperso_admin;
GRANT EXECUTE ON FUNCTION camperso.set_observe_setting(text, text), camperso.set_freshness_sla(text, interval, text, name) TO camperso_admin;
REVOKE ALL ON FUNCTION camperso.observe_defaults(), camperso.observe_setting(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.observe_defaults(), camperso.observe_setting(text) TO camperso_admin, pg_monitor;
