/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  The trigger way in: camperso.validate_row('ruleset'), a BEFORE INSERT
 *	  FOR EACH ROW trigger that diverts bad rows of any INSERT or COPY to
 *	  the quarantine, and the per-transaction counts of what it did.
 *
 * A row is seen as a message whose fields are its columns (column name ->
 * field). Each column type maps to a JSON kind: text types are strings,
 * integers and numerics numbers, boolean a boolean, json/jsonb whatever
 * their content is, everything else (uuid, timestamptz included) a string
 * holding the column's text form. A "type" rule that the column type
 * already guarantees (uuid on a uuid column, timestamptz on timestamptz,
 * int on int4) is skipped, and typed columns hand the engine their binary
 * value (uuid bytes, timestamps, integers) instead of text, so a row costs
 * no output-function calls unless a rule needs the text.
 *
 * The binding (field -> attribute, which rules to skip) is built once per
 * statement in fn_extra and rebuilt when the rules change.
 *
 * Counts: received = landed + quarantined + deduplicated, per ruleset and
 * target, kept per subtransaction in memory and written at pre-commit as
 * one row per (ruleset, target) into camperso.validation_counts, so they
 * are exactly as transactional as the rows they count.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "core/errors.h"
#include "validate/validate.h"

typedef enum ColumnClass
{
	CC_TEXT,					/* text, varchar, bpchar, name-like varlena */
	CC_UUID,
	CC_TIMESTAMPTZ,
	CC_TIMESTAMP,
	CC_DATE,
	CC_INT2,
	CC_INT4,
	CC_INT8,
	CC_BOOL,
	CC_JSONB,
	CC_NUMBER,					/* numeric, float4, float8: text form */
	CC_OTHER					/* anything else: text form, a string */
} ColumnClass;

typedef struct RowField
{
	AttrNumber	attnum;			/* 0: no such column */
	ColumnClass cls;
	bool		needs_text;
	FmgrInfo	outfn;
	char		buf[40];		/* text of a uuid or integer */
} RowField;

/* How the rules of a ruleset read the rows of one relation. */
typedef struct RowBinding
{
	ValidateRuleset *rs;
	uint64		generation;
	TupleDesc	tupdesc;
	Oid			relid;
	RowField   *fields;
	bool	   *skip;			/* per rule: statically satisfied */
	ValidateValue *values;
	AttrNumber	maxattnum;
	AttrNumber	app_id_attnum;
	char	   *target;			/* schema-qualified, quoted */
} RowBinding;

typedef struct CountsEntry
{
	char		ruleset[NAMEDATALEN];
	/*
	 * The ruleset last counted here, to spare a strcmp per row: one
	 * (address, generation) is one ruleset, since an address is only reused
	 * after an invalidation, which starts a new generation.
	 */
	const ValidateRuleset *rs;
	uint64		rs_generation;
	Oid			relid;
	SubTransactionId subid;
	int64		received;
	int64		landed;
	int64		quarantined;
	int64		deduplicated;
} CountsEntry;

static CountsEntry *counts = NULL;
static int	ncounts = 0;
static int	maxcounts = 0;
static SPIPlanPtr counts_plan = NULL;

/* ----------------------------------------------------------------------
 * Binding a relation's columns to a ruleset's fields
 * ----------------------------------------------------------------------
 */

static ColumnClass
ClassOf(Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return CC_TEXT;
		case UUIDOID:
			return CC_UUID;
		case TIMESTAMPTZOID:
			return CC_TIMESTAMPTZ;
		case TIMESTAMPOID:
			return CC_TIMESTAMP;
		case DATEOID:
			return CC_DATE;
		case INT2OID:
			return CC_INT2;
		case INT4OID:
			return CC_INT4;
		case INT8OID:
			return CC_INT8;
		case BOOLOID:
			return CC_BOOL;
		case JSONBOID:
			return CC_JSONB;
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			return CC_NUMBER;
		default:
			return CC_OTHER;
	}
}

