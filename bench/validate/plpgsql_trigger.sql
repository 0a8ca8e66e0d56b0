-- bench/validate/plpgsql_trigger.sql — the baseline of bench/validate: the
-- clickstream ruleset (camperso.create_clickstream_ruleset with its
-- defaults) written by hand as a PL/pgSQL BEFORE INSERT row trigger, as a
-- team without camperso would write it. It does the same work as
-- camperso.validate_row('clickstream'):
--   - the same checks, in the engine's order (required, then type, then
--     the others in rule id order, unique last), so a row breaking two
--     rules is quarantined for the same one;
--   - a failing row goes to camperso.quarantine (the row as JSON, rule,
--     field, reason, app_id) and is skipped;
--   - event_id is deduplicated within a 1 hour window against a table with
--     a unique index (a duplicate is skipped, not quarantined), only for
--     rows that pass every other check;
--   - "now" is the clock at the row, as the engine's.
-- The type rules on event_id (uuid) and ts (timestamptz) hold by the
-- column types on both sides. Not done here, done by the C trigger: the
-- per-transaction counts in camperso.validation_counts.

CREATE TABLE pl_dedupe (
	event_id	uuid PRIMARY KEY,
	seen_at		timestamptz NOT NULL
);

CREATE FUNCTION pl_validate_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	now_ts	timestamptz := clock_timestamp();
	r		text;
	f		text;
	why		text;
BEGIN
	IF NEW.event_id IS NULL THEN
		r := 'required'; f := 'event_id'; why := 'is null';
	ELSIF NEW.user_id IS NULL THEN
		r := 'required'; f := 'user_id'; why := 'is null';
	ELSIF NEW.session_id IS NULL THEN
		r := 'required'; f := 'session_id'; why := 'is null';
	ELSIF NEW.event_type IS NULL THEN
		r := 'required'; f := 'event_type'; why := 'is null';
	ELSIF NEW.ts IS NULL THEN
		r := 'required'; f := 'ts'; why := 'is null';
	ELSIF NEW.props IS NOT NULL AND jsonb_typeof(NEW.props) <> 'object' THEN
		r := 'type'; f := 'props';
		why := format('expected object, got %s', jsonb_typeof(NEW.props));
	ELSIF NEW.event_type NOT IN ('page_view', 'click', 'scroll', 'add_to_cart', 'purchase',
								 'signup', 'login', 'search') THEN
		r := 'in'; f := 'event_type';
		why := format('value "%s" is not one of ["page_view", "click", "scroll", "add_to_cart", "purchase", "signup", "login", "search"]',
					  left(NEW.event_type, 60));
	ELSIF NEW.ts > now_ts + interval '5 minutes' THEN
		r := 'not_future'; f := 'ts';
		why := format('time "%s" is more than 5 minutes in the future', NEW.ts);
	ELSIF NEW.ts < now_ts - interval '7 days' THEN
		r := 'max_age'; f := 'ts';
		why := format('too_late: time "%s" is older than the allowed lateness of 7 days', NEW.ts);
	ELSIF NEW.page_url IS NOT NULL AND NEW.page_url !~ '^https?://[^\s/?#]+([/?#]\S*)?$' THEN
		r := 'regex'; f := 'page_url';
		why := format('value "%s" does not match ^https?://[^\s/?#]+([/?#]\S*)?$', left(NEW.page_url, 60));
	END IF;

	IF r IS NOT NULL THEN
		INSERT INTO camperso.quarantine (target, payload, ruleset, rule, field, reason, app_id)
		VALUES (format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME),
				convert_to(row_to_json(NEW)::text, 'UTF8'), 'plpgsql', r, f, why, NEW.app_id);
		RETURN NULL;
	END IF;

	-- unique within 1 hour: a key seen earlier than that counts as new
	INSERT INTO pl_dedupe AS d (event_id, seen_at) VALUES (NEW.event_id, now_ts)
	ON CONFLICT (event_id) DO UPDATE SET seen_at = EXCLUDED.seen_at
	 WHERE d.seen_at < EXCLUDED.seen_at - interval '1 hour';
	IF NOT FOUND THEN
		RETURN NULL;			-- a duplicate within the window
	END IF;
	RETURN NEW;
END
$$;
