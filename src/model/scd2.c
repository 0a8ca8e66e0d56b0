/*-------------------------------------------------------------------------
 *
 * scd2.c
 *	  camperso.scd2_merge(): Type-2 slowly changing dimension history from a
 *	  source relation, with out-of-order changes, type-1 columns and
 *	  idempotent re-runs.
 *
 * A dimension keeps, per natural key, versions [valid_from, valid_to) that
 * tile time without gaps ('infinity' closes the current one, is_current
 * marks it), each with the tracked columns' values and a surrogate key
 * <dim>_sk filled by the column's identity or default.
 *
 * How a merge runs:
 *	1. The affected versions (every version of a key present in the source)
 *	   and the source rows are gathered per natural key. Hashed (the usual
 *	   way): the source rows go into a hash table of groups by key; a plain
 *	   dimension is then read by one heap scan that hashes each version's
 *	   key and probes a bit filter of the source keys first (most versions
 *	   belong to keys the batch does not name), a dimension under row
 *	   security or partitioned by a semi-join query. Sorted (when a key
 *	   type has no hash function, or the groups outgrow
 *	   maintenance_work_mem): one query streams versions and source rows
 *	   ordered by key, then time, and each key is replayed as soon as it is
 *	   complete. Either way a key's rows are taken by time, versions first
 *	   on ties.
 *	2. Each key's group is replayed in memory: every source row, in
 *	   effective-time order, lands in the version holding its time. Equal
 *	   tracked values (NULL-safe): nothing. Otherwise the version is split
 *	   at that time (closed there, a new version runs to the old end), or,
 *	   when the next version already has these values, that one is extended
 *	   back; a row at exactly a version's start corrects it in place; a row
 *	   before the first version opens a new first version (or extends the
 *	   first back). Type-1 columns take the latest source row's values on
 *	   every version of the key.
 *	3. Changed versions and new versions are applied set-based, in key
 *	   order (so surrogate keys are handed out the same way by both
 *	   strategies): one UPDATE joined on the version's tid (plain tables)
 *	   or surrogate key and one INSERT, each fed by arrays of up to
 *	   SCD2_FLUSH_ROWS rows. Values travel as text and are cast back to the
 *	   column types, so any type with text I/O works.
 * Re-running a source lands every row in a version that already has its
 * values: nothing changes.
 *
 * Locking: the dimension is locked SHARE ROW EXCLUSIVE for the rest of the
 * transaction, before it is read, so merges into one dimension serialise
 * (readers are not blocked) and each sees the previous one's result under
 * READ COMMITTED. The lock also keeps every other writer out, so the tids
 * read in step 1 still name the versions when step 3 updates them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "model/model.h"

PG_FUNCTION_INFO_V1(camperso_scd2_merge);

/* Rows of pending updates or inserts sent to the server at once. */
#define SCD2_FLUSH_ROWS		10000
/* Rows fetched from the merge stream at once. */
#define SCD2_FETCH_ROWS		5000

/* One column named by the caller, resolved in both relations. */
typedef struct Scd2Col
{
	const char *name;
	Oid			typid;
	int32		typmod;			/* the dimension's */
	Oid			collation;		/* the dimension's */
	char	   *typname;		/* qualified, with typmod: for casts */
	bool		has_eq;			/* change detection: "=" or binary image */
	FmgrInfo	eq;
	FmgrInfo	cmp;			/* natural key only: grouping */
	FmgrInfo	hash;			/* natural key only, when the type has one */
	FmgrInfo	out;
	int16		typlen;
	bool		typbyval;
	AttrNumber	attnum;			/* in the dimension */
} Scd2Col;

/* Everything the merge needs to know about its arguments. */
typedef struct Scd2Spec
{
	Oid			dim;
	char	   *dimname;		/* qualified, quoted */
	char	   *srcname;
	char	   *sk;
	int			nkey;
	int			ntracked;
	int			ntype1;
	Scd2Col    *key;
	Scd2Col    *tracked;
	Scd2Col    *type1;
	const char *effective;		/* NULL: now() */
	Oid			efftype;
	/* The dimension's bookkeeping columns, and whether a scan may read it. */
	AttrNumber	sk_attnum;
	bool		sk_is_int4;
	AttrNumber	from_attnum;
	AttrNumber	to_attnum;
	AttrNumber	current_attnum;
	bool		scannable;		/* a plain table without row security */
	bool		by_tid;			/* a plain table: versions updated by ctid */
} Scd2Spec;

/* A row of the merge stream: a dimension version or a source row. */
typedef struct Scd2Row
{
	bool		is_source;
	TimestampTz t;				/* valid_from or effective time */
	Datum	   *vals;			/* tracked then type1 */
	bool	   *nulls;
	int64		sk;
	TimestampTz valid_to;
	bool		is_current;
	ItemPointerData tid;		/* where the version is (plain tables) */
} Scd2Row;

/* A version of one key while its group is replayed. */
typedef struct Scd2Version
{
	bool		is_new;
	int64		sk;
	ItemPointerData tid;
	TimestampTz from;
	TimestampTz to;
	TimestampTz orig_from;
	TimestampTz orig_to;
	bool		orig_current;
	Datum	   *vals;			/* tracked then type1 */
	bool	   *nulls;
	bool		values_changed;
	bool		type1_changed;
} Scd2Version;

/* Pending writes, as one array per statement parameter. */
typedef struct Scd2Pending
{
	MemoryContext cxt;
	int			nupd;
	int			nins;
	ArrayBuildState **upd;		/* sk, from, to, current, tracked..., type1... */
	ArrayBuildState **ins;		/* key..., tracked..., type1..., from, to, current */
	SPIPlanPtr	upd_plan;
	SPIPlanPtr	ins_plan;
	int			upd_nargs;
	int			ins_nargs;
} Scd2Pending;

/* Counters returned to the caller. */
typedef struct Scd2Counts
{
	int64		inserted;
	int64		closed;
	int64		type1_updated;
	int64		unchanged;
	int64		corrected;
} Scd2Counts;

/* ---------------------------------------------------------------------
 * Argument checks
 * ---------------------------------------------------------------------
 */

/* A text[] argument as a list of C strings; NULL elements are refused. */
static List *
Scd2NameList(ArrayType *arr, const char *argname)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *names = NIL;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", argname)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		char	   *name;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", argname)));
		name = TextDatumGetCString(elems[i]);
		if (name[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain empty column names", argname)));
		names = lappend(names, name);
	}
	return names;
}

/* The attribute "name" of rel, or an undefined_column error. */
static Form_pg_attribute
Scd2Attr(Relation rel, const char *name, const char *role)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of relation \"%s\" does not exist",
					name, RelationGetRelationName(rel)),
			 errdetail("It is named as %s.", role)));
	return NULL;				/* keep compiler quiet */
}

/* Resolves the columns of one argument list in dim and source. */
static Scd2Col *
Scd2ResolveCols(Relation dim, Relation src, List *names, const char *role, bool is_key)
{
	Scd2Col    *cols = palloc0(sizeof(Scd2Col) * Max(list_length(names), 1));
	ListCell   *lc;
	int			i = 0;

	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		Form_pg_attribute da = Scd2Attr(dim, name, role);
		Form_pg_attribute sa = Scd2Attr(src, name, role);
		Scd2Col    *c = &cols[i++];
		TypeCacheEntry *tc;
		Oid			outfn;
		bool		varlena;

		if (getBaseType(da->atttypid) != getBaseType(sa->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" has type %s in the dimension but %s in the source",
							name, format_type_be(da->atttypid), format_type_be(sa->atttypid))));
		c->name = name;
		c->typid = da->atttypid;
		c->typmod = da->atttypmod;
		c->collation = da->attcollation;
		c->typlen = da->attlen;
		c->typbyval = da->attbyval;
		c->attnum = da->attnum;
		c->typname = format_type_extended(da->atttypid, da->atttypmod,
										  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
		getTypeOutputInfo(da->atttypid, &outfn, &varlena);
		fmgr_info(outfn, &c->out);

		tc = lookup_type_cache(getBaseType(da->atttypid),
							   TYPECACHE_EQ_OPR_FINFO | TYPECACHE_CMP_PROC_FINFO | TYPECACHE_HASH_PROC_FINFO);
		if (is_key && !OidIsValid(tc->cmp_proc_finfo.fn_oid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("natural key column \"%s\" has type %s, which has no ordering",
							name, format_type_be(da->atttypid)),
					 errhint("Natural keys need a type with a default btree operator class.")));
		if (is_key)
		{
			c->cmp = tc->cmp_proc_finfo;
			if (OidIsValid(tc->hash_proc_finfo.fn_oid))
				c->hash = tc->hash_proc_finfo;
		}
		c->has_eq = OidIsValid(tc->eq_opr_finfo.fn_oid);
		if (c->has_eq)
			c->eq = tc->eq_opr_finfo;
	}
	return cols;
}

