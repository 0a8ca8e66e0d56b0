-- Security: PII at ingest. A source's "pii" option rewrites fields after
-- decoding and before typing, so clear values never reach a table; _raw and
-- the quarantine payload of such a source are envelopes.
SET client_min_messages = warning;
CREATE SCHEMA sec_pii;
CREATE TABLE sec_pii.events (
	event_id	uuid NOT NULL,
	user_id		text,
	email		text,
	ip			text,
	card		bytea,
	phone		text,
	app_id		text,
	n			int,
	props		jsonb,
	_raw		bytea
);
INSERT INTO camperso.sources (name, brokers, topic, target, options)
VALUES ('sec_pii_s', 'localhost:9092', 'clicks', 'sec_pii.events',
		'{"pii": {"user_id": "pseudonymize", "email": "drop", "ip": "truncate", "card": "encrypt", "phone": "encrypt"}}');

CREATE FUNCTION sec_pii.b(VARIADIC lines text[]) RETURNS bytea[]
LANGUAGE sql AS $$ SELECT array_agg(convert_to(l, 'UTF8') ORDER BY o) FROM unnest(lines) WITH ORDINALITY AS u(l, o) $$;
CREATE TABLE sec_pii.sent AS
SELECT * FROM unnest(sec_pii.b(
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a01","user_id":"u-alice","email":"alice@example.com","ip":"203.0.113.77","card":"4111-1111","phone":"+33 6 12 34 56 78","app_id":"shop","n":1}',
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a02","user_id":42,"ip":"2001:db8:abcd:12::1","app_id":"shop","n":2}',
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a03","user_id":"u-decoy","user_id":"u-alice","app_id":"blog","n":3}',
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a04","user_id":null,"email":null,"ip":null,"app_id":"blog","n":4}',
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a05","user_id":{"nested":"u-alice"},"app_id":"blog","n":5}',
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a06","user_id":"u-alice","ip":"localhost","app_id":"shop","n":6}',
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a07","user_id":"u-alice","ip":12345,"app_id":"shop","n":7}',
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a08","user_id":"u-alice","email":"alice@example.com","app_id":"shop","n":"eight"}',
	'{"user_id":"u-alice", "email": "alice@example.com", "app_id":"shop" BROKEN'
)) WITH ORDINALITY AS s(payload, ord);
SELECT * FROM camperso.ingest_batch('sec_pii_s', (SELECT array_agg(payload ORDER BY ord) FROM sec_pii.sent));

-- What landed: pseudonyms (of the last duplicate key too), no email, /24 and
-- /48 networks, the card as an envelope (bytea column) and the phone as its
-- hex text (text column), _raw as an envelope.
SELECT n,
	   CASE user_id WHEN camperso.pseudonymize('u-alice') THEN 'pseudonym(u-alice)'
					WHEN camperso.pseudonymize('42') THEN 'pseudonym(42)'
					WHEN camperso.pseudonymize('{"nested":"u-alice"}') THEN 'pseudonym({"nested":"u-alice"})'
					ELSE user_id END AS user_id,
	   email, ip,
	   convert_from(camperso.decrypt(card), 'UTF8') AS card_decrypted,
	   phone ~ '^\\x4350450100' AS phone_is_envelope_hex,
	   convert_from(camperso.decrypt(phone::bytea), 'UTF8') AS phone_decrypted,
	   camperso.envelope_key_version(_raw) AS raw_key_version,
	   camperso.decrypt(_raw) = (SELECT payload FROM sec_pii.sent WHERE ord = n) AS raw_decrypts_byte_exact
  FROM sec_pii.events ORDER BY n;

-- What was quarantined: the rule, and payloads as envelopes that decrypt to
-- the message byte-exact.
SELECT rule, field, reason, app_id, payload_encrypted,
	   camperso.decrypt(payload) IN (SELECT payload FROM sec_pii.sent) AS decrypts_to_a_sent_message
  FROM camperso.quarantine WHERE source = 'sec_pii_s' ORDER BY id;

