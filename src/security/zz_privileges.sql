-- security: the privileges of every camperso object, least privilege first.
-- Runs after every stage before it (core, capture, validate, model, persist,
-- expose, the rest of security), so what they made is covered; functions of
-- other stages are granted by name where they exist, so this file does not
-- break when a stage renames or has not yet landed a function.
--
--   camperso_admin       manages sources, rules, keys: every function, and
--                        read/write on every camperso table but the keys
--   camperso_ingest      what workers and ingest() need: insert into the
--                        quarantine, read sources, keep offsets
--   camperso_analyst     curated facts, dims, rollups and BI views only (granted
--                        per model schema by camperso.secure_schema); here just
--                        what RLS and masking need
--   camperso_pii_reader  un-masked columns where kept: decrypt, quarantine rows
--                        of its apps
-- PUBLIC gets nothing.

REVOKE ALL ON ALL TABLES IN SCHEMA camperso FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA camperso FROM PUBLIC;
REVOKE ALL ON ALL ROUTINES IN SCHEMA camperso FROM PUBLIC;
-- The analyst reads the model, never camperso's own catalogs: whatever a
-- stage granted it here is taken back, and the short list below given.
REVOKE ALL ON ALL TABLES IN SCHEMA camperso FROM camperso_analyst;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA camperso FROM camperso_analyst;
REVOKE ALL ON ALL ROUTINES IN SCHEMA camperso FROM camperso_analyst;

-- Tables.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA camperso TO camperso_admin;
REVOKE ALL ON camperso.keys FROM camperso_admin;
REVOKE INSERT, UPDATE, DELETE ON camperso.key_versions FROM camperso_admin;
-- The erasure audit is append-only, written by forget_user (SECURITY DEFINER).
REVOKE INSERT, UPDATE, DELETE ON camperso.erasure_log FROM camperso_admin;
GRANT INSERT ON camperso.quarantine TO camperso_ingest;
GRANT SELECT ON camperso.sources TO camperso_ingest;
GRANT SELECT, INSERT, UPDATE ON camperso.source_offsets TO camperso_ingest;
GRANT SELECT ON camperso.quarantine TO camperso_pii_reader;
GRANT SELECT ON camperso.app_grants TO camperso_analyst, camperso_pii_reader;

-- Functions: the admin runs everything; the others what their job needs.
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA camperso TO camperso_admin;

DO $grants$
DECLARE
	g record;
BEGIN
	FOR g IN
		SELECT p.oid::regprocedure AS fn, x.role
		  FROM (VALUES
				('version', 'camperso_ingest'), ('version', 'camperso_analyst'), ('version', 'camperso_pii_reader'),
				-- ingest: the land path (workers run as the source owner)
				('ingest', 'camperso_ingest'), ('ingest_batch', 'camperso_ingest'),
				('pseudonymize', 'camperso_ingest'), ('pseudonyms', 'camperso_ingest'), ('encrypt', 'camperso_ingest'),
				('ensure_partition', 'camperso_ingest'),
				-- analyst: what row-level security and the masked views call
				('visible_apps', 'camperso_analyst'), ('mask_email', 'camperso_analyst'), ('truncate_ip', 'camperso_analyst'),
				-- pii_reader: un-masked values
				('visible_apps', 'camperso_pii_reader'), ('mask_email', 'camperso_pii_reader'),
				('truncate_ip', 'camperso_pii_reader'), ('decrypt', 'camperso_pii_reader'),
				('envelope_key_version', 'camperso_pii_reader'), ('pseudonymize', 'camperso_pii_reader'),
				('pseudonyms', 'camperso_pii_reader'), ('sha256', 'camperso_pii_reader')
			   ) AS x(fname, role)
		  JOIN pg_proc p ON p.proname = x.fname AND p.pronamespace = 'camperso'::regnamespace
	LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', g.fn, g.role);
	END LOOP;
END
$grants$;
