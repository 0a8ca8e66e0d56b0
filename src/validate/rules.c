/*-------------------------------------------------------------------------
 *
 * rules.c
 *	  The rules catalog seen from C: compiling a rule's argument once
 *	  (add_rule time checks and cache builds share ValidateCompileRule), the
 *	  per-backend cache of compiled rulesets, and its invalidation.
 *
 * Cache protocol. Compiled rulesets live in a hash table in
 * CacheMemoryContext, each in its own memory context, stamped with the
 * cache generation it was built in. A statement-level trigger on
 * camperso.rules and camperso.rulesets (camperso._rules_changed) queues a
 * relcache invalidation of camperso.rules; every backend's relcache callback
 * (registered in ValidateInit) bumps its generation when that invalidation
 * arrives: at the next transaction start in other sessions, at the next
 * command in the session that changed the rules. A ruleset whose stamp is
 * older than the generation is rebuilt on its next lookup. Callers may hold
 * a ruleset pointer for the rest of their transaction, so a replaced
 * ruleset is not freed at once but parked and freed at transaction end.
 *
 * Catalog reads and the quarantine/dedupe writes of this stage run as the
 * owner of the camperso schema (ValidateSwitchToOwner), because the rows
 * being validated may come from roles that may not read the rules
 * (camperso_ingest, any role inserting into a table with the trigger).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "core/errors.h"
#include "validate/validate.h"

#define ERRCODE_CAMPERSO_UNKNOWN_RULESET	MAKE_SQLSTATE('C','P','2','0','1')

/* Longest field name a rule may name; keys are matched byte for byte. */
#define VALIDATE_MAX_FIELD_LEN	256
/* Most members of an "in" rule. */
#define VALIDATE_MAX_IN_ITEMS	10000
/* Default window of a unique rule. */
#define VALIDATE_DEFAULT_WINDOW	((int64) 3600 * USECS_PER_SEC)

typedef struct RulesetCacheEntry
{
	char		name[NAMEDATALEN];	/* hash key */
	ValidateRuleset *rs;
} RulesetCacheEntry;

static HTAB *ruleset_cache = NULL;
static uint64 cache_generation = 1;
static Oid	rules_relid = InvalidOid;
static Oid	rulesets_relid = InvalidOid;
static List *graveyard = NIL;	/* replaced rulesets, freed at xact end */
static SPIPlanPtr load_plan = NULL;

static void RulesetFree(ValidateRuleset *rs);

/* ----------------------------------------------------------------------
 * Invalidation and transaction callbacks
 * ----------------------------------------------------------------------
 */

/* Relcache callback: any change to the rules tables (or a full reset)
 * makes every cached ruleset stale. Must not touch the catalogs. */
static void
ValidateRelcacheCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == rules_relid || relid == rulesets_relid)
	{
		cache_generation++;
		rules_relid = InvalidOid;
		rulesets_relid = InvalidOid;
	}
}

static void
ValidateXactCallback(XactEvent event, void *arg)
{
	ValidateDedupeXactCallback(event);
	ValidateCountsXactCallback(event);
	ValidateDriftXactCallback(event);

	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
	{
		ListCell   *lc;

		foreach(lc, graveyard)
			RulesetFree((ValidateRuleset *) lfirst(lc));
		list_free(graveyard);
		graveyard = NIL;
	}
}

static void
ValidateSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		ValidateDedupeSubXactAbort(mySubid);
		ValidateCountsSubXactAbort(mySubid);
		ValidateDriftSubXactAbort(mySubid);
	}
}

void
ValidateInit(void)
{
	CacheRegisterRelcacheCallback(ValidateRelcacheCallback, (Datum) 0);
	RegisterXactCallback(ValidateXactCallback, NULL);
	RegisterSubXactCallback(ValidateSubXactCallback, NULL);
}

uint64
ValidateCacheGeneration(void)
{
	return cache_generation;
}

/* ----------------------------------------------------------------------
 * Running as the catalog owner
 * ----------------------------------------------------------------------
 */

