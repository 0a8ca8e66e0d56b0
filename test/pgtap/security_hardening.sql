-- pgTAP: hardening. Injection attempts through source names, schema, table,
-- column, role and app names and user ids fail cleanly or are taken as
-- data; SECURITY DEFINER functions cannot be steered by objects a caller
-- plants in its own schemas.
BEGIN;
CREATE EXTENSION IF NOT EXISTS camperso;
SELECT plan(29);

CREATE FUNCTION pg_temp.as_role(role name, sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', role);
	BEGIN
		EXECUTE sql INTO result;
	EXCEPTION WHEN OTHERS THEN
		result := SQLSTATE;
	END;
	RESET ROLE;
	RETURN result;
END
$$;

CREATE TABLE public.victim (v int);
INSERT INTO public.victim VALUES (1);

-- ---- source names
SELECT throws_ok($$SELECT camperso.create_source('x''; DROP TABLE public.victim; --', 'localhost:9', 't', 'public.victim')$$,
				 '42602', NULL, 'a source name with quotes and semicolons is refused');
SELECT throws_ok($$SELECT camperso.create_source('x"); DROP TABLE public.victim; --', 'localhost:9', 't', 'public.victim')$$,
				 '42602', NULL, 'a source name with double quotes is refused');
SELECT throws_ok($$INSERT INTO camperso.sources (name, brokers, topic, target) VALUES ('x''; DROP TABLE public.victim; --', 'h:1', 't', 'public.victim')$$,
				 '23514', NULL, 'and so is it by the catalog itself');
SELECT throws_ok($$SELECT * FROM camperso.ingest('nosuch''; DROP TABLE public.victim; --', '{}')$$,
				 '42704', NULL, 'ingest into a hostile, unknown source name is an unknown source');
SELECT has_table('public', 'victim', 'the victim table survived the source names');

-- ---- schema, table and column names in secure_schema, masks, protect_table
CREATE SCHEMA "h""; DROP TABLE public.victim; --";
CREATE TABLE "h""; DROP TABLE public.victim; --"."t'); DROP TABLE public.victim; --" (
	app_id text, email text, "col"";DROP TABLE public.victim;--" text, user_id text);
INSERT INTO "h""; DROP TABLE public.victim; --"."t'); DROP TABLE public.victim; --"
	VALUES ('a''pp', 'x@y.z', 'secret', 'hu1');
INSERT INTO camperso.masks VALUES ('"h""; DROP TABLE public.victim; --"."t''); DROP TABLE public.victim; --"',
								   'col";DROP TABLE public.victim;--', 'hide');
SELECT lives_ok($$SELECT camperso.secure_schema('h"; DROP TABLE public.victim; --')$$,
				'secure_schema takes a schema, table and column full of quotes and semicolons');
SELECT has_view('h"; DROP TABLE public.victim; --', 't''); DROP TABLE public.victim; --_masked', 'and makes its masked view');
SELECT has_table('public', 'victim', 'the victim table survived the schema, table and column names');
CREATE ROLE sec_h_an IN ROLE camperso_analyst;
SELECT camperso.grant_app('sec_h_an', 'a''pp');
SELECT is(pg_temp.as_role('sec_h_an', $$SELECT email || '|' || coalesce("col"";DROP TABLE public.victim;--", 'hidden') FROM "h""; DROP TABLE public.victim; --"."t'); DROP TABLE public.victim; --_masked"$$),
		  'x***@y.z|hidden', 'the hostile column is masked, and an app id with a quote is matched as data');

-- ---- role and app names
SELECT throws_ok($$SELECT camperso.grant_app('nobody"; DROP TABLE public.victim; --', 'a')$$,
				 '42602', NULL, 'grant_app to a hostile role name fails as an invalid name');
SELECT throws_ok($$SELECT camperso.grant_app('"nobody; DROP TABLE public.victim; --"', 'a')$$,
				 '42704', NULL, 'and a quoted one as an unknown role');
SELECT throws_ok($$SELECT camperso.grant_app('sec_h_an', '')$$, '22023', NULL, 'an empty app id is refused');
SELECT lives_ok($$SELECT camperso.grant_app('sec_h_an', $x$'); DROP TABLE public.victim; --$x$)$$, 'a hostile app id is stored as data');
SELECT has_table('public', 'victim', 'the victim table survived the role and app names');

-- ---- user ids and user columns in forget_user
INSERT INTO camperso.user_columns VALUES ('"h""; DROP TABLE public.victim; --"."t''); DROP TABLE public.victim; --"',
										  'col";DROP TABLE public.victim;--');
SELECT lives_ok($$SELECT * FROM camperso.forget_user($x$'); DROP TABLE public.victim; --$x$)$$,
				'forget_user of a hostile id runs, as data');
SELECT is((SELECT count(*) FROM camperso.forget_user('secret')), 2::bigint, 'a registered hostile user column is searched');
SELECT is((SELECT count(*) FROM "h""; DROP TABLE public.victim; --"."t'); DROP TABLE public.victim; --"), 0::bigint,
		  'and its row erased');
SELECT throws_ok($$SELECT * FROM camperso.forget_user('')$$, '22023', NULL, 'an empty user id is refused');
SELECT has_table('public', 'victim', 'the victim table survived the user ids');

-- ---- rule fields, expectation columns, model schema names
SELECT lives_ok($$SELECT camperso.add_rule('sec_h_rs', 'f"; DROP TABLE public.victim; --', 'required')$$,
				'a rule on a hostile field name is stored as data');
SELECT is((SELECT field FROM camperso.validate('sec_h_rs', '{}')), 'f"; DROP TABLE public.victim; --',
		  'and validated as data');
SELECT throws_ok($$SELECT camperso.add_expectation('sec_h_suite', 'public.victim', 'not_null', 'v"; DROP TABLE public.victim; --')$$,
				 NULL, NULL, 'an expectation on a hostile column name fails cleanly');
SELECT lives_ok($$SELECT camperso.create_clickstream_model('h"m; DROP TABLE public.victim; --', validate => false)$$,
				'a clickstream model in a hostile schema name is made and secured');
SELECT is((SELECT count(*) FROM camperso.secured_schemas WHERE schema_name = 'h"m; DROP TABLE public.victim; --'), 1::bigint,
		  'under exactly that name');
SELECT has_table('public', 'victim', 'the victim table survived rules, expectations and models');

-- ---- objects planted in the caller's schemas do not steer definer functions
CREATE ROLE sec_h_admin IN ROLE camperso_admin;
GRANT CREATE ON SCHEMA public TO sec_h_admin;
SET LOCAL ROLE sec_h_admin;
CREATE TEMP TABLE keys (version int, key bytea, kek_fingerprint text, from_install boolean);
CREATE TEMP TABLE quarantine (payload bytea);
CREATE FUNCTION public.pseudonyms(text) RETURNS text[] LANGUAGE sql AS $$ SELECT ARRAY['planted'] $$;
CREATE FUNCTION public.btrim(text) RETURNS text LANGUAGE sql AS $$ SELECT 'planted' $$;
SET LOCAL search_path = pg_temp, public, pg_catalog;
RESET ROLE;
SELECT is(pg_temp.as_role('sec_h_admin', 'SELECT camperso.rotate_key()::text'), (SELECT (max(version) + 1)::text FROM camperso.keys),
		  'rotate_key writes camperso.keys, not a temp table of the caller''s');
SELECT is((SELECT count(*) FROM pg_temp.keys), 0::bigint, 'the planted temp table is untouched');
SELECT is(pg_temp.as_role('sec_h_admin', $$SELECT count(*)::text FROM camperso.forget_user('x')$$),
		  (SELECT (count(*) + 1)::text FROM camperso.erasure_scope()), 'forget_user ignores the planted functions and tables');
SELECT is((SELECT count(*) FROM camperso.erasure_log WHERE details ? 'pg_temp.quarantine'), 0::bigint, 'and erased nothing through them');

SELECT * FROM finish();
ROLLBACK;
