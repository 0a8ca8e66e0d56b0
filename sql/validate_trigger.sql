-- The validate_row() trigger on INSERT and COPY, the quarantine rows it
-- writes, its counts, deduplication, and replay_quarantine().
SET client_min_messages = warning;
DELETE FROM camperso.quarantine;

SELECT camperso.add_rule('orders', 'order_id', 'required') > 0 AS ok;
SELECT camperso.add_rule('orders', 'order_id', 'type', '"uuid"') > 0 AS ok;
SELECT camperso.add_rule('orders', 'order_id', 'unique', '"1 day"') > 0 AS ok;
SELECT camperso.add_rule('orders', 'qty', 'range', '{"min": 1, "max": 100}') > 0 AS ok;
SELECT camperso.add_rule('orders', 'qty', 'type', '"int"') > 0 AS ok;
SELECT camperso.add_rule('orders', 'status', 'in', '["new", "paid"]') > 0 AS ok;
SELECT camperso.add_rule('orders', 'placed_at', 'type', '"timestamptz"') > 0 AS ok;
SELECT camperso.add_rule('orders', 'placed_at', 'range', '{"min": "2020-01-01T00:00:00Z"}') > 0 AS ok;
SELECT camperso.add_rule('orders', 'email', 'regex', '"^[^@ ]+@[^@ ]+$"') > 0 AS ok;
SELECT camperso.add_rule('orders', 'meta', 'type', '"object"') > 0 AS ok;
-- a rule on a column the table does not have: the field is missing
SELECT camperso.add_rule('orders', 'note', 'max_length', '3') > 0 AS ok;

CREATE TABLE orders (
	id			bigint GENERATED ALWAYS AS IDENTITY,
	order_id	uuid,
	qty			int,
	status		text,
	placed_at	timestamptz,
	email		varchar(100),
	meta		jsonb,
	app_id		text,
	qty2		int GENERATED ALWAYS AS (qty * 2) STORED
);
CREATE TRIGGER orders_validate BEFORE INSERT ON orders
	FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('orders');

INSERT INTO orders (order_id, qty, status, placed_at, email, meta, app_id) VALUES
	('11111111-1111-4111-8111-111111111111', 1, 'new', '2024-01-01 00:00+00', 'a@b.c', '{}', 'shop'),
	('22222222-2222-4222-8222-222222222222', 0, 'new', '2024-01-01 00:00+00', 'a@b.c', '{}', 'shop'),
	('33333333-3333-4333-8333-333333333333', 5, 'lost', '2024-01-01 00:00+00', 'a@b.c', '{}', 'shop'),
	(NULL, 5, 'new', '2024-01-01 00:00+00', 'a@b.c', '{}', 'shop'),
	('44444444-4444-4444-8444-444444444444', 5, 'paid', '2019-01-01 00:00+00', 'a@b.c', '{}', 'kiosk'),
	('55555555-5555-4555-8555-555555555555', 5, 'paid', '2024-01-01 00:00+00', 'not an email', '{}', NULL),
	('66666666-6666-4666-8666-666666666666', 5, 'paid', '2024-01-01 00:00+00', 'a@b.c', '[1]', 'shop'),
	('11111111-1111-4111-8111-111111111111', 2, 'paid', '2024-01-01 00:00+00', 'a@b.c', '{}', 'shop'),
	('77777777-7777-4777-8777-777777777777', NULL, NULL, NULL, NULL, NULL, NULL);
SELECT order_id, qty, status FROM orders ORDER BY id;
SELECT source, target, ruleset, rule, field, reason, app_id, partition, "offset",
	   convert_from(payload, 'UTF8')::jsonb - 'id' AS payload
  FROM camperso.quarantine ORDER BY id;

-- COPY goes through the same trigger
COPY orders (order_id, qty, status, placed_at, email, meta, app_id) FROM STDIN;
88888888-8888-4888-8888-888888888888	3	new	2024-02-01 00:00:00+00	x@y.z	{"k": "v"}	shop
99999999-9999-4999-8999-999999999999	300	new	2024-02-01 00:00:00+00	x@y.z	{"k": "v"}	shop
88888888-8888-4888-8888-888888888888	3	new	2024-02-01 00:00:00+00	x@y.z	{"k": "v"}	shop
aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa	4	paid	2024-02-01 00:00:00+00	'; DROP TABLE orders; --	{}	shop
\.
SELECT order_id, qty FROM orders ORDER BY id;
SELECT rule, field, reason FROM camperso.quarantine ORDER BY id DESC LIMIT 2;

-- Counts: received = landed + quarantined + deduplicated, per statement
-- here (each statement is its own transaction).
SELECT ruleset, target, received, landed, quarantined, deduplicated
  FROM camperso.stat_validation WHERE target = 'public.orders';

