/*-------------------------------------------------------------------------
 *
 * target.c
 *	  CaptureTargetOpen: what landing a source's messages needs to know,
 *	  read from camperso.sources, the source's options and the target
 *	  table's tuple descriptor.
 *
 * Columns are classified once per batch transaction (the table may change
 * between batches): metadata columns (_partition, _offset, _key,
 * _received_at, _raw, recognised by name and checked for type), columns
 * never taken from a message (dropped, generated, GENERATED ALWAYS
 * identity), columns filled by a JSON path of the `mapping` option, and
 * columns filled from the top-level key of their own name, found through a
 * small open-addressing hash.
 *
 * Privileges are checked here, as INSERT or COPY would check them: INSERT
 * on the target for the current user (the source owner in a worker, the
 * caller of camperso.ingest()). camperso.sources is read directly, without
 * asking the caller for SELECT on it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "core/errors.h"
#include "capture/land_internal.h"
#include "security/security.h"

/* Reads text/jsonb columns of the camperso.sources row of name. */
static bool
LookupSource(const char *name, char **topic, Oid *relid, char **ruleset, char **options)
{
	Oid			nsp = get_namespace_oid("camperso", false);
	Oid			srcrelid = get_relname_relid("sources", nsp);
	Relation	srcrel;
	TableScanDesc scan;
	Snapshot	snapshot;
	ScanKeyData key;
	HeapTuple	tup;
	TupleDesc	td;
	bool		found = false;
	int			i;
	AttrNumber	a_name = 0,
				a_topic = 0,
				a_target = 0,
				a_ruleset = 0,
				a_options = 0;

	if (!OidIsValid(srcrelid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table camperso.sources does not exist"),
				 errhint("Reinstall the camperso extension.")));

	/*
	 * Read directly, not through SPI: callers of camperso.ingest() need not
	 * be able to read the catalog of sources.
	 */
	srcrel = table_open(srcrelid, AccessShareLock);
	td = RelationGetDescr(srcrel);
	for (i = 0; i < td->natts; i++)
	{
		const char *n = NameStr(TupleDescAttr(td, i)->attname);

		if (TupleDescAttr(td, i)->attisdropped)
			continue;
		if (strcmp(n, "name") == 0)
			a_name = i + 1;
		else if (strcmp(n, "topic") == 0)
			a_topic = i + 1;
		else if (strcmp(n, "target") == 0)
			a_target = i + 1;
		else if (strcmp(n, "ruleset") == 0)
			a_ruleset = i + 1;
		else if (strcmp(n, "options") == 0)
			a_options = i + 1;
	}
	if (!a_name || !a_topic || !a_target || !a_options)
		elog(ERROR, "camperso: camperso.sources lacks expected columns");

	ScanKeyInit(&key, a_name, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(name));
	snapshot = RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	scan = table_beginscan(srcrel, snapshot, 1, &key);
	tup = heap_getnext(scan, ForwardScanDirection);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d;

		found = true;
		d = heap_getattr(tup, a_topic, td, &isnull);
		*topic = isnull ? pstrdup("") : TextDatumGetCString(d);
		d = heap_getattr(tup, a_target, td, &isnull);
		*relid = isnull ? InvalidOid : DatumGetObjectId(d);
		*ruleset = NULL;
		if (a_ruleset)
		{
			d = heap_getattr(tup, a_ruleset, td, &isnull);
			if (!isnull)
				*ruleset = TextDatumGetCString(d);
		}
		d = heap_getattr(tup, a_options, td, &isnull);
		*options = isnull ? NULL : JsonbToCString(NULL, &DatumGetJsonbP(d)->root, 256);
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(srcrel, AccessShareLock);
	return found;
}

/* Metadata kind for a column named like one, or CK_SKIP when it is not. */
static CaptureColKind
MetaKind(const char *name, Oid typid, const char *source)
{
	CaptureColKind kind;
	bool		typeok;

	if (strcmp(name, "_partition") == 0)
	{
		kind = CK_META_PARTITION;
		typeok = (typid == INT2OID || typid == INT4OID || typid == INT8OID);
	}
	else if (strcmp(name, "_offset") == 0)
	{
		kind = CK_META_OFFSET;
		typeok = (typid == INT8OID);
	}
	else if (strcmp(name, "_key") == 0)
	{
		kind = CK_META_KEY;
		typeok = (typid == TEXTOID || typid == BYTEAOID);
	}
	else if (strcmp(name, "_received_at") == 0)
	{
		kind = CK_META_RECEIVED_AT;
		typeok = (typid == TIMESTAMPTZOID);
	}
	else if (strcmp(name, "_raw") == 0)
	{
		kind = CK_META_RAW;
		typeok = (typid == BYTEAOID || typid == TEXTOID || typid == JSONOID || typid == JSONBOID);
	}
	else
		return CK_SKIP;
	if (!typeok)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("metadata column \"%s\" of the target of source \"%s\" has type %s",
						name, source, format_type_be(typid)),
				 errdetail("_partition is smallint, integer or bigint; _offset bigint; _key text or bytea; _received_at timestamptz; _raw bytea, text, json or jsonb."),
				 errhint("Change the column's type or rename it.")));
	return kind;
}

