/*-------------------------------------------------------------------------
 *
 * fuzz_validate.c
 *	  libFuzzer target: bytes -> CaptureJsonParse -> the rules engine
 *	  (src/validate/engine.c) over a fixed ruleset that uses every rule:
 *	  required, type (each type), in (strings, numbers, booleans), range
 *	  (integer, decimal and timestamp bounds), max_length, regex,
 *	  not_future, max_age and unique.
 *
 * The ruleset is built here as rules.c would compile it from
 * camperso.rules (rules.c itself needs the catalogs and jsonb); the rules
 * are listed in the order rules.c sorts them (required, type, the others,
 * unique). The unique rule's seen-keys store (dedupe.c, catalog-backed) is
 * replaced by a per-input list.
 *
 * Checked per message, besides no crash, leak, UB or ERROR:
 *   - the land path (ValidateMessage) and the dry run (ValidateMessageCheck)
 *     agree, and the first failure of VM_ALL is the one they report;
 *   - every reason is NUL-terminated, within VALIDATE_REASON_LEN and
 *     valid UTF-8 (it is stored in camperso.quarantine.reason);
 *   - a valid message with an event_id is a duplicate the second time,
 *     and valid again once ValidateUnrecord took its key back;
 *   - a number the decoder accepted passes the type numeric rule (both
 *     state numeric_in's limits).
 * Short inputs also go straight to the value parsers (uuid, int64,
 * timestamp), checked against independent statements of their forms.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <stdint.h>

#include "catalog/pg_collation_d.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "capture/capture.h"
#include "validate/validate.h"
#include "pg_shim.h"

static ValidateRuleset *ruleset;

/* ------------------------------------------------------------------------
 * The unique rule's store: keys seen in this input only
 * ------------------------------------------------------------------------
 */

typedef struct SeenKey
{
	struct SeenKey *next;
	char	   *text;
} SeenKey;

static SeenKey *seen_keys;

static SeenKey **
FindKey(ValidateValue *value)
{
	SeenKey   **k;

	for (k = &seen_keys; *k != NULL; k = &(*k)->next)
		if (strlen((*k)->text) == (size_t) value->len &&
			memcmp((*k)->text, value->text, value->len) == 0)
			return k;
	return NULL;
}

bool
ValidateDedupeSeen(ValidateDedupeScope *scope, ValidateValue *value,
				   int64 window_usecs, bool record, TimestampTz now,
				   TimestampTz *seen_at)
{
	SeenKey   **k = FindKey(value);

	if (k != NULL)
	{
		if (seen_at)
			*seen_at = now;
		return true;
	}
	if (record)
	{
		SeenKey    *key = palloc(sizeof(SeenKey));

		key->text = pnstrdup(value->text, value->len);
		key->next = seen_keys;
		seen_keys = key;
	}
	return false;
}

void
ValidateDedupePrefetch(ValidateDedupeScope *scope, ValidateValue *value)
{
}

void
ValidateDedupeUnrecord(ValidateDedupeScope *scope, ValidateValue *value)
{
	SeenKey   **k = FindKey(value);

	if (k != NULL)
		*k = (*k)->next;
}

/* the shim's fixed clock, exact: runs repeat whatever the time */
TimestampTz
ValidateClockNow(int64 *resolution)
{
	*resolution = 0;
	return GetCurrentTimestamp();
}

/* ------------------------------------------------------------------------
 * The ruleset
 * ------------------------------------------------------------------------
 */

static const char *const fields[] = {
	"event_id", "user_id", "session_id", "event_type", "ts", "page_url",
	"props", "n", "amount", "big", "flag", "tags", "seen", "app_id", "label",
	"hits", "country",
};

enum
{
	F_EVENT_ID, F_USER_ID, F_SESSION_ID, F_EVENT_TYPE, F_TS, F_PAGE_URL,
	F_PROPS, F_N, F_AMOUNT, F_BIG, F_FLAG, F_TAGS, F_SEEN, F_APP_ID, F_LABEL,
	F_HITS, F_COUNTRY
};

