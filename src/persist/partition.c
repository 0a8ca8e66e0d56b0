/*-------------------------------------------------------------------------
 *
 * partition.c
 *	  Managed range partitions: finding the partition that holds a value,
 *	  making it on demand (camperso.ensure_partition), making partitions
 *	  ahead (camperso._premake_partitions) and listing a table's partitions
 *	  with their bounds (camperso.partitions).
 *
 * The configuration (column, interval) lives in camperso.partition_config,
 * written by camperso.partition_table() (partition.sql). It is read here
 * with a plain heap scan rather than SPI, so that a loader running as a role
 * without access to the camperso schema (a source owner) can still get its
 * partition made; access is checked on the parent instead: the caller needs
 * INSERT on it. The partition is then created as the parent's owner.
 *
 * Locking: looking a value up needs only ACCESS SHARE on the parent. Making
 * a partition takes SHARE UPDATE EXCLUSIVE (self-conflicting, compatible
 * with readers and writers), looks again under it, and attaches; the lock is
 * held to the end of the transaction, so concurrent makers of the same
 * partition serialise and the later ones find it made.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "commands/tablespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "persist/persist.h"

PG_FUNCTION_INFO_V1(camperso_ensure_partition);
PG_FUNCTION_INFO_V1(camperso_premake_partitions);
PG_FUNCTION_INFO_V1(camperso_partitions);

/* What camperso.partition_config says about one table. */
typedef struct PersistConfig
{
	char	   *column;
	Interval	step;
} PersistConfig;

/* A partition key column after the checks every entry point makes. */
typedef struct PersistKey
{
	Oid			typid;			/* DATEOID, TIMESTAMPOID or TIMESTAMPTZOID */
	PartitionKey key;
} PersistKey;

/* Oid of camperso.partition_config; errors when the extension is absent. */
static Oid
PersistConfigRelid(void)
{
	Oid			nsp = get_namespace_oid("camperso", true);
	Oid			relid = InvalidOid;

	if (OidIsValid(nsp))
		relid = get_relname_relid("partition_config", nsp);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension camperso is not installed in database \"%s\"",
						get_database_name(MyDatabaseId))));
	return relid;
}

/*
 * Reads the configuration of "parent" into *cfg (allocated in the current
 * context). Returns false when the table is not managed.
 */
static bool
PersistReadConfig(Oid parent, PersistConfig *cfg)
{
	Relation	crel = table_open(PersistConfigRelid(), AccessShareLock);
	TupleDesc	desc = RelationGetDescr(crel);
	AttrNumber	att_parent = InvalidAttrNumber;
	AttrNumber	att_column = InvalidAttrNumber;
	AttrNumber	att_step = InvalidAttrNumber;
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TableScanDesc scan;
	TupleTableSlot *slot;
	bool		found = false;
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		const char *name = NameStr(TupleDescAttr(desc, i)->attname);

		if (strcmp(name, "parent") == 0)
			att_parent = i + 1;
		else if (strcmp(name, "part_column") == 0)
			att_column = i + 1;
		else if (strcmp(name, "part_interval") == 0)
			att_step = i + 1;
	}
	if (att_parent == InvalidAttrNumber || att_column == InvalidAttrNumber ||
		att_step == InvalidAttrNumber)
		elog(ERROR, "camperso.partition_config lacks an expected column");

	slot = table_slot_create(crel, NULL);
	scan = table_beginscan(crel, snap, 0, NULL);
	while (!found && table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, att_parent, &isnull);

		if (isnull || DatumGetObjectId(d) != parent)
			continue;
		d = slot_getattr(slot, att_column, &isnull);
		if (isnull)
			continue;
		cfg->column = TextDatumGetCString(d);
		d = slot_getattr(slot, att_step, &isnull);
		if (isnull)
			continue;
		memcpy(&cfg->step, DatumGetIntervalP(d), sizeof(Interval));
		found = true;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	table_close(crel, AccessShareLock);
	return found;
}

bool
PersistIsManaged(Oid parent)
{
	PersistConfig cfg;

	return PersistReadConfig(parent, &cfg);
}

/*
 * Checks that "rel" is range partitioned on one date/timestamp/timestamptz
 * column (named "column" when not NULL) and fills *pk.
 */
