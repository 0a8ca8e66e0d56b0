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
 *	1. One query streams the affected dimension versions and the source rows
 *	   together, ordered by natural key, then time (a version's valid_from,
 *	   a source row's effective time), versions first on ties. Only keys
 *	   present in the source are read from the dimension (a semi-join).
 *	2. Each key's group is replayed in memory: every source row, in
 *	   effective-time order, lands in the version holding its time. Equal
 *	   tracked values (NULL-safe): nothing. Otherwise the version is split
 *	   at that time (closed there, a new version runs to the old end), or,
 *	   when the next version already has these values, that one is extended
 *	   back; a row at exactly a version's start corrects it in place; a row
 *	   before the first version opens a new first version (or extends the
 *	   first back). Type-1 columns take the latest source row's values on
 *	   every version of the key.
 *	3. Changed versions and new versions are applied set-based: one UPDATE
 *	   joined on the surrogate key and one INSERT, each fed by arrays of up
 *	   to SCD2_FLUSH_ROWS rows. Values travel as text and are cast back to
 *	   the column types, so any type with text I/O works.
 * Re-running a source lands every row in a version that already has its
 * values: nothing changes.
 *
 * Locking: the dimension is locked SHARE ROW EXCLUSIVE for the rest of the
 * transaction, before it is read, so merges into one dimension serialise
 * (readers are not blocked) and each sees the previous one's result under
 * READ COMMITTED.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
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
	FmgrInfo	out;
	int16		typlen;
	bool		typbyval;
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
} Scd2Row;

/* A version of one key while its group is replayed. */
typedef struct Scd2Version
{
	bool		is_new;
	int64		sk;
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
		c->typname = format_type_extended(da->atttypid, da->atttypmod,
										  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
		getTypeOutputInfo(da->atttypid, &outfn, &varlena);
		fmgr_info(outfn, &c->out);

		tc = lookup_type_cache(getBaseType(da->atttypid),
							   TYPECACHE_EQ_OPR_FINFO | TYPECACHE_CMP_PROC_FINFO);
		if (is_key && !OidIsValid(tc->cmp_proc_finfo.fn_oid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("natural key column \"%s\" has type %s, which has no ordering",
							name, format_type_be(da->atttypid)),
					 errhint("Natural keys need a type with a default btree operator class.")));
		if (is_key)
			c->cmp = tc->cmp_proc_finfo;
		c->has_eq = OidIsValid(tc->eq_opr_finfo.fn_oid);
		if (c->has_eq)
			c->eq = tc->eq_opr_finfo;
	}
	return cols;
}

/* The type of a dimension bookkeeping column, checked. */
static void
Scd2CheckDimColumn(Relation dim, const char *name, Oid want1, Oid want2)
{
	Form_pg_attribute att = Scd2Attr(dim, name, "a dimension bookkeeping column");

	if (att->atttypid != want1 && att->atttypid != want2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of dimension \"%s\" has type %s",
						name, RelationGetRelationName(dim), format_type_be(att->atttypid)),
				 errdetail("Expected %s.", format_type_be(want1))));
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
	Scd2CheckDimColumn(dim, "valid_from", TIMESTAMPTZOID, TIMESTAMPTZOID);
	Scd2CheckDimColumn(dim, "valid_to", TIMESTAMPTZOID, TIMESTAMPTZOID);
	Scd2CheckDimColumn(dim, "is_current", BOOLOID, BOOLOID);

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
 * The merge stream: affected versions and source rows, by key then time,
 * versions first on ties. Columns: src, key..., t, tracked..., type1...,
 * sk, valid_to, is_current.
 */
