-- stat_quality: per ruleset and rule, and per suite and expectation,
-- checked, passed, failed and pass rates, all time and over the last hour.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

SELECT camperso.add_rule('q_rs', 'order_id', 'required') > 0 AS ok;
SELECT camperso.add_rule('q_rs', 'order_id', 'unique', '"1 day"') > 0 AS ok;
SELECT camperso.add_rule('q_rs', 'status', 'in', '["new", "paid"]') > 0 AS ok;
SELECT camperso.add_rule('q_rs', 'qty', 'range', '{"min": 1, "max": 100}') > 0 AS ok;
CREATE TABLE q_orders (order_id text, status text, qty int);
CREATE TRIGGER v BEFORE INSERT ON q_orders FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('q_rs');

-- 10 good rows, 3 without order_id, 2 with a bad status, 1 out of range,
-- 2 duplicates: 18 checked.
INSERT INTO q_orders SELECT 'o' || i, 'new', 5 FROM generate_series(1, 10) i;
INSERT INTO q_orders VALUES (NULL, 'new', 1), (NULL, 'paid', 2), (NULL, 'new', 3);
INSERT INTO q_orders VALUES ('o20', 'lost', 1), ('o21', 'stolen', 1);
INSERT INTO q_orders VALUES ('o22', 'new', 1000);
INSERT INTO q_orders VALUES ('o1', 'new', 1), ('o2', 'new', 1);
SELECT count(*) AS landed FROM q_orders;

SELECT kind, ruleset, rule, field, checked, passed, failed, pass_rate, checked_1h, passed_1h, failed_1h, pass_rate_1h
  FROM camperso.stat_quality WHERE ruleset = 'q_rs' ORDER BY field, rule;
-- the figures agree with the quarantine and the trigger counts
SELECT (SELECT sum(failed) FILTER (WHERE rule <> 'unique') FROM camperso.stat_quality WHERE ruleset = 'q_rs')
	   = (SELECT count(*) FROM camperso.quarantine WHERE ruleset = 'q_rs') AS failures_match_quarantine,
	   (SELECT max(checked) FROM camperso.stat_quality WHERE ruleset = 'q_rs')
	   = (SELECT received FROM camperso.stat_validation WHERE ruleset = 'q_rs') AS checked_match_counts;
-- quarantined rows older than an hour leave the last-hour figures
UPDATE camperso.quarantine SET received_at = now() - interval '2 hours' WHERE ruleset = 'q_rs' AND rule = 'required';
UPDATE camperso.validation_counts SET recorded_at = now() - interval '2 hours'
 WHERE ruleset = 'q_rs' AND id = (SELECT min(id) FROM camperso.validation_counts WHERE ruleset = 'q_rs');
SELECT rule, field, checked, failed, checked_1h, failed_1h FROM camperso.stat_quality
 WHERE ruleset = 'q_rs' ORDER BY field, rule;

-- expectations: one passing, one failing, two suite runs
SELECT camperso.add_expectation('q_suite', 'q_orders', 'not_null', 'order_id') > 0 AS ok;
SELECT camperso.add_expectation('q_suite', 'q_orders', 'between', 'qty', '{"min": 1, "max": 4}') > 0 AS ok;
SELECT count(*) AS results FROM camperso.run_suite('q_suite');
SELECT count(*) AS results FROM camperso.run_suite('q_suite');
SELECT kind, ruleset, rule, field, relation, checked, passed, failed, pass_rate, checked_1h, failed_1h
  FROM camperso.stat_quality WHERE ruleset = 'q_suite' ORDER BY rule;

-- the metric families
SELECT line FROM regexp_split_to_table(camperso.metrics(), E'\n') line
 WHERE line LIKE 'camperso_quality_%{%ruleset="q_rs"%' AND line LIKE '%rule="in"%' ORDER BY line;
SELECT line FROM regexp_split_to_table(camperso.metrics(), E'\n') line
 WHERE line LIKE 'camperso_quality_failed_total{%ruleset="q_suite"%' ORDER BY line;

-- clean up
DROP TABLE q_orders;
DELETE FROM camperso.quarantine WHERE ruleset = 'q_rs';
DELETE FROM camperso.validation_counts WHERE ruleset = 'q_rs';
DELETE FROM camperso.runs WHERE job LIKE 'suite:q_suite%' OR job LIKE '%q_suite%';
DELETE FROM camperso.expectations WHERE suite = 'q_suite';
SELECT camperso.drop_ruleset('q_rs');
SELECT count(*) AS left FROM camperso.stat_quality WHERE ruleset IN ('q_rs', 'q_suite');
