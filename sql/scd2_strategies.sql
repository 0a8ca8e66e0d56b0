-- camperso.scd2_merge's two strategies give the same history: the hashed
-- one (a plain dimension read by a heap scan; a dimension under row
-- security or partitioned read by query) and the sorted stream (keys
-- without a hash function, or more affected keys than maintenance_work_mem
-- holds). Four dimensions take the same batches - late rows splitting
-- history, several changes per key, NULLs, type-1 changes, new keys - and
-- must end with the same versions, surrogate keys included.
SET TimeZone = 'UTC';
SET DateStyle = ISO;
SET client_min_messages = warning;
CREATE TABLE dim_h (dim_h_sk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id int, city text, tier text,
					email text, valid_from timestamptz NOT NULL, valid_to timestamptz NOT NULL,
					is_current boolean NOT NULL, UNIQUE (id, valid_from));
CREATE TABLE dim_s (LIKE dim_h INCLUDING ALL);
ALTER TABLE dim_s RENAME dim_h_sk TO dim_s_sk;
CREATE TABLE dim_r (LIKE dim_h INCLUDING ALL);
ALTER TABLE dim_r RENAME dim_h_sk TO dim_r_sk;
-- Row security applies even to the owner: the dimension is read by query.
ALTER TABLE dim_r ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY everything ON dim_r USING (true) WITH CHECK (true);
CREATE SEQUENCE dim_p_seq;
CREATE TABLE dim_p (dim_p_sk bigint NOT NULL DEFAULT nextval('dim_p_seq'), id int, city text, tier text,
					email text, valid_from timestamptz NOT NULL, valid_to timestamptz NOT NULL,
					is_current boolean NOT NULL, UNIQUE (id, valid_from)) PARTITION BY HASH (id);
CREATE TABLE dim_p0 PARTITION OF dim_p FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE dim_p1 PARTITION OF dim_p FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE src (id int, city text, tier text, email text, ts timestamptz);
-- Batch b: up to three rows for each of 3000 keys at pseudo-random days of
-- 2024 (so later batches land before, between and after earlier versions).
CREATE FUNCTION pg_temp.batch(b int) RETURNS void LANGUAGE sql AS $$
	DELETE FROM src;
	INSERT INTO src
	SELECT DISTINCT ON (k, t) k,
		   (ARRAY['Oslo', 'Rome', NULL, 'Lima'])[1 + abs(hashint4(k * 7 + j * 3 + b)) % 4],
		   (ARRAY['free', 'pro', NULL])[1 + abs(hashint4(k * 11 + j + b * 5)) % 3],
		   'e' || abs(hashint4(k + b)) % 3, t
	  FROM generate_series(1, 3000) k, generate_series(1, 3) j,
		   LATERAL (SELECT timestamptz '2024-01-01' + (abs(hashint4(k * 13 + j * 17 + b * 19)) % 366) * interval '1 day' AS t) x
	 WHERE abs(hashint4(k * 5 + j + b * 3)) % 3 <> 0 AND (b > 1 OR k % 10 <> 0) AND (b < 3 OR k % 7 <> 0)
	 ORDER BY k, t, j
$$;
CREATE FUNCTION pg_temp.merge(dim text) RETURNS text LANGUAGE sql AS $$
	SELECT concat_ws(' ', inserted, closed, type1_updated, unchanged, corrected)
	  FROM camperso.scd2_merge(dim::regclass, 'src', '{id}', '{city,tier}', '{email}', 'ts')
