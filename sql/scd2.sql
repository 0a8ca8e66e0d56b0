-- camperso.scd2_merge and camperso.lookup_sk: every case checks the whole
-- dimension history row by row.
SET TimeZone = 'UTC';
SET DateStyle = ISO;
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE dim_customer (
	dim_customer_sk	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id				int,
	city			text,
	tier			text,
	email			text,
	valid_from		timestamptz NOT NULL,
	valid_to		timestamptz NOT NULL,
	is_current		boolean NOT NULL,
	UNIQUE (id, valid_from)
);
-- The unknown member: never touched by merges.
INSERT INTO dim_customer OVERRIDING SYSTEM VALUE VALUES (-1, NULL, NULL, NULL, NULL, '-infinity', 'infinity', true);
CREATE TABLE src (id int, city text, tier text, email text, ts timestamptz);
CREATE VIEW history AS
	SELECT dim_customer_sk AS sk, id, city, tier, email, valid_from::date AS valid_from,
		   CASE WHEN valid_to = 'infinity' THEN 'infinity' ELSE valid_to::date::text END AS valid_to, is_current
	  FROM dim_customer ORDER BY id NULLS FIRST, valid_from;
CREATE FUNCTION pg_temp.merge() RETURNS TABLE (inserted bigint, closed bigint, type1_updated bigint, unchanged bigint, corrected bigint)
LANGUAGE sql AS $$ SELECT * FROM camperso.scd2_merge('dim_customer', 'src', '{id}', '{city,tier}', '{email}', 'ts') $$;

-- 1. New keys: one version each, current, open-ended.
INSERT INTO src VALUES (1, 'Paris', 'gold', 'a@x', '2024-01-01'), (2, 'Rome', NULL, 'b@x', '2024-01-01'),
					   (3, 'Oslo', 'free', NULL, '2024-01-01');
SELECT * FROM pg_temp.merge();
SELECT * FROM history;

-- 2. The same source again: nothing changes.
SELECT * FROM pg_temp.merge();
SELECT * FROM history;

-- 3. A tracked change closes the current version and opens a new one.
TRUNCATE src;
INSERT INTO src VALUES (1, 'Lyon', 'gold', 'a@x', '2024-02-01');
SELECT * FROM pg_temp.merge();
SELECT * FROM history;
SELECT * FROM pg_temp.merge();

-- 4. A type-1-only change rewrites every version of the key, no new version.
TRUNCATE src;
INSERT INTO src VALUES (1, 'Lyon', 'gold', 'new@x', '2024-02-10');
SELECT * FROM pg_temp.merge();
SELECT * FROM history;
SELECT * FROM pg_temp.merge();

-- 5. Several changes for one key in one batch: every version, in order
-- (rows given out of order); type-1 from the latest one.
TRUNCATE src;
INSERT INTO src VALUES (2, 'Nice', NULL, 'b3@x', '2024-03-01'), (2, 'Milan', NULL, 'b2@x', '2024-02-01'),
					   (2, 'Milan', 'pro', 'b4@x', '2024-04-01'), (2, 'Milan', 'pro', 'b5@x', '2024-04-15');
SELECT * FROM pg_temp.merge();
SELECT * FROM history;
SELECT * FROM pg_temp.merge();

