-- Rules catalog, camperso.validate() and every rule with passing and
-- failing values.
SET client_min_messages = warning;

-- The default clickstream ruleset exists after CREATE EXTENSION.
SELECT field, rule, arg FROM camperso.rules WHERE ruleset = 'clickstream' ORDER BY id;

-- A good event passes; now() keeps it inside the lateness window.
SELECT * FROM camperso.validate('clickstream', jsonb_build_object(
	'event_id', 'd3b07384-d9a0-4c9b-8f3e-1a2b3c4d5e6f', 'user_id', 'u1', 'session_id', 's1',
	'event_type', 'click', 'ts', now(), 'page_url', 'https://shop.example.com/p/1?x=2',
	'props', '{"a": 1}'::jsonb));

-- A bad one breaks many rules at once; validate() lists every one.
SELECT * FROM camperso.validate('clickstream',
	'{"event_id": "not-a-uuid", "session_id": null, "event_type": "jump",
	  "ts": "3024-01-01T00:00:00Z", "page_url": "ftp://x", "props": [1]}');

-- Not an object, or null.
SELECT * FROM camperso.validate('clickstream', '[1, 2]');
SELECT * FROM camperso.validate('clickstream', '"text"');
SELECT * FROM camperso.validate('clickstream', NULL);

-- Unknown ruleset.
SELECT * FROM camperso.validate('no_such_ruleset', '{}');

-- add_rule rejects unknown rules, bad regexes and bad arguments.
SELECT camperso.add_rule('t', 'f', 'bogus');
SELECT camperso.add_rule('t', 'f', 'regex', '"(("');
SELECT camperso.add_rule('t', 'f', 'regex', '42');
SELECT camperso.add_rule('t', 'f', 'type', '"uuidx"');
SELECT camperso.add_rule('t', 'f', 'type', NULL);
SELECT camperso.add_rule('t', 'f', 'in', '[]');
SELECT camperso.add_rule('t', 'f', 'in', '[null]');
SELECT camperso.add_rule('t', 'f', 'in', '{"a": 1}');
SELECT camperso.add_rule('t', 'f', 'range', '{"min": 10, "max": 1}');
SELECT camperso.add_rule('t', 'f', 'range', '{"low": 1}');
SELECT camperso.add_rule('t', 'f', 'range', '{"min": 1, "max": "2020-01-01T00:00:00Z"}');
SELECT camperso.add_rule('t', 'f', 'max_length', '-1');
SELECT camperso.add_rule('t', 'f', 'max_length', '2.5');
SELECT camperso.add_rule('t', 'f', 'not_future', '"5 minuts"');
SELECT camperso.add_rule('t', 'f', 'max_age', NULL);
SELECT camperso.add_rule('t', 'f', 'max_age', '"-1 day"');
SELECT camperso.add_rule('t', 'f', 'unique', '{"size": 3}');
SELECT camperso.add_rule('t', 'f', 'required', '"yes"');
SELECT camperso.add_rule('bad name!', 'f', 'required');
SELECT camperso.add_rule('t', '', 'required');
-- None of them created anything.
SELECT count(*) FROM camperso.rulesets WHERE name = 't';

-- One ruleset with every rule.
SELECT camperso.add_rule('every', 'id', 'required') > 0 AS ok;
SELECT camperso.add_rule('every', 'id', 'type', '"uuid"') > 0 AS ok;
SELECT camperso.add_rule('every', 'n', 'type', '"int"') > 0 AS ok;
SELECT camperso.add_rule('every', 'n', 'range', '{"min": 1, "max": 10}') > 0 AS ok;
SELECT camperso.add_rule('every', 'big', 'type', '"bigint"') > 0 AS ok;
SELECT camperso.add_rule('every', 'amount', 'type', '"numeric"') > 0 AS ok;
SELECT camperso.add_rule('every', 'amount', 'range', '{"min": 0.5}') > 0 AS ok;
SELECT camperso.add_rule('every', 'flag', 'type', '"bool"') > 0 AS ok;
SELECT camperso.add_rule('every', 'name', 'type', '"text"') > 0 AS ok;
SELECT camperso.add_rule('every', 'name', 'max_length', '5') > 0 AS ok;
SELECT camperso.add_rule('every', 'code', 'regex', '"^[A-Z]{2}$"') > 0 AS ok;
SELECT camperso.add_rule('every', 'color', 'in', '["red", "green", 3, true]') > 0 AS ok;
SELECT camperso.add_rule('every', 'at', 'type', '"timestamptz"') > 0 AS ok;
SELECT camperso.add_rule('every', 'at', 'range', '{"min": "2020-01-01T00:00:00Z", "max": "2030-01-01T00:00:00Z"}') > 0 AS ok;
SELECT camperso.add_rule('every', 'future', 'not_future', '"1 hour"') > 0 AS ok;
SELECT camperso.add_rule('every', 'old', 'max_age', '"1 day"') > 0 AS ok;
SELECT camperso.add_rule('every', 'obj', 'type', '"object"') > 0 AS ok;
SELECT camperso.add_rule('every', 'arr', 'type', '"array"') > 0 AS ok;
-- add_rule on an existing (field, rule) replaces its argument.
SELECT camperso.add_rule('every', 'name', 'max_length', '4') > 0 AS ok;
SELECT field, rule, arg FROM camperso.rules WHERE ruleset = 'every' AND field = 'name' ORDER BY rule;