static char *
Scd2StreamQuery(Scd2Spec *spec)
{
	StringInfoData q;
	int			i;

	initStringInfo(&q);
	appendStringInfoString(&q, "SELECT * FROM (SELECT 0 AS src");
	for (i = 0; i < spec->nkey; i++)
		appendStringInfo(&q, ", d.%s AS k%d", quote_identifier(spec->key[i].name), i);
	appendStringInfoString(&q, ", d.valid_from AS t");
	Scd2AppendCols(&q, spec->tracked, spec->ntracked, "d");
	Scd2AppendCols(&q, spec->type1, spec->ntype1, "d");
	appendStringInfo(&q, ", d.%s::pg_catalog.int8, d.valid_to, d.is_current FROM %s d WHERE (",
					 quote_identifier(spec->sk), spec->dimname);
	Scd2AppendKeyList(&q, spec, "d", false);
	appendStringInfoString(&q, ") IN (SELECT ");
	Scd2AppendKeyList(&q, spec, "s", false);
	appendStringInfo(&q, " FROM %s s)", spec->srcname);

	appendStringInfoString(&q, " UNION ALL SELECT 1");
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
	appendStringInfo(&q, ", NULL::pg_catalog.int8, NULL::pg_catalog.timestamptz, NULL::pg_catalog.bool FROM %s s",
					 spec->srcname);

	appendStringInfoString(&q, ") x ORDER BY ");
	for (i = 0; i < spec->nkey; i++)
	{
		appendStringInfo(&q, "%sx.k%d", i ? ", " : "", i);
		if (OidIsValid(spec->key[i].collation))
			appendStringInfoString(&q, " COLLATE \"C\"");
	}
	appendStringInfoString(&q, ", x.t, x.src");
	return q.data;
}

/* UPDATE of changed versions from arrays: sk, from, to, current, tracked..., type1... */
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
	appendStringInfoString(&q, ") AS u(sk, vf, vt, cur");
	for (i = 4; i < n; i++)
		appendStringInfo(&q, ", c%d", i - 4);
	appendStringInfo(&q, ") WHERE d.%s = u.sk", quote_identifier(spec->sk));
	*nargs = n;
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
	p->upd_plan = SPI_prepare(sql, p->upd_nargs, types);
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
 * Replays one key's source rows over its versions (see the file header)
 * and queues the resulting writes. rows are in stream order.
 */
