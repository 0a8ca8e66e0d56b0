/*-------------------------------------------------------------------------
 *
 * fuzz_decode.c
 *	  libFuzzer target: bytes -> CaptureJsonParseField (src/capture/decode.c),
 *	  the strict JSON decoder every Kafka message goes through.
 *
 * Beyond "no crash, no leak, no undefined behaviour, no ERROR", the
 * decoder's verdict is checked against what PostgreSQL itself would do
 * with the same bytes as jsonb: PostgreSQL's own JSON parser (the
 * frontend build of src/common/jsonapi.c from libpgcommon, which jsonb_in
 * shares), its UTF-8 verifier, and a statement of numeric_in's limits
 * (NumericFits below). A message is accepted exactly when it is valid
 * UTF-8 without NUL bytes, jsonb would take it, its top level is an
 * object, it nests at most CAPTURE_MAX_DEPTH levels and every number fits
 * numeric. An accepted message must split into the same top-level keys
 * and values, in the same order, as PostgreSQL's parser sees them; a
 * rejected one must carry a rule that fits the fault and a reason that is
 * valid UTF-8 (it is stored in a text column).
 *
 * The reference parser recurses once per nesting level, so it is only run
 * on inputs with at most REFERENCE_MAX_BRACKETS brackets.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdint.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "capture/capture.h"
#include "pg_shim.h"

#define REFERENCE_MAX_BRACKETS	2000
#define REFERENCE_MAX_FIELDS	4096

/*
 * Whether numeric_in accepts the JSON number literal s[0..len), as
 * PostgreSQL 15 decides it: the exponent must stay within +-(INT_MAX/2),
 * the scale as written (fraction digits minus the exponent) within 16383
 * even for zero, and a nonzero value may have at most 131072 digits before
 * the decimal point (its first nonzero digit decides, not the literal).
 */
static bool
NumericFits(const char *s, int len)
{
	const char *p = s;
	const char *end = s + len;
	int64		intdigits = 0;
	int64		fracdigits = 0;
	int64		first_nonzero = -1; /* index among all digits */
	int64		exponent = 0;
	bool		negexp = false;

	if (p < end && *p == '-')
		p++;
	for (; p < end && *p >= '0' && *p <= '9'; p++, intdigits++)
		if (*p != '0' && first_nonzero < 0)
			first_nonzero = intdigits;
	if (p < end && *p == '.')
		for (p++; p < end && *p >= '0' && *p <= '9'; p++, fracdigits++)
			if (*p != '0' && first_nonzero < 0)
				first_nonzero = intdigits + fracdigits;
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			negexp = (*p++ == '-');
		for (; p < end; p++)
			if (exponent < INT64CONST(10000000000))
				exponent = exponent * 10 + (*p - '0');
		if (negexp)
			exponent = -exponent;
	}
	if (exponent >= PG_INT32_MAX / 2 || exponent <= -(PG_INT32_MAX / 2))
		return false;
	if (fracdigits - exponent > 16383)
		return false;
	if (first_nonzero >= 0 && intdigits - first_nonzero + exponent > 131072)
		return false;
	return true;
}

/* What PostgreSQL's parser saw. */
typedef struct RefField
{
	char	   *name;
	CampersoJsonKind kind;
	char	   *scalar;			/* de-escaped string, or the token */
} RefField;

typedef struct RefState
{
	int			depth;
	int			max_depth;
	bool		top_seen;
	CampersoJsonKind top_kind;
	bool		numbers_fit;
	int			nfields;
	RefField	fields[REFERENCE_MAX_FIELDS];
	bool		too_many_fields;
} RefState;

static void
RefStart(RefState *st, CampersoJsonKind kind)
{
	if (!st->top_seen)
	{
		st->top_seen = true;
		st->top_kind = kind;
	}
	else if (st->depth == 1 && st->top_kind == CJ_OBJECT && st->nfields > 0)
		st->fields[st->nfields - 1].kind = kind;
	st->depth++;
	st->max_depth = Max(st->max_depth, st->depth);
}

static void
RefObjectStart(void *state)
{
	RefStart(state, CJ_OBJECT);
}

static void
RefArrayStart(void *state)
{
	RefStart(state, CJ_ARRAY);
}

static void
RefEnd(void *state)
{
	((RefState *) state)->depth--;
}

static void
RefFieldStart(void *state, char *fname, bool isnull)
{
	RefState   *st = state;

	if (st->depth != 1)
		return;
	if (st->nfields == REFERENCE_MAX_FIELDS)
	{
		st->too_many_fields = true;
		return;
	}
	st->fields[st->nfields].name = fname;
	st->fields[st->nfields].scalar = NULL;
	st->nfields++;
}