/* Adds column index idx under its name to the target's key hash. */
static void
KeyHashAdd(CaptureTarget *t, int idx)
{
	const char *name = t->cols[idx].name;
	uint32		h = hash_bytes((const unsigned char *) name, strlen(name));
	int			slot = h & (t->hashsize - 1);

	while (t->hash[slot] >= 0)
		slot = (slot + 1) & (t->hashsize - 1);
	t->hash[slot] = (int16) idx;
}

/* Column index filled by top-level key name, or -1. */
int
CaptureTargetColumnForKey(CaptureTarget *t, const char *name, int len)
{
	uint32		h = hash_bytes((const unsigned char *) name, len);
	int			slot = h & (t->hashsize - 1);

	while (t->hash[slot] >= 0)
	{
		int			idx = t->hash[slot];

		if (strcmp(t->cols[idx].name, name) == 0)
			return idx;
		slot = (slot + 1) & (t->hashsize - 1);
	}
	return -1;
}

/* Applies the source options that concern landing (mapping, limits). */
static void
ApplyOptions(CaptureTarget *t, const char *options)
{
	CampersoMessage msg;
	const char *rule;
	char	   *reason;
	int			i;

	if (options == NULL)
		return;
	if (!CaptureJsonParse(options, strlen(options), &msg, &rule, &reason))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options of source \"%s\" are not a JSON object", t->source),
				 errdetail("%s", reason)));
	for (i = 0; i < msg.nfields; i++)
	{
		CampersoField *f = &msg.fields[i];

		if (strcmp(f->name, "max_message_bytes") == 0)
		{
			char	   *end;
			long		v;

			errno = 0;
			v = (f->kind == CJ_NUMBER) ? strtol(f->text, &end, 10) : -1;
			if (f->kind != CJ_NUMBER || errno != 0 || *end != '\0' ||
				v < 1 || v > CAPTURE_HARD_MAX_BYTES)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option max_message_bytes of source \"%s\" must be an integer between 1 and %d",
								t->source, CAPTURE_HARD_MAX_BYTES)));
			t->max_message_bytes = (int) v;
		}
		else if (strcmp(f->name, "mapping") == 0 && f->kind != CJ_NULL)
		{
			CampersoMessage map;
			int			j;

			if (f->kind != CJ_OBJECT ||
				!CaptureJsonParse(f->text, f->text_len, &map, &rule, &reason))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option mapping of source \"%s\" must be an object of column to JSON path",
								t->source)));
			for (j = 0; j < map.nfields; j++)
			{
				CampersoField *m = &map.fields[j];
				CaptureColumn *col = NULL;
				char	   *error = NULL;
				int			c;

				for (c = 0; c < t->natts; c++)
				{
					if (t->cols[c].name && strcmp(t->cols[c].name, m->name) == 0)
						col = &t->cols[c];
				}
				if (col == NULL || col->kind == CK_SKIP || col->kind < CK_TEXT)
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_COLUMN),
							 errmsg("option mapping of source \"%s\" names column \"%s\", which the target cannot take from a message",
									t->source, m->name),
							 errhint("Map only ordinary columns of %s.", t->relname)));
				if (m->kind != CJ_STRING ||
					(col->path = CaptureJsonPathCompile(m->text, &error)) == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option mapping of source \"%s\": invalid path for column \"%s\"",
									t->source, m->name),
							 errdetail("%s", error ? error : "The path must be a string such as \"$.a.b\".")));
			}
		}
	}
}

/*
 * See capture.h. Raises 42704 for an unknown source, 42P01 when its target
 * is gone, 42501 when the current user may not insert into it.
 */
