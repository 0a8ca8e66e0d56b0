-- capture: the source admin functions (C, src/capture/sources.c).
-- Only camperso_admin (and superusers) may call them; they check their
-- arguments as the caller and write the catalog on its behalf.

GRANT SELECT ON camperso.sources, camperso.source_offsets TO camperso_admin;

CREATE FUNCTION camperso.create_source(name text, brokers text, topic text, target regclass,
									   format text DEFAULT 'json', ruleset text DEFAULT NULL,
									   options jsonb DEFAULT '{}'::jsonb)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_create_source';
COMMENT ON FUNCTION camperso.create_source(text, text, text, regclass, text, text, jsonb) IS
'Records a Kafka source landing topic into target; it starts stopped (see start_source). Options: group_id, batch_size, batch_ms, dlq_topic, start, pii, mapping, workers, max_message_bytes, kafka.<librdkafka property>';

CREATE FUNCTION camperso.start_source(name text)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_start_source';
COMMENT ON FUNCTION camperso.start_source(text) IS 'Enables a source: the launcher starts its workers when the transaction commits';

CREATE FUNCTION camperso.stop_source(name text)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_stop_source';
COMMENT ON FUNCTION camperso.stop_source(text) IS 'Disables a source: the launcher stops its workers when the transaction commits; they leave the consumer group cleanly';

CREATE FUNCTION camperso.drop_source(name text)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_drop_source';
COMMENT ON FUNCTION camperso.drop_source(text) IS 'Removes a source and its stored offsets, stopping its workers; landed rows and quarantined messages stay';

CREATE FUNCTION camperso.reset_offsets(name text, "partition" integer DEFAULT NULL, "offset" text DEFAULT 'earliest')
RETURNS integer
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_reset_offsets';
COMMENT ON FUNCTION camperso.reset_offsets(text, integer, text) IS
'Sets where a source goes on in one partition (or all, when NULL): earliest, latest or an offset number; running workers seek there at commit. Returns the number of partitions set';

REVOKE ALL ON FUNCTION camperso.create_source(text, text, text, regclass, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION camperso.start_source(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION camperso.stop_source(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION camperso.drop_source(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION camperso.reset_offsets(text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.create_source(text, text, text, regclass, text, text, jsonb) TO camperso_admin;
GRANT EXECUTE ON FUNCTION camperso.start_source(text) TO camperso_admin;
GRANT EXECUTE ON FUNCTION camperso.stop_source(text) TO camperso_admin;
GRANT EXECUTE ON FUNCTION camperso.drop_source(text) TO camperso_admin;
GRANT EXECUTE ON FUNCTION camperso.reset_offsets(text, integer, text) TO camperso_admin;
