-- security: data keys, pseudonymisation, envelope encryption, PII options
-- of sources, row-level security by app_id. Privileges of every camperso
-- object are set in zz_privileges.sql, which runs after this file.

-- ---------------------------------------------------------------------------
-- Data keys. One row per version; the newest is current. key holds 32 random
-- bytes, or (kek_fingerprint set) those bytes wrapped by AES-256-GCM under the
-- key-encryption key that camperso.key_command prints. Nobody but the owner
-- (the extension owner) may touch the table: C code reads it, and
-- rotate_key()/rewrap_keys() (SECURITY DEFINER) write it.
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.keys (
	version			integer PRIMARY KEY CHECK (version > 0),
	key				bytea NOT NULL,
	kek_fingerprint	text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	created_by		name NOT NULL DEFAULT session_user,
	from_install	boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE camperso.keys IS 'Data key versions (plain, or wrapped by the key-encryption key of camperso.key_command); readable by the extension owner only';
COMMENT ON COLUMN camperso.keys.key IS 'The 32-byte data key, or nonce|wrapped key|tag when kek_fingerprint is set';
COMMENT ON COLUMN camperso.keys.kek_fingerprint IS 'Fingerprint of the key-encryption key that wraps this key; NULL when stored unwrapped';
COMMENT ON COLUMN camperso.keys.from_install IS 'Made by CREATE EXTENSION; a restored dump row with the same version replaces it';
REVOKE ALL ON camperso.keys FROM PUBLIC;

-- Dumps must carry the keys, or restored pseudonyms and envelopes could never
-- be matched or read again. On restore CREATE EXTENSION makes a fresh key
-- version 1 first; the dumped rows then replace it (see the trigger below).
SELECT pg_catalog.pg_extension_config_dump('camperso.keys', '');

CREATE FUNCTION camperso.keys_restore() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM camperso.keys k WHERE k.version = NEW.version AND k.from_install;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION camperso.keys_restore() IS 'Trigger on camperso.keys: a restored key row replaces the key version 1 that CREATE EXTENSION made';
CREATE TRIGGER keys_restore BEFORE INSERT ON camperso.keys
	FOR EACH ROW EXECUTE FUNCTION camperso.keys_restore();

CREATE VIEW camperso.key_versions AS
	SELECT k.version, k.created_at, k.created_by,
		   k.kek_fingerprint IS NOT NULL AS wrapped, k.kek_fingerprint,
		   k.version = max(k.version) OVER () AS current
	  FROM camperso.keys k;
COMMENT ON VIEW camperso.key_versions IS 'Data key versions without their key bytes: when made, by whom, whether wrapped and by which key-encryption key, which is current';

CREATE FUNCTION camperso.rotate_key() RETURNS integer
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'camperso_rotate_key';
COMMENT ON FUNCTION camperso.rotate_key() IS 'Makes a new data key version and returns it; new pseudonyms and envelopes use it, older versions are kept so old envelopes decrypt and old pseudonyms stay findable (camperso.pseudonyms)';

CREATE FUNCTION camperso.rewrap_keys() RETURNS integer
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'camperso_rewrap_keys';
COMMENT ON FUNCTION camperso.rewrap_keys() IS 'Wraps every data key under the key-encryption key printed first by camperso.key_command (older ones may follow on later lines); returns how many keys were rewritten';

CREATE FUNCTION camperso.key_fingerprint() RETURNS text
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_key_fingerprint';
COMMENT ON FUNCTION camperso.key_fingerprint() IS 'Fingerprint of the key-encryption key camperso.key_command prints now; NULL when the command is not set';

-- The first key, made at install from OpenSSL's RAND_bytes.
SELECT camperso.rotate_key();

-- ---------------------------------------------------------------------------
-- Pseudonyms and hashes.
-- ---------------------------------------------------------------------------
CREATE FUNCTION camperso.pseudonymize(value text) RETURNS text
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_pseudonymize';
COMMENT ON FUNCTION camperso.pseudonymize(text) IS 'Keyed pseudonym: HMAC-SHA256 of value under the current data key, 64 hex digits; deterministic per key version';

CREATE FUNCTION camperso.pseudonymize(value text, key_version integer) RETURNS text
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_pseudonymize_version';
COMMENT ON FUNCTION camperso.pseudonymize(text, integer) IS 'Keyed pseudonym of value under the given data key version';

CREATE FUNCTION camperso.pseudonyms(value text) RETURNS text[]
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_pseudonyms';
COMMENT ON FUNCTION camperso.pseudonyms(text) IS 'Pseudonyms of value under every data key version, newest first: for joins across key rotations and for erasure';

CREATE FUNCTION camperso.sha256(value text) RETURNS text
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_sha256';
COMMENT ON FUNCTION camperso.sha256(text) IS 'Plain unkeyed SHA-256, hex. WEAK for identifiers: anyone can hash candidate ids (numbers, emails) and match them; use camperso.pseudonymize for ids';

-- ---------------------------------------------------------------------------
-- Envelope encryption.
-- ---------------------------------------------------------------------------
CREATE FUNCTION camperso.encrypt(data bytea) RETURNS bytea
LANGUAGE C STRICT VOLATILE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_encrypt';
COMMENT ON FUNCTION camperso.encrypt(bytea) IS 'AES-256-GCM envelope of data under the current data key: "CPE", format, key version, random 96-bit nonce, ciphertext, tag';

CREATE FUNCTION camperso.decrypt(envelope bytea) RETURNS bytea
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_decrypt';
COMMENT ON FUNCTION camperso.decrypt(bytea) IS 'Plaintext of a camperso envelope; raises CP701 when it was tampered with, 22P03 when it is not an envelope';

CREATE FUNCTION camperso.envelope_key_version(envelope bytea) RETURNS integer
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_envelope_key_version';
COMMENT ON FUNCTION camperso.envelope_key_version(bytea) IS 'Data key version named by an envelope, read from its header without decrypting';

-- ---------------------------------------------------------------------------
-- Masking helpers and the PII options of sources.
-- ---------------------------------------------------------------------------
CREATE FUNCTION camperso.truncate_ip(ip text) RETURNS text
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_truncate_ip';
COMMENT ON FUNCTION camperso.truncate_ip(text) IS 'Network of an address: IPv4 to its /24 (a.b.c.0), IPv6 to its /48; NULL when the value is not an IP address';

CREATE FUNCTION camperso.mask_email(email text) RETURNS text
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_mask_email';
COMMENT ON FUNCTION camperso.mask_email(text) IS 'Partial email: first character of the local part and the domain, as a***@example.com';

CREATE FUNCTION camperso.check_pii_options(options jsonb) RETURNS void
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'camperso_check_pii_options';
COMMENT ON FUNCTION camperso.check_pii_options(jsonb) IS 'Raises the error a source with these pii/raw options would raise; returns nothing when they are valid';

CREATE FUNCTION camperso.sources_check_pii() RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'camperso_sources_check_pii';
COMMENT ON FUNCTION camperso.sources_check_pii() IS 'Trigger on camperso.sources: refuses invalid pii/raw options when a source is made or changed';
CREATE TRIGGER sources_check_pii BEFORE INSERT OR UPDATE OF options ON camperso.sources
	FOR EACH ROW EXECUTE FUNCTION camperso.sources_check_pii();

-- The quarantine keeps a message byte-exact; for a source with pii fields
-- that is an envelope (camperso.decrypt gives the bytes back).
ALTER TABLE camperso.quarantine ADD COLUMN payload_encrypted boolean DEFAULT false;
COMMENT ON COLUMN camperso.quarantine.payload_encrypted IS 'payload is a camperso envelope (the source has pii fields); camperso.decrypt(payload) gives the message';

-- ---------------------------------------------------------------------------
-- Row-level security by app_id.
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.app_grants (
	role		regrole NOT NULL,
	app_id		text NOT NULL CHECK (app_id <> ''),
	granted_at	timestamptz NOT NULL DEFAULT now(),
	granted_by	name NOT NULL DEFAULT session_user,
	PRIMARY KEY (role, app_id)
);
COMMENT ON TABLE camperso.app_grants IS 'Which roles may see which app_id rows of RLS-protected tables; app_id ''*'' means every app. A role sees its own grants and those of roles it belongs to';

SELECT pg_catalog.pg_extension_config_dump('camperso.app_grants', '');

ALTER TABLE camperso.app_grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_grants ON camperso.app_grants FOR SELECT
	USING (EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
					WHERE r.oid = role AND pg_catalog.pg_has_role(current_user, r.rolname, 'USAGE')));