static void
PersistCheckKey(Relation rel, const char *column, PersistKey *pk)
{
	PartitionKey key;
	Oid			typid;

	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a partitioned table", RelationGetRelationName(rel)),
				 errhint("Create it with PARTITION BY RANGE on its time column.")));
	key = RelationGetPartitionKey(rel);
	if (key->strategy != PARTITION_STRATEGY_RANGE || key->partnatts != 1 || key->partattrs[0] == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("\"%s\" is not range partitioned on a single column",
						RelationGetRelationName(rel)),
				 errdetail("camperso manages tables declared PARTITION BY RANGE (column).")));
	typid = key->parttypid[0];
	if (typid != DATEOID && typid != TIMESTAMPOID && typid != TIMESTAMPTZOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("partition column of \"%s\" has type %s", RelationGetRelationName(rel),
						format_type_be(typid)),
				 errdetail("Managed partition columns are date, timestamp or timestamptz.")));
	if (column != NULL)
	{
		const char *keycol = get_attname(RelationGetRelid(rel), key->partattrs[0], false);

		if (strcmp(keycol, column) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"%s\" is partitioned on column \"%s\", not \"%s\"",
							RelationGetRelationName(rel), keycol, column)));
	}
	pk->typid = typid;
	pk->key = key;
}

/*
 * A partition key value as microseconds since 2000-01-01 00:00 UTC (dates
 * at midnight, timestamps read as UTC). Infinities map to the int64
 * extremes, which order correctly against every finite value.
 */
static int64
PersistValueToTs(Datum value, Oid typid)
{
	if (typid == DATEOID)
	{
		DateADT		d = DatumGetDateADT(value);

		if (DATE_IS_NOBEGIN(d))
			return PG_INT64_MIN;
		if (DATE_IS_NOEND(d))
			return PG_INT64_MAX;
		return (int64) d * USECS_PER_DAY;
	}
	return DatumGetInt64(value);
}

/* The inverse of PersistValueToTs for finite, aligned values. */
static Datum
PersistTsToValue(int64 ts, Oid typid)
{
	if (typid == DATEOID)
		return DateADTGetDatum((DateADT) (ts / USECS_PER_DAY));
	return Int64GetDatum(ts);
}

static int64
FloorDiv(int64 a, int64 b)
{
	int64		q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* Checks that a partition interval is usable; shared with partition_table. */
static void
PersistCheckInterval(const Interval *step, Oid typid)
{
	bool		ok;

	if (step->month != 0)
		ok = step->month > 0 && step->day == 0 && step->time == 0;
	else
		ok = step->day >= 0 && step->time >= 0 && (step->day > 0 || step->time > 0);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid partition interval"),
				 errdetail("The interval must be positive and either whole months or days and time, not both.")));
	if (typid == DATEOID && step->month == 0 && step->time != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid partition interval for a date column"),
				 errdetail("A date column is partitioned by whole days or months.")));
}

/*
 * The aligned range [*lo, *hi) of the interval grid that holds ts (which
 * must be finite). Months count from January 2000, days and time from
 * 2000-01-01 00:00 UTC.
 */
static void
PersistAlign(const Interval *step, int64 ts, int64 *lo, int64 *hi)
{
	if (step->month > 0)
	{
		struct pg_tm tm;
		fsec_t		fsec;
		int64		months;
		int64		q;
		int			i;
		int64		edge[2];

		if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		months = (int64) (tm.tm_year - 2000) * 12 + (tm.tm_mon - 1);
		q = FloorDiv(months, step->month) * step->month;
		for (i = 0; i < 2; i++)
		{
			int64		m = q + (i == 0 ? 0 : step->month);
			struct pg_tm etm;
			Timestamp	t;

			memset(&etm, 0, sizeof(etm));
			etm.tm_year = (int) (2000 + FloorDiv(m, 12));
			etm.tm_mon = (int) (m - FloorDiv(m, 12) * 12) + 1;
			etm.tm_mday = 1;
			if (tm2timestamp(&etm, 0, NULL, &t) != 0 || !IS_VALID_TIMESTAMP(t))
				ereport(ERROR,
						(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						 errmsg("partition bound out of range")));
			edge[i] = t;
		}
		*lo = edge[0];
		*hi = edge[1];
	}
	else
	{
		int64		stride = (int64) step->day * USECS_PER_DAY + step->time;

		*lo = FloorDiv(ts, stride) * stride;
		*hi = *lo + stride;
		if (!IS_VALID_TIMESTAMP(*lo) || !IS_VALID_TIMESTAMP(*hi))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("partition bound out of range")));
	}
}

/*
 * Looks "value" up among the partitions of rel. Returns the partition's
 * oid, or InvalidOid with *gap_lo and *gap_hi narrowed to the free range around
 * the value (bounds of the neighbouring partitions).
 */