/* The type of a dimension bookkeeping column, checked; returns its attnum. */
static AttrNumber
Scd2CheckDimColumn(Relation dim, const char *name, Oid want1, Oid want2)
{
	Form_pg_attribute att = Scd2Attr(dim, name, "a dimension bookkeeping column");

	if (att->atttypid != want1 && att->atttypid != want2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of dimension \"%s\" has type %s",
						name, RelationGetRelationName(dim), format_type_be(att->atttypid)),
				 errdetail("Expected %s.", format_type_be(want1))));
	return att->attnum;
}

/* Checks the arguments and the two relations; fills *spec. */
static void
Scd2BuildSpec(Oid dimoid, Oid srcoid, List *keys, List *tracked, List *type1,
			  const char *effective, Scd2Spec *spec)
{
	Relation	dim;
	Relation	src;
	char		kind;
	Form_pg_attribute skatt;
	List	   *all = list_concat(list_concat(list_copy(keys), tracked), type1);
	ListCell   *lc;
	AclResult	acl;
	static const char *const reserved[] = {"valid_from", "valid_to", "is_current"};

	memset(spec, 0, sizeof(*spec));
	if (keys == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("natural_key must name at least one column")));
	if (tracked == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tracked must name at least one column"),
				 errhint("A dimension without tracked columns keeps no history; load it with INSERT ... ON CONFLICT.")));

	/* Serialise merges into this dimension before reading anything. */
	LockRelationOid(dimoid, ShareRowExclusiveLock);
	dim = table_open(dimoid, NoLock);
	kind = dim->rd_rel->relkind;
	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("dimension \"%s\" is not a table", RelationGetRelationName(dim))));
	acl = pg_class_aclcheck(dimoid, GetUserId(), ACL_SELECT | ACL_INSERT | ACL_UPDATE);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, RelationGetRelationName(dim));

	src = relation_open(srcoid, AccessShareLock);
	kind = src->rd_rel->relkind;
	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE && kind != RELKIND_VIEW &&
		kind != RELKIND_MATVIEW && kind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source \"%s\" is not a table or view", RelationGetRelationName(src))));

	/* No column twice, none of the bookkeeping ones. */
	spec->sk = psprintf("%s_sk", RelationGetRelationName(dim));
	foreach(lc, all)
	{
		const char *name = lfirst(lc);
		ListCell   *lc2;
		int			r;

		for_each_cell(lc2, all, lnext(all, lc))
		{
			if (strcmp(name, lfirst(lc2)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("column \"%s\" is named more than once", name),
						 errdetail("natural_key, tracked and type1 must not overlap.")));
		}
		for (r = 0; r < lengthof(reserved); r++)
			if (strcmp(name, reserved[r]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" is kept by scd2_merge and cannot be named", name)));
		if (strcmp(name, spec->sk) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" is the surrogate key and cannot be named", name)));
	}

	/* Bookkeeping columns of the dimension. */
	skatt = Scd2Attr(dim, spec->sk, "the surrogate key (<dimension>_sk)");
	if (skatt->atttypid != INT8OID && skatt->atttypid != INT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("surrogate key \"%s\" has type %s", spec->sk, format_type_be(skatt->atttypid)),
				 errdetail("Expected bigint or integer.")));
	if (skatt->attidentity == '\0' && !skatt->atthasdef)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("surrogate key \"%s\" has no identity or default", spec->sk),
				 errhint("Declare it GENERATED ALWAYS AS IDENTITY.")));
	spec->sk_attnum = skatt->attnum;
	spec->sk_is_int4 = skatt->atttypid == INT4OID;
	spec->from_attnum = Scd2CheckDimColumn(dim, "valid_from", TIMESTAMPTZOID, TIMESTAMPTZOID);
	spec->to_attnum = Scd2CheckDimColumn(dim, "valid_to", TIMESTAMPTZOID, TIMESTAMPTZOID);
	spec->current_attnum = Scd2CheckDimColumn(dim, "is_current", BOOLOID, BOOLOID);
	/* Row security applies to SQL only: a dimension under it is read by query. */
	spec->by_tid = dim->rd_rel->relkind == RELKIND_RELATION;
	spec->scannable = spec->by_tid &&
		check_enable_rls(dimoid, InvalidOid, false) != RLS_ENABLED;

	spec->dim = dimoid;
	spec->nkey = list_length(keys);
	spec->ntracked = list_length(tracked);
	spec->ntype1 = list_length(type1);
	spec->key = Scd2ResolveCols(dim, src, keys, "natural_key", true);
	spec->tracked = Scd2ResolveCols(dim, src, tracked, "tracked", false);
	spec->type1 = Scd2ResolveCols(dim, src, type1, "type1", false);

	if (effective != NULL)
	{
		Form_pg_attribute ea = Scd2Attr(src, effective, "effective_column");
		Oid			t = getBaseType(ea->atttypid);

		if (t != TIMESTAMPTZOID && t != TIMESTAMPOID && t != DATEOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("effective column \"%s\" has type %s", effective, format_type_be(ea->atttypid)),
					 errdetail("Expected timestamptz, timestamp or date.")));
		spec->effective = effective;
		spec->efftype = t;
	}

	spec->dimname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(dim)),
											   RelationGetRelationName(dim));
	spec->srcname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(src)),
											   RelationGetRelationName(src));
	relation_close(src, NoLock);
	table_close(dim, NoLock);
}

/* ---------------------------------------------------------------------
 * SQL text
 * ---------------------------------------------------------------------
 */

/* "a.k1 COLLATE "C", ..." for ordering, or "a.k1, ..." plain. */
static void
Scd2AppendKeyList(StringInfo buf, Scd2Spec *spec, const char *alias, bool for_order)
{
	int			i;

	for (i = 0; i < spec->nkey; i++)
	{
		appendStringInfo(buf, "%s%s%s%s", i ? ", " : "", alias ? alias : "",
						 alias ? "." : "", quote_identifier(spec->key[i].name));
		if (for_order && OidIsValid(spec->key[i].collation))
			appendStringInfoString(buf, " COLLATE \"C\"");
	}
}

static void
Scd2AppendCols(StringInfo buf, Scd2Col *cols, int n, const char *alias)
{
	int			i;

	for (i = 0; i < n; i++)
		appendStringInfo(buf, ", %s.%s", alias, quote_identifier(cols[i].name));
}

/*
 * The affected versions: every version of a key the source names.
 * Columns: 0, key..., t (valid_from), tracked..., type1..., sk, valid_to,
 * is_current, ctid (NULL for a partitioned dimension).
 */