-- The clear id and email appear nowhere: not in any column of the target or
-- the quarantine, not inside any stored bytea. Each needle holds a character
-- that is not a hex digit: envelopes show as hex in row_to_json, and a
-- bare "4111" matches the ~3,500 random hex digits here about once in 20 runs.
SELECT count(*) AS target_rows_with_clear_pii
  FROM sec_pii.events e
 WHERE row_to_json(e)::text ~ 'u-alice|u-decoy|alice@example|4111-1111|203\.0\.113\.77|34 56 78'
	OR position('u-alice'::bytea IN coalesce(e._raw, '')) > 0
	OR position('4111-1111'::bytea IN coalesce(e.card, '')) > 0;
SELECT count(*) AS quarantine_rows_with_clear_pii
  FROM camperso.quarantine q
 WHERE q.source = 'sec_pii_s'
   AND (row_to_json(q)::text ~ 'u-alice|alice@example'
		OR position('u-alice'::bytea IN q.payload) > 0
		OR position('alice@example'::bytea IN q.payload) > 0);

-- "raw": "drop": no _raw at all, the quarantine payload still an envelope.
UPDATE camperso.sources SET options = '{"pii": {"user_id": "pseudonymize"}, "raw": "drop"}' WHERE name = 'sec_pii_s';
SELECT * FROM camperso.ingest_batch('sec_pii_s', sec_pii.b(
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a10","user_id":"u-bob","n":10}',
	'{"event_id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","user_id":"u-bob","n":"eleven"}'));
SELECT n, user_id = camperso.pseudonymize('u-bob') AS pseudonymized, _raw IS NULL AS raw_dropped
  FROM sec_pii.events WHERE n = 10;
SELECT payload_encrypted, convert_from(camperso.decrypt(payload), 'UTF8') AS message
  FROM camperso.quarantine WHERE source = 'sec_pii_s' AND field = 'n' ORDER BY id DESC LIMIT 1;

-- A source without pii keeps _raw and quarantine payloads in clear.
CREATE TABLE sec_pii.plain (n int, _raw bytea);
INSERT INTO camperso.sources (name, brokers, topic, target) VALUES ('sec_plain_s', 'localhost:9092', 'p', 'sec_pii.plain');
SELECT * FROM camperso.ingest_batch('sec_plain_s', sec_pii.b('{"n":1}', '{"n":"x"}'));
SELECT convert_from(_raw, 'UTF8') AS raw FROM sec_pii.plain;
SELECT payload_encrypted, convert_from(payload, 'UTF8') AS payload FROM camperso.quarantine WHERE source = 'sec_plain_s';

-- _raw must be bytea to hold envelopes: a text _raw is refused clearly.
CREATE TABLE sec_pii.textraw (n int, user_id text, _raw text);
INSERT INTO camperso.sources (name, brokers, topic, target, options)
VALUES ('sec_textraw_s', 'localhost:9092', 't', 'sec_pii.textraw', '{"pii": {"user_id": "pseudonymize"}}');
SELECT * FROM camperso.ingest('sec_textraw_s', '{"n":1,"user_id":"u-carol"}');
-- ... unless the source drops _raw.
UPDATE camperso.sources SET options = '{"pii": {"user_id": "pseudonymize"}, "raw": "drop"}' WHERE name = 'sec_textraw_s';
SELECT * FROM camperso.ingest('sec_textraw_s', '{"n":1,"user_id":"u-carol"}');
SELECT n, user_id = camperso.pseudonymize('u-carol') AS pseudonymized, _raw FROM sec_pii.textraw;

DELETE FROM camperso.quarantine WHERE source IN ('sec_pii_s', 'sec_plain_s', 'sec_textraw_s');
DELETE FROM camperso.sources WHERE name IN ('sec_pii_s', 'sec_plain_s', 'sec_textraw_s');
DROP SCHEMA sec_pii CASCADE;
