-- observe/freshness.sql: camperso.stat_freshness, how old the newest data
-- of every monitored relation and every source is, against its SLA.
--
-- Monitored relations are those of camperso.freshness_slas (kind relation)
-- and the relations of the clickstream models (camperso.model_relations()).
-- A relation's newest event is the maximum of its time column; its last
-- load the end of the latest
-- successful run of camperso.runs that wrote it. A source's newest event
-- is the arrival of its newest message (shared-memory statistics, or the
-- time its offsets were last stored when those were reset by a restart).

-- camperso.relation_loads: per relation written by a successful run, the
-- end of its latest such run. Output names are resolved to schema.table.
CREATE FUNCTION camperso.relation_loads(OUT relation text, OUT last_load_at timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	o record;
	rel regclass;
BEGIN
	FOR o IN
		SELECT x.output, max(r.ended_at) AS at
		  FROM camperso.runs r, unnest(r.outputs) AS x(output)
		 WHERE r.status = 'success'
		 GROUP BY x.output
	LOOP
		BEGIN
			rel := to_regclass(o.output);
		EXCEPTION WHEN OTHERS THEN
			rel := NULL;
		END;
		CONTINUE WHEN rel IS NULL;
		relation := (SELECT format('%s.%s', n.nspname, c.relname)
					   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel);
		last_load_at := o.at;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION camperso.relation_loads() IS 'Per relation written by a successful run of camperso.runs: the end of the latest one';

-- camperso.monitored_relations: what stat_freshness watches, with the
-- column that holds each one's event time.
CREATE FUNCTION camperso.monitored_relations(OUT relation text, OUT time_column name, OUT sla interval,
											  OUT watched_since timestamptz)
RETURNS SETOF record
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT m.relation, coalesce(f.time_column, m.time_column),
		   CASE WHEN f.name IS NULL THEN camperso.observe_setting('freshness_sla')::interval ELSE f.sla END,
		   m.watched_since
	  FROM camperso.model_relations() m
	  LEFT JOIN camperso.freshness_slas f ON f.kind = 'relation' AND f.name = m.relation
	UNION ALL
	SELECT f.name, f.time_column, f.sla, NULL::timestamptz
	  FROM camperso.freshness_slas f
	 WHERE f.kind = 'relation'
	   AND f.name NOT IN (SELECT m.relation FROM camperso.model_relations() m)
$$;
COMMENT ON FUNCTION camperso.monitored_relations() IS 'Relations whose freshness is watched: those of the models and those given an SLA, with their time column and SLA';

CREATE FUNCTION camperso.relation_freshness(OUT relation text, OUT newest_event_at timestamptz,
											OUT last_load_at timestamptz, OUT sla interval,
											OUT watched_since timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m record;
BEGIN
	FOR m IN
		SELECT r.relation, r.time_column, r.sla, r.watched_since, l.last_load_at
		  FROM camperso.monitored_relations() r
		  LEFT JOIN camperso.relation_loads() l ON l.relation = r.relation
	LOOP
		relation := m.relation;
		sla := m.sla;
		last_load_at := m.last_load_at;
		watched_since := m.watched_since;
		newest_event_at := NULL;
		IF m.time_column IS NOT NULL AND to_regclass(m.relation) IS NOT NULL THEN
			-- A relation we cannot read (dropped column, no privilege) has
			-- no newest event rather than breaking the view.
			BEGIN
				-- 'infinity' (a value no lag can be counted from) is not an event
				EXECUTE format('SELECT (max(%1$I) FILTER (WHERE isfinite(%1$I)))::timestamptz FROM %2$s',
							   m.time_column, to_regclass(m.relation))
					INTO newest_event_at;
			EXCEPTION WHEN undefined_column OR insufficient_privilege OR undefined_table OR undefined_function THEN
				newest_event_at := NULL;
			END;
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION camperso.relation_freshness() IS 'Per monitored relation: newest event time, last load time and SLA';

CREATE VIEW camperso.stat_freshness AS
	WITH rel AS (
		SELECT 'relation'::text AS kind, f.relation AS name, f.newest_event_at, f.last_load_at, f.sla,
			   coalesce(f.newest_event_at, f.last_load_at) AS fresh_at, f.watched_since
		  FROM camperso.relation_freshness() f
	), src AS (
		SELECT 'source'::text AS kind, t.source AS name,
			   coalesce(t.last_message_at, o.updated_at) AS newest_event_at,
			   coalesce(t.last_commit_at, o.updated_at) AS last_load_at,
			   CASE WHEN f.name IS NULL THEN camperso.observe_setting('freshness_sla')::interval ELSE f.sla END AS sla,
			   coalesce(t.last_message_at, o.updated_at) AS fresh_at,
			   s.created_at AS watched_since
		  FROM camperso.source_totals() t
		  JOIN camperso.sources s ON s.name = t.source
		  LEFT JOIN (SELECT so.source, max(so.updated_at) AS updated_at
					   FROM camperso.source_offsets so GROUP BY so.source) o ON o.source = t.source
		  LEFT JOIN camperso.freshness_slas f ON f.kind = 'source' AND f.name = t.source
		 WHERE t.enabled
	)
	SELECT a.kind, a.name, a.newest_event_at, a.last_load_at,
		   round(extract(epoch FROM now() - a.fresh_at), 3) AS lag_seconds,
		   a.sla,
		   CASE
			   WHEN a.sla IS NULL THEN false
			   WHEN a.fresh_at IS NOT NULL THEN now() - a.fresh_at > a.sla
			   -- nothing ever arrived: breached once the SLA has passed since
			   -- the object was set up (a model's relations: since the model
			   -- was made; other relations: always, as they are empty)
			   ELSE coalesce(now() - a.watched_since > a.sla, true)
		   END AS breached
	  FROM (SELECT * FROM rel UNION ALL SELECT * FROM src) a;
COMMENT ON VIEW camperso.stat_freshness IS 'Per monitored relation and enabled source: newest event time, last load time, lag in seconds, SLA and whether it is breached';
COMMENT ON COLUMN camperso.stat_freshness.kind IS 'relation (a model relation or one given an SLA) or source';
COMMENT ON COLUMN camperso.stat_freshness.name IS 'Qualified relation name or source name';
COMMENT ON COLUMN camperso.stat_freshness.newest_event_at IS 'Relation: the largest event time it holds. Source: arrival of its newest message';
COMMENT ON COLUMN camperso.stat_freshness.last_load_at IS 'Relation: end of the latest successful run that wrote it. Source: latest batch commit';
COMMENT ON COLUMN camperso.stat_freshness.lag_seconds IS 'Seconds since the newest event (or since the last load when the event time is unknown)';
COMMENT ON COLUMN camperso.stat_freshness.sla IS 'Longest acceptable lag (camperso.set_freshness_sla, default setting freshness_sla); NULL: not monitored';
COMMENT ON COLUMN camperso.stat_freshness.breached IS 'Whether the lag exceeds the SLA (or nothing arrived within the SLA)';

CREATE VIEW camperso.metrics_freshness AS
	SELECT f.kind, f.name, f.lag_seconds,
		   trim_scale(extract(epoch FROM f.sla)) AS sla_seconds,
		   f.breached::int AS breached
	  FROM camperso.stat_freshness f;
COMMENT ON VIEW camperso.metrics_freshness IS 'Metric families camperso_freshness_*: lag, SLA and breach per relation and source';

REVOKE ALL ON camperso.stat_freshness, camperso.metrics_freshness FROM PUBLIC;
GRANT SELECT ON camperso.stat_freshness, camperso.metrics_freshness TO camperso_admin, pg_monitor;
REVOKE ALL ON FUNCTION camperso.relation_loads(), camperso.monitored_relations(), camperso.relation_freshness() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.relation_loads(), camperso.monitored_relations(), camperso.relation_freshness() TO camperso_admin, pg_monitor;