static char *
Scd2DimQuery(Scd2Spec *spec)
{
	StringInfoData q;
	int			i;

	initStringInfo(&q);
	appendStringInfoString(&q, "SELECT 0 AS src");
	for (i = 0; i < spec->nkey; i++)
		appendStringInfo(&q, ", d.%s AS k%d", quote_identifier(spec->key[i].name), i);
	appendStringInfoString(&q, ", d.valid_from AS t");
	Scd2AppendCols(&q, spec->tracked, spec->ntracked, "d");
	Scd2AppendCols(&q, spec->type1, spec->ntype1, "d");
	appendStringInfo(&q, ", d.%s::pg_catalog.int8, d.valid_to, d.is_current, %s FROM %s d WHERE (",
					 quote_identifier(spec->sk), spec->by_tid ? "d.ctid" : "NULL::pg_catalog.tid", spec->dimname);
	Scd2AppendKeyList(&q, spec, "d", false);
	appendStringInfoString(&q, ") IN (SELECT ");
	Scd2AppendKeyList(&q, spec, "s", false);
	appendStringInfo(&q, " FROM %s s)", spec->srcname);
	return q.data;
}

/* The source rows, in the same columns (sk, valid_to, is_current, ctid NULL). */
static char *
Scd2SourceQuery(Scd2Spec *spec)
{
	StringInfoData q;
	int			i;

	initStringInfo(&q);
	appendStringInfoString(&q, "SELECT 1");
	for (i = 0; i < spec->nkey; i++)
		appendStringInfo(&q, ", s.%s::%s", quote_identifier(spec->key[i].name), spec->key[i].typname);
	if (spec->effective)
		appendStringInfo(&q, ", s.%s::pg_catalog.timestamptz", quote_identifier(spec->effective));
	else
		appendStringInfoString(&q, ", pg_catalog.now()");
	for (i = 0; i < spec->ntracked; i++)
		appendStringInfo(&q, ", s.%s::%s", quote_identifier(spec->tracked[i].name), spec->tracked[i].typname);
	for (i = 0; i < spec->ntype1; i++)
		appendStringInfo(&q, ", s.%s::%s", quote_identifier(spec->type1[i].name), spec->type1[i].typname);
	appendStringInfo(&q, ", NULL::pg_catalog.int8, NULL::pg_catalog.timestamptz, NULL::pg_catalog.bool, "
					 "NULL::pg_catalog.tid FROM %s s", spec->srcname);
	return q.data;
}

/*
 * The merge stream of the sorted strategy: affected versions and source
 * rows, by key then time, versions first on ties.
 */
static char *
Scd2StreamQuery(Scd2Spec *spec)
{
	StringInfoData q;
	int			i;

	initStringInfo(&q);
	appendStringInfo(&q, "SELECT * FROM (%s UNION ALL %s) x ORDER BY ", Scd2DimQuery(spec), Scd2SourceQuery(spec));
	for (i = 0; i < spec->nkey; i++)
	{
		appendStringInfo(&q, "%sx.k%d", i ? ", " : "", i);
		if (OidIsValid(spec->key[i].collation))
			appendStringInfoString(&q, " COLLATE \"C\"");
	}
	appendStringInfoString(&q, ", x.t, x.src");
	return q.data;
}

/*
 * UPDATE of changed versions from arrays: sk, from, to, current,
 * tracked..., type1..., and for a plain table ctid: the version is found by
 * its tid (no index probe; the lock keeps other writers away, and no
 * version is written twice in a merge), its surrogate key checked.
 */
static char *
Scd2UpdateSql(Scd2Spec *spec, int *nargs)
{
	StringInfoData q;
	int			i;
	int			n = 4 + spec->ntracked + spec->ntype1;

	initStringInfo(&q);
	appendStringInfo(&q, "UPDATE %s d SET valid_from = u.vf, valid_to = u.vt, is_current = u.cur", spec->dimname);
	for (i = 0; i < spec->ntracked; i++)
		appendStringInfo(&q, ", %s = u.c%d::%s", quote_identifier(spec->tracked[i].name), i,
						 spec->tracked[i].typname);
	for (i = 0; i < spec->ntype1; i++)
		appendStringInfo(&q, ", %s = u.c%d::%s", quote_identifier(spec->type1[i].name),
						 spec->ntracked + i, spec->type1[i].typname);
	appendStringInfoString(&q, " FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), "
						   "pg_catalog.unnest($2::pg_catalog.timestamptz[]), "
						   "pg_catalog.unnest($3::pg_catalog.timestamptz[]), pg_catalog.unnest($4::pg_catalog.bool[])");
	for (i = 4; i < n; i++)
		appendStringInfo(&q, ", pg_catalog.unnest($%d::pg_catalog.text[])", i + 1);
	if (spec->by_tid)
		appendStringInfo(&q, ", pg_catalog.unnest($%d::pg_catalog.tid[])", n + 1);
	appendStringInfoString(&q, ") AS u(sk, vf, vt, cur");
	for (i = 4; i < n; i++)
		appendStringInfo(&q, ", c%d", i - 4);
	if (spec->by_tid)
		appendStringInfo(&q, ", tid) WHERE d.ctid = u.tid AND d.%s = u.sk", quote_identifier(spec->sk));
	else
		appendStringInfo(&q, ") WHERE d.%s = u.sk", quote_identifier(spec->sk));
	*nargs = n + (spec->by_tid ? 1 : 0);
	return q.data;
}

/* INSERT of new versions from arrays: key..., tracked..., type1..., from, to, current. */
static char *
Scd2InsertSql(Scd2Spec *spec, int *nargs)
{
	StringInfoData q;
	int			i;
	int			nv = spec->nkey + spec->ntracked + spec->ntype1;

	initStringInfo(&q);
	appendStringInfo(&q, "INSERT INTO %s (", spec->dimname);
	Scd2AppendKeyList(&q, spec, NULL, false);
	for (i = 0; i < spec->ntracked; i++)
		appendStringInfo(&q, ", %s", quote_identifier(spec->tracked[i].name));
	for (i = 0; i < spec->ntype1; i++)
		appendStringInfo(&q, ", %s", quote_identifier(spec->type1[i].name));
	appendStringInfoString(&q, ", valid_from, valid_to, is_current) SELECT ");
	for (i = 0; i < nv; i++)
	{
		Scd2Col    *c = i < spec->nkey ? &spec->key[i] :
			i < spec->nkey + spec->ntracked ? &spec->tracked[i - spec->nkey] :
			&spec->type1[i - spec->nkey - spec->ntracked];

		appendStringInfo(&q, "%su.c%d::%s", i ? ", " : "", i, c->typname);
	}
	appendStringInfoString(&q, ", u.vf, u.vt, u.cur FROM ROWS FROM (");
	for (i = 0; i < nv; i++)
		appendStringInfo(&q, "pg_catalog.unnest($%d::pg_catalog.text[]), ", i + 1);
	appendStringInfo(&q, "pg_catalog.unnest($%d::pg_catalog.timestamptz[]), "
					 "pg_catalog.unnest($%d::pg_catalog.timestamptz[]), pg_catalog.unnest($%d::pg_catalog.bool[])) AS u(",
					 nv + 1, nv + 2, nv + 3);
	for (i = 0; i < nv; i++)
		appendStringInfo(&q, "c%d, ", i);
	appendStringInfoString(&q, "vf, vt, cur)");
	*nargs = nv + 3;
	return q.data;
}

/* ---------------------------------------------------------------------
 * Pending writes
 * ---------------------------------------------------------------------
 */

