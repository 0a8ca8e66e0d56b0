-- observe/stats_metrics.sql: the metric views over the shared-memory source
-- statistics (camperso.stat_sources, defined by stats.sql just before this
-- file). The monitoring role reads them as pg_stat_statements' figures are
-- read: pg_monitor (which holds pg_read_all_stats) may call stat_sources().

CREATE VIEW camperso.metrics_source AS
	SELECT s.source, s.partition::text AS partition,
		   s.messages AS messages_total, s.bytes AS bytes_total,
		   s.quarantined AS quarantined_total, s.deduplicated AS deduplicated_total,
		   s.batches AS batches_total, s.lag, s.committed_offset, s.high_watermark,
		   extract(epoch FROM s.last_message_at) AS last_message_timestamp_seconds,
		   extract(epoch FROM s.last_commit_at) AS last_commit_timestamp_seconds
	  FROM camperso.stat_sources() s
	 WHERE s.partition IS NOT NULL;
COMMENT ON VIEW camperso.metrics_source IS 'Metric families camperso_source_*: per source and partition, messages, bytes, quarantined, deduplicated and batches counted, lag, offsets and times';

CREATE VIEW camperso.metrics_source_worker AS
	SELECT c.name AS source,
		   c.enabled::int AS enabled,
		   (coalesce(max(s.state) FILTER (WHERE s.partition IS NULL), 'stopped') = 'running')::int AS running,
		   coalesce(sum(s.errors), 0) AS errors_total,
		   coalesce(sum(s.dlq_produced), 0) AS dlq_produced_total,
		   coalesce(sum(s.dlq_failed), 0) AS dlq_failed_total
	  FROM camperso.sources c
	  LEFT JOIN camperso.stat_sources() s ON s.source = c.name
	 GROUP BY c.name, c.enabled;
COMMENT ON VIEW camperso.metrics_source_worker IS 'Metric families camperso_source_worker_*: per source, whether it is enabled and its worker running, the errors counted, and the copies to its dead-letter topic delivered and failed';

GRANT EXECUTE ON FUNCTION camperso.stat_sources() TO pg_monitor;
REVOKE ALL ON camperso.metrics_source, camperso.metrics_source_worker FROM PUBLIC;
GRANT SELECT ON camperso.metrics_source, camperso.metrics_source_worker TO camperso_admin, pg_monitor;
