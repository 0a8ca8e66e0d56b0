-- capture: the sources catalog and the stored offsets.

CREATE TABLE camperso.sources (
	name		text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
	brokers		text NOT NULL,
	topic		text NOT NULL,
	target		regclass NOT NULL,
	format		text NOT NULL DEFAULT 'json',
	ruleset		text,
	options		jsonb NOT NULL DEFAULT '{}',
	enabled		boolean NOT NULL DEFAULT false,
	owner		name NOT NULL DEFAULT current_user,
	created_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE camperso.sources IS 'Kafka sources: where each consumes from and which table it lands into';
COMMENT ON COLUMN camperso.sources.owner IS 'Role whose privileges the source worker uses to write the target';
COMMENT ON COLUMN camperso.sources.enabled IS 'Whether the launcher keeps a worker running for this source';

CREATE TABLE camperso.source_offsets (
	source		text NOT NULL REFERENCES camperso.sources (name) ON DELETE CASCADE,
	partition	integer NOT NULL CHECK (partition >= 0),
	next_offset	bigint NOT NULL CHECK (next_offset >= 0),
	reset_offset bigint,
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (source, partition)
);
COMMENT ON TABLE camperso.source_offsets IS 'Per source and partition, the offset of the next message to land; written in the same transaction as the rows it covers';
COMMENT ON COLUMN camperso.source_offsets.reset_offset IS 'Offset camperso.reset_offsets() last set, NULL if never; an offset committed to Kafka by another server of the consumer group is trusted only when that server was reset to the same offset';

-- The worker lands with the privileges of a source's owner, so the owner
-- must be whoever wrote the row: a role that is not a superuser becomes the
-- owner of any source it inserts or changes directly, whatever it wrote in
-- the column. camperso.create_source() writes the row as a superuser on
-- behalf of its caller, whom it records as the owner.
CREATE FUNCTION camperso.sources_set_owner() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
	IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		NEW.owner := current_user;
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION camperso.sources_set_owner() IS 'Trigger on camperso.sources: a source written by a role that is not a superuser is owned by that role';
CREATE TRIGGER sources_set_owner BEFORE INSERT OR UPDATE ON camperso.sources
	FOR EACH ROW EXECUTE FUNCTION camperso.sources_set_owner();

-- Who this database is, among the servers of a consumer group: source
-- workers commit their offsets to Kafka tagged with it, so a server taking a
-- partition over knows whether the last commit was its own. Random, made at
-- CREATE EXTENSION (a clone of the data directory made before that, such as
-- the test clusters, still gets its own).
CREATE TABLE camperso.capture_instance (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	singleton	boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);
INSERT INTO camperso.capture_instance DEFAULT VALUES;
COMMENT ON TABLE camperso.capture_instance IS 'Identity of this database among the servers sharing a Kafka consumer group; tags the offsets its workers commit to Kafka';
