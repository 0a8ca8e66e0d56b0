/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  The rules engine: checks a set of field values against a compiled
 *	  ruleset. The land path (ValidateMessage), the trigger and
 *	  camperso.validate() all end in ValidateRun, so a rule means the same
 *	  thing whichever way a row comes in.
 *
 * Values arrive as ValidateValue: the JSON text of the field and, when the
 * caller has them for free (a uuid or timestamptz column), typed forms. A
 * typed form is parsed from the text at most once per value. Nothing on the
 * passing path allocates, except a regex on a value longer than the reusable
 * wide-character buffer, which grows once.
 *
 * Semantics, shared by all paths (see README "Validation"):
 *	- an absent key or a JSON null only fails "required"; every other rule
 *	  passes on it;
 *	- "regex" and "max_length" look at the value's text (a string unescaped,
 *	  any other value as its JSON text); "in" compares strings as strings,
 *	  numbers numerically and booleans as booleans;
 *	- "range", "not_future" and "max_age" fail on values that are not a
 *	  number (or timestamp) respectively.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "validate/validate.h"

/* A field whose type rule failed gets no further reports in VM_ALL. */
#define VV_TYPE_FAILED	0x100

/* Largest decimal weight and scale PostgreSQL's numeric accepts. */
#define NUMERIC_MAX_DIGITS_BEFORE	131072
#define NUMERIC_MAX_DIGITS_AFTER	16383

static pg_wchar *regex_buf = NULL;
static int	regex_buf_len = 0;

/* ----------------------------------------------------------------------
 * Parsers, shared with rules.c and dedupe.c
 * ----------------------------------------------------------------------
 */

static inline int
HexValue(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Parses a uuid as uuid_in does: optional braces, 32 hex digits, a hyphen
 * allowed after any group of four.
 */
bool
ValidateParseUuid(const char *s, int len, pg_uuid_t *out)
{
	const char *p = s;
	const char *end = s + len;
	bool		braces = false;
	int			i;

	if (p < end && *p == '{')
	{
		braces = true;
		p++;
	}
	for (i = 0; i < UUID_LEN; i++)
	{
		int			hi,
					lo;

		if (end - p < 2 || (hi = HexValue(p[0])) < 0 || (lo = HexValue(p[1])) < 0)
			return false;
		out->data[i] = (unsigned char) (hi << 4 | lo);
		p += 2;
		if (p < end && *p == '-' && (i % 2) == 1 && i < UUID_LEN - 1)
			p++;
	}
	if (braces)
	{
		if (p >= end || *p != '}')
			return false;
		p++;
	}
	return p == end;
}

/* The canonical text form of a uuid into buf (37 bytes). */
void
ValidateUuidToText(const pg_uuid_t *u, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	int			i;
	char	   *o = buf;

	for (i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		*o++ = hex[u->data[i] >> 4];
		*o++ = hex[u->data[i] & 0xF];
	}
	*o = '\0';
}

/* A JSON integer literal (no fraction, no exponent) that fits in int64. */
bool
ValidateParseInt64(const char *s, int len, int64 *out)
{
	const char *p = s;
	const char *end = s + len;
	bool		neg = false;
	uint64		acc = 0;

	if (p < end && *p == '-')
	{
		neg = true;
		p++;
	}
	if (p == end)
		return false;
	for (; p < end; p++)
	{
		if (*p < '0' || *p > '9')
			return false;
		if (acc > (PG_UINT64_MAX - 9) / 10)
			return false;
		acc = acc * 10 + (*p - '0');
	}
	if (neg)
	{
		if (acc > (uint64) PG_INT64_MAX + 1)
			return false;
		*out = (int64) (0 - acc);
	}
	else
	{
		if (acc > (uint64) PG_INT64_MAX)
			return false;
		*out = (int64) acc;
	}
	return true;
}

static inline bool
Digits(const char *p, int n, int *val)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*val = v;
	return true;
}

/*
 * The common ISO 8601 / RFC 3339 form with an explicit offset:
 * YYYY-MM-DD[T ]HH:MM[:SS[.fff]](Z|+HH[:MM]|-HH[:MM]). Anything else is
 * left to PostgreSQL's own parser.
 */
