/*-------------------------------------------------------------------------
 *
 * land.c
 *	  The land path shared by the Kafka source workers and camperso.ingest():
 *	  CaptureTargetOpen describes a source's target table, CaptureLandBatch
 *	  decodes a batch of messages into typed rows, multi-inserts the good
 *	  ones and sends the others to camperso.quarantine, all in the caller's
 *	  transaction.
 *
 * A batch goes through two phases.
 *
 * 1. Decode (never raises for message content): each message is parsed
 *    (decode.c), its keys matched to columns (by name, or by the mapping
 *    option's paths), each value converted to its column's type
 *    (convert.c), metadata columns and defaults filled. For a partitioned
 *    target, route.c checks each row has a partition; a row without one
 *    gets it from camperso.ensure_partition(parent, value) when that
 *    function exists, or is quarantined with rule no_partition. Faults
 *    become quarantine rows; good rows are kept, typed, in the batch
 *    context.
 *
 * 2. Insert, the way COPY does it: a ResultRelInfo with its indexes, tuple
 *    routing for partitioned targets, statement and row triggers (a
 *    relation with BEFORE ROW triggers gets rows one at a time, as in
 *    COPY), NOT NULL and CHECK constraints checked per row without raising
 *    (a violating row is quarantined), heap multi-insert of up to
 *    LAND_MAX_BUFFERED rows per flush with a BulkInsertState, then index
 *    entries and AFTER ROW triggers. The phase runs in one subtransaction.
 *    If it fails with an error of SQLSTATE class 22 or 23 (a unique
 *    violation, a CHECK expression that divides by zero, a foreign key),
 *    the subtransaction is rolled back and the phase is redone in careful
 *    mode: one subtransaction per row, so that exactly the offending rows
 *    are quarantined with the error's text and every other row lands. Any
 *    other error is not a message's fault (table gone, permission
 *    revoked, disk full, cancel) and is raised, so the caller rolls back
 *    the whole batch, offsets included, and retries.
 *
 * Quarantine rows are written last (quarantine.c), in the caller's
 * transaction, so they commit or roll back together with the good rows and
 * the offsets the worker stores after us.
 *
 * Memory: everything a batch allocates lives in a batch context deleted at
 * the end of CaptureLandBatch; each message's parse scratch lives in a row
 * context reset per message. A worker's memory therefore stays bounded by
 * one batch, whatever the backlog.
 *
 * Resource ownership: relations, indexes and slots the executor opens in
 * phase 2 are opened and closed inside the (sub)transaction that runs it,
 * because a subtransaction cannot hand an open relation to its parent
 * without a leak warning, and rolls it back from under us on abort.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_func.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "core/errors.h"
#include "capture/land_internal.h"
#include "security/security.h"

/* Rows per heap multi-insert, as COPY's MAX_BUFFERED_TUPLES. */
#define LAND_MAX_BUFFERED	1000
/* Relations (partitions) buffered at once before all are flushed. */
#define LAND_MAX_BUFFERS	16

/* A decoded, typed row waiting for phase 2. */
typedef struct LandRow
{
	int			msgidx;
	Datum	   *values;
	bool	   *nulls;
} LandRow;

/* One batch in flight. */
typedef struct LandState
{
	CaptureTarget *target;
	CaptureRawMessage *messages;
	int			nmessages;
	MemoryContext batchcxt;
	MemoryContext rowcxt;
	Relation	rel;
	EState	   *estate;			/* phase 1: defaults, routing checks */
	LandRow    *rows;
	int			nrows;
	CaptureQuarantineRow *q;
	int			nq;
	int			qcap;
	int64		landed;
	int64		skipped;		/* suppressed by a BEFORE ROW trigger */
} LandState;

/* A multi-insert buffer for one relation. */
typedef struct LandBuffer
{
	ResultRelInfo *rri;
	TupleTableSlot *slots[LAND_MAX_BUFFERED];
	int			nslots;			/* created */
	int			nused;
} LandBuffer;

static void LandQuarantine(LandState *ls, int msgidx, const char *rule,
						   const char *field, const char *reason);