CREATE TEMP TABLE cases (n int, payload jsonb);
INSERT INTO cases VALUES
	-- all pass
	(1, jsonb_build_object('id', '550e8400-e29b-41d4-a716-446655440000', 'n', 5, 'big', 9007199254740993,
		'amount', 12.75, 'flag', true, 'name', 'abcd', 'code', 'FR', 'color', 'red',
		'at', '2024-06-01T12:00:00+02:00', 'future', now() + interval '30 minutes',
		'old', now() - interval '23 hours', 'obj', '{}'::jsonb, 'arr', '[]'::jsonb)),
	-- other spellings that still pass: braces uuid, number and boolean members of in
	(2, '{"id": "{550E8400E29B41D4A716446655440000}", "color": 3}'),
	(3, '{"id": "550e8400-e29b-41d4-a716-446655440000", "color": true, "n": 10, "amount": 0.5}'),
	-- required: missing, null
	(4, '{}'),
	(5, '{"id": null}'),
	-- type failures
	(6, '{"id": "550e8400-e29b-41d4-a716-44665544000", "n": "5", "big": 1.5, "amount": "12",
		  "flag": "true", "name": 42, "at": "yesterday-ish", "obj": [], "arr": {}}'),
	(7, '{"id": 550, "n": 2147483648, "big": 9223372036854775808, "at": "2024-02-30T00:00:00Z"}'),
	-- range, max_length, regex, in
	(8, '{"id": "550e8400-e29b-41d4-a716-446655440000", "n": 0, "amount": 0.49, "name": "abcde",
		  "code": "fr", "color": "blue", "at": "2019-12-31T23:59:59Z"}'),
	(9, '{"id": "550e8400-e29b-41d4-a716-446655440000", "n": 11, "code": "FRA", "color": "3",
		  "at": "2030-01-01T00:00:01Z"}'),
	-- max_length counts characters, not bytes
	(10, '{"id": "550e8400-e29b-41d4-a716-446655440000", "name": "éèêë"}'),
	(11, '{"id": "550e8400-e29b-41d4-a716-446655440000", "name": "éèêëa"}'),
	-- time rules on non-timestamps
	(12, '{"id": "550e8400-e29b-41d4-a716-446655440000", "future": "soon", "old": 12}');
INSERT INTO cases VALUES
	(13, jsonb_build_object('id', '550e8400-e29b-41d4-a716-446655440000',
		 'future', now() + interval '2 hours', 'old', now() - interval '25 hours'));
SELECT c.n, v.rule, v.field,
	   regexp_replace(v.reason, '"\d{4}-\d\d-\d\d[^"]*"', '"<time>"', 'g') AS reason
  FROM cases c, camperso.validate('every', c.payload) v
 ORDER BY c.n, v.rule, v.field;
-- cases 1, 2, 3 and 10 pass
SELECT c.n FROM cases c WHERE NOT EXISTS (SELECT 1 FROM camperso.validate('every', c.payload)) ORDER BY 1;

-- Hostile inputs: no crash, a clear verdict.
-- deeply nested JSON
SELECT v.rule, v.field, v.reason
  FROM camperso.validate('every', jsonb_build_object('id', '550e8400-e29b-41d4-a716-446655440000',
		'obj', (repeat('{"a":', 500) || '1' || repeat('}', 500))::jsonb,
		'arr', (repeat('[', 500) || repeat(']', 500))::jsonb,
		'name', (repeat('[', 500) || repeat(']', 500))::jsonb)) v;
