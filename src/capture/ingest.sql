-- capture: camperso.ingest() and camperso.ingest_batch(), the land path of a
-- source for callers without Kafka.

CREATE FUNCTION camperso.ingest(name text, payload bytea,
								OUT landed bigint, OUT quarantined bigint, OUT deduplicated bigint)
RETURNS record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_ingest';
COMMENT ON FUNCTION camperso.ingest(text, bytea) IS 'Decodes one JSON message as source "name" would and lands it in the source''s target, or in camperso.quarantine with its reason; returns the counts (landed + quarantined + deduplicated = 1)';

CREATE FUNCTION camperso.ingest_batch(name text, payloads bytea[],
									  OUT landed bigint, OUT quarantined bigint, OUT deduplicated bigint)
RETURNS record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_ingest_batch';
COMMENT ON FUNCTION camperso.ingest_batch(text, bytea[]) IS 'Decodes a batch of JSON messages as source "name" would and lands them with heap multi-insert; bad messages go to camperso.quarantine in the same transaction; returns the counts (landed + quarantined + deduplicated = number of payloads)';

REVOKE ALL ON FUNCTION camperso.ingest(text, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION camperso.ingest_batch(text, bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.ingest(text, bytea) TO camperso_ingest, camperso_admin;
GRANT EXECUTE ON FUNCTION camperso.ingest_batch(text, bytea[]) TO camperso_ingest, camperso_admin;
