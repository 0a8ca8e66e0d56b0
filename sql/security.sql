-- Security: keys, pseudonyms, envelopes, PII options, masking helpers.
-- Pseudonyms and envelopes depend on the random install key, so this file
-- prints their properties, never their values.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- The install made key version 1, unwrapped (no camperso.key_command here).
SELECT version, wrapped, kek_fingerprint, current FROM camperso.key_versions;
SELECT length(key) AS key_bytes, from_install FROM camperso.keys;

-- ---- pseudonyms
-- 64 lower-case hex digits, deterministic.
SELECT camperso.pseudonymize('alice') ~ '^[0-9a-f]{64}$' AS hex64,
	   camperso.pseudonymize('alice') = camperso.pseudonymize('alice') AS deterministic,
	   camperso.pseudonymize('alice') <> camperso.pseudonymize('bob') AS distinct_ids,
	   camperso.pseudonymize('alice') <> camperso.sha256('alice') AS keyed;
-- It is HMAC-SHA256 under the working key derived from the data key
-- (HMAC-SHA256(data key, 'camperso pseudonymize')): checked against pgcrypto.
SELECT camperso.pseudonymize(v) = encode(hmac(convert_to(v, 'UTF8'), hmac('camperso pseudonymize'::bytea, k.key, 'sha256'), 'sha256'), 'hex') AS matches_pgcrypto_hmac
  FROM camperso.keys k, (VALUES ('alice'), (''), ('ünïcödé'), (repeat('x', 100)), (repeat('y', 64))) AS t(v)
 WHERE k.version = 1;
-- Hostile inputs: NULL stays NULL, empty and 10 MB work.
SELECT camperso.pseudonymize(NULL) IS NULL AS null_in_null_out,
	   camperso.pseudonymize(NULL, 1) IS NULL AS null_version,
	   camperso.pseudonymize('') ~ '^[0-9a-f]{64}$' AS empty_ok,
	   camperso.pseudonymize(repeat('z', 10 * 1024 * 1024)) ~ '^[0-9a-f]{64}$' AS ten_mb_ok,
	   camperso.pseudonyms(NULL) IS NULL AS pseudonyms_null;
SELECT pg_temp.try($$SELECT camperso.pseudonymize('alice', 99)$$) AS unknown_version;
-- camperso.sha256 is plain SHA-256 (FIPS 180-2 vector for "abc").
SELECT camperso.sha256('abc'), camperso.sha256('') = encode(digest('', 'sha256'), 'hex') AS empty_matches;

-- ---- envelopes
SELECT convert_from(camperso.decrypt(camperso.encrypt('hello'::bytea)), 'UTF8') AS round_trip,
	   camperso.decrypt(camperso.encrypt(''::bytea)) = ''::bytea AS empty_round_trip,
	   length(camperso.encrypt(''::bytea)) AS empty_envelope_bytes,
	   length(camperso.encrypt('hello'::bytea)) - 5 AS overhead,
	   substr(camperso.encrypt('x'::bytea), 1, 8) AS header,
	   camperso.envelope_key_version(camperso.encrypt('x'::bytea)) AS key_version,
	   camperso.encrypt('same'::bytea) <> camperso.encrypt('same'::bytea) AS fresh_nonce,
	   camperso.encrypt(NULL) IS NULL AS null_encrypt,
	   camperso.decrypt(NULL) IS NULL AS null_decrypt;
-- 10 MB payloads round-trip.
SELECT md5(camperso.decrypt(camperso.encrypt(convert_to(repeat('p', 10 * 1024 * 1024), 'UTF8'))))
	 = md5(convert_to(repeat('p', 10 * 1024 * 1024), 'UTF8')) AS ten_mb_round_trip;
