-- model: periodic jobs the launcher runs (jobs.c): model loads, partition
-- maintenance, and whatever other stages schedule.

CREATE TABLE camperso.jobs (
	name				text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
	command				text NOT NULL,
	run_every			interval NOT NULL CHECK (run_every >= interval '100 milliseconds'),
	owner				name NOT NULL DEFAULT current_user,
	enabled				boolean NOT NULL DEFAULT true,
	max_backoff			interval NOT NULL DEFAULT '5 minutes' CHECK (max_backoff > interval '0'),
	timeout				interval NOT NULL DEFAULT '10 minutes' CHECK (timeout > interval '0'),
	next_run_at			timestamptz NOT NULL DEFAULT now(),
	failures			integer NOT NULL DEFAULT 0,
	last_started_at		timestamptz,
	last_finished_at	timestamptz,
	last_status			text CHECK (last_status IN ('success', 'failed')),
	last_error			text,
	created_at			timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE camperso.jobs IS 'Periodic jobs run by the launcher, each in its own transaction as its owner; a failure is recorded in camperso.runs and retried with exponential backoff';
COMMENT ON COLUMN camperso.jobs.command IS 'SQL run by the job, as its owner';
COMMENT ON COLUMN camperso.jobs.owner IS 'Role the command runs as: the role that scheduled it (only a superuser may name another)';
COMMENT ON COLUMN camperso.jobs.failures IS 'Consecutive failures; the next try waits run_every * 2^failures, at most max_backoff';
COMMENT ON COLUMN camperso.jobs.timeout IS 'A run taking longer is cancelled and counts as failed';
REVOKE ALL ON camperso.jobs FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('camperso.jobs', 'WHERE name <> ''maintenance''');

-- A job runs as its owner: nobody but a superuser may schedule work under
-- another role's name, or change the command of another role's job.
CREATE FUNCTION camperso._jobs_owner_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
	su boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
	IF su THEN
		RETURN NEW;
	END IF;
	IF TG_OP = 'UPDATE' AND (NEW.command IS DISTINCT FROM OLD.command OR NEW.owner IS DISTINCT FROM OLD.owner)
	   AND NOT pg_has_role(current_user, OLD.owner, 'MEMBER') THEN
		RAISE EXCEPTION 'job "%" belongs to role %', OLD.name, OLD.owner USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF TG_OP = 'INSERT' OR NEW.command IS DISTINCT FROM OLD.command OR NEW.owner IS DISTINCT FROM OLD.owner THEN
		NEW.owner := current_user;
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION camperso._jobs_owner_check() IS 'Trigger: a job''s owner is the role that set its command, unless a superuser says otherwise';
CREATE TRIGGER jobs_owner BEFORE INSERT OR UPDATE ON camperso.jobs
	FOR EACH ROW EXECUTE FUNCTION camperso._jobs_owner_check();

CREATE FUNCTION camperso.schedule_job(name text, command text, run_every interval, enabled boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
	INSERT INTO camperso.jobs AS j (name, command, run_every, enabled)
	VALUES (schedule_job.name, schedule_job.command, schedule_job.run_every, schedule_job.enabled)
	ON CONFLICT ON CONSTRAINT jobs_pkey DO UPDATE
	   SET command = EXCLUDED.command, run_every = EXCLUDED.run_every, enabled = EXCLUDED.enabled,
		   failures = 0, next_run_at = now();
END
$$;
COMMENT ON FUNCTION camperso.schedule_job(text, text, interval, boolean) IS 'Creates or replaces a periodic job run by the launcher as the calling role';

CREATE FUNCTION camperso.unschedule_job(name text) RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog
AS $$
	WITH d AS (DELETE FROM camperso.jobs j WHERE j.name = $1 RETURNING 1) SELECT count(*) > 0 FROM d
$$;
COMMENT ON FUNCTION camperso.unschedule_job(text) IS 'Removes a periodic job; true when it existed';

-- Partition maintenance for every managed table, hourly.
INSERT INTO camperso.jobs (name, command, run_every) VALUES ('maintenance', 'SELECT camperso.run_maintenance()', '1 hour');
