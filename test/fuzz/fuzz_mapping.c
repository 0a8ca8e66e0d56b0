/*-------------------------------------------------------------------------
 *
 * fuzz_mapping.c
 *	  libFuzzer target: the `mapping` source option's paths
 *	  (CaptureJsonPathCompile and CaptureJsonPathLookup in
 *	  src/capture/decode.c). An input is a path, a newline, and a message:
 *
 *	    $.props.items[2]."a key"
 *	    {"props": {"items": [...]}}
 *
 * The lookup walks the raw text the decoder kept for nested values with
 * a scanner that trusts the text to be valid JSON; this target checks it
 * against a walk of the same path done with PostgreSQL's own JSON parser
 * (found or not, the same kind, the same text: strings unescaped, other
 * values byte for byte as written). A path that does not compile must
 * give an error message, in valid UTF-8 when the path is.
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

/* One step of the reference walk: finds a member's or element's text. */
typedef struct StepState
{
	JsonLexContext *lex;
	int			depth;
	const CaptureJsonPathStep *step;
	int			element;
	bool		capturing;
	char	   *start;
	char	   *found_start;
	char	   *found_end;
} StepState;

static void
StepIn(void *state)
{
	((StepState *) state)->depth++;
}

static void
StepOut(void *state)
{
	((StepState *) state)->depth--;
}

static void
StepFieldStart(void *state, char *fname, bool isnull)
{
	StepState  *st = state;

	if (st->depth == 1 && st->step->key != NULL && strcmp(fname, st->step->key) == 0)
	{
		st->capturing = true;
		st->start = st->lex->token_start;
	}
}

static void
StepFieldEnd(void *state, char *fname, bool isnull)
{
	StepState  *st = state;

	if (st->depth == 1 && st->capturing)
	{
		/* every match overwrites: the last duplicate wins */
		st->found_start = st->start;
		st->found_end = st->lex->prev_token_terminator;
		st->capturing = false;
	}
}

static void
StepElementStart(void *state, bool isnull)
{
	StepState  *st = state;

	if (st->depth == 1 && st->step->key == NULL && st->element == st->step->index)
	{
		st->capturing = true;
		st->start = st->lex->token_start;
	}
}

static void
StepElementEnd(void *state, bool isnull)
{
	StepState  *st = state;

	if (st->depth != 1)
		return;
	if (st->capturing)
	{
		st->found_start = st->start;
		st->found_end = st->lex->prev_token_terminator;
		st->capturing = false;
	}
	st->element++;
}

/*
 * Finds step in the JSON value text[0..*len); on success points *text and
 * *len at the member's or element's text (inside a fresh copy).
 */
static bool
ReferenceStep(const char **text, int *len, const CaptureJsonPathStep *step)
{
	StepState	st;
	JsonSemAction sem;
	JsonParseErrorType err;

	memset(&st, 0, sizeof(st));
	memset(&sem, 0, sizeof(sem));
	st.step = step;
	st.lex = makeJsonLexContextCstringLen(pnstrdup(*text, *len), *len, PG_UTF8, true);
	sem.semstate = &st;
	sem.object_start = StepIn;
	sem.object_end = StepOut;
	sem.array_start = StepIn;
	sem.array_end = StepOut;
	sem.object_field_start = StepFieldStart;
	sem.object_field_end = StepFieldEnd;
	sem.array_element_start = StepElementStart;
	sem.array_element_end = StepElementEnd;
	err = pg_parse_json(st.lex, &sem);
	FUZZ_CHECK(err == JSON_SUCCESS, "nested text of a decoded message is not JSON: %.*s", *len, *text);
	if (st.found_start == NULL)
		return false;
	*text = st.found_start;
	*len = (int) (st.found_end - st.found_start);
	return true;
}

/* A lone JSON string's unescaped value. */
static void
TakeScalar(void *state, char *token, JsonTokenType tokentype)
{
	*(char **) state = token;
}