CREATE POLICY camperso_admin ON camperso.app_grants TO camperso_admin
	USING (true) WITH CHECK (true);

CREATE FUNCTION camperso.visible_apps() RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	-- Through pg_roles, so a grant to a dropped role is ignored, not an error.
	SELECT coalesce(array_agg(DISTINCT g.app_id), '{}'::text[])
	  FROM camperso.app_grants g
	  JOIN pg_roles r ON r.oid = g.role
	 WHERE pg_has_role(current_user, r.rolname, 'USAGE')
$$;
COMMENT ON FUNCTION camperso.visible_apps() IS 'app_ids the current role may see (through camperso.grant_app), ''*'' for all';

CREATE FUNCTION camperso.grant_app(role regrole, app_id text) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF app_id = '' THEN
		RAISE EXCEPTION 'app_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO camperso.app_grants AS g (role, app_id) VALUES (grant_app.role, grant_app.app_id)
		ON CONFLICT ON CONSTRAINT app_grants_pkey DO NOTHING;
END
$$;
COMMENT ON FUNCTION camperso.grant_app(regrole, text) IS 'Lets role (and its members) see the rows of app_id in every RLS-protected camperso table and view; ''*'' grants every app';

CREATE FUNCTION camperso.revoke_app(role regrole, app_id text) RETURNS boolean
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	WITH d AS (DELETE FROM camperso.app_grants g WHERE g.role = $1 AND g.app_id = $2 RETURNING 1)
	SELECT count(*) > 0 FROM d