static void
RefScalar(void *state, char *token, JsonTokenType tokentype)
{
	RefState   *st = state;
	CampersoJsonKind kind;

	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			kind = CJ_STRING;
			break;
		case JSON_TOKEN_NUMBER:
			kind = CJ_NUMBER;
			if (!NumericFits(token, strlen(token)))
				st->numbers_fit = false;
			break;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			kind = CJ_BOOL;
			break;
		default:
			kind = CJ_NULL;
			break;
	}
	if (!st->top_seen)
	{
		st->top_seen = true;
		st->top_kind = kind;
	}
	else if (st->depth == 1 && st->top_kind == CJ_OBJECT && st->nfields > 0)
	{
		st->fields[st->nfields - 1].kind = kind;
		st->fields[st->nfields - 1].scalar = token;
	}
}

/* Runs PostgreSQL's JSON parser over data as jsonb_in does. */
static JsonParseErrorType
Reference(const char *data, int len, RefState *st)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	char	   *copy = pnstrdup(data, len);

	memset(st, 0, offsetof(RefState, fields));
	st->numbers_fit = true;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = st;
	sem.object_start = RefObjectStart;
	sem.object_end = RefEnd;
	sem.array_start = RefArrayStart;
	sem.array_end = RefEnd;
	sem.object_field_start = RefFieldStart;
	sem.scalar = RefScalar;
	lex = makeJsonLexContextCstringLen(copy, len, PG_UTF8, true);
	return pg_parse_json(lex, &sem);
}

static int
CountBrackets(const char *data, int len)
{
	int			n = 0;
	int			i;

	for (i = 0; i < len; i++)
		n += (data[i] == '[' || data[i] == '{');
	return n;
}

static const char *
FirstNonSpace(const char *data, int len)
{
	int			i = 0;

	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
		i++;
	return i < len ? data + i : NULL;
}

static const char *const known_rules[] = {
	"oversized", "nul_byte", "invalid_utf8", "too_deep", "not_an_object",
	"out_of_range", "malformed_json",
};

/* An accepted message: same split as PostgreSQL's parser. */
static void
CheckAccepted(CampersoMessage *msg, RefState *ref, bool have_ref)
{
	int			i;

	for (i = 0; i < msg->nfields; i++)
	{
		CampersoField *f = &msg->fields[i];

		FUZZ_CHECK(f->name != NULL && strlen(f->name) == (size_t) f->name_len,
				   "field %d: name length %d", i, f->name_len);
		FUZZ_CHECK(FuzzUtf8Valid(f->name, f->name_len), "field %d: name not UTF-8", i);
		if (f->kind == CJ_NULL)
		{
			FUZZ_CHECK(f->text == NULL && f->text_len == 0, "field \"%s\": null with text", f->name);
			continue;
		}
		FUZZ_CHECK(f->text != NULL && strlen(f->text) == (size_t) f->text_len,
				   "field \"%s\": text length %d", f->name, f->text_len);
		FUZZ_CHECK(FuzzUtf8Valid(f->text, f->text_len), "field \"%s\": value not UTF-8", f->name);
		switch (f->kind)
		{
			case CJ_BOOL:
				FUZZ_CHECK(strcmp(f->text, "true") == 0 || strcmp(f->text, "false") == 0,
						   "field \"%s\": boolean \"%s\"", f->name, f->text);
				break;
			case CJ_NUMBER:
				FUZZ_CHECK(IsValidJsonNumber(f->text, f->text_len) && NumericFits(f->text, f->text_len),
						   "field \"%s\": number \"%s\"", f->name, f->text);
				break;
			case CJ_OBJECT:
			case CJ_ARRAY:
				FUZZ_CHECK(f->text[0] == (f->kind == CJ_OBJECT ? '{' : '['),
						   "field \"%s\": nested text starts with '%c'", f->name, f->text[0]);
				if (have_ref)
					FUZZ_CHECK(FuzzJsonValid(f->text, f->text_len),
							   "field \"%s\": nested text is not JSON: %s", f->name, f->text);
				break;
			default:
				break;
		}
		/* the lookup finds the last duplicate */
		FUZZ_CHECK(CampersoMessageField(msg, f->name) >= f, "lookup of \"%s\"", f->name);
	}
	if (!have_ref || ref->too_many_fields)
		return;
	FUZZ_CHECK(msg->nfields == ref->nfields, "%d fields, PostgreSQL sees %d",
			   msg->nfields, ref->nfields);
	for (i = 0; i < msg->nfields; i++)
	{
		CampersoField *f = &msg->fields[i];
		RefField   *r = &ref->fields[i];

		FUZZ_CHECK(strcmp(f->name, r->name) == 0, "field %d: name \"%s\", PostgreSQL sees \"%s\"",
				   i, f->name, r->name);
		FUZZ_CHECK(f->kind == r->kind, "field \"%s\": kind %d, PostgreSQL sees %d",
				   f->name, (int) f->kind, (int) r->kind);
		if (r->scalar != NULL && f->kind != CJ_NULL)
			FUZZ_CHECK(strcmp(f->text, r->scalar) == 0,
					   "field \"%s\": value \"%s\", PostgreSQL sees \"%s\"", f->name, f->text, r->scalar);
	}
}

