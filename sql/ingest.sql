-- camperso.ingest() / ingest_batch(): the land path of capture, without Kafka.
-- Every bad message lands in camperso.quarantine byte-exact with its rule,
-- and the good messages of the same batch land.
SET client_min_messages = warning;
CREATE SCHEMA ingest_t;
CREATE TABLE ingest_t.events (
	event_id	uuid NOT NULL,
	user_id		text,
	n			int,
	big			bigint,
	small		smallint,
	amount		numeric(6,2),
	f			float8,
	r			real,
	ok			bool,
	ts			timestamptz,
	day			date,
	props		jsonb,
	doc			json,
	ip			inet,
	code		varchar(5),
	blob		bytea,
	_partition	int,
	_offset		bigint,
	_key		text,
	_raw		bytea,
	_received_at timestamptz
);
INSERT INTO camperso.sources (name, brokers, topic, target)
VALUES ('ingest_s', 'localhost:9092', 'clicks', 'ingest_t.events');

-- helper: a batch from text lines
CREATE FUNCTION ingest_t.b(VARIADIC lines text[]) RETURNS bytea[]
LANGUAGE sql AS $$ SELECT array_agg(convert_to(l, 'UTF8') ORDER BY o) FROM unnest(lines) WITH ORDINALITY AS u(l, o) $$;

-- one good message: every fast converter
SELECT * FROM camperso.ingest('ingest_s', convert_to('{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","user_id":"u1","n":42,"big":-9223372036854775808,"small":32767,"amount":12.345,"f":1.5e3,"r":0.25,"ok":true,"ts":"2024-05-01T12:00:00.123456+02:00","day":"2024-02-29","props":{"a":[1,2,{"b":null}],"s":"x\"y"},"doc":{"k": [true, false]},"ip":"10.1.2.3","code":"ab","blob":"raw bytes"}', 'UTF8'));
SELECT event_id, user_id, n, big, small, amount, f, r, ok, ts AT TIME ZONE 'UTC' AS ts_utc, day, props, doc, ip, code,
	   convert_from(blob, 'UTF8') AS blob, _partition, _offset, _key, _raw = convert_to('{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","user_id":"u1","n":42,"big":-9223372036854775808,"small":32767,"amount":12.345,"f":1.5e3,"r":0.25,"ok":true,"ts":"2024-05-01T12:00:00.123456+02:00","day":"2024-02-29","props":{"a":[1,2,{"b":null}],"s":"x\"y"},"doc":{"k": [true, false]},"ip":"10.1.2.3","code":"ab","blob":"raw bytes"}', 'UTF8') AS raw_exact,
	   _received_at IS NOT NULL AS has_received_at
FROM ingest_t.events;

-- a batch mixing good and bad messages: counts add up, good ones land
SELECT * FROM camperso.ingest_batch('ingest_s', ingest_t.b(
	'{"event_id":"b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","user_id":"good1"}',
	'{"event_id":"not-a-uuid"}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "n": "42"}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "n": 4.5}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "n": 2147483648}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "small": -32769}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "amount": 10000}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "f": 1e400}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "r": 1e39}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "ok": "true"}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "ts": "2024-13-01T00:00:00Z"}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "ts": "294277-01-01T00:00:00Z"}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "user_id": {"nested": 1}}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "ip": "300.1.1.1"}',
	'{"event_id":"c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "code": "toolong"}',
	'{"user_id":"no event id"}',
	'{"event_id":"d0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","user_id":"good2","code":"abc   "}'
));
SELECT user_id, code FROM ingest_t.events WHERE user_id LIKE 'good%' ORDER BY 1;
SELECT convert_from(payload, 'UTF8') AS payload, rule, field, reason
FROM camperso.quarantine WHERE source = 'ingest_s' ORDER BY id;
DROP SCHEMA ingest_t CASCADE;
DELETE FROM camperso.sources WHERE name = 'ingest_s';