/* ------------------------------------------------------------------------
 * CaptureTargetOpen
 * ------------------------------------------------------------------------
 */

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
static inline int
KeyHashLookup(CaptureTarget *t, const char *name, int len)
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

	if (check_enable_rls(t->relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot land into %s: row-level security applies to role \"%s\"",
						t->relname, GetUserNameFromId(GetUserId(), false)),
				 errhint("Let the source run as the table's owner, or grant the role BYPASSRLS.")));
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

/* ------------------------------------------------------------------------
 * Phase 1: decode
 * ------------------------------------------------------------------------
 */

/* Queues a quarantine row for message msgidx (strings copied to the batch). */
static void
LandQuarantine(LandState *ls, int msgidx, const char *rule, const char *field,
			   const char *reason)
{
	MemoryContext old = MemoryContextSwitchTo(ls->batchcxt);
	CaptureQuarantineRow *q;

	if (ls->nq == ls->qcap)
	{
		ls->qcap = ls->qcap ? ls->qcap * 2 : 64;
		ls->q = ls->q ? repalloc(ls->q, ls->qcap * sizeof(CaptureQuarantineRow)) :
			palloc(ls->qcap * sizeof(CaptureQuarantineRow));
	}
	q = &ls->q[ls->nq++];
	q->msg = &ls->messages[msgidx];
	q->rule = rule;
	q->field = field ? pstrdup(field) : NULL;
	q->reason = reason ? pstrdup(reason) : pstrdup(rule);
	q->app_id = NULL;
	MemoryContextSwitchTo(old);
}

/*
 * The app_id of a message, for the quarantine's row-level security: read
 * from the payload when it is a JSON object with a string app_id, even if
 * something else in it is wrong.
 */
static char *
QuarantineAppId(LandState *ls, const CaptureRawMessage *m, CampersoMessage *parsed)
{
	CampersoField *f = NULL;
	CampersoMessage msg;
	const char *rule;
	char	   *reason;

	if (parsed && parsed->nfields > 0)
		f = CampersoMessageField(parsed, "app_id");
	else if (m->payload_len <= CAPTURE_HARD_MAX_BYTES &&
			 CaptureJsonParse(m->payload, m->payload_len, &msg, &rule, &reason))
		f = CampersoMessageField(&msg, "app_id");
	if (f && f->kind == CJ_STRING)
		return MemoryContextStrdup(ls->batchcxt, f->text);
	return NULL;
}

/* A bytea holding a copy of data. */
static bytea *
MakeBytea(const char *data, int len)
{
	bytea	   *b = palloc(len + VARHDRSZ);

	SET_VARSIZE(b, len + VARHDRSZ);
	memcpy(VARDATA(b), data, len);
	return b;
}

/* A value copied to the batch context (results of defaults). */
static Datum
CopyToBatch(Datum d, Form_pg_attribute att)
{
	if (att->attbyval)
		return d;
	return datumCopy(d, att->attbyval, att->attlen);
}

/*
 * Decodes message i into a typed row (in the batch context) or a
 * quarantine row. Returns true for a row.
 */