$$;
COMMENT ON FUNCTION camperso.revoke_app(regrole, text) IS 'Withdraws a camperso.grant_app; returns whether there was such a grant';

-- camperso.protect_table(rel): row-level security by app_id on one table.
-- Policies: camperso_admin sees and writes everything, camperso_ingest may
-- insert (workers and ingest()), and every role reads the rows of the apps
-- granted to it. Table owners and superusers bypass RLS as always.
CREATE FUNCTION camperso.protect_table(rel regclass) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p text;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_attribute a
					WHERE a.attrelid = rel AND a.attname = 'app_id' AND NOT a.attisdropped AND a.attnum > 0) THEN
		RAISE EXCEPTION 'relation % has no app_id column', rel
			USING ERRCODE = 'undefined_column',
				  HINT = 'Row-level security by app needs an app_id column.';
	END IF;
	FOR p IN SELECT pol.polname FROM pg_policy pol
			  WHERE pol.polrelid = rel AND pol.polname IN ('camperso_admin', 'camperso_ingest', 'camperso_apps') LOOP
		EXECUTE format('DROP POLICY %I ON %s', p, rel);
	END LOOP;
	EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', rel);
	EXECUTE format('CREATE POLICY camperso_admin ON %s TO camperso_admin USING (true) WITH CHECK (true)', rel);
	EXECUTE format('CREATE POLICY camperso_ingest ON %s FOR INSERT TO camperso_ingest WITH CHECK (true)', rel);
	EXECUTE format('CREATE POLICY camperso_apps ON %s FOR SELECT USING ('
				   'app_id = ANY ((SELECT camperso.visible_apps())::text[]) OR ''*'' = ANY ((SELECT camperso.visible_apps())::text[]))', rel);
END
$$;
COMMENT ON FUNCTION camperso.protect_table(regclass) IS 'Enables row-level security by app_id on a table: admin all, ingest insert, everyone else reads only the apps granted by camperso.grant_app';

SELECT camperso.protect_table('camperso.quarantine');