$$;
CREATE FUNCTION pg_temp.history(dim text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE format($q$SELECT count(*) || ' versions, md5 ' || md5(string_agg(concat_ws('|', %1$I, id, city, tier, email, valid_from,
						valid_to, is_current), ',' ORDER BY %1$I)) FROM %2$I$q$, dim || '_sk', dim) INTO r;
	RETURN r;
END $$;
-- The strategy a merge takes is said at DEBUG1.
CREATE FUNCTION pg_temp.merge_logged(dim text, mwm text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	PERFORM set_config('maintenance_work_mem', mwm, true);
	PERFORM set_config('client_min_messages', 'debug1', true);
	r := pg_temp.merge(dim);
	PERFORM set_config('client_min_messages', 'warning', true);
	RETURN r;
END $$;

-- Batch by batch, the same counts from every strategy (the sorted one
-- forced: the keys outgrow 1MB).
SELECT FROM pg_temp.batch(1);
SELECT (SELECT count(*) FROM src) AS source_rows, pg_temp.merge('dim_h') AS hashed, pg_temp.merge('dim_r') AS hashed_by_query,
	   pg_temp.merge('dim_p') AS partitioned, pg_temp.merge_logged('dim_s', '1MB') AS sorted;
SELECT FROM pg_temp.batch(2);
SELECT (SELECT count(*) FROM src) AS source_rows, pg_temp.merge('dim_h') AS hashed, pg_temp.merge('dim_r') AS hashed_by_query,
	   pg_temp.merge('dim_p') AS partitioned, pg_temp.merge_logged('dim_s', '1MB') AS sorted;
SELECT FROM pg_temp.batch(3);
SELECT (SELECT count(*) FROM src) AS source_rows, pg_temp.merge('dim_h') AS hashed, pg_temp.merge('dim_r') AS hashed_by_query,
	   pg_temp.merge('dim_p') AS partitioned, pg_temp.merge_logged('dim_s', '1MB') AS sorted;
SELECT FROM pg_temp.batch(4);
SELECT (SELECT count(*) FROM src) AS source_rows, pg_temp.merge('dim_h') AS hashed, pg_temp.merge('dim_r') AS hashed_by_query,
	   pg_temp.merge('dim_p') AS partitioned, pg_temp.merge_logged('dim_s', '1MB') AS sorted;
-- The last batch again changes nothing (idempotent) whichever strategy;
-- within maintenance_work_mem the hashed strategy says nothing.
SELECT pg_temp.merge('dim_h') AS hashed_again, pg_temp.merge_logged('dim_s', '64MB') AS hashed_again_s,
	   pg_temp.merge_logged('dim_r', '1MB') AS sorted_again_r;
SELECT d, pg_temp.history(d) = pg_temp.history('dim_h') AS same_history
  FROM unnest(ARRAY['dim_s', 'dim_r', 'dim_p']) d;
SELECT pg_temp.history('dim_h') ~ '^[0-9]+ versions' AS history_made,
	   (SELECT count(*) FROM dim_h) > 6000 AS has_history;
-- History invariants on the result.
SELECT count(*) AS gaps_or_overlaps FROM (
	SELECT valid_to, lead(valid_from) OVER (PARTITION BY id ORDER BY valid_from) AS next_from FROM dim_h) x
 WHERE next_from IS NOT NULL AND next_from <> valid_to;
SELECT count(*) AS keys_without_one_current FROM (
	SELECT id FROM dim_h GROUP BY id HAVING count(*) FILTER (WHERE is_current AND valid_to = 'infinity') <> 1) x;
-- An earlier batch once more (observations that later ones contradict change
-- history again): the same outcome whichever strategy.
SELECT FROM pg_temp.batch(2);
SELECT pg_temp.merge('dim_h') AS hashed, pg_temp.merge_logged('dim_s', '1MB') AS sorted;
SELECT d, pg_temp.history(d) = pg_temp.history('dim_h') AS same_history FROM unnest(ARRAY['dim_s']) d;

-- A key type without a hash function (bit) takes the sorted stream.
CREATE TABLE dim_bit (dim_bit_sk bigint GENERATED ALWAYS AS IDENTITY, code bit(4), v int,
					  valid_from timestamptz, valid_to timestamptz, is_current boolean);
CREATE TABLE src_bit (code bit(4), v int, ts timestamptz);
INSERT INTO src_bit VALUES (B'0001', 1, '2024-01-01'), (B'0010', 1, '2024-01-01'), (B'0001', 2, '2024-02-01');
SET client_min_messages = debug1;
SELECT * FROM camperso.scd2_merge('dim_bit', 'src_bit', '{code}', '{v}', '{}', 'ts');
SET client_min_messages = warning;
SELECT code, v, valid_from::date, valid_to, is_current FROM dim_bit ORDER BY code, valid_from;

DROP TABLE dim_h, dim_s, dim_r, dim_p, src, dim_bit, src_bit;
DROP SEQUENCE dim_p_seq;
