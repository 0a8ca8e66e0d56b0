-- pgTAP: the validation stage's objects and privileges.
BEGIN;
CREATE EXTENSION IF NOT EXISTS camperso;
SELECT plan(32);

SELECT has_table('camperso', 'rulesets', 'camperso.rulesets exists');
SELECT has_table('camperso', 'rules', 'camperso.rules exists');
SELECT has_table('camperso', 'dedupe_keys', 'camperso.dedupe_keys exists');
SELECT has_table('camperso', 'validation_counts', 'camperso.validation_counts exists');
SELECT has_table('camperso', 'schema_versions', 'camperso.schema_versions exists');
SELECT has_table('camperso', 'expectations', 'camperso.expectations exists');
SELECT has_table('camperso', 'expectation_results', 'camperso.expectation_results exists');
SELECT has_view('camperso', 'alerts', 'camperso.alerts exists');
SELECT has_view('camperso', 'stat_validation', 'camperso.stat_validation exists');
SELECT columns_are('camperso', 'alerts', ARRAY['kind', 'subject', 'severity', 'since', 'details'],
				   'camperso.alerts has the documented shape');
SELECT has_function('camperso', 'add_rule', ARRAY['text', 'text', 'text', 'jsonb']);
SELECT has_function('camperso', 'validate', ARRAY['text', 'jsonb']);
SELECT has_function('camperso', 'validate_row', ARRAY[]::name[]);
SELECT function_returns('camperso', 'validate_row', ARRAY[]::name[], 'trigger');
SELECT has_function('camperso', 'replay_quarantine', ARRAY['bigint[]']);
SELECT has_function('camperso', 'add_expectation', ARRAY['text', 'regclass', 'text', 'text', 'jsonb']);
SELECT has_function('camperso', 'run_suite', ARRAY['text']);

-- Rules are admin-managed.
SELECT ok(has_table_privilege('camperso_admin', 'camperso.rules', 'INSERT'), 'admin may change rules');
SELECT ok(NOT has_table_privilege('camperso_ingest', 'camperso.rules', 'SELECT'), 'ingest may not read rules');
SELECT ok(NOT has_table_privilege('camperso_analyst', 'camperso.rules', 'SELECT'), 'analyst may not read rules');
SELECT ok(NOT has_table_privilege('public', 'camperso.rules', 'SELECT'), 'PUBLIC may not read rules');
SELECT ok(has_function_privilege('camperso_admin', 'camperso.add_rule(text,text,text,jsonb)', 'EXECUTE'), 'admin may add rules');
SELECT ok(NOT has_function_privilege('camperso_ingest', 'camperso.add_rule(text,text,text,jsonb)', 'EXECUTE'), 'ingest may not add rules');
SELECT ok(NOT has_function_privilege('public', 'camperso.add_rule(text,text,text,jsonb)', 'EXECUTE'), 'PUBLIC may not add rules');
SELECT ok(has_function_privilege('camperso_ingest', 'camperso.validate(text,jsonb)', 'EXECUTE'), 'ingest may call validate()');
SELECT ok(NOT has_function_privilege('camperso_analyst', 'camperso.replay_quarantine(bigint[])', 'EXECUTE'), 'analyst may not replay');
SELECT ok(NOT has_table_privilege('camperso_ingest', 'camperso.quarantine', 'SELECT'), 'ingest may not read the quarantine');

-- A role with no access to the rules or the quarantine can still insert
-- into a table with the trigger: its bad rows are quarantined, it cannot
-- see them.
CREATE ROLE camperso_tap_writer NOLOGIN IN ROLE camperso_ingest;
CREATE TABLE public.tap_events (event_id uuid, user_id text, session_id text, event_type text, ts timestamptz);
CREATE TRIGGER v BEFORE INSERT ON public.tap_events FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('clickstream');
GRANT INSERT, SELECT ON public.tap_events TO camperso_tap_writer;
SET LOCAL ROLE camperso_tap_writer;
INSERT INTO public.tap_events VALUES
	(gen_random_uuid(), 'u1', 's1', 'click', now()),
	(gen_random_uuid(), 'u1', NULL, 'click', now());
SELECT is((SELECT count(*) FROM public.tap_events), 1::bigint, 'the good row landed for a role without rules access');
SELECT throws_ok('SELECT count(*) FROM camperso.quarantine', '42501', NULL, 'that role cannot read the quarantine');
SELECT throws_ok($$SELECT camperso.add_rule('x', 'y', 'required')$$, '42501', NULL, 'nor add rules');
RESET ROLE;
SELECT is((SELECT count(*) FROM camperso.quarantine WHERE target = 'public.tap_events' AND field = 'session_id'),
		  1::bigint, 'its bad row is in the quarantine');

-- Internal definer helpers are not callable by PUBLIC.
SELECT ok(NOT has_function_privilege('public', 'camperso._suite_end(uuid,text,jsonb)', 'EXECUTE'), 'PUBLIC may not call _suite_end');

SELECT * FROM finish();
ROLLBACK;
