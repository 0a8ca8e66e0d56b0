/*-------------------------------------------------------------------------
 *
 * pg_shim.c
 *	  A stand-in for the few pieces of the PostgreSQL backend that the
 *	  fuzzed translation units (src/capture/decode.c, src/core/message.c,
 *	  src/validate/engine.c) call, so that they run in a plain process
 *	  under libFuzzer, AddressSanitizer and UBSan.
 *
 * What is here, and how faithful it is:
 *   memory contexts  every chunk is its own malloc() with a header that
 *                    links it into its context, so deleting a context
 *                    frees exactly its chunks and ASan sees any use after
 *                    that; sizes above MaxAllocSize raise an ERROR as
 *                    palloc does
 *   errors           ereport/elog, PG_TRY/PG_CATCH over sigsetjmp, error
 *                    data in ErrorContext, CopyErrorData, FlushErrorState,
 *                    context callbacks; an ERROR with no handler aborts;
 *                    levels below ERROR are dropped
 *   StringInfo, psprintf   as the backend's (same growth contract)
 *   encoding         the database encoding is UTF-8; the byte-level work
 *                    (mblen, verification, pg_wchar conversion) is
 *                    PostgreSQL's own, from libpgcommon
 *   time             a fixed now (FUZZ_NOW_UNIX); ParseDateTime and
 *                    DecodeDateTime accept only epoch and +-infinity and
 *                    raise an ERROR for a word they do not know, as the
 *                    real ones do for an unknown time zone, so the
 *                    callers' error recovery runs; every other form is
 *                    "bad format" (the real parser is not fuzzed here)
 *   fmgr             DirectFunctionCall1Coll and interval_out (duplicate
 *                    reasons print a window)
 *   regex            pg_regcomp/pg_regexec over the C library's POSIX
 *                    extended regular expressions (regex_posix.c): the
 *                    patterns of the fuzz ruleset mean the same in both
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <setjmp.h>

#include "common/jsonapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/memnodes.h"
#include "regex/regex.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_shim.h"
#include "regex_posix.h"

/* ------------------------------------------------------------------------
 * Memory contexts
 * ------------------------------------------------------------------------
 */

typedef struct ShimContext ShimContext;

/*
 * The header in front of every chunk. owner comes last, right before the
 * chunk, where the backend's GetMemoryChunkContext() looks for it.
 */
typedef struct ShimChunk
{
	struct ShimChunk *prev;
	struct ShimChunk *next;
	Size		size;
	ShimContext *owner;
} ShimChunk;

struct ShimContext
{
	MemoryContextData header;
	ShimChunk  *chunks;
};

MemoryContext CurrentMemoryContext = NULL;
MemoryContext TopMemoryContext = NULL;
MemoryContext ErrorContext = NULL;
MemoryContext CacheMemoryContext = NULL;

#define CHUNK_OF(ptr) ((ShimChunk *) ((char *) (ptr) - sizeof(ShimChunk)))

static MemoryContext
ShimContextCreate(MemoryContext parent, const char *name)
{
	ShimContext *cxt = calloc(1, sizeof(ShimContext));

	if (cxt == NULL)
		abort();
	cxt->header.type = T_AllocSetContext;
	cxt->header.isReset = true;
	cxt->header.name = name;
	cxt->header.parent = parent;
	if (parent != NULL)
	{
		cxt->header.nextchild = parent->firstchild;
		if (parent->firstchild != NULL)
			parent->firstchild->prevchild = &cxt->header;
		parent->firstchild = &cxt->header;
	}
	return &cxt->header;
}

MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name,
							  Size minContextSize, Size initBlockSize,
							  Size maxBlockSize)
{
	return ShimContextCreate(parent, name);
}

static void *
ShimAlloc(MemoryContext context, Size size, int flags)
{
	ShimContext *cxt = (ShimContext *) context;
	ShimChunk  *chunk;

	if ((flags & MCXT_ALLOC_HUGE) ? !AllocHugeSizeIsValid(size) : !AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	chunk = malloc(sizeof(ShimChunk) + size);
	if (chunk == NULL)
	{
		if (flags & MCXT_ALLOC_NO_OOM)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %zu in memory context \"%s\".",
						   size, context->name)));
	}
	chunk->size = size;
	chunk->owner = cxt;
	chunk->prev = NULL;
	chunk->next = cxt->chunks;
	if (cxt->chunks != NULL)
		cxt->chunks->prev = chunk;
	cxt->chunks = chunk;
	context->isReset = false;
	if (flags & MCXT_ALLOC_ZERO)
		memset(chunk + 1, 0, size);
	return chunk + 1;
}

