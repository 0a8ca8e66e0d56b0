-- observe/feeds.sql: per-source totals read from the shared-memory source
-- statistics (camperso.stat_sources, written by the workers), and the
-- counter samples that give the volume figures a history.
--
-- camperso.stat_sources lives in shared memory: it is empty until workers
-- run, reset by camperso.stat_reset() and by a server restart, and raises
-- an error in a server that did not preload the library. The functions
-- here turn each of those into "no figures" rather than an error, so the
-- freshness and alert views work in every server.

CREATE FUNCTION camperso.source_totals(
	OUT source text, OUT enabled boolean, OUT state text,
	OUT messages bigint, OUT lag bigint, OUT quarantined bigint, OUT deduplicated bigint, OUT errors bigint,
	OUT last_message_at timestamptz, OUT last_commit_at timestamptz, OUT last_error text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF to_regprocedure('camperso.stat_sources()') IS NULL THEN
		RETURN QUERY
			SELECT s.name, s.enabled, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
				   NULL::timestamptz, NULL::timestamptz, NULL::text
			  FROM camperso.sources s;
		RETURN;
	END IF;
	-- Partition rows carry the flow figures; the row without a partition
	-- is the source itself (worker state, errors not tied to a partition).
	RETURN QUERY EXECUTE $q$
		SELECT s.name, s.enabled,
			   max(st.state) FILTER (WHERE st.partition IS NULL),
			   sum(st.messages) FILTER (WHERE st.partition IS NOT NULL)::bigint,
			   sum(st.lag) FILTER (WHERE st.partition IS NOT NULL)::bigint,
			   sum(st.quarantined) FILTER (WHERE st.partition IS NOT NULL)::bigint,
			   sum(st.deduplicated) FILTER (WHERE st.partition IS NOT NULL)::bigint,
			   sum(st.errors)::bigint,
			   max(st.last_message_at),
			   max(st.last_commit_at),
			   (array_agg(st.last_error ORDER BY st.last_error_at DESC NULLS LAST)
					FILTER (WHERE st.last_error IS NOT NULL))[1]
		  FROM camperso.sources s
		  LEFT JOIN camperso.stat_sources() st ON st.source = s.name
		 GROUP BY s.name, s.enabled
	$q$;
EXCEPTION
	WHEN object_not_in_prerequisite_state OR undefined_function OR undefined_column THEN
		RETURN QUERY
			SELECT s.name, s.enabled, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
				   NULL::timestamptz, NULL::timestamptz, NULL::text
			  FROM camperso.sources s;
END
$$;
COMMENT ON FUNCTION camperso.source_totals() IS 'Per source: enabled, worker state and its figures summed over partitions (messages, lag, quarantined, deduplicated, errors, last message and commit); figures are NULL where the shared-memory statistics are not available';

-- ---------------------------------------------------------------------------
-- Counter samples: camperso.check_alerts() records each source's message
-- counter; the increase between samples is the volume over time.
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.observe_samples (
	series		text NOT NULL,
	sampled_at	timestamptz NOT NULL,
	value		bigint NOT NULL,
	PRIMARY KEY (series, sampled_at)
);
COMMENT ON TABLE camperso.observe_samples IS 'Samples of cumulative counters (series source:<name> holds the messages a source consumed), taken by camperso.check_alerts() and kept for the sample_retention setting';

CREATE FUNCTION camperso.sample_counters()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
	n integer;
BEGIN
	INSERT INTO camperso.observe_samples (series, sampled_at, value)
	SELECT 'source:' || t.source, clock_timestamp(), t.messages
	  FROM camperso.source_totals() t
	 WHERE t.enabled AND t.messages IS NOT NULL
	ON CONFLICT DO NOTHING;
	GET DIAGNOSTICS n = ROW_COUNT;
	DELETE FROM camperso.observe_samples
	 WHERE sampled_at < now() - camperso.observe_setting('sample_retention')::interval;
	RETURN n;
END
$$;
COMMENT ON FUNCTION camperso.sample_counters() IS 'Records one sample of every enabled source''s message counter and drops samples older than the sample_retention setting; returns the samples taken';

-- camperso.counter_increase: how much a sampled counter grew over
-- (from_at, to_at], as Prometheus' increase() counts it: a counter that
-- went down was reset, and its new value is all growth. The live value
-- (when given) is the last point at now().
CREATE FUNCTION camperso.counter_increase(series text, from_at timestamptz, to_at timestamptz, live bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
	WITH points AS (
		SELECT s.sampled_at AS at, s.value
		  FROM camperso.observe_samples s
		 WHERE s.series = $1 AND s.sampled_at <= $3
		   AND s.sampled_at >= coalesce((SELECT max(b.sampled_at) FROM camperso.observe_samples b
										  WHERE b.series = $1 AND b.sampled_at <= $2), $2)
		UNION ALL
		SELECT now(), $4 WHERE $4 IS NOT NULL AND now() <= $3
	), steps AS (
		SELECT p.at, p.value, lag(p.value) OVER (ORDER BY p.at) AS prev FROM points p
	)
	SELECT coalesce(sum(CASE WHEN value >= prev THEN value - prev ELSE value END), 0)::bigint
	  FROM steps
	 WHERE prev IS NOT NULL AND at > $2
$$;
COMMENT ON FUNCTION camperso.counter_increase(text, timestamptz, timestamptz, bigint) IS 'Growth of a sampled counter over (from_at, to_at], counting a decrease as a reset';

REVOKE ALL ON camperso.observe_samples FROM PUBLIC;
GRANT SELECT ON camperso.observe_samples TO camperso_admin, pg_monitor;
REVOKE ALL ON FUNCTION camperso.source_totals(), camperso.sample_counters(),
	camperso.counter_increase(text, timestamptz, timestamptz, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.source_totals(), camperso.sample_counters(),
	camperso.counter_increase(text, timestamptz, timestamptz, bigint) TO camperso_admin;
-- The monitoring views call these as the monitoring role.
GRANT EXECUTE ON FUNCTION camperso.source_totals(), camperso.counter_increase(text, timestamptz, timestamptz, bigint)
	TO pg_monitor;