static Oid
PersistFindPartition(Relation rel, PersistKey *pk, Datum value, int64 *gap_lo, int64 *gap_hi)
{
	PartitionDesc pd = RelationGetPartitionDesc(rel, true);
	PartitionBoundInfo bi = pd->boundinfo;
	bool		equal = false;
	int			off;
	int			idx;

	if (bi == NULL || bi->ndatums == 0)
		return InvalidOid;
	off = partition_range_datum_bsearch(pk->key->partsupfunc, pk->key->partcollation,
										bi, 1, &value, &equal);
	idx = bi->indexes[off + 1];
	if (idx >= 0)
		return pd->oids[idx];

	/* A gap: clip to the bounds on either side. */
	if (off >= 0 && bi->kind[off][0] == PARTITION_RANGE_DATUM_VALUE)
	{
		int64		b = PersistValueToTs(bi->datums[off][0], pk->typid);

		if (b > *gap_lo)
			*gap_lo = b;
	}
	if (off + 1 < bi->ndatums && bi->kind[off + 1][0] == PARTITION_RANGE_DATUM_VALUE)
	{
		int64		b = PersistValueToTs(bi->datums[off + 1][0], pk->typid);

		if (b < *gap_hi)
			*gap_hi = b;
	}
	return InvalidOid;
}

/*
 * Name for the partition starting at lo: <parent>_pYYYYMMDD (days),
 * _pYYYYMM (months) or _pYYYYMMDD_HH24MI (sub-day), the parent's name
 * clipped so that the whole fits NAMEDATALEN, made unique in the schema.
 */
static char *
PersistPartitionName(Relation rel, const Interval *step, int64 lo)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		suffix[40];
	const char *base = RelationGetRelationName(rel);
	Oid			nsp = RelationGetNamespace(rel);
	int			n;

	if (timestamp2tm(lo, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "partition bound out of range");
	if (step->month > 0)
		snprintf(suffix, sizeof(suffix), "_p%04d%02d", tm.tm_year, tm.tm_mon);
	else if (step->time == 0 && tm.tm_hour == 0 && tm.tm_min == 0 && tm.tm_sec == 0)
		snprintf(suffix, sizeof(suffix), "_p%04d%02d%02d", tm.tm_year, tm.tm_mon, tm.tm_mday);
	else
		snprintf(suffix, sizeof(suffix), "_p%04d%02d%02d_%02d%02d%02d", tm.tm_year, tm.tm_mon,
				 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);

	for (n = 1; n <= 1000; n++)
	{
		char		tail[60];
		int			room;
		int			cut;
		char	   *name;

		if (n == 1)
			snprintf(tail, sizeof(tail), "%s", suffix);
		else
			snprintf(tail, sizeof(tail), "%s_%d", suffix, n);
		room = NAMEDATALEN - 1 - (int) strlen(tail);
		cut = pg_mbcliplen(base, strlen(base), room);
		name = psprintf("%.*s%s", cut, base, tail);
		if (!OidIsValid(get_relname_relid(name, nsp)))
			return name;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_TABLE),
			 errmsg("no free name for a new partition of \"%s\"", base)));
	return NULL;				/* keep compiler quiet */
}

/* A partition key value as an SQL literal cast to the column type. */
static char *
PersistBoundLiteral(int64 ts, Oid typid)
{
	Oid			out;
	bool		varlena;
	char	   *text;

	getTypeOutputInfo(typid, &out, &varlena);
	text = OidOutputFunctionCall(out, PersistTsToValue(ts, typid));
	return psprintf("%s::%s", quote_literal_cstr(text), format_type_be_qualified(typid));
}

/*
 * Creates the partition [lo, hi) of "parent" and attaches it, as the
 * parent's owner. Caller holds SHARE UPDATE EXCLUSIVE on the parent and has
 * no relcache reference to it open (ATTACH refuses a table in use).
 */