static bool
DecodeMessage(LandState *ls, int i, Datum *values, bool *nulls)
{
	CaptureTarget *t = ls->target;
	CaptureRawMessage *m = &ls->messages[i];
	TupleDesc	td = RelationGetDescr(ls->rel);
	CampersoMessage msg;
	CampersoField **byfield;
	CampersoField *mapped;
	const char *rule;
	char	   *reason;
	const char *field;
	CaptureFault fault;
	int			c;

	MemoryContextSwitchTo(ls->rowcxt);
	if (m->payload_len > t->max_message_bytes)
	{
		LandQuarantine(ls, i, "oversized", NULL,
					   psprintf("message of %d bytes is above max_message_bytes (%d)",
								m->payload_len, t->max_message_bytes));
		return false;
	}
	if (!CaptureJsonParseField(m->payload, m->payload_len, &msg, &rule, &reason, &field))
	{
		LandQuarantine(ls, i, rule, field, reason);
		return false;
	}
	if (t->pii && !SecurityApplyPii(t->pii, &msg, &rule, &field, &reason))
	{
		LandQuarantine(ls, i, rule, field, reason);
		ls->q[ls->nq - 1].app_id = QuarantineAppId(ls, m, &msg);
		return false;
	}

	/* match top-level keys to columns; a later duplicate key wins */
	byfield = palloc0(t->natts * sizeof(CampersoField *));
	for (c = 0; c < msg.nfields; c++)
	{
		int			idx = KeyHashLookup(t, msg.fields[c].name, msg.fields[c].name_len);

		if (idx >= 0)
			byfield[idx] = &msg.fields[c];
	}

	MemoryContextSwitchTo(ls->batchcxt);
	for (c = 0; c < t->natts; c++)
	{
		CaptureColumn *col = &t->cols[c];
		CampersoField *f = byfield[c];

		values[c] = (Datum) 0;
		nulls[c] = true;
		switch (col->kind)
		{
			case CK_META_PARTITION:
				if (m->partition >= 0)
				{
					nulls[c] = false;
					values[c] = col->typid == INT2OID ? Int16GetDatum((int16) m->partition) :
						col->typid == INT4OID ? Int32GetDatum(m->partition) :
						Int64GetDatum((int64) m->partition);
				}
				continue;
			case CK_META_OFFSET:
				if (m->offset >= 0)
				{
					nulls[c] = false;
					values[c] = Int64GetDatum(m->offset);
				}
				continue;
			case CK_META_KEY:
				{
					const char *key = m->key;
					int			key_len = m->key_len;

					if (key == NULL || (t->pii && !SecurityPiiKey(t->pii, &key, &key_len)))
						continue;
					if (col->typid == TEXTOID &&
						(memchr(key, '\0', key_len) != NULL ||
						 !pg_verify_mbstr(PG_UTF8, key, key_len, true)))
					{
						LandQuarantine(ls, i, "invalid_utf8", col->name,
									   "the message key is not valid UTF-8 text");
						ls->q[ls->nq - 1].app_id = QuarantineAppId(ls, m, &msg);
						return false;
					}
					nulls[c] = false;
					values[c] = col->typid == TEXTOID ?
						PointerGetDatum(cstring_to_text_with_len(key, key_len)) :
						PointerGetDatum(MakeBytea(key, key_len));
				}
				continue;
			case CK_META_RECEIVED_AT:
				nulls[c] = false;
				values[c] = TimestampTzGetDatum(m->received_at);
				continue;
			case CK_META_RAW:
				if (t->pii)
				{
					/* encrypted or dropped (security stage) */
					values[c] = PointerGetDatum(SecurityRawValue(t->pii, m->payload, m->payload_len));
					nulls[c] = (values[c] == (Datum) 0);
					continue;
				}
				nulls[c] = false;
				if (col->typid == BYTEAOID)
					values[c] = PointerGetDatum(MakeBytea(m->payload, m->payload_len));
				else if (col->typid == JSONBOID)
					values[c] = DirectFunctionCall1(jsonb_in,
													CStringGetDatum(pnstrdup(m->payload, m->payload_len)));
				else
					values[c] = PointerGetDatum(cstring_to_text_with_len(m->payload, m->payload_len));
				continue;
			case CK_SKIP:
				break;
			default:
				if (col->path)
				{
					MemoryContextSwitchTo(ls->rowcxt);
					mapped = palloc(sizeof(CampersoField));
					f = CaptureJsonPathLookup(&msg, col->path, mapped) ? mapped : NULL;
					MemoryContextSwitchTo(ls->batchcxt);
				}
				if (f)
				{
					if (!CaptureConvert(col, f, &values[c], &nulls[c], &fault))
					{
						LandQuarantine(ls, i, fault.rule, fault.field, fault.reason);
						ls->q[ls->nq - 1].app_id = QuarantineAppId(ls, m, &msg);
						return false;
					}
					continue;
				}
				break;
		}
		/* absent (or not taken from messages): the column default */
		if (col->defstate)
		{
			ExprContext *econtext = GetPerTupleExprContext(ls->estate);
			Datum		d = ExecEvalExprSwitchContext(col->defstate, econtext, &nulls[c]);

			if (!nulls[c])
				values[c] = CopyToBatch(d, TupleDescAttr(td, c));
			ResetExprContext(econtext);
		}
	}
	return true;
}