-- 6. A late change, earlier than the current version, splits the version it
-- falls into; a late change equal to the next version moves that one's start
-- back; a change at exactly a version's start corrects it in place.
TRUNCATE src;
INSERT INTO src VALUES (2, 'Turin', NULL, 'b5@x', '2024-01-15');
SELECT * FROM pg_temp.merge();
SELECT * FROM history WHERE id = 2;
TRUNCATE src;
INSERT INTO src VALUES (2, 'Nice', NULL, 'b5@x', '2024-02-20');
SELECT * FROM pg_temp.merge();
SELECT * FROM history WHERE id = 2;
TRUNCATE src;
INSERT INTO src VALUES (2, 'Venice', 'pro', 'b5@x', '2024-04-01');
SELECT * FROM pg_temp.merge();
SELECT * FROM history WHERE id = 2;
-- Before the first version: a new first version, or the first one starting
-- earlier when the values agree.
TRUNCATE src;
INSERT INTO src VALUES (3, 'Bergen', 'free', NULL, '2023-06-01'), (1, 'Paris', 'gold', 'new@x', '2023-12-01');
SELECT * FROM pg_temp.merge();
SELECT * FROM history WHERE id IN (1, 3);
-- Re-running the earlier batches together changes nothing...
TRUNCATE src;
INSERT INTO src VALUES (1, 'Paris', 'gold', 'new@x', '2024-01-01'), (1, 'Lyon', 'gold', 'new@x', '2024-02-01'),
					   (1, 'Lyon', 'gold', 'new@x', '2024-02-10'), (2, 'Milan', NULL, 'b5@x', '2024-02-01'),
					   (2, 'Turin', NULL, 'b5@x', '2024-01-15'),
					   (2, 'Nice', NULL, 'b5@x', '2024-02-20'), (2, 'Venice', 'pro', 'b5@x', '2024-04-01'),
					   (3, 'Bergen', 'free', NULL, '2023-06-01'), (1, 'Paris', 'gold', 'new@x', '2023-12-01');
SELECT * FROM pg_temp.merge();
SELECT count(*) AS versions, count(*) FILTER (WHERE is_current) AS current FROM dim_customer;
-- ...except an observation the correction above contradicts: Milan was seen
-- on 2024-04-15, after the version corrected to Venice from 2024-04-01
-- began, so it is a change again.
TRUNCATE src;
INSERT INTO src VALUES (2, 'Milan', 'pro', 'b5@x', '2024-04-15');
SELECT * FROM pg_temp.merge();
SELECT * FROM history WHERE id = 2 AND valid_from >= '2024-04-01';
SELECT * FROM pg_temp.merge();

-- 7. NULLs in tracked columns are values: NULL -> value and value -> NULL
-- are changes, NULL -> NULL is not.
TRUNCATE src;
INSERT INTO src VALUES (3, 'Oslo', NULL, NULL, '2024-05-01');
SELECT * FROM pg_temp.merge();
TRUNCATE src;
INSERT INTO src VALUES (3, 'Oslo', NULL, NULL, '2024-05-02');
SELECT * FROM pg_temp.merge();
TRUNCATE src;
INSERT INTO src VALUES (3, NULL, NULL, NULL, '2024-05-03');
SELECT * FROM pg_temp.merge();
TRUNCATE src;
INSERT INTO src VALUES (3, NULL, 'free', NULL, '2024-05-04');
SELECT * FROM pg_temp.merge();
SELECT * FROM history WHERE id = 3;

-- History invariants: versions of a key tile time without gap or overlap,
-- exactly one current version per key, ending at infinity.
SELECT count(*) AS gaps_or_overlaps FROM (
	SELECT valid_to, lead(valid_from) OVER (PARTITION BY id ORDER BY valid_from) AS next_from
	  FROM dim_customer WHERE id IS NOT NULL) x
 WHERE next_from IS NOT NULL AND next_from <> valid_to;
SELECT id, count(*) FILTER (WHERE is_current) AS current, bool_and(is_current = (valid_to = 'infinity')) AS consistent
  FROM dim_customer GROUP BY id ORDER BY id NULLS FIRST;

-- lookup_sk: the version valid at a time, boundaries half-open
-- [valid_from, valid_to); before the first version its first version;
-- unknown and NULL members -1; NULL time the current version.
SELECT camperso.lookup_sk('dim_customer', '2', '2024-02-01 00:00:00') AS at_start,
	   camperso.lookup_sk('dim_customer', '2', '2024-01-31 23:59:59.999999') AS just_before,
	   camperso.lookup_sk('dim_customer', '2', '2024-02-20') AS split_start,
	   camperso.lookup_sk('dim_customer', '2', '2099-01-01') AS far_future,
	   camperso.lookup_sk('dim_customer', '2', NULL) AS current_one,
	   camperso.lookup_sk('dim_customer', '2', '1999-01-01') AS before_first,
	   camperso.lookup_sk('dim_customer', '42', '2024-02-01') AS unknown,
	   camperso.lookup_sk('dim_customer', NULL, '2024-02-01') AS null_key;
