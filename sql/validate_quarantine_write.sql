-- How validate_row() writes its quarantine rows: straight into the heap and
-- the indexes when it can, through SPI when the quarantine needs more (a
-- trigger on it). Either way a row gets its defaults (identity,
-- quarantined_at, payload_encrypted), is found through every index, is
-- visible at once in its own transaction, and goes away with a rollback.
SET client_min_messages = warning;
SELECT camperso.add_rule('qwrite', 'v', 'required') > 0 AS ok;
CREATE TABLE qwrite (v text, app_id text);
CREATE TRIGGER qwrite_validate BEFORE INSERT ON qwrite
	FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('qwrite');
CREATE TEMP TABLE before_ids AS SELECT coalesce(max(id), 0) AS max_id FROM camperso.quarantine;

INSERT INTO qwrite VALUES ('ok', 'a'), (NULL, 'a'), (NULL, 'b'), (NULL, NULL);
SELECT count(*) AS landed FROM qwrite;
SELECT count(DISTINCT id) AS ids, bool_and(id > (SELECT max_id FROM before_ids)) AS new_ids,
	   bool_and(quarantined_at IS NOT NULL AND received_at IS NOT NULL) AS times,
	   bool_and(payload_encrypted IS FALSE) AS not_encrypted,
	   bool_and(source IS NULL AND topic IS NULL AND partition IS NULL AND "offset" IS NULL AND key IS NULL) AS no_kafka,
	   string_agg(coalesce(app_id, '-'), ',' ORDER BY id) AS apps,
	   string_agg(convert_from(payload, 'UTF8'), ' ' ORDER BY id) AS payloads
  FROM camperso.quarantine WHERE ruleset = 'qwrite';
SELECT DISTINCT target, rule, field, reason FROM camperso.quarantine WHERE ruleset = 'qwrite';

-- every index holds the rows
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS by_received_at FROM camperso.quarantine
 WHERE received_at > now() - interval '1 hour' AND ruleset = 'qwrite';
SELECT count(*) AS by_source FROM camperso.quarantine
 WHERE source IS NULL AND partition IS NULL AND ruleset = 'qwrite';
SELECT count(*) AS by_id FROM camperso.quarantine q
 WHERE q.id IN (SELECT id FROM camperso.quarantine WHERE ruleset = 'qwrite');
RESET enable_seqscan;
RESET enable_bitmapscan;

-- visible in its own transaction at once; a rollback takes it back, also
-- a rollback to a savepoint
BEGIN;
INSERT INTO qwrite VALUES (NULL, 'tx');
SELECT count(*) AS seen_in_tx FROM camperso.quarantine WHERE ruleset = 'qwrite' AND app_id = 'tx';
ROLLBACK;
BEGIN;
SAVEPOINT s;
INSERT INTO qwrite VALUES (NULL, 'sp1');
ROLLBACK TO SAVEPOINT s;
INSERT INTO qwrite VALUES (NULL, 'sp2');
COMMIT;
SELECT string_agg(coalesce(app_id, '-'), ',' ORDER BY id) AS apps FROM camperso.quarantine WHERE ruleset = 'qwrite';

-- a role with no privilege on the quarantine still gets its rows diverted
CREATE ROLE qwrite_user;
GRANT INSERT ON qwrite TO qwrite_user;
GRANT USAGE ON SCHEMA camperso TO qwrite_user;
SET ROLE qwrite_user;
INSERT INTO qwrite VALUES (NULL, 'role');
RESET ROLE;
SELECT count(*) AS by_role FROM camperso.quarantine WHERE ruleset = 'qwrite' AND app_id = 'role';

-- a trigger on the quarantine: rows go through the executor (SPI), so the
-- trigger fires for each
CREATE TABLE qwrite_seen (qid bigint);
CREATE FUNCTION qwrite_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.qwrite_seen VALUES (NEW.id);
	RETURN NEW;
END $$;
CREATE TRIGGER qwrite_seen AFTER INSERT ON camperso.quarantine FOR EACH ROW EXECUTE FUNCTION qwrite_seen();
INSERT INTO qwrite VALUES (NULL, 'trg1'), (NULL, 'trg2'), ('fine', 'trg3');
SELECT count(*) AS seen_by_trigger,
	   bool_and(qid IN (SELECT id FROM camperso.quarantine WHERE app_id LIKE 'trg%')) AS same_rows
  FROM qwrite_seen;
DROP TRIGGER qwrite_seen ON camperso.quarantine;
INSERT INTO qwrite VALUES (NULL, 'after');
SELECT count(*) AS seen_after_drop FROM qwrite_seen;
SELECT count(*) AS quarantined, count(DISTINCT id) AS distinct_ids
  FROM camperso.quarantine WHERE ruleset = 'qwrite';

DELETE FROM camperso.quarantine WHERE ruleset = 'qwrite';
DELETE FROM camperso.rulesets WHERE name = 'qwrite';
DROP TABLE qwrite, qwrite_seen;
DROP FUNCTION qwrite_seen();
REVOKE USAGE ON SCHEMA camperso FROM qwrite_user;
DROP ROLE qwrite_user;