static bool
ParseTimestampFast(const char *s, int len, TimestampTz *out, bool *handled)
{
	int			y,
				mo,
				d,
				h,
				mi,
				sec = 0,
				tzh = 0,
				tzm = 0,
				tzsign = 1;
	int64		frac = 0;
	int			p;
	int64		days;
	int64		t;
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	*handled = false;
	if (len < 17 || s[4] != '-' || s[7] != '-' ||
		(s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':')
		return false;
	if (!Digits(s, 4, &y) || !Digits(s + 5, 2, &mo) || !Digits(s + 8, 2, &d) ||
		!Digits(s + 11, 2, &h) || !Digits(s + 14, 2, &mi))
		return false;
	p = 16;
	if (p < len && s[p] == ':')
	{
		if (p + 3 > len || !Digits(s + p + 1, 2, &sec))
			return false;
		p += 3;
		if (p < len && s[p] == '.')
		{
			int			ndig = 0;

			p++;
			while (p < len && s[p] >= '0' && s[p] <= '9')
			{
				if (ndig < 6)
					frac = frac * 10 + (s[p] - '0');
				else if (ndig == 6 && s[p] >= '5')
					frac++;
				ndig++;
				p++;
			}
			if (ndig == 0)
				return false;
			for (; ndig < 6; ndig++)
				frac *= 10;
		}
	}
	if (p >= len)
		return false;			/* no offset: local time, PostgreSQL's parser */
	if (s[p] == 'Z' || s[p] == 'z')
		p++;
	else if (s[p] == '+' || s[p] == '-')
	{
		tzsign = s[p] == '-' ? -1 : 1;
		if (p + 3 > len || !Digits(s + p + 1, 2, &tzh))
			return false;
		p += 3;
		if (p < len && s[p] == ':')
			p++;
		if (p + 2 <= len && Digits(s + p, 2, &tzm))
			p += 2;
	}
	else
		return false;
	if (p != len)
		return false;

	/* Out-of-range fields are left to the slow parser's verdict. */
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 ||
		tzh > 15 || tzm > 59 || frac >= USECS_PER_SEC)
		return false;
	if (d > mdays[mo - 1] &&
		!(mo == 2 && d == 29 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
		return false;

	*handled = true;
	days = date2j(y, mo, d) - POSTGRES_EPOCH_JDATE;
	t = ((days * HOURS_PER_DAY + h) * MINS_PER_HOUR + mi) * SECS_PER_MINUTE + sec;
	t -= tzsign * (tzh * SECS_PER_HOUR + tzm * SECS_PER_MINUTE);
	t = t * USECS_PER_SEC + frac;
	if (!IS_VALID_TIMESTAMP(t))
		return false;
	*out = t;
	return true;
}

/*
 * Everything else timestamptz_in accepts, through its own parser. That
 * parser raises an error for an unknown time zone name; it holds no
 * resources at that point, so the error is caught and flushed here and the
 * value simply does not parse.
 */
static bool
ParseTimestampSlow(const char *s, int len, TimestampTz *out)
{
	char		buf[MAXDATELEN + 1];
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			tz;
	struct pg_tm tt;
	fsec_t		fsec;
	volatile bool ok = false;
	MemoryContext oldcxt = CurrentMemoryContext;

	if (len <= 0 || len > MAXDATELEN || memchr(s, '\0', len) != NULL)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';

	PG_TRY();
	{
		if (ParseDateTime(buf, workbuf, sizeof(workbuf), field, ftype,
						  MAXDATEFIELDS, &nf) == 0 &&
			DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz) == 0)
		{
			switch (dtype)
			{
				case DTK_DATE:
					ok = tm2timestamp(&tt, fsec, &tz, out) == 0 && IS_VALID_TIMESTAMP(*out);
					break;
				case DTK_EPOCH:
					*out = SetEpochTimestamp();
					ok = true;
					break;
				case DTK_LATE:
					TIMESTAMP_NOEND(*out);
					ok = true;
					break;
				case DTK_EARLY:
					TIMESTAMP_NOBEGIN(*out);
					ok = true;
					break;
				default:
					ok = false;
			}
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* Parses a timestamptz as timestamptz_in would accept it. */
bool
ValidateParseTimestamp(const char *s, int len, TimestampTz *out)
{
	bool		handled;

	if (ParseTimestampFast(s, len, out, &handled))
		return true;
	if (handled)
		return false;
	return ParseTimestampSlow(s, len, out);
}

/* ----------------------------------------------------------------------
 * Typed forms of a value, parsed once
 * ----------------------------------------------------------------------
 */

static bool
ValueUuid(ValidateValue *v)
{
	if (v->flags & VV_HAVE_UUID)
		return true;
	if ((v->flags & VV_BAD_UUID) || v->text == NULL)
		return false;
	if (v->kind == CJ_STRING && ValidateParseUuid(v->text, v->len, &v->uuid))
	{
		v->flags |= VV_HAVE_UUID;
		return true;
	}
	v->flags |= VV_BAD_UUID;
	return false;
}

static bool
ValueInt(ValidateValue *v)
{
	if (v->flags & VV_HAVE_INT)
		return true;
	if ((v->flags & VV_BAD_INT) || v->text == NULL)
		return false;
	if (v->kind == CJ_NUMBER && ValidateParseInt64(v->text, v->len, &v->i))
	{
		v->flags |= VV_HAVE_INT;
		return true;
	}
	v->flags |= VV_BAD_INT;
	return false;
}

static bool
ValueDouble(ValidateValue *v)
{
	char		buf[64];
	char	   *copy;
	char	   *end;

	if (v->flags & VV_HAVE_DBL)
		return true;
	if (v->flags & VV_BAD_DBL)
		return false;
	if (ValueInt(v))
	{
		v->d = (double) v->i;
		v->flags |= VV_HAVE_DBL;
		return true;
	}
	if (v->kind != CJ_NUMBER || v->text == NULL)
	{
		v->flags |= VV_BAD_DBL;
		return false;
	}
	copy = v->len < sizeof(buf) ? buf : palloc(v->len + 1);
	memcpy(copy, v->text, v->len);
	copy[v->len] = '\0';
	errno = 0;
	v->d = strtod(copy, &end);
	if (*end != '\0' || isnan(v->d))
		v->flags |= VV_BAD_DBL;
	else
		v->flags |= VV_HAVE_DBL;	/* overflow gives +-HUGE_VAL: fine for
									 * comparisons */
	if (copy != buf)
		pfree(copy);
	return (v->flags & VV_HAVE_DBL) != 0;
}

static bool
ValueTs(ValidateValue *v)
{
	if (v->flags & VV_HAVE_TS)
		return true;
	if ((v->flags & VV_BAD_TS) || v->text == NULL)
		return false;
	if (v->kind == CJ_STRING && ValidateParseTimestamp(v->text, v->len, &v->ts))
	{
		v->flags |= VV_HAVE_TS;
		return true;
	}
	v->flags |= VV_BAD_TS;
	return false;
}

/*
 * Whether a JSON number literal fits PostgreSQL's numeric, read from the
 * literal without converting it, with numeric_in's limits: the exponent
 * within +-(INT_MAX / 2), the scale as written (fraction digits minus the
 * exponent) within NUMERIC_MAX_DIGITS_AFTER even for zero, and for a
 * nonzero value at most NUMERIC_MAX_DIGITS_BEFORE digits before the point,
 * counted from its first nonzero digit.
 */
static bool
NumberFitsNumeric(const char *s, int len)
{
	const char *p = s;
	const char *end = s + len;
	int64		before = 0;
	int64		after = 0;
	int64		leadzeros = 0;	/* of the fraction, while the value is 0 */
	int64		exp = 0;
	bool		nonzero = false;
	bool		expneg = false;

	if (p < end && (*p == '-' || *p == '+'))
		p++;
	for (; p < end && *p >= '0' && *p <= '9'; p++)
	{
		if (*p != '0' || nonzero)
		{
			nonzero = true;
			before++;
		}
	}
	if (p < end && *p == '.')
		for (p++; p < end && *p >= '0' && *p <= '9'; p++)
		{
			after++;
			if (*p != '0')
				nonzero = true;
			else if (!nonzero)
				leadzeros++;
		}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '-' || *p == '+'))
			expneg = (*p++ == '-');
		for (; p < end && *p >= '0' && *p <= '9'; p++)
		{
			if (exp >= PG_INT32_MAX / 2)
				return false;
			exp = exp * 10 + (*p - '0');
		}
	}
	if (exp >= PG_INT32_MAX / 2)
		return false;
	if (expneg)
		exp = -exp;
	if (after - exp > NUMERIC_MAX_DIGITS_AFTER)
		return false;
	return !nonzero || before - leadzeros + exp <= NUMERIC_MAX_DIGITS_BEFORE;
}

/* ----------------------------------------------------------------------
 * Reasons
 * ----------------------------------------------------------------------
 */

/* The value as a short quoted excerpt for a reason. */
static const char *
Excerpt(ValidateValue *v, char *buf, int size)
{
	const char *text = v->text;
	int			len = v->len;
	char		tmp[64];
	int			clip;

	if (text == NULL)
	{
		if (v->flags & VV_HAVE_UUID)
			ValidateUuidToText(&v->uuid, tmp);
		else if (v->flags & VV_HAVE_TS)
			strlcpy(tmp, timestamptz_to_str(v->ts), sizeof(tmp));
		else if (v->flags & VV_HAVE_INT)
			snprintf(tmp, sizeof(tmp), INT64_FORMAT, v->i);
		else
			strlcpy(tmp, "?", sizeof(tmp));
		text = tmp;
		len = strlen(tmp);
	}
	clip = pg_mbcliplen(text, len, 60);
	snprintf(buf, size, "\"%.*s%s\"", clip, text, clip < len ? "..." : "");
	return buf;
}

static const char *
KindName(CampersoJsonKind kind)
{
	switch (kind)
	{
		case CJ_NULL:
			return "null";
		case CJ_STRING:
			return "a string";
		case CJ_NUMBER:
			return "a number";
		case CJ_BOOL:
			return "a boolean";
		case CJ_OBJECT:
			return "an object";
		case CJ_ARRAY:
			return "an array";
	}
	return "a value";
}

static const char *const type_labels[] = {
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

/* ----------------------------------------------------------------------
 * The rules
 * ----------------------------------------------------------------------
 */

static bool
CheckType(ValidateRule *rule, ValidateValue *v, char *reason)
{
	char		ex[80];
	const char *why = NULL;

	switch (rule->u.type)
	{
		case VT_UUID:
			if (v->kind == CJ_STRING && ValueUuid(v))
				return true;
			break;
		case VT_INT:
			if (v->kind == CJ_NUMBER && ValueInt(v))
			{
				if (v->i >= PG_INT32_MIN && v->i <= PG_INT32_MAX)
					return true;
				why = "out of range for int";
			}
			break;
		case VT_BIGINT:
			if (v->kind == CJ_NUMBER && ValueInt(v))
				return true;
			break;
		case VT_NUMERIC:
			if (v->kind == CJ_NUMBER)
			{
				if (v->text == NULL || NumberFitsNumeric(v->text, v->len))
					return true;
				why = "out of range for numeric";
			}
			break;
		case VT_BOOL:
			if (v->kind == CJ_BOOL)
				return true;
			break;
		case VT_TIMESTAMPTZ:
			if (v->kind == CJ_STRING && ValueTs(v))
				return true;
			break;
		case VT_TEXT:
			if (v->kind == CJ_STRING)
				return true;
			break;
		case VT_OBJECT:
			if (v->kind == CJ_OBJECT)
				return true;
			break;
		case VT_ARRAY:
			if (v->kind == CJ_ARRAY)
				return true;
			break;
	}
	if (why != NULL)
		snprintf(reason, VALIDATE_REASON_LEN, "value %s is %s",
				 Excerpt(v, ex, sizeof(ex)), why);
	else if (v->kind == CJ_OBJECT || v->kind == CJ_ARRAY)
		snprintf(reason, VALIDATE_REASON_LEN, "expected %s, got %s",
				 type_labels[rule->u.type], KindName(v->kind));
	else
		snprintf(reason, VALIDATE_REASON_LEN, "expected %s, got %s %s",
				 type_labels[rule->u.type], KindName(v->kind), Excerpt(v, ex, sizeof(ex)));
	return false;
}

static bool
CheckRegex(ValidateRule *rule, ValidateValue *v, char *reason)
{
	int			wlen;
	int			rc;
	char		ex[80];

	if (v->text == NULL)
	{
		/* typed value without text: the trigger fills text for regex */
		snprintf(reason, VALIDATE_REASON_LEN, "value has no text form to match");
		return false;
	}
	/* the cached DFA decides plain ASCII values (regex_dfa.c) */
	rc = rule->u.regex.dfa ? ValidateRegexDfaMatch(rule->u.regex.dfa, v->text, v->len) : -1;
	if (rc >= 0)
		rc = rc == 1 ? REG_OKAY : REG_NOMATCH;
	else
	{
		if (v->len + 1 > regex_buf_len)
		{
			int			want = Max(v->len + 1, 256);

			if (regex_buf)
				pfree(regex_buf);
			regex_buf = MemoryContextAllocHuge(TopMemoryContext, (Size) want * sizeof(pg_wchar));
			regex_buf_len = want;
		}
		wlen = pg_mb2wchar_with_len(v->text, regex_buf, v->len);
		rc = pg_regexec(rule->u.regex.re, regex_buf, wlen, 0, NULL, 0, NULL, 0);

		/* Do not keep a huge buffer after a huge value. */
		if (regex_buf_len > 1024 * 1024)
		{
			pfree(regex_buf);
			regex_buf = NULL;
			regex_buf_len = 0;
		}
	}
	if (rc == REG_OKAY)
		return true;
	if (rc == REG_NOMATCH)
		snprintf(reason, VALIDATE_REASON_LEN, "value %s does not match %s",
				 Excerpt(v, ex, sizeof(ex)), rule->arg_text);
	else
	{
		char		errbuf[100];

		pg_regerror(rc, rule->u.regex.re, errbuf, sizeof(errbuf));
		snprintf(reason, VALIDATE_REASON_LEN, "regular expression failed on the value: %s", errbuf);
	}
	return false;
}

static bool
CheckIn(ValidateRule *rule, ValidateValue *v, char *reason)
{
	int			k;
	char		ex[80];

	for (k = 0; k < rule->u.in.n; k++)
	{
		ValidateInItem *item = &rule->u.in.items[k];

		if (item->kind != v->kind)
			continue;
		if (item->kind == CJ_NUMBER)
		{
			if (ValueDouble(v) && v->d == item->num)
				return true;
		}
		else if (v->text != NULL && item->len == v->len &&
				 memcmp(item->text, v->text, v->len) == 0)
			return true;
	}
	snprintf(reason, VALIDATE_REASON_LEN, "value %s is not one of %s",
			 Excerpt(v, ex, sizeof(ex)), rule->arg_text);
	if (strlen(reason) == VALIDATE_REASON_LEN - 1)
	{
		/* a long list: cut it on a character boundary, say it goes on */
		int			cut = pg_mbcliplen(reason, VALIDATE_REASON_LEN - 5, VALIDATE_REASON_LEN - 5);

		strcpy(reason + cut, "...]");
	}
	return false;
}

static bool
CheckRange(ValidateRule *rule, ValidateValue *v, char *reason)
{
	ValidateBound *lo = &rule->u.range.min;
	ValidateBound *hi = &rule->u.range.max;
	bool		is_time = lo->present ? lo->is_time : hi->is_time;
	char		ex[80];

	if (is_time)
	{
		if (!ValueTs(v))
		{
			snprintf(reason, VALIDATE_REASON_LEN, "value %s is not a timestamp",
					 Excerpt(v, ex, sizeof(ex)));
			return false;
		}
		if (lo->present && v->ts < lo->ts)
			goto below;
		if (hi->present && v->ts > hi->ts)
			goto above;
		return true;
	}
	if (!ValueDouble(v))
	{
		snprintf(reason, VALIDATE_REASON_LEN, "value %s is not a number",
				 Excerpt(v, ex, sizeof(ex)));
		return false;
	}
	/* exact for integers, double precision otherwise */
	if (lo->present)
	{
		if ((lo->is_int && ValueInt(v)) ? v->i < lo->i : v->d < lo->d)
			goto below;
	}
	if (hi->present)
	{
		if ((hi->is_int && ValueInt(v)) ? v->i > hi->i : v->d > hi->d)
			goto above;
	}
	return true;

below:
	snprintf(reason, VALIDATE_REASON_LEN, "value %s is below the minimum %s",
			 Excerpt(v, ex, sizeof(ex)), lo->text);
	return false;
above:
	snprintf(reason, VALIDATE_REASON_LEN, "value %s is above the maximum %s",
			 Excerpt(v, ex, sizeof(ex)), hi->text);
	return false;
}

static bool
CheckMaxLength(ValidateRule *rule, ValidateValue *v, char *reason)
{
	int			chars;

	/* A character is at least a byte: short values pass without counting. */
	if (v->text == NULL || v->len <= rule->u.max_length)
		return true;
	chars = pg_mbstrlen_with_len(v->text, v->len);
	if (chars <= rule->u.max_length)
		return true;
	snprintf(reason, VALIDATE_REASON_LEN,
			 "value is %d characters long, more than the maximum of " INT64_FORMAT,
			 chars, rule->u.max_length);
	return false;
}

static bool
CheckTime(ValidateRule *rule, ValidateValue *v, TimestampTz *now,
		  int64 *resolution, char *reason)
{
	char		ex[80];

	if (!ValueTs(v))
	{
		snprintf(reason, VALIDATE_REASON_LEN, "value %s is not a timestamp",
				 Excerpt(v, ex, sizeof(ex)));
		return false;
	}
	if (*now == 0)
		*now = ValidateClockNow(resolution);
	if (rule->kind == VR_NOT_FUTURE)
	{
		/*
		 * The coarse clock may lag by more than its resolution (a virtual
		 * machine's delayed ticks: 7 ms behind with a 4 ms resolution,
		 * seen): a time it finds in the future is judged again by the
		 * exact clock, which then serves the rest of the row.
		 */
		if (!TIMESTAMP_NOT_FINITE(v->ts) && *resolution != 0 &&
			v->ts > *now + *resolution + rule->u.usecs)
		{
			*now = GetCurrentTimestamp();
			*resolution = 0;
		}
		if (TIMESTAMP_NOT_FINITE(v->ts) ? TIMESTAMP_IS_NOEND(v->ts) :
			v->ts > *now + *resolution + rule->u.usecs)
		{
			if (rule->u.usecs == 0)
				snprintf(reason, VALIDATE_REASON_LEN, "time %s is in the future",
						 Excerpt(v, ex, sizeof(ex)));
			else
				snprintf(reason, VALIDATE_REASON_LEN,
						 "time %s is more than %s in the future",
						 Excerpt(v, ex, sizeof(ex)), rule->arg_text);
			return false;
		}
		return true;
	}
	/* VR_MAX_AGE */
	if (TIMESTAMP_NOT_FINITE(v->ts) ? TIMESTAMP_IS_NOBEGIN(v->ts) :
		v->ts < *now - rule->u.usecs)
	{
		snprintf(reason, VALIDATE_REASON_LEN,
				 "too_late: time %s is older than the allowed lateness of %s",
				 Excerpt(v, ex, sizeof(ex)), rule->arg_text);
		return false;
	}
	return true;
}

/* The failure of a key seen at seen_at within rule's window. */
static void
DuplicateFailure(ValidateRuleset *rs, ValidateRule *rule, TimestampTz seen_at,
				 ValidateFailure *failure)
{
	Interval	window;
	char		seen[MAXDATELEN + 1];

	failure->rule = rule->name;
	failure->field = rs->fields[rule->field];
	memset(&window, 0, sizeof(window));
	window.time = rule->u.usecs;
	strlcpy(seen, timestamptz_to_str(seen_at), sizeof(seen));
	snprintf(failure->reason, VALIDATE_REASON_LEN,
			 "duplicate: key seen at %s, within the window of %s", seen,
			 DatumGetCString(DirectFunctionCall1(interval_out,
												 IntervalPGetDatum(&window))));
}

/*
 * snprintf cuts a reason longer than VALIDATE_REASON_LEN - 1 bytes, maybe
 * inside a character (a long pattern or value); reasons are stored as
 * text, so the cut is moved back to the character's start.
 */
static void
ReasonClip(char *reason)
{
	int			len = strlen(reason);

	if (len == VALIDATE_REASON_LEN - 1)
		reason[pg_mbcliplen(reason, len, len)] = '\0';
}

/*
 * Runs the rules of rs over values (one per field of rs, in rs->fields
 * order). skip, when not NULL, marks rules the caller knows pass (a type
 * rule on a column of that type). VM_LAND and VM_CHECK stop at the first
 * failure and fill *failure; VM_ALL reports every failure to report.
 */
ValidateOutcome
ValidateRun(ValidateRuleset *rs, ValidateValue *values, const bool *skip,
			ValidateMode mode, ValidateFailure *failure,
			ValidateReportFn report, void *report_arg)
{
	TimestampTz now = 0;
	int64		resolution = 0;
	bool		failed = false;
	int			first_unique = -1;
	int			i;

	/* unique rules come last: start fetching the key's slot now */
	if (mode == VM_LAND && rs->nrules > 0 && rs->rules[rs->nrules - 1].kind == VR_UNIQUE &&
		values[rs->rules[rs->nrules - 1].field].present)
		ValidateDedupePrefetch(rs->rules[rs->nrules - 1].scope, &values[rs->rules[rs->nrules - 1].field]);

	for (i = 0; i < rs->nrules; i++)
	{
		ValidateRule *rule = &rs->rules[i];
		ValidateValue *v = &values[rule->field];
		bool		ok;

		if (skip != NULL && skip[i])
			continue;
		if (rule->kind == VR_UNIQUE)
		{
			first_unique = i;
			break;
		}
		if (!v->present)
		{
			if (rule->kind != VR_REQUIRED)
				continue;
			snprintf(failure->reason, VALIDATE_REASON_LEN,
					 v->kind == CJ_NULL && v->text != NULL ? "is null" : "is missing");
			ok = false;
		}
		else if (mode == VM_ALL && (v->flags & VV_TYPE_FAILED))
			continue;
		else
		{
			switch (rule->kind)
			{
				case VR_REQUIRED:
					ok = true;
					break;
				case VR_TYPE:
					ok = CheckType(rule, v, failure->reason);
					if (!ok)
						v->flags |= VV_TYPE_FAILED;
					break;
				case VR_REGEX:
					ok = CheckRegex(rule, v, failure->reason);
					break;
				case VR_IN:
					ok = CheckIn(rule, v, failure->reason);
					break;
				case VR_RANGE:
					ok = CheckRange(rule, v, failure->reason);
					break;
				case VR_MAX_LENGTH:
					ok = CheckMaxLength(rule, v, failure->reason);
					break;
				case VR_NOT_FUTURE:
				case VR_MAX_AGE:
					ok = CheckTime(rule, v, &now, &resolution, failure->reason);
					break;
				default:
					ok = true;
			}
		}
		if (ok)
			continue;
		ReasonClip(failure->reason);
		failure->rule = rule->name;
		failure->field = rs->fields[rule->field];
		if (mode != VM_ALL)
			return VALIDATE_INVALID;
		report(report_arg, failure);
		failed = true;
	}

	if (first_unique < 0 || failed)
		return failed ? VALIDATE_INVALID : VALIDATE_VALID;

	if (now == 0)
		now = ValidateClockNow(&resolution);

	/*
	 * Every other rule passed: now the unique keys. With one unique rule
	 * (the usual case) check and record are one probe.
	 */
	if (mode == VM_LAND && first_unique == rs->nrules - 1)
	{
		ValidateRule *rule = &rs->rules[first_unique];
		ValidateValue *v = &values[rule->field];
		TimestampTz seen_at;

		if (!v->present || (skip != NULL && skip[first_unique]))
			return VALIDATE_VALID;
		if (ValidateDedupeSeen(rule->scope, v, rule->u.usecs, true, now, &seen_at))
		{
			DuplicateFailure(rs, rule, seen_at, failure);
			return VALIDATE_DUPLICATE;
		}
		return VALIDATE_VALID;
	}

	/*
	 * Several: all are checked before any is recorded, so a message that is
	 * a duplicate under one key does not consume another.
	 */
	for (i = first_unique; i < rs->nrules; i++)
	{
		ValidateRule *rule = &rs->rules[i];
		ValidateValue *v = &values[rule->field];
		TimestampTz seen_at;

		if (rule->kind != VR_UNIQUE || !v->present || (skip != NULL && skip[i]))
			continue;
		if (ValidateDedupeSeen(rule->scope, v, rule->u.usecs, false, now, &seen_at))
		{
			DuplicateFailure(rs, rule, seen_at, failure);
			if (mode != VM_ALL)
				return VALIDATE_DUPLICATE;
			report(report_arg, failure);
			failed = true;
		}
	}
	if (failed)
		return VALIDATE_DUPLICATE;
	if (mode == VM_LAND)
	{
		for (i = first_unique; i < rs->nrules; i++)
		{
			ValidateRule *rule = &rs->rules[i];
			ValidateValue *v = &values[rule->field];

			if (rule->kind != VR_UNIQUE || !v->present || (skip != NULL && skip[i]))
				continue;
			(void) ValidateDedupeSeen(rule->scope, v, rule->u.usecs, true, now, NULL);
		}
	}
	return VALIDATE_VALID;
}

/* ----------------------------------------------------------------------
 * Messages from the land path
 * ----------------------------------------------------------------------
 */

/* Points values (one per ruleset field) at the fields of msg. */
void
ValidateValuesFromMessage(ValidateRuleset *rs, CampersoMessage *msg,
						  ValidateValue *values)
{
	int			f;

	for (f = 0; f < rs->nfields; f++)
	{
		ValidateValue *v = &values[f];
		const char *name = rs->fields[f];
		int			name_len = rs->field_len[f];
		int			i;

		memset(v, 0, offsetof(ValidateValue, i));
		v->kind = CJ_NULL;
		/* last occurrence wins, as in jsonb */
		for (i = msg->nfields - 1; i >= 0; i--)
		{
			CampersoField *fld = &msg->fields[i];

			if (fld->name_len == name_len && memcmp(fld->name, name, name_len) == 0)
			{
				v->kind = fld->kind;
				v->present = fld->kind != CJ_NULL;
				v->text = fld->kind == CJ_NULL ? "null" : fld->text;
				v->len = fld->kind == CJ_NULL ? 4 : fld->text_len;
				break;
			}
		}
	}
}

static ValidateOutcome
ValidateMessageMode(ValidateRuleset *rs, CampersoMessage *msg,
					ValidateFailure *failure, ValidateMode mode)
{
	ValidateValuesFromMessage(rs, msg, rs->scratch);
	return ValidateRun(rs, rs->scratch, NULL, mode, failure, NULL, NULL);
}

ValidateOutcome
ValidateMessage(ValidateRuleset *rs, CampersoMessage *msg, ValidateFailure *failure)
{
	return ValidateMessageMode(rs, msg, failure, VM_LAND);
}

/* See validate.h. */
void
ValidateUnrecord(ValidateRuleset *rs, CampersoMessage *msg)
{
	int			i;

	ValidateValuesFromMessage(rs, msg, rs->scratch);
	for (i = 0; i < rs->nrules; i++)
	{
		ValidateRule *rule = &rs->rules[i];

		if (rule->kind == VR_UNIQUE && rs->scratch[rule->field].present)
			ValidateDedupeUnrecord(rule->scope, &rs->scratch[rule->field]);
	}
}

ValidateOutcome
ValidateMessageCheck(ValidateRuleset *rs, CampersoMessage *msg, ValidateFailure *failure)
{
	return ValidateMessageMode(rs, msg, failure, VM_CHECK);
}
