/*-------------------------------------------------------------------------
 *
 * decode.c
 *	  Capture's JSON decoder: one strict (RFC 8259) single pass over a
 *	  message that splits its top-level keys into a CampersoMessage, and the
 *	  small path language of the `mapping` source option.
 *
 * Why a parser of our own: jsonb_in builds a whole tree, sorts keys and
 * converts every number to numeric; landing only needs the top-level keys
 * and their values as text, so one pass that validates everything but
 * splits only the first level is several times cheaper. That is where the
 * land path gets its speed.
 *
 * How it works: the payload is copied once into a scratch buffer (the row
 * context of the caller) with a NUL after it. Messages holding a NUL byte
 * are rejected up front (rule nul_byte), so inside the copy a NUL can only
 * be the end: the scanner needs no length checks. The buffer has
 * SCAN_PADDING zero bytes after that NUL, so that strings can be scanned a
 * word (8 bytes) at a time without reading past it. Top-level strings (keys
 * and values) are unescaped in place, which never makes them longer, and
 * NUL-terminated where their closing quote was; numbers, literals and
 * nested values are NUL-terminated by overwriting the byte after them once
 * that byte has been read. Nested objects and arrays are validated with an
 * explicit stack (no recursion, so depth costs no C stack) and kept as
 * their raw text.
 *
 * What is rejected, with the rule the quarantine records:
 *   oversized       payload above CAPTURE_HARD_MAX_BYTES (land.c applies
 *                   the source's smaller max_message_bytes first)
 *   nul_byte        a NUL byte, or \u0000 in any string (jsonb refuses it)
 *   invalid_utf8    bytes that are not well-formed UTF-8 (overlongs,
 *                   encoded surrogates, code points above U+10FFFF)
 *   too_deep        nesting deeper than CAPTURE_MAX_DEPTH
 *   not_an_object   valid JSON whose top level is not an object
 *   out_of_range    a number PostgreSQL's numeric (hence jsonb) cannot hold
 *   malformed_json  everything else: trailing garbage, bad escapes, lone
 *                   surrogates, leading zeros, control characters in
 *                   strings, missing commas, ...
 * Duplicate keys are kept in document order; every lookup takes the last
 * one, as jsonb does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "capture/capture.h"

/* One byte of the scratch buffer, unsigned for the range tests. */
#define UC(p) ((unsigned char) *(p))

/* Zero bytes after the terminating NUL: a word read from it stays inside. */
#define SCAN_PADDING	sizeof(uint64)

/*
 * Length of the run of plain string bytes at p: printable ASCII other than
 * '"' and '\\', which a string holds as they are. Reads 8 bytes at a time
 * (the scanner's hot loop; most of an event is such text); a word is plain
 * when none of its bytes is below 0x20, 0x80 or above, '"' or '\\'. The NUL
 * terminator is below 0x20, so the run ends at or before it, and the word
 * holding it lies within the padding.
 */
static inline int
PlainRunLength(const char *p)
{
#define ONES	UINT64CONST(0x0101010101010101)
#define HIGHS	UINT64CONST(0x8080808080808080)
#define HAS_ZERO(v)	(((v) - ONES) & ~(v) & HIGHS)
	const char *start = p;

	for (;;)
	{
		uint64		w;

		memcpy(&w, p, sizeof(w));
		/* a byte < 0x20 or >= 0x80 makes a high bit of w or of w - 0x20.. */
		if (((w | (w - 0x20 * ONES)) & HIGHS) != 0 ||
			HAS_ZERO(w ^ ('"' * ONES)) != 0 ||
			HAS_ZERO(w ^ ('\\' * ONES)) != 0)
			break;
		p += sizeof(w);
	}
	while (UC(p) >= 0x20 && UC(p) < 0x80 && *p != '"' && *p != '\\')
		p++;
	return (int) (p - start);
#undef HAS_ZERO
#undef HIGHS
#undef ONES
}

/* Parser state for one message. */
typedef struct JsonScan
{
	char	   *buf;			/* scratch copy, NUL-terminated */
	char	   *p;				/* next byte to read */
	const char *rule;			/* set on failure */
	char	   *reason;
	const char *field;			/* top-level key being read, for errors */
} JsonScan;