-- a 10 MB value through regex, max_length and in
SELECT v.rule, v.field, length(v.reason) < 256 AS short_reason
  FROM camperso.validate('every', jsonb_build_object('id', '550e8400-e29b-41d4-a716-446655440000',
		'name', repeat('x', 10 * 1024 * 1024), 'code', repeat('A', 10 * 1024 * 1024),
		'color', repeat('r', 10 * 1024 * 1024))) v
 ORDER BY 1;
-- SQL-looking strings are just values
SELECT * FROM camperso.validate('every', '{"id": "''; DROP TABLE camperso.rules; --", "name": "x''); --"}');
SELECT count(*) > 0 AS rules_still_there FROM camperso.rules;
-- huge numbers
SELECT * FROM camperso.validate('every', '{"id": "550e8400-e29b-41d4-a716-446655440000", "n": 1e400, "big": -99999999999999999999, "amount": 1e-400}');
SELECT * FROM camperso.validate('every', jsonb_build_object('id', '550e8400-e29b-41d4-a716-446655440000', 'n', ('1' || repeat('0', 1000))::numeric));
-- duplicate keys: the last one wins, as in jsonb
SELECT * FROM camperso.validate('every', '{"id": "550e8400-e29b-41d4-a716-446655440000", "n": 50, "n": 5}');
SELECT * FROM camperso.validate('every', '{"id": "550e8400-e29b-41d4-a716-446655440000", "n": 5, "n": 50}');
-- NUL bytes cannot reach the engine through jsonb or text
SELECT * FROM camperso.validate('every', '{"name": "a\u0000b"}');
-- unusual but valid timestamps go through PostgreSQL's own parser
SELECT * FROM camperso.validate('every', '{"id": "550e8400-e29b-41d4-a716-446655440000", "at": "June 1, 2024 12:00 Europe/Paris"}');
SELECT * FROM camperso.validate('every', '{"id": "550e8400-e29b-41d4-a716-446655440000", "at": "2024-06-01 12:00 Mars/Olympus"}');

-- drop_rule and drop_ruleset
SELECT camperso.drop_rule('every', 'name', 'max_length');
SELECT camperso.drop_rule('every', 'n');
SELECT camperso.drop_rule('every', 'nothing');
SELECT field, rule FROM camperso.rules WHERE ruleset = 'every' AND field IN ('name', 'n');
SELECT * FROM camperso.validate('every', '{"id": "550e8400-e29b-41d4-a716-446655440000", "n": "x", "name": "long name"}');
SELECT camperso.drop_ruleset('every');
SELECT camperso.drop_ruleset('every');
SELECT * FROM camperso.validate('every', '{}');
-- an empty ruleset exists and passes everything
SELECT camperso.add_rule('empty', 'x', 'required') > 0 AS ok;
SELECT camperso.drop_rule('empty', 'x');
SELECT * FROM camperso.validate('empty', '{"anything": 1}');
SELECT camperso.drop_ruleset('empty');

-- create_clickstream_ruleset() rebuilds it with another lateness
SELECT camperso.create_clickstream_ruleset(lateness => '2 days');
SELECT arg FROM camperso.rules WHERE ruleset = 'clickstream' AND rule = 'max_age';
SELECT rule, field FROM camperso.validate('clickstream', jsonb_build_object(
	'event_id', 'd3b07384-d9a0-4c9b-8f3e-1a2b3c4d5e6f', 'user_id', 'u1', 'session_id', 's1',
	'event_type', 'click', 'ts', now() - interval '3 days'));
SELECT camperso.create_clickstream_ruleset(lateness => '-1 day');
SELECT camperso.create_clickstream_ruleset();

-- the time rules' clock: a time read just before is never "in the future",
-- a time just inside max_age is never too late, one a second past it is
SELECT camperso.add_rule('clock', 'ts', 'not_future', NULL) > 0 AS ok;
SELECT camperso.add_rule('clock', 'ts', 'max_age', '"1 hour"') > 0 AS ok;
SELECT count(*) AS failures
  FROM generate_series(1, 200) g,
	   camperso.validate('clock', jsonb_build_object('ts', clock_timestamp()));
SELECT count(*) AS failures
  FROM generate_series(1, 200) g,
	   camperso.validate('clock', jsonb_build_object('ts', clock_timestamp() - interval '59 minutes 59.9 seconds'));
SELECT rule, field FROM camperso.validate('clock', jsonb_build_object('ts', clock_timestamp() - interval '1 hour 1 second'));
SELECT camperso.drop_ruleset('clock');
