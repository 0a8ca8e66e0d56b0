-- pgTAP: row-level security by app_id (camperso.grant_app / revoke_app),
-- on the quarantine and on any table camperso.protect_table() covers.
BEGIN;
CREATE EXTENSION IF NOT EXISTS camperso;
SELECT plan(17);

-- Runs a query as role; returns its single value as text, or the SQLSTATE.
CREATE FUNCTION pg_temp.as_role(role name, sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', role);
	BEGIN
		IF sql ~* '^\s*select|returning' THEN
			EXECUTE sql INTO result;
		ELSE
			EXECUTE sql;
			result := 'ok';
		END IF;
	EXCEPTION WHEN OTHERS THEN
		result := SQLSTATE;
	END;
	RESET ROLE;
	RETURN result;
END
$$;

CREATE ROLE sec_pii_a IN ROLE camperso_pii_reader;
CREATE ROLE sec_pii_b IN ROLE camperso_pii_reader;
CREATE ROLE sec_pii_all IN ROLE camperso_pii_reader;
CREATE ROLE sec_team;					-- a group: grants to it reach its members
CREATE ROLE sec_pii_team IN ROLE camperso_pii_reader, sec_team;
CREATE ROLE sec_admin IN ROLE camperso_admin;
CREATE ROLE sec_ingest IN ROLE camperso_ingest;

INSERT INTO camperso.quarantine (payload, rule, reason, app_id)
SELECT '\x7b7d', 'test', 'rls', app
  FROM unnest(ARRAY['app_a', 'app_a', 'app_b', 'app_c', NULL]) app;

SELECT camperso.grant_app('sec_pii_a', 'app_a');
SELECT camperso.grant_app('sec_pii_a', 'app_a');	-- twice is harmless
SELECT camperso.grant_app('sec_pii_b', 'app_b');
SELECT camperso.grant_app('sec_pii_all', '*');
SELECT camperso.grant_app('sec_team', 'app_c');

SELECT is(pg_temp.as_role('sec_pii_a', $$SELECT string_agg(DISTINCT app_id, ',') || ':' || count(*) FROM camperso.quarantine WHERE reason = 'rls'$$),
		  'app_a:2', 'a reader granted app_a sees app_a rows only');
SELECT is(pg_temp.as_role('sec_pii_b', $$SELECT string_agg(DISTINCT app_id, ',') || ':' || count(*) FROM camperso.quarantine WHERE reason = 'rls'$$),
		  'app_b:1', 'a reader granted app_b sees app_b rows only');
SELECT is(pg_temp.as_role('sec_pii_team', $$SELECT string_agg(DISTINCT app_id, ',') || ':' || count(*) FROM camperso.quarantine WHERE reason = 'rls'$$),
		  'app_c:1', 'a grant to a group reaches its members');
SELECT is(pg_temp.as_role('sec_pii_all', $$SELECT count(*) FROM camperso.quarantine WHERE reason = 'rls'$$),
		  '5', '''*'' sees every row, also those without app_id');
SELECT is(pg_temp.as_role('sec_admin', $$SELECT count(*) FROM camperso.quarantine WHERE reason = 'rls'$$),
		  '5', 'admin sees every row');
SELECT is(pg_temp.as_role('sec_pii_a', $$SELECT count(*) FROM camperso.quarantine WHERE reason = 'rls' AND app_id = 'app_b'$$),
		  '0', 'asking for another app''s rows explicitly returns nothing');
SELECT is(pg_temp.as_role('sec_pii_a', $$SELECT count(*) FROM camperso.app_grants$$),
		  '1', 'a role sees its own grants only');
SELECT is(pg_temp.as_role('sec_pii_a', $$SELECT camperso.grant_app('sec_pii_a', 'app_b')$$),
		  '42501', 'a reader cannot grant itself another app');
SELECT is(pg_temp.as_role('sec_pii_a', $$INSERT INTO camperso.app_grants (role, app_id) VALUES ('sec_pii_a', 'app_b') RETURNING 'x'$$),
		  '42501', 'nor write app_grants directly');
SELECT is(pg_temp.as_role('sec_ingest', $$INSERT INTO camperso.quarantine (payload, rule, reason, app_id) VALUES ('\x7b7d', 't', 'rls-ingest', 'app_z') RETURNING id$$),
		  '42501', 'ingest inserts but RETURNING would read: refused');
SELECT is(pg_temp.as_role('sec_ingest', $$INSERT INTO camperso.quarantine (payload, rule, reason, app_id) VALUES ('\x7b7d', 't', 'rls-ingest', 'app_z')$$),
		  'ok', 'ingest inserts rows of any app');

SELECT is(camperso.revoke_app('sec_pii_a', 'app_a'), true, 'revoke_app reports a removed grant');
SELECT is(camperso.revoke_app('sec_pii_a', 'app_a'), false, 'and false when there was none');
SELECT is(pg_temp.as_role('sec_pii_a', $$SELECT count(*) FROM camperso.quarantine WHERE reason = 'rls'$$),
		  '0', 'after revoke_app the rows are gone from view');

-- A grant to a role that is dropped later does not break anyone's queries.
CREATE ROLE sec_gone;
SELECT camperso.grant_app('sec_gone', 'app_a');
DROP ROLE sec_gone;
SELECT is(pg_temp.as_role('sec_pii_b', $$SELECT count(*) FROM camperso.quarantine WHERE reason = 'rls'$$),
		  '1', 'grants of dropped roles are ignored');

-- protect_table works on any table with app_id, and refuses one without.
CREATE TABLE public.sec_facts (app_id text, v int);
INSERT INTO public.sec_facts VALUES ('app_a', 1), ('app_b', 2);
GRANT SELECT ON public.sec_facts TO camperso_pii_reader;
SELECT camperso.protect_table('public.sec_facts');
SELECT is(pg_temp.as_role('sec_pii_b', $$SELECT string_agg(app_id, ',') FROM public.sec_facts$$),
		  'app_b', 'protect_table filters a model table by app');
CREATE TABLE public.sec_noapp (v int);
SELECT throws_ok($$SELECT camperso.protect_table('public.sec_noapp')$$, '42703', NULL,
				 'protect_table refuses a table without app_id');

SELECT * FROM finish();
ROLLBACK;