/* Whether a type rule always passes on non-null values of this class. */
static bool
TypeGuaranteed(ValidateType type, ColumnClass cls)
{
	switch (type)
	{
		case VT_UUID:
			return cls == CC_UUID;
		case VT_TIMESTAMPTZ:
			return cls == CC_TIMESTAMPTZ || cls == CC_TIMESTAMP || cls == CC_DATE;
		case VT_INT:
			return cls == CC_INT2 || cls == CC_INT4;
		case VT_BIGINT:
			return cls == CC_INT2 || cls == CC_INT4 || cls == CC_INT8;
		case VT_NUMERIC:
			return cls == CC_INT2 || cls == CC_INT4 || cls == CC_INT8 || cls == CC_NUMBER;
		case VT_BOOL:
			return cls == CC_BOOL;
		case VT_TEXT:
			return cls == CC_TEXT;
		default:
			return false;
	}
}

/* Whether a rule can work from this class's binary value alone. */
static bool
RuleNeedsText(ValidateRule *rule, ColumnClass cls)
{
	bool		typed_time = cls == CC_TIMESTAMPTZ || cls == CC_TIMESTAMP || cls == CC_DATE;
	bool		typed_int = cls == CC_INT2 || cls == CC_INT4 || cls == CC_INT8;

	switch (rule->kind)
	{
		case VR_REQUIRED:
			return false;
		case VR_TYPE:
			return !TypeGuaranteed(rule->u.type, cls) && cls != CC_JSONB;
		case VR_NOT_FUTURE:
		case VR_MAX_AGE:
			return !typed_time;
		case VR_RANGE:
			return !(typed_time || typed_int);
		case VR_UNIQUE:
			return !(cls == CC_UUID || typed_int);
		default:
			return true;
	}
}

static RowBinding *
BindRelation(MemoryContext cxt, ValidateRuleset *rs, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	RowBinding *b;
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	int			f;
	int			i;

	b = palloc0(sizeof(RowBinding));
	b->rs = rs;
	b->generation = rs->generation;
	b->tupdesc = desc;
	b->relid = RelationGetRelid(rel);
	b->fields = palloc0(Max(rs->nfields, 1) * sizeof(RowField));
	b->skip = palloc0(Max(rs->nrules, 1) * sizeof(bool));
	b->values = palloc0(Max(rs->nfields, 1) * sizeof(ValidateValue));
	b->target = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										   RelationGetRelationName(rel));

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), "app_id") == 0 &&
			ClassOf(getBaseType(att->atttypid)) == CC_TEXT)
			b->app_id_attnum = att->attnum;
	}

	for (f = 0; f < rs->nfields; f++)
	{
		RowField   *rf = &b->fields[f];

		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			Oid			outfunc;
			bool		varlena;

			if (att->attisdropped || strcmp(NameStr(att->attname), rs->fields[f]) != 0)
				continue;
			rf->attnum = att->attnum;
			rf->cls = ClassOf(getBaseType(att->atttypid));
			getTypeOutputInfo(att->atttypid, &outfunc, &varlena);
			fmgr_info_cxt(outfunc, &rf->outfn, cxt);
			b->maxattnum = Max(b->maxattnum, att->attnum);
			break;
		}
	}

	for (i = 0; i < rs->nrules; i++)
	{
		ValidateRule *rule = &rs->rules[i];
		RowField   *rf = &b->fields[rule->field];

		if (rf->attnum == 0)
			continue;
		if (rule->kind == VR_TYPE && TypeGuaranteed(rule->u.type, rf->cls))
			b->skip[i] = true;
		else if (RuleNeedsText(rule, rf->cls))
			rf->needs_text = true;
	}
	MemoryContextSwitchTo(oldcxt);
	return b;
}

