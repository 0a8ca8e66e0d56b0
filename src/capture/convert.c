/*-------------------------------------------------------------------------
 *
 * convert.c
 *	  From a decoded JSON value to a value of the target column's type,
 *	  without letting bad message content raise an error.
 *
 * PostgreSQL 15 input functions throw on bad input and have no soft-error
 * mode, and a subtransaction per value would cost more than the rest of the
 * land path together. So the common types get converters of their own that
 * check everything a message can get wrong and report it as a fault (rule
 * wrong_type, out_of_range, too_long) instead of throwing; they call
 * PostgreSQL internals only with input already known to be acceptable.
 * Every other type (and any domain, whose constraints only its input
 * function knows) goes through the type's input function inside a
 * subtransaction: slower, still correct.
 *
 * Coercions, chosen to match what PostgreSQL's own jsonb casts accept
 * (strict, so that a producer bug shows up in the quarantine instead of
 * being silently reinterpreted):
 *   text, varchar   strings; numbers and booleans as their JSON literal.
 *                   Objects and arrays are wrong_type (use json/jsonb).
 *                   varchar(n): longer values are too_long, except that
 *                   trailing spaces beyond n are cut, as varchar does.
 *   int2/4/8        JSON numbers written as integers (no fraction, no
 *                   exponent); "42" (a string) is wrong_type, 4.5 too.
 *   numeric         JSON numbers; numeric(p,s) rounds to s and is
 *                   out_of_range when the integer part does not fit.
 *   float4/8        JSON numbers; beyond the type's range is out_of_range.
 *   bool            true / false only.
 *   uuid            strings in any form uuid_in accepts.
 *   timestamptz     strings. ISO 8601 (2024-05-01T12:00:00.123Z, offsets,
 *   timestamp,      a space for the T) is parsed here; anything else goes
 *   date            through the input function in a subtransaction, so
 *                   every form PostgreSQL accepts works. A timestamptz
 *                   without offset is read in the session TimeZone.
 *   json, jsonb     any JSON value (a string stays a JSON string).
 *   bytea           the bytes of a string (or of a number's literal).
 *   inet            strings holding an IPv4 or IPv6 address (or network).
 * A JSON null is SQL NULL everywhere; an absent key takes the column's
 * default (land.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>
#include <sys/socket.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "capture/land_internal.h"

static bool ConvertGeneric(CaptureColumn *col, const char *str,
						   Datum *value, bool *isnull, CaptureFault *fault);

/* Sets *fault; returns false so converters can "return Fault(...)". */
static bool Fault(CaptureFault *fault, CaptureColumn *col, const char *rule,
				  const char *fmt,...) pg_attribute_printf(4, 5);

static bool
Fault(CaptureFault *fault, CaptureColumn *col, const char *rule, const char *fmt,...)
{
	StringInfoData buf;
	va_list		args;

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
	fault->rule = rule;
	fault->field = col->name;
	fault->reason = buf.data;
	return false;
}

/* A short, printable excerpt of a value for a reason sentence. */
static char *
Excerpt(const char *s, int len)
{
	if (len > 60)
	{
		int			cut = pg_mbcliplen(s, len, 57);

		return psprintf("%.*s...", cut, s);
	}
	return pnstrdup(s, len);
}

static const char *
KindName(CampersoJsonKind kind)
{
	switch (kind)
	{
		case CJ_NULL:
			return "null";
		case CJ_STRING:
			return "string";
		case CJ_NUMBER:
			return "number";
		case CJ_BOOL:
			return "boolean";
		case CJ_OBJECT:
			return "object";
		case CJ_ARRAY:
			return "array";
	}
	return "value";
}

static bool
WrongKind(CaptureFault *fault, CaptureColumn *col, CampersoField *f, const char *want)
{
	return Fault(fault, col, "wrong_type", "column \"%s\" of type %s expects %s, got a JSON %s",
				 col->name, format_type_with_typemod(col->typid, col->typmod),
				 want, KindName(f->kind));
}

/*
 * Decides how column att is filled; the caller has set attnum, name and
 * handled metadata and skipped columns.
 */
