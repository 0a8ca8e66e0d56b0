/*-------------------------------------------------------------------------
 *
 * quarantine.c
 *	  Writes the messages capture could not land into camperso.quarantine,
 *	  byte-exact, in the batch's transaction, with heap multi-insert.
 *
 * The quarantine is written by the land path on behalf of whoever runs it
 * (a source worker as the source owner, or a camperso.ingest() caller), so
 * no privilege on camperso.quarantine is asked of them: the table is the
 * extension's own, and what goes in is exactly what they sent. Columns are
 * found by name, so columns other stages add later simply take their
 * defaults. Any error here is not a message's fault and is raised: the
 * caller retries the batch.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "core/errors.h"
#include "capture/land_internal.h"
#include "security/security.h"

#define QUARANTINE_MAX_BUFFERED 1000

/* Columns the land path fills, by name. */
enum
{
	QC_SOURCE,
	QC_TARGET,
	QC_TOPIC,
	QC_PARTITION,
	QC_OFFSET,
	QC_KEY,
	QC_RECEIVED_AT,
	QC_PAYLOAD,
	QC_RULESET,
	QC_RULE,
	QC_FIELD,
	QC_REASON,
	QC_APP_ID,
	QC_COUNT
};

static const char *const quarantine_columns[QC_COUNT] = {
	"source", "target", "topic", "partition", "offset", "key", "received_at",
	"payload", "ruleset", "rule", "field", "reason", "app_id"
};

/* The OID of camperso.quarantine; an error if the extension is broken. */
static Oid
QuarantineRelid(void)
{
	Oid			nsp = get_namespace_oid("camperso", false);
	Oid			relid = get_relname_relid("quarantine", nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table camperso.quarantine does not exist"),
				 errhint("Reinstall the camperso extension.")));
	return relid;
}

static bytea *
MakeBytea(const char *data, int len)
{
	bytea	   *b = palloc(len + VARHDRSZ);

	SET_VARSIZE(b, len + VARHDRSZ);
	memcpy(VARDATA(b), data, len);
	return b;
}

static void
FlushQuarantine(ResultRelInfo *rri, EState *estate, TupleTableSlot **slots, int n,
				BulkInsertState bistate)
{
	CommandId	cid = GetCurrentCommandId(true);
	int			i;

	if (n == 0)
		return;
	table_multi_insert(rri->ri_RelationDesc, slots, n, cid, 0, bistate);
	for (i = 0; i < n; i++)
	{
		List	   *recheck = NIL;

		ResetPerTupleExprContext(estate);
		if (rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL);
		ExecARInsertTriggers(estate, rri, slots[i], recheck, NULL);
		list_free(recheck);
		ExecClearTuple(slots[i]);
	}
}

/*
 * Inserts nrows quarantine rows for target. Must be called in the batch's
 * transaction (not inside a subtransaction that may roll back).
 */
