-- validate: rulesets and rules, the three ways in (land path, trigger,
-- camperso.validate()), deduplication state, trigger counts, quarantine
-- replay and the default clickstream ruleset.

-- ---------------------------------------------------------------------------
-- Rules catalog. Admin-managed; the engine reads it as the extension owner,
-- so roles whose rows are validated need no access to it.
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.rulesets (
	name		text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
	description	text,
	builtin		boolean NOT NULL DEFAULT false,
	created_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE camperso.rulesets IS 'Named sets of validation rules, referred to by sources and by validate_row() triggers';
COMMENT ON COLUMN camperso.rulesets.builtin IS 'Created by camperso itself (create_clickstream_ruleset); not included in pg_dump output, since CREATE EXTENSION recreates it';

CREATE TABLE camperso.rules (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ruleset		text NOT NULL REFERENCES camperso.rulesets (name) ON DELETE CASCADE,
	field		text NOT NULL,
	rule		text NOT NULL,
	arg			jsonb,
	builtin		boolean NOT NULL DEFAULT false,
	created_at	timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT rules_ruleset_field_rule_key UNIQUE (ruleset, field, rule)
);
COMMENT ON TABLE camperso.rules IS 'Validation rules: one rule of a kind per ruleset and field; change them with add_rule/drop_rule';
COMMENT ON COLUMN camperso.rules.field IS 'Top-level JSON key of a message, or column name for validate_row() triggers';
COMMENT ON COLUMN camperso.rules.rule IS 'required, type, regex, in, range, max_length, not_future, max_age or unique';
COMMENT ON COLUMN camperso.rules.arg IS 'The rule''s argument (see add_rule); checked and compiled when the rule is added';

SELECT pg_catalog.pg_extension_config_dump('camperso.rulesets', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('camperso.rules', 'WHERE NOT builtin');

CREATE FUNCTION camperso._rules_changed() RETURNS trigger
LANGUAGE C AS 'MODULE_PATHNAME', 'camperso_rules_changed';
COMMENT ON FUNCTION camperso._rules_changed() IS 'Internal: makes every backend recompile its cached rulesets after a change to the rules';

CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON camperso.rules
	FOR EACH STATEMENT EXECUTE FUNCTION camperso._rules_changed();
CREATE TRIGGER rulesets_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON camperso.rulesets
	FOR EACH STATEMENT EXECUTE FUNCTION camperso._rules_changed();

CREATE FUNCTION camperso._check_rule(field text, rule text, arg jsonb) RETURNS void
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'camperso_check_rule';
COMMENT ON FUNCTION camperso._check_rule(text, text, jsonb) IS 'Internal: raises a clear error when a rule and its argument would not compile';

CREATE FUNCTION camperso.add_rule(ruleset text, field text, rule text, arg jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
	rid bigint;
BEGIN
	IF add_rule.ruleset IS NULL OR add_rule.ruleset !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid ruleset name "%"', add_rule.ruleset
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A ruleset name starts with a letter or underscore and has at most 63 letters, digits, underscores, dots or hyphens.';
	END IF;
	PERFORM camperso._check_rule(add_rule.field, add_rule.rule, add_rule.arg);
	INSERT INTO camperso.rulesets (name) VALUES (add_rule.ruleset) ON CONFLICT DO NOTHING;
	INSERT INTO camperso.rules AS r (ruleset, field, rule, arg)
	VALUES (add_rule.ruleset, add_rule.field, add_rule.rule, add_rule.arg)
	ON CONFLICT ON CONSTRAINT rules_ruleset_field_rule_key
	DO UPDATE SET arg = EXCLUDED.arg, created_at = now(), builtin = false
	RETURNING r.id INTO rid;
	RETURN rid;
END
$$;
COMMENT ON FUNCTION camperso.add_rule(text, text, text, jsonb) IS
'Adds a rule to a ruleset (created if new), or replaces the argument of the same rule on the same field. Rules: required; type ("uuid", "int", "bigint", "numeric", "bool", "timestamptz", "text", "object", "array"); regex (pattern string); in (array); range ({"min":..,"max":..}); max_length (integer); not_future (tolerance, e.g. "5 minutes"); max_age (lateness, e.g. "7 days"); unique (window, default "1 hour"). Bad rules and arguments are rejected here. Returns the rule id.';

CREATE FUNCTION camperso.drop_rule(ruleset text, field text, rule text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
	n integer;
BEGIN
	DELETE FROM camperso.rules r
	 WHERE r.ruleset = drop_rule.ruleset AND r.field = drop_rule.field
	   AND (drop_rule.rule IS NULL OR r.rule = drop_rule.rule);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION camperso.drop_rule(text, text, text) IS 'Removes one rule (or, with rule NULL, every rule) of a field from a ruleset; returns how many were removed. The ruleset itself stays, possibly empty';

CREATE FUNCTION camperso.drop_ruleset(ruleset text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
	DELETE FROM camperso.rulesets s WHERE s.name = drop_ruleset.ruleset;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION camperso.drop_ruleset(text) IS 'Removes a ruleset and its rules; returns whether it existed. Sources and triggers still naming it fail until it is recreated';

-- ---------------------------------------------------------------------------
-- The ways in: camperso.validate() for callers, the validate_row() trigger.
-- (The capture land path calls the same engine from C.)
-- ---------------------------------------------------------------------------
CREATE FUNCTION camperso.validate(ruleset text, payload jsonb)
RETURNS TABLE (rule text, field text, reason text)
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'camperso_validate';
COMMENT ON FUNCTION camperso.validate(text, jsonb) IS 'Every rule of the ruleset that the payload breaks, with field and reason; no rows when it passes. A unique key already seen shows as rule unique; nothing is recorded';

CREATE FUNCTION camperso.validate_row() RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'camperso_validate_row';
COMMENT ON FUNCTION camperso.validate_row() IS 'BEFORE INSERT FOR EACH ROW trigger: EXECUTE FUNCTION camperso.validate_row(''ruleset''). Columns are the fields; a row breaking a rule goes to camperso.quarantine (payload: the row as JSON) and is skipped, a duplicate is counted and skipped; works for INSERT and COPY';

CREATE FUNCTION camperso._check_row(ruleset text, target regclass, "row" record,
									OUT outcome text, OUT rule text, OUT field text, OUT reason text)
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'camperso_check_row';
COMMENT ON FUNCTION camperso._check_row(text, regclass, record) IS 'Internal: what validate_row() would do with a row (valid, invalid or duplicate), recording nothing';

-- ---------------------------------------------------------------------------
-- Deduplication state of the unique rule: keys in packed chunks of 16 bytes
-- per key, one row per scope per committing transaction (see dedupe.c).
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.dedupe_keys (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ruleset		text NOT NULL,
	field		text NOT NULL,
	xid			xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
	seen_from	timestamptz NOT NULL,
	seen_to		timestamptz NOT NULL,
	nkeys		integer NOT NULL,
	keys		bytea NOT NULL
);
ALTER TABLE camperso.dedupe_keys ALTER COLUMN keys SET STORAGE EXTERNAL;
CREATE INDEX dedupe_keys_xid_idx ON camperso.dedupe_keys (ruleset, field, xid);
CREATE INDEX dedupe_keys_seen_idx ON camperso.dedupe_keys (ruleset, field, seen_to);
COMMENT ON TABLE camperso.dedupe_keys IS 'Keys seen by unique rules within their window, written in the transaction that landed them, so deduplication survives restarts; expired past the window';

-- ---------------------------------------------------------------------------
-- Counts of the trigger path (the land path counts per source in its
-- stats): one row per ruleset and target per committing transaction.
-- ---------------------------------------------------------------------------
CREATE TABLE camperso.validation_counts (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ruleset			text NOT NULL,
	target			text NOT NULL,
	received		bigint NOT NULL,
	landed			bigint NOT NULL,
	quarantined		bigint NOT NULL,
	deduplicated	bigint NOT NULL,
	recorded_at		timestamptz NOT NULL DEFAULT now(),
	CHECK (received = landed + quarantined + deduplicated)
);
CREATE INDEX validation_counts_recorded_idx ON camperso.validation_counts (recorded_at);
COMMENT ON TABLE camperso.validation_counts IS 'What validate_row() triggers did, per ruleset and target, one row per committed transaction; see stat_validation';

CREATE VIEW camperso.stat_validation AS
SELECT ruleset, target,
	   sum(received)::bigint AS received,
	   sum(landed)::bigint AS landed,
	   sum(quarantined)::bigint AS quarantined,
	   sum(deduplicated)::bigint AS deduplicated,
	   min(recorded_at) AS first_recorded,
	   max(recorded_at) AS last_recorded
  FROM camperso.validation_counts
 GROUP BY ruleset, target;
COMMENT ON VIEW camperso.stat_validation IS 'Per ruleset and target table of validate_row() triggers: rows received, landed, quarantined and deduplicated (received = landed + quarantined + deduplicated)';

CREATE FUNCTION camperso.compact_validation_counts(older_than interval DEFAULT '1 hour')
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog
AS $$
	WITH gone AS (
		DELETE FROM camperso.validation_counts
		 WHERE recorded_at < now() - $1
		RETURNING *
	), merged AS (
		INSERT INTO camperso.validation_counts (ruleset, target, received, landed, quarantined, deduplicated, recorded_at)
		SELECT ruleset, target, sum(received), sum(landed), sum(quarantined), sum(deduplicated), max(recorded_at)
		  FROM gone GROUP BY ruleset, target
		RETURNING 1
	)
	SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION camperso.compact_validation_counts(interval) IS 'Merges validation_counts rows older than the given age into one row per ruleset and target; returns how many rows were merged';

-- ---------------------------------------------------------------------------
-- Replay: re-validate quarantined rows and land what now passes.
-- ---------------------------------------------------------------------------
CREATE FUNCTION camperso._replay_message(source text, payload bytea, key bytea, "partition" integer,
										 "offset" bigint, received_at timestamptz,
										 OUT outcome text, OUT rule text, OUT field text, OUT reason text)
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'camperso_replay_message';
COMMENT ON FUNCTION camperso._replay_message(text, bytea, bytea, integer, bigint, timestamptz) IS 'Internal: re-validates a quarantined message of a source and, when it passes, lands it through the source''s land path with its Kafka metadata';

CREATE FUNCTION camperso.replay_quarantine(ids bigint[] DEFAULT NULL)
RETURNS TABLE (id bigint, outcome text, rule text, field text, reason text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
	q record;
	chk record;
	rel regclass;
	cols text;
	n bigint;
	pay bytea;
	enc text;
BEGIN
	-- payloads of sources with PII fields are envelopes (security stage)
	enc := CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a
							  WHERE a.attrelid = 'camperso.quarantine'::regclass
								AND a.attname = 'payload_encrypted' AND NOT a.attisdropped)
				THEN 'coalesce(qq.payload_encrypted, false)' ELSE 'false' END;
	FOR q IN EXECUTE format(
		'SELECT qq.*, %s AS _encrypted FROM camperso.quarantine qq
		  WHERE $1 IS NULL OR qq.id OPERATOR(pg_catalog.=) ANY ($1)
		  ORDER BY qq.id
			FOR UPDATE', enc) USING replay_quarantine.ids
	LOOP
		id := q.id;
		outcome := NULL;
		rule := NULL;
		field := NULL;
		reason := NULL;
		BEGIN
			pay := q.payload;
			IF q._encrypted THEN
				EXECUTE 'SELECT camperso.decrypt($1)' INTO pay USING q.payload;
			END IF;
			IF q.source IS NOT NULL THEN
				SELECT * INTO chk
				  FROM camperso._replay_message(q.source, pay, q.key, q.partition, q."offset", q.received_at);
				outcome := chk.outcome;
				rule := chk.rule;
				field := chk.field;
				reason := chk.reason;
			ELSIF q.target IS NOT NULL AND q.ruleset IS NOT NULL THEN
				rel := q.target::regclass;
				EXECUTE format('SELECT * FROM camperso._check_row($1, $2, pg_catalog.json_populate_record(NULL::%s, pg_catalog.convert_from($3, ''UTF8'')::json))', rel)
				   INTO chk USING q.ruleset, rel, pay;
				IF chk.outcome = 'valid' THEN
					SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
					  FROM pg_attribute a
					 WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
					EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM pg_catalog.json_populate_record(NULL::%s, pg_catalog.convert_from($1, ''UTF8'')::json)',
								   rel, cols, cols, rel)
					   USING pay;
					GET DIAGNOSTICS n = ROW_COUNT;
					-- a trigger on the target may still divert it; then its
					-- new quarantine row (if any) replaces this one
					outcome := CASE WHEN n = 1 THEN 'landed' ELSE 'diverted' END;
				ELSIF chk.outcome = 'duplicate' THEN
					outcome := 'deduplicated';
					rule := chk.rule;
					field := chk.field;
					reason := chk.reason;
				ELSE
					outcome := 'quarantined';
					rule := chk.rule;
					field := chk.field;
					reason := chk.reason;
				END IF;
			ELSE
				RAISE EXCEPTION 'the row has neither a source nor a target and ruleset to replay into';
			END IF;
		EXCEPTION WHEN OTHERS THEN
			outcome := 'failed';
			rule := NULL;
			field := NULL;
			reason := SQLERRM;
		END;

		IF outcome IN ('landed', 'deduplicated', 'diverted', 'requarantined') THEN
			DELETE FROM camperso.quarantine qq WHERE qq.id = q.id;
		ELSIF outcome = 'quarantined' THEN
			UPDATE camperso.quarantine qq
			   SET rule = replay_quarantine.rule, field = replay_quarantine.field,
				   reason = replay_quarantine.reason
			 WHERE qq.id = q.id;
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION camperso.replay_quarantine(bigint[]) IS
'Re-validates quarantined rows (all, or those ids) against their ruleset as it is now, in one transaction: what passes is landed (messages of a source through its land path, trigger-diverted rows re-inserted into their table) and removed from the quarantine; a duplicate is removed as deduplicated; what still fails stays, with its new rule and reason; an error replaying a row leaves it as it was (outcome failed); a message the land path quarantines again (a constraint of the target) is replaced by its new quarantine row (outcome requarantined). Returns one row per id';

-- ---------------------------------------------------------------------------
-- Privileges: the catalog is admin-managed; validation is open to ingest.
-- ---------------------------------------------------------------------------
REVOKE ALL ON camperso.rulesets, camperso.rules, camperso.dedupe_keys,
	camperso.validation_counts, camperso.stat_validation FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON camperso.rulesets, camperso.rules TO camperso_admin;
GRANT SELECT ON camperso.dedupe_keys, camperso.validation_counts, camperso.stat_validation TO camperso_admin;
REVOKE ALL ON FUNCTION camperso.add_rule(text, text, text, jsonb), camperso.drop_rule(text, text, text),
	camperso.drop_ruleset(text), camperso._check_rule(text, text, jsonb),
	camperso._check_row(text, regclass, record), camperso.replay_quarantine(bigint[]),
	camperso.compact_validation_counts(interval), camperso.validate(text, jsonb),
	camperso.validate_row(), camperso._rules_changed(),
	camperso._replay_message(text, bytea, bytea, integer, bigint, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.add_rule(text, text, text, jsonb), camperso.drop_rule(text, text, text),
	camperso.drop_ruleset(text), camperso._check_rule(text, text, jsonb),
	camperso._check_row(text, regclass, record), camperso.replay_quarantine(bigint[]),
	camperso.compact_validation_counts(interval),
	camperso._replay_message(text, bytea, bytea, integer, bigint, timestamptz) TO camperso_admin;
GRANT EXECUTE ON FUNCTION camperso.validate(text, jsonb), camperso.validate_row() TO camperso_admin, camperso_ingest;

-- ---------------------------------------------------------------------------
-- The default clickstream ruleset, created at install; the model's
-- create_clickstream_model() may call this again with its own lateness.
-- ---------------------------------------------------------------------------
CREATE FUNCTION camperso.create_clickstream_ruleset(name text DEFAULT 'clickstream',
													lateness interval DEFAULT '7 days',
													dedupe_window interval DEFAULT '1 hour')
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
SET IntervalStyle = postgres
AS $$
DECLARE
	rs text := create_clickstream_ruleset.name;
BEGIN
	IF lateness IS NULL OR lateness <= interval '0' THEN
		RAISE EXCEPTION 'lateness must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF dedupe_window IS NULL OR dedupe_window <= interval '0' THEN
		RAISE EXCEPTION 'dedupe_window must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	DELETE FROM camperso.rulesets s WHERE s.name = rs;
	INSERT INTO camperso.rulesets (name, description, builtin)
	VALUES (rs, 'The clickstream event contract (camperso default ruleset)', true);
	PERFORM camperso.add_rule(rs, 'event_id', 'required');
	PERFORM camperso.add_rule(rs, 'event_id', 'type', '"uuid"');
	PERFORM camperso.add_rule(rs, 'event_id', 'unique', jsonb_build_object('window', dedupe_window::text));
	PERFORM camperso.add_rule(rs, 'user_id', 'required');
	PERFORM camperso.add_rule(rs, 'session_id', 'required');
	PERFORM camperso.add_rule(rs, 'event_type', 'required');
	PERFORM camperso.add_rule(rs, 'event_type', 'in',
		'["page_view", "click", "scroll", "add_to_cart", "purchase", "signup", "login", "search"]');
	PERFORM camperso.add_rule(rs, 'ts', 'required');
	PERFORM camperso.add_rule(rs, 'ts', 'type', '"timestamptz"');
	PERFORM camperso.add_rule(rs, 'ts', 'not_future', '"5 minutes"');
	PERFORM camperso.add_rule(rs, 'ts', 'max_age', to_jsonb(lateness::text));
	PERFORM camperso.add_rule(rs, 'page_url', 'regex', to_jsonb('^https?://[^\s/?#]+([/?#]\S*)?$'::text));
	PERFORM camperso.add_rule(rs, 'props', 'type', '"object"');
	UPDATE camperso.rules r SET builtin = true WHERE r.ruleset = rs;
	RETURN rs;
END
$$;
COMMENT ON FUNCTION camperso.create_clickstream_ruleset(text, interval, interval) IS
'(Re)creates the clickstream ruleset: event_id a uuid, required and unique within dedupe_window; user_id, session_id required; event_type in page_view, click, scroll, add_to_cart, purchase, signup, login, search; ts a timestamptz at most 5 minutes in the future and not older than lateness (reason too_late); page_url an http(s) URL; props an object. Created at install with the defaults';
REVOKE ALL ON FUNCTION camperso.create_clickstream_ruleset(text, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.create_clickstream_ruleset(text, interval, interval) TO camperso_admin;

SELECT camperso.create_clickstream_ruleset();
