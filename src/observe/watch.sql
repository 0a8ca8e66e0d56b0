-- observe/watch.sql: camperso.alerts, what is wrong now, and
-- camperso.check_alerts(), the periodic job that remembers which alerts
-- are active, raises NOTIFY camperso_alerts once when one starts and
-- clears the ones that resolved.
--
-- An alert is identified by (kind, subject). Kinds:
--   freshness_breach  a relation or source older than its SLA (stat_freshness)
--   volume_drop       a source's messages in the last volume_window below
--                     volume_fraction of the moving average of that window
--                     over volume_history (from counter samples)
--   consumer_lag      a source's lag, summed over partitions, above
--                     consumer_lag_threshold
--   quarantine_spike  rows quarantined in the last quarantine_window above
--                     quarantine_spike_factor times the moving average
--   failed_job        the latest finished run of a job failed
--   schema_drift, failed_suite   from the validation stage, when present

-- The parameters of the alert rules, read once per query.
CREATE FUNCTION camperso.alert_parameters(
	OUT volume_window interval, OUT volume_history interval, OUT volume_fraction numeric,
	OUT volume_min_average numeric, OUT consumer_lag_threshold bigint,
	OUT quarantine_window interval, OUT quarantine_history interval,
	OUT quarantine_spike_factor numeric, OUT quarantine_spike_min bigint)
RETURNS record
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
	SELECT camperso.observe_setting('volume_window')::interval,
		   camperso.observe_setting('volume_history')::interval,
		   camperso.observe_setting('volume_fraction')::numeric,
		   camperso.observe_setting('volume_min_average')::numeric,
		   camperso.observe_setting('consumer_lag_threshold')::bigint,
		   camperso.observe_setting('quarantine_window')::interval,
		   camperso.observe_setting('quarantine_history')::interval,
		   camperso.observe_setting('quarantine_spike_factor')::numeric,
		   camperso.observe_setting('quarantine_spike_min')::bigint
$$;
COMMENT ON FUNCTION camperso.alert_parameters() IS 'The observability settings the alert rules use, typed';

-- The validation stage's alerts (schema drift, failed suites), kept as a
-- part of camperso.alerts. Until that stage defines them this is empty.
DO $validate$
BEGIN
	IF to_regclass('camperso.alerts') IS NOT NULL THEN
		ALTER VIEW camperso.alerts RENAME TO alerts_validate;
	ELSE
		CREATE VIEW camperso.alerts_validate AS
			SELECT NULL::text AS kind, NULL::text AS subject, NULL::text AS severity,
				   NULL::timestamptz AS since, NULL::jsonb AS details
			 WHERE false;
	END IF;
END
$validate$;
COMMENT ON VIEW camperso.alerts_validate IS 'The validation stage''s alerts (schema drift, failed suites); part of camperso.alerts';

