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
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (source, partition)
);
COMMENT ON TABLE camperso.source_offsets IS 'Per source and partition, the offset of the next message to land; written in the same transaction as the rows it covers';