static void
ShimUnlink(ShimChunk *chunk)
{
	if (chunk->prev != NULL)
		chunk->prev->next = chunk->next;
	else
		chunk->owner->chunks = chunk->next;
	if (chunk->next != NULL)
		chunk->next->prev = chunk->prev;
}

static void
ShimFreeChunks(ShimContext *cxt)
{
	ShimChunk  *chunk = cxt->chunks;

	while (chunk != NULL)
	{
		ShimChunk  *next = chunk->next;

		free(chunk);
		chunk = next;
	}
	cxt->chunks = NULL;
	cxt->header.isReset = true;
}

void
MemoryContextDelete(MemoryContext context)
{
	FUZZ_CHECK(context != TopMemoryContext, "TopMemoryContext deleted");
	FUZZ_CHECK(context != CurrentMemoryContext, "deleting the current context \"%s\"",
			   context->name);
	while (context->firstchild != NULL)
		MemoryContextDelete(context->firstchild);
	if (context->parent != NULL)
	{
		if (context->prevchild != NULL)
			context->prevchild->nextchild = context->nextchild;
		else
			context->parent->firstchild = context->nextchild;
		if (context->nextchild != NULL)
			context->nextchild->prevchild = context->prevchild;
	}
	ShimFreeChunks((ShimContext *) context);
	free(context);
}

void
MemoryContextReset(MemoryContext context)
{
	while (context->firstchild != NULL)
		MemoryContextDelete(context->firstchild);
	ShimFreeChunks((ShimContext *) context);
}

void
MemoryContextSetIdentifier(MemoryContext context, const char *id)
{
	context->ident = id;
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return ShimAlloc(context, size, 0);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return ShimAlloc(context, size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocZeroAligned(MemoryContext context, Size size)
{
	return ShimAlloc(context, size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocExtended(MemoryContext context, Size size, int flags)
{
	return ShimAlloc(context, size, flags);
}

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	return ShimAlloc(context, size, MCXT_ALLOC_HUGE);
}

void *
palloc(Size size)
{
	return ShimAlloc(CurrentMemoryContext, size, 0);
}

void *
palloc0(Size size)
{
	return ShimAlloc(CurrentMemoryContext, size, MCXT_ALLOC_ZERO);
}

void *
palloc_extended(Size size, int flags)
{
	return ShimAlloc(CurrentMemoryContext, size, flags);
}

void
pfree(void *pointer)
{
	ShimChunk  *chunk = CHUNK_OF(pointer);

	ShimUnlink(chunk);
	free(chunk);
}

static void *
ShimRealloc(void *pointer, Size size, int flags)
{
	ShimChunk  *chunk = CHUNK_OF(pointer);
	ShimContext *owner = chunk->owner;
	void	   *copy;

	/* a fresh chunk every time: ASan then catches stale pointers */
	copy = ShimAlloc(&owner->header, size, flags);
	memcpy(copy, pointer, Min(size, chunk->size));
	pfree(pointer);
	return copy;
}

void *
repalloc(void *pointer, Size size)
{
	return ShimRealloc(pointer, size, 0);
}

void *
repalloc_huge(void *pointer, Size size)
{
	return ShimRealloc(pointer, size, MCXT_ALLOC_HUGE);
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	Size		len = strlen(string) + 1;
	char	   *copy = MemoryContextAlloc(context, len);

	memcpy(copy, string, len);
	return copy;
}

char *
pstrdup(const char *in)
{
	return MemoryContextStrdup(CurrentMemoryContext, in);
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *copy;

	len = strnlen(in, len);
	copy = palloc(len + 1);
	memcpy(copy, in, len);
	copy[len] = '\0';
	return copy;
}

/* ------------------------------------------------------------------------
 * StringInfo and psprintf
 * ------------------------------------------------------------------------
 */

/*
 * Formats into buf; returns the bytes written (without the NUL) when they
 * fit, else the size needed, with the NUL, to retry with.
 */
size_t
pvsnprintf(char *buf, size_t len, const char *fmt, va_list args)
{
	int			n = vsnprintf(buf, len, fmt, args);

	if (n < 0)
		elog(ERROR, "vsnprintf failed: %m with format string \"%s\"", fmt);
	if ((size_t) n < len)
		return (size_t) n;
	if ((size_t) n >= MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("out of memory")));
	return (size_t) n + 1;
}

char *
psprintf(const char *fmt,...)
{
	size_t		len = 128;

	for (;;)
	{
		char	   *result = palloc(len);
		va_list		args;
		size_t		needed;

		va_start(args, fmt);
		needed = pvsnprintf(result, len, fmt, args);
		va_end(args);
		if (needed < len)
			return result;
		pfree(result);
		len = needed;
	}
}

void
initStringInfo(StringInfo str)
{
	str->maxlen = 1024;
	str->data = palloc(str->maxlen);
	resetStringInfo(str);
}

StringInfo
makeStringInfo(void)
{
	StringInfo	str = palloc(sizeof(StringInfoData));

	initStringInfo(str);
	return str;
}

void
resetStringInfo(StringInfo str)
{
	str->data[0] = '\0';
	str->len = 0;
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int			newlen;

	if (needed < 0)
		elog(ERROR, "invalid string enlargement request size: %d", needed);
	if (((Size) needed) >= (MaxAllocSize - (Size) str->len))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("out of memory"),
				 errdetail("Cannot enlarge string buffer containing %d bytes by %d more bytes.",
						   str->len, needed)));
	needed += str->len + 1;
	if (needed <= str->maxlen)
		return;
	newlen = 2 * str->maxlen;
	while (needed > newlen)
		newlen = 2 * newlen;
	if (newlen > (int) MaxAllocSize)
		newlen = (int) MaxAllocSize;
	str->data = repalloc(str->data, newlen);
	str->maxlen = newlen;
}