CREATE VIEW camperso.alerts_now AS
	WITH p AS (SELECT * FROM camperso.alert_parameters())
	-- freshness breaches
	SELECT 'freshness_breach'::text AS kind, f.name AS subject, 'critical'::text AS severity,
		   coalesce(coalesce(f.newest_event_at, f.last_load_at) + f.sla, now()) AS since,
		   jsonb_build_object('object', f.kind, 'newest_event_at', f.newest_event_at,
							  'last_load_at', f.last_load_at, 'lag_seconds', f.lag_seconds,
							  'sla_seconds', trim_scale(extract(epoch FROM f.sla))) AS details
	  FROM camperso.stat_freshness f
	 WHERE f.breached
	UNION ALL
	-- volume drops
	SELECT 'volume_drop', v.source, 'warning', NULL,
		   jsonb_build_object('window_seconds', trim_scale(extract(epoch FROM p.volume_window)),
							  'last_window', v.last_window,
							  'moving_average', round(v.history * (extract(epoch FROM p.volume_window)
																   / extract(epoch FROM p.volume_history)), 3),
							  'fraction', p.volume_fraction)
	  FROM p,
		   LATERAL (
			   SELECT t.source,
					  camperso.counter_increase('source:' || t.source, now() - p.volume_window, now(), t.messages) AS last_window,
					  camperso.counter_increase('source:' || t.source, now() - p.volume_window - p.volume_history,
												now() - p.volume_window) AS history,
					  (SELECT min(s.sampled_at) FROM camperso.observe_samples s
						WHERE s.series = 'source:' || t.source) AS first_sample
				 FROM camperso.source_totals() t
				WHERE t.enabled AND t.messages IS NOT NULL) v
	 WHERE v.first_sample <= now() - p.volume_window - p.volume_history
	   AND v.history * (extract(epoch FROM p.volume_window) / extract(epoch FROM p.volume_history)) >= p.volume_min_average
	   AND v.last_window < p.volume_fraction
						   * v.history * (extract(epoch FROM p.volume_window) / extract(epoch FROM p.volume_history))
	UNION ALL
	-- consumer lag
	SELECT 'consumer_lag', t.source, 'warning', NULL,
		   jsonb_build_object('lag', t.lag, 'threshold', p.consumer_lag_threshold, 'state', t.state)
	  FROM p, camperso.source_totals() t
	 WHERE t.enabled AND t.lag > p.consumer_lag_threshold
	UNION ALL
	-- quarantine spikes
	SELECT 'quarantine_spike', q.subject, 'warning', NULL,
		   jsonb_build_object('window_seconds', trim_scale(extract(epoch FROM p.quarantine_window)),
							  'last_window', q.last_window,
							  'moving_average', round(q.average, 3),
							  'factor', p.quarantine_spike_factor,
							  'rules', q.rules)
	  FROM p,
		   LATERAL (
			   SELECT coalesce(x.source, x.target, '') AS subject,
					  count(*) FILTER (WHERE x.received_at > now() - p.quarantine_window) AS last_window,
					  count(*) FILTER (WHERE x.received_at <= now() - p.quarantine_window)
						  * (extract(epoch FROM p.quarantine_window) / extract(epoch FROM p.quarantine_history)) AS average,
					  to_jsonb(array_agg(DISTINCT x.rule) FILTER (WHERE x.received_at > now() - p.quarantine_window)) AS rules
				 FROM camperso.quarantine x
				WHERE x.received_at > now() - p.quarantine_window - p.quarantine_history
				GROUP BY 1) q
	 WHERE q.last_window >= p.quarantine_spike_min
	   AND q.last_window > p.quarantine_spike_factor * q.average
	UNION ALL
	-- failed jobs: the latest finished run failed; the alert dates from the
	-- first failure since the latest success
	SELECT 'failed_job', l.job, 'critical',
		   (SELECT min(f.ended_at) FROM camperso.runs f
			 WHERE f.job = l.job AND f.status = 'failed'
			   AND f.ended_at > coalesce((SELECT max(s.ended_at) FROM camperso.runs s
										   WHERE s.job = l.job AND s.status = 'success'), '-infinity')),
		   jsonb_build_object('run_id', l.run_id, 'error', left(l.error, 1000), 'ended_at', l.ended_at)
	  FROM (SELECT DISTINCT ON (r.job) r.job, r.run_id, r.status, r.error, r.ended_at
			  FROM camperso.runs r
			 WHERE r.status <> 'running' AND r.ended_at IS NOT NULL
			 ORDER BY r.job, r.ended_at DESC) l
	 WHERE l.status = 'failed'
	UNION ALL
	SELECT v.kind, v.subject, v.severity, v.since, v.details FROM camperso.alerts_validate v;
COMMENT ON VIEW camperso.alerts_now IS 'The alert rules evaluated now, without the memory of camperso.alerts_active; read camperso.alerts instead';

-- ---------------------------------------------------------------------------
-- Memory of active alerts, and their history.
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.alerts_active (
	kind			text NOT NULL,
	subject			text NOT NULL,
	severity		text NOT NULL,
	since			timestamptz NOT NULL,
	details			jsonb NOT NULL DEFAULT '{}',
	notified_at		timestamptz NOT NULL DEFAULT now(),
	last_seen_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (kind, subject)
);
COMMENT ON TABLE camperso.alerts_active IS 'Alerts camperso.check_alerts() has seen and notified, until they resolve';

