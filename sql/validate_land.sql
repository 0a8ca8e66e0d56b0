-- The land path (camperso.ingest/ingest_batch and the source workers)
-- applies the source's ruleset to every decoded message: a failure is
-- quarantined with rule, field and reason, a duplicate is counted as
-- deduplicated; landed + quarantined + deduplicated = messages. It also
-- records each message's shape for schema drift. And replay_quarantine()
-- sends a source's messages back through the same path.
SET client_min_messages = warning;
DELETE FROM camperso.quarantine;
CREATE SCHEMA vland;
CREATE TABLE vland.events (
	event_id	uuid NOT NULL,
	user_id		text CHECK (user_id <> 'blocked'),
	session_id	text,
	app_id		text,
	event_type	text,
	page_url	text,
	ts			timestamptz,
	props		jsonb,
	_partition	int,
	_offset		bigint,
	_key		text
);
INSERT INTO camperso.sources (name, brokers, topic, target, ruleset)
VALUES ('vland_s', 'localhost:9092', 'clicks', 'vland.events', 'clickstream');

CREATE FUNCTION vland.ev(id int, event_type text DEFAULT 'click', user_id text DEFAULT 'u1',
						 extra jsonb DEFAULT '{}') RETURNS bytea
LANGUAGE sql AS $$
	SELECT convert_to((jsonb_build_object(
		'event_id', format('00000000-0000-4000-8000-%s', lpad(id::text, 12, '0')),
		'user_id', user_id, 'session_id', 's1', 'app_id', 'shop', 'event_type', event_type,
		'page_url', 'https://shop.example.com/p', 'ts', now(), 'props', '{}'::jsonb) || extra)::text, 'UTF8')
$$;
-- the event_id of a payload, even a broken one
CREATE FUNCTION vland.eid(payload bytea) RETURNS text
LANGUAGE sql AS $$ SELECT substring(convert_from(payload, 'UTF8') FROM '"event_id": "([^"]*)"') $$;

-- One batch: 2 good events, a replay of the first, an unknown event type,
-- props not an object, a missing user, a non-URL page, broken JSON, and a good event that the
-- target's CHECK constraint rejects.
SELECT * FROM camperso.ingest_batch('vland_s', ARRAY[
	vland.ev(1), vland.ev(2), vland.ev(1),
	vland.ev(3, 'jump'),
	vland.ev(4, extra => '{"props": "x"}'),
	convert_to((convert_from(vland.ev(5), 'UTF8')::jsonb - 'user_id')::text, 'UTF8'),
	vland.ev(6, extra => '{"page_url": "javascript:alert(1)"}'),
	convert_to('{"event_id": ', 'UTF8'),
	vland.ev(7, user_id => 'blocked')
]);
SELECT event_id, event_type FROM vland.events ORDER BY event_id;
-- ruleset: the ruleset whose rule a message broke; NULL when it did not
-- decode or the target refused it
SELECT source, target, ruleset, rule, field, reason, app_id,
	   vland.eid(payload) AS event_id
  FROM camperso.quarantine ORDER BY id;

-- The next batch: replays of landed events are deduplicated; the event the
-- constraint rejected was not recorded as seen, so its corrected copy lands.
SELECT * FROM camperso.ingest_batch('vland_s', ARRAY[vland.ev(2), vland.ev(7), vland.ev(8)]);
SELECT * FROM camperso.ingest('vland_s', vland.ev(8));
SELECT count(*) AS landed FROM vland.events;

-- A message too late or from the future, with the reasons' prefix.
SELECT * FROM camperso.ingest('vland_s', vland.ev(9, extra => jsonb_build_object('ts', now() - interval '8 days')));
SELECT * FROM camperso.ingest('vland_s', vland.ev(10, extra => jsonb_build_object('ts', now() + interval '1 hour')));
SELECT rule, field,
	   CASE rule WHEN 'max_age' THEN reason ~ '^too_late: time ".*" is older than the allowed lateness of 7 days$'
				 ELSE reason ~ '^time ".*" is more than 5 minutes in the future$' END AS reason_ok
  FROM camperso.quarantine
 WHERE rule IN ('max_age', 'not_future')
 ORDER BY id;

-- A source without a ruleset lands everything that decodes.
INSERT INTO camperso.sources (name, brokers, topic, target)
VALUES ('vland_free', 'localhost:9092', 'clicks', 'vland.events');
SELECT * FROM camperso.ingest('vland_free', vland.ev(1, 'jump'));