static bool ScanFail(JsonScan *s, const char *rule, const char *fmt,...) pg_attribute_printf(3, 4);
static bool ScanString(JsonScan *s, bool unescape, char **out, int *outlen);
static bool ScanNumber(JsonScan *s);
static bool ScanNested(JsonScan *s, int depth);
static bool ScanScalarOrNested(JsonScan *s, int depth, CampersoJsonKind *kind);

/* Records a failure: rule, and a reason that says where. Returns false. */
static bool
ScanFail(JsonScan *s, const char *rule, const char *fmt,...)
{
	StringInfoData buf;
	va_list		args;

	if (s->rule)
		return false;			/* keep the first failure */
	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	if (strcmp(rule, "not_an_object") != 0)
		appendStringInfo(&buf, " at byte %d", (int) (s->p - s->buf));
	if (s->field)
		appendStringInfo(&buf, " (in the value of key \"%s\")", s->field);
	s->rule = rule;
	s->reason = buf.data;
	return false;
}

static inline void
SkipSpace(JsonScan *s)
{
	while (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')
		s->p++;
}

/*
 * Length of the well-formed UTF-8 sequence starting at p (lead byte >=
 * 0x80), or 0 when it is not well-formed (RFC 3629: no overlongs, no
 * encoded surrogates, nothing above U+10FFFF). The NUL sentinel is never a
 * continuation byte, so this cannot read past the buffer.
 */
static inline int
Utf8SequenceLength(const unsigned char *p)
{
	unsigned char c = p[0];

#define CONT(b) (((b) & 0xC0) == 0x80)
	if (c >= 0xC2 && c <= 0xDF)
		return CONT(p[1]) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF)
	{
		if (c == 0xE0 && !(p[1] >= 0xA0 && p[1] <= 0xBF))
			return 0;
		if (c == 0xED && !(p[1] >= 0x80 && p[1] <= 0x9F))
			return 0;
		return (CONT(p[1]) && CONT(p[2])) ? 3 : 0;
	}
	if (c >= 0xF0 && c <= 0xF4)
	{
		if (c == 0xF0 && !(p[1] >= 0x90 && p[1] <= 0xBF))
			return 0;
		if (c == 0xF4 && !(p[1] >= 0x80 && p[1] <= 0x8F))
			return 0;
		return (CONT(p[1]) && CONT(p[2]) && CONT(p[3])) ? 4 : 0;
	}
#undef CONT
	return 0;
}