/* Owner of the camperso schema, i.e. of the extension's tables. */
Oid
ValidateCatalogOwner(void)
{
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(NAMESPACENAME, CStringGetDatum("camperso"));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema \"camperso\" does not exist"),
				 errhint("Run CREATE EXTENSION camperso in this database.")));
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Switches to the catalog owner for internal queries, as RI triggers switch
 * to the table owner: a restricted operation that cannot leave lasting
 * state behind. Undo with ValidateRestoreUser; an error unwinds it with the
 * transaction.
 */
void
ValidateSwitchToOwner(Oid *save_userid, int *save_sec_context)
{
	Oid			owner = ValidateCatalogOwner();

	GetUserIdAndSecContext(save_userid, save_sec_context);
	SetUserIdAndSecContext(owner, *save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

void
ValidateRestoreUser(Oid save_userid, int save_sec_context)
{
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * Opens an SPI session as the catalog owner, with a snapshot when the
 * caller has none (transaction callbacks run without one).
 */
void
ValidateSpiBegin(ValidateSpi *spi)
{
	spi->caller_cxt = CurrentMemoryContext;
	ValidateSwitchToOwner(&spi->save_userid, &spi->save_sec);
	spi->pushed_snapshot = !ActiveSnapshotSet();
	if (spi->pushed_snapshot)
		PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
ValidateSpiEnd(ValidateSpi *spi)
{
	SPI_finish();
	if (spi->pushed_snapshot)
		PopActiveSnapshot();
	ValidateRestoreUser(spi->save_userid, spi->save_sec);
}

/* A saved plan, prepared on first use (inside ValidateSpiBegin/End). */
SPIPlanPtr
ValidatePrepare(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*cache = plan;
	}
	return *cache;
}

/* ----------------------------------------------------------------------
 * Compiling one rule
 * ----------------------------------------------------------------------
 */

static const char *const rule_names[] = {
	[VR_REQUIRED] = "required",
	[VR_TYPE] = "type",
	[VR_REGEX] = "regex",
	[VR_IN] = "in",
	[VR_RANGE] = "range",
	[VR_MAX_LENGTH] = "max_length",
	[VR_NOT_FUTURE] = "not_future",
	[VR_MAX_AGE] = "max_age",
	[VR_UNIQUE] = "unique",
};

static const char *const type_names[] = {
	[VT_UUID] = "uuid",
	[VT_INT] = "int",
	[VT_BIGINT] = "bigint",
	[VT_NUMERIC] = "numeric",
	[VT_BOOL] = "bool",
	[VT_TIMESTAMPTZ] = "timestamptz",
	[VT_TEXT] = "text",
	[VT_OBJECT] = "object",
	[VT_ARRAY] = "array",
};

static void BadArg(const char *rule, const char *detail, const char *hint) pg_attribute_noreturn();

static void
BadArg(const char *rule, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid argument for rule \"%s\"", rule),
			 errdetail_internal("%s", detail),
			 errhint("%s", hint)));
}

static char *
JsonbScalarToString(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			return pstrdup("null");
	}
}

static double
JsonbNumericToDouble(JsonbValue *v)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											  NumericGetDatum(v->val.numeric)));
}

/*
 * A duration argument: an interval string ("5 minutes") or a number of
 * seconds. Months count as 30 days, as interval comparison does.
 */
static int64
ParseDuration(const char *rule, JsonbValue *v, const char *hint)
{
	int64		usecs;

	if (v->type == jbvNumeric)
	{
		double		secs = JsonbNumericToDouble(v);

		if (isnan(secs) || secs < 0 || secs > 1e12)
			BadArg(rule, "A duration in seconds must be between 0 and 1e12.", hint);
		return (int64) (secs * USECS_PER_SEC);
	}
	if (v->type != jbvString)
		BadArg(rule, "The duration must be an interval string such as \"5 minutes\" or a number of seconds.", hint);
	else
	{
		char	   *s = pnstrdup(v->val.string.val, v->val.string.len);
		MemoryContext oldcxt = CurrentMemoryContext;
		Interval   *iv = NULL;

		/* interval_in raises its own error; say which rule it was for. */
		PG_TRY();
		{
			iv = DatumGetIntervalP(DirectFunctionCall3(interval_in,
													   CStringGetDatum(s),
													   ObjectIdGetDatum(InvalidOid),
													   Int32GetDatum(-1)));
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			FlushErrorState();
			BadArg(rule, edata->message, hint);
		}
		PG_END_TRY();

		usecs = iv->time + (int64) iv->day * USECS_PER_DAY +
			(int64) iv->month * DAYS_PER_MONTH * USECS_PER_DAY;
		if (usecs < 0)
			BadArg(rule, "The duration must not be negative.", hint);
		return usecs;
	}
	return 0;					/* keep compiler quiet */
}