-- A source naming a ruleset that does not exist fails the batch (not the
-- messages' fault): nothing lands, nothing is quarantined.
INSERT INTO camperso.sources (name, brokers, topic, target, ruleset)
VALUES ('vland_bad', 'localhost:9092', 'clicks', 'vland.events', 'no_such_ruleset');
SELECT * FROM camperso.ingest('vland_bad', vland.ev(11));

-- Schema drift: the first shape of a source is its baseline; a new shape
-- is an alert until accepted.
SELECT source, shape, accepted, messages > 0 AS counted
  FROM camperso.schema_versions WHERE source = 'vland_s' ORDER BY first_seen;
SELECT * FROM camperso.ingest('vland_s', vland.ev(12, extra => '{"referrer": null, "props": [1]}'));
SELECT kind, subject, severity, details->'shape' AS shape
  FROM camperso.alerts WHERE kind = 'schema_drift' AND subject = 'vland_s' ORDER BY since;
SELECT camperso.accept_schema('vland_s');
SELECT count(*) FROM camperso.alerts WHERE kind = 'schema_drift' AND subject = 'vland_s';

-- Replay: allow the new event type, replay everything of the source. The
-- message lands through the land path; the others stay with their reason.
SELECT camperso.add_rule('clickstream', 'event_type', 'in',
	'["page_view", "click", "scroll", "add_to_cart", "purchase", "signup", "login", "search", "jump"]') > 0 AS ok;
SELECT r.outcome, r.rule, r.field, q.event_id
  FROM camperso.replay_quarantine(ARRAY(SELECT id FROM camperso.quarantine WHERE source = 'vland_s')) r
  JOIN (SELECT id, vland.eid(payload) AS event_id FROM camperso.quarantine) q ON q.id = r.id
 ORDER BY r.id;
SELECT count(*) FILTER (WHERE event_type = 'jump') AS jumps FROM vland.events;
SELECT rule, field FROM camperso.quarantine WHERE source = 'vland_s' ORDER BY id;
-- a replayed message that is now a duplicate leaves the quarantine as such
SELECT * FROM camperso.ingest('vland_s', vland.ev(13, user_id => 'blocked'));
SELECT * FROM camperso.ingest('vland_s', vland.ev(13));
SELECT r.outcome, r.rule FROM camperso.replay_quarantine(ARRAY(
	SELECT id FROM camperso.quarantine WHERE rule = 'check_violation')) r;
SELECT count(*) FROM camperso.quarantine WHERE rule = 'check_violation';

-- A unique violation in the target makes the land path redo the batch
-- message by message: the counts stay exact, and the key of the message
-- the index rejected is not kept as seen.
CREATE TABLE vland.uniq (event_id uuid, n int UNIQUE);
SELECT camperso.add_rule('vland_u', 'event_id', 'unique') > 0 AS ok;
INSERT INTO camperso.sources (name, brokers, topic, target, ruleset)
VALUES ('vland_u', 'localhost:9092', 'clicks', 'vland.uniq', 'vland_u');
SELECT * FROM camperso.ingest_batch('vland_u', ARRAY[
	convert_to('{"event_id": "00000000-0000-4000-8000-0000000000a1", "n": 1}', 'UTF8'),
	convert_to('{"event_id": "00000000-0000-4000-8000-0000000000a1", "n": 1}', 'UTF8'),
	convert_to('{"event_id": "00000000-0000-4000-8000-0000000000a2", "n": 1}', 'UTF8'),
	convert_to('{"event_id": "00000000-0000-4000-8000-0000000000a3", "n": 3}', 'UTF8')]);
SELECT rule, vland.eid(payload) FROM camperso.quarantine WHERE source = 'vland_u';
SELECT * FROM camperso.ingest('vland_u', convert_to('{"event_id": "00000000-0000-4000-8000-0000000000a2", "n": 2}', 'UTF8'));
SELECT event_id, n FROM vland.uniq ORDER BY n;

SELECT camperso.create_clickstream_ruleset();
SELECT camperso.drop_ruleset('vland_u');
DELETE FROM camperso.sources WHERE name LIKE 'vland%';
DELETE FROM camperso.quarantine;
DROP SCHEMA vland CASCADE;
