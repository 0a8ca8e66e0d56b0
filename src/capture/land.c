/*-------------------------------------------------------------------------
 *
 * land.c
 *	  CaptureLandBatch: the land path shared by the Kafka source workers and
 *	  camperso.ingest(). Decodes a batch of messages into typed rows,
 *	  inserts the good ones the way COPY does and sends the others to
 *	  camperso.quarantine, all in the caller's transaction.
 *
 * The batch runs in one subtransaction, chunk by chunk (LAND_CHUNK
 * messages): each message is parsed (decode.c), its keys matched to
 * columns (target.c), its values converted to the columns' types
 * (convert.c), metadata columns and defaults filled; a message that cannot
 * be decoded or typed becomes a quarantine row with its rule, and nothing
 * is raised for it. Good rows go to the inserter: a ResultRelInfo with its
 * indexes, tuple routing for partitioned targets, statement and row
 * triggers (a relation with BEFORE ROW triggers takes its rows one at a
 * time, as in COPY), NOT NULL and CHECK constraints checked per row
 * without raising (a violating row is quarantined), heap multi-insert of up
 * to LAND_MAX_BUFFERED rows per flush with a BulkInsertState, then index
 * entries and AFTER ROW triggers.
 *
 * For a partitioned target, route.c first checks that each row has a
 * partition. When one lacks it, camperso.ensure_partition(parent, value)
 * is called if it exists (the inserter is closed around the call, so that
 * the routing sees the new partition), else the row is quarantined with
 * rule no_partition.
 *
 * Errors. If the batch's subtransaction fails with an error of SQLSTATE
 * class 22 or 23 that no check foresaw (a unique violation, a CHECK
 * expression that divides by zero, a foreign key), it is rolled back and
 * the batch is redone in careful mode: one subtransaction per message, so
 * that exactly the offending messages are quarantined with the error's
 * text and every other one lands. Any other error is not a message's
 * fault (table gone, permission revoked, disk full, cancel) and is raised,
 * so the caller rolls the whole batch back, offsets included, and retries.
 *
 * Quarantine rows are written last (quarantine.c), in the caller's
 * transaction, so they commit or roll back with the good rows and with the
 * offsets the worker stores after us.
 *
 * Memory. The batch context (deleted at the end) holds the quarantine
 * list; decoded rows live in a chunk context reset after each chunk is
 * flushed, and each message's parse scratch in a row context reset per
 * message. The chunk context keeps one large block across resets: freeing
 * and re-faulting fresh pages for every chunk costs more than decoding
 * them. A batch's memory is therefore bounded by one chunk plus its
 * quarantine rows, whatever the batch size or the backlog.
 *
 * Resources. Everything the inserter opens (relations, indexes, slots,
 * the bulk-insert buffer pin) is opened and closed inside the
 * subtransaction that uses it: a subtransaction cannot hand an open
 * relation to its parent, and takes it away on abort.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <malloc.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/tupconvert.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "core/errors.h"
#include "capture/land_internal.h"
#include "security/security.h"
#include "validate/validate.h"

/*
 * Rows per heap multi-insert, at most, as COPY's MAX_BUFFERED_TUPLES and
 * MAX_BUFFERED_BYTES: a flush comes after 1000 rows or after rows of 64 kB
 * of messages, whichever is first. The byte bound keeps the flushed tuples
 * in the CPU cache and the slots few: each slot made pins the tuple
 * descriptor in the resource owner, and typical events fill 64 kB in about
 * a hundred rows.
 */
#define LAND_MAX_BUFFERED	1000
#define LAND_MAX_BUFFERED_BYTES	65535
/* Relations (partitions) buffered at once before all are flushed. */
#define LAND_MAX_BUFFERS	16
/* Messages decoded before their rows are flushed and the memory reused. */
#define LAND_CHUNK			1000
/* The chunk context's kept block: a chunk of typical events fits in it. */
#define LAND_CHUNK_BLOCK	(4 * 1024 * 1024)

/* One batch in flight. */
typedef struct LandState
{
	CaptureTarget *target;
	CaptureRawMessage *messages;
	int			nmessages;
	MemoryContext batchcxt;
	MemoryContext chunkcxt;
	MemoryContext rowcxt;
	Relation	rel;
	CaptureQuarantineRow *q;
	int			nq;
	int			qcap;
	int64		landed;
	int64		skipped;		/* quarantined by a validate_row() trigger */
	ValidateRuleset *rules;		/* the source's ruleset, NULL: none */
	bool	   *recorded;		/* per message: its unique keys are recorded */
	int64		deduplicated;
} LandState;