/* A bound of a range rule: a number or a timestamp string. */
static void
ParseBound(JsonbValue *v, ValidateBound *b, const char *which)
{
	static const char *hint = "Use {\"min\": 0, \"max\": 100}, or timestamps such as {\"min\": \"2020-01-01T00:00:00Z\"}.";

	b->present = true;
	b->text = JsonbScalarToString(v);
	if (v->type == jbvNumeric)
	{
		b->d = JsonbNumericToDouble(v);
		b->is_int = ValidateParseInt64(b->text, strlen(b->text), &b->i);
		if (isnan(b->d))
			BadArg("range", "A bound must not be NaN.", hint);
	}
	else if (v->type == jbvString)
	{
		b->is_time = true;
		if (!ValidateParseTimestamp(v->val.string.val, v->val.string.len, &b->ts))
			BadArg("range", psprintf("The %s bound \"%s\" is neither a number nor a timestamp.", which, b->text), hint);
	}
	else
		BadArg("range", psprintf("The %s bound must be a number or a timestamp string.", which), hint);
}

static void
CompileRegex(ValidateRule *rule, const char *pattern, int len)
{
	pg_wchar   *wpat;
	int			wlen;
	int			rc;
	regex_t    *re;

	wpat = (pg_wchar *) palloc((len + 1) * sizeof(pg_wchar));
	wlen = pg_mb2wchar_with_len(pattern, wpat, len);
	re = (regex_t *) malloc(sizeof(regex_t));
	if (re == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	rc = pg_regcomp(re, wpat, wlen, REG_ADVANCED, DEFAULT_COLLATION_OID);
	pfree(wpat);
	if (rc != REG_OKAY)
	{
		char		errbuf[128];

		pg_regerror(rc, re, errbuf, sizeof(errbuf));
		free(re);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("invalid regular expression for rule \"regex\": %s", errbuf),
				 errdetail("The pattern was \"%s\".", pnstrdup(pattern, len)),
				 errhint("Patterns use PostgreSQL's regular expression syntax, as the ~ operator does.")));
	}
	rule->u.regex.re = re;
	rule->u.regex.dfa = ValidateRegexDfaCompile(pattern, len, DEFAULT_COLLATION_OID);
}

/*
 * Checks and compiles one rule into *rule (whose field is already set),
 * allocating in the current memory context (the ruleset's). Raises
 * invalid_parameter_value (or invalid_regular_expression) with a clear
 * message for unknown rules and bad arguments: add_rule calls this before
 * storing a rule, so a stored rule always compiles.
 */
