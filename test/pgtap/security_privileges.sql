-- pgTAP: privileges of every camperso object, per role; PUBLIC gets nothing;
-- SECURITY DEFINER functions pin search_path; what each role can and cannot
-- reach when it actually tries.
BEGIN;
CREATE EXTENSION IF NOT EXISTS camperso;
SELECT plan(54);

-- Runs sql as role and returns 'ok' or the SQLSTATE it failed with.
CREATE FUNCTION pg_temp.as_role(role name, sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', role);
	BEGIN
		EXECUTE sql;
		result := 'ok';
	EXCEPTION WHEN OTHERS THEN
		result := SQLSTATE;
	END;
	RESET ROLE;
	RETURN result;
END
$$;

-- ---- PUBLIC: nothing on any object of schema camperso, whenever it was made.
SELECT is_empty($$
	SELECT 'relation ' || c.oid::regclass::text
	  FROM pg_class c,
		   aclexplode(coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
	 WHERE c.relnamespace = 'camperso'::regnamespace AND a.grantee = 0
	UNION ALL
	SELECT 'column ' || c.oid::regclass::text || '.' || att.attname
	  FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid, aclexplode(att.attacl) a
	 WHERE c.relnamespace = 'camperso'::regnamespace AND a.grantee = 0
	UNION ALL
	SELECT 'routine ' || p.oid::regprocedure::text
	  FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
	 WHERE p.pronamespace = 'camperso'::regnamespace AND a.grantee = 0
	UNION ALL
	SELECT 'schema camperso'
	  FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
	 WHERE n.nspname = 'camperso' AND a.grantee = 0
	UNION ALL
	SELECT 'type ' || t.oid::regtype::text
	  FROM pg_type t, aclexplode(t.typacl) a
	 WHERE t.typnamespace = 'camperso'::regnamespace AND a.grantee = 0
$$, 'PUBLIC has no privilege on any camperso table, view, sequence, column, routine, type or the schema');

SELECT is_empty($$
	SELECT p.oid::regprocedure::text
	  FROM pg_proc p
	 WHERE p.pronamespace = 'camperso'::regnamespace AND p.prosecdef
	   AND NOT EXISTS (
		   SELECT 1 FROM unnest(p.proconfig) c
			WHERE c ~ '^search_path='
			  AND (SELECT bool_and(trim(s) IN ('pg_catalog', 'pg_temp', 'camperso'))
					 FROM unnest(string_to_array(substr(c, 13), ',')) s)
			  AND trim((string_to_array(substr(c, 13), ','))[array_length(string_to_array(substr(c, 13), ','), 1)]) = 'pg_temp')
$$, 'every SECURITY DEFINER function pins search_path to trusted schemas, pg_temp last');

-- ---- tables, per role
SELECT table_privs_are('camperso', 'keys', r, ARRAY[]::text[], 'no camperso role has any privilege on camperso.keys: ' || r)
  FROM unnest(ARRAY['camperso_admin', 'camperso_ingest', 'camperso_analyst', 'camperso_pii_reader', 'public']) r;
SELECT table_privs_are('camperso', 'quarantine', 'camperso_admin', ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']);
SELECT table_privs_are('camperso', 'quarantine', 'camperso_ingest', ARRAY['INSERT']);
SELECT table_privs_are('camperso', 'quarantine', 'camperso_analyst', ARRAY[]::text[]);
SELECT table_privs_are('camperso', 'quarantine', 'camperso_pii_reader', ARRAY['SELECT']);
SELECT table_privs_are('camperso', 'sources', 'camperso_ingest', ARRAY['SELECT']);
SELECT table_privs_are('camperso', 'source_offsets', 'camperso_ingest', ARRAY['SELECT', 'INSERT', 'UPDATE']);
SELECT table_privs_are('camperso', 'key_versions', 'camperso_admin', ARRAY['SELECT']);
SELECT table_privs_are('camperso', 'app_grants', 'camperso_analyst', ARRAY['SELECT']);

-- The analyst reaches no camperso table but its own app grants.
SELECT is_empty($$
	SELECT c.oid::regclass::text
	  FROM pg_class c
	 WHERE c.relnamespace = 'camperso'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
	   AND c.oid <> 'camperso.app_grants'::regclass
	   AND (has_table_privilege('camperso_analyst', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
			OR has_any_column_privilege('camperso_analyst', c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))
$$, 'camperso_analyst has no privilege on any camperso relation but app_grants');
-- ... and runs only the functions row-level security and masking need.
SELECT is_empty($$
	SELECT p.oid::regprocedure::text
	  FROM pg_proc p
	 WHERE p.pronamespace = 'camperso'::regnamespace
	   AND has_function_privilege('camperso_analyst', p.oid, 'EXECUTE')
	   AND p.proname NOT IN ('version', 'visible_apps', 'mask_email', 'truncate_ip')
$$, 'camperso_analyst may execute only version, visible_apps, mask_email, truncate_ip');

-- ---- functions, per role
SELECT function_privs_are('camperso', 'decrypt', ARRAY['bytea'], r, CASE WHEN r IN ('camperso_admin', 'camperso_pii_reader') THEN ARRAY['EXECUTE'] ELSE ARRAY[]::text[] END)
  FROM unnest(ARRAY['camperso_admin', 'camperso_ingest', 'camperso_analyst', 'camperso_pii_reader', 'public']) r;
SELECT function_privs_are('camperso', 'pseudonymize', ARRAY['text'], r, CASE WHEN r IN ('camperso_admin', 'camperso_ingest', 'camperso_pii_reader') THEN ARRAY['EXECUTE'] ELSE ARRAY[]::text[] END)
  FROM unnest(ARRAY['camperso_admin', 'camperso_ingest', 'camperso_analyst', 'camperso_pii_reader', 'public']) r;
SELECT function_privs_are('camperso', 'rotate_key', ARRAY[]::text[], r, CASE WHEN r = 'camperso_admin' THEN ARRAY['EXECUTE'] ELSE ARRAY[]::text[] END)
  FROM unnest(ARRAY['camperso_admin', 'camperso_ingest', 'camperso_analyst', 'camperso_pii_reader', 'public']) r;
SELECT function_privs_are('camperso', 'grant_app', ARRAY['regrole', 'text'], 'camperso_analyst', ARRAY[]::text[]);
SELECT function_privs_are('camperso', 'encrypt', ARRAY['bytea'], 'camperso_ingest', ARRAY['EXECUTE']);
SELECT function_privs_are('camperso', 'encrypt', ARRAY['bytea'], 'camperso_analyst', ARRAY[]::text[]);

-- ---- what happens when each role tries
CREATE ROLE sec_admin IN ROLE camperso_admin;
CREATE ROLE sec_ingest IN ROLE camperso_ingest;
CREATE ROLE sec_analyst IN ROLE camperso_analyst;
CREATE ROLE sec_pii IN ROLE camperso_pii_reader;
CREATE ROLE sec_nobody;

SELECT is(pg_temp.as_role(r, 'SELECT * FROM camperso.keys'), '42501', r || ' cannot read camperso.keys')
  FROM unnest(ARRAY['sec_admin', 'sec_ingest', 'sec_analyst', 'sec_pii', 'sec_nobody']) r;
SELECT is(pg_temp.as_role('sec_analyst', 'SELECT payload FROM camperso.quarantine'), '42501', 'analyst cannot read quarantine payloads');
SELECT is(pg_temp.as_role('sec_analyst', 'SELECT camperso.decrypt(''\x00''::bytea)'), '42501', 'analyst cannot call decrypt');
SELECT is(pg_temp.as_role('sec_analyst', 'SELECT camperso.pseudonymize(''alice'')'), '42501',
		  'analyst cannot compute pseudonyms (no dictionary attack on ids)');
SELECT is(pg_temp.as_role('sec_analyst', 'SELECT * FROM camperso.key_versions'), '42501', 'analyst cannot list key versions');
SELECT is(pg_temp.as_role('sec_analyst', 'SELECT camperso.rotate_key()'), '42501', 'analyst cannot rotate keys');
SELECT is(pg_temp.as_role('sec_nobody', 'SELECT camperso.version()'), '42501', 'a role outside camperso cannot even use the schema');
SELECT is(pg_temp.as_role('sec_ingest', 'SELECT camperso.pseudonymize(''alice'')'), 'ok', 'ingest computes pseudonyms');
SELECT is(pg_temp.as_role('sec_ingest', 'SELECT camperso.decrypt(camperso.encrypt(''x''::bytea))'), '42501', 'ingest can encrypt but not decrypt');
SELECT is(pg_temp.as_role('sec_pii', 'SELECT camperso.decrypt(decode(''4350450100000001'' || repeat(''00'', 28), ''hex''))'), 'CP701',
		  'pii_reader may call decrypt (and a forged envelope fails authentication)');
SELECT is(pg_temp.as_role('sec_admin', 'SELECT camperso.rotate_key()'), 'ok', 'admin rotates keys through the SECURITY DEFINER function');
SELECT is(pg_temp.as_role('sec_admin', 'SELECT count(*) FROM camperso.key_versions'), 'ok', 'admin lists key versions without key bytes');
SELECT is(pg_temp.as_role('sec_admin', 'INSERT INTO camperso.keys (version, key) VALUES (100, ''\x00'')'), '42501', 'admin cannot plant a key');
SELECT is(pg_temp.as_role('sec_ingest', 'INSERT INTO camperso.quarantine (payload, rule, reason) VALUES (''\x7b7d'', ''t'', ''t'')'), 'ok',
		  'ingest may quarantine');
SELECT is(pg_temp.as_role('sec_ingest', 'SELECT count(*) FROM camperso.quarantine'), '42501', 'ingest cannot read the quarantine back');

SELECT * FROM finish();
ROLLBACK;