/*
 * Calls camperso.ensure_partition(parent, value) for a row without a
 * partition. True when it made one; false (with *reason) when it refused
 * with a data or integrity error, or does not exist. Other errors raise.
 */
static bool
EnsurePartition(LandState *ls, Oid parent, const char *value, char **reason)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	if (!OidIsValid(ls->target->ensure_partition_fn))
	{
		*reason = psprintf("no partition of %s for value %s, and camperso.ensure_partition() does not exist",
						   ls->target->relname, value ? value : "NULL");
		return false;
	}
	if (value == NULL)
	{
		*reason = psprintf("no partition of %s for a null partition key", ls->target->relname);
		return false;
	}
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		OidFunctionCall2(ls->target->ensure_partition_fn, ObjectIdGetDatum(parent),
						 CStringGetTextDatum(value));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (CaptureRuleForSqlState(edata->sqlerrcode) == NULL &&
			edata->sqlerrcode != ERRCODE_RAISE_EXCEPTION)
			ReThrowError(edata);
		*reason = psprintf("camperso.ensure_partition(%s, %s) failed: %s",
						   get_rel_name(parent), value, edata->message);
		ok = false;
	}
	PG_END_TRY();
	CommandCounterIncrement();
	return ok;
}

/* Phase 1 over the whole batch. */
static void
DecodeBatch(LandState *ls)
{
	CaptureTarget *t = ls->target;
	CaptureRouteState *rs = NULL;
	int			i,
				c;

	for (c = 0; c < t->natts; c++)
	{
		if (t->cols[c].defexpr)
			t->cols[c].defstate = ExecPrepareExpr(t->cols[c].defexpr, ls->estate);
		else
			t->cols[c].defstate = NULL;
	}
	if (t->relkind == RELKIND_PARTITIONED_TABLE)
		rs = CaptureRouteBegin(ls->rel, ls->estate);

	ls->rows = palloc(ls->nmessages * sizeof(LandRow));
	for (i = 0; i < ls->nmessages; i++)
	{
		LandRow    *row = &ls->rows[ls->nrows];

		CHECK_FOR_INTERRUPTS();
		row->msgidx = i;
		row->values = palloc(t->natts * sizeof(Datum));
		row->nulls = palloc(t->natts * sizeof(bool));
		if (!DecodeMessage(ls, i, row->values, row->nulls))
		{
			MemoryContextSwitchTo(ls->batchcxt);
			MemoryContextReset(ls->rowcxt);
			continue;
		}
		MemoryContextSwitchTo(ls->batchcxt);
		if (rs)
		{
			Oid			parent;
			char	   *value;
			char	   *reason = NULL;

			if (!CaptureRouteCheck(rs, row->values, row->nulls, &parent, &value))
			{
				if (!EnsurePartition(ls, parent, value, &reason) ||
					!CaptureRouteCheck(rs, row->values, row->nulls, &parent, &value))
				{
					LandQuarantine(ls, i, "no_partition", NULL,
								   reason ? reason : "camperso.ensure_partition() made no partition for the row");
					MemoryContextReset(ls->rowcxt);
					continue;
				}
			}
		}
		MemoryContextReset(ls->rowcxt);
		ls->nrows++;
	}
	if (rs)
		CaptureRouteEnd(rs);
}

/* ------------------------------------------------------------------------
 * Phase 2: insert
 * ------------------------------------------------------------------------
 */

/*
 * Checks NOT NULL and CHECK constraints of rri's relation on slot without
 * raising for a violation. A CHECK expression that itself fails raises (a
 * data error: the caller's careful mode catches it).
 */