-- A rolled back statement leaves neither rows, nor counts, nor keys: the
-- same order lands afterwards.
BEGIN;
INSERT INTO orders (order_id, qty, status, placed_at, email, meta)
	VALUES ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 1, 'new', '2024-03-01 00:00+00', 'a@b.c', '{}');
ROLLBACK;
-- and a savepoint rolled back takes back its keys and counts only
BEGIN;
INSERT INTO orders (order_id, qty, status, placed_at, email, meta)
	VALUES ('cccccccc-cccc-4ccc-8ccc-cccccccccccc', 1, 'new', '2024-03-01 00:00+00', 'a@b.c', '{}');
SAVEPOINT s1;
INSERT INTO orders (order_id, qty, status, placed_at, email, meta)
	VALUES ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 1, 'new', '2024-03-01 00:00+00', 'a@b.c', '{}');
ROLLBACK TO SAVEPOINT s1;
INSERT INTO orders (order_id, qty, status, placed_at, email, meta)
	VALUES ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 2, 'new', '2024-03-01 00:00+00', 'a@b.c', '{}'),
		   ('cccccccc-cccc-4ccc-8ccc-cccccccccccc', 3, 'new', '2024-03-01 00:00+00', 'a@b.c', '{}');
COMMIT;
SELECT order_id, qty FROM orders WHERE order_id IN ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'cccccccc-cccc-4ccc-8ccc-cccccccccccc') ORDER BY 1;
SELECT received, landed, quarantined, deduplicated FROM camperso.stat_validation WHERE target = 'public.orders';
SELECT sum(nkeys) AS keys_persisted FROM camperso.dedupe_keys WHERE ruleset = 'orders';

-- The trigger refuses other uses.
CREATE TABLE orders_bad (order_id uuid);
CREATE TRIGGER t1 AFTER INSERT ON orders_bad FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('orders');
INSERT INTO orders_bad VALUES (NULL);
DROP TRIGGER t1 ON orders_bad;
CREATE TRIGGER t2 BEFORE INSERT ON orders_bad FOR EACH ROW EXECUTE FUNCTION camperso.validate_row();
INSERT INTO orders_bad VALUES (NULL);
DROP TRIGGER t2 ON orders_bad;
CREATE TRIGGER t3 BEFORE INSERT ON orders_bad FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('no_such');
INSERT INTO orders_bad VALUES (NULL);
DROP TABLE orders_bad;

-- validate() reports the duplicate without recording anything
SELECT rule, field, reason ~ '^duplicate: key seen at' AS dup FROM camperso.validate('orders',
	'{"order_id": "11111111-1111-4111-8111-111111111111", "qty": 1, "status": "new"}');
SELECT * FROM camperso.validate('orders',
	'{"order_id": "12121212-1212-4121-8121-121212121212", "qty": 1, "status": "new"}');
SELECT * FROM camperso.validate('orders',
	'{"order_id": "12121212-1212-4121-8121-121212121212", "qty": 1, "status": "new"}');

-- Replay: loosen two rules, replay everything. What passes lands (with
-- the generated and identity columns handled) and leaves the quarantine;
-- what still fails stays with its current reason.
SELECT camperso.add_rule('orders', 'qty', 'range', '{"min": 0, "max": 1000}') > 0 AS ok;
SELECT camperso.add_rule('orders', 'status', 'in', '["new", "paid", "lost"]') > 0 AS ok;
SELECT r.outcome, r.rule, r.field, r.reason, q.payload_order
  FROM camperso.replay_quarantine() r
  JOIN (SELECT id, convert_from(payload, 'UTF8')::jsonb->>'order_id' AS payload_order FROM camperso.quarantine) q
	ON q.id = r.id
 ORDER BY r.id;
SELECT order_id, qty, qty2, status FROM orders ORDER BY id;
SELECT rule, field, convert_from(payload, 'UTF8')::jsonb->>'order_id' AS order_id FROM camperso.quarantine ORDER BY id;
-- replaying the rest again changes nothing; unknown ids are ignored
SELECT outcome, count(*) FROM camperso.replay_quarantine() GROUP BY 1;
SELECT count(*) FROM camperso.replay_quarantine(ARRAY[-1]);
SELECT count(*) FROM camperso.quarantine;
-- a row whose table is gone fails to replay and stays
CREATE TABLE gone (a int);
SELECT camperso.add_rule('gone_rules', 'a', 'required') > 0 AS ok;
CREATE TRIGGER g BEFORE INSERT ON gone FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('gone_rules');
INSERT INTO gone VALUES (NULL);
DROP TABLE gone;
SELECT outcome, reason FROM camperso.replay_quarantine(ARRAY(SELECT id FROM camperso.quarantine WHERE ruleset = 'gone_rules'));
SELECT count(*) FROM camperso.quarantine WHERE ruleset = 'gone_rules';

DROP TABLE orders;
SELECT camperso.drop_ruleset('orders');
SELECT camperso.drop_ruleset('gone_rules');
DELETE FROM camperso.quarantine;
