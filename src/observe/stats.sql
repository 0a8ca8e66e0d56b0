-- observe: the shared-memory source statistics (src/observe/source_stats.c).

CREATE FUNCTION camperso.stat_sources(
	OUT source text, OUT "partition" integer, OUT state text, OUT pid integer,
	OUT committed_offset bigint, OUT high_watermark bigint, OUT lag bigint,
	OUT messages bigint, OUT bytes bigint, OUT quarantined bigint,
	OUT deduplicated bigint, OUT batches bigint,
	OUT last_message_at timestamptz, OUT last_commit_at timestamptz,
	OUT errors bigint, OUT last_error text, OUT last_error_at timestamptz,
	OUT dlq_produced bigint, OUT dlq_failed bigint,
	OUT dlq_last_error text, OUT dlq_last_error_at timestamptz)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'camperso_stat_sources';
COMMENT ON FUNCTION camperso.stat_sources() IS 'Reads the shared-memory source statistics; use the view camperso.stat_sources';

CREATE VIEW camperso.stat_sources AS
	SELECT * FROM camperso.stat_sources();
COMMENT ON VIEW camperso.stat_sources IS
'Per source and partition: state, worker pid, committed offset, high watermark, lag, messages, bytes, quarantined, deduplicated, batches, last message and commit times, errors and last error. The row with a NULL partition is the source itself (worker state and errors, and its dead-letter topic: quarantined messages copied to it, copies that failed, the last failure). Kept in shared memory: survives worker restarts, not server restarts';

CREATE FUNCTION camperso.stat_reset(source text DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_stat_reset';
COMMENT ON FUNCTION camperso.stat_reset(text) IS 'Zeroes the counters and errors of camperso.stat_sources, for one source or all';

REVOKE ALL ON FUNCTION camperso.stat_sources() FROM PUBLIC;
REVOKE ALL ON camperso.stat_sources FROM PUBLIC;
REVOKE ALL ON FUNCTION camperso.stat_reset(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.stat_sources() TO camperso_admin;
GRANT SELECT ON camperso.stat_sources TO camperso_admin;
GRANT EXECUTE ON FUNCTION camperso.stat_reset(text) TO camperso_admin;