static bool
CheckConstraints(ResultRelInfo *rri, TupleTableSlot *slot, EState *estate,
				 CaptureFault *fault)
{
	Relation	rel = rri->ri_RelationDesc;
	TupleDesc	td = RelationGetDescr(rel);
	TupleConstr *constr = td->constr;
	int			i;

	if (constr == NULL)
		return true;
	if (constr->has_not_null)
	{
		for (i = 0; i < td->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(td, i);

			if (att->attnotnull && slot_attisnull(slot, att->attnum))
			{
				fault->rule = "not_null";
				fault->field = NameStr(att->attname);
				fault->reason = psprintf("null value in column \"%s\" of %s violates its not-null constraint",
										 NameStr(att->attname), RelationGetRelationName(rel));
				return false;
			}
		}
	}
	if (constr->num_check > 0)
	{
		ExprContext *econtext = GetPerTupleExprContext(estate);

		if (rri->ri_ConstraintExprs == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);

			rri->ri_ConstraintExprs = palloc(constr->num_check * sizeof(ExprState *));
			for (i = 0; i < constr->num_check; i++)
				rri->ri_ConstraintExprs[i] =
					ExecPrepareExpr((Expr *) stringToNode(constr->check[i].ccbin), estate);
			MemoryContextSwitchTo(old);
		}
		econtext->ecxt_scantuple = slot;
		for (i = 0; i < constr->num_check; i++)
		{
			if (!ExecCheck(rri->ri_ConstraintExprs[i], econtext))
			{
				Bitmapset  *attrs = NULL;
				int			attno;

				pull_varattnos(stringToNode(constr->check[i].ccbin), 1, &attrs);
				fault->rule = "check_violation";
				fault->field = NULL;
				if (bms_num_members(attrs) == 1)
				{
					attno = bms_singleton_member(attrs) + FirstLowInvalidHeapAttributeNumber;
					if (attno > 0)
						fault->field = NameStr(TupleDescAttr(td, attno - 1)->attname);
				}
				fault->reason = psprintf("row violates check constraint \"%s\" of %s",
										 constr->check[i].ccname, RelationGetRelationName(rel));
				return false;
			}
		}
	}
	return true;
}