CREATE TABLE camperso.alert_history (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind			text NOT NULL,
	subject			text NOT NULL,
	severity		text NOT NULL,
	started_at		timestamptz NOT NULL,
	notified_at		timestamptz NOT NULL DEFAULT now(),
	resolved_at		timestamptz,
	details			jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_history_open_idx ON camperso.alert_history (kind, subject) WHERE resolved_at IS NULL;
COMMENT ON TABLE camperso.alert_history IS 'Every alert camperso.check_alerts() raised: when it started, was notified and resolved';

CREATE VIEW camperso.alerts AS
	SELECT n.kind, n.subject, n.severity, coalesce(n.since, a.since, now()) AS since, n.details
	  FROM camperso.alerts_now n
	  LEFT JOIN camperso.alerts_active a ON a.kind = n.kind AND a.subject = n.subject;
COMMENT ON VIEW camperso.alerts IS 'What is wrong now: freshness breaches, volume drops, consumer lag, quarantine spikes, schema drift, failed suites and failed jobs; camperso.check_alerts() notifies camperso_alerts when one starts';
COMMENT ON COLUMN camperso.alerts.kind IS 'freshness_breach, volume_drop, consumer_lag, quarantine_spike, schema_drift, failed_suite or failed_job';
COMMENT ON COLUMN camperso.alerts.subject IS 'What the alert is about: a relation, source, job or suite';
COMMENT ON COLUMN camperso.alerts.severity IS 'critical or warning';
COMMENT ON COLUMN camperso.alerts.since IS 'When the condition started (or was first seen by camperso.check_alerts())';
COMMENT ON COLUMN camperso.alerts.details IS 'The figures behind the alert';

-- camperso.check_alerts: evaluates the alerts, notifies the new ones and
-- clears the resolved ones. Notifications go out when the caller's
-- transaction commits, so a rolled-back check notifies nothing.
CREATE FUNCTION camperso.check_alerts(OUT raised integer, OUT resolved integer, OUT active integer)
RETURNS record
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cur jsonb;
	a record;
	payload jsonb;
BEGIN
	-- One checker at a time, so that an alert is notified once.
	PERFORM pg_advisory_xact_lock(hashtext('camperso.check_alerts'));
	PERFORM camperso.sample_counters();

	SELECT coalesce(jsonb_agg(jsonb_build_object('kind', n.kind, 'subject', n.subject, 'severity', n.severity,
												 'since', n.since, 'details', n.details)), '[]')
	  INTO cur
	  FROM camperso.alerts_now n;

	raised := 0;
	FOR a IN
		SELECT DISTINCT ON (c.kind, c.subject) c.*
		  FROM jsonb_to_recordset(cur) AS c(kind text, subject text, severity text, since timestamptz, details jsonb)
		 WHERE NOT EXISTS (SELECT FROM camperso.alerts_active x WHERE x.kind = c.kind AND x.subject = c.subject)
		 ORDER BY c.kind, c.subject
	LOOP
		INSERT INTO camperso.alerts_active (kind, subject, severity, since, details)
		VALUES (a.kind, a.subject, a.severity, coalesce(a.since, now()), coalesce(a.details, '{}'));
		INSERT INTO camperso.alert_history (kind, subject, severity, started_at, details)
		VALUES (a.kind, a.subject, a.severity, coalesce(a.since, now()), coalesce(a.details, '{}'));
		payload := jsonb_build_object('state', 'firing', 'kind', a.kind, 'subject', a.subject,
									  'severity', a.severity, 'since', coalesce(a.since, now()),
									  'database', current_database(), 'details', a.details);
		-- NOTIFY payloads stop at 8000 bytes: long details are cut.
		IF octet_length(payload::text) > 7900 THEN
			payload := payload - 'details' || jsonb_build_object('details_truncated', true);
		END IF;
		PERFORM pg_notify('camperso_alerts', payload::text);
		raised := raised + 1;
	END LOOP;

	UPDATE camperso.alerts_active x
	   SET last_seen_at = now(), severity = c.severity, details = coalesce(c.details, '{}')
	  FROM jsonb_to_recordset(cur) AS c(kind text, subject text, severity text, since timestamptz, details jsonb)
	 WHERE x.kind = c.kind AND x.subject = c.subject;

	WITH gone AS (
		DELETE FROM camperso.alerts_active x
		 WHERE NOT EXISTS (SELECT FROM jsonb_to_recordset(cur) AS c(kind text, subject text)
							WHERE c.kind = x.kind AND c.subject = x.subject)
		RETURNING x.kind, x.subject
	)
	UPDATE camperso.alert_history h SET resolved_at = now()
	  FROM gone g
	 WHERE h.kind = g.kind AND h.subject = g.subject AND h.resolved_at IS NULL;
	GET DIAGNOSTICS resolved = ROW_COUNT;

	SELECT count(*) INTO active FROM camperso.alerts_active;
END
$$;
COMMENT ON FUNCTION camperso.check_alerts() IS 'Evaluates camperso.alerts: raises NOTIFY camperso_alerts (JSON payload) once for each alert that started, clears the ones that resolved; returns how many were raised, resolved and are active. Run periodically';

CREATE VIEW camperso.metrics_alerts AS
	SELECT k.kind, s.severity, count(a.kind) AS active
	  FROM unnest(ARRAY['freshness_breach', 'volume_drop', 'consumer_lag', 'quarantine_spike',
						'schema_drift', 'failed_suite', 'failed_job']) AS k(kind)
	 CROSS JOIN unnest(ARRAY['critical', 'warning']) AS s(severity)
	  LEFT JOIN camperso.alerts a ON a.kind = k.kind AND a.severity = s.severity
	 GROUP BY k.kind, s.severity;
COMMENT ON VIEW camperso.metrics_alerts IS 'Metric family camperso_alerts_active: alerts active now per kind and severity, zero included';

REVOKE ALL ON camperso.alerts, camperso.alerts_now, camperso.alerts_validate, camperso.alerts_active,
	camperso.alert_history, camperso.metrics_alerts FROM PUBLIC;
GRANT SELECT ON camperso.alerts, camperso.alerts_now, camperso.alerts_validate, camperso.alerts_active,
	camperso.alert_history, camperso.metrics_alerts TO camperso_admin, pg_monitor;
REVOKE ALL ON FUNCTION camperso.alert_parameters(), camperso.check_alerts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.alert_parameters() TO camperso_admin, pg_monitor;
GRANT EXECUTE ON FUNCTION camperso.check_alerts() TO camperso_admin;

-- The launcher's job runner (camperso.jobs, model stage) checks the alerts
-- every 10 seconds; change it with camperso.schedule_job('check_alerts',
-- 'SELECT camperso.check_alerts()', <interval>). Like the maintenance job,
-- this default row is made by the extension, so dumps leave it out.
INSERT INTO camperso.jobs (name, command, run_every) VALUES ('check_alerts', 'SELECT camperso.check_alerts()', '10 seconds');
SELECT pg_catalog.pg_extension_config_dump('camperso.jobs', 'WHERE name NOT IN (''maintenance'', ''check_alerts'')');