static Oid
PersistCreatePartition(Oid parent, Oid typid, const Interval *step, int64 lo, int64 hi)
{
	Relation	rel = table_open(parent, NoLock);
	Oid			nsp = RelationGetNamespace(rel);
	char	   *nspname = get_namespace_name(nsp);
	char	   *name = PersistPartitionName(rel, step, lo);
	const char *parentname = quote_qualified_identifier(nspname, RelationGetRelationName(rel));
	const char *child = quote_qualified_identifier(nspname, name);
	Oid			owner = rel->rd_rel->relowner;
	Oid			tablespace = rel->rd_rel->reltablespace;
	StringInfoData sql;
	Oid			save_userid;
	int			save_sec;
	Oid			relid;

	table_close(rel, NoLock);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
					 "INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION)",
					 child, parentname);
	if (OidIsValid(tablespace))
		appendStringInfo(&sql, " TABLESPACE %s", quote_identifier(get_tablespace_name(tablespace)));
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create partition %s", child);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s)",
					 parentname, child, PersistBoundLiteral(lo, typid), PersistBoundLiteral(hi, typid));
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not attach partition %s", child);
	SPI_finish();

	SetUserIdAndSecContext(save_userid, save_sec);

	relid = get_relname_relid(name, nsp);
	if (!OidIsValid(relid))
		elog(ERROR, "partition %s vanished after creation", child);
	return relid;
}

/*
 * Checks that "parent" is managed, that the caller may insert into it and
 * that its key still fits; reads *cfg and returns the key type. Leaves the
 * parent locked ACCESS SHARE.
 */
static Oid
PersistCheckManaged(Oid parent, PersistConfig *cfg)
{
	Relation	rel;
	AclResult	acl;
	PersistKey	pk;

	if (!PersistReadConfig(parent, cfg))
	{
		char	   *name = get_rel_name(parent);

		if (name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", parent)));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not managed by camperso", name),
				 errhint("Register it first with camperso.partition_table().")));
	}
	rel = table_open(parent, AccessShareLock);
	acl = pg_class_aclcheck(parent, GetUserId(), ACL_INSERT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, RelationGetRelationName(rel));
	PersistCheckKey(rel, cfg->column, &pk);
	PersistCheckInterval(&cfg->step, pk.typid);
	table_close(rel, NoLock);
	return pk.typid;
}

/*
 * Looks "value" (a Datum of the key type, finite) up in parent's
 * partitions; fills the aligned range around it clipped to its neighbours.
 * Opens and closes the parent; caller holds a lock on it.
 */
static Oid
PersistLookup(Oid parent, const PersistConfig *cfg, Datum value, int64 ts,
			  int64 *lo, int64 *hi, bool *has_default)
{
	Relation	rel = table_open(parent, NoLock);
	PersistKey	pk;
	Oid			part;
	PartitionDesc pd;

	PersistCheckKey(rel, NULL, &pk);
	PersistAlign(&cfg->step, ts, lo, hi);
	part = PersistFindPartition(rel, &pk, value, lo, hi);
	pd = RelationGetPartitionDesc(rel, true);
	*has_default = pd->boundinfo != NULL && partition_bound_has_default(pd->boundinfo);
	table_close(rel, NoLock);
	return part;
}

/*
 * The body of PersistEnsurePartition once the parent is checked: "value"
 * is a Datum of key type "typid".
 */
static Oid
PersistEnsure(Oid parent, const PersistConfig *cfg, Oid typid, Datum value, bool *created)
{
	int64		ts = PersistValueToTs(value, typid);
	int64		lo;
	int64		hi;
	bool		has_default;
	Oid			part;

	if (created)
		*created = false;
	if (ts == PG_INT64_MIN || ts == PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot make a partition of \"%s\" for an infinite value",
						get_rel_name(parent))));

	part = PersistLookup(parent, cfg, value, ts, &lo, &hi, &has_default);
	if (OidIsValid(part))
		return part;

	/* Missing: take the attach lock and look again (someone may have won). */
	LockRelationOid(parent, ShareUpdateExclusiveLock);
	part = PersistLookup(parent, cfg, value, ts, &lo, &hi, &has_default);
	if (OidIsValid(part))
		return part;
	if (has_default)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has a default partition", get_rel_name(parent)),
				 errdetail("A default partition would hold the rows of a missing day and block making its partition."),
				 errhint("Detach the default partition and move its rows into range partitions.")));

	part = PersistCreatePartition(parent, typid, &cfg->step, lo, hi);
	if (created)
		*created = true;
	return part;
}

Oid
PersistEnsurePartition(Oid parent, Datum value, bool *created)
{
	PersistConfig cfg;
	Oid			typid = PersistCheckManaged(parent, &cfg);

	return PersistEnsure(parent, &cfg, typid, value, created);
}

/*
 * camperso.ensure_partition(parent regclass, value text) RETURNS regclass:
 * the partition holding value (cast to the partition column's type), made
 * in this transaction if missing.
 */