/* A multi-insert buffer for one relation. */
typedef struct LandBuffer
{
	ResultRelInfo *rri;
	TupleTableSlot *slots[LAND_MAX_BUFFERED];
	int			nslots;			/* created */
	int			nused;
} LandBuffer;

/* The executor state rows are inserted with. */
typedef struct Inserter
{
	EState	   *estate;
	ResultRelInfo *rri;
	ModifyTableState *mtstate;
	PartitionTupleRouting *proute;
	CaptureRouteState *route;
	TupleTableSlot *rootslot;
	BulkInsertState bistate;
	LandBuffer *buffers[LAND_MAX_BUFFERS];	/* made when first needed */
	int			nbuffers;
	int			nbuffered;
	int64		nbuffered_bytes;	/* message bytes of the buffered rows */
	ResultRelInfo *trig_rri;	/* leaf whose triggers were last looked at */
	bool		trig_fire;		/* must its BEFORE ROW triggers fire? */
} Inserter;

static void LandQuarantine(LandState *ls, int msgidx, const char *rule,
						   const char *field, const char *reason);
static char *QuarantineAppId(LandState *ls, const CaptureRawMessage *m,
							 CampersoMessage *parsed);

/* ------------------------------------------------------------------------
 * Decode
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

	/* it passed validation but does not land: its unique keys are not seen */
	if (ls->recorded && ls->recorded[msgidx])
	{
		CampersoMessage msg;
		const char *r;
		char	   *why;

		ls->recorded[msgidx] = false;
		if (CaptureJsonParse(q->msg->payload, q->msg->payload_len, &msg, &r, &why))
			ValidateUnrecord(ls->rules, &msg);
	}
	q->ruleset = NULL;
	q->rule = rule;
	q->field = field ? pstrdup(field) : NULL;
	q->reason = reason ? pstrdup(reason) : pstrdup(rule);
	q->app_id = NULL;
	q->id = -1;
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

/* A value copied to the current (chunk) context: results of defaults. */
static Datum
CopyToChunk(Datum d, Form_pg_attribute att)
{
	if (att->attbyval)
		return d;
	return datumCopy(d, att->attbyval, att->attlen);
}

/*
 * Decodes message i into a typed row (in the chunk context) or a
 * quarantine row. Returns true for a row.
 */