SELECT sk FROM history WHERE id = 2 AND valid_from = '2024-02-01';
SELECT pg_temp.err($$SELECT camperso.lookup_sk('dim_customer', 'not a number', now())$$);
SELECT pg_temp.err($$SELECT camperso.lookup_sk('src', '1', now())$$);
SELECT dim, natural_key, scd2, tracked, type1, effective_column FROM camperso.dimensions;

-- 8. Without an effective column the change takes effect now(); a second row
-- for the key in one batch cannot be ordered.
TRUNCATE src;
INSERT INTO src VALUES (4, 'Kyiv', 'pro', 'k@x', NULL);
BEGIN;
SELECT * FROM camperso.scd2_merge('dim_customer', 'src', '{id}', '{city,tier}', '{email}');
SELECT id, city, valid_from = now() AS starts_now, is_current FROM dim_customer WHERE id = 4;
COMMIT;
SELECT * FROM camperso.scd2_merge('dim_customer', 'src', '{id}', '{city,tier}', '{email}');
INSERT INTO src VALUES (4, 'Lviv', 'pro', 'k@x', NULL);
SELECT pg_temp.err($$SELECT * FROM camperso.scd2_merge('dim_customer', 'src', '{id}', '{city,tier}', '{email}')$$);

-- 9. Bad arguments, each with its SQLSTATE; nothing is written.
TRUNCATE src;
INSERT INTO src VALUES (5, 'Riga', 'free', NULL, '2024-01-01'), (5, 'Tartu', 'free', NULL, '2024-01-01');
SELECT pg_temp.err($$SELECT pg_temp.merge()$$);
TRUNCATE src;
INSERT INTO src VALUES (NULL, 'Riga', 'free', NULL, '2024-01-01');
SELECT pg_temp.err($$SELECT pg_temp.merge()$$);
TRUNCATE src;
INSERT INTO src VALUES (5, 'Riga', 'free', NULL, NULL);
SELECT pg_temp.err($$SELECT pg_temp.merge()$$);
TRUNCATE src;
INSERT INTO src VALUES (5, 'Riga', 'free', NULL, 'infinity');
SELECT pg_temp.err($$SELECT pg_temp.merge()$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{city,nope}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{nope}', '{city}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{}', '{city}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{city,city}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{city}', '{city}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{city}', '{valid_from}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{city}', '{dim_customer_sk}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', ARRAY['city', NULL])$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{""}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{city}', '{}', 'city')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{city}', '{}', 'nope')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge(NULL, 'src', '{id}', '{city}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', NULL, '{city}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('history', 'src', '{id}', '{city}')$$);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'pg_temp.err', '{id}', '{city}')$$);
CREATE TABLE src_badtype (id text, city text, tier text, email text, ts timestamptz);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src_badtype', '{id}', '{city}')$$);
CREATE TABLE dim_nosk (id int, city text, valid_from timestamptz, valid_to timestamptz, is_current bool);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_nosk', 'src', '{id}', '{city}')$$);
CREATE TABLE dim_badvf (dim_badvf_sk serial, id int, city text, valid_from date, valid_to timestamptz, is_current bool);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_badvf', 'src', '{id}', '{city}')$$);
CREATE TABLE dim_nodefault (dim_nodefault_sk bigint, id int, city text, valid_from timestamptz, valid_to timestamptz, is_current bool);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_nodefault', 'src', '{id}', '{city}')$$);
CREATE TABLE src_json (id json, city text, ts timestamptz);
CREATE TABLE dim_json (dim_json_sk serial, id json, city text, valid_from timestamptz, valid_to timestamptz, is_current bool);
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_json', 'src_json', '{id}', '{city}')$$);
-- Privileges: writing a dimension needs INSERT and UPDATE on it.
CREATE ROLE scd2_reader;
GRANT USAGE ON SCHEMA camperso TO scd2_reader;
-- (functions are not executable by PUBLIC: an admin grants them)
GRANT EXECUTE ON FUNCTION camperso.scd2_merge(regclass, regclass, text[], text[], text[], text),
	camperso.lookup_sk(regclass, text, timestamptz) TO scd2_reader;