void
CaptureColumnPrepare(CaptureColumn *col, Form_pg_attribute att)
{
	Oid			infunc;

	col->typid = att->atttypid;
	col->typmod = att->atttypmod;
	col->maxlen = -1;
	col->numeric_bound = (Datum) 0;
	col->convert_in_place = false;
	getTypeInputInfo(col->typid, &infunc, &col->ioparam);
	fmgr_info(infunc, &col->infunc);
	col->is_domain = (get_typtype(col->typid) == TYPTYPE_DOMAIN);
	if (col->is_domain)
	{
		col->kind = CK_GENERIC;
		return;
	}

	switch (col->typid)
	{
		case TEXTOID:
			col->kind = CK_TEXT;
			break;
		case VARCHAROID:
			col->kind = CK_VARCHAR;
			if (col->typmod >= (int32) VARHDRSZ)
				col->maxlen = col->typmod - VARHDRSZ;
			break;
		case INT2OID:
			col->kind = CK_INT2;
			break;
		case INT4OID:
			col->kind = CK_INT4;
			break;
		case INT8OID:
			col->kind = CK_INT8;
			break;
		case NUMERICOID:
			col->kind = CK_NUMERIC;
			if (col->typmod >= (int32) VARHDRSZ)
			{
				int			precision = ((col->typmod - VARHDRSZ) >> 16) & 0xffff;
				int			scale = (((col->typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;
				char	   *bound = psprintf("1e%d", precision - scale);

				col->numeric_bound = DirectFunctionCall3(numeric_in, CStringGetDatum(bound),
														 ObjectIdGetDatum(InvalidOid),
														 Int32GetDatum(-1));
			}
			break;
		case FLOAT4OID:
			col->kind = CK_FLOAT4;
			break;
		case FLOAT8OID:
			col->kind = CK_FLOAT8;
			break;
		case BOOLOID:
			col->kind = CK_BOOL;
			break;
		case UUIDOID:
			col->kind = CK_UUID;
			break;
		case TIMESTAMPTZOID:
			col->kind = CK_TIMESTAMPTZ;
			break;
		case TIMESTAMPOID:
			col->kind = CK_TIMESTAMP;
			break;
		case DATEOID:
			col->kind = CK_DATE;
			break;
		case JSONOID:
			col->kind = CK_JSON;
			break;
		case JSONBOID:
			col->kind = CK_JSONB;
			break;
		case BYTEAOID:
			col->kind = CK_BYTEA;
			break;
		case INETOID:
			col->kind = CK_INET;
			break;
		default:
			col->kind = CK_GENERIC;
			break;
	}

	/*
	 * A typmod that the fast converters do not apply (timestamp(0), say)
	 * goes through the input function, which applies it.
	 */
	if (col->typmod >= 0 &&
		(col->kind == CK_TIMESTAMPTZ || col->kind == CK_TIMESTAMP))
		col->kind = CK_GENERIC;

	/*
	 * Converters of these kinds allocate their result and nothing else
	 * (a fault's reason aside), so the land path runs them in the memory
	 * the row lives in instead of copying the value there.
	 */
	col->convert_in_place = (col->kind == CK_TEXT || col->kind == CK_VARCHAR ||
							 col->kind == CK_UUID || col->kind == CK_BYTEA ||
							 col->kind == CK_INET);
}

/* Parses an integer literal (the parser has checked it is a JSON number). */
static bool
ConvertInteger(CaptureColumn *col, CampersoField *f, int64 min, int64 max,
			   int64 *result, CaptureFault *fault)
{
	const char *p = f->text;
	bool		neg = false;
	uint64		acc = 0;
	uint64		limit;

	if (f->kind != CJ_NUMBER)
		return WrongKind(fault, col, f, "an integer JSON number");
	if (*p == '-')
	{
		neg = true;
		p++;
	}
	limit = neg ? (uint64) (-(min + 1)) + 1 : (uint64) max;
	for (; *p >= '0' && *p <= '9'; p++)
	{
		if (acc > (limit - (*p - '0')) / 10)
			return Fault(fault, col, "out_of_range", "value %s is out of range for column \"%s\" of type %s",
						 Excerpt(f->text, f->text_len), col->name, format_type_be(col->typid));
		acc = acc * 10 + (*p - '0');
	}
	if (*p != '\0')
		return Fault(fault, col, "wrong_type", "column \"%s\" of type %s expects an integer, got %s",
					 col->name, format_type_be(col->typid), Excerpt(f->text, f->text_len));
	*result = neg ? (int64) (0 - acc) : (int64) acc;
	return true;
}

/*
 * Parses an ISO 8601 date-time: YYYY-MM-DD, then optionally [T ]HH:MM,
 * :SS, .ffffff (up to 6 digits), and Z, +HH, +HH:MM or +HHMM. Returns false
 * for anything else (the caller then uses the type's input function, which
 * knows every other form). *tz is in PostgreSQL's sign convention (seconds
 * west of Greenwich).
 */
static bool
ParseIso8601(const char *s, struct pg_tm *tm, fsec_t *fsec, bool *has_time,
			 bool *has_tz, int *tz)
{
#define D(c) ((c) >= '0' && (c) <= '9')
#define N2(p) (((p)[0] - '0') * 10 + ((p)[1] - '0'))
	memset(tm, 0, sizeof(*tm));
	*fsec = 0;
	*has_time = false;
	*has_tz = false;
	*tz = 0;
	if (!(D(s[0]) && D(s[1]) && D(s[2]) && D(s[3]) && s[4] == '-' &&
		  D(s[5]) && D(s[6]) && s[7] == '-' && D(s[8]) && D(s[9])))
		return false;
	tm->tm_year = N2(s) * 100 + N2(s + 2);
	tm->tm_mon = N2(s + 5);
	tm->tm_mday = N2(s + 8);
	if (tm->tm_year < 1 || tm->tm_mon < 1 || tm->tm_mon > 12 || tm->tm_mday < 1 ||
		tm->tm_mday > day_tab[isleap(tm->tm_year)][tm->tm_mon - 1])
		return false;
	s += 10;
	if (*s == '\0')
		return true;
	if (*s != 'T' && *s != ' ')
		return false;
	s++;
	if (!(D(s[0]) && D(s[1]) && s[2] == ':' && D(s[3]) && D(s[4])))
		return false;
	*has_time = true;
	tm->tm_hour = N2(s);
	tm->tm_min = N2(s + 3);
	s += 5;
	if (*s == ':')
	{
		if (!(D(s[1]) && D(s[2])))
			return false;
		tm->tm_sec = N2(s + 1);
		s += 3;
		if (*s == '.')
		{
			int			digits = 0;
			int			frac = 0;

			s++;
			while (D(*s))
			{
				if (++digits > 6)
					return false;	/* needs rounding: the input function */
				frac = frac * 10 + (*s - '0');
				s++;
			}
			if (digits == 0)
				return false;
			while (digits++ < 6)
				frac *= 10;
			*fsec = frac;
		}
	}
	if (tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 59)
		return false;
	if (*s == 'Z' || *s == 'z')
	{
		*has_tz = true;
		s++;
	}
	else if (*s == '+' || *s == '-')
	{
		int			sign = (*s == '-') ? -1 : 1;
		int			hh,
					mm = 0;

		s++;
		if (!(D(s[0]) && D(s[1])))
			return false;
		hh = N2(s);
		s += 2;
		if (*s == ':')
		{
			if (!(D(s[1]) && D(s[2])))
				return false;
			mm = N2(s + 1);
			s += 3;
		}
		else if (D(s[0]) && D(s[1]))
		{
			mm = N2(s);
			s += 2;
		}
		if (hh > 15 || mm > 59)
			return false;
		*has_tz = true;
		*tz = -sign * (hh * SECS_PER_HOUR + mm * SECS_PER_MINUTE);
	}
	return *s == '\0';
#undef D
#undef N2
}

/* Text for the generic path: a string's value, a literal, or raw JSON. */
static inline const char *
GenericText(CampersoField *f)
{
	return f->text;
}

/*
 * Converts field f (never NULL, never absent) to column col's type. On
 * success fills value and isnull (allocated in the current memory context);
 * on a fault the message is to blame: fills *fault and returns false.
 * Errors that are not the message's fault are raised.
 */
bool
CaptureConvert(CaptureColumn *col, CampersoField *f, Datum *value, bool *isnull,
			   CaptureFault *fault)
{
	*isnull = false;
	if (f->kind == CJ_NULL)
	{
		if (col->is_domain)
			return ConvertGeneric(col, NULL, value, isnull, fault);
		*isnull = true;
		*value = (Datum) 0;
		return true;
	}

	switch (col->kind)
	{
		case CK_TEXT:
			if (f->kind == CJ_OBJECT || f->kind == CJ_ARRAY)
				return WrongKind(fault, col, f, "a string, number or boolean");
			*value = PointerGetDatum(cstring_to_text_with_len(f->text, f->text_len));
			return true;

		case CK_VARCHAR:
			{
				int			len = f->text_len;

				if (f->kind == CJ_OBJECT || f->kind == CJ_ARRAY)
					return WrongKind(fault, col, f, "a string, number or boolean");
				if (col->maxlen >= 0 && len > col->maxlen)
				{
					int			cut = pg_mbcharcliplen(f->text, len, col->maxlen);
					int			i;

					for (i = cut; i < len; i++)
					{
						if (f->text[i] != ' ')
							return Fault(fault, col, "too_long",
										 "value for column \"%s\" is longer than %d characters",
										 col->name, col->maxlen);
					}
					len = cut;
				}
				*value = PointerGetDatum(cstring_to_text_with_len(f->text, len));
				return true;
			}

		case CK_INT2:
		case CK_INT4:
		case CK_INT8:
			{
				int64		v = 0;
				int64		min = col->kind == CK_INT2 ? PG_INT16_MIN :
					col->kind == CK_INT4 ? PG_INT32_MIN : PG_INT64_MIN;
				int64		max = col->kind == CK_INT2 ? PG_INT16_MAX :
					col->kind == CK_INT4 ? PG_INT32_MAX : PG_INT64_MAX;

				if (!ConvertInteger(col, f, min, max, &v, fault))
					return false;
				*value = col->kind == CK_INT2 ? Int16GetDatum((int16) v) :
					col->kind == CK_INT4 ? Int32GetDatum((int32) v) : Int64GetDatum(v);
				return true;
			}

		case CK_NUMERIC:
			{
				Datum		num;

				if (f->kind != CJ_NUMBER)
					return WrongKind(fault, col, f, "a JSON number");
				/* decode.c has refused numbers numeric cannot hold */
				num = DirectFunctionCall3(numeric_in, CStringGetDatum(f->text),
										  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
				if (col->numeric_bound != (Datum) 0)
				{
					int			scale = (((col->typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;
					Datum		rounded = DirectFunctionCall2(numeric_round, num, Int32GetDatum(scale));
					Datum		absval = DirectFunctionCall1(numeric_abs, rounded);

					if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, absval, col->numeric_bound)) >= 0)
						return Fault(fault, col, "out_of_range",
									 "value %s does not fit column \"%s\" of type %s",
									 Excerpt(f->text, f->text_len), col->name,
									 format_type_with_typemod(col->typid, col->typmod));
					num = DirectFunctionCall2(numeric, num, Int32GetDatum(col->typmod));
				}
				*value = num;
				return true;
			}

		case CK_FLOAT4:
		case CK_FLOAT8:
			{
				char	   *end;

				if (f->kind != CJ_NUMBER)
					return WrongKind(fault, col, f, "a JSON number");
				errno = 0;
				if (col->kind == CK_FLOAT8)
				{
					double		d = strtod(f->text, &end);

					if (errno == ERANGE && (d == 0.0 || isinf(d)))
						return Fault(fault, col, "out_of_range", "value %s is out of range for column \"%s\" of type double precision",
									 Excerpt(f->text, f->text_len), col->name);
					*value = Float8GetDatum(d);
				}
				else
				{
					float		d = strtof(f->text, &end);

					if ((errno == ERANGE && (d == 0.0f || isinf(d))) || isinf(d))
						return Fault(fault, col, "out_of_range", "value %s is out of range for column \"%s\" of type real",
									 Excerpt(f->text, f->text_len), col->name);
					*value = Float4GetDatum(d);
				}
				return true;
			}

		case CK_BOOL:
			if (f->kind != CJ_BOOL)
				return WrongKind(fault, col, f, "true or false");
			*value = BoolGetDatum(f->text[0] == 't');
			return true;

		case CK_UUID:
			{
				const char *p = f->text;
				pg_uuid_t  *uuid;
				bool		braces = false;
				int			i;

				if (f->kind != CJ_STRING)
					return WrongKind(fault, col, f, "a string holding a uuid");
				uuid = palloc(sizeof(pg_uuid_t));
				if (*p == '{')
				{
					braces = true;
					p++;
				}
				/* uuid_in's forms: 32 hex digits, a hyphen allowed after each pair of bytes */
				for (i = 0; i < UUID_LEN; i++)
				{
					int			hi,
								lo;

					hi = isxdigit((unsigned char) p[0]) ? (isdigit((unsigned char) p[0]) ? p[0] - '0' : (p[0] | 0x20) - 'a' + 10) : -1;
					lo = (hi >= 0 && isxdigit((unsigned char) p[1])) ? (isdigit((unsigned char) p[1]) ? p[1] - '0' : (p[1] | 0x20) - 'a' + 10) : -1;
					if (lo < 0)
						break;
					uuid->data[i] = (unsigned char) (hi << 4 | lo);
					p += 2;
					if (*p == '-' && (i % 2) == 1 && i < UUID_LEN - 1)
						p++;
				}
				if (i == UUID_LEN && braces)
				{
					if (*p == '}')
						p++;
					else
						i = -1;
				}
				if (i != UUID_LEN || *p != '\0')
					return Fault(fault, col, "wrong_type", "value \"%s\" for column \"%s\" is not a valid uuid",
								 Excerpt(f->text, f->text_len), col->name);
				*value = UUIDPGetDatum(uuid);
				return true;
			}

		case CK_TIMESTAMPTZ:
		case CK_TIMESTAMP:
		case CK_DATE:
			{
				struct pg_tm tm;
				fsec_t		fsec;
				bool		has_time,
							has_tz;
				int			tz;

				if (f->kind != CJ_STRING)
					return WrongKind(fault, col, f, "a string holding a date/time");
				if (!ParseIso8601(f->text, &tm, &fsec, &has_time, &has_tz, &tz))
					return ConvertGeneric(col, f->text, value, isnull, fault);
				if (col->kind == CK_DATE)
				{
					if (has_time || has_tz || !IS_VALID_JULIAN(tm.tm_year, tm.tm_mon, tm.tm_mday))
						return ConvertGeneric(col, f->text, value, isnull, fault);
					*value = DateADTGetDatum(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday) - POSTGRES_EPOCH_JDATE);
					return true;
				}
				else
				{
					Timestamp	ts;

					if (col->kind == CK_TIMESTAMP)
					{
						/* timestamp ignores a written offset: its input function knows how */
						if (has_tz)
							return ConvertGeneric(col, f->text, value, isnull, fault);
						if (tm2timestamp(&tm, fsec, NULL, &ts) != 0 || !IS_VALID_TIMESTAMP(ts))
							return Fault(fault, col, "out_of_range", "timestamp \"%s\" is out of range for column \"%s\"",
										 Excerpt(f->text, f->text_len), col->name);
						*value = TimestampGetDatum(ts);
						return true;
					}
					if (!has_tz)
						tz = DetermineTimeZoneOffset(&tm, session_timezone);
					if (tm2timestamp(&tm, fsec, &tz, &ts) != 0 || !IS_VALID_TIMESTAMP(ts))
						return Fault(fault, col, "out_of_range", "timestamp \"%s\" is out of range for column \"%s\"",
									 Excerpt(f->text, f->text_len), col->name);
					*value = TimestampTzGetDatum(ts);
					return true;
				}
			}

		case CK_JSON:
			if (f->kind == CJ_STRING)
			{
				StringInfoData buf;

				initStringInfo(&buf);
				escape_json(&buf, f->text);
				*value = PointerGetDatum(cstring_to_text_with_len(buf.data, buf.len));
			}
			else
				*value = PointerGetDatum(cstring_to_text_with_len(f->text, f->text_len));
			return true;

		case CK_JSONB:
			if (f->kind == CJ_STRING)
			{
				StringInfoData buf;

				initStringInfo(&buf);
				escape_json(&buf, f->text);
				*value = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
			}
			else
				*value = DirectFunctionCall1(jsonb_in, CStringGetDatum(f->text));
			return true;

		case CK_BYTEA:
			{
				bytea	   *b;

				if (f->kind == CJ_OBJECT || f->kind == CJ_ARRAY)
					return WrongKind(fault, col, f, "a string");
				b = palloc(f->text_len + VARHDRSZ);
				SET_VARSIZE(b, f->text_len + VARHDRSZ);
				memcpy(VARDATA(b), f->text, f->text_len);
				*value = PointerGetDatum(b);
				return true;
			}

		case CK_INET:
			{
				inet	   *dst;
				int			bits;

				if (f->kind != CJ_STRING)
					return WrongKind(fault, col, f, "a string holding an IP address");
				dst = palloc0(sizeof(inet));
				ip_family(dst) = strchr(f->text, ':') != NULL ? PGSQL_AF_INET6 : PGSQL_AF_INET;
				bits = pg_inet_net_pton(ip_family(dst), f->text, ip_addr(dst), -1);
				if (bits < 0 || bits > ip_maxbits(dst))
					return Fault(fault, col, "wrong_type", "value \"%s\" for column \"%s\" is not a valid IP address",
								 Excerpt(f->text, f->text_len), col->name);
				ip_bits(dst) = bits;
				SET_INET_VARSIZE(dst);
				*value = InetPGetDatum(dst);
				return true;
			}

		case CK_GENERIC:
			return ConvertGeneric(col, GenericText(f), value, isnull, fault);

		default:
			elog(ERROR, "camperso: column kind %d is not converted from JSON", (int) col->kind);
	}
	return false;				/* keep compiler quiet */
}

/*
 * The rule a message-caused error maps to, or NULL when the error is not
 * the message's fault (anything outside SQLSTATE classes 22 and 23).
 */
const char *
CaptureRuleForSqlState(int sqlerrcode)
{
	switch (sqlerrcode)
	{
		case ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE:
		case ERRCODE_DATETIME_FIELD_OVERFLOW:
		case ERRCODE_INTERVAL_FIELD_OVERFLOW:
			return "out_of_range";
		case ERRCODE_STRING_DATA_RIGHT_TRUNCATION:
			return "too_long";
		case ERRCODE_CHARACTER_NOT_IN_REPERTOIRE:
		case ERRCODE_UNTRANSLATABLE_CHARACTER:
			return "invalid_utf8";
		case ERRCODE_NOT_NULL_VIOLATION:
			return "not_null";
		case ERRCODE_CHECK_VIOLATION:
			return "check_violation";
		case ERRCODE_UNIQUE_VIOLATION:
			return "unique_violation";
		case ERRCODE_FOREIGN_KEY_VIOLATION:
			return "foreign_key_violation";
		case ERRCODE_EXCLUSION_VIOLATION:
			return "exclusion_violation";
	}
	if (ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_DATA_EXCEPTION)
		return "wrong_type";
	if (ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
		return "integrity_violation";
	return NULL;
}

/*
 * The slow path: the type's input function inside a subtransaction, so a
 * value it refuses becomes a fault instead of aborting the batch. str NULL
 * means SQL NULL (only domains are called with it, for their NOT NULL).
 */
static bool
ConvertGeneric(CaptureColumn *col, const char *str, Datum *value, bool *isnull,
			   CaptureFault *fault)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		*value = InputFunctionCall(&col->infunc, (char *) str, col->ioparam, col->typmod);
		*isnull = (str == NULL);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		const char *rule;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;

		rule = CaptureRuleForSqlState(edata->sqlerrcode);
		if (rule == NULL)
			ReThrowError(edata);
		fault->rule = rule;
		fault->field = col->name;
		fault->reason = psprintf("column \"%s\": %s", col->name, edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
