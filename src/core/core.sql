-- core: the schema-wide pieces every stage uses.

-- The schema is created here rather than named in the control file, so it
-- belongs to the extension and DROP EXTENSION removes it.
CREATE SCHEMA camperso;

COMMENT ON SCHEMA camperso IS 'camperso: a clickstream warehouse inside PostgreSQL';

CREATE FUNCTION camperso.version() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '0.1.0'::text $$;
COMMENT ON FUNCTION camperso.version() IS 'Version of the installed camperso SQL objects';

CREATE FUNCTION camperso.launcher_pid() RETURNS integer
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'camperso_launcher_pid';
COMMENT ON FUNCTION camperso.launcher_pid() IS 'Process id of the camperso launcher background worker, NULL while it is not running; raises an error when camperso is not in shared_preload_libraries';

-- ---------------------------------------------------------------------------
-- Roles. Cluster-wide, so they are created only when absent and survive
-- DROP EXTENSION (other databases may hold grants to them). The security
-- stage grants each one exactly what it needs; PUBLIC gets nothing.
-- ---------------------------------------------------------------------------
DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['camperso_admin', 'camperso_ingest', 'camperso_analyst', 'camperso_pii_reader']
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$roles$;

REVOKE ALL ON SCHEMA camperso FROM PUBLIC;
GRANT USAGE ON SCHEMA camperso TO camperso_admin, camperso_ingest, camperso_analyst, camperso_pii_reader;

-- ---------------------------------------------------------------------------
-- The quarantine: every message or row that could not be landed, byte-exact,
-- with the first reason found. Shared by capture (decode failures),
-- validation (rules, triggers, replay) and security (erasure, encryption).
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.quarantine (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source			text,
	target			text,
	topic			text,
	partition		integer,
	"offset"		bigint,
	key				bytea,
	received_at		timestamptz NOT NULL DEFAULT now(),
	quarantined_at	timestamptz NOT NULL DEFAULT now(),
	payload			bytea NOT NULL,
	ruleset			text,
	rule			text NOT NULL,
	field			text,
	reason			text NOT NULL,
	app_id			text
);
CREATE INDEX quarantine_source_idx ON camperso.quarantine (source, partition, "offset");
CREATE INDEX quarantine_received_at_idx ON camperso.quarantine (received_at);
COMMENT ON TABLE camperso.quarantine IS 'Messages and rows that could not be landed, byte-exact, with the first rule they broke; nothing bad is dropped silently';
COMMENT ON COLUMN camperso.quarantine.source IS 'Source name, NULL for rows diverted by a trigger outside a source';
COMMENT ON COLUMN camperso.quarantine.target IS 'Relation the row was meant for (qualified name)';
COMMENT ON COLUMN camperso.quarantine.payload IS 'The message or row exactly as received';
COMMENT ON COLUMN camperso.quarantine.ruleset IS 'Ruleset whose rule the message or row broke; NULL when it did not decode, did not fit the target''s column types or constraints, or was skipped by a trigger of the target (skipped_by_trigger)';
COMMENT ON COLUMN camperso.quarantine.rule IS 'First rule broken: a validation rule name, or decode/type errors such as malformed_json, invalid_utf8, wrong_type, out_of_range, oversized, or skipped_by_trigger';
COMMENT ON COLUMN camperso.quarantine.reason IS 'Human-readable reason';

-- ---------------------------------------------------------------------------
-- Runs: every load, maintenance and suite run, for lineage and alerts.
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.runs (
	run_id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	job			text NOT NULL,
	inputs		text[] NOT NULL DEFAULT '{}',
	outputs		text[] NOT NULL DEFAULT '{}',
	rows_in		bigint,
	rows_out	bigint,
	started_at	timestamptz NOT NULL DEFAULT clock_timestamp(),
	ended_at	timestamptz,
	status		text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failed')),
	error		text,
	details		jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_job_started_idx ON camperso.runs (job, started_at);
COMMENT ON TABLE camperso.runs IS 'Every model load, maintenance run and expectation suite run: inputs, outputs, row counts, status and error';

-- camperso.run_begin / run_end: how jobs record themselves in camperso.runs.
CREATE FUNCTION camperso.run_begin(job text, inputs text[] DEFAULT '{}', outputs text[] DEFAULT '{}')
RETURNS uuid
LANGUAGE sql VOLATILE
SET search_path = pg_catalog
AS $$
	INSERT INTO camperso.runs (job, inputs, outputs) VALUES ($1, $2, $3) RETURNING run_id
$$;
COMMENT ON FUNCTION camperso.run_begin(text, text[], text[]) IS 'Records the start of a job run in camperso.runs and returns its run id';

CREATE FUNCTION camperso.run_end(run_id uuid, status text, rows_in bigint DEFAULT NULL, rows_out bigint DEFAULT NULL,
								 error text DEFAULT NULL, details jsonb DEFAULT NULL)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog
AS $$
	UPDATE camperso.runs r
	   SET status = $2, rows_in = $3, rows_out = $4, error = $5,
		   details = coalesce($6, r.details), ended_at = clock_timestamp()
	 WHERE r.run_id = $1
$$;
COMMENT ON FUNCTION camperso.run_end(uuid, text, bigint, bigint, text, jsonb) IS 'Records the end of a job run: status success or failed, row counts and error';
REVOKE ALL ON FUNCTION camperso.run_begin(text, text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION camperso.run_end(uuid, text, bigint, bigint, text, jsonb) FROM PUBLIC;