static bool
DecodeMessage(LandState *ls, Inserter *ins, int i, Datum *values, bool *nulls)
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
	/* validation stage: schema drift, then the source's ruleset */
	ValidateObserveShape(t->source, &msg);
	if (ls->rules)
	{
		ValidateFailure vf;

		switch (ValidateMessage(ls->rules, &msg, &vf))
		{
			case VALIDATE_VALID:
				ls->recorded[i] = true;
				break;
			case VALIDATE_INVALID:
				LandQuarantine(ls, i, vf.rule, vf.field, vf.reason);
				ls->q[ls->nq - 1].ruleset = t->ruleset;
				ls->q[ls->nq - 1].app_id = QuarantineAppId(ls, m, &msg);
				return false;
			case VALIDATE_DUPLICATE:
				ls->deduplicated++;
				return false;
		}
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
		int			idx = CaptureTargetColumnForKey(t, msg.fields[c].name, msg.fields[c].name_len);

		if (idx >= 0)
			byfield[idx] = &msg.fields[c];
	}

	MemoryContextSwitchTo(ls->chunkcxt);
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
					MemoryContextSwitchTo(ls->chunkcxt);
				}
				if (f)
				{
					Form_pg_attribute att = TupleDescAttr(td, c);
					bool		ok;

					/*
					 * Converters (jsonb_in above all) leave garbage behind:
					 * run them in the row context and keep only the value.
					 * Those that allocate nothing but their value (text,
					 * uuid, ...) write it straight into the chunk.
					 */
					if (col->convert_in_place)
						ok = CaptureConvert(col, f, &values[c], &nulls[c], &fault);
					else
					{
						MemoryContextSwitchTo(ls->rowcxt);
						ok = CaptureConvert(col, f, &values[c], &nulls[c], &fault);
						MemoryContextSwitchTo(ls->chunkcxt);
					}
					if (!ok)
					{
						LandQuarantine(ls, i, fault.rule, fault.field, fault.reason);
						ls->q[ls->nq - 1].app_id = QuarantineAppId(ls, m, &msg);
						return false;
					}
					if (!nulls[c] && !att->attbyval && !col->convert_in_place)
						values[c] = datumCopy(values[c], false, att->attlen);
					continue;
				}
				break;
		}
		/* absent (or not taken from messages): the column default */
		if (col->defstate)
		{
			ExprContext *econtext = GetPerTupleExprContext(ins->estate);
			Datum		d = ExecEvalExprSwitchContext(col->defstate, econtext, &nulls[c]);

			if (!nulls[c])
				values[c] = CopyToChunk(d, TupleDescAttr(td, c));
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

/* ------------------------------------------------------------------------
 * Constraints
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

/* ------------------------------------------------------------------------
 * The inserter
 * ------------------------------------------------------------------------
 */

/* Opens the executor state for inserting into ls->rel. */
static Inserter *
InserterBegin(LandState *ls)
{
	Relation	rel = ls->rel;
	MemoryContext old = MemoryContextSwitchTo(ls->batchcxt);
	EState	   *estate = CreateExecutorState();
	Inserter   *ins;
	RangeTblEntry *rte;
	CaptureTarget *t = ls->target;
	int			c;

	/* everything in the executor's context, freed by InserterEnd */
	MemoryContextSwitchTo(estate->es_query_cxt);
	ins = palloc0(sizeof(Inserter));
	rte = makeNode(RangeTblEntry);
	ins->estate = estate;
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(ins->estate, list_make1(rte));
	ins->rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(ins->estate, ins->rri, 1);
	CheckValidResultRel(ins->rri, CMD_INSERT);
	ExecOpenIndices(ins->rri, false);
	ins->estate->es_output_cid = GetCurrentCommandId(true);

	/* partition routing wants a ModifyTableState; COPY makes one up too */
	ins->mtstate = makeNode(ModifyTableState);
	ins->mtstate->ps.plan = NULL;
	ins->mtstate->ps.state = ins->estate;
	ins->mtstate->operation = CMD_INSERT;
	ins->mtstate->mt_nrels = 1;
	ins->mtstate->resultRelInfo = ins->rri;
	ins->mtstate->rootResultRelInfo = ins->rri;
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		ins->proute = ExecSetupPartitionTupleRouting(ins->estate, rel);
		ins->rootslot = ExecInitExtraTupleSlot(ins->estate, RelationGetDescr(rel),
											   &TTSOpsVirtual);
		ins->route = CaptureRouteBegin(rel, ins->estate);
	}
	for (c = 0; c < t->natts; c++)
		t->cols[c].defstate = t->cols[c].defexpr ?
			ExecPrepareExpr(t->cols[c].defexpr, ins->estate) : NULL;

	AfterTriggerBeginQuery();
	ExecBSInsertTriggers(ins->estate, ins->rri);
	ins->bistate = GetBulkInsertState();
	MemoryContextSwitchTo(old);
	return ins;
}