/* Writes one buffer out: heap multi-insert, then indexes and row triggers. */
static void
FlushBuffer(LandState *ls, LandBuffer *buf, EState *estate, BulkInsertState bistate)
{
	ResultRelInfo *rri = buf->rri;
	int			i;

	if (buf->nused == 0)
		return;
	ReleaseBulkInsertStatePin(bistate);
	table_multi_insert(rri->ri_RelationDesc, buf->slots, buf->nused,
					   estate->es_output_cid, 0, bistate);
	for (i = 0; i < buf->nused; i++)
	{
		List	   *recheck = NIL;

		ResetPerTupleExprContext(estate);
		if (rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(rri, buf->slots[i], estate, false, false, NULL, NIL);
		ExecARInsertTriggers(estate, rri, buf->slots[i], recheck, NULL);
		list_free(recheck);
		ExecClearTuple(buf->slots[i]);
	}
	ls->landed += buf->nused;
	buf->nused = 0;
}

/*
 * Inserts rows[first .. first+count) into the target; quarantines the
 * rows that violate a constraint. Opens and closes everything it uses, so
 * it may run inside a subtransaction.
 */
static void
InsertRows(LandState *ls, int first, int count)
{
	Relation	rel = ls->rel;
	TupleDesc	td = RelationGetDescr(rel);
	EState	   *estate = CreateExecutorState();
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	ModifyTableState *mtstate = makeNode(ModifyTableState);
	PartitionTupleRouting *proute = NULL;
	TupleTableSlot *rootslot = NULL;
	BulkInsertState bistate;
	LandBuffer *buffers = palloc0(LAND_MAX_BUFFERS * sizeof(LandBuffer));
	int			nbuffers = 0;
	int			nbuffered = 0;
	int			r,
				b;

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(estate, list_make1(rte));
	ExecInitResultRelation(estate, rri, 1);
	CheckValidResultRel(rri, CMD_INSERT);
	ExecOpenIndices(rri, false);
	estate->es_output_cid = GetCurrentCommandId(true);

	mtstate->ps.plan = NULL;
	mtstate->ps.state = estate;
	mtstate->operation = CMD_INSERT;
	mtstate->mt_nrels = 1;
	mtstate->resultRelInfo = rri;
	mtstate->rootResultRelInfo = rri;

	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		proute = ExecSetupPartitionTupleRouting(estate, rel);
		rootslot = ExecInitExtraTupleSlot(estate, td, &TTSOpsVirtual);
	}

	AfterTriggerBeginQuery();
	ExecBSInsertTriggers(estate, rri);
	bistate = GetBulkInsertState();

	for (r = first; r < first + count; r++)
	{
		LandRow    *row = &ls->rows[r];
		ResultRelInfo *leaf = rri;
		LandBuffer *buf = NULL;
		TupleTableSlot *slot;
		CaptureFault fault;
		bool		single;

		CHECK_FOR_INTERRUPTS();
		ResetPerTupleExprContext(estate);

		if (proute)
		{
			ExecClearTuple(rootslot);
			memcpy(rootslot->tts_values, row->values, td->natts * sizeof(Datum));
			memcpy(rootslot->tts_isnull, row->nulls, td->natts * sizeof(bool));
			ExecStoreVirtualTuple(rootslot);
			leaf = ExecFindPartition(mtstate, rri, proute, rootslot, estate);
		}
		single = (leaf->ri_TrigDesc && leaf->ri_TrigDesc->trig_insert_before_row);

		if (single)
		{
			/* rows before it must be visible to its trigger, as in COPY */
			for (b = 0; b < nbuffers; b++)
				FlushBuffer(ls, &buffers[b], estate, bistate);
			nbuffered = 0;
		}

		/* the buffer of the relation (for a single row, only its slot) */
		{
			for (b = 0; b < nbuffers; b++)
			{
				if (buffers[b].rri == leaf)
					buf = &buffers[b];
			}
			if (buf == NULL)
			{
				if (nbuffers == LAND_MAX_BUFFERS)
				{
					for (b = 0; b < nbuffers; b++)
						FlushBuffer(ls, &buffers[b], estate, bistate);
					nbuffered = 0;
					nbuffers = 0;
				}
				buf = &buffers[nbuffers++];
				buf->rri = leaf;
				buf->nused = 0;
				buf->nslots = 0;
			}
			if (buf->nused == buf->nslots)
				buf->slots[buf->nslots++] = table_slot_create(leaf->ri_RelationDesc,
															  &estate->es_tupleTable);
			slot = buf->slots[buf->nused];
		}

		/* the row, in the layout of the relation it goes to */
		if (proute && leaf->ri_RootToPartitionMap)
			slot = execute_attr_map_slot(leaf->ri_RootToPartitionMap->attrMap, rootslot, slot);
		else
		{
			ExecClearTuple(slot);
			memcpy(slot->tts_values, row->values, td->natts * sizeof(Datum));
			memcpy(slot->tts_isnull, row->nulls, td->natts * sizeof(bool));
			ExecStoreVirtualTuple(slot);
		}
		slot->tts_tableOid = RelationGetRelid(leaf->ri_RelationDesc);

		if (single && !ExecBRInsertTriggers(estate, leaf, slot))
		{
			ls->skipped++;
			continue;
		}
		if (leaf->ri_RelationDesc->rd_att->constr &&
			leaf->ri_RelationDesc->rd_att->constr->has_generated_stored)
			ExecComputeStoredGenerated(leaf, estate, slot, CMD_INSERT);
		if (!CheckConstraints(leaf, slot, estate, &fault))
		{
			LandQuarantine(ls, row->msgidx, fault.rule, fault.field, fault.reason);
			ls->q[ls->nq - 1].app_id = QuarantineAppId(ls, &ls->messages[row->msgidx], NULL);
			ExecClearTuple(slot);
			continue;
		}
		if (single)
		{
			List	   *recheck = NIL;

			if (leaf->ri_RelationDesc->rd_rel->relispartition)
				ExecPartitionCheck(leaf, slot, estate, true);
			table_tuple_insert(leaf->ri_RelationDesc, slot, estate->es_output_cid, 0, bistate);
			if (leaf->ri_NumIndices > 0)
				recheck = ExecInsertIndexTuples(leaf, slot, estate, false, false, NULL, NIL);
			ExecARInsertTriggers(estate, leaf, slot, recheck, NULL);
			list_free(recheck);
			ls->landed++;
			continue;
		}
		buf->nused++;
		if (++nbuffered >= LAND_MAX_BUFFERED)
		{
			for (b = 0; b < nbuffers; b++)
				FlushBuffer(ls, &buffers[b], estate, bistate);
			nbuffered = 0;
		}
	}
	for (b = 0; b < nbuffers; b++)
		FlushBuffer(ls, &buffers[b], estate, bistate);

	FreeBulkInsertState(bistate);
	ExecASInsertTriggers(estate, rri, NULL);
	AfterTriggerEndQuery(estate);
	ExecResetTupleTable(estate->es_tupleTable, false);
	if (proute)
		ExecCleanupTupleRouting(mtstate, proute);
	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
}

