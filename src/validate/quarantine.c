/*-------------------------------------------------------------------------
 *
 * quarantine.c
 *	  Writing to camperso.quarantine from C, and the C half of
 *	  camperso.replay_quarantine() for messages of a source (the SQL half,
 *	  in validate.sql, walks the rows and re-inserts trigger-diverted rows
 *	  itself).
 *
 * Inserts run as the owner of the camperso schema: the role whose row is
 * diverted (a camperso_ingest client, any role inserting into a table with
 * the trigger) needs no privilege on the quarantine, and cannot read it.
 *
 * A row is written straight into the heap and its indexes (about 4 us)
 * rather than through an SPI INSERT (about 25 us: executor start-up, plan
 * revalidation, a command counter bump), with the same effect: columns not
 * given get their defaults (the identity, quarantined_at, whatever a later
 * stage added), NOT NULL is checked, every index is maintained. Whatever the
 * direct way does not do itself (triggers, CHECK constraints, generated
 * columns, row-level security applying to the owner, deferrable indexes, a
 * quarantine that is no plain table) sends the row through SPI, as before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "capture/capture.h"
#include "validate/validate.h"

#define QUARANTINE_NARGS 13

static SPIPlanPtr insert_plan = NULL;

/* The columns ValidateQuarantineInsert fills, in the order of its SPI INSERT. */
static const char *const quarantine_columns[QUARANTINE_NARGS] = {
	"source", "target", "topic", "partition", "offset", "key", "received_at",
	"payload", "ruleset", "rule", "field", "reason", "app_id"
};

/*
 * The quarantine's column defaults, planned once: building them per row
 * (the identity's sequence looked up in pg_depend, each default parsed from
 * its stored text) cost more than the insert itself. Kept until a relcache
 * invalidation of the quarantine (ALTER TABLE, the extension dropped); the
 * descriptor it was built for is checked too.
 */
typedef struct QuarantineDefaults
{
	Oid			relid;
	TupleDesc	desc;
	MemoryContext cxt;
	int			natts;
	int		   *given;			/* per attribute: argument index, -1 none */
	ExprState **defaults;		/* per attribute not given: NULL or its default */
} QuarantineDefaults;

static QuarantineDefaults qdefaults;
static bool qdefaults_callback = false;

static void
QuarantineDefaultsInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == qdefaults.relid)
		qdefaults.relid = InvalidOid;
}

static QuarantineDefaults *
GetQuarantineDefaults(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext oldcxt;
	int			i;

	if (qdefaults.relid == RelationGetRelid(rel) && qdefaults.desc == desc &&
		qdefaults.natts == desc->natts)
		return &qdefaults;
	if (!qdefaults_callback)
	{
		CacheRegisterRelcacheCallback(QuarantineDefaultsInvalidate, (Datum) 0);
		qdefaults_callback = true;
	}
	if (qdefaults.cxt != NULL)
		MemoryContextDelete(qdefaults.cxt);
	qdefaults.relid = InvalidOid;
	qdefaults.cxt = AllocSetContextCreate(CacheMemoryContext, "camperso quarantine defaults",
										  ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(qdefaults.cxt);
	qdefaults.natts = desc->natts;
	qdefaults.given = palloc(Max(desc->natts, 1) * sizeof(int));
	qdefaults.defaults = palloc0(Max(desc->natts, 1) * sizeof(ExprState *));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		int			a;

		qdefaults.given[i] = -1;
		if (att->attisdropped)
			continue;
		for (a = 0; a < QUARANTINE_NARGS; a++)
			if (strcmp(NameStr(att->attname), quarantine_columns[a]) == 0)
				break;
		if (a < QUARANTINE_NARGS)
			qdefaults.given[i] = a;
		else
		{
			Node	   *def = build_column_default(rel, att->attnum);

			if (def != NULL)
				qdefaults.defaults[i] = ExecInitExpr(expression_planner((Expr *) def), NULL);
		}
	}
	MemoryContextSwitchTo(oldcxt);
	qdefaults.desc = desc;
	qdefaults.relid = RelationGetRelid(rel);
	return &qdefaults;
}

/* Whether rel can take a row the direct way (see the file header). */
static bool
DirectInsertable(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	return rel->rd_rel->relkind == RELKIND_RELATION &&
		rel->trigdesc == NULL &&
		(constr == NULL || (constr->num_check == 0 && !constr->has_generated_stored)) &&
		check_enable_rls(RelationGetRelid(rel), InvalidOid, true) != RLS_ENABLED;
}

/*
 * Writes one quarantine row into the heap and its indexes: args/nulls as
 * for the SPI INSERT. Returns false, having written nothing, when the
 * quarantine needs the executor's full path (the caller then uses SPI).
 * Runs as the owner (the caller switched).
 */