/* Writes one buffer out: heap multi-insert, then indexes and row triggers. */
static void
FlushBuffer(LandState *ls, Inserter *ins, LandBuffer *buf)
{
	ResultRelInfo *rri = buf->rri;
	EState	   *estate = ins->estate;
	int			i;

	if (buf->nused == 0)
		return;
	ReleaseBulkInsertStatePin(ins->bistate);
	table_multi_insert(rri->ri_RelationDesc, buf->slots, buf->nused,
					   estate->es_output_cid, 0, ins->bistate);
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

/* Flushes every buffer: after it, no slot points into the chunk context. */
static void
InserterFlush(LandState *ls, Inserter *ins)
{
	int			b;

	for (b = 0; b < ins->nbuffers; b++)
		FlushBuffer(ls, ins, ins->buffers[b]);
	ins->nbuffered = 0;
	ins->nbuffered_bytes = 0;
}

/* Flushes and closes everything InserterBegin opened. */
static void
InserterEnd(LandState *ls, Inserter *ins)
{
	InserterFlush(ls, ins);
	FreeBulkInsertState(ins->bistate);
	ExecASInsertTriggers(ins->estate, ins->rri, NULL);
	AfterTriggerEndQuery(ins->estate);
	if (ins->route)
		CaptureRouteEnd(ins->route);
	ExecResetTupleTable(ins->estate->es_tupleTable, false);
	if (ins->proute)
		ExecCleanupTupleRouting(ins->mtstate, ins->proute);
	ExecCloseResultRelations(ins->estate);
	ExecCloseRangeTableRelations(ins->estate);
	FreeExecutorState(ins->estate);
}

/*
 * Whether a leaf's BEFORE ROW INSERT triggers must fire. They need not when
 * every one of them is camperso.validate_row() for the ruleset the land path
 * has just applied to the message: firing it would validate a second time
 * and find each message's dedupe key already taken by the first pass,
 * skipping every row as a duplicate. Skipping them also keeps the
 * multi-insert, which any other BEFORE ROW trigger turns off.
 */
static bool
LandMustFireBeforeTriggers(LandState *ls, TriggerDesc *td)
{
	Oid			nsp = get_namespace_oid("camperso", true);
	int			i;

	if (td == NULL || !td->trig_insert_before_row)
		return false;
	if (ls->target->ruleset == NULL || !OidIsValid(nsp))
		return true;
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];
		char	   *fname;

		if (!TRIGGER_FOR_ROW(t->tgtype) || !TRIGGER_FOR_BEFORE(t->tgtype) ||
			!TRIGGER_FOR_INSERT(t->tgtype) || t->tgenabled == TRIGGER_DISABLED)
			continue;
		if (t->tgnargs != 1 || strcmp(t->tgargs[0], ls->target->ruleset) != 0 ||
			get_func_namespace(t->tgfoid) != nsp)
			return true;
		fname = get_func_name(t->tgfoid);
		if (fname == NULL || strcmp(fname, "validate_row") != 0)
			return true;
	}
	return false;
}

/*
 * Fires a leaf's BEFORE ROW INSERT triggers; false when one skipped the
 * row. camperso.validate_row() for the ruleset the land path has just
 * applied lets the row pass (ValidateLandRuleset) rather than validate it
 * twice.
 */
static bool
LandFireBeforeTriggers(LandState *ls, EState *estate, ResultRelInfo *leaf,
					   TupleTableSlot *slot)
{
	volatile bool keep = false;

	ValidateLandRuleset = ls->target->ruleset;
	PG_TRY();
	{
		keep = ExecBRInsertTriggers(estate, leaf, slot);
	}
	PG_FINALLY();
	{
		ValidateLandRuleset = NULL;
	}
	PG_END_TRY();
	return keep;
}

/*
 * Inserts one decoded row (root layout; values in the chunk context), or
 * quarantines it when it violates a constraint.
 */