/*
 * Runs InsertRows(first, count) in a subtransaction. Returns true when it
 * committed; on a data or integrity error (classes 22, 23) rolls back and
 * returns false with *edata; raises anything else.
 */
static bool
InsertRowsGuarded(LandState *ls, int first, int count, ErrorData **edata)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	int64		landed = ls->landed;
	int64		skipped = ls->skipped;
	int			nq = ls->nq;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		InsertRows(ls, first, count);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (CaptureRuleForSqlState((*edata)->sqlerrcode) == NULL)
			ReThrowError(*edata);
		/* undo what the rolled-back attempt counted */
		ls->landed = landed;
		ls->skipped = skipped;
		ls->nq = nq;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* Phase 2: all rows at once; row by row if that meets a data error. */
static void
InsertBatch(LandState *ls)
{
	ErrorData  *edata = NULL;
	int			r;

	if (ls->nrows == 0)
		return;
	if (InsertRowsGuarded(ls, 0, ls->nrows, &edata))
		return;

	ereport(DEBUG1,
			(errmsg("camperso: batch of source \"%s\" hit \"%s\"; landing it row by row",
					ls->target->source, edata->message)));
	for (r = 0; r < ls->nrows; r++)
	{
		if (!InsertRowsGuarded(ls, r, 1, &edata))
		{
			LandQuarantine(ls, ls->rows[r].msgidx,
						   CaptureRuleForSqlState(edata->sqlerrcode),
						   edata->column_name, edata->detail ?
						   psprintf("%s: %s", edata->message, edata->detail) : edata->message);
			ls->q[ls->nq - 1].app_id = QuarantineAppId(ls, &ls->messages[ls->rows[r].msgidx], NULL);
		}
	}
}

/* See capture.h. */
void
CaptureLandBatch(CaptureTarget *target, CaptureRawMessage *messages,
				 int nmessages, CaptureLandResult *result)
{
	MemoryContext callercxt = CurrentMemoryContext;
	LandState	ls;
	int			i;

	memset(result, 0, sizeof(*result));
	memset(&ls, 0, sizeof(ls));
	ls.target = target;
	ls.messages = messages;
	ls.nmessages = nmessages;
	ls.batchcxt = AllocSetContextCreate(callercxt, "camperso land batch",
										ALLOCSET_DEFAULT_SIZES);
	ls.rowcxt = AllocSetContextCreate(ls.batchcxt, "camperso land row",
									  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(ls.batchcxt);

	ls.rel = table_open(target->relid, RowExclusiveLock);
	ls.estate = CreateExecutorState();

	DecodeBatch(&ls);
	InsertBatch(&ls);

	MemoryContextSwitchTo(ls.batchcxt);
	CaptureQuarantineInsert(target, ls.q, ls.nq);

	result->messages = nmessages;
	result->landed = ls.landed;
	result->quarantined = ls.nq + ls.skipped;
	result->deduplicated = 0;
	for (i = 0; i < nmessages; i++)
		result->bytes += messages[i].payload_len;
	Assert(result->landed + result->quarantined + result->deduplicated == result->messages);

	FreeExecutorState(ls.estate);
	table_close(ls.rel, NoLock);
	MemoryContextSwitchTo(callercxt);
	MemoryContextDelete(ls.batchcxt);
}
