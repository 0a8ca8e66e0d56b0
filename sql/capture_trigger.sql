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

DELETE FROM camperso.sources WHERE name = 'cap_trig_s';
DELETE FROM camperso.quarantine WHERE source = 'cap_trig_s' OR target = 'cap_trig.t';
DROP SCHEMA cap_trig CASCADE;
SELECT camperso.drop_ruleset('cap_trig_rules');