int
appendStringInfoVA(StringInfo str, const char *fmt, va_list args)
{
	int			avail = str->maxlen - str->len;
	size_t		nprinted;

	if (avail < 16)
		return 32;
	nprinted = pvsnprintf(str->data + str->len, (size_t) avail, fmt, args);
	if (nprinted < (size_t) avail)
	{
		str->len += (int) nprinted;
		return 0;
	}
	str->data[str->len] = '\0';
	return (int) nprinted;
}

void
appendStringInfo(StringInfo str, const char *fmt,...)
{
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(str, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(str, needed);
	}
}

void
appendBinaryStringInfo(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendStringInfoString(StringInfo str, const char *s)
{
	appendBinaryStringInfo(str, s, strlen(s));
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	if (str->len + 1 >= str->maxlen)
		enlargeStringInfo(str, 1);
	str->data[str->len] = ch;
	str->len++;
	str->data[str->len] = '\0';
}

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------
 */

#define ERRORDATA_STACK_SIZE 5

static ErrorData errordata[ERRORDATA_STACK_SIZE];
static int	errordata_stack_depth = -1;

sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;

/* Formats fmt and the variadic arguments into *target, in ErrorContext. */
#define SHIM_FORMAT(target) \
	do { \
		MemoryContext oldcxt_ = MemoryContextSwitchTo(ErrorContext); \
		StringInfoData buf_; \
		initStringInfo(&buf_); \
		for (;;) \
		{ \
			va_list		args_; \
			int			needed_; \
			va_start(args_, fmt); \
			needed_ = appendStringInfoVA(&buf_, fmt, args_); \
			va_end(args_); \
			if (needed_ == 0) \
				break; \
			enlargeStringInfo(&buf_, needed_); \
		} \
		(target) = buf_.data; \
		MemoryContextSwitchTo(oldcxt_); \
	} while (0)

static ErrorData *
CurrentError(void)
{
	FUZZ_CHECK(errordata_stack_depth >= 0, "error function called outside ereport");
	return &errordata[errordata_stack_depth];
}

bool
errstart(int elevel, const char *domain)
{
	ErrorData  *edata;

	if (elevel < ERROR)
		return false;			/* notices and warnings are of no interest */
	if (++errordata_stack_depth >= ERRORDATA_STACK_SIZE)
	{
		fprintf(stderr, "pg_shim: ERRORDATA_STACK_SIZE exceeded\n");
		abort();
	}
	edata = &errordata[errordata_stack_depth];
	memset(edata, 0, sizeof(ErrorData));
	edata->elevel = elevel;
	edata->domain = domain;
	edata->sqlerrcode = ERRCODE_INTERNAL_ERROR;
	edata->saved_errno = errno;
	edata->assoc_context = ErrorContext;
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	ErrorData  *edata = CurrentError();
	ErrorContextCallback *econtext;

	edata->filename = filename;
	edata->lineno = lineno;
	edata->funcname = funcname;
	for (econtext = error_context_stack; econtext != NULL; econtext = econtext->previous)
		econtext->callback(econtext->arg);
	if (edata->elevel > ERROR || PG_exception_stack == NULL)
		FuzzEscapedError(funcname);
	/* as the backend does: the handler starts out in ErrorContext */
	MemoryContextSwitchTo(ErrorContext);
	siglongjmp(*PG_exception_stack, 1);
}

int
errcode(int sqlerrcode)
{
	CurrentError()->sqlerrcode = sqlerrcode;
	return 0;
}

int
errmsg(const char *fmt,...)
{
	SHIM_FORMAT(CurrentError()->message);
	CurrentError()->message_id = fmt;
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	SHIM_FORMAT(CurrentError()->message);
	CurrentError()->message_id = fmt;
	return 0;
}

int
errdetail(const char *fmt,...)
{
	SHIM_FORMAT(CurrentError()->detail);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	SHIM_FORMAT(CurrentError()->detail);
	return 0;
}

int
errhint(const char *fmt,...)
{
	SHIM_FORMAT(CurrentError()->hint);
	return 0;
}

int
set_errcontext_domain(const char *domain)
{
	CurrentError()->context_domain = domain;
	return 0;
}

int
errcontext_msg(const char *fmt,...)
{
	char	   *msg;
	ErrorData  *edata = CurrentError();

	SHIM_FORMAT(msg);
	if (edata->context != NULL)
		msg = MemoryContextStrdup(ErrorContext, psprintf("%s\n%s", edata->context, msg));
	edata->context = msg;
	return 0;
}

int
geterrcode(void)
{
	return CurrentError()->sqlerrcode;
}

static char *
CopyString(const char *s)
{
	return s != NULL ? pstrdup(s) : NULL;
}

ErrorData *
CopyErrorData(void)
{
	ErrorData  *edata = CurrentError();
	ErrorData  *copy;

	/* The backend asserts this: a copy in ErrorContext would be lost. */
	FUZZ_CHECK(CurrentMemoryContext != ErrorContext,
			   "CopyErrorData called in ErrorContext (the catch block did not switch back)");
	copy = palloc(sizeof(ErrorData));
	memcpy(copy, edata, sizeof(ErrorData));
	copy->message = CopyString(edata->message);
	copy->detail = CopyString(edata->detail);
	copy->detail_log = CopyString(edata->detail_log);
	copy->hint = CopyString(edata->hint);
	copy->context = CopyString(edata->context);
	copy->assoc_context = CurrentMemoryContext;
	return copy;
}

void
FreeErrorData(ErrorData *edata)
{
	if (edata->message)
		pfree(edata->message);
	if (edata->detail)
		pfree(edata->detail);
	if (edata->detail_log)
		pfree(edata->detail_log);
	if (edata->hint)
		pfree(edata->hint);
	if (edata->context)
		pfree(edata->context);
	pfree(edata);
}

void
FlushErrorState(void)
{
	errordata_stack_depth = -1;
	MemoryContextReset(ErrorContext);
}

void
pg_re_throw(void)
{
	if (PG_exception_stack == NULL)
		FuzzEscapedError("pg_re_throw");
	siglongjmp(*PG_exception_stack, 1);
}

void
ReThrowError(ErrorData *edata)
{
	ErrorData  *newedata;
	MemoryContext oldcxt;

	if (++errordata_stack_depth >= ERRORDATA_STACK_SIZE)
		abort();
	newedata = &errordata[errordata_stack_depth];
	oldcxt = MemoryContextSwitchTo(ErrorContext);
	memcpy(newedata, edata, sizeof(ErrorData));
	newedata->message = CopyString(edata->message);
	newedata->detail = CopyString(edata->detail);
	newedata->hint = CopyString(edata->hint);
	newedata->context = CopyString(edata->context);
	newedata->assoc_context = ErrorContext;
	MemoryContextSwitchTo(oldcxt);
	pg_re_throw();
}

void
ExceptionalCondition(const char *conditionName, const char *errorType,
					 const char *fileName, int lineNumber)
{
	fprintf(stderr, "TRAP: %s(\"%s\", File: \"%s\", Line: %d)\n",
			errorType, conditionName, fileName, lineNumber);
	abort();
}

void
FuzzEscapedError(const char *what)
{
	if (errordata_stack_depth >= 0)
	{
		ErrorData  *edata = &errordata[errordata_stack_depth];

		fprintf(stderr, "pg_shim: an ERROR escaped %s: %s (SQLSTATE %s, %s:%d)\n",
				what, edata->message ? edata->message : "(no message)",
				unpack_sql_state(edata->sqlerrcode),
				edata->filename ? edata->filename : "?", edata->lineno);
		if (edata->detail)
			fprintf(stderr, "DETAIL: %s\n", edata->detail);
	}
	else
		fprintf(stderr, "pg_shim: an ERROR escaped %s\n", what);
	abort();
}

char *
unpack_sql_state(int sql_state)
{
	static char buf[12];
	int			i;

	for (i = 0; i < 5; i++)
	{
		buf[i] = PGUNSIXBIT(sql_state);
		sql_state >>= 6;
	}
	buf[i] = '\0';
	return buf;
}

/* ------------------------------------------------------------------------
 * Encoding: the database encoding is UTF-8
 * ------------------------------------------------------------------------
 */

int
GetDatabaseEncoding(void)
{
	return PG_UTF8;
}

int
pg_database_encoding_max_length(void)
{
	return pg_encoding_max_length(PG_UTF8);
}

int
pg_mblen(const char *mbstr)
{
	return pg_utf_mblen((const unsigned char *) mbstr);
}

/* Characters in the first limit bytes of mbstr (stops at a NUL). */
int
pg_mbstrlen_with_len(const char *mbstr, int limit)
{
	int			chars = 0;

	while (limit > 0 && *mbstr)
	{
		int			l = pg_mblen(mbstr);

		limit -= l;
		mbstr += l;
		chars++;
	}
	return chars;
}

/* Bytes of the longest prefix of whole characters within limit bytes. */
int
pg_mbcliplen(const char *mbstr, int len, int limit)
{
	int			clen = 0;

	while (len > 0 && *mbstr)
	{
		int			l = pg_mblen(mbstr);

		if (clen + l > limit)
			break;
		clen += l;
		if (clen == limit)
			break;
		len -= l;
		mbstr += l;
	}
	return clen;
}

/* Bytes of the first limit characters of mbstr. */
int
pg_mbcharcliplen(const char *mbstr, int len, int limit)
{
	int			clen = 0;
	int			nch = 0;

	while (len > 0 && *mbstr)
	{
		int			l = pg_mblen(mbstr);

		if (++nch > limit)
			break;
		clen += l;
		len -= l;
		mbstr += l;
	}
	return clen;
}

int
pg_mb2wchar_with_len(const char *from, pg_wchar *to, int len)
{
	return pg_wchar_table[PG_UTF8].mb2wchar_with_len((const unsigned char *) from, to, len);
}

int
pg_wchar2mb_with_len(const pg_wchar *from, char *to, int len)
{
	return pg_wchar_table[PG_UTF8].wchar2mb_with_len(from, (unsigned char *) to, len);
}

bool
FuzzUtf8Valid(const char *s, int len)
{
	return pg_encoding_verifymbstr(PG_UTF8, s, len) == len;
}

bool
FuzzJsonValid(const char *text, int len)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen(pnstrdup(text, len), len, PG_UTF8, true);

	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/* ------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------
 */

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12). */
static int64
DaysFromCivil(int64 y, int m, int d)
{
	int64		era;
	int64		yoe;
	int64		doy;

	if (m <= 2)
		y--;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* The inverse: y, m, d of a day number since 1970-01-01. */
static void
CivilFromDays(int64 z, int *y, int *m, int *d)
{
	int64		era;
	int64		doe;
	int64		yoe;
	int64		doy;
	int64		mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = (int) (yoe + era * 400 + (*m <= 2));
}

int
date2j(int year, int month, int day)
{
	return (int) (DaysFromCivil(year, month, day) + UNIX_EPOCH_JDATE);
}

TimestampTz
GetCurrentTimestamp(void)
{
	return (FUZZ_NOW_UNIX - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) *
		USECS_PER_SEC;
}

Timestamp
SetEpochTimestamp(void)
{
	return -(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

int
tm2timestamp(struct pg_tm *tm, fsec_t fsec, int *tzp, Timestamp *result)
{
	int64		days = date2j(tm->tm_year, tm->tm_mon, tm->tm_mday) - POSTGRES_EPOCH_JDATE;
	int64		t = ((days * HOURS_PER_DAY + tm->tm_hour) * MINS_PER_HOUR + tm->tm_min) *
		SECS_PER_MINUTE + tm->tm_sec;

	if (tzp != NULL)
		t += *tzp;
	*result = t * USECS_PER_SEC + fsec;
	return IS_VALID_TIMESTAMP(*result) ? 0 : -1;
}

const char *
timestamptz_to_str(TimestampTz t)
{
	static char buf[MAXDATELEN + 1];
	int64		secs;
	int64		days;
	int			y,
				m,
				d;
	int			usecs;

	if (TIMESTAMP_IS_NOBEGIN(t))
		return "-infinity";
	if (TIMESTAMP_IS_NOEND(t))
		return "infinity";
	secs = t / USECS_PER_SEC;
	usecs = (int) (t % USECS_PER_SEC);
	if (usecs < 0)
	{
		secs--;
		usecs += USECS_PER_SEC;
	}
	days = secs / SECS_PER_DAY;
	secs %= SECS_PER_DAY;
	if (secs < 0)
	{
		days--;
		secs += SECS_PER_DAY;
	}
	CivilFromDays(days + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE), &y, &m, &d);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d.%06d+00",
			 y, m, d, (int) (secs / 3600), (int) (secs / 60 % 60), (int) (secs % 60), usecs);
	return buf;
}

int
ParseDateTime(const char *timestr, char *workbuf, size_t buflen,
			  char **field, int *ftype, int maxfields, int *numfields)
{
	if (strlen(timestr) >= buflen || maxfields < 1)
		return DTERR_BAD_FORMAT;
	strcpy(workbuf, timestr);
	field[0] = workbuf;
	ftype[0] = DTK_STRING;
	*numfields = 1;
	return 0;
}

int
DecodeDateTime(char **field, int *ftype, int nf, int *dtype,
			   struct pg_tm *tm, fsec_t *fsec, int *tzp)
{
	const char *s = field[0];
	int			letters = 0;

	if (strcmp(s, "epoch") == 0)
		*dtype = DTK_EPOCH;
	else if (strcmp(s, "infinity") == 0 || strcmp(s, "+infinity") == 0)
		*dtype = DTK_LATE;
	else if (strcmp(s, "-infinity") == 0)
		*dtype = DTK_EARLY;
	else
	{
		for (; *s; s++)
		{
			letters = ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')) ? letters + 1 : 0;
			if (letters == 3)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("time zone \"%s\" not recognized", field[0])));
		}
		return DTERR_BAD_FORMAT;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * fmgr
 * ------------------------------------------------------------------------
 */

Datum
DirectFunctionCall1Coll(PGFunction func, Oid collation, Datum arg1)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, 1, collation, NULL, NULL);
	fcinfo->args[0].value = arg1;
	fcinfo->args[0].isnull = false;
	result = (*func) (fcinfo);
	if (fcinfo->isnull)
		elog(ERROR, "function %p returned NULL", (void *) func);
	return result;
}