static void
InserterPut(LandState *ls, Inserter *ins, int msgidx, Datum *values, bool *nulls)
{
	EState	   *estate = ins->estate;
	ResultRelInfo *leaf = ins->rri;
	int			natts = RelationGetDescr(ls->rel)->natts;
	LandBuffer *buf = NULL;
	TupleTableSlot *slot;
	CaptureFault fault;
	bool		single;
	int			b;

	ResetPerTupleExprContext(estate);
	if (ins->proute)
	{
		ExecClearTuple(ins->rootslot);
		memcpy(ins->rootslot->tts_values, values, natts * sizeof(Datum));
		memcpy(ins->rootslot->tts_isnull, nulls, natts * sizeof(bool));
		ExecStoreVirtualTuple(ins->rootslot);
		leaf = ExecFindPartition(ins->mtstate, ins->rri, ins->proute, ins->rootslot, estate);
	}

	/* rows before one that meets a BEFORE ROW trigger are visible to it */
	if (ins->trig_rri != leaf)
	{
		ins->trig_fire = LandMustFireBeforeTriggers(ls, leaf->ri_TrigDesc);
		ins->trig_rri = leaf;
	}
	single = ins->trig_fire;
	if (single)
		InserterFlush(ls, ins);

	for (b = 0; b < ins->nbuffers; b++)
	{
		if (ins->buffers[b]->rri == leaf)
			buf = ins->buffers[b];
	}
	if (buf == NULL)
	{
		if (ins->nbuffers == LAND_MAX_BUFFERS)
		{
			/* many partitions at once: flush, and take the oldest buffer */
			InserterFlush(ls, ins);
			buf = ins->buffers[0];
			memmove(&ins->buffers[0], &ins->buffers[1], (LAND_MAX_BUFFERS - 1) * sizeof(LandBuffer *));
			ins->buffers[LAND_MAX_BUFFERS - 1] = buf;
			buf->rri = leaf;
			buf->nslots = 0;	/* the old slots fit another relation */
		}
		else
		{
			buf = MemoryContextAllocZero(estate->es_query_cxt, sizeof(LandBuffer));
			buf->rri = leaf;
			ins->buffers[ins->nbuffers++] = buf;
		}
	}
	if (buf->nused == buf->nslots)
	{
		MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);

		buf->slots[buf->nslots++] = table_slot_create(leaf->ri_RelationDesc,
													  &estate->es_tupleTable);
		MemoryContextSwitchTo(old);
	}
	slot = buf->slots[buf->nused];

	/* the row, in the layout of the relation it goes to */
	if (ins->proute && leaf->ri_RootToPartitionMap)
		slot = execute_attr_map_slot(leaf->ri_RootToPartitionMap->attrMap, ins->rootslot, slot);
	else
	{
		ExecClearTuple(slot);
		memcpy(slot->tts_values, values, natts * sizeof(Datum));
		memcpy(slot->tts_isnull, nulls, natts * sizeof(bool));
		ExecStoreVirtualTuple(slot);
	}
	slot->tts_tableOid = RelationGetRelid(leaf->ri_RelationDesc);

	if (single)
	{
		uint64		quarantined = ValidateTriggerQuarantined;
		uint64		deduplicated = ValidateTriggerDeduplicated;

		if (!LandFireBeforeTriggers(ls, estate, leaf, slot))
		{
			/*
			 * Skipped by a trigger: validate_row() (another ruleset) has
			 * quarantined it as a row of the table, or counted it a
			 * duplicate. Any other trigger's skip would leave no trace, so
			 * the message is quarantined here: nothing vanishes uncounted.
			 */
			if (ValidateTriggerDeduplicated != deduplicated)
				ls->deduplicated++;
			else if (ValidateTriggerQuarantined != quarantined)
				ls->skipped++;
			else
			{
				LandQuarantine(ls, msgidx, "skipped_by_trigger", NULL,
							   psprintf("a BEFORE INSERT trigger of %s returned NULL, so the row was not inserted",
										RelationGetRelationName(leaf->ri_RelationDesc)));
				ls->q[ls->nq - 1].app_id = QuarantineAppId(ls, &ls->messages[msgidx], NULL);
			}
			ExecClearTuple(slot);
			return;
		}
	}
	if (leaf->ri_RelationDesc->rd_att->constr &&
		leaf->ri_RelationDesc->rd_att->constr->has_generated_stored)
		ExecComputeStoredGenerated(leaf, estate, slot, CMD_INSERT);
	if (!CheckConstraints(leaf, slot, estate, &fault))
	{
		LandQuarantine(ls, msgidx, fault.rule, fault.field, fault.reason);
		ls->q[ls->nq - 1].app_id = QuarantineAppId(ls, &ls->messages[msgidx], NULL);
		ExecClearTuple(slot);
		return;
	}
	if (single)
	{
		List	   *recheck = NIL;

		if (leaf->ri_RelationDesc->rd_rel->relispartition)
			ExecPartitionCheck(leaf, slot, estate, true);
		table_tuple_insert(leaf->ri_RelationDesc, slot, estate->es_output_cid, 0, ins->bistate);
		if (leaf->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(leaf, slot, estate, false, false, NULL, NIL);
		ExecARInsertTriggers(estate, leaf, slot, recheck, NULL);
		list_free(recheck);
		ExecClearTuple(slot);
		ls->landed++;
		return;
	}
	buf->nused++;
	ins->nbuffered_bytes += ls->messages[msgidx].payload_len;
	if (++ins->nbuffered >= LAND_MAX_BUFFERED ||
		ins->nbuffered_bytes >= LAND_MAX_BUFFERED_BYTES)
		InserterFlush(ls, ins);
}

/* ------------------------------------------------------------------------
 * The batch
 * ------------------------------------------------------------------------
 */