/* Value of 4 hex digits at p, or -1. */
static inline int
Hex4(const char *p)
{
	int			v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		char		c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/*
 * Reads a string; s->p is on the opening quote. With unescape, the string
 * is decoded in place and NUL-terminated, out and outlen describing it;
 * without, it is only validated (nested values keep their raw text).
 */
static bool
ScanString(JsonScan *s, bool unescape, char **out, int *outlen)
{
	char	   *r = s->p + 1;
	char	   *w = r;
	char	   *start = r;

	/* validation only must leave the raw text of nested values intact */
#define PUT(c) do { if (unescape) *w = (c); w++; } while (0)

	for (;;)
	{
		unsigned char c;
		int			run = PlainRunLength(r);

		/* plain bytes stay where they are until an escape has shrunk the text */
		if (unescape && w != r && run > 0)
			memmove(w, r, run);
		w += run;
		r += run;
		c = UC(r);
		if (c == '"')
			break;
		if (c >= 0x80)
		{
			int			n = Utf8SequenceLength((unsigned char *) r);

			if (n == 0)
			{
				s->p = r;
				return ScanFail(s, "invalid_utf8", "invalid UTF-8 byte sequence");
			}
			while (n-- > 0)
			{
				PUT(*r);
				r++;
			}
			continue;
		}
		if (c == '\\')
		{
			int			cp;

			switch (r[1])
			{
				case '"':
				case '\\':
				case '/':
					PUT(r[1]);
					r += 2;
					continue;
				case 'b':
					PUT('\b');
					r += 2;
					continue;
				case 'f':
					PUT('\f');
					r += 2;
					continue;
				case 'n':
					PUT('\n');
					r += 2;
					continue;
				case 'r':
					PUT('\r');
					r += 2;
					continue;
				case 't':
					PUT('\t');
					r += 2;
					continue;
				case 'u':
					break;
				default:
					s->p = r;
					return ScanFail(s, "malformed_json", "invalid escape sequence in string");
			}
			cp = Hex4(r + 2);
			if (cp < 0)
			{
				s->p = r;
				return ScanFail(s, "malformed_json", "invalid \\u escape in string");
			}
			if (cp == 0)
			{
				s->p = r;
				return ScanFail(s, "nul_byte", "string holds \\u0000");
			}
			r += 6;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
			{
				s->p = r - 6;
				return ScanFail(s, "malformed_json", "lone low surrogate \\u%04X in string", cp);
			}
			if (cp >= 0xD800 && cp <= 0xDBFF)
			{
				int			lo = -1;

				if (r[0] == '\\' && r[1] == 'u')
					lo = Hex4(r + 2);
				if (lo < 0xDC00 || lo > 0xDFFF)
				{
					s->p = r - 6;
					return ScanFail(s, "malformed_json", "lone high surrogate \\u%04X in string", cp);
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				r += 6;
			}
			/* UTF-8 encode; never longer than the escape it replaces */
			if (cp < 0x80)
				PUT((char) cp);
			else if (cp < 0x800)
			{
				PUT((char) (0xC0 | (cp >> 6)));
				PUT((char) (0x80 | (cp & 0x3F)));
			}
			else if (cp < 0x10000)
			{
				PUT((char) (0xE0 | (cp >> 12)));
				PUT((char) (0x80 | ((cp >> 6) & 0x3F)));
				PUT((char) (0x80 | (cp & 0x3F)));
			}
			else
			{
				PUT((char) (0xF0 | (cp >> 18)));
				PUT((char) (0x80 | ((cp >> 12) & 0x3F)));
				PUT((char) (0x80 | ((cp >> 6) & 0x3F)));
				PUT((char) (0x80 | (cp & 0x3F)));
			}
			continue;
		}
		/* a control character, or the NUL sentinel: end of input */
		s->p = r;
		if (c == 0)
			return ScanFail(s, "malformed_json", "unterminated string");
		return ScanFail(s, "malformed_json", "unescaped control character 0x%02X in string", c);
	}
#undef PUT
	s->p = r + 1;				/* past the closing quote */
	if (unescape)
	{
		*w = '\0';				/* w <= r: the closing quote or before */
		*out = start;
		*outlen = (int) (w - start);
	}
	return true;
}

/*
 * Where numeric_in refuses a number ("value overflows numeric format"):
 * an exponent beyond +-(INT_MAX / 2); a scale as written (fraction digits
 * minus the exponent) above 16383, even for zero; a nonzero value with
 * more than 131072 digits before the point, counted from its first
 * nonzero digit (0.001e131074 fits). jsonb stores every number as
 * numeric, so a number outside these is out_of_range wherever it is.
 */
#define NUMERIC_MAX_INT_DIGITS	131072
#define NUMERIC_MAX_FRAC_DIGITS	16383
#define NUMERIC_MAX_EXPONENT	(PG_INT32_MAX / 2)

/* Reads a number per RFC 8259; s->p is on '-' or a digit. */
static bool
ScanNumber(JsonScan *s)
{
	char	   *p = s->p;
	int64		intdigits = 0;
	int64		fracdigits = 0;
	int64		exponent = 0;
	int64		leadzeros = 0;	/* of the fraction, while the value is 0 */
	bool		nonzero = false;

	if (*p == '-')
		p++;
	if (*p == '0')
	{
		p++;
		if (*p >= '0' && *p <= '9')
		{
			s->p = p;
			return ScanFail(s, "malformed_json", "number with a leading zero");
		}
	}
	else if (*p >= '1' && *p <= '9')
	{
		nonzero = true;
		while (*p >= '0' && *p <= '9')
		{
			p++;
			intdigits++;
		}
	}
	else
	{
		s->p = p;
		return ScanFail(s, "malformed_json", "invalid number");
	}
	if (*p == '.')
	{
		p++;
		if (!(*p >= '0' && *p <= '9'))
		{
			s->p = p;
			return ScanFail(s, "malformed_json", "digits expected after the decimal point");
		}
		while (*p >= '0' && *p <= '9')
		{
			if (*p != '0')
				nonzero = true;
			else if (!nonzero)
				leadzeros++;
			p++;
			fracdigits++;
		}
	}
	if (*p == 'e' || *p == 'E')
	{
		bool		neg = false;

		p++;
		if (*p == '+' || *p == '-')
			neg = (*p++ == '-');
		if (!(*p >= '0' && *p <= '9'))
		{
			s->p = p;
			return ScanFail(s, "malformed_json", "digits expected in the exponent");
		}
		while (*p >= '0' && *p <= '9')
		{
			if (exponent < PG_INT32_MAX)
				exponent = exponent * 10 + (*p - '0');
			p++;
		}
		if (neg)
			exponent = -exponent;
	}
	s->p = p;
	if (exponent >= NUMERIC_MAX_EXPONENT || exponent <= -NUMERIC_MAX_EXPONENT ||
		fracdigits - exponent > NUMERIC_MAX_FRAC_DIGITS ||
		(nonzero && intdigits - leadzeros + exponent > NUMERIC_MAX_INT_DIGITS))
		return ScanFail(s, "out_of_range", "number out of the range of numeric");
	return true;
}

/* Reads one of the literals true, false, null at s->p. */
static bool
ScanLiteral(JsonScan *s, const char *lit, int len)
{
	if (strncmp(s->p, lit, len) != 0)
		return ScanFail(s, "malformed_json", "invalid literal");
	s->p += len;
	return true;
}

/*
 * Validates the object or array at s->p (on '{' or '['), which sits at
 * nesting level depth, without recursion: a bit stack remembers, per open
 * level, whether it is an object.
 */
static bool
ScanNested(JsonScan *s, int depth)
{
	uint64		isobj[CAPTURE_MAX_DEPTH / 64 + 1] = {0};
	int			top = 0;		/* open containers */

#define PUSH(obj) \
	do { \
		if (depth + top > CAPTURE_MAX_DEPTH) \
			return ScanFail(s, "too_deep", "nesting deeper than %d levels", CAPTURE_MAX_DEPTH); \
		if (obj) isobj[top / 64] |= UINT64CONST(1) << (top % 64); \
		else isobj[top / 64] &= ~(UINT64CONST(1) << (top % 64)); \
		top++; \
	} while (0)
#define TOP_IS_OBJ() ((isobj[(top - 1) / 64] >> ((top - 1) % 64)) & 1)

	PUSH(*s->p == '{');
	s->p++;

	/* after an opening bracket: a value/key or the closing bracket */
	for (;;)
	{
		SkipSpace(s);
		if ((*s->p == '}' && TOP_IS_OBJ()) || (*s->p == ']' && !TOP_IS_OBJ()))
		{
			s->p++;
			top--;
			goto after_value;
		}
		for (;;)
		{
			/* a member: key and colon for objects, then a value */
			if (TOP_IS_OBJ())
			{
				if (*s->p != '"')
					return ScanFail(s, "malformed_json", "object key expected");
				if (!ScanString(s, false, NULL, NULL))
					return false;
				SkipSpace(s);
				if (*s->p != ':')
					return ScanFail(s, "malformed_json", "':' expected after object key");
				s->p++;
				SkipSpace(s);
			}
			switch (*s->p)
			{
				case '{':
				case '[':
					PUSH(*s->p == '{');
					s->p++;
					goto opened;
				case '"':
					if (!ScanString(s, false, NULL, NULL))
						return false;
					break;
				case 't':
					if (!ScanLiteral(s, "true", 4))
						return false;
					break;
				case 'f':
					if (!ScanLiteral(s, "false", 5))
						return false;
					break;
				case 'n':
					if (!ScanLiteral(s, "null", 4))
						return false;
					break;
				default:
					if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
					{
						if (!ScanNumber(s))
							return false;
						break;
					}
					if (*s->p == '\0')
						return ScanFail(s, "malformed_json", "unexpected end of input");
					if (UC(s->p) >= 0x80 && Utf8SequenceLength((unsigned char *) s->p) == 0)
						return ScanFail(s, "invalid_utf8", "invalid UTF-8 byte sequence");
					return ScanFail(s, "malformed_json", "value expected");
			}
	after_value:
			if (top == 0)
				return true;
			SkipSpace(s);
			if (*s->p == ',')
			{
				s->p++;
				SkipSpace(s);
				continue;		/* next member of the same container */
			}
			if ((*s->p == '}' && TOP_IS_OBJ()) || (*s->p == ']' && !TOP_IS_OBJ()))
			{
				s->p++;
				top--;
				goto after_value;
			}
			if (*s->p == '\0')
				return ScanFail(s, "malformed_json", "unexpected end of input");
			return ScanFail(s, "malformed_json", TOP_IS_OBJ() ? "',' or '}' expected" : "',' or ']' expected");
		}
opened:
		;
	}
#undef PUSH
#undef TOP_IS_OBJ
}

/*
 * Validates any value at s->p that is not a top-level string: number,
 * literal, object or array. Sets *kind.
 */
static bool
ScanScalarOrNested(JsonScan *s, int depth, CampersoJsonKind *kind)
{
	switch (*s->p)
	{
		case '{':
			*kind = CJ_OBJECT;
			return ScanNested(s, depth);
		case '[':
			*kind = CJ_ARRAY;
			return ScanNested(s, depth);
		case 't':
			*kind = CJ_BOOL;
			return ScanLiteral(s, "true", 4);
		case 'f':
			*kind = CJ_BOOL;
			return ScanLiteral(s, "false", 5);
		case 'n':
			*kind = CJ_NULL;
			return ScanLiteral(s, "null", 4);
		case '\0':
			return ScanFail(s, "malformed_json", "unexpected end of input");
		default:
			if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			{
				*kind = CJ_NUMBER;
				return ScanNumber(s);
			}
			if (UC(s->p) >= 0x80 && Utf8SequenceLength((unsigned char *) s->p) == 0)
				return ScanFail(s, "invalid_utf8", "invalid UTF-8 byte sequence");
			return ScanFail(s, "malformed_json", "value expected");
	}
}

/*
 * Classifies a document whose top level is not '{': valid JSON of another
 * kind is not_an_object, anything else gets the error of its first fault.
 */
static bool
ScanNonObject(JsonScan *s)
{
	CampersoJsonKind kind;

	if (*s->p == '\0')
		return ScanFail(s, "malformed_json", "empty message");
	if (*s->p == '"')
	{
		if (!ScanString(s, false, NULL, NULL))
			return false;
		kind = CJ_STRING;
	}
	else if (!ScanScalarOrNested(s, 1, &kind))
		return false;
	SkipSpace(s);
	if (*s->p != '\0')
	{
		if (UC(s->p) >= 0x80 && Utf8SequenceLength((unsigned char *) s->p) == 0)
			return ScanFail(s, "invalid_utf8", "invalid UTF-8 byte sequence");
		return ScanFail(s, "malformed_json", "trailing characters after the JSON value");
	}
	s->p = s->buf;
	return ScanFail(s, "not_an_object", "the message is a JSON %s, not an object",
					kind == CJ_ARRAY ? "array" : kind == CJ_STRING ? "string" :
					kind == CJ_NUMBER ? "number" : kind == CJ_BOOL ? "boolean" : "null");
}

/*
 * CaptureJsonParseField: CaptureJsonParse that also says which top-level
 * key the fault was in (*field, NULL when none). Allocates in the current
 * memory context (the caller's per-row context).
 */
bool
CaptureJsonParseField(const char *data, int len, CampersoMessage *msg,
					  const char **rule, char **reason, const char **field)
{
	JsonScan	s;
	int			cap = 16;
	const char *nul;

	msg->nfields = 0;
	msg->fields = NULL;
	*field = NULL;

	if (len < 0 || len > CAPTURE_HARD_MAX_BYTES)
	{
		*rule = "oversized";
		*reason = psprintf("message of %d bytes is above the hard limit of %d bytes",
						   len, CAPTURE_HARD_MAX_BYTES);
		return false;
	}
	nul = memchr(data, '\0', len);
	if (nul != NULL)
	{
		*rule = "nul_byte";
		*reason = psprintf("message holds a NUL byte at byte %d", (int) (nul - data));
		return false;
	}

	memset(&s, 0, sizeof(s));
	s.buf = palloc(len + 1 + SCAN_PADDING);
	memcpy(s.buf, data, len);
	memset(s.buf + len, 0, 1 + SCAN_PADDING);
	s.p = s.buf;

	SkipSpace(&s);
	if (*s.p != '{')
	{
		ScanNonObject(&s);
		goto failed;
	}
	s.p++;
	msg->fields = palloc(cap * sizeof(CampersoField));

	SkipSpace(&s);
	if (*s.p == '}')
		s.p++;
	else
	{
		for (;;)
		{
			CampersoField *f;
			char	   *name;
			int			name_len;
			char	   *vstart;

			if (*s.p != '"')
			{
				if (*s.p == '\0')
					ScanFail(&s, "malformed_json", "unexpected end of input");
				else if (UC(s.p) >= 0x80 && Utf8SequenceLength((unsigned char *) s.p) == 0)
					ScanFail(&s, "invalid_utf8", "invalid UTF-8 byte sequence");
				else
					ScanFail(&s, "malformed_json", "object key expected");
				goto failed;
			}
			if (!ScanString(&s, true, &name, &name_len))
				goto failed;
			s.field = name;
			SkipSpace(&s);
			if (*s.p != ':')
			{
				ScanFail(&s, "malformed_json", "':' expected after object key");
				goto failed;
			}
			s.p++;
			SkipSpace(&s);

			if (msg->nfields == cap)
			{
				cap *= 2;
				msg->fields = repalloc(msg->fields, cap * sizeof(CampersoField));
			}
			f = &msg->fields[msg->nfields];
			f->name = name;
			f->name_len = name_len;
			vstart = s.p;
			if (*s.p == '"')
			{
				char	   *v;
				int			vlen;

				if (!ScanString(&s, true, &v, &vlen))
					goto failed;
				f->kind = CJ_STRING;
				f->text = v;
				f->text_len = vlen;
				SkipSpace(&s);
			}
			else
			{
				char	   *vend;

				if (!ScanScalarOrNested(&s, 2, &f->kind))
					goto failed;
				vend = s.p;
				f->text = f->kind == CJ_NULL ? NULL : vstart;
				f->text_len = f->kind == CJ_NULL ? 0 : (int) (vend - vstart);
				SkipSpace(&s);

				/*
				 * NUL-terminate the value where the byte after it was; that
				 * byte is whitespace, ',' or '}', and when it is not
				 * whitespace it is read below before it is overwritten.
				 */
				if (vend < s.p)
					*vend = '\0';
				else
				{
					char		next = *s.p;

					*vend = '\0';
					msg->nfields++;
					s.field = NULL;
					if (next == ',')
					{
						s.p++;
						SkipSpace(&s);
						continue;
					}
					if (next == '}')
					{
						s.p++;
						break;
					}
					if (next == '\0')
						ScanFail(&s, "malformed_json", "unexpected end of input");
					else
						ScanFail(&s, "malformed_json", "',' or '}' expected");
					goto failed;
				}
			}
			msg->nfields++;
			s.field = NULL;
			if (*s.p == ',')
			{
				s.p++;
				SkipSpace(&s);
				continue;
			}
			if (*s.p == '}')
			{
				s.p++;
				break;
			}
			if (*s.p == '\0')
				ScanFail(&s, "malformed_json", "unexpected end of input");
			else if (UC(s.p) >= 0x80 && Utf8SequenceLength((unsigned char *) s.p) == 0)
				ScanFail(&s, "invalid_utf8", "invalid UTF-8 byte sequence");
			else
				ScanFail(&s, "malformed_json", "',' or '}' expected");
			goto failed;
		}
	}
	SkipSpace(&s);
	if (*s.p != '\0')
	{
		if (UC(s.p) >= 0x80 && Utf8SequenceLength((unsigned char *) s.p) == 0)
			ScanFail(&s, "invalid_utf8", "invalid UTF-8 byte sequence");
		else
			ScanFail(&s, "malformed_json", "trailing characters after the JSON object");
		goto failed;
	}
	return true;

failed:
	*rule = s.rule;
	*reason = s.reason;
	*field = s.field;
	msg->nfields = 0;
	return false;
}

/* See capture.h. */
bool
CaptureJsonParse(const char *data, int len, CampersoMessage *msg,
				 const char **rule, char **reason)
{
	const char *field;

	return CaptureJsonParseField(data, len, msg, rule, reason, &field);
}

/* ------------------------------------------------------------------------
 * Paths of the `mapping` option: $.a.b, $.a[0].b, $."a key".b
 * ------------------------------------------------------------------------
 */

/*
 * Compiles a mapping path. The first step must be a key; later steps are
 * keys or array indexes. Returns NULL and sets *error when the path is not
 * understood.
 */
CaptureJsonPath *
CaptureJsonPathCompile(const char *path, char **error)
{
	CaptureJsonPath *jp = palloc0(sizeof(CaptureJsonPath));
	const char *p = path;
	int			cap = 4;

	jp->steps = palloc(cap * sizeof(CaptureJsonPathStep));
	if (*p != '$')
	{
		*error = psprintf("path \"%s\" does not start with \"$\"", path);
		return NULL;
	}
	p++;
	while (*p)
	{
		CaptureJsonPathStep step;

		memset(&step, 0, sizeof(step));
		if (*p == '.')
		{
			p++;
			if (*p == '"')
			{
				StringInfoData key;

				initStringInfo(&key);
				p++;
				while (*p && *p != '"')
				{
					if (*p == '\\' && p[1])
						p++;
					appendStringInfoChar(&key, *p++);
				}
				if (*p != '"')
				{
					*error = psprintf("unterminated quoted key in path \"%s\"", path);
					return NULL;
				}
				p++;
				step.key = key.data;
			}
			else
			{
				const char *start = p;

				while (*p && *p != '.' && *p != '[')
					p++;
				if (p == start)
				{
					*error = psprintf("empty key in path \"%s\"", path);
					return NULL;
				}
				step.key = pnstrdup(start, p - start);
			}
			step.index = -1;
		}
		else if (*p == '[')
		{
			long		idx;
			char	   *end;

			p++;
			if (!(*p >= '0' && *p <= '9'))
			{
				*error = psprintf("array index expected in path \"%s\"", path);
				return NULL;
			}
			errno = 0;
			idx = strtol(p, &end, 10);
			if (errno != 0 || idx > PG_INT32_MAX || *end != ']')
			{
				*error = psprintf("invalid array index in path \"%s\"", path);
				return NULL;
			}
			p = end + 1;
			step.key = NULL;
			step.index = (int) idx;
		}
		else
		{
			/* the whole character: a lone byte of one is not valid UTF-8 */
			*error = psprintf("unexpected character '%.*s' in path \"%s\"",
							  pg_mblen(p), p, path);
			return NULL;
		}
		if (jp->nsteps == 0 && step.key == NULL)
		{
			*error = psprintf("path \"%s\" must start with a key", path);
			return NULL;
		}
		if (jp->nsteps == cap)
		{
			cap *= 2;
			jp->steps = repalloc(jp->steps, cap * sizeof(CaptureJsonPathStep));
		}
		jp->steps[jp->nsteps++] = step;
	}
	if (jp->nsteps == 0)
	{
		*error = psprintf("path \"%s\" names no key", path);
		return NULL;
	}
	return jp;
}

/*
 * Skips one already-validated value at p (nested text kept raw by the
 * parser, so it is well-formed and NUL-free); returns the byte after it.
 */
static const char *
SkipValidValue(const char *p)
{
	int			depth = 0;

	do
	{
		while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' ||
			   *p == ',' || *p == ':')
			p++;
		if (*p == '"')
		{
			p++;
			while (*p != '"')
				p += (*p == '\\') ? 2 : 1;
			p++;
		}
		else if (*p == '{' || *p == '[')
		{
			depth++;
			p++;
		}
		else if (*p == '}' || *p == ']')
		{
			depth--;
			p++;
		}
		else
		{
			while (*p && *p != ',' && *p != '}' && *p != ']' &&
				   *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
				p++;
		}
	} while (depth > 0);
	return p;
}

static const char *
SkipWs(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	return p;
}

/*
 * Unescapes the validated string at p (on its opening quote) into a new
 * NUL-terminated buffer; returns the byte after the closing quote.
 */
static const char *
UnescapeValidString(const char *p, char **out, int *outlen)
{
	const char *end = p + 1;
	JsonScan	s;
	char	   *v;

	while (*end != '"')
		end += (*end == '\\') ? 2 : 1;
	memset(&s, 0, sizeof(s));
	/* with the NUL and the padding ScanString reads words from */
	s.buf = palloc0(end + 1 - p + 1 + SCAN_PADDING);
	memcpy(s.buf, p, end + 1 - p);
	s.p = s.buf;
	if (!ScanString(&s, true, &v, outlen))
		elog(ERROR, "camperso: validated JSON string failed to decode");
	*out = v;
	return end + 1;
}

/*
 * Looks the path up in a decoded message. Fills *out (a value that lives
 * in the current memory context) and returns true when the path exists.
 */
bool
CaptureJsonPathLookup(CampersoMessage *msg, const CaptureJsonPath *path,
					  CampersoField *out)
{
	CampersoField *top = CampersoMessageField(msg, path->steps[0].key);
	const char *p;
	const char *vend;
	int			i;

	if (top == NULL)
		return false;
	if (path->nsteps == 1)
	{
		*out = *top;
		return true;
	}
	if (top->kind != CJ_OBJECT && top->kind != CJ_ARRAY)
		return false;
	p = top->text;
	for (i = 1; i < path->nsteps; i++)
	{
		const CaptureJsonPathStep *step = &path->steps[i];
		bool		found = false;

		p = SkipWs(p);
		if (step->key != NULL)
		{
			const char *match = NULL;

			if (*p != '{')
				return false;
			p = SkipWs(p + 1);
			/* scan every member: the last duplicate wins */
			while (*p == '"')
			{
				char	   *k;
				int			klen;

				p = UnescapeValidString(p, &k, &klen);
				p = SkipWs(p);
				p = SkipWs(p + 1);	/* the colon */
				if (strcmp(k, step->key) == 0)
					match = p;
				p = SkipWs(SkipValidValue(p));
				if (*p == ',')
					p = SkipWs(p + 1);
			}
			if (match == NULL)
				return false;
			p = match;
			found = true;
		}
		else
		{
			int			n = 0;

			if (*p != '[')
				return false;
			p = SkipWs(p + 1);
			while (*p != ']')
			{
				if (n == step->index)
				{
					found = true;
					break;
				}
				p = SkipWs(SkipValidValue(p));
				if (*p == ',')
					p = SkipWs(p + 1);
				n++;
			}
		}
		if (!found)
			return false;
	}

	/* p is on the value the path names */
	memset(out, 0, sizeof(*out));
	out->name = path->steps[path->nsteps - 1].key ? path->steps[path->nsteps - 1].key : "";
	out->name_len = strlen(out->name);
	switch (*p)
	{
		case '"':
			{
				char	   *v;
				int			vlen;

				UnescapeValidString(p, &v, &vlen);
				out->kind = CJ_STRING;
				out->text = v;
				out->text_len = vlen;
				return true;
			}
		case 'n':
			out->kind = CJ_NULL;
			return true;
		case 't':
		case 'f':
			out->kind = CJ_BOOL;
			break;
		case '{':
			out->kind = CJ_OBJECT;
			break;
		case '[':
			out->kind = CJ_ARRAY;
			break;
		default:
			out->kind = CJ_NUMBER;
			break;
	}
	vend = SkipValidValue(p);
	out->text = pnstrdup(p, vend - p);
	out->text_len = vend - p;
	return true;
}