static void
Scd2PendingInit(Scd2Pending *p, Scd2Spec *spec)
{
	char	   *sql;
	Oid		   *types;
	int			i;

	p->cxt = AllocSetContextCreate(CurrentMemoryContext, "scd2 pending", ALLOCSET_DEFAULT_SIZES);
	sql = Scd2UpdateSql(spec, &p->upd_nargs);
	types = palloc(sizeof(Oid) * p->upd_nargs);
	types[0] = INT8ARRAYOID;
	types[1] = TIMESTAMPTZARRAYOID;
	types[2] = TIMESTAMPTZARRAYOID;
	types[3] = BOOLARRAYOID;
	for (i = 4; i < p->upd_nargs; i++)
		types[i] = TEXTARRAYOID;
	if (spec->by_tid)
		types[p->upd_nargs - 1] = TIDARRAYOID;
	/*
	 * A generic plan: with the arrays' sizes known, the planner would hash
	 * the whole dimension to update a few hundred versions.
	 */
	p->upd_plan = SPI_prepare_cursor(sql, p->upd_nargs, types, CURSOR_OPT_GENERIC_PLAN);
	if (p->upd_plan == NULL)
		elog(ERROR, "could not prepare the scd2 update: %s", SPI_result_code_string(SPI_result));

	sql = Scd2InsertSql(spec, &p->ins_nargs);
	types = palloc(sizeof(Oid) * p->ins_nargs);
	for (i = 0; i < p->ins_nargs - 3; i++)
		types[i] = TEXTARRAYOID;
	types[i++] = TIMESTAMPTZARRAYOID;
	types[i++] = TIMESTAMPTZARRAYOID;
	types[i++] = BOOLARRAYOID;
	p->ins_plan = SPI_prepare(sql, p->ins_nargs, types);
	if (p->ins_plan == NULL)
		elog(ERROR, "could not prepare the scd2 insert: %s", SPI_result_code_string(SPI_result));

	p->upd = palloc0(sizeof(ArrayBuildState *) * p->upd_nargs);
	p->ins = palloc0(sizeof(ArrayBuildState *) * p->ins_nargs);
	p->nupd = p->nins = 0;
}

static void
Scd2Accum(Scd2Pending *p, ArrayBuildState **states, int i, Datum d, bool isnull, Oid elemtype)
{
	if (states[i] == NULL)
		states[i] = initArrayResult(elemtype, p->cxt, false);
	accumArrayResult(states[i], d, isnull, elemtype, p->cxt);
}

/* A column value as text in the pending context (for casts back in SQL). */
static Datum
Scd2Text(Scd2Pending *p, Scd2Col *c, Datum d, bool isnull)
{
	MemoryContext old;
	Datum		t;

	if (isnull)
		return (Datum) 0;
	old = MemoryContextSwitchTo(p->cxt);
	t = CStringGetTextDatum(OutputFunctionCall(&c->out, d));
	MemoryContextSwitchTo(old);
	return t;
}

/* Sends the pending arrays through one statement and resets them. */
static void
Scd2Execute(Scd2Pending *p, SPIPlanPtr plan, ArrayBuildState **states, int nargs, int nrows,
			int expect)
{
	Datum	   *values = palloc(sizeof(Datum) * nargs);
	char	   *nulls = palloc(sizeof(char) * nargs);
	int			i;
	int			rc;

	for (i = 0; i < nargs; i++)
	{
		values[i] = makeArrayResult(states[i], p->cxt);
		nulls[i] = ' ';
		states[i] = NULL;
	}
	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc != expect)
		elog(ERROR, "scd2 write failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != (uint64) nrows)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("dimension changed during the merge"),
				 errdetail("%d rows were to be written, " UINT64_FORMAT " were.", nrows, SPI_processed)));
	pfree(values);
	pfree(nulls);
}

static void
Scd2Flush(Scd2Pending *p)
{
	if (p->nupd > 0)
		Scd2Execute(p, p->upd_plan, p->upd, p->upd_nargs, p->nupd, SPI_OK_UPDATE);
	if (p->nins > 0)
		Scd2Execute(p, p->ins_plan, p->ins, p->ins_nargs, p->nins, SPI_OK_INSERT);
	p->nupd = p->nins = 0;
	MemoryContextReset(p->cxt);
}

/* Queues the final state of one version, new or changed. */
static void
Scd2Queue(Scd2Pending *p, Scd2Spec *spec, Datum *key, Scd2Version *v)
{
	int			nv = spec->ntracked + spec->ntype1;
	bool		current = TIMESTAMP_IS_NOEND(v->to);
	int			i;

	if (v->is_new)
	{
		int			a = 0;

		for (i = 0; i < spec->nkey; i++, a++)
			Scd2Accum(p, p->ins, a, Scd2Text(p, &spec->key[i], key[i], false), false, TEXTOID);
		for (i = 0; i < nv; i++, a++)
		{
			Scd2Col    *c = i < spec->ntracked ? &spec->tracked[i] : &spec->type1[i - spec->ntracked];

			Scd2Accum(p, p->ins, a, Scd2Text(p, c, v->vals[i], v->nulls[i]), v->nulls[i], TEXTOID);
		}
		Scd2Accum(p, p->ins, a++, TimestampTzGetDatum(v->from), false, TIMESTAMPTZOID);
		Scd2Accum(p, p->ins, a++, TimestampTzGetDatum(v->to), false, TIMESTAMPTZOID);
		Scd2Accum(p, p->ins, a++, BoolGetDatum(current), false, BOOLOID);
		p->nins++;
	}
	else
	{
		Scd2Accum(p, p->upd, 0, Int64GetDatum(v->sk), false, INT8OID);
		Scd2Accum(p, p->upd, 1, TimestampTzGetDatum(v->from), false, TIMESTAMPTZOID);
		Scd2Accum(p, p->upd, 2, TimestampTzGetDatum(v->to), false, TIMESTAMPTZOID);
		Scd2Accum(p, p->upd, 3, BoolGetDatum(current), false, BOOLOID);
		for (i = 0; i < nv; i++)
		{
			Scd2Col    *c = i < spec->ntracked ? &spec->tracked[i] : &spec->type1[i - spec->ntracked];

			Scd2Accum(p, p->upd, 4 + i, Scd2Text(p, c, v->vals[i], v->nulls[i]), v->nulls[i], TEXTOID);
		}
		if (spec->by_tid)
			Scd2Accum(p, p->upd, 4 + nv, PointerGetDatum(&v->tid), false, TIDOID);
		p->nupd++;
	}
	if (p->nupd >= SCD2_FLUSH_ROWS || p->nins >= SCD2_FLUSH_ROWS)
		Scd2Flush(p);
}

/* ---------------------------------------------------------------------
 * Replaying one key
 * ---------------------------------------------------------------------
 */

/* NULL-safe equality of one column's values. */
static bool
Scd2ValueEq(Scd2Col *c, Datum a, bool anull, Datum b, bool bnull)
{
	if (anull || bnull)
		return anull && bnull;
	if (c->has_eq)
		return DatumGetBool(FunctionCall2Coll(&c->eq, c->collation, a, b));
	return datum_image_eq(a, b, c->typbyval, c->typlen);
}

/* Whether two value vectors agree on the tracked columns. */
static bool
Scd2TrackedEq(Scd2Spec *spec, Datum *av, bool *an, Datum *bv, bool *bn)
{
	int			i;

	for (i = 0; i < spec->ntracked; i++)
		if (!Scd2ValueEq(&spec->tracked[i], av[i], an[i], bv[i], bn[i]))
			return false;
	return true;
}

static Scd2Version *
Scd2InsertVersion(Scd2Version **vs, int *n, int *cap, int at, Scd2Row *s, TimestampTz from,
				  TimestampTz to, int nvals)
{
	Scd2Version *v;

	if (*n == *cap)
	{
		*cap *= 2;
		*vs = repalloc(*vs, sizeof(Scd2Version) * *cap);
	}
	memmove(&(*vs)[at + 1], &(*vs)[at], sizeof(Scd2Version) * (*n - at));
	(*n)++;
	v = &(*vs)[at];
	memset(v, 0, sizeof(*v));
	v->is_new = true;
	v->from = from;
	v->to = to;
	v->vals = palloc(sizeof(Datum) * Max(nvals, 1));
	v->nulls = palloc(sizeof(bool) * Max(nvals, 1));
	memcpy(v->vals, s->vals, sizeof(Datum) * nvals);
	memcpy(v->nulls, s->nulls, sizeof(bool) * nvals);
	return v;
}