void
ValidateCompileRule(ValidateRuleset *rs, ValidateRule *rule,
					const char *rule_name, Datum arg, bool arg_null)
{
	JsonbValue	v;
	Jsonb	   *jb = NULL;
	bool		scalar = false;
	int			k;

	rule->name = NULL;
	for (k = 0; k < lengthof(rule_names); k++)
	{
		if (strcmp(rule_name, rule_names[k]) == 0)
		{
			rule->kind = (ValidateRuleKind) k;
			rule->name = rule_names[k];
			break;
		}
	}
	if (rule->name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown rule \"%s\"", rule_name),
				 errhint("Rules are required, type, regex, in, range, max_length, not_future, max_age and unique.")));

	if (!arg_null)
	{
		jb = DatumGetJsonbP(arg);
		scalar = JsonbExtractScalar(&jb->root, &v);
		if (scalar && v.type == jbvString)
			rule->arg_text = pnstrdup(v.val.string.val, v.val.string.len);
		else
			rule->arg_text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
		if (scalar && v.type == jbvNull)
		{
			arg_null = true;
			scalar = false;
		}
	}
	else
		rule->arg_text = NULL;

	switch (rule->kind)
	{
		case VR_REQUIRED:
			if (!arg_null && !(scalar && v.type == jbvBool && v.val.boolean))
				BadArg("required", "The rule \"required\" takes no argument.",
					   "Pass NULL (or true) as the argument.");
			break;

		case VR_TYPE:
			{
				static const char *hint = "Types are uuid, int, bigint, numeric, bool, timestamptz, text, object and array; pass one as a JSON string, e.g. '\"uuid\"'.";

				if (arg_null || !scalar || v.type != jbvString)
					BadArg("type", "The argument must be a type name as a JSON string.", hint);
				rule->name = NULL;
				for (k = 0; k < lengthof(type_names); k++)
				{
					if (v.val.string.len == strlen(type_names[k]) &&
						memcmp(v.val.string.val, type_names[k], v.val.string.len) == 0)
					{
						rule->u.type = (ValidateType) k;
						rule->name = rule_names[VR_TYPE];
					}
				}
				if (rule->name == NULL)
					BadArg("type", psprintf("Unknown type \"%s\".",
											pnstrdup(v.val.string.val, v.val.string.len)), hint);
				break;
			}

		case VR_REGEX:
			if (arg_null || !scalar || v.type != jbvString || v.val.string.len == 0)
				BadArg("regex", "The argument must be a non-empty pattern as a JSON string.",
					   "For example '\"^https?://\"'.");
			CompileRegex(rule, v.val.string.val, v.val.string.len);
			break;

		case VR_IN:
			{
				static const char *hint = "Pass a JSON array of strings, numbers or booleans, e.g. '[\"a\", \"b\"]'.";
				int			n;

				if (arg_null || !JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
					BadArg("in", "The argument must be a JSON array.", hint);
				n = JB_ROOT_COUNT(jb);
				if (n == 0 || n > VALIDATE_MAX_IN_ITEMS)
					BadArg("in", psprintf("The array must hold between 1 and %d members.", VALIDATE_MAX_IN_ITEMS), hint);
				rule->u.in.n = n;
				rule->u.in.items = palloc0(n * sizeof(ValidateInItem));
				for (k = 0; k < n; k++)
				{
					JsonbValue *e = getIthJsonbValueFromContainer(&jb->root, k);
					ValidateInItem *item = &rule->u.in.items[k];

					switch (e->type)
					{
						case jbvString:
							item->kind = CJ_STRING;
							break;
						case jbvNumeric:
							item->kind = CJ_NUMBER;
							item->num = JsonbNumericToDouble(e);
							break;
						case jbvBool:
							item->kind = CJ_BOOL;
							break;
						default:
							BadArg("in", "Members must be strings, numbers or booleans (not null, objects or arrays).", hint);
					}
					item->text = JsonbScalarToString(e);
					item->len = strlen(item->text);
				}
				break;
			}

		case VR_RANGE:
			{
				static const char *hint = "Use {\"min\": 0, \"max\": 100}; either bound may be left out.";
				JsonbValue *b;

				if (arg_null || !JB_ROOT_IS_OBJECT(jb))
					BadArg("range", "The argument must be a JSON object with min and/or max.", hint);
				if (JB_ROOT_COUNT(jb) == 0)
					BadArg("range", "At least one of min and max is needed.", hint);
				{
					JsonbIterator *it = JsonbIteratorInit(&jb->root);
					JsonbValue	kv;
					JsonbIteratorToken tok;

					while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
					{
						if (tok == WJB_KEY &&
							!(kv.val.string.len == 3 &&
							  (memcmp(kv.val.string.val, "min", 3) == 0 ||
							   memcmp(kv.val.string.val, "max", 3) == 0)))
							BadArg("range", psprintf("Unknown key \"%s\".",
													 pnstrdup(kv.val.string.val, kv.val.string.len)), hint);
					}
				}
				if ((b = getKeyJsonValueFromContainer(&jb->root, "min", 3, NULL)) != NULL)
					ParseBound(b, &rule->u.range.min, "min");
				if ((b = getKeyJsonValueFromContainer(&jb->root, "max", 3, NULL)) != NULL)
					ParseBound(b, &rule->u.range.max, "max");
				if (rule->u.range.min.present && rule->u.range.max.present)
				{
					ValidateBound *lo = &rule->u.range.min;
					ValidateBound *hi = &rule->u.range.max;

					if (lo->is_time != hi->is_time)
						BadArg("range", "Both bounds must be numbers or both timestamps.", hint);
					if ((lo->is_time && lo->ts > hi->ts) || (!lo->is_time && lo->d > hi->d))
						BadArg("range", "min is greater than max.", hint);
				}
				break;
			}

		case VR_MAX_LENGTH:
			{
				int64		n;
				char	   *s;

				if (arg_null || !scalar || v.type != jbvNumeric)
					BadArg("max_length", "The argument must be a non-negative integer.", "For example 255.");
				s = JsonbScalarToString(&v);
				if (!ValidateParseInt64(s, strlen(s), &n) || n < 0)
					BadArg("max_length", psprintf("\"%s\" is not a non-negative integer.", s), "For example 255.");
				rule->u.max_length = n;
				break;
			}

		case VR_NOT_FUTURE:
			rule->u.usecs = 0;
			if (arg_null)
				break;
			if (!scalar)
				BadArg("not_future", "The argument must be a tolerance.",
					   "Pass an interval string such as '\"5 minutes\"', or NULL for none.");
			rule->u.usecs = ParseDuration("not_future", &v,
										  "Pass an interval string such as '\"5 minutes\"', or NULL for none.");
			break;

		case VR_MAX_AGE:
			if (arg_null || !scalar)
				BadArg("max_age", "The argument (the allowed lateness) is required.",
					   "Pass an interval string such as '\"7 days\"'.");
			rule->u.usecs = ParseDuration("max_age", &v, "Pass an interval string such as '\"7 days\"'.");
			if (rule->u.usecs <= 0)
				BadArg("max_age", "The allowed lateness must be positive.", "Pass an interval string such as '\"7 days\"'.");
			break;

		case VR_UNIQUE:
			{
				static const char *hint = "Pass NULL for the default window of 1 hour, an interval string such as '\"10 minutes\"', or {\"window\": \"10 minutes\"}.";

				rule->u.usecs = VALIDATE_DEFAULT_WINDOW;
				if (arg_null)
					break;
				if (scalar)
					rule->u.usecs = ParseDuration("unique", &v, hint);
				else if (JB_ROOT_IS_OBJECT(jb))
				{
					JsonbValue *w = getKeyJsonValueFromContainer(&jb->root, "window", 6, NULL);

					if (w == NULL || JB_ROOT_COUNT(jb) != 1)
						BadArg("unique", "The only key allowed is \"window\".", hint);
					rule->u.usecs = ParseDuration("unique", w, hint);
				}
				else
					BadArg("unique", "The argument must be a window.", hint);
				if (rule->u.usecs <= 0)
					BadArg("unique", "The window must be positive.", hint);
				break;
			}
	}
}

