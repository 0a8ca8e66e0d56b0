-- model: SCD2 merge (scd2.c), surrogate key lookup and the dimensions
-- catalog (lookup.c).

CREATE TABLE camperso.dimensions (
	dim					regclass PRIMARY KEY,
	natural_key			text[] NOT NULL CHECK (cardinality(natural_key) > 0),
	scd2				boolean NOT NULL,
	tracked				text[] NOT NULL DEFAULT '{}',
	type1				text[] NOT NULL DEFAULT '{}',
	effective_column	text,
	updated_at			timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE camperso.dimensions IS 'Dimensions known to camperso (recorded by scd2_merge and the model): natural key and, for versioned ones, tracked and type-1 columns; lookup_sk reads it';
REVOKE ALL ON camperso.dimensions FROM PUBLIC;
GRANT SELECT ON camperso.dimensions TO camperso_admin, camperso_analyst;
SELECT pg_catalog.pg_extension_config_dump('camperso.dimensions', '');

CREATE FUNCTION camperso.scd2_merge(dim regclass, source regclass, natural_key text[], tracked text[],
									type1 text[] DEFAULT '{}', effective_column text DEFAULT NULL,
									OUT inserted bigint, OUT closed bigint, OUT type1_updated bigint,
									OUT unchanged bigint, OUT corrected bigint)
RETURNS record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_scd2_merge';
COMMENT ON FUNCTION camperso.scd2_merge(regclass, regclass, text[], text[], text[], text) IS
'Merges a source into a Type-2 dimension (<dim>_sk, valid_from, valid_to, is_current): changes on the tracked columns open versions, late changes split history in place, type-1 columns are overwritten on every version; idempotent. Returns inserted versions, closed versions, type-1 rows updated, unchanged source rows, and versions corrected in place (start moved back or values rewritten at the same start)';

CREATE FUNCTION camperso.lookup_sk(dim regclass, natural_key text, at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'camperso_lookup_sk';
COMMENT ON FUNCTION camperso.lookup_sk(regclass, text, timestamptz) IS
'Surrogate key of the dimension version valid at "at" (the current one when NULL); a time before a member''s first version gives that first version; an unknown or NULL member gives -1, the unknown row';