/*
 * Lands messages [first, first + count): decode, route, insert. Opens and
 * closes everything it uses, so it runs inside a subtransaction.
 */
static void
LandRange(LandState *ls, int first, int count)
{
	CaptureTarget *t = ls->target;
	Inserter   *ins = InserterBegin(ls);
	int			inchunk = 0;
	int			i;

	for (i = first; i < first + count; i++)
	{
		Datum	   *values;
		bool	   *nulls;

		CHECK_FOR_INTERRUPTS();
		if (inchunk == LAND_CHUNK)
		{
			InserterFlush(ls, ins);
			MemoryContextReset(ls->chunkcxt);
			inchunk = 0;
		}
		MemoryContextSwitchTo(ls->chunkcxt);
		values = palloc(t->natts * sizeof(Datum));
		nulls = palloc(t->natts * sizeof(bool));
		if (!DecodeMessage(ls, ins, i, values, nulls))
		{
			MemoryContextReset(ls->rowcxt);
			continue;
		}
		MemoryContextReset(ls->rowcxt);
		MemoryContextSwitchTo(ls->chunkcxt);
		inchunk++;

		if (ins->route)
		{
			Oid			parent;
			char	   *value;
			char	   *reason = NULL;

			if (!CaptureRouteCheck(ins->route, values, nulls, &parent, &value))
			{
				bool		made;

				/* close the inserter so that routing meets the new partition */
				InserterEnd(ls, ins);
				made = EnsurePartition(ls, parent, value, &reason);
				ins = InserterBegin(ls);
				if (!made || !CaptureRouteCheck(ins->route, values, nulls, &parent, &value))
				{
					LandQuarantine(ls, i, "no_partition", NULL,
								   reason ? reason : "camperso.ensure_partition() made no partition for the row");
					continue;
				}
			}
		}
		InserterPut(ls, ins, i, values, nulls);
	}
	InserterEnd(ls, ins);
	MemoryContextReset(ls->chunkcxt);
	MemoryContextSwitchTo(ls->batchcxt);
}

/*
 * Runs LandRange(first, count) in a subtransaction. Returns true when it
 * committed; on a data or integrity error (classes 22, 23) rolls back,
 * undoes what the attempt counted and returns false with *edata; raises
 * anything else.
 */