/* ----------------------------------------------------------------------
 * Building and caching rulesets
 * ----------------------------------------------------------------------
 */

static void
RulesetFree(ValidateRuleset *rs)
{
	int			i;

	for (i = 0; i < rs->nrules; i++)
	{
		if (rs->rules[i].kind == VR_REGEX && rs->rules[i].u.regex.re != NULL)
		{
			pg_regfree(rs->rules[i].u.regex.re);
			free(rs->rules[i].u.regex.re);
			rs->rules[i].u.regex.re = NULL;
		}
	}
	MemoryContextDelete(rs->cxt);
}

static int
RulePhase(ValidateRuleKind kind)
{
	switch (kind)
	{
		case VR_REQUIRED:
			return 0;
		case VR_TYPE:
			return 1;
		case VR_UNIQUE:
			return 3;
		default:
			return 2;
	}
}

static int
RuleOrderCmp(const void *a, const void *b)
{
	const ValidateRule *ra = a;
	const ValidateRule *rb = b;
	int			pa = RulePhase(ra->kind);
	int			pb = RulePhase(rb->kind);

	if (pa != pb)
		return pa - pb;
	return (ra->id > rb->id) - (ra->id < rb->id);
}

static int
FieldIndex(ValidateRuleset *rs, const char *field, int *maxfields)
{
	int			i;

	for (i = 0; i < rs->nfields; i++)
		if (strcmp(rs->fields[i], field) == 0)
			return i;
	if (rs->nfields == *maxfields)
	{
		*maxfields *= 2;
		rs->fields = repalloc(rs->fields, *maxfields * sizeof(char *));
		rs->field_len = repalloc(rs->field_len, *maxfields * sizeof(int));
	}
	rs->fields[rs->nfields] = pstrdup(field);
	rs->field_len[rs->nfields] = strlen(field);
	return rs->nfields++;
}

