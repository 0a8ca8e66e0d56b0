/*-------------------------------------------------------------------------
 *
 * lookup.c
 *	  The dimensions catalog (camperso.dimensions) and
 *	  camperso.lookup_sk(): the surrogate key of the version of a member
 *	  valid at a point in time, -1 for an unknown member.
 *
 * The catalog is read with a plain heap scan, so that any role allowed to
 * read a dimension can look keys up in it without rights on the catalog.
 * Each backend keeps the prepared lookup statement of every dimension it
 * used, dropped when the dimension's relcache entry is invalidated (ALTER,
 * DROP); a dimension re-registered with another natural key is seen by new
 * sessions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "model/model.h"

PG_FUNCTION_INFO_V1(camperso_lookup_sk);

/* Oid of camperso.<name>; errors when the extension is absent. */
Oid
ModelCatalogRelid(const char *name)
{
	Oid			nsp = get_namespace_oid("camperso", true);
	Oid			relid = InvalidOid;

	if (OidIsValid(nsp))
		relid = get_relname_relid(name, nsp);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension camperso is not installed in this database")));
	return relid;
}

/* The owner of the camperso schema, i.e. of the extension's objects. */
Oid
ModelExtensionOwner(void)
{
	Oid			nsp = get_namespace_oid("camperso", false);
	HeapTuple	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for namespace %u", nsp);
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Attribute number of a column of a catalog table, by name. */
static AttrNumber
ModelAttnum(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
		if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), name) == 0)
			return i + 1;
	elog(ERROR, "camperso catalog lacks column \"%s\"", name);
	return InvalidAttrNumber;
}

/*
 * Reads the entry of "dim" from camperso.dimensions into *out (strings in
 * the current context). Returns false when the dimension is not recorded.
 */
bool
ModelReadDimension(Oid dim, ModelDimension *out)
{
	Relation	crel = table_open(ModelCatalogRelid("dimensions"), AccessShareLock);
	TupleDesc	desc = RelationGetDescr(crel);
	AttrNumber	att_dim = ModelAttnum(desc, "dim");
	AttrNumber	att_key = ModelAttnum(desc, "natural_key");
	AttrNumber	att_scd2 = ModelAttnum(desc, "scd2");
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TupleTableSlot *slot = table_slot_create(crel, NULL);
	TableScanDesc scan = table_beginscan(crel, snap, 0, NULL);
	bool		found = false;

	while (!found && table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, att_dim, &isnull);
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int			i;

		if (isnull || DatumGetObjectId(d) != dim)
			continue;
		d = slot_getattr(slot, att_key, &isnull);
		if (isnull)
			continue;
		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		out->dim = dim;
		out->nkey = n;
		out->natural_key = palloc(sizeof(char *) * Max(n, 1));
		for (i = 0; i < n; i++)
			out->natural_key[i] = nulls[i] ? pstrdup("") : TextDatumGetCString(elems[i]);
		d = slot_getattr(slot, att_scd2, &isnull);
		out->scd2 = !isnull && DatumGetBool(d);
		found = true;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	table_close(crel, AccessShareLock);
	return found;
}

/* ---------------------------------------------------------------------
 * Per-backend cache of lookup statements
 * ---------------------------------------------------------------------
 */
typedef struct LookupEntry
{
	Oid			dim;			/* hash key */
	SPIPlanPtr	plan;			/* kept; NULL once invalidated */
	SPIPlanPtr	stale;			/* invalidated, freed at the next call */
} LookupEntry;

static HTAB *LookupCache = NULL;

/* Relcache callback: forget the statement of an altered or dropped dimension. */
static void
LookupInvalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	LookupEntry *e;

	if (LookupCache == NULL)
		return;
	hash_seq_init(&seq, LookupCache);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!OidIsValid(relid) || e->dim == relid)
		{
			/* Freed lazily: a callback must not free what may be running. */
			if (e->plan != NULL && e->stale == NULL)
				e->stale = e->plan;
			e->plan = NULL;
		}
	}
}