GRANT SELECT ON dim_customer, src TO scd2_reader;
SET ROLE scd2_reader;
SELECT pg_temp.err($$SELECT camperso.scd2_merge('dim_customer', 'src', '{id}', '{city}')$$);
SELECT camperso.lookup_sk('dim_customer', '1', '2024-01-15') AS reader_can_look_up;
RESET ROLE;
SELECT count(*) AS versions_unchanged_by_errors FROM dim_customer;

-- 10. Composite natural keys, typmods, a view as source, and hostile
-- identifiers everywhere.
CREATE SCHEMA "dw; DROP TABLE src; --";
CREATE TABLE "dw; DROP TABLE src; --"."dim ""x"" 'y'" (
	"dim ""x"" 'y'_sk" integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	"Tenant Id" varchar(8), "user id" int, "Plan; --" text, "e""mail" text,
	valid_from timestamptz, valid_to timestamptz, is_current boolean);
CREATE VIEW "dw; DROP TABLE src; --"."src view" AS
	SELECT * FROM (VALUES ('t1'::varchar(8), 1, 'free', 'x@y', '2024-01-01'::date),
						  ('t1', 1, 'pro', 'x@y', '2024-02-01'),
						  ('t2', 1, 'free', 'z@y', '2024-01-01')) v("Tenant Id", "user id", "Plan; --", "e""mail", "when");
SELECT * FROM camperso.scd2_merge('"dw; DROP TABLE src; --"."dim ""x"" ''y''"', '"dw; DROP TABLE src; --"."src view"',
								  '{Tenant Id,user id}', '{"Plan; --"}', '{"e\"mail"}', 'when');
SELECT "dim ""x"" 'y'_sk", "Tenant Id", "user id", "Plan; --", "e""mail", valid_from::date, valid_to, is_current
  FROM "dw; DROP TABLE src; --"."dim ""x"" 'y'" ORDER BY 2, 3, valid_from;
SELECT * FROM camperso.scd2_merge('"dw; DROP TABLE src; --"."dim ""x"" ''y''"', '"dw; DROP TABLE src; --"."src view"',
								  '{Tenant Id,user id}', '{"Plan; --"}', '{"e\"mail"}', 'when');
SELECT pg_temp.err($$SELECT camperso.lookup_sk('"dw; DROP TABLE src; --"."dim ""x"" ''y''"', 't1', now())$$);
SELECT count(*) AS src_still_there FROM src;

-- Text keys are grouped byte-wise whatever the collation, so keys that only
-- differ in case or accents stay distinct members.
CREATE TABLE dim_word (dim_word_sk bigint GENERATED ALWAYS AS IDENTITY, w text COLLATE "C", v int,
					   valid_from timestamptz, valid_to timestamptz, is_current bool);
CREATE TABLE src_word (w text COLLATE "C", v int, ts timestamptz);
INSERT INTO src_word VALUES ('a', 1, '2024-01-01'), ('B', 1, '2024-01-01'), ('b', 1, '2024-01-01'), ('A', 1, '2024-01-01'),
							('é', 1, '2024-01-01'), ('e', 1, '2024-01-01'), ('a', 2, '2024-02-01');
SELECT * FROM camperso.scd2_merge('dim_word', 'src_word', '{w}', '{v}', '{}', 'ts');
SELECT w, v, valid_from::date, is_current FROM dim_word ORDER BY w COLLATE "C", valid_from;
SELECT * FROM camperso.scd2_merge('dim_word', 'src_word', '{w}', '{v}', '{}', 'ts');

DROP SCHEMA "dw; DROP TABLE src; --" CASCADE;
DROP TABLE dim_customer, src, src_badtype, dim_nosk, dim_badvf, dim_nodefault, src_json, dim_json, dim_word, src_word CASCADE;
REVOKE USAGE ON SCHEMA camperso FROM scd2_reader;
REVOKE EXECUTE ON FUNCTION camperso.scd2_merge(regclass, regclass, text[], text[], text[], text),
	camperso.lookup_sk(regclass, text, timestamptz) FROM scd2_reader;
DROP ROLE scd2_reader;
