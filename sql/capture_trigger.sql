-- A source that validates with ruleset R landing into a table that also
-- carries camperso.validate_row(R): the trigger would validate a second
-- time and take every message for a replay of itself (its dedupe key was
-- just recorded by the land path). The land path skips such triggers, so
-- every good message lands exactly once; other BEFORE ROW triggers still fire.
CREATE SCHEMA cap_trig;
CREATE TABLE cap_trig.t (event_id uuid, n int, note text);
SELECT camperso.add_rule('cap_trig_rules', 'event_id', 'unique', '{"window": "1 day"}');
SELECT camperso.add_rule('cap_trig_rules', 'n', 'range', '{"min": 0, "max": 100}');
CREATE TRIGGER t_validate BEFORE INSERT ON cap_trig.t
	FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('cap_trig_rules');
INSERT INTO camperso.sources (name, brokers, topic, target, ruleset)
	VALUES ('cap_trig_s', '127.0.0.1:9092', 'x', 'cap_trig.t', 'cap_trig_rules');

SELECT * FROM camperso.ingest_batch('cap_trig_s', ARRAY[
	'{"event_id": "00000000-0000-0000-0000-000000000001", "n": 1}',
	'{"event_id": "00000000-0000-0000-0000-000000000002", "n": 2}',
	'{"event_id": "00000000-0000-0000-0000-000000000002", "n": 2}',
	'{"event_id": "00000000-0000-0000-0000-000000000003", "n": 500}']::bytea[]);
SELECT event_id, n FROM cap_trig.t ORDER BY event_id;
SELECT rule, field FROM camperso.quarantine WHERE source = 'cap_trig_s';

-- With any other BEFORE ROW trigger the triggers fire; validate_row for
-- the source's own ruleset then lets the already validated row pass, so the
-- row lands once and the other trigger's change is kept.
CREATE FUNCTION cap_trig.stamp() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.note := 'stamped'; RETURN NEW; END $$;
CREATE TRIGGER t_stamp BEFORE INSERT ON cap_trig.t FOR EACH ROW EXECUTE FUNCTION cap_trig.stamp();
SELECT * FROM camperso.ingest_batch('cap_trig_s', ARRAY[
	'{"event_id": "00000000-0000-0000-0000-000000000004", "n": 4}']::bytea[]);
SELECT event_id, n, note FROM cap_trig.t ORDER BY event_id;

-- A direct INSERT still goes through the trigger's rules.
INSERT INTO cap_trig.t VALUES ('00000000-0000-0000-0000-000000000005', 700);
SELECT count(*) AS rows_with_n_700 FROM cap_trig.t WHERE n = 700;

-- A trigger that skips a row (returns NULL) is accounted for too:
-- landed + quarantined + deduplicated = messages, and every quarantined
-- count has its row. validate_row() for another ruleset quarantines a bad
-- row as a row of the table and counts a replay a duplicate; a skip by any
-- other trigger is quarantined by the land path as skipped_by_trigger,
-- byte-exact, so no message vanishes.
CREATE TABLE cap_trig.u (event_id uuid, n int);
SELECT camperso.add_rule('cap_trig_other', 'event_id', 'unique', '{"window": "1 day"}') > 0 AS ok;
SELECT camperso.add_rule('cap_trig_other', 'n', 'range', '{"max": 50}') > 0 AS ok;
CREATE FUNCTION cap_trig.drop_odd() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN IF NEW.n % 2 = 1 THEN RETURN NULL; END IF; RETURN NEW; END $$;
CREATE TRIGGER u_a_validate BEFORE INSERT ON cap_trig.u
	FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('cap_trig_other');
CREATE TRIGGER u_b_drop_odd BEFORE INSERT ON cap_trig.u FOR EACH ROW EXECUTE FUNCTION cap_trig.drop_odd();
INSERT INTO camperso.sources (name, brokers, topic, target, ruleset)
	VALUES ('cap_trig_u', '127.0.0.1:9092', 'x', 'cap_trig.u', 'cap_trig_rules');
SELECT * FROM camperso.ingest_batch('cap_trig_u', ARRAY[
	'{"event_id": "00000000-0000-0000-0000-000000000011", "n": 10}',
	'{"event_id": "00000000-0000-0000-0000-000000000012", "n": 11}',
	'{"event_id": "00000000-0000-0000-0000-000000000013", "n": 60}',
	'{"event_id": "00000000-0000-0000-0000-000000000014", "n": 200}']::bytea[]);
-- an event inserted directly is new to the source's ruleset, but
-- validate_row('cap_trig_other') has seen it: counted a duplicate
INSERT INTO cap_trig.u VALUES ('00000000-0000-0000-0000-000000000016', 30);
SELECT * FROM camperso.ingest_batch('cap_trig_u', ARRAY[
	'{"event_id": "00000000-0000-0000-0000-000000000016", "n": 30}']::bytea[]);
SELECT event_id, n FROM cap_trig.u ORDER BY event_id;
SELECT source, ruleset, rule, field, reason, convert_from(payload, 'UTF8') AS payload
  FROM camperso.quarantine WHERE source = 'cap_trig_u' OR target = 'cap_trig.u' ORDER BY id;

DELETE FROM camperso.sources WHERE name = 'cap_trig_u';
DELETE FROM camperso.quarantine WHERE source = 'cap_trig_u' OR target = 'cap_trig.u';
SELECT camperso.drop_ruleset('cap_trig_other');
DELETE FROM camperso.sources WHERE name = 'cap_trig_s';
DELETE FROM camperso.quarantine WHERE source = 'cap_trig_s' OR target = 'cap_trig.t';
DROP SCHEMA cap_trig CASCADE;
SELECT camperso.drop_ruleset('cap_trig_rules');