static bool
DirectInsert(Datum *args, const char *nulls)
{
	Oid			nsp = get_namespace_oid("camperso", false);
	Oid			relid = get_relname_relid("quarantine", nsp);
	Relation	rel;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	ExprContext *econtext;
	QuarantineDefaults *qd;
	bool		pushed_snapshot;
	int			i;

	if (!OidIsValid(relid))
		return false;			/* the SPI INSERT raises the error */
	rel = table_open(relid, RowExclusiveLock);
	if (!DirectInsertable(rel))
	{
		table_close(rel, NoLock);
		return false;
	}
	desc = RelationGetDescr(rel);

	estate = CreateExecutorState();
	estate->es_output_cid = GetCurrentCommandId(true);
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		if (!rri->ri_IndexRelationDescs[i]->rd_index->indimmediate)
		{
			ExecCloseIndices(rri);
			FreeExecutorState(estate);
			table_close(rel, NoLock);
			return false;
		}
	}
	pushed_snapshot = !ActiveSnapshotSet();
	if (pushed_snapshot)
		PushActiveSnapshot(GetTransactionSnapshot());

	slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	econtext = GetPerTupleExprContext(estate);
	qd = GetQuarantineDefaults(rel);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		int			a = qd->given[i];

		slot->tts_values[i] = (Datum) 0;
		slot->tts_isnull[i] = true;
		if (a >= 0)
		{
			/* given: its value, or NULL (as in the VALUES list) */
			if (nulls[a] != 'n')
			{
				slot->tts_values[i] = args[a];
				slot->tts_isnull[i] = false;
			}
		}
		else if (qd->defaults[i] != NULL)
			slot->tts_values[i] = ExecEvalExprSwitchContext(qd->defaults[i], econtext,
															&slot->tts_isnull[i]);
		if (att->attnotnull && slot->tts_isnull[i])
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
							NameStr(att->attname), RelationGetRelationName(rel)),
					 errtablecol(rel, att->attnum)));
	}
	ExecStoreVirtualTuple(slot);
	table_tuple_insert(rel, slot, estate->es_output_cid, 0, NULL);
	if (rri->ri_NumIndices > 0)
		list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL));

	if (pushed_snapshot)
		PopActiveSnapshot();
	ExecDropSingleTupleTableSlot(slot);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);	/* the lock is kept to the end of the transaction */
	return true;
}

/*
 * Inserts one quarantine row. NULL strings (and partition/offset < 0, a
 * received_at of 0) become SQL NULLs or column defaults. payload is stored
 * byte for byte.
 */
void
ValidateQuarantineInsert(const char *source, const char *target, const char *topic,
						 int32 partition, int64 offset,
						 const char *key, int key_len, TimestampTz received_at,
						 const char *payload, int payload_len,
						 const char *ruleset, const char *rule, const char *field,
						 const char *reason, const char *app_id)
{
	Datum		args[QUARANTINE_NARGS];
	char		nulls[QUARANTINE_NARGS + 1];
	Oid			argtypes[QUARANTINE_NARGS] = {
		TEXTOID, TEXTOID, TEXTOID, INT4OID, INT8OID, BYTEAOID, TIMESTAMPTZOID,
		BYTEAOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID
	};
	bytea	   *pay;
	bytea	   *k = NULL;
	ValidateSpi spi;
	int			ret;

	memset(nulls, ' ', QUARANTINE_NARGS);
	nulls[QUARANTINE_NARGS] = '\0';

#define TEXT_ARG(i, s) \
	do { if ((s) != NULL) args[i] = CStringGetTextDatum(s); else { args[i] = (Datum) 0; nulls[i] = 'n'; } } while (0)

	TEXT_ARG(0, source);
	TEXT_ARG(1, target);
	TEXT_ARG(2, topic);
	args[3] = Int32GetDatum(partition);
	if (partition < 0)
		nulls[3] = 'n';
	args[4] = Int64GetDatum(offset);
	if (offset < 0)
		nulls[4] = 'n';
	if (key != NULL)
	{
		k = palloc(VARHDRSZ + key_len);
		SET_VARSIZE(k, VARHDRSZ + key_len);
		memcpy(VARDATA(k), key, key_len);
		args[5] = PointerGetDatum(k);
	}
	else
	{
		args[5] = (Datum) 0;
		nulls[5] = 'n';
	}
	args[6] = TimestampTzGetDatum(received_at != 0 ? received_at : GetCurrentTimestamp());
	pay = palloc(VARHDRSZ + payload_len);
	SET_VARSIZE(pay, VARHDRSZ + payload_len);
	memcpy(VARDATA(pay), payload, payload_len);
	args[7] = PointerGetDatum(pay);
	TEXT_ARG(8, ruleset);
	TEXT_ARG(9, rule);
	TEXT_ARG(10, field);
	TEXT_ARG(11, reason);
	TEXT_ARG(12, app_id);
#undef TEXT_ARG

	{
		Oid			save_userid;
		int			save_sec;
		bool		done;

		ValidateSwitchToOwner(&save_userid, &save_sec);
		done = DirectInsert(args, nulls);
		ValidateRestoreUser(save_userid, save_sec);
		if (done)
		{
			pfree(pay);
			if (k)
				pfree(k);
			return;
		}
	}

	ValidateSpiBegin(&spi);
	ret = SPI_execute_plan(ValidatePrepare(&insert_plan,
										   "INSERT INTO camperso.quarantine"
						   " (source, target, topic, partition, \"offset\", key, received_at,"
						   "  payload, ruleset, rule, field, reason, app_id)"
										   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
										   QUARANTINE_NARGS, argtypes),
						   args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "inserting into camperso.quarantine failed: %s", SPI_result_code_string(ret));
	ValidateSpiEnd(&spi);

	pfree(pay);
	if (k)
		pfree(k);
}