CaptureTarget *
CaptureTargetOpen(const char *source_name)
{
	CaptureTarget *t = palloc0(sizeof(CaptureTarget));
	char	   *options = NULL;
	Relation	rel;
	TupleDesc	td;
	RangeTblEntry *rte;
	int			i;
	Oid			argtypes[2] = {REGCLASSOID, TEXTOID};

	t->source = pstrdup(source_name);
	if (!LookupSource(source_name, &t->topic, &t->relid, &t->ruleset, &options))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("source \"%s\" does not exist", source_name),
				 errhint("camperso.sources lists the sources; camperso.create_source() makes one.")));

	rel = try_relation_open(t->relid, RowExclusiveLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target table of source \"%s\" does not exist", source_name),
				 errdetail("The table with OID %u was dropped.", t->relid),
				 errhint("Recreate the table, or drop the source and create it again.")));
	t->relkind = rel->rd_rel->relkind;
	t->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											RelationGetRelationName(rel));
	if (t->relkind != RELKIND_RELATION && t->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target %s of source \"%s\" is not a table", t->relname, source_name)));

	/* the caller must be allowed to insert, as for INSERT or COPY */
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = t->relid;
	rte->relkind = t->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	td = RelationGetDescr(rel);
	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (!att->attisdropped && !att->attgenerated)
			rte->insertedCols = bms_add_member(rte->insertedCols,
											   att->attnum - FirstLowInvalidHeapAttributeNumber);
	}
	ExecCheckRTPerms(list_make1(rte), true);

	/* policies are not evaluated here: only "WITH CHECK (true)" ones pass */
	if (check_enable_rls(t->relid, InvalidOid, false) == RLS_ENABLED &&
		!SecurityRlsInsertUnchecked(rel))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot land into %s: row-level security applies to role \"%s\"",
						t->relname, GetUserNameFromId(GetUserId(), false)),
				 errhint("Let the source run as the table's owner or as a member of camperso_ingest (camperso.protect_table lets it insert), or grant the role BYPASSRLS.")));
	if (rel->trigdesc && (rel->trigdesc->trig_insert_new_table))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot land into %s: it has triggers with transition tables", t->relname)));

	t->max_message_bytes = CAPTURE_DEFAULT_MAX_MESSAGE_BYTES;
	t->natts = td->natts;
	t->cols = palloc0(td->natts * sizeof(CaptureColumn));
	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);
		CaptureColumn *col = &t->cols[i];

		col->attnum = att->attnum;
		col->maxlen = -1;
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		if (att->attisdropped)
		{
			col->kind = CK_SKIP;
			continue;
		}
		col->name = pstrdup(NameStr(att->attname));
		if (att->attgenerated)
		{
			col->kind = CK_SKIP;	/* computed at insert */
			continue;
		}
		col->defexpr = (Expr *) build_column_default(rel, att->attnum);
		if (col->defexpr)
			t->has_defaults = true;
		col->kind = MetaKind(col->name, att->atttypid, source_name);
		if (col->kind != CK_SKIP)
		{
			t->has_meta = true;
			continue;
		}
		/* GENERATED ALWAYS identity: the sequence decides, as for COPY's default */
		if (att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
		{
			col->kind = CK_SKIP;
			continue;
		}
		CaptureColumnPrepare(col, att);
		if (col->kind == CK_GENERIC)
			t->has_generic = true;
	}

	ApplyOptions(t, options);
	/* the source's PII rules (security stage), applied before typing */
	t->pii = SecurityPiiCompileText(options, t->relid);
	for (i = 0; t->pii && i < td->natts; i++)
		if (t->cols[i].kind == CK_META_RAW)
			SecurityPiiCheckRaw(t->pii, t->cols[i].typid, t->relname);

	/* the key hash: columns filled from a top-level key of their name */
	t->hashsize = 16;
	while (t->hashsize < 2 * td->natts)
		t->hashsize *= 2;
	t->hash = palloc(t->hashsize * sizeof(int16));
	memset(t->hash, -1, t->hashsize * sizeof(int16));
	for (i = 0; i < td->natts; i++)
	{
		if (t->cols[i].kind >= CK_TEXT && t->cols[i].path == NULL)
		{
			KeyHashAdd(t, i);
			t->nkeyed++;
		}
	}

	if (t->relkind == RELKIND_PARTITIONED_TABLE)
	{
		List	   *fname = list_make2(makeString("camperso"), makeString("ensure_partition"));

		t->ensure_partition_fn = LookupFuncName(fname, 2, argtypes, true);
	}

	table_close(rel, NoLock);
	return t;
}