static char *
ReferenceString(const char *text, int len)
{
	char	   *value = NULL;
	JsonSemAction sem;

	memset(&sem, 0, sizeof(sem));
	sem.semstate = &value;
	sem.scalar = TakeScalar;
	FUZZ_CHECK(pg_parse_json(makeJsonLexContextCstringLen(pnstrdup(text, len), len, PG_UTF8, true),
							 &sem) == JSON_SUCCESS && value != NULL,
			   "string %.*s", len, text);
	return value;
}

static void
CheckLookup(const char *payload, int payload_len, CaptureJsonPath *path)
{
	CampersoMessage msg;
	const char *rule;
	char	   *reason;
	CampersoField out;
	bool		found;
	const char *text = payload;
	int			len = payload_len;
	bool		ref_found = true;
	int			i;
	int			brackets = 0;

	memset(&msg, 0, sizeof(msg));
	if (!CaptureJsonParse(payload, payload_len, &msg, &rule, &reason))
		return;
	memset(&out, 0, sizeof(out));
	found = CaptureJsonPathLookup(&msg, path, &out);
	if (found && out.kind != CJ_NULL)
	{
		FUZZ_CHECK(out.text != NULL && strlen(out.text) == (size_t) out.text_len,
				   "looked-up text length %d", out.text_len);
		FUZZ_CHECK(FuzzUtf8Valid(out.text, out.text_len), "looked-up text not UTF-8");
	}

	for (i = 0; i < payload_len; i++)
		brackets += (payload[i] == '[' || payload[i] == '{');
	if (brackets > REFERENCE_MAX_BRACKETS)
		return;
	for (i = 0; i < path->nsteps && ref_found; i++)
		ref_found = ReferenceStep(&text, &len, &path->steps[i]);
	FUZZ_CHECK(found == ref_found, "lookup %s, PostgreSQL's parser %s the value",
			   found ? "finds" : "does not find", ref_found ? "finds" : "does not find");
	if (!found)
		return;
	switch (text[0])
	{
		case '"':
			{
				char	   *value = ReferenceString(text, len);

				FUZZ_CHECK(out.kind == CJ_STRING && strcmp(out.text, value) == 0,
						   "string \"%s\", PostgreSQL sees \"%s\"",
						   out.kind == CJ_STRING ? out.text : "-", value);
				break;
			}
		case 'n':
			FUZZ_CHECK(out.kind == CJ_NULL && out.text == NULL, "null looked up as kind %d", out.kind);
			break;
		default:
			FUZZ_CHECK(out.kind == (text[0] == '{' ? CJ_OBJECT : text[0] == '[' ? CJ_ARRAY :
									text[0] == 't' || text[0] == 'f' ? CJ_BOOL : CJ_NUMBER),
					   "kind %d for %.*s", out.kind, len, text);
			FUZZ_CHECK(out.text_len == len && memcmp(out.text, text, len) == 0,
					   "text %s, PostgreSQL sees %.*s", out.text, len, text);
			break;
	}
}

static void
CheckInput(const char *data, int size)
{
	const char *nl = memchr(data, '\n', size);
	int			path_len = nl ? (int) (nl - data) : size;
	char	   *path_text;
	char	   *error = NULL;
	CaptureJsonPath *path;

	/* paths come from a JSON string of the options: no NUL */
	if (memchr(data, '\0', path_len) != NULL)
		return;
	path_text = pnstrdup(data, path_len);
	path = CaptureJsonPathCompile(path_text, &error);
	if (path == NULL)
	{
		FUZZ_CHECK(error != NULL, "path %s: no error", path_text);
		if (FuzzUtf8Valid(path_text, path_len))
			FUZZ_CHECK(FuzzUtf8Valid(error, strlen(error)), "error for a UTF-8 path is not UTF-8: %s",
					   error);
		return;
	}
	FUZZ_CHECK(path->nsteps > 0 && path->steps[0].key != NULL, "path %s compiled without a first key",
			   path_text);
	if (nl != NULL)
		CheckLookup(nl + 1, size - path_len - 1, path);
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
	return FuzzRunInput(CheckInput, "the mapping path code", data, size);
}