/*
 * Replays one key's source rows over its versions (see the file header):
 * returns the key's versions afterwards (*out, in the current memory
 * context) and their number; counts unchanged source rows and type-1
 * updates. rows are in stream order. Scd2QueueKey writes the result.
 */
static int
Scd2ReplayKey(Scd2Spec *spec, Datum *key, Scd2Row *rows, int nrows, Scd2Counts *counts,
			  Scd2Version **out)
{
	int			nvals = spec->ntracked + spec->ntype1;
	int			cap = Max(nrows, 4);
	Scd2Version *vs;
	int			n = 0;
	Scd2Row    *last = NULL;
	int			r;
	int			i;

	/*
	 * The common case first, without allocating: one current version and
	 * source rows from its start on, at distinct times, that repeat its
	 * values (tracked and, for the latest, type-1).
	 */
	if (nrows >= 2 && !rows[0].is_source && rows[0].is_current && TIMESTAMP_IS_NOEND(rows[0].valid_to) &&
		rows[1].is_source && rows[1].t >= rows[0].t)
	{
		for (r = 1; r < nrows; r++)
			if (!rows[r].is_source || (r > 1 && rows[r].t == rows[r - 1].t) ||
				!Scd2TrackedEq(spec, rows[0].vals, rows[0].nulls, rows[r].vals, rows[r].nulls))
				break;
		for (i = 0; r == nrows && i < spec->ntype1; i++)
		{
			int			k = spec->ntracked + i;

			if (!Scd2ValueEq(&spec->type1[i], rows[0].vals[k], rows[0].nulls[k],
							 rows[nrows - 1].vals[k], rows[nrows - 1].nulls[k]))
				r = -1;
		}
		if (r == nrows)
		{
			counts->unchanged += nrows - 1;
			*out = NULL;
			return 0;
		}
	}

	vs = palloc(sizeof(Scd2Version) * cap);
	/* The existing versions, by valid_from. */
	for (r = 0; r < nrows; r++)
	{
		Scd2Version *v;

		if (rows[r].is_source)
			continue;
		v = &vs[n++];
		memset(v, 0, sizeof(*v));
		v->sk = rows[r].sk;
		v->tid = rows[r].tid;
		v->from = v->orig_from = rows[r].t;
		v->to = v->orig_to = rows[r].valid_to;
		v->orig_current = rows[r].is_current;
		v->vals = rows[r].vals;
		v->nulls = rows[r].nulls;
	}

	for (r = 0; r < nrows; r++)
	{
		Scd2Row    *s = &rows[r];
		TimestampTz t = s->t;
		int			next;

		if (!s->is_source)
			continue;
		if (last != NULL && last->t == t)
			ereport(ERROR,
					(errcode(ERRCODE_CARDINALITY_VIOLATION),
					 errmsg("source has more than one row for a natural key at one effective time"),
					 errdetail("Key %s at %s.", OutputFunctionCall(&spec->key[0].out, key[0]),
							   timestamptz_to_str(t)),
					 errhint("Deduplicate the source, or give scd2_merge an effective_column.")));
		last = s;

		/* The first version starting after t; the one before may hold t. */
		for (next = n; next > 0 && vs[next - 1].from > t; next--)
			;
		if (next > 0 && t < vs[next - 1].to)
		{
			Scd2Version *v = &vs[next - 1];

			if (Scd2TrackedEq(spec, v->vals, v->nulls, s->vals, s->nulls))
				counts->unchanged++;
			else if (v->from == t)
			{
				/* A correction of the version starting exactly then. */
				if (!v->is_new)
				{
					Datum	   *nv = palloc(sizeof(Datum) * Max(nvals, 1));
					bool	   *nn = palloc(sizeof(bool) * Max(nvals, 1));

					memcpy(nv, v->vals, sizeof(Datum) * nvals);
					memcpy(nn, v->nulls, sizeof(bool) * nvals);
					v->vals = nv;
					v->nulls = nn;
				}
				memcpy(v->vals, s->vals, sizeof(Datum) * spec->ntracked);
				memcpy(v->nulls, s->nulls, sizeof(bool) * spec->ntracked);
				v->values_changed = true;
			}
			else if (next < n && Scd2TrackedEq(spec, vs[next].vals, vs[next].nulls, s->vals, s->nulls))
			{
				/* The following version already has these values: it starts earlier. */
				vs[next].from = t;
				v->to = t;
			}
			else
			{
				TimestampTz end = v->to;

				v->to = t;
				(void) Scd2InsertVersion(&vs, &n, &cap, next, s, t, end, nvals);
			}
		}
		else if (next < n && Scd2TrackedEq(spec, vs[next].vals, vs[next].nulls, s->vals, s->nulls))
		{
			/* Before (or between) versions, same values as the one after. */
			vs[next].from = t;
		}
		else
		{
			TimestampTz end;

			if (next < n)
				end = vs[next].from;
			else
				TIMESTAMP_NOEND(end);
			(void) Scd2InsertVersion(&vs, &n, &cap, next, s, t, end, nvals);
		}
	}

	/* Type-1 columns: the latest source row's values, on every version. */
	if (spec->ntype1 > 0 && last != NULL)
	{
		for (i = 0; i < n; i++)
		{
			Scd2Version *v = &vs[i];
			int			c;
			bool		differs = false;

			for (c = 0; c < spec->ntype1; c++)
			{
				int			k = spec->ntracked + c;

				if (!Scd2ValueEq(&spec->type1[c], v->vals[k], v->nulls[k], last->vals[k], last->nulls[k]))
					differs = true;
			}
			if (!differs)
				continue;
			if (!v->is_new && !v->values_changed)
			{
				Datum	   *nv = palloc(sizeof(Datum) * nvals);
				bool	   *nn = palloc(sizeof(bool) * nvals);

				memcpy(nv, v->vals, sizeof(Datum) * nvals);
				memcpy(nn, v->nulls, sizeof(bool) * nvals);
				v->vals = nv;
				v->nulls = nn;
			}
			memcpy(&v->vals[spec->ntracked], &last->vals[spec->ntracked], sizeof(Datum) * spec->ntype1);
			memcpy(&v->nulls[spec->ntracked], &last->nulls[spec->ntracked], sizeof(bool) * spec->ntype1);
			if (!v->is_new)
			{
				v->type1_changed = true;
				counts->type1_updated++;
			}
		}
	}

	*out = vs;
	return n;
}

/* Whether a replayed version must be written (inserted or updated). */
static bool
Scd2VersionChanged(Scd2Version *v)
{
	return v->is_new || v->to != v->orig_to || v->from != v->orig_from || v->values_changed ||
		v->type1_changed || v->orig_current != TIMESTAMP_IS_NOEND(v->to);
}

/* Counts and queues the writes of one replayed key. */
static void
Scd2QueueKey(Scd2Spec *spec, Scd2Pending *pending, Datum *key, Scd2Version *vs, int n,
			 Scd2Counts *counts)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		Scd2Version *v = &vs[i];

		if (v->is_new)
			counts->inserted++;
		else
		{
			if (v->to != v->orig_to)
				counts->closed++;
			if (v->from != v->orig_from || v->values_changed)
				counts->corrected++;
		}
		if (Scd2VersionChanged(v))
			Scd2Queue(pending, spec, key, v);
	}
}

/* ---------------------------------------------------------------------
 * Reading the versions and source rows
 *
 * Two strategies feed the replay the same groups (one key's versions and
 * source rows, in stream order):
 *	hashed	the source rows are read into a hash table of groups by key,
 *			the affected versions are added to theirs, each group is sorted
 *			on its own (most hold a version and a source row) and replayed,
 *			and the keys that changed are queued in key order. No sort of
 *			the whole stream, but every affected key in memory at once: used
 *			while that stays under maintenance_work_mem and every key column
 *			has a hash function.
 *	sorted	one query streams versions and source rows ordered by key and
 *			time (the database sorts, spilling to disk as it must); each key
 *			is replayed and queued as soon as its group is complete.
 * Both queue the writes in key order, so surrogate keys are handed out in
 * the same order whichever ran.
 * ---------------------------------------------------------------------
 */