static ValidateRule *
AddRule(int field, ValidateRuleKind kind, const char *name, const char *arg_text)
{
	ValidateRule *rule = &ruleset->rules[ruleset->nrules];

	rule->kind = kind;
	rule->name = name;
	rule->field = field;
	rule->id = ++ruleset->nrules;
	rule->arg_text = arg_text ? pstrdup(arg_text) : NULL;
	return rule;
}

static void
AddType(int field, ValidateType type, const char *label)
{
	AddRule(field, VR_TYPE, "type", label)->u.type = type;
}

static void
AddIn(int field, const char *arg_text, int n, const ValidateInItem *items)
{
	ValidateRule *rule = AddRule(field, VR_IN, "in", arg_text);
	int			i;

	rule->u.in.n = n;
	rule->u.in.items = palloc(n * sizeof(ValidateInItem));
	for (i = 0; i < n; i++)
	{
		rule->u.in.items[i] = items[i];
		rule->u.in.items[i].len = strlen(items[i].text);
	}
}

static void
AddRegex(int field, const char *pattern)
{
	ValidateRule *rule = AddRule(field, VR_REGEX, "regex", pattern);
	int			len = strlen(pattern);
	pg_wchar   *wpat = palloc((len + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(pattern, wpat, len);

	rule->u.regex.re = malloc(sizeof(regex_t));
	if (pg_regcomp(rule->u.regex.re, wpat, wlen, REG_ADVANCED, DEFAULT_COLLATION_OID) != REG_OKAY)
		FUZZ_CHECK(false, "pattern %s does not compile", pattern);
	/* as rules.c: the DFA fast path where the pattern allows it */
	rule->u.regex.dfa = ValidateRegexDfaCompile(pattern, len, DEFAULT_COLLATION_OID);
}

static ValidateBound
IntBound(int64 v, const char *text)
{
	ValidateBound b = {.present = true, .is_int = true, .i = v, .d = (double) v, .text = (char *) text};

	return b;
}

static ValidateBound
DoubleBound(double v, const char *text)
{
	ValidateBound b = {.present = true, .d = v, .text = (char *) text};

	return b;
}

static ValidateBound
TimeBound(const char *text)
{
	ValidateBound b = {.present = true, .is_time = true, .text = (char *) text};

	FUZZ_CHECK(ValidateParseTimestamp(text, strlen(text), &b.ts), "bound %s", text);
	return b;
}

static void
AddRange(int field, const char *arg_text, ValidateBound min, ValidateBound max)
{
	ValidateRule *rule = AddRule(field, VR_RANGE, "range", arg_text);

	rule->u.range.min = min;
	rule->u.range.max = max;
}

static void
BuildRuleset(void)
{
	MemoryContext cxt = AllocSetContextCreate(CacheMemoryContext, "fuzz ruleset",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	static const ValidateInItem event_types[] = {
		{CJ_STRING, "page_view"}, {CJ_STRING, "click"}, {CJ_STRING, "scroll"},
		{CJ_STRING, "add_to_cart"}, {CJ_STRING, "purchase"}, {CJ_STRING, "signup"},
		{CJ_STRING, "login"}, {CJ_STRING, "search"},
	};
	static const ValidateInItem apps[] = {
		{CJ_STRING, "web-shop"}, {CJ_STRING, "ios-app"}, {CJ_STRING, "android-app"},
		{CJ_STRING, "caf\xc3\xa9-\xe2\x82\xac"}, {CJ_NUMBER, "1", 0, 1}, {CJ_NUMBER, "2.5", 0, 2.5},
		{CJ_BOOL, "false"},
	};
	static const ValidateInItem flags[] = {{CJ_BOOL, "true"}};
	/* a long list: its reasons are cut to VALIDATE_REASON_LEN */
	static const char *const countries[] = {
		"Åland", "Österreich", "España", "Côte d'Ivoire",
		"Türkiye", "Ísland", "Perú", "São Tomé",
		"日本", "한국",
		"中国", "Россия",
		"Ελλάδα",
		"ישראל", "भारत",
		"🇫🇷", "Danmark", "Norge", "Sverige", "Suomi",
		"Deutschland", "Nederland", "België", "Ελλάς", "Україна", "Polska",
		"Česko", "Slovensko", "Magyarország", "România", "Србија", "България",
	};
	ValidateInItem country_items[lengthof(countries)];
	StringInfoData country_list;
	int			i;

	ruleset = palloc0(sizeof(ValidateRuleset));
	ruleset->name = pstrdup("fuzz");
	ruleset->cxt = cxt;
	ruleset->nfields = lengthof(fields);
	ruleset->fields = palloc(sizeof(char *) * lengthof(fields));
	ruleset->field_len = palloc(sizeof(int) * lengthof(fields));
	for (i = 0; i < lengthof(fields); i++)
	{
		ruleset->fields[i] = pstrdup(fields[i]);
		ruleset->field_len[i] = strlen(fields[i]);
	}
	ruleset->rules = palloc0(64 * sizeof(ValidateRule));

	/* required */
	AddRule(F_EVENT_ID, VR_REQUIRED, "required", NULL);
	AddRule(F_USER_ID, VR_REQUIRED, "required", NULL);
	AddRule(F_SESSION_ID, VR_REQUIRED, "required", NULL);
	AddRule(F_EVENT_TYPE, VR_REQUIRED, "required", NULL);
	AddRule(F_TS, VR_REQUIRED, "required", NULL);
	/* type */
	AddType(F_EVENT_ID, VT_UUID, "uuid");
	AddType(F_TS, VT_TIMESTAMPTZ, "timestamptz");
	AddType(F_PROPS, VT_OBJECT, "object");
	AddType(F_N, VT_INT, "int");
	AddType(F_AMOUNT, VT_NUMERIC, "numeric");
	AddType(F_BIG, VT_BIGINT, "bigint");
	AddType(F_FLAG, VT_BOOL, "bool");
	AddType(F_TAGS, VT_ARRAY, "array");
	AddType(F_LABEL, VT_TEXT, "text");
	/* the others */
	AddRule(F_USER_ID, VR_MAX_LENGTH, "max_length", "64")->u.max_length = 64;
	AddIn(F_EVENT_TYPE, "[\"page_view\", \"click\", \"scroll\", \"add_to_cart\", \"purchase\", \"signup\", \"login\", \"search\"]",
		  lengthof(event_types), event_types);
	AddRule(F_TS, VR_NOT_FUTURE, "not_future", "5 minutes")->u.usecs = 5 * USECS_PER_MINUTE;
	AddRule(F_TS, VR_MAX_AGE, "max_age", "30 days")->u.usecs = 30 * USECS_PER_DAY;
	AddRegex(F_PAGE_URL, "^https?://[^ /?#]+([/?#][^ ]*)?$");
	AddRange(F_N, "{\"max\": 1000, \"min\": -1000}", IntBound(-1000, "-1000"), IntBound(1000, "1000"));
	AddRange(F_AMOUNT, "{\"max\": 1000000, \"min\": 0.5}", DoubleBound(0.5, "0.5"), DoubleBound(1e6, "1000000"));
	AddRange(F_BIG, "{\"min\": -9223372036854775808}",
			 IntBound(PG_INT64_MIN, "-9223372036854775808"), (ValidateBound) {0});
	AddIn(F_FLAG, "[true]", lengthof(flags), flags);
	AddRule(F_TAGS, VR_MAX_LENGTH, "max_length", "200")->u.max_length = 200;
	AddRange(F_SEEN, "{\"max\": \"2030-01-01T00:00:00Z\", \"min\": \"2020-01-01T00:00:00Z\"}",
			 TimeBound("2020-01-01T00:00:00Z"), TimeBound("2030-01-01T00:00:00Z"));
	AddIn(F_APP_ID, "[\"web-shop\", \"ios-app\", \"android-app\", \"caf\xc3\xa9-\xe2\x82\xac\", 1, 2.5, false]",
		  lengthof(apps), apps);
	AddRule(F_APP_ID, VR_MAX_LENGTH, "max_length", "20")->u.max_length = 20;
	AddRegex(F_LABEL, "^[a-z]+(-[a-z]+)*$");
	FUZZ_CHECK(ruleset->rules[ruleset->nrules - 1].u.regex.dfa != NULL, "label pattern has no DFA");
	AddRule(F_LABEL, VR_MAX_LENGTH, "max_length", "8")->u.max_length = 8;
	AddRange(F_HITS, "{\"max\": 10}", (ValidateBound) {0}, IntBound(10, "10"));
	initStringInfo(&country_list);
	for (i = 0; i < lengthof(countries); i++)
	{
		country_items[i].kind = CJ_STRING;
		country_items[i].text = countries[i];
		appendStringInfo(&country_list, "%s\"%s\"", i == 0 ? "[" : ", ", countries[i]);
	}
	appendStringInfoChar(&country_list, ']');
	AddIn(F_COUNTRY, country_list.data, lengthof(countries), country_items);
	/* unique, last */
	AddRule(F_EVENT_ID, VR_UNIQUE, "unique", "{\"window\": \"01:00:00\"}")->u.usecs = USECS_PER_HOUR;

	ruleset->scratch = palloc0(ruleset->nfields * sizeof(ValidateValue));
	MemoryContextSwitchTo(old);
}

/* ------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------
 */

typedef struct Collected
{
	int			n;
	ValidateFailure first;
} Collected;

static void
CheckReason(const ValidateFailure *f)
{
	size_t		len = strnlen(f->reason, VALIDATE_REASON_LEN);

	FUZZ_CHECK(len < VALIDATE_REASON_LEN, "reason of rule %s not terminated", f->rule);
	FUZZ_CHECK(FuzzUtf8Valid(f->reason, (int) len),
			   "reason of rule %s on field %s is not valid UTF-8: %s", f->rule,
			   f->field ? f->field : "-", f->reason);
	FUZZ_CHECK(f->rule != NULL && f->field != NULL, "failure without rule or field");
}

static void
Collect(void *arg, const ValidateFailure *failure)
{
	Collected  *c = arg;

	CheckReason(failure);
	if (c->n++ == 0)
		c->first = *failure;
}

static bool
SameFailure(const ValidateFailure *a, const ValidateFailure *b)
{
	return strcmp(a->rule, b->rule) == 0 && strcmp(a->field, b->field) == 0 &&
		strcmp(a->reason, b->reason) == 0;
}

static void
CheckMessage(CampersoMessage *msg)
{
	ValidateFailure f_check;
	ValidateFailure f_land;
	ValidateFailure f_again;
	ValidateOutcome o_check;
	ValidateOutcome o_land;
	ValidateOutcome o_again;
	ValidateValue *values = palloc0(ruleset->nfields * sizeof(ValidateValue));
	Collected	all = {0};
	ValidateOutcome o_all;
	CampersoField *id = CampersoMessageField(msg, "event_id");
	CampersoField *amount = CampersoMessageField(msg, "amount");

	memset(&f_check, 0, sizeof(f_check));
	o_check = ValidateMessageCheck(ruleset, msg, &f_check);
	if (o_check == VALIDATE_INVALID)
		CheckReason(&f_check);
	FUZZ_CHECK(o_check != VALIDATE_DUPLICATE, "dry run found a duplicate with no key recorded");

	ValidateValuesFromMessage(ruleset, msg, values);
	o_all = ValidateRun(ruleset, values, NULL, VM_ALL, &f_again, Collect, &all);
	FUZZ_CHECK((o_all == VALIDATE_INVALID) == (o_check == VALIDATE_INVALID) &&
			   (all.n > 0) == (o_check == VALIDATE_INVALID),
			   "VM_ALL says %d with %d failures, VM_CHECK says %d", o_all, all.n, o_check);
	if (all.n > 0)
		FUZZ_CHECK(SameFailure(&all.first, &f_check),
				   "first failure differs: %s/%s/%s vs %s/%s/%s", all.first.rule,
				   all.first.field, all.first.reason, f_check.rule, f_check.field, f_check.reason);

	/* the decoder's numbers fit numeric, so type numeric takes them */
	if (amount != NULL && amount->kind == CJ_NUMBER && o_check == VALIDATE_INVALID &&
		strcmp(f_check.field, "amount") == 0)
		FUZZ_CHECK(strcmp(f_check.rule, "type") != 0,
				   "decoded number %s fails type numeric: %s", amount->text, f_check.reason);

	memset(&f_land, 0, sizeof(f_land));
	o_land = ValidateMessage(ruleset, msg, &f_land);
	FUZZ_CHECK(o_land == o_check, "land says %d, dry run %d", o_land, o_check);
	if (o_land == VALIDATE_INVALID)
		FUZZ_CHECK(SameFailure(&f_land, &f_check), "land and dry run report different failures");
	if (o_land != VALIDATE_VALID || id == NULL || id->kind == CJ_NULL)
		return;

	/* the key is now recorded: a second copy is a duplicate */
	o_again = ValidateMessage(ruleset, msg, &f_again);
	FUZZ_CHECK(o_again == VALIDATE_DUPLICATE, "second copy is %d, not a duplicate", o_again);
	CheckReason(&f_again);
	FUZZ_CHECK(strcmp(f_again.rule, "unique") == 0 && strncmp(f_again.reason, "duplicate:", 10) == 0,
			   "duplicate reported as %s: %s", f_again.rule, f_again.reason);
	ValidateUnrecord(ruleset, msg);
	o_again = ValidateMessage(ruleset, msg, &f_again);
	FUZZ_CHECK(o_again == VALIDATE_VALID, "after ValidateUnrecord the copy is %d", o_again);
}

/* The value parsers on the raw bytes, against plain statements of their forms. */
static void
CheckParsers(const char *data, int len)
{
	pg_uuid_t	uuid;
	int64		i64;
	TimestampTz ts;
	char		text[40];

	if (len == 0 || len > 64 || memchr(data, '\0', len) != NULL)
		return;
	if (ValidateParseUuid(data, len, &uuid))
	{
		char		hex[33];
		int			n = 0;
		int			k;
		pg_uuid_t	again;

		/* the input's hex digits, lowercased, are the canonical form's */
		for (k = 0; k < len && n < 32; k++)
			if (isxdigit((unsigned char) data[k]))
				hex[n++] = (char) tolower((unsigned char) data[k]);
		hex[n] = '\0';
		ValidateUuidToText(&uuid, text);
		FUZZ_CHECK(strlen(text) == 36 && n == 32, "uuid text %s", text);
		for (k = 0, n = 0; text[k]; k++)
			if (text[k] != '-')
				FUZZ_CHECK(text[k] == hex[n++], "uuid %.*s printed as %s", len, data, text);
		FUZZ_CHECK(ValidateParseUuid(text, 36, &again) && memcmp(&again, &uuid, sizeof(uuid)) == 0,
				   "uuid %s does not round-trip", text);
	}
	{
		bool		ok = ValidateParseInt64(data, len, &i64);
		bool		digits = len > (data[0] == '-');
		int			k;

		for (k = (data[0] == '-'); k < len; k++)
			digits &= (data[k] >= '0' && data[k] <= '9');
		if (digits)
		{
			char	   *copy = pnstrdup(data, len);
			char	   *end;
			long long	ref;

			errno = 0;
			ref = strtoll(copy, &end, 10);
			FUZZ_CHECK(ok == (errno == 0), "int64 %s: parsed %d, strtoll errno %d", copy, ok, errno);
			if (ok)
				FUZZ_CHECK(ref == i64, "int64 %s parsed as " INT64_FORMAT, copy, i64);
		}
		else
			FUZZ_CHECK(!ok, "int64 accepted %.*s", len, data);
	}
	if (ValidateParseTimestamp(data, len, &ts))
		FUZZ_CHECK(IS_VALID_TIMESTAMP(ts) || TIMESTAMP_NOT_FINITE(ts),
				   "timestamp %.*s out of range", len, data);
}

static void
CheckInput(const char *data, int len)
{
	CampersoMessage msg;
	const char *rule;
	char	   *reason;

	CheckParsers(data, len);
	seen_keys = NULL;
	memset(&msg, 0, sizeof(msg));
	if (CaptureJsonParse(data, len, &msg, &rule, &reason))
		CheckMessage(&msg);
	seen_keys = NULL;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FuzzShimInit();
	BuildRuleset();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return FuzzRunInput(CheckInput, "the rules engine", data, size);
}