/* Sets a value from a jsonb datum: its kind, and its text when needed. */
static void
JsonbValueOf(ValidateValue *v, Datum d, bool needs_text)
{
	struct varlena *p = (struct varlena *) DatumGetPointer(d);
	uint32		header;

	if (VARATT_IS_EXTERNAL(p) || VARATT_IS_COMPRESSED(p))
		p = pg_detoast_datum_packed(p);
	memcpy(&header, VARDATA_ANY(p), sizeof(uint32));
	if (header & JB_FSCALAR)
	{
		Jsonb	   *jb = DatumGetJsonbP(PointerGetDatum(p));
		JsonbValue	sv;

		(void) JsonbExtractScalar(&jb->root, &sv);
		switch (sv.type)
		{
			case jbvNull:
				v->present = false;
				v->kind = CJ_NULL;
				v->text = "null";
				v->len = 4;
				return;
			case jbvString:
				v->kind = CJ_STRING;
				v->text = sv.val.string.val;
				v->len = sv.val.string.len;
				return;
			case jbvNumeric:
				v->kind = CJ_NUMBER;
				v->text = DatumGetCString(DirectFunctionCall1(numeric_out,
															  NumericGetDatum(sv.val.numeric)));
				v->len = strlen(v->text);
				return;
			case jbvBool:
				v->kind = CJ_BOOL;
				v->text = sv.val.boolean ? "true" : "false";
				v->len = strlen(v->text);
				return;
			default:
				break;
		}
	}
	v->kind = (header & JB_FOBJECT) ? CJ_OBJECT : CJ_ARRAY;
	if (needs_text)
	{
		Jsonb	   *jb = DatumGetJsonbP(PointerGetDatum(p));

		v->text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
		v->len = strlen(v->text);
	}
}

/*
 * Fills b->values from a row. Allocates only for text forms that a rule
 * needs and the column does not hold as text; the caller resets the
 * memory (the executor's per-tuple context, for the trigger).
 */
static void
ValuesFromSlot(RowBinding *b, TupleTableSlot *slot)
{
	ValidateRuleset *rs = b->rs;
	int			f;

	if (b->maxattnum > 0)
		slot_getsomeattrs(slot, b->maxattnum);

	for (f = 0; f < rs->nfields; f++)
	{
		RowField   *rf = &b->fields[f];
		ValidateValue *v = &b->values[f];
		Datum		d;

		memset(v, 0, offsetof(ValidateValue, i));
		v->kind = CJ_NULL;
		if (rf->attnum == 0)
			continue;			/* absent: text stays NULL, "is missing" */
		if (slot->tts_isnull[rf->attnum - 1])
		{
			v->text = "null";
			v->len = 4;
			continue;
		}
		d = slot->tts_values[rf->attnum - 1];
		v->present = true;
		switch (rf->cls)
		{
			case CC_TEXT:
				{
					struct varlena *p = (struct varlena *) DatumGetPointer(d);

					if (VARATT_IS_EXTENDED(p) && !VARATT_IS_SHORT(p))
						p = pg_detoast_datum_packed(p);
					v->kind = CJ_STRING;
					v->text = VARDATA_ANY(p);
					v->len = VARSIZE_ANY_EXHDR(p);
					break;
				}
			case CC_UUID:
				v->kind = CJ_STRING;
				memcpy(&v->uuid, DatumGetUUIDP(d), sizeof(pg_uuid_t));
				v->flags |= VV_HAVE_UUID;
				if (rf->needs_text)
				{
					ValidateUuidToText(&v->uuid, rf->buf);
					v->text = rf->buf;
					v->len = 36;
				}
				break;
			case CC_TIMESTAMPTZ:
			case CC_TIMESTAMP:
			case CC_DATE:
				{
					int			overflow = 0;

					v->kind = CJ_STRING;
					if (rf->cls == CC_TIMESTAMPTZ)
						v->ts = DatumGetTimestampTz(d);
					else if (rf->cls == CC_TIMESTAMP)
						v->ts = timestamp2timestamptz_opt_overflow(DatumGetTimestamp(d), &overflow);
					else
						v->ts = date2timestamptz_opt_overflow(DatumGetDateADT(d), &overflow);
					if (overflow == 0)
						v->flags |= VV_HAVE_TS;
					if (rf->needs_text)
					{
						v->text = OutputFunctionCall(&rf->outfn, d);
						v->len = strlen(v->text);
					}
					break;
				}
			case CC_INT2:
			case CC_INT4:
			case CC_INT8:
				v->kind = CJ_NUMBER;
				v->i = rf->cls == CC_INT2 ? DatumGetInt16(d) :
					rf->cls == CC_INT4 ? DatumGetInt32(d) : DatumGetInt64(d);
				v->flags |= VV_HAVE_INT;
				if (rf->needs_text)
				{
					snprintf(rf->buf, sizeof(rf->buf), INT64_FORMAT, v->i);
					v->text = rf->buf;
					v->len = strlen(rf->buf);
				}
				break;
			case CC_BOOL:
				v->kind = CJ_BOOL;
				v->text = DatumGetBool(d) ? "true" : "false";
				v->len = strlen(v->text);
				break;
			case CC_JSONB:
				JsonbValueOf(v, d, rf->needs_text);
				break;
			case CC_NUMBER:
				v->kind = CJ_NUMBER;
				v->text = OutputFunctionCall(&rf->outfn, d);
				v->len = strlen(v->text);
				break;
			case CC_OTHER:
				v->kind = CJ_STRING;
				v->text = OutputFunctionCall(&rf->outfn, d);
				v->len = strlen(v->text);
				break;
		}
	}
}

