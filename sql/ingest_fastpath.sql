-- The land path's fast paths against PostgreSQL's own parsers. The decoder
-- scans strings eight bytes at a time and the common types have converters
-- of their own; on every input here they must give what jsonb and the
-- types' input functions give, and refuse (quarantine, with the rule) what
-- those refuse.
SET client_min_messages = warning;
SET timezone = 'America/New_York';
CREATE SCHEMA fp;

-- What PostgreSQL makes of v stored into column col of fp.sink (the type's
-- input function, with the column's typmod, as INSERT applies it), as
-- text; NULL when it refuses it.
CREATE TABLE fp.sink (u uuid, ts timestamptz, tsn timestamp, d date, ip inet, vc varchar(5), txt text);
CREATE FUNCTION fp.via_input(v text, col text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE format('INSERT INTO fp.sink (%I) VALUES (%L) RETURNING %I::text', col, v, col) INTO r;
	RETURN r;
EXCEPTION WHEN data_exception THEN
	RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------
-- Strings: one special character (an escape, multibyte UTF-8, a quote) at
-- every offset 0..24 of a run of plain bytes, in a top-level value, in a
-- key and in a nested value. Each must decode to what jsonb reads.
-- ---------------------------------------------------------------------------
CREATE TABLE fp.str (n int, s text, t text, nested jsonb, _raw bytea);
INSERT INTO camperso.sources (name, brokers, topic, target) VALUES ('fp_str', 'unused:9092', 'x', 'fp.str');
CREATE TABLE fp.specials (id int, j text);
INSERT INTO fp.specials VALUES
	(1, '\"'), (2, '\\'), (3, '\/'), (4, '\n'), (5, '\t'), (6, '\u00e9'), (7, '\ud83d\ude00'),
	(8, 'é'), (9, '€'), (10, '😀'), (11, '/'), (12, '\u0041'), (13, '\\\"'), (14, '''');
CREATE TABLE fp.msgs AS
SELECT row_number() OVER (ORDER BY sp.id, pos)::int AS n,
	   repeat('a', pos) || sp.j || repeat('b', 24 - pos) AS body,
	   pos
FROM fp.specials sp, generate_series(0, 24) pos;

SELECT * FROM camperso.ingest_batch('fp_str', (
	SELECT array_agg(convert_to(format('{"n":%s,"s":"%s","t":"%s%s","k%s":1,"nested":{"x":"%s","%s":[1,"%s"]}}',
									   n, body, body, body, body, body, body, body), 'UTF8') ORDER BY n)
	FROM fp.msgs));
-- every message landed, and each string is the one jsonb reads
SELECT count(*) AS landed,
	   count(*) FILTER (WHERE s IS DISTINCT FROM convert_from(_raw, 'UTF8')::jsonb->>'s') AS s_differs,
	   count(*) FILTER (WHERE t IS DISTINCT FROM convert_from(_raw, 'UTF8')::jsonb->>'t') AS t_differs,
	   count(*) FILTER (WHERE nested IS DISTINCT FROM convert_from(_raw, 'UTF8')::jsonb->'nested') AS nested_differs
FROM fp.str;
-- and what the escapes decode to, for one offset
SELECT n, s FROM fp.str WHERE n IN (SELECT n FROM fp.msgs WHERE pos = 9) ORDER BY n;
-- a key with an escape in it is matched after decoding ("\u0073" is "s")
SELECT * FROM camperso.ingest('fp_str', convert_to('{"n":1000,"\u0073":"abcdefghijklmnop\"q"}', 'UTF8'));
SELECT s FROM fp.str WHERE n = 1000;

-- What jsonb refuses is quarantined, wherever it sits in the run:
-- control characters, invalid UTF-8, bad escapes, \u0000.
CREATE TABLE fp.bad (id int, what text, b bytea);
INSERT INTO fp.bad VALUES
	(1, 'control 0x01', '\x01'), (2, 'control 0x1f', '\x1f'), (3, 'raw tab', '\x09'),
	(4, 'byte 0xff', '\xff'), (5, 'overlong NUL', '\xc080'), (6, 'encoded surrogate', '\xeda080'),
	(7, 'lone continuation', '\x80'), (8, 'truncated sequence', '\xe282'),
	(9, 'bad escape', convert_to('\x', 'UTF8')), (10, 'escaped NUL', convert_to('\u0000', 'UTF8')),
	(11, 'lone surrogate', convert_to('\ud83d', 'UTF8'));
SELECT * FROM camperso.ingest_batch('fp_str', (
	SELECT array_agg(convert_to('{"n":2000,"id":' || id || ',"s":"' || repeat('a', pos), 'UTF8') || b ||
					 convert_to(repeat('b', 24 - pos) || '"}', 'UTF8') ORDER BY id, pos)
	FROM fp.bad, generate_series(0, 24) pos));
-- per kind of fault: how many of its 25 messages went to which rule
SELECT bad.what, q.rule, count(*)
FROM camperso.quarantine q
JOIN fp.bad ON position(convert_to('"id":' || bad.id || ',', 'UTF8') IN q.payload) > 0
WHERE q.source = 'fp_str'
GROUP BY 1, 2 ORDER BY min(bad.id), 2;
SELECT count(*) AS landed_bad FROM fp.str WHERE n = 2000;

-- A string that runs to the end of the message (no closing quote) at every
-- length up to the padding and past it.
SELECT * FROM camperso.ingest_batch('fp_str', (
	SELECT array_agg(convert_to('{"s":"' || repeat('a', len), 'UTF8') ORDER BY len)
	FROM generate_series(0, 20) len));
SELECT rule, count(*) FROM camperso.quarantine
WHERE source = 'fp_str' AND reason LIKE 'unterminated string%' GROUP BY 1;

-- ---------------------------------------------------------------------------
-- Converters: edge values through the fast converter and through the
-- type's input function must agree.
-- ---------------------------------------------------------------------------
CREATE TABLE fp.conv (kind text, v text, u uuid, ts timestamptz, tsn timestamp, d date, ip inet,
					  vc varchar(5), txt text, _raw bytea);
INSERT INTO camperso.sources (name, brokers, topic, target) VALUES ('fp_conv', 'unused:9092', 'x', 'fp.conv');
CREATE TABLE fp.vals (kind text, col text, v text);
INSERT INTO fp.vals
SELECT 'uuid', 'u', v FROM unnest(ARRAY[
	'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
	'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', 'a0eebc999c0b4ef8bb6d6bb9bd380a11',
	'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11', '00000000-0000-0000-0000-000000000000',
	'ffffffff-ffff-ffff-ffff-ffffffffffff',
	'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111',
	'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
	'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', 'a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11',
	'-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-',
	'a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11', ' a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '']) v
UNION ALL
SELECT 'timestamptz', 'ts', v FROM unnest(ARRAY[
	'2024-05-01T12:00:00Z', '2024-05-01T12:00:00z', '2024-05-01 12:00:00+02:00', '2024-05-01T12:00:00.123456-05:30',
	'2024-05-01T12:00:00.1234567Z', '2024-05-01T12:00:00.9999995Z', '2024-05-01T12:00Z', '2024-05-01T12:00',
	'2024-05-01', '2024-05-01T12:00:00+0530', '2024-05-01T12:00:00+05', '2024-05-01T12:00:00+15:59',
	'2024-05-01T12:00:00+16:00', '2024-02-29T00:00:00Z', '2023-02-29T00:00:00Z', '2024-04-31T00:00:00Z',
	'2024-05-01T24:00:00Z', '2024-05-01T23:59:60Z', '2024-05-01T23:60:00Z', '2024-13-01T00:00:00Z',
	'0001-01-01T00:00:00Z', '0000-01-01T00:00:00Z', '4713-11-24 00:00:00+00 BC', '294276-12-31T23:59:59Z',
	'294277-01-01T00:00:00Z', '2024-03-10T02:30:00', '2024-11-03T01:30:00', '2024-05-01T12:00:00.Z',
	'2024-05-01T12:00:00Z ', ' 2024-05-01T12:00:00Z', '2024-5-1T12:00:00Z', 'May 1 2024 12:00 UTC',
	'epoch', 'infinity', 'now-ish', '2024-05-01T12:00:00+05:3', '2024-05-01T12:00:00Zulu', '']) v
UNION ALL
SELECT 'timestamp', 'tsn', v FROM unnest(ARRAY[
	'2024-05-01T12:00:00', '2024-05-01T12:00:00.5', '2024-05-01T12:00:00Z', '2024-05-01T12:00:00+02:00',
	'2024-02-30T00:00:00', '294277-01-01T00:00:00', '9999-12-31T23:59:59.999999', '2024-05-01']) v
UNION ALL
SELECT 'date', 'd', v FROM unnest(ARRAY[
	'2024-05-01', '2024-02-29', '2023-02-29', '0001-01-01', '5874897-12-31', '5874898-01-01',
	'2024-05-01T00:00:00', '2024-05-01Z', 'May 1, 2024', '']) v
UNION ALL
SELECT 'inet', 'ip', v FROM unnest(ARRAY[
	'10.1.2.3', '10.1.2.3/8', '10.1.2.3/32', '10.1.2.3/33', '255.255.255.255', '256.1.1.1', '10.1.2',
	'10.1.2.3.4', '::1', '2001:db8::1/64', '2001:db8::1/129', '::ffff:10.1.2.3', 'fe80::1%eth0',
	'1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', ':::', '10.1.2.3 ', '', 'localhost']) v
UNION ALL
SELECT 'varchar', 'vc', v FROM unnest(ARRAY[
	'', 'abcde', 'abcdef', 'abcde   ', 'abc  de', 'ééééé', 'éééééé', 'ab😀de', 'ab😀def']) v
UNION ALL
SELECT 'text', 'txt', v FROM unnest(ARRAY[
	'', 'plain', repeat('x', 3000), 'tab	inside', 'é€😀', 'quote " and \ backslash']) v;

SELECT * FROM camperso.ingest_batch('fp_conv', (
	SELECT array_agg(convert_to(json_build_object('kind', kind, 'v', v, col, v)::text, 'UTF8') ORDER BY kind, v)
	FROM fp.vals));

-- landed: the fast converter's value is the input function's
SELECT c.kind, count(*) AS landed,
	   count(*) FILTER (WHERE CASE c.kind
			WHEN 'uuid' THEN c.u::text WHEN 'timestamptz' THEN c.ts::text
			WHEN 'timestamp' THEN c.tsn::text WHEN 'date' THEN c.d::text WHEN 'inet' THEN c.ip::text
			WHEN 'varchar' THEN c.vc::text WHEN 'text' THEN c.txt END
		IS DISTINCT FROM fp.via_input(c.v, vals.col)) AS differs
FROM fp.conv c JOIN fp.vals USING (kind, v) GROUP BY 1 ORDER BY 1;
-- quarantined: the input function refuses each of them too
SELECT x.kind, x.v, q.rule, fp.via_input(x.v, vals.col) IS NULL AS input_function_refuses
FROM camperso.quarantine q,
	 LATERAL (SELECT convert_from(q.payload, 'UTF8')::jsonb->>'kind' AS kind,
					 convert_from(q.payload, 'UTF8')::jsonb->>'v' AS v) x
JOIN fp.vals USING (kind, v)
WHERE q.source = 'fp_conv'
ORDER BY 1, 2;
-- every value went one way or the other
SELECT (SELECT count(*) FROM fp.vals) AS vals,
	   (SELECT count(*) FROM fp.conv) + (SELECT count(*) FROM camperso.quarantine WHERE source = 'fp_conv') AS accounted;

DROP SCHEMA fp CASCADE;
DELETE FROM camperso.quarantine WHERE source IN ('fp_str', 'fp_conv');
DELETE FROM camperso.sources WHERE name IN ('fp_str', 'fp_conv');
RESET timezone;