/*
 * Reads the rules of rs->name into rs (connected to SPI, as the catalog
 * owner). Returns whether the ruleset exists.
 */
static bool
RulesetFill(ValidateRuleset *rs)
{
	Datum		arg[1];
	int			ret;
	uint64		i;
	int			maxfields = 8;
	bool		exists = false;
	MemoryContext oldcxt;

	Oid			argtypes[1] = {TEXTOID};

	arg[0] = CStringGetTextDatum(rs->name);
	ret = SPI_execute_plan(ValidatePrepare(&load_plan,
										   "SELECT s.name IS NOT NULL, r.id, r.field, r.rule, r.arg"
										   "  FROM (SELECT $1 AS want) w"
										   "  LEFT JOIN camperso.rulesets s ON s.name OPERATOR(pg_catalog.=) w.want"
										   "  LEFT JOIN camperso.rules r ON r.ruleset OPERATOR(pg_catalog.=) s.name"
										   " ORDER BY r.id",
										   1, argtypes),
						   arg, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading ruleset failed: %s", SPI_result_code_string(ret));

	oldcxt = MemoryContextSwitchTo(rs->cxt);
	rs->fields = palloc(maxfields * sizeof(char *));
	rs->field_len = palloc(maxfields * sizeof(int));
	rs->rules = palloc0(Max(SPI_processed, 1) * sizeof(ValidateRule));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		ValidateRule *rule;
		char	   *field;
		char	   *rulename;

		exists = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
		if (!exists)
			break;
		d = SPI_getbinval(tup, desc, 2, &isnull);
		if (isnull)
			break;				/* a ruleset without rules */
		rule = &rs->rules[rs->nrules];
		rule->id = DatumGetInt64(d);
		field = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		rulename = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		rule->field = FieldIndex(rs, field, &maxfields);
		/* count the rule before compiling it, so that a failure frees it */
		rs->nrules++;
		ValidateCompileRule(rs, rule, rulename, isnull ? (Datum) 0 : d, isnull);
	}
	qsort(rs->rules, rs->nrules, sizeof(ValidateRule), RuleOrderCmp);
	for (i = 0; i < rs->nrules; i++)
	{
		if (rs->rules[i].kind == VR_UNIQUE)
			rs->rules[i].scope = ValidateDedupeGetScope(rs->name, rs->fields[rs->rules[i].field]);
	}
	rs->scratch = palloc0(Max(rs->nfields, 1) * sizeof(ValidateValue));
	MemoryContextSwitchTo(oldcxt);
	return exists;
}

/*
 * Reads and compiles ruleset name from the catalog, or returns NULL when it
 * does not exist. The result lives in its own context under
 * CacheMemoryContext.
 */
