-- validate: schema drift. Every distinct shape (top-level key -> JSON kind)
-- seen per source; the first shape of a source is its baseline, any later
-- one is drift and shows in camperso.alerts until accepted.

CREATE TABLE camperso.schema_versions (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source		text NOT NULL,
	shape_hash	bigint NOT NULL,
	shape		jsonb NOT NULL,
	first_seen	timestamptz NOT NULL,
	last_seen	timestamptz NOT NULL,
	messages	bigint NOT NULL DEFAULT 0,
	accepted	boolean NOT NULL DEFAULT false,
	CONSTRAINT schema_versions_source_shape_key UNIQUE (source, shape_hash)
);
COMMENT ON TABLE camperso.schema_versions IS 'Every distinct set of (top-level key, JSON type) seen per source, with first/last seen and message count; unaccepted shapes after the first are schema drift alerts';
COMMENT ON COLUMN camperso.schema_versions.shape IS 'The shape as {"key": "string|number|boolean|null|object|array", ...}';
COMMENT ON COLUMN camperso.schema_versions.messages IS 'Messages seen with this shape (flushed by each backend at least every 5 seconds while it lands messages)';
COMMENT ON COLUMN camperso.schema_versions.accepted IS 'Baseline or acknowledged: true for the first shape of a source and after accept_schema()';

CREATE FUNCTION camperso._record_shapes(sources text[], hashes bigint[], shapes text[],
										first_seen timestamptz[], last_seen timestamptz[], messages bigint[])
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog
AS $$
	INSERT INTO camperso.schema_versions AS v (source, shape_hash, shape, first_seen, last_seen, messages)
	SELECT s, h, coalesce(j::jsonb, '{}'::jsonb), f, l, m
	  FROM unnest($1, $2, $3, $4, $5, $6) AS u(s, h, j, f, l, m)
	 ORDER BY s, h
	ON CONFLICT ON CONSTRAINT schema_versions_source_shape_key DO UPDATE
	   SET last_seen = greatest(v.last_seen, EXCLUDED.last_seen),
		   first_seen = least(v.first_seen, EXCLUDED.first_seen),
		   messages = v.messages + EXCLUDED.messages,
		   shape = CASE WHEN v.shape = '{}'::jsonb THEN EXCLUDED.shape ELSE v.shape END;
	-- a source's first shape (the earliest seen) is its baseline
	UPDATE camperso.schema_versions v SET accepted = true
	 WHERE v.id IN (SELECT DISTINCT ON (b.source) b.id
					  FROM camperso.schema_versions b
					 WHERE b.source = ANY ($1)
					 ORDER BY b.source, b.first_seen, b.id)
	   AND NOT EXISTS (SELECT 1 FROM camperso.schema_versions a WHERE a.source = v.source AND a.accepted);
$$;
COMMENT ON FUNCTION camperso._record_shapes(text[], bigint[], text[], timestamptz[], timestamptz[], bigint[]) IS 'Internal: records messages per shape and source (called by the land path at commit); a source''s earliest shape becomes its accepted baseline';

CREATE FUNCTION camperso.accept_schema(source text, shape_hash bigint DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
	n integer;
BEGIN
	UPDATE camperso.schema_versions v SET accepted = true
	 WHERE v.source = accept_schema.source
	   AND (accept_schema.shape_hash IS NULL OR v.shape_hash = accept_schema.shape_hash)
	   AND NOT v.accepted;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION camperso.accept_schema(text, bigint) IS 'Acknowledges drift: marks one shape (or every shape) of a source as accepted, which clears its alert; returns how many shapes changed';

REVOKE ALL ON camperso.schema_versions FROM PUBLIC;
GRANT SELECT ON camperso.schema_versions TO camperso_admin;
REVOKE ALL ON FUNCTION camperso._record_shapes(text[], bigint[], text[], timestamptz[], timestamptz[], bigint[]),
	camperso.accept_schema(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.accept_schema(text, bigint) TO camperso_admin;