Datum
camperso_ensure_partition(PG_FUNCTION_ARGS)
{
	Oid			parent;
	PersistConfig cfg;
	Oid			typid;
	Oid			in;
	Oid			ioparam;
	Datum		value;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("parent table must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("partition key value must not be null"),
				 errdetail("A range partition cannot hold a null key.")));
	parent = PG_GETARG_OID(0);
	typid = PersistCheckManaged(parent, &cfg);

	getTypeInputInfo(typid, &in, &ioparam);
	value = OidInputFunctionCall(in, text_to_cstring(PG_GETARG_TEXT_PP(1)), ioparam, -1);
	PG_RETURN_OID(PersistEnsure(parent, &cfg, typid, value, NULL));
}

/*
 * camperso._premake_partitions(parent regclass, premake int, from_ts
 * timestamptz) RETURNS int: makes the partitions holding from_ts and the
 * premake intervals after it; returns how many were created.
 */
Datum
camperso_premake_partitions(PG_FUNCTION_ARGS)
{
	Oid			parent = PG_GETARG_OID(0);
	int32		premake = PG_GETARG_INT32(1);
	TimestampTz from = PG_GETARG_TIMESTAMPTZ(2);
	PersistConfig cfg;
	Oid			typid;
	int32		made = 0;
	int32		i;
	int64		ts;

	if (premake < 0 || premake > 10000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("premake must be between 0 and 10000")));
	if (TIMESTAMP_NOT_FINITE(from))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("premake start must be finite")));

	typid = PersistCheckManaged(parent, &cfg);
	ts = from;
	for (i = 0; i <= premake; i++)
	{
		int64		lo;
		int64		hi;
		bool		created;

		CHECK_FOR_INTERRUPTS();
		PersistAlign(&cfg.step, ts, &lo, &hi);
		(void) PersistEnsure(parent, &cfg, typid, PersistTsToValue(lo, typid), &created);
		if (created)
			made++;
		ts = hi;
	}
	PG_RETURN_INT32(made);
}

/*
 * camperso.partitions(parent regclass) RETURNS TABLE(partition regclass,
 * lower_bound text, upper_bound text, range_start timestamptz, range_end
 * timestamptz): the range partitions of a table on a time column, in bound
 * order; range_start/range_end read date and timestamp bounds as UTC.
 */
Datum
camperso_partitions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			parent = PG_GETARG_OID(0);
	Relation	rel;
	PersistKey	pk;
	PartitionDesc pd;
	PartitionBoundInfo bi;
	Oid			out;
	bool		varlena;
	AclResult	acl;
	int			i;

	InitMaterializedSRF(fcinfo, 0);

	rel = table_open(parent, AccessShareLock);
	acl = pg_class_aclcheck(parent, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, RelationGetRelationName(rel));
	PersistCheckKey(rel, NULL, &pk);
	getTypeOutputInfo(pk.typid, &out, &varlena);

	pd = RelationGetPartitionDesc(rel, true);
	bi = pd->boundinfo;
	for (i = 0; bi != NULL && i + 1 < bi->ndatums; i++)
	{
		int			idx = bi->indexes[i + 1];
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		int			side;

		if (idx < 0)
			continue;
		values[0] = ObjectIdGetDatum(pd->oids[idx]);
		for (side = 0; side < 2; side++)
		{
			PartitionRangeDatumKind kind = bi->kind[i + side][0];

			if (kind == PARTITION_RANGE_DATUM_VALUE)
			{
				Datum		d = bi->datums[i + side][0];
				int64		ts = PersistValueToTs(d, pk.typid);

				values[1 + side] = CStringGetTextDatum(OidOutputFunctionCall(out, d));
				if (ts == PG_INT64_MIN)
					TIMESTAMP_NOBEGIN(ts);
				else if (ts == PG_INT64_MAX)
					TIMESTAMP_NOEND(ts);
				values[3 + side] = TimestampTzGetDatum(ts);
			}
			else
			{
				int64		ts;

				values[1 + side] = CStringGetTextDatum(kind == PARTITION_RANGE_DATUM_MINVALUE ?
													   "MINVALUE" : "MAXVALUE");
				if (kind == PARTITION_RANGE_DATUM_MINVALUE)
					TIMESTAMP_NOBEGIN(ts);
				else
					TIMESTAMP_NOEND(ts);
				values[3 + side] = TimestampTzGetDatum(ts);
			}
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	table_close(rel, AccessShareLock);
	return (Datum) 0;
}