void
CaptureQuarantineInsert(CaptureTarget *target, CaptureQuarantineRow *rows, int nrows)
{
	Relation	rel;
	TupleDesc	tupdesc;
	EState	   *estate;
	ResultRelInfo *rri;
	AttrNumber	attnos[QC_COUNT];
	AttrNumber	encrypted_attno;
	AttrNumber	id_attno;
	ExprState **defaults;
	TupleTableSlot *slots[QUARANTINE_MAX_BUFFERED];
	BulkInsertState bistate;
	int			nslots = 0;
	int			nbuffered = 0;
	int			i,
				c;
	Datum		source_d,
				target_d,
				topic_d;

	if (nrows == 0)
		return;

	rel = table_open(QuarantineRelid(), RowExclusiveLock);
	tupdesc = RelationGetDescr(rel);
	estate = CreateExecutorState();
	estate->es_output_cid = GetCurrentCommandId(true);
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	AfterTriggerBeginQuery();

	for (c = 0; c < QC_COUNT; c++)
	{
		attnos[c] = InvalidAttrNumber;
		for (i = 0; i < tupdesc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, i);

			if (!att->attisdropped && strcmp(NameStr(att->attname), quarantine_columns[c]) == 0)
				attnos[c] = att->attnum;
		}
		if (attnos[c] == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("camperso.quarantine has no column \"%s\"", quarantine_columns[c]),
					 errhint("Reinstall the camperso extension.")));
	}

	/*
	 * payloads of a source with pii fields are envelopes (security stage);
	 * the id (an identity default) is handed back for the dead-letter topic
	 */
	encrypted_attno = InvalidAttrNumber;
	id_attno = InvalidAttrNumber;
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), "payload_encrypted") == 0)
			encrypted_attno = i + 1;
		else if (strcmp(NameStr(att->attname), "id") == 0 && att->atttypid == INT8OID)
			id_attno = i + 1;
	}

	/* every column the land path does not fill takes its default */
	defaults = palloc0(tupdesc->natts * sizeof(ExprState *));
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		bool		filled = false;
		Node	   *def;

		for (c = 0; c < QC_COUNT; c++)
			filled |= (attnos[c] == att->attnum);
		if (filled || att->attisdropped || att->attgenerated)
			continue;
		def = build_column_default(rel, att->attnum);
		if (def)
			defaults[i] = ExecPrepareExpr((Expr *) def, estate);
	}

	source_d = PointerGetDatum(cstring_to_text(target->source));
	target_d = PointerGetDatum(cstring_to_text(target->relname));
	topic_d = PointerGetDatum(cstring_to_text(target->topic));
	bistate = GetBulkInsertState();

	for (i = 0; i < nrows; i++)
	{
		CaptureQuarantineRow *q = &rows[i];
		const CaptureRawMessage *m = q->msg;
		TupleTableSlot *slot;
		Datum	   *v;
		bool	   *n;
		int			a;

		if (nbuffered == nslots)
			slots[nslots++] = table_slot_create(rel, NULL);
		slot = slots[nbuffered];
		ExecClearTuple(slot);
		v = slot->tts_values;
		n = slot->tts_isnull;
		for (a = 0; a < tupdesc->natts; a++)
		{
			n[a] = true;
			v[a] = (Datum) 0;
			if (defaults[a])
				v[a] = ExecEvalExprSwitchContext(defaults[a], GetPerTupleExprContext(estate), &n[a]);
		}
#define SET(col, datum) do { v[attnos[col] - 1] = (datum); n[attnos[col] - 1] = false; } while (0)
		SET(QC_SOURCE, source_d);
		SET(QC_TARGET, target_d);
		SET(QC_TOPIC, topic_d);
		if (m->partition >= 0)
			SET(QC_PARTITION, Int32GetDatum(m->partition));
		if (m->offset >= 0)
			SET(QC_OFFSET, Int64GetDatum(m->offset));
		/* what the row holds, handed back for the dead-letter copy */
		q->stored_payload = m->payload;
		q->stored_payload_len = m->payload_len;
		q->stored_encrypted = false;
		q->stored_key = NULL;
		q->stored_key_len = 0;
		if (m->key)
		{
			const char *key = m->key;
			int			key_len = m->key_len;

			if (SecurityPiiKey(target->pii, &key, &key_len))
			{
				SET(QC_KEY, PointerGetDatum(MakeBytea(key, key_len)));
				q->stored_key = key;
				q->stored_key_len = key_len;
			}
		}
		SET(QC_RECEIVED_AT, TimestampTzGetDatum(m->received_at));
		if (target->pii)
		{
			bool		encrypted;
			bytea	   *stored = SecurityQuarantineValue(target->pii, m->payload,
														 m->payload_len, &encrypted);

			SET(QC_PAYLOAD, PointerGetDatum(stored));
			if (encrypted)
			{
				q->stored_payload = VARDATA(stored);
				q->stored_payload_len = VARSIZE(stored) - VARHDRSZ;
				q->stored_encrypted = true;
				if (encrypted_attno != InvalidAttrNumber)
				{
					v[encrypted_attno - 1] = BoolGetDatum(true);
					n[encrypted_attno - 1] = false;
				}
			}
		}
		else
			SET(QC_PAYLOAD, PointerGetDatum(MakeBytea(m->payload, m->payload_len)));
		if (q->ruleset)
			SET(QC_RULESET, PointerGetDatum(cstring_to_text(q->ruleset)));
		SET(QC_RULE, PointerGetDatum(cstring_to_text(q->rule)));
		if (q->field)
			SET(QC_FIELD, PointerGetDatum(cstring_to_text(q->field)));
		SET(QC_REASON, PointerGetDatum(cstring_to_text(q->reason ? q->reason : q->rule)));
		if (q->app_id)
			SET(QC_APP_ID, PointerGetDatum(cstring_to_text(q->app_id)));
#undef SET
		if (id_attno != InvalidAttrNumber && !n[id_attno - 1])
			q->id = DatumGetInt64(v[id_attno - 1]);
		ExecStoreVirtualTuple(slot);
		/* the defaults were computed in per-tuple memory: keep them */
		ExecMaterializeSlot(slot);
		ResetPerTupleExprContext(estate);
		nbuffered++;
		if (nbuffered == QUARANTINE_MAX_BUFFERED)
		{
			FlushQuarantine(rri, estate, slots, nbuffered, bistate);
			nbuffered = 0;
		}
	}
	FlushQuarantine(rri, estate, slots, nbuffered, bistate);

	AfterTriggerEndQuery(estate);
	FreeBulkInsertState(bistate);
	for (i = 0; i < nslots; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}