/* One key's rows while they are gathered. */
typedef struct Scd2Group
{
	Datum	   *key;			/* the simplehash key; copied */
	uint32		hash;
	char		status;			/* simplehash's */
	int			nrows;
	int			caprows;
	Scd2Row    *rows;
} Scd2Group;

/* A replayed key whose writes wait to be queued in key order. */
typedef struct Scd2Changed
{
	Datum	   *key;
	Scd2Version *vs;
	int			n;
} Scd2Changed;

/* Compares two keys, column by column, byte-wise for collatable types. */
static int
Scd2CompareKey(Scd2Spec *spec, Datum *a, Datum *b)
{
	int			i;

	for (i = 0; i < spec->nkey; i++)
	{
		Oid			coll = OidIsValid(spec->key[i].collation) ? C_COLLATION_OID : InvalidOid;
		int			c = DatumGetInt32(FunctionCall2Coll(&spec->key[i].cmp, coll, a[i], b[i]));

		if (c != 0)
			return c;
	}
	return 0;
}

/*
 * Hash of a key, consistent with Scd2CompareKey: each column's hash
 * function under the same collation.
 */
static uint32
Scd2HashKey(Scd2Spec *spec, Datum *key)
{
	uint32		h = 0;
	int			i;

	for (i = 0; i < spec->nkey; i++)
	{
		Oid			coll = OidIsValid(spec->key[i].collation) ? C_COLLATION_OID : InvalidOid;

		h = hash_combine(h, DatumGetUInt32(FunctionCall1Coll(&spec->key[i].hash, coll, key[i])));
	}
	return h;
}

#define SH_PREFIX scd2grp
#define SH_ELEMENT_TYPE Scd2Group
#define SH_KEY_TYPE Datum *
#define SH_KEY key
#define SH_HASH_KEY(tb, k) Scd2HashKey((Scd2Spec *) (tb)->private_data, k)
#define SH_EQUAL(tb, a, b) (Scd2CompareKey((Scd2Spec *) (tb)->private_data, a, b) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/*
 * Deforms one stream row (a version or a source row) into values/isnull
 * (scratch arrays of desc->natts) and points rowkey at its key datums
 * (valid while the tuple is). Returns whether it is a source row.
 */
static bool
Scd2DeformRow(Scd2Spec *spec, HeapTuple tup, TupleDesc desc, Datum *values, bool *isnull,
			  Datum *rowkey)
{
	int			k;

	heap_deform_tuple(tup, desc, values, isnull);
	for (k = 0; k < spec->nkey; k++)
	{
		if (isnull[1 + k])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("natural key column \"%s\" is null in a source row", spec->key[k].name)));
		rowkey[k] = values[1 + k];
	}
	return DatumGetInt32(values[0]) == 1;
}

/*
 * Fills *row from a deformed stream row, its values copied into the
 * current memory context.
 */
static void
Scd2FillRow(Scd2Spec *spec, Datum *values, bool *isnull, bool is_source, Scd2Row *row)
{
	int			nvals = spec->ntracked + spec->ntype1;
	int			tcol = spec->nkey + 1;	/* 0-based: src, key..., t */
	int			k;

	row->is_source = is_source;
	if (isnull[tcol])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s is null in a %s row", is_source ? "effective time" : "valid_from",
						is_source ? "source" : "dimension")));
	row->t = DatumGetTimestampTz(values[tcol]);
	if (is_source && TIMESTAMP_IS_NOEND(row->t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("effective time of a source row is infinity")));
	/* One chunk for both arrays: a merge reads many rows. */
	row->vals = palloc(MAXALIGN(sizeof(Datum) * Max(nvals, 1)) + sizeof(bool) * Max(nvals, 1));
	row->nulls = (bool *) ((char *) row->vals + MAXALIGN(sizeof(Datum) * Max(nvals, 1)));
	for (k = 0; k < nvals; k++)
	{
		Scd2Col    *c = k < spec->ntracked ? &spec->tracked[k] : &spec->type1[k - spec->ntracked];

		row->nulls[k] = isnull[tcol + 1 + k];
		row->vals[k] = row->nulls[k] ? (Datum) 0 : datumCopy(values[tcol + 1 + k], c->typbyval, c->typlen);
	}
	row->sk = 0;
	row->valid_to = 0;
	row->is_current = false;
	ItemPointerSetInvalid(&row->tid);
	if (!is_source)
	{
		if (isnull[tcol + 1 + nvals])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("surrogate key \"%s\" is null in a dimension row", spec->sk)));
		row->sk = DatumGetInt64(values[tcol + 1 + nvals]);
		if (isnull[tcol + 2 + nvals])
			TIMESTAMP_NOEND(row->valid_to);
		else
			row->valid_to = DatumGetTimestampTz(values[tcol + 2 + nvals]);
		row->is_current = !isnull[tcol + 3 + nvals] && DatumGetBool(values[tcol + 3 + nvals]);
		if (isnull[tcol + 4 + nvals])
			ItemPointerSetInvalid(&row->tid);
		else
			row->tid = *(ItemPointer) DatumGetPointer(values[tcol + 4 + nvals]);
	}
}

/* A copy of a key in the current memory context. */
static Datum *
Scd2CopyKey(Scd2Spec *spec, Datum *key)
{
	Datum	   *copy = palloc(sizeof(Datum) * spec->nkey);
	int			k;

	for (k = 0; k < spec->nkey; k++)
		copy[k] = datumCopy(key[k], spec->key[k].typbyval, spec->key[k].typlen);
	return copy;
}

/* Appends a row slot to a group; returns it. */
static Scd2Row *
Scd2GroupAdd(Scd2Group *g)
{
	if (g->nrows == g->caprows)
	{
		g->caprows = g->caprows ? g->caprows * 2 : 4;
		g->rows = g->rows ? repalloc(g->rows, sizeof(Scd2Row) * g->caprows) :
			palloc(sizeof(Scd2Row) * g->caprows);
	}
	return &g->rows[g->nrows++];
}

/* Stream order within a key: by time, versions first on ties. */
static int
Scd2RowCmp(const void *a, const void *b)
{
	const Scd2Row *x = a;
	const Scd2Row *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (int) x->is_source - (int) y->is_source;
}

static int
Scd2ChangedCmp(const void *a, const void *b, void *arg)
{
	return Scd2CompareKey((Scd2Spec *) arg, ((const Scd2Changed *) a)->key, ((const Scd2Changed *) b)->key);
}

/* Whether every natural key column has a hash function (hashed strategy). */
static bool
Scd2KeysHashable(Scd2Spec *spec)
{
	int			i;

	for (i = 0; i < spec->nkey; i++)
		if (!OidIsValid(spec->key[i].hash.fn_oid))
			return false;
	return true;
}

/*
 * Fetches the next rows of a stream cursor (NULL at its end); *values and
 * *isnull are made, once, scratch arrays of the rows' width.
 */
static SPITupleTable *
Scd2Fetch(Portal portal, Datum **values, bool **isnull)
{
	SPI_cursor_fetch(portal, true, SCD2_FETCH_ROWS);
	if (SPI_processed == 0)
		return NULL;
	if (*values == NULL)
	{
		*values = palloc(sizeof(Datum) * SPI_tuptable->tupdesc->natts);
		*isnull = palloc(sizeof(bool) * SPI_tuptable->tupdesc->natts);
	}
	return SPI_tuptable;
}