static void
CheckDecode(const char *data, int len)
{
	CampersoMessage msg;
	const char *rule = NULL;
	char	   *reason = NULL;
	const char *field = NULL;
	bool		ok;
	bool		has_nul = memchr(data, '\0', len) != NULL;
	bool		utf8 = !has_nul && FuzzUtf8Valid(data, len);
	int			brackets = CountBrackets(data, len);
	bool		have_ref = !has_nul && brackets <= REFERENCE_MAX_BRACKETS;
	RefState   *ref = palloc(sizeof(RefState));
	JsonParseErrorType referr = JSON_SUCCESS;
	const char *first = FirstNonSpace(data, len);

	memset(&msg, 0, sizeof(msg));
	ok = CaptureJsonParseField(data, len, &msg, &rule, &reason, &field);

	if (have_ref)
		referr = Reference(data, len, ref);

	if (have_ref && utf8)
	{
		bool		expect = referr == JSON_SUCCESS && ref->top_kind == CJ_OBJECT &&
			ref->max_depth <= CAPTURE_MAX_DEPTH && ref->numbers_fit;

		FUZZ_CHECK(ok == expect,
				   "decoder %s (%s: %s), PostgreSQL's parser says %d (top kind %d, depth %d, numbers fit %d)",
				   ok ? "accepts" : "rejects", ok ? "-" : rule, ok ? "-" : reason,
				   (int) referr, (int) ref->top_kind, ref->max_depth, (int) ref->numbers_fit);
	}
	if (!utf8)
		FUZZ_CHECK(!ok, "decoder accepts bytes that are not UTF-8 or hold a NUL");

	if (ok)
	{
		CheckAccepted(&msg, ref, have_ref && utf8 && referr == JSON_SUCCESS);
		return;
	}

	/* a rejection: a known rule that fits, a reason fit for a text column */
	{
		bool		known = false;
		int			i;

		for (i = 0; i < lengthof(known_rules); i++)
			known |= (rule != NULL && strcmp(rule, known_rules[i]) == 0);
		FUZZ_CHECK(known, "unknown rule \"%s\"", rule ? rule : "(null)");
	}
	FUZZ_CHECK(reason != NULL && FuzzUtf8Valid(reason, strlen(reason)),
			   "rule %s: reason missing or not UTF-8", rule);
	FUZZ_CHECK(msg.nfields == 0, "rejected message keeps %d fields", msg.nfields);
	if (field != NULL)
		FUZZ_CHECK(FuzzUtf8Valid(field, strlen(field)), "field of the fault not UTF-8");
	if (strcmp(rule, "invalid_utf8") == 0)
		FUZZ_CHECK(!utf8, "invalid_utf8 for valid UTF-8: %s", reason);
	else if (strcmp(rule, "nul_byte") == 0)
		FUZZ_CHECK(has_nul || (have_ref && referr == JSON_UNICODE_CODE_POINT_ZERO) ||
				   (!have_ref && strstr(pnstrdup(data, len), "\\u0000") != NULL),
				   "nul_byte without a NUL: %s", reason);
	else if (strcmp(rule, "too_deep") == 0)
		FUZZ_CHECK(brackets > CAPTURE_MAX_DEPTH, "too_deep with %d brackets", brackets);
	else if (strcmp(rule, "not_an_object") == 0)
		FUZZ_CHECK(first != NULL && *first != '{' && (!have_ref || referr == JSON_SUCCESS),
				   "not_an_object for an object or invalid JSON");
	else if (strcmp(rule, "malformed_json") == 0 && have_ref && utf8)
		FUZZ_CHECK(referr != JSON_SUCCESS, "malformed_json for JSON PostgreSQL accepts: %s", reason);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FuzzShimInit();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return FuzzRunInput(CheckDecode, "CaptureJsonParseField", data, size);
}