/* Builds the lookup statement of a recorded dimension. */
static SPIPlanPtr
LookupPrepare(Oid dim)
{
	ModelDimension md;
	char	   *relname = get_rel_name(dim);
	char	   *nspname;
	const char *qdim;
	char	   *sk;
	const char *key;
	Oid			keytype;
	char	   *keytypname;
	Oid			types[2] = {TEXTOID, TIMESTAMPTZOID};
	StringInfoData q;
	SPIPlanPtr	plan;

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", dim)));
	if (!ModelReadDimension(dim, &md))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("\"%s\" is not a recorded dimension", relname),
				 errhint("Dimensions are recorded by camperso.scd2_merge() and camperso.create_clickstream_model().")));
	if (md.nkey != 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("lookup_sk supports dimensions with a one-column natural key"),
				 errdetail("\"%s\" has a natural key of %d columns.", relname, md.nkey)));
	nspname = get_namespace_name(get_rel_namespace(dim));
	qdim = quote_qualified_identifier(nspname, relname);
	sk = psprintf("%s_sk", relname);
	key = md.natural_key[0];
	keytype = get_atttype(dim, get_attnum(dim, key));
	if (!OidIsValid(keytype))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("natural key column \"%s\" of dimension \"%s\" does not exist", key, relname)));
	keytypname = format_type_extended(keytype, -1, FORMAT_TYPE_FORCE_QUALIFY);

	initStringInfo(&q);
	if (md.scd2)
		appendStringInfo(&q,
						 "SELECT COALESCE("
						 "(SELECT d.%s::pg_catalog.int8 FROM %s d WHERE d.%s = $1::%s AND d.valid_from <= $2 "
						 "ORDER BY d.valid_from DESC LIMIT 1), "
						 "(SELECT d.%s::pg_catalog.int8 FROM %s d WHERE d.%s = $1::%s ORDER BY d.valid_from LIMIT 1), "
						 "%d)",
						 quote_identifier(sk), qdim, quote_identifier(key), keytypname,
						 quote_identifier(sk), qdim, quote_identifier(key), keytypname,
						 MODEL_UNKNOWN_SK);
	else
		appendStringInfo(&q,
						 "SELECT COALESCE("
						 "(SELECT d.%s::pg_catalog.int8 FROM %s d WHERE d.%s = $1::%s LIMIT 1), %d)",
						 quote_identifier(sk), qdim, quote_identifier(key), keytypname,
						 MODEL_UNKNOWN_SK);
	plan = SPI_prepare(q.data, 2, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare the lookup of \"%s\": %s", relname,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * camperso.lookup_sk(dim regclass, natural_key text, at timestamptz)
 * RETURNS bigint: the version of the member valid at "at" (the current one
 * when at is NULL); a time before the member's first version resolves to
 * that first version (early-arriving facts); an unknown or NULL key to -1.
 */
Datum
camperso_lookup_sk(PG_FUNCTION_ARGS)
{
	Oid			dim;
	LookupEntry *e;
	bool		found;
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;
	int64		sk;
	int			rc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dim must not be null")));
	if (PG_ARGISNULL(1))
		PG_RETURN_INT64(MODEL_UNKNOWN_SK);
	dim = PG_GETARG_OID(0);

	if (LookupCache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(LookupEntry);
		LookupCache = hash_create("camperso lookup_sk", 32, &ctl, HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(LookupInvalidate, (Datum) 0);
	}
	e = hash_search(LookupCache, &dim, HASH_ENTER, &found);
	if (!found)
		e->plan = e->stale = NULL;
	if (e->stale != NULL)
	{
		SPIPlanPtr	stale = e->stale;

		e->stale = NULL;
		SPI_freeplan(stale);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (e->plan == NULL)
	{
		SPIPlanPtr	plan = LookupPrepare(dim);

		/* The entry may have moved while preparing: look it up again. */
		e = hash_search(LookupCache, &dim, HASH_ENTER, &found);
		e->plan = plan;
	}
	values[0] = PointerGetDatum(PG_GETARG_TEXT_PP(1));
	if (PG_ARGISNULL(2))
	{
		TimestampTz inf;

		TIMESTAMP_NOEND(inf);
		values[1] = TimestampTzGetDatum(inf);
	}
	else
		values[1] = PG_GETARG_DATUM(2);
	rc = SPI_execute_plan(e->plan, values, nulls, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "lookup_sk query failed: %s", SPI_result_code_string(rc));
	sk = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(sk);
}