/*
 * Reads the rows of one query into the groups: source rows make their
 * group, versions join an existing one (a version whose key no source row
 * has byte-wise is left out: nothing would change it). Returns false as
 * soon as the groups outgrow "budget" bytes.
 */
static bool
Scd2HashRead(Scd2Spec *spec, const char *sql, bool is_source, scd2grp_hash *groups,
			 MemoryContext cxt, Size budget)
{
	Portal		portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, false, 0);
	Datum	   *rowkey = palloc(sizeof(Datum) * spec->nkey);
	Datum	   *values = NULL;
	bool	   *isnull = NULL;
	bool		fits = true;

	SPITupleTable *tt;

	while (fits && (tt = Scd2Fetch(portal, &values, &isnull)) != NULL)
	{
		uint64		i;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		for (i = 0; i < SPI_processed; i++)
		{
			Scd2Group  *g;
			bool		found;

			(void) Scd2DeformRow(spec, tt->vals[i], tt->tupdesc, values, isnull, rowkey);
			if (is_source)
			{
				g = scd2grp_insert(groups, rowkey, &found);
				if (!found)
				{
					g->key = Scd2CopyKey(spec, rowkey);
					g->nrows = g->caprows = 0;
					g->rows = NULL;
				}
			}
			else if ((g = scd2grp_lookup(groups, rowkey)) == NULL)
				continue;
			Scd2FillRow(spec, values, isnull, is_source, Scd2GroupAdd(g));
		}
		MemoryContextSwitchTo(old);
		SPI_freetuptable(tt);
		fits = MemoryContextMemAllocated(cxt, true) <= budget;
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	return fits;
}

/*
 * Reads the affected versions of a plain dimension with a heap scan
 * instead of the semi-join query: each version's key is hashed and tested
 * against a bit filter of the source keys (two bits per key in 16 bits a
 * key: about 1.4% of the other versions pass) before the group table is
 * probed, which keeps most probes in cache. The caller holds the lock that
 * keeps writers away; the snapshot is the one a query would take now.
 * Returns false as soon as the groups outgrow "budget" bytes.
 */