static ValidateRuleset *
RulesetBuild(const char *name, uint64 generation)
{
	ValidateRuleset *rs;
	MemoryContext cxt;
	ValidateSpi spi;
	volatile bool exists = false;
	Oid			nsp;

	/* Remember which relations invalidate us before reading them. */
	nsp = get_namespace_oid("camperso", false);
	rules_relid = get_relname_relid("rules", nsp);
	rulesets_relid = get_relname_relid("rulesets", nsp);

	cxt = AllocSetContextCreate(CacheMemoryContext, "camperso ruleset",
								ALLOCSET_SMALL_SIZES);
	MemoryContextCopyAndSetIdentifier(cxt, name);
	rs = MemoryContextAllocZero(cxt, sizeof(ValidateRuleset));
	rs->cxt = cxt;
	rs->generation = generation;
	rs->name = MemoryContextStrdup(cxt, name);

	ValidateSpiBegin(&spi);
	PG_TRY();
	{
		exists = RulesetFill(rs);
	}
	PG_CATCH();
	{
		RulesetFree(rs);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ValidateSpiEnd(&spi);

	if (!exists)
	{
		RulesetFree(rs);
		return NULL;
	}
	return rs;
}

ValidateRuleset *
ValidateGetRuleset(const char *name)
{
	RulesetCacheEntry *entry;
	ValidateRuleset *rs;
	bool		found;
	uint64		generation;

	if (name == NULL || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_UNKNOWN_RULESET),
				 errmsg("ruleset \"%s\" does not exist", name ? name : "(null)"),
				 errhint("Create it with camperso.add_rule().")));

	if (ruleset_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(RulesetCacheEntry);
		ctl.hcxt = CacheMemoryContext;
		ruleset_cache = hash_create("camperso rulesets", 16, &ctl,
									HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}

	/* Pick up rule changes committed by other sessions. */
	AcceptInvalidationMessages();

	entry = hash_search(ruleset_cache, name, HASH_FIND, &found);
	if (found && entry->rs != NULL && entry->rs->generation == cache_generation)
		return entry->rs;

	/*
	 * Stamp with the generation from before the read: an invalidation that
	 * arrives while reading makes the new entry stale at once.
	 */
	generation = cache_generation;
	rs = RulesetBuild(name, generation);

	entry = hash_search(ruleset_cache, name, HASH_ENTER, &found);
	if (found && entry->rs != NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		graveyard = lappend(graveyard, entry->rs);
		MemoryContextSwitchTo(oldcxt);
	}
	entry->rs = rs;

	if (rs == NULL)
	{
		hash_search(ruleset_cache, name, HASH_REMOVE, NULL);
		ereport(ERROR,
				(errcode(ERRCODE_CAMPERSO_UNKNOWN_RULESET),
				 errmsg("ruleset \"%s\" does not exist", name),
				 errhint("Create it with camperso.add_rule(), or see camperso.rulesets for the existing ones.")));
	}
	return rs;
}

/* ----------------------------------------------------------------------
 * SQL-callable helpers of add_rule and the invalidation trigger
 * ----------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(camperso_check_rule);

/*
 * camperso._check_rule(field text, rule text, arg jsonb): raises a clear
 * error when the rule would not compile; add_rule calls it before storing.
 */
Datum
camperso_check_rule(PG_FUNCTION_ARGS)
{
	char	   *field;
	char	   *rule_name;
	MemoryContext cxt;
	MemoryContext oldcxt;
	ValidateRuleset rs;
	ValidateRule rule;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("field and rule must not be null")));
	field = text_to_cstring(PG_GETARG_TEXT_PP(0));
	rule_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (field[0] == '\0' || strlen(field) > VALIDATE_MAX_FIELD_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid field name"),
				 errdetail("A field name must be between 1 and %d bytes long.", VALIDATE_MAX_FIELD_LEN),
				 errhint("Name a top-level key of the message, or a column of the table.")));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "camperso rule check",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	memset(&rs, 0, sizeof(rs));
	memset(&rule, 0, sizeof(rule));
	rs.cxt = cxt;
	rs.rules = &rule;
	rs.nrules = 1;
	PG_TRY();
	{
		ValidateCompileRule(&rs, &rule, rule_name,
							PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2),
							PG_ARGISNULL(2));
	}
	PG_FINALLY();
	{
		if (rule.kind == VR_REGEX && rule.u.regex.re != NULL)
		{
			pg_regfree(rule.u.regex.re);
			free(rule.u.regex.re);
		}
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(camperso_rules_changed);

/*
 * Statement trigger on camperso.rules and camperso.rulesets: queues the
 * relcache invalidation that makes every backend rebuild its rulesets.
 */
Datum
camperso_rules_changed(PG_FUNCTION_ARGS)
{
	Oid			nsp;
	Oid			relid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("camperso._rules_changed() must be called as a trigger")));
	nsp = get_namespace_oid("camperso", false);
	relid = get_relname_relid("rules", nsp);
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	return PointerGetDatum(NULL);
}
