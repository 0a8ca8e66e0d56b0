-- Freshness and alerts: stat_freshness against SLAs, the alert rules, and
-- check_alerts() remembering, recording and clearing alerts.
\set SHOW_CONTEXT never

-- ---- freshness of a relation given an SLA
CREATE TABLE obs_events (id int, ts timestamptz, day date, label text);
SELECT camperso.set_freshness_sla('obs_events', '10 minutes', time_column => 'ts');
SELECT kind, name, sla, time_column FROM camperso.freshness_slas WHERE name LIKE '%obs_events';
-- empty: nothing arrived, breached
SELECT kind, name, newest_event_at, last_load_at, lag_seconds, sla, breached
  FROM camperso.stat_freshness WHERE name = 'public.obs_events';
INSERT INTO obs_events SELECT i, now() - interval '2 minutes' - i * interval '1 second', current_date, 'x'
  FROM generate_series(1, 5) i;
SELECT newest_event_at = (SELECT max(ts) FROM obs_events) AS newest_is_max, last_load_at,
	   lag_seconds BETWEEN 121 AND 200 AS lag_ok, breached
  FROM camperso.stat_freshness WHERE name = 'public.obs_events';
-- the last load is the end of the latest successful run that wrote it
SELECT camperso.run_end(camperso.run_begin('obs.load', '{}', ARRAY['public.obs_events']), 'success', 5, 5);
SELECT camperso.run_end(camperso.run_begin('obs.load', '{}', ARRAY['obs_events']), 'failed', 5, NULL, 'x');
SELECT last_load_at = (SELECT max(ended_at) FROM camperso.runs WHERE job = 'obs.load' AND status = 'success') AS last_load_ok
  FROM camperso.stat_freshness WHERE name = 'public.obs_events';
-- the feed stops: older than the SLA, breached, and an alert since newest + SLA
UPDATE obs_events SET ts = ts - interval '1 hour';
SELECT breached, lag_seconds > 3600 AS lag_over_an_hour FROM camperso.stat_freshness WHERE name = 'public.obs_events';
SELECT kind, subject, severity, since = (SELECT max(ts) FROM obs_events) + interval '10 minutes' AS since_ok,
	   details ->> 'object' AS object, (details ->> 'sla_seconds')::numeric AS sla_seconds
  FROM camperso.alerts WHERE subject = 'public.obs_events';
-- a date column works as a time column; a NULL SLA stops monitoring
SELECT camperso.set_freshness_sla('public.obs_events', '3 days', time_column => 'day');
SELECT breached FROM camperso.stat_freshness WHERE name = 'public.obs_events';
SELECT camperso.set_freshness_sla('public.obs_events', NULL, time_column => 'ts');
SELECT sla, breached FROM camperso.stat_freshness WHERE name = 'public.obs_events';
SELECT count(*) AS alerts FROM camperso.alerts WHERE subject = 'public.obs_events';
-- bad input
SELECT camperso.set_freshness_sla('no_such_table', '1 minute');
SELECT camperso.set_freshness_sla('obs_events', '1 minute', time_column => 'label');
SELECT camperso.set_freshness_sla('obs_events', '1 minute', time_column => 'nope');
SELECT camperso.set_freshness_sla('obs_events', '-1 minute');
SELECT camperso.set_freshness_sla('obs_events', '1 minute', 'table');
SELECT camperso.set_freshness_sla('no_such_source', '1 minute', 'source');
SELECT camperso.set_freshness_sla('x"; DROP TABLE obs_events; --', '1 minute');
-- a time column dropped after the SLA was set: no newest event, not an error
SELECT camperso.set_freshness_sla('obs_events', '10 minutes', time_column => 'ts');
ALTER TABLE obs_events DROP COLUMN ts;
SELECT newest_event_at, last_load_at IS NOT NULL AS has_last_load, breached
  FROM camperso.stat_freshness WHERE name = 'public.obs_events';

-- ---- failed jobs
SELECT camperso.run_end(camperso.run_begin('obs.nightly'), 'success');
SELECT camperso.run_end(camperso.run_begin('obs.nightly'), 'failed', NULL, NULL, 'disk full');
SELECT camperso.run_end(camperso.run_begin('obs.nightly'), 'failed', NULL, NULL, 'still full');
SELECT kind, subject, severity, details ->> 'error' AS error,
	   since = (SELECT min(ended_at) FROM camperso.runs WHERE job = 'obs.nightly' AND status = 'failed') AS since_first_failure
  FROM camperso.alerts WHERE kind = 'failed_job' AND subject LIKE 'obs.%' ORDER BY subject;