static bool
Scd2HashScanDim(Scd2Spec *spec, scd2grp_hash *groups, MemoryContext cxt, Size budget)
{
	int			nvals = spec->ntracked + spec->ntype1;
	int			ncols = spec->nkey + nvals + 6;
	Datum	   *values = palloc(sizeof(Datum) * ncols);
	bool	   *isnull = palloc(sizeof(bool) * ncols);
	Datum	   *rowkey = &values[1];
	uint64		nbits = 64;
	uint64	   *bits;
	scd2grp_iterator it;
	Scd2Group  *g;
	Relation	rel;
	Snapshot	snap;
	TableScanDesc scan;
	TupleTableSlot *slot;
	MemoryContext old;
	uint64		nscanned = 0;
	uint64		nmatched = 0;
	bool		fits = true;

	while (nbits < (uint64) groups->members * 16)
		nbits <<= 1;
	bits = palloc_extended(nbits / 8, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	scd2grp_start_iterate(groups, &it);
	while ((g = scd2grp_iterate(groups, &it)) != NULL)
	{
		uint64		a = g->hash & (nbits - 1);
		uint64		b = murmurhash32(g->hash) & (nbits - 1);

		bits[a / 64] |= UINT64CONST(1) << (a % 64);
		bits[b / 64] |= UINT64CONST(1) << (b % 64);
	}

	rel = table_open(spec->dim, AccessShareLock);
	snap = RegisterSnapshot(GetTransactionSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	slot = table_slot_create(rel, NULL);
	values[0] = Int32GetDatum(0);
	isnull[0] = false;
	while (fits && table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		uint32		h = 0;
		uint64		a;
		uint64		b;
		bool		skip = false;
		int			k;

		for (k = 0; k < spec->nkey && !skip; k++)
		{
			Oid			coll = OidIsValid(spec->key[k].collation) ? C_COLLATION_OID : InvalidOid;

			rowkey[k] = slot_getattr(slot, spec->key[k].attnum, &isnull[1 + k]);
			/* A NULL key matches no source row (and no IN list). */
			if (isnull[1 + k])
				skip = true;
			else
				h = hash_combine(h, DatumGetUInt32(FunctionCall1Coll(&spec->key[k].hash, coll, rowkey[k])));
		}
		if ((++nscanned & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		if (skip)
			continue;
		a = h & (nbits - 1);
		b = murmurhash32(h) & (nbits - 1);
		if ((bits[a / 64] & (UINT64CONST(1) << (a % 64))) == 0 ||
			(bits[b / 64] & (UINT64CONST(1) << (b % 64))) == 0)
			continue;
		if ((g = scd2grp_lookup_hash(groups, rowkey, h)) == NULL)
			continue;

		/* The columns of the dimension query, in its order. */
		values[1 + spec->nkey] = slot_getattr(slot, spec->from_attnum, &isnull[1 + spec->nkey]);
		for (k = 0; k < nvals; k++)
		{
			Scd2Col    *c = k < spec->ntracked ? &spec->tracked[k] : &spec->type1[k - spec->ntracked];

			values[2 + spec->nkey + k] = slot_getattr(slot, c->attnum, &isnull[2 + spec->nkey + k]);
		}
		k = 2 + spec->nkey + nvals;
		values[k] = slot_getattr(slot, spec->sk_attnum, &isnull[k]);
		if (spec->sk_is_int4 && !isnull[k])
			values[k] = Int64GetDatum((int64) DatumGetInt32(values[k]));
		values[k + 1] = slot_getattr(slot, spec->to_attnum, &isnull[k + 1]);
		values[k + 2] = slot_getattr(slot, spec->current_attnum, &isnull[k + 2]);
		values[k + 3] = PointerGetDatum(&slot->tts_tid);
		isnull[k + 3] = false;
		old = MemoryContextSwitchTo(cxt);
		Scd2FillRow(spec, values, isnull, false, Scd2GroupAdd(g));
		MemoryContextSwitchTo(old);
		if ((++nmatched & 0x3FF) == 0)
			fits = MemoryContextMemAllocated(cxt, true) <= budget;
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	pfree(bits);
	return fits && MemoryContextMemAllocated(cxt, true) <= budget;
}

/*
 * The hashed strategy (see above). Returns false, having queued nothing,
 * when the affected keys do not fit in maintenance_work_mem.
 */
static bool
Scd2RunHashed(Scd2Spec *spec, Scd2Pending *pending, Scd2Counts *counts)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "scd2 groups", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	Size		budget = (Size) maintenance_work_mem * 1024;
	scd2grp_hash *groups = scd2grp_create(cxt, 1024, spec);
	scd2grp_iterator it;
	Scd2Group  *g;
	Scd2Changed *changed;
	int			nchanged = 0;
	int			capchanged = 1024;
	Scd2Counts	local;
	int			i;

	if (!Scd2HashRead(spec, Scd2SourceQuery(spec), true, groups, cxt, budget) ||
		!(spec->scannable ? Scd2HashScanDim(spec, groups, cxt, budget) :
		  Scd2HashRead(spec, Scd2DimQuery(spec), false, groups, cxt, budget)))
	{
		MemoryContextDelete(cxt);
		return false;
	}

	old = MemoryContextSwitchTo(cxt);
	memset(&local, 0, sizeof(local));
	changed = palloc(sizeof(Scd2Changed) * capchanged);
	scd2grp_start_iterate(groups, &it);
	while ((g = scd2grp_iterate(groups, &it)) != NULL)
	{
		Scd2Version *vs;
		int			n;
		int			v;

		if (g->nrows > 1)
			qsort(g->rows, g->nrows, sizeof(Scd2Row), Scd2RowCmp);
		n = Scd2ReplayKey(spec, g->key, g->rows, g->nrows, &local, &vs);
		for (v = 0; v < n && !Scd2VersionChanged(&vs[v]); v++)
			;
		if (v == n)
			continue;
		if (nchanged == capchanged)
		{
			capchanged *= 2;
			changed = repalloc_huge(changed, sizeof(Scd2Changed) * capchanged);
		}
		changed[nchanged].key = g->key;
		changed[nchanged].vs = vs;
		changed[nchanged].n = n;
		nchanged++;
	}
	MemoryContextSwitchTo(old);

	qsort_arg(changed, nchanged, sizeof(Scd2Changed), Scd2ChangedCmp, spec);
	for (i = 0; i < nchanged; i++)
		Scd2QueueKey(spec, pending, changed[i].key, changed[i].vs, changed[i].n, &local);
	/* Queued writes were converted to text in the pending context. */
	Scd2Flush(pending);
	MemoryContextDelete(cxt);
	counts->inserted += local.inserted;
	counts->closed += local.closed;
	counts->type1_updated += local.type1_updated;
	counts->unchanged += local.unchanged;
	counts->corrected += local.corrected;
	return true;
}

/* Sorted strategy: replays and queues a complete key, then forgets it. */
static void
Scd2SortedKeyDone(Scd2Spec *spec, Scd2Pending *pending, Scd2Group *group, MemoryContext group_cxt,
				  Scd2Counts *counts)
{
	MemoryContext old = MemoryContextSwitchTo(group_cxt);
	Scd2Version *vs;
	int			n;

	n = Scd2ReplayKey(spec, group->key, group->rows, group->nrows, counts, &vs);
	MemoryContextSwitchTo(old);
	Scd2QueueKey(spec, pending, group->key, vs, n, counts);
	MemoryContextReset(group_cxt);
	memset(group, 0, sizeof(*group));
}

/* The sorted strategy (see above). */
static void
Scd2RunSorted(Scd2Spec *spec, Scd2Pending *pending, Scd2Counts *counts)
{
	Portal		portal;
	MemoryContext group_cxt;
	MemoryContext old;
	Scd2Group	group;
	Datum	   *rowkey = palloc(sizeof(Datum) * spec->nkey);
	Datum	   *values = NULL;
	bool	   *isnull = NULL;
	SPITupleTable *tt;

	memset(&group, 0, sizeof(group));
	group_cxt = AllocSetContextCreate(CurrentMemoryContext, "scd2 group", ALLOCSET_DEFAULT_SIZES);
	portal = SPI_cursor_open_with_args(NULL, Scd2StreamQuery(spec), 0, NULL, NULL, NULL, false, 0);
	while ((tt = Scd2Fetch(portal, &values, &isnull)) != NULL)
	{
		uint64		i;
		uint64		nfetched = SPI_processed;

		/* Flushes below run statements: SPI_tuptable/SPI_processed change. */
		for (i = 0; i < nfetched; i++)
		{
			bool		is_source = Scd2DeformRow(spec, tt->vals[i], tt->tupdesc, values, isnull, rowkey);

			if (group.key != NULL && Scd2CompareKey(spec, group.key, rowkey) != 0)
				Scd2SortedKeyDone(spec, pending, &group, group_cxt, counts);
			old = MemoryContextSwitchTo(group_cxt);
			if (group.key == NULL)
				group.key = Scd2CopyKey(spec, rowkey);
			Scd2FillRow(spec, values, isnull, is_source, Scd2GroupAdd(&group));
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(tt);
		CHECK_FOR_INTERRUPTS();
	}
	if (group.key != NULL)
		Scd2SortedKeyDone(spec, pending, &group, group_cxt, counts);
	SPI_cursor_close(portal);
	Scd2Flush(pending);
	MemoryContextDelete(group_cxt);
}

/* Reads, replays and writes the merge. */
static void
Scd2Run(Scd2Spec *spec, Scd2Counts *counts)
{
	Scd2Pending pending;

	Scd2PendingInit(&pending, spec);
	if (!Scd2KeysHashable(spec))
		elog(DEBUG1, "scd2_merge: a natural key column has no hash function; merging by a sorted stream");
	else if (Scd2RunHashed(spec, &pending, counts))
		return;
	else
		elog(DEBUG1, "scd2_merge: the affected keys outgrow maintenance_work_mem; merging by a sorted stream");
	Scd2RunSorted(spec, &pending, counts);
}

/*
 * Records the dimension in camperso.dimensions (for lookup_sk) when its
 * entry is missing or different, as the extension's owner: the caller
 * already proved it may write the dimension.
 */
static void
Scd2Register(Scd2Spec *spec, ArrayType *keys, ArrayType *tracked, ArrayType *type1)
{
	Oid			save_userid;
	int			save_sec;
	Oid			types[5] = {REGCLASSOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int			rc;

	values[0] = ObjectIdGetDatum(spec->dim);
	values[1] = PointerGetDatum(keys);
	values[2] = PointerGetDatum(tracked);
	values[3] = PointerGetDatum(type1);
	if (spec->effective)
		values[4] = CStringGetTextDatum(spec->effective);
	else
		nulls[4] = 'n';

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(ModelExtensionOwner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	rc = SPI_execute_with_args(
							   "INSERT INTO camperso.dimensions AS d (dim, natural_key, scd2, tracked, type1, effective_column) "
							   "VALUES ($1, $2, true, $3, $4, $5) "
							   "ON CONFLICT (dim) DO UPDATE SET natural_key = EXCLUDED.natural_key, scd2 = true, "
							   "tracked = EXCLUDED.tracked, type1 = EXCLUDED.type1, "
							   "effective_column = EXCLUDED.effective_column, updated_at = pg_catalog.now() "
							   "WHERE (d.natural_key, d.scd2, d.tracked, d.type1, d.effective_column) IS DISTINCT FROM "
							   "(EXCLUDED.natural_key, true, EXCLUDED.tracked, EXCLUDED.type1, EXCLUDED.effective_column)",
							   5, types, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record dimension: %s", SPI_result_code_string(rc));
	SetUserIdAndSecContext(save_userid, save_sec);
}

/*
 * camperso.scd2_merge(dim regclass, source regclass, natural_key text[],
 * tracked text[], type1 text[] DEFAULT '{}', effective_column text DEFAULT
 * NULL, OUT inserted, OUT closed, OUT type1_updated, OUT unchanged, OUT
 * corrected): see the file header.
 */
Datum
camperso_scd2_merge(PG_FUNCTION_ARGS)
{
	ArrayType  *keys_arr;
	ArrayType  *tracked_arr;
	ArrayType  *type1_arr;
	char	   *effective = NULL;
	Scd2Spec	spec;
	Scd2Counts	counts;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	static const char *const argnames[] = {"dim", "source", "natural_key", "tracked"};
	int			i;

	for (i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", argnames[i])));
	keys_arr = PG_GETARG_ARRAYTYPE_P(2);
	tracked_arr = PG_GETARG_ARRAYTYPE_P(3);
	type1_arr = PG_ARGISNULL(4) ? construct_empty_array(TEXTOID) : PG_GETARG_ARRAYTYPE_P(4);
	if (!PG_ARGISNULL(5))
		effective = text_to_cstring(PG_GETARG_TEXT_PP(5));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	Scd2BuildSpec(PG_GETARG_OID(0), PG_GETARG_OID(1),
				  Scd2NameList(keys_arr, "natural_key"),
				  Scd2NameList(tracked_arr, "tracked"),
				  Scd2NameList(type1_arr, "type1"),
				  effective, &spec);

	memset(&counts, 0, sizeof(counts));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	Scd2Run(&spec, &counts);
	Scd2Register(&spec, keys_arr, tracked_arr, type1_arr);
	SPI_finish();

	values[0] = Int64GetDatum(counts.inserted);
	values[1] = Int64GetDatum(counts.closed);
	values[2] = Int64GetDatum(counts.type1_updated);
	values[3] = Int64GetDatum(counts.unchanged);
	values[4] = Int64GetDatum(counts.corrected);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