/* The ruleset of source name (NULL when it has none); error if unknown. */
static char *
SourceRuleset(const char *name)
{
	static SPIPlanPtr plan = NULL;
	ValidateSpi spi;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	char	   *ruleset = NULL;
	bool		found;
	int			ret;

	args[0] = CStringGetTextDatum(name);
	ValidateSpiBegin(&spi);
	ret = SPI_execute_plan(ValidatePrepare(&plan,
										   "SELECT ruleset FROM camperso.sources"
										   " WHERE name OPERATOR(pg_catalog.=) $1",
										   1, argtypes),
						   args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading camperso.sources failed: %s", SPI_result_code_string(ret));
	found = SPI_processed == 1;
	if (found)
	{
		char	   *r = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (r != NULL)
			ruleset = MemoryContextStrdup(spi.caller_cxt, r);
	}
	ValidateSpiEnd(&spi);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("source \"%s\" does not exist", name),
				 errhint("The quarantined message came from a source that was dropped; recreate it to replay the message.")));
	return ruleset;
}

static Datum
ReplayResult(FunctionCallInfo fcinfo, const char *outcome, const char *rule,
			 const char *field, const char *reason)
{
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = CStringGetTextDatum(outcome);
#define OPT(i, s) do { if (s) values[i] = CStringGetTextDatum(s); else nulls[i] = true; } while (0)
	OPT(1, rule);
	OPT(2, field);
	OPT(3, reason);
#undef OPT
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

PG_FUNCTION_INFO_V1(camperso_replay_message);

/*
 * camperso._replay_message(source, payload, key, partition, offset,
 * received_at) RETURNS (outcome, rule, field, reason): re-validates a
 * quarantined message of a source against the source's ruleset as it is
 * now and, when it passes, lands it through the source's land path
 * (CaptureLandBatch) with its Kafka metadata. Outcomes: landed,
 * deduplicated, quarantined (still breaks a rule: nothing written),
 * requarantined (the land path quarantined it again, as a new row).
 */
Datum
camperso_replay_message(PG_FUNCTION_ARGS)
{
	char	   *source;
	bytea	   *payload;
	bytea	   *key = NULL;
	char	   *ruleset;
	CampersoMessage msg;
	const char *rule;
	char	   *reason;
	CaptureTarget *target;
	CaptureRawMessage raw;
	CaptureLandResult res;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source and payload must not be null")));
	source = text_to_cstring(PG_GETARG_TEXT_PP(0));
	payload = PG_GETARG_BYTEA_PP(1);
	if (!PG_ARGISNULL(2))
		key = PG_GETARG_BYTEA_PP(2);

	ruleset = SourceRuleset(source);
	if (!CaptureJsonParse(VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload), &msg, &rule, &reason))
		return ReplayResult(fcinfo, "quarantined", rule, NULL, reason);
	if (ruleset != NULL)
	{
		ValidateFailure vf;

		switch (ValidateMessageCheck(ValidateGetRuleset(ruleset), &msg, &vf))
		{
			case VALIDATE_VALID:
				break;
			case VALIDATE_INVALID:
				return ReplayResult(fcinfo, "quarantined", vf.rule, vf.field, vf.reason);
			case VALIDATE_DUPLICATE:
				return ReplayResult(fcinfo, "deduplicated", vf.rule, vf.field, vf.reason);
		}
	}

	target = CaptureTargetOpen(source);
	raw.payload = VARDATA_ANY(payload);
	raw.payload_len = VARSIZE_ANY_EXHDR(payload);
	raw.key = key ? VARDATA_ANY(key) : NULL;
	raw.key_len = key ? VARSIZE_ANY_EXHDR(key) : 0;
	raw.partition = PG_ARGISNULL(3) ? -1 : PG_GETARG_INT32(3);
	raw.offset = PG_ARGISNULL(4) ? -1 : PG_GETARG_INT64(4);
	raw.received_at = PG_ARGISNULL(5) ? GetCurrentTimestamp() : PG_GETARG_TIMESTAMPTZ(5);
	CaptureLandBatch(target, &raw, 1, &res, NULL);

	if (res.landed == 1)
		return ReplayResult(fcinfo, "landed", NULL, NULL, NULL);
	if (res.deduplicated == 1)
		return ReplayResult(fcinfo, "deduplicated", NULL, NULL, NULL);
	return ReplayResult(fcinfo, "requarantined", NULL, NULL,
						"the land path quarantined the message again; see its new quarantine row");
}
