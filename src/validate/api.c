/*-------------------------------------------------------------------------
 *
 * api.c
 *	  The SQL way in: camperso.validate(ruleset, payload jsonb), which tells
 *	  a caller every rule a payload breaks, without recording anything.
 *
 * The payload's top-level keys are the fields, as for a message from
 * Kafka: strings are their unescaped text, numbers their canonical text,
 * objects and arrays their JSON text. A payload that is not a JSON object
 * breaks the pseudo-rule not_an_object, as it would in the land path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "validate/validate.h"

typedef struct ReportState
{
	Tuplestorestate *store;
	TupleDesc	desc;
} ReportState;

static void
ReportRow(void *arg, const ValidateFailure *failure)
{
	ReportState *st = arg;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	values[0] = CStringGetTextDatum(failure->rule);
	if (failure->field)
		values[1] = CStringGetTextDatum(failure->field);
	else
		nulls[1] = true;
	values[2] = CStringGetTextDatum(failure->reason);
	tuplestore_putvalues(st->store, st->desc, values, nulls);
}

/* Points values (one per ruleset field) at the top-level keys of jb. */
static void
ValuesFromJsonb(ValidateRuleset *rs, Jsonb *jb, ValidateValue *values)
{
	int			f;

	for (f = 0; f < rs->nfields; f++)
	{
		ValidateValue *v = &values[f];
		JsonbValue	jv;

		memset(v, 0, offsetof(ValidateValue, i));
		v->kind = CJ_NULL;
		if (getKeyJsonValueFromContainer(&jb->root, rs->fields[f], rs->field_len[f], &jv) == NULL)
			continue;
		v->present = true;
		switch (jv.type)
		{
			case jbvNull:
				v->present = false;
				v->text = "null";
				v->len = 4;
				break;
			case jbvString:
				v->kind = CJ_STRING;
				v->text = jv.val.string.val;
				v->len = jv.val.string.len;
				break;
			case jbvNumeric:
				v->kind = CJ_NUMBER;
				v->text = DatumGetCString(DirectFunctionCall1(numeric_out,
															  NumericGetDatum(jv.val.numeric)));
				v->len = strlen(v->text);
				break;
			case jbvBool:
				v->kind = CJ_BOOL;
				v->text = jv.val.boolean ? "true" : "false";
				v->len = strlen(v->text);
				break;
			case jbvBinary:
				v->kind = JsonContainerIsObject(jv.val.binary.data) ? CJ_OBJECT : CJ_ARRAY;
				v->text = JsonbToCString(NULL, jv.val.binary.data, jv.val.binary.len);
				v->len = strlen(v->text);
				break;
			default:
				elog(ERROR, "unexpected jsonb value type %d", (int) jv.type);
		}
	}
}

PG_FUNCTION_INFO_V1(camperso_validate);

/*
 * camperso.validate(ruleset text, payload jsonb)
 * RETURNS TABLE(rule text, field text, reason text)
 */
Datum
camperso_validate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ReportState st;
	ValidateRuleset *rs;
	Jsonb	   *jb;
	ValidateValue *values;
	ValidateFailure failure;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ruleset must not be null")));
	InitMaterializedSRF(fcinfo, 0);
	st.store = rsinfo->setResult;
	st.desc = rsinfo->setDesc;

	rs = ValidateGetRuleset(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (PG_ARGISNULL(1))
	{
		failure.rule = "not_an_object";
		failure.field = NULL;
		strlcpy(failure.reason, "payload is null", VALIDATE_REASON_LEN);
		ReportRow(&st, &failure);
		return (Datum) 0;
	}
	jb = PG_GETARG_JSONB_P(1);
	if (!JB_ROOT_IS_OBJECT(jb))
	{
		failure.rule = "not_an_object";
		failure.field = NULL;
		snprintf(failure.reason, VALIDATE_REASON_LEN, "payload is a JSON %s, not an object",
				 JB_ROOT_IS_ARRAY(jb) && !JB_ROOT_IS_SCALAR(jb) ? "array" : "scalar");
		ReportRow(&st, &failure);
		return (Datum) 0;
	}

	values = palloc0(Max(rs->nfields, 1) * sizeof(ValidateValue));
	ValuesFromJsonb(rs, jb, values);
	(void) ValidateRun(rs, values, NULL, VM_ALL, &failure, ReportRow, &st);
	return (Datum) 0;
}