static void
Scd2ReplayKey(Scd2Spec *spec, Scd2Pending *pending, Datum *key, Scd2Row *rows, int nrows,
			  Scd2Counts *counts)
{
	int			nvals = spec->ntracked + spec->ntype1;
	int			cap = Max(nrows, 4);
	Scd2Version *vs = palloc(sizeof(Scd2Version) * cap);
	int			n = 0;
	Scd2Row    *last = NULL;
	int			r;
	int			i;

	/* The existing versions, by valid_from. */
	for (r = 0; r < nrows; r++)
	{
		Scd2Version *v;

		if (rows[r].is_source)
			continue;
		v = &vs[n++];
		memset(v, 0, sizeof(*v));
		v->sk = rows[r].sk;
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

	/* Queue what changed. */
	for (i = 0; i < n; i++)
	{
		Scd2Version *v = &vs[i];

		if (v->is_new)
		{
			counts->inserted++;
			Scd2Queue(pending, spec, key, v);
			continue;
		}
		if (v->to != v->orig_to)
			counts->closed++;
		if (v->from != v->orig_from || v->values_changed)
			counts->corrected++;
		if (v->to != v->orig_to || v->from != v->orig_from || v->values_changed || v->type1_changed ||
			v->orig_current != TIMESTAMP_IS_NOEND(v->to))
			Scd2Queue(pending, spec, key, v);
	}
}

/* ---------------------------------------------------------------------
 * The stream
 * ---------------------------------------------------------------------
 */

/* Whether the key of a stream row equals the current group's key. */
static bool
Scd2SameKey(Scd2Spec *spec, Datum *a, Datum *b)
{
	int			i;

	for (i = 0; i < spec->nkey; i++)
	{
		Oid			coll = OidIsValid(spec->key[i].collation) ? C_COLLATION_OID : InvalidOid;

		if (DatumGetInt32(FunctionCall2Coll(&spec->key[i].cmp, coll, a[i], b[i])) != 0)
			return false;
	}
	return true;
}

/* Reads the stream key by key and replays each. */
static void
Scd2Run(Scd2Spec *spec, Scd2Counts *counts)
{
	Portal		portal;
	Scd2Pending pending;
	MemoryContext group_cxt;
	MemoryContext old;
	Datum	   *gkey = NULL;
	Scd2Row    *rows = NULL;
	int			nrows = 0;
	int			caprows = 0;
	int			nvals = spec->ntracked + spec->ntype1;
	int			tcol = spec->nkey + 2;
	Datum	   *rowkey = palloc(sizeof(Datum) * spec->nkey);

	Scd2PendingInit(&pending, spec);
	group_cxt = AllocSetContextCreate(CurrentMemoryContext, "scd2 group", ALLOCSET_DEFAULT_SIZES);

	portal = SPI_cursor_open_with_args(NULL, Scd2StreamQuery(spec), 0, NULL, NULL, NULL, false, 0);
	for (;;)
	{
		uint64		i;
		uint64		nfetched;
		SPITupleTable *tt;

		SPI_cursor_fetch(portal, true, SCD2_FETCH_ROWS);
		tt = SPI_tuptable;
		nfetched = SPI_processed;
		if (nfetched == 0)
			break;
		/* Flushes below run statements: SPI_tuptable/SPI_processed change. */
		for (i = 0; i < nfetched; i++)
		{
			HeapTuple	tup = tt->vals[i];
			TupleDesc	desc = tt->tupdesc;
			bool		isnull;
			bool		is_source = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull)) == 1;
			Scd2Row    *row;
			int			k;

			for (k = 0; k < spec->nkey; k++)
			{
				rowkey[k] = SPI_getbinval(tup, desc, 2 + k, &isnull);
				if (isnull)
					ereport(ERROR,
							(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							 errmsg("natural key column \"%s\" is null in a source row", spec->key[k].name)));
			}
			if (gkey != NULL && !Scd2SameKey(spec, gkey, rowkey))
			{
				Scd2ReplayKey(spec, &pending, gkey, rows, nrows, counts);
				MemoryContextReset(group_cxt);
				gkey = NULL;
				rows = NULL;
				nrows = caprows = 0;
			}
			old = MemoryContextSwitchTo(group_cxt);
			if (gkey == NULL)
			{
				gkey = palloc(sizeof(Datum) * spec->nkey);
				for (k = 0; k < spec->nkey; k++)
					gkey[k] = datumCopy(rowkey[k], spec->key[k].typbyval, spec->key[k].typlen);
				caprows = 8;
				rows = palloc(sizeof(Scd2Row) * caprows);
			}
			if (nrows == caprows)
			{
				caprows *= 2;
				rows = repalloc(rows, sizeof(Scd2Row) * caprows);
			}
			row = &rows[nrows++];
			row->is_source = is_source;
			row->t = DatumGetTimestampTz(SPI_getbinval(tup, desc, tcol, &isnull));
			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("%s is null in a %s row", is_source ? "effective time" : "valid_from",
								is_source ? "source" : "dimension")));
			if (is_source && TIMESTAMP_IS_NOEND(row->t))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("effective time of a source row is infinity")));
			row->vals = palloc(sizeof(Datum) * Max(nvals, 1));
			row->nulls = palloc(sizeof(bool) * Max(nvals, 1));
			for (k = 0; k < nvals; k++)
			{
				Scd2Col    *c = k < spec->ntracked ? &spec->tracked[k] : &spec->type1[k - spec->ntracked];
				Datum		d = SPI_getbinval(tup, desc, tcol + 1 + k, &row->nulls[k]);

				row->vals[k] = row->nulls[k] ? (Datum) 0 : datumCopy(d, c->typbyval, c->typlen);
			}
			if (!is_source)
			{
				row->sk = DatumGetInt64(SPI_getbinval(tup, desc, tcol + 1 + nvals, &isnull));
				row->valid_to = DatumGetTimestampTz(SPI_getbinval(tup, desc, tcol + 2 + nvals, &isnull));
				if (isnull)
					TIMESTAMP_NOEND(row->valid_to);
				row->is_current = DatumGetBool(SPI_getbinval(tup, desc, tcol + 3 + nvals, &isnull)) && !isnull;
			}
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(tt);
		CHECK_FOR_INTERRUPTS();
	}
	if (gkey != NULL)
		Scd2ReplayKey(spec, &pending, gkey, rows, nrows, counts);
	SPI_cursor_close(portal);
	Scd2Flush(&pending);
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