static bool
LandRangeGuarded(LandState *ls, int first, int count, ErrorData **edata)
{
	ResourceOwner owner = CurrentResourceOwner;
	int64		landed = ls->landed;
	int64		skipped = ls->skipped;
	int64		deduplicated = ls->deduplicated;
	int			nq = ls->nq;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(ls->batchcxt);
	PG_TRY();
	{
		LandRange(ls, first, count);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(ls->batchcxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(ls->batchcxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(ls->batchcxt);
		CurrentResourceOwner = owner;
		MemoryContextReset(ls->chunkcxt);
		MemoryContextReset(ls->rowcxt);
		if (CaptureRuleForSqlState((*edata)->sqlerrcode) == NULL)
			ReThrowError(*edata);
		ls->landed = landed;
		ls->skipped = skipped;
		ls->deduplicated = deduplicated;
		ls->nq = nq;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * A process that lands batches allocates and frees tens of megabytes per
 * batch (the payloads, the decoded chunk, the executor's slots). glibc
 * gives freed memory above its trim threshold back to the kernel at once,
 * and every batch then page-faults the same memory in again, which on a
 * virtual machine costs more than decoding it. So the first batch of a
 * process asks glibc to keep up to LAND_MALLOC_KEEP bytes of freed heap
 * for reuse, and to serve blocks below LAND_MALLOC_MMAP from the heap.
 * Only processes that land batches (source workers, callers of
 * camperso.ingest_batch) are affected; their resident size stays bounded
 * by their largest batch plus that reserve.
 */
#define LAND_MALLOC_KEEP	(64 * 1024 * 1024)
#define LAND_MALLOC_MMAP	(32 * 1024 * 1024)

static void
LandTuneMalloc(void)
{
	static bool done = false;

	if (done)
		return;
	done = true;
#ifdef M_TRIM_THRESHOLD
	mallopt(M_MMAP_THRESHOLD, LAND_MALLOC_MMAP);
	mallopt(M_TRIM_THRESHOLD, LAND_MALLOC_KEEP);
#endif
}

/* Copies the batch's quarantine rows, as written, into context for the caller. */
static void
LandKeepQuarantine(LandState *ls, MemoryContext context, CaptureLandResult *result)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	int			i;

	result->quarantine = palloc(sizeof(CaptureQuarantined) * ls->nq);
	for (i = 0; i < ls->nq; i++)
	{
		CaptureQuarantineRow *q = &ls->q[i];
		CaptureQuarantined *k = &result->quarantine[i];

		k->msg = q->msg;
		k->id = q->id;
		k->rule = pstrdup(q->rule);
		k->field = q->field ? pstrdup(q->field) : NULL;
		k->reason = pstrdup(q->reason ? q->reason : q->rule);
		/* binary: an envelope or a key may hold NUL bytes */
		k->payload = q->stored_payload == q->msg->payload ? q->msg->payload :
			memcpy(palloc(q->stored_payload_len), q->stored_payload, q->stored_payload_len);
		k->payload_len = q->stored_payload_len;
		k->key = q->stored_key == NULL || q->stored_key == q->msg->key ? q->stored_key :
			memcpy(palloc(q->stored_key_len + 1), q->stored_key, q->stored_key_len);
		k->key_len = q->stored_key_len;
		k->payload_encrypted = q->stored_encrypted;
	}
	result->nquarantine = ls->nq;
	MemoryContextSwitchTo(old);
}

/* See capture.h. */
void
CaptureLandBatch(CaptureTarget *target, CaptureRawMessage *messages,
				 int nmessages, CaptureLandResult *result,
				 MemoryContext keep_context)
{
	MemoryContext callercxt = CurrentMemoryContext;
	LandState	ls;
	ErrorData  *edata = NULL;
	int			i;

	LandTuneMalloc();
	memset(result, 0, sizeof(*result));
	memset(&ls, 0, sizeof(ls));
	ls.target = target;
	ls.messages = messages;
	ls.nmessages = nmessages;
	ls.batchcxt = AllocSetContextCreate(callercxt, "camperso land batch",
										ALLOCSET_DEFAULT_SIZES);
	ls.chunkcxt = AllocSetContextCreate(ls.batchcxt, "camperso land chunk",
										LAND_CHUNK_BLOCK, LAND_CHUNK_BLOCK,
										ALLOCSET_DEFAULT_MAXSIZE);
	ls.rowcxt = AllocSetContextCreate(ls.batchcxt, "camperso land row",
									  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(ls.batchcxt);
	ls.rel = table_open(target->relid, RowExclusiveLock);
	if (target->ruleset)
	{
		ls.rules = ValidateGetRuleset(target->ruleset);
		ls.recorded = palloc0(Max(nmessages, 1) * sizeof(bool));
	}

	if (nmessages > 0 && !LandRangeGuarded(&ls, 0, nmessages, &edata))
	{
		ereport(DEBUG1,
				(errmsg("camperso: a batch of source \"%s\" met \"%s\"; landing it message by message",
						target->source, edata->message)));
		for (i = 0; i < nmessages; i++)
		{
			if (LandRangeGuarded(&ls, i, 1, &edata))
				continue;
			LandQuarantine(&ls, i, CaptureRuleForSqlState(edata->sqlerrcode),
						   edata->column_name,
						   edata->detail ? psprintf("%s: %s", edata->message, edata->detail) :
						   edata->message);
			ls.q[ls.nq - 1].app_id = QuarantineAppId(&ls, &messages[i], NULL);
		}
	}

	MemoryContextSwitchTo(ls.batchcxt);
	CaptureQuarantineInsert(target, ls.q, ls.nq);

	result->messages = nmessages;
	result->landed = ls.landed;
	result->quarantined = ls.nq + ls.skipped;
	result->deduplicated = ls.deduplicated;
	if (keep_context != NULL && ls.nq > 0)
		LandKeepQuarantine(&ls, keep_context, result);
	for (i = 0; i < nmessages; i++)
		result->bytes += messages[i].payload_len;
	if (result->landed + result->quarantined + result->deduplicated != result->messages)
		elog(ERROR, "camperso: batch of %d messages counted %lld landed and %lld quarantined",
			 nmessages, (long long) result->landed, (long long) result->quarantined);

	table_close(ls.rel, NoLock);
	MemoryContextSwitchTo(callercxt);
	MemoryContextDelete(ls.batchcxt);
}