/* The window of a unique rule, for duplicate reasons. */
Datum
interval_out(PG_FUNCTION_ARGS)
{
	Interval   *span = PG_GETARG_INTERVAL_P(0);
	int64		secs = span->time / USECS_PER_SEC;

	PG_RETURN_CSTRING(psprintf("%d mons %d days %02d:%02d:%02d", span->month, span->day,
							   (int) (secs / 3600), (int) (secs / 60 % 60), (int) (secs % 60)));
}

/* ------------------------------------------------------------------------
 * Regular expressions (the pattern lives in re_guts)
 * ------------------------------------------------------------------------
 */

/* pg_wchar text back to NUL-terminated UTF-8, in the current context. */
static char *
WcharToUtf8(const pg_wchar *s, size_t len)
{
	char	   *out = palloc(len * MAX_MULTIBYTE_CHAR_LEN + 1);
	int			n = pg_wchar2mb_with_len(s, out, (int) len);

	out[n] = '\0';
	return out;
}

int
pg_regcomp(regex_t *re, const pg_wchar *string, size_t len, int flags, Oid collation)
{
	char	   *pattern = WcharToUtf8(string, len);
	char		err[128];

	memset(re, 0, sizeof(*re));
	re->re_guts = PosixRegCompile(pattern, err, sizeof(err));
	pfree(pattern);
	return re->re_guts != NULL ? REG_OKAY : REG_BADPAT;
}

