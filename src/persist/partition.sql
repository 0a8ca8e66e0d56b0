-- persist: managed range partitions (partition.c), made ahead, made on
-- demand by loaders, dropped past their retention, clustered once closed.

CREATE TABLE camperso.partition_config (
	parent			regclass PRIMARY KEY,
	part_column		text NOT NULL,
	part_interval	interval NOT NULL,
	premake			integer NOT NULL CHECK (premake BETWEEN 0 AND 10000),
	retention		interval CHECK (retention > interval '0'),
	cluster_by		text,
	created_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE camperso.partition_config IS 'Tables whose range partitions camperso manages: column, interval, partitions made ahead, retention and clustering';
COMMENT ON COLUMN camperso.partition_config.part_interval IS 'Width of one partition, aligned from 2000-01-01 00:00 UTC (whole months, or days and time)';
COMMENT ON COLUMN camperso.partition_config.premake IS 'Number of partitions kept made ahead of the current one';
COMMENT ON COLUMN camperso.partition_config.retention IS 'Partitions whose whole range is older than now() minus this are dropped by run_maintenance; NULL keeps everything';
COMMENT ON COLUMN camperso.partition_config.cluster_by IS 'Column whose index orders the rows of a closed partition (CLUSTER, once per partition); NULL for none';
REVOKE ALL ON camperso.partition_config FROM PUBLIC;
GRANT SELECT ON camperso.partition_config TO camperso_admin, camperso_analyst;
GRANT INSERT, UPDATE, DELETE ON camperso.partition_config TO camperso_admin;
SELECT pg_catalog.pg_extension_config_dump('camperso.partition_config', '');

-- Only a table's owner may put it under management: run_maintenance runs as
-- the job owner and drops partitions past their retention.
CREATE FUNCTION camperso._partition_config_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
	owner_oid oid;
BEGIN
	SELECT relowner INTO owner_oid FROM pg_class WHERE oid = NEW.parent;
	IF owner_oid IS NULL OR NOT pg_has_role(current_user, owner_oid, 'USAGE') THEN
		RAISE EXCEPTION 'must be owner of table %', NEW.parent
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION camperso._partition_config_check() IS 'Trigger: only the owner of a table may register it in camperso.partition_config';
CREATE TRIGGER partition_config_owner BEFORE INSERT OR UPDATE ON camperso.partition_config
	FOR EACH ROW EXECUTE FUNCTION camperso._partition_config_check();

CREATE FUNCTION camperso.ensure_partition(parent regclass, value text)
RETURNS regclass
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'camperso_ensure_partition';
COMMENT ON FUNCTION camperso.ensure_partition(regclass, text) IS 'The partition of a managed table that holds value (cast to the partition column type), created and attached in the current transaction when missing';

CREATE FUNCTION camperso._premake_partitions(parent regclass, premake integer, from_ts timestamptz DEFAULT now())
RETURNS integer
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'camperso_premake_partitions';
COMMENT ON FUNCTION camperso._premake_partitions(regclass, integer, timestamptz) IS 'Makes the partition holding from_ts and the premake following ones; returns how many were created';

CREATE FUNCTION camperso.partitions(parent regclass)
RETURNS TABLE (partition regclass, lower_bound text, upper_bound text, range_start timestamptz, range_end timestamptz)
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'camperso_partitions';
COMMENT ON FUNCTION camperso.partitions(regclass) IS 'Range partitions of a table on a time column with their bounds, in order (date and timestamp bounds read as UTC)';

CREATE FUNCTION camperso.partition_table(rel regclass, part_column text, part_interval interval DEFAULT '1 day',
										 premake integer DEFAULT 3, retention interval DEFAULT NULL,
										 cluster_by text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
	c			record;
	key_col		text;
	brin_name	text;
	idx_name	text;
BEGIN
	IF rel IS NULL OR part_column IS NULL OR part_interval IS NULL OR premake IS NULL THEN
		RAISE EXCEPTION 'rel, part_column, part_interval and premake must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF premake NOT BETWEEN 0 AND 10000 THEN
		RAISE EXCEPTION 'premake must be between 0 and 10000' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF retention <= interval '0' THEN
		RAISE EXCEPTION 'retention must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT cl.relname, cl.relkind, cl.relowner, pt.partstrat, pt.partnatts, pt.partattrs, pt.partdefid
	  INTO c
	  FROM pg_class cl LEFT JOIN pg_partitioned_table pt ON pt.partrelid = cl.oid
	 WHERE cl.oid = rel;
	IF c.relkind IS DISTINCT FROM 'p' THEN
		RAISE EXCEPTION '"%" is not a partitioned table', rel
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Create it with PARTITION BY RANGE on its time column.';
	END IF;
	IF NOT pg_has_role(current_user, c.relowner, 'USAGE') THEN
		RAISE EXCEPTION 'must be owner of table %', rel USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF c.partstrat <> 'r' OR c.partnatts <> 1 OR c.partattrs[0] = 0 THEN
		RAISE EXCEPTION '"%" is not range partitioned on a single column', rel
			USING ERRCODE = 'feature_not_supported';
	END IF;
	SELECT attname INTO key_col FROM pg_attribute WHERE attrelid = rel AND attnum = c.partattrs[0];
	IF key_col IS DISTINCT FROM part_column THEN
		RAISE EXCEPTION '"%" is partitioned on column "%", not "%"', rel, key_col, part_column
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF c.partdefid <> 0 THEN
		RAISE EXCEPTION 'table % has a default partition', rel
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'A default partition would hold the rows of a missing day and block making its partition.',
				  HINT = 'Detach the default partition and move its rows into range partitions.';
	END IF;
	IF cluster_by IS NOT NULL AND NOT EXISTS (
		SELECT 1 FROM pg_attribute WHERE attrelid = rel AND attname = cluster_by AND attnum > 0 AND NOT attisdropped) THEN
		RAISE EXCEPTION 'column "%" of table % does not exist', cluster_by, rel USING ERRCODE = 'undefined_column';
	END IF;

	INSERT INTO camperso.partition_config AS pc (parent, part_column, part_interval, premake, retention, cluster_by)
	VALUES (rel, part_column, part_interval, premake, retention, cluster_by)
	ON CONFLICT (parent) DO UPDATE
	   SET part_column = EXCLUDED.part_column, part_interval = EXCLUDED.part_interval,
		   premake = EXCLUDED.premake, retention = EXCLUDED.retention, cluster_by = EXCLUDED.cluster_by;

	-- BRIN on the time column: rows arrive roughly in time order, so a few
	-- pages of summaries prune most of a partition for time-range queries.
	IF NOT EXISTS (
		SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
		 WHERE i.indrelid = rel AND am.amname = 'brin' AND i.indkey[0] = c.partattrs[0]) THEN
		brin_name := left(c.relname, 40) || '_' || left(part_column, 16) || '_brin';
		EXECUTE format('CREATE INDEX %I ON %s USING brin (%I)', brin_name, rel, part_column);
	END IF;
	-- The index CLUSTER orders closed partitions by: a plain btree index
	-- whose first column is cluster_by (CLUSTER refuses partial ones).
	IF cluster_by IS NOT NULL AND NOT EXISTS (
		SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
		  JOIN pg_attribute a ON a.attrelid = rel AND a.attnum = i.indkey[0]
		 WHERE i.indrelid = rel AND am.amname = 'btree' AND a.attname = cluster_by AND i.indpred IS NULL) THEN
		idx_name := left(c.relname, 40) || '_' || left(cluster_by, 16) || '_idx';
		EXECUTE format('CREATE INDEX %I ON %s (%I)', idx_name, rel, cluster_by);
	END IF;

	RETURN camperso._premake_partitions(rel, premake, now());
END
$$;
COMMENT ON FUNCTION camperso.partition_table(regclass, text, interval, integer, interval, text) IS 'Puts a range-partitioned table under camperso management: partitions made ahead, made on demand, dropped past retention, a BRIN index on the time column; returns the number of partitions created';

CREATE FUNCTION camperso.run_maintenance(cluster_after interval DEFAULT '1 hour')
RETURNS TABLE (parent regclass, created integer, dropped integer, clustered integer, skipped integer)
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
	cfg			record;
	p			record;
	run			uuid;
	idx			text;
	old_lock	text := current_setting('lock_timeout');
	total_c		bigint := 0;
	total_d		bigint := 0;
	detail		jsonb := '[]';
BEGIN
	run := camperso.run_begin('maintenance',
							  coalesce((SELECT array_agg(pc.parent::text ORDER BY pc.parent::oid) FROM camperso.partition_config pc), '{}'));
	-- Tables dropped since they were registered.
	DELETE FROM camperso.partition_config pc WHERE NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = pc.parent);

	FOR cfg IN SELECT * FROM camperso.partition_config pc ORDER BY pc.parent::oid LOOP
		parent := cfg.parent;
		created := camperso._premake_partitions(cfg.parent, cfg.premake, now());
		dropped := 0;
		clustered := 0;
		skipped := 0;

		-- Dropping a partition locks the parent ACCESS EXCLUSIVE: wait at most
		-- a few seconds for it, and leave the partition for the next run.
		PERFORM set_config('lock_timeout', '5s', true);
		IF cfg.retention IS NOT NULL THEN
			FOR p IN SELECT * FROM camperso.partitions(cfg.parent) x
					  WHERE x.range_end <= now() - cfg.retention ORDER BY x.range_start LOOP
				BEGIN
					EXECUTE format('DROP TABLE %s', p.partition);
					dropped := dropped + 1;
				EXCEPTION WHEN lock_not_available THEN
					skipped := skipped + 1;
				END;
			END LOOP;
		END IF;

		-- Closed partitions are rewritten once in cluster_by order, so a
		-- session's rows sit on neighbouring pages. Of the btree indexes
		-- leading with cluster_by, the one with the most columns orders
		-- finest (fact_clicks: user, then event time, so each session's
		-- events are one run of rows); partial indexes CLUSTER refuses.
		IF cfg.cluster_by IS NOT NULL THEN
			FOR p IN SELECT * FROM camperso.partitions(cfg.parent) x
					  WHERE x.range_end <= now() - cluster_after
						AND (cfg.retention IS NULL OR x.range_end > now() - cfg.retention)
						AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = x.partition AND i.indisclustered)
					  ORDER BY x.range_start LOOP
				SELECT ic.relname INTO idx
				  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
				  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
				 WHERE i.indrelid = p.partition AND am.amname = 'btree' AND a.attname = cfg.cluster_by
				   AND i.indpred IS NULL AND i.indisvalid
				 ORDER BY i.indnkeyatts DESC, ic.relname LIMIT 1;
				IF idx IS NULL THEN
					CONTINUE;
				END IF;
				BEGIN
					EXECUTE format('CLUSTER %s USING %I', p.partition, idx);
					clustered := clustered + 1;
				EXCEPTION WHEN lock_not_available THEN
					skipped := skipped + 1;
				END;
			END LOOP;
		END IF;
		PERFORM set_config('lock_timeout', old_lock, true);

		total_c := total_c + created;
		total_d := total_d + dropped;
		detail := detail || jsonb_build_object('parent', cfg.parent::text, 'created', created, 'dropped', dropped,
											   'clustered', clustered, 'skipped', skipped);
		RETURN NEXT;
	END LOOP;
	PERFORM camperso.run_end(run, 'success', NULL, total_c + total_d, NULL, jsonb_build_object('tables', detail));
END
$$;
COMMENT ON FUNCTION camperso.run_maintenance(interval) IS 'Partition maintenance for every managed table: partitions made ahead, partitions past retention dropped, closed partitions clustered; recorded in camperso.runs';
REVOKE ALL ON FUNCTION camperso.run_maintenance(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.run_maintenance(interval) TO camperso_admin;
