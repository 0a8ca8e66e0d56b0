-- Regressions for what the fuzzers (test/fuzz/) found, seen from SQL.
SET client_min_messages = warning;
CREATE SCHEMA fuzz_t;

-- 1. The decoder's verdict on a number is jsonb's: a message lands exactly
-- when its number fits numeric, else it is quarantined as out_of_range. The
-- target column is text, so nothing but the decoder judges the number.
-- (Zero with a scale above 16383 or an exponent of INT_MAX/2 was accepted;
-- 0.001e131074, which numeric holds, was refused.)
CREATE TABLE fuzz_t.nums (a text);
INSERT INTO camperso.sources (name, brokers, topic, target)
VALUES ('fuzz_nums', 'localhost:9092', 'n', 'fuzz_t.nums');
CREATE FUNCTION fuzz_t.jsonb_takes(doc text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
	PERFORM doc::jsonb;
	RETURN true;
EXCEPTION WHEN numeric_value_out_of_range THEN
	RETURN false;
END $$;
CREATE TABLE fuzz_t.lits (lit text);
INSERT INTO fuzz_t.lits VALUES
	('0e-16383'), ('0e-16384'), ('0e-20000'), ('-0.0e-16383'), ('0.000e-16380'), ('0.000e-16381'),
	('0e1073741822'), ('0e1073741823'), ('1e-1073741823'),
	('1e131071'), ('1e131072'), ('0.001e131074'), ('0.001e131075'), ('0.5e131072'), ('100e131070'),
	('1e-16383'), ('1e-16384'), ('10e-16384'), ('1.5e-16382'), ('1.5e-16383');
SELECT count(*) FROM fuzz_t.lits l,
	LATERAL camperso.ingest('fuzz_nums', convert_to('{"a":' || l.lit || '}', 'UTF8'));
SELECT l.lit,
	   fuzz_t.jsonb_takes('{"a":' || l.lit || '}') AS jsonb_takes_it,
	   EXISTS (SELECT FROM fuzz_t.nums n WHERE n.a = l.lit) AS landed,
	   (SELECT q.rule FROM camperso.quarantine q
		 WHERE q.source = 'fuzz_nums' AND q.payload = convert_to('{"a":' || l.lit || '}', 'UTF8')) AS rule
FROM fuzz_t.lits l ORDER BY l.lit COLLATE "C";
-- the type rule "numeric" agrees too
SELECT camperso.add_rule('fuzz_num', 'a', 'type', '"numeric"') > 0 AS added;
SELECT l.lit, NOT EXISTS (SELECT FROM camperso.validate('fuzz_num', ('{"a":' || l.lit || '}')::jsonb)) AS passes
FROM fuzz_t.lits l WHERE fuzz_t.jsonb_takes('{"a":' || l.lit || '}') ORDER BY l.lit COLLATE "C";

-- 2. A reason cut at its 255-byte limit ends on a character boundary: it is
-- stored as text (camperso.quarantine.reason) and returned to clients.
SELECT camperso.add_rule('fuzz_reason', 'country', 'in',
	'["Åland", "Österreich", "España", "Côte d''Ivoire", "Türkiye", "Ísland", "Perú", "São Tomé",
	  "日本", "한국", "中国", "Россия", "Ελλάδα", "ישראל", "भारत", "Danmark", "Norge", "Sverige",
	  "Suomi", "Deutschland", "Nederland", "België", "Україна", "Polska", "Česko", "Magyarország"]') > 0 AS added;
SELECT camperso.add_rule('fuzz_reason', 'label', 'regex',
	to_jsonb('^(' || repeat('ünïcödé|', 40) || 'x)$')) > 0 AS added;
SELECT rule, field, octet_length(reason) <= 255 AS fits,
	   convert_from(convert_to(reason, 'UTF8'), 'UTF8') = reason AS valid_utf8,
	   right(reason, 4) AS ends
FROM camperso.validate('fuzz_reason', jsonb_build_object('country', 'Atlantis ' || repeat('€', 30)))
UNION ALL
SELECT rule, field, octet_length(reason) <= 255, convert_from(convert_to(reason, 'UTF8'), 'UTF8') = reason,
	   right(reason, 4)
FROM camperso.validate('fuzz_reason', jsonb_build_object('label', repeat('€', 19)));
-- every cut position: a value one byte longer each time moves the cut
SELECT count(*) AS reasons, count(*) FILTER (WHERE convert_from(convert_to(reason, 'UTF8'), 'UTF8') = reason) AS valid
FROM generate_series(0, 8) k,
	 LATERAL camperso.validate('fuzz_reason', jsonb_build_object('country', repeat('x', k) || repeat('€', 20)));

-- the land path stores such a reason in the quarantine, valid
CREATE TABLE fuzz_t.visits (country text, label text);
INSERT INTO camperso.sources (name, brokers, topic, target, ruleset)
VALUES ('fuzz_reason', 'localhost:9092', 'v', 'fuzz_t.visits', 'fuzz_reason');
SELECT landed, quarantined FROM camperso.ingest('fuzz_reason', convert_to('{"country":"x€€€€€€€€€€€€€€€€€€€€"}', 'UTF8'));
SELECT rule, convert_from(convert_to(reason, 'UTF8'), 'UTF8') = reason AS valid_utf8
FROM camperso.quarantine WHERE source = 'fuzz_reason';

-- 3. A mapping path with a stray non-ASCII character names the whole
-- character in its error (it named a lone byte, not valid UTF-8).
CREATE TABLE fuzz_t.mapped (x text);
INSERT INTO camperso.sources (name, brokers, topic, target, options)
VALUES ('fuzz_map', 'localhost:9092', 'm', 'fuzz_t.mapped', '{"mapping": {"x": "$€"}}');
\set VERBOSITY default
SELECT * FROM camperso.ingest('fuzz_map', convert_to('{"a":1}', 'UTF8'));
\set VERBOSITY terse

DELETE FROM camperso.sources WHERE name IN ('fuzz_nums', 'fuzz_reason', 'fuzz_map');
DELETE FROM camperso.quarantine WHERE source IN ('fuzz_nums', 'fuzz_reason');
SELECT camperso.drop_ruleset('fuzz_num');
SELECT camperso.drop_ruleset('fuzz_reason');
DROP SCHEMA fuzz_t CASCADE;