int
pg_regexec(regex_t *re, const pg_wchar *string, size_t len, size_t search_start,
		   rm_detail_t *details, size_t nmatch, regmatch_t pmatch[], int flags)
{
	char	   *subject = WcharToUtf8(string, len);
	int			matched = PosixRegMatch(re->re_guts, subject);

	pfree(subject);
	return matched ? REG_OKAY : REG_NOMATCH;
}

size_t
pg_regerror(int errcode, const regex_t *preg, char *errbuf, size_t errbuf_size)
{
	return strlcpy(errbuf, errcode == REG_NOMATCH ? "failed to match" : "invalid regular expression",
				   errbuf_size) + 1;
}

void
pg_regfree(regex_t *re)
{
	if (re->re_guts != NULL)
		PosixRegFree(re->re_guts);
	re->re_guts = NULL;
}

/* ------------------------------------------------------------------------
 * Set-up and per-input contexts
 * ------------------------------------------------------------------------
 */

void
FuzzShimInit(void)
{
	if (TopMemoryContext != NULL)
		return;
	TopMemoryContext = ShimContextCreate(NULL, "TopMemoryContext");
	ErrorContext = ShimContextCreate(TopMemoryContext, "ErrorContext");
	CacheMemoryContext = ShimContextCreate(TopMemoryContext, "CacheMemoryContext");
	CurrentMemoryContext = TopMemoryContext;
}