-- ---- quarantine spikes: 12 rows in the window and no history
INSERT INTO camperso.quarantine (source, target, payload, rule, reason)
SELECT 'obs_src', 'public.obs_events', '\x00', CASE WHEN i % 2 = 0 THEN 'required' ELSE 'type' END, 'test'
  FROM generate_series(1, 12) i;
SELECT kind, subject, details ->> 'last_window' AS last_window, details ->> 'moving_average' AS average,
	   details -> 'rules' AS rules
  FROM camperso.alerts WHERE kind = 'quarantine_spike' AND subject = 'obs_src';

-- ---- check_alerts: raises each alert once, remembers it, clears it
SELECT raised >= 3 AS raised_ours FROM camperso.check_alerts();
SELECT kind, subject, severity FROM camperso.alerts_active WHERE subject LIKE 'obs%' OR subject LIKE 'public.obs%' ORDER BY 1, 2;
SELECT kind, subject, resolved_at FROM camperso.alert_history WHERE subject LIKE 'obs%' OR subject LIKE 'public.obs%' ORDER BY 1, 2;
-- a second check notifies nothing new for them
SELECT raised AS raised_again FROM camperso.check_alerts();
SELECT count(*) AS history_rows FROM camperso.alert_history WHERE subject LIKE 'obs%' OR subject LIKE 'public.obs%';
-- the spike is diluted by a history: 120 rows over the past hour average
-- 10 per 5-minute window, and 12 is not above 3 times that
INSERT INTO camperso.quarantine (source, target, payload, rule, reason, received_at)
SELECT 'obs_src', 'public.obs_events', '\x00', 'required', 'test', now() - interval '10 minutes' - i * interval '20 seconds'
  FROM generate_series(1, 120) i;
SELECT count(*) AS spike_alerts FROM camperso.alerts WHERE kind = 'quarantine_spike' AND subject = 'obs_src';
-- the job succeeds again
SELECT camperso.run_end(camperso.run_begin('obs.nightly'), 'success');
SELECT resolved >= 2 AS resolved_ours FROM camperso.check_alerts();
SELECT kind, subject FROM camperso.alerts_active WHERE subject LIKE 'obs%' OR subject LIKE 'public.obs%' ORDER BY 1, 2;
SELECT kind, subject, resolved_at IS NOT NULL AS resolved
  FROM camperso.alert_history WHERE subject LIKE 'obs%' OR subject LIKE 'public.obs%' ORDER BY 1, 2;
-- the same alert coming back is a new alert
SELECT camperso.run_end(camperso.run_begin('obs.nightly'), 'failed', NULL, NULL, 'again');
SELECT raised >= 1 AS raised_again FROM camperso.check_alerts();
SELECT kind, subject, resolved_at IS NOT NULL AS resolved, details ->> 'error' AS error
  FROM camperso.alert_history WHERE subject = 'obs.nightly' ORDER BY id;

-- ---- the metric family counts the active alerts
SELECT active >= 2 AS counted FROM camperso.metrics_alerts WHERE kind = 'failed_job' AND severity = 'critical';
SELECT count(*) AS kinds_times_severities FROM camperso.metrics_alerts;

-- ---- settings feed the rules
SELECT camperso.set_observe_setting('quarantine_spike_min', '1000');
SELECT count(*) AS spike_alerts FROM camperso.alerts WHERE kind = 'quarantine_spike' AND subject = 'obs_src';
SELECT camperso.set_observe_setting('quarantine_spike_min', NULL);

-- clean up
DELETE FROM camperso.runs WHERE job LIKE 'obs.%';
DELETE FROM camperso.quarantine WHERE source = 'obs_src';
DELETE FROM camperso.freshness_slas WHERE name = 'public.obs_events';
DROP TABLE obs_events;
SELECT resolved >= 1 AS cleared FROM camperso.check_alerts();
SELECT count(*) AS left_active FROM camperso.alerts_active WHERE subject LIKE 'obs%' OR subject LIKE 'public.obs%';
