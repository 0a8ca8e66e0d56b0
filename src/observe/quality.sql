-- observe/quality.sql: camperso.stat_quality, how the validation rules and
-- the expectation suites fare, all time and over the last hour.
--
-- Rules (kind rule): messages and rows a ruleset checked come from the two
-- ways into it: validate_row() triggers (camperso.validation_counts,
-- persistent) and sources landing with the ruleset (their message counters:
-- shared memory, so counted since the server started or stats were reset;
-- the last hour from the counter samples camperso.check_alerts() takes).
-- Failures come from the quarantine (first rule broken, per rule and
-- field; a source's rows count for its ruleset) and, for a unique rule, the
-- duplicates dropped. A rule's passed count is what its ruleset checked
-- minus what failed on that rule: a message that broke an earlier rule
-- counts as passed for the later ones (evaluation stops at the first).
-- Expectations (kind expectation): each expectation of a suite, passed and
-- failed suite runs (camperso.expectation_results).

CREATE VIEW camperso.stat_quality AS
	WITH checked AS (
		SELECT c.ruleset, sum(c.received) AS total,
			   sum(c.received) FILTER (WHERE c.recorded_at > now() - interval '1 hour') AS last_hour,
			   sum(c.deduplicated) AS dup_total,
			   sum(c.deduplicated) FILTER (WHERE c.recorded_at > now() - interval '1 hour') AS dup_last_hour
		  FROM camperso.validation_counts c
		 GROUP BY c.ruleset
		UNION ALL
		SELECT s.ruleset, t.messages,
			   camperso.counter_increase('source:' || s.name, now() - interval '1 hour', now(), t.messages),
			   t.deduplicated, NULL
		  FROM camperso.sources s
		  JOIN camperso.source_totals() t ON t.source = s.name
		 WHERE s.ruleset IS NOT NULL
	), per_ruleset AS (
		SELECT c.ruleset, coalesce(sum(c.total), 0) AS total, coalesce(sum(c.last_hour), 0) AS last_hour,
			   coalesce(sum(c.dup_total), 0) AS dup_total, coalesce(sum(c.dup_last_hour), 0) AS dup_last_hour
		  FROM checked c
		 GROUP BY c.ruleset
	), failures AS (
		SELECT coalesce(q.ruleset, s.ruleset) AS ruleset, q.rule, q.field,
			   count(*) AS total, count(*) FILTER (WHERE q.received_at > now() - interval '1 hour') AS last_hour
		  FROM camperso.quarantine q
		  LEFT JOIN camperso.sources s ON s.name = q.source
		 WHERE coalesce(q.ruleset, s.ruleset) IS NOT NULL
		 GROUP BY 1, 2, 3
	), unique_rules AS (
		-- duplicates are the failures of the ruleset's unique rule
		SELECT r.ruleset, min(r.field) AS field FROM camperso.rules r WHERE r.rule = 'unique'
		 GROUP BY r.ruleset HAVING count(*) = 1
	), keys AS (
		SELECT r.ruleset, r.rule, r.field FROM camperso.rules r
		UNION
		SELECT f.ruleset, f.rule, f.field FROM failures f
	), rule_rows AS (
		SELECT k.ruleset, k.rule, k.field,
			   coalesce(p.total, 0) AS checked,
			   coalesce(f.total, 0) + CASE WHEN u.ruleset IS NOT NULL THEN coalesce(p.dup_total, 0) ELSE 0 END AS failed,
			   coalesce(p.last_hour, 0) AS checked_1h,
			   coalesce(f.last_hour, 0) + CASE WHEN u.ruleset IS NOT NULL THEN coalesce(p.dup_last_hour, 0) ELSE 0 END AS failed_1h
		  FROM keys k
		  LEFT JOIN per_ruleset p ON p.ruleset = k.ruleset
		  LEFT JOIN failures f ON f.ruleset = k.ruleset AND f.rule = k.rule AND f.field IS NOT DISTINCT FROM k.field
		  LEFT JOIN unique_rules u ON u.ruleset = k.ruleset AND k.rule = 'unique' AND u.field = k.field
	), expectation_rows AS (
		SELECT e.suite AS ruleset, e.kind AS rule, e.column_name AS field, e.relation,
			   count(*) AS checked, count(*) FILTER (WHERE NOT e.success) AS failed,
			   count(*) FILTER (WHERE e.run_at > now() - interval '1 hour') AS checked_1h,
			   count(*) FILTER (WHERE NOT e.success AND e.run_at > now() - interval '1 hour') AS failed_1h
		  FROM camperso.expectation_results e
		 GROUP BY e.suite, e.expectation_id, e.kind, e.column_name, e.relation
	)
	SELECT x.kind, x.ruleset, x.rule, x.field, x.relation,
		   x.checked, greatest(x.checked - x.failed, 0) AS passed, x.failed,
		   round(greatest(x.checked - x.failed, 0)::numeric / nullif(x.checked, 0), 4) AS pass_rate,
		   x.checked_1h, greatest(x.checked_1h - x.failed_1h, 0) AS passed_1h, x.failed_1h,
		   round(greatest(x.checked_1h - x.failed_1h, 0)::numeric / nullif(x.checked_1h, 0), 4) AS pass_rate_1h
	  FROM (SELECT 'rule'::text AS kind, r.ruleset, r.rule, r.field, NULL::text AS relation,
				   r.checked, r.failed, r.checked_1h, r.failed_1h
			  FROM rule_rows r
			UNION ALL
			SELECT 'expectation', e.ruleset, e.rule, e.field, e.relation, e.checked, e.failed, e.checked_1h, e.failed_1h
			  FROM expectation_rows e) x;
COMMENT ON VIEW camperso.stat_quality IS 'Per ruleset and rule (kind rule) and per suite and expectation (kind expectation): checked, passed, failed and pass rate, all time and over the last hour';
COMMENT ON COLUMN camperso.stat_quality.kind IS 'rule (validation rules of a ruleset) or expectation (post-load expectations of a suite)';
COMMENT ON COLUMN camperso.stat_quality.ruleset IS 'Ruleset, or suite for expectations';
COMMENT ON COLUMN camperso.stat_quality.rule IS 'Rule (required, type, regex, ..., or a decode failure such as malformed_json seen under the ruleset), or expectation kind';
COMMENT ON COLUMN camperso.stat_quality.field IS 'Field the rule checks, or column of the expectation';
COMMENT ON COLUMN camperso.stat_quality.relation IS 'Relation of the expectation';
COMMENT ON COLUMN camperso.stat_quality.checked IS 'Messages or rows the ruleset checked (sources: since the server started), or runs of the expectation';
COMMENT ON COLUMN camperso.stat_quality.passed IS 'checked minus failed';
COMMENT ON COLUMN camperso.stat_quality.failed IS 'Quarantined on this rule (duplicates for a unique rule), or failed runs of the expectation';
COMMENT ON COLUMN camperso.stat_quality.pass_rate IS 'passed / checked';
COMMENT ON COLUMN camperso.stat_quality.checked_1h IS 'checked over the last hour';
COMMENT ON COLUMN camperso.stat_quality.passed_1h IS 'passed over the last hour';
COMMENT ON COLUMN camperso.stat_quality.failed_1h IS 'failed over the last hour';
COMMENT ON COLUMN camperso.stat_quality.pass_rate_1h IS 'passed_1h / checked_1h';

CREATE VIEW camperso.metrics_quality AS
	SELECT q.kind, q.ruleset, q.rule, coalesce(q.field, '') AS field, coalesce(q.relation, '') AS relation,
		   q.checked AS checked_total, q.passed AS passed_total, q.failed AS failed_total,
		   q.pass_rate, q.pass_rate_1h
	  FROM camperso.stat_quality q;
COMMENT ON VIEW camperso.metrics_quality IS 'Metric families camperso_quality_*: per ruleset and rule, and per suite and expectation, checked, passed and failed, and the pass rates';

REVOKE ALL ON camperso.stat_quality, camperso.metrics_quality FROM PUBLIC;
GRANT SELECT ON camperso.stat_quality, camperso.metrics_quality TO camperso_admin, pg_monitor;