-- The plaintext does not appear in the envelope.
SELECT position('secret-user-42'::bytea IN camperso.encrypt('{"user_id":"secret-user-42"}'::bytea)) AS plaintext_position;
-- Tampering: any altered byte of header, nonce, ciphertext or tag is refused.
CREATE TEMP TABLE env AS SELECT camperso.encrypt('{"user_id":"u1","ip":"10.0.0.1"}'::bytea) AS e;
SELECT pos, pg_temp.try(format('SELECT camperso.decrypt(%L::bytea)',
								set_byte(e, pos, get_byte(e, pos) # 1))) AS result
  FROM env, (VALUES (3), (7), (8), (19), (20), (40), (51)) AS p(pos)
 ORDER BY pos;
-- Not envelopes at all: too short, wrong magic, random bytes, truncated.
SELECT pg_temp.try($$SELECT camperso.decrypt(''::bytea)$$) AS empty,
	   pg_temp.try($$SELECT camperso.decrypt('hello world'::bytea)$$) AS too_short,
	   pg_temp.try($$SELECT camperso.decrypt(gen_random_bytes(64))$$) AS random_bytes;
SELECT pg_temp.try(format('SELECT camperso.decrypt(%L::bytea)', substr(e, 1, length(e) - 1))) AS truncated,
	   pg_temp.try(format('SELECT camperso.decrypt(%L::bytea)', substr(e, 1, 35))) AS header_only
  FROM env;

-- ---- rotation keeps old versions (in a transaction rolled back at the end)
BEGIN;
CREATE TEMP TABLE before_rotation AS
	SELECT camperso.pseudonymize('alice') AS p, camperso.encrypt('old secret'::bytea) AS e;
SELECT camperso.rotate_key() AS new_version;
SELECT version, current FROM camperso.key_versions ORDER BY version;
SELECT camperso.pseudonymize('alice') <> b.p AS new_pseudonym,
	   camperso.pseudonymize('alice', 1) = b.p AS old_version_reproducible,
	   camperso.pseudonyms('alice') = ARRAY[camperso.pseudonymize('alice', 2), b.p] AS pseudonyms_newest_first,
	   convert_from(camperso.decrypt(b.e), 'UTF8') AS old_envelope_decrypts,
	   camperso.envelope_key_version(camperso.encrypt('x'::bytea)) AS new_envelopes_use
  FROM before_rotation b;
ROLLBACK;
SELECT version, current FROM camperso.key_versions ORDER BY version;
-- A rotation in an aborted transaction leaves the cache on version 1.
SELECT camperso.envelope_key_version(camperso.encrypt('x'::bytea)) AS after_rollback;
-- Without camperso.key_command there is nothing to rewrap with.
SELECT pg_temp.try('SELECT camperso.rewrap_keys()') AS rewrap_without_command,
	   camperso.key_fingerprint() IS NULL AS no_kek;

-- ---- masking helpers
SELECT v, camperso.truncate_ip(v)
  FROM (VALUES ('203.0.113.77'), ('10.0.0.1'), ('2001:db8:abcd:12::1'), ('::1'), ('1.2.3'),
			   ('256.1.1.1'), ('01.2.3.4'), ('1.2.3.4/8'), (' 1.2.3.4'), ('not an ip'), ('')) AS t(v);
SELECT v, camperso.mask_email(v)
  FROM (VALUES ('alice@example.com'), ('a@b.c'), ('élodie@exemple.fr'), ('no-at-sign'), ('@nolocal.org'),
			   ('two@at@signs.net'), ('')) AS t(v);

-- ---- pii options of sources
SELECT pg_temp.try($$SELECT camperso.check_pii_options('{"pii": {"user_id": "pseudonymize", "email": "drop", "ip": "truncate", "card": "encrypt"}}')$$) AS all_actions,
	   pg_temp.try($$SELECT camperso.check_pii_options('{}')$$) AS no_pii,
	   pg_temp.try($$SELECT camperso.check_pii_options('{"pii": {"user_id": "pseudonymize"}, "raw": "drop"}')$$) AS raw_drop,
	   pg_temp.try($$SELECT camperso.check_pii_options('{"raw": "encrypt"}')$$) AS raw_encrypt_alone;
SELECT o AS options, pg_temp.try(format('SELECT camperso.check_pii_options(%L)', o)) AS result
  FROM (VALUES ('{"pii": ["user_id"]}'), ('{"pii": {"user_id": "hash"}}'), ('{"pii": {"user_id": 1}}'),
			   ('{"pii": {"": "drop"}}'), ('{"pii": {"user_id": "pseudonymize"}, "raw": "clear"}'),
			   ('{"raw": "shred"}'), ('{"raw": true}'), ('{"pii": {"_key": "truncate"}}'),
			   ('{"pii": {"_key": "pseudonymize"}}'), ('{"pii": {"_key": "drop"}, "raw": "drop"}')) AS t(o);
-- The sources catalog refuses a bad pii option when the source is made.
CREATE TABLE sec_target (user_id text, app_id text, _raw bytea);
SELECT pg_temp.try($$INSERT INTO camperso.sources (name, brokers, topic, target, options)
					 VALUES ('sec_bad', 'localhost:9', 't', 'sec_target', '{"pii": {"user_id": "hash"}}')$$) AS bad_source;
INSERT INTO camperso.sources (name, brokers, topic, target, options)
	VALUES ('sec_ok', 'localhost:9', 't', 'sec_target', '{"pii": {"user_id": "pseudonymize"}}');
SELECT pg_temp.try($$UPDATE camperso.sources SET options = '{"pii": {"user_id": "pseudonymize"}, "raw": "clear"}' WHERE name = 'sec_ok'$$) AS bad_update;
DELETE FROM camperso.sources WHERE name = 'sec_ok';
DROP TABLE sec_target;