MemoryContext
FuzzInputBegin(void)
{
	MemoryContext cxt = ShimContextCreate(TopMemoryContext, "fuzz input");

	FUZZ_CHECK(errordata_stack_depth == -1, "an error is still pending from the last input");
	FUZZ_CHECK(PG_exception_stack == NULL, "PG_exception_stack left set");
	MemoryContextSwitchTo(cxt);
	return cxt;
}

void
FuzzInputEnd(MemoryContext cxt)
{
	FUZZ_CHECK(CurrentMemoryContext == cxt, "the code under test left context \"%s\" current",
			   CurrentMemoryContext->name);
	MemoryContextSwitchTo(TopMemoryContext);
	MemoryContextDelete(cxt);
	FUZZ_CHECK(ErrorContext->firstchild == NULL && ((ShimContext *) ErrorContext)->chunks == NULL,
			   "ErrorContext not flushed");
}

int
FuzzRunInput(void (*check) (const char *data, int len), const char *what,
			 const uint8_t *data, size_t size)
{
	MemoryContext cxt;

	/* lengths are int in the code under test */
	if (size > MaxAllocSize / 2)
		return -1;
	cxt = FuzzInputBegin();
	PG_TRY();
	{
		check((const char *) data, (int) size);
	}
	PG_CATCH();
	{
		FuzzEscapedError(what);
	}
	PG_END_TRY();
	FuzzInputEnd(cxt);
	return 0;
}