/* ----------------------------------------------------------------------
 * Counts
 * ----------------------------------------------------------------------
 */

static CountsEntry *
CountsFor(ValidateRuleset *rs, Oid relid)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	CountsEntry *e;

	if (ncounts > 0)
	{
		e = &counts[ncounts - 1];
		if (e->relid == relid && e->subid == subid &&
			((e->rs == rs && e->rs_generation == rs->generation) ||
			 strcmp(e->ruleset, rs->name) == 0))
		{
			e->rs = rs;
			e->rs_generation = rs->generation;
			return e;
		}
	}
	if (ncounts == maxcounts)
	{
		maxcounts = Max(8, maxcounts * 2);
		if (counts == NULL)
			counts = MemoryContextAlloc(TopMemoryContext, maxcounts * sizeof(CountsEntry));
		else
			counts = repalloc(counts, maxcounts * sizeof(CountsEntry));
	}
	e = &counts[ncounts++];
	memset(e, 0, sizeof(CountsEntry));
	strlcpy(e->ruleset, rs->name, NAMEDATALEN);
	e->relid = relid;
	e->rs = rs;
	e->rs_generation = rs->generation;
	e->subid = subid;
	return e;
}

/* Writes the transaction's counts, merged per (ruleset, target). */
static void
CountsFlush(void)
{
	ValidateSpi spi;
	int			i,
				j;

	ValidateSpiBegin(&spi);
	for (i = 0; i < ncounts; i++)
	{
		CountsEntry *e = &counts[i];
		Datum		args[6];
		Oid			argtypes[6] = {TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID};
		char	   *relname = get_rel_name(e->relid);
		char	   *nspname = get_namespace_name(get_rel_namespace(e->relid));
		int			ret;

		if (e->received == 0)
			continue;
		for (j = i + 1; j < ncounts; j++)
		{
			CountsEntry *o = &counts[j];

			if (o->relid == e->relid && strcmp(o->ruleset, e->ruleset) == 0)
			{
				e->received += o->received;
				e->landed += o->landed;
				e->quarantined += o->quarantined;
				e->deduplicated += o->deduplicated;
				o->received = 0;
			}
		}
		args[0] = CStringGetTextDatum(e->ruleset);
		args[1] = CStringGetTextDatum(relname && nspname ?
									  quote_qualified_identifier(nspname, relname) :
									  psprintf("%u", e->relid));
		args[2] = Int64GetDatum(e->received);
		args[3] = Int64GetDatum(e->landed);
		args[4] = Int64GetDatum(e->quarantined);
		args[5] = Int64GetDatum(e->deduplicated);
		ret = SPI_execute_plan(ValidatePrepare(&counts_plan,
											   "INSERT INTO camperso.validation_counts"
											   " (ruleset, target, received, landed, quarantined, deduplicated)"
											   " VALUES ($1, $2, $3, $4, $5, $6)",
											   6, argtypes),
							   args, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "writing validation counts failed: %s", SPI_result_code_string(ret));
	}
	ValidateSpiEnd(&spi);
}

void
ValidateCountsXactCallback(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (ncounts > 0)
				CountsFlush();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			ncounts = 0;
			break;
		default:
			break;
	}
}

void
ValidateCountsSubXactAbort(SubTransactionId subid)
{
	while (ncounts > 0 && counts[ncounts - 1].subid >= subid)
		ncounts--;
}

/* ----------------------------------------------------------------------
 * The trigger
 * ----------------------------------------------------------------------
 */

/* The row as JSON text, the quarantine payload of a trigger-diverted row. */
static text *
RowAsJson(HeapTuple tuple, TupleDesc desc)
{
	Datum		composite = heap_copy_tuple_as_datum(tuple, desc);

	return DatumGetTextPP(DirectFunctionCall1(row_to_json, composite));
}

static void
QuarantineRow(RowBinding *b, HeapTuple tuple, ValidateFailure *failure)
{
	text	   *payload = RowAsJson(tuple, b->tupdesc);
	char	   *app_id = NULL;

	if (b->app_id_attnum > 0)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, b->app_id_attnum, b->tupdesc, &isnull);

		if (!isnull)
			app_id = TextDatumGetCString(d);
	}
	ValidateQuarantineInsert(NULL, b->target, NULL, -1, -1, NULL, 0, 0,
							 VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload),
							 b->rs->name, failure->rule, failure->field,
							 failure->reason, app_id);
}

static RowBinding *
GetBinding(FmgrInfo *flinfo, const char *ruleset, Relation rel)
{
	RowBinding *b = (RowBinding *) flinfo->fn_extra;

	if (b != NULL && b->generation == ValidateCacheGeneration() &&
		b->tupdesc == RelationGetDescr(rel))
		return b;
	if (b != NULL)
	{
		/* the ruleset may be gone or changed: rebind from scratch */
		flinfo->fn_extra = NULL;
	}
	b = BindRelation(flinfo->fn_mcxt, ValidateGetRuleset(ruleset), rel);
	flinfo->fn_extra = b;
	return b;
}

const char *ValidateLandRuleset = NULL;
uint64		ValidateTriggerQuarantined = 0;
uint64		ValidateTriggerDeduplicated = 0;

/*
 * The row a passing trigger call hands back. Given a slot that cannot lend
 * its own tuple (a virtual slot: a partitioned table whose partitions share
 * its row layout), PostgreSQL gives the trigger a copy of the row, and when
 * the trigger returns that same copy it is kept until the end of the
 * statement: 0.3 to 0.5 kB a row, gigabytes for a large COPY. A different
 * tuple makes it free its copy; this one is made in the per-tuple memory the
 * trigger runs in, so it goes with the row. Other slots lend their tuple:
 * nothing is copied then (the model's staging tables, plain tables).
 */
static Datum
PassRow(TriggerData *trigdata)
{
	if (trigdata->tg_trigslot != NULL &&
		trigdata->tg_trigslot->tts_ops->get_heap_tuple == NULL)
		return PointerGetDatum(heap_copytuple(trigdata->tg_trigtuple));
	return PointerGetDatum(trigdata->tg_trigtuple);
}

PG_FUNCTION_INFO_V1(camperso_validate_row);

/*
 * camperso.validate_row(): BEFORE INSERT FOR EACH ROW trigger taking the
 * ruleset name as its argument. Returns the row when it passes; otherwise
 * quarantines it (or counts it as a duplicate) and returns NULL, which
 * skips it without failing the statement.
 */
Datum
camperso_validate_row(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	RowBinding *b;
	ValidateFailure failure;
	ValidateOutcome outcome;
	CountsEntry *c;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("camperso.validate_row() must be called as a trigger")));
	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("camperso.validate_row() must be fired BEFORE INSERT FOR EACH ROW"),
				 errhint("CREATE TRIGGER ... BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('ruleset').")));
	if (trigdata->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("camperso.validate_row() takes exactly one argument, the ruleset name"),
				 errhint("EXECUTE FUNCTION camperso.validate_row('clickstream').")));

	/* a message the land path has already validated with this ruleset */
	if (ValidateLandRuleset != NULL &&
		strcmp(ValidateLandRuleset, trigdata->tg_trigger->tgargs[0]) == 0)
		return PassRow(trigdata);

	b = GetBinding(fcinfo->flinfo, trigdata->tg_trigger->tgargs[0], trigdata->tg_relation);
	ValuesFromSlot(b, trigdata->tg_trigslot);
	outcome = ValidateRun(b->rs, b->values, b->skip, VM_LAND, &failure, NULL, NULL);

	c = CountsFor(b->rs, b->relid);
	c->received++;
	switch (outcome)
	{
		case VALIDATE_VALID:
			c->landed++;
			return PassRow(trigdata);
		case VALIDATE_INVALID:
			QuarantineRow(b, trigdata->tg_trigtuple, &failure);
			c->quarantined++;
			ValidateTriggerQuarantined++;
			break;
		case VALIDATE_DUPLICATE:
			c->deduplicated++;
			ValidateTriggerDeduplicated++;
			break;
	}
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(camperso_check_row);

/*
 * camperso._check_row(ruleset text, target regclass, row record)
 * RETURNS TABLE(outcome text, rule text, field text, reason text):
 * what the trigger would do with row, recording nothing. Used by
 * replay_quarantine for trigger-diverted rows.
 */
Datum
camperso_check_row(PG_FUNCTION_ARGS)
{
	char	   *ruleset;
	Oid			relid;
	HeapTupleHeader rec;
	HeapTupleData tuple;
	Relation	rel;
	RowBinding *b;
	TupleTableSlot *slot;
	ValidateFailure failure;
	ValidateOutcome outcome;
	TupleDesc	resdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	MemoryContext cxt;
	MemoryContext oldcxt;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ruleset, target and row must not be null")));
	ruleset = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	rec = PG_GETARG_HEAPTUPLEHEADER(2);

	if (get_call_result_type(fcinfo, NULL, &resdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	rel = relation_open(relid, AccessShareLock);
	if (HeapTupleHeaderGetTypeId(rec) != rel->rd_rel->reltype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("row is not of the row type of %s", RelationGetRelationName(rel))));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "camperso check row",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	b = BindRelation(cxt, ValidateGetRuleset(ruleset), rel);
	tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = relid;
	tuple.t_data = rec;
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	ExecStoreHeapTuple(&tuple, slot, false);
	ValuesFromSlot(b, slot);
	outcome = ValidateRun(b->rs, b->values, b->skip, VM_CHECK, &failure, NULL, NULL);
	MemoryContextSwitchTo(oldcxt);

	values[0] = CStringGetTextDatum(outcome == VALIDATE_VALID ? "valid" :
									outcome == VALIDATE_INVALID ? "invalid" : "duplicate");
	if (outcome == VALIDATE_VALID)
		nulls[1] = nulls[2] = nulls[3] = true;
	else
	{
		values[1] = CStringGetTextDatum(failure.rule);
		if (failure.field)
			values[2] = CStringGetTextDatum(failure.field);
		else
			nulls[2] = true;
		values[3] = CStringGetTextDatum(failure.reason);
	}
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(cxt);
	relation_close(rel, AccessShareLock);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(resdesc), values, nulls)));
}
